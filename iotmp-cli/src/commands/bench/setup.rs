//! What every bench subcommand does before and around its roles: check the targets and the
//! open-file budget, install Ctrl-C, provision, start the device fleet and wait for it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::BenchError;
use super::clock::Clock;
use super::fleet::{self, FleetPlan, FleetReport, FleetShared};
use super::progress::Progress;
use super::provision::{self, Credentials};
use super::system::{RESERVED_FILES, raise_file_limit};
use crate::cli::BenchCommonArgs;
use crate::commands::stop::{SecondSignal, StopSignal};
use crate::config::ServerConfig;
use crate::store::DEFAULT_DB;

/// How long connecting may take beyond what the rate implies, before the bench goes on with
/// the devices it has.
const CONNECT_SLACK: Duration = Duration::from_secs(30);

/// A bench about to run: checked options, signals, clock, progress bar, credentials.
pub(crate) struct Bench {
    /// Ctrl-C.
    pub(crate) stop: StopSignal,
    /// The one time origin.
    pub(crate) clock: Clock,
    /// The bar on stderr.
    pub(crate) progress: Progress,
    /// The provisioned user, devices and token.
    pub(crate) credentials: Credentials,
}

impl Bench {
    /// Checks `addrs` are loopback, that `sockets` fit the open-file limit (raised to the hard
    /// limit), installs Ctrl-C, provisions the devices and waits until the server serves them.
    pub(crate) fn prepare(
        common: &BenchCommonArgs,
        config: &ServerConfig,
        addrs: &[(&'static str, SocketAddr)],
        sockets: u64,
    ) -> Result<Bench, BenchError> {
        for &(what, addr) in addrs {
            if !addr.ip().is_loopback() {
                return Err(BenchError::NotLoopback { what, addr });
            }
        }
        if common.devices == 0 {
            return Err(BenchError::BadCount("--devices must be at least 1"));
        }
        let limit = raise_file_limit();
        let needed = sockets.saturating_add(RESERVED_FILES);
        if needed > limit {
            let per_device = sockets.div_ceil(u64::from(common.devices)).max(1);
            let extra = sockets.saturating_sub(per_device * u64::from(common.devices));
            return Err(BenchError::TooManyDevices {
                devices: common.devices,
                needed,
                limit,
                max: limit.saturating_sub(RESERVED_FILES + extra) / per_device,
            });
        }
        if let Some(pid) = common.server_pid {
            super::system::rss_bytes(pid).map_err(|source| BenchError::Proc { pid, source })?;
        }
        let stop = StopSignal::install(SecondSignal::Exits).map_err(BenchError::Signal)?;
        let progress = Progress::new(common.quiet);
        progress.phase("provisioning", u64::from(common.devices));
        let db = common
            .db
            .clone()
            .or_else(|| config.db.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DB));
        let credentials = provision::provision(&db, &common.user, common.devices)?;
        progress.update(
            u64::from(common.devices),
            "waiting for the server to load them".to_owned(),
        );
        provision::wait_until_served(common.server, &credentials, &|| stop.is_set())?;
        Ok(Bench {
            stop,
            clock: Clock::start(),
            progress,
            credentials,
        })
    }

    /// Whether Ctrl-C came.
    pub(crate) fn interrupted(&self) -> bool {
        self.stop.is_set()
    }

    /// Starts the device fleet on its thread.
    pub(crate) fn start_fleet(
        &self,
        common: &BenchCommonArgs,
        connect_rate: u32,
        keep_alive: u32,
        event_rate: u32,
    ) -> Fleet {
        let shared = Arc::new(FleetShared::default());
        let plan = FleetPlan {
            server: common.server,
            user: self.credentials.user.clone(),
            devices: self.credentials.devices.clone(),
            connect_rate,
            keep_alive,
            event_rate,
        };
        let clock = self.clock;
        let loop_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("bench-devices".to_owned())
            .spawn(move || fleet::run(plan, &loop_shared, clock));
        Fleet { shared, thread }
    }

    /// Waits until every device connected or failed (or Ctrl-C, or the connect rate's time plus
    /// [`CONNECT_SLACK`] passed), showing the count.
    pub(crate) fn wait_connected(&self, fleet: &Fleet, devices: u32, rate: u32) {
        self.progress.phase("connecting", u64::from(devices));
        let budget = u64::from(devices) * 1_000_000 / u64::from(rate.max(1));
        let deadline = self.clock.now_us() + budget + CONNECT_SLACK.as_micros() as u64;
        while !self.interrupted() && self.clock.now_us() < deadline && !fleet.finished() {
            let connected = fleet.shared.connected.get();
            let failed = fleet.shared.failed.get();
            if connected + failed >= u64::from(devices) {
                break;
            }
            self.progress.update(connected, format!("{failed} failed"));
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Shows a timed phase until `until_us` (or Ctrl-C); `note` describes where it is.
    pub(crate) fn timed_phase(&self, name: &'static str, until_us: u64, note: &dyn Fn() -> String) {
        let start = self.clock.now_us();
        let total = until_us.saturating_sub(start) / 1_000_000;
        self.progress.phase(name, total.max(1));
        while !self.interrupted() {
            let now = self.clock.now_us();
            if now >= until_us {
                break;
            }
            self.progress.update((now - start) / 1_000_000, note());
            std::thread::sleep(
                Duration::from_millis(100).min(Duration::from_micros(until_us - now)),
            );
        }
    }
}

/// The running device fleet.
pub(crate) struct Fleet {
    /// Its counters and flags.
    pub(crate) shared: Arc<FleetShared>,
    thread: std::io::Result<JoinHandle<std::io::Result<FleetReport>>>,
}

impl Fleet {
    fn finished(&self) -> bool {
        self.thread.as_ref().map_or(true, JoinHandle::is_finished)
    }

    /// Stops the loop (closing every connection) and returns its report.
    pub(crate) fn stop(self) -> Result<FleetReport, BenchError> {
        self.shared.stop.set(true);
        join("device", self.thread)
    }
}

/// Joins a role's thread.
pub(crate) fn join<T>(
    role: &'static str,
    thread: std::io::Result<JoinHandle<std::io::Result<T>>>,
) -> Result<T, BenchError> {
    let handle = thread.map_err(|source| BenchError::Loop { role, source })?;
    match handle.join() {
        Ok(Ok(report)) => Ok(report),
        Ok(Err(source)) => Err(BenchError::Loop { role, source }),
        Err(_) => Err(BenchError::Panicked(role)),
    }
}

/// Reads the CPU time of process `pid` when one is given.
pub(crate) fn process_cpu(pid: Option<u32>) -> Option<u64> {
    pid.and_then(|pid| super::system::cpu_us(pid).ok())
}
