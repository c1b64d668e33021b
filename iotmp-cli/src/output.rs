//! Results go to stdout; this is what a failed write to it means.

use std::io;

use thiserror::Error;

use crate::exit::Exit;

/// stdout could not be written.
#[derive(Debug, Error)]
#[error("cannot write the results to stdout")]
pub(crate) struct OutputError(#[source] pub(crate) io::Error);

impl OutputError {
    /// The data was fine; the machine failed.
    pub(crate) const fn exit(&self) -> Exit {
        Exit::Failure
    }
}

/// Whether a command goes on after a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// The write worked.
    Continue,
    /// The reader closed the pipe (`iotmp decode … | head -1`): nobody wants more output, so
    /// the command stops quietly, as `cat` does.
    ReaderGone,
}

/// Classifies the result of a write to stdout.
pub(crate) fn check(result: io::Result<()>) -> Result<Flow, OutputError> {
    match result {
        Ok(()) => Ok(Flow::Continue),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(Flow::ReaderGone),
        Err(e) => Err(OutputError(e)),
    }
}
