//! Transit in the daemon: the listening socket, dialling, the connection race, and the
//! established, encrypted record stream used by file transfer v1.
//!
//! The protocol decisions (hint parsing, handshakes, race policy, record framing) belong to the
//! pure machines of `wormhole_protocol::transit`; this module does the socket IO around them.
//! The established connection is a blocking [`std::net::TcpStream`] so that the bulk data path
//! runs on worker threads, off the arbiter that serves the mailbox and control actors.
//!
//! - [`prepare`] binds the listener (tokio, on the current arbiter) and builds our hints;
//!   [`listen_direct`], [`dial`] and [`relays`] serve Dilation as well.
//! - [`PendingTransit::connect`] runs the race: each candidate is a future that dials (or was
//!   accepted), then drives its [`Handshake`] reading exactly the bytes it wants; the
//!   [`Race`] says when to dial what and who wins. Futures need not be `Send`.
//! - [`TransitConnection::split`] gives a [`RecordWriter`] and a [`RecordReader`]
//!   (`records.rs`), blocking, for worker threads.
//!
//! Mirrors `Common` / `TransitSender` / `TransitReceiver` of `src/wormhole/transit.py`.

mod addrs;
mod records;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wormhole_protocol::transit::handshake::Handshake;
use wormhole_protocol::transit::hints::{DirectHint, HintError, RelayHint, TransitHints};
use wormhole_protocol::transit::race::{CandidateId, Outcome, Race, Verdict, NEGOTIATION_TIMEOUT};
use wormhole_protocol::transit::Role;

pub(crate) use records::{RecordReader, RecordWriter};

use crate::part_files::PartJournal;

/// Most candidate connections in flight at once (dialled and accepted); more inbound
/// connections are closed at once.
const MAX_CANDIDATES: usize = 64;

/// How Transit may connect.
#[derive(Clone, Debug)]
pub(crate) struct TransitConfig {
    /// Relay helpers (from `--transit-helper` or config), parsed by [`relays`].
    pub(crate) relays: Vec<RelayHint>,
    /// Listen for direct connections (`--no-listen` clears it).
    pub(crate) listen: bool,
    /// Local addresses advertised as direct hints; empty means every non-loopback address.
    pub(crate) hint_addresses: Vec<IpAddr>,
    /// A transfer fails once no byte moved either way for this long.
    pub(crate) idle_timeout: Duration,
    /// Where a receiver records its temporary files.
    pub(crate) parts: PartJournal,
}

/// Why Transit failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TransitError {
    /// No connection could be established in time.
    #[error("could not establish a transit connection: {0}")]
    NoConnection(String),
    /// The peer's transit message was malformed.
    #[error("the peer's transit hints are malformed: {0}")]
    BadHints(String),
    /// Socket IO failed.
    #[error("transit IO error: {0}")]
    Io(#[from] io::Error),
}

/// Our listener and hints, before the peer's hints are known.
pub(crate) struct PendingTransit {
    role: Role,
    transit_key: [u8; 32],
    /// Our relay side: 8 random bytes as 16 hex characters.
    side: String,
    listener: Option<TcpListener>,
    our_relays: Vec<RelayHint>,
}

/// Binds the listener (unless `listen` is off) and returns our `transit` message body
/// (`{"abilities-v1": [...], "hints-v1": [...]}`), to send to the peer through the mailbox.
pub(crate) async fn prepare(
    config: TransitConfig,
    role: Role,
    transit_key: [u8; 32],
) -> Result<(PendingTransit, serde_json::Value), TransitError> {
    let our_relays = config.relays;
    let (listener, direct) = if config.listen {
        let (listener, direct) = listen_direct(&config.hint_addresses).await?;
        (Some(listener), direct)
    } else {
        (None, Vec::new())
    };
    let hints = TransitHints {
        direct,
        relays: our_relays.clone(),
    };
    let side = hex::encode(rand::random::<[u8; 8]>());
    tracing::debug!(?role, ?hints, "transit prepared");
    let pending = PendingTransit {
        role,
        transit_key,
        side,
        listener,
        our_relays,
    };
    Ok((pending, hints.to_message()))
}

/// The relays of a relay argument (`--transit-helper`, `transit.relay`): none for the empty
/// string, else the one relay [`RelayHint::from_argv`] parses. The one parser of relays for
/// Transit and Dilation alike; a request's bad relay is refused when it arrives.
pub(crate) fn relays(argv: &str) -> Result<Vec<RelayHint>, HintError> {
    if argv.is_empty() {
        return Ok(Vec::new());
    }
    RelayHint::from_argv(argv).map(|relay| vec![relay])
}

/// Binds a listener for direct connections, for Transit and Dilation alike, and returns it with
/// the direct hints to advertise: one per address of `hint_addresses` (every local address when
/// it is empty), each with the listener's port.
pub(crate) async fn listen_direct(
    hint_addresses: &[IpAddr],
) -> io::Result<(TcpListener, Vec<DirectHint>)> {
    let addresses = advertised(hint_addresses);
    let listener = bind_listener(addresses.iter().any(IpAddr::is_ipv6)).await?;
    let port = listener.local_addr()?.port();
    Ok((listener, direct_hints(&addresses, port)))
}

/// Dials a hint (a peer's direct hint, or a relay), for Transit and Dilation alike.
pub(crate) async fn dial(hint: &DirectHint) -> io::Result<TcpStream> {
    TcpStream::connect((hint.hostname.as_str(), hint.port)).await
}

/// The addresses advertised as direct hints: the configured ones, else every local address.
fn advertised(hint_addresses: &[IpAddr]) -> Vec<IpAddr> {
    if hint_addresses.is_empty() {
        addrs::local_addresses()
    } else {
        hint_addresses.to_vec()
    }
}

/// One direct hint per address, all with our listener's `port`.
fn direct_hints(addresses: &[IpAddr], port: u16) -> Vec<DirectHint> {
    addresses
        .iter()
        .map(|addr| DirectHint::new(addr.to_string(), port))
        .collect()
}

/// A listener on a random port of every address: `[::]` (dual-stack) when an IPv6 address is
/// advertised, else `0.0.0.0`.
async fn bind_listener(ipv6: bool) -> io::Result<TcpListener> {
    if ipv6 {
        if let Ok(listener) = TcpListener::bind("[::]:0").await {
            return Ok(listener);
        }
    }
    TcpListener::bind("0.0.0.0:0").await
}

/// Where a candidate connection came from.
enum Source {
    /// Accepted by our listener.
    Inbound(TcpStream, SocketAddr),
    /// To dial: a peer's direct hint, or a relay.
    Dial { hint: DirectHint, relay: bool },
}

/// A candidate whose handshake reached the decision (sender) or `go` (receiver).
struct Finished {
    stream: TcpStream,
    handshake: Handshake,
    description: String,
}

impl PendingTransit {
    /// Races every usable connection to the peer (direct hints at once, relays 2 s later), runs
    /// the handshakes, and returns the winner. The receiver side waits for the sender's `go`.
    pub(crate) async fn connect(
        self,
        peer_transit: &serde_json::Value,
    ) -> Result<TransitConnection, TransitError> {
        let peer = TransitHints::from_message(peer_transit)
            .map_err(|e| TransitError::BadHints(e.to_string()))?;
        let mut race = Race::new(
            tokio::time::Instant::now().into_std(),
            self.role,
            &peer,
            &self.our_relays,
            self.listener.is_some(),
        );
        let mut candidates = FuturesUnordered::new();
        loop {
            let now = tokio::time::Instant::now().into_std();
            race.handle_timeout(now);
            while let Some(dial) = race.poll_dial(now) {
                let source = Source::Dial {
                    hint: dial.hint,
                    relay: dial.relay,
                };
                candidates.push(self.candidate(dial.id, source));
            }
            if let Outcome::GaveUp(reason) = race.outcome() {
                return Err(TransitError::NoConnection(reason));
            }
            let wake = race
                .poll_timeout()
                .map(tokio::time::Instant::from_std)
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(1));
            tokio::select! {
                accepted = accept(self.listener.as_ref()) => match accepted {
                    Ok((stream, addr)) => {
                        if candidates.len() >= MAX_CANDIDATES {
                            tracing::debug!(%addr, "transit: too many candidates, closing inbound");
                            continue;
                        }
                        if let Some(id) = race.handle_inbound() {
                            candidates.push(self.candidate(id, Source::Inbound(stream, addr)));
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "transit: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some((id, result)) = candidates.next(), if !candidates.is_empty() => {
                    match result {
                        Ok(done) => {
                            if let Some(conn) = self.decide(&mut race, id, done).await? {
                                return Ok(conn);
                            }
                        }
                        Err(reason) => {
                            tracing::debug!(%reason, "transit candidate failed");
                            race.handle_failed(id, reason);
                        }
                    }
                }
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// A candidate finished its handshake: go, nevermind, or (receiver) the winner.
    async fn decide(
        &self,
        race: &mut Race,
        id: CandidateId,
        mut done: Finished,
    ) -> Result<Option<TransitConnection>, TransitError> {
        let won = match self.role {
            Role::Receiver => race.handle_established(id),
            Role::Sender => match race.handle_ready(id) {
                Verdict::Go => {
                    if let Err(e) = done.handshake.choose() {
                        race.handle_failed(id, e.to_string());
                        return Ok(None);
                    }
                    if let Err(e) = flush(&mut done.stream, &mut done.handshake).await {
                        // The winner broke while we said `go`: Python would fail the transfer too.
                        return Err(TransitError::NoConnection(format!(
                            "{}: {e}",
                            done.description
                        )));
                    }
                    race.handle_established(id)
                }
                Verdict::Nevermind | Verdict::WaitForGo => {
                    if done.handshake.reject().is_ok() {
                        let _ = tokio::time::timeout(
                            Duration::from_secs(1),
                            flush(&mut done.stream, &mut done.handshake),
                        )
                        .await;
                    }
                    false
                }
            },
        };
        if !won {
            return Ok(None);
        }
        tracing::debug!(description = %done.description, "transit connected");
        let leftover = done.handshake.into_leftover();
        let stream = done.stream.into_std()?;
        stream.set_nonblocking(false)?;
        Ok(Some(TransitConnection {
            stream,
            leftover,
            role: self.role,
            transit_key: self.transit_key,
            description: done.description,
        }))
    }

    /// One candidate: connect (unless inbound), then drive the handshake to the decision or
    /// `go`, within [`NEGOTIATION_TIMEOUT`].
    async fn candidate(
        &self,
        id: CandidateId,
        source: Source,
    ) -> (CandidateId, Result<Finished, String>) {
        let role = self.role;
        let key = self.transit_key;
        let side = self.side.clone();
        let work = async move {
            let (stream, handshake, description) = match source {
                Source::Inbound(stream, addr) => (
                    stream,
                    Handshake::direct(role, &key),
                    format!("<-tcp:{}:{}", addr.ip().to_canonical(), addr.port()),
                ),
                Source::Dial { hint, relay } => {
                    let description = if relay {
                        format!("->relay:{hint}")
                    } else {
                        format!("->{hint}")
                    };
                    let stream = dial(&hint)
                        .await
                        .map_err(|e| format!("{description}: {e}"))?;
                    let handshake = if relay {
                        Handshake::relayed(role, &key, &side)
                    } else {
                        Handshake::direct(role, &key)
                    };
                    (stream, handshake, description)
                }
            };
            drive(stream, handshake, description).await
        };
        let result = match tokio::time::timeout(NEGOTIATION_TIMEOUT, work).await {
            Ok(result) => result,
            Err(_) => Err("handshake timed out".to_owned()),
        };
        (id, result)
    }
}

/// Accepts on the listener, or never (no listener).
async fn accept(listener: Option<&TcpListener>) -> io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// Writes what the handshake machine queued.
async fn flush(stream: &mut TcpStream, handshake: &mut Handshake) -> io::Result<()> {
    if let Some(bytes) = handshake.poll_transmit() {
        stream.write_all(&bytes).await?;
    }
    Ok(())
}

/// Drives one handshake to the sender's decision or the receiver's `go`, reading only the
/// bytes it expects (so nothing of the record stream is read here).
async fn drive(
    mut stream: TcpStream,
    mut handshake: Handshake,
    description: String,
) -> Result<Finished, String> {
    let fail = |e: &dyn std::fmt::Display| format!("{description}: {e}");
    stream.set_nodelay(true).map_err(|e| fail(&e))?;
    let mut buf = [0u8; 256];
    loop {
        flush(&mut stream, &mut handshake)
            .await
            .map_err(|e| fail(&e))?;
        if handshake.is_ready() || handshake.is_established() {
            return Ok(Finished {
                stream,
                handshake,
                description,
            });
        }
        let want = handshake.bytes_wanted().clamp(1, buf.len());
        let n = stream.read(&mut buf[..want]).await.map_err(|e| fail(&e))?;
        if n == 0 {
            let err = handshake.handle_eof().err();
            return Err(fail(
                &err.map_or_else(|| "connection closed".to_owned(), |e| e.to_string()),
            ));
        }
        handshake.handle_data(&buf[..n]).map_err(|e| fail(&e))?;
    }
}

/// An established Transit connection: blocking, for worker threads.
pub(crate) struct TransitConnection {
    stream: std::net::TcpStream,
    /// Bytes read along with the handshake (normally none).
    leftover: Vec<u8>,
    role: Role,
    transit_key: [u8; 32],
    description: String,
}

impl std::fmt::Debug for TransitConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransitConnection")
            .field("role", &self.role)
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

impl TransitConnection {
    /// The TCP socket (for its timeouts, and to shut it down from another thread).
    pub(crate) fn socket(&self) -> &std::net::TcpStream {
        &self.stream
    }

    /// How the winner was reached, in the reference's words: `->tcp:HOST:PORT` (we dialled a
    /// direct hint), `->relay:tcp:HOST:PORT` (through a relay), `<-tcp:ADDR` (the peer dialled us).
    /// For the file-transfer layer's messages (the reference prints `Receiving (->tcp:...)`).
    #[allow(dead_code)] // Not yet shown by the file-transfer layer; the tests use it.
    pub(crate) fn description(&self) -> &str {
        &self.description
    }

    /// Splits into the half that sends records and the half that receives them.
    pub(crate) fn split(self) -> io::Result<(RecordWriter, RecordReader)> {
        let read_half = self.stream.try_clone()?;
        Ok((
            RecordWriter::new(self.stream, self.role, &self.transit_key),
            RecordReader::new(read_half, self.leftover, self.role, &self.transit_key),
        ))
    }
}

#[cfg(test)]
mod tests;
