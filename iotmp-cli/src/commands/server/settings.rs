//! The options of `iotmp server`: command line and `IOTMP_*` variables, then `[server]` in the
//! config file, then the defaults; checked together before anything is opened or bound.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use iotmp_proto::ServerConfig as SessionConfig;
use iotmp_proto::admission::{AdmissionConfig, IpPrefix, PrefixError};
use iotmp_proto::tls::{self, TlsError};
use thiserror::Error;

use crate::cli::ServerArgs;
use crate::config::ServerConfig;
use crate::exit::Exit;
use crate::store::DEFAULT_DB;
use crate::values::{ByteSize, Listen, RuntimeChoice, Span};

/// `--listen` when none is given: plain TCP on loopback, the spec's port (§9).
pub(crate) const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(LOOPBACK, 25204);
/// `--tls-listen` when none is given (used only with a certificate).
pub(crate) const DEFAULT_TLS_LISTEN: SocketAddr = SocketAddr::new(LOOPBACK, 25206);
/// `--http` when none is given.
pub(crate) const DEFAULT_HTTP: SocketAddr = SocketAddr::new(LOOPBACK, 8080);

const LOOPBACK: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// Options that cannot work, alone or together. All are the user's to fix.
#[derive(Debug, Error)]
pub(crate) enum SettingsError {
    /// `--tls-cert` without `--tls-key`, or the reverse.
    #[error("{given} needs {missing} too: a TLS certificate comes with its private key")]
    HalfIdentity {
        /// The option given.
        given: &'static str,
        /// The one missing.
        missing: &'static str,
    },
    /// An option that needs the server's certificate.
    #[error("{0} needs --tls-cert and --tls-key (the server's certificate and key)")]
    NeedsCertificate(&'static str),
    /// `--client-ca` while the TLS listener is off.
    #[error(
        "--client-ca verifies device certificates on the TLS listener, which --tls-listen turns \
         off: give it an address, or drop --client-ca"
    )]
    ClientCaWithoutListener,
    /// No device could connect.
    #[error(
        "every device listener is off: give --listen an address, or --tls-cert and --tls-key \
         with a --tls-listen address"
    )]
    NoDeviceListener,
    /// `--keep-alive-min` above `--keep-alive-max`, or 0.
    #[error(
        "the accepted keep-alive range {min}..={max} s is empty or starts at 0: give \
         1 <= --keep-alive-min <= --keep-alive-max"
    )]
    KeepAliveRange {
        /// Smallest.
        min: u32,
        /// Largest.
        max: u32,
    },
    /// A zero duration where time must pass.
    #[error("{0} must be longer than 0")]
    ZeroDuration(&'static str),
    /// A limit that must be at least 1.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    /// An `allow` entry of the config file that is no address or prefix.
    #[error("allow in the config file: {0}")]
    Allow(#[source] PrefixError),
    /// A TLS file cannot be read.
    #[error("cannot read {what} {}: check the path", path.display())]
    Read {
        /// Which option.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TLS files do not make a configuration.
    #[error("the TLS files cannot be used: check --tls-cert, --tls-key and --client-ca")]
    Tls(#[source] TlsError),
}

impl SettingsError {
    /// Every one of them is fixed by changing the invocation or the files it names.
    pub(crate) const fn exit(&self) -> Exit {
        Exit::Usage
    }
}

/// The server's certificate files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsFiles {
    /// Certificate chain, PEM.
    pub(crate) cert: PathBuf,
    /// Private key, PEM.
    pub(crate) key: PathBuf,
    /// CA of device certificates, PEM.
    pub(crate) client_ca: Option<PathBuf>,
}

/// Everything resolved, before files are read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Options {
    /// The registry database.
    pub(crate) db: PathBuf,
    /// Plain TCP device listener.
    pub(crate) tcp: Option<SocketAddr>,
    /// TLS device listener (only with `tls`).
    pub(crate) tls_listen: Option<SocketAddr>,
    /// HTTP API listener.
    pub(crate) http: Option<SocketAddr>,
    /// The API over HTTPS.
    pub(crate) https: bool,
    /// The server's certificate, if any.
    pub(crate) tls: Option<TlsFiles>,
    /// The device-side driver.
    pub(crate) runtime: RuntimeChoice,
    /// Session limits and timers.
    pub(crate) session: SessionConfig,
    /// Where to write replay traces (`--record`).
    pub(crate) record: Option<PathBuf>,
    /// Who may connect.
    pub(crate) admission: AdmissionConfig,
    /// Limits of the HTTP API.
    pub(crate) api: ApiOptions,
}

/// The HTTP API's limits that have options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiOptions {
    /// `--http-max-body`.
    pub(crate) max_body: usize,
    /// `--http-max-connections`.
    pub(crate) max_connections: usize,
    /// `--sink-queue`.
    pub(crate) sink_queue: usize,
}

/// Resolves and checks the options.
pub(crate) fn resolve(args: &ServerArgs, config: &ServerConfig) -> Result<Options, SettingsError> {
    let listen = |given: Option<Listen>, file: Option<Listen>, default| {
        given.or(file).map_or(Some(default), Listen::addr)
    };
    let tcp = listen(args.listen, config.listen, DEFAULT_LISTEN);
    let tls_listen = listen(args.tls_listen, config.tls_listen, DEFAULT_TLS_LISTEN);
    let http = listen(args.http, config.http, DEFAULT_HTTP);
    let https = args.https || config.https.unwrap_or(false);

    let cert = args.tls_cert.clone().or_else(|| config.tls_cert.clone());
    let key = args.tls_key.clone().or_else(|| config.tls_key.clone());
    let client_ca = args.client_ca.clone().or_else(|| config.client_ca.clone());
    let tls = match (cert, key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert,
            key,
            client_ca,
        }),
        (Some(_), None) => {
            return Err(SettingsError::HalfIdentity {
                given: "--tls-cert",
                missing: "--tls-key",
            });
        }
        (None, Some(_)) => {
            return Err(SettingsError::HalfIdentity {
                given: "--tls-key",
                missing: "--tls-cert",
            });
        }
        (None, None) if client_ca.is_some() => {
            return Err(SettingsError::NeedsCertificate("--client-ca"));
        }
        (None, None) if https => return Err(SettingsError::NeedsCertificate("--https")),
        (None, None) => None,
    };
    // Without a certificate there is no TLS listener, whatever its address.
    let tls_listen = tls_listen.filter(|_| tls.is_some());
    if tls_listen.is_none() && tls.as_ref().is_some_and(|t| t.client_ca.is_some()) {
        return Err(SettingsError::ClientCaWithoutListener);
    }
    if tcp.is_none() && tls_listen.is_none() {
        return Err(SettingsError::NoDeviceListener);
    }

    let defaults = SessionConfig::default();
    let keep_alive_min = args
        .keep_alive_min
        .or(config.keep_alive_min)
        .unwrap_or(defaults.keep_alive_min);
    let keep_alive_max = args
        .keep_alive_max
        .or(config.keep_alive_max)
        .unwrap_or(defaults.keep_alive_max);
    if keep_alive_min == 0 || keep_alive_min > keep_alive_max {
        return Err(SettingsError::KeepAliveRange {
            min: keep_alive_min,
            max: keep_alive_max,
        });
    }
    let duration = |given: Option<crate::values::Span>, file, default: Duration, name| {
        let value = given.or(file).map_or(default, crate::values::Span::get);
        if value.is_zero() {
            Err(SettingsError::ZeroDuration(name))
        } else {
            Ok(value)
        }
    };
    let auth_deadline = duration(
        args.auth_deadline,
        config.auth_deadline,
        defaults.auth_deadline,
        "--auth-deadline",
    )?;
    let request_timeout = duration(
        args.request_timeout,
        config.request_timeout,
        defaults.request_timeout,
        "--request-timeout",
    )?;
    let at_least_one = |value: Option<usize>, default: usize, name| match value {
        Some(0) => Err(SettingsError::Zero(name)),
        other => Ok(other.unwrap_or(default)),
    };
    let max_body = args
        .max_frame
        .or(config.max_frame)
        .map_or(defaults.max_body, ByteSize::get);
    if max_body == 0 {
        return Err(SettingsError::Zero("--max-frame"));
    }
    let max_streams = at_least_one(
        args.max_streams.or(config.max_streams),
        defaults.max_streams,
        "--max-streams",
    )?;
    let max_requests = at_least_one(
        args.max_requests.or(config.max_requests),
        defaults.max_requests,
        "--max-requests",
    )?;
    let max_outgoing = args
        .max_outgoing
        .or(config.max_outgoing)
        .map_or(defaults.max_outgoing, |size| size.get() as usize);
    if max_outgoing == 0 {
        return Err(SettingsError::Zero("--max-outgoing"));
    }
    let admission = admission(args, config, duration)?;
    let api_defaults = iotmp_cli::api::ApiLimits::default();
    let api = ApiOptions {
        max_body: args
            .http_max_body
            .or(config.http_max_body)
            .map_or(api_defaults.max_body, |size| size.get() as usize),
        max_connections: at_least_one(
            args.http_max_connections.or(config.http_max_connections),
            api_defaults.max_connections,
            "--http-max-connections",
        )?,
        sink_queue: at_least_one(
            args.sink_queue.or(config.sink_queue),
            api_defaults.sink_queue,
            "--sink-queue",
        )?,
    };
    let session = SessionConfig {
        auth_deadline,
        keep_alive_min,
        keep_alive_max,
        request_timeout,
        max_body,
        max_streams,
        max_requests,
        max_outgoing,
        // Spec §6.4 recommends a random start, so that ids do not repeat across restarts.
        first_stream_id: fastrand::u16(1..),
        ..defaults
    };

    Ok(Options {
        db: args
            .db
            .clone()
            .or_else(|| config.db.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DB)),
        tcp,
        tls_listen,
        http,
        https,
        tls,
        runtime: args.runtime.or(config.runtime).unwrap_or_default(),
        session,
        record: args.record.clone(),
        admission,
        api,
    })
}

/// `--max-connections`, `--rate-limit`, `--ban-after` and their companions.
fn admission(
    args: &ServerArgs,
    config: &ServerConfig,
    duration: impl Fn(
        Option<Span>,
        Option<Span>,
        Duration,
        &'static str,
    ) -> Result<Duration, SettingsError>,
) -> Result<AdmissionConfig, SettingsError> {
    let defaults = AdmissionConfig::default();
    let burst = args
        .rate_burst
        .or(config.rate_burst)
        .unwrap_or(defaults.burst);
    if burst == 0 {
        return Err(SettingsError::Zero("--rate-burst"));
    }
    let max_sources = args
        .max_sources
        .or(config.max_sources)
        .unwrap_or(defaults.max_sources);
    if max_sources == 0 {
        return Err(SettingsError::Zero("--max-sources"));
    }
    let allow = if args.allow.is_empty() {
        let file = config.allow.as_deref().unwrap_or_default();
        file.iter()
            .map(|p| p.parse::<IpPrefix>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(SettingsError::Allow)?
    } else {
        args.allow.clone()
    };
    Ok(AdmissionConfig {
        max_connections: args
            .max_connections
            .or(config.max_connections)
            .unwrap_or(defaults.max_connections),
        rate_per_sec: args
            .rate_limit
            .or(config.rate_limit)
            .unwrap_or(defaults.rate_per_sec),
        burst,
        max_failures: args
            .ban_after
            .or(config.ban_after)
            .unwrap_or(defaults.max_failures),
        failure_window: duration(
            args.failure_window,
            config.failure_window,
            defaults.failure_window,
            "--failure-window",
        )?,
        ban: duration(args.ban_time, config.ban_time, defaults.ban, "--ban-time")?,
        max_sources,
        allow,
    })
}

/// The rustls configurations the TLS files make.
#[derive(Debug, Default)]
pub(crate) struct TlsConfigs {
    /// The device listener's: requests and verifies client certificates with a client CA.
    pub(crate) devices: Option<Arc<rustls::ServerConfig>>,
    /// The HTTPS API's: never asks for client certificates (the API authenticates by token).
    pub(crate) api: Option<Arc<rustls::ServerConfig>>,
}

/// Reads the TLS files of `options` (nothing without a certificate).
pub(crate) fn load_tls(options: &Options) -> Result<TlsConfigs, SettingsError> {
    let Some(files) = &options.tls else {
        return Ok(TlsConfigs::default());
    };
    let cert = read(&files.cert, "the certificate (--tls-cert)")?;
    let key = read(&files.key, "the private key (--tls-key)")?;
    let client_ca = files
        .client_ca
        .as_deref()
        .map(|path| read(path, "the client CA (--client-ca)"))
        .transpose()?;
    let devices = options
        .tls_listen
        .map(|_| tls::server_config(&cert, &key, client_ca.as_deref()))
        .transpose()
        .map_err(SettingsError::Tls)?;
    let api = options
        .https
        .then(|| tls::server_config(&cert, &key, None))
        .transpose()
        .map_err(SettingsError::Tls)?;
    Ok(TlsConfigs { devices, api })
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, SettingsError> {
    std::fs::read(path).map_err(|source| SettingsError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::cli::{Cli, Command};
    use crate::config::Config;

    fn options(line: &[&str], config: &str) -> Result<Options, SettingsError> {
        let mut argv = vec!["iotmp", "server"];
        argv.extend_from_slice(line);
        let Command::Server(args) = Cli::try_parse_from(argv).unwrap().command else {
            panic!("not the server command");
        };
        resolve(&args, &Config::parse(config).unwrap().server)
    }

    #[test]
    fn defaults_listen_on_loopback() {
        let o = options(&[], "").unwrap();
        assert_eq!(o.tcp, Some(DEFAULT_LISTEN));
        assert_eq!(o.tls_listen, None, "no certificate, no TLS listener");
        assert_eq!(o.http, Some(DEFAULT_HTTP));
        assert!(!o.https);
        assert_eq!(o.db, PathBuf::from("iotmp.db"));
        assert_eq!(o.runtime, RuntimeChoice::Smol);
        assert_eq!(
            (o.session.keep_alive_min, o.session.keep_alive_max),
            (5, 1800)
        );
        assert_eq!(o.session.auth_deadline, Duration::from_secs(10));
        assert!(o.session.first_stream_id >= 1);
    }

    #[test]
    fn the_command_line_wins_over_the_file() {
        let file = "[server]\nlisten = \"0.0.0.0:1\"\nhttp = \"off\"\nruntime = \"mio\"\n\
                    keep-alive-max = 100\nrequest-timeout = \"3s\"\ndb = \"f.db\"\n";
        let o = options(&[], file).unwrap();
        assert_eq!(o.tcp, Some(SocketAddr::from(([0, 0, 0, 0], 1))));
        assert_eq!(o.http, None);
        assert_eq!(o.runtime, RuntimeChoice::Mio);
        assert_eq!(o.session.keep_alive_max, 100);
        assert_eq!(o.session.request_timeout, Duration::from_secs(3));
        let o = options(
            &[
                "--listen",
                "127.0.0.1:2",
                "--http",
                "127.0.0.1:3",
                "--runtime",
                "async-std",
                "--db",
                "x.db",
            ],
            file,
        )
        .unwrap();
        assert_eq!(o.tcp, Some(SocketAddr::from(([127, 0, 0, 1], 2))));
        assert_eq!(o.http, Some(SocketAddr::from(([127, 0, 0, 1], 3))));
        assert_eq!(o.runtime, RuntimeChoice::AsyncStd);
        assert_eq!(o.db, PathBuf::from("x.db"));
    }

    #[test]
    fn tls_options() {
        let o = options(&["--tls-cert", "c.pem", "--tls-key", "k.pem"], "").unwrap();
        assert_eq!(o.tls_listen, Some(DEFAULT_TLS_LISTEN));
        let o = options(
            &[
                "--tls-cert",
                "c",
                "--tls-key",
                "k",
                "--listen",
                "off",
                "--https",
            ],
            "[server]\nclient-ca = \"ca.pem\"\n",
        )
        .unwrap();
        assert_eq!(o.tcp, None);
        assert!(o.https);
        assert_eq!(
            o.tls.unwrap().client_ca.as_deref(),
            Some(Path::new("ca.pem"))
        );
        for (line, needle) in [
            (&["--tls-cert", "c"][..], "needs --tls-key"),
            (&["--tls-key", "k"], "needs --tls-cert"),
            (&["--client-ca", "ca"], "--client-ca needs --tls-cert"),
            (&["--https"], "--https needs --tls-cert"),
            (&["--listen", "off"], "every device listener is off"),
            (
                &[
                    "--tls-cert",
                    "c",
                    "--tls-key",
                    "k",
                    "--tls-listen",
                    "off",
                    "--client-ca",
                    "a",
                ],
                "--client-ca verifies",
            ),
            (
                &[
                    "--tls-cert",
                    "c",
                    "--tls-key",
                    "k",
                    "--tls-listen",
                    "off",
                    "--listen",
                    "off",
                ],
                "every device listener is off",
            ),
        ] {
            let err = options(line, "").unwrap_err().to_string();
            assert!(err.contains(needle), "{line:?}: {err}");
        }
    }

    #[test]
    fn session_limits_are_checked() {
        for (line, needle) in [
            (
                &["--keep-alive-min", "10", "--keep-alive-max", "5"][..],
                "10..=5",
            ),
            (&["--keep-alive-min", "0"], "0..=1800"),
            (
                &["--auth-deadline", "0s"],
                "--auth-deadline must be longer than 0",
            ),
            (&["--request-timeout", "0"], "--request-timeout"),
        ] {
            let err = options(line, "").unwrap_err().to_string();
            assert!(err.contains(needle), "{line:?}: {err}");
        }
        let o = options(&["--auth-deadline", "500ms", "--keep-alive-min", "1"], "").unwrap();
        assert_eq!(o.session.auth_deadline, Duration::from_millis(500));
        assert_eq!(o.session.keep_alive_min, 1);
    }

    #[test]
    fn limits_and_admission() {
        let o = options(&[], "").unwrap();
        assert_eq!(o.admission, AdmissionConfig::default());
        assert_eq!(o.session.max_body, 256 * 1024);
        assert_eq!(o.session.max_outgoing, 1024 * 1024);
        assert_eq!((o.session.max_streams, o.session.max_requests), (64, 64));
        assert_eq!(
            o.api,
            ApiOptions {
                max_body: 256 * 1024,
                max_connections: 16_384,
                sink_queue: 64
            }
        );
        let file = "[server]\nmax-connections = 5\nrate-limit = 0\nban-after = 3\n\
                    ban-time = \"2s\"\nallow = [\"10.0.0.0/8\"]\nmax-frame = \"1KiB\"\n\
                    sink-queue = 8\n";
        let o = options(&["--ban-after", "4", "--allow", "127.0.0.2,::1"], file).unwrap();
        assert_eq!(o.admission.max_connections, 5);
        assert_eq!(o.admission.rate_per_sec, 0);
        assert_eq!(o.admission.max_failures, 4);
        assert_eq!(o.admission.ban, Duration::from_secs(2));
        assert_eq!(o.admission.allow.len(), 2, "the command line wins");
        assert_eq!(o.session.max_body, 1024);
        assert_eq!(o.api.sink_queue, 8);
        for (line, file, needle) in [
            (
                &["--rate-burst", "0"][..],
                "",
                "--rate-burst must be at least 1",
            ),
            (&["--max-streams", "0"], "", "--max-streams"),
            (
                &["--ban-time", "0s"],
                "",
                "--ban-time must be longer than 0",
            ),
            (
                &[],
                "[server]\nallow = [\"x\"]\n",
                "allow in the config file",
            ),
        ] {
            let err = options(line, file).unwrap_err().to_string();
            assert!(err.contains(needle), "{line:?}: {err}");
        }
        let bad = Cli::try_parse_from(["iotmp", "server", "--allow", "10.0.0.0/40"]);
        assert!(bad.is_err());
    }

    #[test]
    fn missing_tls_files_name_the_option() {
        let o = options(&["--tls-cert", "/nonexistent/c.pem", "--tls-key", "k"], "").unwrap();
        let err = load_tls(&o).unwrap_err().to_string();
        assert!(
            err.contains("--tls-cert") && err.contains("/nonexistent/c.pem"),
            "{err}"
        );
        assert!(
            load_tls(&options(&[], "").unwrap())
                .unwrap()
                .devices
                .is_none()
        );
    }
}
