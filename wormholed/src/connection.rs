//! The websocket to the mailbox server: IO only.
//!
//! States: idle, connecting, open. Inputs: [`Connect`], [`SendFrame`], [`Disconnect`] from the
//! wormhole's machine host. Outputs (to the host, as the machine's [`Input`]s): `Connected`,
//! `ConnectFailed`, `ConnectionLost`, `ServerText`, and `Abort` for frames that break the
//! protocol (binary, fragmented, oversized), followed by `ConnectionLost` as the connection is
//! dropped. It answers pings and pings the server every 30 s.
//! Whether and when to reconnect is the machine's decision, not this actor's.

use std::sync::Arc;
use std::time::Duration;

use actix::io::{SinkWrite, WriteHandler};
use actix::prelude::*;
use awc::error::WsProtocolError as ProtocolError;
use awc::ws::{Codec, Frame, Message as WsMessage};
use awc::BoxedSocket;
use futures_util::stream::{SplitSink, StreamExt};
use wormhole_protocol::mailbox::Input;

use crate::host::Feed;

/// The largest frame accepted from the mailbox server.
/// Holds a message of the largest text a client can send (a control line, hex-encoded).
pub(crate) const MAX_FRAME_BYTES: usize = 16 << 20;
/// How often we ping the server.
const PING_INTERVAL: Duration = Duration::from_secs(30);
/// Silence after which the connection is considered lost.
const SILENCE_LIMIT: Duration = Duration::from_secs(90);
/// How long opening the connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Open the websocket.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Connect;

/// Send one text frame.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct SendFrame(pub(crate) String);

/// Close the websocket; the actor stops.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Disconnect;

type WsSink = SplitSink<actix_codec::Framed<BoxedSocket, Codec>, WsMessage>;

enum State {
    Idle,
    Connecting,
    Open {
        sink: SinkWrite<WsMessage, WsSink>,
        stream: SpawnHandle,
    },
}

/// The actor owning one wormhole's connection to the mailbox server.
pub(crate) struct MailboxConnection {
    url: String,
    tls: Arc<rustls::ClientConfig>,
    to_machine: Recipient<Feed<Input>>,
    state: State,
    /// Bumped on every connection attempt, so late results of an abandoned one are ignored.
    generation: u64,
    last_heard: actix::clock::Instant,
}

impl MailboxConnection {
    /// A connection to `url`, reporting to `to_machine`.
    pub(crate) fn new(
        url: String,
        tls: Arc<rustls::ClientConfig>,
        to_machine: Recipient<Feed<Input>>,
    ) -> Self {
        Self {
            url,
            tls,
            to_machine,
            state: State::Idle,
            generation: 0,
            last_heard: actix::clock::Instant::now(),
        }
    }

    fn report(&self, input: Input) {
        self.to_machine.do_send(Feed(input));
    }

    /// Drops the open connection (if any) without reporting.
    fn drop_connection(&mut self, ctx: &mut Context<Self>) {
        if let State::Open { mut sink, stream } = std::mem::replace(&mut self.state, State::Idle) {
            ctx.cancel_future(stream);
            sink.close();
        }
        self.generation += 1;
    }

    /// The open connection failed or closed: tell the machine once.
    fn lost(&mut self, ctx: &mut Context<Self>) {
        if matches!(self.state, State::Open { .. }) {
            self.drop_connection(ctx);
            self.report(Input::ConnectionLost);
        }
    }

    /// The server broke the protocol: end the wormhole (`Abort`, which the machine treats as
    /// fatal), then drop the connection and report that like any other drop, as the machine's
    /// host contract asks: no machine is left waiting for a reply on a connection that is gone.
    fn abort(&mut self, ctx: &mut Context<Self>, why: String) {
        tracing::warn!(url = %self.url, "mailbox connection: {why}");
        self.report(Input::Abort(why));
        self.lost(ctx);
    }

    /// An awc client whose TLS is [`tls_config`]. HTTP/1.1 only comes from that config's ALPN:
    /// `ClientBuilder::max_http_version` must not be used, as it rebuilds the connector's TLS
    /// from awc's own roots (none, with our features) and so drops ours ("SSL is not supported").
    fn client(&self) -> awc::Client {
        awc::Client::builder()
            .connector(
                awc::Connector::new()
                    .timeout(CONNECT_TIMEOUT)
                    .rustls_0_23(Arc::clone(&self.tls)),
            )
            .timeout(CONNECT_TIMEOUT)
            .finish()
    }
}

impl Actor for MailboxConnection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(PING_INTERVAL, |conn, ctx| {
            // The interval keeps this actor alive: stop once the wormhole it serves is gone.
            if !conn.to_machine.connected() {
                conn.drop_connection(ctx);
                ctx.stop();
                return;
            }
            if let State::Open { sink, .. } = &mut conn.state {
                if conn.last_heard.elapsed() > SILENCE_LIMIT {
                    tracing::info!(url = %conn.url, "mailbox server silent; dropping connection");
                    conn.lost(ctx);
                } else if sink.write(WsMessage::Ping(Default::default())).is_err() {
                    conn.lost(ctx);
                }
            }
        });
    }
}

impl Handler<Connect> for MailboxConnection {
    type Result = ();

    fn handle(&mut self, _: Connect, ctx: &mut Context<Self>) {
        self.drop_connection(ctx);
        self.state = State::Connecting;
        let generation = self.generation;
        let request = self
            .client()
            .ws(self.url.as_str())
            .max_frame_size(MAX_FRAME_BYTES);
        let connecting = async move { request.connect().await };
        ctx.spawn(connecting.into_actor(self).map(move |result, conn, ctx| {
            if conn.generation != generation {
                return;
            }
            match result {
                Ok((_response, framed)) => {
                    let (sink, stream) = framed.split();
                    let stream = ctx.add_stream(stream);
                    conn.state = State::Open {
                        sink: SinkWrite::new(sink, ctx),
                        stream,
                    };
                    conn.last_heard = actix::clock::Instant::now();
                    conn.report(Input::Connected);
                }
                Err(e) => {
                    conn.state = State::Idle;
                    conn.report(Input::ConnectFailed(format!("{}: {e}", conn.url)));
                }
            }
        }));
    }
}

impl Handler<SendFrame> for MailboxConnection {
    type Result = ();

    fn handle(&mut self, SendFrame(text): SendFrame, ctx: &mut Context<Self>) {
        match &mut self.state {
            State::Open { sink, .. } => {
                if sink.write(WsMessage::Text(text.into())).is_err() {
                    self.lost(ctx);
                }
            }
            // The machine resends what the server has not echoed after a reconnect.
            State::Idle | State::Connecting => {
                tracing::debug!("frame dropped while disconnected");
            }
        }
    }
}

impl Handler<Disconnect> for MailboxConnection {
    type Result = ();

    fn handle(&mut self, _: Disconnect, ctx: &mut Context<Self>) {
        self.drop_connection(ctx);
        ctx.stop();
    }
}

impl StreamHandler<Result<Frame, ProtocolError>> for MailboxConnection {
    fn handle(&mut self, item: Result<Frame, ProtocolError>, ctx: &mut Context<Self>) {
        self.last_heard = actix::clock::Instant::now();
        match item {
            Ok(Frame::Text(bytes)) => match String::from_utf8(bytes.to_vec()) {
                Ok(text) => self.report(Input::ServerText(text)),
                Err(_) => self.abort(
                    ctx,
                    "the mailbox server sent a frame that is not UTF-8".into(),
                ),
            },
            Ok(Frame::Ping(payload)) => {
                if let State::Open { sink, .. } = &mut self.state {
                    if sink.write(WsMessage::Pong(payload)).is_err() {
                        self.lost(ctx);
                    }
                }
            }
            Ok(Frame::Pong(_)) => {}
            Ok(Frame::Close(_)) => self.lost(ctx),
            Ok(Frame::Binary(_)) => {
                self.abort(ctx, "the mailbox server sent a binary frame".into());
            }
            Ok(Frame::Continuation(_)) => {
                self.abort(ctx, "the mailbox server sent a fragmented frame".into());
            }
            Err(ProtocolError::Overflow) => self.abort(
                ctx,
                format!("the mailbox server sent a frame larger than {MAX_FRAME_BYTES} bytes"),
            ),
            Err(e) => {
                tracing::info!(url = %self.url, "mailbox connection error: {e}");
                self.lost(ctx);
            }
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        self.lost(ctx);
    }
}

impl WriteHandler<ProtocolError> for MailboxConnection {
    fn error(&mut self, err: ProtocolError, ctx: &mut Context<Self>) -> Running {
        tracing::info!(url = %self.url, "mailbox connection write error: {err}");
        self.lost(ctx);
        Running::Continue
    }

    fn finished(&mut self, _ctx: &mut Context<Self>) {}
}

/// The TLS settings for `wss://` mailbox URLs.
///
/// Trusted roots: the Mozilla root certificates (webpki-roots), plus the platform's trust store
/// as `rustls-native-certs` reads it, which honours `SSL_CERT_FILE` and `SSL_CERT_DIR` (so a
/// private CA, or a test's self-signed certificate, can be trusted). A native store that cannot
/// be read, in whole or in part, is logged and skipped: the Mozilla roots remain.
/// ALPN is `http/1.1`, the only protocol awc speaks for a websocket.
pub(crate) fn tls_config() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::warn!("cannot load the platform's certificates: {error}");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    if ignored > 0 {
        tracing::warn!("{ignored} of the platform's certificates are invalid; ignored");
    }
    tracing::debug!("trusting {added} certificates of the platform besides the Mozilla roots");
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
