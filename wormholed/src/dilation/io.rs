//! The socket tasks of a dilated wormhole: the L2 listener and dialers, one reader and one
//! writer per TCP connection, and one Unix socket per subchannel. They move bytes, and the
//! connection tasks also seal and open records with the transport the machine handed over
//! (`Output::Secured`); they report to the [`DilationHost`](super::DilationHost) through [`Io`]
//! messages; `send().await` on each report keeps a reader from running ahead of the actor.
//!
//! Threads: the listener, dialers and subchannel socket listeners run on the actor's arbiter;
//! every TCP connection's reader and writer, and every subchannel client's reader and writer (the
//! bulk IO) run on a small runtime of their own ([`CONNECTION_THREADS`] threads shared by all
//! wormholes), so that sealing, opening and socket copies proceed beside the machines and never
//! hold up the arbiter that also serves the control and mailbox actors.

use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::Recipient;
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use wormhole_protocol::dilation::l2::Sealer;
use wormhole_protocol::dilation::l3::Record;
use wormhole_protocol::dilation::{ConnectionId, Generation, SubchannelId, MAX_DATA_PAYLOAD};
use wormhole_protocol::transit::hints::DirectHint;

use super::{Io, RawData};

/// Bytes read from a TCP connection at once, once its records are opened here.
const TCP_READ: usize = 256 << 10;

/// Bytes read from a TCP connection at once during its handshake.
const RAW_READ: usize = 4 << 10;

/// Bytes read from a subchannel client at once: one DATA record's payload, so that each record
/// is one Noise message (a frame of 65535 bytes).
const CLIENT_READ: usize = MAX_DATA_PAYLOAD;

/// How long one dial may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// How many times a relay is dialled within one generation.
const RELAY_ATTEMPTS: u32 = 6;

/// Bytes waiting to be written to subchannel clients, with a gate that is shut above the high
/// water mark and opened again below the low one (the TCP readers wait on it). Shared by the
/// host (which adds) and the client writers on the connection runtime (which subtract).
pub(super) struct Gauge {
    queued: AtomicUsize,
    high: usize,
    low: usize,
    gate: watch::Sender<bool>,
}

impl Gauge {
    pub(super) fn new(high: usize, low: usize) -> Self {
        Self {
            queued: AtomicUsize::new(0),
            high,
            low,
            gate: watch::channel(true).0,
        }
    }

    /// A view of the gate, for a reader.
    pub(super) fn open(&self) -> watch::Receiver<bool> {
        self.gate.subscribe()
    }

    /// Whether the gate is open now (TCP reads go on).
    pub(super) fn is_open(&self) -> bool {
        *self.gate.borrow()
    }

    pub(super) fn add(&self, n: usize) {
        let queued = self.queued.fetch_add(n, Ordering::AcqRel) + n;
        if queued > self.high {
            self.gate
                .send_if_modified(|open| std::mem::replace(open, false));
        }
    }

    pub(super) fn sub(&self, n: usize) {
        let before = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                Some(q.saturating_sub(n))
            })
            .unwrap_or_else(|q| q);
        if before.saturating_sub(n) <= self.low {
            self.gate
                .send_if_modified(|open| !std::mem::replace(open, true));
        }
    }
}

/// Binds our listener for a generation, reports our direct hints (of `addresses`, every local
/// address when empty), then accepts.
pub(super) async fn listen(generation: Generation, addresses: Vec<IpAddr>, me: Recipient<Io>) {
    let (listener, direct) = match crate::transit::listen_direct(&addresses).await {
        Ok(bound) => bound,
        Err(e) => {
            tracing::warn!(error = %e, "dilation: cannot listen; dialling only");
            let _ = me
                .send(Io::Listening {
                    generation,
                    direct: Vec::new(),
                })
                .await;
            return;
        }
    };
    if me.send(Io::Listening { generation, direct }).await.is_err() {
        return;
    }
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                tracing::debug!(%addr, generation, "dilation: accepted");
                let connected = Io::Connected {
                    generation,
                    relay: false,
                    stream,
                };
                if me.send(connected).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "dilation: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Dials one hint after `delay`. A relay that refuses (e.g. restarting) is dialled again, up to
/// [`RELAY_ATTEMPTS`] times with a growing pause, until the generation stops (the task is
/// aborted on `StopConnecting`).
pub(super) async fn dial(
    generation: Generation,
    delay: Duration,
    hint: DirectHint,
    relay: bool,
    me: Recipient<Io>,
) {
    tokio::time::sleep(delay).await;
    let attempts = if relay { RELAY_ATTEMPTS } else { 1 };
    let mut pause = Duration::from_millis(500);
    for attempt in 1..=attempts {
        let connect = crate::transit::dial(&hint);
        match tokio::time::timeout(DIAL_TIMEOUT, connect).await {
            Ok(Ok(stream)) => {
                tracing::debug!(%hint, relay, generation, "dilation: dialled");
                let _ = me
                    .send(Io::Connected {
                        generation,
                        relay,
                        stream,
                    })
                    .await;
                return;
            }
            Ok(Err(e)) => tracing::debug!(%hint, attempt, error = %e, "dilation: dial failed"),
            Err(_) => tracing::debug!(%hint, attempt, "dilation: dial timed out"),
        }
        if attempt < attempts {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(8));
        }
    }
}

/// Threads of the runtime that runs every TCP connection's reader and writer (sealing and
/// opening records is the heavy part of Dilation: it runs there, not on the actor's thread).
const CONNECTION_THREADS: usize = 2;

/// Bytes written to a TCP connection at once, at most (records queued together are batched).
const TCP_WRITE_BATCH: usize = 256 << 10;

/// The runtime of the connection tasks, made once on first use and shared by every wormhole.
fn connection_runtime() -> io::Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: std::sync::OnceLock<Result<tokio::runtime::Runtime, String>> =
        std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(CONNECTION_THREADS)
                .thread_name("dilation-io")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| io::Error::other(format!("cannot start the connection runtime: {e}")))
}

/// What a connection's writer is given, in order.
pub(super) enum Outgoing {
    /// Bytes to write as they are (relay line, preamble, handshake).
    Raw(Vec<u8>),
    /// The handshake is done: seal every later record with this.
    Secure(Box<Sealer>),
    /// A record to seal and write.
    Record(Record),
}

/// One TCP connection's queue and tasks (on the connection runtime).
pub(super) struct ConnectionTasks {
    pub(super) writer: mpsc::UnboundedSender<Outgoing>,
    pub(super) write_task: JoinHandle<()>,
    pub(super) read_task: JoinHandle<()>,
}

/// Runs one TCP connection on the connection runtime: a writer (which shuts the socket down
/// once its queue is dropped and drained) and a reader. The reader reports raw bytes with
/// [`RawData`] until the reply hands it the `Opener`; then it opens records itself and
/// reports them in batches ([`Io::Records`]). Reads wait on `gate`.
pub(super) fn run_connection(
    id: ConnectionId,
    stream: TcpStream,
    gate: watch::Receiver<bool>,
    me: Recipient<Io>,
    raw: Recipient<RawData>,
) -> io::Result<ConnectionTasks> {
    let _ = stream.set_nodelay(true);
    let stream = stream.into_std()?;
    let runtime = connection_runtime()?;
    let (tx, rx) = mpsc::unbounded_channel::<Outgoing>();
    let (read_half, write_half) = {
        let _guard = runtime.enter();
        TcpStream::from_std(stream)?.into_split()
    };
    let write_task = runtime.spawn(write_connection(id, write_half, rx));
    let read_task = runtime.spawn(read_connection(id, read_half, gate, me, raw));
    Ok(ConnectionTasks {
        writer: tx,
        write_task,
        read_task,
    })
}

async fn write_connection(
    id: ConnectionId,
    mut write: OwnedWriteHalf,
    mut queue: mpsc::UnboundedReceiver<Outgoing>,
) {
    let mut sealer: Option<Sealer> = None;
    let mut out: Vec<u8> = Vec::with_capacity(TCP_WRITE_BATCH + (64 << 10));
    while let Some(first) = queue.recv().await {
        let mut next = Some(first);
        while let Some(item) = next.take() {
            match item {
                Outgoing::Raw(bytes) => out.extend_from_slice(&bytes),
                Outgoing::Secure(s) => sealer = Some(*s),
                Outgoing::Record(record) => {
                    let Some(sealer) = sealer.as_mut() else {
                        tracing::warn!(id, "dilation: a record before the handshake; dropped");
                        continue;
                    };
                    if let Err(e) = sealer.seal(&record, &mut out) {
                        // The connection cannot go on: end it, so that it is reported lost.
                        tracing::warn!(id, error = %e, "dilation: cannot seal a record");
                        let _ = write.shutdown().await;
                        return;
                    }
                }
            }
            if out.len() < TCP_WRITE_BATCH {
                next = queue.try_recv().ok();
            }
        }
        if let Err(e) = write.write_all(&out).await {
            tracing::debug!(id, error = %e, "dilation: write failed");
            return;
        }
        out.clear();
    }
    let _ = write.shutdown().await;
}

async fn read_connection(
    id: ConnectionId,
    mut read: OwnedReadHalf,
    mut gate: watch::Receiver<bool>,
    me: Recipient<Io>,
    raw: Recipient<RawData>,
) {
    // Raw bytes until the machine secures the connection.
    let mut buf = vec![0; RAW_READ];
    let mut opener = loop {
        let n = match read.read(&mut buf).await {
            Ok(0) => 0,
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(id, error = %e, "dilation: read failed");
                0
            }
        };
        if n == 0 {
            let _ = me.send(Io::Lost { id }).await;
            return;
        }
        let data = buf[..n].to_vec();
        match raw.send(RawData { id, data }).await {
            Ok(Some(opener)) => break opener,
            Ok(None) => {}
            Err(_) => return,
        }
    };
    drop(buf);
    loop {
        let mut records = Vec::new();
        loop {
            match opener.next_record() {
                Ok(Some(record)) => records.push(record),
                Ok(None) => break,
                Err(error) => {
                    if !records.is_empty() {
                        let _ = me.send(Io::Records { id, records }).await;
                    }
                    let _ = me.send(Io::Failed { id, error }).await;
                    return;
                }
            }
        }
        if !records.is_empty() && me.send(Io::Records { id, records }).await.is_err() {
            return;
        }
        if gate.wait_for(|open| *open).await.is_err() {
            return;
        }
        let input = opener.input();
        input.reserve(TCP_READ);
        match read.read_buf(input).await {
            Ok(0) => {}
            Ok(_) => continue,
            Err(e) => tracing::debug!(id, error = %e, "dilation: read failed"),
        }
        let _ = me.send(Io::Lost { id }).await;
        return;
    }
}

/// Connections to a subchannel socket that may wait to be accepted (ours, plus any refused).
const CLIENT_BACKLOG: i32 = 16;

/// Binds a Unix socket at `path` that only our user may connect to: mode 0600 from its creation
/// (the socket is `fchmod`ed before `bind`, which Linux applies to the file it creates, so there
/// is no moment when the file has a wider mode; the mode is checked after `bind` all the same),
/// and [`accept_client`] checks each peer's uid.
pub(super) fn bind_private(path: &Path) -> io::Result<UnixListener> {
    use nix::sys::socket::{bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType};
    use nix::sys::stat::{fchmod, Mode};

    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    fchmod(fd.as_raw_fd(), Mode::S_IRUSR | Mode::S_IWUSR)?;
    bind(fd.as_raw_fd(), &nix::sys::socket::UnixAddr::new(path)?)?;
    let listening = (|| {
        let mode = std::fs::symlink_metadata(path)?.permissions().mode() & 0o7777;
        if mode != 0o600 {
            return Err(io::Error::other(format!(
                "{} was created with mode {mode:o}, not 600",
                path.display()
            )));
        }
        listen(&fd, Backlog::new(CLIENT_BACKLOG)?)?;
        let listener = std::os::unix::net::UnixListener::from(fd);
        listener.set_nonblocking(true)?;
        UnixListener::from_std(listener)
    })();
    if listening.is_err() {
        super::remove_socket(path);
    }
    listening
}

/// Accepts the one client of a subchannel socket: the first connection from our own uid. A
/// connection from another uid (possible only if someone widened the socket's mode) is logged
/// and closed, and the socket goes on waiting for ours.
pub(super) async fn accept_client(scid: SubchannelId, listener: UnixListener, me: Recipient<Io>) {
    let uid = wormhole_config::own_uid();
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let peer = stream.peer_cred().ok().map(|creds| creds.uid());
                if peer != Some(uid) {
                    tracing::warn!(
                        scid,
                        ?peer,
                        "refused a subchannel connection from another user; the socket waits \
                         for ours"
                    );
                    continue;
                }
                let _ = me.send(Io::Client { scid, stream }).await;
                return;
            }
            Err(e) => {
                tracing::debug!(scid, error = %e, "subchannel accept failed");
                return;
            }
        }
    }
}

/// Runs a subchannel's client socket on the connection runtime (its bytes are the bulk of a
/// dilated wormhole's IO; the actor's arbiter also serves the control and mailbox actors):
/// returns its write queue (dropping it half-closes the socket once everything is written) and
/// its reader task. Reads wait on `reads`.
pub(super) fn run_client(
    scid: SubchannelId,
    stream: UnixStream,
    gauge: Arc<Gauge>,
    mut reads: watch::Receiver<bool>,
    me: Recipient<Io>,
) -> io::Result<(mpsc::UnboundedSender<Bytes>, Vec<JoinHandle<()>>)> {
    let stream = stream.into_std()?;
    let runtime = connection_runtime()?;
    let (mut read, mut write) = {
        let _guard = runtime.enter();
        UnixStream::from_std(stream)?.into_split()
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
    runtime.spawn(async move {
        let mut healthy = true;
        while let Some(data) = rx.recv().await {
            if healthy {
                if let Err(e) = write.write_all(&data).await {
                    tracing::debug!(scid, error = %e, "subchannel client write failed");
                    healthy = false;
                }
            }
            gauge.sub(data.len());
        }
        let _ = write.shutdown().await;
    });
    let reader = runtime.spawn(async move {
        let mut buf = BytesMut::new();
        loop {
            if reads.wait_for(|open| *open).await.is_err() {
                return;
            }
            buf.reserve(CLIENT_READ);
            let report = match read.read_buf(&mut buf).await {
                Ok(0) | Err(_) => None,
                Ok(_) => Some(Io::ClientData {
                    scid,
                    data: buf.split().freeze(),
                }),
            };
            let Some(report) = report else {
                let _ = me.send(Io::ClientEof { scid }).await;
                return;
            };
            if me.send(report).await.is_err() {
                return;
            }
        }
    });
    Ok((tx, vec![reader]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The TCP read gate shuts above the high water mark and opens again only at the low one.
    #[test]
    fn gauge_has_hysteresis() {
        let gauge = Gauge::new(100, 40);
        let gate = gauge.open();
        gauge.add(100);
        assert!(*gate.borrow(), "at the mark, still open");
        gauge.add(1);
        assert!(!*gate.borrow(), "above it, shut");
        gauge.sub(50);
        assert!(!*gate.borrow(), "51 waiting: still shut");
        gauge.sub(11);
        assert!(*gate.borrow(), "40 waiting: open");
        gauge.sub(1000);
        assert_eq!(gauge.queued.load(Ordering::Acquire), 0, "never below zero");
        assert!(*gate.borrow());
    }
}
