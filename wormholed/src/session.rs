//! One control connection: newline-delimited JSON in, responses and events out.
//!
//! States: awaiting `hello`, greeted, closing. Inputs: request lines (at most
//! [`MAX_LINE_BYTES`]) from the reader task, [`ToClient`] lines from the registry and from
//! wormholes. Outputs: requests to the [`Registry`](crate::registry::Registry), lines to the
//! writer task, and [`SessionGone`] when the connection ends. A malformed line (not UTF-8, not
//! JSON) is answered with a typed error and the session goes on; an over-long line is answered
//! and the connection closed.
//!
//! Memory is bounded per client, whatever the client does ([`Budget`]). The reader task reads
//! the next request only while fewer than [`MAX_UNANSWERED`] requests wait for their answer and
//! fewer than [`READ_PAUSE_BYTES`] of output wait to be written: a client that sends requests and
//! never reads the answers is simply read from no more (backpressure). Events are not requests:
//! a client that lets more than [`MAX_QUEUED_BYTES`] of output pile up is disconnected.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, OwnedSemaphorePermit};
use tokio_util::codec::{AnyDelimiterCodec, AnyDelimiterCodecError, FramedRead};
use wormhole_protocol::control::{
    parse_request, ControlError, DaemonLine, ErrorCode, Outcome, RequestBody, Response,
    ResponseBody, MAX_LINE_BYTES, PROTOCOL_VERSION,
};

use crate::registry::{Client, ClientRequest, SessionGone, SessionId, ToClient};

/// Requests of one client in flight (sent to the registry, not yet answered) at most; the next
/// line is read once one is answered.
pub(crate) const MAX_UNANSWERED: usize = 64;
/// Output waiting to be written above which no more requests are read.
pub(crate) const READ_PAUSE_BYTES: usize = 1 << 20;
/// Output waiting to be written above which the client is disconnected: it stopped reading
/// while events kept coming. Room for several lines of the largest size.
pub(crate) const MAX_QUEUED_BYTES: usize = 4 * MAX_LINE_BYTES;

/// What one connection holds, shared by the session and its reader and writer tasks (all on
/// the session's arbiter). Output lines are appended to one buffer, which the writer takes
/// whole: what is counted is what is held.
#[derive(Debug, Default)]
struct Budget {
    /// Output not yet taken by the writer.
    pending: RefCell<BytesMut>,
    /// Output taken by the writer and not yet written.
    writing: Cell<usize>,
    /// No more output will come: the writer shuts the socket down once `pending` is written.
    closed: Cell<bool>,
    /// Requests sent to the registry and not yet answered.
    unanswered: Cell<usize>,
    /// Woken when output was written, a request answered or the session closed (for the
    /// reader; every waiter, as the reader waits for two of these at once).
    changed: Notify,
    /// Woken when output was added or the session closed (for the writer).
    added: Notify,
}

impl Budget {
    /// Output bytes held: pending and being written.
    fn queued(&self) -> usize {
        self.pending.borrow().len() + self.writing.get()
    }

    /// Whether the reader may read the next request.
    fn may_read(&self) -> bool {
        self.unanswered.get() < MAX_UNANSWERED && self.queued() < READ_PAUSE_BYTES
    }

    /// Appends one line for the writer.
    fn push(&self, line: &[u8]) {
        self.pending.borrow_mut().extend_from_slice(line);
        self.added.notify_one();
    }

    /// No more lines: the writer finishes what is pending, then shuts the socket down.
    fn close(&self) {
        self.closed.set(true);
        self.added.notify_one();
        self.changed.notify_waiters();
    }

    /// Resolves once the session has closed (the reader then lets its half of the socket go,
    /// whatever the client does).
    async fn until_closed(&self) {
        loop {
            let changed = self.changed.notified();
            if self.closed.get() {
                return;
            }
            changed.await;
        }
    }

    /// The next output for the writer, waiting for some; `None` once closed and all taken.
    async fn take(&self) -> Option<Bytes> {
        loop {
            let added = self.added.notified();
            {
                let mut pending = self.pending.borrow_mut();
                if !pending.is_empty() {
                    self.writing.set(pending.len());
                    return Some(pending.split().freeze());
                }
            }
            if self.closed.get() {
                return None;
            }
            added.await;
        }
    }

    /// Waits until [`Budget::may_read`].
    async fn read_allowed(&self) {
        loop {
            let changed = self.changed.notified();
            if self.may_read() {
                return;
            }
            changed.await;
        }
    }

    fn written(&self) {
        self.writing.set(0);
        self.changed.notify_waiters();
    }

    fn answered(&self) {
        self.unanswered.set(self.unanswered.get().saturating_sub(1));
        self.changed.notify_waiters();
    }
}

/// One item of the request stream: a line, a read error, or the end.
#[derive(Message)]
#[rtype(result = "()")]
struct Incoming(Option<Result<Bytes, AnyDelimiterCodecError>>);

/// The writer task has ended (every line written and the socket shut down, or a write failed).
#[derive(Message)]
#[rtype(result = "()")]
struct WriterDone;

/// The actor serving one control connection.
pub(crate) struct ControlSession {
    id: SessionId,
    registry: Recipient<ClientRequest>,
    gone: Recipient<SessionGone>,
    /// Output and requests in flight, shared with the reader and writer tasks. Once closed, the
    /// writer writes what it has, then ends, and the session stops on [`WriterDone`].
    budget: Rc<Budget>,
    greeted: bool,
    /// The client has finished sending (end of stream): close once every request is answered.
    read_closed: bool,
    /// This connection's place among the clients served at once, given back when it ends.
    _slot: OwnedSemaphorePermit,
}

impl ControlSession {
    /// Starts serving a connection split into `reader` and `writer`.
    pub(crate) fn start<R, W>(
        id: SessionId,
        reader: R,
        writer: W,
        registry: Recipient<ClientRequest>,
        gone: Recipient<SessionGone>,
        slot: OwnedSemaphorePermit,
    ) -> Addr<Self>
    where
        R: AsyncRead + Unpin + 'static,
        W: AsyncWrite + Unpin + 'static,
    {
        let budget = Rc::new(Budget::default());
        let addr = Self {
            id,
            registry,
            gone,
            budget: Rc::clone(&budget),
            greeted: false,
            read_closed: false,
            _slot: slot,
        }
        .start();
        actix::spawn(write_lines(
            writer,
            Rc::clone(&budget),
            addr.clone().recipient(),
        ));
        actix::spawn(read_lines(reader, budget, addr.clone().recipient()));
        addr
    }

    fn client(&self, ctx: &mut Context<Self>) -> Client {
        Client {
            session: self.id,
            lines: ctx.address().recipient(),
        }
    }

    fn write(&mut self, line: &DaemonLine, ctx: &mut Context<Self>) {
        if self.budget.closed.get() {
            return;
        }
        let mut text = match serde_json::to_vec(line) {
            Ok(text) => text,
            Err(e) => return tracing::error!(session = self.id, "cannot encode a line: {e}"),
        };
        text.push(b'\n');
        let queued = self.budget.queued() + text.len();
        if queued > MAX_QUEUED_BYTES {
            tracing::warn!(
                session = self.id,
                queued,
                "the control client stopped reading its lines; disconnecting it"
            );
            self.budget.close();
            ctx.stop();
            return;
        }
        self.budget.push(&text);
    }

    fn respond(&mut self, id: Option<u64>, outcome: Outcome, ctx: &mut Context<Self>) {
        self.write(&DaemonLine::Response(Response { id, outcome }), ctx);
    }

    /// Writes what is queued, then closes the connection (the session stops on [`WriterDone`]).
    fn close(&mut self) {
        self.budget.close();
    }

    /// Once the client has stopped sending and every request is answered, flush and close.
    fn close_when_answered(&mut self) {
        if self.read_closed && self.budget.unanswered.get() == 0 {
            self.close();
        }
    }

    fn handle_line(&mut self, line: &str, ctx: &mut Context<Self>) {
        let request = match parse_request(line) {
            Ok(request) => request,
            Err((id, err)) => return self.respond(id, Outcome::Error(err), ctx),
        };
        match (self.greeted, request.body) {
            (_, RequestBody::Hello { protocol, client }) if !self.greeted => {
                let outcome = if protocol == PROTOCOL_VERSION {
                    self.greeted = true;
                    tracing::debug!(session = self.id, ?client, "hello");
                    Outcome::Ok(ResponseBody::Welcome {
                        protocol: PROTOCOL_VERSION,
                        daemon: concat!("wormholed ", env!("CARGO_PKG_VERSION")).into(),
                    })
                } else {
                    Outcome::Error(ControlError::new(
                        ErrorCode::UnsupportedVersion,
                        format!(
                            "this wormholed speaks control protocol {PROTOCOL_VERSION}, \
                             not {protocol}"
                        ),
                    ))
                };
                self.respond(Some(request.id), outcome, ctx);
            }
            (false, _) => self.respond(
                Some(request.id),
                Outcome::Error(ControlError::new(
                    ErrorCode::HelloRequired,
                    "the first request must be hello",
                )),
                ctx,
            ),
            (true, body) => {
                self.budget.unanswered.set(self.budget.unanswered.get() + 1);
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

/// Reads request lines while the [`Budget`] allows, handing each to the session; ends at the
/// end of the stream or at a read error (after handing that over too).
async fn read_lines(
    reader: impl AsyncRead + Unpin,
    budget: Rc<Budget>,
    session: Recipient<Incoming>,
) {
    let codec = AnyDelimiterCodec::new_with_max_length(b"\n".to_vec(), Vec::new(), MAX_LINE_BYTES);
    let mut lines = FramedRead::new(reader, codec);
    loop {
        let item = tokio::select! {
            () = budget.until_closed() => return,
            item = async {
                budget.read_allowed().await;
                lines.next().await
            } => item,
        };
        let last = !matches!(item, Some(Ok(_)));
        if session.send(Incoming(item)).await.is_err() || last {
            return;
        }
    }
}

/// Writes the session's output in order; once the session has closed and everything is
/// written, shuts the socket down. Tells the session when it ends.
async fn write_lines(
    mut writer: impl AsyncWrite + Unpin,
    budget: Rc<Budget>,
    session: Recipient<WriterDone>,
) {
    while let Some(output) = budget.take().await {
        if let Err(e) = writer.write_all(&output).await {
            tracing::debug!("control write error: {e}");
            budget.close();
            session.do_send(WriterDone);
            return;
        }
        budget.written();
    }
    let _ = writer.shutdown().await;
    session.do_send(WriterDone);
}

impl Actor for ControlSession {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Context<Self>) {
        // The writer ends too (after what is pending, if the socket still takes it).
        self.budget.close();
        tracing::debug!(session = self.id, "control connection closed");
        self.gone.do_send(SessionGone(self.id));
    }
}

impl Handler<Incoming> for ControlSession {
    type Result = ();

    fn handle(&mut self, Incoming(item): Incoming, ctx: &mut Context<Self>) {
        let line = match item {
            Some(Ok(line)) => line,
            Some(Err(AnyDelimiterCodecError::MaxChunkLengthExceeded)) => {
                tracing::warn!(session = self.id, "request line too long; closing");
                self.respond(
                    None,
                    Outcome::Error(ControlError::new(
                        ErrorCode::LineTooLong,
                        format!("a request line may hold at most {MAX_LINE_BYTES} bytes"),
                    )),
                    ctx,
                );
                return self.close();
            }
            Some(Err(AnyDelimiterCodecError::Io(e))) => {
                tracing::debug!(session = self.id, "control read error: {e}");
                return ctx.stop();
            }
            // The client may half-close after its last request: its answers still go out, and
            // the writer closes once every request is answered.
            None => {
                self.read_closed = true;
                return self.close_when_answered();
            }
        };
        let line = line.strip_suffix(b"\r").unwrap_or(&line);
        match std::str::from_utf8(line) {
            Ok(text) if text.trim().is_empty() => {}
            Ok(text) => self.handle_line(text, ctx),
            Err(e) => self.respond(
                None,
                Outcome::Error(ControlError::new(
                    ErrorCode::BadRequest,
                    format!("a request line must be UTF-8 JSON ({e})"),
                )),
                ctx,
            ),
        }
    }
}

impl Handler<WriterDone> for ControlSession {
    type Result = ();

    fn handle(&mut self, _: WriterDone, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<ToClient> for ControlSession {
    type Result = ();

    fn handle(&mut self, ToClient(line): ToClient, ctx: &mut Context<Self>) {
        if matches!(line, DaemonLine::Response(_)) {
            self.budget.answered();
        }
        self.write(&line, ctx);
        self.close_when_answered();
    }
}
