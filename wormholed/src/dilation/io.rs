//! The socket tasks of a dilated wormhole: the L2 listener and dialers, one reader and one
//! writer per TCP connection, and one Unix socket per subchannel. They only move bytes and
//! report to the [`DilationHost`](super::DilationHost) through [`Io`] messages; `send().await`
//! on each report keeps a reader from running ahead of the actor.

use std::cell::Cell;
use std::io;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use actix::Recipient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use wormhole_protocol::dilation::{ConnectionId, Generation, SubchannelId};
use wormhole_protocol::transit::hints::DirectHint;

use super::Io;

/// Bytes read from a TCP connection at once.
const TCP_READ: usize = 64 << 10;

/// Bytes read from a subchannel client at once.
const CLIENT_READ: usize = 16 << 10;

/// How long one dial may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// How many times a relay is dialled within one generation.
const RELAY_ATTEMPTS: u32 = 6;

/// Bytes waiting to be written to subchannel clients, with a gate that is shut above the high
/// water mark and opened again below the low one (the TCP readers wait on it).
pub(super) struct Gauge {
    queued: Cell<usize>,
    high: usize,
    low: usize,
    gate: watch::Sender<bool>,
}

impl Gauge {
    pub(super) fn new(high: usize, low: usize) -> Self {
        Self {
            queued: Cell::new(0),
            high,
            low,
            gate: watch::channel(true).0,
        }
    }

    /// A view of the gate, for a reader.
    pub(super) fn open(&self) -> watch::Receiver<bool> {
        self.gate.subscribe()
    }

    pub(super) fn add(&self, n: usize) {
        let queued = self.queued.get() + n;
        self.queued.set(queued);
        if queued > self.high {
            self.gate
                .send_if_modified(|open| std::mem::replace(open, false));
        }
    }

    pub(super) fn sub(&self, n: usize) {
        let queued = self.queued.get().saturating_sub(n);
        self.queued.set(queued);
        if queued <= self.low {
            self.gate
                .send_if_modified(|open| !std::mem::replace(open, true));
        }
    }
}

/// Binds our listener for a generation, reports our direct hints, then accepts.
pub(super) async fn listen(generation: Generation, addresses: Vec<IpAddr>, me: Recipient<Io>) {
    let listener = match crate::transit::bind_listener(addresses.iter().any(IpAddr::is_ipv6))
        .await
        .and_then(|l| l.local_addr().map(|a| (l, a.port())))
    {
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
    let (listener, port) = listener;
    let direct = addresses
        .iter()
        .map(|addr| DirectHint::new(addr.to_string(), port))
        .collect();
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
        let connect = TcpStream::connect((hint.hostname.as_str(), hint.port));
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

/// Runs one TCP connection: returns its write queue, its writer task (which shuts the socket
/// down once the queue is dropped and drained) and its reader task. Reads wait on `gate`.
pub(super) fn run_connection(
    id: ConnectionId,
    stream: TcpStream,
    mut gate: watch::Receiver<bool>,
    me: Recipient<Io>,
) -> (
    mpsc::UnboundedSender<Vec<u8>>,
    JoinHandle<()>,
    JoinHandle<()>,
) {
    let _ = stream.set_nodelay(true);
    let (mut read, mut write) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let writer = actix::spawn(async move {
        while let Some(data) = rx.recv().await {
            if let Err(e) = write.write_all(&data).await {
                tracing::debug!(id, error = %e, "dilation: write failed");
                return;
            }
        }
        let _ = write.shutdown().await;
    });
    let reader = actix::spawn(async move {
        let mut buf = vec![0; TCP_READ];
        loop {
            if gate.wait_for(|open| *open).await.is_err() {
                return;
            }
            let report = match read.read(&mut buf).await {
                Ok(0) | Err(_) => None,
                Ok(n) => Some(Io::Data {
                    id,
                    data: buf[..n].to_vec(),
                }),
            };
            let Some(report) = report else {
                let _ = me.send(Io::Lost { id }).await;
                return;
            };
            if me.send(report).await.is_err() {
                return;
            }
        }
    });
    (tx, writer, reader)
}

/// Binds a Unix socket only our user may connect to.
pub(super) fn bind_private(path: &Path) -> io::Result<UnixListener> {
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Accepts the one client of a subchannel socket.
pub(super) async fn accept_client(scid: SubchannelId, listener: UnixListener, me: Recipient<Io>) {
    match listener.accept().await {
        Ok((stream, _)) => {
            let _ = me.send(Io::Client { scid, stream }).await;
        }
        Err(e) => tracing::debug!(scid, error = %e, "subchannel accept failed"),
    }
}

/// Runs a subchannel's client socket: returns its write queue (dropping it half-closes the
/// socket once everything is written) and its reader task. Reads wait on `reads`.
pub(super) fn run_client(
    scid: SubchannelId,
    stream: UnixStream,
    gauge: std::rc::Rc<Gauge>,
    mut reads: watch::Receiver<bool>,
    me: Recipient<Io>,
) -> (mpsc::UnboundedSender<Vec<u8>>, Vec<JoinHandle<()>>) {
    let (mut read, mut write) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    actix::spawn(async move {
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
    let reader = actix::spawn(async move {
        let mut buf = vec![0; CLIENT_READ];
        loop {
            if reads.wait_for(|open| *open).await.is_err() {
                return;
            }
            let report = match read.read(&mut buf).await {
                Ok(0) | Err(_) => None,
                Ok(n) => Some(Io::ClientData {
                    scid,
                    data: buf[..n].to_vec(),
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
    (tx, vec![reader])
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
        assert_eq!(gauge.queued.get(), 0, "never below zero");
        assert!(*gate.borrow());
    }
}
