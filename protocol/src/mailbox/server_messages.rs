//! Mailbox server wire messages (PROTOCOL.md §1).
//!
//! - [`ClientMessage`]: what a client sends. [`ClientMessage::to_json`] writes the exact bytes the
//!   Python client puts on the wire: its fields in Python's order, then `id`, then `type`, with
//!   Python's `json.dumps` separators (`", "`, `": "`) and `\u` escapes for non-ASCII
//!   (see [`to_python_json`]).
//! - [`ServerMessage`]: what the server sends, parsed leniently: extra fields are ignored, `id` may
//!   be `null` or absent, and an unknown `type` parses as [`ServerMessage::Unknown`].
//!
//! Mirrors the `_tx` and `_response_handle_*` halves of `src/wormhole/_rendezvous.py`.

use std::io;

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};

use super::Mood;

/// The `client_version` we send in `bind` (Python sends `["python", "0.24.0"]`).
pub const CLIENT_VERSION: [&str; 2] = ["wormholed", env!("CARGO_PKG_VERSION")];

/// A message from a client to the mailbox server (its `type` is the variant, kebab-case).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ClientMessage {
    /// Must come first (except `ping`).
    Bind {
        /// Application id.
        appid: String,
        /// Our side: 10 hex chars.
        side: String,
        /// Optional `[implementation, version]`.
        #[serde(default)]
        client_version: Option<Vec<String>>,
    },
    /// Ask for the nameplates in use.
    List,
    /// Allocate (and claim) a nameplate.
    Allocate,
    /// Claim a nameplate; answered by `claimed {mailbox}`.
    Claim {
        /// Digits.
        nameplate: String,
    },
    /// Release the claimed nameplate; answered by `released`.
    Release {
        /// The nameplate (optional on the wire; must equal the claim).
        #[serde(default)]
        nameplate: Option<String>,
    },
    /// Open (subscribe to) a mailbox.
    Open {
        /// The mailbox id from `claimed`.
        mailbox: String,
    },
    /// Add a message to the open mailbox.
    Add {
        /// Phase name: `pake`, `version`, `0`, `1`, ...
        phase: String,
        /// Hex-encoded body.
        body: String,
    },
    /// Close the mailbox; answered by `closed`.
    Close {
        /// The mailbox (optional on the wire).
        #[serde(default)]
        mailbox: Option<String>,
        /// How it went.
        #[serde(default)]
        mood: Option<Mood>,
    },
    /// Keepalive at the JSON level; answered by `pong`.
    Ping {
        /// Echoed in `pong`.
        ping: u64,
    },
}

/// A client message as parsed by a server: the message and its `id`, if any.
#[derive(Deserialize)]
struct InboundClientMessage {
    #[serde(default)]
    id: Option<String>,
    #[serde(flatten)]
    message: ClientMessage,
}

impl ClientMessage {
    /// The value of `type` on the wire.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Bind { .. } => "bind",
            Self::List => "list",
            Self::Allocate => "allocate",
            Self::Claim { .. } => "claim",
            Self::Release { .. } => "release",
            Self::Open { .. } => "open",
            Self::Add { .. } => "add",
            Self::Close { .. } => "close",
            Self::Ping { .. } => "ping",
        }
    }

    /// The JSON text frame, exactly as the Python client writes it, with this `id`
    /// (Python: 4 random hex chars).
    #[must_use]
    pub fn to_json(&self, id: &str) -> String {
        to_python_json(&WithId { message: self, id })
    }

    /// Parses a client frame (what a server does; used by tests and tools). Returns the `id` too.
    pub fn parse(text: &str) -> Result<(Option<String>, Self), serde_json::Error> {
        let inbound: InboundClientMessage = serde_json::from_str(text)?;
        Ok((inbound.id, inbound.message))
    }
}

/// Serialises a client message in Python's key order: fields, `id`, `type`.
struct WithId<'a> {
    message: &'a ClientMessage,
    id: &'a str,
}

impl Serialize for WithId<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        match self.message {
            ClientMessage::Bind {
                appid,
                side,
                client_version,
            } => {
                map.serialize_entry("appid", appid)?;
                map.serialize_entry("side", side)?;
                if let Some(version) = client_version {
                    map.serialize_entry("client_version", version)?;
                }
            }
            ClientMessage::List | ClientMessage::Allocate => {}
            ClientMessage::Claim { nameplate } => map.serialize_entry("nameplate", nameplate)?,
            ClientMessage::Release { nameplate } => {
                if let Some(nameplate) = nameplate {
                    map.serialize_entry("nameplate", nameplate)?;
                }
            }
            ClientMessage::Open { mailbox } => map.serialize_entry("mailbox", mailbox)?,
            ClientMessage::Add { phase, body } => {
                map.serialize_entry("phase", phase)?;
                map.serialize_entry("body", body)?;
            }
            ClientMessage::Close { mailbox, mood } => {
                if let Some(mailbox) = mailbox {
                    map.serialize_entry("mailbox", mailbox)?;
                }
                if let Some(mood) = mood {
                    map.serialize_entry("mood", mood)?;
                }
            }
            ClientMessage::Ping { ping } => map.serialize_entry("ping", ping)?,
        }
        map.serialize_entry("id", self.id)?;
        map.serialize_entry("type", self.message.kind())?;
        map.end()
    }
}

/// One nameplate of a `nameplates` message (the server may add attributes later).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct NameplateEntry {
    /// The nameplate, digits.
    pub id: String,
}

/// The body of `welcome`. Every key is optional; unknown keys are ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Welcome {
    /// Message of the day, to show the user.
    #[serde(default)]
    pub motd: Option<String>,
    /// The server refuses us; the client must abort.
    #[serde(default)]
    pub error: Option<String>,
    /// The newest CLI version the server knows of (informational).
    #[serde(default)]
    pub current_cli_version: Option<String>,
}

/// A message from the mailbox server. Every one also carries `server_tx` (ignored).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ServerMessage {
    /// Sent on connect.
    Welcome {
        /// Its body.
        welcome: Welcome,
    },
    /// Sent before processing each command; `id` is the command's or `null`.
    Ack {
        /// The command's id.
        #[serde(default)]
        id: Option<String>,
    },
    /// Answer to `list`.
    Nameplates {
        /// The nameplates in use.
        nameplates: Vec<NameplateEntry>,
    },
    /// Answer to `allocate`.
    Allocated {
        /// The allocated (and claimed) nameplate.
        nameplate: String,
    },
    /// Answer to `claim`.
    Claimed {
        /// The mailbox bound to the nameplate.
        mailbox: String,
    },
    /// Answer to `release`.
    Released,
    /// A message in the open mailbox (ours included).
    Message {
        /// Who added it.
        side: String,
        /// Its phase.
        phase: String,
        /// Hex-encoded body.
        body: String,
        /// The id of the `add`.
        #[serde(default)]
        id: Option<String>,
        /// When the server received it.
        #[serde(default)]
        server_rx: Option<f64>,
    },
    /// Answer to `close`.
    Closed,
    /// Answer to `ping`.
    Pong {
        /// The echoed `ping`.
        #[serde(default)]
        pong: Option<u64>,
    },
    /// The server rejected a command (`crowded`, `must bind first` ...).
    Error {
        /// What went wrong.
        error: String,
        /// The command that caused it (any JSON).
        #[serde(default)]
        orig: Option<serde_json::Value>,
    },
    /// A `type` this client does not know: logged and ignored.
    #[serde(other)]
    Unknown,
}

impl ServerMessage {
    /// Parses one text frame.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// `json.dumps(value)` as Python writes it: `", "` and `": "` separators, every character outside
/// printable ASCII escaped as `\uXXXX` (surrogate pairs above U+FFFF).
#[must_use]
pub fn to_python_json<T: Serialize + ?Sized>(value: &T) -> String {
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    // Serialising our own types into a Vec cannot fail (no IO errors, string keys only).
    if value.serialize(&mut serializer).is_err() {
        return String::new();
    }
    // The formatter only writes ASCII.
    String::from_utf8(out).unwrap_or_default()
}

/// A serde_json formatter that mimics Python's `json.dumps` defaults.
struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        for c in fragment.chars() {
            if (' '..='~').contains(&c) {
                let mut buf = [0u8; 4];
                writer.write_all(c.encode_utf8(&mut buf).as_bytes())?;
            } else {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(writer, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind() -> ClientMessage {
        ClientMessage::Bind {
            appid: "lothar.com/wormhole/text-or-file-xfer".into(),
            side: "aaaaaaaaaa".into(),
            client_version: Some(vec!["python".into(), "0.24.0".into()]),
        }
    }

    /// The exact bytes `json.dumps` produced in the Python client for each command.
    #[test]
    fn client_messages_match_python_bytes() {
        let cases = [
            (
                bind(),
                r#"{"appid": "lothar.com/wormhole/text-or-file-xfer", "side": "aaaaaaaaaa", "client_version": ["python", "0.24.0"], "id": "abcd", "type": "bind"}"#,
            ),
            (ClientMessage::List, r#"{"id": "abcd", "type": "list"}"#),
            (
                ClientMessage::Allocate,
                r#"{"id": "abcd", "type": "allocate"}"#,
            ),
            (
                ClientMessage::Claim {
                    nameplate: "7".into(),
                },
                r#"{"nameplate": "7", "id": "abcd", "type": "claim"}"#,
            ),
            (
                ClientMessage::Release {
                    nameplate: Some("7".into()),
                },
                r#"{"nameplate": "7", "id": "abcd", "type": "release"}"#,
            ),
            (
                ClientMessage::Open {
                    mailbox: "abcdefghijklm".into(),
                },
                r#"{"mailbox": "abcdefghijklm", "id": "abcd", "type": "open"}"#,
            ),
            (
                ClientMessage::Add {
                    phase: "pake".into(),
                    body: "7b7d".into(),
                },
                r#"{"phase": "pake", "body": "7b7d", "id": "abcd", "type": "add"}"#,
            ),
            (
                ClientMessage::Close {
                    mailbox: Some("abcdefghijklm".into()),
                    mood: Some(Mood::Happy),
                },
                r#"{"mailbox": "abcdefghijklm", "mood": "happy", "id": "abcd", "type": "close"}"#,
            ),
            (
                ClientMessage::Ping { ping: 5 },
                r#"{"ping": 5, "id": "abcd", "type": "ping"}"#,
            ),
        ];
        for (message, expected) in cases {
            assert_eq!(message.to_json("abcd"), expected);
            assert_eq!(
                ClientMessage::parse(expected).expect("parses"),
                (Some("abcd".to_owned()), message)
            );
        }
    }

    #[test]
    fn optional_fields_are_omitted() {
        assert_eq!(
            ClientMessage::Release { nameplate: None }.to_json("0000"),
            r#"{"id": "0000", "type": "release"}"#
        );
        assert_eq!(
            ClientMessage::Close {
                mailbox: None,
                mood: None
            }
            .to_json("0000"),
            r#"{"id": "0000", "type": "close"}"#
        );
    }

    #[test]
    fn python_json_escapes_like_json_dumps() {
        // Python: json.dumps({"x": "caf\u00e9 \U0001F600\n\"\\ \x7f"})
        let value = serde_json::json!({"x": "caf\u{e9} \u{1F600}\n\"\\ \u{7f}"});
        assert_eq!(
            to_python_json(&value),
            r#"{"x": "caf\u00e9 \ud83d\ude00\n\"\\ \u007f"}"#
        );
        assert_eq!(
            to_python_json(&serde_json::json!({"app_versions": {}})),
            r#"{"app_versions": {}}"#
        );
        assert_eq!(
            to_python_json(&serde_json::json!({"pake_v1": "53aa"})),
            r#"{"pake_v1": "53aa"}"#
        );
    }

    /// Frames as the 0.8.0 server writes them (`server_tx` on every one, `id` null in acks of
    /// commands without one, no `id` in direct replies).
    #[test]
    fn server_messages_parse() {
        let cases = [
            (
                r#"{"type": "welcome", "welcome": {"motd": "hi", "your-address": {"port": 1, "ipv4": "127.0.0.1"}}, "server_tx": 1.5}"#,
                ServerMessage::Welcome {
                    welcome: Welcome {
                        motd: Some("hi".into()),
                        ..Welcome::default()
                    },
                },
            ),
            (
                r#"{"type": "welcome", "welcome": {"error": "go away", "current_cli_version": "0.24.0"}, "server_tx": 1}"#,
                ServerMessage::Welcome {
                    welcome: Welcome {
                        motd: None,
                        error: Some("go away".into()),
                        current_cli_version: Some("0.24.0".into()),
                    },
                },
            ),
            (
                r#"{"type": "ack", "id": "abcd", "server_tx": 1.0}"#,
                ServerMessage::Ack {
                    id: Some("abcd".into()),
                },
            ),
            (
                r#"{"type": "ack", "id": null, "server_tx": 1.0}"#,
                ServerMessage::Ack { id: None },
            ),
            (
                r#"{"type": "nameplates", "nameplates": [{"id": "7"}, {"id": "12", "x": 1}], "server_tx": 1.0}"#,
                ServerMessage::Nameplates {
                    nameplates: vec![
                        NameplateEntry { id: "7".into() },
                        NameplateEntry { id: "12".into() },
                    ],
                },
            ),
            (
                r#"{"type": "allocated", "nameplate": "3", "server_tx": 1.0}"#,
                ServerMessage::Allocated {
                    nameplate: "3".into(),
                },
            ),
            (
                r#"{"type": "claimed", "mailbox": "abcdefghijklm", "server_tx": 1.0}"#,
                ServerMessage::Claimed {
                    mailbox: "abcdefghijklm".into(),
                },
            ),
            (
                r#"{"type": "released", "server_tx": 1.0}"#,
                ServerMessage::Released,
            ),
            (
                r#"{"type": "message", "side": "aaaaaaaaaa", "phase": "pake", "body": "7b7d", "server_rx": 2.25, "id": "abcd", "server_tx": 3.0}"#,
                ServerMessage::Message {
                    side: "aaaaaaaaaa".into(),
                    phase: "pake".into(),
                    body: "7b7d".into(),
                    id: Some("abcd".into()),
                    server_rx: Some(2.25),
                },
            ),
            (
                r#"{"type": "message", "side": "a", "phase": "0", "body": "", "id": null}"#,
                ServerMessage::Message {
                    side: "a".into(),
                    phase: "0".into(),
                    body: String::new(),
                    id: None,
                    server_rx: None,
                },
            ),
            (
                r#"{"type": "closed", "server_tx": 1.0}"#,
                ServerMessage::Closed,
            ),
            (
                r#"{"type": "pong", "pong": 5, "server_tx": 1.0}"#,
                ServerMessage::Pong { pong: Some(5) },
            ),
            (
                r#"{"type": "error", "error": "crowded", "orig": {"type": "claim", "nameplate": "7"}, "server_tx": 1.0}"#,
                ServerMessage::Error {
                    error: "crowded".into(),
                    orig: Some(serde_json::json!({"type": "claim", "nameplate": "7"})),
                },
            ),
            (
                r#"{"type": "submit-permissions", "server_tx": 1.0}"#,
                ServerMessage::Unknown,
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(ServerMessage::parse(text).expect(text), expected, "{text}");
        }
    }

    #[test]
    fn malformed_server_messages_are_errors() {
        for text in [
            "",
            "not json",
            "[]",
            r#"{"no": "type"}"#,
            r#"{"type": "claimed"}"#,
            r#"{"type": "nameplates", "nameplates": "7"}"#,
            r#"{"type": "message", "side": 1, "phase": "0", "body": ""}"#,
        ] {
            assert!(ServerMessage::parse(text).is_err(), "{text}");
        }
    }
}
