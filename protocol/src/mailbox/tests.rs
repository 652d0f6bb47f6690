//! Whole-protocol tests: [`Wormhole`]s against an in-memory model of the mailbox server
//! (magic-wormhole-mailbox-server 0.8.0 semantics: acks first, echo to every opener including
//! the sender, replay on open, claim → mailbox, crowded third side, release, close).
//!
//! No IO, no sleeps: time is a virtual `Instant` advanced to the machines' own timeouts.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use serde_json::json;

use super::server_messages::{to_python_json, ClientMessage};
use super::*;

const APPID: &str = "lothar.com/wormhole/text-or-file-xfer";
const CODE: &str = "4-purple-sausages";

/// The one place tests read the clock: a base for virtual time.
#[allow(clippy::disallowed_methods)]
pub(crate) fn epoch() -> Instant {
    Instant::now()
}

// ---------------------------------------------------------------------------------------------
// The mailbox server model.

#[derive(Default)]
struct NameplateRec {
    mailbox: String,
    claimed: BTreeSet<String>,
    released: BTreeSet<String>,
}

#[derive(Default)]
struct MailboxRec {
    /// (side, phase, body, id)
    messages: Vec<(String, String, String, Option<String>)>,
    sides: BTreeSet<String>,
    moods: BTreeMap<String, Option<Mood>>,
}

#[derive(Default)]
struct Conn {
    side: Option<String>,
    did_claim: bool,
    did_release: bool,
    did_close: bool,
    did_allocate: bool,
    nameplate: Option<String>,
    mailbox: Option<String>,
}

#[derive(Default)]
struct Server {
    welcome: serde_json::Value,
    nameplates: BTreeMap<String, NameplateRec>,
    mailboxes: BTreeMap<String, MailboxRec>,
    conns: BTreeMap<usize, Conn>,
    outbox: BTreeMap<usize, VecDeque<String>>,
    next_mailbox: u32,
    clock: f64,
}

impl Server {
    fn new() -> Self {
        Self {
            welcome: json!({"motd": "welcome to the test server"}),
            ..Self::default()
        }
    }

    fn send(&mut self, conn: usize, mut value: serde_json::Value) {
        self.clock += 1.0;
        if let Some(map) = value.as_object_mut() {
            map.insert("server_tx".into(), json!(self.clock));
        }
        self.outbox
            .entry(conn)
            .or_default()
            .push_back(to_python_json(&value));
    }

    fn connect(&mut self, conn: usize) {
        self.conns.insert(conn, Conn::default());
        self.outbox.insert(conn, VecDeque::new());
        let welcome = self.welcome.clone();
        self.send(conn, json!({"type": "welcome", "welcome": welcome}));
    }

    fn disconnect(&mut self, conn: usize) {
        self.conns.remove(&conn);
        self.outbox.remove(&conn);
    }

    fn pop(&mut self, conn: usize) -> Option<String> {
        self.outbox.get_mut(&conn)?.pop_front()
    }

    fn error(&mut self, conn: usize, error: &str, orig: &serde_json::Value) {
        self.send(conn, json!({"type": "error", "error": error, "orig": orig}));
    }

    fn claim(&mut self, nameplate: &str, side: &str) -> Result<String, &'static str> {
        if !self.nameplates.contains_key(nameplate) {
            self.next_mailbox += 1;
            let mailbox = format!("mailbox{:06}", self.next_mailbox);
            self.nameplates.insert(
                nameplate.to_owned(),
                NameplateRec {
                    mailbox,
                    ..NameplateRec::default()
                },
            );
        }
        let rec = self.nameplates.get_mut(nameplate).expect("just inserted");
        if rec.released.contains(side) {
            return Err("reclaimed");
        }
        if !rec.claimed.contains(side) {
            if rec.claimed.len() + rec.released.len() >= 2 {
                return Err("crowded");
            }
            rec.claimed.insert(side.to_owned());
        }
        let mailbox = rec.mailbox.clone();
        self.open_mailbox(&mailbox, side)?;
        Ok(mailbox)
    }

    fn open_mailbox(&mut self, mailbox: &str, side: &str) -> Result<(), &'static str> {
        let rec = self.mailboxes.entry(mailbox.to_owned()).or_default();
        if !rec.sides.contains(side) {
            if rec.sides.len() >= 2 {
                return Err("crowded");
            }
            rec.sides.insert(side.to_owned());
        }
        Ok(())
    }

    fn message_frame(stored: &(String, String, String, Option<String>)) -> serde_json::Value {
        json!({"type": "message", "side": stored.0, "phase": stored.1, "body": stored.2,
               "server_rx": 1.0, "id": stored.3})
    }

    fn receive(&mut self, conn: usize, text: &str) {
        let orig: serde_json::Value = serde_json::from_str(text).expect("client sends JSON");
        let (id, msg) = ClientMessage::parse(text).expect("client sends valid commands");
        self.send(conn, json!({"type": "ack", "id": id}));
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let side = match (&msg, c.side.clone()) {
            (ClientMessage::Ping { ping }, _) => {
                let ping = *ping;
                return self.send(conn, json!({"type": "pong", "pong": ping}));
            }
            (ClientMessage::Bind { side, .. }, None) => {
                c.side = Some(side.clone());
                return;
            }
            (ClientMessage::Bind { .. }, Some(_)) => {
                return self.error(conn, "already bound", &orig)
            }
            (_, None) => return self.error(conn, "must bind first", &orig),
            (_, Some(side)) => side,
        };
        match msg {
            ClientMessage::Bind { .. } | ClientMessage::Ping { .. } => unreachable!(),
            ClientMessage::List => {
                let ids: Vec<_> = self
                    .nameplates
                    .iter()
                    .filter(|(_, n)| !n.claimed.is_empty())
                    .map(|(id, _)| json!({"id": id}))
                    .collect();
                self.send(conn, json!({"type": "nameplates", "nameplates": ids}));
            }
            ClientMessage::Allocate => {
                if c.did_allocate {
                    return self.error(conn, "you already allocated one, don't be greedy", &orig);
                }
                c.did_allocate = true;
                let nameplate = (1..)
                    .map(|n: u32| n.to_string())
                    .find(|n| !self.nameplates.contains_key(n))
                    .expect("a free nameplate");
                self.claim(&nameplate, &side).expect("fresh nameplate");
                self.send(conn, json!({"type": "allocated", "nameplate": nameplate}));
            }
            ClientMessage::Claim { nameplate } => {
                if c.did_claim {
                    return self.error(conn, "only one claim per connection", &orig);
                }
                c.did_claim = true;
                c.nameplate = Some(nameplate.clone());
                match self.claim(&nameplate, &side) {
                    Ok(mailbox) => self.send(conn, json!({"type": "claimed", "mailbox": mailbox})),
                    Err(e) => self.error(conn, e, &orig),
                }
            }
            ClientMessage::Release { nameplate } => {
                if c.did_release {
                    return self.error(conn, "only one release per connection", &orig);
                }
                let Some(nameplate) = nameplate.or_else(|| c.nameplate.clone()) else {
                    return self.error(conn, "release without nameplate must follow claim", &orig);
                };
                c.did_release = true;
                if let Some(rec) = self.nameplates.get_mut(&nameplate) {
                    if rec.claimed.remove(&side) {
                        rec.released.insert(side);
                    }
                }
                self.send(conn, json!({"type": "released"}));
            }
            ClientMessage::Open { mailbox } => {
                if c.mailbox.is_some() {
                    return self.error(conn, "only one open per connection", &orig);
                }
                if let Err(e) = self.open_mailbox(&mailbox, &side) {
                    return self.error(conn, e, &orig);
                }
                self.conns.get_mut(&conn).expect("exists").mailbox = Some(mailbox.clone());
                let replay: Vec<_> = self.mailboxes[&mailbox]
                    .messages
                    .iter()
                    .map(Self::message_frame)
                    .collect();
                for frame in replay {
                    self.send(conn, frame);
                }
            }
            ClientMessage::Add { phase, body } => {
                let Some(mailbox) = c.mailbox.clone() else {
                    return self.error(conn, "must open mailbox before adding", &orig);
                };
                let stored = (side, phase, body, id);
                let frame = Self::message_frame(&stored);
                self.mailboxes
                    .get_mut(&mailbox)
                    .expect("opened")
                    .messages
                    .push(stored);
                let listeners: Vec<usize> = self
                    .conns
                    .iter()
                    .filter(|(_, c)| c.mailbox.as_deref() == Some(mailbox.as_str()))
                    .map(|(i, _)| *i)
                    .collect();
                for listener in listeners {
                    self.send(listener, frame.clone());
                }
            }
            ClientMessage::Close { mailbox, mood } => {
                if c.did_close {
                    return self.error(conn, "only one close per connection", &orig);
                }
                c.did_close = true;
                c.mailbox = None;
                if let Some(mailbox) = mailbox {
                    self.mailboxes
                        .entry(mailbox)
                        .or_default()
                        .moods
                        .insert(side, mood);
                }
                self.send(conn, json!({"type": "closed"}));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The network: peers, the server, virtual time.

struct Peer {
    w: Wormhole,
    side: String,
    events: Vec<Event>,
    /// Every frame this peer sent, parsed.
    sent: Vec<ClientMessage>,
    connected: bool,
    refuse_connect: bool,
    /// Frames sent while deaf never reach the server (a connection dying silently).
    deaf: bool,
    connects: usize,
    refused: usize,
    disconnects: usize,
    outputs_after_closed: usize,
}

impl Peer {
    fn closed(&self) -> Option<(Mood, Option<WormholeError>)> {
        self.events.iter().find_map(|e| match e {
            Event::Closed { mood, error } => Some((*mood, error.clone())),
            _ => None,
        })
    }

    fn received(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Received(m) => Some(String::from_utf8_lossy(m).into_owned()),
                _ => None,
            })
            .collect()
    }

    fn verifier(&self) -> Option<[u8; 32]> {
        self.events.iter().find_map(|e| match e {
            Event::Verified { verifier } => Some(*verifier),
            _ => None,
        })
    }

    fn code(&self) -> Option<String> {
        self.events.iter().find_map(|e| match e {
            Event::Code(c) => Some(c.clone()),
            _ => None,
        })
    }

    fn sent_kinds(&self) -> Vec<String> {
        self.sent
            .iter()
            .map(|m| match m {
                ClientMessage::Add { phase, .. } => format!("add {phase}"),
                other => other.kind().to_owned(),
            })
            .collect()
    }

    fn warnings(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, Event::Warning(_)))
            .count()
    }
}

struct Net {
    now: Instant,
    server: Server,
    peers: Vec<Peer>,
    /// Message frames (to peer, phase) parked instead of delivered, until `release_held`.
    hold: Vec<(usize, String)>,
    held: Vec<(usize, String)>,
    /// Deliver every message frame twice.
    duplicate: bool,
}

fn config(side: &str, seed: u8) -> WormholeConfig {
    WormholeConfig {
        appid: APPID.into(),
        side: side.into(),
        app_versions: json!({}),
        extra_versions: serde_json::Map::new(),
        rng_seed: [seed; 32],
    }
}

impl Net {
    fn new() -> Self {
        Self {
            now: epoch(),
            server: Server::new(),
            peers: Vec::new(),
            hold: Vec::new(),
            held: Vec::new(),
            duplicate: false,
        }
    }

    /// Adds a peer (side `aaaaaaaaaa`, `bbbbbbbbbb`, ... by index) and returns its index.
    fn add(&mut self, code: CodeSource) -> usize {
        let index = self.peers.len();
        let letter = char::from(b'a' + u8::try_from(index).expect("few peers"));
        let side = letter.to_string().repeat(10);
        let w = Wormhole::new(
            self.now,
            config(&side, u8::try_from(index + 1).expect("few")),
            code,
        );
        self.peers.push(Peer {
            w,
            side,
            events: Vec::new(),
            sent: Vec::new(),
            connected: false,
            refuse_connect: false,
            deaf: false,
            connects: 0,
            refused: 0,
            disconnects: 0,
            outputs_after_closed: 0,
        });
        index
    }

    fn handle(&mut self, peer: usize, input: Input) {
        self.peers[peer].w.handle(self.now, input);
    }

    /// Runs until no peer has output and no server frame is pending.
    fn pump(&mut self) {
        for _ in 0..100_000 {
            let mut progress = false;
            for i in 0..self.peers.len() {
                while let Some(output) = self.peers[i].w.poll_output() {
                    progress = true;
                    if self.peers[i].closed().is_some() {
                        self.peers[i].outputs_after_closed += 1;
                    }
                    match output {
                        Output::Connect => {
                            let peer = &mut self.peers[i];
                            assert!(!peer.connected, "Connect while connected");
                            peer.connects += 1;
                            if peer.refuse_connect {
                                peer.refused += 1;
                                peer.w
                                    .handle(self.now, Input::ConnectFailed("refused".into()));
                            } else {
                                peer.connected = true;
                                self.server.connect(i);
                                peer.w.handle(self.now, Input::Connected);
                            }
                        }
                        Output::Disconnect => {
                            let peer = &mut self.peers[i];
                            peer.disconnects += 1;
                            peer.connected = false;
                            self.server.disconnect(i);
                        }
                        Output::SendFrame(text) => {
                            let peer = &mut self.peers[i];
                            assert!(peer.connected, "frame sent while not connected: {text}");
                            let (_, parsed) = ClientMessage::parse(&text).expect("valid frame");
                            peer.sent.push(parsed);
                            if !peer.deaf {
                                self.server.receive(i, &text);
                            }
                        }
                        Output::Event(event) => self.peers[i].events.push(event),
                    }
                }
                while let Some(frame) = self.server.pop(i) {
                    progress = true;
                    let value: serde_json::Value =
                        serde_json::from_str(&frame).expect("server JSON");
                    let is_message = value["type"] == "message";
                    let from_peer = value["side"] != json!(self.peers[i].side);
                    if is_message
                        && from_peer
                        && self
                            .hold
                            .iter()
                            .any(|(p, phase)| *p == i && value["phase"] == json!(phase))
                    {
                        self.held.push((i, frame));
                        continue;
                    }
                    self.handle(i, Input::ServerText(frame.clone()));
                    if self.duplicate && is_message {
                        self.handle(i, Input::ServerText(frame));
                    }
                }
            }
            if !progress {
                return;
            }
        }
        panic!("the network did not settle");
    }

    /// Delivers the parked frames, in the order given (then pumps).
    fn release_held(&mut self, order: &[&str]) {
        let mut held = std::mem::take(&mut self.held);
        self.hold.clear();
        for phase in order {
            let pos = held
                .iter()
                .position(|(_, f)| f.contains(&format!("\"phase\": \"{phase}\"")))
                .expect("held phase");
            let (peer, frame) = held.remove(pos);
            self.handle(peer, Input::ServerText(frame));
        }
        for (peer, frame) in held {
            self.handle(peer, Input::ServerText(frame));
        }
        self.pump();
    }

    /// Advances virtual time to the earliest timeout and fires it (then pumps).
    fn advance(&mut self) -> bool {
        let Some(next) = self.peers.iter().filter_map(|p| p.w.poll_timeout()).min() else {
            return false;
        };
        self.now = self.now.max(next);
        for i in 0..self.peers.len() {
            if self.peers[i]
                .w
                .poll_timeout()
                .is_some_and(|t| t <= self.now)
            {
                self.handle(i, Input::Timeout);
            }
        }
        self.pump();
        true
    }

    /// The server drops the connection of `peer`.
    fn drop_connection(&mut self, peer: usize) {
        self.server.disconnect(peer);
        self.peers[peer].connected = false;
        self.handle(peer, Input::ConnectionLost);
        self.pump();
    }

    fn close_all(&mut self) {
        for i in 0..self.peers.len() {
            self.handle(i, Input::Close);
        }
        self.pump();
    }

    /// Checks the end of every peer: one Disconnect (if it ever connected), Closed exactly once
    /// and last, nothing after it, no timer left.
    fn assert_all_closed_cleanly(&self) {
        for (i, p) in self.peers.iter().enumerate() {
            let closed = p
                .events
                .iter()
                .filter(|e| matches!(e, Event::Closed { .. }))
                .count();
            assert_eq!(closed, 1, "peer {i}: {:?}", p.events);
            assert!(matches!(p.events.last(), Some(Event::Closed { .. })));
            assert_eq!(p.outputs_after_closed, 0, "peer {i}");
            assert_eq!(
                p.disconnects,
                usize::from(p.connects > p.refused),
                "peer {i}"
            );
            assert!(!p.connected);
            assert!(p.w.is_closed());
            assert_eq!(p.w.poll_timeout(), None);
        }
    }
}

fn pair(code: &str) -> Net {
    let mut net = Net::new();
    net.add(CodeSource::Set(code.into()));
    net.add(CodeSource::Set(code.into()));
    net
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[test]
fn text_exchanged_both_ways_end_to_end() {
    let mut net = pair(CODE);
    net.pump();
    let (a, b) = (&net.peers[0], &net.peers[1]);
    assert!(a.verifier().is_some());
    assert_eq!(a.verifier(), b.verifier());
    assert_eq!(a.w.key(), b.w.key());
    assert!(a.w.key().is_some());
    assert!(a
        .events
        .contains(&Event::Versions(json!({"app_versions": {}}))));
    assert!(a
        .events
        .contains(&Event::Motd("welcome to the test server".into())));
    assert_eq!(a.code().as_deref(), Some(CODE));

    net.handle(0, Input::Send(b"hello from a".to_vec()));
    net.handle(1, Input::Send(b"hello from b".to_vec()));
    net.handle(1, Input::Send(b"and again".to_vec()));
    net.pump();
    assert_eq!(net.peers[1].received(), ["hello from a"]);
    assert_eq!(net.peers[0].received(), ["hello from b", "and again"]);

    net.close_all();
    for p in &net.peers {
        assert_eq!(p.closed(), Some((Mood::Happy, None)));
        assert_eq!(p.warnings(), 0, "{:?}", p.events);
    }
    net.assert_all_closed_cleanly();
    // The observed Python sequence (PROTOCOL.md §2): bind, claim, open, add pake; on the peer's
    // pake: release, then add version (the reference's Mailbox releases before it hands the
    // message on); app phases; close.
    assert_eq!(
        net.peers[0].sent_kinds(),
        [
            "bind",
            "claim",
            "open",
            "add pake",
            "release",
            "add version",
            "add 0",
            "close"
        ]
    );
    let moods = &net.server.mailboxes["mailbox000001"].moods;
    assert_eq!(moods.values().collect::<Vec<_>>(), [&Some(Mood::Happy); 2]);
    // Both released: the nameplate is free again.
    assert!(net.server.nameplates["4"].claimed.is_empty());
}

#[test]
fn first_frames_are_bind_then_claim_and_the_event_order_is_sane() {
    let mut net = Net::new();
    let a = net.add(CodeSource::Set(CODE.into()));
    assert_eq!(net.peers[a].w.poll_output(), Some(Output::Connect));
    net.handle(a, Input::Connected);
    let mut frames = Vec::new();
    while let Some(o) = net.peers[a].w.poll_output() {
        frames.push(o);
    }
    // Event::Code came before Connected was handled; then bind, claim.
    assert_eq!(frames[0], Output::Event(Event::Code(CODE.into())));
    let kinds: Vec<_> = frames[1..]
        .iter()
        .map(|o| match o {
            Output::SendFrame(t) => ClientMessage::parse(t).expect("valid").1.kind(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds, ["bind", "claim"]);
}

#[test]
fn same_seeds_replay_the_same_run() {
    let run = || {
        let mut net = pair(CODE);
        net.pump();
        net.handle(0, Input::Send(b"x".to_vec()));
        net.pump();
        net.close_all();
        net.peers
            .iter()
            .map(|p| (p.sent.clone(), p.events.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(), run());
}

#[test]
fn allocated_code() {
    let mut net = Net::new();
    let a = net.add(CodeSource::Allocate { words: 2 });
    net.pump();
    let code = net.peers[a].code().expect("allocated");
    assert!(code.starts_with("1-"), "{code}");
    assert_eq!(code.split('-').count(), 3);
    assert_eq!(
        net.peers[a].sent_kinds()[..3],
        ["bind", "allocate", "claim"]
    );
    let b = net.add(CodeSource::Set(code.clone()));
    net.pump();
    assert_eq!(net.peers[a].verifier(), net.peers[b].verifier());
    assert!(net.peers[b].verifier().is_some());
    net.close_all();
    net.assert_all_closed_cleanly();
}

#[test]
fn interactive_code_input() {
    let mut net = Net::new();
    let a = net.add(CodeSource::Set("7-guitarist-revenge".into()));
    net.pump();
    let b = net.add(CodeSource::Interactive);
    net.pump();
    assert!(net.peers[b]
        .events
        .contains(&Event::Nameplates(vec!["7".into()])));
    net.handle(b, Input::RefreshNameplates);
    net.handle(b, Input::ChooseNameplate("7".into()));
    net.pump();
    assert!(net.peers[b].sent_kinds().contains(&"claim".to_owned()));
    assert!(net.peers[b].verifier().is_none());
    net.handle(b, Input::ChooseWords("guitarist-revenge".into()));
    net.pump();
    assert_eq!(net.peers[b].code().as_deref(), Some("7-guitarist-revenge"));
    assert!(net.peers[b].verifier().is_some());
    assert_eq!(net.peers[a].verifier(), net.peers[b].verifier());
}

#[test]
fn sends_are_queued_until_verified() {
    let mut net = Net::new();
    let a = net.add(CodeSource::Set(CODE.into()));
    net.handle(a, Input::Send(b"early".to_vec()));
    net.pump();
    assert_eq!(
        net.peers[a].sent_kinds(),
        ["bind", "claim", "open", "add pake"]
    );
    let b = net.add(CodeSource::Set(CODE.into()));
    net.pump();
    assert_eq!(net.peers[b].received(), ["early"]);
    // A's "0" went out only after A had verified B (after its version).
    let kinds = net.peers[a].sent_kinds();
    let zero = kinds.iter().position(|k| k == "add 0").expect("sent");
    let version = kinds.iter().position(|k| k == "add version").expect("sent");
    assert!(zero > version, "{kinds:?}");
}

#[test]
fn messages_before_the_peers_pake_are_held_back() {
    let mut net = Net::new();
    let a = net.add(CodeSource::Set(CODE.into()));
    net.hold.push((a, "pake".into()));
    let b = net.add(CodeSource::Set(CODE.into()));
    net.pump();
    // A has B's version (and maybe more) but not B's pake: nothing verified, nothing scary.
    assert!(net.peers[a].verifier().is_none());
    assert!(net.peers[a].closed().is_none());
    assert!(net.peers[b].verifier().is_none(), "B waits for A's version");
    net.release_held(&["pake"]);
    assert!(net.peers[a].verifier().is_some());
    assert_eq!(net.peers[a].verifier(), net.peers[b].verifier());
}

#[test]
fn duplicates_and_own_echoes_are_dropped() {
    let mut net = pair(CODE);
    net.duplicate = true;
    net.pump();
    net.handle(0, Input::Send(b"one".to_vec()));
    net.handle(0, Input::Send(b"two".to_vec()));
    net.pump();
    assert_eq!(net.peers[1].received(), ["one", "two"]);
    for p in &net.peers {
        assert_eq!(p.warnings(), 0, "{:?}", p.events);
        assert!(p.closed().is_none());
    }
    // A second open replays everything, echoes included: still nothing new.
    net.drop_connection(1);
    while net.peers[1].connects < 2 {
        assert!(net.advance());
    }
    assert_eq!(net.peers[1].received(), ["one", "two"]);
    assert_eq!(
        net.peers[1]
            .events
            .iter()
            .filter(|e| matches!(e, Event::Verified { .. }))
            .count(),
        1
    );
    net.close_all();
    assert_eq!(net.peers[1].closed(), Some((Mood::Happy, None)));
    net.assert_all_closed_cleanly();
}

#[test]
fn numbered_phases_out_of_order_are_delivered_in_order() {
    let mut net = pair(CODE);
    net.pump();
    net.hold.push((1, "0".into()));
    net.hold.push((1, "1".into()));
    for m in ["m0", "m1", "m2", "m3"] {
        net.handle(0, Input::Send(m.as_bytes().to_vec()));
    }
    net.pump();
    assert!(net.peers[1].received().is_empty());
    net.release_held(&["1", "0"]);
    assert_eq!(net.peers[1].received(), ["m0", "m1", "m2", "m3"]);
}

#[test]
fn wrong_code_is_scary_on_both_sides() {
    let mut net = Net::new();
    net.add(CodeSource::Set(CODE.into()));
    net.add(CodeSource::Set("4-purple-sausage".into()));
    net.handle(0, Input::Send(b"secret".to_vec()));
    net.pump();
    for p in &net.peers {
        assert_eq!(
            p.closed(),
            Some((Mood::Scary, Some(WormholeError::WrongCode)))
        );
        assert!(p.verifier().is_none());
        assert!(p.received().is_empty());
        assert!(p.events.contains(&Event::KeyEstablished));
    }
    // The secret never left A.
    assert!(!net.peers[0].sent_kinds().contains(&"add 0".to_owned()));
    net.assert_all_closed_cleanly();
    let moods = &net.server.mailboxes["mailbox000001"].moods;
    assert_eq!(moods.values().collect::<Vec<_>>(), [&Some(Mood::Scary); 2]);
}

#[test]
fn crowded_third_side_ends_with_the_server_error() {
    let mut net = pair(CODE);
    net.pump();
    let c = net.add(CodeSource::Set(CODE.into()));
    net.pump();
    assert_eq!(
        net.peers[c].closed(),
        Some((Mood::Errory, Some(WormholeError::Server("crowded".into()))))
    );
    assert_eq!(
        net.peers[c]
            .closed()
            .and_then(|c| c.1)
            .map(|e| e.to_string()),
        Some("the mailbox server reported an error: crowded".into())
    );
    // A and B are unaffected.
    assert!(net.peers[0].closed().is_none());
    net.close_all();
    assert_eq!(net.peers[0].closed(), Some((Mood::Happy, None)));
    net.assert_all_closed_cleanly();
}

#[test]
fn welcome_error_is_unwelcome() {
    let mut net = Net::new();
    net.server.welcome = json!({"error": "this server is closed"});
    let a = net.add(CodeSource::Set(CODE.into()));
    net.pump();
    assert_eq!(
        net.peers[a].closed(),
        Some((
            Mood::Unwelcome,
            Some(WormholeError::Welcome("this server is closed".into()))
        ))
    );
    net.assert_all_closed_cleanly();
}

#[test]
fn a_first_connection_that_never_opens_is_fatal_after_its_retries() {
    let mut net = Net::new();
    let a = net.add(CodeSource::Set(CODE.into()));
    net.peers[a].refuse_connect = true;
    net.pump();
    assert_eq!(net.peers[a].closed(), None, "retried first");
    while net.peers[a].closed().is_none() {
        assert!(net.advance(), "a retry is due");
    }
    assert_eq!(
        net.peers[a].closed(),
        Some((
            Mood::Errory,
            Some(WormholeError::ConnectFailed("refused".into()))
        ))
    );
    assert_eq!(net.peers[a].connects, 5);
    net.assert_all_closed_cleanly();
    assert!(!net.advance(), "no retry after that");
}

#[test]
fn reconnect_resends_bind_claim_open_and_unechoed_adds() {
    let mut net = Net::new();
    let a = net.add(CodeSource::Set(CODE.into()));
    net.pump();
    // A's connection dies silently: its next frames never reach the server.
    net.peers[a].deaf = true;
    net.handle(a, Input::Send(b"queued".to_vec()));
    net.pump();
    net.peers[a].deaf = false;
    net.drop_connection(a);
    let before = net.peers[a].sent.len();
    assert!(net.peers[a].w.poll_timeout().is_some());
    while net.peers[a].connects < 2 {
        assert!(net.advance());
    }
    let resent: Vec<_> = net.peers[a].sent_kinds()[before..].to_vec();
    // The pake was echoed before the drop, so it is not re-sent.
    assert_eq!(resent, ["bind", "claim", "open"]);
    let b = net.add(CodeSource::Set(CODE.into()));
    net.pump();
    assert!(net.peers[b].verifier().is_some());
    assert_eq!(net.peers[b].received(), ["queued"]);

    // Mid-exchange: A sends while deaf, then loses the connection; the add is re-sent.
    net.peers[a].deaf = true;
    net.handle(a, Input::Send(b"lost in transit".to_vec()));
    net.pump();
    net.peers[a].deaf = false;
    net.drop_connection(a);
    let before = net.peers[a].sent.len();
    while net.peers[a].connects < 3 {
        assert!(net.advance());
    }
    // Released already: no claim this time.
    assert_eq!(
        net.peers[a].sent_kinds()[before..],
        ["bind", "open", "add 1"]
    );
    assert_eq!(net.peers[b].received(), ["queued", "lost in transit"]);
    net.close_all();
    for p in &net.peers {
        assert_eq!(p.closed(), Some((Mood::Happy, None)));
    }
    net.assert_all_closed_cleanly();
}

#[test]
fn reconnect_backoff_grows_while_the_server_is_down() {
    let mut net = pair(CODE);
    net.pump();
    net.peers[0].refuse_connect = true;
    net.drop_connection(0);
    let mut delays = Vec::new();
    let mut last = net.now;
    for _ in 0..12 {
        assert!(net.advance());
        delays.push(net.now - last);
        last = net.now;
    }
    assert_eq!(delays[0], Duration::from_secs(1));
    assert_eq!(delays[1], Duration::from_millis(1500));
    assert_eq!(*delays.last().expect("some"), Duration::from_secs(60));
    assert!(
        net.peers[0].closed().is_none(),
        "not fatal after a first success"
    );
    net.peers[0].refuse_connect = false;
    assert!(net.advance());
    assert!(net.peers[0].connected);
    net.handle(1, Input::Send(b"after the outage".to_vec()));
    net.pump();
    assert_eq!(net.peers[0].received(), ["after the outage"]);
}

#[test]
fn close_while_disconnected_finishes_after_reconnect() {
    let mut net = pair(CODE);
    net.pump();
    net.drop_connection(0);
    net.handle(0, Input::Close);
    net.pump();
    assert!(net.peers[0].closed().is_none(), "waits for released/closed");
    assert!(net.advance());
    assert_eq!(net.peers[0].closed(), Some((Mood::Happy, None)));
    assert_eq!(net.peers[0].disconnects, 1);
}

#[test]
fn lonely_close() {
    let mut net = Net::new();
    let a = net.add(CodeSource::Set(CODE.into()));
    net.pump();
    net.handle(a, Input::Close);
    net.pump();
    assert_eq!(net.peers[a].closed(), Some((Mood::Lonely, None)));
    assert_eq!(
        net.peers[a].sent_kinds(),
        ["bind", "claim", "open", "add pake", "release", "close"]
    );
    net.assert_all_closed_cleanly();
    // Inputs after the end are ignored.
    net.handle(a, Input::Send(b"late".to_vec()));
    net.handle(a, Input::Close);
    net.pump();
    net.assert_all_closed_cleanly();
}

#[test]
fn close_before_connecting() {
    let mut net = Net::new();
    let a = net.add(CodeSource::Set(CODE.into()));
    net.handle(a, Input::Close);
    net.pump();
    assert_eq!(net.peers[a].closed(), Some((Mood::Lonely, None)));
    assert_eq!(
        net.peers[a].disconnects, 1,
        "the pending connect is cancelled"
    );
}

#[test]
fn invalid_code_ends_at_once() {
    let mut net = Net::new();
    let a = net.add(CodeSource::Set("purple-sausages".into()));
    net.pump();
    assert!(matches!(
        net.peers[a].closed(),
        Some((Mood::Errory, Some(WormholeError::InvalidCode(_))))
    ));
    assert_eq!(net.peers[a].connects, 0);
    net.assert_all_closed_cleanly();
}

#[test]
fn malformed_server_json_is_errory() {
    let mut net = pair(CODE);
    net.pump();
    net.handle(0, Input::ServerText("{\"type\": \"claimed\"".into()));
    net.pump();
    let (mood, error) = net.peers[0].closed().expect("closed");
    assert_eq!(mood, Mood::Errory);
    let Some(WormholeError::Protocol(text)) = error else {
        panic!("{error:?}")
    };
    assert!(
        text.starts_with("malformed message from the mailbox server"),
        "{text}"
    );
    net.assert_all_closed_cleanly_for(0);
}

#[test]
fn unknown_server_message_type_is_only_a_warning() {
    let mut net = pair(CODE);
    net.pump();
    net.handle(
        0,
        Input::ServerText(r#"{"type": "permission-required", "server_tx": 1.0}"#.into()),
    );
    net.pump();
    assert_eq!(net.peers[0].warnings(), 1);
    assert!(net.peers[0].closed().is_none());
}

#[test]
fn abort_is_errory() {
    let mut net = pair(CODE);
    net.pump();
    net.handle(0, Input::Abort("binary frame".into()));
    net.pump();
    assert_eq!(
        net.peers[0].closed(),
        Some((
            Mood::Errory,
            Some(WormholeError::Protocol("binary frame".into()))
        ))
    );
}

/// A peer message injected into A's connection as if from side `zzzzzzzzzz`.
fn inject_peer_message(net: &mut Net, phase: &str, body: &str) {
    let frame = json!({"type": "message", "side": "zzzzzzzzzz", "phase": phase, "body": body,
                       "server_rx": 1.0, "id": null});
    net.handle(0, Input::ServerText(frame.to_string()));
    net.pump();
}

#[test]
fn pake_without_pake_v1_is_scary() {
    let mut net = Net::new();
    net.add(CodeSource::Set(CODE.into()));
    net.pump();
    inject_peer_message(&mut net, "pake", &hex::encode(br#"{"pake_v2": "53"}"#));
    assert_eq!(
        net.peers[0].closed(),
        Some((Mood::Scary, Some(WormholeError::WrongCode)))
    );
}

#[test]
fn peer_body_that_is_not_hex_is_scary() {
    let mut net = Net::new();
    net.add(CodeSource::Set(CODE.into()));
    net.pump();
    inject_peer_message(&mut net, "version", "not hex!");
    assert_eq!(
        net.peers[0].closed(),
        Some((Mood::Scary, Some(WormholeError::WrongCode)))
    );
}

#[test]
fn peer_message_that_does_not_decrypt_is_scary() {
    let mut net = pair(CODE);
    net.pump();
    inject_peer_message(&mut net, "0", &hex::encode([0u8; 60]));
    assert_eq!(
        net.peers[0].closed(),
        Some((Mood::Scary, Some(WormholeError::WrongCode)))
    );
}

impl Net {
    fn assert_all_closed_cleanly_for(&self, peer: usize) {
        let p = &self.peers[peer];
        assert!(matches!(p.events.last(), Some(Event::Closed { .. })));
        assert_eq!(p.outputs_after_closed, 0);
        assert_eq!(p.disconnects, 1);
        assert!(p.w.is_closed());
    }
}
