//! [`Control`]: a raw client of the daemon's control socket, speaking newline-delimited JSON
//! built by hand.
//!
//! Raw on purpose: tests/tests/dilation_bad_input.rs sends requests that the daemon must refuse
//! (subprotocol names out of bounds, ops on wormholes of the wrong kind) and asserts on the
//! daemon's lines as JSON, field by field, including the events that piled up meanwhile
//! ([`Control::events`]). The other Dilation tests drive their ops and events with it too
//! (`dilate`, `listen`, `attach`), through the helpers they share with that file
//! ([`crate::dilation`]). A test that only speaks well-formed requests takes the typed client,
//! wormholectl's own, from [`crate::Daemon::connection`].

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use serde_json::{json, Value};

use crate::{Daemon, TIMEOUT};

/// A control-socket client; every read is bounded by [`TIMEOUT`].
#[derive(Debug)]
pub struct Control {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
    /// Events read while waiting for a response, oldest first.
    pub events: Vec<Value>,
}

impl Control {
    /// Connects to `daemon` and says hello.
    pub fn connect(daemon: &Daemon) -> Self {
        let stream = UnixStream::connect(daemon.socket()).expect("connect to the control socket");
        stream
            .set_read_timeout(Some(TIMEOUT))
            .expect("set a read timeout");
        let writer = stream.try_clone().expect("clone the control socket");
        let mut control = Self {
            reader: BufReader::new(stream),
            writer,
            next_id: 1,
            events: Vec::new(),
        };
        let welcome = control.request(json!({"op": "hello", "protocol": 1}));
        assert!(welcome.get("ok").is_some(), "hello: {welcome}");
        control
    }

    /// The next line from the daemon.
    pub fn line(&mut self) -> Value {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .expect("a line from the daemon in time");
        assert!(n > 0, "the daemon closed the control connection");
        serde_json::from_str(&line).expect("a JSON line")
    }

    /// Sends a request and returns its response (`{"id", "ok"|"error"}`).
    pub fn request(&mut self, mut body: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        body["id"] = json!(id);
        writeln!(self.writer, "{body}").expect("write a request");
        loop {
            let line = self.line();
            if line.get("id") == Some(&json!(id)) {
                return line;
            }
            self.events.push(line);
        }
    }

    /// The `ok` body of a request that must succeed.
    pub fn ok(&mut self, body: Value) -> Value {
        let response = self.request(body.clone());
        response
            .get("ok")
            .cloned()
            .unwrap_or_else(|| panic!("{body} failed: {response}"))
    }

    /// Waits for the next event of kind `kind`, failing on `error` or `closed` first.
    pub fn event(&mut self, kind: &str) -> Value {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            assert!(Instant::now() < deadline, "no `{kind}` event in time");
            let event = if self.events.is_empty() {
                self.line()
            } else {
                self.events.remove(0)
            };
            if event.get("event") == Some(&json!(kind)) {
                return event;
            }
            let other = event.get("event").and_then(Value::as_str).unwrap_or("");
            assert!(
                !matches!(other, "error" | "closed"),
                "waiting for `{kind}`, got {event}"
            );
        }
    }
}
