//! Transfers whose peer stalls, and transfers that are cancelled or whose daemon is killed:
//! each ends with a clear error, and everything it held is freed (its threads, its descriptors,
//! its temporary file in the target folder).
//!
//! The stalled sender is `tests/python/stalling_sender.py` (the reference CLI sending the first
//! bytes of its file, then nothing); the stalled receiver is the reference CLI stopped with
//! SIGSTOP. Threads and descriptors are counted in `/proc/<daemon pid>/` before the transfer
//! and after it has ended (the data path reports its end last, after closing what it held; the
//! thread itself exits right after, hence the bounded wait for the count).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;
use wormhole_protocol::control::{RequestBody, ResponseBody, TransitOptions, WormholeOptions};
use wormhole_tests::{
    python_script, python_wormhole, run, venv_python, Daemon, MailboxServer, Process, TransitRelay,
    TIMEOUT,
};
use wormholectl::exit::{exit_code_of, ExitCode};

/// The idle timeout of the daemons of the stall tests (`WORMHOLED_IDLE_TIMEOUT`).
const IDLE_SECS: &str = "2";

/// The servers, the daemon under test and a folder.
struct Setup {
    server: MailboxServer,
    relay: TransitRelay,
    daemon: Daemon,
    dir: TempDir,
}

impl Setup {
    fn start(extra_env: &[(&str, &str)]) -> Self {
        let server = MailboxServer::start();
        let relay = TransitRelay::start();
        let mut env = vec![("WORMHOLE_TRANSIT_HELPER", relay.hint())];
        env.extend(extra_env.iter().map(|(k, v)| (*k, (*v).to_owned())));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let daemon = Daemon::start_with_env(&server.url(), &env);
        let dir = tempfile::Builder::new()
            .prefix("stalled-")
            .tempdir()
            .expect("a temporary folder");
        Self {
            server,
            relay,
            daemon,
            dir,
        }
    }

    fn folder(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        fs::create_dir_all(&path).expect("create a folder");
        path
    }

    /// The reference sender that stalls after `bytes` bytes of `file` (in `cwd`).
    fn stalling_sender(&self, cwd: &Path, bytes: usize, file: &str) -> Process {
        let url = self.server.url();
        let hint = self.relay.hint();
        let mut command = Command::new(venv_python());
        command
            .arg(python_script("stalling_sender.py"))
            .args([&bytes.to_string(), "--", "--relay-url", &url])
            .args(["--transit-helper", &hint, "send", "--hide-progress", file])
            .current_dir(cwd)
            .stdin(Stdio::null())
            .env("PYTHONUNBUFFERED", "1");
        Process::spawn(&mut command)
    }

    /// The reference receiver, accepting at once, in `cwd`.
    fn python_receiver(&self, cwd: &Path, code: &str) -> Process {
        let url = self.server.url();
        let hint = self.relay.hint();
        let mut command = python_wormhole([
            "--relay-url",
            &url,
            "--transit-helper",
            &hint,
            "receive",
            "--accept-file",
            "--hide-progress",
            code,
        ]);
        command.current_dir(cwd);
        Process::spawn(&mut command)
    }

    /// `wormholectl --json` of our daemon with `args`, in `cwd`.
    fn ours(&self, cwd: &Path, args: &[&str]) -> Process {
        let mut command = self.daemon.ctl();
        command.current_dir(cwd).arg("--json").args(args);
        Process::spawn(&mut command)
    }

    /// A stalling reference sender of 10 MiB that sends 100 bytes, and our receiver of it
    /// (`--json`, accepting) in a folder of its own: (that folder, sender, receiver).
    fn receive_from_stalling_sender(&self) -> (PathBuf, Process, Process) {
        let (src, dst) = (self.folder("src"), self.folder("dst"));
        let mut sender = self.stalling_sender(&src, 100, ten_mib(&src));
        let code = sender.wormhole_code(TIMEOUT);
        let receiver = self.ours(&dst, &["receive", "--accept-file", &code]);
        (dst, sender, receiver)
    }

    /// Threads and open descriptors of the daemon.
    fn held(&mut self) -> (usize, usize) {
        let pid = self.daemon.process().id();
        let count = |what: &str| {
            fs::read_dir(format!("/proc/{pid}/{what}"))
                .unwrap_or_else(|e| panic!("/proc/{pid}/{what}: {e}"))
                .count()
        };
        (count("task"), count("fd"))
    }

    /// Waits (bounded) until the daemon holds no more threads and descriptors than `before`.
    fn assert_freed(&mut self, before: (usize, usize)) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let now = self.held();
            if now.0 <= before.0 && now.1 <= before.1 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon still holds {now:?} threads and descriptors, {before:?} before"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The wormhole id and the `done` of the first progress event above zero on `process`'s stdout.
fn first_progress(process: &mut Process) -> (u64, u64) {
    process.wait_for_stdout("a progress event", TIMEOUT, |line| {
        let event: Value = serde_json::from_str(line).ok()?;
        let done = event["done"].as_u64()?;
        (event["event"] == "progress" && done > 0)
            .then(|| Some((event["wormhole"].as_u64()?, done)))?
    })
}

/// The code of the first `code` event on `process`'s stdout.
fn code_event(process: &mut Process) -> String {
    process.wait_for_stdout("the code event", TIMEOUT, |line| {
        let event: Value = serde_json::from_str(line).ok()?;
        (event["event"] == "code").then(|| event["code"].as_str().map(str::to_owned))?
    })
}

/// A sparse file of 1 GiB at `path`.
fn sparse_gib(path: &Path) {
    fs::File::create(path)
        .and_then(|f| f.set_len(1 << 30))
        .expect("a sparse 1 GiB file");
}

/// The receiver's temporary files in `dir`.
fn parts(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".wormhole-"))
        .collect()
}

/// A 10 MiB file of `dir`, for the senders.
fn ten_mib(dir: &Path) -> &'static str {
    fs::write(dir.join("ten.bin"), vec![7u8; 10 << 20]).expect("write");
    "ten.bin"
}

/// A sender that offers 10 MiB and sends 100 bytes: our receiver fails once nothing moved for
/// the idle timeout, says so, and frees its threads, descriptors and temporary file.
#[test]
fn a_stalled_sender_fails_the_receive_after_the_idle_timeout() {
    let mut setup = Setup::start(&[("WORMHOLED_IDLE_TIMEOUT", IDLE_SECS)]);
    let before = setup.held();
    let (dst, mut sender, mut receiver) = setup.receive_from_stalling_sender();
    assert_eq!(first_progress(&mut receiver).1, 100);
    let output = receiver.wait_with_timeout(TIMEOUT);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{stdout}");
    assert!(
        stdout.contains("the peer stalled: nothing moved for 2 s"),
        "{stdout}"
    );
    assert_eq!(
        parts(&dst),
        Vec::<String>::new(),
        "the temporary file is gone"
    );
    assert!(!dst.join("ten.bin").exists());
    setup.assert_freed(before);
    sender.kill();
}

/// Cancelling a receive whose sender stalled ends it at once (the idle timeout is the default
/// five minutes): `cancelled`, the temporary file removed, threads and descriptors freed.
#[test]
fn cancelling_a_stalled_receive_frees_it_at_once() {
    let mut setup = Setup::start(&[]);
    let before = setup.held();
    let (dst, mut sender, mut receiver) = setup.receive_from_stalling_sender();
    let (wormhole, _) = first_progress(&mut receiver);
    assert_eq!(parts(&dst).len(), 1, "receiving into a temporary file");
    let cancel = run(
        setup.daemon.ctl().args(["cancel", &wormhole.to_string()]),
        TIMEOUT,
    );
    assert!(cancel.status.success(), "{cancel:?}");
    let started = Instant::now();
    let output = receiver.wait_with_timeout(TIMEOUT);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the receive ended {:?} after the cancel",
        started.elapsed()
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{stdout}");
    assert!(stdout.contains("cancelled"), "{stdout}");
    assert_eq!(
        parts(&dst),
        Vec::<String>::new(),
        "the temporary file is gone"
    );
    setup.assert_freed(before);
    sender.kill();
}

/// A receiver that stops reading (SIGSTOP): our sender fails after the idle timeout and frees
/// its threads and socket, with data still queued to the stopped peer.
#[test]
fn a_receiver_that_stops_reading_fails_the_send_after_the_idle_timeout() {
    let mut setup = Setup::start(&[("WORMHOLED_IDLE_TIMEOUT", IDLE_SECS)]);
    let (src, dst) = (setup.folder("src"), setup.folder("dst"));
    sparse_gib(&src.join("big.bin"));
    let before = setup.held();
    let mut sender = setup.ours(&src, &["send", "big.bin"]);
    let code = code_event(&mut sender);
    let mut receiver = setup.python_receiver(&dst, &code);
    first_progress(&mut sender);
    let stopped = Command::new("kill")
        .args(["-STOP", &receiver.id().to_string()])
        .status()
        .expect("kill -STOP");
    assert!(stopped.success());
    let output = sender.wait_with_timeout(TIMEOUT);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{stdout}");
    assert!(stdout.contains("the peer stalled"), "{stdout}");
    setup.assert_freed(before);
    let _ = Command::new("kill")
        .args(["-CONT", &receiver.id().to_string()])
        .status();
    receiver.kill();
}

/// A daemon killed mid-receive (SIGKILL) leaves its temporary file; the next daemon of the
/// same user removes it as it starts.
#[test]
fn a_killed_daemons_temporary_file_is_removed_by_the_next_one() {
    let mut setup = Setup::start(&[]);
    let (dst, mut sender, mut receiver) = setup.receive_from_stalling_sender();
    first_progress(&mut receiver);
    let left = parts(&dst);
    assert_eq!(left.len(), 1, "receiving into a temporary file");
    setup.daemon.restart();
    assert_eq!(
        parts(&dst),
        Vec::<String>::new(),
        "the new daemon removed {left:?} before it was ready"
    );
    receiver.kill();
    sender.kill();
}

/// What cannot be sent is refused before a code exists: a FIFO (which would read as 0 bytes)
/// and a folder whose names collide once made UTF-8 (`a\xff`, `a\xfe`): the command fails with
/// the reason, prints no code and no "Sending", and the daemon holds no wormhole.
#[test]
fn what_cannot_be_sent_is_refused_before_a_code() {
    use std::os::unix::ffi::OsStrExt;

    let setup = Setup::start(&[]);
    let src = setup.folder("src");
    let fifo = src.join("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let odd = setup.folder("src/odd");
    for name in [&b"a\xff"[..], &b"a\xfe"[..]] {
        fs::write(odd.join(std::ffi::OsStr::from_bytes(name)), b"x").expect("write");
    }
    for (what, reason) in [
        ("fifo", "is neither file nor directory"),
        ("odd", "building the zipfile"),
    ] {
        let output = run(
            setup.daemon.ctl().current_dir(&src).args(["send", what]),
            TIMEOUT,
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(i32::from(ExitCode::Usage.code())),
            "{what}: {stderr}"
        );
        assert!(stderr.contains(reason), "{what}: {stderr}");
        assert!(
            !stderr.contains("Wormhole code is") && !stderr.contains("Sending"),
            "{what}: {stderr}"
        );
    }
    // The daemon refuses the FIFO too when an app asks it directly: `invalid-argument`, the one
    // error code that the typed client reports as a usage failure.
    let mut control = setup.daemon.connection();
    let refused = control
        .request(RequestBody::SendFile {
            path: fifo.to_str().expect("utf-8").to_owned(),
            code: None,
            code_length: None,
            verify: false,
            options: WormholeOptions::default(),
            transit: TransitOptions::default(),
        })
        .expect_err("a FIFO is refused");
    assert_eq!(exit_code_of(&refused), ExitCode::Usage, "{refused:#}");
    assert!(
        refused
            .to_string()
            .contains("is neither file nor directory"),
        "{refused:#}"
    );
    let listed = control.request(RequestBody::List).expect("listed");
    assert_eq!(
        listed,
        ResponseBody::Wormholes {
            wormholes: Vec::new()
        }
    );
}

/// A receiver that gives up mid-transfer (as on a full disk) says why over the mailbox as it
/// drops Transit: our sender reports the receiver's reason, not the reset it noticed first.
#[test]
fn a_receiver_that_gives_up_is_heard_out() {
    let setup = Setup::start(&[]);
    let (src, dst) = (setup.folder("src"), setup.folder("dst"));
    sparse_gib(&src.join("big.bin"));
    let mut sender = setup.ours(&src, &["send", "big.bin"]);
    let code = code_event(&mut sender);
    let url = setup.server.url();
    let hint = setup.relay.hint();
    let mut command = Command::new(venv_python());
    command
        .arg(python_script("giving_up_receiver.py"))
        .args(["No space left on device", "--", "--relay-url", &url])
        .args(["--transit-helper", &hint, "receive", "--accept-file"])
        .args(["--hide-progress", &code])
        .current_dir(&dst)
        .stdin(Stdio::null())
        .env("PYTHONUNBUFFERED", "1");
    let receiver = Process::spawn(&mut command);
    let output = sender.wait_with_timeout(TIMEOUT);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{stdout}");
    let error = stdout
        .lines()
        .find(|line| line.contains(r#""event":"error""#))
        .unwrap_or_else(|| panic!("no error event in {stdout}"));
    assert!(error.contains("No space left on device"), "{error}");
    let _ = receiver.wait_with_timeout(TIMEOUT);
}

/// A second wormholed of the same user, which finds the first running and exits, leaves the
/// first one's temporary files alone.
#[test]
fn a_second_daemon_leaves_the_running_ones_temporary_files_alone() {
    let setup = Setup::start(&[]);
    let (dst, mut sender, mut receiver) = setup.receive_from_stalling_sender();
    first_progress(&mut receiver);
    let left = parts(&dst);
    assert_eq!(left.len(), 1, "receiving into a temporary file");
    let second = run(&mut setup.daemon.wormholed(), TIMEOUT);
    assert!(!second.status.success(), "{second:?}");
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("already listening"),
        "{second:?}"
    );
    assert_eq!(
        parts(&dst),
        left,
        "the running transfer's file is still there"
    );
    receiver.kill();
    sender.kill();
}
