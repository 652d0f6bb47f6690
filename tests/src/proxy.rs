//! [`TcpProxy`]: a loopback TCP proxy the test controls, to put between two peers (e.g. in front
//! of the transit relay) and cut every connection through it at a chosen moment while it keeps
//! accepting new ones, so a redial succeeds. Test infrastructure, not a peer: it forwards bytes
//! unchanged.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

#[derive(Debug, Default)]
struct State {
    /// Both ends of every open proxied connection (client side, upstream side).
    open: Vec<(TcpStream, TcpStream)>,
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
        for (client, server) in &open {
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
        }
        open.len()
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
fn pump_pair(client: &TcpStream, server: &TcpStream) -> io::Result<(TcpStream, TcpStream)> {
    for (from, to) in [(client, server), (server, client)] {
        let (mut from, mut to) = (from.try_clone()?, to.try_clone()?);
        std::thread::spawn(move || {
            let _ = io::copy(&mut from, &mut to);
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
        });
    }
    Ok((client.try_clone()?, server.try_clone()?))
}
