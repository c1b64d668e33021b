//! `iotmp bench` end to end: the real binary against a real `iotmp server` on loopback with
//! OS-picked ports, small fleets and short runs, checking what the JSON summary says happened.
//! No figure is asserted beyond "it worked": performance is measured, not tested.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation must stop the test loudly"
)]

#[allow(dead_code, reason = "each test crate uses a subset of the helpers")]
mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;

use common::iotmp_command;
use common::server::{Registry, Server};
use serde_json::Value as Json;

/// A real server on a registry of its own, seen the way the bench sees it.
struct LoopbackServer {
    server: Server,
    /// The registry file it serves (the bench provisions into it).
    db: PathBuf,
    /// Device listener.
    devices: SocketAddr,
    /// HTTP API.
    http: SocketAddr,
    _registry: Registry,
}

impl LoopbackServer {
    fn start() -> LoopbackServer {
        let registry = Registry::new(&[]);
        let server = Server::start(&registry, &[]);
        LoopbackServer {
            db: PathBuf::from(registry.db()),
            devices: server.tcp.expect("a device listener"),
            http: server.http(),
            server,
            _registry: registry,
        }
    }

    fn pid(&self) -> u32 {
        self.server.child.id()
    }

    fn log(&self) -> String {
        self.server.stderr()
    }
}

const DEVICES: &str = "20";

/// Runs `iotmp bench <args> --json --quiet` against `server`; the parsed summary.
fn bench(server: &LoopbackServer, args: &[&str]) -> Json {
    let output = iotmp_command()
        .arg("bench")
        .args(args)
        .args(["--db", server.db.to_str().unwrap()])
        .args(["--server", &server.devices.to_string()])
        .args(["--json", "--quiet"])
        .stdin(Stdio::null())
        .output()
        .expect("iotmp bench runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "iotmp bench {args:?}: {stderr}\nserver log:\n{}",
        server.log()
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {stdout}"))
}

fn u(summary: &Json, field: &str) -> u64 {
    summary[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} is not a count in {summary}"))
}

/// Latency fields are present, describe `count` samples, and are ordered.
fn assert_latency(summary: &Json, field: &str) {
    let latency = &summary[field];
    let get = |name: &str| {
        latency[name]
            .as_u64()
            .unwrap_or_else(|| panic!("{field}.{name} missing in {summary}"))
    };
    assert!(get("count") > 0, "{summary}");
    assert!(get("p50_us") > 0, "{summary}");
    assert!(get("p50_us") <= get("p99_us"), "{summary}");
    assert!(get("p99_us") <= get("p999_us"), "{summary}");
    assert!(get("p999_us") <= get("max_us"), "{summary}");
}

#[test]
fn conn_connects_every_device_and_reports_memory() {
    let server = LoopbackServer::start();
    let pid = server.pid().to_string();
    let s = bench(
        &server,
        &[
            "conn",
            "--devices",
            DEVICES,
            "--duration",
            "1",
            "--server-pid",
            &pid,
        ],
    );
    assert_eq!(s["bench"], "conn");
    assert_eq!(u(&s, "connected"), 20, "{s}");
    assert_eq!(u(&s, "failed"), 0, "{s}");
    assert_eq!(u(&s, "dropped"), 0, "{s}");
    assert_eq!(s["failure_reasons"], serde_json::json!({}));
    assert!(s["connect_rate"].as_f64().unwrap() > 0.0, "{s}");
    assert_latency(&s, "connect_latency");
    assert!(u(&s, "rss_before_bytes") > 0, "{s}");
    assert!(u(&s, "rss_after_bytes") > 0, "{s}");
    assert!(s["rss_per_device_bytes"].is_number(), "{s}");
    assert_eq!(s["interrupted"], false);
    // Every device really authenticated against the server's registry.
    assert!(
        server.log().contains("device bench/bench-19 online"),
        "{}",
        server.log()
    );
}

#[test]
fn conn_without_pid_has_no_memory_figures() {
    let server = LoopbackServer::start();
    let s = bench(&server, &["conn", "--devices", "3", "--duration", "1"]);
    assert_eq!(u(&s, "connected"), 3, "{s}");
    assert!(s["rss_per_device_bytes"].is_null(), "{s}");
}

#[test]
fn stream_events_arrive_without_loss_at_a_low_rate() {
    let server = LoopbackServer::start();
    let pid = server.pid().to_string();
    let http = server.http.to_string();
    let s = bench(
        &server,
        &[
            "stream",
            "--http",
            &http,
            "--devices",
            DEVICES,
            "--rate",
            "200",
            "--warm-up",
            "1",
            "--duration",
            "2",
            "--server-pid",
            &pid,
        ],
    );
    assert_eq!(s["bench"], "stream");
    assert_eq!(s["mode"], "events");
    assert_eq!(u(&s, "devices_connected"), 20, "{s}");
    assert_eq!(u(&s, "sinks_subscribed"), 20, "{s}");
    assert!(u(&s, "sent") > 0, "{s}");
    assert_eq!(u(&s, "received"), u(&s, "sent"), "{s}");
    assert_eq!(u(&s, "lost"), 0, "{s}");
    assert_eq!(u(&s, "sinks_with_loss"), 0, "{s}");
    assert_eq!(u(&s, "failures"), 0, "{s}");
    assert_eq!(u(&s, "bad_frames"), 0, "{s}");
    assert!(s["delivered_per_sec"].as_f64().unwrap() > 0.0, "{s}");
    assert_latency(&s, "latency");
    assert_eq!(u(&s["latency"], "count"), u(&s, "received"), "{s}");
    assert!(s["server_cpu_us_per_sample"].is_number(), "{s}");
    assert!(s["bench_cpu_seconds"].is_number(), "{s}");
}

#[test]
fn stream_sampling_gets_a_sample_per_interval() {
    let server = LoopbackServer::start();
    let http = server.http.to_string();
    let s = bench(
        &server,
        &[
            "stream",
            "--http",
            &http,
            "--devices",
            "5",
            "--interval",
            "1",
            "--warm-up",
            "1",
            "--duration",
            "3",
        ],
    );
    assert_eq!(s["mode"], "sampling");
    assert_eq!(s["interval_seconds"], 1);
    assert_eq!(u(&s, "sinks_subscribed"), 5, "{s}");
    // 5 sinks × about 3 samples each in the window.
    assert!(u(&s, "received") >= 5, "{s}");
    assert_eq!(u(&s, "lost"), 0, "{s}");
    assert_latency(&s, "latency");
    assert!(s["server_cpu_us_per_sample"].is_null(), "{s}");
}

#[test]
fn rpc_round_trips_succeed() {
    let server = LoopbackServer::start();
    let pid = server.pid().to_string();
    let http = server.http.to_string();
    let s = bench(
        &server,
        &[
            "rpc",
            "--http",
            &http,
            "--devices",
            DEVICES,
            "--concurrency",
            "4",
            "--warm-up",
            "1",
            "--duration",
            "2",
            "--server-pid",
            &pid,
        ],
    );
    assert_eq!(s["bench"], "rpc");
    assert_eq!(u(&s, "devices_connected"), 20, "{s}");
    assert!(u(&s, "requests") > 0, "{s}");
    assert_eq!(u(&s, "failures"), 0, "{s}");
    assert!(s["requests_per_sec"].as_f64().unwrap() > 0.0, "{s}");
    assert_latency(&s, "latency");
    assert!(s["server_cpu_us_per_request"].is_number(), "{s}");
}

#[test]
fn non_loopback_targets_oversized_fleets_and_bad_durations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("none.db");
    let db = db.to_str().unwrap();
    for (args, needle) in [
        (
            vec!["conn", "--server", "192.0.2.1:25204"],
            "--server 192.0.2.1:25204 is not a loopback address",
        ),
        (
            vec!["stream", "--http", "10.1.2.3:8080"],
            "--http 10.1.2.3:8080 is not a loopback address",
        ),
        (vec!["rpc", "--devices", "5000000"], "open files"),
        (vec!["conn", "--duration", "0"], "--duration"),
        (vec!["stream", "--duration", "100000"], "--duration"),
    ] {
        let output = iotmp_command()
            .arg("bench")
            .args(&args)
            .args(["--db", db, "--quiet"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
    // Refused before anything was written.
    assert!(!dir.path().join("none.db").exists());
}
