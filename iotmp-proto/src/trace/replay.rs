//! Feeding a recorded trace through a fresh session.

use std::fmt::Write as _;

use thiserror::Error;

use super::MAGIC;
use super::commands::{
    ClientCommand, ServerCommand, client_config_from, resources_from, server_config_from,
};
use crate::client::Client;
use crate::dialect::Dialect;
use crate::frame::Deframer;
use crate::server::ServerSession;
use crate::time::Instant;

/// Where a replay first differed from the recording.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}: expected {expected}, the replay produced {actual}")]
pub struct Divergence {
    /// The trace line (1-based) whose output was not reproduced.
    pub line: usize,
    /// What the trace recorded.
    pub expected: String,
    /// What the replay produced instead.
    pub actual: String,
}

/// Why a replay failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The trace is not well-formed.
    #[error("line {line}: {message}")]
    Format {
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The replay produced different outputs.
    #[error(transparent)]
    Diverged(#[from] Divergence),
}

/// A successful replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// `client` or `server`.
    pub role: String,
    /// Inputs and commands fed.
    pub steps: usize,
    /// A readable transcript: time, direction, message, hex.
    pub transcript: String,
}

// One per replay: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
enum Session {
    Client(Client),
    Server(ServerSession),
}

impl Session {
    fn drain(&mut self, out: &mut Vec<u8>, events: &mut Vec<String>) {
        match self {
            Session::Client(c) => {
                c.poll_transmit(out);
                while let Some(e) = c.poll_event() {
                    events.push(format!("{e:?}").replace('\n', " "));
                }
            }
            Session::Server(s) => {
                s.poll_transmit(out);
                while let Some(e) = s.poll_event() {
                    events.push(format!("{e:?}").replace('\n', " "));
                }
            }
        }
    }

    fn input(&mut self, now: Instant, bytes: &[u8]) {
        match self {
            Session::Client(c) => c.handle_input(now, bytes),
            Session::Server(s) => s.handle_input(now, bytes),
        }
    }

    fn timeout(&mut self, now: Instant) {
        match self {
            Session::Client(c) => c.handle_timeout(now),
            Session::Server(s) => s.handle_timeout(now),
        }
    }

    fn eof(&mut self, now: Instant) {
        match self {
            Session::Client(c) => c.handle_eof(now),
            Session::Server(s) => s.handle_eof(now),
        }
    }

    fn command(
        &mut self,
        now: Instant,
        name: &str,
        args: &serde_json::Value,
    ) -> Result<(), String> {
        match self {
            Session::Client(c) => {
                // A command that failed when recorded fails the same way now: only its
                // (absent) effect on the outputs matters.
                let _ = ClientCommand::from_json(name, args)?.apply(c, now);
            }
            Session::Server(s) => {
                let _ = ServerCommand::from_json(name, args)?.apply(s, now);
            }
        }
        Ok(())
    }

    fn dialect(&self) -> Option<Dialect> {
        match self {
            Session::Client(c) => Some(c.dialect()),
            Session::Server(s) => s.dialect(),
        }
    }
}

fn parse_hex(text: &str) -> Option<Vec<u8>> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(compact).ok()
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Renders frames for the transcript (best effort: split by a private deframer).
fn describe(
    transcript: &mut String,
    deframer: &mut Deframer,
    dialect: Option<Dialect>,
    at: u64,
    arrow: &str,
    bytes: &[u8],
) {
    let mut input = bytes;
    while let Ok(Some(frame)) = deframer.next_frame(&mut input) {
        let dialect = dialect.or_else(|| Dialect::detect(frame.type_code));
        let text = match dialect.map(|d| d.decode(frame.type_code, frame.body)) {
            Some(Ok(m)) => m.to_string(),
            Some(Err(e)) => format!("<{e}>"),
            None => "<unknown dialect>".into(),
        };
        let mut whole = Vec::new();
        crate::frame::write_header(&mut whole, frame.type_code, frame.body.len() as u32);
        whole.extend_from_slice(frame.body);
        let t = crate::time::Instant::from_micros(at);
        let _ = writeln!(transcript, "{t:>10} {arrow} {text} | {}", hex(&whole));
    }
}

/// Replays `trace` through a fresh session and checks every recorded output.
pub fn replay(trace: &str) -> Result<Replayed, ReplayError> {
    let fail = |line: usize, message: &str| ReplayError::Format {
        line,
        message: message.to_owned(),
    };
    let mut lines = trace
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.starts_with('#') && !l.trim().is_empty());
    match lines.next() {
        Some((_, MAGIC)) => {}
        Some((n, _)) => return Err(fail(n, "not an iotmp trace (expected 'iotmp-trace 1')")),
        None => return Err(fail(1, "empty trace")),
    }
    let (n, role_line) = lines.next().ok_or_else(|| fail(2, "missing role line"))?;
    let (role, config) = role_line
        .split_once(' ')
        .ok_or_else(|| fail(n, "expected 'client {…}' or 'server {…}'"))?;
    let config: serde_json::Value =
        serde_json::from_str(config).map_err(|e| fail(n, &e.to_string()))?;
    let mut resources = None;
    let start;
    loop {
        let (n, line) = lines.next().ok_or_else(|| fail(n, "missing start line"))?;
        if let Some(r) = line.strip_prefix("resources ") {
            let json: serde_json::Value =
                serde_json::from_str(r).map_err(|e| fail(n, &e.to_string()))?;
            resources = Some(resources_from(&json).map_err(|e| fail(n, &e))?);
        } else if let Some(s) = line.strip_prefix("start ") {
            start = Instant::from_micros(s.trim().parse().map_err(|_| fail(n, "bad start time"))?);
            break;
        } else {
            return Err(fail(n, "expected 'resources' or 'start'"));
        }
    }
    let mut session = match role {
        "client" => {
            let config = client_config_from(&config).map_err(|e| fail(n, &e))?;
            let client = Client::new(config, resources.unwrap_or_default(), start)
                .map_err(|e| fail(n, &e.to_string()))?;
            Session::Client(client)
        }
        "server" => {
            let (config, transport) = server_config_from(&config).map_err(|e| fail(n, &e))?;
            Session::Server(ServerSession::new(config, transport, start))
        }
        other => return Err(fail(n, &format!("unknown role {other:?}"))),
    };

    let (mut actual_out, mut actual_events) = (Vec::new(), Vec::new());
    session.drain(&mut actual_out, &mut actual_events);
    let (mut expected_out, mut expected_events): (Vec<u8>, Vec<(usize, String)>) =
        (Vec::new(), Vec::new());
    let mut out_lines: Vec<(usize, usize)> = Vec::new(); // (line, offset where its bytes start)
    let mut steps = 0;
    let mut transcript = String::new();
    let (mut up, mut down) = (Deframer::default(), Deframer::default());
    let (arrow_in, arrow_out) = if role == "client" {
        ("S->C", "C->S")
    } else {
        ("C->S", "S->C")
    };
    let mut last_at = start.as_micros();
    describe(
        &mut transcript,
        &mut down,
        session.dialect(),
        last_at,
        arrow_out,
        &actual_out,
    );
    let mut described_out = actual_out.len();

    let check = |actual_out: &[u8],
                 actual_events: &[String],
                 expected_out: &[u8],
                 expected_events: &[(usize, String)],
                 out_lines: &[(usize, usize)],
                 end: bool|
     -> Result<(), Divergence> {
        let common = actual_out.len().min(expected_out.len());
        let first_diff = (0..common).find(|&i| actual_out.get(i) != expected_out.get(i));
        let diff = match first_diff {
            Some(i) => Some(i),
            None if actual_out.len() < expected_out.len()
                || (end && actual_out.len() != expected_out.len()) =>
            {
                Some(common)
            }
            None => None,
        };
        if let Some(at) = diff {
            // Show the whole recorded `out` line that holds the first differing byte, and what
            // the replay produced in its place.
            let index = out_lines.iter().rposition(|(_, off)| *off <= at);
            let (line, start) = index
                .and_then(|i| out_lines.get(i))
                .copied()
                .unwrap_or((0, 0));
            let end = index
                .and_then(|i| out_lines.get(i + 1))
                .map_or(expected_out.len(), |(_, off)| *off)
                .max(at + 1);
            let slice = |b: &[u8]| b.get(start..end.min(b.len())).map(hex).unwrap_or_default();
            let actual = slice(actual_out);
            return Err(Divergence {
                line,
                expected: format!(
                    "output {} (first difference at output byte {at})",
                    slice(expected_out)
                ),
                actual: if actual.is_empty() {
                    "no output".into()
                } else {
                    format!("output {actual}")
                },
            });
        }
        for (i, (line, expected)) in expected_events.iter().enumerate() {
            match actual_events.get(i) {
                Some(actual) if actual == expected => {}
                Some(actual) => {
                    return Err(Divergence {
                        line: *line,
                        expected: format!("event {expected}"),
                        actual: format!("event {actual}"),
                    });
                }
                None => {
                    return Err(Divergence {
                        line: *line,
                        expected: format!("event {expected}"),
                        actual: "no event".into(),
                    });
                }
            }
        }
        if end && actual_events.len() > expected_events.len() {
            let extra = actual_events
                .get(expected_events.len())
                .cloned()
                .unwrap_or_default();
            return Err(Divergence {
                line: 0,
                expected: "no further event".into(),
                actual: format!("event {extra}"),
            });
        }
        Ok(())
    };

    for (n, line) in lines {
        let (time, rest) = line
            .split_once(' ')
            .ok_or_else(|| fail(n, "expected '<micros> <item>'"))?;
        let at: u64 = time.parse().map_err(|_| fail(n, "bad time"))?;
        let now = Instant::from_micros(at);
        let (kind, payload) = rest.split_once(' ').unwrap_or((rest, ""));
        match kind {
            "out" => {
                out_lines.push((n, expected_out.len()));
                expected_out.extend(parse_hex(payload).ok_or_else(|| fail(n, "bad hex"))?);
                continue;
            }
            "event" => {
                expected_events.push((n, payload.to_owned()));
                continue;
            }
            _ => {}
        }
        // An input: what was recorded so far must have been produced already.
        check(
            &actual_out,
            &actual_events,
            &expected_out,
            &expected_events,
            &out_lines,
            false,
        )?;
        steps += 1;
        last_at = at;
        match kind {
            "in" => {
                let bytes = parse_hex(payload).ok_or_else(|| fail(n, "bad hex"))?;
                describe(
                    &mut transcript,
                    &mut up,
                    session.dialect(),
                    at,
                    arrow_in,
                    &bytes,
                );
                session.input(now, &bytes);
            }
            "timeout" => session.timeout(now),
            "eof" => {
                let _ = writeln!(
                    transcript,
                    "{:>10}      end of stream",
                    Instant::from_micros(at)
                );
                session.eof(now);
            }
            "cmd" => {
                let (name, args) = payload.split_once(' ').unwrap_or((payload, "{}"));
                let args: serde_json::Value =
                    serde_json::from_str(args).map_err(|e| fail(n, &e.to_string()))?;
                let _ = writeln!(
                    transcript,
                    "{:>10}      command {name} {args}",
                    Instant::from_micros(at)
                );
                session.command(now, name, &args).map_err(|e| fail(n, &e))?;
            }
            other => return Err(fail(n, &format!("unknown item {other:?}"))),
        }
        session.drain(&mut actual_out, &mut actual_events);
        describe(
            &mut transcript,
            &mut down,
            session.dialect(),
            last_at,
            arrow_out,
            actual_out.get(described_out..).unwrap_or_default(),
        );
        described_out = actual_out.len();
    }
    check(
        &actual_out,
        &actual_events,
        &expected_out,
        &expected_events,
        &out_lines,
        true,
    )?;
    Ok(Replayed {
        role: role.to_owned(),
        steps,
        transcript,
    })
}
