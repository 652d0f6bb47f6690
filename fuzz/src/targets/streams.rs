//! Byte streams: the first chunk of an input is one byte that picks the setup (its bits: role,
//! relayed, ...), the others are what the socket delivers, read by read.
//!
//! The valid streams are real ones: the Transit lines of the key [`KEY`], records sealed with it,
//! and the bytes of a Dilation L2 handshake run once between a Leader and a Follower with fixed
//! seeds, followed by records sealed with its transport keys. The machine under test is built
//! with the same key and seed, so an unmutated stream goes all the way through.

use std::sync::LazyLock;

use bytes::Bytes;
use wormhole_protocol::crypto::{transit_receiver_handshake, transit_sender_handshake};
use wormhole_protocol::dilation::l2::{Connection, Transport, FOLLOWER_PREAMBLE, LEADER_PREAMBLE};
use wormhole_protocol::dilation::l3::Record;
use wormhole_protocol::dilation::Role as DilationRole;
use wormhole_protocol::transfer::{ack_record, check_ack};
use wormhole_protocol::transit::handshake::{Handshake, Stage, GO, NEVERMIND, RELAY_OK};
use wormhole_protocol::transit::record::{RecordDecoder, RecordOpener, RecordSealer};
use wormhole_protocol::transit::Role;

use super::KEY;
use crate::gen::Gen;
use crate::{Input, Target};

/// The mode byte's bits: the Transit sender or the Dilation Leader (else receiver, Follower),
/// through a relay, and (Transit sender) say `nevermind` rather than `go`.
const LEAD: u8 = 1;
const RELAYED: u8 = 2;
const REJECT: u8 = 4;

/// One candidate Transit connection from connect to `go`, and what follows it.
pub(super) const TRANSIT_HANDSHAKE: Target = Target {
    name: "transit-handshake",
    feeds: "transit::handshake: Handshake (direct, relayed; sender, receiver)",
    generate: |g| {
        let mode = g.byte() & (LEAD | RELAYED | REJECT);
        stream_input(g, mode, &transit_stream(mode))
    },
    run: |input| {
        let Some((mode, reads)) = split_mode(input) else {
            return;
        };
        let role = if mode & LEAD != 0 {
            Role::Sender
        } else {
            Role::Receiver
        };
        let mut hs = if mode & RELAYED != 0 {
            Handshake::relayed(role, &KEY, SIDE)
        } else {
            Handshake::direct(role, &KEY)
        };
        for read in reads {
            let _ = hs.bytes_wanted();
            if hs.handle_data(read).is_err() {
                return;
            }
            let _ = hs.poll_transmit();
            if hs.stage() == Stage::Decision {
                let _ = if mode & REJECT != 0 {
                    hs.reject()
                } else {
                    hs.choose()
                };
            }
        }
        let _ = hs.handle_eof();
        if hs.is_established() {
            let _ = hs.into_leftover();
        }
    },
    weight: 1,
};

const SIDE: &str = "0123456789abcdef";

/// What a peer (and relay) sends to a Transit end of this mode.
fn transit_stream(mode: u8) -> Vec<u8> {
    let mut stream = Vec::new();
    if mode & RELAYED != 0 {
        stream.extend_from_slice(RELAY_OK);
    }
    if mode & LEAD != 0 {
        stream.extend_from_slice(transit_receiver_handshake(&KEY).as_bytes());
    } else {
        stream.extend_from_slice(transit_sender_handshake(&KEY).as_bytes());
        stream.extend_from_slice(if mode & REJECT != 0 { NEVERMIND } else { GO });
    }
    stream.extend_from_slice(&transit_records(1));
    stream
}

/// Transit records from the sender, through a receiver's decoder; each record is also read as
/// the receiver's ack (as the sender does with the last one).
pub(super) const TRANSIT_RECORDS: Target = Target {
    name: "transit-records",
    feeds: "transit::record: RecordDecoder, RecordOpener::parse_length; layout::check_ack",
    generate: |g| {
        let stream = transit_records(1 + g.below(4));
        stream_input(g, 0, &stream)
    },
    run: |input| {
        let Some((_, reads)) = split_mode(input) else {
            return;
        };
        let mut decoder = RecordDecoder::new(RecordOpener::new(Role::Receiver, &KEY));
        for read in reads {
            if let Some(prefix) = read.first_chunk::<4>() {
                let _ = RecordOpener::parse_length(*prefix);
            }
            match decoder.push_all(read) {
                Ok(records) => {
                    for record in records {
                        let _ = check_ack(&record, &[0; 32]);
                    }
                }
                Err(_) => return,
            }
        }
        let _ = decoder.at_boundary();
    },
    weight: 1,
};

/// `count` records as the Transit sender seals them: data, an empty one, the ack.
fn transit_records(count: usize) -> Vec<u8> {
    let mut sealer = RecordSealer::new(Role::Sender, &KEY);
    let plaintexts = [
        b"file data".to_vec(),
        Vec::new(),
        ack_record(&[0; 32]),
        vec![0; 300],
    ];
    let mut out = Vec::new();
    for plaintext in plaintexts.iter().cycle().take(count) {
        // Fixed plaintexts far below the record limit: sealing cannot fail.
        let _ = sealer.seal_into(plaintext, &mut out);
    }
    out
}

/// One candidate Dilation connection (relay line, preamble, Noise handshake) and the records
/// the peer sends once it is secured, through the transport's opener.
pub(super) const DILATION_FRAMES: Target = Target {
    name: "dilation-frames",
    feeds: "dilation::l2: Connection::handle_data, Opener::next_record",
    generate: |g| {
        let mode = g.byte() & (LEAD | RELAYED);
        let [to_us, big] = if mode & LEAD != 0 {
            &L2_PAIR.to_leader
        } else {
            &L2_PAIR.to_follower
        };
        let prefix = if mode & RELAYED != 0 { RELAY_OK } else { b"" };
        // The long record makes an input 20 times slower: one in eight has it.
        let big: &[u8] = if g.one_in(8) { big } else { b"" };
        stream_input(g, mode, &[prefix, to_us, big].concat())
    },
    run: |input| {
        let Some((mode, reads)) = split_mode(input) else {
            return;
        };
        let (role, seed) = if mode & LEAD != 0 {
            (DilationRole::Leader, LEADER_SEED)
        } else {
            (DilationRole::Follower, FOLLOWER_SEED)
        };
        let relay = (mode & RELAYED != 0).then_some(SIDE);
        let Ok(mut conn) = Connection::new(role, &KEY, relay, seed) else {
            return;
        };
        let mut reads = reads.iter();
        for read in reads.by_ref() {
            if conn.handle_data(read).is_err() {
                return;
            }
            while conn.poll_event().is_some() {}
            let _ = conn.poll_transmit();
            if conn.is_open() {
                break;
            }
        }
        let Some(mut transport) = conn.take_transport() else {
            return;
        };
        for read in reads {
            transport.opener.input().extend_from_slice(read);
            loop {
                match transport.opener.next_record() {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => return,
                }
            }
        }
    },
    weight: 20,
};

const LEADER_SEED: [u8; 32] = [1; 32];
const FOLLOWER_SEED: [u8; 32] = [2; 32];

/// The bytes each side of one real L2 handshake received, then the records, then (the second
/// part) the long record.
struct L2Pair {
    to_leader: [Vec<u8>; 2],
    to_follower: [Vec<u8>; 2],
}

/// One handshake between a Leader and a Follower with the fixed seeds, then every sample record
/// sealed each way. Fixed keys and seeds: every step succeeds (otherwise the streams are only
/// shorter, and the target still runs).
static L2_PAIR: LazyLock<L2Pair> = LazyLock::new(|| {
    let mut pair = L2Pair {
        to_leader: Default::default(),
        to_follower: Default::default(),
    };
    let (Ok(mut leader), Ok(mut follower)) = (
        Connection::new(DilationRole::Leader, &KEY, None, LEADER_SEED),
        Connection::new(DilationRole::Follower, &KEY, None, FOLLOWER_SEED),
    ) else {
        return pair;
    };
    for _ in 0..4 {
        if let Some(bytes) = leader.poll_transmit() {
            let _ = follower.handle_data(&bytes);
            pair.to_follower[0].extend_from_slice(&bytes);
        }
        if let Some(bytes) = follower.poll_transmit() {
            let _ = leader.handle_data(&bytes);
            pair.to_leader[0].extend_from_slice(&bytes);
        }
    }
    debug_assert!(pair.to_leader[0].starts_with(FOLLOWER_PREAMBLE));
    debug_assert!(pair.to_follower[0].starts_with(LEADER_PREAMBLE));
    if let (Some(leader), Some(follower)) = (leader.take_transport(), follower.take_transport()) {
        seal_all(leader, &mut pair.to_follower);
        seal_all(follower, &mut pair.to_leader);
    }
    pair
});

fn seal_all(mut transport: Transport, out: &mut [Vec<u8>; 2]) {
    for record in records() {
        let _ = transport.sealer.seal(&record, &mut out[0]);
    }
    let _ = transport.sealer.seal(&long_record(), &mut out[1]);
}

/// One record of each type.
pub(super) fn records() -> Vec<Record> {
    vec![
        Record::Kcm,
        Record::Ping(*b"ping"),
        Record::Pong(*b"pong"),
        Record::Open {
            scid: 1,
            seqnum: 0,
            subprotocol: "chat".into(),
        },
        Record::Data {
            scid: 1,
            seqnum: 1,
            data: Bytes::from_static(b"hello"),
        },
        Record::Close { scid: 1, seqnum: 2 },
        Record::Ack { seqnum: 2 },
    ]
}

/// A DATA record longer than one Noise message (sealed in two).
fn long_record() -> Record {
    Record::Data {
        scid: 3,
        seqnum: 0,
        data: Bytes::from(vec![0xaa; 70_000]),
    }
}

/// The input `[mode] ++ reads` for a stream: one of the valid streams mutated, cut into reads.
fn stream_input(g: &mut Gen, mode: u8, valid: &[u8]) -> Input {
    let stream = g.bytes(&[valid.to_vec()]);
    let mut input = vec![vec![mode]];
    input.extend(g.split(&stream));
    input
}

/// The mode byte and the reads of a stream input.
fn split_mode(input: &Input) -> Option<(u8, &[Vec<u8>])> {
    let (mode, reads) = input.split_first()?;
    Some((mode.first().copied().unwrap_or(0), reads))
}
