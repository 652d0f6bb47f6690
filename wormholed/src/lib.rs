//! wormholed: the Magic Wormhole daemon, as a library.
//!
//! Hosts every wormhole of one user behind a control socket (docs/control-protocol.md). The
//! binary (`main.rs`) only reads its arguments and the configuration, binds the socket
//! ([`ControlListener::bind`]) and calls [`run`], which serves it until a shutdown future
//! resolves, as mini-redis's `server::run` does.
//!
//! # Layout
//!
//! The modules are private; this is the tour.
//!
//! - `wire` (the composition root) composes one wormhole from a `connection::MailboxConnection`
//!   (the mailbox websocket), a `host::MachineHost` running the pure protocol machine, and an
//!   `app::WormholeApp` (text, and classic file transfer with `file_transfer` and `transit`);
//!   `dilation` hosts dilated wormholes. [`Settings`] is what every wormhole is made with.
//! - `registry` tracks wormholes and dispatches control requests; `server` binds
//!   ([`ControlListener`]) and serves the control socket, one `session` per client.
//! - `part_files` records receivers' temporary files so that they are removed at the next start;
//!   `clock` is the daemon's clock.

mod app;
mod clock;
mod connection;
mod dilation;
mod file_transfer;
mod host;
mod part_files;
mod registry;
mod server;
mod session;
mod transit;
mod wire;

use std::future::Future;
use std::io::{self, Write};

use actix::prelude::*;

pub use server::{ControlListener, ServeError};
pub use wire::{Settings, SettingsError};

/// Serves the control socket `listener` with these `settings` until `shutdown` resolves (or
/// the daemon is told to shut down over the socket), then returns once the actor system has
/// stopped. Wormholes still running end with it.
///
/// Runs its own actix `System` on the calling thread, so it must not be called from within
/// one. Before the system starts it removes the temporary files that an earlier daemon's
/// receivers left (`PartJournal::sweep`), and again after it stops; then it removes the
/// socket. Once the socket is served it prints `wormholed ready <socket path>` on standard
/// output, the line that wormholectl and the tests wait for; logs go through `tracing`.
pub fn run(
    listener: ControlListener,
    settings: Settings,
    shutdown: impl Future<Output = ()> + 'static,
) -> io::Result<()> {
    let socket = listener.path().to_owned();
    let parts = settings.parts.clone();
    let swept = parts.sweep();
    if swept > 0 {
        tracing::info!("removed {swept} temporary files of transfers an earlier wormholed left");
    }

    let system = System::new();
    system.block_on(async {
        let listener = listener.into_tokio()?;
        let registry = registry::Registry::new(settings).start();
        actix::spawn(server::serve(
            listener,
            registry.clone().recipient(),
            registry.recipient(),
        ));
        actix::spawn(async {
            shutdown.await;
            System::current().stop();
        });
        tracing::info!("listening on {}", socket.display());
        let mut stdout = io::stdout();
        writeln!(stdout, "wormholed ready {}", socket.display())?;
        stdout.flush()
    })?;
    system.run()?;
    // Transfers still running end with the process: their temporary files go now.
    parts.sweep();
    if let Err(e) = std::fs::remove_file(&socket) {
        tracing::debug!("removing {}: {e}", socket.display());
    }
    Ok(())
}
