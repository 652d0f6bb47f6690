//! Dilation: a durable, encrypted, multiplexed connection between the two wormhole peers, as pure
//! machines.
//!
//! [`Dilation`] is the composite that a daemon actor hosts, in the shape of
//! [`crate::mailbox::Wormhole`]: `handle(now, Input)`, `poll_output()`, `poll_timeout()`, plus
//! mutators for the application ([`Dilation::listen`], [`Dilation::open`], [`Dilation::write`],
//! [`Dilation::close`]). It owns the L1 manager state, the candidate L2 connections, L4 and the
//! subchannel table; the host performs IO only.
//!
//! Layers (one file each; PROTOCOL.md §4 has the wire facts):
//! - [`l2`]: one candidate connection (relay line, preambles, length-prefixed frames, Noise
//!   `NNpsk0`, KCM). Mirrors `connection.py` and `_noise.py`.
//! - [`l3`]: the record codec (KCM, PING, PONG, OPEN, DATA, CLOSE, ACK). Mirrors `encode.py`.
//! - `outbound` / `inbound`: L4 seqnums, ACKs, replay after reconnection, flow control.
//! - `subchannel`: subchannel ids, listeners, half-close.
//! - `manager`: the `dilate-N` messages, roles, generations, keepalive, reconnection; the
//!   [`Dilation`] composite itself. Mirrors `manager.py` (and the selection part of
//!   `connector.py`).
//!
//! # Contract with the host
//! - Enable dilation in the wormhole's version message with [`version_entries`] (into
//!   `WormholeConfig::extra_versions`). Create a `Dilation` when the application asks to dilate;
//!   feed it [`Input::DilationKey`] (`crypto::dilation_key(K)`) and [`Input::PeerVersions`] (the
//!   peer's `version` JSON) as soon as known. It then sends `please` ([`Output::SendMessage`]:
//!   phase `dilate-N` and plaintext, for the mailbox to encrypt and send) and waits for the
//!   peer's; feed every peer `dilate-N` plaintext, in phase order, as [`Input::PeerMessage`].
//! - [`Output::StartConnecting`] starts a generation: listen (unless the host does not), dial our
//!   own transit relay (if any), and report our hints with [`Input::LocalHints`] (sent to the peer
//!   as `connection-hints`). [`Output::DialHints`] carries the peer's hints: dial them (direct
//!   hints at once, relays after 2 s, like Transit). Report every TCP connection, dialled or
//!   accepted, with [`Input::ConnectionMade`] (tagged with its generation; `relay: true` if it
//!   goes through a transit relay), its bytes with [`Input::ConnectionData`], its end with
//!   [`Input::ConnectionLost`]. [`Output::StopConnecting`] ends the generation's listening and
//!   dialling (the connections already reported stay the machine's business).
//! - Write [`Output::Transmit`] bytes to the named connection in order; close it on
//!   [`Output::CloseConnection`] (then no `ConnectionLost` is needed, and later input for that id
//!   is ignored).
//! - When a connection's handshake completes, [`Output::Secured`] hands its [`l2::Transport`]
//!   to the host, after the connection's last `Transmit`. From then on the host seals every
//!   [`Output::SendRecord`] for it with the transport's sealer (in order, after the bytes already
//!   transmitted), and reads the socket into the opener's input (which already holds what
//!   arrived after the handshake), feeding each opened record as [`Input::ConnectionRecord`]; an
//!   opener error ends the connection (log it, close the socket, feed `ConnectionLost`). No
//!   `ConnectionData` may follow `Secured` for that connection: a host that reads and reports
//!   bytes concurrently must switch before it reads again.
//! - Application data arrives as [`Event::SubchannelData`]; a host whose application reads
//!   slowly stops reading the socket (TCP backpressure is Dilation's inbound flow control).
//!   [`Dilation::write`] accepts at most what the outbound budget allows and returns how much it
//!   took; after [`Event::WritesPaused`], wait for [`Event::WritesResumed`] before writing again.
//! - Drain `poll_output` until `None` after every call, and arm one timer from `poll_timeout`
//!   (feeding [`Input::Timeout`]).

use std::time::Duration;

use crate::transit::hints::TransitHints;

mod inbound;
pub mod l2;
pub mod l3;
mod manager;
mod outbound;
pub mod subchannel;
#[cfg(test)]
mod tests;

pub use l3::SubchannelId;
pub use manager::{Dilation, MAX_DATA_PAYLOAD};
pub use subchannel::SubchannelError;

/// The dilation versions we speak, in preference order (`can-dilate`).
pub const CAN_DILATE: &[&str] = &["ged"];

/// Default interval between the Leader's PINGs.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(30);

/// Default outbound budget: bytes of unACKed records before writers pause.
pub const DEFAULT_OUTBOUND_BUDGET: usize = 4 << 20;

/// The keys to add to our `version` message to offer dilation:
/// `can-dilate` and `dilation-abilities`.
#[must_use]
pub fn version_entries() -> serde_json::Map<String, serde_json::Value> {
    let mut map = serde_json::Map::new();
    map.insert("can-dilate".into(), serde_json::json!(CAN_DILATE));
    map.insert(
        "dilation-abilities".into(),
        serde_json::json!([{"type": "direct-tcp-v1"}, {"type": "relay-v1"}]),
    );
    map
}

/// Which end of the dilated connection we are: the greater `please` side leads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Noise initiator; picks the connection; PINGs; sends `reconnect`; odd subchannel ids.
    Leader,
    /// Noise responder; sends the first KCM; PONGs; sends `reconnecting`; even subchannel ids.
    Follower,
}

/// A connection id chosen by the host (unique over the Dilation's lifetime).
pub type ConnectionId = u64;

/// A connection generation: 1 for the first connector, +1 for each reconnection. Local only:
/// it never appears on the wire.
pub type Generation = u32;

/// Fixed parameters of one Dilation.
#[derive(Clone, Debug)]
pub struct DilationConfig {
    /// Seed of the machine's RNG (our `please` side, PING ids, Noise ephemeral keys).
    pub rng_seed: [u8; 32],
    /// Interval between the Leader's PINGs; two without a PONG trigger a reconnection.
    pub ping_interval: Duration,
    /// If set, the only subprotocols the peer may open; others are refused with a CLOSE.
    pub expected_subprotocols: Option<Vec<String>>,
    /// Bytes of unACKed outbound records before writers pause.
    pub outbound_budget: usize,
}

impl DilationConfig {
    /// The defaults, with this seed.
    #[must_use]
    pub fn new(rng_seed: [u8; 32]) -> Self {
        Self {
            rng_seed,
            ping_interval: DEFAULT_PING_INTERVAL,
            expected_subprotocols: None,
            outbound_budget: DEFAULT_OUTBOUND_BUDGET,
        }
    }
}

/// An event for [`Dilation::handle`].
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// The dilation key: `crypto::dilation_key(K)`.
    DilationKey([u8; 32]),
    /// The peer's `version` message (the whole JSON object).
    PeerVersions(serde_json::Value),
    /// The plaintext of the peer's next `dilate-N` message (in phase order).
    PeerMessage(Vec<u8>),
    /// Our connection hints for a generation (direct hints of our listener, our relay).
    LocalHints {
        /// The generation from [`Output::StartConnecting`].
        generation: Generation,
        /// Our hints, sent to the peer as `connection-hints`.
        hints: TransitHints,
    },
    /// A TCP connection (dialled or accepted) for a generation is established.
    ConnectionMade {
        /// Host-chosen id.
        id: ConnectionId,
        /// The generation it was made for.
        generation: Generation,
        /// Whether it goes through a transit relay (then the relay line is sent first).
        relay: bool,
    },
    /// Bytes read from a connection.
    ConnectionData {
        /// Which connection.
        id: ConnectionId,
        /// The bytes.
        data: Vec<u8>,
    },
    /// A record opened by a secured connection's [`l2::Opener`].
    ConnectionRecord {
        /// Which connection.
        id: ConnectionId,
        /// The record.
        record: l3::Record,
    },
    /// A connection ended (EOF or error).
    ConnectionLost {
        /// Which connection.
        id: ConnectionId,
    },
    /// The timer from `poll_timeout` fired.
    Timeout,
    /// Stop: close everything.
    Stop,
}

/// A command for the host, or an event for the application.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Send an L1 message through the mailbox: encrypt `body` for this phase (`dilate-N`).
    SendMessage {
        /// `dilate-0`, `dilate-1`, …
        phase: String,
        /// The JSON plaintext.
        body: Vec<u8>,
    },
    /// Start a connection generation: listen, dial our own relay, report [`Input::LocalHints`].
    StartConnecting {
        /// The new generation.
        generation: Generation,
        /// Our 16-hex-char dilation side (for relay lines the host may log).
        side: String,
    },
    /// Dial the peer's hints for a generation (with Transit's policy: `transit::race::plan`).
    DialHints {
        /// The generation.
        generation: Generation,
        /// The peer's usable hints (unknown and malformed ones dropped; at most 64).
        hints: TransitHints,
    },
    /// Stop listening and dialling for a generation.
    StopConnecting {
        /// The generation.
        generation: Generation,
    },
    /// Write bytes to a connection.
    Transmit {
        /// Which connection.
        id: ConnectionId,
        /// The bytes.
        data: Vec<u8>,
    },
    /// A connection's handshake completed: seal its records and open its bytes with this
    /// transport from now on (see the module docs).
    Secured {
        /// Which connection.
        id: ConnectionId,
        /// Both directions' ciphers; the opener holds the bytes read after the handshake.
        transport: Box<l2::Transport>,
    },
    /// Seal this record with the connection's sealer and write it.
    SendRecord {
        /// Which connection.
        id: ConnectionId,
        /// The record.
        record: l3::Record,
    },
    /// A connection failed (bad preamble or Noise handshake): for the host's
    /// log; a [`Output::CloseConnection`] for it follows.
    ConnectionFailed {
        /// Which connection.
        id: ConnectionId,
        /// Why.
        error: l2::L2Error,
    },
    /// Close a connection.
    CloseConnection {
        /// Which connection.
        id: ConnectionId,
    },
    /// Something for the application.
    Event(Event),
}

/// What the application learns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Roles are chosen: subchannels may be opened (they are queued until connected).
    Started {
        /// Our role.
        role: Role,
    },
    /// A connection generation is up (the first one means "dilated").
    Connected {
        /// Which generation.
        generation: Generation,
    },
    /// The connection was lost; reconnection is under way.
    Disconnected,
    /// A subchannel opened: by the peer (announced once we listen for its subprotocol).
    SubchannelOpened {
        /// The subchannel.
        scid: SubchannelId,
        /// Its subprotocol.
        subprotocol: String,
    },
    /// Bytes for a subchannel, in order, exactly once.
    SubchannelData {
        /// The subchannel.
        scid: SubchannelId,
        /// The bytes.
        data: bytes::Bytes,
    },
    /// A subchannel is closed both ways.
    SubchannelClosed {
        /// The subchannel.
        scid: SubchannelId,
    },
    /// The peer opened a subchannel of a subprotocol outside
    /// [`DilationConfig::expected_subprotocols`]: it was refused with a CLOSE.
    SubchannelRefused {
        /// The subchannel.
        scid: SubchannelId,
        /// Its subprotocol.
        subprotocol: String,
    },
    /// The outbound budget is full: stop writing until [`Event::WritesResumed`].
    WritesPaused,
    /// Writing may resume.
    WritesResumed,
    /// Dilation failed; nothing more will happen.
    Failed(DilationError),
    /// Dilation stopped (after [`Input::Stop`] or a failure).
    Stopped,
}

/// Why Dilation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DilationError {
    /// The peer's version message has no `can-dilate` entry we speak.
    #[error("the peer cannot dilate (its version offers none of {CAN_DILATE:?})")]
    PeerCannotDilate,
    /// The peer's `please` carries our own side: a reflection, or a broken peer.
    #[error("the peer's dilation side equals ours (reflection?)")]
    ReflectedSide,
    /// The peer kept sending records but never acknowledged ours: the outbound queue exceeded
    /// twice its budget.
    #[error("the dilation peer does not acknowledge our records")]
    PeerNotAcking,
    /// A `dilate-N` message was malformed.
    #[error("bad dilation message: {0}")]
    BadMessage(String),
}
