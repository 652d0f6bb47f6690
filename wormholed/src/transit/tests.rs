//! Two Transit ends against each other over 127.0.0.1: direct, and relay-only through the
//! reference transit relay (Python, started by the test harness). Records of a few MiB go
//! through and are compared byte for byte.

use std::net::{IpAddr, Ipv4Addr};
use std::thread;

use super::*;

const KEY: [u8; 32] = [0x5a; 32];

fn loopback_config(listen: bool, relays: Vec<String>) -> TransitConfig {
    TransitConfig {
        relays,
        listen,
        hint_addresses: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
    }
}

/// Prepares both ends, swaps the messages, races both, returns (sender, receiver).
async fn connect_pair(
    sender: TransitConfig,
    receiver: TransitConfig,
) -> (TransitConnection, TransitConnection) {
    let (s_pending, s_msg) = prepare(sender, Role::Sender, KEY)
        .await
        .expect("prepare sender");
    let (r_pending, r_msg) = prepare(receiver, Role::Receiver, KEY)
        .await
        .expect("prepare receiver");
    let (s, r) = tokio::join!(s_pending.connect(&r_msg), r_pending.connect(&s_msg));
    (s.expect("sender connects"), r.expect("receiver connects"))
}

/// Sends `total` bytes in `record` sized records from the sender, checks them at the receiver,
/// then an ack back, all on worker threads with the blocking halves.
fn transfer(sender: TransitConnection, receiver: TransitConnection, total: usize, record: usize) {
    let data: Vec<u8> = (0..total).map(|i| (i * 31 % 253) as u8).collect();
    let expected = data.clone();
    let (mut s_writer, mut s_reader) = sender.split().expect("split sender");
    let (mut r_writer, mut r_reader) = receiver.split().expect("split receiver");
    let send = thread::spawn(move || {
        for chunk in data.chunks(record) {
            s_writer.send_record(chunk).expect("send record");
        }
        let ack = s_reader.receive_record().expect("ack").expect("not eof");
        assert_eq!(ack, b"{\"ack\": \"ok\"}");
        s_writer.records_sent()
    });
    let mut got = Vec::with_capacity(total);
    while got.len() < total {
        let rec = r_reader.receive_record().expect("record").expect("not eof");
        got.extend_from_slice(&rec);
    }
    assert!(got == expected, "received bytes differ");
    r_writer
        .send_record(b"{\"ack\": \"ok\"}")
        .expect("send ack");
    let sent = send.join().expect("sender thread");
    assert_eq!(sent, r_reader.records_received());
    drop(r_writer);
    drop(r_reader);
}

#[tokio::test]
async fn direct_both_listening() {
    let (s, r) = connect_pair(loopback_config(true, vec![]), loopback_config(true, vec![])).await;
    assert!(s.description().contains("127.0.0.1"), "{}", s.description());
    transfer(s, r, 8 << 20, 256 << 10);
}

#[tokio::test]
async fn direct_only_sender_listens() {
    let (s, r) = connect_pair(
        loopback_config(true, vec![]),
        loopback_config(false, vec![]),
    )
    .await;
    assert!(s.description().starts_with("<-"), "{}", s.description());
    assert!(
        r.description().starts_with("->tcp:127.0.0.1:"),
        "{}",
        r.description()
    );
    // Python-sized records too.
    transfer(s, r, 3 << 20, 16 << 10);
}

#[tokio::test]
async fn direct_only_receiver_listens() {
    let (s, r) = connect_pair(
        loopback_config(false, vec![]),
        loopback_config(true, vec![]),
    )
    .await;
    assert!(s.description().starts_with("->tcp:"), "{}", s.description());
    transfer(s, r, 1 << 20, 1 << 20);
}

#[tokio::test]
async fn relay_only_through_the_reference_relay() {
    let relay = wormhole_tests::TransitRelay::start();
    let (s, r) = connect_pair(
        loopback_config(false, vec![relay.hint()]),
        loopback_config(false, vec![relay.hint()]),
    )
    .await;
    assert!(
        s.description().starts_with("->relay:"),
        "{}",
        s.description()
    );
    assert!(
        r.description().starts_with("->relay:"),
        "{}",
        r.description()
    );
    transfer(s, r, 4 << 20, 256 << 10);
}

#[tokio::test]
async fn empty_transfer_still_acks() {
    let (s, r) = connect_pair(
        loopback_config(true, vec![]),
        loopback_config(false, vec![]),
    )
    .await;
    transfer(s, r, 0, 16 << 10);
}

#[tokio::test]
async fn wrong_key_fails_fast_without_listener() {
    let (s_pending, s_msg) = prepare(loopback_config(true, vec![]), Role::Sender, KEY)
        .await
        .expect("prepare sender");
    let (r_pending, _) = prepare(loopback_config(false, vec![]), Role::Receiver, [1; 32])
        .await
        .expect("prepare receiver");
    // The sender keeps listening (it would wait for its deadline); only the receiver is raced.
    let no_hints = serde_json::json!({"hints-v1": []});
    let sender = s_pending.connect(&no_hints);
    tokio::pin!(sender);
    let receiver = r_pending.connect(&s_msg);
    let result = tokio::select! {
        r = receiver => r,
        _ = &mut sender => panic!("the sender cannot win"),
    };
    let err = result.expect_err("mismatched handshake");
    assert!(matches!(err, TransitError::NoConnection(_)), "{err}");
    assert!(err.to_string().contains("bad handshake"), "{err}");
}

#[tokio::test]
async fn rejects_bad_hints_and_relays() {
    let err = prepare(
        loopback_config(false, vec!["relay.example".into()]),
        Role::Sender,
        KEY,
    )
    .await
    .err()
    .expect("bad relay");
    assert!(matches!(err, TransitError::BadRelay(_)), "{err}");
    let (pending, _) = prepare(loopback_config(false, vec![]), Role::Sender, KEY)
        .await
        .expect("prepare");
    let err = pending
        .connect(&serde_json::json!("not an object"))
        .await
        .expect_err("bad hints");
    assert!(matches!(err, TransitError::BadHints(_)), "{err}");
    let (pending, _) = prepare(loopback_config(false, vec![]), Role::Sender, KEY)
        .await
        .expect("prepare");
    let err = pending
        .connect(&serde_json::json!({"hints-v1": []}))
        .await
        .expect_err("nothing to dial");
    assert!(err.to_string().contains("no contenders"), "{err}");
}

#[tokio::test]
async fn advertises_python_shaped_hints() {
    let (_pending, msg) = prepare(
        loopback_config(true, vec!["tcp:127.0.0.1:4001".into()]),
        Role::Receiver,
        KEY,
    )
    .await
    .expect("prepare");
    let hints = msg["hints-v1"].as_array().expect("hints list");
    assert_eq!(hints.len(), 2);
    assert_eq!(hints[0]["type"], "direct-tcp-v1");
    assert_eq!(hints[0]["hostname"], "127.0.0.1");
    assert!(hints[0]["port"].as_u64().is_some_and(|p| p > 0));
    assert_eq!(hints[1]["type"], "relay-v1");
    assert_eq!(hints[1]["hints"][0]["port"], 4001);
    assert_eq!(msg["abilities-v1"][1]["type"], "relay-v1");
}
