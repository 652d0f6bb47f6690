//! Whole-message decoders: one chunk (or a few) per input.

use std::sync::LazyLock;

use bytes::Bytes;
use serde_json::Value;
use wormhole_protocol::code::{completions, nameplate_of, validate_code};
use wormhole_protocol::control::{parse_request, DaemonLine};
use wormhole_protocol::dilation::l3::Record;
use wormhole_protocol::mailbox::server_messages::{to_python_json, ClientMessage, ServerMessage};
use wormhole_protocol::transfer::layout::{check_entry, entry_name, safe_basename};
use wormhole_protocol::transfer::AppMessage;
use wormhole_protocol::transit::hints::{parse_hint_argv, TransitHints};

use super::{parse_all, text, JsonSamples};
use crate::{Input, Target};

/// Frames of the mailbox server (what the client parses) and of clients (what tools parse).
pub(super) const SERVER_MESSAGES: Target = Target {
    name: "server-messages",
    feeds: "mailbox::server_messages: ServerMessage::parse, ClientMessage::parse, to_python_json",
    generate: |g| vec![g.json(&MAILBOX_FRAMES)],
    run: |input| {
        for chunk in input {
            let text = text(chunk);
            let _ = ServerMessage::parse(&text);
            if let Ok((id, message)) = ClientMessage::parse(&text) {
                let _ = message.to_json(id.as_deref().unwrap_or_default());
            }
            if let Ok(value) = serde_json::from_str::<Value>(&text) {
                let _ = to_python_json(&value);
            }
        }
    },
    weight: 1,
};

pub(super) static MAILBOX_FRAMES: JsonSamples = LazyLock::new(|| {
    parse_all(&[
        r#"{"type": "welcome", "welcome": {"motd": "hi", "current_cli_version": "0.24.0", "your-address": {"port": 1, "ipv4": "127.0.0.1"}}, "server_tx": 1.5}"#,
        r#"{"type": "welcome", "welcome": {"error": "go away"}, "server_tx": 1}"#,
        r#"{"type": "ack", "id": "abcd", "server_tx": 1.0}"#,
        r#"{"type": "nameplates", "nameplates": [{"id": "7"}, {"id": "12", "x": 1}], "server_tx": 1.0}"#,
        r#"{"type": "allocated", "nameplate": "3", "server_tx": 1.0}"#,
        r#"{"type": "claimed", "mailbox": "abcdefghijklm", "server_tx": 1.0}"#,
        r#"{"type": "released", "server_tx": 1.0}"#,
        r#"{"type": "message", "side": "aaaaaaaaaa", "phase": "pake", "body": "7b7d", "server_rx": 2.25, "id": "abcd", "server_tx": 3.0}"#,
        r#"{"type": "closed", "server_tx": 1.0}"#,
        r#"{"type": "pong", "pong": 5, "server_tx": 1.0}"#,
        r#"{"type": "error", "error": "crowded", "orig": {"type": "claim", "nameplate": "7"}, "server_tx": 1.0}"#,
        r#"{"appid": "lothar.com/wormhole/text-or-file-xfer", "side": "aaaaaaaaaa", "client_version": ["python", "0.24.0"], "id": "abcd", "type": "bind"}"#,
        r#"{"nameplate": "7", "id": "abcd", "type": "release"}"#,
        r#"{"phase": "pake", "body": "7b7d", "id": "abcd", "type": "add"}"#,
        r#"{"mailbox": "abcdefghijklm", "mood": "happy", "id": "abcd", "type": "close"}"#,
        r#"{"ping": 5, "id": "abcd", "type": "ping"}"#,
    ])
});

/// The peer's file-transfer v1 messages and the receiver's Transit ack (the decoders alone; the
/// machines are [`super::machines::FILE_TRANSFER`]).
pub(super) const APP_MESSAGES: Target = Target {
    name: "app-messages",
    feeds: "transfer: AppMessage::parse, layout::check_ack",
    generate: |g| vec![g.json(&APP_MESSAGE_SAMPLES)],
    run: |input| {
        for chunk in input {
            let _ = AppMessage::parse(chunk).map(|message| message.to_bytes());
            let _ = wormhole_protocol::transfer::layout::check_ack(chunk, &[0; 32]);
        }
    },
    weight: 1,
};

pub(super) static APP_MESSAGE_SAMPLES: JsonSamples = LazyLock::new(|| {
    parse_all(&[
        r#"{"offer": {"message": "hello w\u00f6rld \u2603 \"q\"\n"}}"#,
        r#"{"offer": {"file": {"filename": "r\u00e9sum\u00e9.pdf", "filesize": 123456}}}"#,
        r#"{"offer": {"directory": {"mode": "zipfile/deflated", "dirname": "photos", "zipsize": 4242, "numbytes": 4000, "numfiles": 3}}}"#,
        r#"{"transit": {"abilities-v1": [{"type": "direct-tcp-v1"}, {"type": "relay-v1"}], "hints-v1": [{"type": "direct-tcp-v1", "priority": 0.0, "hostname": "192.168.1.5", "port": 40123}, {"type": "relay-v1", "hints": [{"type": "direct-tcp-v1", "priority": 0.0, "hostname": "transit.magic-wormhole.io", "port": 4001}]}]}}"#,
        r#"{"answer": {"message_ack": "ok"}}"#,
        r#"{"answer": {"file_ack": "ok"}}"#,
        r#"{"error": "transfer rejected"}"#,
        r#"{"ack": "ok", "sha256": "0000000000000000000000000000000000000000000000000000000000000000"}"#,
    ])
});

/// Transit hints from a peer's `transit` message or Dilation `connection-hints`, and the
/// `--transit-helper`/hint strings of the command line.
pub(super) const TRANSIT_HINTS: Target = Target {
    name: "transit-hints",
    feeds: "transit::hints: TransitHints::from_message, parse_hint_argv",
    generate: |g| {
        if g.one_in(4) {
            vec![g.bytes(&HINT_ARGVS.map(|s| s.as_bytes().to_vec()))]
        } else {
            vec![g.json(&HINT_MESSAGES)]
        }
    },
    run: |input| {
        for chunk in input {
            if let Ok(value) = serde_json::from_slice::<Value>(chunk) {
                let _ = TransitHints::from_message(&value).map(|hints| hints.to_message());
            }
            let _ = parse_hint_argv(&text(chunk));
        }
    },
    weight: 1,
};

const HINT_ARGVS: [&str; 4] = [
    "tcp:transit.magic-wormhole.io:4001",
    "tcp:[::1]:4001",
    "tcp:127.0.0.1:65535:priority=0.5",
    "127.0.0.1:1",
];

static HINT_MESSAGES: JsonSamples = LazyLock::new(|| {
    parse_all(&[
        r#"{"abilities-v1": [{"type": "direct-tcp-v1"}, {"type": "relay-v1"}], "hints-v1": [{"type": "direct-tcp-v1", "priority": 0.0, "hostname": "192.168.1.5", "port": 40123}, {"type": "relay-v1", "hints": [{"type": "direct-tcp-v1", "priority": 0.0, "hostname": "transit.magic-wormhole.io", "port": 4001}]}]}"#,
        r#"{"hints-v1": [{"type": "direct-tcp-v1", "hostname": "::1", "port": 1}, {"type": "tor-tcp-v1", "hostname": "x.onion", "port": 80}, {"type": "relay-v1", "name": "r", "hints": []}]}"#,
    ])
});

/// Decrypted Dilation L3 records, and the round trip of those that decode.
pub(super) const DILATION_RECORDS: Target = Target {
    name: "dilation-records",
    feeds: "dilation::l3: Record::decode (and encode of what decodes)",
    generate: |g| vec![g.bytes(&RECORD_SAMPLES)],
    run: |input| {
        for chunk in input {
            if let Ok(record) = Record::decode(Bytes::copy_from_slice(chunk)) {
                assert_eq!(record.encode(), *chunk, "a decoded record encodes back");
                assert_eq!(record.encoded_len(), chunk.len());
            }
        }
    },
    weight: 1,
};

/// One record of every type, encoded.
pub(super) static RECORD_SAMPLES: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
    super::streams::records()
        .iter()
        .map(Record::encode)
        .collect()
});

/// Zip entry names and attributes (first 4 bytes: `external_attr`, big-endian; the rest: the
/// name), and offered file names.
pub(super) const ZIP_LAYOUT: Target = Target {
    name: "zip-layout",
    feeds: "transfer::layout: check_entry, safe_basename, entry_name",
    generate: |g| vec![g.bytes(&ZIP_ENTRIES)],
    run: |input| {
        for chunk in input {
            let (attr, name) = chunk.split_at(chunk.len().min(4));
            let mut attr_bytes = [0; 4];
            attr_bytes[..attr.len()].copy_from_slice(attr);
            let name = text(name);
            if let Ok(entry) = check_entry(&name, u32::from_be_bytes(attr_bytes)) {
                let components: Vec<&str> = entry.components.iter().map(String::as_str).collect();
                let _ = entry_name(&components, entry.is_dir);
            }
            let _ = safe_basename(&name);
        }
    },
    weight: 1,
};

static ZIP_ENTRIES: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
    let entries: [(u32, &str); 10] = [
        (0o100_644 << 16, "a/b/c.txt"),
        ((0o40_755 << 16) | 0x10, "photos/"),
        (0x10, "./"),
        (0o120_777 << 16, "link"),
        (0, "../x"),
        (0, "/etc/passwd"),
        (0, "C:/x"),
        (0, "a\\b"),
        (0o100_600 << 16, "a//b/./r\u{e9}sum\u{e9}.pdf"),
        (0, ".."),
    ];
    entries
        .iter()
        .map(|(attr, name)| [&attr.to_be_bytes()[..], name.as_bytes()].concat())
        .collect()
});

/// Control-socket lines: requests (the daemon's decoder) and responses and events (wormholectl's),
/// the samples taken from the examples of docs/control-protocol.md.
pub(super) const CONTROL_LINES: Target = Target {
    name: "control-lines",
    feeds: "control: parse_request, DaemonLine (as wormholectl reads it)",
    generate: |g| vec![g.json(&CONTROL_SAMPLES)],
    run: |input| {
        for chunk in input {
            let line = text(chunk);
            if let Ok(request) = parse_request(&line) {
                let _ = serde_json::to_string(&request);
            }
            if let Ok(daemon_line) = serde_json::from_str::<DaemonLine>(&line) {
                let _ = serde_json::to_string(&daemon_line);
            }
        }
    },
    weight: 1,
};

static CONTROL_SAMPLES: JsonSamples = LazyLock::new(|| {
    let doc = include_str!("../../../docs/control-protocol.md");
    let lines: Vec<&str> = doc
        .lines()
        .filter_map(|line| line.strip_prefix(">> ").or(line.strip_prefix("<< ")))
        .collect();
    parse_all(&lines)
});

/// Codes as typed or given with `--code` (first chunk), the word count and the server's
/// nameplates for completion (the other chunks).
pub(super) const CODES: Target = Target {
    name: "codes",
    feeds: "code: validate_code, nameplate_of, completions",
    generate: |g| {
        let samples = CODE_SAMPLES.map(|s| s.as_bytes().to_vec());
        let mut input = vec![g.bytes(&samples), vec![g.byte()]];
        input.extend((0..g.below(4)).map(|_| g.bytes(&samples[..3])));
        input
    },
    run: |input: &Input| {
        let Some((code, rest)) = input.split_first() else {
            return;
        };
        let code = text(code);
        let _ = validate_code(&code);
        let _ = nameplate_of(&code);
        let words = rest
            .first()
            .and_then(|w| w.first())
            .map_or(2, |w| usize::from(*w));
        let nameplates: Vec<String> = rest.iter().skip(1).map(|n| text(n).into_owned()).collect();
        let _ = completions(&code, &nameplates, words);
    },
    weight: 1,
};

const CODE_SAMPLES: [&str; 10] = [
    "7",
    "12",
    "4-",
    "7-guitarist-revenge",
    "7-gui",
    "0-",
    "7--x",
    "7-a b",
    "\u{663}-x",
    "123-Guitarist-REV",
];
