//! L2: one candidate Dilation connection, as a byte-in/byte-out machine, and the transport
//! codec it hands over once its handshake completed.
//!
//! States (in order): `WantRelayOk` (only through a transit relay: our `please relay … for side
//! …\n` line is written, we wait for `ok\n`) → `WantPreamble` (our preamble is written, we wait
//! for the peer's) → `WantHandshake` (Noise `NNpsk0`: the Leader, as initiator, writes message 1
//! when the peer's preamble arrives and waits for message 2; the Follower waits for message 1 and
//! answers message 2) → `Secured` (the handshake is done: [`L2Event::HandshakeDone`]; bytes that
//! follow stay buffered) → `Handed` ([`Connection::take_transport`] gave the [`Transport`] away)
//! or `Failed` (terminal; every later call is refused).
//!
//! Inputs: [`Connection::handle_data`] (bytes read from the socket). Outputs:
//! [`Connection::poll_transmit`] (bytes to write) and [`Connection::poll_event`]. A protocol
//! violation returns an [`L2Error`] from `handle_data` and moves to `Failed`: the host closes the
//! socket.
//!
//! After the handshake the records are sealed and opened by the [`Transport`]: a [`Sealer`] and an
//! [`Opener`], each a pure codec that owns one direction's key and nonce, so that a host can run
//! them where its socket IO is (the daemon seals and opens on a connection's own thread, not on the
//! actor that hosts the protocol machines). Nothing here is sized by the peer beyond
//! [`MAX_FRAME_LEN`]: a larger length prefix is refused before any byte of the frame is buffered.
//!
//! Wire facts (PROTOCOL.md §4 "L2"): preambles `Magic-Wormhole Dilation Handshake v1 Leader\n\n`
//! and `… Follower\n\n`; frames are `BE32 length ‖ bytes`; Noise
//! `Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s` with the dilation key as psk 0 and an EMPTY prologue;
//! both handshake messages are 48 bytes; transport messages are ChaCha20-Poly1305 under the
//! Noise split keys (the initiator, our Leader, sends with the first), nonce `0⁴ ‖ LE64 counter`,
//! empty associated data; records longer than 65519 bytes are encrypted in 65519-byte chunks
//! concatenated into one frame, which the reader decrypts in 65535-byte slices. The Noise
//! ephemeral key comes from an RNG seeded by the host ([`Connection::new`]'s `rng_seed`), never
//! from the OS.
//!
//! Mirrors `_Framer`, `_Record` and `DilatedConnectionProtocol` of
//! `src/wormhole/_dilation/connection.py` and `_noise.py` (magic-wormhole 0.24).

use std::collections::VecDeque;

use bytes::{Buf, BytesMut};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::{Cipher, Dh, Hash, Random};
use snow::HandshakeState;

use super::l3::{Record, RecordError};
use super::Role;

/// The Noise protocol name.
pub const NOISE_PARAMS: &str = "Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s";
/// The Leader's preamble.
pub const LEADER_PREAMBLE: &[u8] = b"Magic-Wormhole Dilation Handshake v1 Leader\n\n";
/// The Follower's preamble.
pub const FOLLOWER_PREAMBLE: &[u8] = b"Magic-Wormhole Dilation Handshake v1 Follower\n\n";
/// The relay's answer once both sides presented the same token.
pub const RELAY_OK: &[u8] = b"ok\n";
/// Largest plaintext in one Noise transport message.
pub const NOISE_MAX_PAYLOAD: usize = 65535 - 16;
/// Largest Noise transport message.
pub const NOISE_MAX_CIPHERTEXT: usize = 65535;
/// Largest frame (after the length prefix) we accept or send. The reference writes a whole
/// application buffer as one record, so this is generous; anything larger closes the connection.
pub const MAX_FRAME_LEN: usize = 4 << 20;
/// Length of each Noise handshake message of `NNpsk0` with empty payloads.
pub const HANDSHAKE_LEN: usize = 48;

/// Something the connection tells its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum L2Event {
    /// The Noise handshake completed: take the [`Transport`] ([`Connection::take_transport`]);
    /// records flow through it from now on (the Follower's first one is its KCM).
    HandshakeDone,
}

/// Why a connection failed. Each is final: the host closes the socket.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum L2Error {
    /// The transit relay answered something other than `ok\n` (e.g. `impatient\n`).
    #[error("the transit relay refused the connection: {0:?}")]
    RelayRefused(String),
    /// The peer's preamble is not the one expected from the other role.
    #[error("bad dilation preamble from the peer")]
    BadPreamble,
    /// A frame length prefix beyond [`MAX_FRAME_LEN`].
    #[error("dilation frame of {0} bytes exceeds the limit")]
    FrameTooLarge(u32),
    /// The Noise handshake failed (wrong dilation key, or garbage).
    #[error("dilation Noise handshake failed")]
    HandshakeFailed,
    /// A transport frame failed to decrypt.
    #[error("dilation frame failed to decrypt")]
    DecryptFailed,
    /// A decrypted record did not parse.
    #[error("bad dilation record: {0}")]
    BadRecord(#[from] RecordError),
    /// A record too large to frame.
    #[error("dilation record of {0} bytes is too large to send")]
    RecordTooLarge(usize),
    /// The transport was handed over: its bytes go to the [`Opener`], not here.
    #[error("dilation connection's transport was handed over")]
    HandedOver,
    /// The connection already failed.
    #[error("dilation connection already failed")]
    Failed,
}

enum State {
    WantRelayOk(Box<HandshakeState>),
    WantPreamble(Box<HandshakeState>),
    WantHandshake(Box<HandshakeState>),
    Secured(Box<Transport>),
    Handed,
    Failed,
}

/// One candidate L2 connection (see the module docs).
pub struct Connection {
    role: Role,
    state: State,
    inbuf: Vec<u8>,
    transmit: Vec<u8>,
    events: VecDeque<L2Event>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::WantRelayOk(_) => "WantRelayOk",
            State::WantPreamble(_) => "WantPreamble",
            State::WantHandshake(_) => "WantHandshake",
            State::Secured(_) => "Secured",
            State::Handed => "Handed",
            State::Failed => "Failed",
        };
        f.debug_struct("Connection")
            .field("role", &self.role)
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// A connection that has just been established (dialled or accepted). `relay_side` is our
    /// 16-hex-char dilation side when this connection goes through a transit relay; then the
    /// relay line is written first. `rng_seed` seeds the Noise ephemeral key.
    pub fn new(
        role: Role,
        dilation_key: &[u8; 32],
        relay_side: Option<&str>,
        rng_seed: [u8; 32],
    ) -> Result<Self, L2Error> {
        let params = NOISE_PARAMS
            .parse()
            .map_err(|_: snow::Error| L2Error::HandshakeFailed)?;
        let builder = snow::Builder::with_resolver(params, Box::new(SeededResolver(rng_seed)))
            .psk(0, dilation_key)
            .map_err(|_| L2Error::HandshakeFailed)?;
        let hs = match role {
            Role::Leader => builder.build_initiator(),
            Role::Follower => builder.build_responder(),
        }
        .map_err(|_| L2Error::HandshakeFailed)?;
        let mut conn = Self {
            role,
            state: State::Failed,
            inbuf: Vec::new(),
            transmit: Vec::new(),
            events: VecDeque::new(),
        };
        if let Some(side) = relay_side {
            conn.transmit.extend_from_slice(
                crate::crypto::transit_relay_handshake(dilation_key, side).as_bytes(),
            );
            conn.state = State::WantRelayOk(Box::new(hs));
        } else {
            conn.transmit.extend_from_slice(conn.our_preamble());
            conn.state = State::WantPreamble(Box::new(hs));
        }
        Ok(conn)
    }

    /// Our role.
    #[must_use]
    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether the handshake completed (the transport may be taken, or already was).
    #[must_use]
    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Secured(_) | State::Handed)
    }

    /// Whether [`Connection::take_transport`] handed the transport over.
    #[must_use]
    pub fn is_handed_over(&self) -> bool {
        matches!(self.state, State::Handed)
    }

    /// Bytes to write to the socket, if any (all that is pending, in one buffer).
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if self.transmit.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut self.transmit))
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<L2Event> {
        self.events.pop_front()
    }

    /// Once the handshake is done, hands the transport over: the bytes read after the handshake
    /// are already in its opener's input. Write [`Connection::poll_transmit`] first (the
    /// handshake's last message).
    pub fn take_transport(&mut self) -> Option<Transport> {
        if !matches!(self.state, State::Secured(_)) {
            return None;
        }
        let State::Secured(mut transport) = std::mem::replace(&mut self.state, State::Handed)
        else {
            return None;
        };
        transport
            .opener
            .input
            .extend_from_slice(&std::mem::take(&mut self.inbuf));
        Some(*transport)
    }

    /// Feeds bytes read from the socket. An error is final: the host closes the socket.
    pub fn handle_data(&mut self, data: &[u8]) -> Result<(), L2Error> {
        match self.state {
            State::Failed => return Err(L2Error::Failed),
            State::Handed => return Err(L2Error::HandedOver),
            _ => {}
        }
        self.inbuf.extend_from_slice(data);
        let result = self.parse();
        if result.is_err() {
            self.state = State::Failed;
            self.inbuf = Vec::new();
        }
        result
    }

    fn our_preamble(&self) -> &'static [u8] {
        match self.role {
            Role::Leader => LEADER_PREAMBLE,
            Role::Follower => FOLLOWER_PREAMBLE,
        }
    }

    fn their_preamble(&self) -> &'static [u8] {
        match self.role {
            Role::Leader => FOLLOWER_PREAMBLE,
            Role::Follower => LEADER_PREAMBLE,
        }
    }

    fn parse(&mut self) -> Result<(), L2Error> {
        let inbuf = std::mem::take(&mut self.inbuf);
        let mut pos = 0;
        let result = loop {
            let rest = &inbuf[pos..];
            let step = match &self.state {
                State::WantRelayOk(_) => match expect(rest, RELAY_OK) {
                    Expect::Matched(n) => {
                        pos += n;
                        self.transmit.extend_from_slice(self.our_preamble());
                        self.advance_relay_ok();
                        Ok(true)
                    }
                    Expect::Wait => Ok(false),
                    Expect::Mismatch => Err(L2Error::RelayRefused(
                        String::from_utf8_lossy(&rest[..rest.len().min(64)]).into_owned(),
                    )),
                },
                State::WantPreamble(_) => match expect(rest, self.their_preamble()) {
                    Expect::Matched(n) => {
                        pos += n;
                        self.got_preamble()
                    }
                    Expect::Wait => Ok(false),
                    Expect::Mismatch => Err(L2Error::BadPreamble),
                },
                State::WantHandshake(_) => match next_frame(rest, NOISE_MAX_CIPHERTEXT) {
                    Ok(Some((frame, n))) => {
                        pos += n;
                        self.got_handshake(frame)
                    }
                    Ok(None) => Ok(false),
                    Err(e) => Err(e),
                },
                // Transport bytes wait for the opener.
                State::Secured(_) => Ok(false),
                State::Handed => Err(L2Error::HandedOver),
                State::Failed => Err(L2Error::Failed),
            };
            match step {
                Ok(true) => {}
                Ok(false) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        let mut inbuf = inbuf;
        inbuf.drain(..pos);
        self.inbuf = inbuf;
        result
    }

    fn advance_relay_ok(&mut self) {
        if let State::WantRelayOk(hs) = std::mem::replace(&mut self.state, State::Failed) {
            self.state = State::WantPreamble(hs);
        }
    }

    fn got_preamble(&mut self) -> Result<bool, L2Error> {
        let State::WantPreamble(mut hs) = std::mem::replace(&mut self.state, State::Failed) else {
            return Err(L2Error::Failed);
        };
        if self.role == Role::Leader {
            let mut buf = [0u8; 128];
            let n = hs
                .write_message(&[], &mut buf)
                .map_err(|_| L2Error::HandshakeFailed)?;
            push_frame(&mut self.transmit, &buf[..n]);
        }
        self.state = State::WantHandshake(hs);
        Ok(true)
    }

    fn got_handshake(&mut self, frame: &[u8]) -> Result<bool, L2Error> {
        let State::WantHandshake(mut hs) = std::mem::replace(&mut self.state, State::Failed) else {
            return Err(L2Error::Failed);
        };
        let mut payload = vec![0u8; frame.len()];
        hs.read_message(frame, &mut payload)
            .map_err(|_| L2Error::HandshakeFailed)?;
        if self.role == Role::Follower {
            let mut buf = [0u8; 128];
            let n = hs
                .write_message(&[], &mut buf)
                .map_err(|_| L2Error::HandshakeFailed)?;
            push_frame(&mut self.transmit, &buf[..n]);
        }
        if !hs.is_handshake_finished() {
            return Err(L2Error::HandshakeFailed);
        }
        // Noise Split(): the initiator (Leader) sends with the first key.
        let (first, second) = hs.dangerously_get_raw_split();
        let (send, receive) = match self.role {
            Role::Leader => (first, second),
            Role::Follower => (second, first),
        };
        self.state = State::Secured(Box::new(Transport {
            sealer: Sealer::new(&send)?,
            opener: Opener::new(&receive)?,
        }));
        self.events.push_back(L2Event::HandshakeDone);
        Ok(true)
    }
}

/// Both directions of a connection's transport once its handshake completed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transport {
    /// Seals our records.
    pub sealer: Sealer,
    /// Opens the peer's (its input already holds what arrived after the handshake).
    pub opener: Opener,
}

/// The noise nonce for a ChaCha20-Poly1305 transport message: 32 zero bits ‖ LE64 counter.
fn noise_nonce(counter: u64) -> Nonce {
    let mut bytes = [0u8; 12];
    bytes[4..].copy_from_slice(&counter.to_le_bytes());
    Nonce::assume_unique_for_key(bytes)
}

fn transport_key(key: &[u8; 32]) -> Result<LessSafeKey, L2Error> {
    UnboundKey::new(&CHACHA20_POLY1305, key)
        .map(LessSafeKey::new)
        .map_err(|_| L2Error::HandshakeFailed)
}

/// Seals our records into frames (one direction of a [`Transport`]).
#[derive(Clone)]
pub struct Sealer {
    key: LessSafeKey,
    /// The key's bytes, only to compare sealers (tests compare machine outputs).
    key_bytes: [u8; 32],
    nonce: u64,
}

impl PartialEq for Sealer {
    fn eq(&self, other: &Self) -> bool {
        self.key_bytes == other.key_bytes && self.nonce == other.nonce
    }
}

impl Eq for Sealer {}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("nonce", &self.nonce)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    fn new(key: &[u8; 32]) -> Result<Self, L2Error> {
        Ok(Self {
            key: transport_key(key)?,
            key_bytes: *key,
            nonce: 0,
        })
    }

    fn seal_in_place(&mut self, out: &mut Vec<u8>, from: usize) -> Result<(), L2Error> {
        let nonce = noise_nonce(self.nonce);
        self.nonce += 1;
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce, Aad::empty(), &mut out[from..])
            .map_err(|_| L2Error::Failed)?;
        out.extend_from_slice(tag.as_ref());
        Ok(())
    }

    /// Appends `record` to `out` as one frame: length prefix, then the encrypted record (in
    /// 65519-byte chunks if it is longer). On error `out` is left as it was.
    pub fn seal(&mut self, record: &Record, out: &mut Vec<u8>) -> Result<(), L2Error> {
        let plain_len = record.encoded_len();
        let chunks = plain_len.div_ceil(NOISE_MAX_PAYLOAD).max(1);
        let total = plain_len + 16 * chunks;
        let prefix = u32::try_from(total)
            .ok()
            .filter(|_| total <= MAX_FRAME_LEN)
            .ok_or(L2Error::RecordTooLarge(plain_len))?;
        let start = out.len();
        out.reserve(4 + total);
        out.extend_from_slice(&prefix.to_be_bytes());
        let body = out.len();
        record.encode_into(out);
        let sealed = if chunks == 1 {
            self.seal_in_place(out, body)
        } else {
            let plain = out.split_off(body);
            plain.chunks(NOISE_MAX_PAYLOAD).try_for_each(|chunk| {
                let at = out.len();
                out.extend_from_slice(chunk);
                self.seal_in_place(out, at)
            })
        };
        if sealed.is_err() {
            out.truncate(start);
        }
        sealed
    }
}

/// Opens the peer's frames into records (the other direction of a [`Transport`]).
#[derive(Clone)]
pub struct Opener {
    key: LessSafeKey,
    /// The key's bytes, only to compare openers.
    key_bytes: [u8; 32],
    nonce: u64,
    input: BytesMut,
}

impl PartialEq for Opener {
    fn eq(&self, other: &Self) -> bool {
        self.key_bytes == other.key_bytes && self.nonce == other.nonce && self.input == other.input
    }
}

impl Eq for Opener {}

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opener")
            .field("nonce", &self.nonce)
            .field("buffered", &self.input.len())
            .finish_non_exhaustive()
    }
}

impl Opener {
    fn new(key: &[u8; 32]) -> Result<Self, L2Error> {
        Ok(Self {
            key: transport_key(key)?,
            key_bytes: *key,
            nonce: 0,
            input: BytesMut::new(),
        })
    }

    /// The bytes read from the socket and not yet opened: append what is read next here.
    pub fn input(&mut self) -> &mut BytesMut {
        &mut self.input
    }

    /// The next whole record in the input, decrypted (in place) and decoded; `None` until one
    /// is complete. Errors are final: the host closes the socket.
    pub fn next_record(&mut self) -> Result<Option<Record>, L2Error> {
        let Some((_, taken)) = next_frame(&self.input, MAX_FRAME_LEN)? else {
            return Ok(None);
        };
        let mut frame = self.input.split_to(taken);
        frame.advance(4);
        let mut plain_len = 0;
        let mut read = 0;
        while read < frame.len() {
            let end = (read + NOISE_MAX_CIPHERTEXT).min(frame.len());
            let nonce = noise_nonce(self.nonce);
            self.nonce += 1;
            let n = self
                .key
                .open_in_place(nonce, Aad::empty(), &mut frame[read..end])
                .map_err(|_| L2Error::DecryptFailed)?
                .len();
            frame.copy_within(read..read + n, plain_len);
            plain_len += n;
            read = end;
        }
        frame.truncate(plain_len);
        Ok(Some(Record::decode(frame.freeze())?))
    }
}

enum Expect {
    Matched(usize),
    Wait,
    Mismatch,
}

/// Python's `_get_expected`: a prefix of `expected` waits, anything else fails.
fn expect(buf: &[u8], expected: &[u8]) -> Expect {
    if buf.starts_with(expected) {
        Expect::Matched(expected.len())
    } else if expected.starts_with(buf) {
        Expect::Wait
    } else {
        Expect::Mismatch
    }
}

/// The next complete frame in `buf` and the bytes it occupies (prefix included).
fn next_frame(buf: &[u8], limit: usize) -> Result<Option<(&[u8], usize)>, L2Error> {
    let Some(prefix) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    let ulen = usize::try_from(len).map_err(|_| L2Error::FrameTooLarge(len))?;
    if ulen > limit {
        return Err(L2Error::FrameTooLarge(len));
    }
    Ok(buf.get(4..4 + ulen).map(|frame| (frame, 4 + ulen)))
}

fn push_frame(out: &mut Vec<u8>, frame: &[u8]) {
    // Handshake frames are 48 bytes.
    let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(frame);
}

/// snow's default primitives, with the randomness (the ephemeral key) from a seeded ChaCha20.
struct SeededResolver([u8; 32]);

struct SeededRandom(ChaCha20Rng);

impl Random for SeededRandom {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        self.0.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoResolver for SeededResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(SeededRandom(ChaCha20Rng::from_seed(self.0))))
    }

    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        DefaultResolver.resolve_dh(choice)
    }

    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(choice)
    }

    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        DefaultResolver.resolve_cipher(choice)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    const KEY: [u8; 32] = [7; 32];

    fn pair(key_l: &[u8; 32], key_f: &[u8; 32]) -> (Connection, Connection) {
        let l = Connection::new(Role::Leader, key_l, None, [1; 32]).expect("leader");
        let f = Connection::new(Role::Follower, key_f, None, [2; 32]).expect("follower");
        (l, f)
    }

    /// Moves all pending bytes both ways until quiet; returns the first error of each side.
    fn pump(l: &mut Connection, f: &mut Connection) -> (Result<(), L2Error>, Result<(), L2Error>) {
        let (mut rl, mut rf) = (Ok(()), Ok(()));
        loop {
            let mut moved = false;
            if let Some(b) = l.poll_transmit() {
                moved = true;
                if rf.is_ok() {
                    rf = f.handle_data(&b);
                }
            }
            if let Some(b) = f.poll_transmit() {
                moved = true;
                if rl.is_ok() {
                    rl = l.handle_data(&b);
                }
            }
            if !moved {
                return (rl, rf);
            }
        }
    }

    /// Both transports of a handshaken pair.
    fn transports(key: &[u8; 32]) -> (Transport, Transport) {
        let (mut l, mut f) = pair(key, key);
        assert_eq!(pump(&mut l, &mut f), (Ok(()), Ok(())));
        let tl = l.take_transport().expect("leader transport");
        let tf = f.take_transport().expect("follower transport");
        (tl, tf)
    }

    fn sealed(sealer: &mut Sealer, records: &[Record]) -> Vec<u8> {
        let mut out = Vec::new();
        for record in records {
            sealer.seal(record, &mut out).expect("seal");
        }
        out
    }

    fn opened(opener: &mut Opener, bytes: &[u8]) -> Result<Vec<Record>, L2Error> {
        opener.input().extend_from_slice(bytes);
        std::iter::from_fn(|| opener.next_record().transpose()).collect()
    }

    fn events(c: &mut Connection) -> Vec<L2Event> {
        std::iter::from_fn(|| c.poll_event()).collect()
    }

    /// A Leader and a Follower complete the handshake with the reference's message sizes; then
    /// records flow both ways through the transports, whatever the split of the bytes.
    #[test]
    fn handshake_then_records() {
        let (mut l, mut f) = pair(&KEY, &KEY);
        let lb = l.poll_transmit().expect("leader preamble");
        assert_eq!(lb, LEADER_PREAMBLE);
        let fb = f.poll_transmit().expect("follower preamble");
        assert_eq!(fb, FOLLOWER_PREAMBLE);
        f.handle_data(&lb).expect("f");
        assert_eq!(f.poll_transmit(), None, "the follower waits for message 1");
        l.handle_data(&fb).expect("l");
        let msg1 = l.poll_transmit().expect("message 1");
        assert_eq!(msg1.len(), 4 + HANDSHAKE_LEN);
        assert_eq!(&msg1[..4], &[0, 0, 0, 48]);
        f.handle_data(&msg1).expect("f msg1");
        let msg2 = f.poll_transmit().expect("message 2");
        assert_eq!(msg2.len(), 4 + HANDSHAKE_LEN);
        assert_eq!(events(&mut f), vec![L2Event::HandshakeDone]);
        let mut tf = f.take_transport().expect("follower transport");
        assert!(f.take_transport().is_none(), "handed over once");
        let kcm = sealed(&mut tf.sealer, &[Record::Kcm]);
        assert_eq!(kcm.len(), 4 + 17, "the KCM is a 17-byte frame");
        // Deliver byte by byte: the framer must cope with any split.
        let both = [&msg2[..], &kcm].concat();
        for b in &both[..msg2.len()] {
            l.handle_data(std::slice::from_ref(b)).expect("l byte");
        }
        assert_eq!(events(&mut l), vec![L2Event::HandshakeDone]);
        let mut tl = l.take_transport().expect("leader transport");
        let mut got = Vec::new();
        for b in &both[msg2.len()..] {
            got.extend(opened(&mut tl.opener, std::slice::from_ref(b)).expect("open"));
        }
        assert_eq!(got, vec![Record::Kcm]);
        let to_f = sealed(&mut tl.sealer, &[Record::Kcm, Record::Ping([1, 2, 3, 4])]);
        assert_eq!(
            opened(&mut tf.opener, &to_f),
            Ok(vec![Record::Kcm, Record::Ping([1, 2, 3, 4])])
        );
        let to_l = sealed(&mut tf.sealer, &[Record::Pong([1, 2, 3, 4])]);
        assert_eq!(
            opened(&mut tl.opener, &to_l),
            Ok(vec![Record::Pong([1, 2, 3, 4])])
        );
        assert_eq!(l.handle_data(b"x"), Err(L2Error::HandedOver));
    }

    /// Bytes that arrive with the handshake's last message wait in the connection and are in the
    /// opener's input when the transport is handed over.
    #[test]
    fn bytes_after_the_handshake_go_with_the_transport() {
        let (mut l, mut f) = pair(&KEY, &KEY);
        f.handle_data(&l.poll_transmit().expect("lp")).expect("f");
        l.handle_data(&f.poll_transmit().expect("fp")).expect("l");
        f.handle_data(&l.poll_transmit().expect("m1"))
            .expect("f m1");
        let msg2 = f.poll_transmit().expect("m2");
        let mut tf = f.take_transport().expect("tf");
        let kcm = sealed(&mut tf.sealer, &[Record::Kcm, Record::Ack { seqnum: 3 }]);
        l.handle_data(&[&msg2[..], &kcm[..7]].concat())
            .expect("m2 + part");
        l.handle_data(&kcm[7..]).expect("rest, buffered");
        let mut tl = l.take_transport().expect("tl");
        assert_eq!(
            opened(&mut tl.opener, &[]),
            Ok(vec![Record::Kcm, Record::Ack { seqnum: 3 }])
        );
    }

    /// A record larger than one Noise message is split into 65519-byte chunks inside ONE frame
    /// and reassembled by the reader.
    #[test]
    fn large_records_are_chunked_in_one_frame() {
        let (mut tl, mut tf) = transports(&KEY);
        let data: Bytes = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let record = Record::Data {
            scid: 1,
            seqnum: 0,
            data,
        };
        let bytes = sealed(&mut tl.sealer, std::slice::from_ref(&record));
        let plain_len = record.encoded_len();
        let chunks = plain_len.div_ceil(NOISE_MAX_PAYLOAD);
        assert_eq!(chunks, 4);
        let frame_len = plain_len + 16 * chunks;
        assert_eq!(bytes.len(), 4 + frame_len);
        assert_eq!(&bytes[..4], &(frame_len as u32).to_be_bytes());
        assert_eq!(opened(&mut tf.opener, &bytes), Ok(vec![record]));
    }

    /// A record that cannot be framed is refused and leaves the output untouched.
    #[test]
    fn oversized_record_is_refused_cleanly() {
        let (mut tl, _) = transports(&KEY);
        let record = Record::Data {
            scid: 1,
            seqnum: 0,
            data: Bytes::from(vec![0; MAX_FRAME_LEN]),
        };
        let mut out = b"kept".to_vec();
        assert!(matches!(
            tl.sealer.seal(&record, &mut out),
            Err(L2Error::RecordTooLarge(_))
        ));
        assert_eq!(out, b"kept");
    }

    /// A wrong PSK fails the handshake cleanly on the side that reads the first bad message.
    #[test]
    fn wrong_psk_fails_cleanly() {
        let (mut l, mut f) = pair(&KEY, &[8; 32]);
        let (rl, rf) = pump(&mut l, &mut f);
        assert_eq!(rf, Err(L2Error::HandshakeFailed));
        assert_eq!(rl, Ok(()));
        assert!(!f.is_open() && !l.is_open());
        assert_eq!(f.handle_data(b"more"), Err(L2Error::Failed));
        assert!(f.take_transport().is_none());
    }

    /// Two Leaders (or any other preamble) fail at the preamble.
    #[test]
    fn preamble_mismatch_fails() {
        let mut l = Connection::new(Role::Leader, &KEY, None, [1; 32]).expect("l");
        assert_eq!(
            l.handle_data(b"Magic-Wormhole Dilation Handshake v1 Leader\n\n"),
            Err(L2Error::BadPreamble)
        );
        let mut l = Connection::new(Role::Leader, &KEY, None, [1; 32]).expect("l");
        assert_eq!(l.handle_data(b"Magic-Wormhole Dilation"), Ok(()));
        assert_eq!(l.handle_data(b"X"), Err(L2Error::BadPreamble));
    }

    /// Garbage after a good preamble (a bogus handshake frame, or a huge length prefix) fails
    /// cleanly without allocating the announced length.
    #[test]
    fn garbage_after_preamble_fails() {
        let mut f = Connection::new(Role::Follower, &KEY, None, [2; 32]).expect("f");
        let mut bytes = LEADER_PREAMBLE.to_vec();
        bytes.extend_from_slice(&[0, 0, 0, 48]);
        bytes.extend_from_slice(&[0x55; 48]);
        assert_eq!(f.handle_data(&bytes), Err(L2Error::HandshakeFailed));

        let mut f = Connection::new(Role::Follower, &KEY, None, [2; 32]).expect("f");
        let mut bytes = LEADER_PREAMBLE.to_vec();
        bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
        assert_eq!(f.handle_data(&bytes), Err(L2Error::FrameTooLarge(u32::MAX)));

        // During the handshake, a frame longer than one Noise message is refused up front.
        let mut f = Connection::new(Role::Follower, &KEY, None, [2; 32]).expect("f");
        let mut bytes = LEADER_PREAMBLE.to_vec();
        bytes.extend_from_slice(&65536u32.to_be_bytes());
        assert_eq!(f.handle_data(&bytes), Err(L2Error::FrameTooLarge(65536)));
    }

    /// On an open connection: a length prefix larger than any record, tampered ciphertext, and a
    /// well-sealed record of an unknown type are each an error of the opener.
    #[test]
    fn bad_frames_on_an_open_connection_fail() {
        let (mut tl, _) = transports(&KEY);
        let too_big = (MAX_FRAME_LEN as u32 + 1).to_be_bytes();
        assert_eq!(
            opened(&mut tl.opener, &too_big),
            Err(L2Error::FrameTooLarge(MAX_FRAME_LEN as u32 + 1))
        );
        let (mut tl, mut tf) = transports(&KEY);
        let mut b = sealed(&mut tf.sealer, &[Record::Ack { seqnum: 1 }]);
        let last = b.len() - 1;
        b[last] ^= 1;
        assert_eq!(opened(&mut tl.opener, &b), Err(L2Error::DecryptFailed));

        let (mut tl, mut tf) = transports(&KEY);
        let mut frame = vec![0, 0, 0, 2 + 16, 0x09, 0x00];
        tf.sealer.seal_in_place(&mut frame, 4).expect("seal");
        assert_eq!(
            opened(&mut tl.opener, &frame),
            Err(L2Error::BadRecord(RecordError::UnknownType(0x09)))
        );
    }

    /// Whatever bytes arrive, in whatever pieces, the opener answers with a record, "not yet" or
    /// an error, never a panic, and never buffers a frame beyond [`MAX_FRAME_LEN`]: seeded
    /// random streams, and valid frames with one byte flipped.
    #[test]
    fn random_bytes_never_panic_the_opener() {
        let mut rng = ChaCha20Rng::from_seed([9; 32]);
        for round in 0..64 {
            let (mut tl, mut tf) = transports(&KEY);
            let mut stream = sealed(
                &mut tf.sealer,
                &[
                    Record::Kcm,
                    Record::Data {
                        scid: 1,
                        seqnum: 0,
                        data: Bytes::from(vec![7; 70_000]),
                    },
                    Record::Ack { seqnum: 0 },
                ],
            );
            if round % 2 == 0 {
                let at = (rng.next_u32() as usize) % stream.len();
                stream[at] ^= 1 << (rng.next_u32() % 8);
            } else {
                let mut junk = vec![0u8; (rng.next_u32() % 300) as usize];
                rng.fill_bytes(&mut junk);
                let at = (rng.next_u32() as usize) % stream.len();
                stream.splice(at..at, junk);
            }
            let mut rest = &stream[..];
            while !rest.is_empty() {
                let n = 1 + (rng.next_u32() as usize) % rest.len().min(9000);
                let (piece, tail) = rest.split_at(n);
                rest = tail;
                match opened(&mut tl.opener, piece) {
                    Ok(_) => assert!(tl.opener.input().len() <= 4 + MAX_FRAME_LEN),
                    Err(_) => break,
                }
            }
        }
    }

    /// Through a relay: the relay line comes first, the preamble only after `ok\n`; a relay error
    /// line fails cleanly.
    #[test]
    fn relay_line_then_ok() {
        let side = "0123456789abcdef";
        let mut l = Connection::new(Role::Leader, &KEY, Some(side), [1; 32]).expect("l");
        let line = l.poll_transmit().expect("relay line");
        let expected = format!(
            "please relay {} for side {side}\n",
            hex::encode(crate::crypto::transit_relay_token(&KEY))
        );
        assert_eq!(line, expected.as_bytes());
        l.handle_data(b"o").expect("partial ok");
        assert_eq!(l.poll_transmit(), None);
        l.handle_data(b"k\n").expect("ok");
        assert_eq!(l.poll_transmit().expect("preamble"), LEADER_PREAMBLE);

        let mut l = Connection::new(Role::Leader, &KEY, Some(side), [1; 32]).expect("l");
        assert!(matches!(
            l.handle_data(b"impatient\n"),
            Err(L2Error::RelayRefused(_))
        ));
    }

    /// The same seeds give the same bytes: the ephemeral key comes from the injected RNG.
    #[test]
    fn deterministic_with_seed() {
        let run = || {
            let (mut l, mut f) = pair(&KEY, &KEY);
            let fb = f.poll_transmit().expect("fp");
            l.poll_transmit();
            l.handle_data(&fb).expect("l");
            l.poll_transmit().expect("msg1")
        };
        assert_eq!(run(), run());
    }

    /// Known answers from the reference's own Noise library (`noiseprotocol` 0.3.1, as used by
    /// magic-wormhole 0.24's `connection.py`), with K = 00..1f (dilation key of PROTOCOL.md §7)
    /// and the ephemeral keys our seeded RNG draws (seeds [1; 32] and [2; 32]): our bytes equal
    /// the reference's, both ways, including the Follower's KCM and a chunked 70000-byte DATA.
    ///
    /// Generated with `NoiseConnection.from_name(b"Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s")`,
    /// `set_psks(dkey)`, `set_keypair_from_private_bytes(Keypair.EPHEMERAL, e)` where `e` is the
    /// first 32 bytes of the ChaCha20 keystream keyed by the seed (`023f3720…` for [1; 32],
    /// `f6a12ca8…` for [2; 32]), then `encode_record` and per-65519-byte `encrypt` as in
    /// `connection.py`.
    #[test]
    fn matches_reference_noise_transcript() {
        use sha2::Digest;
        let k: Vec<u8> = (0u8..32).collect();
        let dkey = crate::crypto::dilation_key(&k);
        let frame = |h: &str| {
            let b = hex::decode(h).expect("hex");
            [&(b.len() as u32).to_be_bytes()[..], &b].concat()
        };
        let m1 = frame("d53b9fea1dd4d570dbe38180767c236456ca6633f103f1aa0637e7b613d25274859ea85074e7eb63f08b0bb08b482d33");
        let m2 = frame("c5c4aede10f07dc551ae692813183793bbcc96f56020f8e11dcb8e4824871338d40675b57696c7e1a07cc730ec4efe12");
        let kcm_f = frame("3f871503c3456a84dd1f2637be1c850684");
        let kcm_l = frame("bf65f693ecbdfae6d660cf13d5fb3451a4");
        let ping = frame("742896c028b77d4c1ca838c4ff725735d88eeebc71");

        let mut l = Connection::new(Role::Leader, &dkey, None, [1; 32]).expect("l");
        let mut f = Connection::new(Role::Follower, &dkey, None, [2; 32]).expect("f");
        l.poll_transmit();
        f.poll_transmit();
        l.handle_data(FOLLOWER_PREAMBLE).expect("preamble");
        assert_eq!(l.poll_transmit().expect("m1"), m1);
        f.handle_data(&[LEADER_PREAMBLE, &m1].concat())
            .expect("m1 in");
        assert_eq!(f.poll_transmit().expect("m2"), m2);
        let mut tf = f.take_transport().expect("tf");
        assert_eq!(sealed(&mut tf.sealer, &[Record::Kcm]), kcm_f);
        l.handle_data(&[&m2[..], &kcm_f].concat()).expect("m2 in");
        assert_eq!(events(&mut l), vec![L2Event::HandshakeDone]);
        let mut tl = l.take_transport().expect("tl");
        assert_eq!(opened(&mut tl.opener, &[]), Ok(vec![Record::Kcm]));
        assert_eq!(
            sealed(&mut tl.sealer, &[Record::Kcm, Record::Ping([1, 2, 3, 4])]),
            [&kcm_l[..], &ping].concat()
        );

        let data: Bytes = (0..70_000u32).map(|i| (i % 256) as u8).collect();
        let big = sealed(
            &mut tf.sealer,
            &[Record::Data {
                scid: 1,
                seqnum: 0,
                data,
            }],
        );
        assert_eq!(&big[..4], &70_041u32.to_be_bytes());
        assert_eq!(
            hex::encode(sha2::Sha256::digest(&big[4..])),
            "530fb1a9e2021acf11d2ba81c3bf69d932715fae8ce32cb5f256e0cbfb39966b"
        );
    }
}
