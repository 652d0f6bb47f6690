//! Transit in the daemon: the listening socket, dialling, the connection race, and the
//! established, encrypted record stream used by file transfer v1.
//!
//! The protocol decisions (hint parsing, handshakes, race policy, record framing) belong to the
//! pure machines of `wormhole_protocol::transit`; this module does the socket IO around them.
//! The established connection is a blocking [`std::net::TcpStream`] so that the bulk data path
//! runs on worker threads, off the arbiter that serves the mailbox and control actors.

#![allow(dead_code)] // Interface first: the file-transfer layer is being written against it.

use std::io;
use std::net::IpAddr;

/// Which end of file transfer v1 we are: the sender writes `go`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// Offers the file; picks the winning connection.
    Sender,
    /// Accepts the file; waits for `go`.
    Receiver,
}

/// How Transit may connect.
#[derive(Clone, Debug, Default)]
pub(crate) struct TransitConfig {
    /// Relay helpers, each `tcp:HOST:PORT` (from `--transit-helper` or config).
    pub(crate) relays: Vec<String>,
    /// Listen for direct connections (`--no-listen` clears it).
    pub(crate) listen: bool,
    /// Local addresses advertised as direct hints; empty means every non-loopback address.
    pub(crate) hint_addresses: Vec<IpAddr>,
}

/// Why Transit failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TransitError {
    /// No connection could be established in time.
    #[error("could not establish a transit connection: {0}")]
    NoConnection(String),
    /// The peer's transit message was malformed.
    #[error("the peer's transit hints are malformed: {0}")]
    BadHints(String),
    /// Socket IO failed.
    #[error("transit IO error: {0}")]
    Io(#[from] io::Error),
}

/// Our listener and hints, before the peer's hints are known.
pub(crate) struct PendingTransit {
    _private: (),
}

/// Binds the listener (unless `listen` is off) and returns our `transit` message body
/// (`{"abilities-v1": [...], "hints-v1": [...]}`), to send to the peer through the mailbox.
pub(crate) async fn prepare(
    _config: TransitConfig,
    _role: Role,
    _transit_key: [u8; 32],
) -> Result<(PendingTransit, serde_json::Value), TransitError> {
    todo!()
}

impl PendingTransit {
    /// Races every usable connection to the peer (direct hints at once, relays 2 s later), runs
    /// the handshakes, and returns the winner. The receiver side waits for the sender's `go`.
    pub(crate) async fn connect(
        self,
        _peer_transit: &serde_json::Value,
    ) -> Result<TransitConnection, TransitError> {
        todo!()
    }
}

/// An established Transit connection: blocking, for worker threads.
pub(crate) struct TransitConnection {
    _private: (),
}

impl TransitConnection {
    /// Splits into the half that sends records and the half that receives them.
    pub(crate) fn split(self) -> io::Result<(RecordWriter, RecordReader)> {
        todo!()
    }
}

/// Sends encrypted records (length prefix, SecretBox with a counter nonce).
pub(crate) struct RecordWriter {
    _private: (),
}

impl RecordWriter {
    /// Encrypts and sends one record (blocking).
    pub(crate) fn send_record(&mut self, _plaintext: &[u8]) -> io::Result<()> {
        todo!()
    }
}

/// Receives and decrypts records; a bad nonce, a bad MAC or an oversized length is an error.
pub(crate) struct RecordReader {
    _private: (),
}

impl RecordReader {
    /// Receives one record (blocking); `Ok(None)` at a clean end of stream.
    pub(crate) fn receive_record(&mut self) -> io::Result<Option<Vec<u8>>> {
        todo!()
    }
}
