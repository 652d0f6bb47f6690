//! `send` and `receive`: create the wormhole, then follow its events until it closes.
//!
//! Mirrors `cli/cmd_send.py` and `cli/cmd_receive.py` of the reference for what the user sees;
//! the protocol itself runs in wormholed.

use std::io::{self, Read, Write};

use anyhow::{anyhow, Context};
use wormhole_protocol::control::{RequestBody, ResponseBody, WormholeId};

use crate::cli::{GlobalArgs, ReceiveArgs, SendArgs};
use crate::connection::{Connection, Start};
use crate::exit::{exit_code_of, ExitCode, Failure};
use crate::session::{natural_size, Role, Session, Step};
use crate::{prompt, settings};

/// `wormholectl send`.
pub(crate) fn send(global: &GlobalArgs, args: SendArgs) -> anyhow::Result<()> {
    let text = match args.text.as_deref() {
        Some("-") => {
            eprintln!("Reading text message from stdin..");
            let mut text = String::new();
            io::stdin()
                .read_to_string(&mut text)
                .context("reading the text message from standard input")?;
            text
        }
        Some(text) => text.to_owned(),
        None => {
            return Err(Failure::new(
                ExitCode::Usage,
                "sending files arrives in a later version; use --text",
            )
            .into())
        }
    };
    eprintln!("Sending text message ({})", natural_size(text.len()));
    let mut connection = connect()?;
    let wormhole = created(connection.request(RequestBody::SendText {
        text,
        code: args.code,
        code_length: args.code_length,
        verify: args.verify,
        options: global.wormhole_options(),
    })?)?;
    follow(
        &mut connection,
        wormhole,
        Role::Sender {
            verify: args.verify,
        },
        global.json,
    )
}

/// `wormholectl receive`.
pub(crate) fn receive(global: &GlobalArgs, args: ReceiveArgs) -> anyhow::Result<()> {
    let mut connection = connect()?;
    let interactive = args.code.is_none();
    let wormhole = created(connection.request(RequestBody::Receive {
        code: args.code,
        options: global.wormhole_options(),
    })?)?;
    if interactive {
        let code = prompt::read_code(&mut connection, wormhole)?;
        connection.request(RequestBody::SetCode { wormhole, code })?;
    }
    follow(
        &mut connection,
        wormhole,
        Role::Receiver {
            verify: args.verify,
        },
        global.json,
    )
}

/// Connects to the daemon of our configuration, starting it if needed.
fn connect() -> anyhow::Result<Connection> {
    let socket = settings::socket_path()?;
    Connection::open(&socket, Start::IfNeeded)?.ok_or_else(|| anyhow!("wormholed is not running"))
}

/// The wormhole of a `created` answer.
fn created(answer: ResponseBody) -> anyhow::Result<WormholeId> {
    match answer {
        ResponseBody::Created { wormhole } => Ok(wormhole),
        other => Err(anyhow!(
            "wormholed answered with {other:?} instead of a new wormhole"
        )),
    }
}

/// Follows the events of `wormhole` until it closes. With `json`, each event line goes to
/// stdout as received and the received text only there.
fn follow(
    connection: &mut Connection,
    wormhole: WormholeId,
    role: Role,
    json: bool,
) -> anyhow::Result<()> {
    let mut session = Session::new(role);
    let stdout = io::stdout();
    let stderr = io::stderr();
    loop {
        let received = connection.next_event()?;
        if received.event.wormhole != wormhole {
            continue;
        }
        let step = if json {
            let mut out = stdout.lock();
            writeln!(out, "{}", received.line)
                .and_then(|()| out.flush())
                .context("writing to standard output")?;
            session.handle(&received.event.kind, &mut stderr.lock(), &mut io::sink())
        } else {
            session.handle(&received.event.kind, &mut stderr.lock(), &mut stdout.lock())
        }
        .context("writing the output")?;
        match step {
            Step::Continue => {}
            Step::Confirm { verifier } => {
                let accept = prompt::confirm_verifier(&verifier)?;
                // If the wormhole ended meanwhile the request fails, and its events say why.
                if let Err(e) = connection.request(RequestBody::Verify { wormhole, accept }) {
                    if exit_code_of(&e) == ExitCode::Connection {
                        return Err(e);
                    }
                }
            }
            Step::Done(result) => return result.map_err(Into::into),
        }
    }
}
