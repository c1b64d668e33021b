//! Reads `vectors/sessions-2020.txt` / `sessions-2026.txt`: the frames of each numbered part,
//! with their direction and, where the file states one, their time.

use crate::transcript::Direction;

/// One frame of a session file.
#[derive(Debug, Clone, PartialEq)]
pub struct FileFrame {
    /// The part (`# N.`) it belongs to.
    pub part: u32,
    /// Which way it goes.
    pub direction: Direction,
    /// The whole frame.
    pub bytes: Vec<u8>,
    /// The time the file gives it, in seconds (`t=10.0` prefixes and `(t=10.0 s` notes).
    pub time: Option<f64>,
    /// The file's own description line.
    pub line: String,
}

fn time_in(line: &str) -> Option<f64> {
    let start = line.find("t=")? + 2;
    let rest = line.get(start..)?;
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    rest.get(..end)?.parse().ok()
}

/// Parses a session file.
pub fn parse(text: &str) -> Vec<FileFrame> {
    let mut frames = Vec::new();
    let mut part = 0;
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some(rest) = line.strip_prefix("# ")
            && let Some(number) = rest.split('.').next().and_then(|n| n.trim().parse().ok())
        {
            part = number;
            continue;
        }
        // Frame lines start with the direction, or (part 10) with a time and then it.
        let trimmed = line.trim_start();
        let head = match trimmed.strip_prefix("t=") {
            Some(rest) => rest
                .trim_start_matches(|c: char| c.is_ascii_digit() || c == '.')
                .trim_start(),
            None => trimmed,
        };
        let direction = if head.starts_with("C->S") {
            Direction::DeviceToServer
        } else if head.starts_with("S->C") {
            Direction::ServerToDevice
        } else {
            continue;
        };
        if part == 0 {
            continue;
        }
        let Some(hex_line) = lines.next() else { break };
        let hex: String = hex_line.chars().filter(|c| c.is_ascii_hexdigit()).collect();
        frames.push(FileFrame {
            part,
            direction,
            bytes: crate::hex_bytes(&hex),
            time: time_in(line),
            line: line.trim().to_owned(),
        });
    }
    frames
}
