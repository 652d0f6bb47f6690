//! Nameplate: claims the nameplate on every (re)connection until it is claimed, hands the
//! mailbox id to the Mailbox, releases it after the first peer message or on close.
//!
//! Mirrors `src/wormhole/_nameplate.py`. The reference's A/B state pairs (disconnected/connected)
//! are the `connected` flag here.
//!
//! States ([`State`]): `Empty` (S0) → `Known` (S1/S2: nameplate known; `claim_sent` tells whether
//! a claim may have reached the server) → `Claimed` (S3) → `Releasing` (S4) → `Done` (S5).
//!
//! Inputs ([`In`]): `SetNameplate` (Code); `Release` (Mailbox); `Close` (Terminator);
//! `Connected`, `Lost`, `RxClaimed`, `RxReleased` (Rendezvous).
//!
//! Outputs: `claim` / `release` commands; `got_mailbox` → Mailbox; `got_wordlist` → Input;
//! `nameplate_done` → Terminator.
//!
//! Unlike the reference (which claims only until `claimed`), a reconnection while `Claimed`
//! re-sends `claim` as well: the server treats it as idempotent for the same side, and it keeps
//! the claim alive should the server have lost the connection's state.

use super::server_messages::ClientMessage;
use super::{input, mailbox, terminator, Ctx, Route};

/// Inputs of the nameplate machine.
#[derive(Debug)]
pub(crate) enum In {
    SetNameplate(String),
    Release,
    Close,
    Connected,
    Lost,
    RxClaimed(String),
    RxReleased,
}

/// Nameplate states.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum State {
    Empty,
    Known { nameplate: String, claim_sent: bool },
    Claimed { nameplate: String },
    Releasing { nameplate: String },
    Done,
}

/// The nameplate machine.
#[derive(Debug)]
pub(crate) struct Nameplate {
    state: State,
    connected: bool,
}

impl Nameplate {
    pub(crate) fn new() -> Self {
        Self {
            state: State::Empty,
            connected: false,
        }
    }

    pub(crate) fn handle(&mut self, input: In, ctx: &mut Ctx<'_>) {
        if let In::Lost = input {
            self.connected = false;
            return;
        }
        let state = std::mem::replace(&mut self.state, State::Done);
        self.state = match (state, input) {
            (State::Empty, In::SetNameplate(nameplate)) => {
                if self.connected {
                    ctx.tx(ClientMessage::Claim {
                        nameplate: nameplate.clone(),
                    });
                }
                State::Known {
                    claim_sent: self.connected,
                    nameplate,
                }
            }
            (state, In::Connected) => {
                self.connected = true;
                match state {
                    State::Known { nameplate, .. } => {
                        ctx.tx(ClientMessage::Claim {
                            nameplate: nameplate.clone(),
                        });
                        State::Known {
                            nameplate,
                            claim_sent: true,
                        }
                    }
                    State::Claimed { nameplate } => {
                        ctx.tx(ClientMessage::Claim {
                            nameplate: nameplate.clone(),
                        });
                        State::Claimed { nameplate }
                    }
                    State::Releasing { nameplate } => {
                        ctx.tx(ClientMessage::Release {
                            nameplate: Some(nameplate.clone()),
                        });
                        State::Releasing { nameplate }
                    }
                    other => other,
                }
            }
            (State::Empty, In::Close)
            | (
                State::Known {
                    claim_sent: false, ..
                },
                In::Close,
            ) => {
                ctx.route(Route::Terminator(terminator::In::NameplateDone));
                State::Done
            }
            (State::Known { nameplate, .. }, In::RxClaimed(mailbox)) => {
                ctx.route(Route::Input(input::In::GotWordlist));
                ctx.route(Route::Mailbox(mailbox::In::GotMailbox(mailbox)));
                State::Claimed { nameplate }
            }
            (State::Known { nameplate, .. }, In::Close)
            | (State::Claimed { nameplate }, In::Release | In::Close) => {
                if self.connected {
                    ctx.tx(ClientMessage::Release {
                        nameplate: Some(nameplate.clone()),
                    });
                }
                State::Releasing { nameplate }
            }
            (State::Releasing { .. }, In::RxReleased) => {
                ctx.route(Route::Terminator(terminator::In::NameplateDone));
                State::Done
            }
            // Everything else is ignored: a second nameplate, a lazy Release from the Mailbox
            // (it asks on every peer message), a repeated claimed/released.
            (state, _) => state,
        };
    }

    #[cfg(test)]
    pub(crate) fn state(&self) -> &State {
        &self.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailbox::Harness;

    fn run(n: &mut Nameplate, h: &mut Harness, input: In) -> Vec<String> {
        n.handle(input, &mut h.ctx());
        h.routes()
    }

    #[test]
    fn claims_on_connect_and_reclaims_until_released() {
        let mut h = Harness::new();
        let mut n = Nameplate::new();
        assert!(run(&mut n, &mut h, In::SetNameplate("4".into())).is_empty());
        assert_eq!(
            run(&mut n, &mut h, In::Connected),
            vec![r#"Rendezvous(Tx(Claim { nameplate: "4" }))"#]
        );
        assert!(run(&mut n, &mut h, In::Lost).is_empty());
        assert_eq!(
            run(&mut n, &mut h, In::Connected),
            vec![r#"Rendezvous(Tx(Claim { nameplate: "4" }))"#]
        );
        assert_eq!(
            run(&mut n, &mut h, In::RxClaimed("mb".into())),
            vec!["Input(GotWordlist)", r#"Mailbox(GotMailbox("mb"))"#]
        );
        n.handle(In::Lost, &mut h.ctx());
        assert_eq!(
            run(&mut n, &mut h, In::Connected),
            vec![r#"Rendezvous(Tx(Claim { nameplate: "4" }))"#]
        );
        // A repeated `claimed` changes nothing.
        assert!(run(&mut n, &mut h, In::RxClaimed("mb".into())).is_empty());
        assert_eq!(
            run(&mut n, &mut h, In::Release),
            vec![r#"Rendezvous(Tx(Release { nameplate: Some("4") }))"#]
        );
        assert!(run(&mut n, &mut h, In::Release).is_empty(), "lazy mailbox");
        n.handle(In::Lost, &mut h.ctx());
        assert_eq!(
            run(&mut n, &mut h, In::Connected),
            vec![r#"Rendezvous(Tx(Release { nameplate: Some("4") }))"#],
            "release re-sent, claim not"
        );
        assert_eq!(
            run(&mut n, &mut h, In::RxReleased),
            vec!["Terminator(NameplateDone)"]
        );
        assert_eq!(n.state(), &State::Done);
        assert!(run(&mut n, &mut h, In::Close).is_empty());
        n.handle(In::Lost, &mut h.ctx());
        assert!(run(&mut n, &mut h, In::Connected).is_empty());
    }

    #[test]
    fn claim_sent_at_once_when_connected() {
        let mut h = Harness::new();
        let mut n = Nameplate::new();
        n.handle(In::Connected, &mut h.ctx());
        assert_eq!(
            run(&mut n, &mut h, In::SetNameplate("12".into())),
            vec![r#"Rendezvous(Tx(Claim { nameplate: "12" }))"#]
        );
    }

    #[test]
    fn close_before_any_claim_is_done_at_once() {
        let mut h = Harness::new();
        let mut n = Nameplate::new();
        assert_eq!(
            run(&mut n, &mut h, In::Close),
            vec!["Terminator(NameplateDone)"]
        );
        let mut n = Nameplate::new();
        n.handle(In::SetNameplate("4".into()), &mut h.ctx());
        assert_eq!(
            run(&mut n, &mut h, In::Close),
            vec!["Terminator(NameplateDone)"]
        );
    }

    #[test]
    fn close_after_claim_sent_releases_even_if_unanswered() {
        let mut h = Harness::new();
        let mut n = Nameplate::new();
        n.handle(In::Connected, &mut h.ctx());
        n.handle(In::SetNameplate("4".into()), &mut h.ctx());
        h.queue.clear();
        assert_eq!(
            run(&mut n, &mut h, In::Close),
            vec![r#"Rendezvous(Tx(Release { nameplate: Some("4") }))"#]
        );
        // A late `claimed` is ignored while releasing.
        assert!(run(&mut n, &mut h, In::RxClaimed("mb".into())).is_empty());
        assert_eq!(
            run(&mut n, &mut h, In::RxReleased),
            vec!["Terminator(NameplateDone)"]
        );
    }

    #[test]
    fn close_while_disconnected_releases_on_reconnect() {
        let mut h = Harness::new();
        let mut n = Nameplate::new();
        n.handle(In::Connected, &mut h.ctx());
        n.handle(In::SetNameplate("4".into()), &mut h.ctx());
        n.handle(In::RxClaimed("mb".into()), &mut h.ctx());
        n.handle(In::Lost, &mut h.ctx());
        h.queue.clear();
        assert!(run(&mut n, &mut h, In::Close).is_empty());
        assert_eq!(
            run(&mut n, &mut h, In::Connected),
            vec![r#"Rendezvous(Tx(Release { nameplate: Some("4") }))"#]
        );
    }
}
