//! Boss: the application-facing machine. Numbers outbound application phases (`"0"`, `"1"`, …),
//! re-orders inbound numeric phases strictly, parses the peer's `version`, picks the close mood
//! and reports the end exactly once.
//!
//! Mirrors `src/wormhole/_boss.py`.
//!
//! States ([`State`]): `Empty` (S0: no code yet) → `Lonely` (S1: code known) → `Happy` (S2:
//! something decrypted) → `Closing` (S3: mood and error chosen, waiting for the Terminator) →
//! `Closed` (S4).
//!
//! Inputs ([`In`]): `Send`, `SendPhase`, `Close`, `CloseFailed` (application); `RxWelcome`, `RxError`, `Fatal` (Rendezvous);
//! `ProtocolError` (any machine, or the host's abort); `GotCode` (Code); `GotKey`, `Scared` (Key);
//! `Happy`, `GotVerifier`, `GotMessage`, `Scared` (Receive); `Nameplates`, `Warning` (Input,
//! Rendezvous); `Closed` (Terminator).
//!
//! Outputs: [`Event`]s for the application; `send(phase, plaintext)` → Send; `close(mood)` →
//! Terminator.
//!
//! Dilation phases (`dilate-0`, `dilate-1`, …, the peer's own counter, mirroring `_boss.py`'s
//! `got_message` routing to the Dilator) are re-ordered strictly like the numeric phases, with a
//! separate counter and held map, and delivered as [`Event::Dilate`].
//!
//! Close moods: `lonely` when closed before anything decrypted, `happy` after, `errory` after
//! when the application says that what it did failed (`CloseFailed`: a transfer error, a
//! cancel; the reference closes `happy` then, we tell the server and the app the truth), `scary` on a bad
//! pake or decrypt ([`WormholeError::WrongCode`]), `errory` on a server `error`
//! ([`WormholeError::Server`]) or a protocol violation ([`WormholeError::Protocol`]),
//! `unwelcome` on a welcome `error` ([`WormholeError::Welcome`]).

use std::collections::BTreeMap;

use super::server_messages::Welcome;
use super::{send, terminator, Ctx, Event, Mood, Output, Route, WormholeError};

/// The most out-of-order application phases held back.
pub(crate) const MAX_HELD_PHASES: usize = 1024;

/// Inputs of the boss.
#[derive(Debug)]
pub(crate) enum In {
    Send(Vec<u8>),
    /// A named phase chosen by the application (Dilation's `dilate-N`).
    SendPhase {
        phase: String,
        plaintext: Vec<u8>,
    },
    Close,
    /// Close because the application's work failed: `errory` once verified, else `lonely`.
    CloseFailed,
    RxWelcome(Welcome),
    RxError(String),
    /// Ends the wormhole at once, with no close handshake (nothing is connected).
    Fatal(WormholeError),
    ProtocolError(String),
    GotCode(String),
    GotKey([u8; 32]),
    Happy,
    Scared,
    GotVerifier([u8; 32]),
    GotMessage {
        phase: String,
        plaintext: Vec<u8>,
    },
    Nameplates(Vec<String>),
    Warning(String),
    Closed,
}

/// Boss states.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum State {
    Empty,
    Lonely,
    Happy,
    Closing {
        mood: Mood,
        error: Option<WormholeError>,
    },
    Closed,
}

/// The boss.
#[derive(Debug)]
pub(crate) struct Boss {
    state: State,
    key: Option<[u8; 32]>,
    next_tx_phase: u64,
    next_rx_phase: u64,
    /// Application messages that arrived ahead of `next_rx_phase`.
    held: BTreeMap<u64, Vec<u8>>,
    /// The next `dilate-N` phase to deliver.
    next_dilate_phase: u64,
    /// Dilation messages that arrived ahead of `next_dilate_phase`.
    held_dilate: BTreeMap<u64, Vec<u8>>,
}

impl Boss {
    pub(crate) fn new() -> Self {
        Self {
            state: State::Empty,
            key: None,
            next_tx_phase: 0,
            next_rx_phase: 0,
            held: BTreeMap::new(),
            next_dilate_phase: 0,
            held_dilate: BTreeMap::new(),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    pub(crate) fn key(&self) -> Option<&[u8; 32]> {
        self.key.as_ref()
    }

    fn is_open(&self) -> bool {
        matches!(self.state, State::Empty | State::Lonely | State::Happy)
    }

    pub(crate) fn handle(&mut self, input: In, ctx: &mut Ctx<'_>) {
        if self.state == State::Closed {
            return;
        }
        match input {
            In::Send(plaintext) => {
                if self.is_open() {
                    let phase = self.next_tx_phase.to_string();
                    self.next_tx_phase += 1;
                    ctx.route(Route::Send(send::In::Send { phase, plaintext }));
                } else {
                    event(
                        Event::Warning("the wormhole is closing: message not sent".into()),
                        ctx,
                    );
                }
            }
            In::SendPhase { phase, plaintext } => {
                let reserved = phase.is_empty()
                    || phase == "pake"
                    || phase == "version"
                    || phase.bytes().all(|b| b.is_ascii_digit());
                if reserved {
                    event(
                        Event::Warning(format!("refusing to send the reserved phase {phase:?}")),
                        ctx,
                    );
                } else if self.is_open() {
                    ctx.route(Route::Send(send::In::Send { phase, plaintext }));
                } else {
                    event(
                        Event::Warning(format!(
                            "the wormhole is closing: phase {phase:?} not sent"
                        )),
                        ctx,
                    );
                }
            }
            In::Close | In::CloseFailed => {
                let failed = matches!(input, In::CloseFailed);
                let mood = match (self.state == State::Happy, failed) {
                    (true, false) => Mood::Happy,
                    (true, true) => Mood::Errory,
                    (false, _) => Mood::Lonely,
                };
                self.close(mood, None, ctx);
            }
            In::RxWelcome(welcome) => {
                if let Some(motd) = welcome.motd {
                    event(Event::Motd(motd), ctx);
                }
                if let Some(error) = welcome.error {
                    self.close(Mood::Unwelcome, Some(WormholeError::Welcome(error)), ctx);
                }
            }
            In::RxError(error) => self.close(Mood::Errory, Some(WormholeError::Server(error)), ctx),
            In::ProtocolError(why) => {
                self.close(Mood::Errory, Some(WormholeError::Protocol(why)), ctx)
            }
            In::Fatal(error) => {
                self.state = State::Closed;
                event(
                    Event::Closed {
                        mood: Mood::Errory,
                        error: Some(error),
                    },
                    ctx,
                );
            }
            In::GotCode(code) => {
                if self.state == State::Empty {
                    self.state = State::Lonely;
                    event(Event::Code(code), ctx);
                }
            }
            In::GotKey(key) => {
                if self.is_open() {
                    self.key = Some(key);
                    event(Event::KeyEstablished, ctx);
                }
            }
            In::Happy => {
                if matches!(self.state, State::Empty | State::Lonely) {
                    self.state = State::Happy;
                }
            }
            In::Scared => self.close(Mood::Scary, Some(WormholeError::WrongCode), ctx),
            In::GotVerifier(verifier) => {
                if self.state == State::Happy {
                    event(Event::Verified { verifier }, ctx);
                }
            }
            In::GotMessage { phase, plaintext } => {
                if self.state == State::Happy {
                    self.got_message(&phase, plaintext, ctx);
                }
            }
            In::Nameplates(nameplates) => {
                if self.is_open() {
                    event(Event::Nameplates(nameplates), ctx);
                }
            }
            In::Warning(text) => event(Event::Warning(text), ctx),
            In::Closed => {
                if let State::Closing { mood, error } =
                    std::mem::replace(&mut self.state, State::Closed)
                {
                    event(Event::Closed { mood, error }, ctx);
                }
            }
        }
    }

    /// Starts the close flow once; later requests are ignored (the first reason wins).
    fn close(&mut self, mood: Mood, error: Option<WormholeError>, ctx: &mut Ctx<'_>) {
        if self.is_open() {
            self.state = State::Closing { mood, error };
            ctx.route(Route::Terminator(terminator::In::Close(mood)));
        }
    }

    fn got_message(&mut self, phase: &str, plaintext: Vec<u8>, ctx: &mut Ctx<'_>) {
        if phase == "version" {
            match serde_json::from_slice::<serde_json::Value>(&plaintext) {
                Ok(value @ serde_json::Value::Object(_)) => event(Event::Versions(value), ctx),
                _ => self.close(
                    Mood::Errory,
                    Some(WormholeError::Protocol(
                        "the peer's version message is not a JSON object".into(),
                    )),
                    ctx,
                ),
            }
            return;
        }
        let (digits, dilate) = match phase.strip_prefix("dilate-") {
            Some(rest) => (rest, true),
            None => (phase, false),
        };
        let numeric = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
        let Some(number) = numeric.then(|| digits.parse::<u64>().ok()).flatten() else {
            event(
                Event::Warning(format!("ignoring a message of unknown phase {phase:?}")),
                ctx,
            );
            return;
        };
        let (next, held) = if dilate {
            (&mut self.next_dilate_phase, &mut self.held_dilate)
        } else {
            (&mut self.next_rx_phase, &mut self.held)
        };
        if number < *next || held.contains_key(&number) {
            event(
                Event::Warning(format!("ignoring a repeated phase {phase:?}")),
                ctx,
            );
            return;
        }
        if held.len() >= MAX_HELD_PHASES {
            self.close(
                Mood::Errory,
                Some(WormholeError::Protocol(format!(
                    "the peer sent more than {MAX_HELD_PHASES} messages out of order"
                ))),
                ctx,
            );
            return;
        }
        held.insert(number, plaintext);
        while let Some(plaintext) = held.remove(next) {
            *next += 1;
            let delivered = if dilate {
                Event::Dilate(plaintext)
            } else {
                Event::Received(plaintext)
            };
            event(delivered, ctx);
        }
    }
}

fn event(event: Event, ctx: &mut Ctx<'_>) {
    ctx.output(Output::Event(event));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailbox::Harness;

    fn events(h: &mut Harness) -> Vec<Event> {
        h.out
            .drain(..)
            .map(|o| match o {
                Output::Event(e) => e,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    fn happy_boss(h: &mut Harness) -> Boss {
        let mut b = Boss::new();
        b.handle(In::GotCode("4-a-b".into()), &mut h.ctx());
        b.handle(In::GotKey([1; 32]), &mut h.ctx());
        b.handle(In::Happy, &mut h.ctx());
        b.handle(In::GotVerifier([2; 32]), &mut h.ctx());
        assert_eq!(
            events(h),
            vec![
                Event::Code("4-a-b".into()),
                Event::KeyEstablished,
                Event::Verified { verifier: [2; 32] }
            ]
        );
        b
    }

    fn msg(phase: &str, pt: &str) -> In {
        In::GotMessage {
            phase: phase.into(),
            plaintext: pt.as_bytes().to_vec(),
        }
    }

    #[test]
    fn numbers_outbound_phases() {
        let mut h = Harness::new();
        let mut b = Boss::new();
        b.handle(In::Send(b"a".to_vec()), &mut h.ctx());
        b.handle(In::Send(b"b".to_vec()), &mut h.ctx());
        assert_eq!(
            h.routes(),
            vec![
                r#"Send(Send { phase: "0", plaintext: [97] })"#,
                r#"Send(Send { phase: "1", plaintext: [98] })"#
            ]
        );
    }

    #[test]
    fn reorders_inbound_numeric_phases_strictly() {
        let mut h = Harness::new();
        let mut b = happy_boss(&mut h);
        b.handle(msg("2", "c"), &mut h.ctx());
        b.handle(msg("1", "b"), &mut h.ctx());
        assert!(events(&mut h).is_empty());
        b.handle(msg("0", "a"), &mut h.ctx());
        assert_eq!(
            events(&mut h),
            vec![
                Event::Received(b"a".to_vec()),
                Event::Received(b"b".to_vec()),
                Event::Received(b"c".to_vec())
            ]
        );
        b.handle(msg("01", "dup"), &mut h.ctx());
        assert!(matches!(&events(&mut h)[..], [Event::Warning(_)]));
        b.handle(msg("3", "d"), &mut h.ctx());
        assert_eq!(events(&mut h), vec![Event::Received(b"d".to_vec())]);
    }

    #[test]
    fn unknown_phases_warn_and_are_ignored() {
        let mut h = Harness::new();
        let mut b = happy_boss(&mut h);
        for phase in [
            "dilate-",
            "dilate-x",
            "Dilate-0",
            "dilate--1",
            "x",
            "",
            "99999999999999999999999",
            "-1",
        ] {
            b.handle(msg(phase, "z"), &mut h.ctx());
            assert!(
                matches!(&events(&mut h)[..], [Event::Warning(_)]),
                "{phase}"
            );
        }
        assert_eq!(b.state, State::Happy);
    }

    #[test]
    fn dilate_phases_are_delivered_in_order_on_their_own_counter() {
        let mut h = Harness::new();
        let mut b = happy_boss(&mut h);
        b.handle(msg("dilate-2", "c"), &mut h.ctx());
        b.handle(msg("dilate-1", "b"), &mut h.ctx());
        assert!(events(&mut h).is_empty(), "gaps are held");
        b.handle(msg("0", "app"), &mut h.ctx());
        assert_eq!(events(&mut h), vec![Event::Received(b"app".to_vec())]);
        b.handle(msg("dilate-0", "a"), &mut h.ctx());
        assert_eq!(
            events(&mut h),
            vec![
                Event::Dilate(b"a".to_vec()),
                Event::Dilate(b"b".to_vec()),
                Event::Dilate(b"c".to_vec())
            ]
        );
        for dup in ["dilate-1", "dilate-01", "dilate-2"] {
            b.handle(msg(dup, "dup"), &mut h.ctx());
            assert!(matches!(&events(&mut h)[..], [Event::Warning(_)]), "{dup}");
        }
        b.handle(msg("dilate-4", "e"), &mut h.ctx());
        b.handle(msg("dilate-4", "e again"), &mut h.ctx());
        assert!(matches!(&events(&mut h)[..], [Event::Warning(_)]));
        b.handle(msg("dilate-3", "d"), &mut h.ctx());
        assert_eq!(
            events(&mut h),
            vec![Event::Dilate(b"d".to_vec()), Event::Dilate(b"e".to_vec())]
        );
        b.handle(msg("1", "app2"), &mut h.ctx());
        assert_eq!(events(&mut h), vec![Event::Received(b"app2".to_vec())]);
    }

    #[test]
    fn held_dilate_phases_are_bounded() {
        let mut h = Harness::new();
        let mut b = happy_boss(&mut h);
        for i in 1..=MAX_HELD_PHASES {
            b.handle(msg(&format!("dilate-{i}"), ""), &mut h.ctx());
        }
        assert!(b.is_open());
        b.handle(msg("dilate-5000", ""), &mut h.ctx());
        assert!(matches!(
            b.state,
            State::Closing {
                mood: Mood::Errory,
                ..
            }
        ));
    }

    #[test]
    fn named_phases_are_sent_as_given() {
        let mut h = Harness::new();
        let mut b = Boss::new();
        b.handle(In::Send(b"a".to_vec()), &mut h.ctx());
        b.handle(
            In::SendPhase {
                phase: "dilate-0".into(),
                plaintext: b"d".to_vec(),
            },
            &mut h.ctx(),
        );
        b.handle(In::Send(b"b".to_vec()), &mut h.ctx());
        assert_eq!(
            h.routes(),
            vec![
                r#"Send(Send { phase: "0", plaintext: [97] })"#,
                r#"Send(Send { phase: "dilate-0", plaintext: [100] })"#,
                r#"Send(Send { phase: "1", plaintext: [98] })"#
            ]
        );
        for reserved in ["", "pake", "version", "2"] {
            b.handle(
                In::SendPhase {
                    phase: reserved.into(),
                    plaintext: Vec::new(),
                },
                &mut h.ctx(),
            );
            assert!(h.routes().is_empty(), "{reserved}");
            assert!(matches!(&events(&mut h)[..], [Event::Warning(_)]));
        }
        b.handle(In::Close, &mut h.ctx());
        h.queue.clear();
        b.handle(
            In::SendPhase {
                phase: "dilate-1".into(),
                plaintext: Vec::new(),
            },
            &mut h.ctx(),
        );
        assert!(h.routes().is_empty());
        assert!(matches!(&events(&mut h)[..], [Event::Warning(_)]));
    }

    #[test]
    fn version_is_parsed() {
        let mut h = Harness::new();
        let mut b = happy_boss(&mut h);
        b.handle(msg("version", r#"{"app_versions": {}}"#), &mut h.ctx());
        assert_eq!(
            events(&mut h),
            vec![Event::Versions(serde_json::json!({"app_versions": {}}))]
        );
        b.handle(msg("version", "[]"), &mut h.ctx());
        assert!(matches!(
            &b.state,
            State::Closing {
                mood: Mood::Errory,
                error: Some(WormholeError::Protocol(_))
            }
        ));
    }

    #[test]
    fn held_phases_are_bounded() {
        let mut h = Harness::new();
        let mut b = happy_boss(&mut h);
        for i in 1..=MAX_HELD_PHASES {
            b.handle(msg(&i.to_string(), ""), &mut h.ctx());
        }
        assert!(b.is_open());
        b.handle(msg("5000", ""), &mut h.ctx());
        assert!(matches!(
            b.state,
            State::Closing {
                mood: Mood::Errory,
                ..
            }
        ));
    }

    #[test]
    fn moods() {
        let cases: Vec<(Vec<In>, Mood, Option<WormholeError>)> = vec![
            (vec![In::Close], Mood::Lonely, None),
            (
                vec![In::GotCode("1-a".into()), In::Close],
                Mood::Lonely,
                None,
            ),
            (vec![In::Happy, In::Close], Mood::Happy, None),
            (vec![In::Happy, In::CloseFailed], Mood::Errory, None),
            (vec![In::CloseFailed], Mood::Lonely, None),
            (
                vec![In::Happy, In::Scared, In::CloseFailed],
                Mood::Scary,
                Some(WormholeError::WrongCode),
            ),
            (
                vec![In::Happy, In::Scared],
                Mood::Scary,
                Some(WormholeError::WrongCode),
            ),
            (
                vec![In::RxError("crowded".into())],
                Mood::Errory,
                Some(WormholeError::Server("crowded".into())),
            ),
            (
                vec![In::RxWelcome(Welcome {
                    error: Some("go away".into()),
                    ..Welcome::default()
                })],
                Mood::Unwelcome,
                Some(WormholeError::Welcome("go away".into())),
            ),
            (
                vec![In::ProtocolError("bad".into()), In::Scared, In::Close],
                Mood::Errory,
                Some(WormholeError::Protocol("bad".into())),
            ),
        ];
        for (inputs, mood, error) in cases {
            let mut h = Harness::new();
            let mut b = Boss::new();
            for input in inputs {
                b.handle(input, &mut h.ctx());
            }
            let routes = h.routes();
            assert_eq!(routes, vec![format!("Terminator(Close({mood:?}))")]);
            h.out.clear();
            b.handle(In::Closed, &mut h.ctx());
            assert_eq!(events(&mut h), vec![Event::Closed { mood, error }]);
            assert!(b.is_closed());
            b.handle(In::Closed, &mut h.ctx());
            b.handle(In::Warning("late".into()), &mut h.ctx());
            assert!(events(&mut h).is_empty(), "nothing after Closed");
        }
    }

    #[test]
    fn motd_and_fatal() {
        let mut h = Harness::new();
        let mut b = Boss::new();
        b.handle(
            In::RxWelcome(Welcome {
                motd: Some("hello".into()),
                ..Welcome::default()
            }),
            &mut h.ctx(),
        );
        assert_eq!(events(&mut h), vec![Event::Motd("hello".into())]);
        b.handle(
            In::Fatal(WormholeError::ConnectFailed("refused".into())),
            &mut h.ctx(),
        );
        assert_eq!(
            events(&mut h),
            vec![Event::Closed {
                mood: Mood::Errory,
                error: Some(WormholeError::ConnectFailed("refused".into()))
            }]
        );
        assert!(b.is_closed());
    }

    #[test]
    fn sends_after_close_are_dropped_with_a_warning() {
        let mut h = Harness::new();
        let mut b = Boss::new();
        b.handle(In::Close, &mut h.ctx());
        h.queue.clear();
        b.handle(In::Send(b"x".to_vec()), &mut h.ctx());
        assert!(h.routes().is_empty());
        assert!(matches!(&events(&mut h)[..], [Event::Warning(_)]));
    }
}
