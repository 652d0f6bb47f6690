//! The command line: clap definitions of every subcommand and flag.
//!
//! Flags follow the Python `wormhole` CLI (magic-wormhole 0.24.0, `src/wormhole/cli/cli.py`): the
//! same names, the same short forms, the same environment variables. The options shared by all
//! subcommands (`--relay-url`, `--appid`, `--json`) are `global`, so they are accepted before the
//! subcommand as well as after it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use wormhole_protocol::control::{TransitOptions, WormholeOptions};

/// Send and receive through Magic Wormhole, via the wormholed daemon.
///
/// Wormholes are created by speaking the same magic CODE in two different places at the same
/// time. Wormholes are secure against anyone who doesn't use the same code.
#[derive(Debug, Parser)]
#[command(name = "wormholectl", version, propagate_version = true)]
pub(crate) struct Cli {
    /// Options shared by every subcommand.
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options accepted before or after any subcommand.
#[derive(Debug, Default, Args)]
pub(crate) struct GlobalArgs {
    /// Rendezvous relay (mailbox server) to use [default: from wormholed's config]
    #[arg(long, global = true, env = "WORMHOLE_RELAY_URL", value_name = "URL")]
    pub(crate) relay_url: Option<String>,
    /// Application id to use [default: from wormholed's config]
    #[arg(long, global = true, env = "WORMHOLE_APPID", value_name = "APPID")]
    pub(crate) appid: Option<String>,
    /// Transit relay to use, tcp:HOST:PORT [default: from wormholed's config]
    #[arg(
        long,
        global = true,
        env = "WORMHOLE_TRANSIT_HELPER",
        value_name = "tcp:HOST:PORT"
    )]
    pub(crate) transit_helper: Option<String>,
    /// Print each event from wormholed as one JSON line on standard output
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

impl GlobalArgs {
    /// The per-wormhole settings to put in a request: only those given by flag or environment.
    pub(crate) fn wormhole_options(&self) -> WormholeOptions {
        WormholeOptions {
            relay_url: self.relay_url.clone(),
            appid: self.appid.clone(),
        }
    }

    /// The Transit settings to put in a file request.
    pub(crate) fn transit_options(&self, no_listen: bool) -> TransitOptions {
        TransitOptions {
            transit_helper: self.transit_helper.clone(),
            no_listen,
        }
    }
}

/// Options of `send` and `receive` about the file data path.
#[derive(Debug, Default, Args)]
pub(crate) struct DataArgs {
    /// Suppress progress-bar display
    #[arg(long)]
    pub(crate) hide_progress: bool,
    /// (debug) Don't open a listening socket for Transit
    #[arg(long)]
    pub(crate) no_listen: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Send a text message, file, or directory
    #[command(visible_alias = "tx")]
    Send(SendArgs),
    /// Receive a text message, file, or directory (from `wormhole send` or `wormholectl send`)
    #[command(visible_alias = "rx")]
    Receive(ReceiveArgs),
    /// Print each effective setting, its value and where it came from
    Config,
    /// List the wormholes wormholed hosts
    List,
    /// Cancel one wormhole of wormholed
    Cancel {
        /// The wormhole's number, as `list` shows it
        id: u64,
    },
    /// Stop wormholed (its wormholes are cancelled first)
    Shutdown,
    /// Long-lived dilated wormholes (Dilation) and their subchannels
    Dilate {
        /// What to do.
        #[command(subcommand)]
        command: DilateCommand,
    },
}

/// `dilate` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum DilateCommand {
    /// Open a dilated wormhole (allocate a code, or join CODE); prints its number once dilated.
    /// It stays open in wormholed until `dilate close`.
    Open {
        /// The code to join (default: allocate one and print it)
        code: Option<String>,
        /// Length of an allocated code (in words)
        #[arg(short = 'c', long, value_name = "NUMWORDS")]
        code_length: Option<usize>,
        /// Don't listen for direct connections: dial out and use relays only
        #[arg(long)]
        no_listen: bool,
        /// Accept the peer's subchannels of this subprotocol only (repeat for more); others are
        /// refused (default: any, held until someone listens)
        #[arg(long = "only", value_name = "SUBPROTOCOL")]
        only: Vec<String>,
    },
    /// Stream stdin to a subchannel and the subchannel to stdout
    Pipe {
        /// The dilated wormhole's number
        id: u64,
        /// The subchannel's subprotocol
        subprotocol: String,
        /// Wait for the peer to open the subchannel instead of opening it
        #[arg(long)]
        listen: bool,
    },
    /// List the dilated wormholes (`ID STATE CODE`)
    List,
    /// Attach to a dilated wormhole and print its state, then its events as they come, until it
    /// closes or another client attaches (an app that restarted resumes the same way)
    Watch {
        /// The dilated wormhole's number (default: the only one)
        id: Option<u64>,
    },
    /// Close a dilated wormhole
    Close {
        /// The dilated wormhole's number
        id: u64,
    },
}

/// `send`: what to send and how to make the code.
#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    /// Human-generated code phrase
    #[arg(long, value_name = "CODE")]
    pub(crate) code: Option<String>,
    /// Length of code (in bytes/words)
    #[arg(short = 'c', long, value_name = "NUMWORDS")]
    pub(crate) code_length: Option<usize>,
    /// Display verification string (and wait for approval)
    #[arg(short = 'v', long)]
    pub(crate) verify: bool,
    /// Text message to send, instead of a file. Use '-' to read from stdin.
    #[arg(
        long,
        value_name = "MESSAGE",
        allow_hyphen_values = true,
        conflicts_with = "what"
    )]
    pub(crate) text: Option<String>,
    /// Progress and Transit options.
    #[command(flatten)]
    pub(crate) data: DataArgs,
    /// The file or directory to send
    #[arg(value_name = "FILE")]
    pub(crate) what: Option<PathBuf>,
}

/// `receive`: the code, if known.
#[derive(Debug, Args)]
pub(crate) struct ReceiveArgs {
    /// Display verification string
    #[arg(short = 'v', long)]
    pub(crate) verify: bool,
    /// Accept file transfer without asking for confirmation
    #[arg(long, env = "WORMHOLE_ACCEPT_FILE")]
    pub(crate) accept_file: bool,
    /// The file or directory to create, overriding the name suggested by the sender. If the
    /// directory exists already, the incoming transfer will be put inside it.
    #[arg(short = 'o', long, value_name = "FILENAME|DIRNAME")]
    pub(crate) output_file: Option<PathBuf>,
    /// Progress and Transit options.
    #[command(flatten)]
    pub(crate) data: DataArgs,
    /// The code from the sender; without it, it is asked for, with tab completion
    #[arg(value_name = "CODE")]
    pub(crate) code: Option<String>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Cli {
        match Cli::try_parse_from(args) {
            Ok(cli) => cli,
            Err(e) => panic!("{args:?} should parse: {e}"),
        }
    }

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn globals_before_and_after_the_subcommand() {
        let before = parse(&[
            "wormholectl",
            "--relay-url",
            "ws://a/v1",
            "--appid",
            "x",
            "--json",
            "send",
            "--text",
            "hi",
        ]);
        let after = parse(&[
            "wormholectl",
            "send",
            "--relay-url",
            "ws://a/v1",
            "--text",
            "hi",
            "--appid=x",
            "--json",
        ]);
        for cli in [before, after] {
            assert_eq!(cli.global.relay_url.as_deref(), Some("ws://a/v1"));
            assert_eq!(cli.global.appid.as_deref(), Some("x"));
            assert!(cli.global.json);
            let Command::Send(send) = cli.command else {
                panic!("send expected")
            };
            assert_eq!(send.text.as_deref(), Some("hi"));
        }
        let receive = parse(&[
            "wormholectl",
            "receive",
            "--relay-url",
            "ws://b/v1",
            "4-a-b",
        ]);
        assert_eq!(receive.global.relay_url.as_deref(), Some("ws://b/v1"));
        let Command::Receive(args) = receive.command else {
            panic!("receive expected")
        };
        assert_eq!(args.code.as_deref(), Some("4-a-b"));
        assert!(!args.verify);
    }

    #[test]
    fn send_flags() {
        let cli = parse(&[
            "wormholectl",
            "send",
            "-c",
            "3",
            "--verify",
            "--code",
            "7-guitarist-revenge",
            "--text",
            "-",
        ]);
        let Command::Send(send) = cli.command else {
            panic!("send expected")
        };
        assert_eq!(send.code_length, Some(3));
        assert!(send.verify);
        assert_eq!(send.code.as_deref(), Some("7-guitarist-revenge"));
        assert_eq!(send.text.as_deref(), Some("-"));
        assert_eq!(send.what, None);

        let cli = parse(&["wormholectl", "tx", "--code-length", "4", "-v", "notes.txt"]);
        let Command::Send(send) = cli.command else {
            panic!("send expected")
        };
        assert_eq!(send.code_length, Some(4));
        assert!(send.verify);
        assert_eq!(send.what, Some(PathBuf::from("notes.txt")));

        let text_like_a_flag = parse(&["wormholectl", "send", "--text", "-v"]);
        let Command::Send(send) = text_like_a_flag.command else {
            panic!("send expected")
        };
        assert_eq!(send.text.as_deref(), Some("-v"), "the text is taken as is");
    }

    #[test]
    fn receive_and_admin_commands() {
        let cli = parse(&["wormholectl", "rx", "-v"]);
        let Command::Receive(args) = cli.command else {
            panic!("receive expected")
        };
        assert!(args.verify);
        assert_eq!(args.code, None);
        assert!(matches!(
            parse(&["wormholectl", "cancel", "12"]).command,
            Command::Cancel { id: 12 }
        ));
        assert!(matches!(
            parse(&["wormholectl", "--json", "list"]).command,
            Command::List
        ));
        assert!(matches!(
            parse(&["wormholectl", "shutdown"]).command,
            Command::Shutdown
        ));
        assert!(matches!(
            parse(&["wormholectl", "config"]).command,
            Command::Config
        ));
        assert!(matches!(
            parse(&["wormholectl", "dilate", "watch", "3"]).command,
            Command::Dilate {
                command: DilateCommand::Watch { id: Some(3) }
            }
        ));
        assert!(matches!(
            parse(&["wormholectl", "--json", "dilate", "watch"]).command,
            Command::Dilate {
                command: DilateCommand::Watch { id: None }
            }
        ));
    }

    #[test]
    fn file_flags() {
        let cli = parse(&[
            "wormholectl",
            "--transit-helper",
            "tcp:127.0.0.1:4001",
            "send",
            "--no-listen",
            "--hide-progress",
            "report.pdf",
        ]);
        assert_eq!(
            cli.global.transit_helper.as_deref(),
            Some("tcp:127.0.0.1:4001")
        );
        let Command::Send(send) = cli.command else {
            panic!("send expected")
        };
        assert!(send.data.no_listen && send.data.hide_progress);
        assert_eq!(send.what, Some(PathBuf::from("report.pdf")));
        let cli = parse(&[
            "wormholectl",
            "receive",
            "--accept-file",
            "-o",
            "out",
            "--no-listen",
            "4-a-b",
        ]);
        let Command::Receive(args) = cli.command else {
            panic!("receive expected")
        };
        assert!(args.accept_file && args.data.no_listen);
        assert_eq!(args.output_file, Some(PathBuf::from("out")));
        assert!(Cli::try_parse_from(["wormholectl", "send", "--text", "x", "f"]).is_err());
    }

    #[test]
    fn usage_errors() {
        for args in [
            &["wormholectl"][..],
            &["wormholectl", "send", "--code-length", "many"],
            &["wormholectl", "cancel", "x"],
            &["wormholectl", "receive", "a", "b"],
            &["wormholectl", "frobnicate"],
        ] {
            let err = Cli::try_parse_from(args).expect_err("usage error");
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn environment_variables_of_the_python_cli() {
        let command = Cli::command();
        let env_of = |id: &str| {
            command
                .get_arguments()
                .find(|a| a.get_id() == id)
                .and_then(|a| a.get_env())
                .and_then(|e| e.to_str())
                .map(str::to_owned)
        };
        assert_eq!(env_of("relay_url").as_deref(), Some("WORMHOLE_RELAY_URL"));
        assert_eq!(env_of("appid").as_deref(), Some("WORMHOLE_APPID"));
    }

    #[test]
    fn only_given_options_go_into_requests() {
        let cli = parse(&["wormholectl", "send", "--text", "x"]);
        // The environment of the test process may set them; compare with it.
        let expected = WormholeOptions {
            relay_url: std::env::var("WORMHOLE_RELAY_URL").ok(),
            appid: std::env::var("WORMHOLE_APPID").ok(),
        };
        assert_eq!(cli.global.wormhole_options(), expected);
        let cli = parse(&["wormholectl", "--appid", "a", "send", "--text", "x"]);
        assert_eq!(cli.global.wormhole_options().appid.as_deref(), Some("a"));
    }
}
