//! Questions to the user: the verifier check of `send --verify`, and typing the code of a
//! `receive` without one (with tab completion from the daemon's `complete` operation, as the
//! reference's `input_with_completion` in `src/wormhole/_rlcompleter.py`).
//!
//! Prompts go to stderr or the terminal, never to stdout, which carries only received text.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Write};

use anyhow::Context;
use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Behavior, CompletionType, Config, Editor, Helper};
use wormhole_protocol::control::{RequestBody, ResponseBody, WormholeId};

use crate::escape;
use wormholectl::connection::Connection;
use wormholectl::exit::{ExitCode, Failure};

/// The prompt of an interactive `receive`, as the reference's.
const CODE_PROMPT: &str = "Enter receive wormhole code: ";

/// Asks on stderr whether `verifier` matches the other side's, until the answer is `yes` or
/// `no`. Reads standard input; if that is at its end (e.g. consumed by `--text -`), the
/// terminal. No answer at all counts as no.
pub(crate) fn confirm_verifier(verifier: &str) -> anyhow::Result<bool> {
    let question = format!("Verifier {verifier}. ok? (yes/no): ");
    let stdin = io::stdin();
    if let Some(answer) = ask(&question, &mut stdin.lock())? {
        if !stdin.is_terminal() {
            // No terminal echoed the answer and its newline: end the question's line, so that
            // what follows (e.g. the `Error:` line) starts a line of its own.
            eprintln!();
        }
        return Ok(answer);
    }
    match File::open("/dev/tty") {
        Ok(tty) => Ok(ask(&question, &mut BufReader::new(tty))?.unwrap_or(false)),
        Err(_) => Ok(false),
    }
}

/// Asks `question` until `yes` or `no` (any case); `None` at the end of `input`.
fn ask(question: &str, input: &mut impl BufRead) -> anyhow::Result<Option<bool>> {
    loop {
        eprint!("{question}");
        io::stderr().flush().context("writing to stderr")?;
        let mut answer = String::new();
        if input.read_line(&mut answer).context("reading the answer")? == 0 {
            eprintln!();
            return Ok(None);
        }
        match parse_answer(&answer) {
            Some(answer) => return Ok(Some(answer)),
            None => continue,
        }
    }
}

/// Asks on stderr whether to receive the offered file or directory: `ok? (y/N): `. Reads
/// standard input, else the terminal; anything but `y`/`yes` (any case), including no answer,
/// is no.
pub(crate) fn confirm_offer() -> anyhow::Result<bool> {
    let question = "ok? (y/N): ";
    let read = |input: &mut dyn BufRead| -> anyhow::Result<Option<bool>> {
        eprint!("{question}");
        io::stderr().flush().context("writing to stderr")?;
        let mut answer = String::new();
        if input.read_line(&mut answer).context("reading the answer")? == 0 {
            eprintln!();
            return Ok(None);
        }
        Ok(Some(accepts_offer(&answer)))
    };
    let stdin = io::stdin();
    if let Some(answer) = read(&mut stdin.lock())? {
        return Ok(answer);
    }
    match File::open("/dev/tty") {
        Ok(tty) => Ok(read(&mut BufReader::new(tty))?.unwrap_or(false)),
        Err(_) => Ok(false),
    }
}

/// `y` or `yes` (any case) → true; anything else, the empty answer included, → false.
fn accepts_offer(answer: &str) -> bool {
    matches!(answer.trim().to_lowercase().as_str(), "y" | "yes")
}

/// `yes` → true, `no` → false (any case, surrounding whitespace ignored), else `None`.
fn parse_answer(answer: &str) -> Option<bool> {
    let answer = answer.trim().to_lowercase();
    match answer.as_str() {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    }
}

/// Reads the code of an interactive `receive`: with line editing and tab completion on a
/// terminal, else one line of standard input.
pub(crate) fn read_code(
    connection: &mut Connection,
    wormhole: WormholeId,
) -> anyhow::Result<String> {
    if !io::stdin().is_terminal() {
        let mut line = String::new();
        io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the code from standard input")?;
        let code = line.trim();
        if code.is_empty() {
            return Err(
                Failure::new(ExitCode::Usage, "no code was given on standard input").into(),
            );
        }
        return Ok(code.to_owned());
    }
    let config = Config::builder()
        .behavior(Behavior::PreferTerm)
        .completion_type(CompletionType::List)
        .auto_add_history(false)
        .build();
    let mut editor: Editor<CodeHelper<'_>, DefaultHistory> =
        Editor::with_config(config).context("setting up the terminal")?;
    editor.set_helper(Some(CodeHelper {
        connection: RefCell::new(connection),
        wormhole,
        used: Cell::new(false),
    }));
    let line = match editor.readline(CODE_PROMPT) {
        Ok(line) => line,
        Err(ReadlineError::Interrupted | ReadlineError::Eof) => {
            return Err(Failure::new(ExitCode::Interrupted, "interrupted").into())
        }
        Err(e) => return Err(e).context("reading the code"),
    };
    let used = editor.helper_mut().is_some_and(|h| h.used.get());
    if !used {
        eprintln!(" (note: you can use <Tab> to complete words)");
    }
    Ok(line.trim().to_owned())
}

/// Completes codes by asking the daemon.
struct CodeHelper<'a> {
    /// The connection, borrowed for the prompt's duration.
    connection: RefCell<&'a mut Connection>,
    /// The interactive wormhole.
    wormhole: WormholeId,
    /// Whether tab completion was used.
    used: Cell<bool>,
}

impl Completer for CodeHelper<'_> {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        self.used.set(true);
        let prefix = line.get(..pos).unwrap_or(line).to_owned();
        let answer = self.connection.borrow_mut().request(RequestBody::Complete {
            wormhole: self.wormhole,
            prefix,
        });
        // A failed completion offers nothing; the error shows up as an event later.
        match answer {
            Ok(ResponseBody::Completions { completions }) => Ok((0, printable(completions))),
            _ => Ok((0, Vec::new())),
        }
    }
}

/// The completions that are safe to show and insert as they are. A candidate holds a nameplate
/// of the server's `nameplates` list; one with a control character (which the terminal would
/// obey when the list is shown) is no code anyone can type: dropped.
fn printable(completions: Vec<String>) -> Vec<String> {
    completions
        .into_iter()
        .filter(|c| matches!(escape::line(c), Cow::Borrowed(_)))
        .collect()
}

impl Hinter for CodeHelper<'_> {
    type Hint = String;
}

impl Highlighter for CodeHelper<'_> {}

impl Validator for CodeHelper<'_> {}

impl Helper for CodeHelper<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offer_answers_default_to_no() {
        assert!(accepts_offer("y\n"));
        assert!(accepts_offer(" Yes "));
        assert!(!accepts_offer("\n"));
        assert!(!accepts_offer("n"));
        assert!(!accepts_offer("sure"));
    }

    #[test]
    fn answers() {
        assert_eq!(parse_answer("yes\n"), Some(true));
        assert_eq!(parse_answer(" YES "), Some(true));
        assert_eq!(parse_answer("no\n"), Some(false));
        assert_eq!(parse_answer("y\n"), None);
        assert_eq!(parse_answer("\n"), None);
    }

    #[test]
    fn completions_with_control_characters_are_dropped() {
        let offered = vec![
            "4-".to_owned(),
            "5\u{1b}]0;PWNED\u{7}-".to_owned(),
            "6\u{202e}-".to_owned(),
            "7-guitarist".to_owned(),
        ];
        assert_eq!(printable(offered), ["4-", "7-guitarist"]);
    }

    #[test]
    fn asking_repeats_until_yes_or_no() {
        let mut input = io::Cursor::new(b"maybe\nNo\n".to_vec());
        assert_eq!(ask("q? ", &mut input).expect("reads"), Some(false));
        let mut input = io::Cursor::new(b"what\n".to_vec());
        assert_eq!(ask("q? ", &mut input).expect("reads"), None, "end of input");
    }
}
