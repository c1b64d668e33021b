//! `iotmp server`: the IOTMP server over the registry database.
//!
//! ```text
//!   devices ──TCP/TLS──▶ driver (mio | smol | async-std) ──events──▶ pump (smol task)
//!                              ▲                                     │  API sink values ──▶ sinks
//!                              │ run / describe / subscribe          ▼  the rest, in order
//!                              │                                  event loop thread
//!                              │                                     │  auth from the index
//!                              │                                     │  online / offline
//!   HTTP clients ──▶ API (smol) ── ServerBackend ── Shared ◀─────────┤
//!                                     │ own DB connection            └─▶ recorder writer
//!                                     ▼                                   (registry's DB
//!                              buckets, recorders                          connection)
//! ```
//!
//! * [`settings`]: the options, checked together; TLS files read before anything binds.
//! * [`driver`]: the device side on the driver `--runtime` picks.
//! * [`pump`]: a task on smol's executor (where the WebSocket and SSE tasks run) takes the
//!   driver's events first: values for the API's sinks go into their queues there, without a
//!   thread hop; every other event goes on to the event loop.
//! * [`events`]: one thread consumes the other events: authentication from the in-memory
//!   index, connection state, deliveries to the recorders, registry
//!   refreshes (periodic, on request, after a failed lookup) and recorder start/stop.
//! * [`state`]: what the event loop and the API share, and the API's `Backend` over it.
//! * [`recording`]: the recorders' writer thread and its durability policy.
//!
//! The HTTP API always runs on smol, on a thread of its own. Ctrl-C or SIGTERM stops the API
//! (streams are closed), sends DISCONNECT to every device, lets the writer commit the records
//! still queued, and exits 0; a second signal exits at once with 130.

pub(crate) mod driver;
pub(crate) mod events;
pub(crate) mod pump;
pub(crate) mod recording;
pub(crate) mod settings;
pub(crate) mod state;

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use iotmp_cli::api::{self, ApiLimits, Backend, Shutdown};
use thiserror::Error;
use tracing::{info, warn};

use self::driver::{Driver, Listeners};
use self::events::EventLoop;
use self::settings::{Options, SettingsError};
use self::state::{ServerBackend, Shared};
use crate::cli::ServerArgs;
use crate::commands::stop::{SecondSignal, StopSignal};
use crate::config::ServerConfig;
use crate::exit::Exit;
use crate::store::{OpenMode, Registry, Store, StoreError};
use crate::values::RuntimeChoice;

/// How often the main thread looks at the stop flag and at the other threads: signal handlers
/// may only set a flag, and a tenth of a second is quick enough for a person pressing Ctrl-C.
const POLL: Duration = Duration::from_millis(100);

/// The API's backstop for a device answer, beyond the driver's own request timeout: the
/// driver answers first (504 "device timeout"), this only covers a driver that never does.
const API_TIMEOUT_MARGIN: Duration = Duration::from_secs(5);

/// Why `iotmp server` failed.
#[derive(Debug, Error)]
pub(crate) enum ServerError {
    /// The options.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The registry database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A listener could not be bound.
    #[error("cannot listen for {what} on {addr}: pick another address with {option}")]
    Bind {
        /// What the listener is for.
        what: &'static str,
        /// Where.
        addr: String,
        /// The option that sets it.
        option: &'static str,
        /// Why.
        #[source]
        source: io::Error,
        /// Whether the address is the user's to change (in use, not ours, privileged) rather
        /// than a failure of the machine.
        usage: bool,
    },
    /// A thread or the driver could not start.
    #[error("cannot start the server")]
    Start(#[source] io::Error),
    /// Signal handlers could not be installed.
    #[error("cannot watch for Ctrl-C")]
    Signals(#[source] io::Error),
    /// A part of the server ended on its own.
    #[error("{0} stopped unexpectedly; the server shut down")]
    Stopped(&'static str),
}

impl ServerError {
    /// Options and files are the user's to fix; so is an address another program holds.
    pub(crate) const fn exit(&self) -> Exit {
        match self {
            ServerError::Settings(e) => e.exit(),
            ServerError::Store(e) => e.exit(),
            ServerError::Bind { usage: true, .. } => Exit::Usage,
            ServerError::Bind { usage: false, .. }
            | ServerError::Start(_)
            | ServerError::Signals(_)
            | ServerError::Stopped(_) => Exit::Failure,
        }
    }

    /// A listener for `what` that could not be bound to `addr` (set by `option`).
    fn bind(what: &'static str, addr: String, option: &'static str, source: io::Error) -> Self {
        let usage = matches!(
            source.kind(),
            io::ErrorKind::AddrInUse
                | io::ErrorKind::AddrNotAvailable
                | io::ErrorKind::PermissionDenied
        );
        ServerError::Bind {
            what,
            addr,
            option,
            source,
            usage,
        }
    }
}

/// Runs `iotmp server` until Ctrl-C or SIGTERM.
pub(crate) fn run(args: &ServerArgs, config: &ServerConfig) -> Result<(), ServerError> {
    let options = settings::resolve(args, config)?;
    let tls = settings::load_tls(&options)?;
    // The server needs users and devices: a missing file is a wrong --db, not a new registry.
    let registry = Registry::open(&options.db, OpenMode::Existing)?;
    let api_store = Store::open(&options.db, OpenMode::Existing)?;
    let index = registry.index();
    let users = match index.user_count() {
        1 => "1 user".to_owned(),
        n => format!("{n} users"),
    };
    info!("registry {}: {users}", options.db.display());

    // Bound first, so that a port in use is reported before any device can connect.
    let http = options
        .http
        .map(|addr| {
            std::net::TcpListener::bind(addr)
                .inspect(|listener| {
                    // Thousands of dashboards' WebSockets reconnect at once after a restart: a
                    // deeper accept queue than std's 128 (best effort, capped by the kernel).
                    let _ = rustix::net::listen(listener, 4096);
                })
                .and_then(async_net::TcpListener::try_from)
                .map_err(|source| {
                    ServerError::bind("the HTTP API", addr.to_string(), "--http", source)
                })
        })
        .transpose()?;
    // Before the driver starts: a Ctrl-C from here on stops cleanly.
    let stop = StopSignal::install(SecondSignal::Exits).map_err(ServerError::Signals)?;
    let listeners = Listeners {
        tcp: options.tcp,
        tls: options.tls_listen.zip(tls.devices),
        record: options.record.clone(),
    };
    let driver = Driver::start(
        options.runtime,
        listeners,
        options.session.clone(),
        options.admission.clone(),
    )
    .map_err(|source| bind_error(&options, source))?;
    log_listeners(&driver, &options);
    // `/iotmp` on the HTTP listener pipes each WebSocket to the plain TCP device listener, so
    // WebSocket devices get the same sessions. With `--listen off` there is nothing to bridge
    // to and `/iotmp` answers 404 (an internal listener would serve devices the user turned
    // off). Certificate auth does not cross the bridge (see `api::serve_with_bridge`).
    let device_bridge = driver.addresses().0;

    let handle = driver.handle();
    let events = driver.events();
    let (refresh_tx, refresh_rx) = async_channel::bounded(1);
    let shared = Arc::new(Shared::new(index, refresh_tx));
    let registry = Arc::new(Mutex::new(registry));
    let backend: Arc<dyn Backend> = Arc::new(ServerBackend::new(
        Arc::clone(&shared),
        handle.clone(),
        api_store,
    ));
    let api_shutdown = Shutdown::new();

    let started = recording::start(Arc::clone(&registry)).and_then(|(rows, writer)| {
        let (rest_tx, rest) = async_channel::unbounded();
        smol::spawn(pump::run(events, Arc::clone(&shared), rest_tx)).detach();
        let event_loop = EventLoop::new(registry, shared, handle.clone(), rows);
        let events_thread = spawn("iotmp-server-events", move || {
            event_loop.run(&rest, &refresh_rx);
        })?;
        let api_thread = http
            .map(|listener| {
                let limits = api_limits(&options);
                let shutdown = api_shutdown.clone();
                let tls = tls.api;
                spawn("iotmp-server-api", move || {
                    if let Err(e) = smol::block_on(api::serve_with_bridge(
                        listener,
                        tls,
                        backend,
                        limits,
                        shutdown,
                        device_bridge,
                    )) {
                        warn!("HTTP API: {e}");
                    }
                })
            })
            .transpose()?;
        Ok((writer, events_thread, api_thread))
    });
    let (writer, events_thread, api_thread) = match started {
        Ok(threads) => threads,
        Err(e) => {
            handle.shutdown();
            let _ = driver.join();
            return Err(ServerError::Start(e));
        }
    };

    let outcome = loop {
        if stop.is_set() {
            break Ok(());
        }
        if events_thread.is_finished() {
            break Err(ServerError::Stopped("the device driver"));
        }
        if api_thread.as_ref().is_some_and(JoinHandle::is_finished) {
            break Err(ServerError::Stopped("the HTTP API"));
        }
        std::thread::sleep(POLL);
    };

    info!(
        "stopping: DISCONNECT to every device, closing the API, writing pending records \
         (Ctrl-C again to quit at once)"
    );
    api_shutdown.trigger();
    handle.shutdown();
    if let Err(e) = driver.join() {
        warn!("the device driver did not stop cleanly: {e}");
    }
    // The driver's event channel is closed now: the loop ends, and with it the writer's queue.
    let _ = events_thread.join();
    let _ = writer.join();
    if let Some(thread) = api_thread {
        let _ = thread.join();
    }
    // The last handles on the registry's connection went with the threads: SQLite has closed
    // it (checkpointing its WAL), so the database is complete on disk.
    info!("stopped");
    outcome
}

/// The API's limits: its device backstop follows `--request-timeout`.
fn api_limits(options: &Options) -> ApiLimits {
    let mut limits = ApiLimits::default();
    limits.max_body = options.api.max_body;
    limits.max_connections = options.api.max_connections;
    limits.sink_queue = options.api.sink_queue;
    limits.answer_timeout = options
        .session
        .request_timeout
        .saturating_add(API_TIMEOUT_MARGIN);
    limits
}

/// A driver that did not start: its listeners could not be bound (or a thread not spawned).
fn bind_error(options: &Options, source: io::Error) -> ServerError {
    if source.kind() == io::ErrorKind::OutOfMemory || source.kind() == io::ErrorKind::Other {
        return ServerError::Start(source);
    }
    let addresses: Vec<String> = options
        .tcp
        .iter()
        .chain(options.tls_listen.iter())
        .map(SocketAddr::to_string)
        .collect();
    ServerError::bind(
        "devices",
        addresses.join(" and "),
        "--listen or --tls-listen",
        source,
    )
}

fn log_listeners(driver: &Driver, options: &Options) {
    let (tcp, tls) = driver.addresses();
    let runtime = match options.runtime {
        RuntimeChoice::Mio => "mio",
        RuntimeChoice::Smol => "smol",
        RuntimeChoice::AsyncStd => "async-std",
    };
    if let Some(addr) = tcp {
        info!("devices: listening on iotmp://{addr} (TCP, runtime {runtime})");
        if !addr.ip().is_loopback() {
            warn!(
                "devices: plain TCP on {addr} is reachable from other hosts and carries device \
                 credentials in clear; prefer the TLS listener (--tls-cert, --tls-key)"
            );
        }
    }
    if let Some(addr) = options
        .http
        .filter(|a| !a.ip().is_loopback() && !options.https)
    {
        warn!(
            "HTTP API: plain HTTP on {addr} is reachable from other hosts and carries API tokens \
             in clear; prefer --https"
        );
    }
    if let Some(addr) = tls {
        let certificates = match options.tls.as_ref().and_then(|t| t.client_ca.as_ref()) {
            Some(_) => "; device certificates verified against --client-ca",
            None => "",
        };
        info!("devices: listening on iotmps://{addr} (TLS, runtime {runtime}{certificates})");
    }
}

fn spawn(name: &str, work: impl FnOnce() + Send + 'static) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(work)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_statuses() {
        let bind =
            |kind| ServerError::bind("x", "127.0.0.1:1".into(), "--x", io::Error::from(kind));
        assert_eq!(bind(io::ErrorKind::AddrInUse).exit(), Exit::Usage);
        assert_eq!(bind(io::ErrorKind::ConnectionReset).exit(), Exit::Failure);
        assert_eq!(ServerError::Stopped("the HTTP API").exit(), Exit::Failure);
        assert_eq!(
            ServerError::Settings(SettingsError::NoDeviceListener).exit(),
            Exit::Usage
        );
    }
}
