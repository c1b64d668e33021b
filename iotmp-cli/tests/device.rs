//! `iotmp device` end to end: the real binary against an in-process server
//! (`iotmp_smol::serve` on 127.0.0.1:0), on every runtime and in both dialects.
//!
//! Each scenario authenticates the device, DESCRIBEs it, RUNs each kind of resource, writes
//! an input file, watches `--on-change` stream a change (and not a change below the
//! threshold), then sends SIGINT and expects a DISCONNECT and exit status 0. Every wait is
//! bounded; everything stays on the loopback interface.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation must stop the test loudly"
)]

#[allow(dead_code, reason = "each test crate uses a subset of the helpers")]
mod common;

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iotmp_proto::broker::BrokerEvent;
use iotmp_proto::control::RequestResult;
use iotmp_proto::json::value::to_json;
use iotmp_proto::server::Credentials;
use iotmp_proto::{Answer, CloseReason, Dialect, Value};
use iotmp_smol::{Server, ServerOptions};
use smol::future::FutureExt as _;

/// Long enough for a loaded CI machine, short enough to fail a hung test quickly.
const WAIT: Duration = Duration::from_secs(15);

/// A running `iotmp device`; killed if the test ends without stopping it.
struct DeviceProcess {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl DeviceProcess {
    fn start(args: &[&str], env: &[(&str, &str)]) -> DeviceProcess {
        let mut command = common::iotmp_command();
        command
            .arg("device")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("the iotmp binary runs");
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut text = sink.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        DeviceProcess { child, stderr }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until stderr holds `needle`.
    fn wait_for_log(&self, needle: &str) {
        let deadline = Instant::now() + WAIT;
        while !self.stderr().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the logs:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn interrupt(&self) {
        use rustix::process::{Pid, Signal, kill_process};
        kill_process(Pid::from_child(&self.child), Signal::INT).unwrap();
    }

    /// Waits for the exit status.
    fn wait(&mut self) -> i32 {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Give the stderr reader a moment to take the last lines.
                std::thread::sleep(Duration::from_millis(50));
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "iotmp device did not exit:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for DeviceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server on a free loopback port.
fn server() -> (Server, SocketAddr) {
    let server = iotmp_smol::serve(ServerOptions {
        tcp: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        ..ServerOptions::default()
    })
    .unwrap();
    let addr = server.tcp_addr().unwrap();
    (server, addr)
}

/// The next event that `pick` wants, skipping the others; fails after [`WAIT`].
fn wait_event<T>(
    server: &Server,
    device: &DeviceProcess,
    what: &str,
    mut pick: impl FnMut(BrokerEvent) -> Option<T>,
) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = smol::block_on(async { server.events.recv().await.ok() }.or(async {
            smol::Timer::after(left).await;
            None
        }));
        let Some(event) = event else {
            panic!(
                "no {what} within {WAIT:?}; device logs:\n{}",
                device.stderr()
            );
        };
        if let Some(found) = pick(event) {
            return found;
        }
    }
}

fn answer_value(
    result: Option<RequestResult>,
    what: &str,
    device: &DeviceProcess,
) -> Option<Value> {
    match result {
        Some(Ok(Answer::Ok { payload, .. })) => payload,
        other => panic!("{what}: {other:?}; device logs:\n{}", device.stderr()),
    }
}

fn run(
    server: &Server,
    device: &DeviceProcess,
    resource: &str,
    input: Option<Value>,
) -> Option<Value> {
    let answer = server
        .handle
        .run("dev01", resource, input)
        .wait_timeout(WAIT);
    answer_value(answer, &format!("RUN {resource}"), device)
}

fn json(value: &Value) -> String {
    to_json(value).to_string()
}

/// Replaces a file's contents the way a sensor daemon should: never half-written.
fn write_atomically(path: &Path, text: &str) {
    let temp = path.with_extension("tmp");
    std::fs::write(&temp, text).unwrap();
    std::fs::rename(&temp, path).unwrap();
}

fn scenario(runtime: &str, dialect: &str) {
    let dir = tempfile::tempdir().unwrap();
    let motd = dir.path().join("motd");
    std::fs::write(&motd, "hello\n").unwrap();
    let level = dir.path().join("level.json");
    std::fs::write(&level, "10\n").unwrap();
    let setpoint = dir.path().join("setpoint.json");
    let (server, addr) = server();

    let server_uri = format!("iotmp://{addr}");
    let motd_flag = format!("motd={}", motd.display());
    let level_flag = format!("level={}", level.display());
    let setpoint_flag = format!("setpoint={}", setpoint.display());
    let mut device = DeviceProcess::start(
        &[
            "--server",
            &server_uri,
            "--user",
            "alice",
            "--device",
            "dev01",
            "--dialect",
            dialect,
            "--runtime",
            runtime,
            "--const",
            "model=\"rpi4\"",
            "--counter",
            "ticks:start=5,step=2",
            "--cmd",
            "json=echo '{\"a\":1}'",
            "--file",
            &motd_flag,
            "--file",
            &level_flag,
            "--input-file",
            &setpoint_flag,
            "--on-change",
            "level:every=50ms,threshold=0.5",
            "--metrics",
            "--backoff-first",
            "100ms",
        ],
        &[("IOTMP_CREDENTIAL", "s3cr3t")],
    );

    // Authentication: the credentials and the dialect asked for.
    let conn = wait_event(&server, &device, "Authenticate", |event| match event {
        BrokerEvent::Authenticate { conn, request } => Some((conn, request)),
        _ => None,
    });
    let (conn, request) = conn;
    let expected_dialect = if dialect == "2020" {
        Dialect::Draft2020
    } else {
        Dialect::Draft2026
    };
    assert_eq!(request.dialect, expected_dialect);
    match &request.credentials {
        Credentials::Password {
            user,
            device: id,
            credential,
        } => assert_eq!(
            (user.as_str(), id.as_str(), credential.as_str()),
            ("alice", "dev01", "s3cr3t")
        ),
        other => panic!("{other:?}"),
    }
    server.handle.accept(conn, "dev01");
    wait_event(&server, &device, "DeviceOnline", |event| match event {
        BrokerEvent::DeviceOnline { device, .. } => Some(device),
        _ => None,
    });
    device.wait_for_log("authenticated: online as alice/dev01");

    // DESCRIBE: every resource with its fn.
    let described = server.handle.describe("dev01", None).wait_timeout(WAIT);
    let described = answer_value(described, "DESCRIBE", &device).unwrap();
    let mut fns: Vec<(String, u64)> = described
        .as_map()
        .unwrap()
        .iter()
        .map(|(name, d)| {
            let code = d.as_map().and_then(|m| m.get("fn")).and_then(Value::as_u64);
            (name.to_owned(), code.unwrap())
        })
        .collect();
    fns.sort();
    let expected: Vec<(String, u64)> = [
        ("cpu", 3),
        ("json", 3),
        ("level", 3),
        ("load", 3),
        ("memory", 3),
        ("model", 3),
        ("motd", 3),
        ("setpoint", 2),
        ("ticks", 3),
        ("uptime", 3),
    ]
    .iter()
    .map(|(n, f)| ((*n).to_owned(), *f))
    .collect();
    assert_eq!(fns, expected);

    // RUN of each output kind.
    assert_eq!(
        run(&server, &device, "model", None),
        Some(Value::from("rpi4"))
    );
    assert_eq!(run(&server, &device, "ticks", None), Some(Value::UInt(5)));
    assert_eq!(run(&server, &device, "ticks", None), Some(Value::UInt(7)));
    let output = run(&server, &device, "json", None).unwrap();
    assert_eq!(json(&output), r#"{"a":1}"#);
    assert_eq!(
        run(&server, &device, "motd", None),
        Some(Value::from("hello"))
    );
    let memory = run(&server, &device, "memory", None).unwrap();
    assert!(
        memory
            .as_map()
            .unwrap()
            .get("total")
            .and_then(Value::as_u64)
            .unwrap()
            > 0
    );
    device.wait_for_log("RUN json: {\"a\":1}");

    // An input file receives the JSON input.
    assert_eq!(
        run(&server, &device, "setpoint", Some(Value::F32(21.5))),
        None
    );
    assert_eq!(std::fs::read_to_string(&setpoint).unwrap(), "21.5\n");

    // --on-change: a listener gets the value at once, then only changes of at least 0.5.
    let subscribed = server
        .handle
        .subscribe("dev01", "level", 1, 0)
        .wait_timeout(WAIT);
    assert!(matches!(subscribed, Some(Ok(()))), "{subscribed:?}");
    let delivered = |server: &Server, device: &DeviceProcess| {
        wait_event(server, device, "a Delivery of level", |event| match event {
            BrokerEvent::Delivery {
                resource, value, ..
            } if resource == "level" => Some(value),
            _ => None,
        })
    };
    assert_eq!(delivered(&server, &device), Value::UInt(10));
    write_atomically(&level, "10.2\n");
    // Several polls see 10.2, which is within the threshold: nothing is sent.
    std::thread::sleep(Duration::from_millis(300));
    write_atomically(&level, "11\n");
    assert_eq!(
        delivered(&server, &device),
        Value::UInt(11),
        "10.2 must not be streamed"
    );

    // SIGINT: DISCONNECT, then exit 0.
    device.interrupt();
    let reason = wait_event(&server, &device, "DeviceOffline", |event| match event {
        BrokerEvent::DeviceOffline { reason, .. } => Some(reason),
        _ => None,
    });
    assert!(
        matches!(reason, CloseReason::PeerDisconnect { .. }),
        "{reason:?}; device logs:\n{}",
        device.stderr()
    );
    assert_eq!(device.wait(), 0, "{}", device.stderr());
    let logs = device.stderr();
    assert!(logs.contains("stopping: DISCONNECT if connected"), "{logs}");
    assert!(!logs.contains("ERROR"), "{logs}");

    server.handle.shutdown();
    server.join().unwrap();
}

#[test]
fn mio_2020() {
    scenario("mio", "2020");
}

#[test]
fn mio_2026() {
    scenario("mio", "2026");
}

#[test]
fn smol_2020() {
    scenario("smol", "2020");
}

#[test]
fn smol_2026() {
    scenario("smol", "2026");
}

#[test]
fn async_std_2020() {
    scenario("async-std", "2020");
}

#[test]
fn async_std_2026() {
    scenario("async-std", "2026");
}

#[test]
fn refused_credentials_are_logged_and_ctrl_c_still_stops() {
    let (server, addr) = server();
    let uri = format!("iotmp://{addr}");
    let mut device = DeviceProcess::start(
        &[
            "--server",
            &uri,
            "--user",
            "alice",
            "--device",
            "dev01",
            "--credential",
            "wrong",
            "--counter",
            "n",
            "--backoff-first",
            "10s",
        ],
        &[],
    );
    device.wait_for_log("visible to other local users");
    let conn = wait_event(&server, &device, "Authenticate", |event| match event {
        BrokerEvent::Authenticate { conn, .. } => Some(conn),
        _ => None,
    });
    server.handle.reject(conn);
    device.wait_for_log("check --user, --device and --credential");
    device.wait_for_log("reconnecting in");
    // Stopping while waiting to reconnect is immediate.
    device.interrupt();
    assert_eq!(device.wait(), 0, "{}", device.stderr());
    server.handle.shutdown();
    server.join().unwrap();
}

/// Runs the binary to completion (for usage errors and help).
fn run_to_end(args: &[&str]) -> (i32, String, String) {
    let mut command = common::iotmp_command();
    command.args(args).stdin(Stdio::null());
    command.env("IOTMP_CREDENTIAL", "x");
    let output = command.output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn help_shows_examples_and_a_resource_file() {
    for args in [&["device", "--help"][..], &["device", "connect", "--help"]] {
        let (code, out, _) = run_to_end(args);
        assert_eq!(code, 0);
        for needle in [
            "Examples:",
            "[random-walk]",
            "--on-change",
            "IOTMP_CREDENTIAL",
            "Exit status",
        ] {
            assert!(out.contains(needle), "{args:?}: no {needle:?} in\n{out}");
        }
    }
}

#[test]
fn usage_errors_exit_2_and_say_what_to_do() {
    let base = [
        "device",
        "--server",
        "iotmp://127.0.0.1:9",
        "--user",
        "a",
        "--device",
        "b",
    ];
    for (extra, needle) in [
        (
            &["--sine", "t:periode=5"][..],
            "unknown parameter \"periode\"",
        ),
        (&["--cmd", "oops"], "is not of the form NAME=COMMAND"),
        (&["--const", "m=rpi4"], "is not JSON"),
        (
            &["--on-change", "ghost"],
            "\"ghost\" is not a declared resource",
        ),
        (&["--counter", "n", "--counter", "n"], "declared twice"),
        (&["--runtime", "tokio"], "invalid value 'tokio'"),
        (
            &["--resources", "/nonexistent/res.toml"],
            "cannot read the resource file",
        ),
        (
            &["--cert", "c.pem", "--key", "k.pem"],
            "certificate authentication needs TLS",
        ),
    ] {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        let (code, _, err) = run_to_end(&args);
        assert_eq!(code, 2, "{extra:?}: {err}");
        assert!(err.contains(needle), "{extra:?}: {err}");
    }
    let (code, _, err) = run_to_end(&["device", "--user", "a", "--device", "b"]);
    assert_eq!(code, 2);
    assert!(err.contains("no server to connect to"), "{err}");
}

#[test]
fn resources_from_a_file_and_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let resources = dir.path().join("res.toml");
    std::fs::write(
        &resources,
        "[const]\nmodel = \"rpi4\"\n[counter]\nticks = { start = 3 }\n",
    )
    .unwrap();
    let config = dir.path().join("iotmp.toml");
    let (server, addr) = server();
    std::fs::write(
        &config,
        format!(
            "[device]\nserver = \"iotmp://{addr}\"\nuser = \"alice\"\ndevice = \"dev01\"\n\
             credential = \"s3cr3t\"\ndialect = 2026\nruntime = \"mio\"\nresources = \"{}\"\n\
             [device.sine]\nwave = {{ period = 60, amplitude = 0, offset = 4 }}\n",
            resources.display()
        ),
    )
    .unwrap();
    let config_arg = config.display().to_string();
    let mut device = DeviceProcess::start(&["connect", "--config", &config_arg], &[]);
    let (conn, dialect) = wait_event(&server, &device, "Authenticate", |event| match event {
        BrokerEvent::Authenticate { conn, request } => Some((conn, request.dialect)),
        _ => None,
    });
    assert_eq!(dialect, Dialect::Draft2026);
    server.handle.accept(conn, "dev01");
    wait_event(&server, &device, "DeviceOnline", |event| {
        matches!(event, BrokerEvent::DeviceOnline { .. }).then_some(())
    });
    assert_eq!(
        run(&server, &device, "model", None),
        Some(Value::from("rpi4"))
    );
    assert_eq!(run(&server, &device, "ticks", None), Some(Value::UInt(3)));
    assert_eq!(run(&server, &device, "wave", None), Some(Value::UInt(4)));
    device.interrupt();
    assert_eq!(device.wait(), 0, "{}", device.stderr());
    server.handle.shutdown();
    server.join().unwrap();
}
