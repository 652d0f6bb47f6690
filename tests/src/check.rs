//! Assertions and command builders shared by the end-to-end tests: what a user relies on
//! (exit codes, one `Error:` line, exact bytes on stdout), checked the same way everywhere.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use wormholectl::exit::ExitCode;

use crate::{python_script, python_wormhole, venv_python, Daemon, MailboxServer, Process};

/// The Python CLI with `--relay-url` of `server`, then `args`.
pub fn python(server: &MailboxServer, args: &[&str]) -> Command {
    let url = server.url();
    let mut all = vec!["--relay-url", url.as_str()];
    all.extend_from_slice(args);
    python_wormhole(all)
}

/// `wormholectl` of `daemon` with `args`.
pub fn ours(daemon: &Daemon, args: &[&str]) -> Command {
    let mut command = daemon.ctl();
    command.args(args);
    command
}

/// `command` (program, arguments, environment, working directory) run with its stdout on a
/// pseudo-terminal by `tests/python/on_terminal.py`, in raw mode: the returned command's stdout
/// carries exactly the bytes the terminal got, and its exit status is `command`'s. stdin is
/// null; stderr stays a pipe of the returned command.
pub fn on_terminal(command: &Command) -> Command {
    let mut terminal = Command::new(venv_python());
    terminal
        .arg(python_script("on_terminal.py"))
        .arg(command.get_program())
        .args(command.get_args())
        .stdin(Stdio::null());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => terminal.env(key, value),
            None => terminal.env_remove(key),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        terminal.current_dir(dir);
    }
    terminal
}

/// Spawns `command` with `input` written to its stdin, which is then closed.
pub fn spawn_with_stdin(command: &mut Command, input: &str) -> Process {
    command.stdin(Stdio::piped());
    let mut process = Process::spawn(command);
    process
        .take_stdin()
        .write_all(input.as_bytes())
        .expect("the input can be written");
    process
}

/// Panics unless `output` succeeded; returns (stdout, stderr) as text.
pub fn assert_ok(output: &Output, who: &str) -> (String, String) {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "{who} failed ({}):\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}",
        output.status,
    );
    (stdout, stderr)
}

/// Panics unless `output` succeeded and its stdout is exactly `text` and one newline; on a
/// mismatch, says where the bytes differ rather than printing 60 KiB twice.
pub fn assert_received(output: &Output, text: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the receiver failed ({}):\n--- stderr:\n{stderr}\n--- stdout ({} bytes):\n{}",
        output.status,
        output.stdout.len(),
        String::from_utf8_lossy(&output.stdout)
    );
    let expected = format!("{text}\n").into_bytes();
    if output.stdout != expected {
        let at = output
            .stdout
            .iter()
            .zip(&expected)
            .position(|(a, b)| a != b)
            .unwrap_or(output.stdout.len().min(expected.len()));
        let shown = |bytes: &[u8]| {
            let end = (at + 40).min(bytes.len());
            String::from_utf8_lossy(&bytes[at.min(end)..end]).into_owned()
        };
        panic!(
            "stdout differs from the text and one newline: {} bytes, expected {}; first \
             difference at byte {at}: {:?} instead of {:?}\n--- stderr:\n{stderr}",
            output.stdout.len(),
            expected.len(),
            shown(&output.stdout),
            shown(&expected),
        );
    }
}

/// Panics unless our `output` failed with exit code `code` and printed exactly one `Error: `
/// line, last on stderr, containing every one of `needles`; returns that line.
pub fn assert_our_failure(output: &Output, code: ExitCode, needles: &[&str]) -> String {
    let code = i32::from(code.code());
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let report = format!(
        "--- stdout:\n{}\n--- stderr:\n{stderr}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert_eq!(
        output.status.code(),
        Some(code),
        "wormholectl should exit {code}\n{report}"
    );
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("Error: "))
        .collect();
    assert_eq!(errors.len(), 1, "one `Error: ` line expected\n{report}");
    assert_eq!(
        stderr.lines().last(),
        errors.first().copied(),
        "the error is the last line\n{report}"
    );
    let line = errors[0].to_owned();
    for needle in needles {
        assert!(
            line.contains(needle),
            "the error line does not mention {needle:?}\n{report}"
        );
    }
    assert!(output.stdout.is_empty(), "nothing on stdout\n{report}");
    line
}

/// Panics unless `bytes` (what a program wrote to a terminal or its stderr) hold no control
/// character but the newline: nothing a peer or a server said was passed on for the terminal
/// to obey (escape sequences, bell, carriage return, C1). `what` names the stream.
pub fn assert_no_control_characters(bytes: &[u8], what: &str) {
    let text = String::from_utf8_lossy(bytes);
    if let Some((at, c)) = text
        .char_indices()
        .find(|&(_, c)| c != '\n' && c.is_control())
    {
        panic!("{what} holds the control character {c:?} at byte {at}:\n{text:?}");
    }
}

/// `line` without ANSI escape sequences (the daemon's log may be coloured).
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-byte (0x40..=0x7e).
            for c in chars.by_ref() {
                if ('\u{40}'..='\u{7e}').contains(&c) && c != '[' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Parses a `WORD N HASH` line of `tests/python/dilation_peer.py` (`sent N HASH`,
/// `received N HASH`): the byte count and the SHA-256 hex.
pub fn count_and_hash(line: &str, word: &str) -> Option<(usize, String)> {
    let mut parts = line.strip_prefix(word)?.split_whitespace();
    let count = parts.next()?.parse().ok()?;
    Some((count, parts.next()?.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_colours() {
        assert_eq!(
            strip_ansi("\u{1b}[2mwhen\u{1b}[0m \u{1b}[34mDEBUG\u{1b}[0m x\u{1b}[2m=\u{1b}[0m1"),
            "when DEBUG x=1"
        );
    }
}
