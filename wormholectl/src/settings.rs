//! The settings wormholectl reads itself, from the `wormhole-config` crate: the control socket's
//! path, and the `config` subcommand's listing. Everything else is the daemon's business.

use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::Context;
use wormhole_config::Config;

/// The control socket: `daemon.socket` of the config (`WORMHOLED_SOCKET` overrides it).
pub(crate) fn socket_path() -> anyhow::Result<PathBuf> {
    Ok(load()?.daemon.socket.value)
}

/// `wormholectl config`: each effective setting, its value and where it came from; with
/// `json`, one JSON object per setting.
pub(crate) fn show(json: bool) -> anyhow::Result<()> {
    let config = load()?;
    let text = if json {
        render_json(&config.describe())?
    } else {
        render(
            config.file.as_deref().map(|p| p.display().to_string()),
            &config.describe(),
        )
    };
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("writing to standard output")
}

/// Loads the configuration (file and environment).
fn load() -> anyhow::Result<Config> {
    Config::load().context("reading the configuration")
}

/// The human listing: the file read, then `key  value  (source)` aligned.
fn render(file: Option<String>, rows: &[(&str, String, String)]) -> String {
    let key_width = rows.iter().map(|(k, _, _)| k.len()).max().unwrap_or(0);
    let value_width = rows.iter().map(|(_, v, _)| v.len()).max().unwrap_or(0);
    let mut text = format!(
        "# config file: {}\n",
        file.as_deref()
            .unwrap_or("none (defaults and environment only)")
    );
    for (key, value, source) in rows {
        text.push_str(&format!(
            "{key:<key_width$}  {value:<value_width$}  ({source})\n"
        ));
    }
    text
}

/// The JSON listing: one `{"key","value","source"}` object per line.
fn render_json(rows: &[(&str, String, String)]) -> anyhow::Result<String> {
    let mut text = String::new();
    for (key, value, source) in rows {
        let row = serde_json::json!({"key": key, "value": value, "source": source});
        text.push_str(&serde_json::to_string(&row).context("encoding a setting")?);
        text.push('\n');
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<(&'static str, String, String)> {
        vec![
            (
                "mailbox.url",
                "ws://x/v1".into(),
                "env WORMHOLE_RELAY_URL".into(),
            ),
            ("mailbox.code_length", "2".into(), "default".into()),
        ]
    }

    #[test]
    fn listing() {
        assert_eq!(
            render(None, &rows()),
            "# config file: none (defaults and environment only)\n\
             mailbox.url          ws://x/v1  (env WORMHOLE_RELAY_URL)\n\
             mailbox.code_length  2          (default)\n"
        );
        assert!(render(Some("/c.toml".into()), &rows()).starts_with("# config file: /c.toml\n"));
        let json = render_json(&rows()).expect("encodes");
        assert_eq!(
            json.lines().next(),
            Some(r#"{"key":"mailbox.url","source":"env WORMHOLE_RELAY_URL","value":"ws://x/v1"}"#)
        );
    }

    #[test]
    fn real_configuration_describes_the_socket() {
        let config = Config::load_with_env(&|name| {
            (name == "WORMHOLED_SOCKET").then(|| "/tmp/x.sock".to_owned())
        })
        .expect("defaults load");
        let text = render(None, &config.describe());
        let line = text.lines().find(|l| l.starts_with("daemon.socket"));
        let words: Vec<&str> = line.map_or(Vec::new(), |l| l.split_whitespace().collect());
        assert_eq!(
            words,
            ["daemon.socket", "/tmp/x.sock", "(env", "WORMHOLED_SOCKET)"],
            "{text}"
        );
    }
}
