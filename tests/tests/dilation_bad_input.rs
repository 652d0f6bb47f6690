//! Bad input to a dilated wormhole of our daemon, each followed by proof that the daemon keeps
//! serving (`wormholectl dilate list` and `list` still answer, the wormhole is still there).
//!
//! L2 attacks come from a test-side "relay": the daemon's transit helper is a TCP listener of
//! the test, which answers the daemon's `please relay` line with `ok\n`, reads its preamble,
//! answers with the other role's preamble (so the daemon is past the preamble) and then sends
//! the bad bytes: junk that is no Noise handshake message, a handshake message made with
//! another key (a wrong PSK: 48 bytes whose tag does not verify, which is what a peer with
//! another dilation key sends), or a length prefix larger than any frame. The daemon must drop
//! that connection and log why (`dilation: connection failed`, debug). The peer is the Python reference (relay-only, no relay of its own), so no
//! real L2 connection competes; it also dials our relay hint, and its connection is told apart
//! by the side in the `please relay` line (ours comes from the daemon's debug log).
//!
//! An OPEN for a subprotocol nobody listens for is held (docs/control-protocol.md, `listen`):
//! no `subchannel-opened` until a `listen`, then its bytes arrive exactly; with `dilate`'s
//! `subprotocols`, an OPEN for another subprotocol is refused (`subchannel-refused`, a CLOSE to
//! the peer), as the reference does with its expected subprotocols.
//!
//! On a live L2 connection: a 4 GiB length prefix injected by a [`TcpProxy`], and a record of
//! an unknown type sent by a real Noise peer (the reference library, monkeypatched by
//! `dilation_peer.py --unknown-record`); each drops that connection, the wormhole reconnects
//! and the subchannel's bytes arrive exactly.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;

use serde_json::{json, Value};
use wormhole_tests::check::strip_ansi;
use wormhole_tests::dilation::{accept_subchannel, assert_peer_sent, close_dilated, peer_sent};
use wormhole_tests::{
    assert_success, dilate_and_listen, python_script, run, sha256, venv_python, Control, Daemon,
    DilationSetup, MailboxServer, Process, TIMEOUT,
};

const LEADER: &[u8] = b"Magic-Wormhole Dilation Handshake v1 Leader\n\n";
const FOLLOWER: &[u8] = b"Magic-Wormhole Dilation Handshake v1 Follower\n\n";

/// A dilated wormhole of our daemon whose transit helper is the test's listener, and a Python
/// peer that dilates relay-only with no relay.
struct Hostile {
    _server: MailboxServer,
    listener: TcpListener,
    daemon: Daemon,
    control: Control,
    wormhole: Value,
    peer: Process,
}

impl Hostile {
    fn start() -> Self {
        let server = MailboxServer::start();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the test's relay");
        let port = listener.local_addr().expect("its address").port();
        let helper = format!("tcp:127.0.0.1:{port}");
        let daemon = Daemon::start_with_env(
            &server.url(),
            &[
                ("WORMHOLE_TRANSIT_HELPER", &helper),
                ("WORMHOLED_LOG", "info,wormholed=debug"),
            ],
        );
        let mut control = Control::connect(&daemon);
        let wormhole = control.ok(json!({"op": "dilate", "no_listen": true}))["wormhole"].clone();
        let code = control.event("code")["code"]
            .as_str()
            .expect("a code")
            .to_owned();
        let peer = Process::spawn(
            Command::new(venv_python())
                .arg(python_script("dilation_peer.py"))
                .args(["--relay-url", &server.url(), "--no-listen", "--code", &code])
                .arg("--receive")
                .stdin(Stdio::piped()),
        );
        Self {
            _server: server,
            listener,
            daemon,
            control,
            wormhole,
            peer,
        }
    }

    /// Our dilation side.
    fn our_side(&mut self) -> String {
        our_side(&mut self.daemon)
    }

    /// The daemon's connection to our "relay", past `ok\n` and both preambles.
    fn daemon_connection(&mut self) -> (TcpStream, BufReader<TcpStream>) {
        let side = self.our_side();
        // Python dials our relay hint too: at most one connection of its own comes first.
        for _ in 0..3 {
            let stream = accept(&self.listener);
            stream.set_read_timeout(Some(TIMEOUT)).expect("a timeout");
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut line = Vec::new();
            let _ = (&mut reader).take(200).read_until(b'\n', &mut line);
            let line = String::from_utf8_lossy(&line).into_owned();
            assert!(line.starts_with("please relay "), "{line:?}");
            if line.trim_end().ends_with(&format!(" for side {side}")) {
                let mut writer = stream;
                writer.write_all(b"ok\n").expect("write ok");
                let mut preamble = Vec::new();
                for _ in 0..2 {
                    (&mut reader)
                        .take(100)
                        .read_until(b'\n', &mut preamble)
                        .expect("the daemon's preamble");
                }
                let other = match preamble.as_slice() {
                    LEADER => FOLLOWER,
                    FOLLOWER => LEADER,
                    _ => panic!("not a preamble: {:?}", String::from_utf8_lossy(&preamble)),
                };
                writer.write_all(other).expect("write the other preamble");
                return (writer, reader);
            }
        }
        panic!("no connection from our daemon (side {side})");
    }

    /// Sends `bad` after the preambles; the daemon must close the connection, log why (a
    /// `dilation: connection failed` debug line whose error contains `why`), and keep serving.
    fn attack(mut self, bad: &[u8], why: &str) {
        let (mut writer, mut reader) = self.daemon_connection();
        // The daemon may have closed already (and reset): a failed write is fine here.
        let _ = writer.write_all(bad);
        assert_dropped(&mut reader);
        let logged = connection_failed(&mut self.daemon);
        assert!(logged.contains(why), "{logged}");
        self.still_serving();
    }

    /// `dilate list` shows the wormhole, `list` answers, and the control connection got no
    /// `error` or `closed` for it.
    fn still_serving(mut self) {
        let id = self.wormhole.to_string();
        let listed = assert_success(&run(self.daemon.ctl().args(["dilate", "list"]), TIMEOUT));
        assert!(listed.starts_with(&format!("{id} ")), "{listed}");
        self.control.ok(json!({"op": "list"}));
        for event in &self.control.events {
            assert!(
                !matches!(event["event"].as_str(), Some("error" | "closed")),
                "{event}"
            );
        }
        self.control
            .ok(json!({"op": "close", "wormhole": self.wormhole}));
        self.control.event("closed");
        // The peer never dilates (its only way is through us), so it would wait forever.
        self.peer.kill();
    }
}

/// Our dilation side, from the daemon's `dilation: connecting` debug line.
fn our_side(daemon: &mut Daemon) -> String {
    daemon
        .process()
        .wait_for_stderr("`dilation: connecting ... side=`", TIMEOUT, |line| {
            let line = strip_ansi(line);
            if !line.contains("dilation: connecting") {
                return None;
            }
            line.split_whitespace()
                .find_map(|w| w.strip_prefix("side="))
                .map(str::to_owned)
        })
}

/// The daemon's next `dilation: connection failed` debug line (which says why).
fn connection_failed(daemon: &mut Daemon) -> String {
    daemon
        .process()
        .wait_for_stderr("`dilation: connection failed`", TIMEOUT, |line| {
            let line = strip_ansi(line);
            line.contains("dilation: connection failed").then_some(line)
        })
}

/// Accepts one connection within [`TIMEOUT`].
fn accept(listener: &TcpListener) -> TcpStream {
    let listener = listener.try_clone().expect("clone the listener");
    let (sender, accepted) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(listener.accept());
    });
    accepted
        .recv_timeout(TIMEOUT)
        .expect("a connection in time")
        .expect("accept")
        .0
}

/// Reads (and drops) what the daemon sends until it closes the connection; fails if it has
/// not within [`TIMEOUT`] or sends more than 1 MiB.
fn assert_dropped(reader: &mut impl Read) {
    let mut buf = [0; 4096];
    let mut total = 0;
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                total += n;
                assert!(total < 1 << 20, "the daemon keeps sending");
            }
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
                return
            }
            Err(e) => panic!("the daemon did not drop the connection: {e}"),
        }
    }
}

/// One frame (BE32 length, bytes).
fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(body.len())
        .expect("a small frame")
        .to_be_bytes()
        .to_vec();
    out.extend_from_slice(body);
    out
}

#[test]
fn junk_after_the_preamble_drops_the_connection() {
    let mut junk = frame(b"GET / HTTP/1.1");
    junk.extend_from_slice(&frame(b"no noise here"));
    Hostile::start().attack(&junk, "handshake failed");
}

#[test]
fn a_handshake_with_a_wrong_psk_drops_the_connection() {
    // Message 1 or 2 of Noise NNpsk0 is e (32 bytes) and the tag of an empty payload (16):
    // under another PSK, the tag is as good as these bytes.
    let message: Vec<u8> = (0..48u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
    Hostile::start().attack(&frame(&message), "handshake failed");
}

#[test]
fn a_length_prefix_beyond_any_frame_drops_the_connection() {
    let mut bad = u32::MAX.to_be_bytes().to_vec();
    bad.extend_from_slice(&[0; 64]);
    Hostile::start().attack(&bad, "dilation frame of 4294967295 bytes exceeds the limit");
}

/// Python opens a subchannel of a subprotocol nobody listens for and writes into it: the
/// daemon holds it (no `subchannel-opened`) and keeps serving; a later `listen` takes it, and
/// its bytes arrive exactly.
#[test]
fn an_open_for_a_subprotocol_nobody_listens_for_is_held_until_listen() {
    const SIZE: usize = 256 << 10;
    let setup = DilationSetup::start(&[]);
    let mut control = Control::connect(&setup.daemon);
    let wormhole = control.ok(json!({"op": "dilate"}))["wormhole"].clone();
    let code = control.event("code")["code"]
        .as_str()
        .expect("a code")
        .to_owned();
    let size = SIZE.to_string();
    let mut peer = setup.peer(&[
        "--code",
        &code,
        "--subprotocol",
        "nobody-listens",
        "--send",
        &size,
    ]);
    control.event("dilated");
    let (sent, hash) = peer_sent(&mut peer);
    control.ok(json!({"op": "list"}));
    assert_success(&run(setup.daemon.ctl().args(["list"]), TIMEOUT));
    assert!(
        control
            .events
            .iter()
            .all(|e| e["event"] != "subchannel-opened"),
        "opened before `listen`: {:?}",
        control.events
    );
    control.ok(json!({"op": "listen", "wormhole": wormhole, "subprotocol": "nobody-listens"}));
    let mut stream = accept_subchannel(&mut control, "nobody-listens");
    let mut received = Vec::new();
    stream
        .read_to_end(&mut received)
        .expect("read the subchannel");
    assert_eq!(received.len(), sent);
    assert_eq!(sha256(&received), hash);
    close_dilated(&mut control, &wormhole);
    peer.wait_with_timeout(TIMEOUT);
}

/// With `dilate`'s `subprotocols`, an OPEN for any other subprotocol is refused: the daemon
/// answers it with a CLOSE (the reference peer sees its subchannel closed), reports
/// `subchannel-refused` with the subchannel and the name, logs why, makes no socket for it, and
/// keeps serving; a bad `subprotocols` list, and an empty or over-long subprotocol name for
/// `open-subchannel` or `listen`, are `invalid-argument` errors.
#[test]
fn an_open_for_an_unexpected_subprotocol_is_refused() {
    let mut setup = DilationSetup::start(&[]);
    let mut control = Control::connect(&setup.daemon);
    for bad in [json!([""]), json!(["x".repeat(257)])] {
        let refused = control.request(json!({"op": "dilate", "subprotocols": bad}));
        assert_eq!(refused["error"]["code"], "invalid-argument", "{refused}");
    }
    let dilate = json!({"op": "dilate", "subprotocols": ["test"]});
    let wormhole = control.ok(dilate)["wormhole"].clone();
    let code = control.event("code")["code"]
        .as_str()
        .expect("a code")
        .to_owned();
    let mut peer = setup.peer(&["--code", &code, "--subprotocol", "evil", "--send", "65536"]);
    control.event("dilated");
    let refused = control.event("subchannel-refused");
    assert_eq!(refused["subprotocol"], "evil", "{refused}");
    assert!(refused["subchannel"].as_u64().is_some(), "{refused}");
    peer.wait_for_stderr("`subchannel closed`", TIMEOUT, |l| {
        (l == "subchannel closed").then_some(())
    });
    setup
        .daemon
        .process()
        .wait_for_stderr("the refusal in the log", TIMEOUT, |line| {
            strip_ansi(line)
                .contains("dilation: refused a subchannel of an unexpected subprotocol")
                .then_some(())
        });
    assert!(
        control
            .events
            .iter()
            .all(|e| e["event"] != "subchannel-opened"),
        "a socket for a refused subchannel: {:?}",
        control.events
    );
    for (op, name) in [
        ("open-subchannel", "x".repeat(4096)),
        ("listen", String::new()),
    ] {
        let bad = control.request(json!({"op": op, "wormhole": wormhole, "subprotocol": name}));
        assert_eq!(bad["error"]["code"], "invalid-argument", "{bad}");
    }
    control.ok(json!({"op": "list"}));
    assert_success(&run(setup.daemon.ctl().args(["dilate", "list"]), TIMEOUT));
    close_dilated(&mut control, &wormhole);
    peer.wait_with_timeout(TIMEOUT);
}

/// On a live L2 connection (relay-only, through a [`TcpProxy`] in front of the relay), a length
/// prefix of 4 GiB is injected toward our daemon while Python streams to us (between two frames
/// or inside one: either way the connection is corrupt). The connection ends with a logged
/// reason (`dilation: connection failed`: the frame is too large, or it does not decrypt), the
/// daemon reports `disconnected`, reconnects (`reconnected`), and the stream arrives exactly.
#[test]
fn a_bad_length_prefix_on_a_live_connection_is_dropped_and_the_wormhole_reconnects() {
    const SIZE: usize = 4 << 20;
    const BEFORE: usize = 1 << 20;
    let mut setup = DilationSetup::start_proxied(&[("WORMHOLED_LOG", "info,wormholed=debug")]);
    let mut control = Control::connect(&setup.daemon);
    let (wormhole, code) = dilate_and_listen(&mut control, true, "test");
    let size = SIZE.to_string();
    let mut peer = setup.peer(&["--no-listen", "--code", &code, "--send", &size]);
    let side = our_side(&mut setup.daemon);
    control.event("dilated");
    let mut stream = accept_subchannel(&mut control, "test");
    let mut first = vec![0; BEFORE];
    stream.read_exact(&mut first).expect("read the first MiB");
    let injected = setup
        .proxy()
        .inject(&format!(" for side {side}"), &u32::MAX.to_be_bytes());
    assert_eq!(injected, 1, "our daemon's connection through the proxy");
    // Reading on lets the daemon read its TCP connection again (and find the bad bytes).
    let reader = std::thread::spawn(move || {
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).map(|_| rest)
    });
    let logged = connection_failed(&mut setup.daemon);
    assert!(
        logged.contains("exceeds the limit") || logged.contains("failed to decrypt"),
        "{logged}"
    );
    control.event("disconnected");
    control.event("reconnected");
    let rest = reader
        .join()
        .expect("the reader thread")
        .expect("read the rest of the subchannel");
    first.extend_from_slice(&rest);
    assert_peer_sent(&mut peer, &first);
    close_dilated(&mut control, &wormhole);
    peer.wait_with_timeout(TIMEOUT);
}

/// A record of an unknown type on a live L2 connection: the peer is the reference library
/// (`dilation_peer.py --unknown-record 9`, a real Noise peer with the dilation key), which,
/// once dilated, sends one record whose type byte is 0x09 through its own encryption and
/// framing, then opens a subchannel and streams bytes. The daemon fails that connection with
/// a logged reason (`dilation: connection failed` ... `unknown dilation record type 0x09`),
/// reports `disconnected`, and the wormhole reconnects (`reconnected`: the reference and we
/// start a new generation, with Python as Leader and as Follower); the OPEN and DATA records,
/// which followed the bad record on the dropped connection, are replayed on the new one, so
/// the subchannel carries every byte exactly. The daemon does not panic and keeps serving.
fn unknown_record(python_role: &str) {
    const SIZE: usize = 1 << 20;
    let mut setup = DilationSetup::start(&[("WORMHOLED_LOG", "info,wormholed=debug")]);
    let mut control = Control::connect(&setup.daemon);
    let (wormhole, code) = dilate_and_listen(&mut control, false, "test");
    let size = SIZE.to_string();
    let mut peer = setup.peer(&[
        "--code",
        &code,
        "--unknown-record",
        "9",
        "--send",
        &size,
        "--role",
        python_role,
    ]);
    control.event("dilated");
    peer.wait_for_stderr("`sent unknown record 0x09`", TIMEOUT, |l| {
        (l == "sent unknown record 0x09").then_some(())
    });
    let logged = connection_failed(&mut setup.daemon);
    assert!(
        logged.contains("bad dilation record: unknown dilation record type 0x09"),
        "{logged}"
    );
    control.event("disconnected");
    control.event("reconnected");
    let mut stream = accept_subchannel(&mut control, "test");
    let mut received = Vec::new();
    stream
        .read_to_end(&mut received)
        .expect("read the subchannel");
    assert_eq!(received.len(), SIZE);
    assert_peer_sent(&mut peer, &received);

    let id = wormhole.to_string();
    let daemon = &mut setup.daemon;
    let listed = assert_success(&run(daemon.ctl().args(["dilate", "list"]), TIMEOUT));
    assert!(listed.starts_with(&format!("{id} dilated ")), "{listed}");
    control.ok(json!({"op": "list"}));
    assert!(daemon.process().try_status().is_none(), "the daemon exited");
    let log = daemon.process().report(std::time::Instant::now());
    assert!(!log.contains("panicked"), "{log}");
    close_dilated(&mut control, &wormhole);
    peer.wait_with_timeout(TIMEOUT);
}

#[test]
fn a_record_of_an_unknown_type_from_a_leader_is_dropped_and_the_wormhole_reconnects() {
    unknown_record("leader");
}

#[test]
fn a_record_of_an_unknown_type_from_a_follower_is_dropped_and_the_wormhole_reconnects() {
    unknown_record("follower");
}
