//! Order: holds every non-pake message until the peer's pake has been handed to the Key.
//!
//! Mirrors `src/wormhole/_order.py`.
//!
//! States ([`State`]): `NoPake` (holding messages, at most [`MAX_HELD`]) → `YesPake`.
//!
//! Inputs ([`In`]): `GotMessage` (Mailbox; already de-duplicated, never our own).
//!
//! Outputs: the pake body → Key; every other message → Receive (the held ones right after the
//! pake, in arrival order); a protocol error → Boss when too many messages arrive before the pake.

use std::collections::VecDeque;

use super::{boss, key, receive, Ctx, Route};

/// The most messages held back before the peer's pake.
pub(crate) const MAX_HELD: usize = 128;

/// Inputs of the order machine.
#[derive(Debug)]
pub(crate) enum In {
    GotMessage {
        side: String,
        phase: String,
        body: Vec<u8>,
    },
}

/// One message from the peer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Held {
    side: String,
    phase: String,
    body: Vec<u8>,
}

/// Order states.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum State {
    NoPake { held: VecDeque<Held> },
    YesPake,
}

/// The order machine.
#[derive(Debug)]
pub(crate) struct Order {
    state: State,
}

impl Order {
    pub(crate) fn new() -> Self {
        Self {
            state: State::NoPake {
                held: VecDeque::new(),
            },
        }
    }

    pub(crate) fn handle(&mut self, input: In, ctx: &mut Ctx<'_>) {
        let In::GotMessage { side, phase, body } = input;
        match &mut self.state {
            State::NoPake { held } if phase == "pake" => {
                ctx.route(Route::Key(key::In::GotPake(body)));
                for Held { side, phase, body } in held.drain(..) {
                    ctx.route(Route::Receive(receive::In::GotMessage {
                        side,
                        phase,
                        body,
                    }));
                }
                self.state = State::YesPake;
            }
            State::NoPake { held } => {
                if held.len() >= MAX_HELD {
                    ctx.route(Route::Boss(boss::In::ProtocolError(format!(
                        "the peer sent more than {MAX_HELD} messages before its pake"
                    ))));
                } else {
                    held.push_back(Held { side, phase, body });
                }
            }
            // The Mailbox de-duplicates phases, so a second pake cannot arrive.
            State::YesPake if phase == "pake" => {}
            State::YesPake => ctx.route(Route::Receive(receive::In::GotMessage {
                side,
                phase,
                body,
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailbox::Harness;

    fn msg(phase: &str) -> In {
        In::GotMessage {
            side: "b".into(),
            phase: phase.into(),
            body: phase.as_bytes().to_vec(),
        }
    }

    #[test]
    fn holds_non_pake_until_pake() {
        let mut h = Harness::new();
        let mut o = Order::new();
        o.handle(msg("version"), &mut h.ctx());
        o.handle(msg("0"), &mut h.ctx());
        assert!(h.routes().is_empty());
        o.handle(msg("pake"), &mut h.ctx());
        assert_eq!(
            h.routes(),
            vec![
                "Key(GotPake([112, 97, 107, 101]))",
                r#"Receive(GotMessage { side: "b", phase: "version", body: [118, 101, 114, 115, 105, 111, 110] })"#,
                r#"Receive(GotMessage { side: "b", phase: "0", body: [48] })"#,
            ]
        );
        o.handle(msg("1"), &mut h.ctx());
        assert_eq!(
            h.routes(),
            vec![r#"Receive(GotMessage { side: "b", phase: "1", body: [49] })"#]
        );
        o.handle(msg("pake"), &mut h.ctx());
        assert!(h.routes().is_empty());
    }

    #[test]
    fn held_messages_are_bounded() {
        let mut h = Harness::new();
        let mut o = Order::new();
        for i in 0..MAX_HELD {
            o.handle(msg(&i.to_string()), &mut h.ctx());
        }
        assert!(h.routes().is_empty());
        o.handle(msg("x"), &mut h.ctx());
        let routes = h.routes();
        assert_eq!(routes.len(), 1);
        assert!(routes[0].starts_with("Boss(ProtocolError"));
    }
}
