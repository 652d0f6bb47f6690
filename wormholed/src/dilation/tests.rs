//! Actor tests of [`DilationHost`]: the host runs in an actix System on paused tokio time, its
//! outputs go to recording peers (the mailbox's `Feed<Input>`, the registry's [`WormholeNote`],
//! the owner's [`ToClient`] lines), and the test plays the other wormhole peer itself: it feeds
//! the key, versions and `dilate-N` messages as the mailbox would, and connects to our listener
//! over real TCP on 127.0.0.1 as the Follower, with the pure L2 machine
//! ([`l2::Connection`]) and its [`Transport`].
//!
//! Clocks. The System's runtime starts paused ([`tokio::runtime::Builder::start_paused`]), so
//! the daemon clock (`clock::now`) and the host's timer (`ctx.run_later`) are on virtual time,
//! aligned to whole milliseconds: a timer due in exactly `d` fires on `advance(d)`, and not on
//! `advance(d - 1 ms)`. The connection tasks run on the real-time `dilation-io` runtime and only
//! move bytes (they have no timers). Tokio auto-advances a paused clock whenever its runtime is
//! idle, which would fire the keepalive timer while bytes are still in flight on the other
//! runtime; it does not while a `spawn_blocking` task runs (see `tokio::time::pause`), so every
//! test holds one for its whole run ([`hold_clock`]): virtual time moves only by
//! [`tokio::time::advance`]. `advance` moves the clock and yields once; it does not wait for the
//! host to run the timer's callback, so each advance that makes the keepalive timer due is
//! followed by its evidence (a PING, or the close, read by the peer) before the clock moves
//! again; otherwise the callback would run at the later time. The test's peer does blocking
//! socket IO inside `spawn_blocking`, each read bounded by [`IO_WAIT`] of real time; local waits
//! are bounded loops ([`wait_until`]). Nothing sleeps.
//!
//! What a record or an event proves: the machine emits nothing when a PONG or an ACK arrives,
//! so the peer follows them with a PING of its own (a *probe*) and reads up to its PONG; the
//! daemon handles records in order, so it has handled what came before. A probe also checks
//! that nothing else was sent meanwhile (e.g. no PING before the interval is up).

use std::cell::{Cell, RefCell};
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, TcpListener as StdTcpListener, TcpStream as StdTcpStream};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use wormhole_protocol::control::{Outcome, Response};
use wormhole_protocol::dilation::l2::{L2Event, Transport};
use wormhole_protocol::dilation::{DilationConfig, Role, DEFAULT_PING_INTERVAL};
use wormhole_protocol::transit::hints::TransitHints;

use super::*;
use crate::part_files::PartJournal;

/// The session key the mailbox would report.
const KEY: [u8; 32] = [0x42; 32];

/// The test peer's `please` side when it is the Follower: smaller than any of ours.
const FOLLOWER_SIDE: &str = "0000000000000000";

/// The test peer's `please` side when it is the Leader: greater than any of ours.
const LEADER_SIDE: &str = "ffffffffffffffff";

/// The wormhole's id.
const WORMHOLE: WormholeId = 7;

/// The owner's session.
const SESSION: SessionId = 3;

/// Longest real time any single wait may take before the test fails.
const IO_WAIT: Duration = Duration::from_secs(20);

/// The Leader's ping interval (the machine's default).
const PING: Duration = DEFAULT_PING_INTERVAL;

const MS: Duration = Duration::from_millis(1);

/// Runs `test` in an actix System whose tokio runtime starts with paused time.
fn run<F: std::future::Future<Output = ()>>(test: impl FnOnce() -> F) {
    let system = System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("a paused runtime")
    });
    system.block_on(async {
        let _hold = hold_clock();
        test().await;
    });
}

/// Keeps the paused clock from auto-advancing until the returned sender is dropped (a running
/// `spawn_blocking` task inhibits auto-advance).
fn hold_clock() -> std::sync::mpsc::Sender<()> {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    tokio::task::spawn_blocking(move || {
        let _ = rx.recv();
    });
    tx
}

/// Yields to the local actors until `done` holds; fails after [`IO_WAIT`] of real time (std's
/// `Instant`, not the daemon clock). The paused clock stands still meanwhile.
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + IO_WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::task::yield_now().await;
    }
}

type Log<T> = Rc<RefCell<Vec<T>>>;

/// Records every message it gets.
struct Recorder<T>(Log<T>);

impl<T: Unpin + 'static> Actor for Recorder<T> {
    type Context = Context<Self>;
}

impl Handler<Feed<Input>> for Recorder<Input> {
    type Result = ();

    fn handle(&mut self, Feed(input): Feed<Input>, _: &mut Context<Self>) {
        self.0.borrow_mut().push(input);
    }
}

impl Handler<WormholeNote> for Recorder<WormholeNote> {
    type Result = ();

    fn handle(&mut self, note: WormholeNote, _: &mut Context<Self>) {
        self.0.borrow_mut().push(note);
    }
}

impl Handler<ToClient> for Recorder<DaemonLine> {
    type Result = ();

    fn handle(&mut self, ToClient(line): ToClient, _: &mut Context<Self>) {
        self.0.borrow_mut().push(line);
    }
}

/// A [`DilationHost`] with recording peers.
struct Harness {
    host: Addr<DilationHost>,
    owner: Client,
    mailbox: Log<Input>,
    notes: Log<WormholeNote>,
    lines: Log<DaemonLine>,
    /// Whether the host called `halt` (stopping the mailbox actors).
    halted: Rc<Cell<bool>>,
    _sockets: tempfile::TempDir,
}

impl Harness {
    fn start() -> Self {
        let mailbox = Log::default();
        let notes = Log::default();
        let lines = Log::default();
        let owner = Client {
            session: SESSION,
            lines: Recorder(Rc::clone(&lines)).start().recipient(),
        };
        let sockets = tempfile::tempdir().expect("a temporary folder");
        let halted = Rc::new(Cell::new(false));
        let mut config = DilationConfig::new([1; 32]);
        config.ping_interval = PING;
        let host = DilationHost::new(DilationSetup {
            id: WORMHOLE,
            owner: owner.clone(),
            registry: Recorder(Rc::clone(&notes)).start().recipient(),
            mailbox: Recorder(Rc::clone(&mailbox)).start().recipient(),
            halt: Box::new({
                let halted = Rc::clone(&halted);
                move || halted.set(true)
            }),
            transit: TransitConfig {
                relays: Vec::new(),
                listen: true,
                hint_addresses: vec![Ipv4Addr::LOCALHOST.into()],
                idle_timeout: Duration::from_secs(300),
                parts: PartJournal::new(sockets.path().join("parts")),
            },
            socket_dir: sockets.path().to_owned(),
            machine: Dilation::new(config),
        })
        .start();
        Self {
            host,
            owner,
            mailbox,
            notes,
            lines,
            halted,
            _sockets: sockets,
        }
    }

    /// Our L1 messages so far: phase and JSON body.
    fn sent(&self) -> Vec<(String, Value)> {
        self.mailbox
            .borrow()
            .iter()
            .filter_map(|input| match input {
                Input::SendPhase { phase, plaintext } => Some((
                    phase.clone(),
                    serde_json::from_slice(plaintext).expect("our dilate-N is JSON"),
                )),
                Input::Close => None,
                other => panic!("unexpected mailbox input {other:?}"),
            })
            .collect()
    }

    /// The control events the owner got, in order.
    fn events(&self) -> Vec<EventKind> {
        self.lines
            .borrow()
            .iter()
            .filter_map(|line| match line {
                DaemonLine::Event(event) => {
                    assert_eq!(event.wormhole, WORMHOLE);
                    Some(event.kind.clone())
                }
                DaemonLine::Response(_) => None,
            })
            .collect()
    }

    /// The states the registry was told, in order.
    fn states(&self) -> Vec<&'static str> {
        self.notes
            .borrow()
            .iter()
            .filter_map(|note| match note {
                WormholeNote::State(id, state) => {
                    assert_eq!(*id, WORMHOLE);
                    Some(*state)
                }
                WormholeNote::Finished(_) => None,
                WormholeNote::Code(..) => panic!("unexpected code note"),
            })
            .collect()
    }

    /// A peer `dilate-N` message, as the mailbox reports it.
    fn peer_says(&self, message: Value) {
        let body = message.to_string().into_bytes();
        self.host.do_send(AppEvent(Event::Dilate(body)));
    }

    /// Feeds the key, the peer's versions and its `please` (with the side that gives the test
    /// peer `role`); checks our `please` and our hints; returns the port of our listener.
    async fn dilate(&self, role: Role) -> u16 {
        let peer_side = match role {
            Role::Leader => LEADER_SIDE,
            Role::Follower => FOLLOWER_SIDE,
        };
        self.host.do_send(AppKey(KEY));
        self.host.do_send(AppEvent(Event::Versions(json!({
            "can-dilate": ["ged"],
            "dilation-abilities": [{"type": "direct-tcp-v1"}],
            "app_versions": {},
        }))));
        self.peer_says(json!({"type": "please", "side": peer_side, "use-version": "ged"}));
        let port = self.hints(1).await;
        let sent = self.sent();
        let (phase, please) = &sent[0];
        assert_eq!(phase, "dilate-0");
        assert_eq!(please["type"], "please");
        assert_eq!(please["use-version"], "ged");
        let side = please["side"].as_str().expect("a side");
        assert_eq!(side.len(), 16, "our side {side}");
        assert_eq!(side < peer_side, role == Role::Leader, "our side {side}");
        port
    }

    /// Waits for our `connection-hints` as L1 message number `n`: exactly one direct hint,
    /// 127.0.0.1 and our listener's port, and no relay. Returns the port.
    async fn hints(&self, n: usize) -> u16 {
        wait_until("our connection-hints", || self.sent().len() > n).await;
        let (phase, hints) = self.sent().swap_remove(n);
        assert_eq!(phase, format!("dilate-{n}"));
        assert_eq!(hints["type"], "connection-hints", "{hints}");
        let hints = TransitHints::from_message(&json!({"hints-v1": hints["hints"]}))
            .expect("well-formed hints");
        assert!(hints.relays.is_empty(), "no relay configured");
        let [direct] = &hints.direct[..] else {
            panic!("one direct hint: {:?}", hints.direct);
        };
        assert_eq!(direct.hostname, "127.0.0.1");
        direct.port
    }

    /// The answer to request `id`, once it came.
    async fn response(&self, id: u64) -> Outcome {
        let answer = || {
            self.lines.borrow().iter().find_map(|line| match line {
                DaemonLine::Response(Response {
                    id: Some(got),
                    outcome,
                }) if *got == id => Some(outcome.clone()),
                _ => None,
            })
        };
        wait_until("an answer", || answer().is_some()).await;
        answer().expect("the answer")
    }

    /// The owner opens a `chat` subchannel: it is subchannel 1 (the Leader's ids are odd), the
    /// peer gets its OPEN (seqnum 0). Returns its socket.
    async fn open_chat(&self, peer: &PeerHandle) -> String {
        self.host.do_send(DilateCommand::Open {
            client: self.owner.clone(),
            id: 1,
            subprotocol: "chat".into(),
        });
        let Outcome::Ok(ResponseBody::Subchannel {
            subchannel: 1,
            socket,
        }) = self.response(1).await
        else {
            panic!("subchannel 1 with its socket");
        };
        let open = Record::Open {
            scid: 1,
            seqnum: 0,
            subprotocol: "chat".into(),
        };
        assert_eq!(peer.next().await, Some(open));
        socket
    }

    /// Waits for the effects of losing the first connection: the owner gets `disconnected`,
    /// the registry `reconnecting`, and our L1 message of this type (`reconnect` from the
    /// Leader, `reconnecting` from the Follower) goes out as `dilate-2`.
    async fn disconnected(&self, l1: &str) {
        wait_until("disconnected", || self.events().len() >= 2).await;
        assert_eq!(
            self.events(),
            [EventKind::Dilated {}, EventKind::Disconnected {}]
        );
        assert_eq!(self.states(), ["dilated", "reconnecting"]);
        wait_until(l1, || self.sent().len() >= 3).await;
        assert_eq!(self.sent()[2], ("dilate-2".to_owned(), json!({"type": l1})));
    }

    /// Waits for the second connection: the owner gets `reconnected`, the registry `dilated`.
    async fn reconnected(&self) {
        wait_until("reconnected", || self.events().len() >= 3).await;
        assert_eq!(
            self.events(),
            [
                EventKind::Dilated {},
                EventKind::Disconnected {},
                EventKind::Reconnected {}
            ]
        );
        assert_eq!(self.states(), ["dilated", "reconnecting", "dilated"]);
    }
}

/// A host dilated with the test peer, connected as the Follower: the Leader answered the
/// peer's KCM with its own and PINGed at once (no virtual time passed); the owner got
/// `dilated`. Returns the PING's id too.
async fn dilated() -> (Harness, PeerHandle, [u8; 4]) {
    let h = Harness::start();
    let port = h.dilate(Role::Follower).await;
    let peer = PeerHandle::connect(port).await;
    let connected_at = clock::now();
    assert_eq!(peer.next().await, Some(Record::Kcm));
    let ping = ping_id(peer.next().await);
    assert_eq!(clock::now(), connected_at);
    wait_until("dilated", || !h.events().is_empty()).await;
    assert_eq!(h.events(), [EventKind::Dilated {}]);
    assert_eq!(h.states(), ["dilated"]);
    (h, peer, ping)
}

/// The test's side of one L2 connection, over a blocking socket.
struct Peer {
    stream: StdTcpStream,
    transport: Transport,
    next_probe: u8,
}

impl Peer {
    /// Connects to our listener as the Follower: see [`Peer::handshake`].
    fn connect(port: u16) -> Self {
        let stream =
            StdTcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect to our listener");
        Self::handshake(stream, Role::Follower)
    }

    /// Accepts our daemon's dial as the Leader (within [`IO_WAIT`] of real time, on a
    /// throwaway real-time runtime): see [`Peer::handshake`].
    fn accept(listener: StdTcpListener) -> Self {
        listener.set_nonblocking(true).expect("nonblocking");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a real-time runtime");
        let stream = runtime.block_on(async {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let accepted = tokio::time::timeout(IO_WAIT, listener.accept())
                .await
                .expect("our daemon dials the peer's hint");
            accepted
                .expect("accept")
                .0
                .into_std()
                .expect("a std socket")
        });
        stream.set_nonblocking(false).expect("blocking");
        Self::handshake(stream, Role::Leader)
    }

    /// Does the L2 handshake as `role`. The Follower's KCM goes in the same write as the
    /// handshake's last message (so the host must hand it to the opener with the bytes it read).
    fn handshake(mut stream: StdTcpStream, role: Role) -> Self {
        stream.set_read_timeout(Some(IO_WAIT)).expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        let key = crypto::dilation_key(&KEY);
        let mut l2 = l2::Connection::new(role, &key, None, [9; 32]).expect("l2");
        let mut buf = [0; 4096];
        loop {
            let mut out = l2.poll_transmit().unwrap_or_default();
            if l2.poll_event() == Some(L2Event::HandshakeDone) {
                let mut transport = l2.take_transport().expect("the transport");
                if role == Role::Follower {
                    transport.sealer.seal(&Record::Kcm, &mut out).expect("seal");
                }
                stream
                    .write_all(&out)
                    .expect("write the end of the handshake");
                return Self {
                    stream,
                    transport,
                    next_probe: 0,
                };
            }
            stream.write_all(&out).expect("write the handshake");
            let n = stream
                .read(&mut buf)
                .expect("handshake bytes from the daemon");
            assert!(n > 0, "EOF during the handshake");
            l2.handle_data(&buf[..n]).expect("the daemon's handshake");
        }
    }

    /// Seals and writes records, in one write.
    fn send(&mut self, records: &[Record]) {
        let mut out = Vec::new();
        for record in records {
            self.transport.sealer.seal(record, &mut out).expect("seal");
        }
        self.stream.write_all(&out).expect("write records");
    }

    /// The next record from the daemon; `None` once it closed the connection. Fails if nothing
    /// arrives within [`IO_WAIT`].
    fn next(&mut self) -> Option<Record> {
        let mut buf = [0; 4096];
        loop {
            if let Some(record) = self.transport.opener.next_record().expect("open a record") {
                return Some(record);
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => self.transport.opener.input().extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("no record from the daemon within {IO_WAIT:?}: {e}"),
            }
        }
    }

    /// Sends `records` and a probe PING; returns what the daemon sent before the probe's PONG
    /// (`Err` with them if it closed the connection instead).
    fn probe(&mut self, records: &[Record]) -> Result<Vec<Record>, Vec<Record>> {
        self.next_probe += 1;
        let probe = [0xee, 0xee, 0xee, self.next_probe];
        let mut records = records.to_vec();
        records.push(Record::Ping(probe));
        self.send(&records);
        let mut before = Vec::new();
        loop {
            match self.next() {
                Some(Record::Pong(id)) if id == probe => return Ok(before),
                Some(record) => before.push(record),
                None => return Err(before),
            }
        }
    }
}

/// A [`Peer`] whose blocking steps run in `spawn_blocking`.
#[derive(Clone)]
struct PeerHandle(Arc<Mutex<Peer>>);

impl PeerHandle {
    async fn connect(port: u16) -> Self {
        let peer = blocking(move || Peer::connect(port)).await;
        Self(Arc::new(Mutex::new(peer)))
    }

    async fn accept(listener: StdTcpListener) -> Self {
        let peer = blocking(move || Peer::accept(listener)).await;
        Self(Arc::new(Mutex::new(peer)))
    }

    async fn run<T: Send + 'static>(
        &self,
        step: impl FnOnce(&mut Peer) -> T + Send + 'static,
    ) -> T {
        let peer = Arc::clone(&self.0);
        blocking(move || step(&mut peer.lock().expect("the peer"))).await
    }

    async fn next(&self) -> Option<Record> {
        self.run(Peer::next).await
    }
}

/// Runs blocking work off the actors' thread; a panic there fails the test with its message.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

fn ping_id(record: Option<Record>) -> [u8; 4] {
    match record {
        Some(Record::Ping(id)) => id,
        other => panic!("expected a PING, got {other:?}"),
    }
}

/// Keepalive: the Leader PINGs as soon as it is connected and then once per interval, never
/// earlier; while the peer answers, the connection stays. Once the peer stops answering, the
/// Leader drops the connection exactly two intervals after its first unanswered PING (the one
/// in between goes unanswered too), not a millisecond earlier: the socket closes, the owner gets
/// `disconnected`, the registry `reconnecting`, and `reconnect` goes out over the mailbox.
#[test]
fn keepalive_pings_then_drops_a_silent_peer() {
    run(|| async {
        let (h, peer, mut ping) = dilated().await;

        // Healthy: each PING is answered; the next comes one interval later, not before.
        for _ in 0..3 {
            let pong = [Record::Pong(ping)];
            assert_eq!(peer.run(move |p| p.probe(&pong)).await, Ok(vec![]));
            tokio::time::advance(PING - MS).await;
            assert_eq!(
                peer.run(|p| p.probe(&[])).await,
                Ok(vec![]),
                "no PING early"
            );
            tokio::time::advance(MS).await;
            ping = ping_id(peer.next().await);
        }
        assert_eq!(h.events(), [EventKind::Dilated {}]);
        assert_eq!(h.states(), ["dilated"]);
        assert_eq!(h.sent().len(), 2, "only please and connection-hints");

        // Silent: the PING just received goes unanswered; one interval later the Leader
        // PINGs again (one miss); the second miss drops the connection.
        let first_unanswered = clock::now();
        tokio::time::advance(PING).await;
        ping_id(peer.next().await);
        tokio::time::advance(PING - MS).await;
        assert_eq!(
            peer.run(|p| p.probe(&[])).await,
            Ok(vec![]),
            "still connected"
        );
        assert_eq!(h.events(), [EventKind::Dilated {}]);
        tokio::time::advance(MS).await;
        assert_eq!(peer.next().await, None, "the Leader closes the connection");
        assert_eq!(clock::now() - first_unanswered, 2 * PING);
        h.disconnected("reconnect").await;
    });
}

/// Replay: records the peer did not ACK are sent again, first (right after the Leader's KCM),
/// on the next connection; ACKed ones are not. The owner opens a subchannel (OPEN, seqnum 0)
/// and its client writes to it (DATA, seqnum 1); the peer ACKs only the OPEN and closes the
/// TCP connection; after `reconnect` / `reconnecting` the new connection carries KCM, the
/// DATA, then the first PING.
#[test]
fn unacked_records_are_replayed_first_on_reconnection() {
    run(|| async {
        let (h, peer, _) = dilated().await;

        let socket = h.open_chat(&peer).await;

        // Its client writes; the DATA reaches the peer.
        let client = blocking(move || {
            let mut client = StdUnixStream::connect(socket).expect("the subchannel socket");
            client.write_all(b"hello").expect("write to the subchannel");
            client
        })
        .await;
        let data = Record::Data {
            scid: 1,
            seqnum: 1,
            data: Bytes::from_static(b"hello"),
        };
        assert_eq!(peer.next().await, Some(data.clone()));

        // The peer ACKs the OPEN only, then the TCP connection breaks.
        let ack = [Record::Ack { seqnum: 0 }];
        assert_eq!(peer.run(move |p| p.probe(&ack)).await, Ok(vec![]));
        peer.run(|p| p.stream.shutdown(std::net::Shutdown::Both))
            .await
            .expect("shutdown");
        drop(peer);
        h.disconnected("reconnect").await;

        // The peer answers `reconnecting`; the Leader listens again and reports new hints.
        h.peer_says(json!({"type": "reconnecting"}));
        let port = h.hints(3).await;
        let peer = PeerHandle::connect(port).await;
        assert_eq!(peer.next().await, Some(Record::Kcm));
        assert_eq!(
            peer.next().await,
            Some(data),
            "the unACKed DATA, replayed first"
        );
        ping_id(peer.next().await);
        assert_eq!(peer.run(|p| p.probe(&[])).await, Ok(vec![]), "nothing more");
        h.reconnected().await;
        drop(client);
    });
}

/// The test peer's listener on 127.0.0.1, and its `connection-hints` message.
fn peer_listener() -> (StdTcpListener, Value) {
    let listener = StdTcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let port = listener.local_addr().expect("address").port();
    let hints = json!({
        "type": "connection-hints",
        "hints": [
            {"type": "direct-tcp-v1", "hostname": "127.0.0.1", "port": port, "priority": 0.0}
        ],
    });
    (listener, hints)
}

/// Our daemon as the Follower: it dials the Leader's hint, sends the first KCM, is connected
/// once the Leader's KCM selects the connection, answers PINGs, and never drops a quiet
/// connection by itself (the Follower has no keepalive timer). The Leader's `reconnect` makes
/// it drop the connection, tell the owner `disconnected`, answer `reconnecting`, report new
/// hints, and dial the Leader's next hint; that connection makes it `reconnected`.
#[test]
fn follower_dials_answers_pings_and_obeys_reconnect() {
    run(|| async {
        let h = Harness::start();
        let (listener, hints) = peer_listener();
        h.dilate(Role::Leader).await;
        h.peer_says(hints);
        let peer = PeerHandle::accept(listener).await;
        assert_eq!(
            peer.next().await,
            Some(Record::Kcm),
            "the Follower's KCM first"
        );
        assert!(
            h.events().is_empty(),
            "not connected before the Leader's KCM"
        );
        peer.run(|p| p.send(&[Record::Kcm])).await;
        wait_until("dilated", || !h.events().is_empty()).await;
        assert_eq!(h.events(), [EventKind::Dilated {}]);
        assert_eq!(h.states(), ["dilated"]);

        // It answers PINGs, and nothing else happens, however long the connection is quiet.
        assert_eq!(peer.run(|p| p.probe(&[])).await, Ok(vec![]));
        tokio::time::advance(10 * PING).await;
        assert_eq!(peer.run(|p| p.probe(&[])).await, Ok(vec![]), "still up");
        assert_eq!(h.events(), [EventKind::Dilated {}]);
        assert_eq!(h.sent().len(), 2, "only please and connection-hints");

        // The Leader's `reconnect`.
        h.peer_says(json!({"type": "reconnect"}));
        assert_eq!(
            peer.next().await,
            None,
            "the Follower closes the connection"
        );
        h.disconnected("reconnecting").await;
        h.hints(3).await;

        // Generation 2: the Leader's new hint.
        let (listener, hints) = peer_listener();
        h.peer_says(hints);
        let peer = PeerHandle::accept(listener).await;
        assert_eq!(peer.next().await, Some(Record::Kcm));
        peer.run(|p| p.send(&[Record::Kcm])).await;
        h.reconnected().await;
        assert_eq!(peer.run(|p| p.probe(&[])).await, Ok(vec![]));
    });
}

/// `close`: the host answers, tells the registry `closing`, closes the connection, removes the
/// subchannel sockets nobody connected to, and closes the mailbox, with no `disconnected`; time
/// passing changes nothing then. Once the mailbox reports it closed, the owner gets `closed`, the
/// registry `Finished`, the mailbox actors are halted and the host stops.
#[test]
fn close_tears_down_then_finishes_when_the_mailbox_closes() {
    run(|| async {
        let (h, peer, _) = dilated().await;
        let socket = h.open_chat(&peer).await;
        assert!(Path::new(&socket).exists());

        h.host.do_send(DilateCommand::Close {
            client: h.owner.clone(),
            id: 2,
        });
        assert_eq!(h.response(2).await, Outcome::Ok(ResponseBody::Done {}));
        assert_eq!(peer.next().await, None, "the connection is closed");
        wait_until("the mailbox closed", || {
            matches!(h.mailbox.borrow().last(), Some(Input::Close))
        })
        .await;
        assert_eq!(h.states(), ["dilated", "closing"]);
        assert_eq!(h.events(), [EventKind::Dilated {}]);
        assert!(!Path::new(&socket).exists(), "the socket is removed");
        assert_eq!(h.sent().len(), 2, "no L1 message after please and hints");
        tokio::time::advance(3 * PING).await;
        assert_eq!(h.events(), [EventKind::Dilated {}]);
        assert!(!h.halted.get() && h.host.connected());

        h.host.do_send(AppEvent(Event::Closed {
            mood: Mood::Happy,
            error: None,
        }));
        wait_until("the host stopped", || !h.host.connected()).await;
        assert_eq!(
            h.events(),
            [
                EventKind::Dilated {},
                EventKind::Closed {
                    mood: "happy".into()
                }
            ]
        );
        assert!(matches!(
            h.notes.borrow().last(),
            Some(WormholeNote::Finished(WORMHOLE))
        ));
        assert!(h.halted.get());
    });
}

/// A slow app is not a silent peer: the peer opens a subchannel we listen for and sends more
/// than [`CLIENT_HIGH_WATER`] that no client reads, so the host stops reading the connection
/// (and cannot read PONGs). The peer answers no PING either; yet the Leader keeps the connection
/// and goes on PINGing interval after interval (each interval ends with reads paused), with no
/// `disconnected` and no L1 message.
#[test]
fn keepalive_does_not_blame_the_peer_while_a_slow_app_pauses_reads() {
    run(|| async {
        let (h, peer, _) = dilated().await;
        h.host.do_send(DilateCommand::Listen {
            client: h.owner.clone(),
            id: 1,
            subprotocol: "bulk".into(),
        });
        assert_eq!(h.response(1).await, Outcome::Ok(ResponseBody::Done {}));

        // The Follower (the test) opens subchannel 2 and sends 1.5 MiB nobody reads.
        const RECORDS: u32 = 24;
        let mut records = vec![Record::Open {
            scid: 2,
            seqnum: 0,
            subprotocol: "bulk".into(),
        }];
        records.extend((1..=RECORDS).map(|seqnum| Record::Data {
            scid: 2,
            seqnum,
            data: Bytes::from(vec![0x5a; 65_000]),
        }));
        assert!(u64::from(RECORDS) * 65_000 > CLIENT_HIGH_WATER as u64);
        peer.run(move |p| p.send(&records)).await;
        // The host ACKs each record it reads and then queues its bytes for the subchannel's
        // client (which never connects), in the same handler: once the ACK of the first record
        // that takes the queue past the mark arrives, its reads are paused.
        let over = u32::try_from(CLIENT_HIGH_WATER / 65_000 + 1).expect("small");
        let acked = peer
            .run(move |p| loop {
                match p.next() {
                    Some(Record::Ack { seqnum }) if seqnum >= over => return true,
                    Some(_) => {}
                    None => return false,
                }
            })
            .await;
        assert!(acked, "the host ACKs every record it reads");
        wait_until("subchannel-opened", || {
            h.events()
                .iter()
                .any(|e| matches!(e, EventKind::SubchannelOpened { subchannel: 2, .. }))
        })
        .await;

        // Three intervals without a PONG (the first PING too is unanswered): a PING each time.
        // (ACKs of the records read before the pause may still come first.)
        for interval in 0..3 {
            tokio::time::advance(PING).await;
            let record = peer
                .run(|p| loop {
                    match p.next() {
                        Some(Record::Ack { .. }) => {}
                        other => return other,
                    }
                })
                .await;
            assert!(
                matches!(record, Some(Record::Ping(_))),
                "interval {interval}: {record:?}"
            );
        }
        assert!(
            !h.events().contains(&EventKind::Disconnected {}),
            "{:?}",
            h.events()
        );
        assert_eq!(h.sent().len(), 2, "only please and connection-hints");
    });
}
