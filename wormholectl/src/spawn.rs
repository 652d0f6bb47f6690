//! Starting wormholed on demand, when nothing answers on its socket.
//!
//! The daemon is the `wormholed` next to this executable if there is one, else `wormholed` from
//! `PATH`. It runs in its own process group (so it outlives us and our terminal's Ctrl-C), with
//! our environment (`WORMHOLED_SOCKET` and friends), stdin and stderr on `/dev/null` and stdout
//! piped: its first line, `wormholed ready <socket path>`, says that it accepts connections.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use anyhow::{anyhow, Context};

use crate::exit::{ExitCode, Failure};

/// How long a starting daemon may take to say that it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// The daemon's announcement, followed by its socket path.
const READY_PREFIX: &str = "wormholed ready ";

/// Starts wormholed and waits until it is ready; returns the socket path it announced.
pub(crate) fn start_daemon() -> anyhow::Result<PathBuf> {
    let program = daemon_program();
    let mut child = Command::new(&program)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| {
            Failure::new(
                ExitCode::Connection,
                format!(
                    "wormholed is not running and cannot be started ({}): {e}",
                    program.display()
                ),
            )
        })?;
    eprintln!("wormholectl: started wormholed (pid {})", child.id());
    let stdout = child
        .stdout
        .take()
        .context("the pipe from wormholed is missing")?;
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut line = String::new();
        // The pipe is dropped once the line is read (or the child is gone).
        let result = BufReader::new(stdout).read_line(&mut line).map(|_| line);
        let _ = tx.send(result);
    });
    let failed = |child: &mut Child, why: String| -> anyhow::Error {
        Failure::new(
            ExitCode::Connection,
            format!(
                "wormholed (pid {}) {why}; run `{}` in a terminal to see why",
                child.id(),
                program.display()
            ),
        )
        .into()
    };
    match rx.recv_timeout(READY_TIMEOUT) {
        Ok(Ok(line)) => match parse_ready(&line) {
            Some(path) => Ok(path),
            None if line.is_empty() => {
                let status = child
                    .wait()
                    .map_or_else(|e| e.to_string(), |s| s.to_string());
                Err(failed(
                    &mut child,
                    format!("exited before it was ready ({status})"),
                ))
            }
            None => Err(anyhow!(
                "wormholed said {:?} instead of \"{READY_PREFIX}<socket>\"",
                line.trim_end()
            )),
        },
        Ok(Err(e)) => Err(failed(&mut child, format!("could not be read: {e}"))),
        Err(_) => {
            // We started it and it is stuck: don't leave it behind.
            let _ = child.kill();
            let _ = child.wait();
            Err(failed(
                &mut child,
                format!("did not get ready within {} s", READY_TIMEOUT.as_secs()),
            ))
        }
    }
}

/// The program to start: next to our own executable if present, else from `PATH`.
fn daemon_program() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("wormholed")))
        .filter(|candidate| candidate.is_file())
        .unwrap_or_else(|| PathBuf::from("wormholed"))
}

/// The socket path of a `wormholed ready <path>` line.
fn parse_ready(line: &str) -> Option<PathBuf> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    line.strip_prefix(READY_PREFIX)
        .filter(|path| !path.is_empty())
        .map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_line() {
        assert_eq!(
            parse_ready("wormholed ready /run/user/1000/wormhole/control.sock\n"),
            Some(PathBuf::from("/run/user/1000/wormhole/control.sock"))
        );
        assert_eq!(
            parse_ready("wormholed ready /tmp/a b.sock"),
            Some(PathBuf::from("/tmp/a b.sock")),
            "spaces belong to the path"
        );
        assert_eq!(parse_ready("wormholed ready \n"), None);
        assert_eq!(parse_ready("hello\n"), None);
        assert_eq!(parse_ready(""), None);
    }
}
