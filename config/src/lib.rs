//! wormholed configuration: one TOML file, environment overrides, XDG paths.
//!
//! The file is `<XDG config dir>/wormholed/config.toml` (on Linux `~/.config/wormholed/config.toml`),
//! or the path in `WORMHOLED_CONFIG`. A missing default file is fine (everything has a default); a
//! missing `WORMHOLED_CONFIG` file is an error. Environment variables override the file; command-line
//! flags (applied by the caller) override both. `config/config.example.toml` documents every key.
//!
//! | key                       | default                                      | environment                |
//! |---------------------------|----------------------------------------------|----------------------------|
//! | `mailbox.url`             | `ws://relay.magic-wormhole.io:4000/v1`       | `WORMHOLE_RELAY_URL`       |
//! | `mailbox.appid`           | `lothar.com/wormhole/text-or-file-xfer`      | `WORMHOLE_APPID`           |
//! | `mailbox.code_length`     | `2`                                          | `WORMHOLE_CODE_LENGTH`     |
//! | `transit.relay`           | `tcp:transit.magic-wormhole.io:4001`         | `WORMHOLE_TRANSIT_HELPER`  |
//! | `transit.hint_addresses`  | `[]` (every local address)                   | `WORMHOLED_HINT_ADDRESSES` |
//! | `transit.listen`          | `true`                                       | –                          |
//! | `transit.idle_timeout`    | `300` (seconds)                              | `WORMHOLED_IDLE_TIMEOUT`   |
//! | `daemon.socket`           | `$XDG_RUNTIME_DIR/wormholed/control.sock`    | `WORMHOLED_SOCKET`         |
//!
//! An empty environment variable counts as unset. Unknown keys and bad values are errors that name
//! the file (or variable) and the key.
//!
//! ```no_run
//! let cfg = wormhole_config::Config::load()?;
//! println!("mailbox {} (from {})", cfg.mailbox.url.value, cfg.mailbox.url.source);
//! # Ok::<(), wormhole_config::ConfigError>(())
//! ```

use std::borrow::Borrow;
use std::fmt;
use std::io;
use std::net::{IpAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use directories::ProjectDirs;
use serde::Deserialize;
use wormhole_protocol::transit::hints::RelayHint;

/// Environment variable naming the config file, instead of the XDG default.
pub const ENV_CONFIG: &str = "WORMHOLED_CONFIG";
/// Environment override of `mailbox.url` (the Python CLI's variable).
pub const ENV_RELAY_URL: &str = "WORMHOLE_RELAY_URL";
/// Environment override of `mailbox.appid`.
pub const ENV_APPID: &str = "WORMHOLE_APPID";
/// Environment override of `mailbox.code_length`.
pub const ENV_CODE_LENGTH: &str = "WORMHOLE_CODE_LENGTH";
/// Environment override of `transit.relay` (the Python CLI's variable).
pub const ENV_TRANSIT_HELPER: &str = "WORMHOLE_TRANSIT_HELPER";
/// Environment override of `transit.hint_addresses`, comma-separated.
pub const ENV_HINT_ADDRESSES: &str = "WORMHOLED_HINT_ADDRESSES";
/// Environment override of `transit.idle_timeout`, in seconds.
pub const ENV_IDLE_TIMEOUT: &str = "WORMHOLED_IDLE_TIMEOUT";
/// Environment override of `daemon.socket`.
pub const ENV_SOCKET: &str = "WORMHOLED_SOCKET";

/// Default `mailbox.url`: the public mailbox server.
pub const DEFAULT_MAILBOX_URL: &str = "ws://relay.magic-wormhole.io:4000/v1";
/// Default `mailbox.appid`: the Python CLI's file and text transfer.
pub const DEFAULT_APPID: &str = "lothar.com/wormhole/text-or-file-xfer";
/// Default `mailbox.code_length`: two words.
pub const DEFAULT_CODE_LENGTH: usize = 2;
/// Default `transit.relay`: the public transit relay.
pub const DEFAULT_TRANSIT_RELAY: &str = "tcp:transit.magic-wormhole.io:4001";

/// Default `transit.idle_timeout`: five minutes without a byte moving either way.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 300;

/// The application name used for the XDG directories.
const APP: &str = "wormholed";
/// The socket's file name inside the runtime directory.
const SOCKET_NAME: &str = "control.sock";

/// Where an effective value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The built-in default.
    Default,
    /// The config file at this path.
    File(PathBuf),
    /// This environment variable.
    Env(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::File(path) => write!(f, "file {}", path.display()),
            Self::Env(name) => write!(f, "env {name}"),
        }
    }
}

/// One effective value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting<T> {
    /// The value to use.
    pub value: T,
    /// Where it came from.
    pub source: Source,
}

impl<T> Setting<T> {
    fn default(value: T) -> Self {
        Self {
            value,
            source: Source::Default,
        }
    }
}

/// The effective configuration: defaults, overridden by the file, overridden by the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The config file that was read, if any.
    pub file: Option<PathBuf>,
    /// `[mailbox]`: the rendezvous server and codes.
    pub mailbox: MailboxConfig,
    /// `[transit]`: how file data travels.
    pub transit: TransitConfig,
    /// `[daemon]`: the wormholed process.
    pub daemon: DaemonConfig,
}

/// `[mailbox]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxConfig {
    /// `url`: WebSocket URL of the mailbox (rendezvous) server, `ws://` or `wss://`.
    /// Default [`DEFAULT_MAILBOX_URL`]; env `WORMHOLE_RELAY_URL`.
    pub url: Setting<String>,
    /// `appid`: application id; both sides must use the same one.
    /// Default [`DEFAULT_APPID`]; env `WORMHOLE_APPID`.
    pub appid: Setting<String>,
    /// `code_length`: number of words in a generated code, at least 1.
    /// Default [`DEFAULT_CODE_LENGTH`]; env `WORMHOLE_CODE_LENGTH`.
    pub code_length: Setting<usize>,
}

/// `[transit]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitConfig {
    /// `relay`: the transit relay, `tcp:HOST:PORT` (optionally `:priority=F`), as the Python
    /// CLI's `--transit-helper`. Default [`DEFAULT_TRANSIT_RELAY`]; env `WORMHOLE_TRANSIT_HELPER`.
    pub relay: Setting<String>,
    /// `hint_addresses`: the addresses advertised as direct hints, IPs or host names, as written
    /// (see [`TransitConfig::resolve_hint_addresses`]). Empty (the default) means every local
    /// address. Env `WORMHOLED_HINT_ADDRESSES`, comma-separated.
    pub hint_addresses: Setting<Vec<String>>,
    /// `listen`: whether to listen for direct connections (`false` is the Python CLI's
    /// `--no-listen`). Default `true`.
    pub listen: Setting<bool>,
    /// `idle_timeout`: seconds a file transfer may go without a byte moving in either
    /// direction before it fails (a stalled or vanished peer), at least 1.
    /// Default [`DEFAULT_IDLE_TIMEOUT_SECS`]; env `WORMHOLED_IDLE_TIMEOUT`.
    pub idle_timeout: Setting<u64>,
}

impl TransitConfig {
    /// The addresses of `hint_addresses` for the daemon to advertise: an IP as it is, a host name
    /// resolved (`name:0` through the system resolver) to every address it has, in the
    /// resolver's order, without repeats. Called once, when wormholed starts; a name that does
    /// not resolve is an error naming the key and the file or variable it came from.
    pub fn resolve_hint_addresses(&self) -> Result<Vec<IpAddr>, ConfigError> {
        self.resolve_hint_addresses_with(&|name| {
            (name, 0)
                .to_socket_addrs()
                .map(|found| found.map(|addr| addr.ip()).collect())
        })
    }

    /// As [`TransitConfig::resolve_hint_addresses`], with `resolve` in place of the system
    /// resolver (for host names only; IPs are parsed).
    pub fn resolve_hint_addresses_with(
        &self,
        resolve: &dyn Fn(&str) -> io::Result<Vec<IpAddr>>,
    ) -> Result<Vec<IpAddr>, ConfigError> {
        let mut out: Vec<IpAddr> = Vec::new();
        for address in &self.hint_addresses.value {
            let found = match address.parse::<IpAddr>() {
                Ok(ip) => vec![ip],
                Err(_) => match resolve(address) {
                    Ok(found) if !found.is_empty() => found,
                    Ok(_) => return Err(self.unresolved(address, "it has no address")),
                    Err(e) => return Err(self.unresolved(address, &e.to_string())),
                },
            };
            for ip in found {
                if !out.contains(&ip) {
                    out.push(ip);
                }
            }
        }
        Ok(out)
    }

    /// The error for a host name of `hint_addresses` that does not resolve.
    fn unresolved(&self, name: &str, why: &str) -> ConfigError {
        ConfigError::Unresolved {
            origin: self.hint_addresses.source.clone(),
            key: "transit.hint_addresses".to_owned(),
            name: name.to_owned(),
            message: why.to_owned(),
        }
    }
}

/// `[daemon]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonConfig {
    /// `socket`: absolute path of the control socket. Default `control.sock` in
    /// `$XDG_RUNTIME_DIR/wormholed/`, else in the XDG state directory, else in
    /// `/tmp/wormholed-<uid>/`. Env `WORMHOLED_SOCKET`.
    pub socket: Setting<PathBuf>,
}

/// Why the configuration cannot be loaded. Every variant names the file or variable at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file cannot be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: io::Error,
    },
    /// The config file is not valid TOML.
    #[error("config file {}: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The TOML parser's message, with line and column.
        message: String,
    },
    /// The config file has a key (or table) we do not know.
    #[error("config file {}: unknown key `{key}` (expected one of: {expected})", path.display())]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The dotted key, e.g. `mailbox.urll`.
        key: String,
        /// The keys allowed at that place, comma-separated.
        expected: String,
    },
    /// A key of the config file has a value of the wrong type or out of range.
    #[error("config file {}: bad value for `{key}`: {message}", path.display())]
    BadValue {
        /// The file.
        path: PathBuf,
        /// The dotted key, e.g. `mailbox.code_length`.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A host name of `transit.hint_addresses` does not resolve (checked when wormholed starts).
    #[error("{origin}: `{key}`: host name {name:?} does not resolve: {message}")]
    Unresolved {
        /// Where the name was configured: the file or the environment variable.
        origin: Source,
        /// The dotted key, `transit.hint_addresses`.
        key: String,
        /// The host name.
        name: String,
        /// The resolver's answer.
        message: String,
    },
    /// An environment variable has a bad value.
    #[error("environment variable {name}={value:?}: {message}")]
    BadEnv {
        /// The variable.
        name: String,
        /// Its value.
        value: String,
        /// What is wrong.
        message: String,
    },
}

impl Config {
    /// Loads the configuration from the process environment and the config file it names
    /// (`WORMHOLED_CONFIG`, else [`Config::default_path`] if that file exists).
    pub fn load() -> Result<Self, ConfigError> {
        Self::load_with_env(&|name| std::env::var(name).ok())
    }

    /// As [`Config::load`], with `env` in place of the process environment.
    pub fn load_with_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        match non_empty(env, ENV_CONFIG) {
            Some(path) => Self::load_from(Some(Path::new(&path)), env),
            None => {
                let path = Self::default_path().filter(|path| path.exists());
                Self::load_from(path.as_deref(), env)
            }
        }
    }

    /// Loads the configuration from the file `path` (none if `None`; the file must exist) and the
    /// environment `env`. `WORMHOLED_CONFIG` is not consulted here.
    pub fn load_from(
        path: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut config = Self::defaults();
        if let Some(path) = path {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            config.apply_file(path, &text)?;
            config.file = Some(path.to_owned());
        }
        config.apply_env(env)?;
        Ok(config)
    }

    /// The built-in defaults.
    pub fn defaults() -> Self {
        Self {
            file: None,
            mailbox: MailboxConfig {
                url: Setting::default(DEFAULT_MAILBOX_URL.to_owned()),
                appid: Setting::default(DEFAULT_APPID.to_owned()),
                code_length: Setting::default(DEFAULT_CODE_LENGTH),
            },
            transit: TransitConfig {
                relay: Setting::default(DEFAULT_TRANSIT_RELAY.to_owned()),
                hint_addresses: Setting::default(Vec::new()),
                listen: Setting::default(true),
                idle_timeout: Setting::default(DEFAULT_IDLE_TIMEOUT_SECS),
            },
            daemon: DaemonConfig {
                socket: Setting::default(default_socket()),
            },
        }
    }

    /// `<XDG config dir>/wormholed/config.toml`, if a home directory is known.
    pub fn default_path() -> Option<PathBuf> {
        ProjectDirs::from("", "", APP).map(|dirs| dirs.config_dir().join("config.toml"))
    }

    /// The daemon's own state folder (`$XDG_STATE_HOME/wormholed`, else the local data folder),
    /// if a home directory is known.
    pub fn state_dir() -> Option<PathBuf> {
        ProjectDirs::from("", "", APP).map(|dirs| {
            dirs.state_dir()
                .unwrap_or_else(|| dirs.data_local_dir())
                .to_path_buf()
        })
    }

    /// Every effective value as `(key, value, source)`, in file order, for `wormholectl config`.
    pub fn describe(&self) -> Vec<(&'static str, String, String)> {
        fn row<T>(
            key: &'static str,
            setting: &Setting<T>,
            show: impl Fn(&T) -> String,
        ) -> (&'static str, String, String) {
            (key, show(&setting.value), setting.source.to_string())
        }
        let string = |s: &String| s.clone();
        vec![
            row("mailbox.url", &self.mailbox.url, string),
            row("mailbox.appid", &self.mailbox.appid, string),
            row(
                "mailbox.code_length",
                &self.mailbox.code_length,
                usize::to_string,
            ),
            row("transit.relay", &self.transit.relay, string),
            row(
                "transit.hint_addresses",
                &self.transit.hint_addresses,
                |list| {
                    if list.is_empty() {
                        "(all local addresses)".to_owned()
                    } else {
                        list.join(",")
                    }
                },
            ),
            row("transit.listen", &self.transit.listen, bool::to_string),
            row("transit.idle_timeout", &self.transit.idle_timeout, |secs| {
                format!("{secs} s")
            }),
            row("daemon.socket", &self.daemon.socket, |path| {
                path.display().to_string()
            }),
        ]
    }

    fn apply_file(&mut self, path: &Path, text: &str) -> Result<(), ConfigError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let file = FileContext { path };
        const SECTIONS: [&str; 3] = ["mailbox", "transit", "daemon"];
        for (name, value) in table {
            if !SECTIONS.contains(&name.as_str()) {
                return Err(file.unknown(name, &SECTIONS));
            }
            let toml::Value::Table(section) = value else {
                return Err(file.bad(&name, format!("must be a table, e.g. [{name}]")));
            };
            match name.as_str() {
                "mailbox" => self.apply_mailbox(&file, section)?,
                "transit" => self.apply_transit(&file, section)?,
                _ => self.apply_daemon(&file, section)?,
            }
        }
        Ok(())
    }

    fn apply_mailbox(
        &mut self,
        file: &FileContext<'_>,
        table: toml::Table,
    ) -> Result<(), ConfigError> {
        for (name, value) in table {
            let key = format!("mailbox.{name}");
            match name.as_str() {
                "url" => self.mailbox.url = file.setting(&key, value, check_mailbox_url)?,
                "appid" => self.mailbox.appid = file.setting(&key, value, check_non_empty)?,
                "code_length" => {
                    self.mailbox.code_length = file.setting(&key, value, check_code_length)?;
                }
                _ => return Err(file.unknown(key, &["url", "appid", "code_length"])),
            }
        }
        Ok(())
    }

    fn apply_transit(
        &mut self,
        file: &FileContext<'_>,
        table: toml::Table,
    ) -> Result<(), ConfigError> {
        for (name, value) in table {
            let key = format!("transit.{name}");
            match name.as_str() {
                "relay" => self.transit.relay = file.setting(&key, value, check_relay)?,
                "hint_addresses" => {
                    self.transit.hint_addresses = file.setting(&key, value, check_addresses)?;
                }
                "listen" => self.transit.listen = file.setting(&key, value, |_: &bool| Ok(()))?,
                "idle_timeout" => {
                    self.transit.idle_timeout = file.setting(&key, value, check_idle_timeout)?;
                }
                _ => {
                    return Err(
                        file.unknown(key, &["relay", "hint_addresses", "listen", "idle_timeout"])
                    )
                }
            }
        }
        Ok(())
    }

    fn apply_daemon(
        &mut self,
        file: &FileContext<'_>,
        table: toml::Table,
    ) -> Result<(), ConfigError> {
        for (name, value) in table {
            let key = format!("daemon.{name}");
            match name.as_str() {
                "socket" => self.daemon.socket = file.setting(&key, value, check_socket)?,
                _ => return Err(file.unknown(key, &["socket"])),
            }
        }
        Ok(())
    }

    fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let text = |value: &str| Ok(value.to_owned());
        override_from(
            env,
            ENV_RELAY_URL,
            &mut self.mailbox.url,
            text,
            check_mailbox_url,
        )?;
        override_from(
            env,
            ENV_APPID,
            &mut self.mailbox.appid,
            text,
            check_non_empty,
        )?;
        override_from(
            env,
            ENV_CODE_LENGTH,
            &mut self.mailbox.code_length,
            |value| {
                value
                    .trim()
                    .parse::<usize>()
                    .map_err(|_| "must be a whole number, at least 1".to_owned())
            },
            check_code_length,
        )?;
        override_from(
            env,
            ENV_TRANSIT_HELPER,
            &mut self.transit.relay,
            text,
            check_relay,
        )?;
        override_from(
            env,
            ENV_HINT_ADDRESSES,
            &mut self.transit.hint_addresses,
            |value| {
                Ok(value
                    .split(',')
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(str::to_owned)
                    .collect())
            },
            check_addresses,
        )?;
        override_from(
            env,
            ENV_IDLE_TIMEOUT,
            &mut self.transit.idle_timeout,
            |value| {
                value
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| "must be a whole number of seconds, at least 1".to_owned())
            },
            check_idle_timeout,
        )?;
        override_from(
            env,
            ENV_SOCKET,
            &mut self.daemon.socket,
            |value| Ok(PathBuf::from(value)),
            check_socket,
        )?;
        Ok(())
    }
}

/// The file being applied, for error messages.
struct FileContext<'a> {
    path: &'a Path,
}

impl FileContext<'_> {
    /// Converts `value` to `T` and checks it; the setting's source is this file.
    fn setting<T, U>(
        &self,
        key: &str,
        value: toml::Value,
        check: impl Fn(&U) -> Result<(), String>,
    ) -> Result<Setting<T>, ConfigError>
    where
        T: for<'de> Deserialize<'de> + Borrow<U>,
        U: ?Sized,
    {
        let value = T::deserialize(value).map_err(|e| self.bad(key, e.message().to_owned()))?;
        check(value.borrow()).map_err(|message| self.bad(key, message))?;
        Ok(Setting {
            value,
            source: Source::File(self.path.to_owned()),
        })
    }

    fn bad(&self, key: &str, message: String) -> ConfigError {
        ConfigError::BadValue {
            path: self.path.to_owned(),
            key: key.to_owned(),
            message,
        }
    }

    fn unknown(&self, key: String, expected: &[&str]) -> ConfigError {
        ConfigError::UnknownKey {
            path: self.path.to_owned(),
            key,
            expected: expected.join(", "),
        }
    }
}

/// Replaces `setting` by the parsed and checked value of the environment variable `name`, if set.
fn override_from<T: Borrow<U>, U: ?Sized>(
    env: &dyn Fn(&str) -> Option<String>,
    name: &str,
    setting: &mut Setting<T>,
    parse: impl Fn(&str) -> Result<T, String>,
    check: impl Fn(&U) -> Result<(), String>,
) -> Result<(), ConfigError> {
    let Some(raw) = non_empty(env, name) else {
        return Ok(());
    };
    let bad = |message: String| ConfigError::BadEnv {
        name: name.to_owned(),
        value: raw.clone(),
        message,
    };
    let value = parse(&raw).map_err(bad)?;
    check(value.borrow()).map_err(bad)?;
    *setting = Setting {
        value,
        source: Source::Env(name.to_owned()),
    };
    Ok(())
}

/// The variable's value, `None` if unset or empty.
fn non_empty(env: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    env(name).filter(|value| !value.is_empty())
}

fn check_mailbox_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("wss://"))
        .ok_or("must be a ws:// or wss:// URL, e.g. ws://relay.magic-wormhole.io:4000/v1")?;
    if rest.is_empty() || rest.starts_with('/') || url.chars().any(char::is_whitespace) {
        return Err("must be a ws:// or wss:// URL with a host".to_owned());
    }
    Ok(())
}

fn check_non_empty(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".to_owned());
    }
    Ok(())
}

fn check_code_length(length: &usize) -> Result<(), String> {
    if *length == 0 {
        return Err("must be at least 1".to_owned());
    }
    Ok(())
}

/// `tcp:HOST:PORT[:priority=F]`, as the Python CLI's `--transit-helper`; IPv6 hosts in brackets.
/// Checked by the parser the daemon uses ([`RelayHint::from_argv`]), so that a relay accepted here
/// is one that Transit and Dilation can use.
fn check_relay(relay: &str) -> Result<(), String> {
    RelayHint::from_argv(relay).map(drop).map_err(|e| {
        format!("{e}: must look like tcp:HOST:PORT, e.g. tcp:transit.magic-wormhole.io:4001")
    })
}

fn check_addresses(addresses: &[String]) -> Result<(), String> {
    match addresses
        .iter()
        .find(|a| a.is_empty() || a.chars().any(|c| c.is_whitespace() || c == ','))
    {
        Some(bad) => Err(format!("{bad:?} is not an address or host name")),
        None => Ok(()),
    }
}

fn check_idle_timeout(secs: &u64) -> Result<(), String> {
    if *secs == 0 {
        return Err("must be at least 1 second".to_owned());
    }
    Ok(())
}

fn check_socket(path: &Path) -> Result<(), String> {
    if !path.is_absolute() {
        return Err(format!("{} is not an absolute path", path.display()));
    }
    Ok(())
}

/// `control.sock` in the runtime directory, else the state directory, else `/tmp/wormholed-<uid>`.
fn default_socket() -> PathBuf {
    let dirs = ProjectDirs::from("", "", APP);
    dirs.as_ref()
        .and_then(|dirs| dirs.runtime_dir().or_else(|| dirs.state_dir()))
        .map_or_else(
            || Path::new("/tmp").join(format!("{APP}-{}", own_uid())),
            Path::to_path_buf,
        )
        .join(SOCKET_NAME)
}

/// Our effective uid: the one lookup of it for the socket paths here, the daemon's peer checks
/// and wormholectl's check of the daemon.
pub fn own_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::io::Write;

    use super::*;

    #[test]
    fn own_uid_is_the_owner_of_our_process() {
        use std::os::unix::fs::MetadataExt;
        let proc_self = std::fs::metadata("/proc/self").expect("/proc/self");
        assert_eq!(own_uid(), proc_self.uid());
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn file_with(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(text.as_bytes()).expect("write temp file");
        file
    }

    fn load(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let file = file_with(text);
        Config::load_from(Some(file.path()), env)
    }

    #[test]
    fn defaults() {
        let cfg = Config::load_from(None, &no_env).expect("defaults load");
        assert_eq!(cfg, Config::defaults());
        assert_eq!(cfg.file, None);
        assert_eq!(
            cfg.mailbox.url.value,
            "ws://relay.magic-wormhole.io:4000/v1"
        );
        assert_eq!(cfg.mailbox.url.source, Source::Default);
        assert_eq!(
            cfg.mailbox.appid.value,
            "lothar.com/wormhole/text-or-file-xfer"
        );
        assert_eq!(cfg.mailbox.code_length.value, 2);
        assert_eq!(
            cfg.transit.relay.value,
            "tcp:transit.magic-wormhole.io:4001"
        );
        assert!(cfg.transit.hint_addresses.value.is_empty());
        assert!(cfg.transit.listen.value);
        assert!(cfg.daemon.socket.value.is_absolute());
        assert!(cfg.daemon.socket.value.ends_with("control.sock"));
        assert_eq!(cfg.daemon.socket.source, Source::Default);
    }

    /// The example file is valid and states the defaults.
    #[test]
    fn example_file_matches_defaults() {
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml");
        let text = std::fs::read_to_string(example).expect("example file");
        assert_eq!(
            load(&text, &no_env).expect("loads as is").mailbox,
            Config::defaults().mailbox
        );
        // Uncomment the `# key = value` lines.
        let is_key = |line: &str| {
            line.split_once(" = ")
                .is_some_and(|(key, _)| key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        };
        let uncommented: String = text
            .lines()
            .map(|line| {
                line.strip_prefix("# ")
                    .filter(|l| is_key(l))
                    .unwrap_or(line)
            })
            .map(|line| format!("{line}\n"))
            .collect();
        assert_eq!(
            uncommented.lines().filter(|l| is_key(l)).count(),
            8,
            "{uncommented}"
        );
        let cfg = load(&uncommented, &no_env).expect("example loads");
        let defaults = Config::defaults();
        assert_eq!(cfg.mailbox.url.value, defaults.mailbox.url.value);
        assert_eq!(cfg.mailbox.appid.value, defaults.mailbox.appid.value);
        assert_eq!(
            cfg.mailbox.code_length.value,
            defaults.mailbox.code_length.value
        );
        assert_eq!(cfg.transit.relay.value, defaults.transit.relay.value);
        assert_eq!(
            cfg.transit.hint_addresses.value,
            defaults.transit.hint_addresses.value
        );
        assert_eq!(cfg.transit.listen.value, defaults.transit.listen.value);
        assert_eq!(
            cfg.transit.idle_timeout.value,
            defaults.transit.idle_timeout.value
        );
        assert!(
            matches!(cfg.transit.listen.source, Source::File(_)),
            "{uncommented}"
        );
    }

    #[test]
    fn file_overrides_defaults() {
        let file = file_with(
            r#"
            [mailbox]
            url = "wss://mailbox.example:443/v1"
            code_length = 3

            [transit]
            relay = "tcp:relay.example:4001:priority=2.0"
            hint_addresses = ["192.0.2.1", "wormhole.example"]
            listen = false

            [daemon]
            socket = "/run/user/1000/w/control.sock"
            "#,
        );
        let cfg = Config::load_from(Some(file.path()), &no_env).expect("file loads");
        let from_file = Source::File(file.path().to_owned());
        assert_eq!(cfg.file.as_deref(), Some(file.path()));
        assert_eq!(cfg.mailbox.url.value, "wss://mailbox.example:443/v1");
        assert_eq!(cfg.mailbox.url.source, from_file);
        assert_eq!(cfg.mailbox.code_length.value, 3);
        assert_eq!(
            cfg.mailbox.appid,
            Setting::default(DEFAULT_APPID.to_owned())
        );
        assert_eq!(
            cfg.transit.relay.value,
            "tcp:relay.example:4001:priority=2.0"
        );
        assert_eq!(
            cfg.transit.hint_addresses.value,
            ["192.0.2.1", "wormhole.example"]
        );
        assert_eq!(cfg.transit.hint_addresses.source, from_file);
        assert!(!cfg.transit.listen.value);
        assert_eq!(
            cfg.daemon.socket.value,
            Path::new("/run/user/1000/w/control.sock")
        );
        assert_eq!(cfg.daemon.socket.source, from_file);
    }

    /// `hint_addresses` keeps IPs as they are and resolves host names (`localhost` through the
    /// system resolver, which answers it from the hosts file); the list of a file is resolved
    /// in order, without repeats.
    #[test]
    fn hint_addresses_resolve_ips_and_host_names() {
        let cfg = load(
            "[transit]\nhint_addresses = [\"192.0.2.1\", \"fe80::1\", \"localhost\"]\n",
            &no_env,
        )
        .expect("loads");
        let resolved = cfg
            .transit
            .resolve_hint_addresses()
            .expect("localhost resolves");
        assert_eq!(
            &resolved[..2],
            ["192.0.2.1", "fe80::1"].map(|a| a.parse::<IpAddr>().expect("ip"))
        );
        assert!(resolved.len() > 2, "localhost has an address: {resolved:?}");
        assert!(
            resolved[2..].iter().all(IpAddr::is_loopback),
            "{resolved:?}"
        );
        assert!(Config::defaults()
            .transit
            .resolve_hint_addresses()
            .expect("nothing to resolve")
            .is_empty());
        let both: IpAddr = "2001:db8::7".parse().expect("ip");
        let fake = |name: &str| match name {
            "wormhole.example" => Ok(vec![both, "192.0.2.7".parse().expect("ip")]),
            _ => Err(io::Error::other("no such host")),
        };
        let cfg = load(
            "[transit]\nhint_addresses = [\"wormhole.example\", \"2001:db8::7\"]\n",
            &no_env,
        )
        .expect("loads");
        assert_eq!(
            cfg.transit
                .resolve_hint_addresses_with(&fake)
                .expect("resolves"),
            [both, "192.0.2.7".parse().expect("ip")]
        );
    }

    /// A host name of `hint_addresses` that does not resolve (or has no address) is an error
    /// naming the key, the name and where it came from, instead of being dropped.
    #[test]
    fn an_unresolvable_hint_address_is_an_error() {
        let fake = |name: &str| match name {
            "empty.example" => Ok(Vec::new()),
            _ => Err(io::Error::other("no such host")),
        };
        let file = file_with("[transit]\nhint_addresses = [\"192.0.2.1\", \"nowhere.example\"]\n");
        let cfg = Config::load_from(Some(file.path()), &no_env).expect("loads");
        let err = cfg
            .transit
            .resolve_hint_addresses_with(&fake)
            .expect_err("does not resolve");
        let message = err.to_string();
        for part in [
            "transit.hint_addresses",
            "\"nowhere.example\"",
            "no such host",
            &file.path().display().to_string(),
        ] {
            assert!(
                message.contains(part),
                "{message:?} should mention {part:?}"
            );
        }
        let env = env_of(&[(ENV_HINT_ADDRESSES, "empty.example")]);
        let cfg = Config::load_from(None, &env).expect("loads");
        let message = cfg
            .transit
            .resolve_hint_addresses_with(&fake)
            .expect_err("no address")
            .to_string();
        assert!(message.contains(ENV_HINT_ADDRESSES), "{message}");
        assert!(message.contains("\"empty.example\""), "{message}");
    }

    #[test]
    fn empty_file_is_defaults() {
        let cfg = load("# nothing\n\n[mailbox]\n", &no_env).expect("loads");
        assert_eq!(cfg.mailbox, Config::defaults().mailbox);
        assert!(cfg.file.is_some());
    }

    #[test]
    fn env_overrides_file() {
        let env = env_of(&[
            (ENV_RELAY_URL, "ws://127.0.0.1:4000/v1"),
            (ENV_APPID, "example.com/test"),
            (ENV_CODE_LENGTH, "4"),
            (ENV_TRANSIT_HELPER, "tcp:[::1]:4001"),
            (ENV_HINT_ADDRESSES, " 10.0.0.1, ,fe80::1,"),
            (ENV_SOCKET, "/tmp/x/control.sock"),
        ]);
        let cfg = load(
            "[mailbox]\nurl = \"ws://file:1/v1\"\ncode_length = 3\n[transit]\nlisten = false\n",
            &env,
        )
        .expect("loads");
        assert_eq!(cfg.mailbox.url.value, "ws://127.0.0.1:4000/v1");
        assert_eq!(cfg.mailbox.url.source, Source::Env(ENV_RELAY_URL.into()));
        assert_eq!(cfg.mailbox.appid.value, "example.com/test");
        assert_eq!(cfg.mailbox.code_length.value, 4);
        assert_eq!(
            cfg.mailbox.code_length.source,
            Source::Env(ENV_CODE_LENGTH.into())
        );
        assert_eq!(cfg.transit.relay.value, "tcp:[::1]:4001");
        assert_eq!(cfg.transit.hint_addresses.value, ["10.0.0.1", "fe80::1"]);
        assert!(
            !cfg.transit.listen.value,
            "no env for listen: the file wins"
        );
        assert!(matches!(cfg.transit.listen.source, Source::File(_)));
        assert_eq!(cfg.daemon.socket.value, Path::new("/tmp/x/control.sock"));
    }

    #[test]
    fn empty_env_is_unset() {
        let env = env_of(&[(ENV_RELAY_URL, ""), (ENV_CODE_LENGTH, "")]);
        let cfg = Config::load_from(None, &env).expect("loads");
        assert_eq!(cfg.mailbox, Config::defaults().mailbox);
    }

    #[test]
    fn env_bad_values() {
        for (name, value) in [
            (ENV_CODE_LENGTH, "two"),
            (ENV_CODE_LENGTH, "0"),
            (ENV_RELAY_URL, "http://example/v1"),
            (ENV_TRANSIT_HELPER, "transit.magic-wormhole.io:4001"),
            (ENV_TRANSIT_HELPER, "tcp:host:port"),
            (ENV_SOCKET, "relative/control.sock"),
        ] {
            match Config::load_from(None, &env_of(&[(name, value)])) {
                Err(e @ ConfigError::BadEnv { .. }) => {
                    let message = e.to_string();
                    assert!(
                        message.contains(name) && message.contains(value),
                        "{message}"
                    );
                }
                other => panic!("{name}={value}: expected BadEnv, got {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_key_names_key_and_file() {
        let file = file_with("[mailbox]\nurl = \"ws://a:1/v1\"\nurll = \"ws://typo/v1\"\n");
        let err = Config::load_from(Some(file.path()), &no_env).expect_err("unknown key");
        match &err {
            ConfigError::UnknownKey { path, key, .. } => {
                assert_eq!(path, file.path());
                assert_eq!(key, "mailbox.urll");
            }
            other => panic!("expected UnknownKey, got {other:?}"),
        }
        let message = err.to_string();
        assert!(
            message.contains(&file.path().display().to_string()),
            "{message}"
        );
        assert!(message.contains("mailbox.urll"), "{message}");
        assert!(
            message.contains("code_length"),
            "lists the known keys: {message}"
        );

        let err = load("[mailbx]\nurl = \"x\"\n", &no_env).expect_err("unknown table");
        assert!(
            matches!(&err, ConfigError::UnknownKey { key, .. } if key == "mailbx"),
            "{err}"
        );
        let err = load("idle_exit = 5\n", &no_env).expect_err("top-level key");
        assert!(
            matches!(&err, ConfigError::UnknownKey { key, .. } if key == "idle_exit"),
            "{err}"
        );
        let err = load("[daemon]\nidle_exit = 5\n", &no_env).expect_err("unknown key");
        assert!(
            matches!(&err, ConfigError::UnknownKey { key, .. } if key == "daemon.idle_exit"),
            "{err}"
        );
    }

    #[test]
    fn bad_type_names_key_and_file() {
        let file = file_with("[mailbox]\ncode_length = \"two\"\n");
        let err = Config::load_from(Some(file.path()), &no_env).expect_err("bad type");
        match &err {
            ConfigError::BadValue { path, key, message } => {
                assert_eq!(path, file.path());
                assert_eq!(key, "mailbox.code_length");
                assert!(message.contains("two"), "{message}");
            }
            other => panic!("expected BadValue, got {other:?}"),
        }
        let message = err.to_string();
        assert!(
            message.contains(&file.path().display().to_string()),
            "{message}"
        );
        assert!(message.contains("mailbox.code_length"), "{message}");

        for (text, key) in [
            ("[transit]\nlisten = \"yes\"\n", "transit.listen"),
            (
                "[transit]\nhint_addresses = \"10.0.0.1\"\n",
                "transit.hint_addresses",
            ),
            (
                "[transit]\nhint_addresses = [\"a b\"]\n",
                "transit.hint_addresses",
            ),
            (
                "[transit]\nrelay = \"transit.example:4001\"\n",
                "transit.relay",
            ),
            // What Transit and Dilation could not use is refused here, by their parser.
            (
                "[transit]\nrelay = \"tcp:transit.example:0\"\n",
                "transit.relay",
            ),
            (
                "[transit]\nrelay = \"tcp:transit.example:4001:priority=high\"\n",
                "transit.relay",
            ),
            ("[mailbox]\ncode_length = -1\n", "mailbox.code_length"),
            ("[mailbox]\ncode_length = 0\n", "mailbox.code_length"),
            ("[mailbox]\nurl = 4000\n", "mailbox.url"),
            ("[mailbox]\nurl = \"relay.example:4000\"\n", "mailbox.url"),
            ("[mailbox]\nappid = \"\"\n", "mailbox.appid"),
            ("[daemon]\nsocket = \"control.sock\"\n", "daemon.socket"),
            ("mailbox = 1\n", "mailbox"),
        ] {
            match load(text, &no_env) {
                Err(ConfigError::BadValue { key: k, .. }) => assert_eq!(k, key, "{text}"),
                other => panic!("{text}: expected BadValue, got {other:?}"),
            }
        }
    }

    #[test]
    fn syntax_error_names_file() {
        let file = file_with("[mailbox\nurl = \n");
        let err = Config::load_from(Some(file.path()), &no_env).expect_err("syntax");
        assert!(matches!(err, ConfigError::Syntax { .. }));
        let message = err.to_string();
        assert!(
            message.contains(&file.path().display().to_string()),
            "{message}"
        );
        assert!(message.contains("line 1"), "{message}");
    }

    #[test]
    fn missing_file_is_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("absent.toml");
        let err = Config::load_from(Some(&path), &no_env).expect_err("missing");
        assert!(matches!(err, ConfigError::Read { .. }));
        assert!(err.to_string().contains("absent.toml"));
    }

    /// `WORMHOLED_CONFIG` picks the file; the environment still overrides it.
    #[test]
    fn config_path_from_env() {
        let file = file_with("[mailbox]\nappid = \"from.file/x\"\ncode_length = 5\n");
        let path = file.path().display().to_string();
        let env = env_of(&[(ENV_CONFIG, &path), (ENV_CODE_LENGTH, "6")]);
        let cfg = Config::load_with_env(&env).expect("loads");
        assert_eq!(cfg.file.as_deref(), Some(file.path()));
        assert_eq!(cfg.mailbox.appid.value, "from.file/x");
        assert_eq!(cfg.mailbox.code_length.value, 6);

        let env = env_of(&[(ENV_CONFIG, "/nonexistent/wormholed.toml")]);
        assert!(matches!(
            Config::load_with_env(&env),
            Err(ConfigError::Read { .. })
        ));
    }

    #[test]
    fn describe_lists_every_key_with_its_source() {
        let file = file_with("[transit]\nlisten = false\n");
        let env = env_of(&[(ENV_APPID, "example.com/x")]);
        let cfg = Config::load_from(Some(file.path()), &env).expect("loads");
        let rows = cfg.describe();
        let keys: Vec<&str> = rows.iter().map(|(k, _, _)| *k).collect();
        assert_eq!(
            keys,
            [
                "mailbox.url",
                "mailbox.appid",
                "mailbox.code_length",
                "transit.relay",
                "transit.hint_addresses",
                "transit.listen",
                "transit.idle_timeout",
                "daemon.socket"
            ]
        );
        let row = |key: &str| {
            rows.iter()
                .find(|(k, _, _)| *k == key)
                .map(|(_, v, s)| (v.as_str(), s.as_str()))
        };
        assert_eq!(
            row("mailbox.url"),
            Some(("ws://relay.magic-wormhole.io:4000/v1", "default"))
        );
        assert_eq!(
            row("mailbox.appid"),
            Some(("example.com/x", "env WORMHOLE_APPID"))
        );
        assert_eq!(row("mailbox.code_length"), Some(("2", "default")));
        assert_eq!(
            row("transit.hint_addresses"),
            Some(("(all local addresses)", "default"))
        );
        let from_file = format!("file {}", file.path().display());
        assert_eq!(row("transit.listen"), Some(("false", from_file.as_str())));
        assert_eq!(row("transit.idle_timeout"), Some(("300 s", "default")));
    }

    #[test]
    fn idle_timeout_from_file_and_env() {
        let file = file_with("[transit]\nidle_timeout = 7\n");
        let cfg = Config::load_from(Some(file.path()), &no_env).expect("loads");
        assert_eq!(cfg.transit.idle_timeout.value, 7);
        let env = env_of(&[(ENV_IDLE_TIMEOUT, "2")]);
        let cfg = Config::load_from(Some(file.path()), &env).expect("loads");
        assert_eq!(cfg.transit.idle_timeout.value, 2);
        for bad in ["0", "-1", "soon"] {
            let env = env_of(&[(ENV_IDLE_TIMEOUT, bad)]);
            let err = Config::load_from(None, &env).expect_err(bad).to_string();
            assert!(err.contains(ENV_IDLE_TIMEOUT), "{err}");
        }
        let file = file_with("[transit]\nidle_timeout = 0\n");
        let err = Config::load_from(Some(file.path()), &no_env).expect_err("0");
        assert!(err.to_string().contains("transit.idle_timeout"), "{err}");
    }
}
