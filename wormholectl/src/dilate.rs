//! `wormholectl dilate …`: long-lived dilated wormholes (docs/control-protocol.md, "Dilated
//! wormholes").
//!
//! - `dilate open [CODE]` asks for one, prints the code, waits until it is dilated and prints its
//!   number on stdout; the wormhole stays in the daemon after wormholectl exits.
//! - `dilate pipe ID SUBPROTOCOL [--listen]` opens a subchannel (or waits for the peer to open
//!   one) and streams stdin to it and it to stdout; stdin's end closes our half.
//! - `dilate list` lists the dilated wormholes; `dilate close ID` closes one.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;

use anyhow::{anyhow, Context};
use wormhole_protocol::control::{EventKind, RequestBody, ResponseBody, WormholeId};

use crate::cli::{DilateCommand, GlobalArgs};
use crate::connection::{Connection, Start};
use crate::exit::{ExitCode, Failure};
use crate::settings;

/// Runs one `dilate` subcommand.
pub(crate) fn run(global: &GlobalArgs, command: DilateCommand) -> anyhow::Result<()> {
    match command {
        DilateCommand::Open {
            code,
            code_length,
            no_listen,
        } => open(global, code, code_length, no_listen),
        DilateCommand::Pipe {
            id,
            subprotocol,
            listen,
        } => pipe(id, subprotocol, listen),
        DilateCommand::List => list(global.json),
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
) -> anyhow::Result<()> {
    let mut connection = connect(Start::IfNeeded)?;
    let answer = connection.request(RequestBody::Dilate {
        code,
        code_length,
        options: global.wormhole_options(),
        transit: global.transit_options(no_listen),
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
                eprintln!("Wormhole code is: {code}");
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
                w.state,
                w.code.as_deref().unwrap_or("-")
            )
        };
        writeln!(out, "{line}").context("writing to standard output")?;
    }
    Ok(())
}
