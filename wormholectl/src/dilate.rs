//! `wormholectl dilate …`: long-lived dilated wormholes (docs/control-protocol.md, "Dilated
//! wormholes").
//!
//! - `dilate open [CODE]` asks for one, prints the code, waits until it is dilated and prints its
//!   number on stdout; the wormhole stays in the daemon after wormholectl exits.
//! - `dilate pipe ID SUBPROTOCOL [--listen]` opens a subchannel (or waits for the peer to open
//!   one) and streams stdin to it and it to stdout; stdin's end closes our half.
//! - `dilate list` lists the dilated wormholes; `dilate close ID` closes one.
//! - `dilate watch [ID]` attaches (`attach`: this connection gets the wormhole's events from
//!   now on), prints its state, then one line per event until it closes or another client
//!   attaches; `--json` prints the `attach` answer and the event lines as wormholed sent them.
//!
//! Every string printed for a person (codes, the MOTD, warnings, errors, subprotocol names) may
//! come from the peer or the server: it goes through [`escape::line`], so an event stays one
//! line and its control characters are shown, not obeyed. `pipe` copies the subchannel's bytes
//! unchanged: they are the application's data.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use anyhow::{anyhow, Context};
use wormhole_protocol::control::{
    DilationState, EventKind, FailureKind, RequestBody, ResponseBody, WormholeId,
};

use crate::cli::{DilateCommand, GlobalArgs};
use crate::{escape, settings};
use wormholectl::connection::{Connection, Start};
use wormholectl::exit::{ExitCode, Failure};

/// Runs one `dilate` subcommand.
pub(crate) fn run(global: &GlobalArgs, command: DilateCommand) -> anyhow::Result<()> {
    match command {
        DilateCommand::Open {
            code,
            code_length,
            no_listen,
            only,
        } => open(global, code, code_length, no_listen, only),
        DilateCommand::Pipe {
            id,
            subprotocol,
            listen,
        } => pipe(id, subprotocol, listen),
        DilateCommand::List => list(global.json),
        DilateCommand::Watch { id } => watch(id, global.json),
        DilateCommand::Close { id } => {
            connect(Start::Never)?.request(RequestBody::Close { wormhole: id })?;
            Ok(())
        }
    }
}

fn connect(start: Start) -> anyhow::Result<Connection> {
    Connection::open(&settings::socket_path()?, start)?
        .ok_or_else(|| Failure::new(ExitCode::Connection, "wormholed is not running").into())
}

/// `dilate open`: prints the code on stderr, then the wormhole number on stdout once dilated.
fn open(
    global: &GlobalArgs,
    code: Option<String>,
    code_length: Option<usize>,
    no_listen: bool,
    only: Vec<String>,
) -> anyhow::Result<()> {
    let mut connection = connect(Start::IfNeeded)?;
    let answer = connection.request(RequestBody::Dilate {
        code,
        code_length,
        options: global.wormhole_options(),
        transit: global.transit_options(no_listen),
        subprotocols: (!only.is_empty()).then_some(only),
    })?;
    let ResponseBody::Created { wormhole } = answer else {
        return Err(anyhow!("wormholed answered dilate with {answer:?}"));
    };
    loop {
        let received = connection.next_event()?;
        if received.event.wormhole != wormhole {
            continue;
        }
        if global.json {
            println!("{}", received.line);
        }
        match received.event.kind {
            EventKind::Code { code } => {
                eprintln!("Wormhole code is: {}", escape::line(&code));
                eprintln!("(wormhole {wormhole}; it stays open until `wormholectl dilate close {wormhole}`)");
            }
            EventKind::Dilated {} => {
                if !global.json {
                    println!("{wormhole}");
                }
                return Ok(());
            }
            EventKind::Error { kind, message } => {
                return Err(Failure::new(ExitCode::of_failure(kind), message).into());
            }
            EventKind::Closed { mood } => {
                return Err(anyhow!(
                    "the wormhole closed ({mood}) before it was dilated"
                ));
            }
            _ => {}
        }
    }
}

/// `dilate pipe`: stdin → subchannel, subchannel → stdout.
fn pipe(wormhole: WormholeId, subprotocol: String, listen: bool) -> anyhow::Result<()> {
    let mut connection = connect(Start::Never)?;
    let socket = if listen {
        connection.request(RequestBody::Listen {
            wormhole,
            subprotocol: subprotocol.clone(),
        })?;
        loop {
            let received = connection.next_event()?;
            if received.event.wormhole != wormhole {
                continue;
            }
            if let EventKind::SubchannelOpened {
                subprotocol: got,
                socket,
                ..
            } = received.event.kind
            {
                if got == subprotocol {
                    break socket;
                }
            }
        }
    } else {
        match connection.request(RequestBody::OpenSubchannel {
            wormhole,
            subprotocol,
        })? {
            ResponseBody::Subchannel { socket, .. } => socket,
            other => return Err(anyhow!("wormholed answered open-subchannel with {other:?}")),
        }
    };
    let stream = UnixStream::connect(&socket)
        .with_context(|| format!("connecting to the subchannel socket {socket}"))?;
    wormholectl::connection::check_subchannel_server(&stream, Path::new(&socket))?;
    let mut to_peer = stream
        .try_clone()
        .context("cloning the subchannel socket")?;
    let writer = std::thread::spawn(move || -> io::Result<()> {
        io::copy(&mut io::stdin().lock(), &mut to_peer)?;
        to_peer.shutdown(std::net::Shutdown::Write)
    });
    let mut from_peer = stream;
    let mut out = io::stdout().lock();
    let mut buf = vec![0; 64 << 10];
    loop {
        let n = from_peer.read(&mut buf).context("reading the subchannel")?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])
            .and_then(|()| out.flush())
            .context("writing to standard output")?;
    }
    if writer.is_finished() {
        writer
            .join()
            .map_err(|_| anyhow!("the stdin thread failed"))?
            .context("writing the subchannel")?;
    }
    Ok(())
}

/// `dilate list`: the dilated wormholes, one per line (`ID STATE CODE`).
fn list(json: bool) -> anyhow::Result<()> {
    let Some(mut connection) = Connection::open(&settings::socket_path()?, Start::Never)? else {
        return Ok(());
    };
    let ResponseBody::Wormholes { wormholes } = connection.request(RequestBody::List)? else {
        return Err(anyhow!("wormholed answered list with something else"));
    };
    let mut out = io::stdout().lock();
    for w in wormholes.iter().filter(|w| w.kind == "dilate") {
        let line = if json {
            serde_json::to_string(w).context("encoding the list")?
        } else {
            format!(
                "{} {} {}",
                w.wormhole,
                escape::line(&w.state),
                escape::line(w.code.as_deref().unwrap_or("-"))
            )
        };
        writeln!(out, "{line}").context("writing to standard output")?;
    }
    Ok(())
}

/// `dilate watch`: attach, print the state, then each event, until `closed` or `detached`.
fn watch(id: Option<WormholeId>, json: bool) -> anyhow::Result<()> {
    let mut connection = connect(Start::Never)?;
    let wormhole = match id {
        Some(id) => id,
        None => only_dilated(&mut connection)?,
    };
    let answer = connection.request(RequestBody::Attach { wormhole })?;
    let ResponseBody::Attached(state) = answer else {
        return Err(anyhow!("wormholed answered attach with {answer:?}"));
    };
    let mut out = io::stdout().lock();
    let text = if json {
        format!(
            "{}\n",
            serde_json::to_string(&state).context("encoding the state")?
        )
    } else {
        render_state(&state)
    };
    let mut failed: Option<(FailureKind, String)> = None;
    let mut print = |text: &str| {
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .context("writing to standard output")
    };
    print(&text)?;
    loop {
        let received = connection.next_event()?;
        if received.event.wormhole != wormhole {
            continue;
        }
        let line = if json {
            received.line.clone()
        } else {
            render_event(&received.event.kind, &received.line)
        };
        print(&format!("{line}\n"))?;
        match received.event.kind {
            EventKind::Error { kind, message } => failed = Some((kind, message)),
            EventKind::Closed { .. } => break,
            EventKind::Detached {} => {
                eprintln!(
                    "wormholectl: another client attached to wormhole {wormhole}; \
                     it gets the events from now on"
                );
                return Ok(());
            }
            _ => {}
        }
    }
    match failed {
        Some((kind, message)) => Err(Failure::new(ExitCode::of_failure(kind), message).into()),
        None => Ok(()),
    }
}

/// The number of the only dilated wormhole; a usage failure if there is none or several.
fn only_dilated(connection: &mut Connection) -> anyhow::Result<WormholeId> {
    let ResponseBody::Wormholes { wormholes } = connection.request(RequestBody::List)? else {
        return Err(anyhow!("wormholed answered list with something else"));
    };
    let dilated: Vec<WormholeId> = wormholes
        .iter()
        .filter(|w| w.kind == "dilate")
        .map(|w| w.wormhole)
        .collect();
    match dilated[..] {
        [id] => Ok(id),
        [] => Err(Failure::new(ExitCode::Usage, "wormholed has no dilated wormhole").into()),
        _ => {
            let ids: Vec<String> = dilated.iter().map(ToString::to_string).collect();
            Err(Failure::new(
                ExitCode::Usage,
                format!(
                    "wormholed has several dilated wormholes ({}): name one",
                    ids.join(", ")
                ),
            )
            .into())
        }
    }
}

/// The human form of an `attach` answer: `ID STATE CODE` as `dilate list`, whether the peer is
/// connected, what is listened for, one line per subchannel.
fn render_state(state: &DilationState) -> String {
    let connected = if state.connected {
        "connected"
    } else {
        "not connected"
    };
    let mut text = format!(
        "{} {} {} ({connected})\n",
        state.wormhole,
        escape::line(&state.state),
        escape::line(state.code.as_deref().unwrap_or("-"))
    );
    if !state.listening.is_empty() {
        let listening: Vec<_> = state.listening.iter().map(|s| escape::line(s)).collect();
        text.push_str(&format!("listening {}\n", listening.join(" ")));
    }
    for sub in &state.subchannels {
        text.push_str(&format!(
            "subchannel {} {} {}\n",
            sub.subchannel,
            escape::line(&sub.subprotocol),
            escape::line(sub.socket.as_deref().unwrap_or("(in use)"))
        ));
    }
    text
}

/// The human form of an event, one line: its name, then its fields, escaped. `line` is the JSON
/// it came in, for the name of an event kind this wormholectl does not know.
fn render_event(kind: &EventKind, line: &str) -> String {
    use escape::line as esc;
    match kind {
        EventKind::Motd { text } => format!("motd {}", esc(text)),
        EventKind::Code { code } => format!("code {}", esc(code)),
        EventKind::Key { verifier, .. } => format!("key {}", esc(verifier)),
        EventKind::Warning { message } => format!("warning {}", esc(message)),
        EventKind::Error { kind, message } => {
            let kind = serde_json::to_value(kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            format!("error {}: {}", esc(&kind), esc(message))
        }
        EventKind::Closed { mood } => format!("closed {}", esc(mood)),
        EventKind::SubchannelOpened {
            subchannel,
            subprotocol,
            socket,
        } => format!(
            "subchannel-opened {subchannel} {} {}",
            esc(subprotocol),
            esc(socket)
        ),
        EventKind::SubchannelClosed { subchannel } => format!("subchannel-closed {subchannel}"),
        EventKind::SubchannelRefused {
            subchannel,
            subprotocol,
        } => format!("subchannel-refused {subchannel} {}", esc(subprotocol)),
        _ => {
            let name = serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v.get("event").and_then(|e| e.as_str().map(str::to_owned)));
            esc(name.as_deref().unwrap_or(line)).into_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use wormhole_protocol::control::SubchannelState;

    use super::*;

    #[test]
    fn state_and_event_rendering() {
        let state = DilationState {
            wormhole: 3,
            code: Some("4-a-b".into()),
            state: "reconnecting".into(),
            dilated: true,
            connected: false,
            listening: vec!["chat".into(), "files".into()],
            subchannels: vec![
                SubchannelState {
                    subchannel: 1,
                    subprotocol: "chat".into(),
                    socket: None,
                },
                SubchannelState {
                    subchannel: 4,
                    subprotocol: "files".into(),
                    socket: Some("/s".into()),
                },
            ],
        };
        assert_eq!(
            render_state(&state),
            "3 reconnecting 4-a-b (not connected)\nlistening chat files\n\
             subchannel 1 chat (in use)\nsubchannel 4 files /s\n"
        );
        let line = r#"{"wormhole":3,"event":"reconnected"}"#;
        assert_eq!(
            render_event(&EventKind::Reconnected {}, line),
            "reconnected"
        );
        let error = EventKind::Error {
            kind: FailureKind::Peer,
            message: "gone".into(),
        };
        assert_eq!(render_event(&error, ""), "error peer: gone");
        let line = r#"{"wormhole":3,"event":"teleported"}"#;
        assert_eq!(render_event(&EventKind::Unknown, line), "teleported");
    }

    /// What the peer or the server says stays one line, its control characters shown.
    #[test]
    fn outside_text_is_escaped() {
        let evil = "\u{1b}]0;PWNED\u{7}\u{1b}[2J\nfake";
        let shown = "\\x1b]0;PWNED\\x07\\x1b[2J\\nfake";
        let cases = [
            (
                EventKind::Motd { text: evil.into() },
                format!("motd {shown}"),
            ),
            (
                EventKind::Warning {
                    message: evil.into(),
                },
                format!("warning {shown}"),
            ),
            (
                EventKind::Error {
                    kind: FailureKind::Peer,
                    message: evil.into(),
                },
                format!("error peer: {shown}"),
            ),
            (
                EventKind::SubchannelOpened {
                    subchannel: 2,
                    subprotocol: evil.into(),
                    socket: "/s".into(),
                },
                format!("subchannel-opened 2 {shown} /s"),
            ),
            (
                EventKind::SubchannelRefused {
                    subchannel: 2,
                    subprotocol: evil.into(),
                },
                format!("subchannel-refused 2 {shown}"),
            ),
        ];
        for (event, expected) in cases {
            assert_eq!(render_event(&event, ""), expected);
        }
        let line = r#"{"wormhole":3,"event":"tele\u001b[2Jported"}"#;
        assert_eq!(
            render_event(&EventKind::Unknown, line),
            "tele\\x1b[2Jported"
        );
        let state = DilationState {
            wormhole: 3,
            code: Some(format!("4-{evil}")),
            state: "dilated".into(),
            dilated: true,
            connected: true,
            listening: vec![evil.into()],
            subchannels: vec![SubchannelState {
                subchannel: 1,
                subprotocol: evil.into(),
                socket: None,
            }],
        };
        assert_eq!(
            render_state(&state),
            format!(
                "3 dilated 4-{shown} (connected)\nlistening {shown}\n\
                 subchannel 1 {shown} (in use)\n"
            )
        );
    }
}
