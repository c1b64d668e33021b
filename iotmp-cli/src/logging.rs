//! Logs: `tracing` events on stderr, so that stdout carries only results (JSON lines, hex,
//! transcripts) and can be piped.
//!
//! The filter is `RUST_LOG` when it is set (it wins: it is how one asks for one module's logs),
//! else a level from `-v` (or the config's `verbose`): warnings only by default, then info,
//! debug and trace.

use std::env::VarError;
use std::io::IsTerminal as _;

use thiserror::Error;
use tracing_subscriber::EnvFilter;

use crate::exit::Exit;

/// Why logging could not be set up.
#[derive(Debug, Error)]
pub(crate) enum LogError {
    /// `RUST_LOG` is set but is not a filter.
    #[error(
        "RUST_LOG={spec:?} is not a valid log filter: fix it (e.g. RUST_LOG=debug) or unset it"
    )]
    BadFilter {
        /// The variable's value.
        spec: String,
        /// The parser's complaint.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// `RUST_LOG` is not UTF-8.
    #[error("RUST_LOG is not valid UTF-8: fix it (e.g. RUST_LOG=debug) or unset it")]
    NotUnicode,
}

impl LogError {
    /// The environment is the user's to fix.
    pub(crate) const fn exit(&self) -> Exit {
        Exit::Usage
    }
}

/// The level `-v` repeated `verbose` times asks for.
const fn level(verbose: u8) -> &'static str {
    match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    }
}

/// The filter to use, before anything is installed (kept apart so it can be tested).
fn filter(rust_log: Result<String, VarError>, verbose: u8) -> Result<EnvFilter, LogError> {
    match rust_log {
        Ok(spec) if !spec.trim().is_empty() => {
            EnvFilter::builder()
                .parse(&spec)
                .map_err(|source| LogError::BadFilter {
                    spec: spec.clone(),
                    source,
                })
        }
        // An empty RUST_LOG is how shells unset things by accident: treat it as unset.
        Ok(_) | Err(VarError::NotPresent) => Ok(EnvFilter::new(level(verbose))),
        Err(VarError::NotUnicode(_)) => Err(LogError::NotUnicode),
    }
}

/// Installs the stderr subscriber. Call once, early.
pub(crate) fn init(verbose: u8) -> Result<(), LogError> {
    let filter = filter(std::env::var("RUST_LOG"), verbose)?;
    // A second subscriber (only possible in tests) would fail to install; the first one keeps
    // working, so that failure is not worth reporting.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbosity_maps_to_levels() {
        assert_eq!(level(0), "warn");
        assert_eq!(level(1), "info");
        assert_eq!(level(2), "debug");
        assert_eq!(level(9), "trace");
    }

    #[test]
    fn rust_log_wins_and_is_checked() {
        let f = filter(Ok("debug".into()), 0).unwrap();
        assert_eq!(f.to_string(), "debug");
        let f = filter(Ok("  ".into()), 1).unwrap();
        assert_eq!(f.to_string(), "info");
        let f = filter(Err(VarError::NotPresent), 2).unwrap();
        assert_eq!(f.to_string(), "debug");
        let err = filter(Ok("iotmp=loud".into()), 0).unwrap_err();
        assert!(err.to_string().contains("RUST_LOG=\"iotmp=loud\""), "{err}");
    }
}
