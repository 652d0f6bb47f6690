//! The daemon's table of wormholes and the dispatcher of control requests.
//!
//! Inputs: [`ClientRequest`] from control sessions, [`SessionGone`] when a client disconnects,
//! [`WormholeNote`] from the wormholes themselves. It allocates wormhole ids, creates wormholes
//! through the composition root ([`crate::wire`]), forwards per-wormhole requests to them, answers
//! `list`, cancels the wormholes of a client that went away (a dilated wormhole only forgets
//! it: [`DilateCommand::ClientGone`]), and stops the daemon on `shutdown`.
//! Every answer goes back through the session's [`ToClient`] recipient, so that a `created`
//! response always reaches the client before the first event of that wormhole.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use actix::prelude::*;
use wormhole_protocol::control::{
    ControlError, DaemonLine, ErrorCode, Outcome, RequestBody, Response, ResponseBody,
    TransitOptions, WormholeId, WormholeInfo, WormholeOptions,
};

use wormhole_protocol::mailbox::CodeSource;

use crate::app::{validate_code, validate_send_path, AppCommand, WormholeKind};
use crate::dilation::DilateCommand;
use crate::file_transfer::{self, BuiltOffer};
use crate::transit::TransitConfig;
use crate::wire::{self, Settings};

/// Identifies one control connection.
pub(crate) type SessionId = u64;

/// One line for a client.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct ToClient(pub(crate) DaemonLine);

/// Where answers and events for one client go.
#[derive(Clone)]
pub(crate) struct Client {
    /// The session's id.
    pub(crate) session: SessionId,
    /// The session's mailbox.
    pub(crate) lines: Recipient<ToClient>,
}

impl Client {
    /// Answers request `id`.
    pub(crate) fn respond(&self, id: u64, outcome: Result<ResponseBody, ControlError>) {
        let outcome = match outcome {
            Ok(body) => Outcome::Ok(body),
            Err(err) => Outcome::Error(err),
        };
        self.lines.do_send(ToClient(DaemonLine::Response(Response {
            id: Some(id),
            outcome,
        })));
    }
}

/// A request (other than `hello`) from a session that has said hello.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct ClientRequest {
    /// Who asked, and where the answer goes.
    pub(crate) client: Client,
    /// The request's id.
    pub(crate) id: u64,
    /// The request.
    pub(crate) body: RequestBody,
}

/// A control connection closed: its wormholes are cancelled.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct SessionGone(pub(crate) SessionId);

/// What a wormhole tells the registry about itself.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) enum WormholeNote {
    /// Its code is known.
    Code(WormholeId, String),
    /// Its state changed (`connecting`, `waiting`, `connected`, `closing`).
    State(WormholeId, &'static str),
    /// It has closed and its actors are stopping.
    Finished(WormholeId),
}

struct Entry {
    /// The kind's name, for `list`.
    kind: &'static str,
    owner: SessionId,
    code: Option<String>,
    state: &'static str,
    commands: Recipient<AppCommand>,
    /// Dilated wormholes only: where `listen`, `open-subchannel`, `close` and `attach` go.
    /// These outlive their client's session.
    dilation: Option<Recipient<DilateCommand>>,
}

/// The registry actor.
pub(crate) struct Registry {
    settings: Settings,
    next_id: WormholeId,
    wormholes: BTreeMap<WormholeId, Entry>,
    shutting_down: bool,
}

/// How long shutdown waits for wormholes to close before stopping anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

impl Registry {
    /// An empty registry; new wormholes use `settings` unless a request overrides them.
    pub(crate) fn new(settings: Settings) -> Self {
        Self {
            settings,
            next_id: 1,
            wormholes: BTreeMap::new(),
            shutting_down: false,
        }
    }

    fn create(
        &mut self,
        ctx: &mut Context<Self>,
        client: &Client,
        kind: WormholeKind,
        transit: TransitConfig,
        options: &WormholeOptions,
    ) -> WormholeId {
        let id = self.next_id;
        self.next_id += 1;
        let settings = self.settings.with_overrides(options);
        let name = kind.name();
        let commands = wire::spawn_wormhole(
            id,
            kind,
            transit,
            &settings,
            client.clone(),
            ctx.address().recipient(),
        );
        self.wormholes.insert(
            id,
            Entry {
                kind: name,
                owner: client.session,
                code: None,
                state: "connecting",
                commands,
                dilation: None,
            },
        );
        id
    }

    fn create_dilated(
        &mut self,
        ctx: &mut Context<Self>,
        client: &Client,
        code: CodeSource,
        options: &WormholeOptions,
        transit: TransitConfig,
        subprotocols: Option<Vec<String>>,
    ) -> WormholeId {
        let id = self.next_id;
        self.next_id += 1;
        let settings = self.settings.with_overrides(options);
        let (commands, dilation) = wire::spawn_dilated(
            id,
            code,
            transit,
            subprotocols,
            &settings,
            client.clone(),
            ctx.address().recipient(),
        );
        self.wormholes.insert(
            id,
            Entry {
                kind: "dilate",
                owner: client.session,
                code: None,
                state: "connecting",
                commands,
                dilation: Some(dilation),
            },
        );
        id
    }

    fn forward_dilation(
        &self,
        client: &Client,
        request_id: u64,
        wormhole: WormholeId,
        command: DilateCommand,
    ) {
        match self.wormholes.get(&wormhole) {
            Some(Entry {
                dilation: Some(dilation),
                ..
            }) => dilation.do_send(command),
            Some(_) => client.respond(
                request_id,
                Err(ControlError::new(
                    ErrorCode::InvalidState,
                    format!("wormhole {wormhole} is not dilated"),
                )),
            ),
            None => client.respond(
                request_id,
                Err(ControlError::new(
                    ErrorCode::NotFound,
                    format!("no wormhole {wormhole}"),
                )),
            ),
        }
    }

    fn forward(&self, client: &Client, request_id: u64, wormhole: WormholeId, command: AppCommand) {
        match self.wormholes.get(&wormhole) {
            Some(entry) => entry.commands.do_send(command),
            None => client.respond(
                request_id,
                Err(ControlError::new(
                    ErrorCode::NotFound,
                    format!("no wormhole {wormhole}"),
                )),
            ),
        }
    }

    fn stop_when_idle(&self) {
        if self.shutting_down && self.wormholes.is_empty() {
            tracing::info!("all wormholes closed; stopping");
            System::current().stop();
        }
    }
}

/// Most names in `dilate`'s `subprotocols`.
const MAX_SUBPROTOCOLS: usize = 64;

/// The longest subprotocol name (an OPEN record carries it: it must fit a frame with room).
const MAX_SUBPROTOCOL_LEN: usize = 256;

/// Why `dilate`'s `subprotocols` is not acceptable, if it is not.
fn bad_subprotocols(names: &[String]) -> Option<String> {
    if names.len() > MAX_SUBPROTOCOLS {
        return Some(format!("at most {MAX_SUBPROTOCOLS} subprotocols"));
    }
    names.iter().find_map(|name| bad_subprotocol(name))
}

/// Why a subprotocol name is not acceptable, if it is not.
fn bad_subprotocol(name: &str) -> Option<String> {
    (name.is_empty() || name.len() > MAX_SUBPROTOCOL_LEN).then(|| {
        format!(
            "a subprotocol name must have 1 to {MAX_SUBPROTOCOL_LEN} bytes, not {}",
            name.len()
        )
    })
}

impl Actor for Registry {
    type Context = Context<Self>;
}

/// A `send-file` request whose offer is being built.
struct PendingSendFile {
    client: Client,
    id: u64,
    code: Option<String>,
    code_length: Option<usize>,
    verify: bool,
    options: WormholeOptions,
    transit: TransitConfig,
}

/// The offer of a [`PendingSendFile`] is built (or cannot be).
#[derive(Message)]
#[rtype(result = "()")]
struct OfferBuilt {
    request: PendingSendFile,
    built: Result<BuiltOffer, String>,
}

impl Handler<OfferBuilt> for Registry {
    type Result = ();

    /// Creates the wormhole now that what it sends is known to be sendable.
    fn handle(&mut self, OfferBuilt { request, built }: OfferBuilt, ctx: &mut Context<Self>) {
        let PendingSendFile {
            client,
            id,
            code,
            code_length,
            verify,
            options,
            transit,
        } = request;
        if !client.lines.connected() {
            // Its wormholes were cancelled when it left; this one never starts (a folder's zip
            // is removed as `built` drops).
            tracing::debug!(
                session = client.session,
                "the client left while its offer was built"
            );
            return;
        }
        let offer = match built {
            _ if self.shutting_down => {
                return client.respond(
                    id,
                    Err(ControlError::new(
                        ErrorCode::ShuttingDown,
                        "wormholed is shutting down",
                    )),
                )
            }
            Ok(offer) => offer,
            Err(message) => {
                return client.respond(
                    id,
                    Err(ControlError::new(ErrorCode::InvalidArgument, message)),
                )
            }
        };
        let kind = WormholeKind::SendFile {
            offer,
            code,
            code_length,
            verify,
        };
        let wormhole = self.create(ctx, &client, kind, transit, &options);
        client.respond(id, Ok(ResponseBody::Created { wormhole }));
    }
}

impl Handler<ClientRequest> for Registry {
    type Result = ();

    fn handle(&mut self, request: ClientRequest, ctx: &mut Context<Self>) {
        let ClientRequest { client, id, body } = request;
        if self.shutting_down {
            client.respond(
                id,
                Err(ControlError::new(
                    ErrorCode::ShuttingDown,
                    "wormholed is shutting down",
                )),
            );
            return;
        }
        match body {
            RequestBody::SendText {
                text,
                code,
                code_length,
                verify,
                options,
            } => {
                let kind = WormholeKind::SendText {
                    text,
                    code,
                    code_length,
                    verify,
                };
                let checked = kind
                    .validate()
                    .and_then(|()| self.settings.transit(&TransitOptions::default()));
                let transit = match checked {
                    Ok(transit) => transit,
                    Err(err) => return client.respond(id, Err(err)),
                };
                let wormhole = self.create(ctx, &client, kind, transit, &options);
                client.respond(id, Ok(ResponseBody::Created { wormhole }));
            }
            RequestBody::SendFile {
                path,
                code,
                code_length,
                verify,
                options,
                transit,
            } => {
                let path = PathBuf::from(path);
                let checked = validate_send_path(&path)
                    .and_then(|()| validate_code(code.as_deref(), code_length))
                    .and_then(|()| self.settings.transit(&transit));
                let transit = match checked {
                    Ok(transit) => transit,
                    Err(err) => return client.respond(id, Err(err)),
                };
                // What cannot be sent is refused before a code exists: the offer (a folder's
                // zip too) is built off the arbiter first, as the reference does.
                let request = PendingSendFile {
                    client,
                    id,
                    code,
                    code_length,
                    verify,
                    options,
                    transit,
                };
                let asker = request.client.clone();
                let ready = ctx.address().recipient::<OfferBuilt>();
                let spawned = std::thread::Builder::new()
                    .name("wormholed-offer".into())
                    .spawn(move || {
                        let built = file_transfer::build_offer(&path);
                        ready.do_send(OfferBuilt { request, built });
                    });
                if let Err(e) = spawned {
                    asker.respond(
                        id,
                        Err(ControlError::new(
                            ErrorCode::InvalidState,
                            format!("cannot start a thread to build the offer: {e}"),
                        )),
                    );
                }
            }
            RequestBody::Receive {
                code,
                accept_file,
                output,
                directory,
                options,
                transit,
            } => {
                let kind = WormholeKind::Receive {
                    code,
                    accept_file,
                    output: output.map(Into::into),
                    directory: directory.map(Into::into),
                };
                let checked = kind
                    .validate()
                    .and_then(|()| self.settings.transit(&transit));
                let transit = match checked {
                    Ok(transit) => transit,
                    Err(err) => return client.respond(id, Err(err)),
                };
                let wormhole = self.create(ctx, &client, kind, transit, &options);
                client.respond(id, Ok(ResponseBody::Created { wormhole }));
            }
            RequestBody::Complete { wormhole, prefix } => {
                let command = AppCommand::Complete {
                    client: client.clone(),
                    id,
                    prefix,
                };
                self.forward(&client, id, wormhole, command);
            }
            RequestBody::SetCode { wormhole, code } => {
                let command = AppCommand::SetCode {
                    client: client.clone(),
                    id,
                    code,
                };
                self.forward(&client, id, wormhole, command);
            }
            RequestBody::Verify { wormhole, accept } => {
                let command = AppCommand::Verify {
                    client: client.clone(),
                    id,
                    accept,
                };
                self.forward(&client, id, wormhole, command);
            }
            RequestBody::Accept { wormhole, accept } => {
                let command = AppCommand::Accept {
                    client: client.clone(),
                    id,
                    accept,
                };
                self.forward(&client, id, wormhole, command);
            }
            RequestBody::Cancel { wormhole } => {
                let command = AppCommand::Cancel {
                    reply: Some((client.clone(), id)),
                    reason: "cancelled by a client".into(),
                };
                self.forward(&client, id, wormhole, command);
            }
            RequestBody::List => {
                let wormholes = self
                    .wormholes
                    .iter()
                    .map(|(&wormhole, entry)| WormholeInfo {
                        wormhole,
                        kind: entry.kind.into(),
                        code: entry.code.clone(),
                        state: entry.state.into(),
                    })
                    .collect();
                client.respond(id, Ok(ResponseBody::Wormholes { wormholes }));
            }
            RequestBody::Shutdown => {
                tracing::info!("shutdown requested");
                self.shutting_down = true;
                for entry in self.wormholes.values() {
                    entry.commands.do_send(AppCommand::Cancel {
                        reply: None,
                        reason: "wormholed is shutting down".into(),
                    });
                }
                client.respond(id, Ok(ResponseBody::Done {}));
                ctx.run_later(SHUTDOWN_GRACE, |_, _| System::current().stop());
                self.stop_when_idle();
            }
            RequestBody::Dilate {
                code,
                code_length,
                options,
                transit,
                subprotocols,
            } => {
                if let Some(bad) = subprotocols.as_deref().and_then(bad_subprotocols) {
                    return client
                        .respond(id, Err(ControlError::new(ErrorCode::InvalidArgument, bad)));
                }
                let source = match code {
                    Some(code) => CodeSource::Set(code),
                    None => {
                        if let Err(err) = validate_code(None, code_length) {
                            return client.respond(id, Err(err));
                        }
                        CodeSource::Allocate {
                            words: code_length.unwrap_or(self.settings.code_words),
                        }
                    }
                };
                let transit = match self.settings.transit(&transit) {
                    Ok(transit) => transit,
                    Err(err) => return client.respond(id, Err(err)),
                };
                let wormhole =
                    self.create_dilated(ctx, &client, source, &options, transit, subprotocols);
                client.respond(id, Ok(ResponseBody::Created { wormhole }));
            }
            RequestBody::Listen {
                wormhole,
                subprotocol,
            } => {
                if let Some(bad) = bad_subprotocol(&subprotocol) {
                    let error = ControlError::new(ErrorCode::InvalidArgument, bad);
                    return client.respond(id, Err(error));
                }
                let command = DilateCommand::Listen {
                    client: client.clone(),
                    id,
                    subprotocol,
                };
                self.forward_dilation(&client, id, wormhole, command);
            }
            RequestBody::OpenSubchannel {
                wormhole,
                subprotocol,
            } => {
                if let Some(bad) = bad_subprotocol(&subprotocol) {
                    let error = ControlError::new(ErrorCode::InvalidArgument, bad);
                    return client.respond(id, Err(error));
                }
                let command = DilateCommand::Open {
                    client: client.clone(),
                    id,
                    subprotocol,
                };
                self.forward_dilation(&client, id, wormhole, command);
            }
            RequestBody::Close { wormhole } => {
                let command = DilateCommand::Close {
                    client: client.clone(),
                    id,
                };
                self.forward_dilation(&client, id, wormhole, command);
            }
            RequestBody::Attach { wormhole } => {
                let command = DilateCommand::Attach {
                    client: client.clone(),
                    id,
                };
                self.forward_dilation(&client, id, wormhole, command);
            }
            RequestBody::Hello { .. } => client.respond(
                id,
                Err(ControlError::new(
                    ErrorCode::InvalidState,
                    "hello was already exchanged",
                )),
            ),
            RequestBody::Unknown => client.respond(
                id,
                Err(ControlError::new(ErrorCode::UnknownOp, "unknown operation")),
            ),
        }
    }
}

impl Handler<SessionGone> for Registry {
    type Result = ();

    fn handle(&mut self, SessionGone(session): SessionGone, _: &mut Context<Self>) {
        // Dilated wormholes stay open until their owner closes them; they stop sending to the
        // client (its events wait for an `attach`).
        for entry in self.wormholes.values() {
            match &entry.dilation {
                Some(dilation) => dilation.do_send(DilateCommand::ClientGone(session)),
                None if entry.owner == session => entry.commands.do_send(AppCommand::Cancel {
                    reply: None,
                    reason: "its client disconnected".into(),
                }),
                None => {}
            }
        }
    }
}

impl Handler<WormholeNote> for Registry {
    type Result = ();

    fn handle(&mut self, note: WormholeNote, _: &mut Context<Self>) {
        match note {
            WormholeNote::Code(id, code) => {
                if let Some(entry) = self.wormholes.get_mut(&id) {
                    entry.code = Some(code);
                }
            }
            WormholeNote::State(id, state) => {
                if let Some(entry) = self.wormholes.get_mut(&id) {
                    entry.state = state;
                }
            }
            WormholeNote::Finished(id) => {
                self.wormholes.remove(&id);
                self.stop_when_idle();
            }
        }
    }
}
