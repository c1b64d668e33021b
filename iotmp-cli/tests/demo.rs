//! `iotmp demo` end to end: the real binary on OS-picked free ports, driven through what it
//! prints. The device list and a RUN go over a raw `TcpStream`; Ctrl-C is a SIGINT (unix).
//!
//! Every wait is bounded ([`WAIT`]); the demo is killed if the test fails before stopping it.

#![cfg(unix)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation must stop the test loudly"
)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value as Json;

/// The demo waits up to 10 s for its children; more for a loaded CI machine.
const WAIT: Duration = Duration::from_secs(30);

/// A port free a moment ago (the OS picks it; the race with other programs is acceptable).
fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Kills the demo if the test ends before it was stopped.
struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `GET path` with a bearer token: (status, body).
fn get(addr: SocketAddr, path: &str, token: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a response head");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

#[test]
fn demo_serves_two_devices_and_stops_on_ctrl_c() {
    let (listen, http) = (free_port(), free_port());
    let mut command = Command::new(env!("CARGO_BIN_EXE_iotmp"));
    command
        .args(["demo", "--listen", &listen.to_string()])
        .args(["--http", &http.to_string()])
        .env_remove("IOTMP_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut demo = Demo(command.spawn().unwrap());

    // Stdout line by line on a thread, so that the wait for the guide is bounded.
    let (tx, rx) = mpsc::channel();
    let stdout = demo.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    let stderr = demo.0.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = BufReader::new(stderr).read_to_string(&mut text);
        text
    });

    let deadline = Instant::now() + WAIT;
    let mut printed = Vec::new();
    while !printed
        .iter()
        .any(|l: &String| l.starts_with("Ctrl-C stops"))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => printed.push(line),
            Err(_) => {
                drop(demo);
                panic!(
                    "no guide within {WAIT:?}; stdout so far:\n{}\nstderr:\n{}",
                    printed.join("\n"),
                    stderr.join().unwrap()
                );
            }
        }
    }
    let text = printed.join("\n");

    // The first curl line is the device list, with the real token and port.
    let list_line = printed
        .iter()
        .find(|l| l.trim_start().starts_with("curl -s") && l.ends_with("/devices"))
        .unwrap_or_else(|| panic!("no device-list curl line in:\n{text}"));
    let token = list_line
        .split("Bearer ")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap();
    let url = list_line.rsplit(' ').next().unwrap();
    let prefix = format!("http://{http}");
    let path = url.strip_prefix(&prefix).unwrap_or_else(|| panic!("{url}"));
    assert_eq!(path, "/v3/users/demo/devices");
    assert!(
        text.contains(&format!("authorization={token}'")),
        "WebSocket URL: {text}"
    );

    let (status, body) = get(http, path, token);
    assert_eq!(status, 200, "{body}");
    let devices: Json = serde_json::from_str(&body).unwrap();
    let listed: Vec<(&str, bool, &str)> = devices
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["device"].as_str().unwrap(),
                d["connected"].as_bool().unwrap(),
                d["dialect"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [("thermo-2020", true, "2020"), ("thermo-2026", true, "2026")]
    );

    let (status, body) = get(http, &format!("{path}/thermo-2026/resources/temp"), token);
    assert_eq!(status, 200, "{body}");
    let temp: Json = serde_json::from_str(&body).unwrap();
    assert!(temp.is_number(), "temp: {body}");

    // The folder, from the line that says it is removed on exit.
    let folder = printed
        .iter()
        .find_map(|l| l.trim_start().strip_prefix("folder"))
        .and_then(|rest| rest.split(" (removed").next())
        .map(|p| PathBuf::from(p.trim()))
        .unwrap_or_else(|| panic!("no folder line in:\n{text}"));
    assert!(folder.join("iotmp.db").exists(), "{}", folder.display());

    use rustix::process::{Pid, Signal, kill_process};
    kill_process(Pid::from_child(&demo.0), Signal::INT).unwrap();
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = demo.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "iotmp demo did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = stderr.join().unwrap();
    assert_eq!(status.code(), Some(0), "stderr:\n{stderr}");
    assert!(!folder.exists(), "{} is still there", folder.display());
}
