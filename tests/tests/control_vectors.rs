//! The golden control-protocol lines (tests/vectors/control/, see its README) against the types
//! of `wormhole_protocol::control`: each line parses into the typed structs, the right kind of
//! line, and writes back to the same JSON value; the lines of `unknown.jsonl` parse as
//! `Unknown`. Pure: no daemon, no socket.

use std::fs;
use std::path::PathBuf;

use serde_json::Value;
use wormhole_protocol::control::{
    parse_request, DaemonLine, ErrorCode, Event, EventKind, Outcome, RequestBody, Response,
};

/// The non-empty lines of `tests/vectors/control/<name>`, with their line numbers.
fn vectors(name: &str) -> Vec<(usize, String)> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("vectors/control")
        .join(name);
    let text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let lines: Vec<(usize, String)> = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| (n + 1, line.to_owned()))
        .collect();
    assert!(!lines.is_empty(), "{} has no lines", path.display());
    lines
}

/// `line` as a JSON value.
fn value(name: &str, n: usize, line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{name}:{n}: not JSON ({e}): {line}"))
}

/// Panics unless `written` (a parsed line written back) is the JSON value of `line`.
fn assert_round_trip(name: &str, n: usize, line: &str, written: serde_json::Result<Value>) {
    let written = written.expect("the types serialise");
    assert_eq!(
        written,
        value(name, n, line),
        "{name}:{n}: written back differently:\n  golden:  {line}\n  written: {written}"
    );
}

/// Every request parses as the daemon parses it, into a known op, and writes back the same.
#[test]
fn requests_parse_and_write_back_the_same() {
    for (n, line) in vectors("requests.jsonl") {
        let request = parse_request(&line)
            .unwrap_or_else(|(_, e)| panic!("requests.jsonl:{n}: refused ({e:?}): {line}"));
        assert_ne!(
            request.body,
            RequestBody::Unknown,
            "requests.jsonl:{n}: an op this version knows: {line}"
        );
        assert_round_trip("requests.jsonl", n, &line, serde_json::to_value(&request));
    }
}

/// Every line of `name` parses as a `DaemonLine` that `known` accepts (it says what was wrong
/// otherwise), and writes back the same.
fn assert_daemon_lines(name: &str, known: impl Fn(&DaemonLine) -> Result<(), &'static str>) {
    for (n, line) in vectors(name) {
        let parsed: DaemonLine =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{name}:{n}: {e}: {line}"));
        if let Err(wrong) = known(&parsed) {
            panic!("{name}:{n}: {wrong}: {line}");
        }
        assert_round_trip(name, n, &line, serde_json::to_value(&parsed));
    }
}

/// Every response parses as a response (not an event), with a known error code if an error,
/// and writes back the same.
#[test]
fn responses_parse_and_write_back_the_same() {
    assert_daemon_lines("responses.jsonl", |parsed| match parsed {
        DaemonLine::Event(_) => Err("parsed as an event"),
        DaemonLine::Response(Response {
            outcome: Outcome::Error(error),
            ..
        }) if error.code == ErrorCode::Unknown => Err("an error code this version does not know"),
        DaemonLine::Response(_) => Ok(()),
    });
}

/// Every event parses as an event of a known kind and writes back the same.
#[test]
fn events_parse_and_write_back_the_same() {
    assert_daemon_lines("events.jsonl", |parsed| match parsed {
        DaemonLine::Response(_) => Err("parsed as a response"),
        DaemonLine::Event(Event {
            kind: EventKind::Unknown,
            ..
        }) => Err("an event kind this version does not know"),
        DaemonLine::Event(_) => Ok(()),
    });
}

/// What a newer peer may send still parses: an unknown op (answered `unknown-op`), an unknown
/// event kind or error code (ignored or shown by a client).
#[test]
fn unknown_ops_events_and_error_codes_parse_as_unknown() {
    for (n, line) in vectors("unknown.jsonl") {
        if value("unknown.jsonl", n, &line).get("op").is_some() {
            let request = parse_request(&line)
                .unwrap_or_else(|(_, e)| panic!("unknown.jsonl:{n}: refused ({e:?}): {line}"));
            assert_eq!(request.body, RequestBody::Unknown, "unknown.jsonl:{n}");
            continue;
        }
        let parsed: DaemonLine = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("unknown.jsonl:{n}: {e}: {line}"));
        match parsed {
            DaemonLine::Event(Event {
                kind: EventKind::Unknown,
                ..
            }) => {}
            DaemonLine::Response(Response {
                outcome: Outcome::Error(error),
                ..
            }) if error.code == ErrorCode::Unknown => {}
            other => panic!("unknown.jsonl:{n}: parsed as a known line {other:?}: {line}"),
        }
    }
}
