//! A dilated wormhole in the daemon: the [`DilationHost`] actor owns the pure
//! [`Dilation`] machine and does its IO at the edge.
//!
//! - Mailbox side: it is the app of a wormhole of kind `dilate` (see `wire.rs`). It feeds the
//!   session key ([`AppKey`], turned into the dilation key), the peer's versions and its
//!   `dilate-N` messages ([`AppEvent`]) into the machine, and sends the machine's L1 messages as
//!   mailbox [`Input::SendPhase`].
//! - L2 connections: TCP at the edge (`io.rs`). On `StartConnecting` it listens (unless
//!   `no_listen`), reports our hints (transit's address discovery and relays), and dials our
//!   relays; on `DialHints` it dials per [`race::plan`]. Every TCP connection gets an id and a
//!   reader and a writer on the connection runtime (`io.rs`): until the handshake is done its
//!   bytes become `ConnectionData` ([`RawData`], whose reply hands the reader the opener once
//!   the machine output `Secured`); then the reader opens records itself ([`Io::Records`]) and
//!   the writer seals `SendRecord`s with the sealer; its end is `ConnectionLost`; `Transmit`
//!   writes, and `CloseConnection` closes. The relay line, the preambles and the handshake are
//!   written by the machine.
//! - Subchannels: each one gets a fresh Unix socket (mode 0600 from its creation, next to the
//!   control socket; a client of another uid is refused and the socket waits for ours) that
//!   the client connects to once and streams raw bytes through; EOF from the client closes our
//!   half; the peer's close half-closes the socket.
//! - Backpressure: TCP reads pause while more than [`CLIENT_HIGH_WATER`] bytes wait to be
//!   written to subchannel clients (a slow app slows the peer through TCP); client reads pause
//!   while the machine's outbound budget is full (`WritesPaused` .. `WritesResumed`).
//!
//! Inputs: [`AppEvent`], [`AppKey`] (the mailbox machine), [`AppCommand`] (`cancel` from the
//! registry), [`DilateCommand`] (`listen`, `open-subchannel`, `close`, `attach`, a client gone),
//! [`Io`] (socket tasks), the timer. Outputs: control events to the attached client and to
//! listeners (`attach.rs`), [`WormholeNote`]s, mailbox inputs.
//!
//! Mirrors the IO half of `src/wormhole/_dilation/connector.py` and `manager.py`.

mod attach;
mod io;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use bytes::Bytes;
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use wormhole_protocol::control::{
    ControlError, DaemonLine, ErrorCode, Event as ControlEvent, EventKind, FailureKind,
    ResponseBody, WormholeId,
};
use wormhole_protocol::crypto;
use wormhole_protocol::dilation::l2::{self, L2Error, Opener};
use wormhole_protocol::dilation::l3::Record;
use wormhole_protocol::dilation::{
    ConnectionId, Dilation, Event as DilationEvent, Generation, Input as DilationInput,
    Output as DilationOutput, SubchannelId,
};
use wormhole_protocol::mailbox::{Event, Input, Mood};
use wormhole_protocol::transit::hints::{DirectHint, TransitHints};
use wormhole_protocol::transit::race;

use crate::app::{failure_kind, mood_name, AppCommand, AppEvent, AppKey};
use crate::clock;
use crate::host::Feed;
use crate::registry::{Client, SessionId, ToClient, WormholeNote};
use crate::transit::TransitConfig;

use self::attach::Audience;
use self::io::{ConnectionTasks, Gauge, Outgoing};

/// Bytes waiting for subchannel clients above which TCP reads pause.
pub(crate) const CLIENT_HIGH_WATER: usize = 1 << 20;

/// Bytes waiting for subchannel clients below which TCP reads resume.
pub(crate) const CLIENT_LOW_WATER: usize = 256 << 10;

/// How long a closed connection's writer may go on writing what was queued before it.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Most TCP connections (candidates and the live one) at once; more are closed at once.
const MAX_CONNECTIONS: usize = 64;

/// Most subchannels with a Unix socket at once.
const MAX_SUBCHANNELS: usize = 256;

/// A request about a dilated wormhole, forwarded by the registry.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) enum DilateCommand {
    /// Accept the peer's subchannels of this subprotocol.
    Listen {
        /// Who asked.
        client: Client,
        /// The request id.
        id: u64,
        /// The subprotocol.
        subprotocol: String,
    },
    /// Open a subchannel.
    Open {
        /// Who asked.
        client: Client,
        /// The request id.
        id: u64,
        /// The subprotocol.
        subprotocol: String,
    },
    /// Close the dilated wormhole.
    Close {
        /// Who asked.
        client: Client,
        /// The request id.
        id: u64,
    },
    /// Send the wormhole's events to this client from now on; answer with its state.
    Attach {
        /// Who asked.
        client: Client,
        /// The request id.
        id: u64,
    },
    /// A control connection closed: it is no longer attached nor a listener.
    ClientGone(SessionId),
}

/// What the socket tasks report.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) enum Io {
    /// A TCP connection for a generation is up (dialled or accepted).
    Connected {
        /// The generation it was made for.
        generation: Generation,
        /// Through a transit relay.
        relay: bool,
        /// The socket.
        stream: TcpStream,
    },
    /// Our listener for a generation is bound: these are our hints.
    Listening {
        /// The generation.
        generation: Generation,
        /// Our direct hints (empty if the listener could not be bound).
        direct: Vec<DirectHint>,
    },
    /// Records opened by a secured connection's reader, in order.
    Records {
        /// Which connection.
        id: ConnectionId,
        /// The records.
        records: Vec<Record>,
    },
    /// A secured connection's bytes failed to open (bad frame, decryption, record): it ends.
    Failed {
        /// Which connection.
        id: ConnectionId,
        /// Why.
        error: L2Error,
    },
    /// A TCP connection ended.
    Lost {
        /// Which connection.
        id: ConnectionId,
    },
    /// A client connected to a subchannel's socket.
    Client {
        /// The subchannel.
        scid: SubchannelId,
        /// The socket.
        stream: UnixStream,
    },
    /// Bytes from a subchannel client.
    ClientData {
        /// The subchannel.
        scid: SubchannelId,
        /// The bytes.
        data: Bytes,
    },
    /// The subchannel client half-closed or went away.
    ClientEof {
        /// The subchannel.
        scid: SubchannelId,
    },
}

/// Bytes read from a TCP connection before its handshake completed; the reply hands the reader
/// the connection's opener once the machine secured it (then the reader opens records itself).
#[derive(Message)]
#[rtype(result = "Option<Opener>")]
pub(crate) struct RawData {
    id: ConnectionId,
    data: Vec<u8>,
}

/// Fixed parameters of one dilated wormhole.
pub(crate) struct DilationSetup {
    /// Its handle.
    pub(crate) id: WormholeId,
    /// Who opened it.
    pub(crate) owner: Client,
    /// Where it reports its state.
    pub(crate) registry: Recipient<WormholeNote>,
    /// The mailbox machine's inputs.
    pub(crate) mailbox: Recipient<Feed<Input>>,
    /// Stops the mailbox actors once the wormhole has closed.
    pub(crate) halt: Box<dyn FnOnce()>,
    /// Listening, relays and advertised addresses.
    pub(crate) transit: TransitConfig,
    /// Folder of the subchannel sockets (the control socket's).
    pub(crate) socket_dir: PathBuf,
    /// The machine.
    pub(crate) machine: Dilation,
}

/// One subchannel's client side.
struct Subchannel {
    /// The socket path, until a client connected.
    path: Option<PathBuf>,
    /// Bytes for the client; `None` until it connects (then `backlog` holds them).
    to_client: Option<mpsc::UnboundedSender<Bytes>>,
    backlog: Vec<Bytes>,
    /// Client bytes the machine has not accepted yet (its budget was full).
    pending: VecDeque<Bytes>,
    /// The client half-closed; close our half once `pending` is written.
    eof: bool,
    /// Closed both ways before a client connected: the socket stays until one connects and
    /// reads the backlog, then ends.
    closed: bool,
    tasks: Vec<JoinHandle<()>>,
}

/// The actor hosting one [`Dilation`].
pub(crate) struct DilationHost {
    id: WormholeId,
    /// The attached client and the listeners.
    audience: Audience,
    registry: Recipient<WormholeNote>,
    mailbox: Recipient<Feed<Input>>,
    halt: Option<Box<dyn FnOnce()>>,
    transit: TransitConfig,
    socket_dir: PathBuf,
    machine: Dilation,
    timer: Option<(Instant, SpawnHandle)>,
    next_connection: ConnectionId,
    connections: HashMap<ConnectionId, ConnectionTasks>,
    /// Openers of connections the machine secured, until their reader takes them.
    openers: HashMap<ConnectionId, Opener>,
    generations: HashMap<Generation, Vec<JoinHandle<()>>>,
    subchannels: HashMap<SubchannelId, Subchannel>,
    /// Bytes queued for subchannel clients; gates TCP reads.
    to_clients: Arc<Gauge>,
    /// Open while the machine accepts writes; gates client reads.
    client_reads: Rc<watch::Sender<bool>>,
    dilated: bool,
    closing: bool,
    failed: bool,
}

impl DilationHost {
    /// A host for `setup.machine`; it starts once the mailbox reports the key and versions.
    pub(crate) fn new(setup: DilationSetup) -> Self {
        Self {
            id: setup.id,
            audience: Audience::new(setup.id, setup.owner),
            registry: setup.registry,
            mailbox: setup.mailbox,
            halt: Some(setup.halt),
            transit: setup.transit,
            socket_dir: setup.socket_dir,
            machine: setup.machine,
            timer: None,
            next_connection: 1,
            connections: HashMap::new(),
            openers: HashMap::new(),
            generations: HashMap::new(),
            subchannels: HashMap::new(),
            to_clients: Arc::new(Gauge::new(CLIENT_HIGH_WATER, CLIENT_LOW_WATER)),
            client_reads: Rc::new(watch::channel(true).0),
            dilated: false,
            closing: false,
            failed: false,
        }
    }

    fn emit(&self, kind: EventKind) {
        self.audience.emit(kind);
    }

    /// The state `list` (and `attach`) shows changed.
    fn note_state(&mut self, state: &'static str) {
        self.audience.state(state);
        self.registry.do_send(WormholeNote::State(self.id, state));
    }

    fn feed(&mut self, input: DilationInput, ctx: &mut Context<Self>) {
        self.machine.handle(clock::now(), input);
        self.flush(ctx);
    }

    /// Drains the machine's outputs and re-arms its timer.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        while let Some(output) = self.machine.poll_output() {
            self.output(output, ctx);
        }
        let wanted = self.machine.poll_timeout();
        if self.timer.as_ref().map(|(at, _)| *at) != wanted {
            if let Some((_, handle)) = self.timer.take() {
                ctx.cancel_future(handle);
            }
            if let Some(at) = wanted {
                let delay = at.saturating_duration_since(clock::now());
                let handle = ctx.run_later(delay, |host, ctx| {
                    host.timer = None;
                    // A keepalive interval in which a slow app kept us from reading PONGs is
                    // not the peer's fault.
                    let paused = !host.to_clients.is_open();
                    host.machine.set_reads_paused(paused);
                    host.feed(DilationInput::Timeout, ctx);
                });
                self.timer = Some((at, handle));
            }
        }
    }

    fn output(&mut self, output: DilationOutput, ctx: &mut Context<Self>) {
        match output {
            DilationOutput::SendMessage { phase, body } => {
                self.mailbox.do_send(Feed(Input::SendPhase {
                    phase,
                    plaintext: body,
                }));
            }
            DilationOutput::StartConnecting { generation, side } => {
                tracing::debug!(wormhole = self.id, generation, %side, "dilation: connecting");
                self.start_connecting(generation, ctx);
            }
            DilationOutput::DialHints { generation, hints } => {
                for (delay, hint, relay) in race::plan(&hints, &[]) {
                    self.dial(generation, delay, hint, relay, ctx);
                }
            }
            DilationOutput::StopConnecting { generation } => {
                for task in self.generations.remove(&generation).unwrap_or_default() {
                    task.abort();
                }
            }
            DilationOutput::Transmit { id, data } => self.to_connection(id, Outgoing::Raw(data)),
            DilationOutput::Secured { id, transport } => {
                let l2::Transport { sealer, opener } = *transport;
                self.to_connection(id, Outgoing::Secure(Box::new(sealer)));
                self.openers.insert(id, opener);
            }
            DilationOutput::SendRecord { id, record } => {
                self.to_connection(id, Outgoing::Record(record));
            }
            DilationOutput::ConnectionFailed { id, error } => {
                tracing::info!(wormhole = self.id, connection = id, %error, "dilation: connection failed");
            }
            DilationOutput::CloseConnection { id } => {
                self.openers.remove(&id);
                if let Some(connection) = self.connections.remove(&id) {
                    // Dropping the queue lets the writer finish what was transmitted, then
                    // shut the socket down; nothing more is read. A peer that does not read
                    // (a dropped keepalive) would keep it open: the writer gets a grace period.
                    connection.read_task.abort();
                    let writer = connection.write_task.abort_handle();
                    ctx.run_later(CLOSE_GRACE, move |_, _| writer.abort());
                }
            }
            DilationOutput::Event(event) => self.event(event, ctx),
        }
    }

    fn to_connection(&self, id: ConnectionId, outgoing: Outgoing) {
        if let Some(connection) = self.connections.get(&id) {
            // A closed writer means the connection is going: its reader reports it.
            let _ = connection.writer.send(outgoing);
        }
    }

    fn event(&mut self, event: DilationEvent, ctx: &mut Context<Self>) {
        match event {
            DilationEvent::Started { role } => {
                tracing::debug!(wormhole = self.id, ?role, "dilation started");
            }
            DilationEvent::Connected { generation } => {
                tracing::info!(wormhole = self.id, generation, "dilated");
                self.note_state("dilated");
                if self.dilated {
                    self.emit(EventKind::Reconnected {});
                } else {
                    self.dilated = true;
                    self.emit(EventKind::Dilated {});
                }
            }
            DilationEvent::Disconnected => {
                self.note_state("reconnecting");
                self.emit(EventKind::Disconnected {});
            }
            DilationEvent::SubchannelOpened { scid, subprotocol } => {
                match self.new_subchannel(scid, ctx) {
                    Ok(socket) => {
                        self.audience.subchannel(scid, &subprotocol, |scid| {
                            self.subchannels.contains_key(scid)
                        });
                        let Some(to) = self.audience.opened_to(&subprotocol) else {
                            tracing::debug!(
                                wormhole = self.id,
                                scid,
                                "subchannel opened with nobody to tell; it waits for attach"
                            );
                            return;
                        };
                        to.lines.do_send(ToClient(DaemonLine::Event(ControlEvent {
                            wormhole: self.id,
                            kind: EventKind::SubchannelOpened {
                                subchannel: scid,
                                subprotocol,
                                socket,
                            },
                        })));
                    }
                    Err(e) => {
                        tracing::warn!(wormhole = self.id, scid, error = %e, "subchannel socket");
                        let _ = self.machine.close(scid);
                    }
                }
            }
            DilationEvent::SubchannelData { scid, data } => {
                if let Some(sub) = self.subchannels.get_mut(&scid) {
                    let len = data.len();
                    self.to_clients.add(len);
                    match &sub.to_client {
                        Some(tx) => {
                            if tx.send(data).is_err() {
                                // The client's writer is gone: nothing will read these.
                                self.to_clients.sub(len);
                            }
                        }
                        None => sub.backlog.push(data),
                    }
                }
            }
            DilationEvent::SubchannelClosed { scid } => {
                match self.subchannels.get_mut(&scid) {
                    Some(sub) if sub.to_client.is_none() => sub.closed = true,
                    Some(_) => {
                        if let Some(sub) = self.subchannels.remove(&scid) {
                            drop_subchannel(sub, &self.to_clients);
                        }
                    }
                    None => {}
                }
                self.emit(EventKind::SubchannelClosed { subchannel: scid });
            }
            DilationEvent::SubchannelRefused { scid, subprotocol } => {
                tracing::info!(wormhole = self.id, scid, %subprotocol, "dilation: refused a subchannel of an unexpected subprotocol");
                self.emit(EventKind::SubchannelRefused {
                    subchannel: scid,
                    subprotocol,
                });
            }
            DilationEvent::WritesPaused => {
                self.client_reads.send_replace(false);
            }
            DilationEvent::WritesResumed => self.retry_pending(ctx),
            DilationEvent::Failed(error) => {
                self.failed = true;
                self.emit(EventKind::Error {
                    kind: FailureKind::Peer,
                    message: error.to_string(),
                });
                self.close(ctx);
            }
            DilationEvent::Stopped => self.close(ctx),
        }
    }

    /// Listen (unless told not to), report our hints, dial our relays.
    fn start_connecting(&mut self, generation: Generation, ctx: &mut Context<Self>) {
        let me = ctx.address().recipient::<Io>();
        if self.transit.listen {
            let task = actix::spawn(io::listen(
                generation,
                self.transit.hint_addresses.clone(),
                me.clone(),
            ));
            self.generations.entry(generation).or_default().push(task);
        } else {
            let hints = TransitHints {
                direct: Vec::new(),
                relays: self.transit.relays.clone(),
            };
            self.feed(DilationInput::LocalHints { generation, hints }, ctx);
        }
        let relays: Vec<DirectHint> = self
            .transit
            .relays
            .iter()
            .flat_map(|r| r.hints.iter().cloned())
            .collect();
        for hint in relays {
            self.dial(generation, std::time::Duration::ZERO, hint, true, ctx);
        }
    }

    fn dial(
        &mut self,
        generation: Generation,
        delay: std::time::Duration,
        hint: DirectHint,
        relay: bool,
        ctx: &mut Context<Self>,
    ) {
        let me = ctx.address().recipient::<Io>();
        let task = actix::spawn(io::dial(generation, delay, hint, relay, me));
        self.generations.entry(generation).or_default().push(task);
    }

    /// Makes the Unix socket of a subchannel; returns its path.
    fn new_subchannel(
        &mut self,
        scid: SubchannelId,
        ctx: &mut Context<Self>,
    ) -> std::io::Result<String> {
        if self.subchannels.len() >= MAX_SUBCHANNELS {
            return Err(std::io::Error::other("too many subchannels"));
        }
        let path = self.socket_dir.join(format!(
            "dilation-{}-{scid}-{}.sock",
            self.id,
            hex::encode(rand::random::<[u8; 4]>())
        ));
        let listener = io::bind_private(&path)?;
        let me = ctx.address().recipient::<Io>();
        let task = actix::spawn(io::accept_client(scid, listener, me));
        self.subchannels.insert(
            scid,
            Subchannel {
                path: Some(path.clone()),
                to_client: None,
                backlog: Vec::new(),
                pending: VecDeque::new(),
                eof: false,
                closed: false,
                tasks: vec![task],
            },
        );
        Ok(path.display().to_string())
    }

    /// After `WritesResumed`: write what the clients sent while paused, then let them go on.
    fn retry_pending(&mut self, ctx: &mut Context<Self>) {
        let mut scids: Vec<SubchannelId> = self
            .subchannels
            .iter()
            .filter(|(_, s)| !s.pending.is_empty() || s.eof)
            .map(|(scid, _)| *scid)
            .collect();
        scids.sort_unstable();
        for scid in scids {
            if !self.write_pending(scid) {
                break;
            }
        }
        let blocked = self.subchannels.values().any(|s| !s.pending.is_empty());
        if !blocked && !self.machine.writes_paused() {
            self.client_reads.send_replace(true);
        }
        self.flush(ctx);
    }

    /// Writes a subchannel's pending bytes (and its close); false if the budget filled again.
    fn write_pending(&mut self, scid: SubchannelId) -> bool {
        let Some(sub) = self.subchannels.get_mut(&scid) else {
            return true;
        };
        while let Some(data) = sub.pending.front_mut() {
            match self.machine.write(scid, data) {
                Ok(n) if n == data.len() => {
                    sub.pending.pop_front();
                }
                Ok(n) => {
                    bytes::Buf::advance(data, n);
                    return false;
                }
                Err(e) => {
                    tracing::debug!(scid, error = %e, "subchannel write");
                    sub.pending.clear();
                }
            }
        }
        if sub.eof {
            sub.eof = false;
            if let Err(e) = self.machine.close(scid) {
                tracing::debug!(scid, error = %e, "subchannel close");
            }
        }
        true
    }

    /// Closes the wormhole: Dilation first, then the mailbox.
    fn close(&mut self, ctx: &mut Context<Self>) {
        if self.closing {
            return;
        }
        self.closing = true;
        self.note_state("closing");
        self.feed(DilationInput::Stop, ctx);
        self.teardown();
        self.mailbox.do_send(Feed(Input::Close));
    }

    /// Drops every socket and task.
    fn teardown(&mut self) {
        for (_, connection) in self.connections.drain() {
            connection.read_task.abort();
            connection.write_task.abort();
        }
        for (_, tasks) in self.generations.drain() {
            for task in tasks {
                task.abort();
            }
        }
        for (_, sub) in self.subchannels.drain() {
            drop_subchannel(sub, &self.to_clients);
        }
    }

    fn finish(&mut self, mood: Mood, ctx: &mut Context<Self>) {
        self.teardown();
        self.emit(EventKind::Closed {
            mood: mood_name(mood).into(),
        });
        self.registry.do_send(WormholeNote::Finished(self.id));
        if let Some(halt) = self.halt.take() {
            halt();
        }
        ctx.stop();
    }
}

/// Ends a subchannel's socket: its writer finishes what is queued, then half-closes.
fn drop_subchannel(sub: Subchannel, gauge: &Gauge) {
    if let Some(path) = &sub.path {
        remove_socket(path);
    }
    let backlog: usize = sub.backlog.iter().map(Bytes::len).sum();
    gauge.sub(backlog);
    for task in sub.tasks {
        // The writer task is not in `tasks`: it ends by itself once `to_client` is dropped.
        task.abort();
    }
}

fn remove_socket(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        tracing::debug!(path = %path.display(), error = %e, "removing a subchannel socket");
    }
}

impl Actor for DilationHost {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.teardown();
    }
}

impl Handler<AppKey> for DilationHost {
    type Result = ();

    fn handle(&mut self, AppKey(key): AppKey, ctx: &mut Context<Self>) {
        self.feed(DilationInput::DilationKey(crypto::dilation_key(&key)), ctx);
    }
}

impl Handler<AppEvent> for DilationHost {
    type Result = ();

    fn handle(&mut self, AppEvent(event): AppEvent, ctx: &mut Context<Self>) {
        match event {
            Event::Motd(text) => self.emit(EventKind::Motd { text }),
            Event::Warning(message) => {
                tracing::warn!(wormhole = self.id, "{message}");
                self.emit(EventKind::Warning { message });
            }
            Event::Nameplates(_) | Event::KeyEstablished | Event::Received(_) => {}
            Event::Code(code) => {
                self.registry
                    .do_send(WormholeNote::Code(self.id, code.clone()));
                self.audience.code(&code);
                self.note_state("waiting");
                self.emit(EventKind::Code { code });
            }
            Event::Verified { verifier } => {
                self.note_state("connecting");
                self.emit(EventKind::Key {
                    verifier: hex::encode(verifier),
                    confirm: false,
                });
            }
            Event::Versions(versions) => self.feed(DilationInput::PeerVersions(versions), ctx),
            Event::Dilate(plaintext) => self.feed(DilationInput::PeerMessage(plaintext), ctx),
            Event::Closed { mood, error } => {
                if let Some(error) = error {
                    self.emit(EventKind::Error {
                        kind: failure_kind(&error),
                        message: error.to_string(),
                    });
                }
                let mood = if self.failed && mood == Mood::Happy {
                    Mood::Errory
                } else {
                    mood
                };
                self.finish(mood, ctx);
            }
        }
    }
}

impl Handler<AppCommand> for DilationHost {
    type Result = ();

    fn handle(&mut self, command: AppCommand, ctx: &mut Context<Self>) {
        match command {
            AppCommand::Cancel { reply, reason } => {
                tracing::info!(wormhole = self.id, "dilated wormhole cancelled: {reason}");
                if let Some((client, id)) = reply {
                    client.respond(id, Ok(ResponseBody::Done {}));
                }
                self.emit(EventKind::Error {
                    kind: FailureKind::Cancelled,
                    message: reason,
                });
                self.close(ctx);
            }
            AppCommand::Complete { client, id, .. }
            | AppCommand::SetCode { client, id, .. }
            | AppCommand::Verify { client, id, .. }
            | AppCommand::Accept { client, id, .. } => client.respond(
                id,
                Err(ControlError::new(
                    ErrorCode::InvalidState,
                    "not a request for a dilated wormhole",
                )),
            ),
        }
    }
}

impl Handler<DilateCommand> for DilationHost {
    type Result = ();

    fn handle(&mut self, command: DilateCommand, ctx: &mut Context<Self>) {
        match command {
            DilateCommand::Listen {
                client,
                id,
                subprotocol,
            } => {
                client.respond(id, Ok(ResponseBody::Done {}));
                self.audience.listen(subprotocol.clone(), client);
                self.machine.listen(&subprotocol);
                self.flush(ctx);
            }
            DilateCommand::Open {
                client,
                id,
                subprotocol,
            } => {
                let opened = self
                    .machine
                    .open(&subprotocol)
                    .map_err(|e| ControlError::new(ErrorCode::InvalidState, e.to_string()))
                    .and_then(|scid| match self.new_subchannel(scid, ctx) {
                        Ok(socket) => Ok(ResponseBody::Subchannel {
                            subchannel: scid,
                            socket,
                        }),
                        Err(e) => {
                            let _ = self.machine.close(scid);
                            Err(ControlError::new(
                                ErrorCode::InvalidState,
                                format!("could not make the subchannel socket: {e}"),
                            ))
                        }
                    });
                if let Ok(ResponseBody::Subchannel { subchannel, .. }) = &opened {
                    self.audience.subchannel(*subchannel, &subprotocol, |scid| {
                        self.subchannels.contains_key(scid)
                    });
                }
                client.respond(id, opened);
                self.flush(ctx);
            }
            DilateCommand::Close { client, id } => {
                client.respond(id, Ok(ResponseBody::Done {}));
                self.close(ctx);
            }
            DilateCommand::Attach { client, id } => self.attach(client, id),
            DilateCommand::ClientGone(session) => self.audience.gone(session),
        }
    }
}

impl Handler<RawData> for DilationHost {
    type Result = Option<Opener>;

    fn handle(&mut self, RawData { id, data }: RawData, ctx: &mut Context<Self>) -> Option<Opener> {
        if self.closing || !self.connections.contains_key(&id) {
            return None;
        }
        self.feed(DilationInput::ConnectionData { id, data }, ctx);
        self.openers.remove(&id)
    }
}

impl Handler<Io> for DilationHost {
    type Result = ();

    fn handle(&mut self, io: Io, ctx: &mut Context<Self>) {
        if self.closing {
            return;
        }
        match io {
            Io::Listening { generation, direct } => {
                let hints = TransitHints {
                    direct,
                    relays: self.transit.relays.clone(),
                };
                self.feed(DilationInput::LocalHints { generation, hints }, ctx);
            }
            Io::Connected {
                generation,
                relay,
                stream,
            } => {
                if self.connections.len() >= MAX_CONNECTIONS {
                    tracing::debug!("dilation: too many connections, closing one");
                    return;
                }
                let id = self.next_connection;
                self.next_connection += 1;
                let me = ctx.address();
                let tasks = match io::run_connection(
                    id,
                    stream,
                    self.to_clients.open(),
                    me.clone().recipient(),
                    me.recipient(),
                ) {
                    Ok(tasks) => tasks,
                    Err(e) => {
                        tracing::warn!(error = %e, "dilation: cannot run a connection");
                        return;
                    }
                };
                self.connections.insert(id, tasks);
                self.feed(
                    DilationInput::ConnectionMade {
                        id,
                        generation,
                        relay,
                    },
                    ctx,
                );
            }
            Io::Records { id, records } => {
                if self.connections.contains_key(&id) {
                    let now = clock::now();
                    for record in records {
                        let input = DilationInput::ConnectionRecord { id, record };
                        self.machine.handle(now, input);
                    }
                    self.flush(ctx);
                }
            }
            Io::Failed { id, error } => {
                if let Some(connection) = self.connections.remove(&id) {
                    tracing::info!(wormhole = self.id, connection = id, %error, "dilation: connection failed");
                    connection.write_task.abort();
                    self.feed(DilationInput::ConnectionLost { id }, ctx);
                }
            }
            Io::Lost { id } => {
                self.openers.remove(&id);
                if let Some(connection) = self.connections.remove(&id) {
                    connection.write_task.abort();
                    self.feed(DilationInput::ConnectionLost { id }, ctx);
                }
            }
            Io::Client { scid, stream } => {
                let me = ctx.address().recipient::<Io>();
                let Some(sub) = self.subchannels.get_mut(&scid) else {
                    return;
                };
                if let Some(path) = sub.path.take() {
                    remove_socket(&path);
                }
                let client = io::run_client(
                    scid,
                    stream,
                    Arc::clone(&self.to_clients),
                    self.client_reads.subscribe(),
                    me,
                );
                let (tx, tasks) = match client {
                    Ok(client) => client,
                    Err(e) => {
                        tracing::warn!(wormhole = self.id, scid, error = %e, "subchannel client");
                        if let Some(sub) = self.subchannels.remove(&scid) {
                            drop_subchannel(sub, &self.to_clients);
                        }
                        if let Err(e) = self.machine.close(scid) {
                            tracing::debug!(scid, error = %e, "subchannel close");
                        }
                        self.flush(ctx);
                        return;
                    }
                };
                let Some(sub) = self.subchannels.get_mut(&scid) else {
                    return;
                };
                for data in sub.backlog.drain(..) {
                    let _ = tx.send(data);
                }
                sub.to_client = Some(tx);
                sub.tasks.extend(tasks);
                if sub.closed {
                    // The writer sends the backlog, then EOF.
                    if let Some(sub) = self.subchannels.remove(&scid) {
                        drop_subchannel(sub, &self.to_clients);
                    }
                }
            }
            Io::ClientData { scid, data } => {
                let Some(sub) = self.subchannels.get_mut(&scid) else {
                    return;
                };
                sub.pending.push_back(data);
                if !self.write_pending(scid) {
                    self.client_reads.send_replace(false);
                }
                self.flush(ctx);
            }
            Io::ClientEof { scid } => {
                let Some(sub) = self.subchannels.get_mut(&scid) else {
                    return;
                };
                sub.eof = true;
                self.write_pending(scid);
                self.flush(ctx);
            }
        }
    }
}
