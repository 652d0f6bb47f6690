//! Child processes with bounded waits.
//!
//! A [`Process`] owns a child whose stdout and stderr are pipes, each drained line by line by a
//! reader thread into a channel, so the child never blocks on a full pipe and a test can wait for
//! one line with `recv_timeout`. Every wait takes a bound; when it passes, the child is killed
//! and the test panics with the child's command line and all it printed so far. Dropping a
//! [`Process`] kills the child (by its own handle) and reaps it.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

/// How long the output pipes may stay open after the child has exited or been killed.
const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// A running child process with piped, line-buffered stdout and stderr.
///
/// stdin is left as the [`Command`] configured it; the harness's own commands
/// ([`crate::python_wormhole`], [`crate::Daemon::ctl`]) set it to null.
#[derive(Debug)]
pub struct Process {
    /// Program and arguments, for messages.
    name: String,
    /// `None` once [`Process::wait_with_timeout`] has taken it.
    child: Option<Child>,
    stdout: Stream,
    stderr: Stream,
}

impl Process {
    /// Spawns `command` with stdout and stderr piped. Panics if it cannot be started.
    pub fn spawn(command: &mut Command) -> Self {
        let name = describe(command);
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdout = child
            .stdout
            .take()
            .expect("stdout was configured as a pipe");
        let stderr = child
            .stderr
            .take()
            .expect("stderr was configured as a pipe");
        Self {
            stdout: Stream::new(stdout, &name, "stdout"),
            stderr: Stream::new(stderr, &name, "stderr"),
            name,
            child: Some(child),
        }
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child().id()
    }

    /// Takes the child's stdin pipe (the [`Command`] must have set `Stdio::piped()`).
    pub fn take_stdin(&mut self) -> ChildStdin {
        let name = self.name.clone();
        self.child_mut()
            .stdin
            .take()
            .unwrap_or_else(|| panic!("{name}: stdin is not a pipe, or was already taken"))
    }

    /// Reads stdout line by line until `matches` returns `Some` for a line (without its line
    /// ending), and returns that value. Lines read stay part of the final [`Output`].
    ///
    /// Panics, with everything printed so far, when stdout closes or `timeout` passes first;
    /// `what` names the awaited line in that message.
    pub fn wait_for_stdout<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        matches: impl FnMut(&str) -> Option<T>,
    ) -> T {
        self.wait_for_line(Pipe::Stdout, what, timeout, matches)
    }

    /// As [`Process::wait_for_stdout`], on stderr.
    pub fn wait_for_stderr<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        matches: impl FnMut(&str) -> Option<T>,
    ) -> T {
        self.wait_for_line(Pipe::Stderr, what, timeout, matches)
    }

    /// Waits for the Python sender's `Wormhole code is: <code>` line on stderr and returns the
    /// code.
    pub fn wormhole_code(&mut self, timeout: Duration) -> String {
        self.wait_for_stderr(
            "the line `Wormhole code is: <code>`",
            timeout,
            parse_code_line,
        )
    }

    /// Closes the child's stdin (if it is our pipe), waits for the child to exit and for its
    /// output to end, and returns all of it. After `timeout`, kills the child and panics with
    /// what it printed.
    pub fn wait_with_timeout(mut self, timeout: Duration) -> Output {
        let deadline = Instant::now() + timeout;
        let mut child = self.child.take().expect("the child is only taken here");
        drop(child.stdin.take());
        let pid = child.id();
        let (sender, exited) = mpsc::channel();
        thread::spawn(move || {
            // The receiver may be gone after a timeout; nothing is left to tell then.
            let _ = sender.send(child.wait());
        });
        let status = match exited.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Ok(status)) => status,
            Ok(Err(e)) => panic!("cannot wait for {}: {e}", self.name),
            Err(RecvTimeoutError::Disconnected) => {
                panic!("the waiter thread of {} ended without a status", self.name)
            }
            Err(RecvTimeoutError::Timeout) => {
                // Not reaped yet (the waiter would have sent the status), so the pid is still
                // this child's.
                kill_pid(pid);
                let status = exited.recv_timeout(DRAIN_GRACE);
                let report = self.report(Instant::now() + DRAIN_GRACE);
                panic!(
                    "{} did not exit within {timeout:?}; killed ({status:?})\n{report}",
                    self.name
                );
            }
        };
        let drain_deadline = deadline.max(Instant::now() + DRAIN_GRACE);
        for pipe in [Pipe::Stdout, Pipe::Stderr] {
            if !self.stream(pipe).drain_to_eof(drain_deadline) {
                let report = self.report(Instant::now());
                panic!(
                    "{} exited ({status}) but its {} stayed open: a process it started \
                     still holds it\n{report}",
                    self.name,
                    pipe.name()
                );
            }
        }
        Output {
            status,
            stdout: std::mem::take(&mut self.stdout.seen),
            stderr: std::mem::take(&mut self.stderr.seen),
        }
    }

    /// Kills the child (by its handle) and reaps it. Idempotent.
    pub fn kill(&mut self) {
        if let Some(child) = self.child.as_mut() {
            // Fails only if the child is already reaped, which is the wanted state.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the child has exited, without waiting (`Some(status)` if it has).
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        let name = self.name.clone();
        self.child_mut()
            .try_wait()
            .unwrap_or_else(|e| panic!("cannot query {name}: {e}"))
    }

    /// The child's command line, as shown in messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Everything the child printed so far, and whether it has exited, for a failure message.
    /// Waits for more output until `deadline` only if the child has exited (its pipes then end).
    pub fn report(&mut self, deadline: Instant) -> String {
        let status = match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(Some(status))) => {
                self.stdout.drain_to_eof(deadline);
                self.stderr.drain_to_eof(deadline);
                format!("exited: {status}")
            }
            Some(Ok(None)) => "no exit status yet".to_owned(),
            Some(Err(e)) => format!("status unknown: {e}"),
            None => "exited or killed".to_owned(),
        };
        self.stdout.drain_available();
        self.stderr.drain_available();
        format!(
            "--- {} ({status})\n--- stdout:\n{}\n--- stderr:\n{}\n---",
            self.name,
            String::from_utf8_lossy(&self.stdout.seen),
            String::from_utf8_lossy(&self.stderr.seen),
        )
    }

    fn wait_for_line<T>(
        &mut self,
        pipe: Pipe,
        what: &str,
        timeout: Duration,
        mut matches: impl FnMut(&str) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            match self.stream(pipe).next_line(deadline) {
                Next::Line(line) => {
                    if let Some(found) = matches(line.trim_end_matches(['\n', '\r'])) {
                        return found;
                    }
                }
                Next::Eof => {
                    let report = self.report(Instant::now() + DRAIN_GRACE);
                    panic!(
                        "{} closed its {} before printing {what}\n{report}",
                        self.name,
                        pipe.name()
                    )
                }
                Next::Timeout => {
                    let report = self.report(Instant::now());
                    self.kill();
                    panic!(
                        "{} printed no {what} on its {} within {timeout:?}; killed\n{report}",
                        self.name,
                        pipe.name()
                    )
                }
            }
        }
    }

    fn stream(&mut self, pipe: Pipe) -> &mut Stream {
        match pipe {
            Pipe::Stdout => &mut self.stdout,
            Pipe::Stderr => &mut self.stderr,
        }
    }

    fn child(&self) -> &Child {
        self.child
            .as_ref()
            .expect("the child is only taken by wait_with_timeout, which consumes the Process")
    }

    fn child_mut(&mut self) -> &mut Child {
        self.child
            .as_mut()
            .expect("the child is only taken by wait_with_timeout, which consumes the Process")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `command` to completion (stdout and stderr piped) within `timeout`; see
/// [`Process::wait_with_timeout`].
pub fn run(command: &mut Command, timeout: Duration) -> Output {
    Process::spawn(command).wait_with_timeout(timeout)
}

/// Panics with the exit status, stdout and stderr unless `output` is a success; returns stdout
/// as text.
pub fn assert_success(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "command failed: {}\n--- stdout:\n{stdout}\n--- stderr:\n{}\n---",
        output.status,
        String::from_utf8_lossy(&output.stderr),
    );
    stdout
}

/// The code from a line `Wormhole code is: <code>` (what the Python sender prints on stderr).
pub fn parse_code_line(line: &str) -> Option<String> {
    let code = line.trim().strip_prefix("Wormhole code is:")?.trim();
    (!code.is_empty()).then(|| code.to_owned())
}

/// Which output pipe.
#[derive(Clone, Copy, Debug)]
enum Pipe {
    Stdout,
    Stderr,
}

impl Pipe {
    fn name(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        }
    }
}

/// One output pipe, read into a channel by a thread, one line per message.
#[derive(Debug)]
struct Stream {
    lines: Receiver<Vec<u8>>,
    /// Every byte received from the channel so far.
    seen: Vec<u8>,
    eof: bool,
}

/// The result of waiting for one line.
enum Next {
    Line(String),
    Eof,
    Timeout,
}

impl Stream {
    fn new(pipe: impl Read + Send + 'static, process: &str, pipe_name: &str) -> Self {
        let (sender, lines) = mpsc::channel();
        thread::Builder::new()
            .name(format!("{pipe_name} of {process}"))
            .spawn(move || {
                let mut reader = BufReader::new(pipe);
                loop {
                    let mut line = Vec::new();
                    match reader.read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            if sender.send(line).is_err() {
                                break;
                            }
                        }
                    }
                }
            })
            .expect("a reader thread can be started");
        Self {
            lines,
            seen: Vec::new(),
            eof: false,
        }
    }

    fn next_line(&mut self, deadline: Instant) -> Next {
        if self.eof {
            return Next::Eof;
        }
        match self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            Ok(line) => {
                self.seen.extend_from_slice(&line);
                Next::Line(String::from_utf8_lossy(&line).into_owned())
            }
            Err(RecvTimeoutError::Timeout) => Next::Timeout,
            Err(RecvTimeoutError::Disconnected) => {
                self.eof = true;
                Next::Eof
            }
        }
    }

    /// Reads until the pipe ends; `false` if `deadline` passed first.
    fn drain_to_eof(&mut self, deadline: Instant) -> bool {
        loop {
            match self.next_line(deadline) {
                Next::Line(_) => {}
                Next::Eof => return true,
                Next::Timeout => return false,
            }
        }
    }

    /// Takes what has arrived, without waiting.
    fn drain_available(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.extend_from_slice(&line);
        }
    }
}

/// Program (file name only) and arguments.
fn describe(command: &Command) -> String {
    let program = std::path::Path::new(command.get_program());
    let mut name = program
        .file_name()
        .unwrap_or(program.as_os_str())
        .to_string_lossy()
        .into_owned();
    for arg in command.get_args() {
        name.push(' ');
        name.push_str(&arg.to_string_lossy());
    }
    name
}

/// Sends SIGKILL to `pid`, a child of ours that is not reaped yet (its waiter thread holds the
/// handle, so `Child::kill` is out of reach). Uses the shell's `kill`: no `unsafe` for libc.
fn kill_pid(pid: u32) {
    let result = Command::new("sh")
        .args(["-c", "kill -KILL \"$1\"", "sh", &pid.to_string()])
        .stdin(Stdio::null())
        .status();
    if let Err(e) = result {
        eprintln!("cannot run sh to kill pid {pid}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_code_line() {
        assert_eq!(
            parse_code_line("Wormhole code is: 7-guitarist-revenge"),
            Some("7-guitarist-revenge".to_owned())
        );
        assert_eq!(parse_code_line("Sending text message (2 Bytes)"), None);
        assert_eq!(parse_code_line("Wormhole code is: "), None);
    }

    #[test]
    fn waits_for_a_line_and_collects_the_output() {
        let mut command = Command::new("sh");
        command
            .args([
                "-c",
                "echo one; echo 'Wormhole code is: 4-a-b' >&2; echo two",
            ])
            .stdin(Stdio::null());
        let mut process = Process::spawn(&mut command);
        assert_eq!(process.wormhole_code(Duration::from_secs(30)), "4-a-b");
        let output = process.wait_with_timeout(Duration::from_secs(30));
        assert_eq!(assert_success(&output), "one\ntwo\n");
        assert_eq!(output.stderr, b"Wormhole code is: 4-a-b\n");
    }

    #[test]
    #[should_panic(expected = "did not exit within")]
    fn a_hanging_child_is_killed_at_the_deadline() {
        let mut command = Command::new("sh");
        // `exec` so that the killed pid is the one holding the pipes.
        command.args(["-c", "exec sleep 600"]).stdin(Stdio::null());
        run(&mut command, Duration::from_millis(200));
    }

    #[test]
    #[should_panic(expected = "closed its stderr before printing")]
    fn a_line_that_never_comes_fails_at_eof() {
        let mut command = Command::new("sh");
        command
            .args(["-c", "echo nothing here >&2"])
            .stdin(Stdio::null());
        Process::spawn(&mut command).wormhole_code(Duration::from_secs(30));
    }
}
