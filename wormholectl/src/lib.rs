//! wormholectl's library: the typed client of wormholed's control socket, and the exit codes.
//!
//! The `wormholectl` binary is built on it, and so are the end-to-end tests (and any Rust app):
//! [`connection::Connection`] connects to the daemon's socket, checks that the daemon runs as our
//! own user, does the `hello` handshake and then sends typed requests
//! (`wormhole_protocol::control::RequestBody`) and reads typed events. It starts a daemon only
//! when asked ([`connection::Start::IfNeeded`]). [`exit::ExitCode`] is the table of the
//! binary's exit codes, and [`exit::Failure`] the error that carries one.
//!
//! # Layout
//!
//! - [`connection`]: the control-socket client (blocking, single-threaded).
//! - [`exit`]: exit codes and failures.
//! - `spawn` (private): starts wormholed and waits for its `wormholed ready` line.

pub mod connection;
pub mod exit;
mod spawn;
