//! wormholectl: the command-line client of wormholed.
//!
//! Speaks the control protocol (`wormhole_protocol::control`) over the daemon's local socket,
//! starting the daemon when none answers. Flags follow the Python `wormhole` CLI.
//!
//! Layout: [`cli`] defines the command line; [`transfer`] drives `send` and `receive`,
//! rendering events through [`session`] and asking through [`prompt`]; [`admin`] wraps `list`,
//! `cancel` and `shutdown`; [`dilate`] drives dilated wormholes; [`settings`] reads the
//! configuration. The library ([`wormholectl`]) has the typed control-socket client, which
//! starts the daemon when asked, and the exit codes ([`wormholectl::exit`]).
//!
//! Output: standard output carries only data (received text, `list`, `config`, or with `--json`
//! one JSON line per event); everything for a person goes to standard error. A failure prints
//! one line `Error: <message>` and exits with its code. Whatever came from outside (a peer, the
//! mailbox server, the daemon) reaches a terminal only through [`escape`].

mod admin;
mod cli;
mod dilate;
mod escape;
mod prompt;
mod session;
mod settings;
mod transfer;

use std::process;

use clap::Parser;
use wormholectl::exit;

use crate::cli::{Cli, Command};

fn main() -> process::ExitCode {
    // A bug must not show a Rust panic and backtrace to the user: one line, like every error.
    std::panic::set_hook(Box::new(|info| {
        let info = info.to_string();
        eprintln!(
            "Error: internal error in wormholectl: {}",
            escape::line(&info)
        );
    }));
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => process::ExitCode::SUCCESS,
        Err(error) => {
            // The message may quote a peer or a server (`remote error, transfer abandoned:
            // …`): one line, with its control characters shown, never obeyed.
            let message = format!("{error:#}");
            eprintln!("Error: {}", escape::line(&message));
            process::ExitCode::from(exit::exit_code_of(&error).code())
        }
    }
}

/// Runs one command.
fn run(cli: Cli) -> anyhow::Result<()> {
    let Cli { global, command } = cli;
    match command {
        Command::Send(args) => transfer::send(&global, args),
        Command::Receive(args) => transfer::receive(&global, args),
        Command::Config => settings::show(global.json),
        Command::List => admin::list(global.json),
        Command::Cancel { id } => admin::cancel(id),
        Command::Shutdown => admin::shutdown(),
        Command::Dilate { command } => dilate::run(&global, command),
    }
}
