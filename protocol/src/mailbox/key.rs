//! Key: waits for both the code and the peer's pake (in either order), sends our pake as soon as
//! the code is known, computes the session key K, and sends the `version` message right away.
//!
//! Mirrors `src/wormhole/_key.py` (`Key`, which sorts the two inputs, and `_SortedKey`).
//!
//! States ([`State`]): `Empty` → `HaveCode` (our pake sent) or `HavePeerPake` (stashed) →
//! `Done`; `Scared` (the peer's pake was malformed, or SPAKE2 rejected it).
//!
//! Inputs ([`In`]): `GotCode` (Code); `GotPake` (Order: the peer's pake body).
//!
//! Outputs: `add_message("pake", {"pake_v1": hex})` and `add_message("version", SecretBox)` →
//! Mailbox; `got_key(K)` → Boss (before `version` is queued) and → Receive (after); `scared` →
//! Boss.

use serde::ser::SerializeMap;
use serde::Serialize;

use super::server_messages::to_python_json;
use super::{boss, mailbox, receive, send, Ctx, Route, WormholeConfig};
use crate::crypto::Pake;

/// Inputs of the key machine.
#[derive(Debug)]
pub(crate) enum In {
    GotCode(String),
    GotPake(Vec<u8>),
}

/// Key states.
#[derive(Debug)]
pub(crate) enum State {
    Empty,
    HaveCode { pake: Pake },
    HavePeerPake { body: Vec<u8> },
    Done,
    Scared,
}

/// The key machine.
#[derive(Debug)]
pub(crate) struct Key {
    appid: String,
    side: String,
    /// The plaintext of our `version` message.
    versions: Vec<u8>,
    state: State,
}

/// The versions message: the extra keys, then `app_versions` (Python's order).
struct Versions<'a>(&'a WormholeConfig);

impl Serialize for Versions<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (k, v) in &self.0.extra_versions {
            if k != "app_versions" {
                map.serialize_entry(k, v)?;
            }
        }
        map.serialize_entry("app_versions", &self.0.app_versions)?;
        map.end()
    }
}

impl Key {
    pub(crate) fn new(config: &WormholeConfig) -> Self {
        Self {
            appid: config.appid.clone(),
            side: config.side.clone(),
            versions: to_python_json(&Versions(config)).into_bytes(),
            state: State::Empty,
        }
    }

    pub(crate) fn handle(&mut self, input: In, ctx: &mut Ctx<'_>) {
        let state = std::mem::replace(&mut self.state, State::Done);
        self.state = match (state, input) {
            (State::Empty, In::GotCode(code)) => State::HaveCode {
                pake: self.start(&code, ctx),
            },
            (State::Empty, In::GotPake(body)) => State::HavePeerPake { body },
            (State::HaveCode { pake }, In::GotPake(body)) => self.finish(pake, &body, ctx),
            (State::HavePeerPake { body }, In::GotCode(code)) => {
                let pake = self.start(&code, ctx);
                self.finish(pake, &body, ctx)
            }
            // A second code or pake cannot happen (Code and Mailbox see to it): ignore.
            (state, _) => state,
        };
    }

    /// Starts SPAKE2 and sends `{"pake_v1": hex}`.
    fn start(&self, code: &str, ctx: &mut Ctx<'_>) -> Pake {
        let (pake, msg) = Pake::start(code, &self.appid, ctx.rng);
        let body = to_python_json(&serde_json::json!({ "pake_v1": hex::encode(msg) }));
        ctx.route(Route::Mailbox(mailbox::In::Add {
            phase: "pake".into(),
            body: body.into_bytes(),
        }));
        pake
    }

    /// Parses the peer's pake body, computes K, sends `version`.
    fn finish(&self, pake: Pake, body: &[u8], ctx: &mut Ctx<'_>) -> State {
        let Some(peer_msg) = parse_pake_body(body) else {
            ctx.route(Route::Boss(boss::In::Scared));
            return State::Scared;
        };
        let Ok(key) = pake.finish(&peer_msg) else {
            ctx.route(Route::Boss(boss::In::Scared));
            return State::Scared;
        };
        ctx.route(Route::Boss(boss::In::GotKey(key)));
        send::encrypt_and_send(&key, &self.side, "version".into(), &self.versions, ctx);
        ctx.route(Route::Receive(receive::In::GotKey(key)));
        State::Done
    }
}

/// `{"pake_v1": "<hex>"}` → the SPAKE2 message; `None` if anything is off.
fn parse_pake_body(body: &[u8]) -> Option<Vec<u8>> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let hex_msg = value.as_object()?.get("pake_v1")?.as_str()?;
    hex::decode(hex_msg).ok()
}

#[cfg(test)]
mod tests {
    use rand_chacha::rand_core::SeedableRng;

    use super::*;
    use crate::crypto;
    use crate::mailbox::Harness;

    fn config(side: &str) -> WormholeConfig {
        WormholeConfig {
            appid: "lothar.com/wormhole/text-or-file-xfer".into(),
            side: side.into(),
            app_versions: serde_json::json!({}),
            extra_versions: serde_json::Map::new(),
            rng_seed: [0; 32],
        }
    }

    /// Takes the Mailbox adds (phase, body) and the other routes (Debug text).
    fn split(h: &mut Harness) -> (Vec<(String, Vec<u8>)>, Vec<String>) {
        let mut adds = Vec::new();
        let mut others = Vec::new();
        for r in h.take() {
            match r {
                Route::Mailbox(mailbox::In::Add { phase, body }) => adds.push((phase, body)),
                other => others.push(format!("{other:?}")),
            }
        }
        (adds, others)
    }

    #[test]
    fn versions_plaintext_is_python_shaped() {
        assert_eq!(
            Key::new(&config("a")).versions,
            br#"{"app_versions": {}}"#.to_vec()
        );
        let mut c = config("a");
        c.extra_versions
            .insert("can-dilate".into(), serde_json::json!(["ged"]));
        assert_eq!(
            Key::new(&c).versions,
            br#"{"can-dilate": ["ged"], "app_versions": {}}"#.to_vec()
        );
    }

    /// Both orders (code then pake, pake then code) give the same K on both sides, send pake
    /// and then version, and tell Boss before Receive.
    #[test]
    fn code_and_pake_in_either_order() {
        let mut ha = Harness::new();
        let mut hb = Harness::new();
        hb.rng = rand_chacha::ChaCha20Rng::from_seed([9; 32]);
        let mut a = Key::new(&config("aaaaaaaaaa"));
        let mut b = Key::new(&config("bbbbbbbbbb"));
        a.handle(In::GotCode("4-purple-sausages".into()), &mut ha.ctx());
        let (a_adds, a_other) = split(&mut ha);
        assert_eq!(a_adds.len(), 1);
        assert_eq!(a_adds[0].0, "pake");
        let a_body = String::from_utf8(a_adds[0].1.clone()).expect("utf-8");
        assert!(a_body.starts_with(r#"{"pake_v1": "53"#), "{a_body}");
        assert!(a_other.is_empty());

        // B gets A's pake before its own code.
        b.handle(In::GotPake(a_adds[0].1.clone()), &mut hb.ctx());
        assert!(hb.routes().is_empty());
        b.handle(In::GotCode("4-purple-sausages".into()), &mut hb.ctx());
        let mut b_routes = hb.take();
        let b_adds: Vec<(String, Vec<u8>)> = b_routes
            .iter()
            .filter_map(|r| match r {
                Route::Mailbox(mailbox::In::Add { phase, body }) => {
                    Some((phase.clone(), body.clone()))
                }
                _ => None,
            })
            .collect();
        b_routes.retain(|r| !matches!(r, Route::Mailbox(_)));
        let b_other: Vec<String> = b_routes.iter().map(|r| format!("{r:?}")).collect();
        assert_eq!(
            b_adds.iter().map(|a| a.0.as_str()).collect::<Vec<_>>(),
            ["pake", "version"]
        );
        assert!(b_other[0].starts_with("Boss(GotKey("));
        assert!(b_other[1].starts_with("Receive(GotKey("));

        a.handle(In::GotPake(b_adds[0].1.clone()), &mut ha.ctx());
        let (a_adds, _) = split(&mut ha);
        assert_eq!(a_adds[0].0, "version");

        // B's Boss(GotKey) carries K; A's version decrypts under A's side with it.
        assert!(matches!(a.state, State::Done));
        let Route::Boss(boss::In::GotKey(key)) = b_routes.remove(0) else {
            panic!("Boss(GotKey) first")
        };
        let k = crypto::phase_key(&key, "aaaaaaaaaa", "version");
        assert_eq!(
            crypto::secretbox_open(&k, &a_adds[0].1).as_deref(),
            Ok(&br#"{"app_versions": {}}"#[..])
        );
    }

    #[test]
    fn bad_pake_bodies_are_scary() {
        for body in [
            &b"not json"[..],
            br#"{"pake_v2": "53"}"#,
            br#"{"pake_v1": "zz"}"#,
            br#"{"pake_v1": 5}"#,
            br#"["pake_v1"]"#,
            br#"{"pake_v1": "5300"}"#,
        ] {
            let mut h = Harness::new();
            let mut k = Key::new(&config("a"));
            k.handle(In::GotCode("4-x".into()), &mut h.ctx());
            h.queue.clear();
            k.handle(In::GotPake(body.to_vec()), &mut h.ctx());
            assert_eq!(h.routes(), vec!["Boss(Scared)"]);
            assert!(matches!(k.state, State::Scared));
        }
    }

    #[test]
    fn reflected_pake_is_scary() {
        let mut h = Harness::new();
        let mut k = Key::new(&config("a"));
        k.handle(In::GotCode("4-x".into()), &mut h.ctx());
        let (adds, _) = split(&mut h);
        k.handle(In::GotPake(adds[0].1.clone()), &mut h.ctx());
        assert_eq!(h.routes(), vec!["Boss(Scared)"]);
    }
}
