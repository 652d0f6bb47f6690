//! End-to-end backpressure of Dilation between two of our daemons on 127.0.0.1 (one mailbox
//! server, direct TCP): a subchannel whose reader is slow makes its writer wait, the daemons'
//! memory stays bounded meanwhile, and what the other subchannel can do is what the one L2
//! connection allows.
//!
//! The sending daemon opens subchannels `a` and `b`; the receiving daemon's client connects to
//! both sockets. What the test shows, in order:
//!
//! 1. Before any stall, with 256 KiB of `a` unread by its client, `b` carries 64 KiB exactly:
//!    one slow reader does not stop the other subchannels while less than the receiving
//!    daemon's high water mark (`CLIENT_HIGH_WATER`, 1 MiB) waits for slow clients.
//! 2. The sender writes into `a` (up to 256 MiB) while its reader reads nothing: the bytes the
//!    sender's socket accepts stop growing above [`CLIENT_HIGH_WATER`] and below
//!    [`MAX_ACCEPTED`]. The real bound: the receiving daemon stops reading the TCP connection
//!    once more than 1 MiB waits for its clients, so records stay unacknowledged, and the
//!    sending daemon stops reading every subchannel socket once its outbound budget
//!    ([`DEFAULT_OUTBOUND_BUDGET`], 4 MiB of unacknowledged records) is full; add the kernel's Unix
//!    socket buffers at both ends (about 200 KiB each) and one read of each daemon.
//!    Meanwhile both daemons' resident memory (VmRSS) stays below [`MAX_RSS`].
//! 3. While `a` is stalled, 16 KiB written into `b` do not arrive within [`QUIET`]: the
//!    receiving daemon reads nothing of the one connection, and the sending daemon reads no
//!    subchannel socket, so `b` waits behind `a` ("as far as the one connection allows" is
//!    nothing at all, once the high water mark is passed).
//! 4. `a`'s reader drains: every byte the sender's socket accepted arrives exactly (count and
//!    SHA-256), then `b`'s 16 KiB arrive exactly, and both subchannels end cleanly.
//!
//! "Stalled" is detected without sleeping: the sender's socket has a short write timeout
//! ([`STALL_CHECK`]), and `a` is stalled once [`STALL_CHECKS`] writes in a row accept no byte
//! at all (each check is a write that waited for room and found none). The one fixed wait is
//! [`QUIET`] in step 3, which asserts that nothing arrives: a window, not a synchronization.

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wormhole_protocol::dilation::DEFAULT_OUTBOUND_BUDGET;
use wormhole_tests::dilation::{accept_subchannel, close_dilated, open_subchannel};
use wormhole_tests::{sha256, Control, Daemon, MailboxServer, Noise, TIMEOUT};

/// The most the sender writes into the stalled subchannel.
const LIMIT: usize = 256 << 20;

/// `CLIENT_HIGH_WATER` of wormholed/src/dilation/mod.rs: bytes waiting for subchannel clients
/// above which the daemon stops reading the TCP connection.
const CLIENT_HIGH_WATER: usize = 1 << 20;

/// What the sender's socket may accept in all: the budget and the high water mark, plus about
/// 1.5 MiB for socket buffers and reads, doubled for margin.
const MAX_ACCEPTED: usize = 2 * (DEFAULT_OUTBOUND_BUDGET + CLIENT_HIGH_WATER + (3 << 19));

/// Resident memory each daemon stays below while a subchannel is stalled.
const MAX_RSS: usize = 64 << 20;

/// How long one write may wait for room in the sender's socket.
const STALL_CHECK: Duration = Duration::from_millis(250);

/// Writes in a row that accept nothing before `a` counts as stalled (5 s in all).
const STALL_CHECKS: u32 = 20;

/// The window in which nothing may arrive on `b` while `a` is stalled.
const QUIET: Duration = Duration::from_secs(1);

/// Two daemons on one mailbox server with a dilated wormhole between them; the receiver
/// listens for `a` and `b`.
struct Pair {
    _server: MailboxServer,
    sender: Daemon,
    receiver: Daemon,
    tx: Control,
    rx: Control,
    tx_wormhole: Value,
    rx_wormhole: Value,
}

impl Pair {
    fn start() -> Self {
        let server = MailboxServer::start();
        let receiver = Daemon::start(&server);
        let sender = Daemon::start(&server);
        let mut rx = Control::connect(&receiver);
        let rx_wormhole = rx.ok(json!({"op": "dilate"}))["wormhole"].clone();
        let code = rx.event("code")["code"]
            .as_str()
            .expect("a code")
            .to_owned();
        for subprotocol in ["a", "b"] {
            rx.ok(json!({"op": "listen", "wormhole": rx_wormhole, "subprotocol": subprotocol}));
        }
        let mut tx = Control::connect(&sender);
        let tx_wormhole = tx.ok(json!({"op": "dilate", "code": code}))["wormhole"].clone();
        tx.event("dilated");
        rx.event("dilated");
        Self {
            _server: server,
            sender,
            receiver,
            tx,
            rx,
            tx_wormhole,
            rx_wormhole,
        }
    }

    /// Opens a subchannel from the sender and connects both ends: (writer, reader).
    fn subchannel(&mut self, subprotocol: &str) -> (UnixStream, UnixStream) {
        let writer = open_subchannel(&mut self.tx, &self.tx_wormhole, subprotocol);
        (writer, accept_subchannel(&mut self.rx, subprotocol))
    }

    /// VmRSS of (sender, receiver), in bytes.
    fn rss(&mut self) -> (usize, usize) {
        (
            vm_rss(self.sender.process().id()),
            vm_rss(self.receiver.process().id()),
        )
    }

    fn close(mut self) {
        for (control, wormhole) in [
            (&mut self.tx, &self.tx_wormhole),
            (&mut self.rx, &self.rx_wormhole),
        ] {
            close_dilated(control, wormhole);
        }
    }
}

/// The resident set size of process `pid`, from /proc/<pid>/status.
fn vm_rss(pid: u32) -> usize {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    let kib: usize = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status:\n{status}"));
    kib << 10
}

/// Writes the next bytes of `source` into `writer` until [`STALL_CHECKS`] writes in a row
/// accept nothing (or [`LIMIT`] bytes went in); returns what was accepted.
fn write_until_stalled(writer: &mut UnixStream, source: &mut Noise) -> Vec<u8> {
    writer
        .set_write_timeout(Some(STALL_CHECK))
        .expect("a write timeout");
    let mut accepted = Vec::new();
    let mut chunk = vec![0; 64 << 10];
    let mut offset = chunk.len();
    let mut idle = 0;
    let deadline = Instant::now() + TIMEOUT;
    while idle < STALL_CHECKS && accepted.len() < LIMIT {
        assert!(
            Instant::now() < deadline,
            "still accepting after {} bytes",
            accepted.len()
        );
        if offset == chunk.len() {
            source.fill(&mut chunk);
            offset = 0;
        }
        match writer.write(&chunk[offset..]) {
            Ok(n) => {
                accepted.extend_from_slice(&chunk[offset..offset + n]);
                offset += n;
                idle = 0;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => idle += 1,
            Err(e) => panic!("write into the subchannel: {e}"),
        }
    }
    writer
        .set_write_timeout(Some(TIMEOUT))
        .expect("a write timeout");
    accepted
}

/// Reads exactly `len` bytes (bounded by the stream's read timeout).
fn read_exactly(reader: &mut UnixStream, len: usize) -> Vec<u8> {
    let mut data = vec![0; len];
    reader.read_exact(&mut data).expect("read the subchannel");
    data
}

#[test]
fn a_slow_reader_stalls_its_writer_with_bounded_memory_and_then_gets_every_byte() {
    const FIRST: usize = 256 << 10;
    const B_BEFORE: usize = 64 << 10;
    const B_DURING: usize = 16 << 10;
    let mut pair = Pair::start();
    let mut a_source = Noise::default();
    let mut b_source = Noise::default();

    // 1. `a` has unread bytes, below the high water mark: `b` moves.
    let (mut a_writer, mut a_reader) = pair.subchannel("a");
    let mut a_sent = vec![0; FIRST];
    a_source.fill(&mut a_sent);
    a_writer.write_all(&a_sent).expect("write into a");
    let (mut b_writer, mut b_reader) = pair.subchannel("b");
    let mut b_sent = vec![0; B_BEFORE];
    b_source.fill(&mut b_sent);
    b_writer.write_all(&b_sent).expect("write into b");
    assert!(
        read_exactly(&mut b_reader, B_BEFORE) == b_sent,
        "b's bytes differ"
    );

    // 2. `a`'s reader reads nothing: its writer stalls, memory stays bounded.
    let (rss_before_sender, rss_before_receiver) = pair.rss();
    a_sent.extend(write_until_stalled(&mut a_writer, &mut a_source));
    let accepted = a_sent.len();
    let (rss_sender, rss_receiver) = pair.rss();
    eprintln!(
        "stalled after {accepted} bytes; VmRSS sender {rss_before_sender} -> {rss_sender}, \
         receiver {rss_before_receiver} -> {rss_receiver}"
    );
    assert!(
        accepted > CLIENT_HIGH_WATER && accepted < MAX_ACCEPTED,
        "the writer stalled after {accepted} bytes, not between {CLIENT_HIGH_WATER} and \
         {MAX_ACCEPTED}"
    );
    assert!(
        rss_sender < MAX_RSS && rss_receiver < MAX_RSS,
        "VmRSS while stalled: sender {rss_sender}, receiver {rss_receiver} (bound {MAX_RSS})"
    );

    // 3. While `a` is stalled, nothing of `b` gets through the one connection.
    let mut b_later = vec![0; B_DURING];
    b_source.fill(&mut b_later);
    b_writer.write_all(&b_later).expect("write into b");
    b_reader.set_read_timeout(Some(QUIET)).expect("a timeout");
    let mut byte = [0; 1];
    match b_reader.read(&mut byte) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("b moved while a was stalled: {other:?}"),
    }
    b_reader.set_read_timeout(Some(TIMEOUT)).expect("a timeout");

    // 4. `a`'s reader drains: every accepted byte arrives exactly, then `b`'s.
    a_writer.shutdown(Shutdown::Write).expect("half-close a");
    let mut a_received = Vec::new();
    a_reader
        .read_to_end(&mut a_received)
        .expect("read all of a");
    assert_eq!(a_received.len(), accepted, "bytes of a received");
    assert_eq!(sha256(&a_received), sha256(&a_sent), "SHA-256 of a");
    assert!(
        read_exactly(&mut b_reader, B_DURING) == b_later,
        "b's later bytes differ"
    );
    b_writer.shutdown(Shutdown::Write).expect("half-close b");
    let mut rest = Vec::new();
    b_reader.read_to_end(&mut rest).expect("b ends");
    assert!(rest.is_empty(), "{} more bytes on b", rest.len());
    let (rss_sender, rss_receiver) = pair.rss();
    eprintln!("drained; VmRSS sender {rss_sender}, receiver {rss_receiver}");
    pair.close();
}
