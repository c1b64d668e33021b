//! `iotmp replay FILE`: feeds a recorded trace to a fresh session (`iotmp_proto::trace::replay`)
//! and prints the transcript; a divergence is a data error that names the trace line, the
//! recorded output and what the session produced instead.

use std::io::Write as _;

use iotmp_proto::trace::{Divergence, ReplayError, replay};
use thiserror::Error;
use tracing::info;

use crate::cli::ReplayArgs;
use crate::exit::Exit;
use crate::input::{InputError, Source};
use crate::output::{self, OutputError};

/// Why `iotmp replay` failed.
#[derive(Debug, Error)]
pub(crate) enum ReplayCmdError {
    /// The trace could not be read.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The file is not a trace the replayer understands.
    #[error(
        "{file} is not a valid trace (line {line}: {message}); give a file written by a session's \
         trace recorder (it starts with 'iotmp-trace 1')"
    )]
    Format {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The session did not reproduce the recording.
    #[error(
        "the replay of {file} diverged at line {line}: the session no longer produces what was \
         recorded (a behaviour change, or an edited trace)\n  expected: {expected}\n  actual:   {actual}",
        line = divergence.line,
        expected = divergence.expected,
        actual = divergence.actual
    )]
    Diverged {
        /// The file.
        file: String,
        /// Where and how.
        divergence: Divergence,
    },
    /// A failure the replayer added after this command was written.
    #[error("the replay of {file} failed: {message}")]
    Other {
        /// The file.
        file: String,
        /// The replayer's message.
        message: String,
    },
    /// stdout failed.
    #[error(transparent)]
    Output(#[from] OutputError),
}

impl ReplayCmdError {
    /// The exit status for this failure.
    pub(crate) const fn exit(&self) -> Exit {
        match self {
            ReplayCmdError::Input(e) => e.exit(),
            ReplayCmdError::Format { .. }
            | ReplayCmdError::Diverged { .. }
            | ReplayCmdError::Other { .. } => Exit::Data,
            ReplayCmdError::Output(e) => e.exit(),
        }
    }
}

/// Replays trace `text` (named `file` in messages) and returns the transcript.
pub(crate) fn check(file: &str, text: &str) -> Result<String, ReplayCmdError> {
    let file = file.to_owned();
    match replay(text) {
        Ok(replayed) => {
            info!(
                "{file}: replayed {} steps of a {} trace; every output matched",
                replayed.steps, replayed.role
            );
            Ok(replayed.transcript)
        }
        Err(ReplayError::Format { line, message }) => Err(ReplayCmdError::Format {
            file,
            line,
            message,
        }),
        Err(ReplayError::Diverged(divergence)) => {
            Err(ReplayCmdError::Diverged { file, divergence })
        }
        // ReplayError is non-exhaustive.
        Err(other) => Err(ReplayCmdError::Other {
            file,
            message: other.to_string(),
        }),
    }
}

/// Runs `iotmp replay`.
pub(crate) fn run(args: ReplayArgs) -> Result<(), ReplayCmdError> {
    let source = Source::from_path(&args.trace);
    let text = source.read_text("a trace")?;
    let transcript = check(&source.name(), &text)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    // A reader that went away (`| head`) wanted no more: that is not a failure.
    output::check(
        out.write_all(transcript.as_bytes())
            .and_then(|()| out.flush()),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_a_trace() {
        let err = check("x.trace", "hello\n").unwrap_err();
        assert_eq!(err.exit(), Exit::Data);
        assert!(
            err.to_string()
                .contains("x.trace is not a valid trace (line 1"),
            "{err}"
        );
    }
}
