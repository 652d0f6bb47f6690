//! Whole-protocol tests: two [`Wormhole`]s against an in-memory model of the mailbox server.
