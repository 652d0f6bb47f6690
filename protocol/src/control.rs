//! The control-socket protocol spoken by wormholed, wormholectl and apps (docs/control-protocol.md).
//!
//! Newline-delimited JSON, one object per line, at most [`MAX_LINE_BYTES`] bytes a line. The client
//! sends [`Request`]s; the daemon answers each with one [`Response`] carrying the same `id`, and
//! streams [`Event`]s about the wormholes that this client owns. The first request must be
//! [`RequestBody::Hello`]. Within one [`PROTOCOL_VERSION`] changes are additive only: unknown
//! operations get [`ErrorCode::UnknownOp`], unknown event kinds parse as [`EventKind::Unknown`].

use serde::{Deserialize, Serialize};

/// The version of this protocol; `hello` must name it.
pub const PROTOCOL_VERSION: u32 = 1;

/// The longest line either side accepts, newline excluded (1 MiB).
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// The daemon's handle of one wormhole, unique for the daemon's lifetime.
pub type WormholeId = u64;

/// One request from a client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Chosen by the client; echoed in the [`Response`].
    pub id: u64,
    /// What to do.
    #[serde(flatten)]
    pub body: RequestBody,
}

/// Settings a client may override per wormhole; unset ones come from the daemon's config.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WormholeOptions {
    /// Mailbox server URL (`ws://` or `wss://`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_url: Option<String>,
    /// Application id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appid: Option<String>,
}

/// The operations, tagged by `op`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum RequestBody {
    /// Must come first: names the protocol version the client speaks.
    Hello {
        /// Must equal [`PROTOCOL_VERSION`].
        protocol: u32,
        /// Free text naming the client, for logs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client: Option<String>,
    },
    /// Send a text message through a new wormhole.
    SendText {
        /// The message.
        text: String,
        /// Use this code instead of allocating one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
        /// Number of words of an allocated code (default from config).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code_length: Option<usize>,
        /// Wait for a `verify` request after the `key` event before sending.
        #[serde(default)]
        verify: bool,
        /// Per-wormhole settings.
        #[serde(flatten)]
        options: WormholeOptions,
    },
    /// Receive through a new wormhole; without `code`, the code is typed interactively
    /// (`complete`, then `set-code`).
    Receive {
        /// The code, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
        /// Per-wormhole settings.
        #[serde(flatten)]
        options: WormholeOptions,
    },
    /// Tab completion of a partly typed code, for a `receive` without code. Answers once the
    /// nameplate list has been fetched from the server. A prefix that ends in a complete
    /// nameplate followed by `-` claims that nameplate, as the reference does.
    Complete {
        /// The interactive wormhole.
        wormhole: WormholeId,
        /// What the user has typed so far.
        prefix: String,
    },
    /// Give the typed code to an interactive `receive`.
    SetCode {
        /// The interactive wormhole.
        wormhole: WormholeId,
        /// The whole code.
        code: String,
    },
    /// Answer a `key` event that asked for confirmation (`send-text` with `verify`).
    Verify {
        /// The wormhole waiting.
        wormhole: WormholeId,
        /// Whether the user accepted the verifier.
        accept: bool,
    },
    /// List every wormhole of the daemon.
    List,
    /// Cancel one wormhole (it closes; its owner gets `error` and `closed`).
    Cancel {
        /// The wormhole to cancel.
        wormhole: WormholeId,
    },
    /// Stop the daemon: every wormhole is cancelled first.
    Shutdown,
    /// Any operation this daemon does not know; answered with [`ErrorCode::UnknownOp`].
    #[serde(other)]
    Unknown,
}

/// The daemon's answer to one request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The request's `id`; `null` when the request was too malformed to have one.
    pub id: Option<u64>,
    /// `{"ok": …}` or `{"error": …}`.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// Success or failure of a request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The request succeeded.
    Ok(ResponseBody),
    /// The request failed.
    Error(ControlError),
}

/// What a successful request returns. Variants are told apart by their fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ResponseBody {
    /// Answer to `hello`.
    Welcome {
        /// The protocol version the daemon speaks.
        protocol: u32,
        /// The daemon's name and version, e.g. `wormholed 0.1.0`.
        daemon: String,
    },
    /// Answer to `send-text` and `receive`: the new wormhole.
    Created {
        /// Its handle; events about it carry the same number.
        wormhole: WormholeId,
    },
    /// Answer to `complete`.
    Completions {
        /// Whole candidate strings, sorted.
        completions: Vec<String>,
    },
    /// Answer to `list`.
    Wormholes {
        /// Every wormhole of the daemon.
        wormholes: Vec<WormholeInfo>,
    },
    /// Answer to requests that return nothing.
    Done {},
}

/// One line of `list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WormholeInfo {
    /// Its handle.
    pub wormhole: WormholeId,
    /// `send-text` or `receive`.
    pub kind: String,
    /// The code, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Where it stands: `connecting`, `waiting`, `connected`, `closing`.
    pub state: String,
}

/// A failed request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message} ({code:?})")]
pub struct ControlError {
    /// Machine-readable kind.
    pub code: ErrorCode,
    /// What a person reads.
    pub message: String,
}

impl ControlError {
    /// A new error.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Kinds of request failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// Not JSON, or a known op with missing or mistyped fields.
    BadRequest,
    /// The line exceeded [`MAX_LINE_BYTES`]; the connection is closed after this answer.
    LineTooLong,
    /// The first request was not `hello`.
    HelloRequired,
    /// `hello` named a protocol version the daemon does not speak.
    UnsupportedVersion,
    /// An operation this daemon does not know.
    UnknownOp,
    /// No such wormhole.
    NotFound,
    /// The wormhole is not in a state where this request makes sense.
    InvalidState,
    /// The request's arguments are wrong (e.g. a malformed code).
    InvalidArgument,
    /// The daemon is shutting down.
    ShuttingDown,
    /// An error code from a newer daemon.
    #[serde(other)]
    Unknown,
}

/// Something that happened to one of the client's wormholes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The wormhole it happened to.
    pub wormhole: WormholeId,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// Event kinds, tagged by `event`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum EventKind {
    /// The mailbox server's message of the day.
    Motd {
        /// The message.
        text: String,
    },
    /// The code is known (allocated, given or typed): tell it to the peer.
    Code {
        /// The code.
        code: String,
    },
    /// The peer proved it knows the code: the key is established and verified.
    Key {
        /// Hex of HKDF(K, "wormhole:verifier"), to compare out of band.
        verifier: String,
        /// The daemon waits for a `verify` request before it sends anything.
        #[serde(default)]
        confirm: bool,
    },
    /// A text message from the peer.
    Message {
        /// The text, exactly as sent.
        text: String,
    },
    /// Something odd but not fatal happened (logged by the daemon as well).
    Warning {
        /// What happened.
        message: String,
    },
    /// The wormhole failed; `closed` follows.
    Error {
        /// Machine-readable kind.
        kind: FailureKind,
        /// What a person reads.
        message: String,
    },
    /// The wormhole is closed; nothing more will be said about it.
    Closed {
        /// The mood reported to the mailbox server: `happy`, `lonely`, `scary`, `errory`,
        /// `unwelcome`.
        mood: String,
    },
    /// An event kind from a newer daemon.
    #[serde(other)]
    Unknown,
}

/// Why a wormhole failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum FailureKind {
    /// The code was wrong, or someone tried to guess it.
    WrongCode,
    /// The mailbox server could not be reached.
    Connect,
    /// The mailbox server reported an error (e.g. `crowded`).
    Server,
    /// The mailbox server's welcome refused us.
    Welcome,
    /// The server or the peer broke the protocol.
    Protocol,
    /// The peer reported an error (e.g. it rejected the verifier).
    Peer,
    /// The user rejected the verifier.
    Rejected,
    /// Cancelled by a client, or its owner disconnected, or the daemon shut down.
    Cancelled,
    /// The code is malformed.
    InvalidCode,
    /// A failure kind from a newer daemon.
    #[serde(other)]
    Unknown,
}

/// Any line the daemon writes: a response or an event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DaemonLine {
    /// The answer to a request.
    Response(Response),
    /// An event.
    Event(Event),
}

/// Parses one request line. On failure returns the error to send back, with the request's `id`
/// when one could be read.
pub fn parse_request(line: &str) -> Result<Request, (Option<u64>, ControlError)> {
    let value: serde_json::Value = serde_json::from_str(line).map_err(|e| {
        (
            None,
            ControlError::new(ErrorCode::BadRequest, format!("not JSON: {e}")),
        )
    })?;
    let id = value.get("id").and_then(serde_json::Value::as_u64);
    if id.is_none() {
        return Err((
            None,
            ControlError::new(ErrorCode::BadRequest, "a request needs a numeric \"id\""),
        ));
    }
    if !value.get("op").is_some_and(serde_json::Value::is_string) {
        return Err((
            id,
            ControlError::new(ErrorCode::BadRequest, "a request needs a string \"op\""),
        ));
    }
    serde_json::from_value(value)
        .map_err(|e| (id, ControlError::new(ErrorCode::BadRequest, format!("{e}"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_shapes() {
        let line = r#"{"id":1,"op":"hello","protocol":1,"client":"wormholectl 0.1.0"}"#;
        let request = parse_request(line).expect("valid hello");
        assert_eq!(
            request.body,
            RequestBody::Hello {
                protocol: 1,
                client: Some("wormholectl 0.1.0".into())
            }
        );
        assert_eq!(
            serde_json::to_string(&request).expect("serialises"),
            line,
            "round trip is exact"
        );
        let send = parse_request(
            r#"{"id":2,"op":"send-text","text":"hi","verify":true,"relay_url":"ws://x/v1"}"#,
        )
        .expect("valid send-text");
        assert_eq!(
            send.body,
            RequestBody::SendText {
                text: "hi".into(),
                code: None,
                code_length: None,
                verify: true,
                options: WormholeOptions {
                    relay_url: Some("ws://x/v1".into()),
                    appid: None
                },
            }
        );
    }

    #[test]
    fn unknown_op_and_malformed_requests() {
        let request = parse_request(r#"{"id":7,"op":"frobnicate","x":1}"#).expect("parses");
        assert_eq!(request.body, RequestBody::Unknown);
        let (id, err) = parse_request("not json").expect_err("rejected");
        assert_eq!((id, err.code), (None, ErrorCode::BadRequest));
        let (id, err) = parse_request(r#"{"id":3,"op":"cancel"}"#).expect_err("missing field");
        assert_eq!((id, err.code), (Some(3), ErrorCode::BadRequest));
        let (id, err) = parse_request(r#"{"op":"list"}"#).expect_err("missing id");
        assert_eq!((id, err.code), (None, ErrorCode::BadRequest));
        let (id, _) = parse_request(r#"{"id":4}"#).expect_err("missing op");
        assert_eq!(id, Some(4));
    }

    #[test]
    fn daemon_lines_round_trip() {
        let lines = [
            r#"{"id":1,"ok":{"protocol":1,"daemon":"wormholed 0.1.0"}}"#,
            r#"{"id":2,"ok":{"wormhole":5}}"#,
            r#"{"id":3,"ok":{"completions":["4-purple-"]}}"#,
            r#"{"id":4,"ok":{}}"#,
            r#"{"id":null,"error":{"code":"bad-request","message":"not JSON"}}"#,
            r#"{"wormhole":5,"event":"code","code":"4-purple-sausages"}"#,
            r#"{"wormhole":5,"event":"key","verifier":"ab","confirm":false}"#,
            r#"{"wormhole":5,"event":"error","kind":"wrong-code","message":"bad"}"#,
            r#"{"wormhole":5,"event":"closed","mood":"happy"}"#,
        ];
        for line in lines {
            let parsed: DaemonLine = serde_json::from_str(line).expect(line);
            assert_eq!(serde_json::to_string(&parsed).expect("serialises"), line);
        }
    }

    #[test]
    fn newer_daemon_lines_still_parse() {
        let parsed: DaemonLine =
            serde_json::from_str(r#"{"wormhole":1,"event":"teleported","where":"mars"}"#)
                .expect("unknown event kind parses");
        assert!(matches!(
            parsed,
            DaemonLine::Event(Event {
                kind: EventKind::Unknown,
                ..
            })
        ));
        let parsed: DaemonLine =
            serde_json::from_str(r#"{"id":1,"error":{"code":"quota","message":"x"}}"#)
                .expect("unknown error code parses");
        assert!(matches!(
            parsed,
            DaemonLine::Response(Response {
                outcome: Outcome::Error(ControlError {
                    code: ErrorCode::Unknown,
                    ..
                }),
                ..
            })
        ));
    }
}
