//! `iotmp demo`: a server and two simulated devices on this machine, ready to be tried.
//!
//! Nothing here is new machinery: the registry is prepared in-process with [`Registry`] (a
//! user `demo` and its token, two devices and their credentials), then the demo runs this very
//! executable three times, as `iotmp server` and as two `iotmp device`s (dialects 2020 and
//! 2026), so that what the user tries is exactly what those commands do. Everything lives in a
//! fresh folder under the system's temporary directory (database, logs, the `led` files),
//! removed on exit.
//!
//! Children run in process groups of their own: a Ctrl-C on the terminal then reaches only the
//! demo, which forwards one SIGINT to each child (devices first, so that they DISCONNECT from
//! a server still listening). Had they stayed in the terminal's group, each would get the
//! terminal's SIGINT *and* the forwarded one, and the second one makes them quit at once.

use std::fmt::Write as _;
use std::io::{self, Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use clap::ValueEnum as _;
use thiserror::Error;
use tracing::warn;

use crate::cli::DemoArgs;
use crate::commands::stop::{SecondSignal, StopSignal};
use crate::exit::Exit;
use crate::store::secret::RandomError;
use crate::store::{OpenMode, Registry, Secret, StoreError};

/// The demo's user.
const USER: &str = "demo";

/// The two devices: (id, dialect).
const DEVICES: [(&str, &str); 2] = [("thermo-2020", "2020"), ("thermo-2026", "2026")];

/// How long the server and the devices get to come up: they start in well under a second on
/// an idle machine; ten seconds leaves room for a loaded one without hanging a broken demo.
const STARTUP: Duration = Duration::from_secs(10);

/// How long each child gets to stop after its SIGINT before it is killed: a device sends
/// DISCONNECT, the server closes its streams and commits; both take milliseconds.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How often the demo looks at the stop flag, at its children and at the API while waiting.
const POLL: Duration = Duration::from_millis(100);

/// Bound on one readiness request to the API, which is on this machine.
const HTTP_TIMEOUT: Duration = Duration::from_secs(2);

/// How many lines of a child's log an error quotes.
const LOG_TAIL: usize = 6;

/// Why `iotmp demo` failed.
#[derive(Debug, Error)]
pub(crate) enum DemoError {
    /// The scratch folder.
    #[error(
        "cannot create the demo's folder {}: {source}; point TMPDIR at a writable folder",
        path.display()
    )]
    Folder {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The registry database in the scratch folder.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No random credential could be made.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// A port of the demo is taken (or not ours to bind).
    #[error(
        "cannot listen for {what} on {addr}: pick another address with {option}, e.g. \
         {option} {}:{}",
        addr.ip(),
        addr.port().wrapping_add(1)
    )]
    Port {
        /// What the port is for.
        what: &'static str,
        /// Where.
        addr: SocketAddr,
        /// The option that sets it.
        option: &'static str,
        /// Why.
        source: io::Error,
    },
    /// A port the demo cannot announce.
    #[error(
        "{option} {addr}: the demo needs a fixed port (not 0), distinct from the other \
         listener's: give e.g. {option} 127.0.0.1:{suggestion}"
    )]
    BadPort {
        /// The option.
        option: &'static str,
        /// What it said.
        addr: SocketAddr,
        /// A port to suggest.
        suggestion: u16,
    },
    /// Signal handlers could not be installed.
    #[error("cannot watch for Ctrl-C: {0}")]
    Signals(#[source] io::Error),
    /// A child process could not be started.
    #[error("cannot start {what} ({}): {source}", exe.display())]
    Spawn {
        /// Which child.
        what: String,
        /// The executable.
        exe: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A child ended on its own.
    #[error("{what} exited unexpectedly ({status}); the end of its log {}:\n{tail}", log.display())]
    Exited {
        /// Which child.
        what: String,
        /// Its status.
        status: ExitStatus,
        /// Its log file.
        log: PathBuf,
        /// The last lines of its log.
        tail: String,
    },
    /// A child did not come up in time.
    #[error(
        "{what} was not ready within {}s; the end of its log {}:\n{tail}",
        STARTUP.as_secs(),
        log.display()
    )]
    NotReady {
        /// Which child.
        what: String,
        /// Its log file.
        log: PathBuf,
        /// The last lines of its log.
        tail: String,
    },
}

impl DemoError {
    /// Ports are the user's to change; the rest is the machine's.
    pub(crate) const fn exit(&self) -> Exit {
        match self {
            DemoError::Store(e) => e.exit(),
            DemoError::Port { .. } | DemoError::BadPort { .. } => Exit::Usage,
            DemoError::Folder { .. }
            | DemoError::Random(_)
            | DemoError::Signals(_)
            | DemoError::Spawn { .. }
            | DemoError::Exited { .. }
            | DemoError::NotReady { .. } => Exit::Failure,
        }
    }
}

/// Runs `iotmp demo` until Ctrl-C or SIGTERM.
pub(crate) fn run(args: &DemoArgs) -> Result<(), DemoError> {
    check_ports(args)?;
    // Before any child exists: a Ctrl-C from here on stops them all cleanly.
    let stop = StopSignal::install(SecondSignal::Ignored).map_err(DemoError::Signals)?;
    let exe = std::env::current_exe().map_err(|source| DemoError::Spawn {
        what: "the demo".to_owned(),
        exe: PathBuf::from("iotmp"),
        source,
    })?;
    // Declared before the children: dropped after them, once nothing uses the folder.
    let dir = DemoDir::create()?;
    let db = dir.path().join("iotmp.db");
    let (token, credentials) = prepare_registry(&db)?;
    let http = reachable(args.http);

    let mut server = Process::spawn(
        &exe,
        "the server".to_owned(),
        dir.path().join("server.log"),
        &server_args(args, &db),
        None,
    )?;
    match wait_until(&stop, &mut [&mut server], || {
        device_list(http, token.expose()).is_some()
    })? {
        Waited::Ready => {}
        Waited::Stopped => {
            stop_all(server, Vec::new());
            return Ok(());
        }
        Waited::TimedOut => return Err(server.not_ready()),
    }

    // Started once the server listens, so that their first attempt to connect succeeds.
    let mut devices = Vec::with_capacity(DEVICES.len());
    for ((device, dialect), credential) in DEVICES.iter().zip(&credentials) {
        let led = dir.path().join(format!("led-{dialect}.json"));
        devices.push(Process::spawn(
            &exe,
            format!("device {USER}/{device}"),
            dir.path().join(format!("{device}.log")),
            &device_args(args, reachable(args.listen), device, dialect, &led),
            Some(credential),
        )?);
    }
    let mut all: Vec<&mut Process> = devices.iter_mut().collect();
    all.push(&mut server);
    match wait_until(&stop, &mut all, || offline(http, token.expose()).is_empty())? {
        Waited::Ready => {}
        Waited::Stopped => {
            stop_all(server, devices);
            return Ok(());
        }
        Waited::TimedOut => {
            let late = offline(http, token.expose());
            let first = devices
                .iter()
                .find(|d| late.iter().any(|id| d.what.ends_with(id.as_str())))
                .or(devices.first())
                .map_or_else(|| server.not_ready(), Process::not_ready);
            return Err(first);
        }
    }

    print_guide(
        &exe,
        args,
        http,
        token.expose(),
        dir.path(),
        &server,
        &devices,
    );

    // Until a signal, or until a child dies: the demo is nothing without any of them.
    let outcome = loop {
        if stop.is_set() {
            break Ok(());
        }
        if let Some(e) = devices
            .iter_mut()
            .chain(std::iter::once(&mut server))
            .find_map(Process::exited)
        {
            break Err(e);
        }
        std::thread::sleep(POLL);
    };
    eprintln!("iotmp demo: stopping the devices, then the server");
    stop_all(server, devices);
    drop(dir);
    outcome
}

/// Refuses ports that cannot work before anything starts, with the option that fixes them.
/// Binding and dropping leaves a short race with other programs; a child that loses it is
/// still reported, with its log.
fn check_ports(args: &DemoArgs) -> Result<(), DemoError> {
    // The last column: the option's default port (cli.rs), the suggestion when it is free.
    let listeners = [
        ("devices", args.listen, "--listen", args.http, 25204),
        ("the HTTP API", args.http, "--http", args.listen, 8080),
    ];
    for (what, addr, option, other, default) in listeners {
        if addr.port() == 0 || addr.port() == other.port() {
            let suggestion = if other.port() == default {
                default + 1
            } else {
                default
            };
            return Err(DemoError::BadPort {
                option,
                addr,
                suggestion,
            });
        }
        TcpListener::bind(addr).map_err(|source| DemoError::Port {
            what,
            addr,
            option,
            source,
        })?;
    }
    Ok(())
}

/// Creates the user and the devices: the user's API token and the devices' credentials.
fn prepare_registry(db: &Path) -> Result<(Secret, Vec<Secret>), DemoError> {
    let mut registry = Registry::open(db, OpenMode::Create)?;
    let (_, token) = registry.add_user(USER)?;
    let mut credentials = Vec::with_capacity(DEVICES.len());
    for (device, _) in DEVICES {
        let credential = Secret::generate()?;
        registry.add_device(USER, device, &credential, None)?;
        credentials.push(credential);
    }
    Ok((token, credentials))
}

/// Where a client on this machine reaches a listener: a wildcard address (0.0.0.0, ::) is not
/// one to connect to, its loopback is.
fn reachable(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

fn runtime_args(args: &DemoArgs) -> Vec<String> {
    args.runtime
        .and_then(|r| r.to_possible_value())
        .map(|v| vec!["--runtime".to_owned(), v.get_name().to_owned()])
        .unwrap_or_default()
}

fn server_args(args: &DemoArgs, db: &Path) -> Vec<String> {
    let mut list = vec![
        "server".to_owned(),
        "--db".to_owned(),
        db.display().to_string(),
        "--listen".to_owned(),
        args.listen.to_string(),
        "--http".to_owned(),
        args.http.to_string(),
        "--tls-listen".to_owned(),
        "off".to_owned(),
    ];
    list.extend(runtime_args(args));
    list
}

/// A device with a sensor (`temp`), a drifting reading (`humidity`), a counter, an event
/// source (`heading`, sent whenever it moves) and an actuator (`led`, written to a file).
fn device_args(
    args: &DemoArgs,
    server: SocketAddr,
    device: &str,
    dialect: &str,
    led: &Path,
) -> Vec<String> {
    let mut list: Vec<String> = [
        "device",
        "--server",
        &format!("iotmp://{server}"),
        "--user",
        USER,
        "--device",
        device,
        "--dialect",
        dialect,
        // The server is up already; a reconnect after a hiccup should not take the default 5 s.
        "--backoff-first",
        "1s",
        "--sine",
        "temp:period=60s,amplitude=5,offset=21",
        "--random-walk",
        "humidity:step=1,start=45,min=20,max=80",
        "--counter",
        "counter",
        "--random-walk",
        "heading:step=20,start=180,min=0,max=359",
        "--on-change",
        "heading:every=1s",
        "--input-file",
        &format!("led={}", led.display()),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    list.extend(runtime_args(args));
    list
}

/// How a wait for the children ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waited {
    /// They are up.
    Ready,
    /// A signal came first.
    Stopped,
    /// The startup time ran out.
    TimedOut,
}

/// Polls `ready` until it says yes, a signal comes, a child exits (an error) or the startup
/// time runs out.
fn wait_until(
    stop: &StopSignal,
    children: &mut [&mut Process],
    mut ready: impl FnMut() -> bool,
) -> Result<Waited, DemoError> {
    let deadline = Instant::now() + STARTUP;
    loop {
        if stop.is_set() {
            return Ok(Waited::Stopped);
        }
        if let Some(e) = children.iter_mut().find_map(|c| c.exited()) {
            return Err(e);
        }
        if ready() {
            return Ok(Waited::Ready);
        }
        if Instant::now() >= deadline {
            return Ok(Waited::TimedOut);
        }
        std::thread::sleep(POLL);
    }
}

/// The demo's devices not listed as connected (all of them while the API does not answer).
fn offline(http: SocketAddr, token: &str) -> Vec<String> {
    let list = match device_list(http, token) {
        Some(serde_json::Value::Array(list)) => list,
        _ => Vec::new(),
    };
    DEVICES
        .iter()
        .filter(|(id, _)| {
            !list.iter().any(|d| {
                d.get("device").and_then(serde_json::Value::as_str) == Some(*id)
                    && d.get("connected") == Some(&serde_json::Value::Bool(true))
            })
        })
        .map(|(id, _)| (*id).to_owned())
        .collect()
}

/// `GET /v3/users/demo/devices` as JSON, or `None` while the API does not answer it.
fn device_list(http: SocketAddr, token: &str) -> Option<serde_json::Value> {
    let body = get(http, &format!("/v3/users/{USER}/devices"), token).ok()?;
    serde_json::from_slice(&body).ok()
}

/// A GET on the API over a plain socket, `Connection: close`: the body of a 200, an error
/// otherwise. Bodies of known length only (the device list is one).
fn get(http: SocketAddr, path: &str, token: &str) -> io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect_timeout(&http, HTTP_TIMEOUT)?;
    stream.set_read_timeout(Some(HTTP_TIMEOUT))?;
    stream.set_write_timeout(Some(HTTP_TIMEOUT))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {http}\r\nAuthorization: Bearer {token}\r\n\
         Connection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| io::Error::other("no HTTP response head"))?;
    let (head, body) = raw.split_at(end);
    if !head.starts_with(b"HTTP/1.1 200") {
        return Err(io::Error::other("not a 200"));
    }
    Ok(body.get(4..).unwrap_or_default().to_vec())
}

/// What to try, with the real token, addresses and paths.
fn print_guide(
    exe: &Path,
    args: &DemoArgs,
    http: SocketAddr,
    token: &str,
    dir: &Path,
    server: &Process,
    devices: &[Process],
) {
    let base = format!("http://{http}/v3/users/{USER}/devices");
    let auth = format!("-H 'Authorization: Bearer {token}'");
    let led = dir.join("led-2020.json");
    let mut text = String::new();
    let _ = writeln!(
        text,
        "iotmp demo: a server and two simulated devices are running on this machine.\n\n\
         \x20 server     devices on iotmp://{}, HTTP API on http://{http}\n\
         \x20 user       {USER}, API token {token}\n\
         \x20 devices    {USER}/{} (dialect 2020) and {USER}/{} (dialect 2026), online\n\
         \x20 resources  temp (sine), humidity (random walk), counter, heading (random walk,\n\
         \x20            sent as events when it moves), led (input: written to {} / {})\n\
         \x20 folder     {} (removed on exit)",
        reachable(args.listen),
        DEVICES[0].0,
        DEVICES[1].0,
        dir.join("led-2020.json").display(),
        dir.join("led-2026.json").display(),
        dir.display(),
    );
    for child in std::iter::once(server).chain(devices) {
        let _ = writeln!(text, "  log        {}: {}", child.what, child.log.display());
    }
    let _ = writeln!(
        text,
        "\nTry:\n\
         \x20 # the devices, with their dialects\n\
         \x20 curl -s {auth} {base}\n\
         \x20 # DESCRIBE: the resources of a device\n\
         \x20 curl -s {auth} {base}/thermo-2026/resources\n\
         \x20 # RUN: read the temperature\n\
         \x20 curl -s {auth} {base}/thermo-2026/resources/temp\n\
         \x20 # RUN with an input: switch the 2020 device's led on\n\
         \x20 curl -s {auth} -H 'Content-Type: application/json' -d true {base}/thermo-2020/resources/led && cat {}\n\
         \x20 # SSE: heading events as they happen (Ctrl-C ends curl)\n\
         \x20 curl -N -H 'Accept: text/event-stream' {auth} {base}/thermo-2026/resources/heading\n\
         \x20 # WebSocket: temp every 2 s (open it with websocat, or from a browser's console)\n\
         \x20 websocat 'ws://{http}/v3/users/{USER}/devices/thermo-2020/resources/temp?interval=2&authorization={token}'\n\
         \x20 # decode a 2026 frame (STREAM_DATA) as JSON\n\
         \x20 {} decode --dialect 2026 \"0A 04 08 6A 18 2A\"\n\n\
         Ctrl-C stops everything and removes {}.",
        led.display(),
        exe.display(),
        dir.display(),
    );
    print!("{text}");
    let _ = io::stdout().flush();
}

/// SIGINT to the devices (so that they DISCONNECT from a server still listening), then to the
/// server, each group waited for (bounded); leftovers are killed.
fn stop_all(server: Process, devices: Vec<Process>) {
    for group in [devices, vec![server]] {
        for child in &group {
            child.interrupt();
        }
        let deadline = Instant::now() + STOP_GRACE;
        for mut child in group {
            child.wait_until(deadline);
        }
    }
}

/// One child process, with its log; killed if still running when dropped (on every error
/// path), so that the demo never leaves a server or a device behind.
#[derive(Debug)]
struct Process {
    what: String,
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Starts `exe args`, stderr to `log`, with the `IOTMP_*` variables of this environment
    /// removed (the demo's children are configured by their arguments alone) and
    /// `credential` in `IOTMP_CREDENTIAL` (never on the command line, which other local users
    /// can read).
    fn spawn(
        exe: &Path,
        what: String,
        log: PathBuf,
        args: &[String],
        credential: Option<&Secret>,
    ) -> Result<Process, DemoError> {
        let spawn_error = |source| DemoError::Spawn {
            what: what.clone(),
            exe: exe.to_owned(),
            source,
        };
        let file = std::fs::File::create(&log).map_err(spawn_error)?;
        let mut command = Command::new(exe);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("IOTMP_") {
                command.env_remove(name);
            }
        }
        if let Some(credential) = credential {
            command.env("IOTMP_CREDENTIAL", credential.expose());
        }
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt as _;
            // Its own process group: see the module docs.
            command.process_group(0);
        }
        let child = command.spawn().map_err(spawn_error)?;
        Ok(Process { what, child, log })
    }

    /// The error to report if the child has exited.
    fn exited(&mut self) -> Option<DemoError> {
        let status = match self.child.try_wait() {
            Ok(Some(status)) => status,
            Ok(None) | Err(_) => return None,
        };
        Some(DemoError::Exited {
            what: self.what.clone(),
            status,
            tail: log_tail(&self.log),
            log: self.log.clone(),
        })
    }

    /// The error for a child that did not come up in time.
    fn not_ready(&self) -> DemoError {
        DemoError::NotReady {
            what: self.what.clone(),
            log: self.log.clone(),
            tail: log_tail(&self.log),
        }
    }

    /// Asks the child to stop as on Ctrl-C (where there is no SIGINT: kills it).
    fn interrupt(&self) {
        #[cfg(unix)]
        {
            use rustix::process::{Pid, Signal, kill_process};
            // Gone already is fine: there is nothing left to stop.
            let _ = kill_process(Pid::from_child(&self.child), Signal::INT);
        }
        #[cfg(not(unix))]
        {
            let _ = self.child.kill();
        }
    }

    /// Waits for the child until `deadline`, then kills it.
    fn wait_until(&mut self, deadline: Instant) {
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => std::thread::sleep(POLL / 4),
            }
        }
        warn!(
            "{} did not stop within {}s; killed (log: {})",
            self.what,
            STOP_GRACE.as_secs(),
            self.log.display()
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The last lines of a log, indented, for an error message.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(LOG_TAIL);
    let tail: Vec<String> = lines
        .get(start..)
        .unwrap_or_default()
        .iter()
        .map(|l| format!("    {l}"))
        .collect();
    if tail.is_empty() {
        "    (empty)".to_owned()
    } else {
        tail.join("\n")
    }
}

/// The demo's scratch folder, removed when dropped.
#[derive(Debug)]
struct DemoDir(PathBuf);

impl DemoDir {
    /// A new folder only this user can read (it holds the database): `create_dir` fails on an
    /// existing name, so a stale or planted folder is never reused.
    fn create() -> Result<DemoDir, DemoError> {
        let base = std::env::temp_dir();
        let mut last = None;
        for _ in 0..8 {
            let path = base.join(format!(
                "iotmp-demo-{}-{:08x}",
                std::process::id(),
                fastrand::u32(..)
            ));
            let mut builder = std::fs::DirBuilder::new();
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt as _;
                builder.mode(0o700);
            }
            match builder.create(&path) {
                Ok(()) => return Ok(DemoDir(path)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some((path, e)),
                Err(source) => return Err(DemoError::Folder { path, source }),
            }
        }
        let (path, source) = last.unwrap_or_else(|| (base, io::Error::other("no name left")));
        Err(DemoError::Folder { path, source })
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for DemoDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            warn!("cannot remove {}: {e}; remove it by hand", self.0.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_are_reached_on_loopback() {
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(reachable(any).to_string(), "127.0.0.1:8080");
        let any6: SocketAddr = "[::]:8080".parse().unwrap();
        assert_eq!(reachable(any6).to_string(), "[::1]:8080");
        let own: SocketAddr = "127.0.0.2:1".parse().unwrap();
        assert_eq!(reachable(own), own);
    }

    #[test]
    fn ports_must_be_fixed_and_distinct() {
        let args = |listen: &str, http: &str| DemoArgs {
            listen: listen.parse().unwrap(),
            http: http.parse().unwrap(),
            runtime: None,
        };
        let zero = check_ports(&args("127.0.0.1:0", "127.0.0.1:8080")).unwrap_err();
        assert!(zero.to_string().contains("--listen"), "{zero}");
        assert_eq!(zero.exit(), Exit::Usage);
        let same = check_ports(&args("127.0.0.1:9", "127.0.0.1:9")).unwrap_err();
        assert_eq!(same.exit(), Exit::Usage);
    }

    #[test]
    fn a_taken_port_names_its_option() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let free = TcpListener::bind("127.0.0.1:0").unwrap();
        let other = free.local_addr().unwrap();
        drop(free);
        let e = check_ports(&DemoArgs {
            listen: other,
            http: addr,
            runtime: None,
        })
        .unwrap_err();
        assert!(
            e.to_string().contains("pick another address with --http"),
            "{e}"
        );
        assert_eq!(e.exit(), Exit::Usage);
    }
}
