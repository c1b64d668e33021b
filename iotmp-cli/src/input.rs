//! Where a command's input comes from: stdin or a file, read whole.
//!
//! The commands here work on bounded inputs (captures, message lists, traces), so reading all
//! of it first keeps offsets and line numbers simple and exact.

use std::io::{IsTerminal as _, Read as _};
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::exit::Exit;

/// An input: stdin, or a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// Standard input.
    Stdin,
    /// A file.
    File(PathBuf),
}

/// An input that cannot be read.
#[derive(Debug, Error)]
pub(crate) enum InputError {
    /// The file cannot be opened: a wrong path, most likely.
    #[error("cannot open {}: check the path", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Reading failed after the input was opened.
    #[error("reading {name} failed")]
    Read {
        /// "stdin" or the path.
        name: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Text was expected.
    #[error("{name} is not UTF-8 text: give a text file (binary frames go to `decode --file`)")]
    NotText {
        /// "stdin" or the path.
        name: String,
        /// Where the first bad byte is.
        #[source]
        source: std::string::FromUtf8Error,
    },
}

impl InputError {
    /// A wrong path is the user's to fix; a failing read is the machine's; bad bytes are data.
    pub(crate) const fn exit(&self) -> Exit {
        match self {
            InputError::Open { .. } => Exit::Usage,
            InputError::Read { .. } => Exit::Failure,
            InputError::NotText { .. } => Exit::Data,
        }
    }
}

impl Source {
    /// `-` is stdin, anything else a file.
    pub(crate) fn from_path(path: &Path) -> Source {
        if path.as_os_str() == "-" {
            Source::Stdin
        } else {
            Source::File(path.to_owned())
        }
    }

    /// How messages name it.
    pub(crate) fn name(&self) -> String {
        match self {
            Source::Stdin => "stdin".to_owned(),
            Source::File(path) => path.display().to_string(),
        }
    }

    /// Reads everything. `what` describes the expected content for the hint printed when stdin
    /// is a terminal: without it, a forgotten pipe looks like a hang.
    pub(crate) fn read_bytes(&self, what: &str) -> Result<Vec<u8>, InputError> {
        let mut bytes = Vec::new();
        match self {
            Source::Stdin => {
                let stdin = std::io::stdin();
                if stdin.is_terminal() {
                    eprintln!("iotmp: reading {what} from stdin; end with Ctrl-D");
                }
                stdin
                    .lock()
                    .read_to_end(&mut bytes)
                    .map_err(|source| InputError::Read {
                        name: self.name(),
                        source,
                    })?;
            }
            Source::File(path) => {
                let mut file = std::fs::File::open(path).map_err(|source| InputError::Open {
                    path: path.clone(),
                    source,
                })?;
                file.read_to_end(&mut bytes)
                    .map_err(|source| InputError::Read {
                        name: self.name(),
                        source,
                    })?;
            }
        }
        Ok(bytes)
    }

    /// Reads everything as UTF-8 text.
    pub(crate) fn read_text(&self, what: &str) -> Result<String, InputError> {
        let bytes = self.read_bytes(what)?;
        String::from_utf8(bytes).map_err(|source| InputError::NotText {
            name: self.name(),
            source,
        })
    }
}

/// True for the positional arguments that mean "read stdin instead": none, or a lone `-`.
pub(crate) fn means_stdin(args: &[String]) -> bool {
    matches!(args, [] | [_]) && args.iter().all(|a| a == "-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dash_is_stdin() {
        assert_eq!(Source::from_path(Path::new("-")), Source::Stdin);
        assert_eq!(
            Source::from_path(Path::new("a.bin")),
            Source::File("a.bin".into())
        );
        assert!(means_stdin(&[]));
        assert!(means_stdin(&["-".to_owned()]));
        assert!(!means_stdin(&["0A".to_owned()]));
        assert!(!means_stdin(&["-".to_owned(), "-".to_owned()]));
    }

    #[test]
    fn missing_file_is_a_usage_error() {
        let err = Source::File("/nonexistent/iotmp-input".into())
            .read_bytes("frames")
            .unwrap_err();
        assert_eq!(err.exit(), Exit::Usage);
        assert!(err.to_string().contains("check the path"), "{err}");
    }
}
