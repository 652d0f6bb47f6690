//! Smoke tests of the harness itself against the real Python reference: the servers start on
//! 127.0.0.1, the reference CLI talks to itself through them, and a restart keeps the port.
//! If these fail, every interop test fails; look here first.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use wormhole_tests::{assert_success, python_wormhole, run, MailboxServer, Process, TransitRelay};

/// Bound on each wait of these tests.
const TIMEOUT: Duration = wormhole_tests::TIMEOUT;

/// `GET <path>` over HTTP/1.0 on 127.0.0.1:`port`; returns the whole response.
fn http_get(port: u16, path: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("the server accepts TCP");
    stream
        .set_read_timeout(Some(TIMEOUT))
        .expect("a read timeout can be set");
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    )
    .expect("the request can be sent");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("the server answers and closes within the timeout");
    response
}

/// Sends `text` with the Python CLI and receives it with the Python CLI, through `server`.
fn python_text_round_trip(server: &MailboxServer, text: &str) {
    let url = server.url();
    let mut sender = Process::spawn(&mut python_wormhole([
        "--relay-url",
        &url,
        "send",
        "--no-qr",
        "--text",
        text,
    ]));
    let code = sender.wormhole_code(TIMEOUT);
    let receiver = run(
        &mut python_wormhole(["--relay-url", &url, "receive", "--only-text", &code]),
        TIMEOUT,
    );
    assert_eq!(assert_success(&receiver), format!("{text}\n"));
    let sent = sender.wait_with_timeout(TIMEOUT);
    assert_success(&sent);
    let sender_log = String::from_utf8_lossy(&sent.stderr);
    assert!(
        sender_log.contains("text message sent"),
        "the sender saw no ack:\n{sender_log}"
    );
}

/// The mailbox server listens on 127.0.0.1 and answers `GET /` as the real one does.
#[test]
fn mailbox_server_answers_http() {
    let server = MailboxServer::start();
    assert_eq!(server.url(), format!("ws://127.0.0.1:{}/v1", server.port()));
    let response = http_get(server.port(), "/");
    assert!(response.starts_with("HTTP/1.0 200"), "{response}");
    assert!(response.ends_with("\r\n\r\nWormhole Relay\n"), "{response}");
}

/// Python `wormhole send --text` → Python `wormhole receive`, through our mailbox server.
#[test]
fn python_sends_text_to_python() {
    let server = MailboxServer::start();
    python_text_round_trip(&server, "hello from the harness: ünïcödé ✓");
}

/// `restart()` brings a fresh server up on the same port, and it works like the first one.
#[test]
fn mailbox_server_restarts_on_the_same_port() {
    let mut server = MailboxServer::start();
    let port = server.port();
    python_text_round_trip(&server, "before the restart");
    server.restart();
    assert_eq!(server.port(), port);
    python_text_round_trip(&server, "after the restart");
    server.stop();
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "a stopped server no longer accepts connections"
    );
}

/// Python → Python file transfer forced through our transit relay (`--no-listen` on both sides):
/// the relay pairs the two and the file arrives intact.
#[test]
fn python_sends_a_file_through_the_transit_relay() {
    let server = MailboxServer::start();
    let relay = TransitRelay::start();
    let url = server.url();
    let hint = relay.hint();
    let from = tempfile::tempdir().expect("a temporary folder can be created");
    let to = tempfile::tempdir().expect("a temporary folder can be created");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(from.path().join("data.bin"), &data).expect("the test file can be written");

    let mut send = python_wormhole([
        "--relay-url",
        &url,
        "--transit-helper",
        &hint,
        "send",
        "--no-qr",
        "--no-listen",
        "data.bin",
    ]);
    send.current_dir(from.path());
    let mut sender = Process::spawn(&mut send);
    let code = sender.wormhole_code(TIMEOUT);

    let mut receive = python_wormhole([
        "--relay-url",
        &url,
        "--transit-helper",
        &hint,
        "receive",
        "--no-listen",
        "--accept-file",
        &code,
    ]);
    receive.current_dir(to.path());
    let received = run(&mut receive, TIMEOUT);
    assert_success(&received);
    let sent = sender.wait_with_timeout(TIMEOUT);
    assert_success(&sent);

    let sender_log = String::from_utf8_lossy(&sent.stderr);
    assert!(
        sender_log.contains(&format!("->relay:{hint}")),
        "the transfer did not go through the relay:\n{sender_log}"
    );
    let got = fs::read(to.path().join("data.bin")).expect("the file was received");
    assert!(got == data, "the received file differs from the sent one");
}
