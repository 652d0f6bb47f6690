//! wormholed: the Magic Wormhole daemon (see the library, `wormholed::run`).
//!
//! Reads its arguments and the configuration, binds the control socket and serves it until
//! SIGINT or SIGTERM. Prints `wormholed ready <socket path>` on standard output once it accepts
//! connections; logs go to standard error.

use std::path::PathBuf;

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
    let settings = wormholed::Settings::from_config(&config, &socket)?;
    let listener = wormholed::ControlListener::bind(&socket)?;
    wormholed::run(listener, settings, async {
        stop_signal().await;
        tracing::info!("signal received; stopping");
    })?;
    Ok(())
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
