//! The machines that send and receive a file or a directory (and, for the receiver, a text).
//!
//! The data itself never passes through these machines: the host moves it over Transit on worker
//! threads and reports the outcome. The machines decide what is said over the mailbox, when
//! Transit may connect, and whether the transfer succeeded. Mirrors `cli/cmd_send.py`
//! (`_handle_answer`, `_send_file`) and `cli/cmd_receive.py` (`_go`, `_handle_file`,
//! `_handle_directory`).
//!
//! # [`FileSender`] (`wormhole send FILE`)
//!
//! - States: preparing (waiting for verification and our transit body, either order) → offered
//!   (waiting for `answer.file_ack` and the peer's `transit`, either order) → transferring
//!   (waiting for the receiver's ack record) → finished.
//! - Inputs ([`FileSenderInput`]): `Verified`, `Rejected`, `TransitReady(body)`,
//!   `PeerMessage(bytes)`, `TransitAck { record, sha256 }`, `DataFailed(reason)`.
//! - Outputs ([`FileSenderOutput`]): `SendToPeer` (`{"transit"}`, then `{"offer"}`, or an
//!   error), `ConnectTransit(peer body)` (connect and send the data), `Done`, `Failed`.
//!
//! # [`FileReceiver`] (`wormhole receive`)
//!
//! - States: awaiting offer → deciding (the app was asked) → transferring → finished.
//! - Inputs ([`FileReceiverInput`]): `PeerMessage(bytes)`, `TransitReady(body)`, `Accept`,
//!   `Decline(reason)`, `Received`, `DataFailed(reason)`.
//! - Outputs ([`FileReceiverOutput`]): `PrepareTransit` (the sender's `transit` arrived: build
//!   ours), `SendToPeer`, `ReceivedText`, `Offer` (ask the user), `ConnectTransit(peer body)`,
//!   `Done`, `Failed`.
//!
//! The receiver decides nothing itself: free space, overwrites and the user's answer are the
//! host's checks, reported as `Accept` or `Decline`. It does sanitize the offered name
//! ([`safe_basename`]). Neither machine has timers; once finished, each ignores every input.

use std::collections::VecDeque;

use serde_json::Value;

use super::layout::safe_basename;
use super::{
    check_ack, Answer, AppMessage, Offer, TransferError, ACK_OK, DIRECTORY_MODE_ZIPFILE_DEFLATED,
    SENDER_REJECTED_VERIFICATION, TRANSFER_REJECTED, UNKNOWN_MODE, UNKNOWN_OFFER_TYPE,
};

/// An event for a [`FileSender`].
#[derive(Debug, Clone, PartialEq)]
pub enum FileSenderInput {
    /// The key is confirmed (and, with `--verify`, the user accepted the verifier).
    Verified,
    /// The user rejected the verifier.
    Rejected,
    /// Our `transit` body (`{"abilities-v1", "hints-v1"}`) is ready.
    TransitReady(Value),
    /// A decrypted app message from the receiver.
    PeerMessage(Vec<u8>),
    /// Every byte was sent; the receiver's ack record arrived over Transit. `sha256` is the
    /// digest of what we sent.
    TransitAck {
        /// The ack record's plaintext.
        record: Vec<u8>,
        /// SHA-256 of the bytes sent.
        sha256: [u8; 32],
    },
    /// Transit or reading the file failed on our side.
    DataFailed(String),
}

/// What a [`FileSender`] wants done.
#[derive(Debug, Clone, PartialEq)]
pub enum FileSenderOutput {
    /// Send these bytes as the next app phase.
    SendToPeer(Vec<u8>),
    /// The receiver accepted: connect Transit with its `transit` body and send the data.
    ConnectTransit(Value),
    /// The receiver confirmed the data: close the wormhole (happy).
    Done,
    /// The transfer failed: report it and close the wormhole.
    Failed(TransferError),
}

#[derive(Debug)]
enum SendState {
    Preparing {
        verified: bool,
        transit: Option<Value>,
        peer_transit: Option<Value>,
    },
    Offered {
        peer_transit: Option<Value>,
        accepted: bool,
    },
    Transferring,
    Finished,
}

/// Sends one file or directory offer: the `transit` message and the offer, then, once the
/// receiver accepts, the data over Transit and a check of its ack.
#[derive(Debug)]
pub struct FileSender {
    offer: Offer,
    state: SendState,
    outputs: VecDeque<FileSenderOutput>,
}

impl FileSender {
    /// A sender of `offer` ([`Offer::File`] or [`Offer::Directory`]). Nothing goes out before
    /// both `Verified` and `TransitReady`.
    pub fn new(offer: Offer) -> Self {
        Self {
            offer,
            state: SendState::Preparing {
                verified: false,
                transit: None,
                peer_transit: None,
            },
            outputs: VecDeque::new(),
        }
    }

    /// Feeds one event in.
    pub fn handle(&mut self, input: FileSenderInput) {
        let state = std::mem::replace(&mut self.state, SendState::Finished);
        self.state = match (state, input) {
            (SendState::Finished, _) => SendState::Finished,
            (SendState::Preparing { .. }, FileSenderInput::Rejected) => {
                let error = AppMessage::error(SENDER_REJECTED_VERIFICATION);
                self.outputs
                    .push_back(FileSenderOutput::SendToPeer(error.to_bytes()));
                self.fail(TransferError::VerificationRejected)
            }
            (
                SendState::Preparing {
                    transit,
                    peer_transit,
                    ..
                },
                FileSenderInput::Verified,
            ) => self.maybe_offer(true, transit, peer_transit),
            (
                SendState::Preparing {
                    verified,
                    peer_transit,
                    ..
                },
                FileSenderInput::TransitReady(body),
            ) => self.maybe_offer(verified, Some(body), peer_transit),
            (state, FileSenderInput::PeerMessage(bytes)) => self.peer_message(state, &bytes),
            (SendState::Transferring, FileSenderInput::TransitAck { record, sha256 }) => {
                match check_ack(&record, &sha256) {
                    Ok(()) => {
                        self.outputs.push_back(FileSenderOutput::Done);
                        SendState::Finished
                    }
                    Err(e) => self.fail(e),
                }
            }
            (_, FileSenderInput::DataFailed(reason)) => {
                let error = AppMessage::error(reason.clone());
                self.outputs
                    .push_back(FileSenderOutput::SendToPeer(error.to_bytes()));
                self.fail(TransferError::Transfer(reason))
            }
            // Late or misplaced news changes nothing.
            (state, _) => state,
        };
    }

    /// The next thing to do, if any. Drain until `None` after every [`handle`](Self::handle).
    pub fn poll_output(&mut self) -> Option<FileSenderOutput> {
        self.outputs.pop_front()
    }

    /// Whether `Done` or `Failed` has been emitted.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, SendState::Finished)
    }

    fn maybe_offer(
        &mut self,
        verified: bool,
        transit: Option<Value>,
        peer_transit: Option<Value>,
    ) -> SendState {
        match (verified, transit) {
            (true, Some(body)) => {
                let transit = AppMessage {
                    transit: Some(body),
                    ..AppMessage::default()
                };
                self.outputs
                    .push_back(FileSenderOutput::SendToPeer(transit.to_bytes()));
                let offer = AppMessage::offer(self.offer.clone());
                self.outputs
                    .push_back(FileSenderOutput::SendToPeer(offer.to_bytes()));
                SendState::Offered {
                    peer_transit,
                    accepted: false,
                }
            }
            (verified, transit) => SendState::Preparing {
                verified,
                transit,
                peer_transit,
            },
        }
    }

    fn peer_message(&mut self, state: SendState, bytes: &[u8]) -> SendState {
        let message = match AppMessage::parse(bytes) {
            Ok(message) => message,
            Err(e) => return self.fail(e),
        };
        if let Some(error) = message.error {
            return self.fail(TransferError::Remote(error));
        }
        match state {
            SendState::Preparing {
                verified,
                transit,
                peer_transit,
            } => {
                if message.answer.is_some() {
                    return self.fail(TransferError::AnswerBeforeOffer);
                }
                SendState::Preparing {
                    verified,
                    transit,
                    peer_transit: message.transit.or(peer_transit),
                }
            }
            SendState::Offered {
                peer_transit,
                accepted,
            } => {
                let peer_transit = message.transit.or(peer_transit);
                let accepted = match message.answer {
                    None => accepted,
                    Some(answer) => match (answer.file_ack.as_deref(), &answer.message_ack) {
                        (Some(ACK_OK), _) => true,
                        (None, Some(_)) => return self.fail(TransferError::MessageAckForFile),
                        _ => {
                            return self.fail(TransferError::BadAnswer {
                                answer: answer.describe(),
                            })
                        }
                    },
                };
                match (accepted, peer_transit) {
                    (true, Some(body)) => {
                        self.outputs
                            .push_back(FileSenderOutput::ConnectTransit(body));
                        SendState::Transferring
                    }
                    (accepted, peer_transit) => SendState::Offered {
                        peer_transit,
                        accepted,
                    },
                }
            }
            state => state,
        }
    }

    fn fail(&mut self, error: TransferError) -> SendState {
        self.outputs.push_back(FileSenderOutput::Failed(error));
        SendState::Finished
    }
}

/// What the sender offers, as the receiver's app sees it: the name is already reduced to a safe
/// basename.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncomingOffer {
    /// One file.
    File {
        /// The basename of the offered name.
        name: String,
        /// Bytes that will follow.
        size: u64,
    },
    /// A directory, sent as a zip file.
    Directory {
        /// The basename of the offered name.
        name: String,
        /// Zip bytes that will follow.
        zipsize: u64,
        /// Total size of the files inside.
        numbytes: u64,
        /// Number of regular files inside.
        numfiles: u64,
    },
}

impl IncomingOffer {
    /// The bytes that will follow over Transit.
    pub fn transfer_size(&self) -> u64 {
        match self {
            Self::File { size, .. } => *size,
            Self::Directory { zipsize, .. } => *zipsize,
        }
    }

    /// The (safe) name offered.
    pub fn name(&self) -> &str {
        match self {
            Self::File { name, .. } | Self::Directory { name, .. } => name,
        }
    }
}

/// An event for a [`FileReceiver`].
#[derive(Debug, Clone, PartialEq)]
pub enum FileReceiverInput {
    /// A decrypted app message from the sender.
    PeerMessage(Vec<u8>),
    /// Our `transit` body is ready (answer to `PrepareTransit`).
    TransitReady(Value),
    /// The user (and the host's checks) accept the offer.
    Accept,
    /// The offer is declined; the reason is for our user, the sender hears `transfer rejected`.
    Decline(String),
    /// Every byte arrived, was written and hashed, and the ack record was sent.
    Received,
    /// Transit, writing or checking failed on our side.
    DataFailed(String),
}

/// What a [`FileReceiver`] wants done.
#[derive(Debug, Clone, PartialEq)]
pub enum FileReceiverOutput {
    /// The sender's `transit` arrived: prepare ours and answer with `TransitReady`.
    PrepareTransit,
    /// Send these bytes as the next app phase.
    SendToPeer(Vec<u8>),
    /// The sender's text: show it.
    ReceivedText(String),
    /// A file or directory is offered: decide, then `Accept` or `Decline`.
    Offer(IncomingOffer),
    /// Accepted: connect Transit with the sender's `transit` body and receive the data.
    ConnectTransit(Value),
    /// The transfer is complete: close the wormhole (happy).
    Done,
    /// The transfer failed: report it and close the wormhole.
    Failed(TransferError),
}

#[derive(Debug)]
enum ReceiveState {
    AwaitingOffer,
    Deciding,
    /// Accepted; waiting for our transit body before connecting.
    AwaitingTransit,
    Transferring,
    Finished,
}

/// Receives a text, a file or a directory: checks the offer, asks, answers, then receives
/// the data over Transit and acks it.
#[derive(Debug)]
pub struct FileReceiver {
    state: ReceiveState,
    peer_transit: Option<Value>,
    our_transit_sent: bool,
    outputs: VecDeque<FileReceiverOutput>,
}

impl Default for FileReceiver {
    fn default() -> Self {
        Self::new()
    }
}

impl FileReceiver {
    /// A receiver waiting for the sender's messages.
    pub fn new() -> Self {
        Self {
            state: ReceiveState::AwaitingOffer,
            peer_transit: None,
            our_transit_sent: false,
            outputs: VecDeque::new(),
        }
    }

    /// Feeds one event in.
    pub fn handle(&mut self, input: FileReceiverInput) {
        let state = std::mem::replace(&mut self.state, ReceiveState::Finished);
        self.state = match (state, input) {
            (ReceiveState::Finished, _) => ReceiveState::Finished,
            (state, FileReceiverInput::PeerMessage(bytes)) => self.peer_message(state, &bytes),
            (state, FileReceiverInput::TransitReady(body)) => {
                if !self.our_transit_sent {
                    self.our_transit_sent = true;
                    let message = AppMessage {
                        transit: Some(body),
                        ..AppMessage::default()
                    };
                    self.outputs
                        .push_back(FileReceiverOutput::SendToPeer(message.to_bytes()));
                }
                match state {
                    ReceiveState::AwaitingTransit => self.connect(),
                    state => state,
                }
            }
            (ReceiveState::Deciding, FileReceiverInput::Accept) => {
                let answer = AppMessage::answer(Answer::file_ok());
                self.outputs
                    .push_back(FileReceiverOutput::SendToPeer(answer.to_bytes()));
                if self.our_transit_sent {
                    self.connect()
                } else {
                    ReceiveState::AwaitingTransit
                }
            }
            (ReceiveState::Deciding, FileReceiverInput::Decline(reason)) => {
                self.refuse(TRANSFER_REJECTED, TransferError::Declined(reason))
            }
            (ReceiveState::Transferring, FileReceiverInput::Received) => {
                self.outputs.push_back(FileReceiverOutput::Done);
                ReceiveState::Finished
            }
            (_, FileReceiverInput::DataFailed(reason)) => {
                self.refuse(&reason.clone(), TransferError::Transfer(reason))
            }
            (state, _) => state,
        };
    }

    /// The next thing to do, if any. Drain until `None` after every [`handle`](Self::handle).
    pub fn poll_output(&mut self) -> Option<FileReceiverOutput> {
        self.outputs.pop_front()
    }

    /// Whether `Done` or `Failed` has been emitted.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, ReceiveState::Finished)
    }

    fn connect(&mut self) -> ReceiveState {
        match self.peer_transit.clone() {
            Some(body) => {
                self.outputs
                    .push_back(FileReceiverOutput::ConnectTransit(body));
                ReceiveState::Transferring
            }
            None => self.refuse(TRANSFER_REJECTED, TransferError::NoTransit),
        }
    }

    fn peer_message(&mut self, state: ReceiveState, bytes: &[u8]) -> ReceiveState {
        let message = match AppMessage::parse(bytes) {
            Ok(message) => message,
            Err(e) => return self.fail(e),
        };
        if let Some(error) = message.error {
            return self.fail(TransferError::Remote(error));
        }
        // `transit` first, as the reference does within one message.
        if let Some(transit) = message.transit {
            if self.peer_transit.is_none() {
                self.peer_transit = Some(transit);
                self.outputs.push_back(FileReceiverOutput::PrepareTransit);
            }
        }
        let Some(offer) = message.offer else {
            return state;
        };
        if !matches!(state, ReceiveState::AwaitingOffer) {
            return self.fail(TransferError::DuplicateOffer);
        }
        let incoming = match offer {
            Offer::Message(text) => {
                let ack = AppMessage::answer(Answer::message_ok());
                self.outputs
                    .push_back(FileReceiverOutput::ReceivedText(text));
                self.outputs
                    .push_back(FileReceiverOutput::SendToPeer(ack.to_bytes()));
                self.outputs.push_back(FileReceiverOutput::Done);
                return ReceiveState::Finished;
            }
            Offer::Unknown(value) => {
                return self.refuse(
                    UNKNOWN_OFFER_TYPE,
                    TransferError::UnknownOffer {
                        offer: value.to_string(),
                    },
                )
            }
            Offer::File(file) => match safe_basename(&file.filename) {
                Ok(name) => IncomingOffer::File {
                    name,
                    size: file.filesize,
                },
                Err(e) => return self.refuse(TRANSFER_REJECTED, TransferError::Layout(e)),
            },
            Offer::Directory(directory) => {
                if !directory.mode.starts_with("zipfile") {
                    return self.refuse(UNKNOWN_MODE, TransferError::UnknownMode(directory.mode));
                }
                debug_assert!(DIRECTORY_MODE_ZIPFILE_DEFLATED.starts_with("zipfile"));
                match safe_basename(&directory.dirname) {
                    Ok(name) => IncomingOffer::Directory {
                        name,
                        zipsize: directory.zipsize,
                        numbytes: directory.numbytes,
                        numfiles: directory.numfiles,
                    },
                    Err(e) => return self.refuse(TRANSFER_REJECTED, TransferError::Layout(e)),
                }
            }
        };
        if self.peer_transit.is_none() {
            return self.refuse(TRANSFER_REJECTED, TransferError::NoTransit);
        }
        self.outputs.push_back(FileReceiverOutput::Offer(incoming));
        ReceiveState::Deciding
    }

    /// Tells the sender `reason`, then fails with `error`.
    fn refuse(&mut self, reason: &str, error: TransferError) -> ReceiveState {
        let message = AppMessage::error(reason);
        self.outputs
            .push_back(FileReceiverOutput::SendToPeer(message.to_bytes()));
        self.fail(error)
    }

    fn fail(&mut self, error: TransferError) -> ReceiveState {
        self.outputs.push_back(FileReceiverOutput::Failed(error));
        ReceiveState::Finished
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::{ack_record, FileOffer};
    use super::*;

    const PY_TRANSIT: &str =
        r#"{"transit": {"abilities-v1": [{"type": "direct-tcp-v1"}], "hints-v1": []}}"#;
    const PY_FILE_ACK: &str = r#"{"answer": {"file_ack": "ok"}}"#;

    fn json_of(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).expect("JSON")
    }

    fn drain_s(s: &mut FileSender) -> Vec<FileSenderOutput> {
        std::iter::from_fn(|| s.poll_output()).collect()
    }

    fn drain_r(r: &mut FileReceiver) -> Vec<FileReceiverOutput> {
        std::iter::from_fn(|| r.poll_output()).collect()
    }

    fn file_offer() -> Offer {
        Offer::File(FileOffer {
            filename: "a.txt".into(),
            filesize: 3,
        })
    }

    fn peer(s: &str) -> FileSenderInput {
        FileSenderInput::PeerMessage(s.as_bytes().to_vec())
    }

    fn from_sender(s: &str) -> FileReceiverInput {
        FileReceiverInput::PeerMessage(s.as_bytes().to_vec())
    }

    fn offered_sender() -> FileSender {
        let mut s = FileSender::new(file_offer());
        s.handle(FileSenderInput::TransitReady(json!({"hints-v1": []})));
        assert!(drain_s(&mut s).is_empty(), "nothing before verification");
        s.handle(FileSenderInput::Verified);
        match drain_s(&mut s).as_slice() {
            [FileSenderOutput::SendToPeer(t), FileSenderOutput::SendToPeer(o)] => {
                assert_eq!(json_of(t), json!({"transit": {"hints-v1": []}}));
                assert_eq!(
                    json_of(o),
                    json!({"offer": {"file": {"filename": "a.txt", "filesize": 3}}})
                );
            }
            other => panic!("{other:?}"),
        }
        s
    }

    #[test]
    fn sender_happy_path() {
        let mut s = offered_sender();
        s.handle(peer(PY_TRANSIT));
        assert!(drain_s(&mut s).is_empty());
        s.handle(peer(PY_FILE_ACK));
        assert!(matches!(
            drain_s(&mut s).as_slice(),
            [FileSenderOutput::ConnectTransit(_)]
        ));
        let hash = [1u8; 32];
        s.handle(FileSenderInput::TransitAck {
            record: ack_record(&hash),
            sha256: hash,
        });
        assert_eq!(drain_s(&mut s), [FileSenderOutput::Done]);
        assert!(s.is_finished());
    }

    #[test]
    fn sender_answer_and_transit_in_one_message_or_reversed() {
        let mut s = offered_sender();
        s.handle(peer(r#"{"transit": {}, "answer": {"file_ack": "ok"}}"#));
        assert!(matches!(
            drain_s(&mut s).as_slice(),
            [FileSenderOutput::ConnectTransit(_)]
        ));
        let mut s = offered_sender();
        s.handle(peer(PY_FILE_ACK));
        assert!(drain_s(&mut s).is_empty(), "waits for the peer's hints");
        s.handle(peer(PY_TRANSIT));
        assert!(matches!(
            drain_s(&mut s).as_slice(),
            [FileSenderOutput::ConnectTransit(_)]
        ));
    }

    #[test]
    fn sender_failures() {
        let mut s = offered_sender();
        s.handle(peer(r#"{"error": "transfer rejected"}"#));
        assert_eq!(
            drain_s(&mut s),
            [FileSenderOutput::Failed(TransferError::Remote(
                "transfer rejected".into()
            ))]
        );
        let mut s = offered_sender();
        s.handle(peer(r#"{"answer": {"message_ack": "ok"}}"#));
        assert_eq!(
            drain_s(&mut s),
            [FileSenderOutput::Failed(TransferError::MessageAckForFile)]
        );
        let mut s = offered_sender();
        s.handle(peer(r#"{"transit": {}, "answer": {"file_ack": "ok"}}"#));
        drain_s(&mut s);
        s.handle(FileSenderInput::TransitAck {
            record: ack_record(&[2; 32]),
            sha256: [3; 32],
        });
        assert_eq!(
            drain_s(&mut s),
            [FileSenderOutput::Failed(TransferError::BadHash)]
        );
        let mut s = offered_sender();
        s.handle(FileSenderInput::DataFailed("disk gone".into()));
        match drain_s(&mut s).as_slice() {
            [FileSenderOutput::SendToPeer(e), FileSenderOutput::Failed(TransferError::Transfer(_))] =>
            {
                assert_eq!(json_of(e), json!({"error": "disk gone"}));
            }
            other => panic!("{other:?}"),
        }
        let mut s = FileSender::new(file_offer());
        s.handle(FileSenderInput::Rejected);
        assert!(matches!(
            drain_s(&mut s).as_slice(),
            [
                FileSenderOutput::SendToPeer(_),
                FileSenderOutput::Failed(TransferError::VerificationRejected)
            ]
        ));
        s.handle(FileSenderInput::Verified);
        assert!(drain_s(&mut s).is_empty());
        let mut s = offered_sender();
        s.handle(peer("[1]"));
        assert!(matches!(
            drain_s(&mut s).as_slice(),
            [FileSenderOutput::Failed(TransferError::Malformed(_))]
        ));
    }

    fn offered_receiver(offer: &str) -> (FileReceiver, Vec<FileReceiverOutput>) {
        let mut r = FileReceiver::new();
        r.handle(from_sender(PY_TRANSIT));
        assert_eq!(drain_r(&mut r), [FileReceiverOutput::PrepareTransit]);
        r.handle(FileReceiverInput::TransitReady(json!({"hints-v1": [1]})));
        match drain_r(&mut r).as_slice() {
            [FileReceiverOutput::SendToPeer(t)] => {
                assert_eq!(json_of(t), json!({"transit": {"hints-v1": [1]}}));
            }
            other => panic!("{other:?}"),
        }
        r.handle(from_sender(offer));
        let out = drain_r(&mut r);
        (r, out)
    }

    #[test]
    fn receiver_accepts_a_file() {
        let (mut r, out) = offered_receiver(
            r#"{"offer": {"file": {"filename": "../../.ssh/authorized_keys", "filesize": 5}}}"#,
        );
        assert_eq!(
            out,
            [FileReceiverOutput::Offer(IncomingOffer::File {
                name: "authorized_keys".into(),
                size: 5
            })]
        );
        r.handle(FileReceiverInput::Accept);
        match drain_r(&mut r).as_slice() {
            [FileReceiverOutput::SendToPeer(a), FileReceiverOutput::ConnectTransit(_)] => {
                assert_eq!(json_of(a), json!({"answer": {"file_ack": "ok"}}));
            }
            other => panic!("{other:?}"),
        }
        r.handle(FileReceiverInput::Received);
        assert_eq!(drain_r(&mut r), [FileReceiverOutput::Done]);
    }

    #[test]
    fn receiver_directory_and_decline() {
        let (mut r, out) = offered_receiver(
            r#"{"offer": {"directory": {"mode": "zipfile/deflated", "dirname": "d", "zipsize": 9, "numbytes": 4, "numfiles": 2}}}"#,
        );
        assert!(matches!(
            out.as_slice(),
            [FileReceiverOutput::Offer(IncomingOffer::Directory {
                numfiles: 2,
                ..
            })]
        ));
        r.handle(FileReceiverInput::Decline("no".into()));
        match drain_r(&mut r).as_slice() {
            [FileReceiverOutput::SendToPeer(e), FileReceiverOutput::Failed(TransferError::Declined(_))] =>
            {
                assert_eq!(json_of(e), json!({"error": "transfer rejected"}));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn receiver_refusals() {
        // An offer before any transit.
        let mut r = FileReceiver::new();
        r.handle(from_sender(
            r#"{"offer": {"file": {"filename": "a", "filesize": 1}}}"#,
        ));
        assert!(matches!(
            drain_r(&mut r).as_slice(),
            [
                FileReceiverOutput::SendToPeer(_),
                FileReceiverOutput::Failed(TransferError::NoTransit)
            ]
        ));
        let (_, out) = offered_receiver(
            r#"{"offer": {"directory": {"mode": "tarball", "dirname": "d", "zipsize": 9, "numbytes": 4, "numfiles": 2}}}"#,
        );
        assert!(matches!(
            out.as_slice(),
            [
                FileReceiverOutput::SendToPeer(_),
                FileReceiverOutput::Failed(TransferError::UnknownMode(_))
            ]
        ));
        let (_, out) =
            offered_receiver(r#"{"offer": {"file": {"filename": "x/..", "filesize": 1}}}"#);
        assert!(matches!(
            out.as_slice(),
            [
                FileReceiverOutput::SendToPeer(_),
                FileReceiverOutput::Failed(TransferError::Layout(_))
            ]
        ));
    }

    #[test]
    fn receiver_text_and_accept_before_transit_ready() {
        let mut r = FileReceiver::new();
        r.handle(from_sender(r#"{"offer": {"message": "hi"}}"#));
        let out = drain_r(&mut r);
        assert_eq!(out[0], FileReceiverOutput::ReceivedText("hi".into()));
        assert_eq!(out.last(), Some(&FileReceiverOutput::Done));

        let mut r = FileReceiver::new();
        r.handle(from_sender(
            r#"{"transit": {}, "offer": {"file": {"filename": "a", "filesize": 1}}}"#,
        ));
        drain_r(&mut r);
        r.handle(FileReceiverInput::Accept);
        assert_eq!(
            drain_r(&mut r).len(),
            1,
            "only the answer; waits for our hints"
        );
        r.handle(FileReceiverInput::TransitReady(json!({})));
        assert!(matches!(
            drain_r(&mut r).as_slice(),
            [
                FileReceiverOutput::SendToPeer(_),
                FileReceiverOutput::ConnectTransit(_)
            ]
        ));
        r.handle(FileReceiverInput::DataFailed("gone".into()));
        assert!(matches!(
            drain_r(&mut r).as_slice(),
            [
                FileReceiverOutput::SendToPeer(_),
                FileReceiverOutput::Failed(TransferError::Transfer(_))
            ]
        ));
    }
}
