//! The Python reference: mailbox server, transit relay and `wormhole` CLI, on 127.0.0.1 only.
//!
//! The servers are `tests/python/mailbox_server.py` and `tests/python/transit_relay.py`: each
//! builds the reference service from the package's own functions (in-memory state; for the
//! mailbox server, optionally a database file that survives a restart), listens on 127.0.0.1
//! and prints `listening <port>` on stdout once it accepts connections, which is what the
//! harness waits for. Their stdin is a pipe we hold: they exit when it closes, so a server
//! never outlives the test process even if it is killed.

use std::ffi::OsStr;
use std::process::{Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::paths::{python_script, venv_python};
use crate::process::Process;

/// Bound on a server's start (interpreter start plus imports: about 1 s on an idle machine).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The reference mailbox server (magic-wormhole-mailbox-server 0.8.0) on a port of 127.0.0.1.
///
/// Dropping it kills the server.
#[derive(Debug)]
pub struct MailboxServer {
    /// Declared before `db_dir`: the server dies before its database goes.
    server: PythonServer,
    /// The folder of the channel database of [`MailboxServer::start_persistent`].
    _db_dir: Option<TempDir>,
}

impl MailboxServer {
    /// Starts a server on a free port and waits until it listens.
    pub fn start() -> Self {
        Self::start_with_args(&[])
    }

    /// As [`MailboxServer::start`], with extra arguments for `mailbox_server.py`:
    /// `--disallow-list`, `--motd TEXT`, `--signal-error TEXT`, `--advertise-version V`,
    /// `--verbose` (Twisted log on stderr), `--channel-db PATH` (an SQLite file instead of
    /// memory), `--hold-nameplate N` (two made-up sides claim nameplate N before it listens, so
    /// a third claim is `crowded`).
    pub fn start_with_args(args: &[&str]) -> Self {
        Self {
            server: PythonServer::start("mailbox_server.py", args, 0),
            _db_dir: None,
        }
    }

    /// As [`MailboxServer::start_with_args`], with the channel database in a file of a temporary
    /// folder (removed on drop): its nameplates, mailboxes and messages survive
    /// [`MailboxServer::restart`], as those of a production server do.
    pub fn start_persistent(args: &[&str]) -> Self {
        let db_dir = tempfile::Builder::new()
            .prefix("mailbox-db-")
            .tempdir()
            .expect("a temporary folder can be created");
        let db = db_dir.path().join("channel.sqlite");
        let db = db.to_str().expect("temporary paths are UTF-8");
        let mut all = vec!["--channel-db", db];
        all.extend_from_slice(args);
        Self {
            server: PythonServer::start("mailbox_server.py", &all, 0),
            _db_dir: Some(db_dir),
        }
    }

    /// The WebSocket URL: `ws://127.0.0.1:<port>/v1`.
    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/v1", self.port())
    }

    /// The TCP port it listens on.
    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// Kills the server and waits until it is gone (its port is then free). Idempotent.
    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// Stops the server (if running) and starts a new one on the same port, with the same
    /// arguments. The new one has empty state (nameplates, mailboxes and messages are lost),
    /// unless it was started with a channel database file ([`MailboxServer::start_persistent`]).
    pub fn restart(&mut self) {
        self.server.restart();
    }

    /// The server process, e.g. to read its log (`--verbose`) in a failure message.
    pub fn process(&mut self) -> &mut Process {
        self.server.process()
    }
}

/// The reference transit relay (magic-wormhole-transit-relay 0.5.0) on a port of 127.0.0.1.
///
/// Dropping it kills the relay.
#[derive(Debug)]
pub struct TransitRelay {
    server: PythonServer,
}

impl TransitRelay {
    /// Starts a relay (TCP only) on a free port and waits until it listens.
    pub fn start() -> Self {
        Self {
            server: PythonServer::start("transit_relay.py", &[], 0),
        }
    }

    /// The hint for `--transit-helper` / `WORMHOLE_TRANSIT_HELPER`: `tcp:127.0.0.1:<port>`.
    pub fn hint(&self) -> String {
        format!("tcp:127.0.0.1:{}", self.port())
    }

    /// The TCP port it listens on.
    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// Kills the relay and waits until it is gone. Idempotent.
    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// Stops the relay (if running) and starts a new one on the same port.
    pub fn restart(&mut self) {
        self.server.restart();
    }
}

/// A command running the reference `wormhole` CLI (magic-wormhole 0.24.0) with `args`, through
/// `tests/python/wormhole_cli.py`: the connection hints it advertises are 127.0.0.1 only, and
/// without `--relay-url` / `--transit-helper` it uses closed ports of 127.0.0.1 rather than the
/// public servers (inherited `WORMHOLE_*` variables are removed).
///
/// stdin is null (so nothing waits for a terminal); override it on the returned command if
/// needed. Run it with [`Process::spawn`] or [`crate::run`].
///
/// The sender prints `Wormhole code is: <code>` on stderr ([`Process::wormhole_code`]); a text
/// receiver prints the text on stdout.
pub fn python_wormhole<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(venv_python());
    command
        .arg(python_script("wormhole_cli.py"))
        .args(args)
        .stdin(Stdio::null())
        .env("PYTHONUNBUFFERED", "1")
        .env_remove("WORMHOLE_RELAY_URL")
        .env_remove("WORMHOLE_TRANSIT_HELPER")
        .env_remove("WORMHOLE_ACCEPT_FILE");
    command
}

/// A `tests/python/*.py` server with the `listening <port>` contract.
#[derive(Debug)]
struct PythonServer {
    script: &'static str,
    args: Vec<String>,
    port: u16,
    /// `None` while stopped.
    process: Option<Process>,
}

impl PythonServer {
    /// Starts `script` on `port` (0 = a free one) and waits for its readiness line.
    fn start(script: &'static str, args: &[&str], port: u16) -> Self {
        let mut server = Self {
            script,
            args: args.iter().map(|arg| (*arg).to_owned()).collect(),
            port,
            process: None,
        };
        server.launch();
        server
    }

    fn launch(&mut self) {
        let mut command = Command::new(venv_python());
        command
            .arg(python_script(self.script))
            .arg("--port")
            .arg(self.port.to_string())
            .args(&self.args)
            .env("PYTHONUNBUFFERED", "1")
            // Held open by the Child handle; the server exits when it closes.
            .stdin(Stdio::piped());
        let mut process = Process::spawn(&mut command);
        let wanted = self.port;
        let port = process.wait_for_stdout("`listening <port>`", START_TIMEOUT, |line| {
            line.strip_prefix("listening ")
                .and_then(|port| port.trim().parse::<u16>().ok())
        });
        assert!(
            wanted == 0 || port == wanted,
            "{} listens on {port}, not on the requested {wanted}",
            self.script
        );
        self.port = port;
        self.process = Some(process);
    }

    fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    fn process(&mut self) -> &mut Process {
        let script = self.script;
        self.process
            .as_mut()
            .unwrap_or_else(|| panic!("{script} is stopped"))
    }
}
