//! Control clients that misbehave at the byte level: bytes that are not UTF-8 (in the same
//! write as `hello`, so that nothing may be lost), and a client that floods requests and never
//! reads an answer. The daemon answers what it can, stops reading a client whose answers pile
//! up, keeps its memory bounded, and serves every other client meanwhile.

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use serde_json::Value;
use wormhole_protocol::control::{RequestBody, ResponseBody};
use wormhole_tests::{Daemon, MailboxServer, TIMEOUT};

/// The lines a daemon wrote on `stream` until it had written `count`.
fn lines(stream: &UnixStream, count: usize) -> Vec<Value> {
    let mut reader = BufReader::new(stream);
    (0..count)
        .map(|_| {
            let mut line = String::new();
            let n = reader
                .read_line(&mut line)
                .expect("the daemon answers in time");
            assert!(n > 0, "the daemon closed the connection");
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
        })
        .collect()
}

/// The daemon's resident memory, in KiB.
fn rss_kib(daemon: &mut Daemon) -> u64 {
    let pid = daemon.process().id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// `hello`, a line that is not UTF-8 and `list`, in one write, on 100 connections: each gets
/// its welcome, a `bad-request` without id, and its list, in that order.
#[test]
fn a_line_that_is_not_utf8_is_answered_and_nothing_is_lost() {
    let server = MailboxServer::start();
    let daemon = Daemon::start(&server);
    let mut burst = br#"{"id":1,"op":"hello","protocol":1}"#.to_vec();
    burst.extend_from_slice(b"\n\xff\xfe{\"id\":2,\"op\":\"list\"}\xc3\n");
    burst.extend_from_slice(b"{\"id\":3,\"op\":\"list\"}\n");
    for connection in 0..100 {
        let mut stream = UnixStream::connect(daemon.socket()).expect("connect");
        stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        stream.write_all(&burst).expect("write");
        let got = lines(&stream, 3);
        assert_eq!(got[0]["id"], 1, "connection {connection}: {got:?}");
        assert_eq!(
            got[0]["ok"]["protocol"], 1,
            "connection {connection}: {got:?}"
        );
        assert_eq!(
            got[1]["id"],
            Value::Null,
            "connection {connection}: {got:?}"
        );
        assert_eq!(got[1]["error"]["code"], "bad-request", "{got:?}");
        assert!(
            got[1]["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("UTF-8")),
            "{got:?}"
        );
        assert_eq!(got[2]["id"], 3, "connection {connection}: {got:?}");
        assert!(got[2]["ok"]["wormholes"].is_array(), "{got:?}");
    }
}

/// A client writes `list` requests and never reads: the daemon stops reading it (our writes
/// block) long before the 64 MiB of requests this test would send, its memory stays within
/// 64 MiB of what it was, another client is served meanwhile, and once the flooding client
/// reads, every answer it gets is whole and in order.
#[test]
fn a_client_that_never_reads_is_read_from_no_more() {
    let server = MailboxServer::start();
    let mut daemon = Daemon::start(&server);
    let before = rss_kib(&mut daemon);
    let mut flood = UnixStream::connect(daemon.socket()).expect("connect");
    flood
        .write_all(b"{\"id\":0,\"op\":\"hello\",\"protocol\":1}\n")
        .expect("hello");
    flood
        .set_write_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let request = b"{\"id\":1,\"op\":\"list\"}\n";
    let batch = request.repeat(4096);
    let cap = 64 << 20;
    let mut written = 0usize;
    let blocked = loop {
        match flood.write(&batch) {
            Ok(n) => written += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break true
            }
            Err(e) => panic!("the daemon dropped the flooding client: {e}"),
        }
        if written >= cap {
            break false;
        }
    };
    assert!(
        blocked,
        "the daemon read all {written} bytes of requests from a client that reads nothing"
    );
    let after = rss_kib(&mut daemon);
    assert!(
        after < before + (64 << 10),
        "the daemon grew from {before} KiB to {after} KiB"
    );
    let mut other = daemon.connection();
    let answer = other.request(RequestBody::List).expect("answered");
    assert!(
        matches!(answer, ResponseBody::Wormholes { .. }),
        "{answer:?}"
    );
    // Reads back a good share of the answers: each is a whole `list` answer to id 1.
    flood.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    let mut reader = BufReader::new(flood.try_clone().expect("clone"));
    let mut welcome = String::new();
    reader.read_line(&mut welcome).expect("welcome");
    assert!(welcome.contains("\"protocol\":1"), "{welcome}");
    for _ in 0..10_000 {
        let mut line = String::new();
        reader.read_line(&mut line).expect("an answer");
        let answer: Value = serde_json::from_str(&line).expect("whole JSON lines");
        assert_eq!(answer["id"], 1, "{answer}");
    }
}

/// At most 512 control clients are served at once: the 513th is accepted by the kernel but
/// not answered until one of the others leaves, and then it is served as usual.
#[test]
fn control_clients_beyond_the_cap_wait_for_a_place() {
    const CAP: usize = 512;
    let server = MailboxServer::start();
    let daemon = Daemon::start(&server);
    let hello = b"{\"id\":1,\"op\":\"hello\",\"protocol\":1}\n";
    let mut served: Vec<UnixStream> = (0..CAP)
        .map(|_| {
            let mut stream = UnixStream::connect(daemon.socket()).expect("connect");
            stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
            stream.write_all(hello).expect("hello");
            stream
        })
        .collect();
    for stream in &served {
        assert_eq!(lines(stream, 1)[0]["ok"]["protocol"], 1);
    }
    let mut waiting = UnixStream::connect(daemon.socket()).expect("the kernel accepts");
    waiting.write_all(hello).expect("hello");
    waiting
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut byte = [0u8; 1];
    let early = std::io::Read::read(&mut waiting, &mut byte);
    assert!(
        matches!(&early, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "the client beyond the cap was answered at once: {early:?}"
    );
    drop(served.pop());
    waiting.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    assert_eq!(lines(&waiting, 1)[0]["ok"]["protocol"], 1);
}

/// A client that floods requests, never reads, then goes away: the daemon lets go of its
/// connection (reader, writer, descriptor), though its reader was waiting for the client to read.
#[test]
fn a_flooding_client_that_leaves_is_let_go() {
    let server = MailboxServer::start();
    let mut daemon = Daemon::start(&server);
    let pid = daemon.process().id();
    let descriptors = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .expect("the daemon's descriptors")
            .count()
    };
    let baseline = descriptors();
    let mut flood = UnixStream::connect(daemon.socket()).expect("connect");
    flood
        .write_all(b"{\"id\":0,\"op\":\"hello\",\"protocol\":1}\n")
        .expect("hello");
    flood
        .set_write_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let batch = b"{\"id\":1,\"op\":\"list\"}\n".repeat(4096);
    while flood.write(&batch).is_ok() {}
    drop(flood);
    let deadline = std::time::Instant::now() + TIMEOUT;
    while descriptors() > baseline {
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon still holds {} descriptors, {baseline} without the flooding client",
            descriptors()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
