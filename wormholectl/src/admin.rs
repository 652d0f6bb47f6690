//! `list`, `cancel` and `shutdown`: thin wrappers over the control operations of the same names.
//! None of them starts the daemon: there is nothing to ask one that is not running.

use std::io::{self, Write};

use anyhow::{anyhow, Context};
use wormhole_protocol::control::{RequestBody, ResponseBody, WormholeId, WormholeInfo};

use crate::{escape, settings};
use wormholectl::connection::{Connection, Start};
use wormholectl::exit::{ExitCode, Failure};

/// `wormholectl list`: one line per wormhole on stdout (or the answer as JSON).
pub(crate) fn list(json: bool) -> anyhow::Result<()> {
    let wormholes = match open()? {
        None => {
            if !json {
                eprintln!("wormholectl: wormholed is not running");
            }
            Vec::new()
        }
        Some(mut connection) => match connection.request(RequestBody::List)? {
            ResponseBody::Wormholes { wormholes } => wormholes,
            other => return Err(anyhow!("wormholed answered list with {other:?}")),
        },
    };
    let mut out = io::stdout().lock();
    let text = if json {
        let body = ResponseBody::Wormholes { wormholes };
        format!(
            "{}\n",
            serde_json::to_string(&body).context("encoding the list")?
        )
    } else {
        render_list(&wormholes)
    };
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("writing to standard output")
}

/// `wormholectl cancel ID`.
pub(crate) fn cancel(wormhole: WormholeId) -> anyhow::Result<()> {
    let mut connection = open()?.ok_or_else(not_running)?;
    connection.request(RequestBody::Cancel { wormhole })?;
    Ok(())
}

/// `wormholectl shutdown`: stopping a daemon that is not running is no error.
pub(crate) fn shutdown() -> anyhow::Result<()> {
    match open()? {
        None => eprintln!("wormholectl: wormholed is not running"),
        Some(mut connection) => {
            connection.request(RequestBody::Shutdown)?;
            eprintln!("wormholectl: wormholed is shutting down");
        }
    }
    Ok(())
}

/// Connects to a running daemon, if there is one.
fn open() -> anyhow::Result<Option<Connection>> {
    Connection::open(&settings::socket_path()?, Start::Never)
}

/// The error of a command that needs a running daemon.
fn not_running() -> anyhow::Error {
    Failure::new(ExitCode::Connection, "wormholed is not running").into()
}

/// The human form of `list`: a header and one aligned line per wormhole. The code may hold the
/// server's nameplate: it is escaped, as every field.
fn render_list(wormholes: &[WormholeInfo]) -> String {
    if wormholes.is_empty() {
        return String::new();
    }
    let mut text = format!("{:>4}  {:<10} {:<11} {}\n", "ID", "KIND", "STATE", "CODE");
    for w in wormholes {
        text.push_str(&format!(
            "{:>4}  {:<10} {:<11} {}\n",
            w.wormhole,
            escape::line(&w.kind),
            escape::line(&w.state),
            escape::line(w.code.as_deref().unwrap_or("-"))
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_rendering() {
        assert_eq!(render_list(&[]), "");
        let wormholes = [
            WormholeInfo {
                wormhole: 1,
                kind: "send-text".into(),
                code: Some("4-purple-sausages".into()),
                state: "waiting".into(),
            },
            WormholeInfo {
                wormhole: 12,
                kind: "receive".into(),
                code: None,
                state: "connecting".into(),
            },
        ];
        assert_eq!(
            render_list(&wormholes),
            "  ID  KIND       STATE       CODE\n   \
             1  send-text  waiting     4-purple-sausages\n  \
             12  receive    connecting  -\n"
        );
        let odd = [WormholeInfo {
            wormhole: 3,
            kind: "receive".into(),
            code: Some("4\u{1b}[2J-a-b".into()),
            state: "waiting".into(),
        }];
        assert_eq!(
            render_list(&odd),
            "  ID  KIND       STATE       CODE\n   \
             3  receive    waiting     4\\x1b[2J-a-b\n"
        );
    }
}
