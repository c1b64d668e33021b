//! The `iotmp server` harness shared by the end-to-end tests: a temporary registry, the real
//! server process on OS-picked loopback ports, a minimal HTTP/1.1 client, WebSocket and SSE
//! clients, and in-process test devices on either driver.
//!
//! Every wait is bounded ([`WAIT`]); every process is killed when its owner is dropped.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iotmp_proto::backoff::Backoff;
use iotmp_proto::client::ClientAuth;
use iotmp_proto::{ClientConfig, DeviceResources, Dialect, DriverEvent, Value};
use serde_json::{Value as Json, json};
use tungstenite::client::IntoClientRequest as _;
use tungstenite::{Message, WebSocket};

/// Long enough for a loaded CI machine, short enough to fail a hung test quickly.
pub(crate) const WAIT: Duration = Duration::from_secs(15);

pub(crate) fn command() -> Command {
    super::iotmp_command()
}

/// Runs `iotmp args…` to completion: (status, stdout, stderr).
pub(crate) fn iotmp(args: &[&str]) -> (i32, String, String) {
    let output = command()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the iotmp binary runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Polls `condition` every 50 ms for at most [`WAIT`].
pub(crate) fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ----- the registry ------------------------------------------------------------------------------

/// A temporary registry with users alice and bob, and the devices asked for.
pub(crate) struct Registry {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) db: PathBuf,
    pub(crate) alice: String,
    pub(crate) bob: String,
    pub(crate) credentials: HashMap<String, String>,
}

impl Registry {
    /// `devices` as `user/device`.
    pub(crate) fn new(devices: &[&str]) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("iotmp.db");
        let mut registry = Registry {
            dir,
            db,
            alice: String::new(),
            bob: String::new(),
            credentials: HashMap::new(),
        };
        registry.alice = registry.secret(&["user", "add", "alice"]);
        registry.bob = registry.secret(&["user", "add", "bob"]);
        for device in devices {
            registry.add_device(device);
        }
        registry
    }

    pub(crate) fn db(&self) -> &str {
        self.db.to_str().unwrap()
    }

    /// Runs a registry command on this database.
    pub(crate) fn run(&self, args: &[&str]) -> (i32, String, String) {
        let mut args = args.to_vec();
        args.extend(["--db", self.db()]);
        iotmp(&args)
    }

    /// Runs a command that prints a secret, and returns it.
    pub(crate) fn secret(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "{args:?}: {err}");
        out.trim().to_owned()
    }

    pub(crate) fn add_device(&mut self, device: &str) {
        let credential = self.secret(&["device", "add", device]);
        self.credentials.insert(device.to_owned(), credential);
    }

    pub(crate) fn credential(&self, device: &str) -> &str {
        &self.credentials[device]
    }

    pub(crate) fn file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

// ----- the server process --------------------------------------------------------------------------

/// A running `iotmp server`; killed if the test ends without stopping it.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) stderr: Arc<Mutex<String>>,
    pub(crate) http: Option<SocketAddr>,
    pub(crate) tcp: Option<SocketAddr>,
    pub(crate) tls: Option<SocketAddr>,
}

impl Server {
    /// Starts `iotmp -v server --db DB` on loopback with OS-picked ports (unless `extra`
    /// names them), and waits until every listener is up.
    pub(crate) fn start(registry: &Registry, extra: &[&str]) -> Server {
        let mut args = vec!["-v", "server", "--db", registry.db()];
        for (flag, default) in [("--listen", "127.0.0.1:0"), ("--http", "127.0.0.1:0")] {
            if !extra.contains(&flag) {
                args.extend([flag, default]);
            }
        }
        args.extend_from_slice(extra);
        let mut child = command()
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the iotmp binary runs");
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
        let mut server = Server {
            child,
            stderr,
            http: None,
            tcp: None,
            tls: None,
        };
        let flag = |name: &str| {
            extra
                .iter()
                .position(|a| *a == name)
                .and_then(|i| extra.get(i + 1))
                .copied()
        };
        let wants_http = flag("--http") != Some("off");
        let wants_tcp = flag("--listen") != Some("off");
        let wants_tls = flag("--tls-listen").is_some_and(|a| a != "off");
        if wants_http {
            let scheme = if extra.contains(&"--https") {
                "https"
            } else {
                "http"
            };
            let prefix = format!("HTTP API listening on {scheme}://");
            server.http = Some(server.address_after(&prefix));
        }
        if wants_tcp {
            server.tcp = Some(server.address_after("listening on iotmp://"));
        }
        if wants_tls {
            server.tls = Some(server.address_after("listening on iotmps://"));
        }
        server
    }

    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until stderr holds `needle`.
    pub(crate) fn wait_for_log(&mut self, needle: &str) {
        let deadline = Instant::now() + WAIT;
        while !self.stderr().contains(needle) {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "iotmp server exited ({status}) before logging {needle:?}:\n{}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the logs:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The `IP:PORT` logged right after `prefix`.
    pub(crate) fn address_after(&mut self, prefix: &str) -> SocketAddr {
        self.wait_for_log(prefix);
        let log = self.stderr();
        let start = log.find(prefix).unwrap() + prefix.len();
        let text: String = log[start..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
            .collect();
        text.parse()
            .unwrap_or_else(|e| panic!("{text:?} after {prefix:?}: {e}"))
    }

    pub(crate) fn http(&self) -> SocketAddr {
        self.http.expect("the HTTP API is on")
    }

    pub(crate) fn interrupt(&self) {
        use rustix::process::{Pid, Signal, kill_process};
        kill_process(Pid::from_child(&self.child), Signal::INT).unwrap();
    }

    /// Waits for the exit status.
    pub(crate) fn wait(&mut self) -> i32 {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Give the stderr reader a moment to take the last lines.
                std::thread::sleep(Duration::from_millis(50));
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "iotmp server did not exit:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Ctrl-C, and expects a clean exit.
    pub(crate) fn stop(mut self) -> String {
        self.interrupt();
        let code = self.wait();
        let log = self.stderr();
        assert_eq!(code, 0, "{log}");
        assert!(log.contains("stopped"), "{log}");
        log
    }

    pub(crate) fn get(&self, path: &str, token: Option<&str>) -> Reply {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        http(self.http(), "GET", path, &headers, None)
    }

    pub(crate) fn send(&self, method: &str, path: &str, token: &str, body: Option<&[u8]>) -> Reply {
        let auth = format!("Bearer {token}");
        http(
            self.http(),
            method,
            path,
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            body,
        )
    }

    /// The device list of `user`.
    pub(crate) fn devices(&self, user: &str, token: &str) -> Json {
        let reply = self.get(&format!("/v3/users/{user}/devices"), Some(token));
        assert_eq!(reply.status, 200, "{}", reply.text());
        reply.json()
    }

    /// Waits until `user/device` is listed as connected.
    pub(crate) fn wait_online(&self, user: &str, device: &str, token: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let list = self.devices(user, token);
            let online = list
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["device"] == device && d["connected"] == true);
            if online {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{user}/{device} is not online: {list}\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ----- a minimal HTTP/1.1 client ---------------------------------------------------------------

#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub(crate) fn json(&self) -> Json {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }

    /// A 200 with a JSON body.
    pub(crate) fn ok(&self) -> Json {
        assert_eq!(self.status, 200, "{}", self.text());
        assert_eq!(self.header("content-type"), Some("application/json"));
        self.json()
    }

    /// Checks an error reply: status, JSON content type, `{"error": text}`.
    pub(crate) fn assert_error(&self, status: u16, text: &str) {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(self.header("content-type"), Some("application/json"));
        assert_eq!(self.json(), json!({ "error": text }));
    }

    /// Checks a 200 with a JSON body, returned as text (to see the exact number forms).
    pub(crate) fn ok_text(&self) -> String {
        assert_eq!(self.status, 200, "{}", self.text());
        assert_eq!(self.header("content-type"), Some("application/json"));
        self.text()
    }
}

pub(crate) fn request_head(method: &str, path: &str, headers: &[(&str, &str)]) -> String {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head
}

pub(crate) fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Reply {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut head = request_head(method, path, headers);
    head.push_str(&format!(
        "Content-Length: {}\r\n\r\n",
        body.map_or(0, <[u8]>::len)
    ));
    stream.write_all(head.as_bytes()).unwrap();
    if let Some(body) = body {
        stream.write_all(body).unwrap();
    }
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    parse_reply(&raw)
}

pub(crate) fn parse_reply(raw: &[u8]) -> Reply {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(raw)));
    let head = std::str::from_utf8(&raw[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (k, v) = line.split_once(':').unwrap();
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    let rest = &raw[end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked && !rest.is_empty() {
        let mut reader = BufReader::new(rest);
        let mut body = Vec::new();
        while let Some(chunk) = read_chunk(&mut reader) {
            body.extend(chunk);
        }
        body
    } else {
        rest.to_vec()
    };
    Reply {
        status,
        headers,
        body,
    }
}

/// One chunk of a chunked body; `None` at the last chunk.
pub(crate) fn read_chunk(reader: &mut impl std::io::BufRead) -> Option<Vec<u8>> {
    let mut size = String::new();
    reader.read_line(&mut size).unwrap();
    let size = usize::from_str_radix(size.trim(), 16).unwrap();
    if size == 0 {
        return None;
    }
    let mut chunk = vec![0; size + 2];
    reader.read_exact(&mut chunk).unwrap();
    chunk.truncate(size);
    Some(chunk)
}

// ----- WebSocket and SSE clients -----------------------------------------------------------------

pub(crate) type Client = WebSocket<TcpStream>;

/// Opens a WebSocket with a bearer token; panics unless the server answers 101.
pub(crate) fn websocket(addr: SocketAddr, path: &str, token: &str) -> Client {
    websocket_over(TcpStream::connect(addr).unwrap(), addr, path, token)
}

/// [`websocket`] over a socket the caller connected (with its own socket options).
pub(crate) fn websocket_over(
    stream: TcpStream,
    addr: SocketAddr,
    path: &str,
    token: &str,
) -> Client {
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut request = format!("ws://{addr}{path}").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Authorization", format!("Bearer {token}").parse().unwrap());
    match tungstenite::client(request, stream) {
        Ok((ws, response)) => {
            assert_eq!(response.status().as_u16(), 101);
            ws
        }
        Err(e) => panic!("WebSocket handshake: {e}"),
    }
}

/// The next text frame (pings and pongs skipped), `None` once `deadline` passed.
pub(crate) fn next_text(ws: &mut Client, deadline: Instant) -> Option<String> {
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        if left.is_zero() {
            return None;
        }
        ws.get_ref().set_read_timeout(Some(left)).unwrap();
        match ws.read() {
            Ok(Message::Text(text)) => return Some(text.to_string()),
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            Ok(other) => panic!("unexpected {other:?}"),
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None;
            }
            Err(e) => panic!("WebSocket read: {e}"),
        }
    }
}

/// An open SSE response, read event by event.
pub(crate) struct Sse {
    pub(crate) reader: BufReader<TcpStream>,
    pub(crate) pending: String,
}

impl Sse {
    /// Opens an event stream on `path`, expecting 200 and `text/event-stream`.
    pub(crate) fn open(addr: SocketAddr, path: &str, token: &str) -> Sse {
        let (head, sse) = Sse::request(addr, path, token);
        assert_eq!(head.status, 200);
        assert_eq!(head.header("content-type"), Some("text/event-stream"));
        sse.expect("a 200 carries the stream")
    }

    /// Sends the request; returns the head, and the stream when it is 200 (otherwise the head
    /// carries the whole reply).
    pub(crate) fn request(addr: SocketAddr, path: &str, token: &str) -> (Reply, Option<Sse>) {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let auth = format!("Bearer {token}");
        let mut head = request_head(
            "GET",
            path,
            &[("Authorization", &auth), ("Accept", "text/event-stream")],
        );
        head.push_str("\r\n");
        (&stream).write_all(head.as_bytes()).unwrap();
        let mut reader = BufReader::new(stream);
        let mut raw = Vec::new();
        while !raw.ends_with(b"\r\n\r\n") {
            let mut line = Vec::new();
            reader.read_until(b'\n', &mut line).unwrap();
            assert!(!line.is_empty(), "connection closed inside the head");
            raw.extend(line);
        }
        let head = parse_reply(&raw);
        if head.status != 200 {
            let mut rest = Vec::new();
            reader.read_to_end(&mut rest).unwrap();
            raw.extend(rest);
            return (parse_reply(&raw), None);
        }
        let sse = Sse {
            reader,
            pending: String::new(),
        };
        (head, Some(sse))
    }

    /// The next event or comment block, without its blank line.
    pub(crate) fn next(&mut self) -> String {
        loop {
            if let Some(end) = self.pending.find("\n\n") {
                let event = self.pending[..end].to_owned();
                self.pending.drain(..end + 2);
                return event;
            }
            let chunk = read_chunk(&mut self.reader).expect("the event stream ended");
            self.pending.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// The next `data:` event's text, skipping comments.
    pub(crate) fn next_data(&mut self) -> String {
        loop {
            let event = self.next();
            if let Some(data) = event.strip_prefix("data: ") {
                return data.to_owned();
            }
            assert!(event.starts_with(':'), "unexpected event {event:?}");
        }
    }
}

// ----- devices -----------------------------------------------------------------------------------

/// What the test devices expose, and what they saw.
#[derive(Clone, Default)]
pub(crate) struct Probe {
    pub(crate) led: Arc<Mutex<Option<Value>>>,
}

/// `temp` (21.5), `counter` (0, 1, 2, … one per read), `led` (input), `echo` (input → output),
/// `alarm` (events only, pushed by the test), `slow` (sleeps `slow` before answering).
pub(crate) fn resources(probe: &Probe, slow: Duration) -> DeviceResources {
    let counter = AtomicU64::new(0);
    let led = probe.led.clone();
    DeviceResources::new()
        .output("temp", || Ok(Value::F32(21.5)))
        .output("counter", move || {
            Ok(Value::UInt(counter.fetch_add(1, Ordering::Relaxed)))
        })
        .input("led", Value::Bool(false), move |value| {
            *led.lock().unwrap() = Some(value.clone());
            Ok(())
        })
        .input_output("echo", |input| Ok(input.unwrap_or(Value::Null)))
        .output("alarm", || Ok(Value::from("quiet")))
        .output("slow", move || {
            std::thread::sleep(slow);
            Ok(Value::from("late"))
        })
}

/// An in-process device; shut down when dropped.
pub(crate) struct TestDevice {
    pub(crate) handle: DeviceHandle,
    pub(crate) events: async_channel::Receiver<DriverEvent>,
    pub(crate) probe: Probe,
}

pub(crate) enum DeviceHandle {
    Smol(iotmp_smol::DeviceHandle),
    Mio(iotmp_mio::DeviceHandle),
}

/// How a test device connects.
pub(crate) struct Connect {
    pub(crate) addr: SocketAddr,
    pub(crate) dialect: Dialect,
    pub(crate) auth: ClientAuth,
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
    pub(crate) mio: bool,
    pub(crate) slow: Duration,
    pub(crate) keep_alive: Option<u32>,
}

impl Connect {
    pub(crate) fn credentials(
        addr: SocketAddr,
        dialect: Dialect,
        registry: &Registry,
        path: &str,
    ) -> Self {
        let (user, device) = path.split_once('/').unwrap();
        Connect {
            addr,
            dialect,
            auth: ClientAuth::Credentials {
                user: user.to_owned(),
                device: device.to_owned(),
                credential: registry.credential(path).to_owned(),
            },
            tls: None,
            mio: false,
            slow: Duration::ZERO,
            keep_alive: None,
        }
    }

    pub(crate) fn start(self) -> TestDevice {
        let probe = Probe::default();
        let mut config = ClientConfig::new(self.dialect, "", "", "");
        config.auth = self.auth;
        config.keep_alive = self.keep_alive;
        // Quick retries: a test that needs more than one attempt does not wait long.
        let backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(1));
        let address = self.addr.to_string();
        let tls = self.tls.map(|c| (c, "localhost".to_owned()));
        let resources = resources(&probe, self.slow);
        let (handle, events) = if self.mio {
            let options = iotmp_mio::DeviceOptions {
                address,
                tls,
                backoff,
                record: None,
            };
            let driver = iotmp_mio::connect(options, config, resources).unwrap();
            (
                DeviceHandle::Mio(driver.handle.clone()),
                driver.events.clone(),
            )
        } else {
            let options = iotmp_smol::DeviceOptions {
                address,
                tls,
                backoff,
                runtime: iotmp_smol::Runtime::Smol,
                record: None,
            };
            let driver = iotmp_smol::connect(options, config, resources).unwrap();
            (
                DeviceHandle::Smol(driver.handle.clone()),
                driver.events.clone(),
            )
        };
        TestDevice {
            handle,
            events,
            probe,
        }
    }
}

impl TestDevice {
    pub(crate) fn stream_value(&self, resource: &str, value: Value) {
        match &self.handle {
            DeviceHandle::Smol(h) => h.stream_value(resource, value),
            DeviceHandle::Mio(h) => h.stream_value(resource, value),
        }
    }

    /// Waits for a `Disconnected` event whose reason holds `needle`.
    pub(crate) fn wait_disconnect(&self, needle: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let event = smol::block_on(async {
                futures_lite::future::or(async { self.events.recv().await.ok() }, async {
                    smol::Timer::after(left).await;
                    None
                })
                .await
            });
            match event {
                Some(DriverEvent::Disconnected { reason }) if reason.contains(needle) => return,
                Some(_) => {}
                None => panic!("no disconnect with {needle:?}"),
            }
        }
    }
}

impl Drop for TestDevice {
    fn drop(&mut self) {
        match &self.handle {
            DeviceHandle::Smol(h) => h.shutdown(),
            DeviceHandle::Mio(h) => h.shutdown(),
        }
    }
}

pub(crate) fn device(
    server: &Server,
    registry: &Registry,
    path: &str,
    dialect: Dialect,
) -> TestDevice {
    Connect::credentials(server.tcp.unwrap(), dialect, registry, path).start()
}
