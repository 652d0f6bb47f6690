//! Terminator: on close, closes the Nameplate and the Mailbox, waits until both are done, stops
//! the rendezvous connector, then tells the Boss.
//!
//! Mirrors `src/wormhole/_terminator.py` (there is no Dilator to stop yet).
//!
//! States ([`State`]): `Open` (not closing; tracks which of nameplate/mailbox are already done)
//! → `Closing` (waiting for the rest) → `Stopping` (waiting for the connector) → `Stopped`.
//!
//! Inputs ([`In`]): `Close(mood)` (Boss); `NameplateDone` (Nameplate); `MailboxDone` (Mailbox);
//! `StoppedRendezvous` (Rendezvous).
//!
//! Outputs: `close` → Nameplate, `close(mood)` → Mailbox, `stop` → Rendezvous, `closed` → Boss.

use super::{boss, mailbox, nameplate, rendezvous, Ctx, Mood, Route};

/// Inputs of the terminator.
#[derive(Debug)]
pub(crate) enum In {
    Close(Mood),
    NameplateDone,
    MailboxDone,
    StoppedRendezvous,
}

/// Terminator states.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum State {
    Open {
        nameplate_done: bool,
        mailbox_done: bool,
    },
    Closing {
        nameplate_done: bool,
        mailbox_done: bool,
    },
    Stopping,
    Stopped,
}

/// The terminator.
#[derive(Debug)]
pub(crate) struct Terminator {
    state: State,
}

impl Terminator {
    pub(crate) fn new() -> Self {
        Self {
            state: State::Open {
                nameplate_done: false,
                mailbox_done: false,
            },
        }
    }

    pub(crate) fn handle(&mut self, input: In, ctx: &mut Ctx<'_>) {
        self.state = match (&self.state, input) {
            (
                &State::Open {
                    nameplate_done,
                    mailbox_done,
                },
                In::Close(mood),
            ) => {
                if !nameplate_done {
                    ctx.route(Route::Nameplate(nameplate::In::Close));
                }
                if !mailbox_done {
                    ctx.route(Route::Mailbox(mailbox::In::Close(mood)));
                }
                Self::maybe_stop(nameplate_done, mailbox_done, ctx)
            }
            (&State::Open { mailbox_done, .. }, In::NameplateDone) => State::Open {
                nameplate_done: true,
                mailbox_done,
            },
            (&State::Open { nameplate_done, .. }, In::MailboxDone) => State::Open {
                nameplate_done,
                mailbox_done: true,
            },
            (&State::Closing { mailbox_done, .. }, In::NameplateDone) => {
                Self::maybe_stop(true, mailbox_done, ctx)
            }
            (&State::Closing { nameplate_done, .. }, In::MailboxDone) => {
                Self::maybe_stop(nameplate_done, true, ctx)
            }
            (State::Stopping, In::StoppedRendezvous) => {
                ctx.route(Route::Boss(boss::In::Closed));
                State::Stopped
            }
            // A second close, a late done, a stop we did not ask for: nothing to do.
            _ => return,
        };
    }

    fn maybe_stop(nameplate_done: bool, mailbox_done: bool, ctx: &mut Ctx<'_>) -> State {
        if nameplate_done && mailbox_done {
            ctx.route(Route::Rendezvous(rendezvous::In::Stop));
            State::Stopping
        } else {
            State::Closing {
                nameplate_done,
                mailbox_done,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailbox::Harness;

    #[test]
    fn waits_for_both_then_stops_then_reports() {
        let mut h = Harness::new();
        let mut t = Terminator::new();
        t.handle(In::Close(Mood::Happy), &mut h.ctx());
        assert_eq!(
            h.routes(),
            vec!["Nameplate(Close)", "Mailbox(Close(Happy))"]
        );
        t.handle(In::MailboxDone, &mut h.ctx());
        assert!(h.routes().is_empty());
        t.handle(In::Close(Mood::Scary), &mut h.ctx());
        assert!(h.routes().is_empty(), "second close ignored");
        t.handle(In::NameplateDone, &mut h.ctx());
        assert_eq!(h.routes(), vec!["Rendezvous(Stop)"]);
        t.handle(In::StoppedRendezvous, &mut h.ctx());
        assert_eq!(h.routes(), vec!["Boss(Closed)"]);
        assert_eq!(t.state, State::Stopped);
    }

    #[test]
    fn parts_done_early_are_not_closed_again() {
        let mut h = Harness::new();
        let mut t = Terminator::new();
        t.handle(In::NameplateDone, &mut h.ctx());
        t.handle(In::Close(Mood::Lonely), &mut h.ctx());
        assert_eq!(h.routes(), vec!["Mailbox(Close(Lonely))"]);
        t.handle(In::MailboxDone, &mut h.ctx());
        assert_eq!(h.routes(), vec!["Rendezvous(Stop)"]);

        let mut t = Terminator::new();
        t.handle(In::NameplateDone, &mut h.ctx());
        t.handle(In::MailboxDone, &mut h.ctx());
        t.handle(In::Close(Mood::Happy), &mut h.ctx());
        assert_eq!(h.routes(), vec!["Rendezvous(Stop)"]);
    }
}
