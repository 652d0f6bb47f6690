//! Bad input from every side: the mailbox server, the peer, and control clients.
//!
//! Each test feeds one kind of bad input to a real wormholed and proves three things:
//! (a) the wormhole or the control client concerned gets a clear, typed error;
//! (b) nothing panics: the daemon process is still alive afterwards, and never printed a panic;
//! (c) the daemon keeps serving every other wormhole: a healthy text exchange (our `wormholectl
//!     send` → the Python reference's `wormhole receive`) through the same daemon succeeds. It is
//!     started before the bad input arrives and completed after it, so it was in flight meanwhile.
//!
//! The bad mailbox server is `tests/python/hostile_mailbox.py`, a proxy in front of the real
//! reference server that injects one bad frame; the bad peer is `tests/python/garbage_peer.py`,
//! built on the reference library; bad control clients are raw Unix-socket connections.

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use serde_json::{json, Value};
use wormhole_protocol::control::MAX_LINE_BYTES;
use wormhole_tests::check::{assert_no_control_characters, strip_ansi};
use wormhole_tests::{
    assert_success, python_script, python_wormhole, run, venv_python, Daemon, MailboxServer,
    Process, TIMEOUT,
};
use wormholectl::exit::ExitCode;

/// How our `Error:` line shows the error of `garbage_peer.py --send hostile-error` (escape
/// sequences that would set the window title, clear the screen, fake a prompt and hide what
/// follows): escaped as Python's `repr` does.
const HOSTILE_ERROR_SHOWN: &str = r"Error: remote error, transfer abandoned: \x1b]0;PWNED\x07\x1b[2J\x1b[31mEVIL...ok? (y/N) \x1b[8m";

// ---------------------------------------------------------------------------------------------
// Harness pieces of this file.

/// `tests/python/hostile_mailbox.py`: a proxy to `upstream` that injects one bad frame per
/// client connection. Dropping it kills the proxy.
struct HostileMailbox {
    process: Process,
    port: u16,
}

impl HostileMailbox {
    /// Starts the proxy injecting `inject` right after forwarding the server's first message of
    /// type `after` (`welcome`, `ack`, `claimed` ...).
    fn start(upstream: &MailboxServer, inject: &str, after: &str) -> Self {
        let mut command = Command::new(venv_python());
        command
            .arg(python_script("hostile_mailbox.py"))
            .args(["--port", "0", "--upstream", &upstream.url()])
            .args(["--inject", inject, "--after", after])
            .env("PYTHONUNBUFFERED", "1")
            // Held open by the Child handle; the proxy exits when it closes.
            .stdin(Stdio::piped());
        let mut process = Process::spawn(&mut command);
        let port = process.wait_for_stdout("`listening <port>`", TIMEOUT, |line| {
            line.strip_prefix("listening ")
                .and_then(|port| port.trim().parse::<u16>().ok())
        });
        Self { process, port }
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/v1", self.port)
    }

    /// Waits until the proxy reports its injection (so the bad frame was sent).
    fn wait_injected(&mut self) {
        self.process
            .wait_for_stderr("`injected ...`", TIMEOUT, |line| {
                line.starts_with("injected ").then_some(())
            });
    }
}

/// A healthy text exchange through the daemon under test: our sender, the Python receiver.
struct Healthy {
    sender: Process,
    code: String,
    text: String,
}

impl Healthy {
    /// Starts `wormholectl send --text` (default mailbox server of the daemon) and waits for
    /// its code; the wormhole then waits for its receiver inside the daemon.
    fn start(daemon: &Daemon, text: &str) -> Self {
        let mut sender = Process::spawn(daemon.ctl().args(["send", "--text", text]));
        let code = sender.wormhole_code(TIMEOUT);
        Self {
            sender,
            code,
            text: text.to_owned(),
        }
    }

    /// Receives the text with the Python CLI through `server`; both sides must succeed.
    fn finish(self, server: &MailboxServer) {
        let received = run(
            &mut python_wormhole([
                "--relay-url",
                &server.url(),
                "receive",
                "--only-text",
                &self.code,
            ]),
            TIMEOUT,
        );
        assert_eq!(assert_success(&received), format!("{}\n", self.text));
        let sent = self.sender.wait_with_timeout(TIMEOUT);
        assert_success(&sent);
        let log = String::from_utf8_lossy(&sent.stderr);
        assert!(log.contains("text message sent"), "no ack seen:\n{log}");
    }
}

/// A mailbox server, a daemon using it, and a healthy exchange in flight.
fn setup(healthy_text: &str) -> (MailboxServer, Daemon, Healthy) {
    let server = MailboxServer::start();
    let daemon = Daemon::start(&server);
    let healthy = Healthy::start(&daemon, healthy_text);
    (server, daemon, healthy)
}

/// Ends the test: the daemon never panicked and still runs; it lists the wormholes through
/// `wormholectl`; the healthy exchange completes.
fn finish(server: &MailboxServer, daemon: &mut Daemon, healthy: Healthy) {
    assert_daemon_alive(daemon);
    let listed = list(daemon);
    assert!(
        listed.iter().any(|w| w["code"] == healthy.code.as_str()),
        "the healthy wormhole is not listed: {listed:?}"
    );
    healthy.finish(server);
    assert_daemon_alive(daemon);
}

/// The daemon process has not exited and has not printed a panic.
fn assert_daemon_alive(daemon: &mut Daemon) {
    let process = daemon.process();
    let status = process.try_status();
    let report = process.report(Instant::now());
    assert!(status.is_none(), "wormholed exited ({status:?}):\n{report}");
    assert!(
        !report.contains("panicked"),
        "wormholed panicked:\n{report}"
    );
}

/// `wormholectl --json list` against the running daemon: its wormholes.
fn list(daemon: &Daemon) -> Vec<Value> {
    let output = run(daemon.ctl().args(["--json", "list"]), TIMEOUT);
    let stdout = assert_success(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("not running"),
        "wormholectl did not reach the daemon:\n{stderr}"
    );
    let body: Value = serde_json::from_str(stdout.trim()).expect("list --json prints JSON");
    body["wormholes"]
        .as_array()
        .expect("list --json has a `wormholes` array")
        .clone()
}

/// The single `Error: ...` line of a failed wormholectl run, after checking its exit code.
fn error_line(output: &Output, exit_code: ExitCode) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(i32::from(exit_code.code())),
        "wormholectl exit status; stderr:\n{stderr}"
    );
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("Error: "))
        .collect();
    assert_eq!(errors.len(), 1, "one `Error:` line expected:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    errors[0].to_owned()
}

// ---------------------------------------------------------------------------------------------
// 1. Bad frames from the mailbox server.

/// Sends a text through `hostile` (which injects `inject` after `after`); the send must fail
/// with one `Error:` line containing every one of `expected`, exit code 1.
fn bad_frame_fails_the_wormhole(inject: &str, after: &str, expected: &[&str]) {
    let (server, mut daemon, healthy) = setup("healthy while the server misbehaves");
    let mut hostile = HostileMailbox::start(&server, inject, after);
    let output = run(
        daemon
            .ctl()
            .args(["send", "--relay-url", &hostile.url(), "--text", "doomed"]),
        TIMEOUT,
    );
    hostile.wait_injected();
    let error = error_line(&output, ExitCode::Failure);
    for part in expected {
        assert!(error.contains(part), "{error:?} should mention {part:?}");
    }
    finish(&server, &mut daemon, healthy);
}

/// A text frame that is not JSON, right after the welcome: protocol error, naming the frame.
#[test]
fn mailbox_malformed_json_fails_that_wormhole_only() {
    bad_frame_fails_the_wormhole(
        "malformed-json",
        "welcome",
        &[
            "protocol error",
            "malformed message from the mailbox server",
            "this is not JSON",
        ],
    );
}

/// The same once the wormhole holds a nameplate and a mailbox (after `claimed`): it still
/// releases and closes them, and fails.
#[test]
fn mailbox_malformed_json_while_holding_a_nameplate() {
    bad_frame_fails_the_wormhole(
        "malformed-json",
        "claimed",
        &[
            "protocol error",
            "malformed message from the mailbox server",
        ],
    );
}

/// A binary frame right after the welcome: protocol error, naming the binary frame.
#[test]
fn mailbox_binary_frame_fails_that_wormhole_only() {
    bad_frame_fails_the_wormhole("binary", "welcome", &["protocol error", "binary frame"]);
}

/// A binary frame once the wormhole holds a nameplate and a mailbox. The connection is dropped,
/// yet the wormhole must still end (it used to hang: the drop was not reported to the machine,
/// which waited forever for `released` and `closed`).
#[test]
fn mailbox_binary_frame_while_holding_a_nameplate() {
    bad_frame_fails_the_wormhole("binary", "claimed", &["protocol error", "binary frame"]);
}

/// A frame larger than 16 MiB (here once the wormhole holds a nameplate): protocol error, naming
/// the size limit.
#[test]
fn mailbox_oversized_frame_fails_that_wormhole_only() {
    bad_frame_fails_the_wormhole(
        "oversized",
        "claimed",
        &["protocol error", "frame larger than 16777216 bytes"],
    );
}

/// A message of unknown type is logged and ignored, as the reference does: the exchange through
/// the proxy completes, and `--json` shows a `warning` event quoting it.
#[test]
fn mailbox_unknown_message_type_is_only_a_warning() {
    let (server, mut daemon, healthy) = setup("healthy beside an odd server");
    let mut hostile = HostileMailbox::start(&server, "unknown-type", "welcome");
    let mut sender = Process::spawn(daemon.ctl().args([
        "--json",
        "send",
        "--relay-url",
        &hostile.url(),
        "--text",
        "through the odd server",
    ]));
    let code = sender.wormhole_code(TIMEOUT);
    hostile.wait_injected();
    let received = run(
        &mut python_wormhole([
            "--relay-url",
            &server.url(),
            "receive",
            "--only-text",
            &code,
        ]),
        TIMEOUT,
    );
    assert_eq!(assert_success(&received), "through the odd server\n");
    let sent = sender.wait_with_timeout(TIMEOUT);
    let stdout = assert_success(&sent);
    let events: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("--json prints JSON lines"))
        .collect();
    let warning = events
        .iter()
        .find(|e| e["event"] == "warning")
        .unwrap_or_else(|| panic!("no warning event in {events:?}"));
    let message = warning["message"]
        .as_str()
        .expect("a warning has a message");
    assert!(
        message.contains("unknown type") && message.contains("teleport"),
        "{message:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "closed" && e["mood"] == "happy"),
        "{events:?}"
    );
    finish(&server, &mut daemon, healthy);
}

// ---------------------------------------------------------------------------------------------
// 2. Bad messages from the peer.

/// `tests/python/garbage_peer.py` with these arguments (plus the relay URL); stdin piped, so it
/// closes its wormhole and exits once the test lets go of it.
fn garbage_peer(server: &MailboxServer, args: &[&str]) -> Process {
    let mut command = Command::new(venv_python());
    command
        .arg(python_script("garbage_peer.py"))
        .args(["--relay-url", &server.url()])
        .args(args)
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::piped());
    Process::spawn(&mut command)
}

/// The garbage peer (arguments `peer_args`) allocates a code and sends its bad messages;
/// `wormholectl receive` must fail with exit code 5 and an error containing every one of
/// `expected`, with no control character of the peer's on its stderr. Returns what the peer
/// printed on stdout (the messages it got back).
fn receiver_of_garbage_fails(peer_args: &[&str], expected: &[&str]) -> String {
    let (server, mut daemon, healthy) = setup("healthy beside a garbage peer");
    let mut peer = garbage_peer(&server, peer_args);
    let code = peer.wormhole_code(TIMEOUT);
    let output = run(daemon.ctl().args(["receive", &code]), TIMEOUT);
    let error = error_line(&output, ExitCode::Rejected);
    for part in expected {
        assert!(error.contains(part), "{error:?} should mention {part:?}");
    }
    assert_no_control_characters(&output.stderr, "wormholectl's stderr");
    assert_eq!(output.stdout, b"", "nothing was received");
    let peer_output = peer.wait_with_timeout(TIMEOUT);
    let peer_said = assert_success(&peer_output);
    finish(&server, &mut daemon, healthy);
    peer_said
}

/// Bytes that are not even UTF-8 in phase "0": the receiver fails, naming a malformed message.
#[test]
fn peer_sends_bytes_that_are_not_json() {
    receiver_of_garbage_fails(
        &["--send", "not-json"],
        &["the peer sent a malformed message"],
    );
}

/// JSON that is not an object: the same.
#[test]
fn peer_sends_json_that_is_not_an_object() {
    receiver_of_garbage_fails(
        &["--send", "json-array"],
        &["the peer sent a malformed message"],
    );
}

/// An `answer` to a receiver is ignored (as `cmd_receive.py` does); the offer of unknown type
/// that follows fails the receiver, which tells the peer `unknown offer type` like the reference.
#[test]
fn peer_offers_something_of_unknown_type() {
    let peer_said = receiver_of_garbage_fails(
        &[
            "--send",
            "answer",
            "--send",
            "unknown-offer",
            "--expect-reply",
        ],
        &["the peer made an offer of unknown type", "teleport"],
    );
    let told: Vec<Value> = peer_said
        .lines()
        .filter_map(|line| line.strip_prefix("peer said: "))
        .map(|text| serde_json::from_str(text).expect("the receiver sends JSON"))
        .collect();
    assert_eq!(told, [json!({"error": "unknown offer type"})]);
}

/// The receiver answers our text offer with `file_ack`: our sender fails, naming the answer.
#[test]
fn peer_answers_a_text_with_a_file_ack() {
    let (server, mut daemon, healthy) = setup("healthy beside a confused receiver");
    let mut sender = Process::spawn(daemon.ctl().args(["send", "--text", "a text, not a file"]));
    let code = sender.wormhole_code(TIMEOUT);
    let peer = garbage_peer(
        &server,
        &[
            "--code",
            &code,
            "--after-peer-message",
            "--send",
            "file-ack",
        ],
    );
    let output = sender.wait_with_timeout(TIMEOUT);
    let error = error_line(&output, ExitCode::Rejected);
    assert!(
        error.contains("the peer answered with file_ack instead of message_ack"),
        "{error:?}"
    );
    let peer_said = assert_success(&peer.wait_with_timeout(TIMEOUT));
    let offer: Value = serde_json::from_str(
        peer_said
            .lines()
            .find_map(|line| line.strip_prefix("peer said: "))
            .expect("the peer got our offer"),
    )
    .expect("the offer is JSON");
    assert_eq!(offer, json!({"offer": {"message": "a text, not a file"}}));
    finish(&server, &mut daemon, healthy);
}

/// A sender's `error` made of escape sequences: our receiver's `Error:` line shows them escaped,
/// and no raw control character reaches its stderr.
#[test]
fn a_hostile_senders_error_is_shown_escaped() {
    receiver_of_garbage_fails(&["--send", "hostile-error"], &[HOSTILE_ERROR_SHOWN]);
}

/// A receiver answers our text offer with an `error` made of escape sequences: our sender's
/// `Error:` line shows them escaped, and no raw control character reaches its stderr.
#[test]
fn a_hostile_receivers_error_is_shown_escaped() {
    let (server, mut daemon, healthy) = setup("healthy beside a hostile receiver");
    let mut sender = Process::spawn(daemon.ctl().args(["send", "--text", "for the hostile"]));
    let code = sender.wormhole_code(TIMEOUT);
    let peer = garbage_peer(
        &server,
        &[
            "--code",
            &code,
            "--after-peer-message",
            "--send",
            "hostile-error",
        ],
    );
    let output = sender.wait_with_timeout(TIMEOUT);
    assert_eq!(error_line(&output, ExitCode::Rejected), HOSTILE_ERROR_SHOWN);
    assert_no_control_characters(&output.stderr, "wormholectl's stderr");
    assert_success(&peer.wait_with_timeout(TIMEOUT));
    finish(&server, &mut daemon, healthy);
}

// ---------------------------------------------------------------------------------------------
// 3. Bad control clients.

/// A control connection spoken by hand.
struct RawClient {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl RawClient {
    fn connect(daemon: &Daemon) -> Self {
        let stream = UnixStream::connect(daemon.socket()).expect("the control socket accepts");
        stream
            .set_read_timeout(Some(TIMEOUT))
            .expect("a read timeout can be set");
        stream
            .set_write_timeout(Some(TIMEOUT))
            .expect("a write timeout can be set");
        let writer = stream.try_clone().expect("the stream can be cloned");
        Self {
            reader: BufReader::new(stream),
            writer,
        }
    }

    /// Writes `line` and a newline.
    fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\n").as_bytes())
            .expect("the daemon reads requests");
    }

    /// The next line from the daemon (a response or an event), as JSON.
    fn next(&mut self) -> Value {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .expect("the daemon answers within the timeout");
        assert!(n > 0, "the daemon closed the connection");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
    }

    /// The next response (events before it are skipped).
    fn response(&mut self) -> Value {
        loop {
            let line = self.next();
            if line.get("event").is_none() {
                return line;
            }
        }
    }

    /// Sends `line`, returns the response.
    fn request(&mut self, line: &str) -> Value {
        self.send(line);
        self.response()
    }

    /// `hello` with the right version; must be welcomed.
    fn hello(&mut self, id: u64) {
        let welcome = self.request(&json!({"id": id, "op": "hello", "protocol": 1}).to_string());
        assert_eq!(welcome["id"], id, "{welcome}");
        assert_eq!(welcome["ok"]["protocol"], 1, "{welcome}");
    }

    /// `list` works on this connection.
    fn assert_list_works(&mut self, id: u64) {
        let answer = self.request(&json!({"id": id, "op": "list"}).to_string());
        assert_eq!(answer["id"], id, "{answer}");
        assert!(answer["ok"]["wormholes"].is_array(), "{answer}");
    }
}

/// `response` is the error `code` for request `id`, with a message containing `message`.
fn assert_error(response: &Value, id: Value, code: &str, message: &str) {
    assert_eq!(response["id"], id, "{response}");
    assert_eq!(response["error"]["code"], code, "{response}");
    let text = response["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message in {response}"));
    assert!(
        text.contains(message),
        "{text:?} should mention {message:?}"
    );
}

/// A line that is not JSON gets `bad-request` (id null); the session goes on.
#[test]
fn control_line_that_is_not_json() {
    let (server, mut daemon, healthy) = setup("healthy beside a babbling client");
    let mut client = RawClient::connect(&daemon);
    let answer = client.request("this is not JSON {");
    assert_error(&answer, Value::Null, "bad-request", "not JSON");
    client.hello(1);
    let answer = client.request("[1, 2");
    assert_error(&answer, Value::Null, "bad-request", "not JSON");
    client.assert_list_works(2);
    finish(&server, &mut daemon, healthy);
}

/// JSON without `id` (id null in the answer) or without `op` (the id is echoed): `bad-request`.
#[test]
fn control_request_without_id_or_op() {
    let (server, mut daemon, healthy) = setup("healthy beside a sloppy client");
    let mut client = RawClient::connect(&daemon);
    client.hello(1);
    let answer = client.request(r#"{"op": "list"}"#);
    assert_error(&answer, Value::Null, "bad-request", "\"id\"");
    let answer = client.request(r#"{"id": 5}"#);
    assert_error(&answer, json!(5), "bad-request", "\"op\"");
    let answer = client.request(r#"{"id": "six", "op": "list"}"#);
    assert_error(&answer, Value::Null, "bad-request", "\"id\"");
    let answer = client.request(r#"{"id": 7, "op": "cancel"}"#);
    assert_error(&answer, json!(7), "bad-request", "wormhole");
    client.assert_list_works(8);
    finish(&server, &mut daemon, healthy);
}

/// An operation the daemon does not know gets `unknown-op`; the session goes on.
#[test]
fn control_unknown_op() {
    let (server, mut daemon, healthy) = setup("healthy beside a futuristic client");
    let mut client = RawClient::connect(&daemon);
    client.hello(1);
    let answer = client.request(r#"{"id": 2, "op": "teleport", "to": "mars"}"#);
    assert_error(&answer, json!(2), "unknown-op", "unknown operation");
    client.assert_list_works(3);
    finish(&server, &mut daemon, healthy);
}

/// A request before `hello` gets `hello-required`; `hello` then still works.
#[test]
fn control_request_before_hello() {
    let (server, mut daemon, healthy) = setup("healthy beside an impatient client");
    let mut client = RawClient::connect(&daemon);
    let answer = client.request(r#"{"id": 1, "op": "list"}"#);
    assert_error(&answer, json!(1), "hello-required", "hello");
    let answer = client.request(r#"{"id": 2, "op": "send-text", "text": "too early"}"#);
    assert_error(&answer, json!(2), "hello-required", "hello");
    client.hello(3);
    client.assert_list_works(4);
    assert!(
        !list(&daemon)
            .iter()
            .any(|w| w["kind"] == "send-text" && w["code"] != healthy.code.as_str()),
        "the early send-text created a wormhole"
    );
    finish(&server, &mut daemon, healthy);
}

/// `hello` naming another protocol version gets `unsupported-version`, naming both versions.
#[test]
fn control_hello_with_a_wrong_version() {
    let (server, mut daemon, healthy) = setup("healthy beside a client from the future");
    let mut client = RawClient::connect(&daemon);
    let answer = client.request(r#"{"id": 1, "op": "hello", "protocol": 99}"#);
    assert_error(&answer, json!(1), "unsupported-version", "99");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("protocol 1"), "{message:?}");
    // Still not greeted.
    let answer = client.request(r#"{"id": 2, "op": "list"}"#);
    assert_error(&answer, json!(2), "hello-required", "hello");
    client.hello(3);
    client.assert_list_works(4);
    finish(&server, &mut daemon, healthy);
}

/// More than 4 MiB without a newline gets `line-too-long`, then the connection is closed.
#[test]
fn control_endless_line() {
    let (server, mut daemon, healthy) = setup("healthy beside a flooding client");
    let mut client = RawClient::connect(&daemon);
    client.hello(1);
    let chunk = vec![b'x'; 64 * 1024];
    let chunks = MAX_LINE_BYTES / chunk.len() + 2;
    let mut written = 0;
    for _ in 0..chunks {
        match client.writer.write_all(&chunk) {
            Ok(()) => written += chunk.len(),
            // The daemon may close before we are done: that is what we want.
            Err(e) if matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) => {
                break
            }
            Err(e) => panic!("writing the endless line: {e}"),
        }
    }
    assert!(written > MAX_LINE_BYTES / 2, "only {written} bytes written");
    let answer = client.next();
    assert_error(&answer, Value::Null, "line-too-long", "4194304");
    let mut rest = String::new();
    match client.reader.read_line(&mut rest) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("the connection should be closed, got {other:?} {rest:?}"),
    }
    let mut fresh = RawClient::connect(&daemon);
    fresh.hello(1);
    fresh.assert_list_works(2);
    finish(&server, &mut daemon, healthy);
}

/// A client that disconnects while its wormhole waits for a peer: that wormhole is cancelled,
/// the daemon and the other wormholes go on.
#[test]
fn control_client_disconnects_mid_wormhole() {
    let (server, mut daemon, healthy) = setup("healthy beside a vanishing client");
    let mut client = RawClient::connect(&daemon);
    client.hello(1);
    let created = client.request(r#"{"id": 2, "op": "send-text", "text": "never delivered"}"#);
    let wormhole = created["ok"]["wormhole"]
        .as_u64()
        .unwrap_or_else(|| panic!("no wormhole created: {created}"));
    let code = loop {
        let line = client.next();
        if line["wormhole"] == wormhole && line["event"] == "code" {
            break line["code"]
                .as_str()
                .expect("a code event has a code")
                .to_owned();
        }
    };
    assert!(
        list(&daemon).iter().any(|w| w["code"] == code.as_str()),
        "the wormhole is listed while its client is connected"
    );
    drop(client);

    let needle = format!("wormhole={wormhole}");
    daemon.process().wait_for_stderr(
        "the log line cancelling the wormhole of the client that left",
        TIMEOUT,
        |line| {
            let line = strip_ansi(line);
            (line.contains(&needle) && line.contains("its client disconnected")).then_some(())
        },
    );
    finish(&server, &mut daemon, healthy);
}

/// A request whose `transit_helper` is not `tcp:HOST:PORT[:priority=F]` gets
/// `invalid-argument` when it arrives, for file transfers and Dilation alike (one parser, one
/// policy), and no wormhole is made for it.
#[test]
fn control_request_with_a_bad_transit_helper() {
    let (server, mut daemon, healthy) = setup("healthy beside a misconfigured client");
    let file = daemon.dir().join("offered.txt");
    std::fs::write(&file, "never sent").expect("the offered file can be written");
    let mut client = RawClient::connect(&daemon);
    client.hello(1);
    for (id, request) in [
        json!({"op": "send-file", "path": file, "transit_helper": "relay.example:4001"}),
        json!({"op": "receive", "code": "4-a-b", "transit_helper": "tcp:relay.example:0"}),
        json!({"op": "dilate", "transit_helper": "tcp:relay.example"}),
    ]
    .into_iter()
    .enumerate()
    {
        let id = json!(id + 2);
        let mut request = request;
        request["id"] = id.clone();
        let answer = client.request(&request.to_string());
        assert_error(&answer, id, "invalid-argument", "bad transit relay");
    }
    let listed = list(&daemon);
    assert_eq!(listed.len(), 1, "only the healthy wormhole: {listed:?}");
    client.assert_list_works(9);
    finish(&server, &mut daemon, healthy);
}
