//! Dilation between our daemon and the reference library's peer (`tests/python/dilation_peer.py`):
//! [`DilationSetup`] starts the reference mailbox server and transit relay, optionally a
//! [`TcpProxy`] in front of the relay (so a test can cut or corrupt every L2 connection at a
//! chosen moment while the proxy keeps accepting), and our daemon with that relay (or proxy) as
//! its transit helper; [`DilationSetup::peer`] runs the Python peer with the same servers.
//! [`dilate_and_listen`] is the daemon's side of a wormhole the peer joins;
//! [`open_subchannel`], [`accept_subchannel`], [`assert_peer_sent`], [`assert_peer_received`]
//! and [`close_dilated`] are the steps every test of a subchannel takes.

use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::{python_script, sha256, venv_python, Control, Daemon, MailboxServer, Process};
use crate::{TcpProxy, TransitRelay, TIMEOUT};

/// The servers and the daemon of one Dilation test.
#[derive(Debug)]
pub struct DilationSetup {
    /// The reference mailbox server.
    pub server: MailboxServer,
    /// The reference transit relay.
    pub relay: TransitRelay,
    /// The proxy in front of the relay, if any (it is then both sides' transit helper).
    proxy: Option<TcpProxy>,
    /// Our daemon (mailbox `server`, transit helper [`DilationSetup::transit_helper`]).
    pub daemon: Daemon,
}

impl DilationSetup {
    /// The servers, and a daemon whose transit helper is the relay, with `extra_env` (e.g.
    /// `&[("WORMHOLED_LOG", "debug")]`).
    pub fn start(extra_env: &[(&str, &str)]) -> Self {
        Self::with_proxy(false, extra_env)
    }

    /// As [`DilationSetup::start`], with a [`TcpProxy`] in front of the relay: the daemon's and
    /// the peer's transit helper is the proxy. With `--no-listen` on both sides, every L2
    /// connection goes through it.
    pub fn start_proxied(extra_env: &[(&str, &str)]) -> Self {
        Self::with_proxy(true, extra_env)
    }

    fn with_proxy(proxied: bool, extra_env: &[(&str, &str)]) -> Self {
        let server = MailboxServer::start();
        let relay = TransitRelay::start();
        let proxy = proxied.then(|| TcpProxy::start(([127, 0, 0, 1], relay.port()).into()));
        let helper = proxy.as_ref().map_or_else(|| relay.hint(), TcpProxy::hint);
        let mut env = vec![("WORMHOLE_TRANSIT_HELPER", helper.as_str())];
        env.extend_from_slice(extra_env);
        let daemon = Daemon::start_with_env(&server.url(), &env);
        Self {
            server,
            relay,
            proxy,
            daemon,
        }
    }

    /// The transit helper of both sides: the proxy's hint, else the relay's.
    pub fn transit_helper(&self) -> String {
        self.proxy
            .as_ref()
            .map_or_else(|| self.relay.hint(), TcpProxy::hint)
    }

    /// The proxy in front of the relay. Panics unless started by
    /// [`DilationSetup::start_proxied`].
    pub fn proxy(&self) -> &TcpProxy {
        self.proxy
            .as_ref()
            .expect("a setup of start_proxied has a proxy")
    }

    /// `dilation_peer.py` with `--relay-url` and `--transit-helper` of this setup, then `args`;
    /// stdin piped (the peer closes its wormhole and exits once it closes).
    pub fn peer(&self, args: &[&str]) -> Process {
        Process::spawn(
            Command::new(venv_python())
                .arg(python_script("dilation_peer.py"))
                .args(["--relay-url", &self.server.url(), "--transit-helper"])
                .arg(self.transit_helper())
                .args(args)
                .stdin(Stdio::piped()),
        )
    }
}

/// Asks the daemon of `control` for a dilated wormhole (relay-only with `no_listen`), waits for
/// its code and `listen`s for `subprotocol`. Returns the wormhole's number and the code.
pub fn dilate_and_listen(
    control: &mut Control,
    no_listen: bool,
    subprotocol: &str,
) -> (Value, String) {
    let mut dilate = json!({"op": "dilate"});
    if no_listen {
        dilate["no_listen"] = json!(true);
    }
    let wormhole = control.ok(dilate)["wormhole"].clone();
    let code = control.event("code")["code"]
        .as_str()
        .expect("a code")
        .to_owned();
    control.ok(json!({"op": "listen", "wormhole": wormhole, "subprotocol": subprotocol}));
    (wormhole, code)
}

/// Waits for the `subchannel-opened` event on `control`, checks its subprotocol, and connects
/// to its socket (reads and writes bounded by [`TIMEOUT`]).
pub fn accept_subchannel(control: &mut Control, subprotocol: &str) -> UnixStream {
    let opened = control.event("subchannel-opened");
    assert_eq!(opened["subprotocol"], subprotocol, "{opened}");
    connect_subchannel(&opened["socket"])
}

/// Opens a subchannel of `subprotocol` on the dilated `wormhole` and connects to its socket
/// (reads and writes bounded by [`TIMEOUT`]).
pub fn open_subchannel(control: &mut Control, wormhole: &Value, subprotocol: &str) -> UnixStream {
    let opened = control.ok(json!({
        "op": "open-subchannel", "wormhole": wormhole, "subprotocol": subprotocol
    }));
    connect_subchannel(&opened["socket"])
}

/// Connects to the subchannel socket named by `path` (from `open-subchannel` or
/// `subchannel-opened`), with reads and writes bounded by [`TIMEOUT`].
pub fn connect_subchannel(path: &Value) -> UnixStream {
    let stream = UnixStream::connect(path.as_str().expect("a socket path"))
        .expect("connect to the subchannel socket");
    stream.set_read_timeout(Some(TIMEOUT)).expect("a timeout");
    stream.set_write_timeout(Some(TIMEOUT)).expect("a timeout");
    stream
}

/// Waits for the peer's `sent N HASH` line and asserts that `received` is exactly that: N
/// bytes with that SHA-256.
pub fn assert_peer_sent(peer: &mut Process, received: &[u8]) {
    let (sent, hash) = peer_sent(peer);
    assert_eq!(
        received.len(),
        sent,
        "bytes received of those the peer sent"
    );
    assert_eq!(sha256(received), hash, "SHA-256 of the received bytes");
}

/// Waits for the peer's `received N HASH` line and asserts that it read exactly `sent`.
pub fn assert_peer_received(peer: &mut Process, sent: &[u8]) {
    let (count, hash) = peer_received(peer);
    assert_eq!(count, sent.len(), "bytes the peer received of those sent");
    assert_eq!(hash, sha256(sent), "SHA-256 of what the peer received");
}

/// `close`s the dilated `wormhole` and waits for its `closed` event, which it returns.
pub fn close_dilated(control: &mut Control, wormhole: &Value) -> Value {
    control.ok(json!({"op": "close", "wormhole": wormhole}));
    control.event("closed")
}

/// Parses the peer's `sent N HASH` (`word` = `"sent "`) or `received N HASH` line.
pub fn count_and_hash(line: &str, word: &str) -> Option<(usize, String)> {
    let mut parts = line.strip_prefix(word)?.split_whitespace();
    let count = parts.next()?.parse().ok()?;
    Some((count, parts.next()?.to_owned()))
}

/// Waits for the peer's `sent N HASH` line (within [`TIMEOUT`]) and returns (N, HASH).
pub fn peer_sent(peer: &mut Process) -> (usize, String) {
    peer.wait_for_stdout("`sent N HASH`", TIMEOUT, |l| count_and_hash(l, "sent "))
}

/// Waits for the peer's `received N HASH` line (within [`TIMEOUT`]) and returns (N, HASH).
pub fn peer_received(peer: &mut Process) -> (usize, String) {
    peer.wait_for_stdout("`received N HASH`", TIMEOUT, |l| {
        count_and_hash(l, "received ")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_peers_count_and_hash_lines() {
        assert_eq!(
            count_and_hash("sent 42 abcd", "sent "),
            Some((42, "abcd".to_owned()))
        );
        assert_eq!(count_and_hash("received 42 abcd", "sent "), None);
        assert_eq!(count_and_hash("sent x abcd", "sent "), None);
        assert_eq!(count_and_hash("sent 42", "sent "), None);
    }
}
