//! `iotmp bench rpc`: N devices connect; `--concurrency` HTTP connections each keep one RUN
//! (`GET .../resources/v`, spec §8.2) in flight, cycling over the devices, for the warm-up and
//! then `--duration`. Requests *started* inside the window count; the latency is the HTTP
//! round trip (request written to response read), which includes the server's RUN to the
//! device and the device's answer.

use std::sync::Arc;

use serde::Serialize;

use super::BenchError;
use super::callers::{self, CallPlan, CallShared};
use super::setup::{Bench, join, process_cpu};
use super::stats::{Latency, cpu_per_item, per_sec};
use super::summary::{self, Summary, reasons_text};
use crate::cli::BenchRpcArgs;
use crate::config::ServerConfig;

/// Connection rate of the rpc bench's devices.
const CONNECT_RATE: u32 = 5_000;

/// The `rpc` summary (JSON field names are documented in `iotmp bench --help`).
#[derive(Debug, Serialize)]
struct RpcSummary {
    bench: &'static str,
    devices: u32,
    devices_connected: u64,
    concurrency: u32,
    warm_up_seconds: u64,
    duration_seconds: f64,
    requests: u64,
    failures: u64,
    failure_reasons: std::collections::BTreeMap<String, u64>,
    requests_per_sec: f64,
    latency: Latency,
    server_cpu_seconds: Option<f64>,
    bench_cpu_seconds: Option<f64>,
    server_cpu_us_per_request: Option<f64>,
    interrupted: bool,
}

impl Summary for RpcSummary {
    fn text(&self) -> String {
        let mut text = format!(
            "rpc: {} devices ({} connected), concurrency {}, {:.1} s measured\n  {} requests \
             ({}/s), {} failures\n  latency: {}\n",
            self.devices,
            self.devices_connected,
            self.concurrency,
            self.duration_seconds,
            self.requests,
            self.requests_per_sec,
            self.failures,
            self.latency.text()
        );
        text.push_str(&reasons_text(&self.failure_reasons));
        if let Some(cpu) = self.server_cpu_us_per_request {
            text.push_str(&format!(
                "  server CPU: {:.2} s, {cpu} µs per request\n",
                self.server_cpu_seconds.unwrap_or(0.0)
            ));
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

/// Runs `iotmp bench rpc`.
pub(crate) fn run(args: &BenchRpcArgs, config: &ServerConfig) -> Result<(), BenchError> {
    let common = &args.common;
    let bench = Bench::prepare(
        common,
        config,
        &[("--server", common.server), ("--http", args.http)],
        u64::from(common.devices) + u64::from(args.concurrency),
    )?;
    let fleet = bench.start_fleet(common, CONNECT_RATE, 60, 0);
    bench.wait_connected(&fleet, common.devices, CONNECT_RATE);

    let shared = Arc::new(CallShared::default());
    let start = bench.clock.now_us() + args.warm_up * 1_000_000;
    let end = start + common.duration * 1_000_000;
    shared.window.set(start, end);
    let plan = CallPlan {
        http: args.http,
        user: bench.credentials.user.clone(),
        token: bench.credentials.token.clone(),
        devices: bench.credentials.names(),
        concurrency: args.concurrency as usize,
    };
    let clock = bench.clock;
    let loop_shared = Arc::clone(&shared);
    let thread = std::thread::Builder::new()
        .name("bench-rpc".to_owned())
        .spawn(move || callers::run(&plan, &loop_shared, clock));
    let note = || format!("{} ok, {} failed", shared.ok.get(), shared.failed.get());
    bench.timed_phase("warm-up", start, &note);
    let cpu_start = process_cpu(common.server_pid);
    let own_start = process_cpu(Some(std::process::id()));
    bench.timed_phase("measuring", end, &note);
    let cpu_end = process_cpu(common.server_pid);
    let own_end = process_cpu(Some(std::process::id()));
    let measured_us = bench.clock.now_us().min(end).saturating_sub(start);
    let interrupted = bench.interrupted();
    // The last requests of the window get their answers (bounded by the server's timeout).
    let settle_until = bench.clock.now_us() + 2_000_000;
    bench
        .clock
        .sleep_until(settle_until, &|| bench.interrupted());
    shared.stop.set(true);
    let report = join("rpc", thread)?;
    let devices_connected = fleet.shared.connected.get();
    let fleet_report = fleet.stop()?;
    bench.progress.finish();

    let requests = shared.ok.get();
    let cpu = cpu_start.zip(cpu_end).map(|(a, b)| b.saturating_sub(a));
    let failure_reasons = summary::reasons(&[
        ("device", &fleet_report.failures),
        ("request", &report.failures),
    ]);
    let summary = RpcSummary {
        bench: "rpc",
        devices: common.devices,
        devices_connected,
        concurrency: args.concurrency,
        warm_up_seconds: args.warm_up,
        duration_seconds: measured_us as f64 / 1e6,
        requests,
        failures: failure_reasons.values().sum(),
        failure_reasons,
        requests_per_sec: per_sec(requests, measured_us),
        latency: Latency::of(&report.latency),
        server_cpu_seconds: cpu.map(|us| us as f64 / 1e6),
        bench_cpu_seconds: own_start
            .zip(own_end)
            .map(|(a, b)| b.saturating_sub(a) as f64 / 1e6),
        server_cpu_us_per_request: cpu_per_item(cpu, requests),
        interrupted,
    };
    summary::print(&summary, common.json)
}
