//! End to end through the real `wormholectl` and a real `wormholed`: what the CLI promises
//! beyond one text exchange (several wormholes at once in one daemon, `--text -`, `--json`, the
//! code on stdin, starting the daemon on demand, the exit codes of a usage error and of an
//! unreachable server). The peer is the Python reference CLI, through the real mailbox server,
//! unless both ends are ours.
//!
//! Every test has its own mailbox server and daemon, so the tests run in parallel.

use std::process::{Command, Stdio};

use wormhole_tests::check::{assert_ok, assert_our_failure, ours, python, spawn_with_stdin};
use wormhole_tests::{run, Daemon, MailboxServer, Process, TIMEOUT};
use wormholectl::exit::ExitCode;

/// Text with what a shell or a careless reader would mangle: newlines, tabs, quotes,
/// backslashes, leading and trailing blanks, non-ASCII, and a trailing newline of its own.
const AWKWARD: &str = "  first line\n\tsecond 'single' \"double\" back\\slash\n\n✓ 日本語 🎉  \n";

/// Two `wormholectl send`s through one daemon at the same time (one with an allocated code, one
/// with a fixed one): `list` shows both waiting wormholes with their codes, then two Python
/// receivers, running at the same time, each get their own text.
#[test]
fn two_senders_share_one_daemon_at_the_same_time() {
    let server = MailboxServer::start();
    let daemon = Daemon::start(&server);
    let mut first = Process::spawn(&mut ours(&daemon, &["send", "--text", "first text"]));
    let mut second = Process::spawn(&mut ours(
        &daemon,
        &[
            "send",
            "--code",
            "71-guitarist-revenge",
            "--text",
            "second text",
        ],
    ));
    let first_code = first.wormhole_code(TIMEOUT);
    let second_code = second.wormhole_code(TIMEOUT);
    assert_eq!(second_code, "71-guitarist-revenge");

    let (listed, _) = assert_ok(&run(&mut ours(&daemon, &["list"]), TIMEOUT), "list");
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 3, "a header and two wormholes:\n{listed}");
    for code in [&first_code, &second_code] {
        assert!(
            lines
                .iter()
                .any(|line| line.contains("send-text") && line.ends_with(code.as_str())),
            "no send-text wormhole with code {code}:\n{listed}"
        );
    }

    let first_receiver = Process::spawn(&mut python(&server, &["receive", &first_code]));
    let second_receiver = Process::spawn(&mut python(&server, &["receive", &second_code]));
    let (got_first, _) = assert_ok(
        &first_receiver.wait_with_timeout(TIMEOUT),
        "the first receiver",
    );
    let (got_second, _) = assert_ok(
        &second_receiver.wait_with_timeout(TIMEOUT),
        "the second receiver",
    );
    assert_eq!(got_first, "first text\n");
    assert_eq!(got_second, "second text\n");
    assert_ok(&first.wait_with_timeout(TIMEOUT), "the first sender");
    assert_ok(&second.wait_with_timeout(TIMEOUT), "the second sender");

    let (listed, _) = assert_ok(&run(&mut ours(&daemon, &["list"]), TIMEOUT), "list");
    assert_eq!(listed, "", "no wormhole is left once both are done");
}

/// `send --text -` sends standard input exactly (newlines, tabs, quotes, trailing newline), and
/// `receive` prints exactly that and one newline. Both ends are ours, each with its own daemon:
/// the Python receiver would print `repr(text)[1:-1]`, hiding the bytes.
#[test]
fn text_from_stdin_arrives_byte_for_byte() {
    let server = MailboxServer::start();
    let sending_daemon = Daemon::start(&server);
    let receiving_daemon = Daemon::start(&server);
    let mut sender = spawn_with_stdin(
        &mut ours(&sending_daemon, &["send", "--text", "-"]),
        AWKWARD,
    );
    let code = sender.wormhole_code(TIMEOUT);
    let (received, _) = assert_ok(
        &run(&mut ours(&receiving_daemon, &["receive", &code]), TIMEOUT),
        "wormholectl receive",
    );
    assert_eq!(received, format!("{AWKWARD}\n"));
    let (_, said) = assert_ok(&sender.wait_with_timeout(TIMEOUT), "wormholectl send");
    assert!(
        said.starts_with(&format!(
            "Reading text message from stdin..\nSending text message ({} Bytes)\n",
            AWKWARD.len()
        )),
        "the sender says what it read, as the Python CLI does:\n{said}"
    );
}

/// `receive --json` prints one JSON object per line on stdout and nothing else; exactly one of
/// them is the `message` event, carrying the text; the last is `closed` with mood `happy`; all
/// name the same wormhole. The Python CLI is the sender.
#[test]
fn json_prints_one_event_per_line() {
    let server = MailboxServer::start();
    let daemon = Daemon::start(&server);
    let mut sender = Process::spawn(&mut python(
        &server,
        &["send", "--no-qr", "--text", "json ✓ \"quoted\""],
    ));
    let code = sender.wormhole_code(TIMEOUT);
    let (stdout, _) = assert_ok(
        &run(&mut ours(&daemon, &["--json", "receive", &code]), TIMEOUT),
        "wormholectl --json receive",
    );
    assert_ok(&sender.wait_with_timeout(TIMEOUT), "the Python sender");

    assert!(
        stdout.ends_with('\n'),
        "lines end with a newline:\n{stdout}"
    );
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line:?}"))
        })
        .collect();
    assert!(events.iter().all(serde_json::Value::is_object), "{stdout}");
    let kinds: Vec<&str> = events
        .iter()
        .map(|event| event["event"].as_str().unwrap_or("?"))
        .collect();
    let messages: Vec<&serde_json::Value> = events
        .iter()
        .filter(|event| event["event"] == "message")
        .collect();
    assert_eq!(messages.len(), 1, "one message event: {kinds:?}");
    assert_eq!(messages[0]["text"], "json ✓ \"quoted\"");
    let last = events.last().expect("at least one event");
    assert_eq!(last["event"], "closed", "{kinds:?}");
    assert_eq!(last["mood"], "happy", "{stdout}");
    assert!(
        events
            .iter()
            .all(|event| event["wormhole"] == events[0]["wormhole"] && event["wormhole"].is_u64()),
        "every event names the one wormhole:\n{stdout}"
    );
}

/// `receive` without a code, with standard input not a terminal, takes the code from the first
/// line of standard input.
#[test]
fn receive_reads_the_code_from_stdin() {
    let server = MailboxServer::start();
    let daemon = Daemon::start(&server);
    let mut sender = Process::spawn(&mut python(
        &server,
        &["send", "--no-qr", "--text", "code from stdin"],
    ));
    let code = sender.wormhole_code(TIMEOUT);
    let receiver = spawn_with_stdin(&mut ours(&daemon, &["receive"]), &format!("{code}\n"));
    let (received, _) = assert_ok(
        &receiver.wait_with_timeout(TIMEOUT),
        "wormholectl receive (code on stdin)",
    );
    assert_eq!(received, "code from stdin\n");
    assert_ok(&sender.wait_with_timeout(TIMEOUT), "the Python sender");
}

/// `receive` with an empty standard input fails as a usage error (exit 2).
#[test]
fn receive_without_any_code_is_a_usage_error() {
    let server = MailboxServer::start();
    let daemon = Daemon::start(&server);
    let output = run(&mut ours(&daemon, &["receive"]), TIMEOUT);
    assert_our_failure(&output, ExitCode::Usage, &["no code"]);
}

/// A daemon whose mailbox server does not answer: `receive` fails with exit 4 (server
/// unreachable) and one error line, instead of waiting.
#[test]
fn an_unreachable_mailbox_server_fails_with_exit_4() {
    let mut server = MailboxServer::start();
    server.stop();
    let daemon = Daemon::start(&server);
    let output = run(
        &mut ours(&daemon, &["receive", "5-guitarist-revenge"]),
        TIMEOUT,
    );
    assert_our_failure(&output, ExitCode::Connection, &["mailbox server"]);
}

/// The first connection to the mailbox server is retried: a sender started while the server
/// is down says so, and completes once the server is back on its port.
#[test]
fn a_mailbox_server_that_comes_back_is_reached_by_a_retry() {
    let mut server = MailboxServer::start();
    server.stop();
    let daemon = Daemon::start(&server);
    let code = "7-guitarist-revenge";
    let mut sender = Process::spawn(&mut ours(
        &daemon,
        &["send", "--text", "late but here", "--code", code],
    ));
    sender.wait_for_stderr("the retry warning", TIMEOUT, |line| {
        line.contains("cannot reach the mailbox server")
            .then_some(())
    });
    server.restart();
    let received = run(&mut ours(&daemon, &["receive", code]), TIMEOUT);
    assert_eq!(assert_ok(&received, "the receiver").0, "late but here\n");
    assert_ok(&sender.wait_with_timeout(TIMEOUT), "the sender");
}

/// Kills, on drop, the daemon that wormholectl started on demand (a process this test caused),
/// unless `wormholectl shutdown` stopped it first.
struct StartedDaemon {
    pid: Option<u32>,
}

impl Drop for StartedDaemon {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            let _ = Command::new("kill")
                .arg(pid.to_string())
                .stdin(Stdio::null())
                .status();
        }
    }
}

/// With no daemon on its socket, `wormholectl send` starts one (saying so on stderr with its
/// pid), and the exchange completes; `list` then reaches that same daemon, and
/// `wormholectl shutdown` stops it.
#[test]
fn ctl_starts_the_daemon_when_none_runs() {
    let server = MailboxServer::start();
    let env = Daemon::not_started(&server);
    assert!(!env.socket().exists(), "no daemon yet");

    let mut sender = Process::spawn(&mut ours(
        &env,
        &[
            "send",
            "--code",
            "81-guitarist-revenge",
            "--text",
            "auto-started",
        ],
    ));
    let pid = sender.wait_for_stderr(
        "`wormholectl: started wormholed (pid N)`",
        TIMEOUT,
        |line| {
            line.strip_prefix("wormholectl: started wormholed (pid ")
                .and_then(|rest| rest.strip_suffix(')'))
                .and_then(|pid| pid.parse::<u32>().ok())
        },
    );
    let mut started = StartedDaemon { pid: Some(pid) };
    assert_eq!(sender.wormhole_code(TIMEOUT), "81-guitarist-revenge");
    assert!(
        env.socket().exists(),
        "the daemon listens on WORMHOLED_SOCKET"
    );

    let (listed, _) = assert_ok(&run(&mut ours(&env, &["list"]), TIMEOUT), "list");
    assert!(
        listed.contains("81-guitarist-revenge"),
        "list reaches the started daemon:\n{listed}"
    );

    let (received, _) = assert_ok(
        &run(
            &mut python(&server, &["receive", "81-guitarist-revenge"]),
            TIMEOUT,
        ),
        "the Python receiver",
    );
    assert_eq!(received, "auto-started\n");
    assert_ok(&sender.wait_with_timeout(TIMEOUT), "wormholectl send");

    let (_, said) = assert_ok(&run(&mut ours(&env, &["shutdown"]), TIMEOUT), "shutdown");
    assert!(said.contains("wormholed is shutting down"), "{said}");
    started.pid = None;
}

/// A text whose `send` request exceeds the control protocol's line limit (4 MiB) is refused by
/// wormholectl itself as a usage error (exit 2) saying so, before wormholed would cut the
/// connection (which the user used to read as "lost the connection to wormholed", exit 4).
#[test]
fn a_text_beyond_the_control_line_limit_is_refused_clearly() {
    let server = MailboxServer::start();
    let daemon = Daemon::start(&server);
    let text = "x".repeat(4_300_000);
    let sender = spawn_with_stdin(&mut ours(&daemon, &["send", "--text", "-"]), &text);
    assert_our_failure(
        &sender.wait_with_timeout(TIMEOUT),
        ExitCode::Usage,
        &["too large"],
    );
}
