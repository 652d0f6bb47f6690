//! The Dilation manager (L1 side) and the [`Dilation`] composite.
//!
//! States: `Waiting` (the dilation key or the peer's versions are not known yet) → `Wanting`
//! (our `please` is sent; waiting for the peer's) → `Connecting(g)` (generation g: the host
//! listens and dials; candidates handshake; peer hints are accepted only here) → `Connected(g,
//! conn)`; on loss the Leader goes to `Flushing` (sent `reconnect`, waits for `reconnecting`,
//! ignoring hints), the Follower to `Lonely` (waits for `reconnect`); both then start
//! `Connecting(g+1)`. A Follower that gets `reconnect` while connected or connecting drops its
//! connections, sends `reconnecting` and starts the next generation. `Stopped` is terminal.
//!
//! Inputs: [`Input`] (key, versions, peer `dilate-N` plaintexts, hints, connection events, timer,
//! stop) and the application mutators. Outputs: [`Output`] (L1 sends, listen/dial/stop commands,
//! bytes and closes for connections, application [`Event`]s).
//!
//! Selection (from `connector.py`): the Leader takes the first candidate whose KCM decrypts,
//! sends its own KCM there and closes the others; the Follower keeps the connection where the
//! Leader's KCM arrives. Keepalive: the Leader PINGs every `ping_interval` with a random id; two
//! intervals without a PONG drop the connection (and reconnect).
//!
//! Mirrors `Manager` of `src/wormhole/_dilation/manager.py`, the selection of `connector.py`, and
//! the `TrafficTimer` of `manager.py` (magic-wormhole 0.24; PROTOCOL.md §4).

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use bytes::Bytes;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde_json::{json, Value};

use super::inbound::Inbound;
use super::l2::{Connection, L2Event};
use super::l3::{Record, SubchannelId, DATA_HEADER_LEN};
use super::outbound::Outbound;
use super::subchannel::{RemoteClose, RemoteData, RemoteOpen, SubchannelError, Subchannels};
use crate::transit::hints::TransitHints;

use super::{
    ConnectionId, DilationConfig, DilationError, Event, Generation, Input, Output, Role, CAN_DILATE,
};

/// Largest DATA payload we put in one record: one record fits one Noise message.
pub const MAX_DATA_PAYLOAD: usize = super::l2::NOISE_MAX_PAYLOAD - DATA_HEADER_LEN;
/// Most candidate connections at once.
const MAX_CANDIDATES: usize = 32;
/// Longest `please` side accepted (ours is 16 hex chars).
const MAX_SIDE_LEN: usize = 64;
/// Outstanding PING ids remembered.
const MAX_PINGS: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Waiting,
    Wanting,
    Connecting(Generation),
    Connected(Generation, ConnectionId),
    Flushing,
    Lonely,
    Stopped,
}

#[derive(Debug)]
struct Keepalive {
    next: Instant,
    outstanding: VecDeque<[u8; 4]>,
    pong_seen: bool,
    missed: u32,
}

/// The whole Dilation of one wormhole (see the module docs and [`super`] for the host contract).
#[derive(Debug)]
pub struct Dilation {
    config: DilationConfig,
    rng: ChaCha20Rng,
    side: String,
    state: State,
    role: Option<Role>,
    key: Option<[u8; 32]>,
    version: Option<&'static str>,
    pending_please: Option<String>,
    next_phase: u64,
    generation: Generation,
    conns: BTreeMap<ConnectionId, Connection>,
    inbound: Inbound,
    outbound: Outbound,
    subchannels: Subchannels,
    keepalive: Option<Keepalive>,
    /// The host does not read the connection now (see [`Dilation::set_reads_paused`]).
    reads_paused: bool,
    outputs: VecDeque<Output>,
}

impl Dilation {
    /// A Dilation that starts once the dilation key and the peer's versions are known.
    #[must_use]
    pub fn new(config: DilationConfig) -> Self {
        let mut rng = ChaCha20Rng::from_seed(config.rng_seed);
        let mut side = [0u8; 8];
        rng.fill_bytes(&mut side);
        Self {
            rng,
            side: hex::encode(side),
            state: State::Waiting,
            role: None,
            key: None,
            version: None,
            pending_please: None,
            next_phase: 0,
            generation: 0,
            conns: BTreeMap::new(),
            inbound: Inbound::default(),
            outbound: Outbound::new(config.outbound_budget),
            subchannels: Subchannels::new(config.expected_subprotocols.clone()),
            keepalive: None,
            reads_paused: false,
            outputs: VecDeque::new(),
            config,
        }
    }

    /// Our dilation side (16 hex chars), as sent in `please`.
    #[must_use]
    pub fn side(&self) -> &str {
        &self.side
    }

    /// Our role, once the peer's `please` has arrived.
    #[must_use]
    pub fn role(&self) -> Option<Role> {
        self.role
    }

    /// Whether a connection is up.
    #[must_use]
    pub fn is_connected(&self) -> bool {
        matches!(self.state, State::Connected(..))
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When to feed [`Input::Timeout`].
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Connected(..) => self.keepalive.as_ref().map(|k| k.next),
            _ => None,
        }
    }

    /// Feeds one input.
    pub fn handle(&mut self, now: Instant, input: Input) {
        if self.state == State::Stopped {
            if let Input::ConnectionMade { id, .. } = input {
                self.outputs.push_back(Output::CloseConnection { id });
            }
            return;
        }
        match input {
            Input::DilationKey(key) => {
                self.key = Some(key);
                self.maybe_start();
            }
            Input::PeerVersions(versions) => {
                // The first of our versions that the peer also lists.
                let theirs = versions.get("can-dilate").and_then(Value::as_array);
                let shared = CAN_DILATE.iter().copied().find(|ours| {
                    theirs.is_some_and(|t| t.iter().any(|v| v.as_str() == Some(ours)))
                });
                let Some(version) = shared else {
                    self.fail(DilationError::PeerCannotDilate);
                    return;
                };
                self.version = Some(version);
                self.maybe_start();
            }
            Input::PeerMessage(body) => self.peer_message(now, &body),
            Input::LocalHints { generation, hints } => {
                if self.state == State::Connecting(generation) {
                    let hints = hints.to_message()["hints-v1"].take();
                    self.send_l1(json!({"type": "connection-hints", "hints": hints}));
                }
            }
            Input::ConnectionMade {
                id,
                generation,
                relay,
            } => self.connection_made(id, generation, relay),
            Input::ConnectionData { id, data } => self.connection_data(id, &data),
            Input::ConnectionRecord { id, record } => {
                if self.conns.get(&id).is_some_and(Connection::is_handed_over) {
                    self.got_record(now, id, record);
                }
            }
            Input::ConnectionLost { id } => {
                if self.conns.remove(&id).is_some() {
                    if let State::Connected(_, conn) = self.state {
                        if conn == id {
                            self.lost();
                        }
                    }
                }
            }
            Input::Timeout => self.timeout(now),
            Input::Stop => self.stop(),
        }
    }

    /// Accepts the peer's subchannels for `subprotocol`; held ones are announced now.
    pub fn listen(&mut self, subprotocol: &str) {
        for released in self.subchannels.listen(subprotocol) {
            self.event(Event::SubchannelOpened {
                scid: released.scid,
                subprotocol: subprotocol.to_owned(),
            });
            for data in released.data {
                self.event(Event::SubchannelData {
                    scid: released.scid,
                    data,
                });
            }
            if released.closed {
                let record = self.outbound.queue_close(released.scid);
                self.send(&record);
                self.event(Event::SubchannelClosed {
                    scid: released.scid,
                });
            }
        }
    }

    /// Opens a subchannel for `subprotocol`. Data may be written at once (queued until
    /// connected).
    pub fn open(&mut self, subprotocol: &str) -> Result<SubchannelId, SubchannelError> {
        self.check_running()?;
        let scid = self.subchannels.open_local(subprotocol)?;
        let record = self.outbound.queue_open(scid, subprotocol);
        self.send(&record);
        Ok(scid)
    }

    /// Writes to a subchannel; returns how many bytes were accepted (fewer than `data.len()`
    /// when the outbound budget is full: then [`Event::WritesPaused`] is output, and the rest
    /// should be written after [`Event::WritesResumed`]). The records share `data` (no copy).
    pub fn write(&mut self, scid: SubchannelId, data: &Bytes) -> Result<usize, SubchannelError> {
        self.check_running()?;
        self.subchannels.check_writable(scid)?;
        let mut accepted = 0;
        while accepted < data.len() {
            let room = self.outbound.room();
            if room <= DATA_HEADER_LEN {
                break;
            }
            let take = (data.len() - accepted)
                .min(MAX_DATA_PAYLOAD)
                .min(room - DATA_HEADER_LEN);
            let record = self
                .outbound
                .queue_data(scid, data.slice(accepted..accepted + take));
            self.send(&record);
            accepted += take;
        }
        if accepted < data.len() && self.outbound.pause() {
            self.event(Event::WritesPaused);
        }
        Ok(accepted)
    }

    /// Closes our half of a subchannel (we may still receive until the peer's CLOSE).
    pub fn close(&mut self, scid: SubchannelId) -> Result<(), SubchannelError> {
        self.check_running()?;
        self.subchannels.close_local(scid)?;
        let record = self.outbound.queue_close(scid);
        self.send(&record);
        Ok(())
    }

    /// Number of sent OPEN/DATA/CLOSE records not yet ACKed by the peer.
    #[must_use]
    pub fn unacked_records(&self) -> usize {
        self.outbound.unacked_len()
    }

    /// Whether writers are paused.
    #[must_use]
    pub fn writes_paused(&self) -> bool {
        self.outbound.is_paused()
    }

    /// Tells the Leader's keepalive whether the host has stopped reading the connection (its
    /// application reads slowly): a PONG cannot arrive then, so a keepalive interval that ends
    /// while reads are paused is not counted as missed.
    pub fn set_reads_paused(&mut self, paused: bool) {
        self.reads_paused = paused;
    }

    fn check_running(&self) -> Result<(), SubchannelError> {
        if self.state == State::Stopped {
            Err(SubchannelError::Stopped)
        } else {
            Ok(())
        }
    }

    fn event(&mut self, event: Event) {
        self.outputs.push_back(Output::Event(event));
    }

    fn send_l1(&mut self, message: Value) {
        let phase = format!("dilate-{}", self.next_phase);
        self.next_phase += 1;
        self.outputs.push_back(Output::SendMessage {
            phase,
            body: message.to_string().into_bytes(),
        });
    }

    fn maybe_start(&mut self) {
        let (State::Waiting, Some(_), Some(version)) = (self.state, self.key, self.version) else {
            return;
        };
        self.send_l1(json!({"type": "please", "side": self.side, "use-version": version}));
        self.state = State::Wanting;
        if let Some(side) = self.pending_please.take() {
            self.got_please(&side);
        }
    }

    fn peer_message(&mut self, _now: Instant, body: &[u8]) {
        let Ok(message) = serde_json::from_slice::<Value>(body) else {
            self.fail(DilationError::BadMessage("not JSON".into()));
            return;
        };
        match message.get("type").and_then(Value::as_str) {
            Some("please") => {
                let Some(side) = message.get("side").and_then(Value::as_str) else {
                    self.fail(DilationError::BadMessage("please without side".into()));
                    return;
                };
                if side.is_empty() || side.len() > MAX_SIDE_LEN {
                    self.fail(DilationError::BadMessage("bad please side".into()));
                    return;
                }
                match self.state {
                    State::Waiting => self.pending_please = Some(side.to_owned()),
                    State::Wanting => self.got_please(side),
                    _ => {} // a second please: ignored, as the reference does
                }
            }
            Some("connection-hints") => {
                if let State::Connecting(generation) = self.state {
                    let hints = message.get("hints").cloned().unwrap_or(Value::Null);
                    // Malformed lists and unusable hints are dropped, as the reference does.
                    let hints = TransitHints::from_message(&json!({ "hints-v1": hints }))
                        .unwrap_or_default();
                    self.outputs
                        .push_back(Output::DialHints { generation, hints });
                }
            }
            Some("reconnect") => {
                if self.role != Some(Role::Follower) {
                    return;
                }
                match self.state {
                    State::Connected(_, conn) => {
                        self.drop_connection(conn);
                        self.keepalive = None;
                        self.event(Event::Disconnected);
                    }
                    State::Connecting(generation) => {
                        self.outputs
                            .push_back(Output::StopConnecting { generation });
                        self.close_all();
                    }
                    State::Lonely => {}
                    _ => return,
                }
                self.send_l1(json!({"type": "reconnecting"}));
                self.start_connecting();
            }
            Some("reconnecting") if self.state == State::Flushing => self.start_connecting(),
            _ => {} // unknown types are ignored (logged by the reference)
        }
    }

    fn got_please(&mut self, their_side: &str) {
        let role = match self.side.as_str().cmp(their_side) {
            std::cmp::Ordering::Greater => Role::Leader,
            std::cmp::Ordering::Less => Role::Follower,
            std::cmp::Ordering::Equal => {
                self.fail(DilationError::ReflectedSide);
                return;
            }
        };
        self.role = Some(role);
        self.subchannels.set_role(role);
        self.event(Event::Started { role });
        self.start_connecting();
    }

    fn start_connecting(&mut self) {
        self.generation += 1;
        self.state = State::Connecting(self.generation);
        self.outputs.push_back(Output::StartConnecting {
            generation: self.generation,
            side: self.side.clone(),
        });
    }

    fn connection_made(&mut self, id: ConnectionId, generation: Generation, relay: bool) {
        let accept = self.state == State::Connecting(generation)
            && self.conns.len() < MAX_CANDIDATES
            && !self.conns.contains_key(&id);
        let (Some(role), Some(key), true) = (self.role, self.key, accept) else {
            self.outputs.push_back(Output::CloseConnection { id });
            return;
        };
        let mut seed = [0u8; 32];
        self.rng.fill_bytes(&mut seed);
        match Connection::new(role, &key, relay.then_some(self.side.as_str()), seed) {
            Ok(conn) => {
                self.conns.insert(id, conn);
                self.flush(id);
            }
            Err(_) => self.outputs.push_back(Output::CloseConnection { id }),
        }
    }

    fn connection_data(&mut self, id: ConnectionId, data: &[u8]) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let result = conn.handle_data(data);
        while let Some(event) = self.conns.get_mut(&id).and_then(Connection::poll_event) {
            match event {
                L2Event::HandshakeDone => self.secured(id),
            }
        }
        if let Err(error) = result {
            if self.conns.contains_key(&id) {
                self.outputs
                    .push_back(Output::ConnectionFailed { id, error });
            }
            self.drop_connection(id);
            if let State::Connected(_, conn) = self.state {
                if conn == id {
                    self.lost();
                }
            }
        } else {
            self.flush(id);
        }
    }

    /// Hands a connection's transport to the host once its handshake is written; the Follower
    /// then sends its KCM.
    fn secured(&mut self, id: ConnectionId) {
        self.flush(id);
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let role = conn.role();
        let Some(transport) = conn.take_transport() else {
            return;
        };
        self.outputs.push_back(Output::Secured {
            id,
            transport: Box::new(transport),
        });
        if role == Role::Follower {
            self.outputs.push_back(Output::SendRecord {
                id,
                record: Record::Kcm,
            });
        }
    }

    fn got_record(&mut self, now: Instant, id: ConnectionId, record: Record) {
        match self.state {
            // Anything but the KCM before selection is dropped.
            State::Connecting(generation) if record == Record::Kcm => {
                self.select(now, generation, id);
            }
            State::Connected(_, conn) if conn == id => self.connected_record(record),
            _ => {}
        }
    }

    fn select(&mut self, now: Instant, generation: Generation, id: ConnectionId) {
        let others: Vec<ConnectionId> = self.conns.keys().copied().filter(|c| *c != id).collect();
        for other in others {
            self.drop_connection(other);
        }
        self.outputs
            .push_back(Output::StopConnecting { generation });
        self.state = State::Connected(generation, id);
        if self.role == Some(Role::Leader) {
            self.send(&Record::Kcm);
        }
        let replay: Vec<Record> = self.outbound.replay().cloned().collect();
        for record in &replay {
            self.send(record);
        }
        self.event(Event::Connected { generation });
        if self.role == Some(Role::Leader) {
            let mut keepalive = Keepalive {
                next: now,
                outstanding: VecDeque::new(),
                pong_seen: false,
                missed: 0,
            };
            self.ping(now, &mut keepalive);
            self.keepalive = Some(keepalive);
        }
    }

    fn ping(&mut self, now: Instant, keepalive: &mut Keepalive) {
        let mut ping_id = [0u8; 4];
        self.rng.fill_bytes(&mut ping_id);
        if keepalive.outstanding.len() >= MAX_PINGS {
            keepalive.outstanding.pop_front();
        }
        keepalive.outstanding.push_back(ping_id);
        keepalive.pong_seen = false;
        keepalive.next = now + self.config.ping_interval;
        self.send(&Record::Ping(ping_id));
    }

    fn timeout(&mut self, now: Instant) {
        let Some(mut keepalive) = self.keepalive.take() else {
            return;
        };
        if now < keepalive.next {
            self.keepalive = Some(keepalive);
            return;
        }
        if keepalive.pong_seen || self.reads_paused {
            keepalive.missed = 0;
        } else {
            keepalive.missed += 1;
        }
        if keepalive.missed >= 2 {
            if let State::Connected(_, conn) = self.state {
                self.drop_connection(conn);
                self.lost();
            }
            return;
        }
        self.ping(now, &mut keepalive);
        self.keepalive = Some(keepalive);
    }

    fn connected_record(&mut self, record: Record) {
        if let Some(seqnum) = record.seqnum() {
            let (ack, new) = self.inbound.receive(seqnum);
            self.send(&ack);
            if !new {
                return;
            }
        }
        match record {
            Record::Open {
                scid, subprotocol, ..
            } => match self.subchannels.remote_open(scid, &subprotocol) {
                RemoteOpen::Deliver => self.event(Event::SubchannelOpened { scid, subprotocol }),
                RemoteOpen::Refuse => {
                    let close = self.outbound.queue_close(scid);
                    self.send(&close);
                    self.event(Event::SubchannelRefused { scid, subprotocol });
                    self.check_overload();
                }
                RemoteOpen::Held | RemoteOpen::Ignore => {}
            },
            Record::Data { scid, data, .. } => match self.subchannels.remote_data(scid, &data) {
                RemoteData::Deliver => self.event(Event::SubchannelData { scid, data }),
                RemoteData::Refuse => {
                    let close = self.outbound.queue_close(scid);
                    self.send(&close);
                    self.check_overload();
                }
                RemoteData::Held | RemoteData::Ignore => {}
            },
            Record::Close { scid, .. } => match self.subchannels.remote_close(scid) {
                RemoteClose::AnswerAndNotify => {
                    let close = self.outbound.queue_close(scid);
                    self.send(&close);
                    self.event(Event::SubchannelClosed { scid });
                    self.check_overload();
                }
                RemoteClose::Notify => self.event(Event::SubchannelClosed { scid }),
                RemoteClose::Ignore => {}
            },
            Record::Ping(ping_id) => self.send(&Record::Pong(ping_id)),
            Record::Pong(ping_id) => {
                if let Some(k) = self.keepalive.as_mut() {
                    if let Some(pos) = k.outstanding.iter().position(|p| *p == ping_id) {
                        k.outstanding.remove(pos);
                        k.pong_seen = true;
                    }
                }
            }
            Record::Ack { seqnum } => {
                if self.outbound.handle_ack(seqnum) {
                    self.event(Event::WritesResumed);
                }
            }
            Record::Kcm => {} // a repeated KCM is harmless
        }
    }

    /// A peer that makes us queue CLOSEs without ever ACKing would grow the queue without bound.
    fn check_overload(&mut self) {
        if self.outbound.is_overloaded() {
            self.fail(DilationError::PeerNotAcking);
        }
    }

    /// Sends a record on the selected connection, if any (queued records are replayed later).
    fn send(&mut self, record: &Record) {
        let State::Connected(_, id) = self.state else {
            return;
        };
        if self.conns.get(&id).is_some_and(Connection::is_handed_over) {
            self.outputs.push_back(Output::SendRecord {
                id,
                record: record.clone(),
            });
        }
    }

    fn flush(&mut self, id: ConnectionId) {
        if let Some(data) = self.conns.get_mut(&id).and_then(Connection::poll_transmit) {
            self.outputs.push_back(Output::Transmit { id, data });
        }
    }

    /// Forgets a connection and tells the host to close it.
    fn drop_connection(&mut self, id: ConnectionId) {
        if self.conns.remove(&id).is_some() {
            self.outputs.push_back(Output::CloseConnection { id });
        }
    }

    fn close_all(&mut self) {
        let ids: Vec<ConnectionId> = self.conns.keys().copied().collect();
        for id in ids {
            self.drop_connection(id);
        }
    }

    /// The selected connection is gone (already removed from `conns`).
    fn lost(&mut self) {
        if !matches!(self.state, State::Connected(..)) {
            return;
        }
        self.keepalive = None;
        self.event(Event::Disconnected);
        match self.role {
            Some(Role::Leader) => {
                self.send_l1(json!({"type": "reconnect"}));
                self.state = State::Flushing;
            }
            _ => self.state = State::Lonely,
        }
    }

    fn stop(&mut self) {
        if let State::Connecting(generation) = self.state {
            self.outputs
                .push_back(Output::StopConnecting { generation });
        }
        self.close_all();
        self.keepalive = None;
        self.state = State::Stopped;
        self.event(Event::Stopped);
    }

    fn fail(&mut self, error: DilationError) {
        self.event(Event::Failed(error));
        self.stop();
    }
}
