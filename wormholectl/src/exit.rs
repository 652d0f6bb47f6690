//! Exit codes and the failures that carry them.
//!
//! | code | meaning                                                                 |
//! |------|-------------------------------------------------------------------------|
//! | 0    | success                                                                 |
//! | 1    | any other failure (closed unhappily, protocol error, cancelled, ...)    |
//! | 2    | usage: bad flags (clap), a malformed code, an argument wormholed refused |
//! | 3    | wrong code: the peer's key did not match (or someone guessed)           |
//! | 4    | could not reach or keep a server: the mailbox server or wormholed       |
//! | 5    | the transfer was rejected: verifier refused, or the peer reported an error |
//! | 130  | interrupted at a prompt (Ctrl-C / Ctrl-D)                              |
//!
//! A [`Failure`] is an error with a code; `main` looks for one in an `anyhow` chain and falls
//! back to [`ExitCode::Failure`].

use std::fmt;

use wormhole_protocol::control::{ControlError, ErrorCode, FailureKind};

/// What to do about a daemon of another protocol version (`shutdown` cannot talk to it either).
pub(crate) const RESTART_ADVICE: &str =
    "stop that wormholed (`systemctl --user restart wormholed`, \
     or end its process) so that one of this version starts";

/// The process exit codes of wormholectl (table in the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    /// 1: any other failure.
    Failure = 1,
    /// 2: bad usage.
    Usage = 2,
    /// 3: the code was wrong.
    WrongCode = 3,
    /// 4: the mailbox server or wormholed could not be reached, or went away.
    Connection = 4,
    /// 5: the verifier was rejected or the peer reported an error.
    Rejected = 5,
    /// 130: interrupted at a prompt.
    Interrupted = 130,
}

impl ExitCode {
    /// The exit code for a wormhole that failed this way.
    pub fn of_failure(kind: FailureKind) -> Self {
        match kind {
            FailureKind::WrongCode => Self::WrongCode,
            FailureKind::Connect | FailureKind::Server | FailureKind::Welcome => Self::Connection,
            FailureKind::Peer | FailureKind::Rejected => Self::Rejected,
            FailureKind::InvalidCode => Self::Usage,
            _ => Self::Failure,
        }
    }

    /// The exit code for a request that wormholed refused.
    pub fn of_control_error(code: ErrorCode) -> Self {
        match code {
            ErrorCode::InvalidArgument => Self::Usage,
            ErrorCode::ShuttingDown => Self::Connection,
            _ => Self::Failure,
        }
    }

    /// As a process exit code.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// An error that decides the exit code. Its `Display` is the message after `Error: `.
#[derive(Debug)]
pub struct Failure {
    /// How the process exits.
    pub code: ExitCode,
    /// What the user reads.
    pub message: String,
}

impl Failure {
    /// A failure with this code and message.
    pub fn new(code: ExitCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The daemon connection went away.
    pub fn lost_connection() -> Self {
        Self::new(ExitCode::Connection, "lost the connection to wormholed")
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

impl From<ControlError> for Failure {
    fn from(error: ControlError) -> Self {
        let message = match error.code {
            ErrorCode::UnsupportedVersion => format!(
                "wormholed does not speak the control protocol of this wormholectl ({}); \
                 {RESTART_ADVICE}",
                error.message
            ),
            _ => error.message,
        };
        Self::new(ExitCode::of_control_error(error.code), message)
    }
}

/// The exit code that an error chain asks for: that of its first [`Failure`], else 1.
pub fn exit_code_of(error: &anyhow::Error) -> ExitCode {
    error
        .chain()
        .find_map(|e| e.downcast_ref::<Failure>())
        .map_or(ExitCode::Failure, |f| f.code)
}

#[cfg(test)]
mod tests {
    use anyhow::Context;

    use super::*;

    #[test]
    fn failure_kinds_map_to_the_table() {
        let table = [
            (FailureKind::WrongCode, 3),
            (FailureKind::Connect, 4),
            (FailureKind::Server, 4),
            (FailureKind::Welcome, 4),
            (FailureKind::Protocol, 1),
            (FailureKind::Peer, 5),
            (FailureKind::Rejected, 5),
            (FailureKind::Cancelled, 1),
            (FailureKind::InvalidCode, 2),
            (FailureKind::Unknown, 1),
        ];
        for (kind, code) in table {
            assert_eq!(ExitCode::of_failure(kind).code(), code, "{kind:?}");
        }
    }

    #[test]
    fn control_errors_map_to_the_table() {
        let table = [
            (ErrorCode::InvalidArgument, 2),
            (ErrorCode::ShuttingDown, 4),
            (ErrorCode::NotFound, 1),
            (ErrorCode::UnsupportedVersion, 1),
            (ErrorCode::Unknown, 1),
        ];
        for (code, exit) in table {
            assert_eq!(ExitCode::of_control_error(code).code(), exit, "{code:?}");
        }
        let failure = Failure::from(ControlError::new(ErrorCode::UnsupportedVersion, "v9"));
        assert!(
            failure.message.contains("(v9); stop that wormholed"),
            "{failure}"
        );
    }

    #[test]
    fn exit_code_is_found_through_context() {
        let error = anyhow::Error::from(Failure::lost_connection());
        assert_eq!(exit_code_of(&error), ExitCode::Connection);
        let wrapped: anyhow::Result<()> =
            Err(Failure::new(ExitCode::WrongCode, "bad")).context("receiving");
        let wrapped = wrapped.expect_err("an error");
        assert_eq!(exit_code_of(&wrapped), ExitCode::WrongCode);
        assert_eq!(format!("{wrapped:#}"), "receiving: bad");
        assert_eq!(exit_code_of(&anyhow::anyhow!("plain")), ExitCode::Failure);
    }
}
