//! Replay traces: a recorded session — its configuration, every input and command with its
//! time, and every output it produced — that a fresh session replays to the same outputs.
//!
//! # Format, version 1
//!
//! Plain UTF-8 text, one item per line. The header names the role and holds the configuration
//! as JSON (values in the tagged JSON of the vector files):
//!
//! ```text
//! iotmp-trace 1
//! client {"dialect":"2026","user":"alice",…}      (or: server {…})
//! resources [["led",2],["temp",3]]                 (client only: name and fn)
//! start 0                                          (µs on the session's clock at creation)
//! ```
//!
//! Then the body, each line starting with the time in microseconds:
//!
//! ```text
//! 0 out 03 1D 08 01 …                bytes the session produced (poll_transmit)
//! 1200 in 01 02 08 01                bytes from the transport (handle_input)
//! 1200 event Connected               an event (poll_event), in its Debug form
//! 30000000 timeout                   handle_timeout
//! 45000000 cmd respond {"run":0,…}   a command, with its arguments as JSON
//! 50000000 eof                       handle_eof
//! ```
//!
//! A trace holds everything that crossed the wire, CONNECT payloads included (events print
//! credentials as `<redacted>`, but the `in` / `out` bytes are the real ones): keep trace files
//! as secret as the credentials themselves.
//!
//! Lines starting with `#` are comments. A replay feeds every `in`, `timeout`, `eof` and `cmd`
//! line to a fresh session and compares what it produces between two inputs — all output
//! bytes concatenated, and the events in order — with the recorded `out` and `event` lines,
//! reporting the first divergence.

mod commands;
mod replay;

pub use commands::{ClientCommand, ServerCommand};
pub(crate) use commands::{client_config_json, resources_json, server_config_json};
pub use replay::{Divergence, ReplayError, Replayed, replay};

use std::fmt::Write as _;

use crate::time::Instant;

/// The first line of every trace.
pub const MAGIC: &str = "iotmp-trace 1";

/// Accumulates the lines of a trace while a session runs.
#[derive(Debug, Default)]
pub struct TraceWriter {
    text: String,
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        let _ = write!(s, "{b:02X}");
    }
    s
}

impl TraceWriter {
    pub(crate) fn header(
        role: &str,
        config: &serde_json::Value,
        resources: Option<&serde_json::Value>,
        start: Instant,
    ) -> Self {
        let mut text = String::new();
        let _ = writeln!(text, "{MAGIC}");
        let _ = writeln!(text, "{role} {config}");
        if let Some(resources) = resources {
            let _ = writeln!(text, "resources {resources}");
        }
        let _ = writeln!(text, "start {}", start.as_micros());
        TraceWriter { text }
    }

    pub(crate) fn input(&mut self, now: Instant, bytes: &[u8]) {
        let _ = writeln!(self.text, "{} in {}", now.as_micros(), hex(bytes));
    }

    pub(crate) fn timeout(&mut self, now: Instant) {
        let _ = writeln!(self.text, "{} timeout", now.as_micros());
    }

    pub(crate) fn eof(&mut self, now: Instant) {
        let _ = writeln!(self.text, "{} eof", now.as_micros());
    }

    pub(crate) fn command(&mut self, now: Instant, name: &str, args: &serde_json::Value) {
        let _ = writeln!(self.text, "{} cmd {name} {args}", now.as_micros());
    }

    pub(crate) fn output(&mut self, now: Instant, bytes: &[u8]) {
        if !bytes.is_empty() {
            let _ = writeln!(self.text, "{} out {}", now.as_micros(), hex(bytes));
        }
    }

    pub(crate) fn event(&mut self, now: Instant, event: &dyn std::fmt::Debug) {
        let line = format!("{event:?}").replace('\n', " ");
        let _ = writeln!(self.text, "{} event {line}", now.as_micros());
    }

    /// Takes the text written so far (to append it to a file, say).
    pub fn take(&mut self) -> String {
        std::mem::take(&mut self.text)
    }

    /// The text written so far.
    pub fn text(&self) -> &str {
        &self.text
    }
}
