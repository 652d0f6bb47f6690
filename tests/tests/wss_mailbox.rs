//! The mailbox connection over `wss://`: the reference mailbox server serves TLS (Twisted's
//! `listenSSL`) with a fresh self-signed certificate for `127.0.0.1` and `localhost`, and each
//! client trusts that certificate through `SSL_CERT_FILE`: our daemon (rustls with the
//! platform's trust store, which honours it) and the Python CLI (OpenSSL's default paths).
//! A daemon that does not trust the certificate fails with exit 4 and one error line.
//!
//! Every test has its own certificate, server and daemons, so the tests run in parallel.

use std::path::Path;
use std::process::Command;

use wormhole_tests::check::{assert_ok, ours};
use wormhole_tests::{
    python_wormhole, run, Daemon, MailboxServer, Process, SelfSignedCert, TIMEOUT,
};
use wormholectl::exit::ExitCode;

/// Non-ASCII text with spaces: what arrives must be exactly this and one newline.
const TEXT: &str = "over TLS: héllo wörld ✓ 日本語 🎉";

/// A daemon whose mailbox server is `url` and whose trust store is `trusted` (`SSL_CERT_FILE`;
/// the Mozilla roots stay, and cannot vouch for a self-signed certificate).
fn daemon(url: &str, trusted: &Path) -> Daemon {
    let trusted = trusted.to_str().expect("temporary paths are UTF-8");
    Daemon::start_with_env(url, &[("SSL_CERT_FILE", trusted)])
}

/// Ours sends with an allocated code, `receiver` receives; its stdout must be exactly [`TEXT`]
/// and one newline, and our sender must report the text as sent.
fn send_text_to(sender: &Daemon, receiver: impl FnOnce(&str) -> Command) {
    let mut sending = Process::spawn(&mut ours(sender, &["send", "--text", TEXT]));
    let code = sending.wormhole_code(TIMEOUT);
    let (stdout, _) = assert_ok(&run(&mut receiver(&code), TIMEOUT), "the receiver");
    assert_eq!(stdout, format!("{TEXT}\n"), "the received text");
    let (_, stderr) = assert_ok(&sending.wait_with_timeout(TIMEOUT), "wormholectl send");
    assert!(
        stderr.ends_with("text message sent\n"),
        "the last line says the text went:\n{stderr}"
    );
}

/// Ours → ours, two daemons on `wss://127.0.0.1` trusting the server's certificate.
#[test]
fn ours_sends_text_to_ours_over_wss() {
    let cert = SelfSignedCert::generate();
    let server = MailboxServer::start_tls(&cert, &[]);
    let url = server.wss_url("127.0.0.1");
    let sender = daemon(&url, &cert.cert());
    let receiver = daemon(&url, &cert.cert());
    send_text_to(&sender, |code| ours(&receiver, &["receive", code]));
}

/// Ours → the Python CLI, both on `wss://localhost` (the certificate's DNS name), each trusting
/// the certificate through `SSL_CERT_FILE`.
#[test]
fn ours_sends_text_to_python_over_wss() {
    let cert = SelfSignedCert::generate();
    let server = MailboxServer::start_tls(&cert, &[]);
    let url = server.wss_url("localhost");
    let sender = daemon(&url, &cert.cert());
    send_text_to(&sender, |code| {
        let mut python = python_wormhole(["--relay-url", url.as_str(), "receive", code]);
        python.env("SSL_CERT_FILE", cert.cert());
        python
    });
}

/// A daemon that trusts another certificate than the server's (the platform's store and the
/// Mozilla roots do not know a fresh self-signed one either) fails at once: exit 4 and one
/// `Error: ` line, last on stderr, that names the server and the certificate problem.
#[test]
fn an_untrusted_certificate_fails_with_exit_4() {
    let cert = SelfSignedCert::generate();
    let other = SelfSignedCert::generate();
    let server = MailboxServer::start_tls(&cert, &[]);
    let url = server.wss_url("127.0.0.1");
    let daemon = daemon(&url, &other.cert());
    let output = run(&mut ours(&daemon, &["send", "--text", TEXT]), TIMEOUT);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report = format!(
        "--- stdout:\n{}\n--- stderr:\n{stderr}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert_eq!(
        output.status.code(),
        Some(i32::from(ExitCode::Connection.code())),
        "exit 4 expected\n{report}"
    );
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("Error: "))
        .collect();
    assert_eq!(errors.len(), 1, "one `Error: ` line expected\n{report}");
    assert_eq!(stderr.lines().last(), errors.first().copied(), "{report}");
    let error = errors[0];
    assert!(error.contains("mailbox server"), "{report}");
    assert!(error.contains(&url), "the error names the URL\n{report}");
    assert!(
        error.contains("certificate"),
        "the error says it is about the certificate\n{report}"
    );
}
