//! A real `wormholed` on a temporary control socket, and `wormholectl` commands that reach it.
//!
//! Each [`Daemon`] gets its own temporary folder holding the socket, an empty config file (so
//! every setting is its default unless the environment says otherwise), and `HOME` and the XDG
//! folders, so nothing of the user who runs the tests is read or written. Its Transit hints are
//! 127.0.0.1 only (`WORMHOLED_HINT_ADDRESSES`) and, unless a test names one, its transit helper
//! is a closed port of 127.0.0.1: nothing reaches the public servers. The daemon announces readiness by printing
//! `wormholed ready <socket path>` as its first stdout line.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;
use wormholectl::connection::{Connection, Start};

use crate::paths::bin_path;
use crate::process::Process;
use crate::python::MailboxServer;
use crate::TIMEOUT;

/// Bound on the daemon's start, up to its readiness line.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The transit helper when a test names none: a closed port of 127.0.0.1, never the public relay.
const NO_TRANSIT_HELPER: &str = "tcp:127.0.0.1:1";

/// Inherited variables that would change the daemon's or wormholectl's settings; removed.
const CLEARED_ENV: &[&str] = &[
    "WORMHOLE_ACCEPT_FILE",
    "WORMHOLE_APPID",
    "WORMHOLE_CODE_LENGTH",
];

/// A running `wormholed`. Dropping it kills the daemon and removes its folder.
#[derive(Debug)]
pub struct Daemon {
    /// Declared before `dir`: the daemon dies before its folder goes.
    process: Option<Process>,
    socket: PathBuf,
    env: Vec<(OsString, OsString)>,
    dir: TempDir,
}

impl Daemon {
    /// Starts a daemon whose mailbox server is `mailbox`, and waits until it is ready.
    pub fn start(mailbox: &MailboxServer) -> Self {
        Self::start_with_env(&mailbox.url(), &[])
    }

    /// Starts a daemon with mailbox URL `relay_url` and extra environment variables (applied
    /// last, so they override the harness's, e.g.
    /// `&[("WORMHOLE_TRANSIT_HELPER", &relay.hint())]`). [`Daemon::ctl`] gets the same ones.
    pub fn start_with_env(relay_url: &str, extra_env: &[(&str, &str)]) -> Self {
        let mut daemon = Self::prepare(relay_url, extra_env);
        daemon.launch();
        daemon
    }

    /// Starts the daemon process and waits until it is ready.
    fn launch(&mut self) {
        let mut process = Process::spawn(&mut self.wormholed());
        let announced =
            process.wait_for_stdout("`wormholed ready <socket path>`", START_TIMEOUT, |line| {
                line.strip_prefix("wormholed ready ").map(PathBuf::from)
            });
        assert_eq!(
            announced, self.socket,
            "wormholed announced another socket than WORMHOLED_SOCKET"
        );
        self.process = Some(process);
    }

    /// Kills the daemon ([`Daemon::stop`]: nothing of it runs on) and starts a new one with the
    /// same folder, home and environment, as after a crash; waits until it is ready.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// The folder and environment of a daemon for `mailbox`, but no daemon: for the tests of
    /// wormholectl's on-demand start. A [`Daemon::ctl`] command that needs a daemon then
    /// starts one of its own, which this value does not stop: stop it with
    /// `wormholectl shutdown`. [`Daemon::process`] panics.
    pub fn not_started(mailbox: &MailboxServer) -> Self {
        Self::prepare(&mailbox.url(), &[])
    }

    /// As [`Daemon::not_started`], with mailbox URL `relay_url` and `extra_env` as in
    /// [`Daemon::start_with_env`]: for the tests that run [`Daemon::wormholed`] themselves (e.g.
    /// one that must refuse to start) or point [`Daemon::ctl`] at a socket of their own.
    pub fn not_started_with_env(relay_url: &str, extra_env: &[(&str, &str)]) -> Self {
        Self::prepare(relay_url, extra_env)
    }

    /// A `wormholed` command with this daemon's environment, working directory its folder,
    /// stdin null (not started; [`Daemon::start_with_env`] runs one).
    pub fn wormholed(&self) -> Command {
        hermetic(bin_path("wormholed"), self.dir.path(), &self.env)
    }

    /// The folder, config file and environment of a daemon, with no process yet.
    fn prepare(relay_url: &str, extra_env: &[(&str, &str)]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("wormholed-test-")
            .tempdir()
            .expect("a temporary folder can be created");
        let socket = dir.path().join("control.sock");
        let runtime = make_dir(dir.path(), "runtime", 0o700);
        let home = make_dir(dir.path(), "home", 0o700);
        let config = dir.path().join("wormholed.toml");
        fs::write(&config, "").unwrap_or_else(|e| panic!("cannot write {}: {e}", config.display()));
        let mut env: Vec<(OsString, OsString)> = vec![
            ("WORMHOLED_SOCKET".into(), socket.clone().into()),
            ("WORMHOLED_CONFIG".into(), config.into()),
            ("WORMHOLED_HINT_ADDRESSES".into(), "127.0.0.1".into()),
            ("WORMHOLE_RELAY_URL".into(), relay_url.into()),
            ("WORMHOLE_TRANSIT_HELPER".into(), NO_TRANSIT_HELPER.into()),
            ("XDG_RUNTIME_DIR".into(), runtime.into()),
            ("HOME".into(), home.clone().into()),
            ("XDG_CONFIG_HOME".into(), home.join(".config").into()),
            ("XDG_DATA_HOME".into(), home.join(".local/share").into()),
            ("XDG_STATE_HOME".into(), home.join(".local/state").into()),
            ("XDG_CACHE_HOME".into(), home.join(".cache").into()),
        ];
        env.extend(
            extra_env
                .iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v))),
        );
        Self {
            process: None,
            socket,
            env,
            dir,
        }
    }

    /// A `wormholectl` command (add the arguments) with the daemon's environment (socket,
    /// config, relay URL, home), working directory the daemon's folder, stdin null.
    pub fn ctl(&self) -> Command {
        hermetic(bin_path("wormholectl"), self.dir.path(), &self.env)
    }

    /// A typed control connection to the daemon (wormholectl's client, past `hello`), each wait
    /// for a line bounded by [`TIMEOUT`]. It never starts a daemon.
    pub fn connection(&self) -> Connection {
        let connection = Connection::open(&self.socket, Start::Never)
            .unwrap_or_else(|e| panic!("connecting to the daemon: {e:#}"))
            .expect("the daemon listens");
        connection
            .set_read_timeout(Some(TIMEOUT))
            .expect("a read timeout");
        connection
    }

    /// The control socket's path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The daemon's temporary folder (its working directory, and that of [`Daemon::ctl`]).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The environment the daemon was started with (and [`Daemon::ctl`] gets).
    pub fn env(&self) -> &[(OsString, OsString)] {
        &self.env
    }

    /// The daemon process, e.g. to wait for a log line or read its output in a failure message.
    pub fn process(&mut self) -> &mut Process {
        self.process
            .as_mut()
            .expect("the daemon process is only taken by stop (and not_started has none)")
    }

    /// Kills the daemon (by its handle) and reaps it. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }
}

/// A command for `program` in `dir` with stdin null, the settings variables of [`CLEARED_ENV`]
/// removed, then `env` set (so `env` may set them again).
fn hermetic(program: PathBuf, dir: &Path, env: &[(OsString, OsString)]) -> Command {
    let mut command = Command::new(program);
    command.current_dir(dir).stdin(Stdio::null());
    for name in CLEARED_ENV {
        command.env_remove(name);
    }
    command.envs(env.iter().map(|(k, v)| (k, v)));
    command
}

/// Creates `<parent>/<name>` with `mode` and returns its path.
fn make_dir(parent: &Path, name: &str, mode: u32) -> PathBuf {
    let dir = parent.join(name);
    fs::create_dir(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    fs::set_permissions(&dir, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", dir.display()));
    dir
}
