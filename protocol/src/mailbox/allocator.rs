//! Allocator: asks the server for a nameplate (re-sent after a reconnection until answered) and
//! builds the code from it and random PGP words.
//!
//! Mirrors `src/wormhole/_allocator.py`. The reference's A/B state pairs (disconnected/connected)
//! are the `connected` flag here.
//!
//! States ([`State`]): `Idle` → `Allocating` → `Done`.
//!
//! Inputs ([`In`]): `Allocate` (Code); `Connected`, `Lost`, `RxAllocated` (Rendezvous).
//!
//! Outputs: the `allocate` command; `allocated(nameplate, code)` → Code; a protocol error → Boss
//! if the server allocates a nameplate that is not all digits.

use super::server_messages::ClientMessage;
use super::{boss, code, Ctx, Route};

/// Inputs of the allocator.
#[derive(Debug)]
pub(crate) enum In {
    Allocate { words: usize },
    Connected,
    Lost,
    RxAllocated(String),
}

/// Allocator states.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum State {
    Idle,
    Allocating { words: usize },
    Done,
}

/// The allocator.
#[derive(Debug)]
pub(crate) struct Allocator {
    state: State,
    connected: bool,
}

impl Allocator {
    pub(crate) fn new() -> Self {
        Self {
            state: State::Idle,
            connected: false,
        }
    }

    pub(crate) fn handle(&mut self, input: In, ctx: &mut Ctx<'_>) {
        match (&self.state, input) {
            (_, In::Lost) => self.connected = false,
            (State::Allocating { .. }, In::Connected) => {
                self.connected = true;
                ctx.tx(ClientMessage::Allocate);
            }
            (_, In::Connected) => self.connected = true,
            (State::Idle, In::Allocate { words }) => {
                if self.connected {
                    ctx.tx(ClientMessage::Allocate);
                }
                self.state = State::Allocating { words };
            }
            (&State::Allocating { words }, In::RxAllocated(nameplate)) => {
                self.state = State::Done;
                if nameplate.is_empty() || !nameplate.bytes().all(|b| b.is_ascii_digit()) {
                    ctx.route(Route::Boss(boss::In::ProtocolError(format!(
                        "the mailbox server allocated an invalid nameplate {nameplate:?}"
                    ))));
                    return;
                }
                let words = crate::code::generate_words(ctx.rng, words);
                let code = format!("{nameplate}-{words}");
                ctx.route(Route::Code(code::In::Allocated { nameplate, code }));
            }
            // A second allocate, or an `allocated` we did not ask for: ignore.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailbox::Harness;

    #[test]
    fn allocates_on_connect_and_again_after_reconnect() {
        let mut h = Harness::new();
        let mut a = Allocator::new();
        a.handle(In::Allocate { words: 2 }, &mut h.ctx());
        assert!(h.routes().is_empty());
        a.handle(In::Connected, &mut h.ctx());
        assert_eq!(h.routes(), vec!["Rendezvous(Tx(Allocate))"]);
        a.handle(In::Lost, &mut h.ctx());
        a.handle(In::Connected, &mut h.ctx());
        assert_eq!(h.routes(), vec!["Rendezvous(Tx(Allocate))"]);
        a.handle(In::RxAllocated("42".into()), &mut h.ctx());
        let routes = h.take();
        let [Route::Code(code::In::Allocated { nameplate, code })] = &routes[..] else {
            panic!("{routes:?}")
        };
        assert_eq!(nameplate, "42");
        assert!(code.starts_with("42-"));
        assert_eq!(code.split('-').count(), 3);
        assert!(crate::code::validate_code(code).is_ok());
        a.handle(In::Lost, &mut h.ctx());
        a.handle(In::Connected, &mut h.ctx());
        assert!(h.routes().is_empty(), "done: no more allocate");
    }

    #[test]
    fn allocate_at_once_when_connected() {
        let mut h = Harness::new();
        let mut a = Allocator::new();
        a.handle(In::Connected, &mut h.ctx());
        a.handle(In::Allocate { words: 2 }, &mut h.ctx());
        assert_eq!(h.routes(), vec!["Rendezvous(Tx(Allocate))"]);
    }

    #[test]
    fn bad_nameplate_is_a_protocol_error() {
        let mut h = Harness::new();
        let mut a = Allocator::new();
        a.handle(In::Connected, &mut h.ctx());
        a.handle(In::Allocate { words: 2 }, &mut h.ctx());
        h.queue.clear();
        a.handle(In::RxAllocated("x1".into()), &mut h.ctx());
        let routes = h.routes();
        assert!(routes[0].starts_with("Boss(ProtocolError"), "{routes:?}");
    }
}
