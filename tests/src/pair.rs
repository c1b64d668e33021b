//! An in-memory device/server pair on a virtual clock.
//!
//! The test owns `now`. [`Pair::run_until`] advances the clock to the earliest of the two sides'
//! deadlines and the link's deliveries, one mutation at a time, draining both sides after each,
//! so an hour of keep-alives runs in milliseconds and every run is identical. Every frame that
//! crosses the link and every event either side reports is written to a [`Transcript`].
//!
//! The link between them is itself deterministic: it can delay, re-chunk, drop and cut.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use iotmp_proto::client::ClientEvent;
use iotmp_proto::fanout::SinkId;
use iotmp_proto::frame::Deframer;
use iotmp_proto::hub::DeviceStreams;
use iotmp_proto::server::{Credentials, ServerConfig, ServerEvent, ServerSession, TransportInfo};
use iotmp_proto::{ClientConfig, Device, DeviceResources, Dialect, Instant, Value};

use crate::transcript::{Direction, Transcript};

mod faults;

/// One direction of the link.
#[derive(Debug, Default)]
pub struct Link {
    /// Delay of every byte.
    pub latency: Duration,
    /// Deliver in chunks of at most this many bytes (re-chunking), if set.
    pub chunk: Option<usize>,
    /// Swallow everything sent from now on (a black hole: half-open connection).
    pub dropping: bool,
    in_flight: VecDeque<(Instant, Vec<u8>)>,
}

impl Link {
    fn send(&mut self, now: Instant, bytes: Vec<u8>) {
        if self.dropping || bytes.is_empty() {
            return;
        }
        let at = now + self.latency;
        match self.chunk {
            Some(size) if size > 0 => {
                for piece in bytes.chunks(size) {
                    self.in_flight.push_back((at, piece.to_vec()));
                }
            }
            _ => self.in_flight.push_back((at, bytes)),
        }
    }

    fn next_delivery(&self) -> Option<Instant> {
        self.in_flight.front().map(|(t, _)| *t)
    }
}

/// How the pair's server application answers authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthPolicy {
    /// Accept these `(user, device, credential)` triples; reject anything else.
    Accept(Vec<(String, String, String)>),
    /// Never answer (the device's CONNECT times out; the server's deadline fires).
    Ignore,
}

/// A device with scripted resources, a server session, and the link between them.
pub struct Pair {
    /// The virtual clock.
    pub now: Instant,
    /// The device side.
    pub device: Device,
    /// The server side (of the current connection).
    pub server: ServerSession,
    /// Device → server.
    pub up: Link,
    /// Server → device.
    pub down: Link,
    /// What happened.
    pub transcript: Transcript,
    /// Events the server side reported, with their times.
    pub server_events: Vec<(Instant, ServerEvent)>,
    /// Events the device side reported (other than those its handlers consumed).
    pub device_events: Vec<(Instant, ClientEvent)>,
    /// The server application's authentication answer.
    pub auth: AuthPolicy,
    /// The server application's fan-out of the device's streams to sinks.
    pub hub: DeviceStreams,
    /// Every value delivered to a sink: when, resource, sink, value.
    pub deliveries: Vec<(Instant, String, SinkId, Value)>,
    /// Replay traces of finished connections: (device trace, server trace).
    pub finished_traces: Vec<(String, String)>,
    dialect: Dialect,
    device_closed: bool,
    server_closed: bool,
    up_open: bool,
    down_open: bool,
    transcript_deframers: (Deframer, Deframer),
    trace_text: (String, String),
}

/// The standard account of the spec's sample sessions.
pub fn alice() -> (String, String, String) {
    ("alice".into(), "dev01".into(), "s3cr3t".into())
}

/// A device config for alice/dev01 in `dialect`.
pub fn alice_config(dialect: Dialect) -> ClientConfig {
    let (user, device, credential) = alice();
    ClientConfig::new(dialect, &user, &device, &credential)
}

/// Values a scripted resource returns, one per read; the last one repeats.
#[derive(Debug, Clone, Default)]
pub struct Script(Arc<Mutex<VecDeque<Value>>>);

impl Script {
    /// A script reading `values` in order.
    pub fn new(values: impl IntoIterator<Item = Value>) -> Self {
        Script(Arc::new(Mutex::new(values.into_iter().collect())))
    }

    /// Appends values.
    pub fn push(&self, value: Value) {
        if let Ok(mut q) = self.0.lock() {
            q.push_back(value);
        }
    }

    /// The next value (the last one repeats).
    pub fn next(&self) -> Value {
        match self.0.lock() {
            Ok(mut q) if q.len() > 1 => q.pop_front().unwrap_or_default(),
            Ok(q) => q.front().cloned().unwrap_or_default(),
            Err(_) => Value::Null,
        }
    }
}

/// The spec's sample device: `led` (input), `temp` (output), `heading` (output).
pub fn sample_resources(
    temp: &Script,
    heading: &Script,
    led: Arc<Mutex<Vec<Value>>>,
) -> DeviceResources {
    let (temp, heading) = (temp.clone(), heading.clone());
    let mut on = iotmp_proto::Map::new();
    on.insert("on", false);
    DeviceResources::new()
        .input("led", Value::Map(on), move |v| {
            if let Ok(mut log) = led.lock() {
                log.push(v.clone());
            }
            Ok(())
        })
        .output("temp", move || Ok(temp.next()))
        .output("heading", move || Ok(heading.next()))
}

impl Pair {
    /// A pair whose device connects at time zero with `config` and `resources`.
    pub fn new(
        config: ClientConfig,
        resources: DeviceResources,
        server_config: ServerConfig,
    ) -> Self {
        let now = Instant::ZERO;
        let dialect = config.dialect;
        let mut server = ServerSession::new(server_config, TransportInfo::default(), now);
        let mut device =
            Device::new(config, resources, now).expect("the device config must encode");
        // Both sides record replay traces from their first byte.
        server.start_trace();
        device.client().start_trace();
        let mut pair = Pair {
            now,
            device,
            server,
            up: Link::default(),
            down: Link::default(),
            transcript: Transcript::new(dialect),
            server_events: Vec::new(),
            device_events: Vec::new(),
            auth: AuthPolicy::Accept(vec![alice()]),
            hub: DeviceStreams::new(),
            deliveries: Vec::new(),
            finished_traces: Vec::new(),
            dialect,
            device_closed: false,
            server_closed: false,
            up_open: true,
            down_open: true,
            transcript_deframers: (Deframer::default(), Deframer::default()),
            trace_text: (String::new(), String::new()),
        };
        pair.drain();
        pair
    }

    /// The sample device of the spec, default server config.
    pub fn sample(
        dialect: Dialect,
        keep_alive: Option<u32>,
    ) -> (Self, Script, Script, Arc<Mutex<Vec<Value>>>) {
        let temp = Script::new([Value::F32(21.5)]);
        let heading = Script::new([Value::F32(87.5)]);
        let led = Arc::new(Mutex::new(Vec::new()));
        let mut config = alice_config(dialect);
        config.keep_alive = keep_alive;
        let pair = Pair::new(
            config,
            sample_resources(&temp, &heading, led.clone()),
            ServerConfig::default(),
        );
        (pair, temp, heading, led)
    }

    /// Seconds since the start, as a Duration.
    pub fn at(seconds: f64) -> Instant {
        Instant::from_micros((seconds * 1e6).round() as u64)
    }

    /// The next moment anything happens.
    fn next_wakeup(&self) -> Option<Instant> {
        let mut candidates = Vec::new();
        if !self.device_closed {
            candidates.extend(self.device.poll_timeout().map(|(t, _)| t));
        }
        if !self.server_closed {
            candidates.extend(self.server.poll_timeout().map(|(t, _)| t));
        }
        candidates.extend(self.up.next_delivery());
        candidates.extend(self.down.next_delivery());
        candidates.into_iter().min()
    }

    /// Advances the clock to `until`, processing everything due on the way.
    pub fn run_until(&mut self, until: Instant) {
        let mut steps = 0u32;
        while let Some(t) = self.next_wakeup() {
            if t > until {
                break;
            }
            steps += 1;
            assert!(
                steps < 1_000_000,
                "the pair does not settle: a session keeps waking up at {t}"
            );
            self.now = self.now.max(t);
            self.step();
        }
        self.now = self.now.max(until);
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    /// Processes what is due at `now`: deliveries first, then timers.
    fn step(&mut self) {
        let now = self.now;
        if let Some((t, _)) = self.up.in_flight.front()
            && *t <= now
        {
            if let Some((_, bytes)) = self.up.in_flight.pop_front()
                && !self.server_closed
            {
                if bytes.is_empty() {
                    self.server.handle_eof(now);
                } else {
                    self.server.handle_input(now, &bytes);
                }
            }
            self.drain();
            return;
        }
        if let Some((t, _)) = self.down.in_flight.front()
            && *t <= now
        {
            if let Some((_, bytes)) = self.down.in_flight.pop_front()
                && !self.device_closed
            {
                if bytes.is_empty() {
                    self.device.handle_eof(now);
                } else {
                    self.device.handle_input(now, &bytes);
                }
            }
            self.drain();
            return;
        }
        if !self.device_closed && self.device.poll_timeout().is_some_and(|(t, _)| t <= now) {
            self.device.handle_timeout(now);
        }
        if !self.server_closed && self.server.poll_timeout().is_some_and(|(t, _)| t <= now) {
            self.server.handle_timeout(now);
        }
        self.drain();
    }

    /// Moves output and events out of both sides until both are quiet.
    pub fn drain(&mut self) {
        loop {
            let mut progressed = self.flush_device();
            progressed |= self.flush_server();
            while let Some(event) = self.device.poll_event() {
                progressed = true;
                if let ClientEvent::Closed(reason) = &event {
                    // The device closes its transport: the server sees EOF after what is in flight,
                    // including what the session wrote just before it closed.
                    self.flush_device();
                    self.device_closed = true;
                    self.transcript
                        .note(self.now, &format!("device closed: {reason}"));
                    self.up_open = false;
                    self.schedule_eof(Direction::DeviceToServer);
                } else {
                    self.transcript.note(
                        self.now,
                        &format!("device event: {}", describe_client_event(&event)),
                    );
                }
                self.device_events.push((self.now, event));
            }
            while let Some(event) = self.server.poll_event() {
                progressed = true;
                self.on_server_event(&event);
                self.server_events.push((self.now, event));
            }
            if !progressed {
                break;
            }
        }
    }

    /// Moves what the device wrote onto the link; returns whether there was anything.
    fn flush_device(&mut self) -> bool {
        let mut bytes = Vec::new();
        if self.device.poll_transmit(&mut bytes) == 0 {
            return false;
        }
        self.log_frames(Direction::DeviceToServer, &bytes);
        if self.up_open {
            if self.up.dropping {
                self.transcript
                    .note(self.now, "(lost: the C->S link drops it)");
            }
            self.up.send(self.now, bytes);
        }
        true
    }

    /// Moves what the server wrote onto the link; returns whether there was anything.
    fn flush_server(&mut self) -> bool {
        let mut bytes = Vec::new();
        if self.server.poll_transmit(&mut bytes) == 0 {
            return false;
        }
        self.log_frames(Direction::ServerToDevice, &bytes);
        if self.down_open {
            if self.down.dropping {
                self.transcript
                    .note(self.now, "(lost: the S->C link drops it)");
            }
            self.down.send(self.now, bytes);
        }
        true
    }

    fn schedule_eof(&mut self, direction: Direction) {
        // EOF travels behind the bytes already in flight: an empty chunk marks it.
        let link = match direction {
            Direction::DeviceToServer => &mut self.up,
            Direction::ServerToDevice => &mut self.down,
        };
        if link.dropping {
            // A black hole swallows the close too: the other side never learns of it.
            return;
        }
        let at = self.now + link.latency;
        let at = link.in_flight.back().map_or(at, |(t, _)| (*t).max(at));
        link.in_flight.push_back((at, Vec::new()));
    }

    fn on_server_event(&mut self, event: &ServerEvent) {
        match event {
            ServerEvent::Authenticate(request) => {
                let decision = match (&self.auth, &request.credentials) {
                    (AuthPolicy::Ignore, _) => None,
                    (
                        AuthPolicy::Accept(accounts),
                        Credentials::Password {
                            user,
                            device,
                            credential,
                        },
                    ) => Some(
                        accounts
                            .iter()
                            .any(|(u, d, c)| u == user && d == device && c == credential),
                    ),
                    (AuthPolicy::Accept(_), Credentials::Certificate { .. }) => Some(false),
                };
                let what = match &request.credentials {
                    Credentials::Password { user, device, .. } => format!("{user}/{device}"),
                    Credentials::Certificate { .. } => "certificate".into(),
                };
                match decision {
                    Some(true) => {
                        self.transcript
                            .note(self.now, &format!("server: authenticate {what} -> accept"));
                        let _ = self.server.accept(self.now);
                        self.hub.connected(self.now, &mut self.server);
                    }
                    Some(false) => {
                        self.transcript
                            .note(self.now, &format!("server: authenticate {what} -> reject"));
                        let _ = self.server.reject(self.now);
                    }
                    None => self.transcript.note(
                        self.now,
                        &format!("server: authenticate {what} -> (no answer)"),
                    ),
                }
            }
            ServerEvent::Closed(reason) => {
                // Write what the session still holds (the ERROR to a refused CONNECT, say), then
                // close: the device sees EOF behind it.
                self.flush_server();
                self.hub.disconnected();
                self.server_closed = true;
                self.transcript
                    .note(self.now, &format!("server closed: {reason}"));
                self.down_open = false;
                self.schedule_eof(Direction::ServerToDevice);
            }
            other => {
                self.transcript.note(
                    self.now,
                    &format!("server event: {}", describe_server_event(other)),
                );
                let mut delivered = Vec::new();
                self.hub.handle_event(self.now, other, &mut delivered);
                for (resource, d) in delivered {
                    self.log_delivery(&resource, d.sink, d.value);
                }
            }
        }
    }

    fn log_delivery(&mut self, resource: &str, sink: SinkId, value: Value) {
        self.transcript.note(
            self.now,
            &format!("deliver {value} to sink {sink} ({resource})"),
        );
        self.deliveries
            .push((self.now, resource.to_owned(), sink, value));
    }

    /// A sink joins `resource` at the current time (interval in seconds, 0 = events).
    pub fn join(&mut self, resource: &str, sink: SinkId, interval_s: u32) {
        self.transcript.note(
            self.now,
            &format!("sink {sink} joins {resource} (interval {interval_s} s)"),
        );
        let now = self.now;
        let server =
            (!self.server_closed && self.server.is_established()).then_some(&mut self.server);
        let joined = self.hub.join(now, server, resource, sink, interval_s);
        for d in joined.deliveries {
            self.log_delivery(resource, d.sink, d.value);
        }
        self.drain();
        self.run_until(self.now);
    }

    /// A sink leaves `resource` at the current time.
    pub fn leave(&mut self, resource: &str, sink: SinkId) {
        self.transcript
            .note(self.now, &format!("sink {sink} leaves {resource}"));
        let now = self.now;
        let server =
            (!self.server_closed && self.server.is_established()).then_some(&mut self.server);
        self.hub.leave(now, server, resource, sink);
        self.drain();
        self.run_until(self.now);
    }

    fn log_frames(&mut self, direction: Direction, bytes: &[u8]) {
        let deframer = match direction {
            Direction::DeviceToServer => &mut self.transcript_deframers.0,
            Direction::ServerToDevice => &mut self.transcript_deframers.1,
        };
        let mut input = bytes;
        while let Ok(Some(frame)) = deframer.next_frame(&mut input) {
            self.transcript.frame(
                self.now,
                direction,
                self.dialect,
                frame.type_code,
                frame.body,
            );
        }
    }

    /// Cuts both directions: each side sees EOF after what is in flight.
    pub fn cut(&mut self) {
        self.transcript.note(self.now, "link cut");
        self.up_open = false;
        self.down_open = false;
        self.schedule_eof(Direction::DeviceToServer);
        self.schedule_eof(Direction::ServerToDevice);
    }

    /// Replaces the server session (a reconnect): a fresh connection for a fresh device session.
    pub fn reconnect(&mut self, config: ClientConfig, resources: DeviceResources) {
        self.transcript.note(self.now, "device reconnects");
        let traces = self.traces();
        self.finished_traces.push(traces);
        self.server =
            ServerSession::new(ServerConfig::default(), TransportInfo::default(), self.now);
        self.device =
            Device::new(config, resources, self.now).expect("the device config must encode");
        self.server.start_trace();
        self.device.client().start_trace();
        self.dialect = self.device.session().dialect();
        self.transcript.set_dialect(self.dialect);
        self.up = Link {
            latency: self.up.latency,
            chunk: self.up.chunk,
            ..Link::default()
        };
        self.down = Link {
            latency: self.down.latency,
            chunk: self.down.chunk,
            ..Link::default()
        };
        self.device_closed = false;
        self.server_closed = false;
        self.up_open = true;
        self.down_open = true;
        self.transcript_deframers = (Deframer::default(), Deframer::default());
        self.trace_text = (String::new(), String::new());
        self.drain();
    }

    /// The replay traces of the current connection so far: (device, server). Each call returns
    /// the whole trace from its header.
    pub fn traces(&mut self) -> (String, String) {
        self.trace_text
            .0
            .push_str(&self.device.client().take_trace());
        self.trace_text.1.push_str(&self.server.take_trace());
        self.trace_text.clone()
    }

    /// True when the device has reported `Closed`.
    pub fn device_closed(&self) -> bool {
        self.device_closed
    }

    /// True when the server has reported `Closed`.
    pub fn server_closed(&self) -> bool {
        self.server_closed
    }

    /// Runs a server command at the current time, then lets everything due now happen.
    pub fn on_server<T>(&mut self, f: impl FnOnce(&mut ServerSession, Instant) -> T) -> T {
        let result = f(&mut self.server, self.now);
        self.drain();
        self.run_until(self.now);
        result
    }

    /// Runs a device command at the current time, then lets everything due now happen.
    pub fn on_device<T>(&mut self, f: impl FnOnce(&mut Device, Instant) -> T) -> T {
        let result = f(&mut self.device, self.now);
        self.device.service(self.now);
        self.drain();
        self.run_until(self.now);
        result
    }
}

fn describe_client_event(event: &ClientEvent) -> String {
    match event {
        ClientEvent::Connected => "connected".into(),
        ClientEvent::StreamStarted {
            id,
            resource,
            interval_ms,
        } => {
            format!("stream {id} of {resource:?} started, interval {interval_ms} ms")
        }
        ClientEvent::StreamStopped { id } => format!("stream {id} stopped"),
        ClientEvent::Answered { id, answer } => format!("answer to {id}: {answer:?}"),
        ClientEvent::RequestTimedOut { id } => format!("request {id} timed out"),
        other => format!("{other:?}"),
    }
}

fn describe_server_event(event: &ServerEvent) -> String {
    match event {
        ServerEvent::Answered { id, answer } => format!("answer to {id}: {answer:?}"),
        ServerEvent::RequestTimedOut { id } => format!("request {id} timed out"),
        ServerEvent::StreamOpened { id, interval_ms } => {
            format!("stream {id} open, interval {interval_ms} ms")
        }
        ServerEvent::StreamData { id, value, .. } => match value {
            Some(v) => format!("data on {id}: {v}"),
            None => format!("data on {id}: (none)"),
        },
        ServerEvent::StreamClosed { id, why } => format!("stream {id} closed: {why:?}"),
        other => format!("{other:?}"),
    }
}
