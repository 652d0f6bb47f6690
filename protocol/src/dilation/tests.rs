//! Whole-Dilation tests: two [`Dilation`] machines joined by an in-memory mailbox (L1) and an
//! in-memory "wire" of TCP connections that a test can hold, cut mid-stream and reconnect.

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use serde_json::json;

use super::*;
use crate::transit::hints::{DirectHint, RelayHint, TransitHints};

const KEY: [u8; 32] = [0x42; 32];

/// The one place these tests read the clock: a base for virtual time.
#[allow(clippy::disallowed_methods)]
fn epoch() -> Instant {
    Instant::now()
}

/// One in-memory TCP connection between peer 0 and peer 1.
struct Link {
    /// Connection id at each peer.
    ends: [ConnectionId; 2],
    /// Bytes in flight towards each peer.
    inflight: [VecDeque<u8>; 2],
    /// While true, bytes towards that peer are not delivered.
    hold: [bool; 2],
    /// Through a transit relay: each side's `please relay` line, until both are complete.
    relay: Option<[Vec<u8>; 2]>,
    /// Each end's transport once its machine handed it over (`Output::Secured`): the test is
    /// the host, sealing `SendRecord`s and opening what arrives.
    transport: [Option<l2::Transport>; 2],
}

struct Net {
    peers: [Dilation; 2],
    now: Instant,
    links: Vec<Link>,
    /// The generation each peer is currently connecting for.
    connecting: [Option<Generation>; 2],
    /// L1 messages in flight towards each peer.
    l1: [VecDeque<Vec<u8>>; 2],
    events: [Vec<Event>; 2],
    data: [BTreeMap<SubchannelId, Vec<u8>>; 2],
    /// Hints each peer was asked to dial.
    dialled: [Vec<TransitHints>; 2],
    /// L1 messages each peer sent (decoded JSON).
    sent_l1: [Vec<serde_json::Value>; 2],
    next_id: ConnectionId,
    /// Largest chunk handed to `ConnectionData` at once.
    chunk: usize,
    auto_connect: bool,
    /// New links go through a (simulated) transit relay.
    relay: bool,
    /// The relay lines seen by the simulated relay.
    relay_lines: Vec<String>,
}

fn config(seed: u8) -> DilationConfig {
    DilationConfig::new([seed; 32])
}

fn dilating_versions() -> serde_json::Value {
    json!({"can-dilate": ["ged"], "dilation-abilities": [{"type": "direct-tcp-v1"}], "app_versions": {}})
}

impl Net {
    fn new(a: DilationConfig, b: DilationConfig) -> Self {
        Self {
            peers: [Dilation::new(a), Dilation::new(b)],
            now: epoch(),
            links: Vec::new(),
            connecting: [None, None],
            l1: [VecDeque::new(), VecDeque::new()],
            events: [Vec::new(), Vec::new()],
            data: [BTreeMap::new(), BTreeMap::new()],
            dialled: [Vec::new(), Vec::new()],
            sent_l1: [Vec::new(), Vec::new()],
            next_id: 100,
            chunk: 7000,
            auto_connect: true,
            relay: false,
            relay_lines: Vec::new(),
        }
    }

    /// Two peers with the same key and dilating versions, connected.
    fn connected() -> Self {
        let mut net = Self::new(config(1), config(2));
        net.start();
        net.pump();
        assert!(net.peers[0].is_connected() && net.peers[1].is_connected());
        net
    }

    fn start(&mut self) {
        for i in 0..2 {
            let now = self.now;
            self.peers[i].handle(now, Input::DilationKey(KEY));
            self.peers[i].handle(now, Input::PeerVersions(dilating_versions()));
        }
    }

    fn leader(&self) -> usize {
        if self.peers[0].role() == Some(Role::Leader) {
            0
        } else {
            1
        }
    }

    fn apply(&mut self, i: usize, output: Output) {
        let now = self.now;
        match output {
            Output::SendMessage { phase, body } => {
                assert!(phase.starts_with("dilate-"), "{phase}");
                self.sent_l1[i].push(serde_json::from_slice(&body).expect("json"));
                self.l1[1 - i].push_back(body);
            }
            Output::StartConnecting { generation, side } => {
                assert_eq!(side, self.peers[i].side());
                self.connecting[i] = Some(generation);
                let port = u16::try_from(4000 + generation).expect("small generation");
                let hints = TransitHints {
                    direct: vec![DirectHint::new(format!("10.0.0.{i}"), port)],
                    relays: vec![],
                };
                self.peers[i].handle(now, Input::LocalHints { generation, hints });
            }
            Output::DialHints { hints, .. } => self.dialled[i].push(hints),
            Output::StopConnecting { generation } => {
                if self.connecting[i] == Some(generation) {
                    self.connecting[i] = None;
                }
            }
            Output::Transmit { id, data } => {
                if let Some(link) = self.links.iter_mut().find(|l| l.ends[i] == id) {
                    let mut data = &data[..];
                    if let Some(lines) = &mut link.relay {
                        // The relay reads each side's line; nothing may follow it before `ok`.
                        assert!(
                            !lines[i].ends_with(b"\n"),
                            "data sent before the relay's ok"
                        );
                        let end = data
                            .iter()
                            .position(|b| *b == b'\n')
                            .map_or(data.len(), |p| p + 1);
                        lines[i].extend_from_slice(&data[..end]);
                        data = &data[end..];
                        assert!(data.is_empty(), "data sent before the relay's ok");
                        if lines.iter().all(|l| l.ends_with(b"\n")) {
                            let [a, b] = lines.clone();
                            let a = String::from_utf8(a).expect("utf8");
                            let b = String::from_utf8(b).expect("utf8");
                            // Same token, different sides: the relay pairs them.
                            assert_eq!(a[..77], b[..77]);
                            assert_ne!(a, b);
                            self.relay_lines.extend([a, b]);
                            link.relay = None;
                            link.inflight[0].extend(b"ok\n");
                            link.inflight[1].extend(b"ok\n");
                        }
                    }
                    link.inflight[1 - i].extend(data);
                }
            }
            Output::Secured { id, transport } => {
                if let Some(link) = self.links.iter_mut().find(|l| l.ends[i] == id) {
                    link.transport[i] = Some(*transport);
                }
            }
            Output::SendRecord { id, record } => {
                if let Some(link) = self.links.iter_mut().find(|l| l.ends[i] == id) {
                    let mut frame = Vec::new();
                    link.transport[i]
                        .as_mut()
                        .expect("records only after Secured")
                        .sealer
                        .seal(&record, &mut frame)
                        .expect("seal");
                    link.inflight[1 - i].extend(frame);
                }
            }
            Output::ConnectionFailed { .. } => {}
            Output::CloseConnection { id } => {
                if let Some(pos) = self.links.iter().position(|l| l.ends[i] == id) {
                    let link = self.links.remove(pos);
                    self.peers[1 - i].handle(
                        now,
                        Input::ConnectionLost {
                            id: link.ends[1 - i],
                        },
                    );
                }
            }
            Output::Event(event) => {
                if let Event::SubchannelData { scid, data } = &event {
                    self.data[i]
                        .entry(*scid)
                        .or_default()
                        .extend_from_slice(data);
                }
                self.events[i].push(event);
            }
        }
    }

    /// Runs until nothing moves.
    fn pump(&mut self) {
        for _ in 0..100_000 {
            let mut progress = false;
            for i in 0..2 {
                while let Some(output) = self.peers[i].poll_output() {
                    progress = true;
                    self.apply(i, output);
                }
            }
            for i in 0..2 {
                if let Some(body) = self.l1[i].pop_front() {
                    progress = true;
                    let now = self.now;
                    self.peers[i].handle(now, Input::PeerMessage(body));
                }
            }
            if self.auto_connect && self.links.is_empty() {
                if let [Some(g0), Some(g1)] = self.connecting {
                    progress = true;
                    self.link(g0, g1);
                }
            }
            let mut l = 0;
            while l < self.links.len() {
                let mut failed = false;
                for to in 0..2 {
                    let link = &mut self.links[l];
                    if link.hold[to] {
                        continue;
                    }
                    let n = link.inflight[to].len().min(self.chunk);
                    let data: Vec<u8> = link.inflight[to].drain(..n).collect();
                    match self.deliver(l, to, data) {
                        Ok(moved) => progress |= moved,
                        Err(()) => failed = true,
                    }
                    if failed {
                        break;
                    }
                }
                if failed {
                    // The host closes a connection whose opener failed: both ends see it drop.
                    progress = true;
                    let link = self.links.remove(l);
                    let now = self.now;
                    for to in 0..2 {
                        self.peers[to].handle(now, Input::ConnectionLost { id: link.ends[to] });
                    }
                } else {
                    l += 1;
                }
            }
            if !progress {
                return;
            }
        }
        panic!("the network never went quiet");
    }

    /// Hands bytes that arrived for peer `to` on link `l` to it, as the daemon does: raw until
    /// its machine secured the connection, then through the opener as records. `Ok(moved)`;
    /// `Err` if the opener failed.
    fn deliver(&mut self, l: usize, to: usize, data: Vec<u8>) -> Result<bool, ()> {
        let now = self.now;
        let link = &mut self.links[l];
        let id = link.ends[to];
        let Some(transport) = link.transport[to].as_mut() else {
            if data.is_empty() {
                return Ok(false);
            }
            self.peers[to].handle(now, Input::ConnectionData { id, data });
            return Ok(true);
        };
        let mut moved = !data.is_empty();
        transport.opener.input().extend_from_slice(&data);
        loop {
            match transport.opener.next_record() {
                Ok(Some(record)) => {
                    moved = true;
                    self.peers[to].handle(now, Input::ConnectionRecord { id, record });
                }
                Ok(None) => return Ok(moved),
                Err(_) => return Err(()),
            }
        }
    }

    /// Makes a TCP connection between the two peers for their current generations.
    fn link(&mut self, g0: Generation, g1: Generation) {
        let ends = [self.next_id, self.next_id + 1];
        self.next_id += 2;
        self.links.push(Link {
            ends,
            inflight: [VecDeque::new(), VecDeque::new()],
            hold: [false, false],
            relay: self.relay.then(|| [Vec::new(), Vec::new()]),
            transport: [None, None],
        });
        let now = self.now;
        for (i, generation) in [(0, g0), (1, g1)] {
            self.peers[i].handle(
                now,
                Input::ConnectionMade {
                    id: ends[i],
                    generation,
                    relay: self.relay,
                },
            );
        }
    }

    /// Cuts every link: `deliver` bytes of what is in flight still arrive first (a partial
    /// frame), the rest is lost, and both ends see the connection drop.
    fn cut(&mut self, deliver: usize) {
        while !self.links.is_empty() {
            for to in 0..2 {
                let n = self.links[0].inflight[to].len().min(deliver);
                let data: Vec<u8> = self.links[0].inflight[to].drain(..n).collect();
                // A failing opener ends the link just the same.
                let _ = self.deliver(0, to, data);
            }
            let link = self.links.remove(0);
            let now = self.now;
            for to in 0..2 {
                self.peers[to].handle(now, Input::ConnectionLost { id: link.ends[to] });
            }
        }
    }

    /// One keepalive interval passes for peer `i`: its timer is due exactly then; it fires,
    /// and the network runs until quiet.
    fn keepalive_interval(&mut self, i: usize) {
        self.now += DEFAULT_PING_INTERVAL;
        assert_eq!(self.peers[i].poll_timeout(), Some(self.now));
        let now = self.now;
        self.peers[i].handle(now, Input::Timeout);
        self.pump();
    }

    fn write_all(&mut self, i: usize, scid: SubchannelId, data: &[u8]) {
        let n = self.peers[i]
            .write(scid, &bytes::Bytes::copy_from_slice(data))
            .expect("write");
        assert_eq!(n, data.len(), "the budget is large enough here");
    }

    fn count(&self, i: usize, f: impl Fn(&Event) -> bool) -> usize {
        self.events[i].iter().filter(|e| f(e)).count()
    }
}

fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt) ^ (i >> 8) as u8)
        .collect()
}

/// Both peers send `please`; the greater side leads; the first connection comes up on both.
#[test]
fn leader_follower_election() {
    let net = Net::connected();
    let l = net.leader();
    let f = 1 - l;
    assert_eq!(net.peers[f].role(), Some(Role::Follower));
    assert!(net.peers[l].side() > net.peers[f].side());
    assert_eq!(net.peers[l].side().len(), 16);
    for i in 0..2 {
        assert_eq!(
            net.sent_l1[i][0],
            json!({"type": "please", "side": net.peers[i].side(), "use-version": "ged"})
        );
        assert!(net.events[i].contains(&Event::Connected { generation: 1 }));
    }
    // Hints were exchanged while connecting and handed to the other side to dial.
    assert_eq!(net.dialled[0].len(), 1);
    assert_eq!(
        net.dialled[0][0].direct,
        vec![DirectHint::new("10.0.0.1", 4001)]
    );
    assert_eq!(
        net.dialled[1][0].direct,
        vec![DirectHint::new("10.0.0.0", 4001)]
    );
}

/// The same side on both ends (a reflection) is an error, not a role.
#[test]
fn equal_sides_fail() {
    let mut net = Net::new(config(3), config(3));
    net.start();
    net.pump();
    for i in 0..2 {
        assert!(net.events[i].contains(&Event::Failed(DilationError::ReflectedSide)));
        assert!(net.events[i].contains(&Event::Stopped));
    }
}

/// A peer whose version has no `can-dilate` (or no shared version) gets a clear error.
#[test]
fn peer_without_can_dilate_fails() {
    for versions in [
        json!({"app_versions": {}}),
        json!({"can-dilate": ["future"]}),
    ] {
        let mut d = Dilation::new(config(1));
        let now = epoch();
        d.handle(now, Input::DilationKey(KEY));
        d.handle(now, Input::PeerVersions(versions));
        let outputs: Vec<Output> = std::iter::from_fn(|| d.poll_output()).collect();
        assert_eq!(
            outputs,
            vec![
                Output::Event(Event::Failed(DilationError::PeerCannotDilate)),
                Output::Event(Event::Stopped)
            ]
        );
        assert_eq!(d.open("x"), Err(SubchannelError::Stopped));
        assert!(DilationError::PeerCannotDilate
            .to_string()
            .contains("cannot dilate"));
    }
}

/// Hints that arrive before we are connecting are dropped; L1 messages are `dilate-0, 1, …`.
#[test]
fn hints_only_while_connecting() {
    let mut d = Dilation::new(config(1));
    let now = epoch();
    d.handle(now, Input::DilationKey(KEY));
    d.handle(now, Input::PeerVersions(dilating_versions()));
    let hints = json!({"type": "connection-hints", "hints": [
        {"type": "direct-tcp-v1", "hostname": "h", "port": 1},
        {"type": "websocket-v1", "url": "ws://x"},
        {"type": "relay-v1", "hints": [{"type": "direct-tcp-v1", "hostname": "r", "port": 2}]},
    ]});
    d.handle(now, Input::PeerMessage(hints.to_string().into_bytes()));
    let outputs: Vec<Output> = std::iter::from_fn(|| d.poll_output()).collect();
    assert_eq!(outputs.len(), 1, "{outputs:?}");
    assert!(matches!(&outputs[0], Output::SendMessage { phase, .. } if phase == "dilate-0"));
    // Now the peer's please (a smaller side: we lead) starts generation 1; hints are accepted.
    let please = json!({"type": "please", "side": "0000000000000000", "use-version": "ged"});
    d.handle(now, Input::PeerMessage(please.to_string().into_bytes()));
    d.handle(now, Input::PeerMessage(hints.to_string().into_bytes()));
    let outputs: Vec<Output> = std::iter::from_fn(|| d.poll_output()).collect();
    assert_eq!(
        outputs,
        vec![
            Output::Event(Event::Started { role: Role::Leader }),
            Output::StartConnecting {
                generation: 1,
                side: d.side().to_owned()
            },
            Output::DialHints {
                generation: 1,
                hints: TransitHints {
                    direct: vec![DirectHint::new("h", 1)],
                    relays: vec![RelayHint {
                        hints: vec![DirectHint::new("r", 2)]
                    }],
                }
            },
        ]
    );
    d.handle(
        now,
        Input::LocalHints {
            generation: 1,
            hints: TransitHints {
                direct: vec![DirectHint::new("10.1.2.3", 9)],
                relays: vec![],
            },
        },
    );
    let Some(Output::SendMessage { phase, body }) = d.poll_output() else {
        panic!("hints not sent");
    };
    assert_eq!(phase, "dilate-1");
    let sent: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(
        sent,
        json!({"type": "connection-hints", "hints": [
            {"type": "direct-tcp-v1", "priority": 0.0, "hostname": "10.1.2.3", "port": 9}]})
    );
    // A connection for a stale generation is closed at once.
    d.handle(
        now,
        Input::ConnectionMade {
            id: 9,
            generation: 7,
            relay: false,
        },
    );
    assert_eq!(d.poll_output(), Some(Output::CloseConnection { id: 9 }));

    // A connection of this generation that sends a length prefix beyond any frame after the
    // preamble fails with that reason, then is closed.
    d.handle(
        now,
        Input::ConnectionMade {
            id: 10,
            generation: 1,
            relay: false,
        },
    );
    while let Some(output) = d.poll_output() {
        assert!(
            matches!(output, Output::Transmit { id: 10, .. }),
            "{output:?}"
        );
    }
    let mut bad = l2::FOLLOWER_PREAMBLE.to_vec();
    bad.extend_from_slice(&u32::MAX.to_be_bytes());
    d.handle(now, Input::ConnectionData { id: 10, data: bad });
    let outputs: Vec<Output> = std::iter::from_fn(|| d.poll_output()).collect();
    assert_eq!(
        outputs,
        vec![
            Output::ConnectionFailed {
                id: 10,
                error: l2::L2Error::FrameTooLarge(u32::MAX)
            },
            Output::CloseConnection { id: 10 },
        ]
    );
}

/// A subchannel stream survives a connection cut mid-frame: the Leader reconnects (reconnect /
/// reconnecting over L1), replays every unACKed record, the Follower drops the duplicates but
/// ACKs them, and every byte arrives exactly once and in order, in both directions.
#[test]
fn replay_after_lost_connection() {
    let mut net = Net::connected();
    let l = net.leader();
    let f = 1 - l;
    net.peers[f].listen("chat");
    let scid = net.peers[l].open("chat").expect("open");
    assert_eq!(scid % 2, 1, "leader ids are odd");

    let parts: Vec<Vec<u8>> = (0..4)
        .map(|p| pattern(150_000 + p * 1000, p as u8))
        .collect();
    // Part 0: delivered and ACKed.
    net.write_all(l, scid, &parts[0]);
    net.pump();
    assert_eq!(net.peers[l].unacked_records(), 0);
    // The follower answers on the same subchannel.
    net.write_all(f, scid, b"pong-0");
    // Part 1: delivered, but the ACKs never reach the leader.
    net.links[0].hold[l] = true;
    net.write_all(l, scid, &parts[1]);
    net.pump();
    assert!(net.peers[l].unacked_records() > 0);
    // Part 2: written but not delivered; the wire is cut in the middle of it.
    net.links[0].hold[f] = true;
    net.write_all(l, scid, &parts[2]);
    net.write_all(f, scid, b"pong-1");
    net.pump();
    net.cut(30_001);
    assert!(!net.peers[l].is_connected() && !net.peers[f].is_connected());
    // Written while disconnected: queued, sent after the replay.
    net.write_all(l, scid, &parts[3]);
    net.pump();
    assert_eq!(net.count(l, |e| *e == Event::Disconnected), 1);
    assert_eq!(net.count(f, |e| *e == Event::Disconnected), 1);
    assert!(net.events[l].contains(&Event::Connected { generation: 2 }));
    assert!(net.events[f].contains(&Event::Connected { generation: 2 }));
    let kinds = |i: usize| -> Vec<String> {
        net.sent_l1[i]
            .iter()
            .map(|m| m["type"].as_str().unwrap_or("").to_owned())
            .filter(|t| t.starts_with("reconnect"))
            .collect()
    };
    assert_eq!(kinds(l), vec!["reconnect"]);
    assert_eq!(kinds(f), vec!["reconnecting"]);
    assert_eq!(net.data[f][&scid], parts.concat());
    assert_eq!(net.data[l][&scid], b"pong-0pong-1");
    assert_eq!(
        net.peers[l].unacked_records(),
        0,
        "duplicates were ACKed too"
    );
    assert_eq!(net.peers[f].unacked_records(), 0);
    // Close: our CLOSE, answered by the peer's CLOSE.
    net.peers[l].close(scid).expect("close");
    assert_eq!(
        net.peers[l].write(scid, &bytes::Bytes::from_static(b"late")),
        Err(SubchannelError::Closed(scid))
    );
    net.pump();
    assert!(net.events[f].contains(&Event::SubchannelClosed { scid }));
    assert!(net.events[l].contains(&Event::SubchannelClosed { scid }));
}

/// A record whose ACK was lost is replayed; the receiver drops the duplicate and ACKs it.
#[test]
fn duplicates_dropped_and_acked() {
    let mut net = Net::connected();
    let l = net.leader();
    let f = 1 - l;
    net.peers[f].listen("chat");
    let scid = net.peers[l].open("chat").expect("open");
    net.links[0].hold[l] = true; // ACKs are lost
    net.write_all(l, scid, b"once");
    net.pump();
    assert_eq!(net.peers[l].unacked_records(), 2, "OPEN and DATA unACKed");
    net.cut(0);
    net.pump();
    assert_eq!(net.data[f][&scid], b"once");
    assert_eq!(
        net.count(f, |e| matches!(e, Event::SubchannelOpened { .. })),
        1
    );
    assert_eq!(net.peers[l].unacked_records(), 0);
}

/// A slow peer (no ACKs) pauses the writer at the budget; ACKs resume it; nothing is lost.
#[test]
fn flow_control_pauses_and_resumes() {
    let budget = 64 * 1024;
    let mut a = config(1);
    a.outbound_budget = budget;
    let mut b = config(2);
    b.outbound_budget = budget;
    let mut net = Net::new(a, b);
    net.start();
    net.pump();
    let l = net.leader();
    let f = 1 - l;
    net.peers[f].listen("bulk");
    let scid = net.peers[l].open("bulk").expect("open");
    net.links[0].hold[f] = true; // the follower reads nothing, so it ACKs nothing
    let stream = bytes::Bytes::from(pattern(500_000, 9));
    let mut written = net.peers[l].write(scid, &stream).expect("write");
    assert!(
        written < budget,
        "accepted only up to the budget: {written}"
    );
    assert!(net.peers[l].writes_paused());
    assert_eq!(
        net.count(l, |e| *e == Event::WritesPaused),
        0,
        "not yet drained"
    );
    net.pump();
    assert_eq!(net.count(l, |e| *e == Event::WritesPaused), 1);
    assert_eq!(net.peers[l].write(scid, &stream.slice(written..)), Ok(0));
    // The reader catches up.
    net.links[0].hold[f] = false;
    while written < stream.len() {
        net.pump();
        assert!(!net.peers[l].writes_paused());
        written += net.peers[l]
            .write(scid, &stream.slice(written..))
            .expect("write");
    }
    net.pump();
    assert!(net.count(l, |e| *e == Event::WritesResumed) >= 1);
    assert_eq!(net.data[f][&scid], stream);
}

/// While the Leader's host does not read the connection (its app is slow), the PONGs it
/// cannot read are not missed: however many intervals pass, the connection stays; once reads
/// resume and the peer is really silent, the Leader drops it after two intervals as usual.
#[test]
fn intervals_with_reads_paused_are_not_missed() {
    let mut net = Net::connected();
    let l = net.leader();
    net.links[0].hold = [true, true];
    net.peers[l].set_reads_paused(true);
    for _ in 0..5 {
        net.keepalive_interval(l);
    }
    assert_eq!(net.count(l, |e| *e == Event::Disconnected), 0);
    net.peers[l].set_reads_paused(false);
    for round in 0..2 {
        assert_eq!(
            net.count(l, |e| *e == Event::Disconnected),
            0,
            "round {round}"
        );
        net.keepalive_interval(l);
    }
    assert_eq!(net.count(l, |e| *e == Event::Disconnected), 1);
}

/// Two intervals without a PONG: the Leader drops the connection and reconnects.
#[test]
fn missed_pongs_reconnect() {
    let mut net = Net::connected();
    let l = net.leader();
    // A healthy interval: PONGs arrive, no reconnection.
    for _ in 0..3 {
        net.keepalive_interval(l);
    }
    assert_eq!(net.count(l, |e| *e == Event::Disconnected), 0);
    // A black hole: nothing arrives either way. The PING of the last healthy interval was
    // answered; the next two are not: the Leader gives up at the end of the second.
    net.links[0].hold = [true, true];
    for round in 0..3 {
        assert_eq!(
            net.count(l, |e| *e == Event::Disconnected),
            0,
            "round {round}"
        );
        net.keepalive_interval(l);
    }
    assert_eq!(net.count(l, |e| *e == Event::Disconnected), 1);
    assert!(net.events[l].contains(&Event::Connected { generation: 2 }));
    assert!(net.peers[1 - l].is_connected());
}

/// A length prefix larger than any record fails the opener; the host closes that connection,
/// and Dilation reconnects.
#[test]
fn oversized_length_prefix_drops_connection() {
    let mut net = Net::connected();
    let f = 1 - net.leader();
    net.links[0].inflight[f].extend([0xff, 0xff, 0xff, 0xff]);
    net.pump();
    assert_eq!(net.count(f, |e| *e == Event::Disconnected), 1);
    assert!(net.events[f].contains(&Event::Connected { generation: 2 }));
}

/// The Follower opens (even ids) before the Leader listens: the OPEN and its DATA are held and
/// released by `listen`; an unexpected subprotocol is refused with a CLOSE.
#[test]
fn follower_opens_and_expected_subprotocols() {
    let mut a = config(1);
    a.expected_subprotocols = Some(vec!["chat".into()]);
    let mut b = config(2);
    b.expected_subprotocols = Some(vec!["chat".into()]);
    let mut net = Net::new(a, b);
    net.start();
    net.pump();
    let l = net.leader();
    let f = 1 - l;
    let scid = net.peers[f].open("chat").expect("open");
    assert_eq!(scid, 2);
    net.write_all(f, scid, b"early");
    let evil = net.peers[f].open("evil").expect("open");
    net.write_all(f, evil, b"x");
    net.pump();
    assert_eq!(
        net.count(l, |e| matches!(e, Event::SubchannelOpened { .. })),
        0
    );
    // The refused one was closed by the leader: the follower sees it closed.
    assert!(net.events[f].contains(&Event::SubchannelClosed { scid: evil }));
    assert!(net.events[l].contains(&Event::SubchannelRefused {
        scid: evil,
        subprotocol: "evil".into()
    }));
    net.peers[l].listen("chat");
    net.pump();
    assert!(net.events[l].contains(&Event::SubchannelOpened {
        scid,
        subprotocol: "chat".into()
    }));
    assert_eq!(net.data[l][&scid], b"early");
    assert!(!net.data[l].contains_key(&evil));
}

/// The whole run is deterministic: the same seeds give the same bytes on the wire.
#[test]
fn deterministic_runs() {
    let run = || {
        let mut net = Net::connected();
        let l = net.leader();
        net.peers[1 - l].listen("x");
        let scid = net.peers[l].open("x").expect("open");
        net.write_all(l, scid, b"hello");
        let mut outputs = Vec::new();
        while let Some(o) = net.peers[l].poll_output() {
            outputs.push(o);
        }
        outputs
    };
    assert_eq!(run(), run());
}

/// `version_entries` offers the `ged` dilation version and both hint abilities.
#[test]
fn version_entries_offer_ged() {
    let v = version_entries();
    assert_eq!(v["can-dilate"], json!(["ged"]));
    assert_eq!(v["dilation-abilities"][1]["type"], "relay-v1");
}

/// A peer that keeps opening refused subchannels but never ACKs our CLOSEs cannot grow our
/// queue without bound: past twice the budget, Dilation fails with a clear error.
#[test]
fn peer_that_never_acks_is_bounded() {
    let mut a = config(1);
    a.outbound_budget = 1000;
    a.expected_subprotocols = Some(vec!["chat".into()]);
    let mut b = config(2);
    b.outbound_budget = 1000;
    b.expected_subprotocols = Some(vec!["chat".into()]);
    let mut net = Net::new(a, b);
    net.start();
    net.pump();
    let l = net.leader();
    let f = 1 - l;
    net.links[0].hold[f] = true; // the follower never reads, so never ACKs the leader
    for _ in 0..300 {
        net.peers[f].open("evil").expect("open");
        net.pump();
    }
    assert!(net.events[l].contains(&Event::Failed(DilationError::PeerNotAcking)));
    assert!(net.events[l].contains(&Event::Stopped));
}

/// A half-open connection: only the Leader notices the loss. Its `reconnect` makes the still
/// connected Follower drop its connection, answer `reconnecting` and join the next generation.
#[test]
fn follower_abandons_connection_on_reconnect() {
    let mut net = Net::connected();
    let l = net.leader();
    let f = 1 - l;
    let link = net.links.remove(0);
    let now = net.now;
    net.peers[l].handle(now, Input::ConnectionLost { id: link.ends[l] });
    assert!(net.peers[f].is_connected(), "the follower has not noticed");
    net.pump();
    assert_eq!(net.count(f, |e| *e == Event::Disconnected), 1);
    assert!(net.events[l].contains(&Event::Connected { generation: 2 }));
    assert!(net.events[f].contains(&Event::Connected { generation: 2 }));
    assert!(net.peers[f].is_connected() && net.peers[l].is_connected());
}

/// Connections through a transit relay: each side sends `please relay <token> for side <its
/// dilation side>\n` (same token from the dilation key), waits for `ok\n`, then the preambles
/// and the handshake follow; data flows as on a direct connection.
#[test]
fn through_a_transit_relay() {
    let mut net = Net::new(config(1), config(2));
    net.relay = true;
    net.start();
    net.pump();
    assert!(net.peers[0].is_connected() && net.peers[1].is_connected());
    let token = hex::encode(crate::crypto::transit_relay_token(&KEY));
    let mut expected: Vec<String> = (0..2)
        .map(|i| format!("please relay {token} for side {}\n", net.peers[i].side()))
        .collect();
    let mut seen = net.relay_lines.clone();
    expected.sort();
    seen.sort();
    assert_eq!(seen, expected);
    let l = net.leader();
    net.peers[1 - l].listen("x");
    let scid = net.peers[l].open("x").expect("open");
    net.write_all(l, scid, b"via relay");
    net.pump();
    assert_eq!(net.data[1 - l][&scid], b"via relay");
}
