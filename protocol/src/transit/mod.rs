//! Transit (file-transfer v1's bulk connection), as pure machines.
//!
//! - [`hints`]: connection hints (`direct-tcp-v1`, `relay-v1`), the `transit` message
//!   (`{"abilities-v1": [...], "hints-v1": [...]}`) and `tcp:HOST:PORT[:priority=F]` arguments.
//! - [`handshake`]: one candidate connection as a byte-in/byte-out machine: the optional relay
//!   line, the sender/receiver handshake lines, `go` / `nevermind`.
//! - [`record`]: the encrypted record framing (length prefix, SecretBox, counter nonces).
//! - [`race`]: which hints to dial and when, who wins, when to give up.
//!
//! Mirrors `src/wormhole/transit.py` and `src/wormhole/_hints.py` of magic-wormhole 0.24; the wire
//! facts are in PROTOCOL.md §3. Nothing here does IO: the daemon feeds bytes in, takes bytes out,
//! and passes `now` in.

pub mod handshake;
pub mod hints;
pub mod race;
pub mod record;

/// Which end of a Transit we are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Sends the file; picks the winning connection (writes `go`).
    Sender,
    /// Receives the file; waits for `go`.
    Receiver,
}
