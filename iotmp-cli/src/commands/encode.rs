//! `iotmp encode`: message JSON objects in (the form `iotmp decode` prints), frames out.
//!
//! Each message is encoded on its own; one that cannot be read or encoded is reported with its
//! line number and skipped, so that one typo in a long file shows every other problem too. The
//! exit status still says that something was skipped.

use std::io::{IsTerminal as _, Write};

use iotmp_proto::json::message::message_from_json;
use iotmp_proto::{Dialect, Flavour};
use thiserror::Error;
use tracing::debug;

use crate::cli::EncodeArgs;
use crate::config::EncodeConfig;
use crate::exit::Exit;
use crate::hex;
use crate::input::{InputError, Source, means_stdin};
use crate::output::{self, Flow, OutputError};
use crate::values::PsonChoice;

/// Why `iotmp encode` failed.
#[derive(Debug, Error)]
pub(crate) enum EncodeError {
    /// No dialect anywhere.
    #[error(
        "encode needs a dialect: pass --dialect 2020 or --dialect 2026 (or set IOTMP_DIALECT, or \
         `dialect` in the [encode] table of the config file)"
    )]
    NoDialect,
    /// Raw frames would garble the terminal.
    #[error(
        "refusing to write binary frames to a terminal: redirect stdout to a file or a pipe, or drop --binary"
    )]
    BinaryToTerminal,
    /// The input could not be read.
    #[error(transparent)]
    Input(#[from] InputError),
    /// Some messages were not encoded (each was reported on its own line).
    #[error("{failed} of {total} messages were not encoded (see the lines above)")]
    MessagesFailed {
        /// Messages that failed.
        failed: usize,
        /// Messages seen.
        total: usize,
    },
    /// stdout failed.
    #[error(transparent)]
    Output(#[from] OutputError),
}

impl EncodeError {
    /// The exit status for this failure.
    pub(crate) const fn exit(&self) -> Exit {
        match self {
            EncodeError::NoDialect | EncodeError::BinaryToTerminal => Exit::Usage,
            EncodeError::Input(e) => e.exit(),
            EncodeError::MessagesFailed { .. } => Exit::Data,
            EncodeError::Output(e) => e.exit(),
        }
    }
}

/// The merged options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Settings {
    /// `--dialect`.
    pub(crate) dialect: Dialect,
    /// `--pson` (2026 only).
    pub(crate) flavour: Flavour,
    /// `--binary`.
    pub(crate) binary: bool,
}

impl Settings {
    /// Command line and environment first, then the config file, then the defaults.
    pub(crate) fn resolve(
        args: &EncodeArgs,
        config: &EncodeConfig,
    ) -> Result<Settings, EncodeError> {
        let dialect = args
            .dialect
            .or(config.dialect)
            .ok_or(EncodeError::NoDialect)?
            .dialect();
        let pson = args.pson.or(config.pson).unwrap_or(PsonChoice::V2);
        if dialect == Dialect::Draft2020 && pson == PsonChoice::V1 {
            debug!("--pson has no effect on 2020 frames, which always use Protoson");
        }
        Ok(Settings {
            dialect,
            flavour: pson.flavour(),
            binary: args.binary || config.binary.unwrap_or(false),
        })
    }
}

/// One message to encode and how to name it in a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Item<'a> {
    /// "stdin line 3", "argument 2", "msgs.jsonl line 7".
    pub(crate) label: String,
    /// The JSON text.
    pub(crate) text: &'a str,
}

/// The messages of a JSON-lines text: blank lines and `#` comments are skipped.
pub(crate) fn lines<'a>(origin: &str, text: &'a str) -> Vec<Item<'a>> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            let line = line.trim();
            !line.is_empty() && !line.starts_with('#')
        })
        .map(|(i, line)| Item {
            label: format!("{origin} line {}", i + 1),
            text: line,
        })
        .collect()
}

/// Reads, checks and encodes one message.
fn encode_one(item: &Item<'_>, settings: Settings, frame: &mut Vec<u8>) -> Result<(), String> {
    let json: serde_json::Value = serde_json::from_str(item.text).map_err(|e| {
        format!(
            "not JSON ({e}); write one message object per line, like {{\"type\":\"KEEP_ALIVE\"}}"
        )
    })?;
    let message = message_from_json(&json)
        .map_err(|e| format!("not a message: {e} (the form is the one `iotmp decode` prints)"))?;
    settings
        .dialect
        .encode(&message, settings.flavour, frame)
        .map_err(|e| format!("cannot be encoded in {}: {e}", settings.dialect))
}

/// Encodes `items`, writing frames to `out` and one report line per failure to `errors`.
pub(crate) fn encode(
    items: &[Item<'_>],
    settings: Settings,
    out: &mut dyn Write,
    errors: &mut dyn Write,
) -> Result<(), EncodeError> {
    let mut failed = 0;
    let mut frame = Vec::new();
    for item in items {
        frame.clear();
        if let Err(problem) = encode_one(item, settings, &mut frame) {
            failed += 1;
            // A report that cannot be written to stderr has nowhere else to go.
            let _ = writeln!(errors, "error: {}: {problem}", item.label);
            continue;
        }
        let written = if settings.binary {
            out.write_all(&frame)
        } else {
            writeln!(out, "{}", hex::format(&frame))
        };
        if output::check(written)? == Flow::ReaderGone {
            return Ok(());
        }
    }
    if output::check(out.flush())? == Flow::ReaderGone {
        return Ok(());
    }
    if failed > 0 {
        return Err(EncodeError::MessagesFailed {
            failed,
            total: items.len(),
        });
    }
    Ok(())
}

/// Runs `iotmp encode`.
pub(crate) fn run(args: EncodeArgs, config: &EncodeConfig) -> Result<(), EncodeError> {
    let settings = Settings::resolve(&args, config)?;
    debug!(?settings, "encode");
    let stdout = std::io::stdout();
    if settings.binary && stdout.is_terminal() {
        return Err(EncodeError::BinaryToTerminal);
    }
    // Declared here so that the items can borrow from it whichever branch reads it.
    let text;
    let items = match &args.file {
        Some(path) => {
            let source = Source::from_path(path);
            text = source.read_text("JSON lines")?;
            lines(&source.name(), &text)
        }
        None if means_stdin(&args.messages) => {
            text = Source::Stdin.read_text("JSON lines")?;
            lines("stdin", &text)
        }
        // One message per argument; an argument may span lines (pretty-printed JSON).
        None => args
            .messages
            .iter()
            .enumerate()
            .map(|(i, text)| Item {
                label: format!("argument {}", i + 1),
                text,
            })
            .collect(),
    };
    let stderr = std::io::stderr();
    encode(&items, settings, &mut stdout.lock(), &mut stderr.lock())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dialect: Dialect) -> Settings {
        Settings {
            dialect,
            flavour: Flavour::V2,
            binary: false,
        }
    }

    fn run_encode(text: &str, settings: Settings) -> (Result<(), EncodeError>, Vec<u8>, String) {
        let items = lines("stdin", text);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let result = encode(&items, settings, &mut out, &mut err);
        (result, out, String::from_utf8(err).unwrap())
    }

    #[test]
    fn skips_blank_lines_and_comments() {
        let items = lines(
            "stdin",
            "# header\n\n  {\"type\":\"KEEP_ALIVE\"}\n   # indented\n{}\n",
        );
        let labels: Vec<&str> = items.iter().map(|i| i.label.as_str()).collect();
        assert_eq!(labels, ["stdin line 3", "stdin line 5"]);
    }

    #[test]
    fn hex_lines_out() {
        let (result, out, err) = run_encode(
            "{\"type\":\"RUN\",\"stream_id\":3,\"resource\":\"led\",\"payload\":true}\n{\"type\":\"KEEP_ALIVE\"}\n",
            settings(Dialect::Draft2026),
        );
        assert!(result.is_ok(), "{err}");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "06 09 08 03 22 83 6C 65 64 1A 61\n05 00\n"
        );
    }

    #[test]
    fn binary_out() {
        let mut s = settings(Dialect::Draft2020);
        s.binary = true;
        let (result, out, _) = run_encode("{\"type\":\"KEEP_ALIVE\"}", s);
        assert!(result.is_ok());
        assert_eq!(out, [0x03, 0x00]);
    }

    #[test]
    fn errors_name_the_line_and_the_rest_goes_on() {
        let (result, out, err) = run_encode(
            "{\"type\":\"KEEP_ALIVE\"}\nnot json\n{\"type\":\"NOPE\"}\n{\"type\":\"OK\",\"stream_id\":1,\"params\":200}\n{\"type\":\"OK\",\"stream_id\":1}\n",
            settings(Dialect::Draft2020),
        );
        assert!(matches!(
            result,
            Err(EncodeError::MessagesFailed {
                failed: 3,
                total: 5
            })
        ));
        assert_eq!(String::from_utf8(out).unwrap(), "03 00\n01 02 01 01\n");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 3, "{err}");
        assert!(
            lines[0].starts_with("error: stdin line 2: not JSON"),
            "{err}"
        );
        assert!(
            lines[1].starts_with("error: stdin line 3: not a message"),
            "{err}"
        );
        assert!(
            lines[2].starts_with("error: stdin line 4: cannot be encoded in 2020"),
            "{err}"
        );
    }
}
