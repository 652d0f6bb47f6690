//! Pure (sans-IO) Magic Wormhole protocol machines.
//!
//! Nothing in this crate touches the network, the file system, a clock or a random source: time comes
//! in as `now`, randomness as an injected seed. Every machine follows one shape:
//! `handle(now, input)`, `poll_output()`, `poll_timeout()`.
//!
//! Layout:
//! - [`code`]: the PGP word lists, code generation, parsing and tab completion.
//! - [`crypto`]: SPAKE2, the HKDF key schedule, SecretBox.
//! - [`dilation`]: Dilation (L1 messages, L2 Noise connections, L3 records, L4 replay,
//!   subchannels) as pure machines.
//! - [`mailbox`]: the Wormhole protocol machines (rendezvous, nameplate, mailbox, order, key, send,
//!   receive, code, allocator, lister, input, terminator, boss) and the mailbox server wire types.
//! - [`transfer`]: file-transfer v1 application messages (text offers and answers).
//! - [`transit`]: Transit hints, the connection race, the handshakes and the record codec.
//! - [`control`]: the control-socket protocol spoken by wormholed, wormholectl and apps.

pub mod code;
pub mod control;
pub mod crypto;
pub mod dilation;
pub mod mailbox;
pub mod transfer;
pub mod transit;
