//! The file part of the app actor: building the offer, Transit, the receiver's decisions, and the
//! news from the data path.
//!
//! Sender: the offer is built off the arbiter when the actor starts (a directory is zipped);
//! Transit is prepared as soon as the session key is known; the machine sends `transit` and the
//! offer once verified; on `file_ack` Transit connects and the data path starts. Receiver: the
//! sender's `transit` makes us prepare ours; an offer is checked here (destination, overwrite,
//! free space), shown as an `offer` event and accepted by the `accept` request or `accept_file`;
//! then Transit connects and the data path starts.

use std::path::{Path, PathBuf};

use actix::prelude::*;
use wormhole_protocol::control::{ControlError, ErrorCode, EventKind, FailureKind, ResponseBody};
use wormhole_protocol::crypto;
use wormhole_protocol::transfer::{
    FileReceiverInput, FileSender, FileSenderInput, FileSenderOutput, IncomingOffer,
};
use wormhole_protocol::transit::Role;

use super::{Transfer, WormholeApp};
use crate::file_transfer::{
    self, BuiltOffer, Cancel, DataEvent, DataNews, DataPath, Destination, Source,
};
use crate::registry::Client;
use crate::transit::{self, PendingTransit, TransitConfig};

/// How long a data path that the peer broke off waits for the peer's reason before it reports
/// its own.
const PEER_REASON_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Checks a `send-file` path before its offer is built.
pub(crate) fn validate_send_path(path: &Path) -> Result<(), ControlError> {
    if !path.is_absolute() {
        return Err(ControlError::new(
            ErrorCode::InvalidArgument,
            format!("{} is not an absolute path", path.display()),
        ));
    }
    if let Err(e) = std::fs::metadata(path) {
        return Err(ControlError::new(
            ErrorCode::InvalidArgument,
            format!(
                "Cannot send: no file/directory named '{}' ({e})",
                path.display()
            ),
        ));
    }
    Ok(())
}

/// The sender's machine and the data it sends (taken when the data path starts).
pub(super) struct SendSide {
    machine: FileSender,
    source: Option<(Source, u64)>,
}

impl SendSide {
    /// A sender of the built `offer`.
    pub(super) fn new(built: BuiltOffer) -> Self {
        Self {
            machine: FileSender::new(built.offer),
            source: Some((built.source, built.total)),
        }
    }

    /// Feeds the machine.
    pub(super) fn handle(&mut self, input: FileSenderInput) {
        self.machine.handle(input);
    }

    /// The machine's next output.
    pub(super) fn poll_output(&mut self) -> Option<FileSenderOutput> {
        self.machine.poll_output()
    }
}

/// File-transfer state of one wormhole.
pub(super) struct FileState {
    transit: TransitConfig,
    transit_key: Option<[u8; 32]>,
    want_prepare: bool,
    preparing: bool,
    pending_transit: Option<PendingTransit>,
    /// Receiver: accept without asking.
    pub(super) accept_file: bool,
    /// Receiver: `--output-file`.
    pub(super) output: Option<PathBuf>,
    /// Receiver: the folder for the offered name.
    pub(super) directory: Option<PathBuf>,
    offer: Option<(IncomingOffer, Destination)>,
    awaiting_accept: bool,
    received: Option<PathBuf>,
    cancel: Cancel,
}

impl FileState {
    /// Nothing started yet.
    pub(super) fn new(transit: TransitConfig) -> Self {
        Self {
            transit,
            transit_key: None,
            want_prepare: false,
            preparing: false,
            pending_transit: None,
            accept_file: false,
            output: None,
            directory: None,
            offer: None,
            awaiting_accept: false,
            received: None,
            cancel: Cancel::default(),
        }
    }

    /// Stops the data path now (its socket is shut down), or before it starts.
    pub(super) fn cancel(&self) {
        self.cancel.cancel();
    }
}

impl WormholeApp {
    /// Prepares our Transit (listener and hints) once the key is known.
    pub(super) fn prepare_transit(&mut self, ctx: &mut Context<Self>) {
        let Some(key) = self.files.transit_key else {
            self.files.want_prepare = true;
            return;
        };
        if self.files.preparing {
            return;
        }
        self.files.preparing = true;
        let role = match self.transfer {
            Transfer::SendFile(_) => Role::Sender,
            _ => Role::Receiver,
        };
        let config = self.files.transit.clone();
        ctx.spawn(
            async move { transit::prepare(config, role, key).await }
                .into_actor(self)
                .map(|result, app, ctx| match result {
                    Ok((pending, body)) => {
                        app.files.pending_transit = Some(pending);
                        match app.transfer {
                            Transfer::SendFile(_) => {
                                app.feed_sender(FileSenderInput::TransitReady(body), ctx);
                            }
                            _ => app.feed_receiver(FileReceiverInput::TransitReady(body), ctx),
                        }
                    }
                    Err(e) => app.data_failed(FailureKind::Transfer, e.to_string(), ctx),
                }),
        );
    }

    /// Connects Transit to the peer's hints, then starts the data path.
    pub(super) fn connect_transit(&mut self, peer: serde_json::Value, ctx: &mut Context<Self>) {
        let Some(pending) = self.files.pending_transit.take() else {
            return self.data_failed(
                FailureKind::Transfer,
                "transit was not prepared".into(),
                ctx,
            );
        };
        ctx.spawn(
            async move { pending.connect(&peer).await }
                .into_actor(self)
                .map(|result, app, ctx| match result {
                    Ok(connection) => app.start_data(connection, ctx),
                    Err(e) => app.data_failed(FailureKind::Transfer, e.to_string(), ctx),
                }),
        );
    }

    fn start_data(&mut self, connection: transit::TransitConnection, ctx: &mut Context<Self>) {
        let path = DataPath {
            idle: self.files.transit.idle_timeout,
            cancel: self.files.cancel.clone(),
            to: ctx.address().recipient::<DataNews>(),
        };
        match &mut self.transfer {
            Transfer::SendFile(side) => {
                if let Some((source, total)) = side.source.take() {
                    file_transfer::spawn_sender(connection, source, total, path);
                }
            }
            Transfer::Receive(_) => {
                if let Some((offer, destination)) = self.files.offer.clone() {
                    let journal = self.files.transit.parts.clone();
                    file_transfer::spawn_receiver(connection, offer, destination, journal, path);
                }
            }
            Transfer::Send(_) => {}
        }
    }

    /// Reports a failure of Transit or the data path, and tells the machine (and so the peer).
    fn data_failed(&mut self, kind: FailureKind, message: String, ctx: &mut Context<Self>) {
        self.fail(kind, message.clone());
        match self.transfer {
            Transfer::SendFile(_) => self.feed_sender(FileSenderInput::DataFailed(message), ctx),
            _ => self.feed_receiver(FileReceiverInput::DataFailed(message), ctx),
        }
    }

    /// Cancels a file transfer in progress; the peer is told.
    pub(super) fn cancel_transfer(&mut self, ctx: &mut Context<Self>) {
        self.files.cancel();
        let reason = "transfer cancelled".to_owned();
        match self.transfer {
            Transfer::SendFile(_) => self.feed_sender(FileSenderInput::DataFailed(reason), ctx),
            Transfer::Receive(_) => self.feed_receiver(FileReceiverInput::DataFailed(reason), ctx),
            Transfer::Send(_) => {}
        }
    }

    /// The receiver machine reports an offer: check it, then ask (or accept).
    pub(super) fn offered(&mut self, offer: IncomingOffer, ctx: &mut Context<Self>) {
        let folder = self
            .files
            .directory
            .clone()
            .or_else(|| std::env::current_dir().ok())
            .unwrap_or_else(|| PathBuf::from("/"));
        let destination = match file_transfer::decide_destination(
            &folder,
            self.files.output.as_deref(),
            &offer,
        ) {
            Ok(destination) => destination,
            Err(message) => {
                self.fail(FailureKind::Rejected, message.clone());
                return self.feed_receiver(FileReceiverInput::Decline(message), ctx);
            }
        };
        let (kind, needed, numfiles, numbytes) = match &offer {
            IncomingOffer::File { size, .. } => ("file", *size, None, None),
            IncomingOffer::Directory {
                zipsize,
                numbytes,
                numfiles,
                ..
            } => (
                "directory",
                numbytes.saturating_add(*zipsize),
                Some(*numfiles),
                Some(*numbytes),
            ),
        };
        if let Some(free) = file_transfer::free_space(&destination.path) {
            if free < needed {
                let message = format!("insufficient free space ({free}B) for {kind} ({needed}B)");
                self.fail(FailureKind::DiskFull, message.clone());
                return self.feed_receiver(FileReceiverInput::Decline(message), ctx);
            }
        }
        self.emit(EventKind::Offer {
            kind: kind.into(),
            name: offer.name().to_owned(),
            size: offer.transfer_size(),
            numfiles,
            numbytes,
            destination: destination.path.to_string_lossy().into_owned(),
        });
        self.files.offer = Some((offer, destination));
        if self.files.accept_file {
            self.feed_receiver(FileReceiverInput::Accept, ctx);
        } else {
            self.files.awaiting_accept = true;
        }
    }

    /// The `accept` request.
    pub(super) fn accept(
        &mut self,
        client: Client,
        id: u64,
        accept: bool,
        ctx: &mut Context<Self>,
    ) {
        if !self.files.awaiting_accept {
            return client.respond(
                id,
                Err(ControlError::new(
                    ErrorCode::InvalidState,
                    "this wormhole is not waiting for a decision about an offer",
                )),
            );
        }
        self.files.awaiting_accept = false;
        client.respond(id, Ok(ResponseBody::Done {}));
        if accept {
            self.feed_receiver(FileReceiverInput::Accept, ctx);
        } else {
            self.fail(FailureKind::Rejected, "transfer rejected".into());
            self.feed_receiver(
                FileReceiverInput::Decline("declined by the user".into()),
                ctx,
            );
        }
    }

    /// The transfer succeeded: say so before `closed`.
    pub(super) fn files_done(&mut self) {
        match &self.transfer {
            Transfer::SendFile(_) => self.emit(EventKind::Sent {}),
            Transfer::Receive(_) => {
                if let Some(path) = self.files.received.take() {
                    self.emit(EventKind::Received {
                        path: path.to_string_lossy().into_owned(),
                    });
                }
            }
            Transfer::Send(_) => {}
        }
    }
}

impl Handler<super::AppKey> for WormholeApp {
    type Result = ();

    fn handle(&mut self, super::AppKey(key): super::AppKey, ctx: &mut Context<Self>) {
        self.files.transit_key = Some(crypto::transit_key(&key));
        if matches!(self.transfer, Transfer::SendFile(_)) || self.files.want_prepare {
            self.prepare_transit(ctx);
        }
    }
}

impl Handler<DataNews> for WormholeApp {
    type Result = ();

    fn handle(&mut self, DataNews(event): DataNews, ctx: &mut Context<Self>) {
        match event {
            DataEvent::Progress { done, total } => self.emit(EventKind::Progress { done, total }),
            DataEvent::Sent { record, sha256 } => {
                self.feed_sender(FileSenderInput::TransitAck { record, sha256 }, ctx);
            }
            DataEvent::Received { path } => {
                self.files.received = Some(path);
                self.feed_receiver(FileReceiverInput::Received, ctx);
            }
            DataEvent::Failed {
                kind,
                message,
                peer_hung_up,
            } => {
                if peer_hung_up {
                    // A peer that gives up (its disk is full, its user cancelled) says why over
                    // the mailbox as it drops the connection, which we notice first: its
                    // reason, when it comes soon, is the one to report.
                    ctx.run_later(PEER_REASON_GRACE, move |app, ctx| {
                        app.data_failed(kind, message, ctx);
                    });
                } else {
                    self.data_failed(kind, message, ctx);
                }
            }
        }
    }
}
