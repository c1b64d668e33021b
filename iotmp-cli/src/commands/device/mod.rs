//! `iotmp device [connect]`: runs this machine as an IOTMP device.
//!
//! The options say where to connect and who to be ([`settings`]); resources are declared by
//! flags, a resource file and the config file ([`spec`]) and read from commands, files,
//! simulated sensors and /proc ([`sources`], [`exec`], [`metrics`]). A driver of the user's
//! choice ([`driver`]: mio, smol, async-std) connects, answers the server and reconnects with
//! backoff; `--on-change` pollers ([`on_change`]) push values on event streams. Ctrl-C (or
//! SIGTERM) sends DISCONNECT and exits 0; a second one exits at once with 130.
//!
//! ## Why resource handlers run on the driver thread, with a timeout
//!
//! The drivers take a [`DeviceResources`](iotmp_proto::DeviceResources): its handlers are
//! called synchronously by the session, on the driver's thread (smol's or async-std's executor
//! thread, or mio's loop). The core also offers an asynchronous path (a bare `Client` whose
//! `Run` / `ValueNeeded` events are answered later), but the drivers do not expose it, and
//! writing a third driver for the CLI would duplicate what they do. Caching values in the
//! background instead would answer RUNs with stale values. So a command runs in the handler,
//! bounded by `--cmd-timeout` (default 5 s); the effects, documented in `--help`:
//!
//! * while a command runs, the device handles nothing else: RUNs and samples queue up behind
//!   it (so a slow command also delays the others), and keep-alives wait;
//! * the server drops a connection silent for keep-alive × 1.15 (spec §6.3): a timeout above
//!   15 % of the keep-alive (9 s for the default 60 s) could cost the connection, so such a
//!   timeout draws a warning at startup;
//! * a server request times out after 10 s by default: a command slower than that is answered
//!   too late whatever its own timeout.
//!
//! Files, constants, simulated sensors and /proc reads take microseconds.

pub(crate) mod driver;
pub(crate) mod exec;
pub(crate) mod metrics;
pub(crate) mod on_change;
pub(crate) mod settings;
pub(crate) mod sources;
pub(crate) mod spec;

use std::io;
use std::thread::JoinHandle;
use std::time::Duration;

use iotmp_proto::{ClientEvent, Dialect, DriverEvent};
use thiserror::Error;
use tracing::{debug, error, info, warn};

use self::driver::{Driver, Target};
use self::on_change::Watchers;
use self::settings::{Settings, SettingsError};
use self::sources::Limits;
use self::spec::{Declarations, Flags, Kind, SpecError};
use crate::cli::DeviceConnectArgs;
use crate::commands::stop::{SecondSignal, StopSignal};
use crate::config::DeviceConfig;
use crate::exit::Exit;
use crate::values::RuntimeChoice;

/// `--cmd-timeout` when none is given.
const DEFAULT_CMD_TIMEOUT: Duration = Duration::from_secs(5);

/// `--max-value-size` when none is given: well under the 256 KiB frame limit (spec §7.1).
const DEFAULT_MAX_VALUE: usize = 64 * 1024;

/// How often the main thread looks at the stop flag: signal handlers may only set a flag, and
/// a tenth of a second is quick enough for a person pressing Ctrl-C.
const SIGNAL_POLL: Duration = Duration::from_millis(100);

/// Why `iotmp device` failed.
#[derive(Debug, Error)]
pub(crate) enum DeviceError {
    /// The connection options.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The resource declarations.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// An option that cannot work here or with the others.
    #[error("{0}")]
    Unusable(String),
    /// The driver refused its options (a host that is no valid TLS server name, say).
    #[error("the device options cannot be used: {0}")]
    Refused(#[source] io::Error),
    /// The driver did not start.
    #[error("cannot start the device: {0}")]
    Start(#[source] io::Error),
    /// Signal handlers could not be installed.
    #[error("cannot watch for Ctrl-C: {0}")]
    Signals(#[source] io::Error),
    /// The driver failed while stopping.
    #[error("the device did not stop cleanly: {0}")]
    Join(#[source] io::Error),
}

impl DeviceError {
    /// Options and files are the user's to fix; the rest is the machine's.
    pub(crate) const fn exit(&self) -> Exit {
        match self {
            DeviceError::Settings(_)
            | DeviceError::Spec(_)
            | DeviceError::Unusable(_)
            | DeviceError::Refused(_) => Exit::Usage,
            DeviceError::Start(_) | DeviceError::Signals(_) | DeviceError::Join(_) => Exit::Failure,
        }
    }

    /// A driver's start failure: the drivers report options they cannot use as invalid input.
    fn start(error: io::Error) -> Self {
        if error.kind() == io::ErrorKind::InvalidInput {
            DeviceError::Refused(error)
        } else {
            DeviceError::Start(error)
        }
    }
}

/// Runs `iotmp device` until Ctrl-C or SIGTERM.
pub(crate) fn run(args: &DeviceConnectArgs, config: &DeviceConfig) -> Result<(), DeviceError> {
    let env_credential = std::env::var("IOTMP_CREDENTIAL")
        .ok()
        .filter(|c| !c.is_empty());
    let (settings, warnings) = settings::resolve(args, config, env_credential)?;
    for warning in warnings.0 {
        warn!("{warning}");
    }
    let declarations = declarations(args, config)?;
    let limits = limits(args, config, &settings, &declarations)?;
    check_paths(&declarations);

    let built = sources::build(&declarations.resources, limits);
    let (tls, cert_pem) = settings::tls_config(&settings)?;
    let client = settings.client_config(cert_pem);
    let target = Target {
        address: settings.endpoint.address(),
        tls,
        backoff: settings.backoff(),
        record: args.record.clone(),
    };

    // Before the driver starts: a Ctrl-C during the first attempt must already stop cleanly.
    let stop = StopSignal::install(SecondSignal::Exits).map_err(DeviceError::Signals)?;
    let driver = Driver::start(settings.runtime, target, client, built.resources)
        .map_err(DeviceError::start)?;
    let names: Vec<&str> = built.readers.iter().map(|(n, _)| n.as_str()).collect();
    info!(
        "device {} connecting to {} (dialect {}, runtime {}) with {} resources: {}",
        settings.identity(),
        settings.endpoint.uri(),
        dialect_name(settings.dialect),
        runtime_name(settings.runtime),
        names.len(),
        names.join(", ")
    );
    let handle = driver.handle();
    let helpers = log_events(driver.events(), &settings).and_then(|logger| {
        Watchers::start(&declarations.watches, &built.readers, &handle)
            .map(|watchers| (logger, watchers))
    });
    let (logger, watchers) = match helpers {
        Ok(helpers) => helpers,
        Err(e) => {
            // No thread to be had: stop the device that already started.
            handle.shutdown();
            let _ = driver.join();
            return Err(DeviceError::Start(e));
        }
    };

    // The logger ends only when the driver's event channel closes, which the drivers do only
    // once stopped: if that happens before a signal, the driver died on its own.
    let signalled = stop.wait_unless(|| logger.is_finished(), SIGNAL_POLL);
    if signalled {
        info!("stopping: DISCONNECT if connected (Ctrl-C again to quit at once)");
    }
    watchers.stop();
    handle.shutdown();
    driver.join().map_err(DeviceError::Join)?;
    // The driver is gone, so its event channel is closed and the logger ends after the last
    // event ("stopped").
    let _ = logger.join();
    if signalled {
        Ok(())
    } else {
        Err(DeviceError::Join(io::Error::other(
            "the driver stopped on its own; please report it",
        )))
    }
}

/// Every declaration: the flags, then the resource file, then the config's `[device]` tables.
fn declarations(
    args: &DeviceConnectArgs,
    config: &DeviceConfig,
) -> Result<Declarations, DeviceError> {
    let mut declarations = Declarations::default();
    declarations.add_flags(&Flags {
        cmd: &args.cmd,
        file: &args.file,
        constant: &args.constant,
        sine: &args.sine,
        random_walk: &args.random_walk,
        counter: &args.counter,
        metrics: args.metrics,
        input_cmd: &args.input_cmd,
        input_file: &args.input_file,
        on_change: &args.on_change,
    })?;
    if let Some(path) = args.resources.as_ref().or(config.resources.as_ref()) {
        let tables = spec::Tables::load(path)?;
        declarations.add_tables(&tables, &path.display().to_string())?;
    }
    let tables = config.tables();
    if !tables.is_empty() {
        declarations.add_tables(&tables, "the config file [device]")?;
    }
    let declarations = declarations.finish()?;
    if declarations.resources.is_empty() {
        warn!(
            "no resources declared: the device connects but exposes nothing \
             (see --cmd, --file, --sine, --metrics, --resources in `iotmp device --help`)"
        );
    }
    let uses_metrics = declarations
        .resources
        .iter()
        .any(|d| matches!(d.kind, Kind::Metric(_)));
    if uses_metrics && let Some(why) = metrics::unavailable() {
        return Err(DeviceError::Unusable(why));
    }
    Ok(declarations)
}

/// The shared resource settings, with a warning for command timeouts that could cost the
/// connection (see the module docs).
fn limits(
    args: &DeviceConnectArgs,
    config: &DeviceConfig,
    settings: &Settings,
    declarations: &Declarations,
) -> Result<Limits, DeviceError> {
    let cmd_timeout = args
        .cmd_timeout
        .or(config.cmd_timeout)
        .map_or(DEFAULT_CMD_TIMEOUT, |s| s.get());
    if cmd_timeout.is_zero() {
        return Err(DeviceError::Unusable(
            "--cmd-timeout must be above 0: give e.g. --cmd-timeout 5s".to_owned(),
        ));
    }
    let max_value = args
        .max_value_size
        .or(config.max_value_size)
        .map_or(DEFAULT_MAX_VALUE, |b| {
            usize::try_from(b.get()).unwrap_or(usize::MAX)
        });
    let seed = match args.seed.or(config.seed) {
        Some(seed) => seed,
        None => {
            let seed = fastrand::u64(..);
            if declarations
                .resources
                .iter()
                .any(|d| matches!(d.kind, Kind::RandomWalk(_)))
            {
                info!("random walks use seed {seed}: pass --seed {seed} to repeat them");
            }
            seed
        }
    };
    let budget = settings.handler_budget();
    for declaration in &declarations.resources {
        let timeout = match &declaration.kind {
            Kind::Cmd { timeout, .. } | Kind::InputCmd { timeout, .. } => {
                timeout.unwrap_or(cmd_timeout)
            }
            _ => continue,
        };
        if timeout > budget {
            warn!(
                "{} ({}): a command may block the device for up to {timeout:?}, longer than the \
                 {budget:?} (15% of the keep-alive) a server waits beyond a missed keep-alive: \
                 lower the timeout (--cmd-timeout) or raise --keep-alive",
                declaration.name, declaration.origin
            );
        }
    }
    Ok(Limits {
        cmd_timeout,
        max_value,
        seed,
    })
}

/// Warns about paths that look wrong now (they may still appear later: not an error).
fn check_paths(declarations: &Declarations) {
    for declaration in &declarations.resources {
        match &declaration.kind {
            Kind::File { path } if !path.exists() => warn!(
                "{} ({}): {} does not exist (yet): reads fail until it does",
                declaration.name,
                declaration.origin,
                path.display()
            ),
            Kind::InputFile { path } => {
                let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
                if dir.is_some_and(|d| !d.is_dir()) {
                    warn!(
                        "{} ({}): the folder of {} does not exist: inputs fail until it does",
                        declaration.name,
                        declaration.origin,
                        path.display()
                    );
                }
            }
            _ => {}
        }
    }
}

const fn dialect_name(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Draft2020 => "2020",
        Dialect::Draft2026 => "2026",
    }
}

const fn runtime_name(runtime: RuntimeChoice) -> &'static str {
    match runtime {
        RuntimeChoice::Mio => "mio",
        RuntimeChoice::Smol => "smol",
        RuntimeChoice::AsyncStd => "async-std",
    }
}

/// Logs the driver's events on a thread of their own (they come from any runtime's channel).
fn log_events(
    events: async_channel::Receiver<DriverEvent>,
    settings: &Settings,
) -> io::Result<JoinHandle<()>> {
    let (uri, who) = (settings.endpoint.uri(), settings.identity());
    std::thread::Builder::new()
        .name("iotmp-device-events".to_owned())
        .spawn(move || {
            // Whether a transport is open: a failure before that is a failed attempt to
            // connect, not a lost connection, and is worded so.
            let mut up = false;
            while let Ok(event) = events.recv_blocking() {
                log_event(event, &uri, &who, &mut up);
            }
        })
}

fn log_event(event: DriverEvent, uri: &str, who: &str, up: &mut bool) {
    match event {
        DriverEvent::TransportUp => {
            *up = true;
            info!("connected to {uri}; authenticating as {who}");
        }
        DriverEvent::Disconnected { reason } if !std::mem::replace(up, false) => {
            warn!("cannot connect to {uri}: {reason}");
        }
        DriverEvent::Connected => info!("authenticated: online as {who}"),
        DriverEvent::Session(ClientEvent::StreamStarted {
            id,
            resource,
            interval_ms,
        }) => match interval_ms {
            0 => info!("the server listens to {resource} (event stream {id})"),
            ms => info!("the server samples {resource} every {ms} ms (stream {id})"),
        },
        DriverEvent::Session(ClientEvent::StreamStopped { id }) => {
            info!("the server stopped stream {id}");
        }
        DriverEvent::Session(other) => debug!("session: {other:?}"),
        DriverEvent::Disconnected { reason } => match disconnect_hint(&reason) {
            Some(Hint::Ours) => info!("disconnected: {reason}"),
            Some(Hint::Refused(what)) => error!("{reason}: {what}"),
            Some(Hint::Check(what)) => warn!("disconnected: {reason} ({what})"),
            None => warn!("disconnected: {reason}"),
        },
        DriverEvent::Retrying { after } => {
            info!("reconnecting in {:.1} s", after.as_secs_f64());
        }
        DriverEvent::Stopped => info!("stopped"),
        DriverEvent::TraceFailed { error } => warn!("{error}"),
        other => debug!("driver: {other:?}"),
    }
}

/// What a disconnect reason suggests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hint {
    /// This side disconnected (shutdown): nothing wrong.
    Ours,
    /// The server refused the CONNECT: the options need fixing.
    Refused(&'static str),
    /// Something worth checking.
    Check(&'static str),
}

/// The drivers report reasons as text (the session's `CloseReason` display); these are the
/// ones a user can act on (codes of spec §6.10).
fn disconnect_hint(reason: &str) -> Option<Hint> {
    if reason.starts_with("disconnected by this side") {
        Some(Hint::Ours)
    } else if reason.starts_with("server refused CONNECT with code 2") {
        Some(Hint::Refused(
            "check --user, --device and --credential (or the certificate); retrying with backoff",
        ))
    } else if reason.starts_with("server refused CONNECT with code 3") {
        Some(Hint::Refused(
            "the server does not accept this --keep-alive; retrying with backoff",
        ))
    } else if reason.starts_with("server refused CONNECT") {
        Some(Hint::Refused("retrying with backoff"))
    } else if reason.starts_with("no answer to CONNECT") {
        Some(Hint::Check(
            "is it an IOTMP server, and does it speak this --dialect?",
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_for_refusals() {
        assert_eq!(
            disconnect_hint("disconnected by this side"),
            Some(Hint::Ours)
        );
        assert!(matches!(
            disconnect_hint("server refused CONNECT with code 2: bad credentials"),
            Some(Hint::Refused(text)) if text.contains("--credential")
        ));
        assert!(matches!(
            disconnect_hint("server refused CONNECT with code 3"),
            Some(Hint::Refused(text)) if text.contains("--keep-alive")
        ));
        assert!(matches!(
            disconnect_hint("no answer to CONNECT"),
            Some(Hint::Check(_))
        ));
        assert_eq!(disconnect_hint("Connection refused (os error 111)"), None);
    }

    #[test]
    fn exit_statuses() {
        let usage = DeviceError::Unusable("x".into());
        assert_eq!(usage.exit(), Exit::Usage);
        let bad_name = DeviceError::start(io::Error::new(io::ErrorKind::InvalidInput, "x"));
        assert_eq!(bad_name.exit(), Exit::Usage);
        let failed = DeviceError::start(io::Error::other("no threads"));
        assert_eq!(failed.exit(), Exit::Failure);
    }
}
