//! Lister: sends `list` when the Input wants fresh nameplates (coalescing requests while one is in
//! flight, re-sending after a reconnection) and hands the answer to the Input.
//!
//! Mirrors `src/wormhole/_lister.py`. The reference's A/B state pairs (disconnected/connected)
//! are the `connected` flag here.
//!
//! States ([`State`]): `Idle` ⇄ `Wanting`.
//!
//! Inputs ([`In`]): `Refresh` (Input); `Connected`, `Lost`, `RxNameplates` (Rendezvous).
//!
//! Outputs: the `list` command; `got_nameplates` → Input.

use super::server_messages::ClientMessage;
use super::{input, Ctx, Route};

/// Inputs of the lister.
#[derive(Debug)]
pub(crate) enum In {
    Refresh,
    Connected,
    Lost,
    RxNameplates(Vec<String>),
}

/// Lister states.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum State {
    Idle,
    Wanting,
}

/// The lister.
#[derive(Debug)]
pub(crate) struct Lister {
    state: State,
    connected: bool,
}

impl Lister {
    pub(crate) fn new() -> Self {
        Self {
            state: State::Idle,
            connected: false,
        }
    }

    pub(crate) fn handle(&mut self, input: In, ctx: &mut Ctx<'_>) {
        match input {
            In::Lost => self.connected = false,
            In::Connected => {
                self.connected = true;
                if self.state == State::Wanting {
                    ctx.tx(ClientMessage::List);
                }
            }
            In::Refresh => {
                self.state = State::Wanting;
                if self.connected {
                    ctx.tx(ClientMessage::List);
                }
            }
            In::RxNameplates(nameplates) => {
                self.state = State::Idle;
                ctx.route(Route::Input(input::In::GotNameplates(nameplates)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailbox::Harness;

    #[test]
    fn lists_when_wanted_and_connected() {
        let mut h = Harness::new();
        let mut l = Lister::new();
        l.handle(In::Connected, &mut h.ctx());
        assert!(h.routes().is_empty(), "no list unless asked");
        l.handle(In::Lost, &mut h.ctx());
        l.handle(In::Refresh, &mut h.ctx());
        assert!(h.routes().is_empty());
        l.handle(In::Connected, &mut h.ctx());
        assert_eq!(h.routes(), vec!["Rendezvous(Tx(List))"]);
        l.handle(In::Refresh, &mut h.ctx());
        assert_eq!(h.routes(), vec!["Rendezvous(Tx(List))"]);
        l.handle(In::RxNameplates(vec!["3".into()]), &mut h.ctx());
        assert_eq!(h.routes(), vec![r#"Input(GotNameplates(["3"]))"#]);
        l.handle(In::Lost, &mut h.ctx());
        l.handle(In::Connected, &mut h.ctx());
        assert!(h.routes().is_empty(), "answered: not re-sent");
    }
}
