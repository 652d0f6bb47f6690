//! The control socket: a Unix socket that only its owner may use.
//!
//! The folder is created 0700 when missing, the socket is 0600, and every connection's peer uid is
//! checked against ours. A stale socket left by a dead daemon is replaced; a live one means another
//! daemon already serves this user, which is an error.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use actix::prelude::*;
use interprocess::local_socket::tokio::prelude::*;
use interprocess::local_socket::{GenericFilePath, ListenerOptions};
use interprocess::os::unix::local_socket::ListenerOptionsExt;

use crate::registry::{ClientRequest, SessionGone};
use crate::session::ControlSession;

/// Why the control socket could not be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ServeError {
    /// Another daemon answers on the socket.
    #[error("another wormholed is already listening on {0}")]
    AlreadyRunning(PathBuf),
    /// The folder of the socket belongs to someone else.
    #[error("{0} belongs to another user; refusing to put the control socket there")]
    ForeignFolder(PathBuf),
    /// Any IO failure, with the path it concerns.
    #[error("{path}: {source}")]
    Io {
        /// The path concerned.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> ServeError + '_ {
    move |source| ServeError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Our effective uid, read without `unsafe`: the owner of `/proc/self`.
pub(crate) fn own_uid() -> io::Result<u32> {
    Ok(std::fs::metadata("/proc/self")?.uid())
}

/// Prepares the folder and binds the socket at `path`.
pub(crate) fn bind(path: &Path) -> Result<LocalSocketListener, ServeError> {
    let uid = own_uid().map_err(io_error(Path::new("/proc/self")))?;
    if let Some(folder) = path.parent() {
        if !folder.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(folder)
                .map_err(io_error(folder))?;
        }
        let meta = std::fs::metadata(folder).map_err(io_error(folder))?;
        if meta.uid() != uid {
            return Err(ServeError::ForeignFolder(folder.to_owned()));
        }
    }
    if path.exists() {
        match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => return Err(ServeError::AlreadyRunning(path.to_owned())),
            Err(_) => {
                tracing::info!("removing stale control socket {}", path.display());
                std::fs::remove_file(path).map_err(io_error(path))?;
            }
        }
    }
    let name = path
        .to_fs_name::<GenericFilePath>()
        .map_err(io_error(path))?;
    ListenerOptions::new()
        .name(name)
        .mode(0o600)
        .create_tokio()
        .map_err(io_error(path))
}

/// Accepts connections forever, starting a [`ControlSession`] for each one from our own uid.
pub(crate) async fn serve(
    listener: LocalSocketListener,
    registry: Recipient<ClientRequest>,
    gone: Recipient<SessionGone>,
) {
    let uid = own_uid().ok();
    let mut next_session = 1;
    loop {
        let stream = match listener.accept().await {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!("control socket accept failed: {e}");
                continue;
            }
        };
        let peer = stream.peer_creds().ok().and_then(|creds| creds.euid());
        if peer.is_none() || peer != uid {
            tracing::warn!(?peer, "refused a control connection from another user");
            continue;
        }
        let id = next_session;
        next_session += 1;
        let (reader, writer) = tokio::io::split(stream);
        ControlSession::start(id, reader, writer, registry.clone(), gone.clone());
    }
}
