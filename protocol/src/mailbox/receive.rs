//! Receive: decrypts the peer's messages with the sender's side phase key. The first success
//! means *verified*; any failure means *scared*.
//!
//! Mirrors `src/wormhole/_receive.py`. One addition: messages that arrive before the key (the
//! internal queue may deliver a held message just before the Key's result) are held, at most
//! [`MAX_HELD`], and decrypted when the key arrives.
//!
//! States ([`State`]): `NoKey` (holding) → `Unverified` → `Verified`; `Scared` (terminal).
//!
//! Inputs ([`In`]): `GotKey` (Key); `GotMessage` (Order).
//!
//! Outputs: on the first success `got_verified_key` → Send, then `happy`, `got_verifier`,
//! `got_message` → Boss; later successes `got_message` → Boss; a failure `scared` → Boss.

use super::{boss, send, Ctx, Route};
use crate::crypto;

/// The most messages held before the key is known.
pub(crate) const MAX_HELD: usize = 128;

/// Inputs of the receive machine.
#[derive(Debug)]
pub(crate) enum In {
    GotKey([u8; 32]),
    GotMessage {
        side: String,
        phase: String,
        body: Vec<u8>,
    },
}

/// Receive states.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum State {
    NoKey {
        held: Vec<(String, String, Vec<u8>)>,
    },
    Unverified {
        key: [u8; 32],
    },
    Verified {
        key: [u8; 32],
    },
    Scared,
}

/// The receive machine.
#[derive(Debug)]
pub(crate) struct Receive {
    state: State,
}

impl Receive {
    pub(crate) fn new() -> Self {
        Self {
            state: State::NoKey { held: Vec::new() },
        }
    }

    pub(crate) fn handle(&mut self, input: In, ctx: &mut Ctx<'_>) {
        match input {
            In::GotKey(key) => {
                if let State::NoKey { held } = &mut self.state {
                    let held = std::mem::take(held);
                    self.state = State::Unverified { key };
                    for (side, phase, body) in held {
                        self.got_message(side, phase, &body, ctx);
                    }
                }
            }
            In::GotMessage { side, phase, body } => self.got_message(side, phase, &body, ctx),
        }
    }

    fn got_message(&mut self, side: String, phase: String, body: &[u8], ctx: &mut Ctx<'_>) {
        let key = match &mut self.state {
            State::NoKey { held } => {
                if held.len() >= MAX_HELD {
                    ctx.route(Route::Boss(boss::In::ProtocolError(format!(
                        "the peer sent more than {MAX_HELD} messages before the key was known"
                    ))));
                } else {
                    held.push((side, phase, body.to_vec()));
                }
                return;
            }
            State::Scared => return,
            State::Unverified { key } | State::Verified { key } => *key,
        };
        let data_key = crypto::phase_key(&key, &side, &phase);
        match crypto::secretbox_open(&data_key, body) {
            Ok(plaintext) => {
                if let State::Unverified { .. } = self.state {
                    self.state = State::Verified { key };
                    ctx.route(Route::Send(send::In::GotVerifiedKey(key)));
                    ctx.route(Route::Boss(boss::In::Happy));
                    ctx.route(Route::Boss(boss::In::GotVerifier(crypto::verifier(&key))));
                }
                ctx.route(Route::Boss(boss::In::GotMessage { phase, plaintext }));
            }
            Err(_) => {
                self.state = State::Scared;
                ctx.route(Route::Boss(boss::In::Scared));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailbox::Harness;

    const KEY: [u8; 32] = [5; 32];

    fn sealed(side: &str, phase: &str, pt: &[u8]) -> In {
        let k = crypto::phase_key(&KEY, side, phase);
        In::GotMessage {
            side: side.into(),
            phase: phase.into(),
            body: crypto::secretbox_seal(&k, &[1; 24], pt),
        }
    }

    #[test]
    fn first_success_verifies_then_delivers() {
        let mut h = Harness::new();
        let mut r = Receive::new();
        r.handle(In::GotKey(KEY), &mut h.ctx());
        r.handle(sealed("bbbbbbbbbb", "version", b"{}"), &mut h.ctx());
        let routes = h.routes();
        assert_eq!(routes.len(), 4);
        assert!(routes[0].starts_with("Send(GotVerifiedKey("));
        assert_eq!(routes[1], "Boss(Happy)");
        assert!(routes[2].starts_with("Boss(GotVerifier("));
        assert_eq!(
            routes[3],
            r#"Boss(GotMessage { phase: "version", plaintext: [123, 125] })"#
        );
        r.handle(sealed("bbbbbbbbbb", "0", b"x"), &mut h.ctx());
        assert_eq!(
            h.routes(),
            vec![r#"Boss(GotMessage { phase: "0", plaintext: [120] })"#]
        );
    }

    #[test]
    fn uses_the_senders_side() {
        let mut h = Harness::new();
        let mut r = Receive::new();
        r.handle(In::GotKey(KEY), &mut h.ctx());
        // Encrypted for side "c" but labelled "b": must fail.
        let In::GotMessage { body, .. } = sealed("cccccccccc", "0", b"x") else {
            unreachable!()
        };
        r.handle(
            In::GotMessage {
                side: "bbbbbbbbbb".into(),
                phase: "0".into(),
                body,
            },
            &mut h.ctx(),
        );
        assert_eq!(h.routes(), vec!["Boss(Scared)"]);
        // Scared is terminal.
        r.handle(sealed("bbbbbbbbbb", "1", b"x"), &mut h.ctx());
        assert!(h.routes().is_empty());
    }

    #[test]
    fn failure_after_verification_is_scary_too() {
        let mut h = Harness::new();
        let mut r = Receive::new();
        r.handle(In::GotKey(KEY), &mut h.ctx());
        r.handle(sealed("b", "version", b"{}"), &mut h.ctx());
        h.queue.clear();
        r.handle(
            In::GotMessage {
                side: "b".into(),
                phase: "0".into(),
                body: vec![0; 10],
            },
            &mut h.ctx(),
        );
        assert_eq!(h.routes(), vec!["Boss(Scared)"]);
    }

    #[test]
    fn messages_before_the_key_are_held() {
        let mut h = Harness::new();
        let mut r = Receive::new();
        r.handle(sealed("b", "version", b"{}"), &mut h.ctx());
        assert!(h.routes().is_empty());
        r.handle(In::GotKey(KEY), &mut h.ctx());
        assert_eq!(h.routes().len(), 4);
    }
}
