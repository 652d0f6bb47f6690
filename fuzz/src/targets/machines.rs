//! Whole machines fed a mutated valid session: chunks are inputs, the first byte of a chunk says
//! which input (see each host's `input`), the rest is its payload.
//!
//! Each valid session is recorded once, by running the machine against a real peer (two
//! `Wormhole`s through a minimal mailbox server, two `Dilation`s through in-memory
//! connections) with fixed seeds; the machine under test is built with the same seed, so an
//! unmutated session goes all the way (key agreement, verified messages, a secured connection,
//! subchannel records). The generator drops, repeats, swaps and mutates its chunks.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Map, Value};
use wormhole_protocol::dilation::l3::Record;
use wormhole_protocol::dilation::{
    Dilation, DilationConfig, Event as DilationEvent, Generation, Input as DilationInput,
    Output as DilationOutput, SubchannelId,
};
use wormhole_protocol::mailbox::server_messages::ClientMessage;
use wormhole_protocol::mailbox::{
    CodeSource, Event as MailboxEvent, Input as MailboxInput, Output as MailboxOutput, Wormhole,
    WormholeConfig,
};
use wormhole_protocol::transfer::{
    ack_record, AppMessage, FileOffer, FileReceiver, FileReceiverInput, FileReceiverOutput,
    FileSender, FileSenderInput, Offer, TextReceiver, TextReceiverInput,
};
use wormhole_protocol::transit::hints::TransitHints;

use super::wire::{APP_MESSAGE_SAMPLES, MAILBOX_FRAMES};
use super::{parse_all, text, KEY};
use crate::gen::Gen;
use crate::Target;

/// The clock of every machine: only differences matter to them.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// The time a host moves to for a `Timeout`: the machine's deadline, or a second on.
fn next_time(now: Instant, deadline: Option<Instant>) -> Instant {
    deadline.unwrap_or(now + Duration::from_secs(1)).max(now)
}

/// The first byte of `chunk` (0 if empty) and the rest.
fn head(chunk: &[u8]) -> (u8, &[u8]) {
    chunk
        .split_first()
        .map_or((0, &[][..]), |(first, rest)| (*first, rest))
}

/// A mutation of one chunk of a session: JSON-aware for the payloads that are JSON, sometimes
/// with another tag.
fn mutate_chunk(g: &mut Gen, chunk: &[u8], tags: u8, samples: &[Value]) -> Vec<u8> {
    let (tag, payload) = head(chunk);
    let tag = if g.one_in(8) { g.byte() % tags } else { tag };
    [&[tag][..], &g.json_like(payload, samples)].concat()
}

/// The mailbox machines (boss, receive, key, order ...) behind the `Wormhole` composite, fed
/// garbage server text among the frames of a real exchange.
pub(super) const MAILBOX_MACHINE: Target = Target {
    name: "mailbox-machine",
    feeds: "mailbox::Wormhole: ServerText (welcome, claimed, peer pake/version/phases ...), lost connections, timeouts",
    generate: |g| {
        let samples = &*MAILBOX_SAMPLES;
        g.sequence(&MAILBOX_SESSION, |g, chunk| mutate_chunk(g, chunk, 5, samples))
    },
    run: |input| {
        let mut host = MailboxHost::new(SIDE_A, 1);
        for chunk in input {
            host.input(chunk);
        }
        host.input(&[CLOSE]);
        host.input(&[TIMEOUT]);
    },
    weight: 20,
};

const CODE: &str = "4-purple-sausages";
const SIDE_A: &str = "aaaaaaaaaa";
const SIDE_B: &str = "bbbbbbbbbb";
/// Chunk tags of the mailbox host.
const SERVER_TEXT: u8 = 0;
const LOST: u8 = 1;
const TIMEOUT: u8 = 2;
const CLOSE: u8 = 3;

/// One `Wormhole` and the host side of its contract: `Connect` is answered by `Connected` at
/// once, sent frames are kept for the server.
struct MailboxHost {
    wormhole: Wormhole,
    side: &'static str,
    now: Instant,
    sent: Vec<String>,
    events: Vec<MailboxEvent>,
}

impl MailboxHost {
    fn new(side: &'static str, seed: u8) -> Self {
        let config = WormholeConfig {
            appid: "lothar.com/wormhole/text-or-file-xfer".into(),
            side: side.into(),
            app_versions: json!({}),
            extra_versions: Map::new(),
            rng_seed: [seed; 32],
        };
        let now = *EPOCH;
        let mut host = Self {
            wormhole: Wormhole::new(now, config, CodeSource::Set(CODE.into())),
            side,
            now,
            sent: Vec::new(),
            events: Vec::new(),
        };
        host.drain();
        host
    }

    /// One chunk: `SERVER_TEXT` text, `LOST`, `TIMEOUT`, `CLOSE`, else `Send(payload)`.
    fn input(&mut self, chunk: &[u8]) {
        let (tag, payload) = head(chunk);
        let input = match tag % 5 {
            SERVER_TEXT => MailboxInput::ServerText(text(payload).into_owned()),
            LOST => MailboxInput::ConnectionLost,
            TIMEOUT => {
                self.now = next_time(self.now, self.wormhole.poll_timeout());
                MailboxInput::Timeout
            }
            CLOSE => MailboxInput::Close,
            _ => MailboxInput::Send(payload.to_vec()),
        };
        self.wormhole.handle(self.now, input);
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(output) = self.wormhole.poll_output() {
            match output {
                MailboxOutput::Connect => self.wormhole.handle(self.now, MailboxInput::Connected),
                MailboxOutput::SendFrame(frame) => self.sent.push(frame),
                MailboxOutput::Event(event) => self.events.push(event),
                MailboxOutput::Disconnect => {}
            }
        }
    }
}

/// The server frames that A received in a whole exchange with B: welcome, claimed, both pakes,
/// B's version and phase 0, released, closed (with A's `Close` among them).
static MAILBOX_SESSION: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
    let mut hosts = [MailboxHost::new(SIDE_A, 1), MailboxHost::new(SIDE_B, 2)];
    let mut session = Vec::new();
    let welcome = r#"{"type": "welcome", "welcome": {}, "server_tx": 1.0}"#;
    let mut inbox: [Vec<String>; 2] = [vec![welcome.into()], vec![welcome.into()]];
    // When all is quiet: B sends phase 0, then A closes, then the session is over.
    let mut quiet = 0;
    for _ in 0..50 {
        if quiet == 3 {
            break;
        }
        if inbox.iter().all(Vec::is_empty) {
            quiet += 1;
            if quiet == 1 {
                hosts[1].input(&[&[4][..], br#"{"offer": {"message": "hi"}}"#].concat());
            } else if quiet == 2 {
                session.push(vec![CLOSE]);
                hosts[0].input(&[CLOSE]);
            }
        }
        for (i, frames) in inbox.iter_mut().enumerate() {
            for frame in std::mem::take(frames) {
                let chunk = [&[SERVER_TEXT], frame.as_bytes()].concat();
                if i == 0 {
                    session.push(chunk.clone());
                }
                hosts[i].input(&chunk);
            }
        }
        for (i, host) in hosts.iter_mut().enumerate() {
            for frame in std::mem::take(&mut host.sent) {
                serve(&frame, i, host.side, &mut inbox);
            }
        }
    }
    session
});

/// What a minimal mailbox server answers to `frame` from client `from`.
fn serve(frame: &str, from: usize, side: &str, inbox: &mut [Vec<String>; 2]) {
    let server = |value: Value| value.to_string();
    match ClientMessage::parse(frame) {
        Ok((_, ClientMessage::Claim { .. })) => {
            inbox[from].push(server(
                json!({"type": "claimed", "mailbox": "abcdefghijklm"}),
            ));
        }
        Ok((id, ClientMessage::Add { phase, body })) => {
            let message = server(json!({"type": "message", "side": side, "phase": phase,
                "body": body, "id": id, "server_rx": 1.0, "server_tx": 1.0}));
            inbox
                .iter_mut()
                .for_each(|frames| frames.push(message.clone()));
        }
        Ok((_, ClientMessage::Release { .. })) => {
            inbox[from].push(server(json!({"type": "released"})));
        }
        Ok((_, ClientMessage::Close { .. })) => {
            inbox[from].push(server(json!({"type": "closed"})));
        }
        _ => {}
    }
}

/// The JSON the mailbox chunks mutate towards: the session's frames and every server sample.
static MAILBOX_SAMPLES: LazyLock<Vec<Value>> = LazyLock::new(|| {
    let session = MAILBOX_SESSION
        .iter()
        .filter_map(|chunk| serde_json::from_slice(chunk.get(1..)?).ok());
    session.chain(MAILBOX_FRAMES.iter().cloned()).collect()
});

/// The Dilation manager (L1 `please`/`connection-hints`/`reconnect`, generations, candidate
/// connections, L4 and subchannels) fed garbage L1 messages and connection input among the
/// inputs of a real dilation.
pub(super) const DILATION_MANAGER: Target = Target {
    name: "dilation-manager",
    feeds:
        "dilation::Dilation: PeerMessage (L1), ConnectionMade/Data/Record/Lost, Timeout, app calls",
    generate: |g| {
        let samples = &*DILATION_SAMPLES;
        g.sequence(&DILATION_SESSION, |g, chunk| {
            mutate_chunk(g, chunk, 8, samples)
        })
    },
    run: |input| {
        let mut host = DilationHost::new(SEED_A);
        for chunk in input {
            host.input(chunk);
        }
        host.input(&[D_TIMEOUT]);
    },
    weight: 20,
};

const SEED_A: [u8; 32] = [3; 32];
const SEED_B: [u8; 32] = [4; 32];
/// Chunk tags of the dilation host (payloads: `[connection id] ++ rest` for the connection
/// inputs, `[subchannel index, action] ++ data` for the application's calls).
const PEER_MESSAGE: u8 = 0;
const MADE: u8 = 1;
const DATA: u8 = 2;
const RECORD: u8 = 3;
const D_LOST: u8 = 4;
const D_TIMEOUT: u8 = 5;
const HINTS: u8 = 6;
const APP: u8 = 7;

/// One `Dilation` with the key and the peer's versions given, listening for `chat`; the host
/// tracks the generation and the subchannels, and keeps the outputs for a peer.
struct DilationHost {
    dilation: Dilation,
    now: Instant,
    generation: Generation,
    subchannels: Vec<SubchannelId>,
    outputs: Vec<DilationOutput>,
}

impl DilationHost {
    fn new(seed: [u8; 32]) -> Self {
        let now = *EPOCH;
        let mut host = Self {
            dilation: Dilation::new(DilationConfig::new(seed)),
            now,
            generation: 0,
            subchannels: Vec::new(),
            outputs: Vec::new(),
        };
        host.dilation.listen("chat");
        host.handle(DilationInput::DilationKey(KEY));
        host.handle(DilationInput::PeerVersions(json!({"can-dilate": ["ged"]})));
        host
    }

    fn input(&mut self, chunk: &[u8]) {
        let (tag, payload) = head(chunk);
        let (first, rest) = head(payload);
        let id = u64::from(first);
        let input = match tag % 8 {
            PEER_MESSAGE => DilationInput::PeerMessage(payload.to_vec()),
            MADE => DilationInput::ConnectionMade {
                id,
                generation: self.generation,
                relay: rest.first() == Some(&1),
            },
            DATA => DilationInput::ConnectionData {
                id,
                data: rest.to_vec(),
            },
            RECORD => match Record::decode(Bytes::copy_from_slice(rest)) {
                Ok(record) => DilationInput::ConnectionRecord { id, record },
                Err(_) => return,
            },
            D_LOST => DilationInput::ConnectionLost { id },
            D_TIMEOUT => {
                self.now = next_time(self.now, self.dilation.poll_timeout());
                DilationInput::Timeout
            }
            HINTS => DilationInput::LocalHints {
                generation: self.generation,
                hints: TransitHints::default(),
            },
            _ => return self.app(first, rest),
        };
        self.handle(input);
    }

    /// The application's calls: open `chat`, write to or close the `index`-th subchannel.
    fn app(&mut self, index: u8, rest: &[u8]) {
        let (action, data) = head(rest);
        let scid = (!self.subchannels.is_empty())
            .then(|| self.subchannels[usize::from(index) % self.subchannels.len()]);
        match (action % 3, scid) {
            (0, _) => {
                if let Ok(scid) = self.dilation.open("chat") {
                    self.subchannels.push(scid);
                }
            }
            (1, Some(scid)) => {
                let _ = self.dilation.write(scid, &Bytes::copy_from_slice(data));
            }
            (_, Some(scid)) => {
                let _ = self.dilation.close(scid);
            }
            _ => {}
        }
        self.drain();
    }

    fn handle(&mut self, input: DilationInput) {
        self.dilation.handle(self.now, input);
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(output) = self.dilation.poll_output() {
            match &output {
                DilationOutput::StartConnecting { generation, .. } => {
                    self.generation = *generation;
                }
                DilationOutput::Event(DilationEvent::SubchannelOpened { scid, .. }) => {
                    self.subchannels.push(*scid);
                }
                _ => {}
            }
            self.outputs.push(output);
        }
    }

    /// The chunks the peer gets from our outputs so far.
    fn take_for_peer(&mut self) -> Vec<Vec<u8>> {
        let chunk = |tag: u8, id: u64, rest: &[u8]| {
            // The session uses connection id 1 only.
            [&[tag, u8::try_from(id).unwrap_or(u8::MAX)][..], rest].concat()
        };
        std::mem::take(&mut self.outputs)
            .into_iter()
            .filter_map(|output| match output {
                DilationOutput::SendMessage { body, .. } => {
                    Some([&[PEER_MESSAGE][..], &body].concat())
                }
                DilationOutput::Transmit { id, data } => Some(chunk(DATA, id, &data)),
                DilationOutput::SendRecord { id, record } => {
                    Some(chunk(RECORD, id, &record.encode()))
                }
                _ => None,
            })
            .collect()
    }
}

/// What A received in a whole dilation with B: B's `please` and hints, connection 1 with B's
/// preamble and Noise message, then B's KCM, an OPEN, DATA and CLOSE on `chat`, PING/PONG.
static DILATION_SESSION: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
    let mut hosts = [DilationHost::new(SEED_A), DilationHost::new(SEED_B)];
    let mut session = Vec::new();
    let mut connected = false;
    let mut chatted = false;
    for _ in 0..40 {
        let mut inbox = [hosts[1].take_for_peer(), hosts[0].take_for_peer()];
        if !connected && hosts.iter().all(|h| h.generation == 1) {
            connected = true;
            for (i, host) in hosts.iter_mut().enumerate() {
                inbox[i].insert(0, vec![HINTS]);
                host.input(&[MADE, 1]);
            }
            session.push(vec![HINTS]);
            session.push(vec![MADE, 1]);
        }
        if hosts.iter().all(|h| h.dilation.is_connected()) && !chatted {
            chatted = true;
            inbox[1].extend([
                vec![APP, 0, 0],
                vec![APP, 0, 1, b'h', b'i'],
                vec![APP, 0, 2],
            ]);
            inbox[0].push(vec![D_TIMEOUT]);
        }
        if inbox.iter().all(Vec::is_empty) {
            break;
        }
        for (i, chunks) in inbox.into_iter().enumerate() {
            for chunk in chunks {
                if i == 0 {
                    session.push(chunk.clone());
                }
                hosts[i].input(&chunk);
            }
        }
    }
    session
});

/// The JSON the dilation chunks mutate towards: the L1 messages of the reference.
static DILATION_SAMPLES: LazyLock<Vec<Value>> = LazyLock::new(|| {
    parse_all(&[
        r#"{"type": "please", "side": "0123456789abcdef"}"#,
        r#"{"type": "connection-hints", "hints": [{"type": "direct-tcp-v1", "priority": 0.0, "hostname": "127.0.0.1", "port": 1}, {"type": "relay-v1", "hints": [{"type": "direct-tcp-v1", "hostname": "relay", "port": 4001}]}]}"#,
        r#"{"type": "reconnect"}"#,
        r#"{"type": "reconnecting"}"#,
    ])
});

/// The file-transfer v1 machines fed the peer's messages: each chunk goes to a file receiver
/// (which accepts every offer), a text receiver and a file sender; the last one is also the
/// sender's Transit ack record.
pub(super) const FILE_TRANSFER: Target = Target {
    name: "file-transfer",
    feeds: "transfer: FileReceiver, TextReceiver, FileSender (PeerMessage, TransitAck)",
    generate: |g| {
        let samples = &*APP_MESSAGE_SAMPLES;
        g.sequence(&TRANSFER_SESSION, |g, chunk| g.json_like(chunk, samples))
    },
    run: |input| {
        let mut receiver = FileReceiver::new();
        let mut text = TextReceiver::new();
        let mut sender = FileSender::new(Offer::File(FileOffer {
            filename: "a.txt".into(),
            filesize: 5,
        }));
        sender.handle(FileSenderInput::Verified);
        sender.handle(FileSenderInput::TransitReady(json!({"abilities-v1": []})));
        for chunk in input {
            receiver.handle(FileReceiverInput::PeerMessage(chunk.clone()));
            while let Some(output) = receiver.poll_output() {
                match output {
                    FileReceiverOutput::Offer(offer) => {
                        let _ = (offer.name(), offer.transfer_size());
                        receiver.handle(FileReceiverInput::Accept);
                    }
                    FileReceiverOutput::PrepareTransit => {
                        receiver.handle(FileReceiverInput::TransitReady(json!({})));
                    }
                    _ => {}
                }
            }
            text.handle(TextReceiverInput::PeerMessage(chunk.clone()));
            while text.poll_output().is_some() {}
            sender.handle(FileSenderInput::PeerMessage(chunk.clone()));
            while sender.poll_output().is_some() {}
        }
        if let Some(last) = input.last() {
            sender.handle(FileSenderInput::TransitAck {
                record: last.clone(),
                sha256: [0; 32],
            });
            while sender.poll_output().is_some() {}
        }
    },
    weight: 1,
};

/// A transfer's messages from both peers: transit, a file offer, the answer, the ack record.
static TRANSFER_SESSION: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
    let transit = APP_MESSAGE_SAMPLES
        .iter()
        .find(|v| v.get("transit").is_some())
        .map(Value::to_string)
        .unwrap_or_default();
    vec![
        transit.into_bytes(),
        AppMessage::offer(Offer::File(FileOffer {
            filename: "a.txt".into(),
            filesize: 5,
        }))
        .to_bytes(),
        br#"{"answer": {"file_ack": "ok"}}"#.to_vec(),
        ack_record(&[0; 32]),
    ]
});

#[cfg(test)]
mod tests {
    use super::*;

    /// The recorded sessions are whole: replayed unmutated, each machine gets to the end, so the
    /// mutations start from deep states.
    #[test]
    fn sessions_go_all_the_way() {
        let mut mailbox = MailboxHost::new(SIDE_A, 1);
        MAILBOX_SESSION
            .iter()
            .for_each(|chunk| mailbox.input(chunk));
        assert!(
            mailbox
                .events
                .iter()
                .any(|e| matches!(e, MailboxEvent::Verified { .. })),
            "{:?}",
            mailbox.events
        );
        assert!(mailbox.events.contains(&MailboxEvent::Received(
            br#"{"offer": {"message": "hi"}}"#.to_vec()
        )));
        assert!(matches!(
            mailbox.events.last(),
            Some(MailboxEvent::Closed { error: None, .. })
        ));

        let mut dilation = DilationHost::new(SEED_A);
        DILATION_SESSION
            .iter()
            .for_each(|chunk| dilation.input(chunk));
        assert!(dilation.dilation.is_connected());
        assert!(dilation.outputs.iter().any(|o| matches!(o,
            DilationOutput::Event(DilationEvent::SubchannelData { data, .. }) if data == "hi")));
        assert!(dilation.outputs.iter().any(|o| matches!(
            o,
            DilationOutput::Event(DilationEvent::SubchannelClosed { .. })
        )));
    }
}
