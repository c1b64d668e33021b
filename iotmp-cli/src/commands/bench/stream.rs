//! `iotmp bench stream`: N devices, each streaming [`RESOURCE`](super::fleet::RESOURCE) to its
//! own single-resource WebSocket sink.
//!
//! Phases: devices connect; sinks subscribe (event-only, or `?interval=N`); devices start
//! pushing (event mode) and the warm-up runs; then the measured window of `--duration`; then
//! devices stop pushing and the sinks get up to [`DRAIN`] to receive what is in flight. Only
//! samples *sent* inside the window count, on both sides: `lost` = sent − received per sink,
//! summed. Server CPU (`--server-pid`) is read at the window's start and end.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::BenchError;
use super::clock::Clock;
use super::setup::{Bench, join, process_cpu};
use super::sinks::{self, SinkPlan, SinkShared};
use super::stats::{Latency, cpu_per_item, per_sec};
use super::summary::{self, Summary, reasons_text};
use crate::cli::BenchStreamArgs;
use crate::config::ServerConfig;

/// How long sinks may take to receive the samples sent before the window closed.
const DRAIN: Duration = Duration::from_secs(3);

/// Connection rate of the stream bench's devices.
const CONNECT_RATE: u32 = 5_000;

/// The `stream` summary (JSON field names are documented in `iotmp bench --help`).
#[derive(Debug, Serialize)]
struct StreamSummary {
    bench: &'static str,
    mode: &'static str,
    devices: u32,
    devices_connected: u64,
    sinks_subscribed: u64,
    rate_requested: Option<u32>,
    interval_seconds: Option<u32>,
    warm_up_seconds: u64,
    duration_seconds: f64,
    sent: u64,
    received: u64,
    sent_per_sec: f64,
    delivered_per_sec: f64,
    lost: u64,
    loss_ratio: f64,
    sinks_with_loss: u64,
    max_lost_by_one_sink: u64,
    bad_frames: u64,
    failures: u64,
    failure_reasons: std::collections::BTreeMap<String, u64>,
    latency: Latency,
    server_cpu_seconds: Option<f64>,
    bench_cpu_seconds: Option<f64>,
    server_cpu_us_per_sample: Option<f64>,
    interrupted: bool,
}

impl Summary for StreamSummary {
    fn text(&self) -> String {
        let mode = match (self.rate_requested, self.interval_seconds) {
            (_, Some(n)) => format!("sampling every {n} s"),
            (Some(r), None) => format!("events at {r}/s asked"),
            (None, None) => "events".to_owned(),
        };
        let mut text = format!(
            "stream: {} devices ({} connected), {} sinks subscribed, {mode}, {:.1} s measured\n  \
             sent {} ({}/s), received {} ({}/s delivered), lost {} ({:.4} %, {} sinks lost \
             some, at most {})\n  latency: {}\n",
            self.devices,
            self.devices_connected,
            self.sinks_subscribed,
            self.duration_seconds,
            self.sent,
            self.sent_per_sec,
            self.received,
            self.delivered_per_sec,
            self.lost,
            self.loss_ratio * 100.0,
            self.sinks_with_loss,
            self.max_lost_by_one_sink,
            self.latency.text()
        );
        if let Some(cpu) = self.server_cpu_us_per_sample {
            text.push_str(&format!(
                "  server CPU: {:.2} s, {cpu} µs per delivered sample\n",
                self.server_cpu_seconds.unwrap_or(0.0)
            ));
        }
        if self.failures > 0 {
            text.push_str(&format!("  {} failures:\n", self.failures));
            text.push_str(&reasons_text(&self.failure_reasons));
        }
        if let Some(own) = self.bench_cpu_seconds {
            text.push_str(&format!("  bench CPU: {own:.2} s\n"));
        }
        if self.interrupted {
            text.push_str("  interrupted: partial figures\n");
        }
        text
    }
}

/// Runs `iotmp bench stream`.
pub(crate) fn run(args: &BenchStreamArgs, config: &ServerConfig) -> Result<(), BenchError> {
    let common = &args.common;
    let event_rate = if args.interval.is_some() {
        0
    } else {
        args.rate
    };
    if args.interval.is_none() && args.rate == 0 {
        return Err(BenchError::BadCount("--rate must be at least 1"));
    }
    let bench = Bench::prepare(
        common,
        config,
        &[("--server", common.server), ("--http", args.http)],
        2 * u64::from(common.devices),
    )?;
    let fleet = bench.start_fleet(common, CONNECT_RATE, 60, event_rate);
    bench.wait_connected(&fleet, common.devices, CONNECT_RATE);

    let sink_shared = Arc::new(SinkShared::default());
    let plan = SinkPlan {
        http: args.http,
        user: bench.credentials.user.clone(),
        token: bench.credentials.token.clone(),
        devices: bench.credentials.names(),
        interval: args.interval,
    };
    let clock = bench.clock;
    let loop_shared = Arc::clone(&sink_shared);
    let sink_thread = std::thread::Builder::new()
        .name("bench-sinks".to_owned())
        .spawn(move || sinks::run(&plan, &loop_shared, clock));
    wait_subscribed(&bench, &sink_shared, common.devices);

    // Warm-up, then the window; devices push from the start of the warm-up.
    let start = bench.clock.now_us() + args.warm_up * 1_000_000;
    let end = start + common.duration * 1_000_000;
    fleet.shared.window.set(start, end);
    sink_shared.window.set(start, end);
    fleet.shared.emit.set(true);
    let progress_note = || {
        format!(
            "sent {} received {}",
            fleet.shared.sent.get(),
            sink_shared.received.get()
        )
    };
    bench.timed_phase("warm-up", start, &progress_note);
    let cpu_start = process_cpu(common.server_pid);
    let own_start = process_cpu(Some(std::process::id()));
    bench.timed_phase("measuring", end, &progress_note);
    let cpu_end = process_cpu(common.server_pid);
    let own_end = process_cpu(Some(std::process::id()));
    let measured_us = bench.clock.now_us().min(end).saturating_sub(start);
    fleet.shared.emit.set(false);
    drain(&bench.clock, &fleet.shared.sent, &sink_shared, &|| {
        bench.interrupted()
    });
    let interrupted = bench.interrupted();

    sink_shared.stop.set(true);
    let sink_report = join("sink", sink_thread)?;
    let devices_connected = fleet.shared.connected.get();
    let fleet_report = fleet.stop()?;
    bench.progress.finish();

    let mut lost = 0;
    let mut sinks_with_loss = 0;
    let mut max_lost = 0;
    for (sent, received) in fleet_report.sent.iter().zip(&sink_report.received) {
        let missing = sent.saturating_sub(*received);
        lost += missing;
        sinks_with_loss += u64::from(missing > 0);
        max_lost = max_lost.max(missing);
    }
    let sent: u64 = fleet_report.sent.iter().sum();
    let received: u64 = sink_report.received.iter().sum();
    let cpu = cpu_start.zip(cpu_end).map(|(a, b)| b.saturating_sub(a));
    let failure_reasons = summary::reasons(&[
        ("device", &fleet_report.failures),
        ("sink", &sink_report.failures),
    ]);
    let summary = StreamSummary {
        bench: "stream",
        mode: if args.interval.is_some() {
            "sampling"
        } else {
            "events"
        },
        devices: common.devices,
        devices_connected,
        sinks_subscribed: sink_shared.subscribed.get(),
        rate_requested: args.interval.is_none().then_some(args.rate),
        interval_seconds: args.interval,
        warm_up_seconds: args.warm_up,
        duration_seconds: measured_us as f64 / 1e6,
        sent,
        received,
        sent_per_sec: per_sec(sent, measured_us),
        delivered_per_sec: per_sec(received, measured_us),
        lost,
        loss_ratio: if sent == 0 {
            0.0
        } else {
            lost as f64 / sent as f64
        },
        sinks_with_loss,
        max_lost_by_one_sink: max_lost,
        bad_frames: sink_report.bad_frames,
        failures: failure_reasons.values().sum(),
        failure_reasons,
        latency: Latency::of(&sink_report.latency),
        server_cpu_seconds: cpu.map(|us| us as f64 / 1e6),
        bench_cpu_seconds: own_start
            .zip(own_end)
            .map(|(a, b)| b.saturating_sub(a) as f64 / 1e6),
        server_cpu_us_per_sample: cpu_per_item(cpu, received),
        interrupted,
    };
    summary::print(&summary, common.json)
}

/// Waits until every sink subscribed or failed (at most a minute, or Ctrl-C).
fn wait_subscribed(bench: &Bench, shared: &SinkShared, devices: u32) {
    bench.progress.phase("subscribing", u64::from(devices));
    let deadline = bench.clock.now_us() + 60_000_000;
    while !bench.interrupted() && bench.clock.now_us() < deadline {
        let done = shared.subscribed.get();
        let failed = shared.failed.get();
        if done + failed >= u64::from(devices) {
            break;
        }
        bench.progress.update(done, format!("{failed} failed"));
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Gives the sinks up to [`DRAIN`] to catch up with what was sent in the window.
fn drain(clock: &Clock, sent: &super::clock::Counter, sinks: &SinkShared, stop: &dyn Fn() -> bool) {
    let deadline = clock.now_us() + DRAIN.as_micros() as u64;
    while clock.now_us() < deadline && !stop() {
        if sinks.received.get() >= sent.get() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
