//! `send` and `receive`: create the wormhole, then follow its events until it closes.
//!
//! Mirrors `cli/cmd_send.py` and `cli/cmd_receive.py` of the reference for what the user sees;
//! the protocol itself runs in wormholed.

use std::io::{self, IsTerminal, Read, Write};
use std::path::Path;

use anyhow::{anyhow, Context};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use wormhole_protocol::control::{EventKind, RequestBody, ResponseBody, WormholeId};

use crate::cli::{GlobalArgs, ReceiveArgs, SendArgs};
use crate::session::{natural_size, Role, Session, Step};
use crate::{escape, prompt, settings};
use wormholectl::connection::{Connection, Start};
use wormholectl::exit::{exit_code_of, ExitCode, Failure};

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
        None => return send_file(global, args),
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
        Session::new(Role::Sender {
            verify: args.verify,
        }),
        Display::new(global.json, true),
    )
}

/// `wormholectl send FILE`.
fn send_file(global: &GlobalArgs, args: SendArgs) -> anyhow::Result<()> {
    let Some(what) = args.what.as_deref() else {
        return Err(Failure::new(
            ExitCode::Usage,
            "give a file or directory to send, or --text MESSAGE",
        )
        .into());
    };
    let path =
        std::path::absolute(what).with_context(|| format!("resolving {}", what.display()))?;
    let meta = std::fs::metadata(&path).map_err(|_| {
        Failure::new(
            ExitCode::Usage,
            format!("Cannot send: no file/directory named '{}'", what.display()),
        )
    })?;
    if !meta.is_file() && !meta.is_dir() {
        return Err(Failure::new(
            ExitCode::Usage,
            format!(
                "Cannot send: '{}' is neither file nor directory",
                escape::line(&what.display().to_string())
            ),
        )
        .into());
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if meta.is_dir() {
        eprintln!("Building zipfile..");
    }
    let mut connection = connect()?;
    // The daemon answers once the offer is built (a folder zipped, a file opened), and refuses
    // what cannot be sent before any code exists.
    let wormhole = created(connection.request(RequestBody::SendFile {
        path: path.to_string_lossy().into_owned(),
        code: args.code,
        code_length: args.code_length,
        verify: args.verify,
        options: global.wormhole_options(),
        transit: global.transit_options(args.data.no_listen),
    })?)?;
    if meta.is_file() {
        let size = natural_size(usize::try_from(meta.len()).unwrap_or(usize::MAX));
        eprintln!("Sending {size} file named '{}'", escape::line(&name));
    }
    follow(
        &mut connection,
        wormhole,
        Session::sending_file(Role::Sender {
            verify: args.verify,
        }),
        Display::new(global.json, args.data.hide_progress),
    )
}

/// `wormholectl receive`.
pub(crate) fn receive(global: &GlobalArgs, args: ReceiveArgs) -> anyhow::Result<()> {
    let mut connection = connect()?;
    let interactive = args.code.is_none();
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let output = args
        .output_file
        .as_deref()
        .map(|out| absolute_in(&cwd, out).to_string_lossy().into_owned());
    let wormhole = created(connection.request(RequestBody::Receive {
        code: args.code,
        accept_file: args.accept_file,
        output,
        directory: Some(cwd.to_string_lossy().into_owned()),
        options: global.wormhole_options(),
        transit: global.transit_options(args.data.no_listen),
    })?)?;
    if interactive {
        let code = prompt::read_code(&mut connection, wormhole)?;
        connection.request(RequestBody::SetCode { wormhole, code })?;
    }
    let mut display = Display::new(global.json, args.data.hide_progress);
    display.accept_file = args.accept_file;
    follow(
        &mut connection,
        wormhole,
        // A text that goes to a terminal is escaped; to a pipe or a file, it goes exactly.
        Session::new(Role::Receiver {
            verify: args.verify,
        })
        .escaping_text(!global.json && io::stdout().is_terminal()),
        display,
    )
}

/// `path` made absolute against `cwd` (no symlink is resolved).
fn absolute_in(cwd: &Path, path: &Path) -> std::path::PathBuf {
    if path.is_absolute() {
        path.to_owned()
    } else {
        cwd.join(path)
    }
}

/// How events are shown: JSON lines or text, and the progress bar.
struct Display {
    json: bool,
    hide_progress: bool,
    accept_file: bool,
    bar: Option<ProgressBar>,
}

impl Display {
    fn new(json: bool, hide_progress: bool) -> Self {
        Self {
            json,
            hide_progress: hide_progress || json || !io::stderr().is_terminal(),
            accept_file: false,
            bar: None,
        }
    }

    fn progress(&mut self, done: u64, total: u64) {
        if self.hide_progress {
            return;
        }
        let bar = self.bar.get_or_insert_with(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(
                "{percent:>3}% |{wide_bar}| {bytes}/{total_bytes} [{elapsed_precise}<{eta_precise}, {bytes_per_sec}]",
            ) {
                bar.set_style(style);
            }
            bar
        });
        bar.set_position(done);
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
            // The bar leaves the cursor at the end of its line.
            eprintln!();
        }
    }
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
    mut session: Session,
    mut display: Display,
) -> anyhow::Result<()> {
    let json = display.json;
    let stdout = io::stdout();
    let stderr = io::stderr();
    loop {
        let received = connection.next_event()?;
        if received.event.wormhole != wormhole {
            continue;
        }
        if matches!(
            received.event.kind,
            EventKind::Received { .. }
                | EventKind::Sent {}
                | EventKind::Error { .. }
                | EventKind::Closed { .. }
        ) {
            // The bar ends before the next line for a person is printed.
            display.finish();
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
            Step::Offer => {
                if !display.accept_file {
                    let accept = prompt::confirm_offer()?;
                    if !accept {
                        eprintln!("transfer rejected");
                    }
                    if let Err(e) = connection.request(RequestBody::Accept { wormhole, accept }) {
                        if exit_code_of(&e) == ExitCode::Connection {
                            return Err(e);
                        }
                    }
                }
            }
            Step::Progress { done, total } => display.progress(done, total),
            Step::DataDone => display.finish(),
            Step::Done(result) => {
                display.finish();
                return result.map_err(Into::into);
            }
        }
    }
}
