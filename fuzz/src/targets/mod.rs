//! The targets, one per decoder family. Each is a generator (valid samples, mutated) and a runner
//! that feeds every chunk of an input in and drops the results: only a panic counts.
//!
//! - [`wire`]: whole-message decoders (mailbox server JSON, peer app messages, Transit hints,
//!   Dilation L3 records, zip entry names, control lines, codes).
//! - [`streams`]: byte streams cut into socket reads (Transit handshakes and records, Dilation L2
//!   preambles, Noise handshakes and frames).
//! - [`machines`]: whole machines fed a mutated valid session (the mailbox `Wormhole` with
//!   garbage server text, the Dilation manager with garbage L1 messages and connection input,
//!   the file-transfer machines with garbage peer messages).

use std::sync::LazyLock;

use serde_json::Value;

use crate::Target;

mod machines;
mod streams;
mod wire;

/// Every target, in the order of the table.
pub static TARGETS: &[Target] = &[
    wire::SERVER_MESSAGES,
    wire::APP_MESSAGES,
    wire::TRANSIT_HINTS,
    streams::TRANSIT_HANDSHAKE,
    streams::TRANSIT_RECORDS,
    streams::DILATION_FRAMES,
    wire::DILATION_RECORDS,
    wire::ZIP_LAYOUT,
    wire::CONTROL_LINES,
    wire::CODES,
    machines::MAILBOX_MACHINE,
    machines::DILATION_MANAGER,
    machines::FILE_TRANSFER,
];

/// Samples written as JSON text, parsed once.
type JsonSamples = LazyLock<Vec<Value>>;

/// Parses samples that are valid JSON by construction (they are literals of this crate).
fn parse_all(texts: &[&str]) -> Vec<Value> {
    texts
        .iter()
        .filter_map(|text| serde_json::from_str(text).ok())
        .collect()
}

/// A chunk as the `&str` that a UTF-8 API gets: decoders behind a text websocket frame or a
/// line codec only ever see valid UTF-8, so invalid bytes become U+FFFD as they would there.
fn text(chunk: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(chunk)
}

/// The test key of the byte-stream targets (any fixed key: the samples are sealed with it).
const KEY: [u8; 32] = [7; 32];
