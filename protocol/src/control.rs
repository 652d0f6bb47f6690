//! The control-socket protocol.
