//! Text transfers between our stack (the real `wormholectl` driving a real `wormholed`) and the
//! Python reference CLI (magic-wormhole 0.24.0), through the real mailbox server (0.8.0), in both
//! directions: what a user relies on, checked as the user sees it. The received text is the
//! exact stdout bytes (the text and one newline), a failure is a non-zero exit code with one
//! `Error: ` line on stderr.
//!
//! Every test has its own mailbox server and daemon (and a nameplate of its own), so the tests
//! run in parallel. The Python receiver prints text with `repr(text)[1:-1]`, so the texts sent to
//! it contain nothing that `repr` escapes (no newline, quote or backslash); the texts that do are
//! received by ours (daemon_e2e.rs and [`python_sends_multi_line_text_from_stdin_to_ours`]).

use std::io::Write;
use std::process::{Output, Stdio};

use wormhole_tests::check::{
    assert_no_control_characters, assert_ok, assert_our_failure, assert_received, on_terminal,
    ours, python,
};
use wormhole_tests::{run, Daemon, MailboxServer, Process, TIMEOUT};
use wormholectl::exit::ExitCode;

/// Escape sequences a hostile peer or server would have a terminal obey: set the window title,
/// clear the screen, fake a prompt after a carriage return, hide what follows, a C1 CSI, and a
/// bidi override.
const HOSTILE: &str =
    "\u{1b}]0;PWNED\u{7}\u{1b}[2J\u{1b}[31mEVIL\rok? (y/N) \u{1b}[8m\u{9b}2J\u{202e}end";

/// [`HOSTILE`] as wormholectl shows it, escaped like Python's `repr`.
const HOSTILE_SHOWN: &str =
    r"\x1b]0;PWNED\x07\x1b[2J\x1b[31mEVIL\rok? (y/N) \x1b[8m\x9b2J\u202eend";

/// Non-ASCII text: accents, a symbol, CJK and an emoji (4 bytes in UTF-8).
const UNICODE: &str = "héllo wörld ✓ 日本語 🎉";

/// The size of the large text: 60 KiB, far above one WebSocket frame's default limit of awc.
const LARGE: usize = 60 * 1024;

/// `LARGE` bytes of UTF-8 text mixing ASCII and multi-byte characters, with nothing that the
/// Python receiver's `repr` escapes.
fn large_text() -> String {
    let pattern =
        "0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ héllo ✓ 日本 🎉 ";
    let mut text = String::with_capacity(LARGE);
    for c in pattern.chars().cycle() {
        if text.len() + c.len_utf8() > LARGE {
            break;
        }
        text.push(c);
    }
    while text.len() < LARGE {
        text.push('x');
    }
    text
}

/// Panics unless the Python CLI's `output` failed and its stderr contains `needle`.
fn assert_python_failure(output: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains(needle),
        "the Python CLI should fail mentioning {needle:?} ({}):\n--- stdout:\n{}\n--- stderr:\n{stderr}",
        output.status,
        String::from_utf8_lossy(&output.stdout)
    );
}

/// Python `send --text` (allocated code) → ours `receive CODE`.
fn python_to_ours(text: &str) {
    let server = MailboxServer::start();
    let daemon = Daemon::start(&server);
    let mut sender = Process::spawn(&mut python(&server, &["send", "--no-qr", "--text", text]));
    let code = sender.wormhole_code(TIMEOUT);
    let received = run(&mut ours(&daemon, &["receive", &code]), TIMEOUT);
    assert_received(&received, text);
    let (_, sent) = assert_ok(&sender.wait_with_timeout(TIMEOUT), "the Python sender");
    assert!(sent.contains("text message sent"), "no ack seen:\n{sent}");
}

/// Ours `send --text` (allocated code, read from our `Wormhole code is:` line) → Python
/// `receive CODE`.
fn ours_to_python(text: &str) {
    let server = MailboxServer::start();
    let daemon = Daemon::start(&server);
    let mut sender = Process::spawn(&mut ours(&daemon, &["send", "--text", text]));
    let code = sender.wormhole_code(TIMEOUT);
    let received = run(&mut python(&server, &["receive", &code]), TIMEOUT);
    assert_received(&received, text);
    let (_, sent) = assert_ok(&sender.wait_with_timeout(TIMEOUT), "wormholectl send");
    assert!(
        sent.contains(&format!("wormhole receive {code}\n")),
        "our sender tells the user what to run:\n{sent}"
    );
    assert!(
        sent.ends_with("text message sent\n"),
        "the last line says the text went:\n{sent}"
    );
}

/// Python sends ASCII text with an allocated code; ours prints it and one newline.
#[test]
fn python_sends_text_to_ours() {
    python_to_ours("hello from python");
}

/// Ours sends ASCII text with an allocated code; the Python CLI prints it.
#[test]
fn ours_sends_text_to_python() {
    ours_to_python("hello from wormholectl");
}

/// Non-ASCII text from Python arrives byte for byte.
#[test]
fn python_sends_unicode_text_to_ours() {
    python_to_ours(UNICODE);
}

/// Non-ASCII text from ours arrives byte for byte.
#[test]
fn ours_sends_unicode_text_to_python() {
    ours_to_python(UNICODE);
}

/// 60 KiB of text from Python (a mailbox message of about 120 KiB of hex) arrives exactly.
#[test]
fn python_sends_60_kib_of_text_to_ours() {
    python_to_ours(&large_text());
}

/// 60 KiB of text from ours arrives exactly.
#[test]
fn ours_sends_60_kib_of_text_to_python() {
    ours_to_python(&large_text());
}

/// Python sends with a fixed `--code`; ours receives with the same code.
#[test]
fn python_sends_with_a_fixed_code_to_ours() {
    let server = MailboxServer::start();
    let daemon = Daemon::start(&server);
    let code = "17-guitarist-revenge";
    let mut sender = Process::spawn(&mut python(
        &server,
        &["send", "--no-qr", "--code", code, "--text", UNICODE],
    ));
    assert_eq!(sender.wormhole_code(TIMEOUT), code);
    let received = run(&mut ours(&daemon, &["receive", code]), TIMEOUT);
    assert_received(&received, UNICODE);
    assert_ok(&sender.wait_with_timeout(TIMEOUT), "the Python sender");
}

/// Ours sends with a fixed `--code` (and prints it as the Python CLI does); Python receives.
#[test]
fn ours_sends_with_a_fixed_code_to_python() {
    let server = MailboxServer::start();
    let daemon = Daemon::start(&server);
    let code = "18-adroitness-aardvark";
    let mut sender = Process::spawn(&mut ours(
        &daemon,
        &["send", "--code", code, "--text", UNICODE],
    ));
    assert_eq!(sender.wormhole_code(TIMEOUT), code);
    let received = run(&mut python(&server, &["receive", code]), TIMEOUT);
    assert_received(&received, UNICODE);
    assert_ok(&sender.wait_with_timeout(TIMEOUT), "wormholectl send");
}

/// Python sends with `N-guitarist-revenge`, ours receives with `N-guitarist-aardvark` (same
/// nameplate, so the two meet; other words, so the keys differ): ours exits 3 saying the code
/// was wrong, the Python sender fails with its `Key confirmation failed`.
#[test]
fn a_wrong_code_fails_ours_receiving_from_python() {
    let server = MailboxServer::start();
    let daemon = Daemon::start(&server);
    let mut sender = Process::spawn(&mut python(
        &server,
        &[
            "send",
            "--no-qr",
            "--code",
            "21-guitarist-revenge",
            "--text",
            "secret",
        ],
    ));
    sender.wormhole_code(TIMEOUT);
    let received = run(
        &mut ours(&daemon, &["receive", "21-guitarist-aardvark"]),
        TIMEOUT,
    );
    assert_our_failure(&received, ExitCode::WrongCode, &["code was wrong", "guess"]);
    assert_python_failure(
        &sender.wait_with_timeout(TIMEOUT),
        "Key confirmation failed",
    );
}

/// Ours sends with `N-guitarist-revenge`, Python receives with `N-guitarist-aardvark`: both
/// fail, ours with exit 3 and the wrong-code message, and nothing is printed as received.
#[test]
fn a_wrong_code_fails_ours_sending_to_python() {
    let server = MailboxServer::start();
    let daemon = Daemon::start(&server);
    let mut sender = Process::spawn(&mut ours(
        &daemon,
        &["send", "--code", "22-guitarist-revenge", "--text", "secret"],
    ));
    sender.wormhole_code(TIMEOUT);
    let received = run(
        &mut python(&server, &["receive", "22-guitarist-aardvark"]),
        TIMEOUT,
    );
    assert_python_failure(&received, "Key confirmation failed");
    assert!(received.stdout.is_empty(), "nothing was received");
    assert_our_failure(
        &sender.wait_with_timeout(TIMEOUT),
        ExitCode::WrongCode,
        &["code was wrong", "guess"],
    );
}

/// The mailbox server goes down and comes back while our sender waits for its peer: the daemon
/// reconnects (backoff about 1 s, 1.5 s, ...), re-claims the nameplate, re-opens the mailbox and
/// re-sends its pake; a Python receiver that arrives after the restart gets the text.
///
/// The server keeps its channel database in a file ([`MailboxServer::start_persistent`]), as a
/// production server does, so the nameplate → mailbox mapping survives the restart. The server's
/// message of the day is the sign that our daemon's first connection is up (its welcome arrived,
/// and our sender prints it): only then is the server restarted, since the failure of a first
/// connection is fatal (as in the reference). Whether the server had already stored our claim
/// and pake when it was killed does not matter: unacknowledged commands are re-sent.
#[test]
fn ours_reconnects_after_a_mailbox_server_restart() {
    let mut server = MailboxServer::start_persistent(&["--motd", "restart test"]);
    let daemon = Daemon::start(&server);
    let code = "51-guitarist-revenge";
    let mut sender = Process::spawn(&mut ours(
        &daemon,
        &["send", "--code", code, "--text", UNICODE],
    ));
    assert_eq!(sender.wormhole_code(TIMEOUT), code);
    sender.wait_for_stderr("the server's message of the day", TIMEOUT, |line| {
        (line == " restart test").then_some(())
    });
    server.restart();
    let received = run(&mut python(&server, &["receive", code]), TIMEOUT);
    assert_received(&received, UNICODE);
    assert_ok(&sender.wait_with_timeout(TIMEOUT), "wormholectl send");
}

/// A nameplate already claimed by two sides is crowded for a third. The arrangement is made
/// deterministic by the server itself: `--hold-nameplate 41` has two made-up sides claim
/// nameplate 41 through the server's own claim code before it listens, exactly the state of two
/// clients that claimed 41 and have not released it (clients release on the first message from
/// their peer, so two real clients that meet free the nameplate within milliseconds; two Python
/// senders with the same code race a third claimant). A third claim then gets the server's
/// `crowded` error: our receiver and our sender both fail with exit 4 and an error line that
/// says `crowded`, as the Python receiver fails with the server's error.
#[test]
fn a_crowded_nameplate_fails_ours_with_the_servers_error() {
    let server = MailboxServer::start_with_args(&["--hold-nameplate", "41"]);
    let daemon = Daemon::start(&server);

    let python_received = run(
        &mut python(&server, &["receive", "41-guitarist-revenge"]),
        TIMEOUT,
    );
    assert_python_failure(&python_received, "crowded");

    let received = run(
        &mut ours(&daemon, &["receive", "41-guitarist-revenge"]),
        TIMEOUT,
    );
    assert_our_failure(&received, ExitCode::Connection, &["crowded"]);

    let sent = run(
        &mut ours(
            &daemon,
            &["send", "--code", "41-guitarist-revenge", "--text", "x"],
        ),
        TIMEOUT,
    );
    assert_our_failure(&sent, ExitCode::Connection, &["crowded"]);
}

/// The verifier line of `output`'s stderr: the hex after `Verifier `, up to the `.`.
fn verifier_of(stderr: &str) -> Option<String> {
    stderr.lines().find_map(|line| {
        let rest = line.split("Verifier ").nth(1)?;
        let hex: String = rest.chars().take_while(char::is_ascii_hexdigit).collect();
        (hex.len() == 64).then_some(hex)
    })
}

/// Ours `send --verify` with `answer` on stdin, Python `receive --verify`; returns both
/// outputs (sender, receiver) after checking that both show the same verifier.
fn verify_with(code: &str, answer: &str) -> (Output, Output) {
    let server = MailboxServer::start();
    let daemon = Daemon::start(&server);
    let mut send = ours(
        &daemon,
        &["send", "--verify", "--code", code, "--text", UNICODE],
    );
    send.stdin(Stdio::piped());
    let mut sender = Process::spawn(&mut send);
    {
        let mut stdin = sender.take_stdin();
        stdin
            .write_all(answer.as_bytes())
            .expect("the answer can be written to wormholectl");
    }
    assert_eq!(sender.wormhole_code(TIMEOUT), code);
    let received = run(
        &mut python(&server, &["receive", "--verify", code]),
        TIMEOUT,
    );
    let sent = sender.wait_with_timeout(TIMEOUT);
    let ours_said = String::from_utf8_lossy(&sent.stderr).into_owned();
    let python_said = String::from_utf8_lossy(&received.stderr).into_owned();
    let ours_verifier = verifier_of(&ours_said);
    assert!(
        ours_verifier.is_some(),
        "our sender showed no verifier:\n{ours_said}"
    );
    assert!(
        ours_said.contains("ok? (yes/no)"),
        "our sender asked nothing:\n{ours_said}"
    );
    assert_eq!(
        ours_verifier,
        verifier_of(&python_said),
        "both sides show the same verifier\n--- ours:\n{ours_said}\n--- python:\n{python_said}"
    );
    (sent, received)
}

/// `send --verify` answered `yes` on stdin: the same verifier on both sides, then the text.
#[test]
fn ours_sends_after_the_verifier_is_accepted() {
    let (sent, received) = verify_with("61-guitarist-revenge", "yes\n");
    assert_received(&received, UNICODE);
    assert_ok(&sent, "wormholectl send --verify");
}

/// `send --verify` answered `no`: nothing is sent, ours exits 5 (rejected), the Python receiver
/// fails too (with the `TransferError` our error message causes) and prints no text.
#[test]
fn ours_sends_nothing_when_the_verifier_is_rejected() {
    let (sent, received) = verify_with("62-guitarist-revenge", "no\n");
    assert_our_failure(&sent, ExitCode::Rejected, &["rejected the verifier"]);
    assert_python_failure(&received, "TransferError");
    assert!(received.stdout.is_empty(), "no text was received");
}

/// Python sends text with newlines, tabs, quotes and trailing blank lines read from stdin
/// (`--text -`); ours prints exactly those bytes and one newline.
#[test]
fn python_sends_multi_line_text_from_stdin_to_ours() {
    let server = MailboxServer::start();
    let daemon = Daemon::start(&server);
    let text = "first line\n\tindented 'single' \"double\" back\\slash\n\n  ✓ 日本語\n\n";
    let mut send = python(&server, &["send", "--no-qr", "--text", "-"]);
    send.stdin(Stdio::piped());
    let mut sender = Process::spawn(&mut send);
    {
        let mut stdin = sender.take_stdin();
        stdin
            .write_all(text.as_bytes())
            .expect("the text can be written to the Python sender");
    }
    let code = sender.wormhole_code(TIMEOUT);
    let received = run(&mut ours(&daemon, &["receive", &code]), TIMEOUT);
    assert_received(&received, text);
    assert_ok(&sender.wait_with_timeout(TIMEOUT), "the Python sender");
}

/// `--code-length 3` gives an allocated code of three words, which the Python CLI accepts.
#[test]
fn ours_sends_with_a_three_word_code_to_python() {
    let server = MailboxServer::start();
    let daemon = Daemon::start(&server);
    let mut sender = Process::spawn(&mut ours(
        &daemon,
        &["send", "--code-length", "3", "--text", UNICODE],
    ));
    let code = sender.wormhole_code(TIMEOUT);
    let parts: Vec<&str> = code.split('-').collect();
    assert_eq!(parts.len(), 4, "a nameplate and three words: {code}");
    assert!(parts[0].bytes().all(|b| b.is_ascii_digit()), "{code}");
    let received = run(&mut python(&server, &["receive", &code]), TIMEOUT);
    assert_received(&received, UNICODE);
    assert_ok(&sender.wait_with_timeout(TIMEOUT), "wormholectl send");
}

/// A custom `--appid` on both sides (given to ours before the subcommand, as a global flag):
/// the two meet in that application's namespace and the text arrives.
#[test]
fn a_custom_appid_works_in_both_directions() {
    let server = MailboxServer::start();
    let daemon = Daemon::start(&server);
    let appid = "example.com/wormhole/test-appid";

    let mut sender = Process::spawn(&mut ours(
        &daemon,
        &["--appid", appid, "send", "--text", "to python"],
    ));
    let code = sender.wormhole_code(TIMEOUT);
    let received = run(
        &mut python(&server, &["--appid", appid, "receive", &code]),
        TIMEOUT,
    );
    assert_received(&received, "to python");
    assert_ok(&sender.wait_with_timeout(TIMEOUT), "wormholectl send");

    let mut sender = Process::spawn(&mut python(
        &server,
        &["--appid", appid, "send", "--no-qr", "--text", "to ours"],
    ));
    let code = sender.wormhole_code(TIMEOUT);
    let received = run(
        &mut ours(&daemon, &["receive", "--appid", appid, &code]),
        TIMEOUT,
    );
    assert_received(&received, "to ours");
    assert_ok(&sender.wait_with_timeout(TIMEOUT), "the Python sender");
}

/// A 1.1 MB text (a 2.2 MB mailbox frame of hex, beyond the default frame size of websocket
/// clients) from Python arrives exactly; our limit (16 MiB a frame) holds any text that fits a
/// control line (4 MiB).
#[test]
fn a_large_text_from_python_arrives_exactly() {
    let server = MailboxServer::start();
    let daemon = Daemon::start(&server);
    let text = "abcdefghij".repeat(110_000);
    let mut send = python(&server, &["send", "--no-qr", "--text", "-"]);
    send.stdin(Stdio::piped());
    let mut sender = Process::spawn(&mut send);
    sender
        .take_stdin()
        .write_all(text.as_bytes())
        .expect("the text can be written to the Python sender");
    let code = sender.wormhole_code(TIMEOUT);
    let received = run(&mut ours(&daemon, &["receive", &code]), TIMEOUT);
    assert_received(&received, &text);
    assert_ok(&sender.wait_with_timeout(TIMEOUT), "the Python sender");
}

/// The Python receiver allocates the code (`receive --allocate`, printing `Allocated code:`);
/// ours sends to it with `--code`.
#[test]
fn ours_sends_to_a_code_the_python_receiver_allocated() {
    let server = MailboxServer::start();
    let daemon = Daemon::start(&server);
    let mut receiver = Process::spawn(&mut python(&server, &["receive", "--allocate"]));
    let code = receiver.wait_for_stderr("the line `Allocated code: <code>`", TIMEOUT, |line| {
        line.strip_prefix("Allocated code: ").map(str::to_owned)
    });
    let sent = run(
        &mut ours(&daemon, &["send", "--code", &code, "--text", UNICODE]),
        TIMEOUT,
    );
    assert_ok(&sent, "wormholectl send");
    assert_received(&receiver.wait_with_timeout(TIMEOUT), UNICODE);
}

/// Ours receives first and waits (its connection is up once it shows the server's message of
/// the day); a Python sender arrives later with the same fixed code.
#[test]
fn ours_receiver_waits_for_a_late_python_sender() {
    let server = MailboxServer::start_with_args(&["--motd", "late sender test"]);
    let daemon = Daemon::start(&server);
    let code = "19-guitarist-revenge";
    let mut receiver = Process::spawn(&mut ours(&daemon, &["receive", code]));
    receiver.wait_for_stderr("the server's message of the day", TIMEOUT, |line| {
        (line == " late sender test").then_some(())
    });
    let sent = run(
        &mut python(
            &server,
            &["send", "--no-qr", "--code", code, "--text", UNICODE],
        ),
        TIMEOUT,
    );
    assert_ok(&sent, "the Python sender");
    assert_received(&receiver.wait_with_timeout(TIMEOUT), UNICODE);
}

/// A mailbox server whose welcome carries an `error` refuses everyone: ours fails at once with
/// exit 4 and the server's words, as sender and as receiver; the Python CLI fails too.
#[test]
fn a_welcome_error_fails_ours_with_the_servers_words() {
    let server = MailboxServer::start_with_args(&["--signal-error", "closed for maintenance"]);
    let daemon = Daemon::start(&server);
    let received = run(
        &mut ours(&daemon, &["receive", "23-guitarist-revenge"]),
        TIMEOUT,
    );
    assert_our_failure(
        &received,
        ExitCode::Connection,
        &["refused", "closed for maintenance"],
    );
    let sent = run(&mut ours(&daemon, &["send", "--text", "x"]), TIMEOUT);
    assert_our_failure(
        &sent,
        ExitCode::Connection,
        &["refused", "closed for maintenance"],
    );
    let python_received = run(
        &mut python(&server, &["receive", "23-guitarist-revenge"]),
        TIMEOUT,
    );
    assert_python_failure(&python_received, "closed for maintenance");
}

/// A message of the day made of escape sequences: ours shows it escaped (one line per line of
/// it, as the reference does), and no raw control character reaches its stderr.
#[test]
fn a_hostile_motd_is_shown_escaped() {
    let motd = format!("Welcome\n{HOSTILE}");
    let server = MailboxServer::start_with_args(&["--motd", &motd]);
    let daemon = Daemon::start(&server);
    let mut sender = Process::spawn(&mut ours(&daemon, &["send", "--text", "motd seen"]));
    let code = sender.wormhole_code(TIMEOUT);
    let received = run(&mut python(&server, &["receive", &code]), TIMEOUT);
    assert_received(&received, "motd seen");
    let sent = sender.wait_with_timeout(TIMEOUT);
    let (_, stderr) = assert_ok(&sent, "wormholectl send");
    assert!(
        stderr.contains(&format!("Server says:\n Welcome\n {HOSTILE_SHOWN}\n")),
        "the MOTD is shown escaped:\n{stderr:?}"
    );
    assert_no_control_characters(&sent.stderr, "wormholectl's stderr");
}

/// A welcome error made of escape sequences: ours fails with the server's words escaped.
#[test]
fn a_hostile_welcome_error_is_shown_escaped() {
    let server = MailboxServer::start_with_args(&["--signal-error", HOSTILE]);
    let daemon = Daemon::start(&server);
    let received = run(
        &mut ours(&daemon, &["receive", "23-guitarist-revenge"]),
        TIMEOUT,
    );
    assert_our_failure(&received, ExitCode::Connection, &["refused", HOSTILE_SHOWN]);
    assert_no_control_characters(&received.stderr, "wormholectl's stderr");
}

/// A received text of escape sequences goes to a pipe exactly as sent, and to a terminal
/// escaped, its newlines and tabs kept.
#[test]
fn a_hostile_text_reaches_a_pipe_exactly_and_a_terminal_escaped() {
    let server = MailboxServer::start();
    let daemon = Daemon::start(&server);
    let text = format!("line one\n\t{HOSTILE}");
    let send = |server: &MailboxServer| {
        let mut sender = Process::spawn(&mut python(server, &["send", "--no-qr", "--text", &text]));
        let code = sender.wormhole_code(TIMEOUT);
        (sender, code)
    };

    let (sender, code) = send(&server);
    let received = run(&mut ours(&daemon, &["receive", &code]), TIMEOUT);
    assert_received(&received, &text);
    assert_ok(&sender.wait_with_timeout(TIMEOUT), "the Python sender");

    let (sender, code) = send(&server);
    let received = run(
        &mut on_terminal(&ours(&daemon, &["receive", &code])),
        TIMEOUT,
    );
    // Exact bytes: no raw control character but the newlines and the tab.
    assert_received(&received, &format!("line one\n\t{HOSTILE_SHOWN}"));
    assert_ok(&sender.wait_with_timeout(TIMEOUT), "the Python sender");
}
