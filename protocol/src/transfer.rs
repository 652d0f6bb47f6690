//! File-transfer v1 application messages, and the machines that send and receive a text.
//!
//! Each application message is one app phase (`"0"`, `"1"`, …) of the wormhole, holding a UTF-8
//! JSON object with one or more of the keys `offer`, `answer`, `transit` and `error`
//! ([`AppMessage`]). Mirrors `src/wormhole/cli/cmd_send.py` and `cmd_receive.py` of the Python
//! reference (the CLI, not the library: the library knows nothing of these messages).
//!
//! Parsing is tolerant like Python's dict lookups: unknown keys are ignored, a message without any
//! known key is ignored by the machines. JSON that is not an object, or a known key with a value of
//! the wrong shape, is a [`TransferError::Malformed`], never a panic. Python writes JSON with `", "`
//! and `": "` separators and `\u` escapes; we parse any valid JSON and emit compact JSON.
//!
//! # [`TextSender`] (`wormhole send --text`)
//!
//! - States: awaiting verification → awaiting answer → finished.
//! - Inputs ([`TextSenderInput`]): `Verified` (the key is confirmed and, with `--verify`, the user
//!   accepted the verifier), `Rejected` (the user rejected the verifier), `PeerMessage(bytes)` (a
//!   decrypted app message from the receiver).
//! - Outputs ([`TextSenderOutput`]): `SendToPeer` (the offer, or the rejection error), then `Done`
//!   (the receiver acknowledged) or `Failed`.
//!
//! # [`TextReceiver`] (`wormhole receive`, text only for now)
//!
//! - States: awaiting offer → finished.
//! - Inputs ([`TextReceiverInput`]): `PeerMessage(bytes)`.
//! - Outputs ([`TextReceiverOutput`]): `ReceivedText`, `SendToPeer` (the ack), `Done`; or for a file
//!   or directory offer (not supported yet) `SendToPeer` (an error for the sender) and `Failed`.
//!
//! Files and directories: [`FileSender`] and [`FileReceiver`] (module `file`), and the pure rules of
//! names, zip entries and the transit ack in [`layout`].
//!
//! Neither machine has timers. Once finished, a machine ignores every input. Closing the wormhole
//! (mood `happy` after `Done`, otherwise `errory`) is the host's job.

use std::collections::VecDeque;

mod file;
pub mod layout;

pub use file::{
    FileReceiver, FileReceiverInput, FileReceiverOutput, FileSender, FileSenderInput,
    FileSenderOutput, IncomingOffer,
};
pub use layout::{ack_record, check_ack, LayoutError};

use serde::de::Error as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// The `error` a sender sends when its user rejects the verifier (`cmd_send.py`).
pub const SENDER_REJECTED_VERIFICATION: &str =
    "sender rejected verification check, abandoned transfer";
/// The `error` a receiver sends when it refuses a file or directory (`cmd_receive.py`).
pub const TRANSFER_REJECTED: &str = "transfer rejected";
/// The `error` a receiver sends for an offer of unknown type (`cmd_receive.py`).
pub const UNKNOWN_OFFER_TYPE: &str = "unknown offer type";
/// The `error` a receiver sends for a directory offer with an unknown `mode` (`cmd_receive.py`).
pub const UNKNOWN_MODE: &str = "unknown mode";
/// The only directory `mode` the reference knows (its entries are in fact stored, not deflated).
pub const DIRECTORY_MODE_ZIPFILE_DEFLATED: &str = "zipfile/deflated";
/// The value of `message_ack` and `file_ack` in a positive answer.
pub const ACK_OK: &str = "ok";

/// One file-transfer v1 application message: a JSON object with any of these keys.
///
/// The reference looks each key up separately, so one message may carry several (a sender may put
/// `transit` and `offer` together). Absent keys are `None` and are not serialized.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppMessage {
    /// `{"offer": …}`: what the sender offers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer: Option<Offer>,
    /// `{"answer": …}`: the receiver's acknowledgement of an offer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<Answer>,
    /// `{"transit": {"abilities-v1": […], "hints-v1": […]}}`: kept as raw JSON for now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transit: Option<Value>,
    /// `{"error": "…"}`: the peer abandons the transfer, with a reason for the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl AppMessage {
    /// `{"offer": offer}`.
    pub fn offer(offer: Offer) -> Self {
        Self {
            offer: Some(offer),
            ..Self::default()
        }
    }

    /// `{"answer": answer}`.
    pub fn answer(answer: Answer) -> Self {
        Self {
            answer: Some(answer),
            ..Self::default()
        }
    }

    /// `{"error": text}`.
    pub fn error(text: impl Into<String>) -> Self {
        Self {
            error: Some(text.into()),
            ..Self::default()
        }
    }

    /// Parses the plaintext of an app phase. Unknown keys are ignored.
    pub fn parse(bytes: &[u8]) -> Result<Self, TransferError> {
        let malformed = |e: serde_json::Error| TransferError::Malformed(e.to_string());
        // Going through a map first rejects a top-level array, which serde would otherwise accept
        // as the sequence form of the struct.
        let object: serde_json::Map<String, Value> =
            serde_json::from_slice(bytes).map_err(malformed)?;
        Self::deserialize(Value::Object(object)).map_err(malformed)
    }

    /// The compact JSON bytes of this message, ready to be sent as an app phase.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing cannot fail: every field is a string, a number, a struct of those, or a
        // `serde_json::Value` (whose map keys are always strings).
        serde_json::to_vec(self).expect("an AppMessage always serializes to JSON")
    }
}

/// The value of `offer`: a one-key object naming what is offered.
///
/// Like the reference, the keys are tried in the order `message`, `file`, `directory`; other keys
/// beside the one found are ignored. An object with none of them is kept as [`Offer::Unknown`].
#[derive(Debug, Clone, PartialEq)]
pub enum Offer {
    /// `{"message": text}`: a text message.
    Message(String),
    /// `{"file": {"filename", "filesize"}}`: one file, sent over Transit.
    File(FileOffer),
    /// `{"directory": {"mode", "dirname", "zipsize", "numbytes", "numfiles"}}`: a directory, sent
    /// over Transit as a zip file.
    Directory(DirectoryOffer),
    /// An object with none of the known keys (the receiver answers `unknown offer type`). Serialized
    /// back as it was.
    Unknown(Value),
}

impl Serialize for Offer {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        fn one<S: Serializer, T: Serialize>(
            serializer: S,
            key: &str,
            value: &T,
        ) -> Result<S::Ok, S::Error> {
            let mut map = serializer.serialize_map(Some(1))?;
            map.serialize_entry(key, value)?;
            map.end()
        }
        match self {
            Self::Message(text) => one(serializer, "message", text),
            Self::File(file) => one(serializer, "file", file),
            Self::Directory(directory) => one(serializer, "directory", directory),
            Self::Unknown(value) => value.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Offer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        fn field<T: for<'a> Deserialize<'a>, E: serde::de::Error>(
            key: &str,
            value: Value,
        ) -> Result<T, E> {
            T::deserialize(value).map_err(|e| E::custom(format_args!("offer.{key}: {e}")))
        }
        let mut map = serde_json::Map::<String, Value>::deserialize(deserializer)
            .map_err(|e| D::Error::custom(format_args!("offer: {e}")))?;
        if let Some(value) = map.remove("message") {
            return field("message", value).map(Self::Message);
        }
        if let Some(value) = map.remove("file") {
            return field("file", value).map(Self::File);
        }
        if let Some(value) = map.remove("directory") {
            return field("directory", value).map(Self::Directory);
        }
        Ok(Self::Unknown(Value::Object(map)))
    }
}

/// The value of `offer.file`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileOffer {
    /// The file's name as the sender sees it (its basename). Untrusted: a receiver must apply
    /// basename() again before using it.
    pub filename: String,
    /// The exact number of bytes that will follow over Transit.
    pub filesize: u64,
}

/// The value of `offer.directory`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryOffer {
    /// Always [`DIRECTORY_MODE_ZIPFILE_DEFLATED`] from the reference.
    pub mode: String,
    /// The directory's name as the sender sees it. Untrusted, like [`FileOffer::filename`].
    pub dirname: String,
    /// The exact number of zip bytes that will follow over Transit.
    pub zipsize: u64,
    /// The sum of the sizes of the files inside.
    pub numbytes: u64,
    /// The number of regular files inside (directories not counted).
    pub numfiles: u64,
}

/// The value of `answer`: `{"message_ack": "ok"}` for a text, `{"file_ack": "ok"}` for a file or
/// directory. Both are optional so that an odd answer still parses and can be reported.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// The receiver's acknowledgement of a text offer: [`ACK_OK`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_ack: Option<String>,
    /// The receiver's acceptance of a file or directory offer: [`ACK_OK`]. Transit connects only
    /// after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_ack: Option<String>,
}

impl Answer {
    /// `{"message_ack": "ok"}`.
    pub fn message_ok() -> Self {
        Self {
            message_ack: Some(ACK_OK.to_owned()),
            file_ack: None,
        }
    }

    /// `{"file_ack": "ok"}`.
    pub fn file_ok() -> Self {
        Self {
            message_ack: None,
            file_ack: Some(ACK_OK.to_owned()),
        }
    }

    /// The answer as compact JSON, for error messages.
    fn describe(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| format!("{self:?}"))
    }
}

/// Why a transfer failed. The messages are meant for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// The peer's message is not JSON, not an object, or a known key has the wrong shape.
    #[error("the peer sent a malformed message: {0}")]
    Malformed(String),
    /// The peer abandoned the transfer with `{"error": text}`.
    #[error("remote error, transfer abandoned: {0}")]
    Remote(String),
    /// Our user rejected the verifier; the peer has been told.
    #[error("sender rejected verification check, abandoned transfer")]
    VerificationRejected,
    /// The receiver answered before we sent our offer.
    #[error("the peer answered before the offer was sent, transfer abandoned")]
    AnswerBeforeOffer,
    /// The receiver answered a text offer with `file_ack` (it thinks we offered a file).
    #[error("error sending text: the peer answered with file_ack instead of message_ack")]
    FileAckForText,
    /// The receiver's answer to a text offer is not `{"message_ack": "ok"}`.
    #[error("error sending text: the peer answered {answer}")]
    BadAnswer {
        /// The answer, as compact JSON.
        answer: String,
    },
    /// The sender offered a file, which this version cannot receive yet. It has been told
    /// `transfer rejected`.
    #[error(
        "the peer offered file {filename:?} ({filesize} bytes), \
         which this version cannot receive yet"
    )]
    FileNotSupported {
        /// The offered name, as sent (untrusted).
        filename: String,
        /// The offered size in bytes.
        filesize: u64,
    },
    /// The sender offered a directory, which this version cannot receive yet. It has been told
    /// `transfer rejected`.
    #[error(
        "the peer offered directory {dirname:?} ({numfiles} files, {numbytes} bytes), \
         which this version cannot receive yet"
    )]
    DirectoryNotSupported {
        /// The offered name, as sent (untrusted).
        dirname: String,
        /// The number of files inside.
        numfiles: u64,
        /// The total size of the files inside.
        numbytes: u64,
    },
    /// The receiver's ack record says something else than `ok`.
    #[error("Transfer failed (remote says: {0:?})")]
    AckNotOk(String),
    /// The receiver's SHA-256 of the data differs from ours.
    #[error("Transfer failed (bad remote hash)")]
    BadHash,
    /// The receiver answered a file offer with `message_ack`.
    #[error("the peer answered with message_ack instead of file_ack")]
    MessageAckForFile,
    /// We declined the offer (the user said no, or a local check failed); the sender has been
    /// told `transfer rejected`.
    #[error("transfer rejected: {0}")]
    Declined(String),
    /// The sender offered a file or directory without sending its `transit` first.
    #[error("the peer offered a file without transit hints, transfer abandoned")]
    NoTransit,
    /// A second offer arrived.
    #[error("duplicate offer")]
    DuplicateOffer,
    /// A directory offer with a `mode` other than `zipfile/…`.
    #[error("unknown directory-transfer mode {0:?}")]
    UnknownMode(String),
    /// The offered name or a zip entry is unusable or hostile.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// Moving the data failed (Transit, disk, hash); the peer has been told when possible.
    #[error("{0}")]
    Transfer(String),
    /// The sender's offer is of no known type. It has been told `unknown offer type`.
    #[error("the peer made an offer of unknown type: {offer}")]
    UnknownOffer {
        /// The offer, as compact JSON.
        offer: String,
    },
}

/// An event for a [`TextSender`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextSenderInput {
    /// The wormhole key is confirmed and, if the user asked for `--verify`, the user accepted the
    /// verifier: the offer may go out.
    Verified,
    /// The user rejected the verifier.
    Rejected,
    /// A decrypted app message from the receiver.
    PeerMessage(Vec<u8>),
}

/// What a [`TextSender`] wants done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextSenderOutput {
    /// Send these bytes as the next app phase.
    SendToPeer(Vec<u8>),
    /// The receiver acknowledged the text: close the wormhole (happy).
    Done,
    /// The transfer failed: report the error and close the wormhole.
    Failed(TransferError),
}

/// Sends one text message (`wormhole send --text`). See the [module docs](self).
#[derive(Debug)]
pub struct TextSender {
    state: SenderState,
    outputs: VecDeque<TextSenderOutput>,
}

#[derive(Debug)]
enum SenderState {
    /// Holding the text until [`TextSenderInput::Verified`].
    AwaitingVerification { text: String },
    /// The offer is out; waiting for `answer`.
    AwaitingAnswer,
    /// `Done` or `Failed` has been emitted.
    Finished,
}

impl TextSender {
    /// A sender for `text`. Nothing goes out before [`TextSenderInput::Verified`].
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            state: SenderState::AwaitingVerification { text: text.into() },
            outputs: VecDeque::new(),
        }
    }

    /// Feeds one event in.
    pub fn handle(&mut self, input: TextSenderInput) {
        match (
            std::mem::replace(&mut self.state, SenderState::Finished),
            input,
        ) {
            (SenderState::Finished, _) => {}
            (SenderState::AwaitingVerification { text }, TextSenderInput::Verified) => {
                let offer = AppMessage::offer(Offer::Message(text));
                self.outputs
                    .push_back(TextSenderOutput::SendToPeer(offer.to_bytes()));
                self.state = SenderState::AwaitingAnswer;
            }
            (SenderState::AwaitingVerification { .. }, TextSenderInput::Rejected) => {
                let error = AppMessage::error(SENDER_REJECTED_VERIFICATION);
                self.outputs
                    .push_back(TextSenderOutput::SendToPeer(error.to_bytes()));
                self.fail(TransferError::VerificationRejected);
            }
            (state, TextSenderInput::PeerMessage(bytes)) => {
                let offered = matches!(state, SenderState::AwaitingAnswer);
                self.state = state;
                self.handle_peer_message(&bytes, offered);
            }
            // Verification news after the offer went out changes nothing.
            (state @ SenderState::AwaitingAnswer, _) => self.state = state,
        }
    }

    /// The next thing to do, if any. Drain until `None` after every [`handle`](Self::handle).
    pub fn poll_output(&mut self) -> Option<TextSenderOutput> {
        self.outputs.pop_front()
    }

    /// Whether `Done` or `Failed` has been emitted.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, SenderState::Finished)
    }

    fn handle_peer_message(&mut self, bytes: &[u8], offered: bool) {
        let message = match AppMessage::parse(bytes) {
            Ok(message) => message,
            Err(e) => return self.fail(e),
        };
        if let Some(error) = message.error {
            return self.fail(TransferError::Remote(error));
        }
        // `transit` means nothing for a text; anything else unknown is ignored, as in Python.
        let Some(answer) = message.answer else {
            return;
        };
        if !offered {
            return self.fail(TransferError::AnswerBeforeOffer);
        }
        match (answer.message_ack.as_deref(), answer.file_ack.as_deref()) {
            (Some(ACK_OK), _) => {
                self.state = SenderState::Finished;
                self.outputs.push_back(TextSenderOutput::Done);
            }
            (None, Some(_)) => self.fail(TransferError::FileAckForText),
            _ => self.fail(TransferError::BadAnswer {
                answer: answer.describe(),
            }),
        }
    }

    fn fail(&mut self, error: TransferError) {
        self.state = SenderState::Finished;
        self.outputs.push_back(TextSenderOutput::Failed(error));
    }
}

/// An event for a [`TextReceiver`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextReceiverInput {
    /// A decrypted app message from the sender.
    PeerMessage(Vec<u8>),
}

/// What a [`TextReceiver`] wants done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextReceiverOutput {
    /// The sender's text: show it to the user.
    ReceivedText(String),
    /// Send these bytes as the next app phase.
    SendToPeer(Vec<u8>),
    /// The text was received and acknowledged: close the wormhole (happy).
    Done,
    /// The transfer failed: report the error and close the wormhole.
    Failed(TransferError),
}

/// Receives a text message (`wormhole receive`); refuses files and directories for now. See the
/// [module docs](self).
#[derive(Debug, Default)]
pub struct TextReceiver {
    finished: bool,
    outputs: VecDeque<TextReceiverOutput>,
}

impl TextReceiver {
    /// A receiver waiting for the sender's offer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one event in.
    pub fn handle(&mut self, input: TextReceiverInput) {
        if self.finished {
            return;
        }
        match input {
            TextReceiverInput::PeerMessage(bytes) => self.handle_peer_message(&bytes),
        }
    }

    /// The next thing to do, if any. Drain until `None` after every [`handle`](Self::handle).
    pub fn poll_output(&mut self) -> Option<TextReceiverOutput> {
        self.outputs.pop_front()
    }

    /// Whether `Done` or `Failed` has been emitted.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    fn handle_peer_message(&mut self, bytes: &[u8]) {
        let message = match AppMessage::parse(bytes) {
            Ok(message) => message,
            Err(e) => return self.fail(e),
        };
        if let Some(error) = message.error {
            return self.fail(TransferError::Remote(error));
        }
        // `transit` is ignored until file transfer exists; a message with no offer is ignored.
        let Some(offer) = message.offer else {
            return;
        };
        match offer {
            Offer::Message(text) => {
                let ack = AppMessage::answer(Answer::message_ok());
                self.outputs
                    .push_back(TextReceiverOutput::ReceivedText(text));
                self.outputs
                    .push_back(TextReceiverOutput::SendToPeer(ack.to_bytes()));
                self.outputs.push_back(TextReceiverOutput::Done);
                self.finished = true;
            }
            Offer::File(file) => self.refuse(
                TRANSFER_REJECTED,
                TransferError::FileNotSupported {
                    filename: file.filename,
                    filesize: file.filesize,
                },
            ),
            Offer::Directory(directory) => self.refuse(
                TRANSFER_REJECTED,
                TransferError::DirectoryNotSupported {
                    dirname: directory.dirname,
                    numfiles: directory.numfiles,
                    numbytes: directory.numbytes,
                },
            ),
            Offer::Unknown(value) => self.refuse(
                UNKNOWN_OFFER_TYPE,
                TransferError::UnknownOffer {
                    offer: value.to_string(),
                },
            ),
        }
    }

    /// Tells the sender `reason` (one of the reference's receiver strings), then fails.
    fn refuse(&mut self, reason: &str, error: TransferError) {
        let message = AppMessage::error(reason);
        self.outputs
            .push_back(TextReceiverOutput::SendToPeer(message.to_bytes()));
        self.fail(error);
    }

    fn fail(&mut self, error: TransferError) {
        self.finished = true;
        self.outputs.push_back(TextReceiverOutput::Failed(error));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    // Exactly what Python's `dict_to_bytes` (json.dumps) produces, from magic-wormhole 0.24.0.
    const PY_TEXT_OFFER: &str = r#"{"offer": {"message": "hello w\u00f6rld \u2603 \"q\"\n"}}"#;
    const PY_FILE_OFFER: &str =
        r#"{"offer": {"file": {"filename": "r\u00e9sum\u00e9.pdf", "filesize": 123456}}}"#;
    const PY_DIR_OFFER: &str = r#"{"offer": {"directory": {"mode": "zipfile/deflated", "dirname": "photos", "zipsize": 4242, "numbytes": 4000, "numfiles": 3}}}"#;
    const PY_TRANSIT: &str = r#"{"transit": {"abilities-v1": [{"type": "direct-tcp-v1"}, {"type": "relay-v1"}], "hints-v1": [{"type": "direct-tcp-v1", "priority": 0.0, "hostname": "192.168.1.5", "port": 40123}, {"type": "relay-v1", "hints": [{"type": "direct-tcp-v1", "priority": 0.0, "hostname": "transit.magic-wormhole.io", "port": 4001}]}]}}"#;
    const PY_MESSAGE_ACK: &str = r#"{"answer": {"message_ack": "ok"}}"#;
    const PY_FILE_ACK: &str = r#"{"answer": {"file_ack": "ok"}}"#;
    const PY_TRANSFER_REJECTED: &str = r#"{"error": "transfer rejected"}"#;
    const PY_SENDER_REJECTED: &str =
        r#"{"error": "sender rejected verification check, abandoned transfer"}"#;

    const TEXT: &str = "hello w\u{f6}rld \u{2603} \"q\"\n";

    fn parse(s: &str) -> AppMessage {
        AppMessage::parse(s.as_bytes()).expect("test vector parses")
    }

    fn json_of(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).expect("machine output is JSON")
    }

    fn drain_sender(sender: &mut TextSender) -> Vec<TextSenderOutput> {
        std::iter::from_fn(|| sender.poll_output()).collect()
    }

    fn drain_receiver(receiver: &mut TextReceiver) -> Vec<TextReceiverOutput> {
        std::iter::from_fn(|| receiver.poll_output()).collect()
    }

    fn peer(s: &str) -> TextSenderInput {
        TextSenderInput::PeerMessage(s.as_bytes().to_vec())
    }

    fn from_sender(s: &str) -> TextReceiverInput {
        TextReceiverInput::PeerMessage(s.as_bytes().to_vec())
    }

    /// A sender that has sent its offer.
    fn offered_sender() -> TextSender {
        let mut sender = TextSender::new(TEXT);
        sender.handle(TextSenderInput::Verified);
        assert_eq!(drain_sender(&mut sender).len(), 1);
        sender
    }

    fn sender_failure(reply: &str) -> TransferError {
        let mut sender = offered_sender();
        sender.handle(peer(reply));
        match drain_sender(&mut sender).as_slice() {
            [TextSenderOutput::Failed(e)] => {
                assert!(sender.is_finished());
                e.clone()
            }
            other => panic!("expected one Failed, got {other:?}"),
        }
    }

    // --- wire types ---

    #[test]
    fn parse_python_messages() {
        assert_eq!(
            parse(PY_TEXT_OFFER),
            AppMessage::offer(Offer::Message(TEXT.into()))
        );
        assert_eq!(
            parse(PY_FILE_OFFER),
            AppMessage::offer(Offer::File(FileOffer {
                filename: "r\u{e9}sum\u{e9}.pdf".into(),
                filesize: 123_456,
            }))
        );
        assert_eq!(
            parse(PY_DIR_OFFER),
            AppMessage::offer(Offer::Directory(DirectoryOffer {
                mode: DIRECTORY_MODE_ZIPFILE_DEFLATED.into(),
                dirname: "photos".into(),
                zipsize: 4242,
                numbytes: 4000,
                numfiles: 3,
            }))
        );
        let transit = parse(PY_TRANSIT);
        assert_eq!(
            transit.transit.as_ref().map(|t| &t["hints-v1"][0]["port"]),
            Some(&json!(40123))
        );
        assert_eq!(transit.offer, None);
        assert_eq!(
            parse(PY_MESSAGE_ACK),
            AppMessage::answer(Answer::message_ok())
        );
        assert_eq!(parse(PY_FILE_ACK), AppMessage::answer(Answer::file_ok()));
        assert_eq!(
            parse(PY_TRANSFER_REJECTED),
            AppMessage::error(TRANSFER_REJECTED)
        );
        assert_eq!(
            parse(PY_SENDER_REJECTED),
            AppMessage::error(SENDER_REJECTED_VERIFICATION)
        );
    }

    /// What we emit is compact, and means the same JSON as what Python emits.
    #[test]
    fn emit_compact_equivalent_json() {
        let cases = [
            (
                AppMessage::offer(Offer::Message(TEXT.into())),
                PY_TEXT_OFFER,
            ),
            (parse(PY_FILE_OFFER), PY_FILE_OFFER),
            (parse(PY_DIR_OFFER), PY_DIR_OFFER),
            (parse(PY_TRANSIT), PY_TRANSIT),
            (AppMessage::answer(Answer::message_ok()), PY_MESSAGE_ACK),
            (AppMessage::answer(Answer::file_ok()), PY_FILE_ACK),
            (AppMessage::error(TRANSFER_REJECTED), PY_TRANSFER_REJECTED),
        ];
        for (message, python) in cases {
            let bytes = message.to_bytes();
            assert_eq!(json_of(&bytes), json_of(python.as_bytes()), "{python}");
            assert_eq!(parse(std::str::from_utf8(&bytes).expect("UTF-8")), message);
        }
        assert_eq!(
            AppMessage::answer(Answer::message_ok()).to_bytes(),
            br#"{"answer":{"message_ack":"ok"}}"#
        );
        assert_eq!(
            AppMessage::offer(Offer::Message("hi".into())).to_bytes(),
            br#"{"offer":{"message":"hi"}}"#
        );
    }

    /// Several keys in one message, unknown keys anywhere, and the reference's key order.
    #[test]
    fn parse_is_tolerant() {
        let both =
            parse(r#"{"transit": {"abilities-v1": []}, "offer": {"message": "x"}, "extra": 1}"#);
        assert!(both.transit.is_some());
        assert_eq!(both.offer, Some(Offer::Message("x".into())));

        let extra = parse(r#"{"offer": {"file": {"filename": "a", "filesize": 1, "mtime": 5}}}"#);
        assert!(matches!(extra.offer, Some(Offer::File(_))));
        // "message" wins over "file", as in `_parse_offer`.
        let two = parse(r#"{"offer": {"file": {"filename": "a", "filesize": 1}, "message": "m"}}"#);
        assert_eq!(two.offer, Some(Offer::Message("m".into())));

        let answer = parse(r#"{"answer": {"message_ack": "ok", "note": "hi"}}"#);
        assert_eq!(answer.answer, Some(Answer::message_ok()));

        assert_eq!(parse(r#"{"unknown": 1}"#), AppMessage::default());
        assert_eq!(parse("{}"), AppMessage::default());
        assert_eq!(
            parse(r#"{"offer": {"symlink": "x"}}"#).offer,
            Some(Offer::Unknown(json!({"symlink": "x"})))
        );
    }

    #[test]
    fn parse_rejects_garbage() {
        for bad in [
            "",
            "not json",
            "[]",
            "\"offer\"",
            "null",
            r#"{"offer": "#,
            r#"{"offer": "message"}"#,
            r#"{"offer": {"message": 5}}"#,
            r#"{"offer": {"file": {"filename": "a"}}}"#,
            r#"{"offer": {"file": {"filename": "a", "filesize": -1}}}"#,
            r#"{"offer": {"directory": {"dirname": "d"}}}"#,
            r#"{"answer": "ok"}"#,
            r#"{"error": 7}"#,
        ] {
            assert!(
                matches!(
                    AppMessage::parse(bad.as_bytes()),
                    Err(TransferError::Malformed(_))
                ),
                "{bad}"
            );
        }
        assert!(AppMessage::parse(b"\xff\xfe").is_err());
        let err = AppMessage::parse(br#"{"offer": {"message": 5}}"#).err();
        assert!(err.is_some_and(|e| e.to_string().contains("offer.message")));
    }

    // --- TextSender ---

    #[test]
    fn sender_happy_path() {
        let mut sender = TextSender::new(TEXT);
        assert_eq!(sender.poll_output(), None, "nothing before verification");
        sender.handle(TextSenderInput::Verified);
        match drain_sender(&mut sender).as_slice() {
            [TextSenderOutput::SendToPeer(bytes)] => {
                assert_eq!(json_of(bytes), json_of(PY_TEXT_OFFER.as_bytes()));
            }
            other => panic!("expected the offer, got {other:?}"),
        }
        assert!(!sender.is_finished());
        sender.handle(peer(PY_MESSAGE_ACK));
        assert_eq!(drain_sender(&mut sender), [TextSenderOutput::Done]);
        assert!(sender.is_finished());
        // Finished: everything is ignored.
        sender.handle(peer(PY_MESSAGE_ACK));
        sender.handle(peer("garbage"));
        sender.handle(TextSenderInput::Verified);
        assert_eq!(sender.poll_output(), None);
    }

    /// The receiver's `transit` and unknown messages are ignored while waiting for the answer.
    #[test]
    fn sender_ignores_transit_and_unknown() {
        let mut sender = offered_sender();
        sender.handle(peer(PY_TRANSIT));
        sender.handle(peer(r#"{"something": "new"}"#));
        sender.handle(TextSenderInput::Verified);
        sender.handle(TextSenderInput::Rejected);
        assert_eq!(sender.poll_output(), None);
        sender.handle(peer(r#"{"transit": {}, "answer": {"message_ack": "ok"}}"#));
        assert_eq!(drain_sender(&mut sender), [TextSenderOutput::Done]);
    }

    #[test]
    fn sender_rejects_verification() {
        let mut sender = TextSender::new(TEXT);
        sender.handle(TextSenderInput::Rejected);
        match drain_sender(&mut sender).as_slice() {
            [TextSenderOutput::SendToPeer(bytes), TextSenderOutput::Failed(e)] => {
                assert_eq!(json_of(bytes), json_of(PY_SENDER_REJECTED.as_bytes()));
                assert_eq!(e, &TransferError::VerificationRejected);
                assert_eq!(e.to_string(), SENDER_REJECTED_VERIFICATION);
            }
            other => panic!("expected error + Failed, got {other:?}"),
        }
        assert!(sender.is_finished());
        sender.handle(TextSenderInput::Verified);
        assert_eq!(sender.poll_output(), None, "the text never goes out");
    }

    #[test]
    fn sender_remote_error() {
        let e = sender_failure(PY_TRANSFER_REJECTED);
        assert_eq!(e, TransferError::Remote(TRANSFER_REJECTED.into()));
        assert_eq!(
            e.to_string(),
            "remote error, transfer abandoned: transfer rejected"
        );
        // `error` wins even next to an ok answer, as in `cmd_send.py`.
        assert_eq!(
            sender_failure(r#"{"error": "nope", "answer": {"message_ack": "ok"}}"#),
            TransferError::Remote("nope".into())
        );
    }

    #[test]
    fn sender_bad_answers() {
        assert_eq!(sender_failure(PY_FILE_ACK), TransferError::FileAckForText);
        assert_eq!(
            sender_failure(r#"{"answer": {"message_ack": "no"}}"#),
            TransferError::BadAnswer {
                answer: r#"{"message_ack":"no"}"#.into()
            }
        );
        assert_eq!(
            sender_failure(r#"{"answer": {}}"#),
            TransferError::BadAnswer {
                answer: "{}".into()
            }
        );
        assert_eq!(
            sender_failure(r#"{"answer": {"message_ack": "no"}}"#).to_string(),
            r#"error sending text: the peer answered {"message_ack":"no"}"#
        );
    }

    #[test]
    fn sender_garbage() {
        for garbage in ["", "{", "[1]", "\u{0}", r#"{"answer": 1}"#] {
            assert!(
                matches!(sender_failure(garbage), TransferError::Malformed(_)),
                "{garbage:?}"
            );
        }
    }

    /// Before the offer: an error from the peer ends it, an answer is a protocol error, the rest
    /// is ignored; the text stays unsent.
    #[test]
    fn sender_peer_messages_before_verification() {
        let mut sender = TextSender::new(TEXT);
        sender.handle(peer(PY_TRANSIT));
        assert_eq!(sender.poll_output(), None);
        sender.handle(peer(PY_MESSAGE_ACK));
        assert_eq!(
            drain_sender(&mut sender),
            [TextSenderOutput::Failed(TransferError::AnswerBeforeOffer)]
        );
        sender.handle(TextSenderInput::Verified);
        assert_eq!(sender.poll_output(), None);

        let mut sender = TextSender::new(TEXT);
        sender.handle(peer(r#"{"error": "bye"}"#));
        assert_eq!(
            drain_sender(&mut sender),
            [TextSenderOutput::Failed(TransferError::Remote(
                "bye".into()
            ))]
        );
    }

    // --- TextReceiver ---

    #[test]
    fn receiver_text() {
        let mut receiver = TextReceiver::new();
        receiver.handle(from_sender(PY_TEXT_OFFER));
        match drain_receiver(&mut receiver).as_slice() {
            [TextReceiverOutput::ReceivedText(text), TextReceiverOutput::SendToPeer(ack), TextReceiverOutput::Done] =>
            {
                assert_eq!(text, TEXT);
                assert_eq!(json_of(ack), json_of(PY_MESSAGE_ACK.as_bytes()));
            }
            other => panic!("expected text, ack, done; got {other:?}"),
        }
        assert!(receiver.is_finished());
        // A duplicate offer after the end is ignored.
        receiver.handle(from_sender(PY_TEXT_OFFER));
        assert_eq!(receiver.poll_output(), None);
    }

    /// `transit` (alone, or beside the offer) and unknown messages are ignored.
    #[test]
    fn receiver_ignores_transit_and_unknown() {
        let mut receiver = TextReceiver::new();
        receiver.handle(from_sender(PY_TRANSIT));
        receiver.handle(from_sender(r#"{"future": true}"#));
        receiver.handle(from_sender(PY_MESSAGE_ACK));
        assert_eq!(receiver.poll_output(), None);
        assert!(!receiver.is_finished());
        receiver.handle(from_sender(
            r#"{"transit": {"hints-v1": []}, "offer": {"message": ""}}"#,
        ));
        let outputs = drain_receiver(&mut receiver);
        assert_eq!(outputs[0], TextReceiverOutput::ReceivedText(String::new()));
        assert_eq!(outputs.last(), Some(&TextReceiverOutput::Done));
    }

    fn refusal(offer: &str) -> (Value, TransferError) {
        let mut receiver = TextReceiver::new();
        receiver.handle(from_sender(PY_TRANSIT));
        receiver.handle(from_sender(offer));
        assert!(receiver.is_finished());
        match drain_receiver(&mut receiver).as_slice() {
            [TextReceiverOutput::SendToPeer(bytes), TextReceiverOutput::Failed(e)] => {
                (json_of(bytes), e.clone())
            }
            other => panic!("expected error + Failed, got {other:?}"),
        }
    }

    #[test]
    fn receiver_refuses_file() {
        let (sent, error) = refusal(PY_FILE_OFFER);
        assert_eq!(sent, json_of(PY_TRANSFER_REJECTED.as_bytes()));
        assert_eq!(
            error,
            TransferError::FileNotSupported {
                filename: "r\u{e9}sum\u{e9}.pdf".into(),
                filesize: 123_456
            }
        );
        assert_eq!(
            error.to_string(),
            "the peer offered file \"r\u{e9}sum\u{e9}.pdf\" (123456 bytes), which this version \
             cannot receive yet"
        );
        // A hostile name is quoted with escapes, never printed raw.
        let (_, error) =
            refusal(r#"{"offer": {"file": {"filename": "a\u001b[2Jb", "filesize": 0}}}"#);
        assert!(!error.to_string().contains('\u{1b}'));
    }

    #[test]
    fn receiver_refuses_directory() {
        let (sent, error) = refusal(PY_DIR_OFFER);
        assert_eq!(sent, json_of(PY_TRANSFER_REJECTED.as_bytes()));
        assert_eq!(
            error,
            TransferError::DirectoryNotSupported {
                dirname: "photos".into(),
                numfiles: 3,
                numbytes: 4000
            }
        );
        assert!(error.to_string().contains("cannot receive yet"));
    }

    #[test]
    fn receiver_refuses_unknown_offer() {
        let (sent, error) = refusal(r#"{"offer": {"symlink": {"target": "/etc"}}}"#);
        assert_eq!(sent, json!({"error": UNKNOWN_OFFER_TYPE}));
        assert_eq!(
            error,
            TransferError::UnknownOffer {
                offer: r#"{"symlink":{"target":"/etc"}}"#.into()
            }
        );
    }

    #[test]
    fn receiver_remote_error() {
        let mut receiver = TextReceiver::new();
        receiver.handle(from_sender(PY_SENDER_REJECTED));
        assert_eq!(
            drain_receiver(&mut receiver),
            [TextReceiverOutput::Failed(TransferError::Remote(
                SENDER_REJECTED_VERIFICATION.into()
            ))]
        );
        receiver.handle(from_sender(PY_TEXT_OFFER));
        assert_eq!(receiver.poll_output(), None);
    }

    #[test]
    fn receiver_garbage() {
        for garbage in ["", "}", "[]", "\"x\"", r#"{"offer": {"message": null}}"#] {
            let mut receiver = TextReceiver::new();
            receiver.handle(from_sender(garbage));
            assert!(
                matches!(
                    drain_receiver(&mut receiver).as_slice(),
                    [TextReceiverOutput::Failed(TransferError::Malformed(_))]
                ),
                "{garbage:?}"
            );
            assert!(receiver.is_finished());
        }
    }
}
