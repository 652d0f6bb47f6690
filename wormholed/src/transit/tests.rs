//! Two Transit ends against each other over 127.0.0.1: direct, and relay-only through the
//! reference transit relay (Python, started by the test harness). Records of a few MiB go
//! through and are compared byte for byte.

use std::net::{IpAddr, Ipv4Addr};
use std::thread;

use wormhole_protocol::transit::race::RELAY_DELAY;
use wormhole_protocol::transit::Role;

use super::*;

const KEY: [u8; 32] = [0x5a; 32];

fn loopback_config(listen: bool, relay_args: Vec<String>) -> TransitConfig {
    TransitConfig {
        relays: relay_args
            .iter()
            .flat_map(|argv| relays(argv).expect("a good relay"))
            .collect(),
        listen,
        hint_addresses: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        idle_timeout: Duration::from_secs(300),
        parts: PartJournal::new(std::env::temp_dir().join("wormholed-transit-tests-parts")),
    }
}

/// Prepares both ends, swaps the messages, races both, returns (sender, receiver).
async fn connect_pair(
    sender: TransitConfig,
    receiver: TransitConfig,
) -> (TransitConnection, TransitConnection) {
    let (s_pending, s_msg) = prepare(sender, Role::Sender, KEY)
        .await
        .expect("prepare sender");
    let (r_pending, r_msg) = prepare(receiver, Role::Receiver, KEY)
        .await
        .expect("prepare receiver");
    let (s, r) = tokio::join!(s_pending.connect(&r_msg), r_pending.connect(&s_msg));
    (s.expect("sender connects"), r.expect("receiver connects"))
}

/// Sends `total` bytes in `record` sized records from the sender, checks them at the receiver,
/// then an ack back, all on worker threads with the blocking halves.
fn transfer(sender: TransitConnection, receiver: TransitConnection, total: usize, record: usize) {
    let data: Vec<u8> = (0..total).map(|i| (i * 31 % 253) as u8).collect();
    let expected = data.clone();
    let (mut s_writer, mut s_reader) = sender.split().expect("split sender");
    let (mut r_writer, mut r_reader) = receiver.split().expect("split receiver");
    let send = thread::spawn(move || {
        for chunk in data.chunks(record) {
            s_writer.send_record(chunk).expect("send record");
        }
        let ack = s_reader.receive_record().expect("ack").expect("not eof");
        assert_eq!(ack, b"{\"ack\": \"ok\"}");
        s_writer.records_sent()
    });
    let mut got = Vec::with_capacity(total);
    while got.len() < total {
        let rec = r_reader.receive_record().expect("record").expect("not eof");
        got.extend_from_slice(&rec);
    }
    assert!(got == expected, "received bytes differ");
    r_writer
        .send_record(b"{\"ack\": \"ok\"}")
        .expect("send ack");
    let sent = send.join().expect("sender thread");
    assert_eq!(sent, r_reader.records_received());
    drop(r_writer);
    drop(r_reader);
}

#[tokio::test]
async fn direct_both_listening() {
    let (s, r) = connect_pair(loopback_config(true, vec![]), loopback_config(true, vec![])).await;
    assert!(s.description().contains("127.0.0.1"), "{}", s.description());
    transfer(s, r, 8 << 20, 256 << 10);
}

#[tokio::test]
async fn direct_only_sender_listens() {
    let (s, r) = connect_pair(
        loopback_config(true, vec![]),
        loopback_config(false, vec![]),
    )
    .await;
    assert!(s.description().starts_with("<-"), "{}", s.description());
    assert!(
        r.description().starts_with("->tcp:127.0.0.1:"),
        "{}",
        r.description()
    );
    // Python-sized records too.
    transfer(s, r, 3 << 20, 16 << 10);
}

#[tokio::test]
async fn direct_only_receiver_listens() {
    let (s, r) = connect_pair(
        loopback_config(false, vec![]),
        loopback_config(true, vec![]),
    )
    .await;
    assert!(s.description().starts_with("->tcp:"), "{}", s.description());
    transfer(s, r, 1 << 20, 1 << 20);
}

#[tokio::test]
async fn relay_only_through_the_reference_relay() {
    let relay = wormhole_tests::TransitRelay::start();
    let (s, r) = connect_pair(
        loopback_config(false, vec![relay.hint()]),
        loopback_config(false, vec![relay.hint()]),
    )
    .await;
    assert!(
        s.description().starts_with("->relay:"),
        "{}",
        s.description()
    );
    assert!(
        r.description().starts_with("->relay:"),
        "{}",
        r.description()
    );
    transfer(s, r, 4 << 20, 256 << 10);
}

/// A direct hint that refuses connections: the receiver still waits the relay delay (as the
/// reference does), then both meet at the relay.
#[tokio::test]
async fn dead_direct_hint_falls_back_to_the_relay() {
    let relay = wormhole_tests::TransitRelay::start();
    let (s_pending, mut s_msg) = prepare(
        loopback_config(false, vec![relay.hint()]),
        Role::Sender,
        KEY,
    )
    .await
    .expect("prepare sender");
    let (r_pending, r_msg) = prepare(
        loopback_config(false, vec![relay.hint()]),
        Role::Receiver,
        KEY,
    )
    .await
    .expect("prepare receiver");
    // Port 1 of 127.0.0.1: nothing listens there.
    s_msg["hints-v1"]
        .as_array_mut()
        .expect("hints list")
        .insert(0, DirectHint::new("127.0.0.1", 1).to_json());
    let started = std::time::Instant::now();
    let (s, r) = tokio::join!(s_pending.connect(&r_msg), r_pending.connect(&s_msg));
    let (s, r) = (s.expect("sender connects"), r.expect("receiver connects"));
    assert!(started.elapsed() >= RELAY_DELAY, "{:?}", started.elapsed());
    assert!(
        r.description().starts_with("->relay:"),
        "{}",
        r.description()
    );
    transfer(s, r, 1 << 20, 64 << 10);
}

/// With both direct and relay available, the direct connection wins before the relay is tried.
#[tokio::test]
async fn direct_wins_over_relay() {
    let relay = wormhole_tests::TransitRelay::start();
    let (s, r) = connect_pair(
        loopback_config(true, vec![relay.hint()]),
        loopback_config(true, vec![relay.hint()]),
    )
    .await;
    assert!(!s.description().contains("relay"), "{}", s.description());
    assert!(!r.description().contains("relay"), "{}", r.description());
    transfer(s, r, 1 << 20, 64 << 10);
}

#[tokio::test]
async fn empty_transfer_still_acks() {
    let (s, r) = connect_pair(
        loopback_config(true, vec![]),
        loopback_config(false, vec![]),
    )
    .await;
    transfer(s, r, 0, 16 << 10);
}

#[tokio::test]
async fn wrong_key_fails_fast_without_listener() {
    let (s_pending, s_msg) = prepare(loopback_config(true, vec![]), Role::Sender, KEY)
        .await
        .expect("prepare sender");
    let (r_pending, _) = prepare(loopback_config(false, vec![]), Role::Receiver, [1; 32])
        .await
        .expect("prepare receiver");
    // The sender keeps listening (it would wait for its deadline); only the receiver is raced.
    let no_hints = serde_json::json!({"hints-v1": []});
    let sender = s_pending.connect(&no_hints);
    tokio::pin!(sender);
    let receiver = r_pending.connect(&s_msg);
    let result = tokio::select! {
        r = receiver => r,
        _ = &mut sender => panic!("the sender cannot win"),
    };
    let err = result.expect_err("mismatched handshake");
    assert!(matches!(err, TransitError::NoConnection(_)), "{err}");
    assert!(err.to_string().contains("bad handshake"), "{err}");
}

/// One parser of relays for Transit and Dilation: none for the empty argument, one relay for a
/// good one, an error (never a skipped relay) for a bad one.
#[test]
fn parses_relays_once_with_one_policy() {
    assert_eq!(relays(""), Ok(Vec::new()));
    assert_eq!(
        relays("tcp:127.0.0.1:4001"),
        Ok(vec![RelayHint {
            hints: vec![DirectHint::new("127.0.0.1", 4001)]
        }])
    );
    assert!(relays("relay.example").is_err());
    assert!(relays("tcp:relay.example:0").is_err());
}

/// The direct hints advertised: the configured addresses, each with the listener's port; every
/// local address when none is configured.
#[tokio::test]
async fn lists_direct_hints_of_the_listener() {
    let v6: IpAddr = "2001:db8::1".parse().expect("ip");
    assert_eq!(
        direct_hints(&[IpAddr::V4(Ipv4Addr::LOCALHOST), v6], 4242),
        vec![
            DirectHint::new("127.0.0.1", 4242),
            DirectHint::new("2001:db8::1", 4242)
        ]
    );
    assert_eq!(advertised(&[v6]), vec![v6]);
    assert_eq!(advertised(&[]), addrs::local_addresses());
    let (listener, direct) = listen_direct(&[IpAddr::V4(Ipv4Addr::LOCALHOST)])
        .await
        .expect("listens");
    let port = listener.local_addr().expect("bound").port();
    assert_eq!(direct, vec![DirectHint::new("127.0.0.1", port)]);
}

#[tokio::test]
async fn rejects_bad_hints() {
    let (pending, _) = prepare(loopback_config(false, vec![]), Role::Sender, KEY)
        .await
        .expect("prepare");
    let err = pending
        .connect(&serde_json::json!("not an object"))
        .await
        .expect_err("bad hints");
    assert!(matches!(err, TransitError::BadHints(_)), "{err}");
    let (pending, _) = prepare(loopback_config(false, vec![]), Role::Sender, KEY)
        .await
        .expect("prepare");
    let err = pending
        .connect(&serde_json::json!({"hints-v1": []}))
        .await
        .expect_err("nothing to dial");
    assert!(err.to_string().contains("no contenders"), "{err}");
}

#[tokio::test]
async fn advertises_python_shaped_hints() {
    let (_pending, msg) = prepare(
        loopback_config(true, vec!["tcp:127.0.0.1:4001".into()]),
        Role::Receiver,
        KEY,
    )
    .await
    .expect("prepare");
    let hints = msg["hints-v1"].as_array().expect("hints list");
    assert_eq!(hints.len(), 2);
    assert_eq!(hints[0]["type"], "direct-tcp-v1");
    assert_eq!(hints[0]["hostname"], "127.0.0.1");
    assert!(hints[0]["port"].as_u64().is_some_and(|p| p > 0));
    assert_eq!(hints[1]["type"], "relay-v1");
    assert_eq!(hints[1]["hints"][0]["port"], 4001);
    assert_eq!(msg["abilities-v1"][1]["type"], "relay-v1");
}

/// CPU time of the calling thread so far, in seconds (Linux: `/proc/thread-self/schedstat`).
fn thread_cpu() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0.0, |ns| ns as f64 / 1e9)
}

/// Transport throughput, ours → ours over loopback (direct), 1 GiB per record size: sealing
/// and writing on one thread, reading and opening on another (no file IO, no hashing), with the
/// CPU seconds each side spent. A benchmark, not a test: `cargo test --release -p wormholed
/// bench_transit -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "benchmark: run with --release --ignored --nocapture"]
async fn bench_transit_loopback() {
    const TOTAL: usize = 1 << 30;
    println!("| record | MB/s | sender CPU s | receiver CPU s |");
    println!("|---|---|---|---|");
    for record in [16usize << 10, 64 << 10, 256 << 10, 1 << 20] {
        let (s, r) = connect_pair(
            loopback_config(true, vec![]),
            loopback_config(false, vec![]),
        )
        .await;
        let (mut writer, _s_reader) = s.split().expect("split sender");
        let (_r_writer, mut reader) = r.split().expect("split receiver");
        let start = std::time::Instant::now();
        let send = thread::spawn(move || {
            let cpu = thread_cpu();
            let chunk = vec![0x42u8; record];
            for _ in 0..TOTAL / record {
                writer.send_record(&chunk).expect("send");
            }
            thread_cpu() - cpu
        });
        let cpu = thread_cpu();
        let mut got = 0;
        while got < TOTAL {
            got += reader
                .receive_record()
                .expect("record")
                .expect("not eof")
                .len();
        }
        let receiver_cpu = thread_cpu() - cpu;
        let sender_cpu = send.join().expect("sender thread");
        let secs = start.elapsed().as_secs_f64();
        println!(
            "| {} KiB | {:.0} | {sender_cpu:.2} | {receiver_cpu:.2} |",
            record >> 10,
            TOTAL as f64 / 1e6 / secs
        );
    }
}

/// A Transit end of the Python reference (magic-wormhole 0.24's `TransitSender` /
/// `TransitReceiver`) for `python -c`: prints its transit message as one JSON line, reads ours
/// from stdin, connects, then (receiver) counts `argv[3]` bytes of records and answers an ack,
/// or (sender) sends `argv[3]` bytes in 16 KiB records and prints the ack it gets.
const PYTHON_TRANSIT: &str = r#"
import json, sys, time
from twisted.internet import defer, task
from wormhole.transit import TransitReceiver, TransitSender

@defer.inlineCallbacks
def main(reactor, role, key_hex, total):
    total = int(total)
    cls = TransitSender if role == "sender" else TransitReceiver
    t = cls(transit_relay=None, reactor=reactor)
    t.set_transit_key(bytes.fromhex(key_hex))
    hints = yield t.get_connection_hints()
    print(json.dumps({"abilities-v1": t.get_connection_abilities(), "hints-v1": hints}), flush=True)
    peer = json.loads(sys.stdin.readline())
    t.add_connection_hints(peer["hints-v1"])
    conn = yield t.connect()
    start = time.monotonic()
    if role == "receiver":
        got = 0
        sizes = set()
        while got < total:
            rec = yield conn.receive_record()
            got += len(rec)
            sizes.add(len(rec))
        conn.send_record(b'{"ack": "ok"}')
        yield task.deferLater(reactor, 0.2, lambda: None)
        print("received %d bytes, record sizes %s, %.1f MB/s" % (got, sorted(sizes), got / 1e6 / (time.monotonic() - start)), flush=True)
    else:
        data = bytes(range(256)) * 64
        sent = 0
        while sent < total:
            conn.send_record(data)
            sent += len(data)
        ack = yield conn.receive_record()
        print("ack %s" % ack.decode(), flush=True)
    conn.close()

task.react(main, sys.argv[1:])
"#;

/// Runs [`PYTHON_TRANSIT`] as `role` with `total` bytes; returns the child and its message.
fn python_transit(role: &str, total: usize) -> (std::process::Child, serde_json::Value) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(wormhole_tests::venv_python())
        .args([
            "-c",
            PYTHON_TRANSIT,
            role,
            &hex::encode(KEY),
            &total.to_string(),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start python");
    let stdout = child.stdout.as_mut().expect("piped stdout");
    let mut line = String::new();
    io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("python's transit message");
    let msg = serde_json::from_str(&line).expect("python prints JSON");
    (child, msg)
}

fn finish_python(mut child: std::process::Child) -> String {
    use std::io::Read;
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("piped stdout")
        .read_to_string(&mut out)
        .expect("python output");
    let status = child.wait().expect("python exits");
    assert!(status.success(), "python failed: {out}");
    out
}

/// Our sender → the Python receiver: the handshake interoperates, and Python accepts our
/// large records (256 KiB and 1 MiB) as well as its own 16 KiB size.
#[tokio::test]
async fn python_receiver_accepts_our_records() {
    let sizes = [16usize << 10, 256 << 10, 1 << 20];
    let total: usize = sizes.iter().map(|s| s * 3).sum();
    let (mut child, py_msg) = python_transit("receiver", total);
    let (pending, our_msg) = prepare(loopback_config(true, vec![]), Role::Sender, KEY)
        .await
        .expect("prepare");
    {
        use std::io::Write;
        let stdin = child.stdin.as_mut().expect("piped stdin");
        writeln!(stdin, "{our_msg}").expect("send our message");
    }
    let conn = pending.connect(&py_msg).await.expect("connect to python");
    let out = thread::spawn(move || {
        let (mut writer, mut reader) = conn.split().expect("split");
        for size in sizes {
            for i in 0..3u8 {
                writer.send_record(&vec![i; size]).expect("send");
            }
        }
        let ack = reader.receive_record().expect("ack").expect("not eof");
        assert_eq!(ack, b"{\"ack\": \"ok\"}");
        finish_python(child)
    })
    .join()
    .expect("worker");
    assert!(out.contains(&format!("received {total} bytes")), "{out}");
    assert!(out.contains("1048576]"), "{out}");
}

/// The Python sender → our receiver (Python's 16 KiB records, its `go`).
#[tokio::test]
async fn python_sender_to_our_receiver() {
    let total = 1 << 20;
    let (mut child, py_msg) = python_transit("sender", total);
    let (pending, our_msg) = prepare(loopback_config(true, vec![]), Role::Receiver, KEY)
        .await
        .expect("prepare");
    {
        use std::io::Write;
        let stdin = child.stdin.as_mut().expect("piped stdin");
        writeln!(stdin, "{our_msg}").expect("send our message");
    }
    let conn = pending.connect(&py_msg).await.expect("connect to python");
    let out = thread::spawn(move || {
        let (mut writer, mut reader) = conn.split().expect("split");
        let mut got = Vec::new();
        while got.len() < total {
            let rec = reader.receive_record().expect("record").expect("not eof");
            assert_eq!(rec.len(), 16 << 10);
            got.extend_from_slice(&rec);
        }
        assert!(got.chunks(256).all(|c| c.iter().copied().eq(0..=255u8)));
        writer.send_record(b"{\"ack\": \"ok\"}").expect("send ack");
        finish_python(child)
    })
    .join()
    .expect("worker");
    assert!(out.contains("ack {\"ack\": \"ok\"}"), "{out}");
}

/// Our sender → the Python receiver, 256 MiB per record size: how fast Python takes our
/// records (its receiver joins its input buffer by copying, so huge records cost it). A
/// benchmark: `cargo test --release -p wormholed bench_python_receiver -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "benchmark: run with --release --ignored --nocapture"]
async fn bench_python_receiver() {
    const TOTAL: usize = 256 << 20;
    for record in [16usize << 10, 64 << 10, 256 << 10, 1 << 20] {
        let (mut child, py_msg) = python_transit("receiver", TOTAL);
        let (pending, our_msg) = prepare(loopback_config(true, vec![]), Role::Sender, KEY)
            .await
            .expect("prepare");
        {
            use std::io::Write;
            let stdin = child.stdin.as_mut().expect("piped stdin");
            writeln!(stdin, "{our_msg}").expect("send our message");
        }
        let conn = pending.connect(&py_msg).await.expect("connect to python");
        let out = thread::spawn(move || {
            let (mut writer, mut reader) = conn.split().expect("split");
            let chunk = vec![7u8; record];
            for _ in 0..TOTAL / record {
                writer.send_record(&chunk).expect("send");
            }
            let _ = reader.receive_record();
            finish_python(child)
        })
        .join()
        .expect("worker");
        println!("{} KiB records: python {}", record >> 10, out.trim());
    }
}
