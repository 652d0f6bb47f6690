//! File and directory transfers between our stack (the real `wormholectl` driving a real
//! `wormholed`) and the Python reference CLI (magic-wormhole 0.24.0), through the reference
//! mailbox server and transit relay on 127.0.0.1, in both directions: sizes from 0 bytes to
//! 100 MiB, non-ASCII names, folders with an empty subfolder and an executable, direct and
//! relay-only Transit, a declined offer, a sender killed mid-transfer, a hostile zip, and a large
//! transfer that must not hold up a text wormhole of the same daemon.
//!
//! Files are compared by SHA-256 (`sha256sum`), folders entry by entry (kind, content, the
//! executable bit). Every test has its own servers and daemon, so the tests run in parallel.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;
use wormhole_tests::{
    assert_success, python_script, python_wormhole, run, venv_python, Daemon, MailboxServer,
    Process, TransitRelay, TIMEOUT,
};
use wormholectl::exit::ExitCode;

/// A longer bound for the 100 MiB and 1 GiB transfers on a loaded 2-core machine.
const LONG: std::time::Duration = std::time::Duration::from_secs(300);

/// The servers and the daemon of one test, with folders for each side.
struct Setup {
    server: MailboxServer,
    relay: TransitRelay,
    daemon: Daemon,
    dir: TempDir,
}

impl Setup {
    fn start() -> Self {
        let server = MailboxServer::start();
        let relay = TransitRelay::start();
        let daemon =
            Daemon::start_with_env(&server.url(), &[("WORMHOLE_TRANSIT_HELPER", &relay.hint())]);
        let dir = tempfile::Builder::new()
            .prefix("file-interop-")
            .tempdir()
            .expect("a temporary folder");
        Self {
            server,
            relay,
            daemon,
            dir,
        }
    }

    /// A fresh folder `name` under the test's folder.
    fn folder(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        fs::create_dir_all(&path).expect("create a folder");
        path
    }

    /// The Python CLI with our mailbox server and relay, run in `cwd`.
    fn python(&self, cwd: &Path, args: &[&str]) -> Command {
        let url = self.server.url();
        let hint = self.relay.hint();
        let mut all = vec![
            "--relay-url",
            url.as_str(),
            "--transit-helper",
            hint.as_str(),
        ];
        all.extend_from_slice(args);
        let mut command = python_wormhole(all);
        command.current_dir(cwd);
        command
    }

    /// `wormholectl` of our daemon with `args`, run in `cwd`.
    fn ours(&self, cwd: &Path, args: &[&str]) -> Command {
        let mut command = self.daemon.ctl();
        command.current_dir(cwd).args(args);
        command
    }
}

/// Writes `size` bytes of deterministic pseudo-random data (xorshift) to `path`.
fn write_data(path: &Path, size: usize, seed: u64) {
    let mut state = seed | 1;
    let mut file = std::io::BufWriter::new(fs::File::create(path).expect("create a file"));
    let mut left = size;
    let mut block = vec![0u8; 64 * 1024];
    while left > 0 {
        for chunk in block.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let bytes = state.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        let n = left.min(block.len());
        file.write_all(&block[..n]).expect("write");
        left -= n;
    }
    file.flush().expect("flush");
}

/// The SHA-256 of `path`, by `sha256sum`.
fn sha256(path: &Path) -> String {
    let output = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum runs");
    assert!(output.status.success(), "sha256sum {}", path.display());
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Waits for the `Wormhole code is: ` line of either sender (ours prints the same line).
fn code_of(sender: &mut Process) -> String {
    sender.wormhole_code(TIMEOUT)
}

/// Every entry under `root`: relative path, then `dir`, or `file <sha256> <exec>`.
fn tree(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").path())
            .collect();
        entries.sort();
        for path in entries {
            let rel = path
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .into_owned();
            let meta = fs::symlink_metadata(&path).expect("metadata");
            if meta.is_dir() {
                out.push(format!("{rel} dir"));
                walk(root, &path, out);
            } else {
                let exec = meta.permissions().mode() & 0o100 != 0;
                out.push(format!("{rel} file {} exec={exec}", sha256(&path)));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out
}

/// A folder with nesting, an empty subfolder, non-ASCII names and an executable script.
fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("sub/deeper")).expect("mkdir");
    fs::create_dir_all(root.join("empty")).expect("mkdir");
    fs::create_dir_all(root.join("dossier é")).expect("mkdir");
    fs::write(root.join("readme.txt"), "hello\n").expect("write");
    write_data(&root.join("sub/deeper/data.bin"), 300_000, 7);
    fs::write(root.join("dossier é/naïve ✓.txt"), "unicode\n").expect("write");
    fs::write(root.join("sub/zero"), "").expect("write");
    let script = root.join("sub/run.sh");
    fs::write(&script, "#!/bin/sh\necho hi\n").expect("write");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// Panics unless `output` succeeded; returns its stderr (where both CLIs talk to people).
fn succeeded(output: &Output) -> String {
    assert_success(output);
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Panics unless `output` failed and its stderr mentions `needle`.
fn assert_failed_with(output: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains(needle),
        "expected a failure mentioning {needle:?}, got {}:\n{stderr}",
        output.status
    );
}

/// Names of the entries of `dir`.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

const FILES: &[(&str, usize)] = &[
    ("empty.bin", 0),
    ("one.bin", 1),
    ("mebi.bin", 1 << 20),
    ("résumé ✓.pdf", 12_345),
    ("hundred.bin", 100 << 20),
];

#[test]
fn python_sends_files_to_ours() {
    let setup = Setup::start();
    let src = setup.folder("src");
    let dst = setup.folder("dst");
    for (i, (name, size)) in FILES.iter().enumerate() {
        let path = src.join(name);
        write_data(&path, *size, i as u64 + 1);
        let mut sender =
            Process::spawn(&mut setup.python(&src, &["send", "--hide-progress", name]));
        let code = code_of(&mut sender);
        let received = run(
            &mut setup.ours(
                &dst,
                &["receive", "--accept-file", "--hide-progress", &code],
            ),
            LONG,
        );
        let stderr = succeeded(&received);
        assert!(stderr.contains("Received file written to"), "{stderr}");
        assert_success(&sender.wait_with_timeout(LONG));
        assert_eq!(sha256(&dst.join(name)), sha256(&path), "{name}");
    }
    assert_eq!(names(&dst).len(), FILES.len(), "no temporary file is left");
}

#[test]
fn ours_sends_files_to_python() {
    let setup = Setup::start();
    let src = setup.folder("src");
    let dst = setup.folder("dst");
    for (i, (name, size)) in FILES.iter().enumerate() {
        let path = src.join(name);
        write_data(&path, *size, i as u64 + 11);
        let mut sender = Process::spawn(&mut setup.ours(&src, &["send", "--hide-progress", name]));
        let code = code_of(&mut sender);
        let received = run(
            &mut setup.python(
                &dst,
                &["receive", "--accept-file", "--hide-progress", &code],
            ),
            LONG,
        );
        assert_success(&received);
        let stderr = succeeded(&sender.wait_with_timeout(LONG));
        assert!(stderr.contains("Transfer complete"), "{stderr}");
        assert_eq!(sha256(&dst.join(name)), sha256(&path), "{name}");
    }
}

#[test]
fn folders_both_ways() {
    let setup = Setup::start();
    let src = setup.folder("src");
    make_tree(&src.join("tree ü"));
    let expected = tree(&src.join("tree ü"));
    assert!(expected
        .iter()
        .any(|e| e.contains("run.sh") && e.ends_with("exec=true")));

    // Python → ours.
    let dst = setup.folder("ours");
    let mut sender =
        Process::spawn(&mut setup.python(&src, &["send", "--hide-progress", "tree ü"]));
    let code = code_of(&mut sender);
    let received = run(
        &mut setup.ours(
            &dst,
            &["receive", "--accept-file", "--hide-progress", &code],
        ),
        TIMEOUT,
    );
    let stderr = succeeded(&received);
    assert!(stderr.contains("Received files written to"), "{stderr}");
    assert_success(&sender.wait_with_timeout(TIMEOUT));
    assert_eq!(tree(&dst.join("tree ü")), expected);
    assert_eq!(names(&dst), ["tree ü"], "no temporary file is left");

    // ours → Python.
    let dst = setup.folder("python");
    let mut sender = Process::spawn(&mut setup.ours(&src, &["send", "--hide-progress", "tree ü"]));
    let code = code_of(&mut sender);
    let received = run(
        &mut setup.python(
            &dst,
            &["receive", "--accept-file", "--hide-progress", &code],
        ),
        TIMEOUT,
    );
    assert_success(&received);
    assert_success(&sender.wait_with_timeout(TIMEOUT));
    assert_eq!(tree(&dst.join("tree ü")), expected);
}

#[test]
fn relay_only_both_ways() {
    let setup = Setup::start();
    let src = setup.folder("src");
    let path = src.join("relayed.bin");
    write_data(&path, 3 << 20, 99);
    let hint = setup.relay.hint();

    let dst = setup.folder("ours");
    let mut sender = Process::spawn(&mut setup.python(
        &src,
        &["send", "--hide-progress", "--no-listen", "relayed.bin"],
    ));
    let code = code_of(&mut sender);
    let received = run(
        &mut setup.ours(
            &dst,
            &[
                "--transit-helper",
                &hint,
                "receive",
                "--no-listen",
                "--accept-file",
                "--hide-progress",
                &code,
            ],
        ),
        TIMEOUT,
    );
    assert_success(&received);
    let stderr = succeeded(&sender.wait_with_timeout(TIMEOUT));
    assert!(stderr.contains("relay"), "the relay carried it: {stderr}");
    assert_eq!(sha256(&dst.join("relayed.bin")), sha256(&path));

    let dst = setup.folder("python");
    let mut sender = Process::spawn(&mut setup.ours(
        &src,
        &[
            "--transit-helper",
            &hint,
            "send",
            "--no-listen",
            "--hide-progress",
            "relayed.bin",
        ],
    ));
    let code = code_of(&mut sender);
    let received = run(
        &mut setup.python(
            &dst,
            &[
                "receive",
                "--no-listen",
                "--accept-file",
                "--hide-progress",
                &code,
            ],
        ),
        TIMEOUT,
    );
    let stderr = succeeded(&received);
    assert!(stderr.contains("relay"), "the relay carried it: {stderr}");
    assert_success(&sender.wait_with_timeout(TIMEOUT));
    assert_eq!(sha256(&dst.join("relayed.bin")), sha256(&path));
}

#[test]
fn declined_offers_are_reported_on_both_sides() {
    let setup = Setup::start();
    let src = setup.folder("src");
    fs::write(src.join("unwanted.txt"), "no thanks\n").expect("write");

    // Ours declines (answers `n` at the prompt); the Python sender hears it.
    let dst = setup.folder("ours");
    let mut sender = Process::spawn(&mut setup.python(&src, &["send", "unwanted.txt"]));
    let code = code_of(&mut sender);
    let mut command = setup.ours(&dst, &["receive", "--hide-progress", &code]);
    command.stdin(Stdio::piped());
    let mut receiver = Process::spawn(&mut command);
    receiver
        .take_stdin()
        .write_all(b"n\n")
        .expect("answer the prompt");
    let received = receiver.wait_with_timeout(TIMEOUT);
    assert_failed_with(&received, "transfer rejected");
    assert_eq!(
        received.status.code(),
        Some(i32::from(ExitCode::Rejected.code())),
        "exit code of a rejection"
    );
    assert_failed_with(&sender.wait_with_timeout(TIMEOUT), "transfer rejected");
    assert!(names(&dst).is_empty(), "nothing was written");

    // Python declines; our sender hears it.
    let dst = setup.folder("python");
    let mut sender = Process::spawn(&mut setup.ours(&src, &["send", "unwanted.txt"]));
    let code = code_of(&mut sender);
    let mut command = setup.python(&dst, &["receive", &code]);
    command.stdin(Stdio::piped());
    let mut receiver = Process::spawn(&mut command);
    receiver
        .take_stdin()
        .write_all(b"n\n")
        .expect("answer the prompt");
    assert_failed_with(&receiver.wait_with_timeout(TIMEOUT), "transfer rejected");
    let sent = sender.wait_with_timeout(TIMEOUT);
    assert_failed_with(&sent, "transfer rejected");
    assert_eq!(
        sent.status.code(),
        Some(i32::from(ExitCode::Rejected.code()))
    );
    assert!(names(&dst).is_empty());
}

#[test]
fn existing_files_are_not_overwritten_without_output_file() {
    let setup = Setup::start();
    let src = setup.folder("src");
    let dst = setup.folder("dst");
    fs::write(src.join("same.txt"), "new\n").expect("write");
    fs::write(dst.join("same.txt"), "old\n").expect("write");

    let mut sender = Process::spawn(&mut setup.python(&src, &["send", "same.txt"]));
    let code = code_of(&mut sender);
    let received = run(
        &mut setup.ours(&dst, &["receive", "--accept-file", &code]),
        TIMEOUT,
    );
    assert_failed_with(&received, "refusing to overwrite existing 'same.txt'");
    assert_failed_with(&sender.wait_with_timeout(TIMEOUT), "transfer rejected");
    assert_eq!(
        fs::read_to_string(dst.join("same.txt")).expect("read"),
        "old\n"
    );

    // Named with -o, it is replaced.
    let mut sender = Process::spawn(&mut setup.python(&src, &["send", "same.txt"]));
    let code = code_of(&mut sender);
    let received = run(
        &mut setup.ours(&dst, &["receive", "--accept-file", "-o", "same.txt", &code]),
        TIMEOUT,
    );
    assert_success(&received);
    assert_success(&sender.wait_with_timeout(TIMEOUT));
    assert_eq!(
        fs::read_to_string(dst.join("same.txt")).expect("read"),
        "new\n"
    );
    assert_eq!(names(&dst), ["same.txt"]);
}

/// The sender dies mid-transfer: our receiver reports it, and leaves neither the final name nor
/// a temporary file. "Mid-transfer" is known from our receiver's `progress` events.
#[test]
fn killed_sender_leaves_nothing_behind() {
    let setup = Setup::start();
    let src = setup.folder("src");
    let dst = setup.folder("dst");
    let big = src.join("big.bin");
    let file = fs::File::create(&big).expect("create");
    file.set_len(1 << 30).expect("a sparse 1 GiB file");
    drop(file);

    let mut sender =
        Process::spawn(&mut setup.python(&src, &["send", "--hide-progress", "big.bin"]));
    let code = code_of(&mut sender);
    let mut receiver =
        Process::spawn(&mut setup.ours(&dst, &["--json", "receive", "--accept-file", &code]));
    receiver.wait_for_stdout("a progress event mid-transfer", LONG, |line| {
        let event: serde_json::Value = serde_json::from_str(line).ok()?;
        let done = event.get("done")?.as_u64()?;
        (event["event"] == "progress" && done > 0 && done < 1 << 30).then_some(())
    });
    sender.kill();
    let received = receiver.wait_with_timeout(LONG);
    assert!(!received.status.success(), "the receiver must fail");
    let stdout = String::from_utf8_lossy(&received.stdout);
    assert!(
        stdout.contains(r#""event":"error""#) && !stdout.contains(r#""event":"received""#),
        "{stdout}"
    );
    assert!(names(&dst).is_empty(), "left behind: {:?}", names(&dst));
}

/// A hostile sender (the reference CLI with a crafted zip) offers a folder holding
/// `../evil.txt`: ours refuses it and writes nothing, inside or outside the target.
#[test]
fn crafted_zip_is_refused() {
    let setup = Setup::start();
    let src = setup.folder("src");
    fs::create_dir_all(src.join("bad")).expect("mkdir");
    fs::write(src.join("bad/evil.txt"), "pwned\n").expect("write");
    fs::write(src.join("bad/ok.txt"), "fine\n").expect("write");
    let outer = setup.folder("outer");
    let dst = setup.folder("outer/dst");

    let url = setup.server.url();
    let hint = setup.relay.hint();
    let mut command = Command::new(venv_python());
    command
        .arg(python_script("crafted_zip_sender.py"))
        .args(["evil.txt=../evil.txt", "--", "--relay-url", &url])
        .args(["--transit-helper", &hint, "send", "--hide-progress", "bad"])
        .current_dir(&src)
        .stdin(Stdio::null())
        .env("PYTHONUNBUFFERED", "1");
    let mut sender = Process::spawn(&mut command);
    let code = code_of(&mut sender);
    let received = run(
        &mut setup.ours(&dst, &["receive", "--accept-file", &code]),
        TIMEOUT,
    );
    assert_failed_with(&received, "malicious zipfile");
    let _ = sender.wait_with_timeout(TIMEOUT);
    assert!(
        names(&dst).is_empty(),
        "left in the target: {:?}",
        names(&dst)
    );
    assert_eq!(names(&outer), ["dst"], "nothing escaped the target");
}

/// A 1 GiB transfer runs in one wormhole while a text wormhole of the same daemon completes:
/// the text's sender exits successfully while the file's sender is still running (it has
/// reported progress, not `sent`).
#[test]
fn large_transfer_does_not_hold_up_text() {
    let setup = Setup::start();
    let src = setup.folder("src");
    let dst = setup.folder("dst");
    let big = src.join("big.bin");
    let file = fs::File::create(&big).expect("create");
    file.set_len(1 << 30).expect("a sparse 1 GiB file");
    drop(file);

    let mut file_sender = Process::spawn(&mut setup.ours(&src, &["--json", "send", "big.bin"]));
    let code = file_sender.wait_for_stdout("the code event", TIMEOUT, |line| {
        let event: serde_json::Value = serde_json::from_str(line).ok()?;
        (event["event"] == "code").then(|| event["code"].as_str().map(str::to_owned))?
    });
    let file_receiver = Process::spawn(&mut setup.python(
        &dst,
        &["receive", "--accept-file", "--hide-progress", &code],
    ));
    file_sender.wait_for_stdout("a progress event", LONG, |line| {
        let event: serde_json::Value = serde_json::from_str(line).ok()?;
        (event["event"] == "progress" && event["done"].as_u64()? > 0).then_some(())
    });

    let mut text_sender = Process::spawn(&mut setup.ours(&src, &["send", "--text", "quick"]));
    let text_code = code_of(&mut text_sender);
    let text = run(
        &mut setup.python(&dst, &["receive", "--only-text", &text_code]),
        TIMEOUT,
    );
    assert_success(&text);
    assert_eq!(String::from_utf8_lossy(&text.stdout), "quick\n");
    assert_success(&text_sender.wait_with_timeout(TIMEOUT));
    assert!(
        file_sender.try_status().is_none(),
        "the text finished while the file transfer was still running"
    );

    let sent = file_sender.wait_with_timeout(LONG);
    assert_success(&sent);
    assert!(String::from_utf8_lossy(&sent.stdout).contains(r#""event":"sent""#));
    assert_success(&file_receiver.wait_with_timeout(LONG));
    assert_eq!(
        fs::metadata(dst.join("big.bin")).expect("received").len(),
        1 << 30
    );
}

/// Our sending daemon dies mid-transfer to another daemon of ours: the receiving side reports
/// it and leaves neither the final name nor a temporary file.
#[test]
fn killed_sending_daemon_leaves_nothing_behind() {
    let mut setup = Setup::start();
    let receiving = Daemon::start_with_env(
        &setup.server.url(),
        &[("WORMHOLE_TRANSIT_HELPER", &setup.relay.hint())],
    );
    let src = setup.folder("src");
    let dst = setup.folder("dst");
    let file = fs::File::create(src.join("big.bin")).expect("create");
    file.set_len(1 << 30).expect("a sparse 1 GiB file");
    drop(file);

    let mut sender = Process::spawn(&mut setup.ours(&src, &["send", "big.bin"]));
    let code = code_of(&mut sender);
    let mut command = receiving.ctl();
    command
        .current_dir(&dst)
        .args(["--json", "receive", "--accept-file", &code]);
    let mut receiver = Process::spawn(&mut command);
    receiver.wait_for_stdout("a progress event mid-transfer", LONG, |line| {
        let event: serde_json::Value = serde_json::from_str(line).ok()?;
        let done = event.get("done")?.as_u64()?;
        (event["event"] == "progress" && done > 0 && done < 1 << 30).then_some(())
    });
    setup.daemon.stop();
    let received = receiver.wait_with_timeout(LONG);
    assert!(!received.status.success(), "the receiver must fail");
    let stdout = String::from_utf8_lossy(&received.stdout);
    assert!(
        stdout.contains(r#""kind":"transfer""#) && !stdout.contains(r#""event":"received""#),
        "{stdout}"
    );
    assert!(names(&dst).is_empty(), "left behind: {:?}", names(&dst));
    drop(sender);
}
