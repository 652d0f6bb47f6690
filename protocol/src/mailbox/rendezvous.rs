//! Rendezvous connector: the connection to the mailbox server, and the routing of its messages.
//!
//! Mirrors `src/wormhole/_rendezvous.py` (`RendezvousConnector`, plus the reconnect policy of
//! Twisted's `ClientService` that it uses).
//!
//! States ([`State`]): `Idle` (not started) → `Connecting` → `Connected` → `Waiting` (backoff
//! before the next attempt) → `Connecting` … ; `Stopped` (after [`In::Stop`], or when the first
//! connection failed).
//!
//! Inputs ([`In`]): `Start`; `Connected`, `ConnectFailed`, `ConnectionLost`, `ServerText`,
//! `Timeout` from the host; `Tx` (a command to send) from the Nameplate, Mailbox, Lister and
//! Allocator machines; `Stop` from the Terminator.
//!
//! Outputs: [`Output::Connect`], [`Output::SendFrame`], [`Output::Disconnect`] to the host;
//! `connected`/`lost` to Nameplate, Mailbox, Lister, Allocator; each parsed server message to its
//! machine (welcome/error → Boss, nameplates → Lister, allocated → Allocator, claimed/released →
//! Nameplate, message/closed → Mailbox); `stopped` to the Terminator; fatal errors to the Boss.
//!
//! Reconnect policy: every failed attempt and every loss waits [`INITIAL_BACKOFF`], then
//! ×[`BACKOFF_FACTOR`] per failed attempt, capped at [`MAX_BACKOFF`]. Before any connection ever
//! opened, [`FIRST_CONNECT_ATTEMPTS`] failed attempts in a row are fatal (a wrong URL fails in a few
//! seconds, a busy server that times out or refuses now and then is tried again); each retry is
//! a warning. The reference makes the first failure fatal; 46 of 300 exchanges started at once
//! against a server with a listen backlog of 50 failed that way.
//! The delay is reset only after a healthy connection (one that stayed up [`HEALTHY_AFTER`]), so
//! a server that accepts and then drops us does not make a tight loop.

use std::time::{Duration, Instant};

use rand_chacha::rand_core::RngCore;

use super::server_messages::{ClientMessage, ServerMessage, CLIENT_VERSION};
use super::{
    allocator, boss, lister, mailbox, nameplate, terminator, Ctx, Output, Route, WormholeError,
};

/// Delay before the first reconnection attempt.
pub(crate) const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// Growth of the delay per failed attempt.
pub(crate) const BACKOFF_FACTOR: f64 = 1.5;
/// Upper bound of the delay.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Attempts at the very first connection before the wormhole fails (waiting 1, 1.5, 2.25 and
/// 3.4 s between them).
pub(crate) const FIRST_CONNECT_ATTEMPTS: u32 = 5;
/// A connection that stayed up this long resets the backoff.
pub(crate) const HEALTHY_AFTER: Duration = Duration::from_secs(10);
/// How much of an odd server frame is quoted in a warning or error.
const QUOTE_LIMIT: usize = 200;

/// Inputs of the rendezvous connector.
#[derive(Debug)]
pub(crate) enum In {
    /// Begin: ask the host to connect.
    Start,
    /// The websocket is open.
    Connected,
    /// The connection attempt failed.
    ConnectFailed(String),
    /// The open websocket is gone.
    ConnectionLost,
    /// A text frame from the server.
    ServerText(String),
    /// The backoff timer fired.
    Timeout,
    /// Send this command (dropped when not connected: every machine re-sends on `connected`).
    Tx(ClientMessage),
    /// Stop: disconnect and never reconnect.
    Stop,
}

/// Connection state.
#[derive(Debug)]
pub(crate) enum State {
    /// Not started yet.
    Idle,
    /// A connection attempt is under way.
    Connecting,
    /// The websocket is open since `since`.
    Connected { since: Instant },
    /// Waiting until `until` before the next attempt.
    Waiting { until: Instant },
    /// Stopped for good.
    Stopped,
}

/// The rendezvous connector.
#[derive(Debug)]
pub(crate) struct Rendezvous {
    appid: String,
    side: String,
    state: State,
    /// Whether any connection ever opened (before that, failures are counted).
    ever_connected: bool,
    /// Failed attempts in a row before any connection opened.
    first_failures: u32,
    /// The delay before the next reconnection attempt.
    backoff: Duration,
}

impl Rendezvous {
    pub(crate) fn new(appid: String, side: String) -> Self {
        Self {
            appid,
            side,
            state: State::Idle,
            ever_connected: false,
            first_failures: 0,
            backoff: INITIAL_BACKOFF,
        }
    }

    /// When the backoff timer wants to fire.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Waiting { until } => Some(until),
            _ => None,
        }
    }

    pub(crate) fn handle(&mut self, input: In, ctx: &mut Ctx<'_>) {
        match input {
            In::Start => {
                if matches!(self.state, State::Idle) {
                    self.state = State::Connecting;
                    ctx.output(Output::Connect);
                }
            }
            In::Connected => {
                if matches!(self.state, State::Connecting) {
                    self.state = State::Connected { since: ctx.now };
                    self.ever_connected = true;
                    self.send(
                        ClientMessage::Bind {
                            appid: self.appid.clone(),
                            side: self.side.clone(),
                            client_version: Some(
                                CLIENT_VERSION.iter().map(|s| (*s).to_owned()).collect(),
                            ),
                        },
                        ctx,
                    );
                    ctx.route(Route::Nameplate(nameplate::In::Connected));
                    ctx.route(Route::Mailbox(mailbox::In::Connected));
                    ctx.route(Route::Lister(lister::In::Connected));
                    ctx.route(Route::Allocator(allocator::In::Connected));
                }
            }
            In::ConnectFailed(why) => {
                if matches!(self.state, State::Connecting) {
                    self.connection_failed(why, ctx);
                }
            }
            In::ConnectionLost => match self.state {
                State::Connected { since } => {
                    if ctx.now.saturating_duration_since(since) >= HEALTHY_AFTER {
                        self.backoff = INITIAL_BACKOFF;
                    }
                    ctx.route(Route::Nameplate(nameplate::In::Lost));
                    ctx.route(Route::Mailbox(mailbox::In::Lost));
                    ctx.route(Route::Lister(lister::In::Lost));
                    ctx.route(Route::Allocator(allocator::In::Lost));
                    self.wait(ctx);
                }
                State::Connecting => {
                    self.connection_failed("the connection closed while opening".into(), ctx)
                }
                State::Idle | State::Waiting { .. } | State::Stopped => {}
            },
            In::Timeout => {
                if let State::Waiting { until } = self.state {
                    if ctx.now >= until {
                        self.state = State::Connecting;
                        ctx.output(Output::Connect);
                    }
                }
            }
            In::ServerText(text) => {
                if matches!(self.state, State::Connected { .. }) {
                    self.receive(&text, ctx);
                }
            }
            In::Tx(message) => {
                if matches!(self.state, State::Connected { .. }) {
                    self.send(message, ctx);
                }
            }
            In::Stop => {
                match self.state {
                    State::Connecting | State::Connected { .. } => ctx.output(Output::Disconnect),
                    State::Idle | State::Waiting { .. } | State::Stopped => {}
                }
                if !matches!(self.state, State::Stopped) {
                    self.state = State::Stopped;
                    ctx.route(Route::Terminator(terminator::In::StoppedRendezvous));
                }
            }
        }
    }

    /// A connection attempt failed: back off and retry, unless no connection ever opened in
    /// [`FIRST_CONNECT_ATTEMPTS`] attempts.
    fn connection_failed(&mut self, why: String, ctx: &mut Ctx<'_>) {
        if self.ever_connected {
            return self.wait(ctx);
        }
        self.first_failures += 1;
        if self.first_failures >= FIRST_CONNECT_ATTEMPTS {
            self.state = State::Stopped;
            ctx.route(Route::Boss(boss::In::Fatal(WormholeError::ConnectFailed(
                why,
            ))));
            return;
        }
        ctx.route(Route::Boss(boss::In::Warning(format!(
            "cannot reach the mailbox server ({why}); trying again in {:.1} s",
            self.backoff.as_secs_f64()
        ))));
        self.wait(ctx);
    }

    /// Arms the backoff timer and grows the delay.
    fn wait(&mut self, ctx: &mut Ctx<'_>) {
        self.state = State::Waiting {
            until: ctx.now + self.backoff,
        };
        self.backoff = self.backoff.mul_f64(BACKOFF_FACTOR).min(MAX_BACKOFF);
    }

    /// Serialises a command with a fresh 4-hex-char id and hands it to the host.
    fn send(&mut self, message: ClientMessage, ctx: &mut Ctx<'_>) {
        let mut id = [0u8; 2];
        ctx.rng.fill_bytes(&mut id);
        ctx.output(Output::SendFrame(message.to_json(&hex::encode(id))));
    }

    /// Parses one server frame and routes it.
    fn receive(&mut self, text: &str, ctx: &mut Ctx<'_>) {
        let message = match ServerMessage::parse(text) {
            Ok(message) => message,
            Err(e) => {
                ctx.route(Route::Boss(boss::In::ProtocolError(format!(
                    "malformed message from the mailbox server ({e}): {}",
                    quote(text)
                ))));
                return;
            }
        };
        match message {
            ServerMessage::Welcome { welcome } => {
                ctx.route(Route::Boss(boss::In::RxWelcome(welcome)))
            }
            ServerMessage::Ack { .. } | ServerMessage::Pong { .. } => {}
            ServerMessage::Nameplates { nameplates } => ctx.route(Route::Lister(
                lister::In::RxNameplates(nameplates.into_iter().map(|n| n.id).collect()),
            )),
            ServerMessage::Allocated { nameplate } => {
                ctx.route(Route::Allocator(allocator::In::RxAllocated(nameplate)))
            }
            ServerMessage::Claimed { mailbox } => {
                ctx.route(Route::Nameplate(nameplate::In::RxClaimed(mailbox)))
            }
            ServerMessage::Released => ctx.route(Route::Nameplate(nameplate::In::RxReleased)),
            ServerMessage::Message {
                side, phase, body, ..
            } => match hex::decode(&body) {
                Ok(body) => ctx.route(Route::Mailbox(mailbox::In::RxMessage { side, phase, body })),
                Err(_) if side == self.side => {
                    // Our own echo: only its phase matters (it retires the resend queue entry).
                    ctx.route(Route::Mailbox(mailbox::In::RxMessage {
                        side,
                        phase,
                        body: Vec::new(),
                    }))
                }
                Err(_) => ctx.route(Route::Boss(boss::In::Scared)),
            },
            ServerMessage::Closed => ctx.route(Route::Mailbox(mailbox::In::RxClosed)),
            ServerMessage::Error { error, .. } => ctx.route(Route::Boss(boss::In::RxError(error))),
            ServerMessage::Unknown => ctx.route(Route::Boss(boss::In::Warning(format!(
                "ignoring a message of unknown type from the mailbox server: {}",
                quote(text)
            )))),
        }
    }
}

/// The start of `text`, for messages (bounded, cut on a char boundary).
fn quote(text: &str) -> String {
    match text.char_indices().nth(QUOTE_LIMIT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailbox::Harness;

    fn rc() -> Rendezvous {
        Rendezvous::new("appid".into(), "aaaaaaaaaa".into())
    }

    fn frames(h: &mut Harness) -> Vec<Output> {
        h.out.drain(..).collect()
    }

    #[test]
    fn start_connects_then_binds_and_notifies_in_order() {
        let mut h = Harness::new();
        let mut rc = rc();
        rc.handle(In::Start, &mut h.ctx());
        assert_eq!(frames(&mut h), vec![Output::Connect]);
        rc.handle(In::Connected, &mut h.ctx());
        let out = frames(&mut h);
        assert_eq!(out.len(), 1);
        let Output::SendFrame(bind) = &out[0] else {
            panic!("{out:?}")
        };
        let (id, msg) = ClientMessage::parse(bind).expect("valid");
        assert_eq!(id.map(|i| i.len()), Some(4));
        assert!(matches!(msg, ClientMessage::Bind { ref side, .. } if side == "aaaaaaaaaa"));
        assert_eq!(
            h.routes(),
            vec![
                "Nameplate(Connected)",
                "Mailbox(Connected)",
                "Lister(Connected)",
                "Allocator(Connected)"
            ]
        );
    }

    #[test]
    fn the_first_connection_is_retried_with_backoff_then_fatal() {
        let mut h = Harness::new();
        let mut rc = rc();
        rc.handle(In::Start, &mut h.ctx());
        assert!(matches!(h.out.pop_front(), Some(Output::Connect)));
        let mut delays = Vec::new();
        for _ in 1..FIRST_CONNECT_ATTEMPTS {
            rc.handle(In::ConnectFailed("refused".into()), &mut h.ctx());
            let routes = h.routes();
            assert_eq!(routes.len(), 1, "{routes:?}");
            assert!(
                routes[0].starts_with("Boss(Warning(\"cannot reach the mailbox server (refused)")
            );
            let until = rc.poll_timeout().expect("waiting to retry");
            delays.push(until - h.now);
            rc.handle(In::Timeout, &mut h.ctx());
            assert!(h.out.is_empty(), "not before the delay");
            h.now = until;
            rc.handle(In::Timeout, &mut h.ctx());
            assert!(matches!(h.out.pop_front(), Some(Output::Connect)));
        }
        assert_eq!(
            delays,
            [1000, 1500, 2250, 3375].map(Duration::from_millis),
            "the reconnection backoff"
        );
        rc.handle(In::ConnectFailed("refused".into()), &mut h.ctx());
        assert_eq!(h.routes(), vec![r#"Boss(Fatal(ConnectFailed("refused")))"#]);
        assert!(matches!(rc.state, State::Stopped));
        assert_eq!(rc.poll_timeout(), None);
    }

    #[test]
    fn a_first_connection_that_opens_after_a_retry_goes_on_as_usual() {
        let mut h = Harness::new();
        let mut rc = rc();
        rc.handle(In::Start, &mut h.ctx());
        rc.handle(In::ConnectFailed("timed out".into()), &mut h.ctx());
        h.routes();
        h.now = rc.poll_timeout().expect("retry");
        rc.handle(In::Timeout, &mut h.ctx());
        h.out.clear();
        rc.handle(In::Connected, &mut h.ctx());
        assert!(matches!(rc.state, State::Connected { .. }));
        assert!(h.routes().contains(&"Nameplate(Connected)".to_owned()));
    }

    #[test]
    fn reconnects_with_growing_capped_backoff_reset_after_healthy_session() {
        let mut h = Harness::new();
        let t0 = h.now;
        let mut rc = rc();
        rc.handle(In::Start, &mut h.ctx());
        rc.handle(In::Connected, &mut h.ctx());
        h.out.clear();
        h.queue.clear();
        rc.handle(In::ConnectionLost, &mut h.ctx());
        assert_eq!(
            h.routes(),
            vec![
                "Nameplate(Lost)",
                "Mailbox(Lost)",
                "Lister(Lost)",
                "Allocator(Lost)"
            ]
        );
        let mut expected = INITIAL_BACKOFF;
        let mut delays = Vec::new();
        for _ in 0..15 {
            let until = rc.poll_timeout().expect("armed");
            delays.push(until - h.now);
            assert_eq!(until - h.now, expected);
            // Early timeouts are ignored.
            rc.handle(In::Timeout, &mut h.ctx());
            assert!(frames(&mut h).is_empty());
            h.now = until;
            rc.handle(In::Timeout, &mut h.ctx());
            assert_eq!(frames(&mut h), vec![Output::Connect]);
            rc.handle(In::ConnectFailed("down".into()), &mut h.ctx());
            assert!(h.routes().is_empty(), "not fatal after a first success");
            expected = expected.mul_f64(BACKOFF_FACTOR).min(MAX_BACKOFF);
        }
        assert_eq!(delays[1], Duration::from_millis(1500));
        assert_eq!(*delays.last().expect("some"), MAX_BACKOFF);
        // A short session does not reset the delay.
        h.now = rc.poll_timeout().expect("armed");
        rc.handle(In::Timeout, &mut h.ctx());
        rc.handle(In::Connected, &mut h.ctx());
        h.now += Duration::from_secs(1);
        rc.handle(In::ConnectionLost, &mut h.ctx());
        assert_eq!(rc.poll_timeout().expect("armed") - h.now, MAX_BACKOFF);
        // A healthy one does.
        h.now = rc.poll_timeout().expect("armed");
        rc.handle(In::Timeout, &mut h.ctx());
        rc.handle(In::Connected, &mut h.ctx());
        h.now += HEALTHY_AFTER;
        rc.handle(In::ConnectionLost, &mut h.ctx());
        assert_eq!(rc.poll_timeout().expect("armed") - h.now, INITIAL_BACKOFF);
        assert!(h.now > t0);
    }

    #[test]
    fn tx_only_while_connected() {
        let mut h = Harness::new();
        let mut rc = rc();
        rc.handle(In::Tx(ClientMessage::List), &mut h.ctx());
        assert!(frames(&mut h).is_empty());
        rc.handle(In::Start, &mut h.ctx());
        rc.handle(In::Connected, &mut h.ctx());
        h.out.clear();
        rc.handle(In::Tx(ClientMessage::List), &mut h.ctx());
        let out = frames(&mut h);
        assert!(matches!(&out[..], [Output::SendFrame(f)] if f.ends_with(r#""type": "list"}"#)));
    }

    #[test]
    fn routes_server_messages() {
        let mut h = Harness::new();
        let mut rc = rc();
        rc.handle(In::Start, &mut h.ctx());
        rc.handle(In::Connected, &mut h.ctx());
        h.queue.clear();
        for text in [
            r#"{"type": "welcome", "welcome": {"motd": "hi"}, "server_tx": 1}"#,
            r#"{"type": "ack", "id": null}"#,
            r#"{"type": "nameplates", "nameplates": [{"id": "4"}]}"#,
            r#"{"type": "allocated", "nameplate": "4"}"#,
            r#"{"type": "claimed", "mailbox": "mb"}"#,
            r#"{"type": "released"}"#,
            r#"{"type": "message", "side": "bbbbbbbbbb", "phase": "0", "body": "0a"}"#,
            r#"{"type": "message", "side": "bbbbbbbbbb", "phase": "1", "body": "zz"}"#,
            r#"{"type": "message", "side": "aaaaaaaaaa", "phase": "2", "body": "zz"}"#,
            r#"{"type": "closed"}"#,
            r#"{"type": "error", "error": "crowded", "orig": {}}"#,
            r#"{"type": "pong", "pong": 1}"#,
            r#"{"type": "brand-new"}"#,
            "{oops",
        ] {
            rc.handle(In::ServerText(text.into()), &mut h.ctx());
        }
        let routes = h.routes();
        assert_eq!(routes.len(), 12, "{routes:#?}");
        assert!(routes[0].starts_with("Boss(RxWelcome"));
        assert_eq!(routes[1], r#"Lister(RxNameplates(["4"]))"#);
        assert_eq!(routes[2], r#"Allocator(RxAllocated("4"))"#);
        assert_eq!(routes[3], r#"Nameplate(RxClaimed("mb"))"#);
        assert_eq!(routes[4], "Nameplate(RxReleased)");
        assert_eq!(
            routes[5],
            r#"Mailbox(RxMessage { side: "bbbbbbbbbb", phase: "0", body: [10] })"#
        );
        assert_eq!(routes[6], "Boss(Scared)");
        assert_eq!(
            routes[7],
            r#"Mailbox(RxMessage { side: "aaaaaaaaaa", phase: "2", body: [] })"#
        );
        assert_eq!(routes[8], "Mailbox(RxClosed)");
        assert_eq!(routes[9], r#"Boss(RxError("crowded"))"#);
        assert!(routes[10].starts_with("Boss(Warning(\"ignoring a message of unknown type"));
        assert!(routes[11].starts_with("Boss(ProtocolError(\"malformed message"));
    }

    #[test]
    fn stop_disconnects_once_and_reports() {
        let mut h = Harness::new();
        let mut rc = rc();
        rc.handle(In::Start, &mut h.ctx());
        rc.handle(In::Connected, &mut h.ctx());
        h.out.clear();
        h.queue.clear();
        rc.handle(In::Stop, &mut h.ctx());
        rc.handle(In::Stop, &mut h.ctx());
        assert_eq!(frames(&mut h), vec![Output::Disconnect]);
        assert_eq!(h.routes(), vec!["Terminator(StoppedRendezvous)"]);
        rc.handle(In::Connected, &mut h.ctx());
        rc.handle(In::ServerText(r#"{"type": "closed"}"#.into()), &mut h.ctx());
        assert!(frames(&mut h).is_empty());
        assert!(h.routes().is_empty());
    }

    #[test]
    fn quote_is_bounded() {
        let long = "é".repeat(1000);
        assert_eq!(quote(&long).chars().count(), QUOTE_LIMIT + 1);
        assert_eq!(quote("short"), "short");
    }
}
