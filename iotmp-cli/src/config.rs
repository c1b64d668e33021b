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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

use crate::commands::device::spec::Tables;
use crate::exit::Exit;
use crate::values::{
    ByteSize, DialectChoice, Listen, PsonChoice, RuntimeChoice, Span, WireDialect,
};

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
    /// `[server]`: the options of `iotmp server` (`db` is also read by the registry commands).
    pub(crate) server: ServerConfig,
    /// `[device]`: the options of `iotmp device`, and resource declarations.
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

/// `[server]`: the server's keys, also read by the registry commands (`iotmp user`,
/// `iotmp device add|list|remove`). Strict, so that a config written for a later version fails
/// loudly here instead of being half understood.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct ServerConfig {
    /// `--db`: the registry database.
    pub(crate) db: Option<PathBuf>,
    /// `--listen`.
    pub(crate) listen: Option<Listen>,
    /// `--tls-listen`.
    pub(crate) tls_listen: Option<Listen>,
    /// `--http`.
    pub(crate) http: Option<Listen>,
    /// `--https`.
    pub(crate) https: Option<bool>,
    /// `--tls-cert`.
    pub(crate) tls_cert: Option<PathBuf>,
    /// `--tls-key`.
    pub(crate) tls_key: Option<PathBuf>,
    /// `--client-ca`.
    pub(crate) client_ca: Option<PathBuf>,
    /// `--runtime`.
    pub(crate) runtime: Option<RuntimeChoice>,
    /// `--keep-alive-min`.
    pub(crate) keep_alive_min: Option<u32>,
    /// `--keep-alive-max`.
    pub(crate) keep_alive_max: Option<u32>,
    /// `--auth-deadline`.
    pub(crate) auth_deadline: Option<Span>,
    /// `--request-timeout`.
    pub(crate) request_timeout: Option<Span>,
    /// `--max-connections`.
    pub(crate) max_connections: Option<usize>,
    /// `--rate-limit`.
    pub(crate) rate_limit: Option<u32>,
    /// `--rate-burst`.
    pub(crate) rate_burst: Option<u32>,
    /// `--ban-after`.
    pub(crate) ban_after: Option<u32>,
    /// `--failure-window`.
    pub(crate) failure_window: Option<Span>,
    /// `--ban-time`.
    pub(crate) ban_time: Option<Span>,
    /// `--max-sources`.
    pub(crate) max_sources: Option<usize>,
    /// `--allow`: a list of addresses or prefixes.
    pub(crate) allow: Option<Vec<String>>,
    /// `--max-frame`.
    pub(crate) max_frame: Option<ByteSize>,
    /// `--max-streams`.
    pub(crate) max_streams: Option<usize>,
    /// `--max-requests`.
    pub(crate) max_requests: Option<usize>,
    /// `--max-outgoing`.
    pub(crate) max_outgoing: Option<ByteSize>,
    /// `--http-max-body`.
    pub(crate) http_max_body: Option<ByteSize>,
    /// `--http-max-connections`.
    pub(crate) http_max_connections: Option<usize>,
    /// `--sink-queue`.
    pub(crate) sink_queue: Option<usize>,
}

/// `[device]`: the options of `iotmp device` (same names as the long options), plus resource
/// declarations in the tables of a resource file (`[device.cmd]`, `[device.sine]`, …, see
/// [`Tables`]). Those are spelled out here rather than flattened: serde cannot combine
/// `flatten` with `deny_unknown_fields`, and a misspelt key must stay an error.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct DeviceConfig {
    /// `--server`.
    pub(crate) server: Option<String>,
    /// `--host`.
    pub(crate) host: Option<String>,
    /// `--port`.
    pub(crate) port: Option<u16>,
    /// `--tls`.
    pub(crate) tls: Option<bool>,
    /// `--ca`.
    pub(crate) ca: Option<PathBuf>,
    /// `--dialect`.
    pub(crate) dialect: Option<WireDialect>,
    /// `--keep-alive`.
    pub(crate) keep_alive: Option<u32>,
    /// `--backoff-first`.
    pub(crate) backoff_first: Option<Span>,
    /// `--backoff-max`.
    pub(crate) backoff_max: Option<Span>,
    /// `--runtime`.
    pub(crate) runtime: Option<RuntimeChoice>,
    /// `--user`.
    pub(crate) user: Option<String>,
    /// `--device`.
    pub(crate) device: Option<String>,
    /// `--credential` (here it is not visible to other users, if the file is yours only).
    pub(crate) credential: Option<String>,
    /// `--cert`.
    pub(crate) cert: Option<PathBuf>,
    /// `--key`.
    pub(crate) key: Option<PathBuf>,
    /// `--resources`.
    pub(crate) resources: Option<PathBuf>,
    /// `--cmd-timeout`.
    pub(crate) cmd_timeout: Option<Span>,
    /// `--max-value-size`.
    pub(crate) max_value_size: Option<ByteSize>,
    /// `--seed`.
    pub(crate) seed: Option<u64>,
    /// `metrics = true`: `--metrics`.
    pub(crate) metrics: Option<bool>,
    /// `[device.cmd]`.
    pub(crate) cmd: BTreeMap<String, toml::Value>,
    /// `[device.file]`.
    pub(crate) file: BTreeMap<String, toml::Value>,
    /// `[device.const]`.
    #[serde(rename = "const")]
    pub(crate) constant: BTreeMap<String, toml::Value>,
    /// `[device.sine]`.
    pub(crate) sine: BTreeMap<String, toml::Value>,
    /// `[device.random-walk]`.
    pub(crate) random_walk: BTreeMap<String, toml::Value>,
    /// `[device.counter]`.
    pub(crate) counter: BTreeMap<String, toml::Value>,
    /// `[device.input-cmd]`.
    pub(crate) input_cmd: BTreeMap<String, toml::Value>,
    /// `[device.input-file]`.
    pub(crate) input_file: BTreeMap<String, toml::Value>,
    /// `[device.on-change]`.
    pub(crate) on_change: BTreeMap<String, toml::Value>,
}

impl DeviceConfig {
    /// The resource declarations of the section, in the shape of a resource file.
    pub(crate) fn tables(&self) -> Tables {
        Tables {
            metrics: self.metrics,
            cmd: self.cmd.clone(),
            file: self.file.clone(),
            constant: self.constant.clone(),
            sine: self.sine.clone(),
            random_walk: self.random_walk.clone(),
            counter: self.counter.clone(),
            input_cmd: self.input_cmd.clone(),
            input_file: self.input_file.clone(),
            on_change: self.on_change.clone(),
        }
    }
}

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
             [server]\ndb = \"/var/lib/iotmp/iotmp.db\"\n[device]\n",
        )
        .unwrap();
        assert_eq!(config.verbose, Some(2));
        assert_eq!(config.decode.dialect, Some(DialectChoice::Detect));
        assert_eq!(config.decode.max_body, Some(ByteSize::new(1 << 20)));
        assert_eq!(config.encode.dialect, Some(WireDialect::Draft2020));
        assert_eq!(config.encode.pson, Some(PsonChoice::V1));
        assert_eq!(config.encode.binary, Some(true));
        assert_eq!(
            config.server.db.as_deref(),
            Some(Path::new("/var/lib/iotmp/iotmp.db"))
        );
    }

    #[test]
    fn device_section() {
        let config = Config::parse(
            "[device]\nserver = \"iotmp://h\"\nkeep-alive = 30\ncmd-timeout = \"2s\"\n\
             max-value-size = \"1MiB\"\nruntime = \"async-std\"\nmetrics = true\n\
             [device.cmd]\nup = \"uptime\"\n[device.sine]\ntemp = { period = 10 }\n",
        )
        .unwrap();
        let device = &config.device;
        assert_eq!(device.server.as_deref(), Some("iotmp://h"));
        assert_eq!(device.keep_alive, Some(30));
        assert_eq!(device.cmd_timeout, Some(Span::from_secs(2)));
        assert_eq!(device.max_value_size, Some(ByteSize::new(1 << 20)));
        assert_eq!(device.runtime, Some(RuntimeChoice::AsyncStd));
        let tables = device.tables();
        assert_eq!(tables.metrics, Some(true));
        assert_eq!(tables.cmd.len(), 1);
        assert_eq!(tables.sine.len(), 1);
        let err = Config::parse("[device]\nservr = \"iotmp://h\"\n").unwrap_err();
        assert!(err.to_string().contains("servr"), "{err}");
        let err = Config::parse("[device.sines]\nt = {}\n").unwrap_err();
        assert!(err.to_string().contains("sines"), "{err}");
    }

    #[test]
    fn server_section() {
        let config = Config::parse(
            "[server]\nlisten = \"0.0.0.0:25204\"\ntls-listen = \"off\"\nhttp = \"[::1]:8080\"\n\
             https = true\ntls-cert = \"c.pem\"\ntls-key = \"k.pem\"\nclient-ca = \"ca.pem\"\n\
             runtime = \"mio\"\nkeep-alive-min = 10\nkeep-alive-max = 600\n\
             auth-deadline = \"5s\"\nrequest-timeout = 2.5\n",
        )
        .unwrap();
        let server = &config.server;
        assert_eq!(
            server.listen.and_then(Listen::addr),
            Some(std::net::SocketAddr::from(([0, 0, 0, 0], 25204)))
        );
        assert_eq!(server.tls_listen.map(Listen::addr), Some(None));
        assert!(server.http.and_then(Listen::addr).is_some());
        assert_eq!(server.https, Some(true));
        assert_eq!(server.client_ca.as_deref(), Some(Path::new("ca.pem")));
        assert_eq!(server.runtime, Some(RuntimeChoice::Mio));
        assert_eq!(
            (server.keep_alive_min, server.keep_alive_max),
            (Some(10), Some(600))
        );
        assert_eq!(server.auth_deadline, Some(Span::from_secs(5)));
        assert_eq!(
            server.request_timeout.map(Span::get),
            Some(std::time::Duration::from_millis(2500))
        );
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
            ("[server]\nlisen = \"0.0.0.0:25204\"\n", "lisen"),
            ("[server]\nlisten = \"localhost\"\n", "IP:PORT"),
            ("verbose = \"yes\"\n", "verbose"),
        ] {
            let err = Config::parse(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }
}
