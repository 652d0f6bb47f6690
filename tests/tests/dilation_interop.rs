//! Dilation between our daemon (driven over its control socket: `dilate`, `listen`,
//! `open-subchannel`, `close`) and the Python reference library (magic-wormhole 0.24.0, through
//! `tests/python/dilation_peer.py`), with the reference mailbox server and transit relay on
//! 127.0.0.1: a subchannel each way carries 10 MiB that must arrive exactly (SHA-256), with
//! Python as Leader and as Follower, over direct TCP and relay-only; a peer that cannot dilate fails clearly; and
//! `wormholectl dilate open/pipe/list/close` drive the same from the command line.

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::Instant;

use serde_json::json;
use wormhole_tests::dilation::{
    accept_subchannel, assert_peer_received, assert_peer_sent, close_dilated, open_subchannel,
};
use wormhole_tests::{
    assert_success, dilate_and_listen, noise, run, Control, DilationSetup, Process, TIMEOUT,
};

/// The Python peer's Dilation role, forced with `dilation_peer.py --role` (its `please` side
/// is set above or below any random side, ours included).
#[derive(Clone, Copy)]
enum PythonRole {
    Leader,
    Follower,
}

impl PythonRole {
    fn arg(self) -> &'static str {
        match self {
            Self::Leader => "leader",
            Self::Follower => "follower",
        }
    }
}

/// Waits for the peer's `role …` line and checks it took the role it was given.
fn assert_role(peer: &mut Process, role: PythonRole) {
    let took = peer.wait_for_stderr("`role …`", TIMEOUT, |line| {
        line.strip_prefix("role ").map(str::to_owned)
    });
    assert_eq!(took, role.arg(), "the Python peer's Dilation role");
}

/// Python opens a subchannel and sends 10 MiB; they arrive exactly through our subchannel
/// socket, which ends (EOF) when Python closes the subchannel.
fn python_to_us(no_listen: bool, role: PythonRole) {
    const SIZE: usize = 10 << 20;
    let setup = DilationSetup::start(&[]);
    let mut control = Control::connect(&setup.daemon);
    let (wormhole, code) = dilate_and_listen(&mut control, no_listen, "test");

    let size = SIZE.to_string();
    let mut args = vec!["--code", &code, "--send", &size, "--role", role.arg()];
    if no_listen {
        args.push("--no-listen");
    }
    let mut peer = setup.peer(&args);
    control.event("dilated");
    assert_role(&mut peer, role);
    let mut stream = accept_subchannel(&mut control, "test");
    let mut received = Vec::new();
    stream
        .read_to_end(&mut received)
        .expect("read the subchannel");
    assert_peer_sent(&mut peer, &received);
    control.event("subchannel-closed");

    let closed = close_dilated(&mut control, &wormhole);
    assert_eq!(closed["mood"], "happy", "{closed}");
    peer.wait_with_timeout(TIMEOUT);
}

#[test]
fn python_leads_opens_a_subchannel_and_its_bytes_arrive_exactly() {
    python_to_us(false, PythonRole::Leader);
}

#[test]
fn python_follows_opens_a_subchannel_and_its_bytes_arrive_exactly() {
    python_to_us(false, PythonRole::Follower);
}

#[test]
fn relay_only_dilation_carries_a_subchannel() {
    python_to_us(true, PythonRole::Follower);
}

/// We open a subchannel and stream 10 MiB through its socket; Python reads exactly them, and
/// our half-close ends its subchannel.
fn us_to_python(role: PythonRole) {
    const SIZE: usize = 10 << 20;
    let setup = DilationSetup::start(&[]);
    let mut peer = setup.peer(&["--receive", "--role", role.arg()]);
    let code = peer.wormhole_code(TIMEOUT);
    let mut control = Control::connect(&setup.daemon);
    let wormhole = control.ok(json!({"op": "dilate", "code": code}))["wormhole"].clone();
    control.event("dilated");
    assert_role(&mut peer, role);
    let mut stream = open_subchannel(&mut control, &wormhole, "test");
    let data = noise(SIZE);
    stream.write_all(&data).expect("write the subchannel");
    stream
        .shutdown(std::net::Shutdown::Write)
        .expect("half-close");
    assert_peer_received(&mut peer, &data);
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).expect("EOF after the close");
    assert!(rest.is_empty());

    close_dilated(&mut control, &wormhole);
    peer.wait_with_timeout(TIMEOUT);
}

#[test]
fn we_open_a_subchannel_and_python_leading_reads_our_bytes_exactly() {
    us_to_python(PythonRole::Leader);
}

#[test]
fn we_open_a_subchannel_and_python_following_reads_our_bytes_exactly() {
    us_to_python(PythonRole::Follower);
}

/// A peer whose version offers no dilation: the dilated wormhole fails with a clear error.
#[test]
fn a_peer_that_cannot_dilate_is_a_clear_error() {
    let setup = DilationSetup::start(&[]);
    let mut peer = setup.peer(&["--no-dilation"]);
    let code = peer.wormhole_code(TIMEOUT);
    let mut control = Control::connect(&setup.daemon);
    control.ok(json!({"op": "dilate", "code": code}));
    let deadline = Instant::now() + TIMEOUT;
    let error = loop {
        assert!(Instant::now() < deadline, "no error in time");
        let event = if control.events.is_empty() {
            control.line()
        } else {
            control.events.remove(0)
        };
        if event["event"] == "error" {
            break event;
        }
        assert_ne!(event["event"], "closed", "closed without an error: {event}");
    };
    let message = error["message"].as_str().unwrap_or_default();
    assert!(message.contains("cannot dilate"), "{error}");
    control.event("closed");
    peer.wait_with_timeout(TIMEOUT);
}

/// `wormholectl dilate open` leaves a dilated wormhole in the daemon after it exits;
/// `dilate pipe --listen` then takes the subchannel Python opened and writes it to stdout;
/// `dilate list` shows it and `dilate close` ends it.
#[test]
fn wormholectl_dilate_open_pipe_list_close() {
    const SIZE: usize = 1 << 20;
    let setup = DilationSetup::start(&[]);
    let mut open = Process::spawn(setup.daemon.ctl().args(["dilate", "open"]));
    let code = open.wormhole_code(TIMEOUT);
    let size = SIZE.to_string();
    let mut peer = setup.peer(&["--code", &code, "--send", &size]);
    let output = open.wait_with_timeout(TIMEOUT);
    let id = assert_success(&output).trim().to_owned();
    assert!(id.parse::<u64>().is_ok(), "not a wormhole number: {id:?}");

    let listed = assert_success(&run(setup.daemon.ctl().args(["dilate", "list"]), TIMEOUT));
    assert!(
        listed.starts_with(&format!("{id} dilated {code}")),
        "{listed}"
    );

    let piped = run(
        setup
            .daemon
            .ctl()
            .args(["dilate", "pipe", &id, "test", "--listen"])
            .stdin(Stdio::null()),
        TIMEOUT,
    );
    assert!(piped.status.success(), "{piped:?}");
    assert_peer_sent(&mut peer, &piped.stdout);

    assert_success(&run(
        setup.daemon.ctl().args(["dilate", "close", &id]),
        TIMEOUT,
    ));
    peer.wait_with_timeout(TIMEOUT);
}

/// Relay-only Dilation through a TCP proxy in front of the transit relay: while Python streams
/// bytes to us, every L2 connection is cut (the proxy keeps accepting). We report
/// `disconnected`, then `reconnected` once both sides have redialled through the proxy and the
/// new L2 connection is up, and the subchannel delivers every byte once and in order (the
/// unacknowledged records are replayed on the new connection).
///
/// Why a proxy and not a restart of the relay: the reference dials each hint once per
/// generation (`_dilation/connector.py` `_schedule_connection`: a refused connection is trapped
/// and dropped, never retried) and starts a new generation only when a live connection is
/// lost. If the relay is down at the moment of the cut, Python's one redial of the new
/// generation is refused, our redials (which do repeat) have no partner at the relay, and
/// relay-only Dilation stays disconnected (an earlier attempt saw no `reconnected` in 60 s).
/// That is the reference's behaviour, not a bug of ours; a relay that keeps accepting (the
/// proxy here) reconnects every time.
#[test]
fn a_cut_connection_reconnects_and_the_stream_arrives_exactly() {
    const SIZE: usize = 8 << 20;
    const BEFORE_CUT: usize = 1 << 20;
    let setup = DilationSetup::start_proxied(&[("WORMHOLED_LOG", "debug")]);
    let proxy = setup.proxy();
    let mut control = Control::connect(&setup.daemon);
    let (wormhole, code) = dilate_and_listen(&mut control, true, "test");

    let size = SIZE.to_string();
    let mut peer = setup.peer(&["--no-listen", "--code", &code, "--send", &size]);
    control.event("dilated");
    let mut stream = accept_subchannel(&mut control, "test");
    // We stop reading here, so the rest of the stream is held back (in Python's L4 queue and
    // the buffers on the way) when the connection is cut.
    let mut received = vec![0; BEFORE_CUT];
    stream
        .read_exact(&mut received)
        .expect("read the first MiB");
    let cut = proxy.cut();
    assert!(cut >= 1, "no connection went through the proxy");
    let accepted = proxy.accepted();
    control.event("disconnected");
    control.event("reconnected");
    assert!(
        proxy.accepted() > accepted,
        "reconnected without a new connection through the proxy"
    );
    stream
        .read_to_end(&mut received)
        .expect("read the rest of the subchannel");
    assert_peer_sent(&mut peer, &received);

    close_dilated(&mut control, &wormhole);
    peer.wait_with_timeout(TIMEOUT);
}

/// The other direction: we stream bytes to Python through the proxy, every L2 connection is cut
/// after the first part was taken by the daemon, and Python reads every byte once and in
/// order after the reconnection.
#[test]
fn a_cut_connection_reconnects_and_our_stream_arrives_exactly() {
    const SIZE: usize = 6 << 20;
    const BEFORE_CUT: usize = 2 << 20;
    let setup = DilationSetup::start_proxied(&[]);
    let proxy = setup.proxy();
    let mut peer = setup.peer(&["--no-listen", "--receive"]);
    let code = peer.wormhole_code(TIMEOUT);
    let mut control = Control::connect(&setup.daemon);
    let wormhole =
        control.ok(json!({"op": "dilate", "code": code, "no_listen": true}))["wormhole"].clone();
    control.event("dilated");
    let mut stream = open_subchannel(&mut control, &wormhole, "test");
    let data = noise(SIZE);
    stream
        .write_all(&data[..BEFORE_CUT])
        .expect("write the first part");
    assert!(proxy.cut() >= 1, "no connection went through the proxy");
    control.event("disconnected");
    control.event("reconnected");
    stream
        .write_all(&data[BEFORE_CUT..])
        .expect("write the rest");
    stream
        .shutdown(std::net::Shutdown::Write)
        .expect("half-close");
    assert_peer_received(&mut peer, &data);

    close_dilated(&mut control, &wormhole);
    peer.wait_with_timeout(TIMEOUT);
}
