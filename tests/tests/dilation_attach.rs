//! `attach`: a dilated wormhole outlives the control client that opened it, and another client
//! of the same daemon takes its events over and resumes from the state in the answer.
//!
//! Real parts only: the reference mailbox server and transit relay on 127.0.0.1, our daemon, and
//! as the peer either the Python reference library (`tests/python/dilation_peer.py`) or a second
//! daemon of ours. A client's departure and a subchannel held for nobody are waited for in the
//! daemon's debug log (`control connection closed`, `it waits for attach`), never by sleeping.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use wormhole_tests::check::{assert_our_failure, count_and_hash, ours};
use wormhole_tests::{
    python_script, run, venv_python, Control, Daemon, MailboxServer, Process, TransitRelay, TIMEOUT,
};
use wormholectl::exit::ExitCode;

/// The daemon's log filter: its debug lines say when a client left.
const DEBUG_LOG: (&str, &str) = ("WORMHOLED_LOG", "info,wormholed=debug");

/// Waits for a line of `daemon`'s log that contains `text`.
fn log_line(daemon: &mut Daemon, text: &str) {
    daemon
        .process()
        .wait_for_stderr(text, TIMEOUT, |line| line.contains(text).then_some(()));
}

/// Asks `control` for a dilated wormhole with an allocated code: its number and the code.
fn dilate(control: &mut Control) -> (Value, String) {
    let wormhole = control.ok(json!({"op": "dilate"}))["wormhole"].clone();
    let code = control.event("code")["code"]
        .as_str()
        .expect("a code")
        .to_owned();
    (wormhole, code)
}

/// Connects to a subchannel socket and reads it to its end.
fn read_subchannel(socket: &Value) -> Vec<u8> {
    let path = socket.as_str().expect("a socket path");
    let mut stream = UnixStream::connect(path).expect("connect to the subchannel socket");
    stream.set_read_timeout(Some(TIMEOUT)).expect("a timeout");
    let mut data = Vec::new();
    stream.read_to_end(&mut data).expect("read the subchannel");
    data
}

/// Bytes that differ from one call to the next by `seed`.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
        .collect()
}

/// Opens a subchannel of `subprotocol` on `wormhole` of `control`, writes `data`, half-closes.
fn send_subchannel(
    control: &mut Control,
    wormhole: &Value,
    subprotocol: &str,
    data: &[u8],
) -> UnixStream {
    let opened = control.ok(json!({
        "op": "open-subchannel", "wormhole": wormhole, "subprotocol": subprotocol
    }));
    let path = opened["socket"].as_str().expect("a socket path");
    let mut stream = UnixStream::connect(path).expect("connect to the subchannel socket");
    stream.set_write_timeout(Some(TIMEOUT)).expect("a timeout");
    stream.write_all(data).expect("write the subchannel");
    stream.shutdown(Shutdown::Write).expect("half-close");
    stream
}

/// The app that opened a dilated wormhole and listened for `test` goes away before the peer
/// comes; a second client attaches, gets the state (code, waiting, listening for `test`, no
/// subchannel), and then the events: the Python peer's subchannel of `test` reaches the second
/// client and its bytes arrive exactly.
#[test]
fn a_second_client_attaches_and_gets_the_peers_subchannel() {
    const SIZE: usize = 1 << 20;
    let server = MailboxServer::start();
    let relay = TransitRelay::start();
    let mut daemon = Daemon::start_with_env(
        &server.url(),
        &[("WORMHOLE_TRANSIT_HELPER", &relay.hint()), DEBUG_LOG],
    );
    let mut first = Control::connect(&daemon);
    let (wormhole, code) = dilate(&mut first);
    first.ok(json!({"op": "listen", "wormhole": wormhole, "subprotocol": "test"}));
    drop(first);
    log_line(&mut daemon, "control connection closed");

    let mut second = Control::connect(&daemon);
    let state = second.ok(json!({"op": "attach", "wormhole": wormhole}));
    assert_eq!(
        state,
        json!({
            "wormhole": wormhole, "code": code, "state": "waiting", "dilated": false,
            "connected": false, "listening": ["test"], "subchannels": []
        })
    );

    let size = SIZE.to_string();
    let mut peer = Process::spawn(
        Command::new(venv_python())
            .arg(python_script("dilation_peer.py"))
            .args(["--relay-url", &server.url(), "--transit-helper"])
            .arg(relay.hint())
            .args(["--code", &code, "--send", &size])
            .stdin(Stdio::piped()),
    );
    second.event("dilated");
    let opened = second.event("subchannel-opened");
    assert_eq!(opened["subprotocol"], "test", "{opened}");
    let received = read_subchannel(&opened["socket"]);
    let (sent, hash) =
        peer.wait_for_stdout("`sent N HASH`", TIMEOUT, |l| count_and_hash(l, "sent "));
    assert_eq!(received.len(), sent);
    assert_eq!(format!("{:x}", Sha256::digest(&received)), hash);
    second.event("subchannel-closed");

    second.ok(json!({"op": "close", "wormhole": wormhole}));
    let closed = second.event("closed");
    assert_eq!(closed["mood"], "happy", "{closed}");
    peer.wait_with_timeout(TIMEOUT);
}

/// Two daemons of ours, dilated to each other. The first client of daemon A listens for `early`
/// and `late` and goes away. B opens an `early` subchannel while nobody is attached to A: it
/// waits, and the `attach` answer lists it with its socket, whose bytes (sent and closed before
/// the attach) arrive exactly. A `late` subchannel then reaches the attached client as an
/// event. When daemon B dies, the attached client hears `disconnected`. `wormholectl dilate
/// watch` then attaches (the client before hears `detached`), prints the state and, after
/// `dilate close`, `closed`, and exits 0.
#[test]
fn a_held_subchannel_and_later_events_reach_the_client_that_attached() {
    let server = MailboxServer::start();
    let relay = TransitRelay::start();
    let helper = relay.hint();
    let mut ours = Daemon::start_with_env(
        &server.url(),
        &[("WORMHOLE_TRANSIT_HELPER", &helper), DEBUG_LOG],
    );
    let mut theirs = Daemon::start_with_env(&server.url(), &[("WORMHOLE_TRANSIT_HELPER", &helper)]);

    let mut first = Control::connect(&ours);
    let (wormhole, code) = dilate(&mut first);
    for subprotocol in ["early", "late"] {
        first.ok(json!({"op": "listen", "wormhole": wormhole, "subprotocol": subprotocol}));
    }
    let mut peer = Control::connect(&theirs);
    let peer_wormhole = peer.ok(json!({"op": "dilate", "code": code}))["wormhole"].clone();
    peer.event("dilated");
    first.event("dilated");
    drop(first);
    log_line(&mut ours, "control connection closed");

    let early = pattern(300_000, 7);
    let _early_stream = send_subchannel(&mut peer, &peer_wormhole, "early", &early);
    log_line(&mut ours, "it waits for attach");

    let mut second = Control::connect(&ours);
    let state = second.ok(json!({"op": "attach", "wormhole": wormhole}));
    assert_eq!(state["code"], json!(code), "{state}");
    assert_eq!(
        (&state["state"], &state["dilated"], &state["connected"]),
        (&json!("dilated"), &json!(true), &json!(true)),
        "{state}"
    );
    assert_eq!(state["listening"], json!(["early", "late"]), "{state}");
    let subchannels = state["subchannels"].as_array().expect("subchannels");
    assert_eq!(subchannels.len(), 1, "{state}");
    assert_eq!(subchannels[0]["subprotocol"], "early", "{state}");
    let received = read_subchannel(&subchannels[0]["socket"]);
    assert!(
        received == early,
        "{} bytes of {}",
        received.len(),
        early.len()
    );

    let late = pattern(500_000, 99);
    let _late_stream = send_subchannel(&mut peer, &peer_wormhole, "late", &late);
    let opened = second.event("subchannel-opened");
    assert_eq!(opened["subprotocol"], "late", "{opened}");
    let received = read_subchannel(&opened["socket"]);
    assert!(
        received == late,
        "{} bytes of {}",
        received.len(),
        late.len()
    );

    theirs.stop();
    second.event("disconnected");

    let id = wormhole.to_string();
    let mut watch = Process::spawn(ours.ctl().args(["dilate", "watch", &id]));
    let first_line = format!("{id} reconnecting {code} (not connected)");
    watch.wait_for_stdout(&first_line, TIMEOUT, |line| {
        (line == first_line).then_some(())
    });
    second.event("detached");
    let closed = run(ours.ctl().args(["dilate", "close", &id]), TIMEOUT);
    assert!(closed.status.success(), "{closed:?}");
    let output = watch.wait_with_timeout(TIMEOUT);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout.lines().any(|line| line.starts_with("closed ")),
        "{stdout}"
    );
}

/// `attach` to a wormhole that does not exist, to one that is not dilated, and without a
/// number: typed errors, and the daemon goes on serving (`list`, then an `attach` that works).
/// `wormholectl dilate watch` fails the same way, with the exit codes of its table; with
/// `--json` it prints the answer, then the events as sent, until `closed`.
#[test]
fn attach_errors_are_typed_and_the_daemon_keeps_serving() {
    let server = MailboxServer::start();
    let daemon = Daemon::start(&server);
    let watch_none = run(daemon.ctl().args(["dilate", "watch"]), TIMEOUT);
    assert_our_failure(
        &watch_none,
        ExitCode::Usage,
        &["wormholed has no dilated wormhole"],
    );

    let mut control = Control::connect(&daemon);
    let error_of = |control: &mut Control, request: Value| {
        let response = control.request(request.clone());
        response["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("{request} should fail: {response}"))
            .to_owned()
    };
    assert_eq!(
        error_of(&mut control, json!({"op": "attach", "wormhole": 99})),
        "not-found"
    );
    let text = control.ok(json!({"op": "send-text", "text": "hi"}))["wormhole"].clone();
    assert_eq!(
        error_of(&mut control, json!({"op": "attach", "wormhole": text})),
        "invalid-state"
    );
    assert_eq!(
        error_of(&mut control, json!({"op": "attach"})),
        "bad-request"
    );
    assert_eq!(
        error_of(&mut control, json!({"op": "attach", "wormhole": "one"})),
        "bad-request"
    );
    let watch_text = run(
        daemon.ctl().args(["dilate", "watch", &text.to_string()]),
        TIMEOUT,
    );
    assert_our_failure(
        &watch_text,
        ExitCode::Failure,
        &[&format!("wormhole {text} is not dilated")],
    );

    let listed = control.ok(json!({"op": "list"}));
    assert_eq!(listed["wormholes"][0]["wormhole"], text, "{listed}");
    let dilated = control.ok(json!({"op": "dilate"}))["wormhole"].clone();
    // The text wormhole has a `code` event too; each wait is bounded by TIMEOUT.
    while control.event("code")["wormhole"] != dilated {}
    let state = control.ok(json!({"op": "attach", "wormhole": dilated}));
    assert_eq!(state["state"], "waiting", "{state}");
    assert_eq!(
        (&state["dilated"], &state["subchannels"]),
        (&json!(false), &json!([])),
        "{state}"
    );

    // `--json`: the `attach` answer, then the event lines as the daemon sent them.
    let id = dilated.to_string();
    let mut watch = Process::spawn(&mut ours(&daemon, &["--json", "dilate", "watch", &id]));
    let attached = watch.wait_for_stdout("the state as JSON", TIMEOUT, |line| {
        serde_json::from_str::<Value>(line).ok()
    });
    assert_eq!(
        (&attached["wormhole"], &attached["state"]),
        (&dilated, &json!("waiting")),
        "{attached}"
    );
    control.event("detached");
    control.ok(json!({"op": "close", "wormhole": dilated}));
    let output = watch.wait_with_timeout(TIMEOUT);
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        stdout.lines().last(),
        // No peer ever came: the mailbox is closed `lonely`.
        Some(format!(r#"{{"wormhole":{id},"event":"closed","mood":"lonely"}}"#).as_str()),
        "{stdout}"
    );
    control.ok(json!({"op": "cancel", "wormhole": text}));
}
