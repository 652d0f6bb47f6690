//! Socket ownership: only the user who runs wormholed talks to its sockets, and wormholectl only
//! talks to a daemon of its own user.
//!
//! The second local user is a process run as uid and gid 65534 with no supplementary groups
//! (`setpriv`), speaking through the system's Python (`/usr/bin/python3 -I`: nothing of root's
//! environment or of the test venv, which that user may not read). The tests run as root.
//! Each misconfiguration is made on purpose (a socket or folder chmodded wide open, a socket in
//! a folder others may write, a socket served by the other user), and each is answered:
//! the daemon refuses the other user's connection and keeps its one-shot subchannel socket for
//! ours, refuses to start in a folder that is not safely its own, and wormholectl refuses a
//! daemon of another user before it sends a byte; every refusal says what to fix.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use wormhole_tests::check::assert_our_failure;
use wormhole_tests::dilation::{assert_peer_sent, close_dilated, connect_subchannel};
use wormhole_tests::{
    assert_success, dilate_and_listen, run, Control, Daemon, DilationSetup, Process, TIMEOUT,
};
use wormholectl::exit::ExitCode;

/// The second local user's uid and gid.
const OTHER_UID: u32 = 65534;

/// Runs a command as another user.
const SETPRIV: &str = "/usr/bin/setpriv";

/// The system's Python, which every user may run.
const SYSTEM_PYTHON: &str = "/usr/bin/python3";

/// A mailbox URL nothing listens on: these daemons and commands never get that far.
const NO_MAILBOX: &str = "ws://127.0.0.1:1/v1";

/// Connects to the Unix socket `argv[1]`, writes `argv[2]` (if given) and reads to the end;
/// prints `read N bytes`. A reset or a broken pipe also ends it: the server hung up.
const CONNECT_AND_READ: &str = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(60)
s.connect(sys.argv[1])
n = 0
try:
    if len(sys.argv) > 2:
        s.sendall(sys.argv[2].encode() + b"\n")
    while True:
        data = s.recv(65536)
        if not data:
            break
        n += len(data)
except (BrokenPipeError, ConnectionResetError):
    pass
print(f"read {n} bytes")
"#;

/// Listens on the Unix socket `argv[1]` (mode 0666), prints `listening`, accepts one
/// connection and reads until a newline or its end; prints `received N bytes`.
const LISTEN_AND_READ: &str = r#"
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o666)
s.listen(1)
print("listening", flush=True)
conn, _ = s.accept()
conn.settimeout(60)
data = b""
while b"\n" not in data:
    chunk = conn.recv(65536)
    if not chunk:
        break
    data += chunk
print(f"received {len(data)} bytes", flush=True)
"#;

/// The system's Python running `script` with `args`, as the second local user, in `/`.
fn other_user_python(script: &str, args: &[&str]) -> Command {
    let me = fs::metadata("/proc/self").map(|m| m.uid());
    assert_eq!(
        me.ok(),
        Some(0),
        "these tests run as root: they start processes of a second user with {SETPRIV}"
    );
    let other = OTHER_UID.to_string();
    let mut command = Command::new(SETPRIV);
    command
        .args(["--reuid", &other, "--regid", &other, "--clear-groups"])
        .args([SYSTEM_PYTHON, "-I", "-c", script])
        .args(args)
        .current_dir("/")
        .stdin(Stdio::null());
    command
}

/// Sets the permission bits of `path`.
fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", path.display()));
}

/// The stdout of a successful run, which must be `expected` plus a newline.
fn assert_printed(output: &Output, expected: &str) {
    assert_eq!(assert_success(output), format!("{expected}\n"));
}

/// A user widens a subchannel socket (0666) and its folder (0711); a second user connects
/// first. The daemon refuses that connection (EOF before a byte, logged) and does not give the
/// one-shot socket away: our own client connects after it and gets the peer's bytes exactly.
/// The control socket, widened the same way, also refuses the second user's `hello`.
#[test]
fn a_widened_subchannel_socket_refuses_another_user_and_waits_for_ours() {
    const SIZE: usize = 300_000;
    let mut setup = DilationSetup::start(&[]);
    let mut control = Control::connect(&setup.daemon);
    let (wormhole, code) = dilate_and_listen(&mut control, false, "test");
    let size = SIZE.to_string();
    let mut peer = setup.peer(&["--code", &code, "--send", &size]);
    let opened = control.event("subchannel-opened");
    let socket = opened["socket"].as_str().expect("a socket path").to_owned();

    let socket_path = Path::new(&socket);
    assert_eq!(
        fs::metadata(socket_path).map(|m| m.mode() & 0o7777).ok(),
        Some(0o600),
        "the subchannel socket is 0600"
    );
    chmod(setup.daemon.dir(), 0o711);
    chmod(socket_path, 0o666);
    let stranger = run(
        &mut other_user_python(CONNECT_AND_READ, &[&socket]),
        TIMEOUT,
    );
    assert_printed(&stranger, "read 0 bytes");
    setup
        .daemon
        .process()
        .wait_for_stderr("the refusal in the log", TIMEOUT, |line| {
            line.contains("refused a subchannel connection from another user")
                .then_some(())
        });

    let mut ours = connect_subchannel(&opened["socket"]);
    let mut received = Vec::new();
    ours.read_to_end(&mut received)
        .expect("read the subchannel");
    assert_peer_sent(&mut peer, &received);

    let control_socket = setup
        .daemon
        .socket()
        .to_str()
        .expect("a UTF-8 path")
        .to_owned();
    chmod(setup.daemon.socket(), 0o666);
    let hello = r#"{"id":1,"op":"hello","protocol":1}"#;
    let stranger = run(
        &mut other_user_python(CONNECT_AND_READ, &[&control_socket, hello]),
        TIMEOUT,
    );
    assert_printed(&stranger, "read 0 bytes");
    setup.daemon.process().wait_for_stderr(
        "the control socket's refusal in the log",
        TIMEOUT,
        |line| {
            line.contains("refused a control connection from another user")
                .then_some(())
        },
    );
    let closed = close_dilated(&mut control, &wormhole);
    assert_eq!(closed["mood"], "happy", "{closed}");
    peer.wait_with_timeout(TIMEOUT);
}

/// Runs wormholed of `daemon` with its control socket at `socket`; it must fail at once,
/// having made no socket. Returns its stderr.
fn refused_start(daemon: &Daemon, socket: &Path) -> String {
    let output = run(daemon.wormholed().env("WORMHOLED_SOCKET", socket), TIMEOUT);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !output.status.success(),
        "wormholed started with its socket at {}:\n{stderr}",
        socket.display()
    );
    assert!(output.stdout.is_empty(), "not ready:\n{stderr}");
    assert!(!socket.exists(), "no socket was made");
    stderr
}

/// A socket folder that others may write (like /tmp, 1777, or a group-writable 0770) would let
/// them replace the daemon's sockets: wormholed refuses to start there, and says what to run.
#[test]
fn the_daemon_refuses_a_socket_folder_that_others_may_write() {
    let daemon = Daemon::not_started_with_env(NO_MAILBOX, &[]);
    for (name, mode) in [("sticky", 0o1777), ("group", 0o770)] {
        let folder = daemon.dir().join(name);
        fs::create_dir(&folder).expect("a folder");
        chmod(&folder, mode);
        let stderr = refused_start(&daemon, &folder.join("control.sock"));
        let expected = format!(
            "{} is writable by other users (mode {mode:o})",
            folder.display()
        );
        assert!(stderr.contains(&expected), "{expected:?} in:\n{stderr}");
        let fix = format!("run `chmod go-w {}`", folder.display());
        assert!(stderr.contains(&fix), "{fix:?} in:\n{stderr}");
    }
}

/// A socket folder of another user, even 0700, is theirs to change: wormholed refuses it and
/// says to choose a folder of our own.
#[test]
fn the_daemon_refuses_a_socket_folder_of_another_user() {
    let daemon = Daemon::not_started_with_env(NO_MAILBOX, &[]);
    let folder = daemon.dir().join("theirs");
    fs::create_dir(&folder).expect("a folder");
    chmod(&folder, 0o700);
    std::os::unix::fs::chown(&folder, Some(OTHER_UID), Some(OTHER_UID)).expect("chown");
    let stderr = refused_start(&daemon, &folder.join("control.sock"));
    for needle in [
        format!(
            "{} belongs to another user (uid {OTHER_UID}",
            folder.display()
        ),
        "choose a folder of your own with WORMHOLED_SOCKET".to_owned(),
    ] {
        assert!(stderr.contains(&needle), "{needle:?} in:\n{stderr}");
    }
}

/// WORMHOLED_SOCKET names a socket that a second user serves (say, in a shared folder where
/// they replaced ours): wormholectl asks the server's uid (`SO_PEERCRED`) and refuses before it
/// writes anything, `hello` and the secret text included; exit 1, with what to fix.
#[test]
fn wormholectl_refuses_a_daemon_socket_served_by_another_user() {
    let daemon = Daemon::not_started_with_env(NO_MAILBOX, &[]);
    chmod(daemon.dir(), 0o711);
    let folder = daemon.dir().join("shared");
    fs::create_dir(&folder).expect("a folder");
    std::os::unix::fs::chown(&folder, Some(OTHER_UID), Some(OTHER_UID)).expect("chown");
    let socket = folder.join("control.sock");
    let socket_arg = socket.to_str().expect("a UTF-8 path");
    let mut listener = Process::spawn(&mut other_user_python(LISTEN_AND_READ, &[socket_arg]));
    listener.wait_for_stdout("`listening`", TIMEOUT, |line| {
        (line == "listening").then_some(())
    });

    let output = run(
        daemon
            .ctl()
            .env("WORMHOLED_SOCKET", &socket)
            .args(["send", "--text", "the secret text"]),
        TIMEOUT,
    );
    assert_our_failure(
        &output,
        ExitCode::Failure,
        &[
            &format!("{socket_arg} is served by another user (uid {OTHER_UID}; we are uid 0)"),
            "refusing to talk to it",
            "set WORMHOLED_SOCKET to a path in a folder of your own",
        ],
    );
    assert_printed(
        &listener.wait_with_timeout(TIMEOUT),
        "listening\nreceived 0 bytes",
    );
}
