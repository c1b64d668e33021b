//! Credentials for the bench: the user (default `bench`) with devices `bench-0` … `bench-N-1`
//! and one API token, written into the registry file the server uses (`--db`) in one
//! transaction. Every run replaces that user with fresh random secrets that only this process
//! knows (the file keeps salted hashes, as for any device); the running server reloads its
//! index when it sees the change, which [`wait_until_served`] waits for.

use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use iotmp_proto::client::Resources;
use iotmp_proto::{Client, ClientConfig, ClientEvent, Dialect};

use super::BenchError;
use crate::store::{OpenMode, Secret, Store};

/// How long the server may take to pick up the new registry (it checks every 2 s, and at once
/// after a failed CONNECT).
const READY_WAIT: Duration = Duration::from_secs(15);

/// The provisioned fleet.
#[derive(Debug)]
pub(crate) struct Credentials {
    /// The owner.
    pub(crate) user: String,
    /// `(device, credential)`, in order.
    pub(crate) devices: Vec<(String, String)>,
    /// An API token of the owner.
    pub(crate) token: String,
}

impl Credentials {
    /// The device names, in order.
    pub(crate) fn names(&self) -> Vec<String> {
        self.devices.iter().map(|(name, _)| name.clone()).collect()
    }
}

/// Replaces `user` in the registry at `db` with `count` fresh devices and a token.
pub(crate) fn provision(db: &Path, user: &str, count: u32) -> Result<Credentials, BenchError> {
    let mut devices = Vec::with_capacity(count as usize);
    for i in 0..count {
        let secret = Secret::generate().map_err(|e| BenchError::Random(e.to_string()))?;
        devices.push((format!("{user}-{i}"), secret));
    }
    let registry = |source| BenchError::Registry {
        path: db.to_owned(),
        source,
    };
    let mut store = Store::open(db, OpenMode::Existing).map_err(registry)?;
    let token = store
        .replace_user_with_devices(user, &devices)
        .map_err(registry)?;
    Ok(Credentials {
        user: user.to_owned(),
        devices: devices
            .into_iter()
            .map(|(name, secret)| (name, secret.expose().to_owned()))
            .collect(),
        token: token.expose().to_owned(),
    })
}

/// Waits until the server at `server` accepts the first provisioned device (it has reloaded the
/// registry), or `stop` says to give up.
pub(crate) fn wait_until_served(
    server: SocketAddr,
    credentials: &Credentials,
    stop: &dyn Fn() -> bool,
) -> Result<(), BenchError> {
    let Some((device, credential)) = credentials.devices.first() else {
        return Ok(());
    };
    let deadline = Instant::now() + READY_WAIT;
    let mut last = String::new();
    while Instant::now() < deadline && !stop() {
        match probe(server, &credentials.user, device, credential) {
            Ok(true) => return Ok(()),
            Ok(false) => last = "CONNECT refused".to_owned(),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(BenchError::NotServed {
        server,
        waited: READY_WAIT,
        last,
    })
}

/// One blocking CONNECT: accepted or not.
fn probe(server: SocketAddr, user: &str, device: &str, credential: &str) -> io::Result<bool> {
    let mut stream = TcpStream::connect_timeout(&server, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    let origin = Instant::now();
    let now = || iotmp_proto::Instant::from_elapsed(origin.elapsed());
    let mut config = ClientConfig::new(Dialect::Draft2026, user, device, credential);
    config.request_timeout = Duration::from_secs(3);
    let mut client = Client::new(config, Resources::new(), now())
        .map_err(|e| io::Error::other(e.to_string()))?;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        out.clear();
        client.poll_transmit(&mut out);
        stream.write_all(&out)?;
        while let Some(event) = client.poll_event() {
            match event {
                ClientEvent::Connected => return Ok(true),
                ClientEvent::Closed(_) => return Ok(false),
                _ => {}
            }
        }
        match stream.read(&mut buf) {
            Ok(0) => client.handle_eof(now()),
            Ok(n) => client.handle_input(now(), buf.get(..n).unwrap_or_default()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                client.handle_timeout(now());
            }
            Err(e) => return Err(e),
        }
    }
}
