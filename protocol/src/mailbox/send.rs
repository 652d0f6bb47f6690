//! Send: queues the application's plaintexts until the key is verified, then encrypts each with
//! our own side's phase key and hands it to the Mailbox.
//!
//! Mirrors `src/wormhole/_send.py`.
//!
//! States ([`State`]): `NoKey` (queueing, at most [`MAX_QUEUED`]) → `Verified`.
//!
//! Inputs ([`In`]): `Send` (Boss: phase and plaintext); `GotVerifiedKey` (Receive).
//!
//! Outputs: `add_message(phase, SecretBox)` → Mailbox; a protocol error → Boss if the queue
//! overflows.

use super::{boss, mailbox, Ctx, Route};
use crate::crypto;
use rand_chacha::rand_core::RngCore;

/// The most messages queued before verification.
pub(crate) const MAX_QUEUED: usize = 1024;

/// Inputs of the send machine.
#[derive(Debug)]
pub(crate) enum In {
    Send { phase: String, plaintext: Vec<u8> },
    GotVerifiedKey([u8; 32]),
}

/// Send states.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum State {
    NoKey { queue: Vec<(String, Vec<u8>)> },
    Verified { key: [u8; 32] },
}

/// The send machine.
#[derive(Debug)]
pub(crate) struct Send {
    side: String,
    state: State,
}

impl Send {
    pub(crate) fn new(side: String) -> Self {
        Self {
            side,
            state: State::NoKey { queue: Vec::new() },
        }
    }

    pub(crate) fn handle(&mut self, input: In, ctx: &mut Ctx<'_>) {
        match (&mut self.state, input) {
            (State::NoKey { queue }, In::Send { phase, plaintext }) => {
                if queue.len() >= MAX_QUEUED {
                    ctx.route(Route::Boss(boss::In::ProtocolError(format!(
                        "more than {MAX_QUEUED} messages queued before the peer was verified"
                    ))));
                } else {
                    queue.push((phase, plaintext));
                }
            }
            (State::NoKey { queue }, In::GotVerifiedKey(key)) => {
                for (phase, plaintext) in std::mem::take(queue) {
                    encrypt_and_send(&key, &self.side, phase, &plaintext, ctx);
                }
                self.state = State::Verified { key };
            }
            (State::Verified { key }, In::Send { phase, plaintext }) => {
                encrypt_and_send(key, &self.side, phase, &plaintext, ctx);
            }
            (State::Verified { .. }, In::GotVerifiedKey(_)) => {}
        }
    }
}

/// SecretBox(phase_key(K, side, phase)) with a fresh random nonce, to the Mailbox.
pub(crate) fn encrypt_and_send(
    key: &[u8; 32],
    side: &str,
    phase: String,
    plaintext: &[u8],
    ctx: &mut Ctx<'_>,
) {
    let data_key = crypto::phase_key(key, side, &phase);
    let mut nonce = [0u8; crypto::NONCE_LEN];
    ctx.rng.fill_bytes(&mut nonce);
    let body = crypto::secretbox_seal(&data_key, &nonce, plaintext);
    ctx.route(Route::Mailbox(mailbox::In::Add { phase, body }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailbox::Harness;

    fn send(phase: &str, pt: &[u8]) -> In {
        In::Send {
            phase: phase.into(),
            plaintext: pt.to_vec(),
        }
    }

    fn adds(h: &mut Harness) -> Vec<(String, Vec<u8>)> {
        h.take()
            .into_iter()
            .map(|r| match r {
                Route::Mailbox(mailbox::In::Add { phase, body }) => (phase, body),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    #[test]
    fn queues_until_verified_then_encrypts_with_own_side() {
        let mut h = Harness::new();
        let mut s = Send::new("aaaaaaaaaa".into());
        s.handle(send("0", b"hello"), &mut h.ctx());
        s.handle(send("1", b"world"), &mut h.ctx());
        assert!(h.routes().is_empty());
        let key = [3u8; 32];
        s.handle(In::GotVerifiedKey(key), &mut h.ctx());
        s.handle(send("2", b"!"), &mut h.ctx());
        let sent = adds(&mut h);
        let phases: Vec<_> = sent.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(phases, ["0", "1", "2"]);
        for ((phase, body), pt) in sent.iter().zip([&b"hello"[..], b"world", b"!"]) {
            let k = crypto::phase_key(&key, "aaaaaaaaaa", phase);
            assert_eq!(crypto::secretbox_open(&k, body).as_deref(), Ok(pt));
        }
        assert_ne!(sent[0].1[..24], sent[1].1[..24], "fresh nonces");
    }

    #[test]
    fn queue_is_bounded() {
        let mut h = Harness::new();
        let mut s = Send::new("a".into());
        for _ in 0..MAX_QUEUED {
            s.handle(send("0", b""), &mut h.ctx());
        }
        s.handle(send("0", b""), &mut h.ctx());
        let routes = h.routes();
        assert_eq!(routes.len(), 1);
        assert!(routes[0].starts_with("Boss(ProtocolError"));
    }
}
