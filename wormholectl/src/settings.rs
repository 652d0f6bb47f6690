//! The settings wormholectl reads itself: the control socket's path, and the `config`
//! subcommand's listing. Everything else is the daemon's business.
//!
//! Interim: `wormhole-config` has not landed yet; this reads `WORMHOLED_SOCKET`, else
//! `$XDG_RUNTIME_DIR/wormhole/control.sock`.

use std::path::PathBuf;

use anyhow::anyhow;

/// The control socket: `WORMHOLED_SOCKET`, else in the runtime directory.
pub(crate) fn socket_path() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("WORMHOLED_SOCKET") {
        return Ok(PathBuf::from(path));
    }
    std::env::var_os("XDG_RUNTIME_DIR")
        .map(|dir| PathBuf::from(dir).join("wormhole").join("control.sock"))
        .ok_or_else(|| anyhow!("no control socket: set WORMHOLED_SOCKET or XDG_RUNTIME_DIR"))
}

/// `wormholectl config`.
pub(crate) fn show() -> anyhow::Result<()> {
    Err(anyhow!("the configuration crate has not landed yet"))
}
