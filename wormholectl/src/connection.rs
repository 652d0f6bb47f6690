//! The control-socket client: connect (starting wormholed when nothing answers, if asked to:
//! [`Start`]), check that the server is our own user (`SO_PEERCRED`, before a byte is sent),
//! handshake, requests and events.
//!
//! Lines are compact JSON plus `'\n'` both ways (`wormhole_protocol::control`); a line longer than
//! [`MAX_LINE_BYTES`] from the daemon is refused. Everything is blocking and single-threaded: a
//! request writes one line and reads until the response with its `id`, keeping the events read
//! on the way for [`Connection::next_event`].

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, Context};
use interprocess::local_socket::prelude::*;
use interprocess::local_socket::{GenericFilePath, Stream};
use wormhole_config::own_uid;
use wormhole_protocol::control::{
    DaemonLine, Event, Outcome, Request, RequestBody, Response, ResponseBody, MAX_LINE_BYTES,
    PROTOCOL_VERSION,
};

use crate::exit::{ExitCode, Failure, RESTART_ADVICE};
use crate::spawn;

/// Whether to start wormholed when nothing answers on its socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Start it (send, receive).
    IfNeeded,
    /// Don't (list, cancel, shutdown): there is nothing to ask a daemon that is not running.
    Never,
}

/// One event from the daemon, with the line it came in.
#[derive(Debug)]
pub struct Received {
    /// The parsed event.
    pub event: Event,
    /// The line exactly as the daemon wrote it (without the newline), for `--json`.
    pub line: String,
}

/// A connection to wormholed, past the `hello` handshake.
pub struct Connection {
    reader: BufReader<Stream>,
    next_id: u64,
    pending: VecDeque<Received>,
}

impl Connection {
    /// Connects to the daemon on `socket`, starting it first when `start` says so and nothing
    /// answers. `Ok(None)`: not running, and `Start::Never`.
    pub fn open(socket: &Path, start: Start) -> anyhow::Result<Option<Self>> {
        let (stream, served) = match connect(socket) {
            Ok(stream) => (stream, socket.to_owned()),
            Err(e) if nobody_listens(&e) => {
                if start == Start::Never {
                    return Ok(None);
                }
                let ready = spawn::start_daemon()?;
                if ready != socket {
                    eprintln!(
                        "wormholectl: note: wormholed listens on {}, not on {}",
                        ready.display(),
                        socket.display()
                    );
                }
                let stream = connect(&ready).with_context(|| {
                    format!("cannot connect to wormholed at {}", ready.display())
                })?;
                (stream, ready)
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("cannot connect to wormholed at {}", socket.display())
                })
            }
        };
        let server = stream.peer_creds().ok().and_then(|creds| creds.euid());
        check_server(server, own_uid(), &served)?;
        let mut connection = Self {
            reader: BufReader::new(stream),
            next_id: 1,
            pending: VecDeque::new(),
        };
        connection.hello()?;
        Ok(Some(connection))
    }

    /// Bounds each wait for a line from the daemon to `timeout` (`None`, the default: no
    /// bound). A daemon silent for longer counts as gone: the wait fails as
    /// [`Failure::lost_connection`].
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.reader.get_ref().set_recv_timeout(timeout)
    }

    /// The version handshake: `hello` first, `welcome` back.
    fn hello(&mut self) -> anyhow::Result<()> {
        let answer = self.request(RequestBody::Hello {
            protocol: PROTOCOL_VERSION,
            client: Some(format!("wormholectl {}", env!("CARGO_PKG_VERSION"))),
        })?;
        match answer {
            ResponseBody::Welcome { protocol, .. } if protocol == PROTOCOL_VERSION => Ok(()),
            ResponseBody::Welcome { protocol, daemon } => Err(Failure::new(
                ExitCode::Failure,
                format!(
                    "{daemon} speaks control protocol {protocol}, this wormholectl speaks \
                     {PROTOCOL_VERSION}; {RESTART_ADVICE}"
                ),
            )
            .into()),
            other => Err(anyhow!("wormholed answered hello with {other:?}")),
        }
    }

    /// Sends one request and waits for its response. A refused request becomes a [`Failure`].
    pub fn request(&mut self, body: RequestBody) -> anyhow::Result<ResponseBody> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line = serde_json::to_vec(&Request { id, body }).context("encoding a request")?;
        if line.len() > MAX_LINE_BYTES {
            // wormholed would close the connection halfway through the line, and the user
            // would read "lost the connection" instead of the reason.
            return Err(Failure::new(
                ExitCode::Usage,
                format!(
                    "the request is too large for wormholed ({} bytes; at most {MAX_LINE_BYTES})",
                    line.len()
                ),
            )
            .into());
        }
        line.push(b'\n');
        let stream = self.reader.get_mut();
        stream
            .write_all(&line)
            .and_then(|()| stream.flush())
            .map_err(|_| Failure::lost_connection())?;
        loop {
            match self.read_daemon_line()? {
                (DaemonLine::Event(event), line) => {
                    self.pending.push_back(Received { event, line })
                }
                (DaemonLine::Response(Response { id: got, outcome }), _) => match (got, outcome) {
                    (Some(got), Outcome::Ok(body)) if got == id => return Ok(body),
                    (Some(got), Outcome::Error(error)) if got == id => {
                        return Err(Failure::from(error).into())
                    }
                    (None, Outcome::Error(error)) => {
                        return Err(anyhow!("wormholed refused a request: {}", error.message))
                    }
                    // An answer to nothing we are waiting for: ignore it.
                    _ => {}
                },
            }
        }
    }

    /// The next event, waiting for it. The connection ending is a [`Failure`].
    pub fn next_event(&mut self) -> anyhow::Result<Received> {
        if let Some(received) = self.pending.pop_front() {
            return Ok(received);
        }
        loop {
            if let (DaemonLine::Event(event), line) = self.read_daemon_line()? {
                return Ok(Received { event, line });
            }
        }
    }

    /// Reads and parses one line.
    fn read_daemon_line(&mut self) -> anyhow::Result<(DaemonLine, String)> {
        let line = read_bounded_line(&mut self.reader)?.ok_or_else(Failure::lost_connection)?;
        let parsed = serde_json::from_str(&line).with_context(|| {
            format!("wormholed sent a line that is not a response or event: {line}")
        })?;
        Ok((parsed, line))
    }
}

/// Connects to the socket at `path`.
fn connect(path: &Path) -> io::Result<Stream> {
    Stream::connect(path.to_fs_name::<GenericFilePath>()?)
}

/// Refuses a control socket whose server (its uid at `listen`, from `SO_PEERCRED`) is not us:
/// another user's process there would read our requests and their secrets. Checked before
/// anything is sent, `hello` included.
fn check_server(server: Option<u32>, ours: u32, socket: &Path) -> Result<(), Failure> {
    let whom = match server {
        Some(uid) if uid == ours => return Ok(()),
        Some(uid) => format!("is served by another user (uid {uid}; we are uid {ours})"),
        None => "is served by a process whose user cannot be told".to_owned(),
    };
    Err(Failure::new(
        ExitCode::Failure,
        format!(
            "{} {whom}, not by our wormholed; refusing to talk to it: remove that socket, or set \
             WORMHOLED_SOCKET to a path in a folder of your own",
            socket.display()
        ),
    ))
}

/// Refuses a subchannel socket (whose path the daemon named) whose server is not our own user,
/// as [`Connection::open`] does for the control socket.
pub fn check_subchannel_server(
    stream: &std::os::unix::net::UnixStream,
    socket: &Path,
) -> Result<(), Failure> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    let server = getsockopt(stream, PeerCredentials)
        .ok()
        .map(|creds| creds.uid());
    check_server(server, own_uid(), socket)
}

/// Whether a connect error means that no daemon listens there (so one may be started).
fn nobody_listens(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
    )
}

/// Reads one line of at most [`MAX_LINE_BYTES`] bytes (newline excluded), without the newline.
/// `Ok(None)` at the end of the stream, or if the connection failed: both mean the daemon is gone.
fn read_bounded_line(reader: &mut impl BufRead) -> anyhow::Result<Option<String>> {
    let mut buf = Vec::new();
    let limit = u64::try_from(MAX_LINE_BYTES)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    match reader.take(limit).read_until(b'\n', &mut buf) {
        Ok(_) => {}
        Err(_) => return Ok(None),
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
    } else if buf.len() > MAX_LINE_BYTES {
        return Err(anyhow!(
            "wormholed sent a line longer than {MAX_LINE_BYTES} bytes"
        ));
    } else {
        // End of stream, possibly in the middle of a line.
        return Ok(None);
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| anyhow!("wormholed sent a line that is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<anyhow::Result<Option<String>>> {
        let mut reader = io::Cursor::new(input.to_vec());
        let mut out = Vec::new();
        loop {
            let line = read_bounded_line(&mut reader);
            let done = !matches!(line, Ok(Some(_)));
            out.push(line);
            if done {
                return out;
            }
        }
    }

    #[test]
    fn lines_are_split_and_the_end_is_seen() {
        let got = lines(b"{\"a\":1}\n{}\n");
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].as_ref().ok(), Some(&Some("{\"a\":1}".to_owned())));
        assert_eq!(got[1].as_ref().ok(), Some(&Some("{}".to_owned())));
        assert_eq!(got[2].as_ref().ok(), Some(&None));
        let cut = lines(b"{\"a\":");
        assert_eq!(cut[0].as_ref().ok(), Some(&None), "a cut line is the end");
    }

    #[test]
    fn long_lines_are_refused() {
        let mut input = vec![b'x'; MAX_LINE_BYTES];
        input.push(b'\n');
        let got = lines(&input);
        assert_eq!(
            got[0]
                .as_ref()
                .ok()
                .and_then(|l| l.as_ref().map(String::len)),
            Some(MAX_LINE_BYTES),
            "exactly the limit is fine"
        );
        let input = vec![b'x'; MAX_LINE_BYTES + 1];
        assert!(lines(&input)[0].is_err(), "one more byte is refused");
        assert!(lines(b"\xff\n")[0].is_err(), "not UTF-8");
    }

    /// Serves one connection on a fresh socket: answers each request line with the next script
    /// entry (lines joined by '\n'), then hangs up.
    fn fake_daemon(name: &str, script: Vec<&'static str>) -> std::path::PathBuf {
        use std::os::unix::net::UnixListener;
        let path =
            std::env::temp_dir().join(format!("wormholectl-{}-{name}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).expect("binds");
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().expect("accepts");
            let mut reader = BufReader::new(stream.try_clone().expect("clones"));
            let mut writer = stream;
            for answer in script {
                let mut request = String::new();
                if reader.read_line(&mut request).unwrap_or(0) == 0 {
                    return;
                }
                let _ = writer.write_all(format!("{answer}\n").as_bytes());
            }
        });
        path
    }

    #[test]
    fn handshake_requests_and_queued_events() {
        let path = fake_daemon(
            "ok",
            vec![
                r#"{"id":1,"ok":{"protocol":1,"daemon":"wormholed test"}}"#,
                "{\"wormhole\":5,\"event\":\"code\",\"code\":\"4-a-b\"}\n\
                 {\"id\":99,\"ok\":{}}\n{\"id\":2,\"ok\":{\"wormhole\":5}}",
            ],
        );
        let mut connection = Connection::open(&path, Start::Never)
            .expect("handshake")
            .expect("a daemon listens");
        let answer = connection
            .request(RequestBody::Receive {
                code: None,
                accept_file: false,
                output: None,
                directory: None,
                options: Default::default(),
                transit: Default::default(),
            })
            .expect("answered");
        assert_eq!(answer, ResponseBody::Created { wormhole: 5 });
        let first = connection
            .next_event()
            .expect("the event read before the answer");
        assert_eq!(
            first.line,
            r#"{"wormhole":5,"event":"code","code":"4-a-b"}"#
        );
        let gone = connection.next_event().expect_err("the daemon hung up");
        assert_eq!(crate::exit::exit_code_of(&gone), ExitCode::Connection);
        assert_eq!(gone.to_string(), "lost the connection to wormholed");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn refused_handshake_is_a_clear_failure() {
        let path = fake_daemon(
            "old",
            vec![r#"{"id":1,"error":{"code":"unsupported-version","message":"speaks 2"}}"#],
        );
        let error = Connection::open(&path, Start::Never)
            .err()
            .expect("refused");
        assert!(
            error
                .to_string()
                .starts_with("wormholed does not speak the control protocol"),
            "{error}"
        );
        let _ = std::fs::remove_file(&path);
        assert!(
            Connection::open(&path, Start::Never)
                .expect("no error")
                .is_none(),
            "nobody listens any more"
        );
    }

    /// Only a server of our own uid is talked to; the refusal names the socket, the user, and
    /// what to do.
    #[test]
    fn a_server_of_another_user_is_refused() {
        let socket = Path::new("/tmp/shared/control.sock");
        assert!(check_server(Some(1000), 1000, socket).is_ok());
        let refused = check_server(Some(65534), 1000, socket).expect_err("another user");
        assert_eq!(refused.code, ExitCode::Failure);
        assert_eq!(
            refused.message,
            "/tmp/shared/control.sock is served by another user (uid 65534; we are uid 1000), \
             not by our wormholed; refusing to talk to it: remove that socket, or set \
             WORMHOLED_SOCKET to a path in a folder of your own"
        );
        let unknown = check_server(None, 1000, socket).expect_err("nobody can tell");
        assert!(
            unknown.message.contains("cannot be told"),
            "{}",
            unknown.message
        );
        assert!(
            check_server(Some(0), 1000, socket).is_err(),
            "root is not us"
        );
    }

    #[test]
    fn missing_or_refusing_sockets_mean_nobody_listens() {
        assert!(nobody_listens(&io::Error::from(io::ErrorKind::NotFound)));
        assert!(nobody_listens(&io::Error::from(
            io::ErrorKind::ConnectionRefused
        )));
        assert!(!nobody_listens(&io::Error::from(
            io::ErrorKind::PermissionDenied
        )));
        let dir = std::env::temp_dir().join(format!("wormholectl-test-{}", std::process::id()));
        let err = connect(&dir.join("none.sock")).expect_err("no socket there");
        assert!(nobody_listens(&err), "{err}");
    }
}
