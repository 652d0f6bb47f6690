//! The application side of one wormhole: text and file transfer, interactive code entry, control
//! events.
//!
//! Inputs: [`AppEvent`]s from the wormhole's protocol machine, [`AppKey`] (the session key),
//! [`AppCommand`]s from control clients (through the registry), and for files the outcome of
//! Transit and of the data path ([`DataNews`](crate::file_transfer::DataNews)). Outputs: machine
//! inputs (`Send`, `Close`, code entry), events to the owning client, notes to the registry. The
//! transfer decisions belong to the pure machines of `wormhole_protocol::transfer`; this actor
//! translates and forwards. The file-specific part lives in the `files` submodule.

mod files;

use std::path::PathBuf;
use std::time::Duration;

use actix::prelude::*;
use wormhole_protocol::code;
use wormhole_protocol::control::{
    ControlError, DaemonLine, ErrorCode, Event as ControlEvent, EventKind, FailureKind,
    ResponseBody, WormholeId,
};
use wormhole_protocol::mailbox::{CodeSource, Event, Input, Mood, WormholeError};
use wormhole_protocol::transfer::{
    FileReceiver, FileReceiverInput, FileReceiverOutput, FileSenderInput, FileSenderOutput,
    IncomingOffer, TextSender, TextSenderInput as SenderInput, TextSenderOutput as SenderOutput,
    TransferError, TRANSFER_REJECTED,
};

use crate::file_transfer::BuiltOffer;
use crate::host::Feed;
use crate::registry::{Client, ToClient, WormholeNote};
use crate::transit::TransitConfig;

/// How long a closing wormhole may wait for the server before it is torn down anyway.
const CLOSE_GRACE: Duration = Duration::from_secs(10);

pub(crate) use files::validate_send_path;

/// What a wormhole was created to do.
#[derive(Debug)]
pub(crate) enum WormholeKind {
    /// Send one text message.
    SendText {
        /// The message.
        text: String,
        /// A code chosen by the user, instead of an allocated one.
        code: Option<String>,
        /// Words of an allocated code.
        code_length: Option<usize>,
        /// Wait for the user to accept the verifier before sending.
        verify: bool,
    },
    /// Send a file or a directory.
    SendFile {
        /// What to send, built before the wormhole (so that what cannot be sent is refused
        /// before a code is allocated).
        offer: BuiltOffer,
        /// A code chosen by the user, instead of an allocated one.
        code: Option<String>,
        /// Words of an allocated code.
        code_length: Option<usize>,
        /// Wait for the user to accept the verifier before sending.
        verify: bool,
    },
    /// Receive whatever the peer offers; without a code, the code is typed interactively.
    Receive {
        /// The code, when known.
        code: Option<String>,
        /// Accept a file or directory without asking.
        accept_file: bool,
        /// Absolute path to write to (`--output-file`).
        output: Option<PathBuf>,
        /// Absolute folder for the offered name when `output` is not given.
        directory: Option<PathBuf>,
    },
}

impl WormholeKind {
    /// The name shown by `list`.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::SendText { .. } => "send-text",
            Self::SendFile { .. } => "send-file",
            Self::Receive { .. } => "receive",
        }
    }

    /// Checks the request's arguments before anything is started.
    pub(crate) fn validate(&self) -> Result<(), ControlError> {
        let (code, length) = match self {
            Self::SendText {
                code, code_length, ..
            } => (code, *code_length),
            Self::SendFile {
                code, code_length, ..
            } => (code, *code_length),
            Self::Receive {
                code,
                output,
                directory,
                ..
            } => {
                for path in [output, directory].into_iter().flatten() {
                    if !path.is_absolute() {
                        return Err(ControlError::new(
                            ErrorCode::InvalidArgument,
                            format!("{} is not an absolute path", path.display()),
                        ));
                    }
                }
                (code, None)
            }
        };
        validate_code(code.as_deref(), length)
    }

    /// Where the wormhole's code comes from.
    pub(crate) fn code_source(&self, default_words: usize) -> CodeSource {
        match self {
            Self::SendText {
                code: Some(code), ..
            }
            | Self::SendFile {
                code: Some(code), ..
            }
            | Self::Receive {
                code: Some(code), ..
            } => CodeSource::Set(code.clone()),
            Self::SendText { code_length, .. } | Self::SendFile { code_length, .. } => {
                CodeSource::Allocate {
                    words: code_length.unwrap_or(default_words),
                }
            }
            Self::Receive { code: None, .. } => CodeSource::Interactive,
        }
    }
}

/// Checks a code given by the user and a code length, when present.
pub(crate) fn validate_code(code: Option<&str>, length: Option<usize>) -> Result<(), ControlError> {
    if let Some(code) = code {
        code::validate_code(code)
            .map_err(|e| ControlError::new(ErrorCode::InvalidArgument, e.to_string()))?;
    }
    if let Some(length) = length {
        if length == 0 || length > code::MAX_CODE_WORDS {
            return Err(ControlError::new(
                ErrorCode::InvalidArgument,
                format!(
                    "code length must be between 1 and {} words",
                    code::MAX_CODE_WORDS
                ),
            ));
        }
    }
    Ok(())
}

/// An event from the wormhole's protocol machine.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct AppEvent(pub(crate) Event);

/// The wormhole's session key, right after `KeyEstablished`.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct AppKey(pub(crate) [u8; 32]);

/// A request about one wormhole, forwarded by the registry.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) enum AppCommand {
    /// Tab completion of a partly typed code.
    Complete {
        /// Who asked.
        client: Client,
        /// The request id.
        id: u64,
        /// What was typed.
        prefix: String,
    },
    /// The typed code.
    SetCode {
        /// Who asked.
        client: Client,
        /// The request id.
        id: u64,
        /// The code.
        code: String,
    },
    /// The user's answer about the verifier.
    Verify {
        /// Who asked.
        client: Client,
        /// The request id.
        id: u64,
        /// Accepted or not.
        accept: bool,
    },
    /// The user's answer about an offered file or directory.
    Accept {
        /// Who asked.
        client: Client,
        /// The request id.
        id: u64,
        /// Receive it or not.
        accept: bool,
    },
    /// End the wormhole.
    Cancel {
        /// Who to answer, if anyone asked.
        reply: Option<(Client, u64)>,
        /// Told to the owner in the `error` event.
        reason: String,
    },
}

enum Transfer {
    Send(TextSender),
    SendFile(files::SendSide),
    Receive(FileReceiver),
}

/// Interactive code entry of a `receive` without code.
#[derive(Default)]
struct CodeEntry {
    nameplates: Vec<String>,
    /// Completion requests waiting for the server's nameplate list.
    waiting: Vec<(Client, u64, String)>,
    chosen_nameplate: Option<String>,
    code_set: bool,
}

/// Settings of one app, from the daemon's settings and the request.
pub(crate) struct AppSetup {
    /// Words of an allocated code, and the default for completion.
    pub(crate) code_words: usize,
    /// How Transit may connect (file transfers).
    pub(crate) transit: TransitConfig,
}

/// The per-wormhole application actor.
pub(crate) struct WormholeApp {
    id: WormholeId,
    owner: Client,
    registry: Recipient<WormholeNote>,
    machine: Recipient<Feed<Input>>,
    halt: Box<dyn Fn()>,
    transfer: Transfer,
    verify: bool,
    code_words: usize,
    awaiting_confirmation: bool,
    entry: Option<CodeEntry>,
    verified: bool,
    failed: bool,
    closing: bool,
    files: files::FileState,
}

impl WormholeApp {
    /// The application of wormhole `id`, owned by `owner`.
    pub(crate) fn new(
        id: WormholeId,
        kind: WormholeKind,
        owner: Client,
        registry: Recipient<WormholeNote>,
        machine: Recipient<Feed<Input>>,
        halt: Box<dyn Fn()>,
        setup: AppSetup,
    ) -> Self {
        let AppSetup {
            code_words,
            transit,
        } = setup;
        let mut files = files::FileState::new(transit);
        let (transfer, verify, entry) = match kind {
            WormholeKind::SendText { text, verify, .. } => {
                (Transfer::Send(TextSender::new(text)), verify, None)
            }
            WormholeKind::SendFile { offer, verify, .. } => (
                Transfer::SendFile(files::SendSide::new(offer)),
                verify,
                None,
            ),
            WormholeKind::Receive {
                code,
                accept_file,
                output,
                directory,
                ..
            } => {
                files.accept_file = accept_file;
                files.output = output;
                files.directory = directory;
                (
                    Transfer::Receive(FileReceiver::new()),
                    false,
                    code.is_none().then(CodeEntry::default),
                )
            }
        };
        Self {
            id,
            owner,
            registry,
            machine,
            halt,
            transfer,
            verify,
            code_words,
            awaiting_confirmation: false,
            entry,
            verified: false,
            failed: false,
            closing: false,
            files,
        }
    }

    fn emit(&self, kind: EventKind) {
        self.owner
            .lines
            .do_send(ToClient(DaemonLine::Event(ControlEvent {
                wormhole: self.id,
                kind,
            })));
    }

    fn feed(&self, input: Input) {
        self.machine.do_send(Feed(input));
    }

    /// Reports the first failure to the owner; later ones are only logged.
    fn fail(&mut self, kind: FailureKind, message: String) {
        tracing::info!(wormhole = self.id, ?kind, "{message}");
        if !self.failed {
            self.failed = true;
            self.emit(EventKind::Error { kind, message });
        }
    }

    fn close(&mut self, ctx: &mut Context<Self>) {
        if self.closing {
            return;
        }
        self.closing = true;
        self.registry
            .do_send(WormholeNote::State(self.id, "closing"));
        // A failure after verification closes `errory`, not `happy` as the reference does, so
        // that the server's statistics and an app watching `closed` can tell it from success.
        self.feed(if self.failed {
            Input::CloseFailed
        } else {
            Input::Close
        });
        ctx.run_later(CLOSE_GRACE, |app, ctx| {
            tracing::info!(
                wormhole = app.id,
                "the server did not confirm the close in time"
            );
            (app.halt)();
            let mood = match (app.verified, app.failed) {
                (true, false) => Mood::Happy,
                (true, true) => Mood::Errory,
                (false, _) => Mood::Lonely,
            };
            app.finish(mood, ctx);
        });
    }

    fn finish(&mut self, mood: Mood, ctx: &mut Context<Self>) {
        self.emit(EventKind::Closed {
            mood: mood_name(mood).into(),
        });
        self.registry.do_send(WormholeNote::Finished(self.id));
        ctx.stop();
    }

    fn drive_transfer(&mut self, ctx: &mut Context<Self>) {
        loop {
            let output = match &mut self.transfer {
                Transfer::Send(sender) => match sender.poll_output() {
                    Some(SenderOutput::SendToPeer(bytes)) => TransferStep::Send(bytes),
                    Some(SenderOutput::Done) => TransferStep::Done,
                    Some(SenderOutput::Failed(e)) => TransferStep::Failed(e),
                    None => break,
                },
                Transfer::SendFile(side) => match side.poll_output() {
                    Some(FileSenderOutput::SendToPeer(bytes)) => TransferStep::Send(bytes),
                    Some(FileSenderOutput::ConnectTransit(peer)) => TransferStep::Connect(peer),
                    Some(FileSenderOutput::Done) => TransferStep::Done,
                    Some(FileSenderOutput::Failed(e)) => TransferStep::Failed(e),
                    None => break,
                },
                Transfer::Receive(receiver) => match receiver.poll_output() {
                    Some(FileReceiverOutput::ReceivedText(text)) => TransferStep::Text(text),
                    Some(FileReceiverOutput::SendToPeer(bytes)) => TransferStep::Send(bytes),
                    Some(FileReceiverOutput::PrepareTransit) => TransferStep::PrepareTransit,
                    Some(FileReceiverOutput::Offer(offer)) => TransferStep::Offer(offer),
                    Some(FileReceiverOutput::ConnectTransit(peer)) => TransferStep::Connect(peer),
                    Some(FileReceiverOutput::Done) => TransferStep::Done,
                    Some(FileReceiverOutput::Failed(e)) => TransferStep::Failed(e),
                    None => break,
                },
            };
            match output {
                TransferStep::Send(bytes) => self.feed(Input::Send(bytes)),
                TransferStep::Text(text) => self.emit(EventKind::Message { text }),
                TransferStep::PrepareTransit => self.prepare_transit(ctx),
                TransferStep::Offer(offer) => self.offered(offer, ctx),
                TransferStep::Connect(peer) => self.connect_transit(peer, ctx),
                TransferStep::Done => {
                    self.files_done();
                    self.close(ctx);
                }
                TransferStep::Failed(e) => {
                    self.fail(transfer_failure_kind(&e), e.to_string());
                    self.files.cancel();
                    self.close(ctx);
                }
            }
        }
    }

    /// Feeds the file receiver, if this wormhole has one, and drives it.
    fn feed_receiver(&mut self, input: FileReceiverInput, ctx: &mut Context<Self>) {
        if let Transfer::Receive(receiver) = &mut self.transfer {
            receiver.handle(input);
        }
        self.drive_transfer(ctx);
    }

    /// Feeds the file sender, if this wormhole has one, and drives it.
    fn feed_sender(&mut self, input: FileSenderInput, ctx: &mut Context<Self>) {
        if let Transfer::SendFile(side) = &mut self.transfer {
            side.handle(input);
        }
        self.drive_transfer(ctx);
    }

    fn start_sending(&mut self, accepted: bool, ctx: &mut Context<Self>) {
        match &mut self.transfer {
            Transfer::Send(sender) => sender.handle(if accepted {
                SenderInput::Verified
            } else {
                SenderInput::Rejected
            }),
            Transfer::SendFile(side) => side.handle(if accepted {
                FileSenderInput::Verified
            } else {
                FileSenderInput::Rejected
            }),
            Transfer::Receive(_) => {}
        }
        if !accepted {
            self.fail(
                FailureKind::Rejected,
                "you rejected the verifier; the transfer was abandoned".into(),
            );
        }
        self.drive_transfer(ctx);
    }

    fn complete(&mut self, client: Client, id: u64, prefix: String) {
        let words = self.code_words;
        let Some(entry) = &mut self.entry else {
            return client.respond(
                id,
                Err(ControlError::new(
                    ErrorCode::InvalidState,
                    "this wormhole does not take a typed code",
                )),
            );
        };
        match prefix.split_once('-') {
            None => {
                let first = entry.waiting.is_empty();
                entry.waiting.push((client, id, prefix));
                if first {
                    self.feed(Input::RefreshNameplates);
                }
            }
            Some((nameplate, _)) => {
                if entry.chosen_nameplate.is_none() && is_nameplate(nameplate) {
                    entry.chosen_nameplate = Some(nameplate.to_owned());
                    self.machine
                        .do_send(Feed(Input::ChooseNameplate(nameplate.to_owned())));
                }
                let completions = code::completions(&prefix, &entry.nameplates, words);
                client.respond(id, Ok(ResponseBody::Completions { completions }));
            }
        }
    }

    fn set_code(&mut self, client: Client, id: u64, code: String) {
        let Some(entry) = &mut self.entry else {
            return client.respond(
                id,
                Err(ControlError::new(
                    ErrorCode::InvalidState,
                    "this wormhole does not take a typed code",
                )),
            );
        };
        if entry.code_set {
            return client.respond(
                id,
                Err(ControlError::new(
                    ErrorCode::InvalidState,
                    "the code was already set",
                )),
            );
        }
        if let Err(e) = code::validate_code(&code) {
            return client.respond(
                id,
                Err(ControlError::new(ErrorCode::InvalidArgument, e.to_string())),
            );
        }
        let Some((nameplate, words)) = code.split_once('-') else {
            return client.respond(
                id,
                Err(ControlError::new(
                    ErrorCode::InvalidArgument,
                    "no nameplate",
                )),
            );
        };
        match &entry.chosen_nameplate {
            Some(chosen) if chosen != nameplate => {
                return client.respond(
                    id,
                    Err(ControlError::new(
                        ErrorCode::InvalidArgument,
                        format!("nameplate {chosen} was already chosen"),
                    )),
                );
            }
            Some(_) => {}
            None => {
                entry.chosen_nameplate = Some(nameplate.to_owned());
                self.machine
                    .do_send(Feed(Input::ChooseNameplate(nameplate.to_owned())));
            }
        }
        entry.code_set = true;
        self.feed(Input::ChooseWords(words.to_owned()));
        client.respond(id, Ok(ResponseBody::Done {}));
    }
}

enum TransferStep {
    Send(Vec<u8>),
    Text(String),
    PrepareTransit,
    Offer(IncomingOffer),
    Connect(serde_json::Value),
    Done,
    Failed(TransferError),
}

/// How a transfer failure is reported. Text failures stay `peer`, as before files existed.
fn transfer_failure_kind(error: &TransferError) -> FailureKind {
    match error {
        TransferError::Remote(reason) if reason == TRANSFER_REJECTED => FailureKind::Rejected,
        TransferError::Declined(_) | TransferError::VerificationRejected => FailureKind::Rejected,
        TransferError::AckNotOk(_) | TransferError::BadHash | TransferError::Transfer(_) => {
            FailureKind::Transfer
        }
        _ => FailureKind::Peer,
    }
}

fn is_nameplate(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// The mood as the mailbox server spells it.
pub(crate) fn mood_name(mood: Mood) -> &'static str {
    match mood {
        Mood::Happy => "happy",
        Mood::Lonely => "lonely",
        Mood::Scary => "scary",
        Mood::Errory => "errory",
        Mood::Unwelcome => "unwelcome",
    }
}

pub(crate) fn failure_kind(error: &WormholeError) -> FailureKind {
    match error {
        WormholeError::WrongCode => FailureKind::WrongCode,
        WormholeError::Welcome(_) => FailureKind::Welcome,
        WormholeError::Server(_) => FailureKind::Server,
        WormholeError::ConnectFailed(_) => FailureKind::Connect,
        WormholeError::Protocol(_) => FailureKind::Protocol,
        WormholeError::InvalidCode(_) => FailureKind::InvalidCode,
        _ => FailureKind::Unknown,
    }
}

impl Actor for WormholeApp {
    type Context = Context<Self>;
}

impl Handler<AppEvent> for WormholeApp {
    type Result = ();

    fn handle(&mut self, AppEvent(event): AppEvent, ctx: &mut Context<Self>) {
        match event {
            Event::Motd(text) => self.emit(EventKind::Motd { text }),
            Event::Warning(message) => {
                tracing::warn!(wormhole = self.id, "{message}");
                self.emit(EventKind::Warning { message });
            }
            Event::Nameplates(nameplates) => {
                let words = self.code_words;
                if let Some(entry) = &mut self.entry {
                    entry.nameplates = nameplates;
                    for (client, id, prefix) in entry.waiting.drain(..) {
                        let completions = code::completions(&prefix, &entry.nameplates, words);
                        client.respond(id, Ok(ResponseBody::Completions { completions }));
                    }
                }
            }
            Event::Code(code) => {
                self.registry
                    .do_send(WormholeNote::Code(self.id, code.clone()));
                self.registry
                    .do_send(WormholeNote::State(self.id, "waiting"));
                self.emit(EventKind::Code { code });
            }
            Event::KeyEstablished => {}
            Event::Verified { verifier } => {
                self.verified = true;
                self.registry
                    .do_send(WormholeNote::State(self.id, "connected"));
                let confirm = self.verify
                    && matches!(self.transfer, Transfer::Send(_) | Transfer::SendFile(_));
                self.emit(EventKind::Key {
                    verifier: hex::encode(verifier),
                    confirm,
                });
                if confirm {
                    self.awaiting_confirmation = true;
                } else {
                    self.start_sending(true, ctx);
                }
            }
            Event::Versions(_) => {}
            // Dilation messages go to a DilationHost; a text/file wormhole never asks to dilate.
            Event::Dilate(_) => {}
            Event::Received(bytes) => {
                match &mut self.transfer {
                    Transfer::Send(sender) => sender.handle(SenderInput::PeerMessage(bytes)),
                    Transfer::SendFile(side) => {
                        side.handle(FileSenderInput::PeerMessage(bytes));
                    }
                    Transfer::Receive(receiver) => {
                        receiver.handle(FileReceiverInput::PeerMessage(bytes));
                    }
                }
                self.drive_transfer(ctx);
            }
            Event::Closed { mood, error } => {
                if let Some(error) = error {
                    self.fail(failure_kind(&error), error.to_string());
                }
                self.finish(mood, ctx);
            }
        }
    }
}

impl Handler<AppCommand> for WormholeApp {
    type Result = ();

    fn handle(&mut self, command: AppCommand, ctx: &mut Context<Self>) {
        match command {
            AppCommand::Complete { client, id, prefix } => self.complete(client, id, prefix),
            AppCommand::SetCode { client, id, code } => self.set_code(client, id, code),
            AppCommand::Verify { client, id, accept } => {
                if !self.awaiting_confirmation {
                    return client.respond(
                        id,
                        Err(ControlError::new(
                            ErrorCode::InvalidState,
                            "this wormhole is not waiting for a verifier decision",
                        )),
                    );
                }
                self.awaiting_confirmation = false;
                client.respond(id, Ok(ResponseBody::Done {}));
                self.start_sending(accept, ctx);
            }
            AppCommand::Accept { client, id, accept } => self.accept(client, id, accept, ctx),
            AppCommand::Cancel { reply, reason } => {
                self.fail(FailureKind::Cancelled, format!("cancelled: {reason}"));
                self.cancel_transfer(ctx);
                self.close(ctx);
                if let Some((client, id)) = reply {
                    client.respond(id, Ok(ResponseBody::Done {}));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One limit for every requested code length: 1 to [`code::MAX_CODE_WORDS`] words.
    #[test]
    fn code_lengths_are_checked_against_the_one_limit() {
        assert!(validate_code(None, None).is_ok());
        assert!(validate_code(None, Some(1)).is_ok());
        assert!(validate_code(None, Some(code::MAX_CODE_WORDS)).is_ok());
        for bad in [0, code::MAX_CODE_WORDS + 1] {
            let err = validate_code(None, Some(bad)).expect_err("out of range");
            assert_eq!(err.code, ErrorCode::InvalidArgument);
        }
        assert!(validate_code(Some("7-guitarist-revenge"), Some(2)).is_ok());
        assert!(validate_code(Some("seven-a"), None).is_err());
    }
}
