//! The device fleet: every bench device on one thread, one mio loop, one core `Client`
//! session per connection.
//!
//! Connections open at the asked rate from source addresses spread over 127.0.0.0/8. Each
//! device exposes one output resource, [`RESOURCE`], whose value is the bench clock in
//! microseconds: RUNs answer it, sampling streams get it when a sample is due, and in event
//! mode the loop pushes it at the aggregate rate, round-robin over the devices the server
//! listens to. One read buffer and one write buffer serve every connection; a connection holds
//! bytes of its own only while the kernel refuses them.

use std::collections::BTreeMap;
use std::io::{self, Read as _, Write as _};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use iotmp_proto::client::{ResourceKind, Resources, RunOutput};
use iotmp_proto::{Client, ClientConfig, ClientEvent, Dialect, Value};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::clock::{Clock, Counter, Flag, Window};
use super::stats::latency_histogram;
use super::system::{connect_done, connect_from, source_address};

/// The resource every bench device exposes.
pub(crate) const RESOURCE: &str = "v";

/// How often session timers (keep-alive, request timeouts) are checked: far finer than any
/// keep-alive, and cheap (one comparison per connection).
const SWEEP: Duration = Duration::from_millis(200);

/// The most samples pushed in one loop turn, as a fraction of a second of the rate: when the
/// loop falls behind, it skips the deficit rather than sending a burst (the summary's `sent`
/// tells the rate actually offered).
const MAX_BURST_SECS: f64 = 0.02;

/// What the fleet does.
#[derive(Debug)]
pub(crate) struct FleetPlan {
    /// The server's device listener.
    pub(crate) server: SocketAddr,
    /// The owner of the devices.
    pub(crate) user: String,
    /// Device names and credentials.
    pub(crate) devices: Vec<(String, String)>,
    /// New connections per second.
    pub(crate) connect_rate: u32,
    /// Keep-alive asked for, seconds.
    pub(crate) keep_alive: u32,
    /// Event mode: samples per second over all devices, pushed while `FleetShared::emit` is set.
    pub(crate) event_rate: u32,
}

/// What the fleet's loop and the main thread share.
#[derive(Debug, Default)]
pub(crate) struct FleetShared {
    /// Devices whose CONNECT was accepted.
    pub(crate) connected: Counter,
    /// Devices that never got in (connect error, refused, timed out).
    pub(crate) failed: Counter,
    /// Devices that got in and lost their connection afterwards.
    pub(crate) dropped: Counter,
    /// Samples sent with a timestamp inside the window.
    pub(crate) sent: Counter,
    /// Push events (event mode).
    pub(crate) emit: Flag,
    /// End the loop.
    pub(crate) stop: Flag,
    /// The measured window.
    pub(crate) window: Window,
}

/// What the fleet reports when it ends.
#[derive(Debug)]
pub(crate) struct FleetReport {
    /// Samples sent inside the window, per device.
    pub(crate) sent: Vec<u64>,
    /// From opening the socket to the server's OK, µs.
    pub(crate) connect_latency: Histogram<u64>,
    /// Clock time of the first connection opened.
    pub(crate) first_open_us: u64,
    /// Clock time of the last OK.
    pub(crate) last_connected_us: u64,
    /// Why devices failed or dropped, with counts.
    pub(crate) failures: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// TCP connect in progress.
    Connecting,
    /// CONNECT sent or about to be, waiting for the OK.
    Authenticating,
    /// Accepted.
    Up,
    /// Gone.
    Dead,
}

#[derive(Debug)]
struct Device {
    stream: Option<TcpStream>,
    client: Option<Client>,
    state: State,
    /// Bytes the kernel did not take yet (empty almost always, and then unallocated).
    pending: Vec<u8>,
    opened_us: u64,
    sent: u64,
    /// An event stream listens to [`RESOURCE`].
    listened: bool,
    dirty: bool,
}

/// Runs the fleet until `shared.stop`; meant for its own thread.
pub(crate) fn run(
    plan: FleetPlan,
    shared: &Arc<FleetShared>,
    clock: Clock,
) -> io::Result<FleetReport> {
    let mut fleet = Fleet {
        poll: Poll::new()?,
        devices: Vec::with_capacity(plan.devices.len()),
        read_buf: vec![0; 64 * 1024],
        write_buf: Vec::with_capacity(64 * 1024),
        dirty: Vec::new(),
        shared: Arc::clone(shared),
        clock,
        report: FleetReport {
            sent: Vec::new(),
            connect_latency: latency_histogram(),
            first_open_us: 0,
            last_connected_us: 0,
            failures: BTreeMap::new(),
        },
        resources: Resources::new().with(RESOURCE, ResourceKind::Output),
        cursor: 0,
    };
    fleet.run(&plan)?;
    let mut report = fleet.report;
    report.sent = fleet.devices.iter().map(|d| d.sent).collect();
    Ok(report)
}

struct Fleet {
    poll: Poll,
    devices: Vec<Device>,
    read_buf: Vec<u8>,
    write_buf: Vec<u8>,
    dirty: Vec<usize>,
    shared: Arc<FleetShared>,
    clock: Clock,
    report: FleetReport,
    resources: Resources,
    cursor: usize,
}

impl Fleet {
    fn run(&mut self, plan: &FleetPlan) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let total = plan.devices.len();
        let start_us = self.clock.now_us();
        self.report.first_open_us = start_us;
        let mut next_sweep = start_us;
        let mut emit_from: Option<(u64, u64)> = None;
        let burst = ((f64::from(plan.event_rate) * MAX_BURST_SECS) as u64).max(1);
        while !self.shared.stop.get() {
            let now_us = self.clock.now_us();
            let opened = self.devices.len();
            if opened < total {
                let due = (now_us - start_us).saturating_mul(u64::from(plan.connect_rate))
                    / 1_000_000
                    + 1;
                let due = usize::try_from(due).unwrap_or(usize::MAX).min(total);
                for index in opened..due {
                    self.open(plan, index);
                }
            }
            if plan.event_rate > 0 && self.shared.emit.get() {
                let (since, emitted) = emit_from.get_or_insert((now_us, 0));
                let target =
                    (now_us - *since).saturating_mul(u64::from(plan.event_rate)) / 1_000_000;
                let mut count = target.saturating_sub(*emitted);
                if count > burst {
                    count = burst;
                }
                *emitted = target;
                self.emit(count);
            } else {
                emit_from = None;
            }
            if now_us >= next_sweep {
                self.sweep();
                next_sweep = now_us + SWEEP.as_micros() as u64;
            }
            self.flush_dirty();
            let busy = opened < total || emit_from.is_some();
            let timeout = if busy {
                Duration::from_millis(1)
            } else {
                Duration::from_millis(50)
            };
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for event in &events {
                self.ready(event.token().0);
            }
            self.flush_dirty();
        }
        Ok(())
    }

    fn open(&mut self, plan: &FleetPlan, index: usize) {
        let opened_us = self.clock.now_us();
        let mut device = Device {
            stream: None,
            client: None,
            state: State::Dead,
            pending: Vec::new(),
            opened_us,
            sent: 0,
            listened: false,
            dirty: false,
        };
        let Some((name, credential)) = plan.devices.get(index) else {
            return;
        };
        let mut config = ClientConfig::new(Dialect::Draft2026, &plan.user, name, credential)
            .with_keep_alive(plan.keep_alive);
        config.request_timeout = Duration::from_secs(30);
        let opened = connect_from(source_address(index), plan.server).and_then(|mut stream| {
            self.poll.registry().register(
                &mut stream,
                Token(index),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            Ok(stream)
        });
        match opened {
            Ok(stream) => match Client::new(config, self.resources.clone(), self.clock.proto_now())
            {
                Ok(client) => {
                    device.stream = Some(stream);
                    device.client = Some(client);
                    device.state = State::Connecting;
                }
                Err(e) => self.fail(format!("session: {e}")),
            },
            Err(e) => self.fail(format!("connect: {e}")),
        }
        self.devices.push(device);
    }

    fn fail(&mut self, reason: String) {
        self.shared.failed.add(1);
        *self.report.failures.entry(reason).or_default() += 1;
    }

    /// Pushes `count` samples round-robin over the devices that are listened to.
    fn emit(&mut self, count: u64) {
        let n = self.devices.len();
        if n == 0 {
            return;
        }
        let now = self.clock.proto_now();
        let mut left = count;
        // One full lap without a listened device ends the turn early.
        let mut misses = 0;
        while left > 0 && misses < n {
            let index = self.cursor;
            self.cursor = (self.cursor + 1) % n;
            let ts = self.clock.now_us();
            let Some(device) = self.devices.get_mut(index) else {
                break;
            };
            let Some(client) = device.client.as_mut() else {
                misses += 1;
                continue;
            };
            if device.state != State::Up || !device.listened {
                misses += 1;
                continue;
            }
            misses = 0;
            left -= 1;
            if let Ok(true) = client.stream_value(now, RESOURCE, Value::UInt(ts)) {
                if self.shared.window.contains(ts) {
                    device.sent += 1;
                    self.shared.sent.add(1);
                }
                if !device.dirty {
                    device.dirty = true;
                    self.dirty.push(index);
                }
            }
        }
    }

    /// Lets every session act on its timers.
    fn sweep(&mut self) {
        let now = self.clock.proto_now();
        for index in 0..self.devices.len() {
            let Some(device) = self.devices.get_mut(index) else {
                break;
            };
            let Some(client) = device.client.as_mut() else {
                continue;
            };
            if client.poll_timeout().is_some_and(|(at, _)| at <= now) {
                client.handle_timeout(now);
                self.after_input(index);
            }
        }
    }

    /// A readiness event for device `index`.
    fn ready(&mut self, index: usize) {
        let Some(device) = self.devices.get_mut(index) else {
            return;
        };
        let Some(stream) = device.stream.as_mut() else {
            return;
        };
        if device.state == State::Connecting {
            match connect_done(stream) {
                Ok(true) => device.state = State::Authenticating,
                Ok(false) => return,
                Err(e) => {
                    self.close(index, format!("connect: {e}"));
                    return;
                }
            }
        }
        let now = self.clock.proto_now();
        let mut eof = false;
        loop {
            match stream.read(&mut self.read_buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    if let (Some(client), Some(bytes)) =
                        (device.client.as_mut(), self.read_buf.get(..n))
                    {
                        client.handle_input(now, bytes);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    eof = true;
                    break;
                }
            }
        }
        if eof && let Some(client) = device.client.as_mut() {
            client.handle_eof(now);
        }
        self.after_input(index);
        self.flush(index);
    }

    /// Acts on the session's events and marks the device for a flush.
    fn after_input(&mut self, index: usize) {
        let now = self.clock.proto_now();
        let Some(device) = self.devices.get_mut(index) else {
            return;
        };
        let Some(client) = device.client.as_mut() else {
            return;
        };
        let mut closed = None;
        while let Some(event) = client.poll_event() {
            match event {
                ClientEvent::Connected => {
                    device.state = State::Up;
                    let at = self.clock.now_us();
                    let _ = self
                        .report
                        .connect_latency
                        .record(at.saturating_sub(device.opened_us).max(1));
                    self.report.last_connected_us = at;
                    self.shared.connected.add(1);
                }
                ClientEvent::Run(run) => {
                    let value = Value::UInt(self.clock.now_us());
                    let _ = client.respond(now, run.id, Ok(RunOutput::value(value)));
                }
                ClientEvent::ValueNeeded { resource } => {
                    let ts = self.clock.now_us();
                    if client
                        .provide_value(now, &resource, Ok(Value::UInt(ts)))
                        .is_ok()
                        && self.shared.window.contains(ts)
                    {
                        device.sent += 1;
                        self.shared.sent.add(1);
                    }
                }
                ClientEvent::StreamStarted { interval_ms, .. } => {
                    device.listened = interval_ms == 0;
                }
                ClientEvent::StreamStopped { .. } => device.listened = false,
                ClientEvent::Closed(reason) => closed = Some(format!("{reason:?}")),
                _ => {}
            }
        }
        if !device.dirty {
            device.dirty = true;
            self.dirty.push(index);
        }
        if let Some(reason) = closed {
            // What the session still holds (an ERROR, a DISCONNECT) goes out first.
            self.flush(index);
            self.close(index, reason);
        }
    }

    fn flush_dirty(&mut self) {
        let dirty = std::mem::take(&mut self.dirty);
        for &index in &dirty {
            if let Some(device) = self.devices.get_mut(index) {
                device.dirty = false;
            }
            self.flush(index);
        }
        self.dirty = dirty;
        self.dirty.clear();
    }

    /// Writes what the session holds, keeping what the kernel refuses.
    fn flush(&mut self, index: usize) {
        let Some(device) = self.devices.get_mut(index) else {
            return;
        };
        if device.state == State::Connecting {
            return;
        }
        let (Some(stream), Some(client)) = (device.stream.as_mut(), device.client.as_mut()) else {
            return;
        };
        let result = if device.pending.is_empty() {
            self.write_buf.clear();
            client.poll_transmit(&mut self.write_buf);
            write_some(stream, &self.write_buf).map(|written| {
                if let Some(rest) = self.write_buf.get(written..)
                    && !rest.is_empty()
                {
                    device.pending.extend_from_slice(rest);
                }
            })
        } else {
            client.poll_transmit(&mut device.pending);
            write_some(stream, &device.pending).map(|written| {
                device.pending.drain(..written);
                if device.pending.is_empty() {
                    // Back to holding nothing while idle.
                    device.pending = Vec::new();
                }
            })
        };
        if let Err(e) = result {
            self.close(index, format!("write: {e}"));
        }
    }

    fn close(&mut self, index: usize, reason: String) {
        let Some(device) = self.devices.get_mut(index) else {
            return;
        };
        if device.state == State::Dead {
            return;
        }
        let was_up = device.state == State::Up;
        device.state = State::Dead;
        device.listened = false;
        if let Some(mut stream) = device.stream.take() {
            let _ = self.poll.registry().deregister(&mut stream);
        }
        device.client = None;
        device.pending = Vec::new();
        if was_up {
            self.shared.dropped.add(1);
            *self
                .report
                .failures
                .entry(format!("dropped: {reason}"))
                .or_default() += 1;
        } else {
            self.fail(reason);
        }
    }
}

/// Writes as much of `bytes` as the socket takes; how much.
fn write_some(stream: &mut TcpStream, bytes: &[u8]) -> io::Result<usize> {
    let mut written = 0;
    while let Some(rest) = bytes.get(written..)
        && !rest.is_empty()
    {
        match stream.write(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}
