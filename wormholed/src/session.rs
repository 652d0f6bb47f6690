//! One control connection: newline-delimited JSON in, responses and events out.
//!
//! States: awaiting `hello`, greeted, closing. Inputs: request lines (at most
//! [`MAX_LINE_BYTES`]), [`ToClient`] lines from the registry and from wormholes. Outputs: requests
//! to the [`Registry`](crate::registry::Registry), lines to the client, and [`SessionGone`] when
//! the connection ends. A malformed line is answered with a typed error and the session goes on;
//! an over-long line is answered and the connection closed.

use actix::io::{FramedWrite, WriteHandler};
use actix::prelude::*;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};
use wormhole_protocol::control::{
    parse_request, ControlError, DaemonLine, ErrorCode, Outcome, RequestBody, Response,
    ResponseBody, MAX_LINE_BYTES, PROTOCOL_VERSION,
};

use crate::registry::{Client, ClientRequest, SessionGone, SessionId, ToClient};

/// The actor serving one control connection.
pub(crate) struct ControlSession<W: AsyncWrite + Unpin + 'static> {
    id: SessionId,
    registry: Recipient<ClientRequest>,
    gone: Recipient<SessionGone>,
    writer: FramedWrite<String, W, LinesCodec>,
    greeted: bool,
    /// Set when the session ends itself (an over-long line): the writer flushes the last answer,
    /// then stops the session through [`WriteHandler::finished`].
    closing: bool,
    /// Requests forwarded to the registry and not yet answered.
    unanswered: usize,
    /// The client has finished sending (end of stream): close once every request is answered.
    read_closed: bool,
}

impl<W: AsyncWrite + Unpin + 'static> ControlSession<W> {
    /// Starts serving a connection split into `reader` and `writer`.
    pub(crate) fn start<R: AsyncRead + Unpin + 'static>(
        id: SessionId,
        reader: R,
        writer: W,
        registry: Recipient<ClientRequest>,
        gone: Recipient<SessionGone>,
    ) -> Addr<Self> {
        Self::create(move |ctx| {
            ctx.add_stream(FramedRead::new(
                reader,
                LinesCodec::new_with_max_length(MAX_LINE_BYTES),
            ));
            Self {
                id,
                registry,
                gone,
                writer: FramedWrite::new(writer, LinesCodec::new(), ctx),
                greeted: false,
                closing: false,
                unanswered: 0,
                read_closed: false,
            }
        })
    }

    fn client(&self, ctx: &mut Context<Self>) -> Client {
        Client {
            session: self.id,
            lines: ctx.address().recipient(),
        }
    }

    fn write(&mut self, line: &DaemonLine) {
        match serde_json::to_string(line) {
            Ok(text) => self.writer.write(text),
            Err(e) => tracing::error!(session = self.id, "cannot encode a line: {e}"),
        }
    }

    fn respond(&mut self, id: Option<u64>, outcome: Outcome) {
        self.write(&DaemonLine::Response(Response { id, outcome }));
    }

    /// Once the client has stopped sending and every request is answered, flush and close.
    fn close_when_answered(&mut self) {
        if self.read_closed && self.unanswered == 0 && !self.closing {
            self.closing = true;
            self.writer.close();
        }
    }

    fn handle_line(&mut self, line: &str, ctx: &mut Context<Self>) {
        let request = match parse_request(line) {
            Ok(request) => request,
            Err((id, err)) => return self.respond(id, Outcome::Error(err)),
        };
        match (self.greeted, request.body) {
            (_, RequestBody::Hello { protocol, client }) if !self.greeted => {
                if protocol == PROTOCOL_VERSION {
                    self.greeted = true;
                    tracing::debug!(session = self.id, ?client, "hello");
                    self.respond(
                        Some(request.id),
                        Outcome::Ok(ResponseBody::Welcome {
                            protocol: PROTOCOL_VERSION,
                            daemon: concat!("wormholed ", env!("CARGO_PKG_VERSION")).into(),
                        }),
                    );
                } else {
                    self.respond(
                        Some(request.id),
                        Outcome::Error(ControlError::new(
                            ErrorCode::UnsupportedVersion,
                            format!(
                                "this wormholed speaks control protocol {PROTOCOL_VERSION}, \
                                 not {protocol}"
                            ),
                        )),
                    );
                }
            }
            (false, _) => self.respond(
                Some(request.id),
                Outcome::Error(ControlError::new(
                    ErrorCode::HelloRequired,
                    "the first request must be hello",
                )),
            ),
            (true, body) => {
                self.unanswered += 1;
                let client = self.client(ctx);
                self.registry.do_send(ClientRequest {
                    client,
                    id: request.id,
                    body,
                });
            }
        }
    }
}

impl<W: AsyncWrite + Unpin + 'static> Actor for ControlSession<W> {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Context<Self>) {
        tracing::debug!(session = self.id, "control connection closed");
        self.gone.do_send(SessionGone(self.id));
    }
}

impl<W: AsyncWrite + Unpin + 'static> StreamHandler<Result<String, LinesCodecError>>
    for ControlSession<W>
{
    fn handle(&mut self, item: Result<String, LinesCodecError>, ctx: &mut Context<Self>) {
        match item {
            Ok(line) if line.trim().is_empty() => {}
            Ok(line) => self.handle_line(&line, ctx),
            Err(LinesCodecError::MaxLineLengthExceeded) => {
                tracing::warn!(session = self.id, "request line too long; closing");
                self.respond(
                    None,
                    Outcome::Error(ControlError::new(
                        ErrorCode::LineTooLong,
                        format!("a request line may hold at most {MAX_LINE_BYTES} bytes"),
                    )),
                );
                self.closing = true;
                self.writer.close();
            }
            Err(LinesCodecError::Io(e)) => {
                tracing::debug!(session = self.id, "control read error: {e}");
                ctx.stop();
            }
        }
    }

    fn finished(&mut self, _: &mut Context<Self>) {
        // tokio-util ends the stream right after a decoding error (the over-long line), and a
        // client may half-close after its last request. Stopping now would drop answers unsent
        // (actix's `FramedWrite` does not flush on drop): the writer is closed once every
        // request is answered, and it stops the session when its last line is out.
        self.read_closed = true;
        self.close_when_answered();
    }
}

impl<W: AsyncWrite + Unpin + 'static> WriteHandler<LinesCodecError> for ControlSession<W> {
    fn error(&mut self, err: LinesCodecError, _: &mut Context<Self>) -> Running {
        tracing::debug!(session = self.id, "control write error: {err}");
        Running::Stop
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl<W: AsyncWrite + Unpin + 'static> Handler<ToClient> for ControlSession<W> {
    type Result = ();

    fn handle(&mut self, ToClient(line): ToClient, _: &mut Context<Self>) {
        if matches!(line, DaemonLine::Response(_)) {
            self.unanswered = self.unanswered.saturating_sub(1);
        }
        self.write(&line);
        self.close_when_answered();
    }
}
