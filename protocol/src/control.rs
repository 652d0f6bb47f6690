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

/// The longest line either side accepts, newline excluded (4 MiB).
pub const MAX_LINE_BYTES: usize = 4 << 20;

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

/// Transit settings a client may override per file transfer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransitOptions {
    /// Transit relay, `tcp:HOST:PORT` (the Python CLI's `--transit-helper`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transit_helper: Option<String>,
    /// Do not listen for direct connections (`--no-listen`): only dial out and use relays.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_listen: bool,
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
    /// Send a file or a directory through a new wormhole.
    SendFile {
        /// Absolute path of the file or directory (the daemon resolves nothing relative).
        path: String,
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
        /// Transit settings.
        #[serde(flatten)]
        transit: TransitOptions,
    },
    /// Receive through a new wormhole; without `code`, the code is typed interactively
    /// (`complete`, then `set-code`). A file or directory offer produces an `offer` event, then
    /// waits for an `accept` request, unless `accept_file` is set.
    Receive {
        /// The code, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
        /// Accept a file or directory offer without asking (`--accept-file`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        accept_file: bool,
        /// Absolute path to write to instead of the offered name in the daemon's working
        /// directory (`--output-file`; the client resolves it against its own directory).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output: Option<String>,
        /// Absolute folder that receives the offered name when `output` is not given (the
        /// client's working directory); default: the daemon's working directory.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        directory: Option<String>,
        /// Per-wormhole settings.
        #[serde(flatten)]
        options: WormholeOptions,
        /// Transit settings.
        #[serde(flatten)]
        transit: TransitOptions,
    },
    /// Answer an `offer` event: receive the file or directory, or decline it.
    Accept {
        /// The wormhole waiting.
        wormhole: WormholeId,
        /// Whether to receive it.
        accept: bool,
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
    /// Open a long-lived dilated wormhole (Dilation): with `code`, join the peer's wormhole;
    /// without it, allocate a code (`code` event). It stays open until its owner sends `close`
    /// (it is not cancelled when the client disconnects).
    Dilate {
        /// The code, when joining.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
        /// Words of an allocated code.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code_length: Option<usize>,
        /// Per-wormhole settings.
        #[serde(flatten)]
        options: WormholeOptions,
        /// Transit settings of the dilated connection.
        #[serde(flatten)]
        transit: TransitOptions,
        /// If given, the only subprotocols the peer may open; an OPEN for another is refused
        /// (closed at once, `subchannel-refused`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subprotocols: Option<Vec<String>>,
    },
    /// Accept the peer's subchannels of this subprotocol on a dilated wormhole
    /// (`subchannel-opened` events follow, one per subchannel).
    Listen {
        /// The dilated wormhole.
        wormhole: WormholeId,
        /// The subprotocol name.
        subprotocol: String,
    },
    /// Open a subchannel on a dilated wormhole (after its `dilated` event, or at least once the
    /// peer's `please` arrived). Answers with the subchannel and the Unix socket to connect to.
    OpenSubchannel {
        /// The dilated wormhole.
        wormhole: WormholeId,
        /// The subprotocol name.
        subprotocol: String,
    },
    /// Close a dilated wormhole (and every subchannel).
    Close {
        /// The dilated wormhole.
        wormhole: WormholeId,
    },
    /// Become the client that receives a dilated wormhole's events from now on (an app that
    /// restarted resumes this way); answered with its current state ([`ResponseBody::Attached`]).
    /// The client attached before, if still connected, gets `detached` and nothing more.
    Attach {
        /// The dilated wormhole.
        wormhole: WormholeId,
    },
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
    /// Answer to `attach`: where the dilated wormhole stands. Before [`ResponseBody::Created`],
    /// which its `wormhole` field would also match.
    Attached(DilationState),
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
    /// Answer to `open-subchannel`.
    Subchannel {
        /// The subchannel id.
        subchannel: u32,
        /// The Unix socket to connect to once, to stream the subchannel's bytes.
        socket: String,
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

/// Where a dilated wormhole stands: the answer to `attach`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DilationState {
    /// Its handle.
    pub wormhole: WormholeId,
    /// The code, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// As `list` says it: `connecting`, `waiting`, `dilated`, `reconnecting`, `closing`.
    pub state: String,
    /// The connection to the peer has been up (`open-subchannel` works from now on).
    pub dilated: bool,
    /// The connection to the peer is up now.
    pub connected: bool,
    /// The subprotocols whose subchannels the peer may open (someone sent `listen`), sorted.
    pub listening: Vec<String>,
    /// The subchannels that have a socket (open, or closed with data still waiting for its
    /// reader), by id.
    pub subchannels: Vec<SubchannelState>,
}

/// One subchannel in [`DilationState`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubchannelState {
    /// The subchannel id.
    pub subchannel: u32,
    /// Its subprotocol.
    pub subprotocol: String,
    /// The Unix socket to connect to once, while no client has connected to it yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<String>,
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
    /// The peer offers a file or directory (receiver). Unless `accept_file` was set, the
    /// daemon waits for an `accept` request.
    Offer {
        /// `file` or `directory`.
        kind: String,
        /// The offered name, reduced to its last component.
        name: String,
        /// Bytes that will travel (the file size, or the zip size of a directory).
        size: u64,
        /// Regular files inside a directory.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        numfiles: Option<u64>,
        /// Total size of the files inside a directory.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        numbytes: Option<u64>,
        /// The absolute path the data will be written to.
        destination: String,
    },
    /// Data is moving over Transit (at most about ten a second, plus one at the end).
    Progress {
        /// Bytes sent or received so far.
        done: u64,
        /// Bytes in all.
        total: u64,
    },
    /// The file or directory is complete and in place (receiver).
    Received {
        /// Its final absolute path.
        path: String,
    },
    /// The receiver confirmed the file or directory (sender).
    Sent {},
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
    /// The dilated connection is up for the first time.
    Dilated {},
    /// The dilated connection was lost; the daemon reconnects by itself.
    Disconnected {},
    /// The dilated connection is up again (subchannels resume where they were).
    Reconnected {},
    /// The peer opened a subchannel of a subprotocol we `listen` for.
    SubchannelOpened {
        /// The subchannel id.
        subchannel: u32,
        /// Its subprotocol.
        subprotocol: String,
        /// The Unix socket to connect to once, to stream the subchannel's bytes.
        socket: String,
    },
    /// A subchannel is closed both ways.
    SubchannelClosed {
        /// The subchannel id.
        subchannel: u32,
    },
    /// The peer opened a subchannel of a subprotocol outside `dilate`'s `subprotocols`: it was
    /// closed at once.
    SubchannelRefused {
        /// The subchannel id.
        subchannel: u32,
        /// The subprotocol the peer asked for.
        subprotocol: String,
    },
    /// Another client attached to this dilated wormhole: its events go there from now on.
    Detached {},
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
    /// The user rejected the verifier, or a file transfer was declined (by either side).
    Rejected,
    /// Moving the data failed: Transit, a bad hash, the peer went away, a local file error.
    Transfer,
    /// Not enough free space for the offered data.
    DiskFull,
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
    fn file_request_shapes() {
        let lines = [
            r#"{"id":5,"op":"send-file","path":"/home/u/a.pdf","verify":false}"#,
            r#"{"id":6,"op":"send-file","path":"/d","code":"4-a-b","verify":true,"relay_url":"ws://x/v1","transit_helper":"tcp:h:1","no_listen":true}"#,
            r#"{"id":7,"op":"receive","code":"4-a-b","accept_file":true,"output":"/tmp/o","transit_helper":"tcp:h:1","no_listen":true}"#,
            r#"{"id":8,"op":"receive","code":"4-a-b"}"#,
            r#"{"id":8,"op":"receive","directory":"/home/u"}"#,
            r#"{"id":9,"op":"accept","wormhole":3,"accept":false}"#,
        ];
        for line in lines {
            let request = parse_request(line).expect(line);
            assert_eq!(serde_json::to_string(&request).expect("serialises"), line);
        }
        let request = parse_request(
            r#"{"id":7,"op":"receive","code":"4-a-b","accept_file":true,"output":"/tmp/o","no_listen":true}"#,
        )
        .expect("receive");
        assert_eq!(
            request.body,
            RequestBody::Receive {
                code: Some("4-a-b".into()),
                accept_file: true,
                output: Some("/tmp/o".into()),
                directory: None,
                options: WormholeOptions::default(),
                transit: TransitOptions {
                    transit_helper: None,
                    no_listen: true
                },
            }
        );
        let (id, err) = parse_request(r#"{"id":2,"op":"send-file"}"#).expect_err("needs a path");
        assert_eq!((id, err.code), (Some(2), ErrorCode::BadRequest));
    }

    /// The Dilation ops, responses and events: exact JSON shapes, both ways.
    #[test]
    fn dilation_shapes() {
        let lines = [
            r#"{"id":1,"op":"dilate"}"#,
            r#"{"id":2,"op":"dilate","code":"4-a-b","relay_url":"ws://x/v1","transit_helper":"tcp:h:1","no_listen":true}"#,
            r#"{"id":3,"op":"dilate","code_length":3}"#,
            r#"{"id":3,"op":"dilate","subprotocols":["chat","files"]}"#,
            r#"{"id":4,"op":"listen","wormhole":2,"subprotocol":"chat"}"#,
            r#"{"id":5,"op":"open-subchannel","wormhole":2,"subprotocol":"chat"}"#,
            r#"{"id":6,"op":"close","wormhole":2}"#,
            r#"{"id":8,"op":"attach","wormhole":2}"#,
        ];
        for line in lines {
            let request = parse_request(line).expect(line);
            assert_eq!(serde_json::to_string(&request).expect("serialises"), line);
        }
        let (id, err) = parse_request(r#"{"id":7,"op":"listen","wormhole":2}"#)
            .expect_err("needs a subprotocol");
        assert_eq!((id, err.code), (Some(7), ErrorCode::BadRequest));

        let lines = [
            r#"{"id":5,"ok":{"subchannel":3,"socket":"/run/user/1/wormhole/dilation-2-3-ab.sock"}}"#,
            r#"{"wormhole":2,"event":"dilated"}"#,
            r#"{"wormhole":2,"event":"disconnected"}"#,
            r#"{"wormhole":2,"event":"reconnected"}"#,
            r#"{"wormhole":2,"event":"subchannel-opened","subchannel":4,"subprotocol":"chat","socket":"/s"}"#,
            r#"{"wormhole":2,"event":"subchannel-closed","subchannel":4}"#,
            r#"{"wormhole":2,"event":"subchannel-refused","subchannel":6,"subprotocol":"evil"}"#,
            r#"{"wormhole":2,"event":"detached"}"#,
            r#"{"id":8,"ok":{"wormhole":2,"code":"4-a-b","state":"dilated","dilated":true,"connected":true,"listening":["chat"],"subchannels":[{"subchannel":1,"subprotocol":"chat"},{"subchannel":4,"subprotocol":"chat","socket":"/s"}]}}"#,
            r#"{"id":8,"ok":{"wormhole":3,"state":"connecting","dilated":false,"connected":false,"listening":[],"subchannels":[]}}"#,
        ];
        for line in lines {
            let parsed: DaemonLine = serde_json::from_str(line).expect(line);
            assert_eq!(serde_json::to_string(&parsed).expect("serialises"), line);
        }
        let (id, err) = parse_request(r#"{"id":9,"op":"attach"}"#).expect_err("needs a wormhole");
        assert_eq!((id, err.code), (Some(9), ErrorCode::BadRequest));
        let parsed: DaemonLine = serde_json::from_str(
            r#"{"id":8,"ok":{"wormhole":2,"state":"waiting","dilated":false,"connected":false,"listening":[],"subchannels":[]}}"#,
        )
        .expect("attached");
        assert!(matches!(
            parsed,
            DaemonLine::Response(Response {
                outcome: Outcome::Ok(ResponseBody::Attached(DilationState { wormhole: 2, .. })),
                ..
            })
        ));
        let parsed: DaemonLine =
            serde_json::from_str(r#"{"id":2,"ok":{"wormhole":5}}"#).expect("created");
        assert!(
            matches!(
                parsed,
                DaemonLine::Response(Response {
                    outcome: Outcome::Ok(ResponseBody::Created { wormhole: 5 }),
                    ..
                })
            ),
            "a bare wormhole number is still `created`"
        );
        let parsed: DaemonLine =
            serde_json::from_str(r#"{"id":5,"ok":{"subchannel":3,"socket":"/s"}}"#).expect("ok");
        assert!(matches!(
            parsed,
            DaemonLine::Response(Response {
                outcome: Outcome::Ok(ResponseBody::Subchannel { subchannel: 3, .. }),
                ..
            })
        ));
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
            r#"{"wormhole":5,"event":"offer","kind":"file","name":"a.pdf","size":3,"destination":"/tmp/a.pdf"}"#,
            r#"{"wormhole":5,"event":"offer","kind":"directory","name":"d","size":300,"numfiles":2,"numbytes":10,"destination":"/tmp/d"}"#,
            r#"{"wormhole":5,"event":"progress","done":1,"total":3}"#,
            r#"{"wormhole":5,"event":"received","path":"/tmp/a.pdf"}"#,
            r#"{"wormhole":5,"event":"sent"}"#,
            r#"{"wormhole":5,"event":"error","kind":"disk-full","message":"no room"}"#,
            r#"{"wormhole":5,"event":"error","kind":"transfer","message":"gone"}"#,
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
