//! Mailbox server wire messages.
