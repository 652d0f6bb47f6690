//! Who hears a dilated wormhole, and `attach`: a control client takes its events over.
//!
//! A dilated wormhole outlives the control client that opened it, so its events need a
//! receiver that can change. [`Audience`] holds it:
//!
//! - the *attached* client (first the one that sent `dilate`, then the last one that sent
//!   `attach`) gets every event; none while it is gone;
//! - `subchannel-opened` goes to the client that sent `listen` for that subprotocol while it is
//!   connected, else to the attached client; with neither, the subchannel waits with its socket
//!   (and its data, under the usual backpressure) and the next `attach` answer lists it;
//! - the state an `attach` answers with (code, `list` state, subprotocols listened for, each
//!   subchannel with its socket while nobody has connected to it). Events that happen while no
//!   client is attached are not kept: this state is what a client resumes from.
//!
//! Inputs: the host's events, `listen`, opened subchannels, state changes, `attach`, and the
//! registry's word that a control connection closed. Outputs: control lines to clients, the
//! [`DilationState`] answer.

use std::collections::{BTreeMap, HashMap};

use wormhole_protocol::control::{
    DaemonLine, DilationState, Event as ControlEvent, EventKind, ResponseBody, SubchannelState,
    WormholeId,
};
use wormhole_protocol::dilation::SubchannelId;

use super::DilationHost;
use crate::registry::{Client, SessionId, ToClient};

/// The receivers of one dilated wormhole's events, and what `attach` reports.
pub(super) struct Audience {
    id: WormholeId,
    /// The attached client; `None` once its connection closed.
    attached: Option<Client>,
    /// Each subprotocol listened for, with the client that asked (`None` once it is gone).
    listeners: BTreeMap<String, Option<Client>>,
    /// The subprotocol of each subchannel that may still have a socket.
    subprotocols: HashMap<SubchannelId, String>,
    code: Option<String>,
    /// As `list` shows it.
    state: &'static str,
}

impl Audience {
    /// The audience of wormhole `id`, attached to the client that opened it.
    pub(super) fn new(id: WormholeId, opener: Client) -> Self {
        Self {
            id,
            attached: Some(opener),
            listeners: BTreeMap::new(),
            subprotocols: HashMap::new(),
            code: None,
            state: "connecting",
        }
    }

    /// Sends an event to the attached client, if there is one.
    pub(super) fn emit(&self, kind: EventKind) {
        if let Some(client) = live(&self.attached) {
            self.send(client, kind);
        }
    }

    fn send(&self, client: &Client, kind: EventKind) {
        client
            .lines
            .do_send(ToClient(DaemonLine::Event(ControlEvent {
                wormhole: self.id,
                kind,
            })));
    }

    /// `client` listens for `subprotocol` (the last one to ask gets its subchannels).
    pub(super) fn listen(&mut self, subprotocol: String, client: Client) {
        self.listeners.insert(subprotocol, Some(client));
    }

    /// Subchannel `scid` of `subprotocol` has a socket now. Entries of subchannels that lost
    /// theirs (`has_socket` false) are dropped, so the table stays as small as the host's.
    pub(super) fn subchannel(
        &mut self,
        scid: SubchannelId,
        subprotocol: &str,
        has_socket: impl Fn(&SubchannelId) -> bool,
    ) {
        self.subprotocols.retain(|scid, _| has_socket(scid));
        self.subprotocols.insert(scid, subprotocol.to_owned());
    }

    /// Where the `subchannel-opened` of `subprotocol` goes: its listener while connected, else
    /// the attached client.
    pub(super) fn opened_to(&self, subprotocol: &str) -> Option<&Client> {
        self.listeners
            .get(subprotocol)
            .and_then(live)
            .or_else(|| live(&self.attached))
    }

    /// The code is known.
    pub(super) fn code(&mut self, code: &str) {
        self.code = Some(code.to_owned());
    }

    /// The state `list` shows changed.
    pub(super) fn state(&mut self, state: &'static str) {
        self.state = state;
    }

    /// A control connection closed: it hears nothing more.
    pub(super) fn gone(&mut self, session: SessionId) {
        if self.attached.as_ref().is_some_and(|c| c.session == session) {
            self.attached = None;
        }
        for listener in self.listeners.values_mut() {
            if listener.as_ref().is_some_and(|c| c.session == session) {
                *listener = None;
            }
        }
    }

    /// `client` is attached from now on; the one attached before (another connection) is told.
    fn attach(&mut self, client: Client) {
        let session = client.session;
        if let Some(before) = self.attached.replace(client) {
            if before.session != session {
                self.send(&before, EventKind::Detached {});
            }
        }
    }

    /// The answer to `attach`, given the host's sockets (`None`: a client has connected).
    fn report(
        &self,
        dilated: bool,
        sockets: impl Iterator<Item = (SubchannelId, Option<String>)>,
    ) -> DilationState {
        let mut subchannels: Vec<SubchannelState> = sockets
            .map(|(scid, socket)| SubchannelState {
                subchannel: scid,
                subprotocol: self.subprotocols.get(&scid).cloned().unwrap_or_default(),
                socket,
            })
            .collect();
        subchannels.sort_unstable_by_key(|s| s.subchannel);
        DilationState {
            wormhole: self.id,
            code: self.code.clone(),
            state: self.state.into(),
            dilated,
            connected: self.state == "dilated",
            listening: self.listeners.keys().cloned().collect(),
            subchannels,
        }
    }
}

/// The client, unless it is gone: forgotten ([`Audience::gone`]), or its connection's actor has
/// stopped and the registry's word is still on its way.
fn live(client: &Option<Client>) -> Option<&Client> {
    client.as_ref().filter(|c| c.lines.connected())
}

impl DilationHost {
    /// `attach`: answers with the wormhole's state, then sends its events to `client`.
    pub(super) fn attach(&mut self, client: Client, id: u64) {
        let sockets = self.subchannels.iter().map(|(scid, sub)| {
            let socket = sub.path.as_ref().map(|p| p.display().to_string());
            (*scid, socket)
        });
        let state = self.audience.report(self.dilated, sockets);
        tracing::debug!(wormhole = self.id, session = client.session, "attached");
        client.respond(id, Ok(ResponseBody::Attached(state)));
        self.audience.attach(client);
    }
}

#[cfg(test)]
mod tests {
    use actix::prelude::*;

    use super::*;

    /// Records the lines it is sent.
    #[derive(Default)]
    struct Recorder(Vec<DaemonLine>);

    impl Actor for Recorder {
        type Context = Context<Self>;
    }

    impl Handler<ToClient> for Recorder {
        type Result = ();

        fn handle(&mut self, ToClient(line): ToClient, _: &mut Context<Self>) {
            self.0.push(line);
        }
    }

    #[derive(Message)]
    #[rtype(result = "Vec<DaemonLine>")]
    struct Take;

    impl Handler<Take> for Recorder {
        type Result = MessageResult<Take>;

        fn handle(&mut self, _: Take, _: &mut Context<Self>) -> Self::Result {
            MessageResult(std::mem::take(&mut self.0))
        }
    }

    fn client(session: SessionId) -> (Client, Addr<Recorder>) {
        let recorder = Recorder::default().start();
        let client = Client {
            session,
            lines: recorder.clone().recipient(),
        };
        (client, recorder)
    }

    fn kinds(lines: Vec<DaemonLine>) -> Vec<EventKind> {
        lines
            .into_iter()
            .filter_map(|line| match line {
                DaemonLine::Event(event) => Some(event.kind),
                DaemonLine::Response(_) => None,
            })
            .collect()
    }

    /// Events follow the attached client; a listener that is gone hands its subchannels to it;
    /// the one attached before hears `detached`.
    #[actix::test]
    async fn events_follow_attach_and_orphaned_listeners_fall_back() {
        let (one, one_rx) = client(1);
        let (two, two_rx) = client(2);
        let (three, three_rx) = client(3);
        let mut audience = Audience::new(7, one.clone());
        audience.listen("chat".into(), one);
        audience.listen("files".into(), three);
        audience.gone(1);
        audience.emit(EventKind::Dilated {});
        assert!(audience.opened_to("chat").is_none(), "nobody hears chat");

        audience.attach(two);
        audience.emit(EventKind::Reconnected {});
        assert_eq!(audience.opened_to("chat").map(|c| c.session), Some(2));
        assert_eq!(audience.opened_to("files").map(|c| c.session), Some(3));
        assert_eq!(audience.opened_to("other").map(|c| c.session), Some(2));

        let (four, _four_rx) = client(4);
        audience.attach(four);
        assert!(one_rx.send(Take).await.expect("one").is_empty());
        assert_eq!(
            kinds(two_rx.send(Take).await.expect("two")),
            [EventKind::Reconnected {}, EventKind::Detached {}]
        );
        assert!(three_rx.send(Take).await.expect("three").is_empty());
    }

    /// The report names each socket's subprotocol and forgets subchannels whose socket is gone.
    #[actix::test]
    async fn report_lists_subchannels_and_forgets_old_ones() {
        let (one, _rx) = client(1);
        let mut audience = Audience::new(7, one.clone());
        audience.listen("chat".into(), one);
        audience.code("4-a-b");
        audience.state("dilated");
        audience.subchannel(1, "chat", |_| true);
        audience.subchannel(2, "files", |_| true);
        audience.subchannel(5, "chat", |scid| *scid != 1);
        assert_eq!(audience.subprotocols.len(), 2, "1 lost its socket");
        let report = audience.report(true, [(5, Some("/s".to_owned())), (2, None)].into_iter());
        assert_eq!(
            serde_json::to_string(&report).expect("encodes"),
            r#"{"wormhole":7,"code":"4-a-b","state":"dilated","dilated":true,"connected":true,"listening":["chat"],"subchannels":[{"subchannel":2,"subprotocol":"files"},{"subchannel":5,"subprotocol":"chat","socket":"/s"}]}"#
        );
    }
}
