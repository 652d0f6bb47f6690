//! Mailbox: opens the mailbox on every (re)connection, keeps a resend queue of our messages keyed
//! by phase, drops our own echoes (which retire that phase from the queue), de-duplicates the
//! peer's messages by phase (first copy wins), asks the Nameplate to release on the first peer
//! message, and closes the mailbox with a mood.
//!
//! Mirrors `src/wormhole/_mailbox.py`. The reference's A/B state pairs (disconnected/connected)
//! are the `connected` flag here.
//!
//! States ([`State`]): `Empty` (S0: no mailbox id) → `Known` (S1: id known, never opened) →
//! `Open` (S2) → `Closing` (S3: close wanted, waiting for `closed`) → `Done` (S4).
//!
//! Inputs ([`In`]): `GotMailbox` (Nameplate); `Add` (Key, Send); `Close` (Terminator);
//! `Connected`, `Lost`, `RxMessage`, `RxClosed` (Rendezvous).
//!
//! Outputs: `open` / `add` / `close` commands; `release` → Nameplate; peer messages → Order;
//! `mailbox_done` → Terminator; a protocol error → Boss when the peer sends more distinct phases
//! than [`MAX_PHASES`], or when more than [`MAX_PENDING`] of ours await their echo.

use std::collections::HashSet;

use super::server_messages::ClientMessage;
use super::{boss, nameplate, order, terminator, Ctx, Mood, Route};

/// The most distinct peer phases one wormhole remembers (for de-duplication).
pub(crate) const MAX_PHASES: usize = 100_000;
/// The most of our own messages awaiting their echo (the resend queue).
pub(crate) const MAX_PENDING: usize = 4096;

/// Inputs of the mailbox machine.
#[derive(Debug)]
pub(crate) enum In {
    GotMailbox(String),
    Add {
        phase: String,
        body: Vec<u8>,
    },
    Close(Mood),
    Connected,
    Lost,
    RxMessage {
        side: String,
        phase: String,
        body: Vec<u8>,
    },
    RxClosed,
}

/// Mailbox states.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum State {
    Empty,
    Known { mailbox: String },
    Open { mailbox: String },
    Closing { mailbox: String, mood: Mood },
    Done,
}

/// The mailbox machine.
#[derive(Debug)]
pub(crate) struct Mailbox {
    side: String,
    state: State,
    connected: bool,
    /// Our messages not yet echoed by the server, in the order they were added.
    pending: Vec<(String, Vec<u8>)>,
    /// The peer phases already delivered.
    seen: HashSet<String>,
}

impl Mailbox {
    pub(crate) fn new(side: String) -> Self {
        Self {
            side,
            state: State::Empty,
            connected: false,
            pending: Vec::new(),
            seen: HashSet::new(),
        }
    }

    pub(crate) fn handle(&mut self, input: In, ctx: &mut Ctx<'_>) {
        if let In::Lost = input {
            self.connected = false;
            return;
        }
        let state = std::mem::replace(&mut self.state, State::Done);
        self.state = match (state, input) {
            (state, In::Connected) => {
                self.connected = true;
                match state {
                    State::Known { mailbox } | State::Open { mailbox } => {
                        self.open_and_drain(&mailbox, ctx);
                        State::Open { mailbox }
                    }
                    State::Closing { mailbox, mood } => {
                        ctx.tx(close(&mailbox, mood));
                        State::Closing { mailbox, mood }
                    }
                    other => other,
                }
            }
            (State::Empty, In::GotMailbox(mailbox)) => {
                if self.connected {
                    self.open_and_drain(&mailbox, ctx);
                    State::Open { mailbox }
                } else {
                    State::Known { mailbox }
                }
            }
            (
                state @ (State::Empty | State::Known { .. } | State::Open { .. }),
                In::Add { phase, body },
            ) => {
                if let State::Open { .. } = state {
                    if self.connected {
                        ctx.tx(add(&phase, &body));
                    }
                }
                if let Some(entry) = self.pending.iter_mut().find(|(p, _)| *p == phase) {
                    entry.1 = body;
                } else if self.pending.len() >= MAX_PENDING {
                    ctx.route(Route::Boss(boss::In::ProtocolError(format!(
                        "more than {MAX_PENDING} messages not yet acknowledged by the server"
                    ))));
                } else {
                    self.pending.push((phase, body));
                }
                state
            }
            (State::Empty | State::Known { .. }, In::Close(_)) => {
                ctx.route(Route::Terminator(terminator::In::MailboxDone));
                State::Done
            }
            (State::Open { mailbox }, In::Close(mood)) => {
                if self.connected {
                    ctx.tx(close(&mailbox, mood));
                }
                State::Closing { mailbox, mood }
            }
            (State::Open { mailbox }, In::RxMessage { side, phase, body }) => {
                if side == self.side {
                    self.pending.retain(|(p, _)| *p != phase);
                } else {
                    ctx.route(Route::Nameplate(nameplate::In::Release));
                    if !self.seen.contains(&phase) {
                        if self.seen.len() >= MAX_PHASES {
                            ctx.route(Route::Boss(boss::In::ProtocolError(format!(
                                "the peer sent more than {MAX_PHASES} distinct phases"
                            ))));
                        } else {
                            self.seen.insert(phase.clone());
                            ctx.route(Route::Order(order::In::GotMessage { side, phase, body }));
                        }
                    }
                }
                State::Open { mailbox }
            }
            (State::Closing { .. }, In::RxClosed) => {
                ctx.route(Route::Terminator(terminator::In::MailboxDone));
                State::Done
            }
            // Ignored: adds and messages while closing or closed, a second mailbox id, a second
            // close, a `closed` we did not ask for.
            (state, _) => state,
        };
    }

    /// `open`, then every un-echoed add, in order.
    fn open_and_drain(&self, mailbox: &str, ctx: &mut Ctx<'_>) {
        ctx.tx(ClientMessage::Open {
            mailbox: mailbox.to_owned(),
        });
        for (phase, body) in &self.pending {
            ctx.tx(add(phase, body));
        }
    }

    #[cfg(test)]
    pub(crate) fn state(&self) -> &State {
        &self.state
    }
}

fn add(phase: &str, body: &[u8]) -> ClientMessage {
    ClientMessage::Add {
        phase: phase.to_owned(),
        body: hex::encode(body),
    }
}

fn close(mailbox: &str, mood: Mood) -> ClientMessage {
    ClientMessage::Close {
        mailbox: Some(mailbox.to_owned()),
        mood: Some(mood),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailbox::Harness;

    const OURS: &str = "aaaaaaaaaa";
    const THEIRS: &str = "bbbbbbbbbb";

    fn run(m: &mut Mailbox, h: &mut Harness, input: In) -> Vec<String> {
        m.handle(input, &mut h.ctx());
        h.routes()
    }

    fn add_in(phase: &str, body: &[u8]) -> In {
        In::Add {
            phase: phase.into(),
            body: body.to_vec(),
        }
    }

    fn rx(side: &str, phase: &str, body: &[u8]) -> In {
        In::RxMessage {
            side: side.into(),
            phase: phase.into(),
            body: body.to_vec(),
        }
    }

    #[test]
    fn queues_until_open_then_drains_in_order() {
        let mut h = Harness::new();
        let mut m = Mailbox::new(OURS.into());
        assert!(run(&mut m, &mut h, add_in("pake", b"p")).is_empty());
        assert!(run(&mut m, &mut h, In::GotMailbox("mb".into())).is_empty());
        assert!(run(&mut m, &mut h, add_in("version", b"v")).is_empty());
        assert_eq!(
            run(&mut m, &mut h, In::Connected),
            vec![
                r#"Rendezvous(Tx(Open { mailbox: "mb" }))"#,
                r#"Rendezvous(Tx(Add { phase: "pake", body: "70" }))"#,
                r#"Rendezvous(Tx(Add { phase: "version", body: "76" }))"#,
            ]
        );
        assert_eq!(
            run(&mut m, &mut h, add_in("0", b"x")),
            vec![r#"Rendezvous(Tx(Add { phase: "0", body: "78" }))"#]
        );
    }

    #[test]
    fn echoes_retire_the_resend_queue() {
        let mut h = Harness::new();
        let mut m = Mailbox::new(OURS.into());
        m.handle(In::Connected, &mut h.ctx());
        m.handle(In::GotMailbox("mb".into()), &mut h.ctx());
        m.handle(add_in("pake", b"p"), &mut h.ctx());
        m.handle(add_in("version", b"v"), &mut h.ctx());
        h.queue.clear();
        // Our own echo: dropped, not delivered, no release.
        assert!(run(&mut m, &mut h, rx(OURS, "pake", b"p")).is_empty());
        m.handle(In::Lost, &mut h.ctx());
        assert_eq!(
            run(&mut m, &mut h, In::Connected),
            vec![
                r#"Rendezvous(Tx(Open { mailbox: "mb" }))"#,
                r#"Rendezvous(Tx(Add { phase: "version", body: "76" }))"#,
            ]
        );
    }

    #[test]
    fn peer_messages_release_and_are_deduplicated_first_copy_wins() {
        let mut h = Harness::new();
        let mut m = Mailbox::new(OURS.into());
        m.handle(In::Connected, &mut h.ctx());
        m.handle(In::GotMailbox("mb".into()), &mut h.ctx());
        h.queue.clear();
        assert_eq!(
            run(&mut m, &mut h, rx(THEIRS, "pake", b"1")),
            vec![
                "Nameplate(Release)",
                r#"Order(GotMessage { side: "bbbbbbbbbb", phase: "pake", body: [49] })"#
            ]
        );
        assert_eq!(
            run(&mut m, &mut h, rx(THEIRS, "pake", b"2")),
            vec!["Nameplate(Release)"]
        );
    }

    #[test]
    fn close_flow() {
        let mut h = Harness::new();
        let mut m = Mailbox::new(OURS.into());
        m.handle(In::GotMailbox("mb".into()), &mut h.ctx());
        m.handle(In::Connected, &mut h.ctx());
        h.queue.clear();
        assert_eq!(
            run(&mut m, &mut h, In::Close(Mood::Happy)),
            vec![r#"Rendezvous(Tx(Close { mailbox: Some("mb"), mood: Some(Happy) }))"#]
        );
        // Adds and messages are ignored while closing.
        assert!(run(&mut m, &mut h, add_in("1", b"x")).is_empty());
        assert!(run(&mut m, &mut h, rx(THEIRS, "1", b"x")).is_empty());
        m.handle(In::Lost, &mut h.ctx());
        assert_eq!(
            run(&mut m, &mut h, In::Connected),
            vec![r#"Rendezvous(Tx(Close { mailbox: Some("mb"), mood: Some(Happy) }))"#],
            "close re-sent, no open"
        );
        assert_eq!(
            run(&mut m, &mut h, In::RxClosed),
            vec!["Terminator(MailboxDone)"]
        );
        assert_eq!(m.state(), &State::Done);
    }

    #[test]
    fn close_without_mailbox_is_done_at_once() {
        let mut h = Harness::new();
        let mut m = Mailbox::new(OURS.into());
        assert_eq!(
            run(&mut m, &mut h, In::Close(Mood::Lonely)),
            vec!["Terminator(MailboxDone)"]
        );
        let mut m = Mailbox::new(OURS.into());
        m.handle(In::GotMailbox("mb".into()), &mut h.ctx());
        assert_eq!(
            run(&mut m, &mut h, In::Close(Mood::Lonely)),
            vec!["Terminator(MailboxDone)"]
        );
    }

    #[test]
    fn resend_queue_is_bounded() {
        let mut h = Harness::new();
        let mut m = Mailbox::new(OURS.into());
        for i in 0..MAX_PENDING {
            m.handle(add_in(&i.to_string(), b""), &mut h.ctx());
        }
        // Replacing a queued phase is fine; a new one is not.
        m.handle(add_in("0", b"again"), &mut h.ctx());
        assert!(h.routes().is_empty());
        let routes = run(&mut m, &mut h, add_in("new", b""));
        assert_eq!(routes.len(), 1);
        assert!(routes[0].starts_with("Boss(ProtocolError"));
    }

    #[test]
    fn distinct_phases_are_bounded() {
        let mut h = Harness::new();
        let mut m = Mailbox::new(OURS.into());
        m.handle(In::Connected, &mut h.ctx());
        m.handle(In::GotMailbox("mb".into()), &mut h.ctx());
        for i in 0..MAX_PHASES {
            m.handle(rx(THEIRS, &i.to_string(), b""), &mut h.ctx());
        }
        h.queue.clear();
        let routes = run(&mut m, &mut h, rx(THEIRS, "x", b""));
        assert_eq!(routes.len(), 2);
        assert!(routes[1].starts_with("Boss(ProtocolError"));
    }
}
