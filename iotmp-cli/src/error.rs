//! The error every failure of `iotmp` ends up as, and how it is printed.
//!
//! Each part of the program has its own typed error (config, logging, one per subcommand) that
//! knows its exit status; this enum only gathers them so that `main` has one thing to report.

use std::error::Error as _;
use std::io::Write;

use thiserror::Error;

use crate::commands::bench::BenchError;
use crate::commands::decode::DecodeError;
use crate::commands::demo::DemoError;
use crate::commands::device::DeviceError;
use crate::commands::encode::EncodeError;
use crate::commands::registry::RegistryCmdError;
use crate::commands::replay::ReplayCmdError;
use crate::commands::server::ServerError;
use crate::config::ConfigError;
use crate::exit::Exit;
use crate::logging::LogError;

/// Anything that makes `iotmp` exit with a non-zero status.
#[derive(Debug, Error)]
pub(crate) enum CliError {
    /// The config file.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Logging setup (RUST_LOG).
    #[error(transparent)]
    Log(#[from] LogError),
    /// `iotmp decode`.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// `iotmp encode`.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// `iotmp replay`.
    #[error(transparent)]
    Replay(#[from] ReplayCmdError),
    /// `iotmp user …`, `iotmp device add|list|remove`.
    #[error(transparent)]
    Registry(#[from] RegistryCmdError),
    /// `iotmp device [connect]`.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// `iotmp server`.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// `iotmp demo`.
    #[error(transparent)]
    Demo(#[from] DemoError),
    /// `iotmp bench`.
    #[error(transparent)]
    Bench(#[from] BenchError),
}

impl CliError {
    /// The process exit status.
    pub(crate) const fn exit(&self) -> Exit {
        match self {
            CliError::Config(e) => e.exit(),
            CliError::Log(e) => e.exit(),
            CliError::Decode(e) => e.exit(),
            CliError::Encode(e) => e.exit(),
            CliError::Replay(e) => e.exit(),
            CliError::Registry(e) => e.exit(),
            CliError::Device(e) => e.exit(),
            CliError::Server(e) => e.exit(),
            CliError::Demo(e) => e.exit(),
            CliError::Bench(e) => e.exit(),
        }
    }

    /// Writes `error: <what happened and what to do>`, then one `caused by:` line per cause.
    /// A cause that spans lines (toml quotes the offending line) is indented to stay readable.
    pub(crate) fn report(&self, out: &mut dyn Write) {
        let mut last = self.to_string();
        let _ = writeln!(out, "error: {last}");
        let mut cause = self.source();
        while let Some(e) = cause {
            let text = e.to_string();
            // Some wrappers repeat their inner error's message word for word; once is enough.
            if text != last {
                let indented = text.trim_end().replace('\n', "\n    ");
                let _ = writeln!(out, "  caused by: {indented}");
            }
            last = text;
            cause = e.source();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn report_lists_causes() {
        let err =
            CliError::from(Config::load(Some("/nonexistent/iotmp.toml".as_ref())).unwrap_err());
        assert_eq!(err.exit(), Exit::Usage);
        let mut out = Vec::new();
        err.report(&mut out);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].starts_with("error: cannot read the config file /nonexistent/iotmp.toml"));
        assert!(lines[1].starts_with("  caused by: "), "{text}");
    }
}
