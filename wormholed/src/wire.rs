//! The composition root: the only place that knows the concrete actor types of a wormhole.
//!
//! One wormhole is three actors, as the reference's `Boss` wires its machines:
//! the [`MailboxConnection`] (websocket IO), a [`MachineHost`] running the pure
//! [`Wormhole`] machine, and the [`WormholeApp`] (text transfer and control events). They reach
//! each other only through the `Recipient`s handed out here.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use wormhole_config::Config;
use wormhole_protocol::control::{
    ControlError, ErrorCode, TransitOptions, WormholeId, WormholeOptions,
};
use wormhole_protocol::dilation::{self, Dilation, DilationConfig};
use wormhole_protocol::mailbox::{CodeSource, Event, Input, Output, Wormhole, WormholeConfig};

use crate::app::{AppCommand, AppEvent, AppKey, AppSetup, WormholeApp, WormholeKind};
use crate::clock;
use crate::connection::{tls_config, Connect, Disconnect, MailboxConnection, SendFrame};
use crate::dilation::{DilateCommand, DilationHost, DilationSetup};
use crate::host::{Halt, Machine, MachineHost};
use crate::part_files::PartJournal;
use crate::registry::{Client, WormholeNote};
use crate::transit::{self, TransitConfig};

/// What every new wormhole is made with: the daemon's configuration, resolved once at start
/// ([`Settings::from_config`]); a request may override some of it.
#[derive(Clone)]
pub struct Settings {
    /// Mailbox server URL.
    pub(crate) mailbox_url: String,
    /// Application id.
    pub(crate) appid: String,
    /// Words of an allocated code.
    pub(crate) code_words: usize,
    /// TLS settings for `wss://`.
    pub(crate) tls: Arc<rustls::ClientConfig>,
    /// Transit relay, `tcp:HOST:PORT` (empty: none).
    pub(crate) transit_relay: String,
    /// Listen for direct Transit connections.
    pub(crate) transit_listen: bool,
    /// Addresses advertised as direct hints (empty: every local address).
    pub(crate) hint_addresses: Vec<IpAddr>,
    /// A file transfer fails once no byte moved either way for this long.
    pub(crate) idle_timeout: Duration,
    /// Where receivers record their temporary files.
    pub(crate) parts: PartJournal,
    /// Folder of the per-subchannel Unix sockets of dilated wormholes (the control socket's).
    pub(crate) socket_dir: PathBuf,
}

/// Why the daemon's settings cannot be made from its configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// A value of the configuration cannot be used (a host name that does not resolve).
    #[error(transparent)]
    Config(#[from] wormhole_config::ConfigError),
    /// The TLS settings for `wss://` mailbox servers cannot be set up.
    #[error("setting up TLS: {0}")]
    Tls(rustls::Error),
}

impl Settings {
    /// The settings of a daemon with this configuration serving the control socket at
    /// `socket` (its folder also holds the subchannel sockets). Fails when a host name of
    /// `transit.hint_addresses` does not resolve or the TLS settings for `wss://` cannot be set
    /// up.
    pub fn from_config(config: &Config, socket: &Path) -> Result<Self, SettingsError> {
        Ok(Self {
            mailbox_url: config.mailbox.url.value.clone(),
            appid: config.mailbox.appid.value.clone(),
            code_words: config.mailbox.code_length.value,
            tls: tls_config().map_err(SettingsError::Tls)?,
            transit_relay: config.transit.relay.value.clone(),
            transit_listen: config.transit.listen.value,
            hint_addresses: config.transit.resolve_hint_addresses()?,
            idle_timeout: Duration::from_secs(config.transit.idle_timeout.value),
            parts: PartJournal::new(parts_folder(socket)),
            socket_dir: socket
                .parent()
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
        })
    }

    /// These settings with a request's overrides applied.
    pub(crate) fn with_overrides(&self, options: &WormholeOptions) -> Self {
        let mut settings = self.clone();
        if let Some(url) = &options.relay_url {
            settings.mailbox_url.clone_from(url);
        }
        if let Some(appid) = &options.appid {
            settings.appid.clone_from(appid);
        }
        settings
    }

    /// The Transit configuration of a wormhole with these per-request overrides; a bad relay
    /// (`transit_helper`) is an `invalid-argument` error, given when the request arrives.
    pub(crate) fn transit(&self, options: &TransitOptions) -> Result<TransitConfig, ControlError> {
        let relay = options
            .transit_helper
            .as_deref()
            .unwrap_or(&self.transit_relay);
        let relays = transit::relays(relay).map_err(|e| {
            ControlError::new(
                ErrorCode::InvalidArgument,
                format!("bad transit relay: {e}"),
            )
        })?;
        Ok(TransitConfig {
            relays,
            listen: self.transit_listen && !options.no_listen,
            hint_addresses: self.hint_addresses.clone(),
            idle_timeout: self.idle_timeout,
            parts: self.parts.clone(),
        })
    }
}

/// The journal of receivers' temporary files: `parts/` in the state folder, else beside the
/// control socket.
fn parts_folder(socket: &Path) -> PathBuf {
    Config::state_dir()
        .or_else(|| socket.parent().map(Path::to_path_buf))
        .unwrap_or_else(std::env::temp_dir)
        .join("parts")
}

/// The Wormhole machine as the host sees it: finished once it has reported `Closed`.
pub(crate) struct HostedWormhole {
    machine: Wormhole,
    finished: bool,
    /// The session key, handed out right after `KeyEstablished`.
    key: Option<[u8; 32]>,
}

/// What the hosted wormhole outputs: the machine's outputs, plus its session key once known
/// (the app derives the Transit key from it).
pub(crate) enum HostedOutput {
    /// An output of the machine.
    Machine(Output),
    /// The session key K.
    Key([u8; 32]),
}

impl Machine for HostedWormhole {
    type Input = Input;
    type Output = HostedOutput;

    fn handle(&mut self, now: Instant, input: Input) {
        self.machine.handle(now, input);
    }

    fn poll_output(&mut self) -> Option<HostedOutput> {
        if let Some(key) = self.key.take() {
            return Some(HostedOutput::Key(key));
        }
        let output = self.machine.poll_output();
        match &output {
            Some(Output::Event(Event::Closed { .. })) => self.finished = true,
            Some(Output::Event(Event::KeyEstablished)) => self.key = self.machine.key().copied(),
            _ => {}
        }
        output.map(HostedOutput::Machine)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.machine.poll_timeout()
    }

    fn timeout_input() -> Input {
        Input::Timeout
    }

    fn is_finished(&self) -> bool {
        self.finished
    }
}

/// The mailbox half of a wormhole: the host of the Wormhole machine (not running yet) and its
/// websocket connection. Both kinds of wormhole start with it and differ only in their app.
struct MailboxHalf {
    host_ctx: Context<MachineHost<HostedWormhole>>,
    host: Addr<MachineHost<HostedWormhole>>,
    connection: Addr<MailboxConnection>,
}

impl MailboxHalf {
    fn new(settings: &Settings) -> Self {
        let host_ctx = Context::<MachineHost<HostedWormhole>>::new();
        let host = host_ctx.address();
        let connection = MailboxConnection::new(
            settings.mailbox_url.clone(),
            Arc::clone(&settings.tls),
            host.clone().recipient(),
        )
        .start();
        Self {
            host_ctx,
            host,
            connection,
        }
    }

    /// Tears the mailbox half down at once (a wormhole past its close grace period).
    fn halt(&self) -> Box<dyn Fn()> {
        let host = self.host.clone();
        let connection = self.connection.clone();
        Box::new(move || {
            host.do_send(Halt);
            connection.do_send(Disconnect);
        })
    }

    /// Starts the Wormhole machine, routing its events and key to the app.
    fn run(
        self,
        settings: &Settings,
        code: CodeSource,
        extra_versions: serde_json::Map<String, serde_json::Value>,
        events: Recipient<AppEvent>,
        keys: Recipient<AppKey>,
    ) {
        let connection = self.connection;
        let route = Box::new(move |output: HostedOutput| match output {
            HostedOutput::Machine(Output::Connect) => connection.do_send(Connect),
            HostedOutput::Machine(Output::Disconnect) => connection.do_send(Disconnect),
            HostedOutput::Machine(Output::SendFrame(text)) => connection.do_send(SendFrame(text)),
            HostedOutput::Machine(Output::Event(event)) => events.do_send(AppEvent(event)),
            HostedOutput::Key(key) => keys.do_send(AppKey(key)),
        });
        let config = WormholeConfig {
            appid: settings.appid.clone(),
            side: hex::encode(rand::random::<[u8; 5]>()),
            app_versions: serde_json::json!({}),
            extra_versions,
            rng_seed: rand::random(),
        };
        let machine = HostedWormhole {
            machine: Wormhole::new(clock::now(), config, code),
            finished: false,
            key: None,
        };
        self.host_ctx.run(MachineHost::new(machine, route));
    }
}

/// Starts wormhole `id` and returns where its commands go.
pub(crate) fn spawn_wormhole(
    id: WormholeId,
    kind: WormholeKind,
    transit: TransitConfig,
    settings: &Settings,
    owner: Client,
    registry: Recipient<WormholeNote>,
) -> Recipient<AppCommand> {
    let mailbox = MailboxHalf::new(settings);
    let code_source = kind.code_source(settings.code_words);
    let app = WormholeApp::new(
        id,
        kind,
        owner,
        registry,
        mailbox.host.clone().recipient(),
        mailbox.halt(),
        AppSetup {
            code_words: settings.code_words,
            transit,
        },
    )
    .start();
    mailbox.run(
        settings,
        code_source,
        serde_json::Map::new(),
        app.clone().recipient(),
        app.clone().recipient(),
    );
    app.recipient()
}

/// Starts dilated wormhole `id` (the mailbox actors plus a [`DilationHost`] as its app) and
/// returns where its generic commands (`cancel`) and its dilation commands go.
pub(crate) fn spawn_dilated(
    id: WormholeId,
    code: CodeSource,
    transit: TransitConfig,
    subprotocols: Option<Vec<String>>,
    settings: &Settings,
    owner: Client,
    registry: Recipient<WormholeNote>,
) -> (Recipient<AppCommand>, Recipient<DilateCommand>) {
    let mut config = DilationConfig::new(rand::random());
    config.expected_subprotocols = subprotocols;
    let mailbox = MailboxHalf::new(settings);
    let app = DilationHost::new(DilationSetup {
        id,
        owner,
        registry,
        mailbox: mailbox.host.clone().recipient(),
        halt: mailbox.halt(),
        transit,
        socket_dir: settings.socket_dir.clone(),
        machine: Dilation::new(config),
    })
    .start();
    mailbox.run(
        settings,
        code,
        dilation::version_entries(),
        app.clone().recipient(),
        app.clone().recipient(),
    );
    (app.clone().recipient(), app.recipient())
}
