//! The Wormhole protocol (client side of the mailbox server), as pure machines.
//!
//! [`Wormhole`] is the composite that the daemon hosts: it owns one instance of each machine of the
//! Python reference (`src/wormhole/_*.py`) and routes their events to one another, as the reference's
//! `Boss` and `wire()` do. The host performs IO only: it opens the websocket when asked
//! ([`Output::Connect`]), feeds every text frame in ([`Input::ServerText`]), reports the connection's
//! fate ([`Input::Connected`], [`Input::ConnectFailed`], [`Input::ConnectionLost`]), sends
//! [`Output::SendFrame`] text, and arms one timer from [`Wormhole::poll_timeout`].

use std::time::Instant;

pub mod server_messages;

/// How a wormhole closed, as reported to the server and to the application.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mood {
    /// The exchange completed: at least one message from the peer decrypted.
    Happy,
    /// Closed before the peer ever showed up (or before verification).
    Lonely,
    /// A message failed to decrypt: wrong code, or someone guessing.
    Scary,
    /// An error from the server or the protocol.
    Errory,
    /// The server's welcome carried an error.
    Unwelcome,
}

/// Why a wormhole ended in failure. The `Display` text is what a user reads.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WormholeError {
    /// The peer's pake or an encrypted message did not match our code.
    #[error("the code was wrong, or someone tried to guess it (key confirmation failed)")]
    WrongCode,
    /// The server's welcome message carried an `error`.
    #[error("the mailbox server refused us: {0}")]
    Welcome(String),
    /// The server answered a command with an `error` message (e.g. `crowded`).
    #[error("the mailbox server reported an error: {0}")]
    Server(String),
    /// The first connection to the mailbox server failed.
    #[error("could not connect to the mailbox server: {0}")]
    ConnectFailed(String),
    /// The server or the peer broke the protocol (malformed JSON, bad hex, a missing field ...).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The code was rejected before use (empty, no nameplate, spaces ...).
    #[error("invalid code: {0}")]
    InvalidCode(String),
}

/// Fixed parameters of one wormhole.
#[derive(Clone, Debug)]
pub struct WormholeConfig {
    /// Application id, e.g. `lothar.com/wormhole/text-or-file-xfer`.
    pub appid: String,
    /// Our mailbox side: 10 lowercase hex chars (5 random bytes). Chosen by the host.
    pub side: String,
    /// `app_versions` sent in the `version` phase, e.g. `{}`.
    pub app_versions: serde_json::Value,
    /// Extra top-level keys of the version message (Dilation will add `can-dilate`).
    pub extra_versions: serde_json::Map<String, serde_json::Value>,
    /// Seed of the machine's RNG (SPAKE2 scalar, nonces, code words, message ids).
    pub rng_seed: [u8; 32],
}

/// Where the code comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodeSource {
    /// Allocate a nameplate from the server and pick `words` random words.
    Allocate {
        /// Number of words after the nameplate (default 2).
        words: usize,
    },
    /// The whole code is known, e.g. `7-guitarist-revenge`.
    Set(String),
    /// The code will be typed interactively: see [`Input::RefreshNameplates`],
    /// [`Input::ChooseNameplate`], [`Input::ChooseWords`].
    Interactive,
}

/// Events into the [`Wormhole`] machine.
#[derive(Clone, Debug)]
pub enum Input {
    /// The websocket to the mailbox server is open.
    Connected,
    /// Opening the websocket failed (refused, TLS, HTTP error); the text says why.
    ConnectFailed(String),
    /// The open websocket closed or failed.
    ConnectionLost,
    /// One text frame from the server.
    ServerText(String),
    /// The timer armed from [`Wormhole::poll_timeout`] has fired.
    Timeout,
    /// Send one application message (numbered phase `"0"`, `"1"`, ...); queued until verified.
    Send(Vec<u8>),
    /// Close the wormhole: mood is chosen by the machine (happy after verification, else lonely).
    Close,
    /// End the wormhole now with mood `errory` and [`WormholeError::Protocol`] carrying this text
    /// (the host saw something fatal at the IO edge, e.g. an oversized or binary frame).
    Abort(String),
    /// Interactive code input: ask the server for the list of nameplates.
    RefreshNameplates,
    /// Interactive code input: the user has typed this nameplate (claim it now).
    ChooseNameplate(String),
    /// Interactive code input: the words after the nameplate (`guitarist-revenge`).
    ChooseWords(String),
}

/// What the host must do, or tell the application.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Open the websocket to the mailbox server (first connection and every reconnection).
    Connect,
    /// Close the websocket; no more frames will be sent on it.
    Disconnect,
    /// Send this JSON text frame to the server.
    SendFrame(String),
    /// Tell the application.
    Event(Event),
}

/// Facts for the application, in the order they happen.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The server's welcome carried a message of the day.
    Motd(String),
    /// Something odd but not fatal (an unknown server message type, an unknown phase): logged.
    Warning(String),
    /// The nameplates currently in use (answer to [`Input::RefreshNameplates`]).
    Nameplates(Vec<String>),
    /// The code is known (allocated, set or typed).
    Code(String),
    /// SPAKE2 finished; the session key exists but nothing has been decrypted yet.
    KeyEstablished,
    /// The first message from the peer decrypted: the code was right. Carries the verifier.
    Verified {
        /// HKDF(K, "wormhole:verifier").
        verifier: [u8; 32],
    },
    /// The peer's version message (`app_versions` and any other keys), as JSON.
    Versions(serde_json::Value),
    /// One application message from the peer, delivered in phase order.
    Received(Vec<u8>),
    /// The wormhole is closed and the websocket is gone; nothing more will be output.
    Closed {
        /// The mood we reported to the server.
        mood: Mood,
        /// Why it ended, when it did not end well.
        error: Option<WormholeError>,
    },
}

/// The composite Wormhole protocol machine (see the module docs).
pub struct Wormhole {
    _private: (),
}

impl Wormhole {
    /// A new wormhole; it asks to connect on the first `poll_output`.
    pub fn new(_now: Instant, _config: WormholeConfig, _code: CodeSource) -> Self {
        todo!()
    }

    /// Feed one event in.
    pub fn handle(&mut self, _now: Instant, _input: Input) {
        todo!()
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        todo!()
    }

    /// When the machine wants [`Input::Timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        todo!()
    }

    /// The session key, once SPAKE2 finished (for `derive_key`: Transit, Dilation).
    pub fn key(&self) -> Option<&[u8; 32]> {
        todo!()
    }
}
