//! An `iotmp server` process on loopback with OS-picked ports and a temporary registry, for
//! tests that drive the binary from outside (`iotmp bench`). Killed when dropped.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the server may take to log its listeners.
const START_WAIT: Duration = Duration::from_secs(15);

/// Variables the server reads that must not leak in from the test's environment.
const SERVER_VARS: [&str; 8] = [
    "IOTMP_CONFIG",
    "IOTMP_DB",
    "IOTMP_LISTEN",
    "IOTMP_HTTP",
    "IOTMP_RUNTIME",
    "IOTMP_TLS_LISTEN",
    "IOTMP_HTTPS",
    "RUST_LOG",
];

/// A running server.
pub(crate) struct LoopbackServer {
    child: Child,
    log: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
    /// The registry file it serves.
    pub(crate) db: PathBuf,
    /// Device listener.
    pub(crate) devices: SocketAddr,
    /// HTTP API.
    pub(crate) http: SocketAddr,
}

/// `iotmp` with the server's variables removed.
pub(crate) fn iotmp_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_iotmp"));
    for var in SERVER_VARS {
        command.env_remove(var);
    }
    command
}

impl LoopbackServer {
    /// Creates a registry (one user, so that the file exists) and starts the server on it.
    pub(crate) fn start() -> LoopbackServer {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let db = dir.path().join("iotmp.db");
        let created = iotmp_command()
            .args(["user", "add", "owner", "--db"])
            .arg(&db)
            .output()
            .expect("iotmp user add runs");
        assert!(created.status.success(), "{created:?}");
        let mut child = iotmp_command()
            .args([
                "-v",
                "server",
                "--listen",
                "127.0.0.1:0",
                "--http",
                "127.0.0.1:0",
                "--db",
            ])
            .arg(&db)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("iotmp server starts");
        let log = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().expect("stderr is piped");
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut text = sink.lock().expect("log lock");
                text.push_str(&line);
                text.push('\n');
            }
        });
        let mut server = LoopbackServer {
            child,
            log,
            _dir: dir,
            db,
            devices: SocketAddr::from(([127, 0, 0, 1], 0)),
            http: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        server.devices = server.address_after("listening on iotmp://");
        server.http = server.address_after("HTTP API listening on http://");
        server
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it logged so far.
    pub(crate) fn log(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    fn address_after(&mut self, prefix: &str) -> SocketAddr {
        let deadline = Instant::now() + START_WAIT;
        loop {
            let log = self.log();
            if let Some(at) = log.find(prefix) {
                let text: String = log[at + prefix.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                    .collect();
                return text.parse().unwrap_or_else(|e| panic!("{text:?}: {e}"));
            }
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("iotmp server exited ({status}):\n{log}");
            }
            assert!(Instant::now() < deadline, "no {prefix:?} in:\n{log}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
