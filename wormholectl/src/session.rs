//! What the user sees of one wormhole: events in, text and decisions out.
//!
//! Pure: [`Session::handle`] renders one [`EventKind`] to the human stream (stderr) and the data
//! stream (stdout, only the received text) and says what happens next ([`Step`]). The drivers in
//! `send` and `receive` do the IO. Wording follows the Python CLI (`cli/cmd_send.py`,
//! `cli/cmd_receive.py`, `cli/welcome.py`).
//!
//! States: running → failed (an `error` event was seen; waiting for `closed`) → done. Inputs:
//! events. Outputs: lines, [`Step::Confirm`] (ask the user about the verifier), [`Step::Done`].
//!
//! Every string of an event may come from the peer or the mailbox server, so each reaches the
//! human stream through [`escape`] (one line each); the received text goes to
//! the data stream exactly as sent, or escaped with its newlines kept when that is a terminal
//! ([`Session::escaping_text`]).

use std::io::{self, Write};

use wormhole_protocol::control::EventKind;

use crate::escape::{self, Layout};
use wormholectl::exit::{ExitCode, Failure};

/// Which side of the wormhole we are, and what the user asked to see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// `send --text`.
    Sender {
        /// `--verify`: the verifier is shown and confirmed.
        verify: bool,
    },
    /// `receive`.
    Receiver {
        /// `--verify`: the verifier is shown.
        verify: bool,
    },
}

/// What the driver does after an event.
#[derive(Debug)]
pub(crate) enum Step {
    /// Wait for the next event.
    Continue,
    /// Ask the user whether this verifier matches, then answer with a `verify` request.
    Confirm {
        /// Hex verifier.
        verifier: String,
    },
    /// A file or directory is offered (its description is printed): accept it or not, unless
    /// `--accept-file` already did.
    Offer,
    /// Data is moving: update the progress bar.
    Progress {
        /// Bytes so far.
        done: u64,
        /// Bytes in all.
        total: u64,
    },
    /// The data has arrived or was confirmed: finish the progress bar.
    DataDone,
    /// The wormhole is closed: exit with this.
    Done(Result<(), Failure>),
}

/// The state of one wormhole as the user sees it.
#[derive(Debug)]
pub(crate) struct Session {
    role: Role,
    /// The first `error` event's failure, reported once `closed` arrives.
    failure: Option<Failure>,
    /// Whether a `message` event arrived (receiver).
    got_message: bool,
    /// Whether this sender sends a file or directory (not a text).
    file: bool,
    /// The kind of the offer (`file` or `directory`), once one arrived (receiver).
    offered: Option<String>,
    /// Whether the file or directory arrived (`received`) or was confirmed (`sent`).
    got_file: bool,
    /// Whether the received text is escaped (the data stream is a terminal).
    escape_text: bool,
}

impl Session {
    /// A new session for this role.
    pub(crate) fn new(role: Role) -> Self {
        Self {
            role,
            failure: None,
            got_message: false,
            file: false,
            offered: None,
            got_file: false,
            escape_text: false,
        }
    }

    /// The same session, escaping the received text if `terminal` (the data stream is one):
    /// its control characters are shown, not obeyed; newlines and tabs are kept.
    pub(crate) fn escaping_text(self, terminal: bool) -> Self {
        Self {
            escape_text: terminal,
            ..self
        }
    }

    /// A sender session for a file or directory.
    pub(crate) fn sending_file(role: Role) -> Self {
        Self {
            file: true,
            ..Self::new(role)
        }
    }

    /// Handles one event: human text to `human`, received text to `data`.
    pub(crate) fn handle(
        &mut self,
        kind: &EventKind,
        human: &mut dyn Write,
        data: &mut dyn Write,
    ) -> io::Result<Step> {
        match kind {
            EventKind::Motd { text } => {
                let lines: Vec<_> = text.lines().map(escape::line).collect();
                writeln!(human, "Server says:\n {}", lines.join("\n "))?;
            }
            EventKind::Code { code } => {
                if let Role::Sender { verify } = self.role {
                    // The nameplate is the server's choice.
                    let code = escape::line(code);
                    let flags = if verify { "--verify " } else { "" };
                    writeln!(human, "Wormhole code is: {code}")?;
                    writeln!(human, "On the other computer, please run:")?;
                    writeln!(human)?;
                    writeln!(human, "wormhole receive {flags}{code}")?;
                    writeln!(human)?;
                    human.flush()?;
                }
            }
            EventKind::Key { verifier, confirm } => match self.role {
                Role::Sender { .. } if *confirm => {
                    return Ok(Step::Confirm {
                        verifier: verifier.clone(),
                    })
                }
                Role::Sender { verify: true } | Role::Receiver { verify: true } => {
                    writeln!(human, "Verifier {verifier}.")?;
                }
                _ => {}
            },
            EventKind::Message { text } => {
                if let Role::Receiver { .. } = self.role {
                    self.got_message = true;
                    let text = if self.escape_text {
                        escape::escape(text, Layout::Text)
                    } else {
                        text.into()
                    };
                    data.write_all(text.as_bytes())?;
                    data.write_all(b"\n")?;
                    data.flush()?;
                }
            }
            EventKind::Warning { message } => {
                writeln!(human, "Warning: {}", escape::line(message))?
            }
            EventKind::Error { kind, message } => {
                if self.failure.is_none() {
                    self.failure = Some(Failure::new(ExitCode::of_failure(*kind), message.clone()));
                }
            }
            EventKind::Offer {
                kind,
                name,
                size,
                numfiles,
                numbytes,
                ..
            } => {
                let size = natural_size(usize::try_from(*size).unwrap_or(usize::MAX));
                let name = escape::line(name);
                self.offered = Some(kind.clone());
                if kind == "directory" {
                    writeln!(human, "Receiving directory ({size}) into: {name}/")?;
                    if let (Some(files), Some(bytes)) = (numfiles, numbytes) {
                        let bytes = natural_size(usize::try_from(*bytes).unwrap_or(usize::MAX));
                        writeln!(human, "{files} files, {bytes} (uncompressed)")?;
                    }
                } else {
                    writeln!(human, "Receiving file ({size}) into: {name}")?;
                }
                human.flush()?;
                return Ok(Step::Offer);
            }
            EventKind::Progress { done, total } => {
                return Ok(Step::Progress {
                    done: *done,
                    total: *total,
                })
            }
            EventKind::Received { path } => {
                self.got_file = true;
                let what = if self.offered.as_deref() == Some("directory") {
                    "Received files written to"
                } else {
                    "Received file written to"
                };
                writeln!(human, "{what}: {}", escape::line(path))?;
                return Ok(Step::DataDone);
            }
            EventKind::Sent {} => {
                self.got_file = true;
                writeln!(human, "Confirmation received. Transfer complete.")?;
                return Ok(Step::DataDone);
            }
            EventKind::Closed { mood } => return self.closed(mood, human).map(Step::Done),
            // Dilation events belong to `dilate` wormholes, which this session never opens.
            EventKind::Dilated {}
            | EventKind::Disconnected {}
            | EventKind::Reconnected {}
            | EventKind::SubchannelOpened { .. }
            | EventKind::SubchannelClosed { .. }
            | EventKind::SubchannelRefused { .. }
            | EventKind::Detached {}
            | EventKind::Unknown => {}
        }
        Ok(Step::Continue)
    }

    /// The outcome once the wormhole has closed with `mood`.
    fn closed(&mut self, mood: &str, human: &mut dyn Write) -> io::Result<Result<(), Failure>> {
        if let Some(failure) = self.failure.take() {
            return Ok(Err(failure));
        }
        if mood != "happy" {
            let why = match mood {
                "lonely" => "the wormhole closed before the other side connected (lonely)",
                "scary" => "the wormhole closed: the other side's key did not match (scary)",
                "errory" => "the wormhole closed after an error (errory)",
                "unwelcome" => "the mailbox server refused us (unwelcome)",
                _ => "the wormhole closed unexpectedly",
            };
            let code = match mood {
                "scary" => ExitCode::WrongCode,
                "unwelcome" => ExitCode::Connection,
                _ => ExitCode::Failure,
            };
            return Ok(Err(Failure::new(code, why)));
        }
        match self.role {
            Role::Sender { .. } if self.file => {
                if self.got_file {
                    Ok(Ok(()))
                } else {
                    Ok(Err(Failure::new(
                        ExitCode::Failure,
                        "the wormhole closed before the transfer was confirmed",
                    )))
                }
            }
            Role::Sender { .. } => {
                writeln!(human, "text message sent")?;
                Ok(Ok(()))
            }
            Role::Receiver { .. } if self.got_message || self.got_file => Ok(Ok(())),
            Role::Receiver { .. } => Ok(Err(Failure::new(
                ExitCode::Failure,
                "the wormhole closed without a message",
            ))),
        }
    }
}

/// A size as Python's `humanize.naturalsize` writes it: `1 Byte`, `12 Bytes`, `1.5 kB`, `3.0 MB`.
pub(crate) fn natural_size(bytes: usize) -> String {
    const UNITS: [&str; 8] = ["kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    match bytes {
        1 => "1 Byte".to_owned(),
        0..1000 => format!("{bytes} Bytes"),
        _ => {
            // Precision is irrelevant at these sizes: one decimal is printed.
            #[allow(clippy::cast_precision_loss)]
            let mut value = bytes as f64 / 1000.0;
            let mut unit = 0;
            while value >= 1000.0 && unit + 1 < UNITS.len() {
                value /= 1000.0;
                unit += 1;
            }
            format!("{value:.1} {}", UNITS[unit])
        }
    }
}

#[cfg(test)]
mod tests {
    use wormhole_protocol::control::FailureKind;

    use super::*;

    /// Feeds events, returns (stderr, stdout, last step).
    fn run(role: Role, events: &[EventKind]) -> (String, String, Option<Step>) {
        let mut session = Session::new(role);
        let (mut human, mut data) = (Vec::new(), Vec::new());
        let mut last = None;
        for event in events {
            let step = session
                .handle(event, &mut human, &mut data)
                .expect("writing to a Vec");
            last = Some(step);
        }
        let text = |v: Vec<u8>| String::from_utf8(v).expect("UTF-8");
        (text(human), text(data), last)
    }

    fn closed(mood: &str) -> EventKind {
        EventKind::Closed { mood: mood.into() }
    }

    fn exit_of(step: Option<Step>) -> Result<(), (u8, String)> {
        match step {
            Some(Step::Done(result)) => result.map_err(|f| (f.code.code(), f.message)),
            other => panic!("expected Done, got {other:?}"),
        }
    }

    #[test]
    fn sender_prints_the_code_like_the_python_cli() {
        let (human, data, step) = run(
            Role::Sender { verify: false },
            &[
                EventKind::Code {
                    code: "4-purple-sausages".into(),
                },
                EventKind::Key {
                    verifier: "abcd".into(),
                    confirm: false,
                },
                closed("happy"),
            ],
        );
        assert_eq!(
            human,
            "Wormhole code is: 4-purple-sausages\nOn the other computer, please run:\n\n\
             wormhole receive 4-purple-sausages\n\ntext message sent\n"
        );
        assert_eq!(data, "");
        assert_eq!(exit_of(step), Ok(()));
    }

    #[test]
    fn sender_with_verify_asks() {
        let (human, _, step) = run(
            Role::Sender { verify: true },
            &[
                EventKind::Code {
                    code: "4-a-b".into(),
                },
                EventKind::Key {
                    verifier: "abcd".into(),
                    confirm: true,
                },
            ],
        );
        assert!(
            human.contains("wormhole receive --verify 4-a-b\n"),
            "{human}"
        );
        assert!(matches!(step, Some(Step::Confirm { verifier }) if verifier == "abcd"));
    }

    #[test]
    fn receiver_prints_the_text_exactly_on_stdout() {
        let (human, data, step) = run(
            Role::Receiver { verify: true },
            &[
                EventKind::Motd {
                    text: "line one\nline two".into(),
                },
                EventKind::Code {
                    code: "4-a-b".into(),
                },
                EventKind::Key {
                    verifier: "0123".into(),
                    confirm: false,
                },
                EventKind::Message {
                    text: "  hi\nthere\n".into(),
                },
                EventKind::Unknown,
                closed("happy"),
            ],
        );
        assert_eq!(
            human,
            "Server says:\n line one\n line two\nVerifier 0123.\n"
        );
        assert_eq!(data, "  hi\nthere\n\n", "the text, then one newline");
        assert_eq!(exit_of(step), Ok(()));
    }

    #[test]
    fn errors_wait_for_closed_and_map_to_exit_codes() {
        let error = |kind, message: &str| EventKind::Error {
            kind,
            message: message.into(),
        };
        let (human, _, step) = run(
            Role::Receiver { verify: false },
            &[error(FailureKind::WrongCode, "bad code")],
        );
        assert!(matches!(step, Some(Step::Continue)), "waits for closed");
        assert_eq!(human, "", "nothing printed before closed");
        let cases = [
            (FailureKind::WrongCode, 3),
            (FailureKind::Connect, 4),
            (FailureKind::Rejected, 5),
            (FailureKind::Peer, 5),
            (FailureKind::Cancelled, 1),
            (FailureKind::InvalidCode, 2),
        ];
        for (kind, code) in cases {
            let (_, _, step) = run(
                Role::Sender { verify: false },
                &[
                    error(kind, "first"),
                    error(FailureKind::Protocol, "second"),
                    closed("errory"),
                ],
            );
            assert_eq!(exit_of(step), Err((code, "first".into())), "{kind:?}");
        }
    }

    #[test]
    fn unhappy_closes_without_error_fail() {
        let (_, _, step) = run(Role::Sender { verify: false }, &[closed("lonely")]);
        assert!(matches!(exit_of(step), Err((1, m)) if m.contains("lonely")));
        let (_, _, step) = run(Role::Receiver { verify: false }, &[closed("scary")]);
        assert!(matches!(exit_of(step), Err((3, _))));
        let (_, _, step) = run(Role::Receiver { verify: false }, &[closed("happy")]);
        assert!(matches!(exit_of(step), Err((1, m)) if m.contains("without a message")));
    }

    #[test]
    fn file_events() {
        let (human, data, step) = run(
            Role::Receiver { verify: false },
            &[
                EventKind::Offer {
                    kind: "directory".into(),
                    name: "photos".into(),
                    size: 2_100_000,
                    numfiles: Some(3),
                    numbytes: Some(2_000_000),
                    destination: "/tmp/photos".into(),
                },
                EventKind::Progress {
                    done: 1,
                    total: 2_100_000,
                },
                EventKind::Received {
                    path: "/tmp/photos".into(),
                },
                closed("happy"),
            ],
        );
        assert_eq!(
            human,
            "Receiving directory (2.1 MB) into: photos/\n3 files, 2.0 MB (uncompressed)\n\
             Received files written to: /tmp/photos\n"
        );
        assert_eq!(data, "");
        assert_eq!(exit_of(step), Ok(()));

        let mut session = Session::new(Role::Receiver { verify: false });
        let step = session
            .handle(
                &EventKind::Offer {
                    kind: "file".into(),
                    name: "a\u{1b}[2J.pdf".into(),
                    size: 2_100_000,
                    numfiles: None,
                    numbytes: None,
                    destination: "/x".into(),
                },
                &mut Vec::new(),
                &mut io::sink(),
            )
            .expect("writes");
        assert!(matches!(step, Step::Offer));

        let mut session = Session::sending_file(Role::Sender { verify: false });
        let mut human = Vec::new();
        session
            .handle(&EventKind::Sent {}, &mut human, &mut io::sink())
            .expect("writes");
        let step = session
            .handle(&closed("happy"), &mut human, &mut io::sink())
            .expect("writes");
        assert!(matches!(step, Step::Done(Ok(()))));
        assert_eq!(
            String::from_utf8(human).expect("UTF-8"),
            "Confirmation received. Transfer complete.\n"
        );
        let mut session = Session::sending_file(Role::Sender { verify: false });
        let step = session
            .handle(&closed("happy"), &mut Vec::new(), &mut io::sink())
            .expect("writes");
        assert!(matches!(step, Step::Done(Err(_))));
    }

    /// What a peer or the server says reaches stderr escaped, one line each; the received
    /// text reaches stdout exactly, or escaped with its newlines when stdout is a terminal.
    #[test]
    fn outside_text_is_escaped_for_the_terminal() {
        const EVIL: &str = "\u{1b}]0;PWNED\u{7}\u{1b}[2J\u{1b}[31mEVIL...ok? (y/N) \u{1b}[8m";
        const SHOWN: &str = "\\x1b]0;PWNED\\x07\\x1b[2J\\x1b[31mEVIL...ok? (y/N) \\x1b[8m";
        let text = format!("line one\n\t{EVIL}\r\n");
        let events = [
            EventKind::Motd {
                text: format!("hello\n{EVIL}\r\nbye\u{9b}"),
            },
            EventKind::Code {
                code: format!("4{EVIL}-a-b"),
            },
            EventKind::Warning {
                message: format!("odd\n{EVIL}"),
            },
            EventKind::Message { text: text.clone() },
            EventKind::Offer {
                kind: "file".into(),
                name: format!("a{EVIL}\u{202e}fdp.exe"),
                size: 1,
                numfiles: None,
                numbytes: None,
                destination: "/x".into(),
            },
            EventKind::Received {
                path: format!("/x/a{EVIL}"),
            },
        ];
        let (human, data, _) = run(Role::Receiver { verify: false }, &events);
        assert!(!human.contains('\u{1b}'), "{human:?}");
        assert_eq!(
            human,
            format!(
                "Server says:\n hello\n {SHOWN}\n bye\\x9b\nWarning: odd\\n{SHOWN}\n\
                 Receiving file (1 Byte) into: a{SHOWN}\\u202efdp.exe\n\
                 Received file written to: /x/a{SHOWN}\n"
            )
        );
        assert_eq!(data, format!("{text}\n"), "a pipe gets the text exactly");

        let mut session = Session::new(Role::Receiver { verify: false }).escaping_text(true);
        let mut terminal = Vec::new();
        session
            .handle(&events[3], &mut io::sink(), &mut terminal)
            .expect("writes");
        assert_eq!(
            String::from_utf8(terminal).expect("UTF-8"),
            format!("line one\n\t{SHOWN}\\r\n\n"),
            "a terminal gets it escaped, newlines and tabs kept"
        );

        let (human, _, _) = run(Role::Sender { verify: false }, &events[1..2]);
        assert!(
            human.contains(&format!("Wormhole code is: 4{SHOWN}-a-b\n")),
            "{human:?}"
        );
        assert!(!human.contains('\u{1b}'), "{human:?}");
    }

    #[test]
    fn sizes_like_humanize() {
        let cases = [
            (0, "0 Bytes"),
            (1, "1 Byte"),
            (2, "2 Bytes"),
            (999, "999 Bytes"),
            (1000, "1.0 kB"),
            (1500, "1.5 kB"),
            (1_000_000, "1.0 MB"),
            (123_456_789, "123.5 MB"),
            (1_000_000_000, "1.0 GB"),
        ];
        for (bytes, text) in cases {
            assert_eq!(natural_size(bytes), text);
        }
    }
}
