//! The TOML config file (`--config FILE`, `IOTMP_CONFIG`).
//!
//! Its keys mirror the long options: global options at the top, then one table per command, so
//! that `iotmp decode --max-body 1MiB` and
//!
//! ```toml
//! [decode]
//! max-body = "1MiB"
//! ```
//!
//! mean the same thing. The command line and the environment win over the file (clap fills an
//! option from either; the file only fills what both left empty). Unknown keys are errors: a
//! misspelt key silently ignored is worse than a refusal that names it.
//!
//! Inputs (`--file`, positional arguments) are per invocation and have no config key.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

use crate::exit::Exit;
use crate::values::{ByteSize, DialectChoice, PsonChoice, WireDialect};

/// The whole config file. Every member is optional; an absent file is the default config.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct Config {
    /// `--verbose` as a count (1 = `-v`).
    pub(crate) verbose: Option<u8>,
    /// `[decode]`.
    pub(crate) decode: DecodeConfig,
    /// `[encode]`.
    pub(crate) encode: EncodeConfig,
    /// `[server]`: reserved for `iotmp server`, which adds its keys here.
    #[allow(dead_code, reason = "read by the server command once it exists")]
    pub(crate) server: ServerConfig,
    /// `[device]`: reserved for `iotmp device`, which adds its keys here.
    #[allow(dead_code, reason = "read by the device command once it exists")]
    pub(crate) device: DeviceConfig,
}

/// `[decode]`: the options of `iotmp decode`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct DecodeConfig {
    /// `--dialect`.
    pub(crate) dialect: Option<DialectChoice>,
    /// `--max-body`.
    pub(crate) max_body: Option<ByteSize>,
}

/// `[encode]`: the options of `iotmp encode`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct EncodeConfig {
    /// `--dialect`.
    pub(crate) dialect: Option<WireDialect>,
    /// `--pson`.
    pub(crate) pson: Option<PsonChoice>,
    /// `--binary`.
    pub(crate) binary: Option<bool>,
}

/// `[server]`: no keys yet. Kept (and strict) so that a config written for a later version
/// fails loudly here instead of being half understood.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct ServerConfig {}

/// `[device]`: no keys yet; see [`ServerConfig`].
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct DeviceConfig {}

/// A config file that cannot be used.
#[derive(Debug, Error)]
pub(crate) enum ConfigError {
    /// The file cannot be read.
    #[error(
        "cannot read the config file {}: check the path given by --config or IOTMP_CONFIG",
        path.display()
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not TOML of the expected shape.
    #[error(
        "the config file {} is not valid: fix the key named below (`iotmp --help` lists the keys)",
        path.display()
    )]
    Parse {
        /// The file.
        path: PathBuf,
        /// Where and what (toml's message quotes the line).
        #[source]
        source: toml::de::Error,
    },
}

impl ConfigError {
    /// Both are the user's to fix.
    pub(crate) const fn exit(&self) -> Exit {
        Exit::Usage
    }
}

impl Config {
    /// Reads `path`, or gives the default config when there is none.
    pub(crate) fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// Parses config text.
    pub(crate) fn parse(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_text_is_the_default() {
        let config = Config::parse("").unwrap();
        assert_eq!(config.verbose, None);
        assert_eq!(config.decode.dialect, None);
        assert_eq!(config.encode.binary, None);
    }

    #[test]
    fn keys_mirror_the_long_options() {
        let config = Config::parse(
            "verbose = 2\n\
             [decode]\ndialect = \"detect\"\nmax-body = \"1MiB\"\n\
             [encode]\ndialect = 2020\npson = \"v1\"\nbinary = true\n\
             [server]\n[device]\n",
        )
        .unwrap();
        assert_eq!(config.verbose, Some(2));
        assert_eq!(config.decode.dialect, Some(DialectChoice::Detect));
        assert_eq!(config.decode.max_body, Some(ByteSize::new(1 << 20)));
        assert_eq!(config.encode.dialect, Some(WireDialect::Draft2020));
        assert_eq!(config.encode.pson, Some(PsonChoice::V1));
        assert_eq!(config.encode.binary, Some(true));
    }

    #[test]
    fn sizes_may_be_plain_integers() {
        let config = Config::parse("[decode]\nmax-body = 4096\n").unwrap();
        assert_eq!(config.decode.max_body, Some(ByteSize::new(4096)));
    }

    #[test]
    fn mistakes_are_named() {
        for (text, needle) in [
            ("[decode]\nmax_body = 1\n", "max_body"),
            ("[encode]\ndialect = \"detect\"\n", "detect"),
            ("[decode]\ndialect = 2030\n", "2030"),
            ("[server]\nlisten = \"0.0.0.0:25204\"\n", "listen"),
            ("verbose = \"yes\"\n", "verbose"),
        ] {
            let err = Config::parse(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }
}
