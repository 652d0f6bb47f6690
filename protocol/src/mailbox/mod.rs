//! The Wormhole protocol (client side of the mailbox server), as pure machines.
//!
//! [`Wormhole`] is the composite that the daemon hosts: it owns one instance of each machine of the
//! Python reference (`src/wormhole/_*.py`) and routes their events to one another, as the reference's
//! `Boss` and `wire()` do. The host performs IO only: it opens the websocket when asked
//! ([`Output::Connect`]), feeds every text frame in ([`Input::ServerText`]), reports the connection's
//! fate ([`Input::Connected`], [`Input::ConnectFailed`], [`Input::ConnectionLost`]), sends
//! [`Output::SendFrame`] text, and arms one timer from [`Wormhole::poll_timeout`].
//!
//! Contract with the host:
//! - The first output is [`Output::Connect`] (unless a [`CodeSource::Set`] code is invalid: then
//!   the only output is [`Event::Closed`]). Answer every `Connect` with exactly one of
//!   [`Input::Connected`] or [`Input::ConnectFailed`]; report a drop of an open websocket with
//!   [`Input::ConnectionLost`]. After `Connected`, `bind` is the first frame, then `claim` /
//!   `allocate` / `open` / the un-echoed `add`s, and so on.
//! - The first connection failing ends the wormhole ([`WormholeError::ConnectFailed`]); later
//!   losses reconnect by themselves (another `Connect` after a backoff armed in `poll_timeout`).
//! - Closing ([`Input::Close`], or any failure) sends `release` (if held) and `close{mailbox,
//!   mood}`, waits for `released` and `closed` (reconnecting if needed), then outputs
//!   [`Output::Disconnect`] (only if a websocket is open or being opened) and finally
//!   [`Event::Closed`], exactly once. Nothing is output after it and every later input is ignored.
//! - Outputs of one `handle` call are all queued when it returns (the machines talk through an
//!   internal FIFO queue, drained first), so `poll_output` until `None` after each call.
//!
//! Machines (one file each, named after the reference's): `rendezvous` (connection,
//! reconnect, routing of server messages), `nameplate`, `mailbox`, `order`, `key`, `send`,
//! `receive`, `code`, `allocator`, `lister`, `input`, `terminator`, `boss`; the wire types are in
//! [`server_messages`]. The whole-protocol tests (`tests.rs`) run two `Wormhole`s against an
//! in-memory model of the mailbox server.

use std::collections::VecDeque;
use std::time::Instant;

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

mod allocator;
mod boss;
mod code;
mod input;
mod key;
mod lister;
#[allow(clippy::module_inception)]
mod mailbox;
mod nameplate;
mod order;
mod receive;
mod rendezvous;
mod send;
pub mod server_messages;
mod terminator;
#[cfg(test)]
mod tests;

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
    /// Send one message under a phase the application names (Dilation's `dilate-N`: the
    /// application numbers them); queued until verified, like [`Input::Send`].
    SendPhase {
        /// The phase, e.g. `dilate-0`. Must not be `pake`, `version` or a number.
        phase: String,
        /// The plaintext, encrypted with the phase's key like any other phase.
        plaintext: Vec<u8>,
    },
    /// Close the wormhole: mood is chosen by the machine (happy after verification, else lonely).
    Close,
    /// Close the wormhole because the application's work failed after verification (a transfer
    /// error, a cancel): mood `errory`, where the reference says `happy`; `lonely` before
    /// verification.
    CloseFailed,
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
    /// One `dilate-N` message from the peer (its plaintext), delivered strictly in `N` order,
    /// duplicates dropped: the input of the Dilation machine.
    Dilate(Vec<u8>),
    /// The wormhole is closed and the websocket is gone; nothing more will be output.
    Closed {
        /// The mood we reported to the server.
        mood: Mood,
        /// Why it ended, when it did not end well.
        error: Option<WormholeError>,
    },
}

/// One event travelling between the machines, addressed to its target (the reference's
/// eventual-send). [`Wormhole`] drains these in FIFO order before `handle` returns.
#[derive(Debug)]
pub(crate) enum Route {
    Allocator(allocator::In),
    Boss(boss::In),
    Code(code::In),
    Input(input::In),
    Key(key::In),
    Lister(lister::In),
    Mailbox(mailbox::In),
    Nameplate(nameplate::In),
    Order(order::In),
    Receive(receive::In),
    Rendezvous(rendezvous::In),
    Send(send::In),
    Terminator(terminator::In),
}

/// What a machine may touch while it handles one input: the clock reading, the RNG, the internal
/// queue (to other machines) and the host's output queue.
pub(crate) struct Ctx<'a> {
    pub(crate) now: Instant,
    pub(crate) rng: &'a mut ChaCha20Rng,
    pub(crate) queue: &'a mut VecDeque<Route>,
    pub(crate) out: &'a mut VecDeque<Output>,
}

impl Ctx<'_> {
    /// Queues an event for another machine.
    pub(crate) fn route(&mut self, route: Route) {
        self.queue.push_back(route);
    }

    /// Asks the rendezvous connector to send a command to the server.
    pub(crate) fn tx(&mut self, message: server_messages::ClientMessage) {
        self.route(Route::Rendezvous(rendezvous::In::Tx(message)));
    }

    /// Emits an output for the host, right now (before anything still queued).
    pub(crate) fn output(&mut self, output: Output) {
        self.out.push_back(output);
    }
}

/// The composite Wormhole protocol machine (see the module docs).
///
/// Owns one instance of each machine and routes their events through an internal FIFO queue,
/// drained before [`Wormhole::handle`] (and [`Wormhole::new`]) return, so the outputs of one input
/// are all available to [`Wormhole::poll_output`] at once. Deterministic: the same seed, inputs and
/// `now` values give the same outputs.
pub struct Wormhole {
    rng: ChaCha20Rng,
    queue: VecDeque<Route>,
    out: VecDeque<Output>,
    allocator: allocator::Allocator,
    boss: boss::Boss,
    code: code::Code,
    input: input::InputMachine,
    key: key::Key,
    lister: lister::Lister,
    mailbox: mailbox::Mailbox,
    nameplate: nameplate::Nameplate,
    order: order::Order,
    receive: receive::Receive,
    rendezvous: rendezvous::Rendezvous,
    send: send::Send,
    terminator: terminator::Terminator,
}

impl std::fmt::Debug for Wormhole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wormhole")
            .field("boss", &self.boss)
            .field("rendezvous", &self.rendezvous)
            .finish_non_exhaustive()
    }
}

impl Wormhole {
    /// A new wormhole; it asks to connect on the first `poll_output`.
    ///
    /// An invalid [`CodeSource::Set`] code ends it at once: the only output is
    /// [`Event::Closed`] with [`WormholeError::InvalidCode`] (no connection is made).
    pub fn new(now: Instant, config: WormholeConfig, code: CodeSource) -> Self {
        let mut this = Self {
            rng: ChaCha20Rng::from_seed(config.rng_seed),
            queue: VecDeque::new(),
            out: VecDeque::new(),
            allocator: allocator::Allocator::new(),
            boss: boss::Boss::new(),
            code: code::Code::new(),
            input: input::InputMachine::new(),
            key: key::Key::new(&config),
            lister: lister::Lister::new(),
            mailbox: mailbox::Mailbox::new(config.side.clone()),
            nameplate: nameplate::Nameplate::new(),
            order: order::Order::new(),
            receive: receive::Receive::new(),
            rendezvous: rendezvous::Rendezvous::new(config.appid.clone(), config.side.clone()),
            send: send::Send::new(config.side.clone()),
            terminator: terminator::Terminator::new(),
        };
        let start = match code {
            CodeSource::Set(code) => match crate::code::validate_code(&code) {
                Ok(()) => code::In::Set(code),
                Err(e) => {
                    this.queue
                        .push_back(Route::Boss(boss::In::Fatal(WormholeError::InvalidCode(
                            e.to_string(),
                        ))));
                    this.run(now);
                    return this;
                }
            },
            CodeSource::Allocate { words } => code::In::Allocate { words },
            CodeSource::Interactive => code::In::StartInput,
        };
        this.queue
            .push_back(Route::Rendezvous(rendezvous::In::Start));
        this.queue.push_back(Route::Code(start));
        this.run(now);
        this
    }

    /// Feed one event in.
    pub fn handle(&mut self, now: Instant, input: Input) {
        if self.boss.is_closed() {
            return;
        }
        let route = match input {
            Input::Connected => Route::Rendezvous(rendezvous::In::Connected),
            Input::ConnectFailed(why) => Route::Rendezvous(rendezvous::In::ConnectFailed(why)),
            Input::ConnectionLost => Route::Rendezvous(rendezvous::In::ConnectionLost),
            Input::ServerText(text) => Route::Rendezvous(rendezvous::In::ServerText(text)),
            Input::Timeout => Route::Rendezvous(rendezvous::In::Timeout),
            Input::Send(plaintext) => Route::Boss(boss::In::Send(plaintext)),
            Input::SendPhase { phase, plaintext } => {
                Route::Boss(boss::In::SendPhase { phase, plaintext })
            }
            Input::Close => Route::Boss(boss::In::Close),
            Input::CloseFailed => Route::Boss(boss::In::CloseFailed),
            Input::Abort(why) => Route::Boss(boss::In::Fatal(WormholeError::Protocol(why))),
            Input::RefreshNameplates => Route::Input(input::In::Refresh),
            Input::ChooseNameplate(nameplate) => {
                Route::Input(input::In::ChooseNameplate(nameplate))
            }
            Input::ChooseWords(words) => Route::Input(input::In::ChooseWords(words)),
        };
        self.queue.push_back(route);
        self.run(now);
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When the machine wants [`Input::Timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.boss.is_closed() {
            return None;
        }
        self.rendezvous.poll_timeout()
    }

    /// The session key, once SPAKE2 finished (for `derive_key`: Transit, Dilation).
    pub fn key(&self) -> Option<&[u8; 32]> {
        self.boss.key()
    }

    /// True once [`Event::Closed`] has been output: the wormhole ignores every further input.
    pub fn is_closed(&self) -> bool {
        self.boss.is_closed()
    }

    /// Drains the internal queue: every machine's events, in FIFO order.
    fn run(&mut self, now: Instant) {
        while let Some(route) = self.queue.pop_front() {
            let mut ctx = Ctx {
                now,
                rng: &mut self.rng,
                queue: &mut self.queue,
                out: &mut self.out,
            };
            match route {
                Route::Allocator(i) => self.allocator.handle(i, &mut ctx),
                Route::Boss(i) => self.boss.handle(i, &mut ctx),
                Route::Code(i) => self.code.handle(i, &mut ctx),
                Route::Input(i) => self.input.handle(i, &mut ctx),
                Route::Key(i) => self.key.handle(i, &mut ctx),
                Route::Lister(i) => self.lister.handle(i, &mut ctx),
                Route::Mailbox(i) => self.mailbox.handle(i, &mut ctx),
                Route::Nameplate(i) => self.nameplate.handle(i, &mut ctx),
                Route::Order(i) => self.order.handle(i, &mut ctx),
                Route::Receive(i) => self.receive.handle(i, &mut ctx),
                Route::Rendezvous(i) => self.rendezvous.handle(i, &mut ctx),
                Route::Send(i) => self.send.handle(i, &mut ctx),
                Route::Terminator(i) => self.terminator.handle(i, &mut ctx),
            }
            if self.boss.is_closed() {
                // Nothing may follow Event::Closed.
                self.queue.clear();
            }
        }
    }
}

/// A test harness for one machine: a context with its own queue, output and seeded RNG.
#[cfg(test)]
pub(crate) struct Harness {
    pub(crate) now: Instant,
    pub(crate) rng: ChaCha20Rng,
    pub(crate) queue: VecDeque<Route>,
    pub(crate) out: VecDeque<Output>,
}

#[cfg(test)]
impl Harness {
    pub(crate) fn new() -> Self {
        Self {
            now: tests::epoch(),
            rng: ChaCha20Rng::from_seed([7; 32]),
            queue: VecDeque::new(),
            out: VecDeque::new(),
        }
    }

    pub(crate) fn ctx(&mut self) -> Ctx<'_> {
        Ctx {
            now: self.now,
            rng: &mut self.rng,
            queue: &mut self.queue,
            out: &mut self.out,
        }
    }

    /// Takes the queued routes, as their Debug text (compact for assertions).
    pub(crate) fn routes(&mut self) -> Vec<String> {
        self.queue.drain(..).map(|r| format!("{r:?}")).collect()
    }

    /// Takes the queued routes.
    pub(crate) fn take(&mut self) -> Vec<Route> {
        self.queue.drain(..).collect()
    }
}
