//! wormholed: the Magic Wormhole daemon.
//!
//! Hosts every wormhole of one user behind a control socket (docs/control-protocol.md). Prints
//! `wormholed ready <socket path>` on standard output once it accepts connections; logs go to
//! standard error.
//!
//! Layout: [`wire`] composes one wormhole from a [`connection::MailboxConnection`], a
//! [`host::MachineHost`] running the pure protocol machine, and an [`app::WormholeApp`];
//! [`registry`] tracks wormholes and dispatches requests; [`server`] and [`session`] serve the
//! control socket.

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

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use actix::prelude::*;
use anyhow::Context as _;
use clap::Parser;

/// The Magic Wormhole daemon: hosts every wormhole of this user behind a control socket.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Control socket path (default: from the config file or WORMHOLED_SOCKET).
    #[arg(long)]
    socket: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WORMHOLED_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let config = wormhole_config::Config::load().context("reading the configuration")?;
    let socket = args
        .socket
        .unwrap_or_else(|| config.daemon.socket.value.clone());
    let settings = wire::Settings {
        mailbox_url: config.mailbox.url.value.clone(),
        appid: config.mailbox.appid.value.clone(),
        code_words: config.mailbox.code_length.value,
        tls: connection::tls_config().context("setting up TLS")?,
        transit_relay: config.transit.relay.value.clone(),
        transit_listen: config.transit.listen.value,
        hint_addresses: config.transit.resolve_hint_addresses()?,
        idle_timeout: Duration::from_secs(config.transit.idle_timeout.value),
        parts: part_files::PartJournal::new(parts_folder(&socket)),
        socket_dir: socket
            .parent()
            .map_or_else(|| PathBuf::from("."), std::path::Path::to_path_buf),
    };
    let parts = settings.parts.clone();

    let system = System::new();
    system.block_on(async {
        let listener = server::bind(&socket)?;
        // Only once the socket is ours: a second daemon that finds one running must not remove
        // the running one's temporary files.
        let swept = parts.sweep();
        if swept > 0 {
            tracing::info!(
                "removed {swept} temporary files of transfers an earlier wormholed left"
            );
        }
        let registry = registry::Registry::new(settings).start();
        actix::spawn(server::serve(
            listener,
            registry.clone().recipient(),
            registry.recipient(),
        ));
        actix::spawn(async {
            stop_signal().await;
            tracing::info!("signal received; stopping");
            System::current().stop();
        });
        tracing::info!("listening on {}", socket.display());
        let mut stdout = std::io::stdout();
        writeln!(stdout, "wormholed ready {}", socket.display())?;
        stdout.flush()?;
        anyhow::Ok(())
    })?;
    system.run()?;
    // Transfers still running end with the process: their temporary files go now.
    parts.sweep();
    if let Err(e) = std::fs::remove_file(&socket) {
        tracing::debug!("removing {}: {e}", socket.display());
    }
    Ok(())
}

/// The journal of receivers' temporary files: `parts/` in the state folder, else beside the
/// control socket.
fn parts_folder(socket: &std::path::Path) -> PathBuf {
    wormhole_config::Config::state_dir()
        .or_else(|| socket.parent().map(std::path::Path::to_path_buf))
        .unwrap_or_else(std::env::temp_dir)
        .join("parts")
}

/// Resolves on SIGINT or SIGTERM.
async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}
