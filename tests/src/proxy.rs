//! [`TcpProxy`]: a loopback TCP proxy the test controls, to put between two peers (e.g. in front
//! of the transit relay) and cut every connection through it at a chosen moment while it keeps
//! accepting new ones, so a redial succeeds. Test infrastructure, not a peer: it forwards bytes
//! unchanged.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

#[derive(Debug, Default)]
struct State {
    /// Both ends of every open proxied connection (client side, upstream side), and the first
    /// line the client sent (e.g. `please relay … for side …`), once it is complete.
    open: Vec<Pair>,
    /// Connections accepted so far.
    accepted: usize,
    stopping: bool,
}

/// A proxy on a free port of 127.0.0.1 that forwards every connection to `upstream`. Dropping it
/// stops accepting and closes every connection.
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    acceptor: Option<JoinHandle<()>>,
}

impl TcpProxy {
    /// Starts a proxy to `upstream` (e.g. `127.0.0.1:4001`).
    pub fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("the proxy's address");
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        let acceptor = std::thread::spawn(move || {
            for client in listener.incoming() {
                let mut state = shared.lock().unwrap_or_else(PoisonError::into_inner);
                if state.stopping {
                    break;
                }
                let Ok(client) = client else { continue };
                state.accepted += 1;
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                if let Ok(pair) = pump_pair(&client, &server) {
                    state.open.push(pair);
                }
            }
        });
        Self {
            addr,
            state,
            acceptor: Some(acceptor),
        }
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `tcp:127.0.0.1:<port>`, as a transit helper or hint.
    pub fn hint(&self) -> String {
        format!("tcp:127.0.0.1:{}", self.port())
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.lock().accepted
    }

    /// Closes every connection open through the proxy (both sides see a clean EOF); the proxy
    /// keeps accepting. Returns how many there were.
    pub fn cut(&self) -> usize {
        let open = std::mem::take(&mut self.lock().open);
        for (client, server, _) in &open {
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
        }
        open.len()
    }

    /// Writes `bytes` to the client of every open connection whose first line ends with
    /// `suffix`, as if the upstream had sent them (possibly between two chunks of a frame).
    /// Returns to how many.
    pub fn inject(&self, suffix: &str, bytes: &[u8]) -> usize {
        let state = self.lock();
        let mut count = 0;
        for (client, _, first) in &state.open {
            let mut client: &TcpStream = client;
            let matches = first
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_deref()
                .is_some_and(|line| line.trim_end().ends_with(suffix));
            if matches && client.write_all(bytes).is_ok() {
                count += 1;
            }
        }
        count
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.lock().stopping = true;
        // Wakes the acceptor, which sees `stopping` and ends.
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        self.cut();
    }
}

/// Starts two threads copying `client` → `server` and back; each ends at EOF or an error of
/// either side, and then closes both sockets (the relay has no half-close). Returns clones of
/// both, to cut them.
type Pair = (TcpStream, TcpStream, Arc<Mutex<Option<String>>>);

fn pump_pair(client: &TcpStream, server: &TcpStream) -> io::Result<Pair> {
    let first = Arc::new(Mutex::new(None));
    for (from, to, label) in [(client, server, Some(&first)), (server, client, None)] {
        let (mut from, mut to) = (from.try_clone()?, to.try_clone()?);
        let label = label.map(Arc::clone);
        std::thread::spawn(move || {
            let _ = copy(&mut from, &mut to, label.as_deref());
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
        });
    }
    Ok((client.try_clone()?, server.try_clone()?, first))
}

/// Copies `from` to `to` until EOF or an error; the first line (up to 256 bytes) goes to
/// `label` once complete.
fn copy(
    from: &mut TcpStream,
    to: &mut TcpStream,
    label: Option<&Mutex<Option<String>>>,
) -> io::Result<()> {
    let mut buf = vec![0; 64 << 10];
    let mut line = Vec::new();
    let mut labelled = label.is_none();
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        if !labelled {
            line.extend_from_slice(&buf[..n]);
            if let Some(end) = line.iter().position(|b| *b == b'\n') {
                line.truncate(end + 1);
                labelled = true;
            } else if line.len() > 256 {
                labelled = true;
            }
            if labelled {
                if let Some(label) = label {
                    *label.lock().unwrap_or_else(PoisonError::into_inner) =
                        Some(String::from_utf8_lossy(&line).into_owned());
                }
            }
        }
        to.write_all(&buf[..n])?;
    }
}
