//! Scenario transcripts: one line per step — relative virtual time, direction, message, hex —
//! readable as protocol documentation and pinned with insta.

use std::fmt::Write as _;

use iotmp_proto::{Dialect, Instant};

/// Which way a frame went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Device (client) to server.
    DeviceToServer,
    /// Server to device.
    ServerToDevice,
}

impl Direction {
    fn arrow(self) -> &'static str {
        match self {
            Direction::DeviceToServer => "C->S",
            Direction::ServerToDevice => "S->C",
        }
    }
}

/// A growing transcript.
#[derive(Debug, Clone)]
pub struct Transcript {
    dialect: Dialect,
    text: String,
    frames: Vec<(Instant, Direction, Vec<u8>)>,
}

fn hex(bytes: &[u8]) -> String {
    crate::hex_string(bytes)
}

impl Transcript {
    /// An empty transcript for a connection of `dialect`.
    pub fn new(dialect: Dialect) -> Self {
        Transcript {
            dialect,
            text: String::new(),
            frames: Vec::new(),
        }
    }

    /// After a reconnect in another dialect.
    pub fn set_dialect(&mut self, dialect: Dialect) {
        self.dialect = dialect;
    }

    /// Records one frame.
    pub fn frame(
        &mut self,
        at: Instant,
        direction: Direction,
        dialect: Dialect,
        type_code: u32,
        body: &[u8],
    ) {
        let mut whole = Vec::with_capacity(body.len() + 4);
        iotmp_proto::frame::write_header(&mut whole, type_code, body.len() as u32);
        whole.extend_from_slice(body);
        let message = match dialect.decode(type_code, body) {
            Ok(m) => m.to_string(),
            Err(e) => format!("<{e}>"),
        };
        let _ = writeln!(
            self.text,
            "{:>9} {} {message} | {}",
            at.to_string(),
            direction.arrow(),
            hex(&whole)
        );
        self.frames.push((at, direction, whole));
    }

    /// Records a note (an event, an application action).
    pub fn note(&mut self, at: Instant, note: &str) {
        let _ = writeln!(self.text, "{:>9}      {note}", at.to_string());
    }

    /// The text so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Every frame, in order, whole (header included).
    pub fn frames(&self) -> &[(Instant, Direction, Vec<u8>)] {
        &self.frames
    }

    /// The dialect of the frames.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }
}
