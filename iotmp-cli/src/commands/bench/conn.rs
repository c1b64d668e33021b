//! `iotmp bench conn`: N devices connect at a rate, authenticate and stay idle (keep-alives
//! only) for `--duration`; the summary gives the connect rate, failures and, with
//! `--server-pid`, the server's resident memory per device.
//!
//! Memory: `VmRSS` is read before the first connection, then, once every device is up, every
//! [`SETTLE_STEP`] until two consecutive readings are equal (stable for one step) or
//! [`SETTLE_MAX`] passed; `rss_per_device_bytes` = (settled − before) / connected. The reading
//! at the end of the idle time is reported too (`rss_end_bytes`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::BenchError;
use super::setup::Bench;
use super::stats::{Latency, per_sec};
use super::summary::{self, Summary, bytes, reasons_text};
use super::system::rss_bytes;
use crate::cli::BenchConnArgs;
use crate::config::ServerConfig;

/// Time between two RSS readings while settling.
const SETTLE_STEP: Duration = Duration::from_millis(500);

/// The longest the settling waits.
const SETTLE_MAX: Duration = Duration::from_secs(15);

/// The `conn` summary (JSON field names are documented in `iotmp bench --help`).
#[derive(Debug, Serialize)]
struct ConnSummary {
    bench: &'static str,
    devices: u32,
    connected: u64,
    failed: u64,
    dropped: u64,
    failure_reasons: BTreeMap<String, u64>,
    connect_seconds: f64,
    connect_rate: f64,
    connect_latency: Latency,
    rss_before_bytes: Option<u64>,
    rss_after_bytes: Option<u64>,
    rss_end_bytes: Option<u64>,
    rss_per_device_bytes: Option<f64>,
    settle_seconds: Option<f64>,
    idle_seconds: u64,
    interrupted: bool,
}

impl Summary for ConnSummary {
    fn text(&self) -> String {
        let mut text = format!(
            "conn: {} of {} devices connected in {:.2} s ({} connections/s), {} failed, {} \
             dropped while idle\n  time to OK: {}\n",
            self.connected,
            self.devices,
            self.connect_seconds,
            self.connect_rate,
            self.failed,
            self.dropped,
            self.connect_latency.text()
        );
        text.push_str(&reasons_text(&self.failure_reasons));
        if let (Some(before), Some(after), Some(per)) = (
            self.rss_before_bytes,
            self.rss_after_bytes,
            self.rss_per_device_bytes,
        ) {
            text.push_str(&format!(
                "  server RSS: {} before, {} with every device up (settled in {:.1} s): {per:.0} \
                 bytes per device\n",
                bytes(before),
                bytes(after),
                self.settle_seconds.unwrap_or(0.0)
            ));
        }
        if self.interrupted {
            text.push_str("  interrupted: partial figures\n");
        }
        text
    }
}

/// Runs `iotmp bench conn`.
pub(crate) fn run(args: &BenchConnArgs, config: &ServerConfig) -> Result<(), BenchError> {
    let common = &args.common;
    if args.rate == 0 {
        return Err(BenchError::BadCount("--rate must be at least 1"));
    }
    let bench = Bench::prepare(
        common,
        config,
        &[("--server", common.server)],
        u64::from(common.devices),
    )?;
    // The provisioning probe's connection must be gone from the server's figures.
    std::thread::sleep(Duration::from_millis(300));
    let pid = common.server_pid;
    let rss_before = pid.and_then(|p| rss_bytes(p).ok());
    let fleet = bench.start_fleet(common, args.rate, args.keep_alive, 0);
    bench.wait_connected(&fleet, common.devices, args.rate);
    let connected_at = bench.clock.now_us();
    let (rss_after, settle_seconds) = match pid {
        Some(p) if !bench.interrupted() => {
            bench.progress.phase("settling", SETTLE_MAX.as_secs());
            let (rss, took) = settle(&bench, p);
            (rss, Some(took.as_secs_f64()))
        }
        _ => (None, None),
    };
    let idle_until = connected_at + common.duration * 1_000_000;
    let shared = &fleet.shared;
    bench.timed_phase("idle", idle_until, &|| {
        format!(
            "{} up, {} dropped",
            shared.connected.get() - shared.dropped.get(),
            shared.dropped.get()
        )
    });
    let rss_end = pid.and_then(|p| rss_bytes(p).ok());
    let interrupted = bench.interrupted();
    let dropped = fleet.shared.dropped.get();
    let failed = fleet.shared.failed.get();
    let connected = fleet.shared.connected.get();
    let report = fleet.stop()?;
    bench.progress.finish();
    let span = report
        .last_connected_us
        .saturating_sub(report.first_open_us);
    let per_device = match (rss_before, rss_after) {
        (Some(before), Some(after)) if connected > 0 => {
            Some((after as f64 - before as f64) / connected as f64)
        }
        _ => None,
    };
    let summary = ConnSummary {
        bench: "conn",
        devices: common.devices,
        connected,
        failed,
        dropped,
        failure_reasons: summary::reasons(&[("device", &report.failures)]),
        connect_seconds: span as f64 / 1e6,
        connect_rate: per_sec(connected, span),
        connect_latency: super::stats::Latency::of(&report.connect_latency),
        rss_before_bytes: rss_before,
        rss_after_bytes: rss_after,
        rss_end_bytes: rss_end,
        rss_per_device_bytes: per_device.map(|b| b.round()),
        settle_seconds,
        idle_seconds: common.duration,
        interrupted,
    };
    summary::print(&summary, common.json)
}

/// Reads RSS until it stops changing; the settled value and how long it took.
fn settle(bench: &Bench, pid: u32) -> (Option<u64>, Duration) {
    let start = std::time::Instant::now();
    let mut last = rss_bytes(pid).ok();
    while start.elapsed() < SETTLE_MAX && !bench.interrupted() {
        std::thread::sleep(SETTLE_STEP);
        let now = rss_bytes(pid).ok();
        bench.progress.update(
            start.elapsed().as_secs(),
            format!("RSS {}", bytes(now.unwrap_or(0))),
        );
        if now == last {
            break;
        }
        last = now;
    }
    (last, start.elapsed())
}
