//! One candidate Transit connection, from TCP connect to `go`: a byte-in/byte-out machine.
//!
//! States ([`Stage`]):
//! - `Relay`: (relay connections only) our `please relay <token> for side <side>\n` is queued;
//!   waiting for the relay's `ok\n`.
//! - `Handshake`: our `transit sender|receiver <hex> ready\n\n` is queued; waiting for the
//!   peer's line, exactly.
//! - `Decision` (sender only): the peer is ready; the host decides with [`Handshake::choose`]
//!   (queues `go\n`) or [`Handshake::reject`] (queues `nevermind\n`; then close).
//! - `Go` (receiver only): waiting for the sender's `go\n`.
//! - `Established`: records may flow; bytes that came after the handshake are kept
//!   ([`Handshake::into_leftover`]).
//! - `Rejected`, `Failed`: the connection is to be closed.
//!
//! Inputs: [`Handshake::handle_data`], [`Handshake::handle_eof`], and for the sender the
//! decision. Outputs: [`Handshake::poll_transmit`] (bytes to write), [`Handshake::stage`].
//! Every expected byte is compared as it arrives; the first mismatching byte fails the
//! connection (as the reference hangs up), so nothing is buffered before `Established`, and the
//! host can read exactly [`Handshake::bytes_wanted`] bytes at a time so that nothing is over-read.
//! Timeouts are the race's business ([`super::race`]).
//!
//! Mirrors `Connection._dataReceived` of `src/wormhole/transit.py`; PROTOCOL.md §3 "Handshake".

use super::Role;
use crate::crypto::{
    transit_receiver_handshake, transit_relay_handshake, transit_sender_handshake,
};

/// What the relay answers once both sides have presented the same token.
pub const RELAY_OK: &[u8] = b"ok\n";
/// What the sender writes on the connection it picks.
pub const GO: &[u8] = b"go\n";
/// What the sender writes on the connections it does not pick, before closing them.
pub const NEVERMIND: &[u8] = b"nevermind\n";
/// Most bytes kept from after the handshake (the host should read no more than wanted anyway).
pub const MAX_LEFTOVER: usize = 1 << 20;

/// Where a candidate connection is in its handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Waiting for the relay's `ok\n`.
    Relay,
    /// Waiting for the peer's handshake line.
    Handshake,
    /// Sender: the peer is ready; waiting for our decision.
    Decision,
    /// Receiver: waiting for `go\n`.
    Go,
    /// Done: records may flow.
    Established,
    /// Sender: we said `nevermind`.
    Rejected,
    /// A failure ended this connection.
    Failed,
}

/// Why a candidate connection failed. All come from the peer (or relay), never a panic.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// A byte differs from the expected handshake bytes.
    #[error(
        "bad handshake in stage {stage:?}: byte {offset} is {got:#04x}, expected {expected:#04x}"
    )]
    Mismatch {
        /// The stage whose bytes were wrong.
        stage: Stage,
        /// Offset of the wrong byte within the expected line.
        offset: usize,
        /// The byte we expected.
        expected: u8,
        /// The byte we got.
        got: u8,
    },
    /// The relay refused us (`bad handshake\n` or `impatient\n`, or anything but `ok\n`).
    #[error("the transit relay refused the connection (first byte {got:#04x})")]
    RelayRefused {
        /// The first byte of its answer.
        got: u8,
    },
    /// Receiver: the sender picked another connection (`nevermind\n`).
    #[error("the sender chose another connection")]
    NotChosen,
    /// The peer sent data before it was allowed to (the receiver sends nothing before `go`).
    #[error("unexpected data in stage {stage:?}")]
    UnexpectedData {
        /// The stage in which data arrived.
        stage: Stage,
    },
    /// The peer closed the connection before the handshake finished.
    #[error("connection closed in stage {stage:?}")]
    Closed {
        /// The stage in which the connection closed.
        stage: Stage,
    },
    /// More than [`MAX_LEFTOVER`] bytes arrived along with the handshake.
    #[error("too much data after the handshake")]
    TooMuchData,
    /// A decision was asked of a connection that is not waiting for one (a host bug).
    #[error("no decision is pending in stage {stage:?}")]
    NoDecisionPending {
        /// The stage the connection is in.
        stage: Stage,
    },
    /// The connection already failed; it takes no more input.
    #[error("the connection already failed")]
    AlreadyFailed,
}

/// The handshake machine of one candidate connection.
#[derive(Debug)]
pub struct Handshake {
    role: Role,
    stage: Stage,
    /// The bytes expected in the current stage (empty when nothing is expected).
    expect: Vec<u8>,
    /// How many of `expect` have been matched.
    matched: usize,
    /// The peer's handshake line, expected after the relay's `ok`.
    peer_line: Vec<u8>,
    /// Our handshake line, queued after the relay's `ok`.
    our_line: Vec<u8>,
    outgoing: Vec<u8>,
    leftover: Vec<u8>,
}

impl Handshake {
    /// A direct connection (inbound or outbound): our handshake line is queued at once.
    #[must_use]
    pub fn direct(role: Role, transit_key: &[u8; 32]) -> Self {
        let mut hs = Self::blank(role, transit_key);
        hs.start_handshake();
        hs
    }

    /// A connection through a relay: the relay line with our 16-hex-character `side` is queued;
    /// our handshake line follows the relay's `ok\n`.
    #[must_use]
    pub fn relayed(role: Role, transit_key: &[u8; 32], side: &str) -> Self {
        let mut hs = Self::blank(role, transit_key);
        hs.outgoing = transit_relay_handshake(transit_key, side).into_bytes();
        hs.stage = Stage::Relay;
        hs.expect = RELAY_OK.to_vec();
        hs
    }

    fn blank(role: Role, transit_key: &[u8; 32]) -> Self {
        let sender = transit_sender_handshake(transit_key).into_bytes();
        let receiver = transit_receiver_handshake(transit_key).into_bytes();
        let (our_line, peer_line) = match role {
            Role::Sender => (sender, receiver),
            Role::Receiver => (receiver, sender),
        };
        Self {
            role,
            stage: Stage::Handshake,
            expect: Vec::new(),
            matched: 0,
            peer_line,
            our_line,
            outgoing: Vec::new(),
            leftover: Vec::new(),
        }
    }

    fn start_handshake(&mut self) {
        self.outgoing.extend_from_slice(&self.our_line);
        self.stage = Stage::Handshake;
        self.expect = std::mem::take(&mut self.peer_line);
        self.matched = 0;
    }

    /// Our role.
    #[must_use]
    pub fn role(&self) -> Role {
        self.role
    }

    /// The current stage.
    #[must_use]
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// Sender: the peer is ready and a decision is due.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.stage == Stage::Decision
    }

    /// The handshake is complete; records may flow (after [`Self::poll_transmit`] is written).
    #[must_use]
    pub fn is_established(&self) -> bool {
        self.stage == Stage::Established
    }

    /// How many more bytes this stage expects: read at most this many to never over-read.
    /// Zero when no input is expected (decision pending, established, closed).
    #[must_use]
    pub fn bytes_wanted(&self) -> usize {
        match self.stage {
            Stage::Relay | Stage::Handshake | Stage::Go => self.expect.len() - self.matched,
            Stage::Decision | Stage::Established | Stage::Rejected | Stage::Failed => 0,
        }
    }

    /// Bytes to write to the socket, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if self.outgoing.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut self.outgoing))
        }
    }

    /// Bytes arrived from the socket.
    pub fn handle_data(&mut self, mut data: &[u8]) -> Result<(), HandshakeError> {
        while !data.is_empty() {
            match self.stage {
                Stage::Relay | Stage::Handshake | Stage::Go => {
                    let n = self.match_bytes(data)?;
                    data = &data[n..];
                }
                Stage::Established => {
                    if self.leftover.len() + data.len() > MAX_LEFTOVER {
                        return Err(self.fail(HandshakeError::TooMuchData));
                    }
                    self.leftover.extend_from_slice(data);
                    return Ok(());
                }
                Stage::Decision | Stage::Rejected => {
                    let stage = self.stage;
                    return Err(self.fail(HandshakeError::UnexpectedData { stage }));
                }
                Stage::Failed => return Err(HandshakeError::AlreadyFailed),
            }
        }
        Ok(())
    }

    /// Matches a prefix of `data` against the expected bytes; returns how many were consumed.
    fn match_bytes(&mut self, data: &[u8]) -> Result<usize, HandshakeError> {
        let want = &self.expect[self.matched..];
        let n = want.len().min(data.len());
        if let Some(i) = (0..n).find(|&i| want[i] != data[i]) {
            let offset = self.matched + i;
            let (expected, got) = (want[i], data[i]);
            let err = match (self.stage, offset, got) {
                (Stage::Relay, 0, _) => HandshakeError::RelayRefused { got },
                (Stage::Go, 0, b'n') => HandshakeError::NotChosen,
                (stage, offset, got) => HandshakeError::Mismatch {
                    stage,
                    offset,
                    expected,
                    got,
                },
            };
            return Err(self.fail(err));
        }
        self.matched += n;
        if self.matched == self.expect.len() {
            self.stage_done();
        }
        Ok(n)
    }

    fn stage_done(&mut self) {
        self.matched = 0;
        self.expect = Vec::new();
        match (self.stage, self.role) {
            (Stage::Relay, _) => self.start_handshake(),
            (Stage::Handshake, Role::Sender) => self.stage = Stage::Decision,
            (Stage::Handshake, Role::Receiver) => {
                self.stage = Stage::Go;
                self.expect = GO.to_vec();
            }
            (Stage::Go, _) => self.stage = Stage::Established,
            _ => {}
        }
    }

    fn fail(&mut self, err: HandshakeError) -> HandshakeError {
        self.stage = Stage::Failed;
        self.outgoing.clear();
        err
    }

    /// The socket reached end of stream.
    pub fn handle_eof(&mut self) -> Result<(), HandshakeError> {
        match self.stage {
            Stage::Established | Stage::Rejected => Ok(()),
            Stage::Failed => Err(HandshakeError::AlreadyFailed),
            stage => Err(self.fail(HandshakeError::Closed { stage })),
        }
    }

    /// Sender: pick this connection; queues `go\n` and establishes it.
    pub fn choose(&mut self) -> Result<(), HandshakeError> {
        self.decide(GO, Stage::Established)
    }

    /// Sender: drop this connection; queues `nevermind\n`. Close after writing it.
    pub fn reject(&mut self) -> Result<(), HandshakeError> {
        self.decide(NEVERMIND, Stage::Rejected)
    }

    fn decide(&mut self, line: &[u8], next: Stage) -> Result<(), HandshakeError> {
        if self.stage != Stage::Decision {
            return Err(HandshakeError::NoDecisionPending { stage: self.stage });
        }
        self.outgoing.extend_from_slice(line);
        self.stage = next;
        Ok(())
    }

    /// Bytes received after the handshake: the start of the record stream.
    #[must_use]
    pub fn into_leftover(self) -> Vec<u8> {
        self.leftover
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::transit_key;

    fn tk() -> [u8; 32] {
        transit_key(&(0u8..32).collect::<Vec<_>>())
    }

    const SENDER_LINE: &[u8] = b"transit sender 6fa5ad1bb11461d5165ff989e5ce9bf1c2d464385caf06870527e62fc0643f4c ready\n\n";
    const RECEIVER_LINE: &[u8] = b"transit receiver 0b5d03da4672ec8428bd2485e126faf13ef3ffb278196ddc2f95d96d3d82c1fd ready\n\n";

    /// Moves every queued byte from `a` to `b` and back, `chunk` bytes at a time, until quiet.
    fn pump(a: &mut Handshake, b: &mut Handshake, chunk: usize) -> Result<(), HandshakeError> {
        fn one_way(
            from: &mut Handshake,
            to: &mut Handshake,
            chunk: usize,
        ) -> Result<bool, HandshakeError> {
            let Some(bytes) = from.poll_transmit() else {
                return Ok(false);
            };
            for piece in bytes.chunks(chunk) {
                to.handle_data(piece)?;
            }
            Ok(true)
        }
        loop {
            let ab = one_way(a, b, chunk)?;
            let ba = one_way(b, a, chunk)?;
            if !ab && !ba {
                return Ok(());
            }
        }
    }

    #[test]
    fn section7_lines_are_sent() {
        let mut s = Handshake::direct(Role::Sender, &tk());
        assert_eq!(s.poll_transmit().as_deref(), Some(SENDER_LINE));
        assert_eq!(s.bytes_wanted(), RECEIVER_LINE.len());
        let mut r = Handshake::direct(Role::Receiver, &tk());
        assert_eq!(r.poll_transmit().as_deref(), Some(RECEIVER_LINE));
        assert_eq!(r.bytes_wanted(), SENDER_LINE.len());
        assert_eq!(s.poll_transmit(), None);
    }

    #[test]
    fn two_machines_handshake_directly() {
        for chunk in [1, 3, 1000] {
            let mut s = Handshake::direct(Role::Sender, &tk());
            let mut r = Handshake::direct(Role::Receiver, &tk());
            pump(&mut s, &mut r, chunk).expect("handshake");
            assert!(s.is_ready());
            assert_eq!(r.stage(), Stage::Go);
            assert_eq!(r.bytes_wanted(), 3);
            s.choose().expect("decision pending");
            assert!(s.is_established());
            pump(&mut s, &mut r, chunk).expect("go");
            assert!(r.is_established());
            // The first record may arrive along with `go`.
            r.handle_data(b"\x00\x00\x00\x28").expect("leftover kept");
            assert_eq!(r.into_leftover(), b"\x00\x00\x00\x28");
            assert!(s.into_leftover().is_empty());
        }
    }

    #[test]
    fn two_machines_handshake_through_a_relay() {
        let mut s = Handshake::relayed(Role::Sender, &tk(), "0123456789abcdef");
        let line = s.poll_transmit().expect("relay line");
        assert_eq!(
            line,
            b"please relay ecd85f320731169f5768239a248b8b0f3e7834f1c05937a5939b13d6bfa933e1 \
              for side 0123456789abcdef\n"
        );
        assert_eq!(s.stage(), Stage::Relay);
        assert_eq!(s.bytes_wanted(), 3);
        let mut r = Handshake::relayed(Role::Receiver, &tk(), "fedcba9876543210");
        let _ = r.poll_transmit();
        // The relay says ok to each, possibly glued to the peer's handshake line.
        s.handle_data(b"o").expect("partial ok");
        assert_eq!(s.poll_transmit(), None, "nothing before the whole ok");
        s.handle_data(b"k\n").expect("ok");
        assert_eq!(s.stage(), Stage::Handshake);
        r.handle_data(b"ok\n").expect("ok");
        pump(&mut s, &mut r, 7).expect("handshake");
        s.choose().expect("pending");
        pump(&mut s, &mut r, 7).expect("go");
        assert!(r.is_established());
    }

    #[test]
    fn ok_and_handshake_in_one_read() {
        let mut r = Handshake::relayed(Role::Receiver, &tk(), "0123456789abcdef");
        let _ = r.poll_transmit();
        let mut input = b"ok\n".to_vec();
        input.extend_from_slice(SENDER_LINE);
        input.extend_from_slice(b"go\nDATA");
        r.handle_data(&input).expect("all of it");
        assert_eq!(r.poll_transmit().as_deref(), Some(RECEIVER_LINE));
        assert!(r.is_established());
        assert_eq!(r.into_leftover(), b"DATA");
    }

    #[test]
    fn sender_rejects_with_nevermind_and_receiver_sees_it() {
        let mut s = Handshake::direct(Role::Sender, &tk());
        let mut r = Handshake::direct(Role::Receiver, &tk());
        pump(&mut s, &mut r, 64).expect("handshake");
        s.reject().expect("pending");
        assert_eq!(s.stage(), Stage::Rejected);
        assert_eq!(s.poll_transmit().as_deref(), Some(NEVERMIND));
        assert_eq!(r.handle_data(NEVERMIND), Err(HandshakeError::NotChosen));
        assert_eq!(r.stage(), Stage::Failed);
        assert_eq!(r.handle_data(b"x"), Err(HandshakeError::AlreadyFailed));
    }

    #[test]
    fn first_bad_byte_hangs_up() {
        let mut r = Handshake::direct(Role::Receiver, &tk());
        let _ = r.poll_transmit();
        let mut bad = SENDER_LINE.to_vec();
        bad[20] ^= 1;
        // Everything before the bad byte is fine, byte by byte.
        for b in &bad[..20] {
            r.handle_data(&[*b]).expect("good prefix");
        }
        let err = r.handle_data(&bad[20..]).expect_err("mismatch");
        assert_eq!(
            err,
            HandshakeError::Mismatch {
                stage: Stage::Handshake,
                offset: 20,
                expected: SENDER_LINE[20],
                got: bad[20]
            }
        );
        assert_eq!(r.stage(), Stage::Failed);
        assert_eq!(r.bytes_wanted(), 0);
    }

    #[test]
    fn wrong_role_or_key_is_a_mismatch() {
        // Two senders: each expects "transit receiver", gets "transit sender".
        let mut a = Handshake::direct(Role::Sender, &tk());
        let mut b = Handshake::direct(Role::Sender, &tk());
        assert!(matches!(
            pump(&mut a, &mut b, 1000),
            Err(HandshakeError::Mismatch { offset: 8, .. })
        ));
        let mut s = Handshake::direct(Role::Sender, &[1; 32]);
        let mut r = Handshake::direct(Role::Receiver, &tk());
        assert!(matches!(
            pump(&mut s, &mut r, 1000),
            Err(HandshakeError::Mismatch {
                stage: Stage::Handshake,
                ..
            })
        ));
    }

    #[test]
    fn relay_refusals() {
        for answer in [&b"impatient\n"[..], b"bad handshake\n"] {
            let mut s = Handshake::relayed(Role::Sender, &tk(), "0123456789abcdef");
            let _ = s.poll_transmit();
            assert_eq!(
                s.handle_data(answer),
                Err(HandshakeError::RelayRefused { got: answer[0] })
            );
        }
        let mut s = Handshake::relayed(Role::Sender, &tk(), "0123456789abcdef");
        let _ = s.poll_transmit();
        assert!(matches!(
            s.handle_data(b"oops"),
            Err(HandshakeError::Mismatch {
                stage: Stage::Relay,
                offset: 1,
                ..
            })
        ));
    }

    #[test]
    fn receiver_must_not_speak_before_go() {
        let mut s = Handshake::direct(Role::Sender, &tk());
        let _ = s.poll_transmit();
        let mut input = RECEIVER_LINE.to_vec();
        input.push(0);
        assert_eq!(
            s.handle_data(&input),
            Err(HandshakeError::UnexpectedData {
                stage: Stage::Decision
            })
        );
    }

    #[test]
    fn eof_and_misuse() {
        let mut s = Handshake::direct(Role::Sender, &tk());
        assert_eq!(
            s.choose(),
            Err(HandshakeError::NoDecisionPending {
                stage: Stage::Handshake
            })
        );
        s.handle_data(&RECEIVER_LINE[..5]).expect("prefix");
        assert_eq!(
            s.handle_eof(),
            Err(HandshakeError::Closed {
                stage: Stage::Handshake
            })
        );
        let mut r = Handshake::direct(Role::Receiver, &tk());
        r.handle_data(SENDER_LINE).expect("line");
        r.handle_data(b"go").expect("partial go");
        assert_eq!(
            r.handle_eof(),
            Err(HandshakeError::Closed { stage: Stage::Go })
        );
    }

    /// A tiny deterministic generator for the garbage tests (no RNG source in this crate).
    fn lcg(state: &mut u64) -> u64 {
        *state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        *state >> 33
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 7;
        let mut good = b"ok\n".to_vec();
        good.extend_from_slice(SENDER_LINE);
        good.extend_from_slice(GO);
        for round in 0..2000 {
            // Half pure garbage, half a valid stream with one byte flipped or cut short.
            let input: Vec<u8> = if round % 2 == 0 {
                let len = (lcg(&mut seed) % 200) as usize;
                (0..len).map(|_| lcg(&mut seed) as u8).collect()
            } else {
                let mut v = good.clone();
                let at = (lcg(&mut seed) as usize) % v.len();
                v[at] ^= 1 + (lcg(&mut seed) % 255) as u8;
                v.truncate(at + 1 + (lcg(&mut seed) as usize) % (v.len() - at));
                v
            };
            let mut hs = if round % 3 == 0 {
                Handshake::direct(Role::Receiver, &tk())
            } else {
                Handshake::relayed(Role::Receiver, &tk(), "0123456789abcdef")
            };
            let _ = hs.poll_transmit();
            let mut rest = &input[..];
            while !rest.is_empty() {
                let n = 1 + (lcg(&mut seed) as usize) % rest.len();
                if hs.handle_data(&rest[..n]).is_err() {
                    assert_eq!(hs.stage(), Stage::Failed);
                    assert_eq!(hs.poll_transmit(), None);
                    break;
                }
                rest = &rest[n..];
            }
            let _ = hs.handle_eof();
        }
    }

    #[test]
    fn leftover_is_bounded() {
        let mut r = Handshake::direct(Role::Receiver, &tk());
        r.handle_data(SENDER_LINE).expect("line");
        r.handle_data(GO).expect("go");
        r.handle_data(&vec![0; MAX_LEFTOVER])
            .expect("up to the cap");
        assert_eq!(r.handle_data(&[0]), Err(HandshakeError::TooMuchData));
    }
}
