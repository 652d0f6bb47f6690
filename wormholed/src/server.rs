//! The control socket: a Unix socket that only its owner may use.
//!
//! The folder is created 0700 when missing; an existing one must be ours and writable by nobody
//! else ([`check_socket_folder`]), since whoever may write it may replace our sockets (the
//! subchannel sockets live there too). The socket is 0600 from its creation (interprocess
//! `fchmod`s it before `bind`), and every connection's peer uid is checked against ours. A stale
//! socket left by a dead daemon is replaced; a live one means another daemon already serves this
//! user, which is an error.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use interprocess::local_socket::tokio::prelude::*;
use interprocess::local_socket::{GenericFilePath, ListenerNonblockingMode, ListenerOptions};
use interprocess::os::unix::local_socket::ListenerOptionsExt;
use interprocess::os::unix::uds_local_socket;
use tokio::sync::Semaphore;
use wormhole_config::own_uid;

use crate::registry::{ClientRequest, SessionGone};
use crate::session::ControlSession;

/// Why the control socket could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Another daemon answers on the socket.
    #[error("another wormholed is already listening on {0}")]
    AlreadyRunning(PathBuf),
    /// The folder of the socket belongs to someone else.
    #[error(
        "{} belongs to another user (uid {owner}, we are uid {uid}); refusing to put the control \
         socket there: choose a folder of your own with WORMHOLED_SOCKET (or `daemon.socket` in \
         the config file)",
        folder.display()
    )]
    ForeignFolder {
        /// The folder.
        folder: PathBuf,
        /// Its owner.
        owner: u32,
        /// Our uid.
        uid: u32,
    },
    /// Others may write the folder of the socket, so they could replace the socket.
    #[error(
        "{} is writable by other users (mode {mode:o}), who could replace the daemon's sockets; \
         refusing to put the control socket there: run `chmod go-w {}` (or `chmod 700`), or \
         choose a folder of your own with WORMHOLED_SOCKET",
        folder.display(),
        folder.display()
    )]
    OpenFolder {
        /// The folder.
        folder: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
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

/// Whether a folder with this `owner` and `mode` may hold our sockets: it must be ours (`uid`),
/// and neither its group nor others may write it (they could remove or replace a socket).
pub(crate) fn check_socket_folder(
    folder: &Path,
    owner: u32,
    mode: u32,
    uid: u32,
) -> Result<(), ServeError> {
    if owner != uid {
        return Err(ServeError::ForeignFolder {
            folder: folder.to_owned(),
            owner,
            uid,
        });
    }
    if mode & 0o022 != 0 {
        return Err(ServeError::OpenFolder {
            folder: folder.to_owned(),
            mode: mode & 0o7777,
        });
    }
    Ok(())
}

/// The control socket, bound (so clients may connect and wait in its backlog) and not served
/// yet: [`crate::run`] serves it.
#[derive(Debug)]
pub struct ControlListener {
    listener: uds_local_socket::Listener,
    path: PathBuf,
}

impl ControlListener {
    /// Prepares the folder and binds the socket at `path`: the folder is created 0700 when
    /// missing and must otherwise be ours and writable by nobody else; a stale socket is
    /// replaced, a live one is [`ServeError::AlreadyRunning`]; the socket is 0600.
    pub fn bind(path: &Path) -> Result<Self, ServeError> {
        let uid = own_uid();
        let folder = match path.parent() {
            Some(folder) if !folder.as_os_str().is_empty() => folder,
            _ => Path::new("."),
        };
        if !folder.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(folder)
                .map_err(io_error(folder))?;
        }
        let meta = std::fs::metadata(folder).map_err(io_error(folder))?;
        check_socket_folder(folder, meta.uid(), meta.mode(), uid)?;
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
        // Bound here without a runtime, as interprocess's Tokio listener binds itself: a
        // nonblocking listener, made a Tokio one by `into_tokio` inside the System.
        let listener = ListenerOptions::new()
            .name(name)
            .mode(0o600)
            .nonblocking(ListenerNonblockingMode::Both)
            .create_sync_as::<uds_local_socket::Listener>()
            .map_err(io_error(path))?;
        Ok(Self {
            listener,
            path: path.to_owned(),
        })
    }

    /// The path of the socket.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The Tokio listener; needs a runtime (the System's).
    pub(crate) fn into_tokio(self) -> io::Result<LocalSocketListener> {
        uds_local_socket::tokio::Listener::try_from(self.listener).map(LocalSocketListener::from)
    }
}

/// Control connections served at once; the next waits in the socket's backlog until one ends.
pub(crate) const MAX_CONTROL_CLIENTS: usize = 512;
/// The first pause after a failed accept (out of descriptors, say), doubled on each failure in
/// a row up to [`MAX_ACCEPT_BACKOFF`]: a failing accept never spins.
const FIRST_ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
/// The longest pause after failed accepts.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Accepts connections forever, starting a [`ControlSession`] for each one from our own uid, at
/// most [`MAX_CONTROL_CLIENTS`] at once.
pub(crate) async fn serve(
    listener: LocalSocketListener,
    registry: Recipient<ClientRequest>,
    gone: Recipient<SessionGone>,
) {
    let uid = own_uid();
    let mut next_session = 1;
    let slots = Arc::new(Semaphore::new(MAX_CONTROL_CLIENTS));
    let mut backoff = FIRST_ACCEPT_BACKOFF;
    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok(stream) => {
                backoff = FIRST_ACCEPT_BACKOFF;
                stream
            }
            Err(e) => {
                tracing::warn!("control socket accept failed: {e}; next try in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                continue;
            }
        };
        let peer = stream.peer_creds().ok().and_then(|creds| creds.euid());
        if peer != Some(uid) {
            tracing::warn!(?peer, "refused a control connection from another user");
            continue;
        }
        let id = next_session;
        next_session += 1;
        let (reader, writer) = tokio::io::split(stream);
        ControlSession::start(id, reader, writer, registry.clone(), gone.clone(), slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Our own folder is fine when nobody else may write it: 0700, and also 0711 or 0755
    /// (others may pass or list, but neither remove nor replace a socket).
    #[test]
    fn our_folder_without_group_or_other_write_is_accepted() {
        let folder = Path::new("/run/user/1000/wormholed");
        for mode in [0o40700, 0o700, 0o711, 0o755, 0o1700] {
            assert!(
                check_socket_folder(folder, 1000, mode, 1000).is_ok(),
                "mode {mode:o}"
            );
        }
    }

    /// A folder that group or others may write is refused, with what to run.
    #[test]
    fn a_folder_others_may_write_is_refused_with_the_fix() {
        let folder = Path::new("/tmp/shared");
        for mode in [0o40777, 0o1777, 0o770, 0o702, 0o720] {
            let error = check_socket_folder(folder, 1000, mode, 1000)
                .expect_err("group or other write is refused");
            assert!(
                matches!(error, ServeError::OpenFolder { .. }),
                "mode {mode:o}: {error}"
            );
            let message = error.to_string();
            assert!(message.contains("chmod go-w /tmp/shared"), "{message}");
            assert!(message.contains("WORMHOLED_SOCKET"), "{message}");
        }
        let error = check_socket_folder(folder, 1000, 0o41777, 1000).expect_err("refused");
        assert!(error.to_string().contains("(mode 1777)"), "{error}");
    }

    /// A folder of another user is refused whatever its mode, even 0700: its owner may
    /// replace our sockets.
    #[test]
    fn a_folder_of_another_user_is_refused_with_the_fix() {
        let folder = Path::new("/tmp/wormholed-1000");
        for owner in [0, 65534] {
            let error = check_socket_folder(folder, owner, 0o700, 1000)
                .expect_err("another owner is refused");
            assert!(matches!(error, ServeError::ForeignFolder { .. }), "{error}");
            let message = error.to_string();
            assert!(message.contains(&format!("uid {owner}")), "{message}");
            assert!(
                message.contains("choose a folder of your own with WORMHOLED_SOCKET"),
                "{message}"
            );
        }
    }
}
