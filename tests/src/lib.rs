//! Test support for wormholed's interop and end-to-end tests.
//!
//! Every interop test runs against the real Python reference (magic-wormhole 0.24.0,
//! magic-wormhole-mailbox-server 0.8.0, magic-wormhole-transit-relay 0.5.0), installed in a venv
//! by `scripts/python-env.sh`, and started by the test itself on a free port of 127.0.0.1. Every
//! end-to-end test drives a real `wormholed` on a temporary socket through the real `wormholectl`.
//! Nothing here touches the public internet, sleeps to wait for something, or retries.
//!
//! # Layout
//!
//! - [`process`]: [`Process`], a child with piped output read by threads: wait for a line on
//!   stdout or stderr ([`Process::wait_for_stderr`], [`Process::wormhole_code`]) and for the exit
//!   ([`Process::wait_with_timeout`]), each bounded by a deadline that fails loudly with
//!   everything the child printed so far. [`run`] and [`assert_success`] for one-shot commands.
//! - [`paths`]: where the venv, the Python helper scripts (`tests/python/`) and our binaries are.
//! - [`python`]: [`MailboxServer`] and [`TransitRelay`] (the reference servers, in memory, on
//!   127.0.0.1), and [`python_wormhole`] (the reference CLI, with loopback-only hints).
//! - [`daemon`]: [`Daemon`], a `wormholed` on a temporary socket, [`Daemon::ctl`] for the
//!   `wormholectl` commands that talk to it, and [`Daemon::connection`], wormholectl's typed
//!   control client (`wormholectl::connection`) connected to it.
//! - [`control`]: [`Control`], a raw JSON client of the daemon's control socket, for requests
//!   the types cannot express and lines checked as JSON.
//!
//! Constants come from the crates, never copies: `wormhole_protocol::control::MAX_LINE_BYTES`,
//! `wormhole_protocol::dilation::DEFAULT_OUTBOUND_BUDGET`, `wormholectl::exit::ExitCode`. The
//! golden control-protocol lines are in `tests/vectors/control/` (tests/tests/control_vectors.rs).
//! - [`proxy`]: [`TcpProxy`], a loopback TCP proxy a test can cut every connection of.
//! - [`dilation`]: [`DilationSetup`] (servers, an optional [`TcpProxy`] in front of the relay,
//!   our daemon, the reference Dilation peer) and [`dilate_and_listen`].
//! - [`data`]: deterministic payloads ([`Noise`], [`noise`]) and [`sha256`].
//! - [`tls`]: [`SelfSignedCert`] (made by the `openssl` command line) and
//!   [`MailboxServer::start_tls`], the reference mailbox server on `wss://`.
//!
//! # Prerequisites
//!
//! `scripts/test` does both: `scripts/python-env.sh` (the venv, at `$WORMHOLE_TEST_VENV` or
//! `<workspace>/.venv`), and `cargo build --workspace --bins` (the binaries, which `cargo test`
//! does not build for another package's tests). Missing either makes the harness panic with the
//! command to run.
//!
//! # Example
//!
//! ```no_run
//! use wormhole_tests::{assert_success, python_wormhole, MailboxServer, Process, TIMEOUT};
//!
//! let server = MailboxServer::start();
//! let mut sender =
//!     Process::spawn(&mut python_wormhole(["--relay-url", &server.url(), "send", "--text", "hi"]));
//! let code = sender.wormhole_code(TIMEOUT);
//! let received = wormhole_tests::run(
//!     &mut python_wormhole(["--relay-url", &server.url(), "receive", "--only-text", &code]),
//!     TIMEOUT,
//! );
//! assert_success(&received);
//! assert_success(&sender.wait_with_timeout(TIMEOUT));
//! ```

use std::time::Duration;

pub mod check;
pub mod control;
pub mod daemon;
pub mod data;
pub mod dilation;
pub mod paths;
pub mod process;
pub mod proxy;
pub mod python;
pub mod tls;

pub use control::Control;
pub use daemon::Daemon;
pub use data::{noise, sha256, Noise};
pub use dilation::{dilate_and_listen, DilationSetup};
pub use paths::{bin_path, python_script, venv_dir, venv_python, workspace_dir};
pub use process::{assert_success, run, Process};
pub use proxy::TcpProxy;
pub use python::{python_wormhole, MailboxServer, TransitRelay};
pub use tls::SelfSignedCert;

/// The default bound on every wait in a test: generous for a loaded 2-core CI machine, short
/// enough that a hang fails the run instead of stalling it.
pub const TIMEOUT: Duration = Duration::from_secs(60);
