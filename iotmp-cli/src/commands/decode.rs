//! `iotmp decode`: frames (hex or binary) in, one message JSON object per line out.
//!
//! The whole input is one byte stream, deframed as a receiver would (spec §2.3). A body that
//! does not decode leaves the framing intact, so it is reported and decoding goes on; a framing
//! error leaves no way to find the next frame, so it is reported and decoding stops. Each report
//! names the byte offset of the frame in the input and the outcome spec §7.2 prescribes for a
//! receiver, which is what one wants to know when a device and a server disagree.

use std::io::Write;

use iotmp_proto::frame::{DEFAULT_MAX_BODY, Deframer, FrameError};
use iotmp_proto::json::message::message_to_json;
use iotmp_proto::{Dialect, MessageError, Outcome};
use thiserror::Error;
use tracing::{debug, trace, warn};

use crate::cli::DecodeArgs;
use crate::config::DecodeConfig;
use crate::exit::Exit;
use crate::hex::{self, HexError};
use crate::input::{InputError, Source, means_stdin};
use crate::output::{self, Flow, OutputError};
use crate::values::DialectChoice;

/// Why `iotmp decode` failed.
#[derive(Debug, Error)]
pub(crate) enum DecodeError {
    /// The input could not be read.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The input is not hex.
    #[error(
        "{origin} is not hex: {problem}; write every byte as two hex digits (\"0A 04\" or \"0x0A 0x04\"), or pass --file for binary input"
    )]
    Hex {
        /// "stdin" or "argument N".
        origin: String,
        /// Where and what.
        problem: HexError,
    },
    /// `detect` met a first frame that is no CONNECT.
    #[error(
        "cannot detect the dialect: the first frame (at byte {offset}) has type 0x{type_code:02X}, \
         but only a CONNECT (0x08 in 2020, 0x03 in 2026) starts a connection (a server would \
         close it: outcome: close); pass --dialect 2020 or --dialect 2026"
    )]
    Undetectable {
        /// Byte offset of the frame.
        offset: u64,
        /// Its type code.
        type_code: u32,
    },
    /// The byte stream cannot be split into frames any further.
    #[error(
        "cannot split the input into frames at byte {offset}: {problem}; nothing after it can be \
         decoded (outcome: close)"
    )]
    Framing {
        /// Byte offset of the broken frame.
        offset: u64,
        /// What is wrong, and what to do about it.
        problem: String,
    },
    /// Some frames did not decode (each was reported on its own line).
    #[error("{failed} of {total} frames did not decode (see the lines above)")]
    FramesFailed {
        /// Frames that failed.
        failed: usize,
        /// Frames seen.
        total: usize,
    },
    /// stdout failed.
    #[error(transparent)]
    Output(#[from] OutputError),
}

impl DecodeError {
    /// The exit status for this failure.
    pub(crate) const fn exit(&self) -> Exit {
        match self {
            DecodeError::Input(e) => e.exit(),
            DecodeError::Undetectable { .. } => Exit::Usage,
            DecodeError::Hex { .. }
            | DecodeError::Framing { .. }
            | DecodeError::FramesFailed { .. } => Exit::Data,
            DecodeError::Output(e) => e.exit(),
        }
    }
}

/// The options once the command line, the environment, the config file and the defaults have
/// been merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Settings {
    /// `--dialect`.
    pub(crate) dialect: DialectChoice,
    /// `--max-body`.
    pub(crate) max_body: u32,
}

impl Settings {
    /// Command line and environment first, then the config file, then the defaults.
    pub(crate) fn resolve(args: &DecodeArgs, config: &DecodeConfig) -> Settings {
        Settings {
            dialect: args
                .dialect
                .or(config.dialect)
                .unwrap_or(DialectChoice::Detect),
            max_body: args
                .max_body
                .or(config.max_body)
                .map_or(DEFAULT_MAX_BODY, |size| size.get()),
        }
    }
}

/// Runs `iotmp decode`.
pub(crate) fn run(args: DecodeArgs, config: &DecodeConfig) -> Result<(), DecodeError> {
    let settings = Settings::resolve(&args, config);
    debug!(?settings, "decode");
    let bytes = read_input(&args)?;
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    decode(&bytes, settings, &mut stdout.lock(), &mut stderr.lock())
}

/// The input bytes: a binary file, hex arguments, or hex on stdin.
fn read_input(args: &DecodeArgs) -> Result<Vec<u8>, DecodeError> {
    if let Some(path) = &args.file {
        return Ok(Source::from_path(path).read_bytes("binary frames")?);
    }
    if means_stdin(&args.hex) {
        let text = Source::Stdin.read_text("hex frames")?;
        return hex::parse(&text).map_err(|problem| DecodeError::Hex {
            origin: "stdin".to_owned(),
            problem,
        });
    }
    // The arguments form one stream, so `iotmp decode 01 02 08 01` works as well as one quoted
    // string; each is parsed on its own so that errors can name it.
    let mut bytes = Vec::new();
    for (i, text) in args.hex.iter().enumerate() {
        let more = hex::parse(text).map_err(|problem| DecodeError::Hex {
            origin: format!("argument {}", i + 1),
            problem,
        })?;
        bytes.extend(more);
    }
    Ok(bytes)
}

/// What a receiver does, in words for the report.
fn outcome_text(outcome: Outcome, first_frame: bool) -> String {
    let detail = match outcome {
        Outcome::Ignore => " (a receiver skips the frame)".to_owned(),
        Outcome::Drop => " (a receiver discards the message)".to_owned(),
        Outcome::DropAndError { stream_id } => {
            format!(" (a receiver discards it and answers ERROR 400 to stream id {stream_id})")
        }
        Outcome::Close if first_frame => {
            " (the first frame of a new server connection must be a valid CONNECT)".to_owned()
        }
        Outcome::Close => " (a receiver closes the connection)".to_owned(),
    };
    format!("outcome: {}{detail}", outcome.name())
}

/// A framing error, reported at `frame_start`: the offset where the deframer was asked for the
/// frame. The whole input is handed over in one slice, so every request starts at a frame
/// boundary, and this is exact even where the error's own offset is not (a truncated body).
/// `input_len` gives how many bytes of a truncated frame arrived.
fn framing_error(error: &FrameError, frame_start: u64, input_len: usize) -> DecodeError {
    let problem = match *error {
        FrameError::TypeTooLong { .. } => "the message type varint is longer than 5 bytes".into(),
        FrameError::SizeTooLong { .. } => "the body size varint is longer than 5 bytes".into(),
        FrameError::HeaderOverflow { .. } => "a header varint is above 2^32-1".into(),
        FrameError::BodyTooLarge { size, limit, .. } => format!(
            "the body of {size} bytes is above the limit of {limit} bytes (raise --max-body if the frame is genuine)"
        ),
        FrameError::TruncatedAtEof { .. } => format!(
            "the input ends inside a frame, after {} of its bytes (is the input complete?)",
            (input_len as u64).saturating_sub(frame_start)
        ),
        // The enum is non-exhaustive: a future variant still gets its own message.
        _ => error.to_string(),
    };
    DecodeError::Framing {
        offset: frame_start,
        problem,
    }
}

/// The report line for a frame whose body did not decode.
fn body_error_line(
    offset: u64,
    type_code: u32,
    body_len: usize,
    error: &MessageError,
    first_frame: bool,
) -> String {
    // A malformed first frame on a new connection closes it (spec §6.1), whatever §7.2 says
    // for the same message later on.
    let outcome = if first_frame {
        Outcome::Close
    } else {
        error.outcome()
    };
    format!(
        "error: frame at byte {offset} (type 0x{type_code:02X}, {body_len} body bytes): {error}; {}",
        outcome_text(outcome, first_frame)
    )
}

/// Decodes `bytes`, writing JSON lines to `out` and one report line per bad frame to `errors`.
pub(crate) fn decode(
    bytes: &[u8],
    settings: Settings,
    out: &mut dyn Write,
    errors: &mut dyn Write,
) -> Result<(), DecodeError> {
    let mut deframer = Deframer::new(settings.max_body);
    let mut input = bytes;
    let mut dialect = settings.dialect.fixed();
    let (mut total, mut failed) = (0usize, 0usize);
    // Where the last request for a frame started: where a truncated final frame begins.
    let mut last_start;
    loop {
        let offset = deframer.stream_offset();
        last_start = offset;
        let frame = match deframer.next_frame(&mut input) {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(e) => return Err(framing_error(&e, offset, bytes.len())),
        };
        total += 1;
        let detecting = dialect.is_none();
        let frame_dialect = match dialect {
            Some(d) => d,
            None => {
                let Some(d) = Dialect::detect(frame.type_code) else {
                    return Err(DecodeError::Undetectable {
                        offset,
                        type_code: frame.type_code,
                    });
                };
                debug!(
                    "dialect {d} detected from the first frame's type 0x{:02X}",
                    frame.type_code
                );
                dialect = Some(d);
                d
            }
        };
        trace!(
            offset,
            type_code = frame.type_code,
            body = frame.body.len(),
            "frame"
        );
        match frame_dialect.decode(frame.type_code, frame.body) {
            Ok(message) => {
                let line = message_to_json(&message);
                if output::check(writeln!(out, "{line}"))? == Flow::ReaderGone {
                    return Ok(());
                }
            }
            Err(e) => {
                failed += 1;
                let line =
                    body_error_line(offset, frame.type_code, frame.body.len(), &e, detecting);
                // A report that cannot be written to stderr has nowhere else to go.
                let _ = writeln!(errors, "{line}");
            }
        }
    }
    if let Err(e) = deframer.finish() {
        return Err(framing_error(&e, last_start, bytes.len()));
    }
    if output::check(out.flush())? == Flow::ReaderGone {
        return Ok(());
    }
    if total == 0 {
        warn!("the input holds no frames");
    }
    if failed > 0 {
        return Err(DecodeError::FramesFailed { failed, total });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_decode(
        hex_text: &str,
        dialect: DialectChoice,
    ) -> (Result<(), DecodeError>, String, String) {
        let bytes = hex::parse(hex_text).unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let settings = Settings {
            dialect,
            max_body: DEFAULT_MAX_BODY,
        };
        let result = decode(&bytes, settings, &mut out, &mut err);
        (
            result,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn decodes_several_frames() {
        let (result, out, err) = run_decode("01 02 08 01 05 00", DialectChoice::Draft2026);
        assert!(result.is_ok(), "{err}");
        assert_eq!(
            out,
            "{\"type\":\"OK\",\"stream_id\":1}\n{\"type\":\"KEEP_ALIVE\"}\n"
        );
    }

    #[test]
    fn a_bad_body_is_reported_and_skipped() {
        // RUN without resource (drop_and_error), then a good OK.
        let (result, out, err) = run_decode("06 02 08 07 01 02 08 01", DialectChoice::Draft2026);
        assert!(matches!(
            result,
            Err(DecodeError::FramesFailed {
                failed: 1,
                total: 2
            })
        ));
        assert_eq!(out, "{\"type\":\"OK\",\"stream_id\":1}\n");
        assert!(
            err.starts_with("error: frame at byte 0 (type 0x06, 2 body bytes): "),
            "{err}"
        );
        assert!(err.contains("outcome: drop_and_error"), "{err}");
        assert!(err.contains("stream id 7"), "{err}");
    }

    #[test]
    fn detection_uses_the_first_frame() {
        let (result, out, _) = run_decode(
            "08 1B 01 01 63 72 16 4A 05 61 6C 69 63 65 4A 05 64 65 76 30 31 4A 06 73 33 63 72 33 74 03 00",
            DialectChoice::Detect,
        );
        assert!(result.is_ok());
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("{\"type\":\"CONNECT\""), "{out}");
        assert_eq!(lines[1], "{\"type\":\"KEEP_ALIVE\"}");
        let (result, _, _) = run_decode("05 00", DialectChoice::Detect);
        let err = result.unwrap_err();
        assert_eq!(err.exit(), Exit::Usage);
        assert!(err.to_string().contains("--dialect"), "{err}");
    }

    #[test]
    fn framing_errors_stop_with_their_offset() {
        let (result, out, _) = run_decode("05 00 01 81 80 10", DialectChoice::Draft2026);
        assert_eq!(out, "{\"type\":\"KEEP_ALIVE\"}\n");
        let err = result.unwrap_err();
        assert_eq!(err.exit(), Exit::Data);
        let text = err.to_string();
        assert!(text.contains("at byte 2"), "{text}");
        assert!(text.contains("--max-body"), "{text}");
        let (result, _, _) = run_decode("05 00 01 05 01", DialectChoice::Draft2026);
        let text = result.unwrap_err().to_string();
        assert!(text.contains("at byte 2"), "{text}");
        assert!(text.contains("after 3 of its bytes"), "{text}");
    }

    #[test]
    fn empty_input_is_fine() {
        let (result, out, err) = run_decode("", DialectChoice::Detect);
        assert!(result.is_ok());
        assert!(out.is_empty() && err.is_empty());
    }
}
