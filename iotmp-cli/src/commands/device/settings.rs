//! The connection settings of `iotmp device`: the command line (and `IOTMP_*` variables, which
//! clap folds into it) over the config file's `[device]` section over the built-in defaults.
//!
//! [`resolve`] is pure (no files, no environment of its own), so every rule is unit-tested;
//! [`tls_config`] then reads the PEM files it names.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use iotmp_proto::backoff::Backoff;
use iotmp_proto::client::ClientAuth;
use iotmp_proto::tls::{Roots, TlsError, client_config};
use iotmp_proto::{ClientConfig, Dialect};
use thiserror::Error;

use crate::cli::DeviceConnectArgs;
use crate::config::DeviceConfig;
use crate::values::{RuntimeChoice, WireDialect};

/// The spec's ports (§9).
pub(crate) const TCP_PORT: u16 = 25204;
/// The spec's TLS port.
pub(crate) const TLS_PORT: u16 = 25206;

/// Reconnect delays when none are given (spec §6.1: 5 s doubling up to 60 s).
const BACKOFF_FIRST: Duration = Duration::from_secs(5);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// The keep-alive range servers accept by default (spec §6.1); others may be refused.
const KEEP_ALIVE_USUAL: std::ops::RangeInclusive<u32> = 5..=1800;

/// A server keeps a silent connection for keep-alive × 1.15 (spec §6.3): a handler may block
/// the device for at most the extra 15 % before the server could give up on it.
const KEEP_ALIVE_SLACK: f64 = 0.15;

/// Where the server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// Host name or address (IPv6 without brackets).
    pub(crate) host: String,
    /// Port.
    pub(crate) port: u16,
    /// `iotmps`.
    pub(crate) tls: bool,
}

impl Endpoint {
    /// `host:port` for the drivers (IPv6 in brackets).
    pub(crate) fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// `iotmp://host:port` for the logs.
    pub(crate) fn uri(&self) -> String {
        let scheme = if self.tls { "iotmps" } else { "iotmp" };
        format!("{scheme}://{}", self.address())
    }
}

/// How the device proves who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Auth {
    /// `[user, device, credential]`.
    Credentials {
        /// The owner.
        user: String,
        /// The device id.
        device: String,
        /// The secret.
        credential: String,
    },
    /// A client certificate presented in the TLS handshake and in CONNECT.
    Certificate {
        /// Its PEM file.
        cert: PathBuf,
        /// The private key's PEM file.
        key: PathBuf,
    },
}

/// Everything needed to connect, checked.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Settings {
    /// The server.
    pub(crate) endpoint: Endpoint,
    /// The wire generation.
    pub(crate) dialect: Dialect,
    /// Credentials or certificate.
    pub(crate) auth: Auth,
    /// A CA to verify the server with, instead of the system's roots.
    pub(crate) ca: Option<PathBuf>,
    /// Keep-alive to request; `None` lets the session use the default (60 s).
    pub(crate) keep_alive: Option<u32>,
    /// Reconnect delays.
    pub(crate) backoff_first: Duration,
    /// The longest reconnect delay.
    pub(crate) backoff_max: Duration,
    /// The driver.
    pub(crate) runtime: RuntimeChoice,
}

/// Settings that cannot work.
#[derive(Debug, Error)]
pub(crate) enum SettingsError {
    /// No server given.
    #[error(
        "no server to connect to: give --server iotmp://HOST[:PORT] (or iotmps:// for TLS), --host, \
         IOTMP_SERVER, or server in [device] of the config file"
    )]
    NoServer,
    /// `--server` that is not an IOTMP URI.
    #[error("--server {given:?} {problem}: write iotmp://HOST[:PORT] or iotmps://HOST[:PORT]")]
    BadUri {
        /// What was given.
        given: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// `--tls` with an `iotmp://` server.
    #[error(
        "--tls contradicts the iotmp:// server: write iotmps://HOST[:PORT] instead (and drop --tls)"
    )]
    TlsConflict,
    /// Neither credentials nor a certificate, or only part of them.
    #[error(
        "missing {missing}: authenticate with --user, --device and --credential (or IOTMP_USER, \
         IOTMP_DEVICE, IOTMP_CREDENTIAL, or the [device] section of the config file), or with --cert \
         and --key over TLS"
    )]
    MissingAuth {
        /// The options not given.
        missing: String,
    },
    /// `--cert` without `--key` or the reverse.
    #[error("{given} needs {missing} too: a client certificate comes with its private key")]
    HalfIdentity {
        /// The one given.
        given: &'static str,
        /// The one missing.
        missing: &'static str,
    },
    /// Both ways of authenticating.
    #[error("both --cert and --credential are given: keep one way of authenticating")]
    TwoAuths,
    /// Certificate auth over plain TCP.
    #[error(
        "certificate authentication needs TLS: use an iotmps:// server (or --tls), or authenticate with credentials"
    )]
    CertificateWithoutTls,
    /// A keep-alive of 0.
    #[error("--keep-alive 0 is not allowed: give the seconds between keep-alives (e.g. 60)")]
    ZeroKeepAlive,
    /// Backoff values that do not make a schedule.
    #[error(
        "--backoff-first ({first:?}) must be above 0 and at most --backoff-max ({max:?}): e.g. --backoff-first 5s --backoff-max 60s"
    )]
    Backoff {
        /// First delay.
        first: Duration,
        /// Largest delay.
        max: Duration,
    },
    /// A PEM file cannot be read.
    #[error("cannot read {what} {}: check the path", path.display())]
    ReadPem {
        /// Which file.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The PEM files do not make a TLS configuration.
    #[error("the TLS files cannot be used: check --ca, --cert and --key")]
    Tls(#[source] TlsError),
}

/// Parses `iotmp://host[:port]` or `iotmps://host[:port]` (a trailing `/` is tolerated).
pub(crate) fn parse_uri(uri: &str) -> Result<Endpoint, SettingsError> {
    let bad = |problem| SettingsError::BadUri {
        given: uri.to_owned(),
        problem,
    };
    let (scheme, rest) = uri.split_once("://").ok_or_else(|| bad("has no scheme"))?;
    let tls = match scheme.to_ascii_lowercase().as_str() {
        "iotmp" => false,
        "iotmps" => true,
        _ => return Err(bad("has an unknown scheme")),
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains(['/', '?', '#', '@']) {
        return Err(bad("has a path, query or user part"));
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        // [v6]:port
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| bad("has an unclosed ["))?;
        match after {
            "" => (host, None),
            _ => (
                host,
                Some(
                    after
                        .strip_prefix(':')
                        .ok_or_else(|| bad("has text after ]"))?,
                ),
            ),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (host, Some(port)),
            Some(_) => return Err(bad("has an IPv6 address without [brackets]")),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    let port = match port {
        None => {
            if tls {
                TLS_PORT
            } else {
                TCP_PORT
            }
        }
        Some(text) => match text.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => return Err(bad("has an invalid port")),
        },
    };
    Ok(Endpoint {
        host: host.to_owned(),
        port,
        tls,
    })
}

/// What [`resolve`] reports besides the settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Warnings(pub(crate) Vec<String>);

/// Resolves the settings. `env_credential` is `IOTMP_CREDENTIAL` (read by the caller: clap's
/// `env` would hide whether a credential came from the command line, which deserves a warning).
pub(crate) fn resolve(
    args: &DeviceConnectArgs,
    config: &DeviceConfig,
    env_credential: Option<String>,
) -> Result<(Settings, Warnings), SettingsError> {
    let mut warnings = Warnings::default();

    // The server: a URI, whose host and port --host and --port override.
    let base = match args.server.as_deref().or(config.server.as_deref()) {
        Some(uri) => Some(parse_uri(uri)?),
        None => None,
    };
    let host = args.host.clone().or_else(|| config.host.clone());
    let tls_flag = args.tls || config.tls == Some(true);
    if tls_flag && base.as_ref().is_some_and(|b| !b.tls) {
        return Err(SettingsError::TlsConflict);
    }
    let tls = tls_flag || base.as_ref().is_some_and(|b| b.tls);
    let host = host
        .or_else(|| base.as_ref().map(|b| b.host.clone()))
        .ok_or(SettingsError::NoServer)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .map_or(host.clone(), str::to_owned);
    let explicit_port = args.port.or(config.port);
    let port = explicit_port
        .or_else(|| base.as_ref().map(|b| b.port))
        .unwrap_or(if tls { TLS_PORT } else { TCP_PORT });
    let endpoint = Endpoint { host, port, tls };

    // Authentication.
    let cert = args.cert.clone().or_else(|| config.cert.clone());
    let key = args.key.clone().or_else(|| config.key.clone());
    let credential = match &args.credential {
        Some(credential) => {
            warnings.0.push(
                "--credential on the command line is visible to other local users (ps, /proc): \
                 prefer IOTMP_CREDENTIAL or credential in [device] of a config file only you can read"
                    .to_owned(),
            );
            Some(credential.clone())
        }
        None => env_credential.or_else(|| config.credential.clone()),
    };
    let auth = match (cert, key) {
        (Some(cert), Some(key)) => {
            // A certificate wins over a credential from IOTMP_CREDENTIAL or the config file
            // (set for other runs, perhaps); on the command line both is a contradiction.
            if args.credential.is_some() {
                return Err(SettingsError::TwoAuths);
            }
            if !endpoint.tls {
                return Err(SettingsError::CertificateWithoutTls);
            }
            Auth::Certificate { cert, key }
        }
        (Some(_), None) => {
            return Err(SettingsError::HalfIdentity {
                given: "--cert",
                missing: "--key",
            });
        }
        (None, Some(_)) => {
            return Err(SettingsError::HalfIdentity {
                given: "--key",
                missing: "--cert",
            });
        }
        (None, None) => {
            let user = args.user.clone().or_else(|| config.user.clone());
            let device = args.device.clone().or_else(|| config.device.clone());
            match (user, device, credential) {
                (Some(user), Some(device), Some(credential)) => Auth::Credentials {
                    user,
                    device,
                    credential,
                },
                (user, device, credential) => {
                    let missing: Vec<&str> = [
                        (user.is_none(), "--user"),
                        (device.is_none(), "--device"),
                        (credential.is_none(), "--credential"),
                    ]
                    .into_iter()
                    .filter_map(|(absent, name)| absent.then_some(name))
                    .collect();
                    return Err(SettingsError::MissingAuth {
                        missing: missing.join(", "),
                    });
                }
            }
        }
    };

    let keep_alive = args.keep_alive.or(config.keep_alive);
    if keep_alive == Some(0) {
        return Err(SettingsError::ZeroKeepAlive);
    }
    if let Some(ka) = keep_alive
        && !KEEP_ALIVE_USUAL.contains(&ka)
    {
        warnings.0.push(format!(
            "--keep-alive {ka} is outside {}..={} s, the range servers accept by default: \
             the server may refuse the CONNECT (code 3)",
            KEEP_ALIVE_USUAL.start(),
            KEEP_ALIVE_USUAL.end()
        ));
    }

    let backoff_first = args
        .backoff_first
        .or(config.backoff_first)
        .map_or(BACKOFF_FIRST, |s| s.get());
    let backoff_max = args
        .backoff_max
        .or(config.backoff_max)
        .map_or(BACKOFF_MAX.max(backoff_first), |s| s.get());
    if backoff_first.is_zero() || backoff_first > backoff_max {
        return Err(SettingsError::Backoff {
            first: backoff_first,
            max: backoff_max,
        });
    }

    let dialect = args
        .dialect
        .or(config.dialect)
        .unwrap_or(WireDialect::Draft2020)
        .dialect();
    let settings = Settings {
        endpoint,
        dialect,
        auth,
        ca: args.ca.clone().or_else(|| config.ca.clone()),
        keep_alive,
        backoff_first,
        backoff_max,
        runtime: args.runtime.or(config.runtime).unwrap_or_default(),
    };
    if settings.ca.is_some() && !settings.endpoint.tls {
        warnings.0.push(
            "--ca is ignored over plain TCP: use an iotmps:// server to verify it".to_owned(),
        );
    }
    Ok((settings, warnings))
}

impl Settings {
    /// The backoff schedule.
    pub(crate) fn backoff(&self) -> Backoff {
        Backoff::new(self.backoff_first, self.backoff_max)
    }

    /// The longest a handler may block the device before the server could give up on it
    /// (see [`KEEP_ALIVE_SLACK`]).
    pub(crate) fn handler_budget(&self) -> Duration {
        let keep_alive = self
            .keep_alive
            .unwrap_or(iotmp_proto::session::DEFAULT_KEEP_ALIVE_SECS);
        Duration::from_secs_f64(f64::from(keep_alive) * KEEP_ALIVE_SLACK)
    }

    /// The session configuration; `cert_pem` is the certificate's text for certificate auth.
    pub(crate) fn client_config(&self, cert_pem: Option<String>) -> ClientConfig {
        let mut config = match &self.auth {
            Auth::Credentials {
                user,
                device,
                credential,
            } => ClientConfig::new(self.dialect, user, device, credential),
            Auth::Certificate { .. } => {
                let mut config = ClientConfig::new(self.dialect, "", "", "");
                config.auth = ClientAuth::Certificate {
                    pem: cert_pem.unwrap_or_default(),
                };
                config
            }
        };
        config.keep_alive = self.keep_alive;
        config
    }

    /// Who the device is, for the logs.
    pub(crate) fn identity(&self) -> String {
        match &self.auth {
            Auth::Credentials { user, device, .. } => format!("{user}/{device}"),
            Auth::Certificate { cert, .. } => format!("the certificate {}", cert.display()),
        }
    }
}

fn read_pem(what: &'static str, path: &Path) -> Result<Vec<u8>, SettingsError> {
    std::fs::read(path).map_err(|source| SettingsError::ReadPem {
        what,
        path: path.to_owned(),
        source,
    })
}

/// The TLS configuration (with the server name to verify) and, for certificate auth, the
/// certificate's PEM text for CONNECT; `None` over plain TCP.
#[allow(
    clippy::type_complexity,
    reason = "a private helper's pair; a struct would only name it"
)]
pub(crate) fn tls_config(
    settings: &Settings,
) -> Result<(Option<(Arc<rustls::ClientConfig>, String)>, Option<String>), SettingsError> {
    if !settings.endpoint.tls {
        return Ok((None, None));
    }
    let ca = settings
        .ca
        .as_deref()
        .map(|path| read_pem("the CA file (--ca)", path))
        .transpose()?;
    let roots = ca.as_deref().map_or(Roots::System, Roots::Pem);
    let (identity, cert_pem) = match &settings.auth {
        Auth::Certificate { cert, key } => {
            let cert = read_pem("the certificate (--cert)", cert)?;
            let key = read_pem("the private key (--key)", key)?;
            let text = String::from_utf8_lossy(&cert).into_owned();
            (Some((cert, key)), Some(text))
        }
        Auth::Credentials { .. } => (None, None),
    };
    let config = client_config(
        roots,
        identity
            .as_ref()
            .map(|(cert, key)| (cert.as_slice(), key.as_slice())),
    )
    .map_err(SettingsError::Tls)?;
    Ok((Some((config, settings.endpoint.host.clone())), cert_pem))
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::cli::{Cli, Command, DeviceVerb};
    use crate::values::Span;

    fn args(line: &[&str]) -> DeviceConnectArgs {
        let cli = Cli::try_parse_from(["iotmp", "device"].iter().chain(line)).unwrap();
        match cli.command {
            Command::Device(device) => match device.verb {
                Some(DeviceVerb::Connect(args)) => *args,
                None => *device.connect,
                _ => panic!("not a connect"),
            },
            other => panic!("{other:?}"),
        }
    }

    const CREDS: [&str; 4] = ["--user", "alice", "--device", "dev01"];

    fn resolve_line(line: &[&str]) -> Result<(Settings, Warnings), SettingsError> {
        let mut all: Vec<&str> = CREDS.to_vec();
        all.extend_from_slice(line);
        resolve(&args(&all), &DeviceConfig::default(), Some("s3cr3t".into()))
    }

    #[test]
    fn uris() {
        let e = parse_uri("iotmp://example.com").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.tls),
            ("example.com", 25204, false)
        );
        let e = parse_uri("iotmps://example.com:4443/").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.tls),
            ("example.com", 4443, true)
        );
        assert_eq!(parse_uri("IOTMPS://h").unwrap().port, 25206);
        let e = parse_uri("iotmp://[::1]:9000").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 9000));
        assert_eq!(e.address(), "[::1]:9000");
        assert_eq!(parse_uri("iotmp://[fe80::1]").unwrap().port, 25204);
        for (bad, needle) in [
            ("example.com", "has no scheme"),
            ("http://example.com", "unknown scheme"),
            ("iotmp://", "has no host"),
            ("iotmp://:80", "has no host"),
            ("iotmp://h:0", "invalid port"),
            ("iotmp://h:99999", "invalid port"),
            ("iotmp://h:x", "invalid port"),
            ("iotmp://h/path", "path"),
            ("iotmp://u@h", "user part"),
            ("iotmp://::1", "IPv6"),
            ("iotmp://[::1", "unclosed"),
            ("iotmp://[::1]x", "text after"),
        ] {
            let err = parse_uri(bad).unwrap_err().to_string();
            assert!(err.contains(needle), "{bad}: {err}");
            assert!(err.contains("write iotmp://HOST[:PORT]"), "{err}");
        }
    }

    #[test]
    fn defaults_and_overrides() {
        let (s, w) = resolve_line(&["--server", "iotmp://example.com"]).unwrap();
        assert!(w.0.is_empty(), "{w:?}");
        assert_eq!(s.endpoint.address(), "example.com:25204");
        assert_eq!(s.dialect, Dialect::Draft2020);
        assert_eq!(s.runtime, RuntimeChoice::Smol);
        assert_eq!(s.keep_alive, None);
        assert_eq!(
            (s.backoff_first, s.backoff_max),
            (BACKOFF_FIRST, BACKOFF_MAX)
        );
        assert_eq!(
            s.auth,
            Auth::Credentials {
                user: "alice".into(),
                device: "dev01".into(),
                credential: "s3cr3t".into()
            }
        );
        assert_eq!(s.handler_budget(), Duration::from_secs(9));

        let (s, _) = resolve_line(&[
            "--server",
            "iotmp://example.com:1000",
            "--port",
            "2000",
            "--dialect",
            "2026",
            "--runtime",
            "async-std",
            "--keep-alive",
            "30",
            "--backoff-first",
            "100ms",
            "--backoff-max",
            "2s",
        ])
        .unwrap();
        assert_eq!(s.endpoint.address(), "example.com:2000");
        assert_eq!(s.dialect, Dialect::Draft2026);
        assert_eq!(s.runtime, RuntimeChoice::AsyncStd);
        assert_eq!(s.keep_alive, Some(30));
        assert_eq!(
            s.backoff(),
            Backoff::new(Duration::from_millis(100), Duration::from_secs(2))
        );

        let (s, _) = resolve_line(&["--host", "10.0.0.5", "--tls"]).unwrap();
        assert_eq!(s.endpoint.uri(), "iotmps://10.0.0.5:25206");
        let err = resolve_line(&["--server", "iotmp://h", "--tls"]).unwrap_err();
        assert!(matches!(err, SettingsError::TlsConflict), "{err}");
        let (s, _) = resolve_line(&["--server", "iotmp://h", "--host", "[::1]"]).unwrap();
        assert_eq!(s.endpoint.uri(), "iotmp://[::1]:25204");
    }

    #[test]
    fn config_file_fills_the_gaps() {
        let config: crate::config::Config = crate::config::Config::parse(
            "[device]\nserver = \"iotmps://cfg.example\"\nuser = \"bob\"\ndevice = \"d2\"\n\
             credential = \"from-file\"\ndialect = 2026\nkeep-alive = 120\nbackoff-first = \"1s\"\n\
             runtime = \"mio\"\n",
        )
        .unwrap();
        let (s, w) = resolve(&args(&[]), &config.device, None).unwrap();
        assert!(w.0.is_empty());
        assert_eq!(s.endpoint.uri(), "iotmps://cfg.example:25206");
        assert_eq!(s.dialect, Dialect::Draft2026);
        assert_eq!(s.runtime, RuntimeChoice::Mio);
        assert_eq!(s.keep_alive, Some(120));
        assert_eq!(s.backoff_first, Duration::from_secs(1));
        assert_eq!(s.identity(), "bob/d2");
        // The environment's credential wins over the file's, the command line's over both.
        let (s, _) = resolve(&args(&[]), &config.device, Some("from-env".into())).unwrap();
        assert!(
            matches!(s.auth, Auth::Credentials { ref credential, .. } if credential == "from-env")
        );
        let (s, w) = resolve(
            &args(&["--credential", "cli"]),
            &config.device,
            Some("env".into()),
        )
        .unwrap();
        assert!(matches!(s.auth, Auth::Credentials { ref credential, .. } if credential == "cli"));
        assert!(w.0[0].contains("visible to other local users"), "{w:?}");
        let _ = Span::from_secs(1);
    }

    #[test]
    fn mistakes_are_explained() {
        let none = resolve(&args(&CREDS), &DeviceConfig::default(), Some("x".into()));
        assert!(matches!(none, Err(SettingsError::NoServer)));
        let err = resolve(
            &args(&["--server", "iotmp://h"]),
            &DeviceConfig::default(),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("missing --user, --device, --credential:"),
            "{err}"
        );
        for (line, needle) in [
            (
                vec!["--server", "iotmp://h", "--cert", "c.pem"],
                "--cert needs --key too",
            ),
            (
                vec!["--server", "iotmp://h", "--key", "k.pem"],
                "--key needs --cert too",
            ),
            (
                vec![
                    "--server",
                    "iotmps://h",
                    "--cert",
                    "c.pem",
                    "--key",
                    "k.pem",
                    "--credential",
                    "x",
                ],
                "both --cert and --credential",
            ),
            (
                vec!["--server", "iotmp://h", "--keep-alive", "0"],
                "--keep-alive 0",
            ),
            (
                vec![
                    "--server",
                    "iotmp://h",
                    "--backoff-first",
                    "10s",
                    "--backoff-max",
                    "1s",
                ],
                "--backoff-first (10s) must be above 0 and at most --backoff-max (1s)",
            ),
            (
                vec!["--server", "iotmp://h", "--backoff-first", "0"],
                "must be above 0",
            ),
        ] {
            let err = resolve_line(&line).unwrap_err().to_string();
            assert!(err.contains(needle), "{line:?}: {err}");
        }
        let err = resolve(
            &args(&["--server", "iotmp://h", "--cert", "c.pem", "--key", "k.pem"]),
            &DeviceConfig::default(),
            None,
        )
        .unwrap_err();
        assert!(matches!(err, SettingsError::CertificateWithoutTls), "{err}");
        let (s, _) = resolve(
            &args(&[
                "--server",
                "iotmps://h",
                "--cert",
                "c.pem",
                "--key",
                "k.pem",
            ]),
            &DeviceConfig::default(),
            None,
        )
        .unwrap();
        assert_eq!(s.identity(), "the certificate c.pem");
        // A credential from the environment does not stand in the certificate's way.
        let (s, _) = resolve(
            &args(&[
                "--server",
                "iotmps://h",
                "--cert",
                "c.pem",
                "--key",
                "k.pem",
            ]),
            &DeviceConfig::default(),
            Some("from-env".into()),
        )
        .unwrap();
        assert!(matches!(s.auth, Auth::Certificate { .. }));
        let err = tls_config(&s).unwrap_err().to_string();
        assert!(
            err.starts_with("cannot read the certificate (--cert) c.pem"),
            "{err}"
        );

        let (_, w) = resolve_line(&["--server", "iotmp://h", "--keep-alive", "2"]).unwrap();
        assert!(w.0[0].contains("outside 5..=1800"), "{w:?}");
        let (_, w) = resolve_line(&["--server", "iotmp://h", "--ca", "ca.pem"]).unwrap();
        assert!(w.0[0].contains("--ca is ignored"), "{w:?}");
    }
}
