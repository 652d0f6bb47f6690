//! The mood a wormhole closes with tells the truth: a transfer that failed after the key was
//! confirmed closes `errory` (the reference says `happy` then; we differ on purpose), success
//! stays `happy`. Checked in the `closed` events and in the reference server's usage database,
//! where the server records each mailbox's result once both sides have closed.

use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use wormhole_tests::{Daemon, MailboxServer, Process, TransitRelay, TIMEOUT};

/// The results the server recorded, oldest first.
fn results(usage_db: &Path) -> Vec<String> {
    let output = Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3, sys\n\
             db = sqlite3.connect(sys.argv[1])\n\
             for (r,) in db.execute('SELECT result FROM mailboxes ORDER BY rowid'): print(r)",
        )
        .arg(usage_db)
        .output()
        .expect("python3 reads the usage database");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The `closed` event's mood among `--json` output lines.
fn closed_mood(stdout: &[u8]) -> Option<String> {
    String::from_utf8_lossy(stdout).lines().find_map(|line| {
        let event: Value = serde_json::from_str(line).ok()?;
        (event["event"] == "closed").then(|| event["mood"].as_str().map(str::to_owned))?
    })
}

/// The wormhole id and code of a sender's `code` event.
fn code_event(process: &mut Process) -> (u64, String) {
    process.wait_for_stdout("the code event", TIMEOUT, |line| {
        let event: Value = serde_json::from_str(line).ok()?;
        (event["event"] == "code").then(|| {
            Some((
                event["wormhole"].as_u64()?,
                event["code"].as_str()?.to_owned(),
            ))
        })?
    })
}

/// A text (happy), then a file transfer cancelled by its receiver mid-transfer: both sides say
/// `errory` in `closed`, and the server records `happy`, then `errory`.
#[test]
fn a_transfer_that_fails_after_the_key_closes_errory() {
    let dir = tempfile::Builder::new()
        .prefix("close-moods-")
        .tempdir()
        .expect("a temporary folder");
    let usage_db = dir.path().join("usage.sqlite");
    let server = MailboxServer::start_with_args(&["--usage-db", usage_db.to_str().expect("utf-8")]);
    let relay = TransitRelay::start();
    let daemon =
        Daemon::start_with_env(&server.url(), &[("WORMHOLE_TRANSIT_HELPER", &relay.hint())]);
    let ours = |args: &[&str]| {
        let mut command = daemon.ctl();
        command.current_dir(dir.path()).arg("--json").args(args);
        Process::spawn(&mut command)
    };

    let mut text_sender = ours(&["send", "--text", "fine"]);
    let (_, code) = code_event(&mut text_sender);
    let text_receiver = ours(&["receive", &code]).wait_with_timeout(TIMEOUT);
    let text_sent = text_sender.wait_with_timeout(TIMEOUT);
    assert!(text_sent.status.success() && text_receiver.status.success());
    assert_eq!(closed_mood(&text_sent.stdout).as_deref(), Some("happy"));
    assert_eq!(closed_mood(&text_receiver.stdout).as_deref(), Some("happy"));

    let big = dir.path().join("big.bin");
    fs::File::create(&big)
        .and_then(|f| f.set_len(1 << 30))
        .expect("a sparse 1 GiB file");
    let into = dir.path().join("into");
    fs::create_dir(&into).expect("mkdir");
    let mut sender = ours(&["send", "big.bin"]);
    let (_, code) = code_event(&mut sender);
    let mut receiver = {
        let mut command = daemon.ctl();
        command
            .current_dir(&into)
            .args(["--json", "receive", "--accept-file", &code]);
        Process::spawn(&mut command)
    };
    let wormhole = receiver.wait_for_stdout("a progress event", TIMEOUT, |line| {
        let event: Value = serde_json::from_str(line).ok()?;
        (event["event"] == "progress" && event["done"].as_u64()? > 0)
            .then(|| event["wormhole"].as_u64())?
    });
    let cancel = wormhole_tests::run(
        daemon.ctl().args(["cancel", &wormhole.to_string()]),
        TIMEOUT,
    );
    assert!(cancel.status.success(), "{cancel:?}");
    let received = receiver.wait_with_timeout(TIMEOUT);
    let sent = sender.wait_with_timeout(TIMEOUT);
    assert!(!received.status.success() && !sent.status.success());
    assert_eq!(closed_mood(&received.stdout).as_deref(), Some("errory"));
    assert_eq!(closed_mood(&sent.stdout).as_deref(), Some("errory"));
    assert_eq!(results(&usage_db), ["happy", "errory"]);
}
