//! Transit connection hints and the `transit` message.
//!
//! A hint says how to reach a peer: `direct-tcp-v1` (a host and port the peer listens on) or
//! `relay-v1` (a transit relay, itself described by nested `direct-tcp-v1` hints). `tor-tcp-v1`
//! hints are parsed by the reference but only usable over Tor: we ignore them, as the reference
//! does without Tor. Unknown types, top-level or nested, are ignored; so are malformed hints.
//!
//! The transit message is `{"abilities-v1": [{"type": "direct-tcp-v1"}, {"type": "relay-v1"}],
//! "hints-v1": [...]}`; [`TransitHints::from_message`] accepts any JSON that the reference sends,
//! whatever its spacing or key order.
//!
//! Mirrors `src/wormhole/_hints.py` (`parse_hint_argv`, `parse_tcp_v1_hint`, `parse_hint`,
//! `encode_hint`) and `Common.get_connection_hints` / `add_connection_hints` of
//! `src/wormhole/transit.py`; PROTOCOL.md §3 "Hints".

use std::fmt;

use serde_json::{json, Map, Value};

/// Longest hostname we accept in a peer's hint (DNS names are at most 253 characters).
pub const MAX_HOSTNAME_LEN: usize = 255;

/// Most hints taken from one peer message; the rest are ignored (bounds the dialling work).
pub const MAX_PEER_HINTS: usize = 64;

/// A `direct-tcp-v1` hint: a TCP address, with a priority (higher is tried first).
#[derive(Clone, Debug, PartialEq)]
pub struct DirectHint {
    /// Host name or IP address literal (IPv6 without brackets).
    pub hostname: String,
    /// TCP port.
    pub port: u16,
    /// Priority; the reference's default is 0.0.
    pub priority: f64,
}

impl DirectHint {
    /// A hint with the default priority 0.0.
    #[must_use]
    pub fn new(hostname: impl Into<String>, port: u16) -> Self {
        Self {
            hostname: hostname.into(),
            port,
            priority: 0.0,
        }
    }

    /// The hint dict, as the reference encodes it.
    #[must_use]
    pub fn to_json(&self) -> Value {
        json!({
            "type": "direct-tcp-v1",
            "priority": self.priority,
            "hostname": self.hostname,
            "port": self.port,
        })
    }

    /// Parses one `direct-tcp-v1` hint dict; `None` for other types and malformed hints.
    #[must_use]
    pub fn from_json(value: &Value) -> Option<Self> {
        let obj = value.as_object()?;
        if obj.get("type").and_then(Value::as_str) != Some("direct-tcp-v1") {
            return None;
        }
        let hostname = obj.get("hostname")?.as_str()?;
        if hostname.is_empty() || hostname.len() > MAX_HOSTNAME_LEN {
            return None;
        }
        let port = u16::try_from(obj.get("port")?.as_u64()?).ok()?;
        if port == 0 {
            return None;
        }
        let priority = obj.get("priority").and_then(Value::as_f64).unwrap_or(0.0);
        Some(Self {
            hostname: hostname.to_owned(),
            port,
            priority,
        })
    }
}

impl fmt::Display for DirectHint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.hostname.contains(':') {
            write!(f, "tcp:[{}]:{}", self.hostname, self.port)
        } else {
            write!(f, "tcp:{}:{}", self.hostname, self.port)
        }
    }
}

/// A `relay-v1` hint: one transit relay, reachable through any of its direct hints.
#[derive(Clone, Debug, PartialEq)]
pub struct RelayHint {
    /// Ways to reach the relay (never empty when parsed from a peer).
    pub hints: Vec<DirectHint>,
}

impl RelayHint {
    /// The hint dict, as the reference encodes it.
    #[must_use]
    pub fn to_json(&self) -> Value {
        let hints: Vec<Value> = self.hints.iter().map(DirectHint::to_json).collect();
        json!({ "type": "relay-v1", "hints": hints })
    }

    /// Parses a relay argument, `tcp:HOST:PORT[:priority=F]` (the Python CLI's
    /// `--transit-helper`, [`parse_hint_argv`]): a relay reached through that one hint. The one
    /// parser of relay arguments, whether they come from the config file, the environment or a
    /// request.
    pub fn from_argv(argv: &str) -> Result<Self, HintError> {
        parse_hint_argv(argv).map(|hint| Self { hints: vec![hint] })
    }

    /// Parses one `relay-v1` hint dict; `None` for other types, and for relays with no usable
    /// nested hint.
    #[must_use]
    pub fn from_json(value: &Value) -> Option<Self> {
        let obj = value.as_object()?;
        if obj.get("type").and_then(Value::as_str) != Some("relay-v1") {
            return None;
        }
        let hints: Vec<DirectHint> = obj
            .get("hints")?
            .as_array()?
            .iter()
            .take(MAX_PEER_HINTS)
            .filter_map(DirectHint::from_json)
            .collect();
        if hints.is_empty() {
            None
        } else {
            Some(Self { hints })
        }
    }
}

/// Why a transit message or a `--transit-helper` argument could not be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HintError {
    /// The transit message is not a JSON object.
    #[error("the transit message is not a JSON object")]
    NotAnObject,
    /// `hints-v1` is present but not a list.
    #[error("`hints-v1` is not a list")]
    HintsNotAList,
    /// A hint argument without `TYPE:` in front.
    #[error("unparseable hint '{0}'")]
    Unparseable(String),
    /// A hint argument of another type than `tcp`.
    #[error("unknown hint type '{kind}' in '{hint}'")]
    UnknownType {
        /// The type found.
        kind: String,
        /// The whole argument.
        hint: String,
    },
    /// `tcp:[...]` with something that is not an IPv6 address in the brackets.
    #[error("invalid IPv6 address in TCP hint '{0}'")]
    BadIpv6(String),
    /// `tcp:HOST` without a port.
    #[error("unparseable TCP hint (need more colons) '{0}'")]
    NeedMoreColons(String),
    /// A port that is not a number from 1 to 65535.
    #[error("non-numeric port in TCP hint '{0}'")]
    BadPort(String),
    /// `priority=` followed by something that is not a number.
    #[error("non-float priority= in TCP hint '{0}'")]
    BadPriority(String),
}

/// The hints of one side: the body of a `transit` message.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TransitHints {
    /// Addresses this side listens on.
    pub direct: Vec<DirectHint>,
    /// Relays this side will use.
    pub relays: Vec<RelayHint>,
}

impl TransitHints {
    /// The `transit` message body: `{"abilities-v1": [...], "hints-v1": [...]}`, direct hints
    /// first, then relays, as the reference orders them.
    #[must_use]
    pub fn to_message(&self) -> Value {
        let hints: Vec<Value> = self
            .direct
            .iter()
            .map(DirectHint::to_json)
            .chain(self.relays.iter().map(RelayHint::to_json))
            .collect();
        json!({
            "abilities-v1": [{"type": "direct-tcp-v1"}, {"type": "relay-v1"}],
            "hints-v1": hints,
        })
    }

    /// Parses a peer's `transit` message body. Also accepts the body still wrapped in
    /// `{"transit": {...}}`. Abilities are ignored (as the reference does); a missing `hints-v1`
    /// means no hints; unusable hints (unknown types, Tor, malformed) are skipped.
    pub fn from_message(value: &Value) -> Result<Self, HintError> {
        let obj: &Map<String, Value> = value.as_object().ok_or(HintError::NotAnObject)?;
        if !obj.contains_key("hints-v1") {
            if let Some(inner) = obj.get("transit") {
                return Self::from_message(inner);
            }
        }
        let mut out = Self::default();
        let Some(hints) = obj.get("hints-v1") else {
            return Ok(out);
        };
        let hints = hints.as_array().ok_or(HintError::HintsNotAList)?;
        for hint in hints.iter().take(MAX_PEER_HINTS) {
            if let Some(direct) = DirectHint::from_json(hint) {
                out.direct.push(direct);
            } else if let Some(relay) = RelayHint::from_json(hint) {
                out.relays.push(relay);
            }
        }
        Ok(out)
    }
}

/// Parses a `--transit-helper` argument, `tcp:HOST:PORT[:priority=F]` (IPv6 hosts in
/// brackets), as the reference's `parse_hint_argv` does. Extra `:`-separated pieces other than
/// `priority=` are ignored.
pub fn parse_hint_argv(hint: &str) -> Result<DirectHint, HintError> {
    let (kind, value) = hint
        .split_once(':')
        .filter(|(kind, _)| !kind.is_empty() && kind.bytes().all(|b| b.is_ascii_alphanumeric()))
        .ok_or_else(|| HintError::Unparseable(hint.to_owned()))?;
    if kind != "tcp" {
        return Err(HintError::UnknownType {
            kind: kind.to_owned(),
            hint: hint.to_owned(),
        });
    }
    let (host, rest): (&str, Vec<&str>) = if let Some(bracketed) = value.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once("]:")
            .ok_or_else(|| HintError::BadIpv6(hint.to_owned()))?;
        if !looks_like_ipv6(host) {
            return Err(HintError::BadIpv6(hint.to_owned()));
        }
        (host, after.split(':').collect())
    } else {
        let mut pieces = value.split(':');
        let host = pieces.next().unwrap_or_default();
        let rest: Vec<&str> = pieces.collect();
        if rest.is_empty() {
            return Err(HintError::NeedMoreColons(hint.to_owned()));
        }
        (host, rest)
    };
    let port_str = rest.first().copied().unwrap_or_default();
    if port_str.is_empty() || !port_str.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HintError::BadPort(hint.to_owned()));
    }
    let port: u16 = port_str
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| HintError::BadPort(hint.to_owned()))?;
    let mut priority = 0.0;
    for more in rest.iter().skip(1) {
        if let Some(value) = more.strip_prefix("priority=") {
            priority = value
                .split('=')
                .next()
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|p| p.is_finite())
                .ok_or_else(|| HintError::BadPriority(hint.to_owned()))?;
        }
    }
    Ok(DirectHint {
        hostname: host.to_owned(),
        port,
        priority,
    })
}

/// A cheap, IO-free check for an IPv6 literal: hex digits and colons, at least two colons,
/// at most one `::`.
fn looks_like_ipv6(host: &str) -> bool {
    host.bytes().all(|b| b.is_ascii_hexdigit() || b == b':')
        && host.bytes().filter(|b| *b == b':').count() >= 2
        && host.matches("::").count() <= 1
        && host.split(':').all(|group| group.len() <= 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A transit message exactly as Python 0.24 sends it (spacing, float priority, relay nested,
    /// a Tor hint and an unknown type mixed in).
    const PYTHON_MESSAGE: &str = r#"{"abilities-v1": [{"type": "direct-tcp-v1"}, {"type": "relay-v1"}], "hints-v1": [{"type": "direct-tcp-v1", "priority": 0.0, "hostname": "192.168.1.20", "port": 40123}, {"type": "direct-tcp-v1", "priority": 0.0, "hostname": "fe80::1", "port": 40123}, {"type": "tor-tcp-v1", "priority": 0.0, "hostname": "abc.onion", "port": 80}, {"type": "websocket", "url": "ws://x"}, {"type": "relay-v1", "hints": [{"type": "direct-tcp-v1", "priority": 2.5, "hostname": "transit.example", "port": 4001}, {"type": "websocket-v1", "url": "ws://y"}]}]}"#;

    #[test]
    fn parses_python_message() {
        let value: Value = serde_json::from_str(PYTHON_MESSAGE).expect("valid JSON");
        let hints = TransitHints::from_message(&value).expect("valid message");
        assert_eq!(
            hints.direct,
            vec![
                DirectHint::new("192.168.1.20", 40123),
                DirectHint::new("fe80::1", 40123)
            ]
        );
        assert_eq!(
            hints.relays,
            vec![RelayHint {
                hints: vec![DirectHint {
                    hostname: "transit.example".into(),
                    port: 4001,
                    priority: 2.5
                }]
            }]
        );
    }

    /// A relay argument is one relay of one hint; whatever `parse_hint_argv` refuses, it refuses.
    #[test]
    fn relay_from_argv() {
        assert_eq!(
            RelayHint::from_argv("tcp:transit.example:4001:priority=2.5"),
            Ok(RelayHint {
                hints: vec![DirectHint {
                    hostname: "transit.example".into(),
                    port: 4001,
                    priority: 2.5
                }]
            })
        );
        assert_eq!(
            RelayHint::from_argv("tcp:[::1]:4001").map(|r| r.hints),
            Ok(vec![DirectHint::new("::1", 4001)])
        );
        for bad in [
            "",
            "transit.example:4001",
            "udp:transit.example:4001",
            "tcp:transit.example",
            "tcp:transit.example:0",
            "tcp:transit.example:port",
            "tcp:[nope]:4001",
            "tcp:transit.example:4001:priority=high",
        ] {
            assert!(RelayHint::from_argv(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn accepts_wrapped_and_missing_hints() {
        let value: Value = serde_json::from_str(PYTHON_MESSAGE).expect("valid JSON");
        let wrapped = json!({ "transit": value.clone() });
        assert_eq!(
            TransitHints::from_message(&wrapped),
            TransitHints::from_message(&value)
        );
        let empty = json!({"abilities-v1": []});
        assert_eq!(
            TransitHints::from_message(&empty),
            Ok(TransitHints::default())
        );
        assert_eq!(
            TransitHints::from_message(&json!([1])),
            Err(HintError::NotAnObject)
        );
        assert_eq!(
            TransitHints::from_message(&json!({"hints-v1": 3})),
            Err(HintError::HintsNotAList)
        );
    }

    #[test]
    fn skips_malformed_hints() {
        let value = json!({"hints-v1": [
            7,
            {"type": "direct-tcp-v1", "hostname": "a", "port": "1"},
            {"type": "direct-tcp-v1", "hostname": "a", "port": 70000},
            {"type": "direct-tcp-v1", "hostname": "a", "port": 1.5},
            {"type": "direct-tcp-v1", "hostname": 5, "port": 1},
            {"type": "direct-tcp-v1", "hostname": "", "port": 1},
            {"type": "direct-tcp-v1", "port": 1},
            {"type": "relay-v1"},
            {"type": "relay-v1", "hints": []},
            {"type": "relay-v1", "hints": [{"type": "tor-tcp-v1", "hostname": "x", "port": 1}]},
            {"hostname": "a", "port": 1},
            {"type": "direct-tcp-v1", "hostname": "ok", "port": 9, "priority": "high"},
        ]});
        let hints = TransitHints::from_message(&value).expect("an object with a list");
        assert_eq!(hints.direct, vec![DirectHint::new("ok", 9)]);
        assert!(hints.relays.is_empty());
    }

    #[test]
    fn caps_peer_hints() {
        let many: Vec<Value> = (1..1000u16)
            .map(|p| DirectHint::new("h", p).to_json())
            .collect();
        let hints = TransitHints::from_message(&json!({ "hints-v1": many })).expect("valid");
        assert_eq!(hints.direct.len(), MAX_PEER_HINTS);
    }

    #[test]
    fn message_round_trips_and_matches_python_shape() {
        let hints = TransitHints {
            direct: vec![DirectHint::new("10.0.0.2", 5000)],
            relays: vec![RelayHint {
                hints: vec![DirectHint::new("127.0.0.1", 4001)],
            }],
        };
        let msg = hints.to_message();
        assert_eq!(
            msg,
            json!({
                "abilities-v1": [{"type": "direct-tcp-v1"}, {"type": "relay-v1"}],
                "hints-v1": [
                    {"type": "direct-tcp-v1", "priority": 0.0, "hostname": "10.0.0.2", "port": 5000},
                    {"type": "relay-v1", "hints": [
                        {"type": "direct-tcp-v1", "priority": 0.0, "hostname": "127.0.0.1", "port": 4001}
                    ]},
                ],
            })
        );
        // Priority is written as a float, as Python's json.dumps does.
        let text = serde_json::to_string(&msg).expect("serialisable");
        assert!(text.contains("\"priority\":0.0"), "{text}");
        assert_eq!(TransitHints::from_message(&msg), Ok(hints));
    }

    #[test]
    fn parses_hint_arguments() {
        assert_eq!(
            parse_hint_argv("tcp:127.0.0.1:4001"),
            Ok(DirectHint::new("127.0.0.1", 4001))
        );
        assert_eq!(
            parse_hint_argv("tcp:relay.example:4001:priority=2.5"),
            Ok(DirectHint {
                hostname: "relay.example".into(),
                port: 4001,
                priority: 2.5
            })
        );
        assert_eq!(
            parse_hint_argv("tcp:[::1]:4001:other=1:priority=-1"),
            Ok(DirectHint {
                hostname: "::1".into(),
                port: 4001,
                priority: -1.0
            })
        );
        assert!(matches!(
            parse_hint_argv("relay.example"),
            Err(HintError::Unparseable(_))
        ));
        assert!(matches!(
            parse_hint_argv("ws:relay.example:4001"),
            Err(HintError::UnknownType { .. })
        ));
        assert!(matches!(
            parse_hint_argv("tcp:relay.example"),
            Err(HintError::NeedMoreColons(_))
        ));
        assert!(matches!(
            parse_hint_argv("tcp:relay.example:x"),
            Err(HintError::BadPort(_))
        ));
        assert!(matches!(
            parse_hint_argv("tcp:relay.example:99999"),
            Err(HintError::BadPort(_))
        ));
        assert!(matches!(
            parse_hint_argv("tcp:[nope]:1"),
            Err(HintError::BadIpv6(_))
        ));
        assert!(matches!(
            parse_hint_argv("tcp:h:1:priority=x"),
            Err(HintError::BadPriority(_))
        ));
    }

    #[test]
    fn displays_hints() {
        assert_eq!(DirectHint::new("h", 1).to_string(), "tcp:h:1");
        assert_eq!(DirectHint::new("::1", 2).to_string(), "tcp:[::1]:2");
    }
}
