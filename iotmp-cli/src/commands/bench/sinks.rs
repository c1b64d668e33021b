//! The sink fleet: one single-resource WebSocket per device (spec §8.4), as a dashboard opens
//! them, all on one thread and one mio loop (tungstenite on non-blocking sockets).
//!
//! Each text frame is the JSON of the value the device sent, i.e. the bench clock in
//! microseconds at sending; the sink subtracts it from the clock at arrival. Subscriptions open
//! at most [`HANDSHAKES_IN_FLIGHT`] at a time: each one makes the server send a START_STREAM and
//! wait for the device, and thousands at once would only measure the queueing.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use tungstenite::client::IntoClientRequest as _;
use tungstenite::handshake::client::ClientHandshake;
use tungstenite::handshake::{HandshakeError, MidHandshake};
use tungstenite::http::HeaderValue;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

use super::clock::{Clock, Counter, Flag, Window};
use super::fleet::RESOURCE;
use super::stats::latency_histogram;
use super::system::{connect_done, connect_from, source_address};

/// Handshakes in progress at once.
const HANDSHAKES_IN_FLIGHT: usize = 64;

/// Source addresses of the sinks start after those of the devices.
const SOURCE_OFFSET: usize = 100_000;

/// What the sinks do.
#[derive(Debug)]
pub(crate) struct SinkPlan {
    /// The server's HTTP API.
    pub(crate) http: SocketAddr,
    /// The devices' owner.
    pub(crate) user: String,
    /// Its API token.
    pub(crate) token: String,
    /// One sink per device name.
    pub(crate) devices: Vec<String>,
    /// `?interval=N` (sampling), or event-only.
    pub(crate) interval: Option<u32>,
}

/// What the sinks' loop and the main thread share.
#[derive(Debug, Default)]
pub(crate) struct SinkShared {
    /// Handshakes completed (101).
    pub(crate) subscribed: Counter,
    /// Sinks that failed to subscribe or were closed.
    pub(crate) failed: Counter,
    /// Samples received whose send time is inside the window.
    pub(crate) received: Counter,
    /// End the loop.
    pub(crate) stop: Flag,
    /// The measured window.
    pub(crate) window: Window,
}

/// What the sinks report when they end.
#[derive(Debug)]
pub(crate) struct SinkReport {
    /// Samples received inside the window, per sink (same order as the devices).
    pub(crate) received: Vec<u64>,
    /// End-to-end latency of those samples, µs.
    pub(crate) latency: Histogram<u64>,
    /// Frames that were not a bench timestamp.
    pub(crate) bad_frames: u64,
    /// Why sinks failed, with counts.
    pub(crate) failures: std::collections::BTreeMap<String, u64>,
}

enum Sink {
    Connecting(TcpStream),
    Handshaking(MidHandshake<ClientHandshake<TcpStream>>),
    Open(Box<WebSocket<TcpStream>>),
    Dead,
}

/// Runs the sinks until `shared.stop`; meant for its own thread.
pub(crate) fn run(
    plan: &SinkPlan,
    shared: &Arc<SinkShared>,
    clock: Clock,
) -> io::Result<SinkReport> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut sinks: Vec<Sink> = Vec::with_capacity(plan.devices.len());
    let mut received = vec![0u64; plan.devices.len()];
    let mut report = SinkReport {
        received: Vec::new(),
        latency: latency_histogram(),
        bad_frames: 0,
        failures: std::collections::BTreeMap::new(),
    };
    let mut in_flight = 0usize;
    let ctx = Ctx {
        plan,
        shared,
        clock,
        window: &shared.window,
    };
    while !shared.stop.get() {
        while in_flight < HANDSHAKES_IN_FLIGHT && sinks.len() < plan.devices.len() {
            let index = sinks.len();
            let sink = match connect_from(source_address(SOURCE_OFFSET + index), plan.http)
                .and_then(|mut stream| {
                    poll.registry().register(
                        &mut stream,
                        Token(index),
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                    Ok(stream)
                }) {
                Ok(stream) => {
                    in_flight += 1;
                    Sink::Connecting(stream)
                }
                Err(e) => {
                    ctx.fail(&mut report, format!("connect: {e}"));
                    Sink::Dead
                }
            };
            sinks.push(sink);
        }
        match poll.poll(&mut events, Some(Duration::from_millis(50))) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for event in &events {
            let index = event.token().0;
            let Some(slot) = sinks.get_mut(index) else {
                continue;
            };
            let was_pending = matches!(slot, Sink::Connecting(_) | Sink::Handshaking(_));
            let next = ctx.step(
                index,
                std::mem::replace(slot, Sink::Dead),
                &mut report,
                received.get_mut(index),
            );
            if was_pending && matches!(next, Sink::Open(_) | Sink::Dead) {
                in_flight = in_flight.saturating_sub(1);
            }
            *slot = next;
        }
    }
    report.received = received;
    Ok(report)
}

struct Ctx<'a> {
    plan: &'a SinkPlan,
    shared: &'a SinkShared,
    clock: Clock,
    window: &'a Window,
}

impl Ctx<'_> {
    fn fail(&self, report: &mut SinkReport, reason: String) {
        self.shared.failed.add(1);
        *report.failures.entry(reason).or_default() += 1;
    }

    /// Moves one sink on after a readiness event.
    fn step(
        &self,
        index: usize,
        sink: Sink,
        report: &mut SinkReport,
        received: Option<&mut u64>,
    ) -> Sink {
        match sink {
            Sink::Connecting(stream) => match connect_done(&stream) {
                Ok(false) => Sink::Connecting(stream),
                Ok(true) => self.start_handshake(index, stream, report),
                Err(e) => {
                    self.fail(report, format!("connect: {e}"));
                    Sink::Dead
                }
            },
            Sink::Handshaking(mid) => self.handshake_result(mid.handshake(), report),
            Sink::Open(mut ws) => {
                let mut count = 0;
                let alive = self.read(&mut ws, report, &mut count);
                if let Some(r) = received {
                    *r += count;
                }
                match alive {
                    Ok(()) => Sink::Open(ws),
                    Err(reason) => {
                        self.fail(report, reason);
                        Sink::Dead
                    }
                }
            }
            Sink::Dead => Sink::Dead,
        }
    }

    fn start_handshake(&self, index: usize, stream: TcpStream, report: &mut SinkReport) -> Sink {
        let Some(device) = self.plan.devices.get(index) else {
            return Sink::Dead;
        };
        let mut url = format!(
            "ws://{}/v3/users/{}/devices/{}/resources/{RESOURCE}",
            self.plan.http, self.plan.user, device
        );
        if let Some(n) = self.plan.interval {
            url.push_str(&format!("?interval={n}"));
        }
        let mut request = match url.into_client_request() {
            Ok(r) => r,
            Err(e) => {
                self.fail(report, format!("request: {e}"));
                return Sink::Dead;
            }
        };
        match HeaderValue::from_str(&format!("Bearer {}", self.plan.token)) {
            Ok(value) => {
                request.headers_mut().insert("authorization", value);
            }
            Err(e) => {
                self.fail(report, format!("token: {e}"));
                return Sink::Dead;
            }
        }
        // Small buffers: thousands of sinks in one process, each frame a few bytes.
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0);
        self.handshake_result(
            tungstenite::client::client_with_config(request, stream, Some(config)),
            report,
        )
    }

    fn handshake_result(
        &self,
        result: Result<
            (
                WebSocket<TcpStream>,
                tungstenite::handshake::client::Response,
            ),
            HandshakeError<ClientHandshake<TcpStream>>,
        >,
        report: &mut SinkReport,
    ) -> Sink {
        match result {
            Ok((ws, _)) => {
                self.shared.subscribed.add(1);
                let mut ws = Box::new(ws);
                // Frames may have come with the 101.
                let mut count = 0;
                if let Err(reason) = self.read(&mut ws, report, &mut count) {
                    self.fail(report, reason);
                    return Sink::Dead;
                }
                Sink::Open(ws)
            }
            Err(HandshakeError::Interrupted(mid)) => Sink::Handshaking(mid),
            Err(HandshakeError::Failure(tungstenite::Error::Http(response))) => {
                self.fail(report, format!("handshake: HTTP {}", response.status()));
                Sink::Dead
            }
            Err(HandshakeError::Failure(e)) => {
                self.fail(report, format!("handshake: {e}"));
                Sink::Dead
            }
        }
    }

    /// Reads every frame available; `Err` when the socket is done.
    fn read(
        &self,
        ws: &mut WebSocket<TcpStream>,
        report: &mut SinkReport,
        count: &mut u64,
    ) -> Result<(), String> {
        loop {
            match ws.read() {
                Ok(Message::Text(text)) => {
                    let now = self.clock.now_us();
                    match text.as_str().parse::<u64>() {
                        Ok(ts) if self.window.contains(ts) => {
                            *count += 1;
                            self.shared.received.add(1);
                            let _ = report.latency.record(now.saturating_sub(ts).max(1));
                        }
                        Ok(_) => {}
                        Err(_) => report.bad_frames += 1,
                    }
                }
                Ok(Message::Close(_)) => return Err("closed by the server".to_owned()),
                Ok(_) => {}
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Pongs tungstenite queued go out now, or at the next readiness.
                    return match ws.flush() {
                        Ok(()) => Ok(()),
                        Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                            Ok(())
                        }
                        Err(e) => Err(format!("write: {e}")),
                    };
                }
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }
}
