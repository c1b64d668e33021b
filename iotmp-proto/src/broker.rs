//! Many device connections behind one application: the server side of a deployment, as pure
//! state.
//!
//! A [`Broker`] owns one [`ServerSession`] per transport connection, knows which device each
//! authenticated connection is (the newest connection of a device wins, spec §6.1), routes the
//! application's RUN / DESCRIBE to the device's current connection and their answers back, keeps
//! each device's sinks in a [`DeviceStreams`] so that they survive reconnects (spec §6.9), and
//! schedules every session's deadline with one timer queue.
//!
//! Drivers (mio, smol, …) stay thin: they register connections, feed bytes, end-of-stream and
//! clock ticks, and move the output of [`Broker::poll_transmit`] to the sockets. The same rules
//! as for a session apply: after every input or command, drain [`Broker::poll_dirty`] /
//! [`Broker::poll_transmit`], then [`Broker::poll_closed`], then [`Broker::poll_event`], then
//! sleep until [`Broker::poll_timeout`].

use core::time::Duration;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;

use thiserror::Error;

use crate::admission::{Admission, AdmissionConfig, Refusal};
use crate::dialect::Dialect;
use crate::fanout::{Delivery, SinkId};
use crate::hub::DeviceStreams;
use crate::server::{AuthRequest, ServerConfig, ServerEvent, ServerSession, TransportInfo};
use crate::session::requests::StreamEnd;
use crate::session::{Answer, CloseReason, CommandError};
use crate::time::Instant;
use crate::value::{Text, Value};

/// A transport connection, numbered by the driver.
pub type ConnId = u64;

/// Refused connections are reported at most this often ([`BrokerEvent::Refused`]), so that a
/// flood cannot flood the logs too.
pub const REFUSAL_REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// Connections turned away by [`Broker::try_open`] since the broker started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefusalCounts {
    /// Over [`AdmissionConfig::max_connections`].
    pub too_many_connections: u64,
    /// Over a source's connection rate.
    pub rate_limited: u64,
    /// From a banned source.
    pub banned: u64,
}

impl RefusalCounts {
    /// All refusals.
    pub fn total(&self) -> u64 {
        self.too_many_connections + self.rate_limited + self.banned
    }

    fn count(&mut self, refusal: Refusal) {
        let n = match refusal {
            Refusal::TooManyConnections => &mut self.too_many_connections,
            Refusal::RateLimited => &mut self.rate_limited,
            Refusal::Banned => &mut self.banned,
        };
        *n = n.saturating_add(1);
    }
}

/// Identifies a request of the application; its answer comes as [`BrokerEvent::Answer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// Why a request of the application has no answer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RequestFailure {
    /// The device is not connected.
    #[error("device offline")]
    Offline,
    /// The device did not answer within the request timeout.
    #[error("device timeout")]
    Timeout,
    /// The connection ended before the answer came.
    #[error("connection closed before the answer")]
    ConnectionLost,
    /// The session refused the command (limits, say).
    #[error(transparent)]
    Refused(#[from] CommandError),
}

/// Something the application learns from the broker.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum BrokerEvent {
    /// A connection presented a valid CONNECT; answer with [`Broker::accept`] or
    /// [`Broker::reject`].
    Authenticate {
        /// The connection.
        conn: ConnId,
        /// What it presented.
        request: AuthRequest,
    },
    /// A device's connection was accepted.
    DeviceOnline {
        /// The device.
        device: Text,
        /// Its connection.
        conn: ConnId,
        /// The dialect it speaks.
        dialect: Dialect,
    },
    /// A device's connection ended (its sinks stay registered).
    DeviceOffline {
        /// The device.
        device: Text,
        /// Why.
        reason: CloseReason,
    },
    /// A connection ended before it was a device (refused, timed out, garbage, …).
    ConnectionClosed {
        /// The connection.
        conn: ConnId,
        /// Why.
        reason: CloseReason,
    },
    /// Connections were turned away by [`Broker::try_open`]. Reported at most once per
    /// [`REFUSAL_REPORT_INTERVAL`]: this is the refusal that triggered the report, and how many
    /// there were in all since the previous report (this one included).
    Refused {
        /// The source of this refusal.
        peer: Option<IpAddr>,
        /// Why it was refused.
        reason: Refusal,
        /// Refusals since the previous report, this one included.
        count: u64,
    },
    /// A source group was banned after repeated authentication failures (see
    /// [`crate::admission`]).
    Banned {
        /// The address whose failure started the ban.
        source: IpAddr,
        /// How long the ban lasts from now.
        duration: Duration,
    },
    /// A driver could not write the replay trace of a connection (see
    /// [`Broker::set_recording`]); the broker itself never emits this, the driver that owns the
    /// files does, on the same event stream, so that the application can log it.
    TraceFailed {
        /// The connection.
        conn: ConnId,
        /// What went wrong, in words.
        error: String,
    },
    /// The answer to [`Broker::run`] or [`Broker::describe`].
    Answer {
        /// The request.
        request: RequestId,
        /// OK / ERROR, or why there is none.
        result: Result<Answer, RequestFailure>,
    },
    /// A subscription that had to open a device stream is confirmed or refused (spec §8.4).
    Subscribed {
        /// The device.
        device: Text,
        /// The resource.
        resource: Text,
        /// The sink.
        sink: SinkId,
        /// `Ok` when the device accepted the stream.
        result: Result<(), StreamEnd>,
    },
    /// A value for a sink.
    Delivery {
        /// The device.
        device: Text,
        /// The resource.
        resource: Text,
        /// The sink.
        sink: SinkId,
        /// The value.
        value: Value,
    },
}

/// How a subscription went at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subscription {
    /// Nothing had to be asked of the device (or it is offline): the sink is registered.
    Ready,
    /// A START_STREAM went out; [`BrokerEvent::Subscribed`] will tell how it went.
    Pending,
}

/// One per connection, most of them idle; boxed in the map, so that the map's nodes stay small.
#[derive(Debug)]
struct Conn {
    session: ServerSession,
    device: Option<Text>,
    /// The deadline this connection has in the timer queue, if any.
    scheduled: Option<Instant>,
    dirty: bool,
}

/// One entry per device ever seen or subscribed to. Sinks are rare next to devices, so what
/// only they need is boxed: an idle device without sinks holds no heap memory of its own.
#[derive(Debug, Default)]
struct Device {
    online: Option<Online>,
    sinks: Option<Box<Sinks>>,
}

/// The connection a device is online on (one `Option` for the three, so they fit in 24 bytes).
#[derive(Debug, Clone, Copy)]
struct Online {
    conn: ConnId,
    since: Instant,
    dialect: Option<Dialect>,
}

impl Device {
    fn conn(&self) -> Option<ConnId> {
        self.online.map(|o| o.conn)
    }

    fn status(&self) -> DeviceStatus {
        DeviceStatus {
            conn: self.conn(),
            dialect: self.online.and_then(|o| o.dialect),
            connected_at: self.online.map(|o| o.since),
        }
    }
}

#[derive(Debug, Default)]
struct Sinks {
    streams: DeviceStreams,
    /// Subscriptions waiting for the device's answer to a START_STREAM: (stream id, resource, sink).
    waiting: Vec<(u16, Text, SinkId)>,
}

/// What the application can see of a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceStatus {
    /// Its current connection.
    pub conn: Option<ConnId>,
    /// The dialect of that connection.
    pub dialect: Option<Dialect>,
    /// When that connection was accepted (broker clock).
    pub connected_at: Option<Instant>,
}

/// Many connections and devices. See the [module docs](self).
#[derive(Debug)]
pub struct Broker {
    config: Arc<ServerConfig>,
    conns: BTreeMap<ConnId, Box<Conn>>,
    devices: BTreeMap<Text, Device>,
    timers: BinaryHeap<Reverse<(Instant, ConnId)>>,
    /// The source address of each connection whose CONNECT was never accepted, for the
    /// admission rules (a failure to authenticate counts against it). Kept beside the
    /// connections rather than in them: only new connections need it, and the 24 bytes it took
    /// in every `Conn` put each idle device's entry one allocator size class higher.
    unauthenticated: BTreeMap<ConnId, IpAddr>,
    dirty: VecDeque<ConnId>,
    closed: VecDeque<(ConnId, Vec<u8>)>,
    events: VecDeque<BrokerEvent>,
    /// Deliveries of the stream event being routed; empty between calls, kept for its capacity.
    delivered: Vec<(Text, Delivery)>,
    requests: Vec<(ConnId, u16, RequestId)>,
    next_request: u64,
    /// Record a replay trace of every new connection (only settable with traces, `serde`).
    #[cfg_attr(not(feature = "serde"), allow(dead_code))]
    record: bool,
    /// Complete traces of closed connections, waiting for [`Broker::poll_trace`].
    traces: VecDeque<(ConnId, String)>,
    admission: Admission,
    refused: RefusalCounts,
    /// Refusals not reported yet, and when the last report went out.
    unreported: u64,
    last_report: Option<Instant>,
}

impl Broker {
    /// A broker whose sessions use `config`, admitting every connection [`Broker::try_open`]
    /// is asked about (see [`Broker::with_admission`]).
    pub fn new(config: ServerConfig) -> Self {
        Broker::with_admission(config, AdmissionConfig::unlimited())
    }

    /// A broker whose sessions use `config` and whose [`Broker::try_open`] applies `admission`.
    pub fn with_admission(config: ServerConfig, admission: AdmissionConfig) -> Self {
        Broker {
            config: Arc::new(config),
            conns: BTreeMap::new(),
            devices: BTreeMap::new(),
            timers: BinaryHeap::new(),
            unauthenticated: BTreeMap::new(),
            dirty: VecDeque::new(),
            closed: VecDeque::new(),
            events: VecDeque::new(),
            delivered: Vec::new(),
            requests: Vec::new(),
            next_request: 0,
            record: false,
            traces: VecDeque::new(),
            admission: Admission::new(admission),
            refused: RefusalCounts::default(),
            unreported: 0,
            last_report: None,
        }
    }

    /// Connections refused so far, by reason.
    pub fn refused(&self) -> RefusalCounts {
        self.refused
    }

    /// The admission rules and their state.
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// Records a replay trace ([`crate::trace`]) of every connection opened from now on; each
    /// comes out of [`Broker::poll_trace`] once its connection closed. A trace is kept whole in
    /// memory until then, so a long-lived connection's trace grows for as long as it lives.
    #[cfg(feature = "serde")]
    pub fn set_recording(&mut self, record: bool) {
        self.record = record;
    }

    /// The complete trace of a closed connection, when recording (see
    /// [`Broker::set_recording`]). Drain it after [`Broker::poll_closed`].
    pub fn poll_trace(&mut self) -> Option<(ConnId, String)> {
        self.traces.pop_front()
    }

    /// Number of open connections.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// The status of `device`, if it was ever seen or subscribed to.
    pub fn device(&self, device: &str) -> Option<DeviceStatus> {
        self.devices.get(device).map(Device::status)
    }

    /// Devices currently online.
    pub fn online(&self) -> impl Iterator<Item = (&str, DeviceStatus)> {
        self.devices
            .iter()
            .filter(|(_, d)| d.online.is_some())
            .map(|(name, d)| (name.as_str(), d.status()))
    }

    // ----- transport inputs ----------------------------------------------------------------

    /// A transport from `peer` was accepted at `now`: opens it as `conn` if the admission
    /// rules let it in. On `Err` the driver closes the transport at once, without reading or
    /// writing anything; the refusal is counted ([`Broker::refused`]) and reported at a bounded
    /// rate ([`BrokerEvent::Refused`]).
    pub fn try_open(
        &mut self,
        now: Instant,
        conn: ConnId,
        peer: Option<IpAddr>,
        transport: TransportInfo,
    ) -> Result<(), Refusal> {
        if let Err(refusal) = self.admission.check(now, peer, self.conns.len()) {
            self.refused.count(refusal);
            self.unreported = self.unreported.saturating_add(1);
            let due = self
                .last_report
                .is_none_or(|at| now.saturating_since(at) >= REFUSAL_REPORT_INTERVAL);
            if due {
                self.events.push_back(BrokerEvent::Refused {
                    peer,
                    reason: refusal,
                    count: std::mem::take(&mut self.unreported),
                });
                self.last_report = Some(now);
            }
            return Err(refusal);
        }
        self.open(now, conn, transport);
        if let Some(peer) = peer {
            self.unauthenticated.insert(conn, peer);
        }
        Ok(())
    }

    /// A transport connection was accepted at `now` (no admission rules: see
    /// [`Broker::try_open`]).
    pub fn open(&mut self, now: Instant, conn: ConnId, transport: TransportInfo) {
        #[cfg_attr(not(feature = "serde"), allow(unused_mut))]
        let mut session = ServerSession::new(Arc::clone(&self.config), transport, now);
        #[cfg(feature = "serde")]
        if self.record {
            // Before anything is polled, so that the trace holds every output.
            session.start_trace();
        }
        self.conns.insert(
            conn,
            Box::new(Conn {
                session,
                device: None,
                scheduled: None,
                dirty: false,
            }),
        );
        self.settle(now, conn);
    }

    /// What the driver learned about `conn`'s transport (a finished TLS handshake), before
    /// its first bytes are fed.
    pub fn set_transport(&mut self, conn: ConnId, transport: TransportInfo) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.session.set_transport(transport);
            // The trace header holds the transport (a client certificate decides the
            // authentication): write it again. Nothing was fed yet, so nothing is lost.
            #[cfg(feature = "serde")]
            if self.record {
                c.session.start_trace();
            }
        }
    }

    /// Bytes arrived on `conn`.
    pub fn handle_input(&mut self, now: Instant, conn: ConnId, bytes: &[u8]) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.session.handle_input(now, bytes);
            self.settle(now, conn);
        }
    }

    /// `conn` reached end of stream (or failed).
    pub fn handle_eof(&mut self, now: Instant, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.session.handle_eof(now);
            self.settle(now, conn);
        }
    }

    /// The clock reached [`Broker::poll_timeout`] (spurious calls are harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.admission.forget_settled(now);
        while let Some(Reverse((at, conn))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(c) = self.conns.get_mut(&conn) else {
                continue;
            };
            if c.scheduled != Some(at) {
                continue; // stale entry
            }
            c.scheduled = None;
            c.session.handle_timeout(now);
            self.settle(now, conn);
        }
    }

    // ----- outputs -------------------------------------------------------------------------

    /// A connection with bytes to write, if any.
    pub fn poll_dirty(&mut self) -> Option<ConnId> {
        while let Some(conn) = self.dirty.pop_front() {
            if let Some(c) = self.conns.get_mut(&conn) {
                c.dirty = false;
                if c.session.pending_output() > 0 {
                    return Some(conn);
                }
            }
        }
        None
    }

    /// Bytes `conn`'s session holds for [`Broker::poll_transmit`].
    pub fn pending_output(&self, conn: ConnId) -> usize {
        self.conns
            .get(&conn)
            .map_or(0, |c| c.session.pending_output())
    }

    /// Appends `conn`'s pending bytes to `buf`.
    pub fn poll_transmit(&mut self, conn: ConnId, buf: &mut Vec<u8>) -> usize {
        self.conns
            .get_mut(&conn)
            .map_or(0, |c| c.session.poll_transmit(buf))
    }

    /// A connection to close, with the last bytes to write before closing it.
    pub fn poll_closed(&mut self) -> Option<(ConnId, Vec<u8>)> {
        self.closed.pop_front()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<BrokerEvent> {
        self.events.pop_front()
    }

    /// The earliest deadline of any session.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let session = self.timers.peek().map(|Reverse((at, _))| *at);
        // Admission forgets sources as they settle, so that idle devices cost it nothing.
        match (session, self.admission.next_settled()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ----- application commands ------------------------------------------------------------

    /// Accepts the CONNECT of `conn` as `device`. A previous connection of the same device gets
    /// `DISCONNECT {reason "replaced"}` and is closed (spec §6.1).
    pub fn accept(&mut self, now: Instant, conn: ConnId, device: &str) -> Result<(), CommandError> {
        let c = self
            .conns
            .get_mut(&conn)
            .ok_or(CommandError::NothingPending)?;
        c.session.accept(now)?;
        c.device = Some(Text::from(device));
        self.unauthenticated.remove(&conn);
        let dialect = c.session.dialect();
        let entry = self.devices.entry(Text::from(device)).or_default();
        let online = Online {
            conn,
            since: now,
            dialect,
        };
        let previous = entry.online.replace(online).map(|o| o.conn);
        if let Some(old) = previous.filter(|&old| old != conn)
            && let Some(o) = self.conns.get_mut(&old)
        {
            // The old connection no longer speaks for the device.
            o.device = None;
            let _ = o.session.disconnect(now, Some(Value::from("replaced")));
            self.fail_requests(old);
            self.settle(now, old);
        }
        if let (Some(entry), Some(c)) = (self.devices.get_mut(device), self.conns.get_mut(&conn)) {
            if let Some(sinks) = &mut entry.sinks {
                sinks.waiting.clear();
                sinks.streams.connected(now, &mut c.session);
            }
            if let Some(dialect) = dialect {
                self.events.push_back(BrokerEvent::DeviceOnline {
                    device: Text::from(device),
                    conn,
                    dialect,
                });
            }
        }
        self.settle(now, conn);
        Ok(())
    }

    /// Refuses the CONNECT of `conn` ("bad credentials"); the connection closes.
    pub fn reject(&mut self, now: Instant, conn: ConnId) -> Result<(), CommandError> {
        let c = self
            .conns
            .get_mut(&conn)
            .ok_or(CommandError::NothingPending)?;
        c.session.reject(now)?;
        self.settle(now, conn);
        Ok(())
    }

    fn online_conn(&self, device: &str) -> Result<ConnId, RequestFailure> {
        self.devices
            .get(device)
            .and_then(Device::conn)
            .ok_or(RequestFailure::Offline)
    }

    fn request(
        &mut self,
        now: Instant,
        device: &str,
        send: impl FnOnce(&mut ServerSession) -> Result<u16, CommandError>,
    ) -> Result<RequestId, RequestFailure> {
        let conn = self.online_conn(device)?;
        let c = self.conns.get_mut(&conn).ok_or(RequestFailure::Offline)?;
        let id = send(&mut c.session)?;
        let request = RequestId(self.next_request);
        self.next_request += 1;
        self.requests.push((conn, id, request));
        self.settle(now, conn);
        Ok(request)
    }

    /// RUNs `resource` on `device`; the answer comes as [`BrokerEvent::Answer`].
    pub fn run(
        &mut self,
        now: Instant,
        device: &str,
        resource: &str,
        input: Option<Value>,
    ) -> Result<RequestId, RequestFailure> {
        self.request(now, device, |s| s.run(now, resource, input))
    }

    /// DESCRIBEs `device` (one resource, or all).
    pub fn describe(
        &mut self,
        now: Instant,
        device: &str,
        resource: Option<&str>,
    ) -> Result<RequestId, RequestFailure> {
        self.request(now, device, |s| s.describe(now, resource.map(Value::from)))
    }

    /// Registers `sink` for `resource` of `device` with `interval_s` (0 = events). Values come as
    /// [`BrokerEvent::Delivery`]; a cached value may come at once.
    pub fn subscribe(
        &mut self,
        now: Instant,
        device: &str,
        resource: &str,
        sink: SinkId,
        interval_s: u32,
    ) -> Subscription {
        let entry = self.devices.entry(Text::from(device)).or_default();
        let conn = entry.conn();
        let session = conn
            .and_then(|c| self.conns.get_mut(&c))
            .map(|c| &mut c.session);
        let sinks = entry.sinks.get_or_insert_with(Box::default);
        let joined = sinks.streams.join(now, session, resource, sink, interval_s);
        for d in joined.deliveries {
            self.events.push_back(BrokerEvent::Delivery {
                device: Text::from(device),
                resource: Text::from(resource),
                sink: d.sink,
                value: d.value,
            });
        }
        let pending = !joined.opened.is_empty();
        for id in joined.opened {
            sinks.waiting.push((id, Text::from(resource), sink));
        }
        if let Some(conn) = conn {
            self.settle(now, conn);
        }
        if pending {
            Subscription::Pending
        } else {
            Subscription::Ready
        }
    }

    /// Removes `sink` from `resource` of `device`.
    pub fn unsubscribe(&mut self, now: Instant, device: &str, resource: &str, sink: SinkId) {
        let Some(entry) = self.devices.get_mut(device) else {
            return;
        };
        let conn = entry.conn();
        let Some(sinks) = &mut entry.sinks else {
            return;
        };
        sinks
            .waiting
            .retain(|(_, r, s)| !(r == resource && *s == sink));
        let session = conn
            .and_then(|c| self.conns.get_mut(&c))
            .map(|c| &mut c.session);
        sinks.streams.leave(now, session, resource, sink);
        if sinks.streams.is_empty() && sinks.waiting.is_empty() {
            entry.sinks = None;
        }
        if let Some(conn) = conn {
            self.settle(now, conn);
        }
    }

    /// Closes a connection at once, without DISCONNECT (e.g. the driver is shutting down).
    pub fn close(&mut self, now: Instant, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.session.close_now(now);
            self.settle(now, conn);
        }
    }

    /// Sends DISCONNECT to every device and closes every connection (graceful shutdown).
    pub fn shutdown(&mut self, now: Instant) {
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in conns {
            if let Some(c) = self.conns.get_mut(&conn) {
                let _ = c.session.disconnect(now, Some(Value::from("shutdown")));
                self.settle(now, conn);
            }
        }
    }

    // ----- internals -----------------------------------------------------------------------

    fn fail_requests(&mut self, conn: ConnId) {
        let mut failed = Vec::new();
        self.requests.retain(|&(c, _, request)| {
            if c == conn {
                failed.push(request);
                false
            } else {
                true
            }
        });
        for request in failed {
            self.events.push_back(BrokerEvent::Answer {
                request,
                result: Err(RequestFailure::ConnectionLost),
            });
        }
    }

    fn take_request(&mut self, conn: ConnId, id: u16) -> Option<RequestId> {
        let index = self
            .requests
            .iter()
            .position(|&(c, i, _)| c == conn && i == id)?;
        Some(self.requests.swap_remove(index).2)
    }

    /// After anything happened on `conn`: route its events, schedule its deadline, note output.
    fn settle(&mut self, now: Instant, conn: ConnId) {
        let mut closed = None;
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            let Some(event) = c.session.poll_event() else {
                break;
            };
            let device = c.device.clone();
            match event {
                ServerEvent::Authenticate(request) => self
                    .events
                    .push_back(BrokerEvent::Authenticate { conn, request }),
                ServerEvent::Answered { id, answer } => {
                    if let Some(request) = self.take_request(conn, id) {
                        self.events.push_back(BrokerEvent::Answer {
                            request,
                            result: Ok(answer),
                        });
                    }
                }
                ServerEvent::RequestTimedOut { id } => {
                    if let Some(request) = self.take_request(conn, id) {
                        self.events.push_back(BrokerEvent::Answer {
                            request,
                            result: Err(RequestFailure::Timeout),
                        });
                    }
                }
                ServerEvent::Closed(reason) => closed = Some(reason),
                other => self.route_stream_event(now, device.as_deref(), &other),
            }
        }
        if let Some(reason) = closed {
            self.on_closed(now, conn, reason);
            return;
        }
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if let Some((at, _)) = c.session.poll_timeout()
            && c.scheduled.is_none_or(|s| at < s)
        {
            c.scheduled = Some(at);
            self.timers.push(Reverse((at, conn)));
        }
        if c.session.pending_output() > 0 && !c.dirty {
            c.dirty = true;
            self.dirty.push_back(conn);
        }
    }

    fn route_stream_event(&mut self, now: Instant, device: Option<&str>, event: &ServerEvent) {
        let Some(name) = device else { return };
        // One search of the device map per event; the deliveries' buffer is the broker's, so
        // that a value costs no allocation of its own here.
        let Broker {
            devices,
            events,
            delivered,
            ..
        } = self;
        let Some(entry) = devices.get_mut(name).and_then(|d| d.sinks.as_mut()) else {
            return;
        };
        if let ServerEvent::StreamOpened { id, .. } | ServerEvent::StreamClosed { id, .. } = event {
            let result = match event {
                ServerEvent::StreamClosed { why, .. } => Err(why.clone()),
                _ => Ok(()),
            };
            let (done, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut entry.waiting)
                .into_iter()
                .partition(|(i, ..)| i == id);
            entry.waiting = rest;
            for (_, resource, sink) in done {
                events.push_back(BrokerEvent::Subscribed {
                    device: Text::from(name),
                    resource,
                    sink,
                    result: result.clone(),
                });
            }
        }
        entry.streams.handle_event(now, event, delivered);
        for (resource, d) in delivered.drain(..) {
            events.push_back(BrokerEvent::Delivery {
                device: Text::from(name),
                resource,
                sink: d.sink,
                value: d.value,
            });
        }
    }

    fn on_closed(&mut self, now: Instant, conn: ConnId, reason: CloseReason) {
        let Some(mut c) = self.conns.remove(&conn) else {
            return;
        };
        if let Some(peer) = self.unauthenticated.remove(&conn)
            && failed_to_authenticate(&reason)
            && let Some(ban) = self.admission.record_failure(now, peer)
        {
            self.events.push_back(BrokerEvent::Banned {
                source: ban.source,
                duration: ban.until.saturating_since(now),
            });
        }
        let mut rest = Vec::new();
        c.session.poll_transmit(&mut rest);
        self.closed.push_back((conn, rest));
        #[cfg(feature = "serde")]
        if self.record {
            self.traces.push_back((conn, c.session.take_trace()));
        }
        self.fail_requests(conn);
        match c.device {
            Some(device) => {
                if let Some(entry) = self.devices.get_mut(&device)
                    && entry.conn() == Some(conn)
                {
                    entry.online = None;
                    let waiting = match &mut entry.sinks {
                        Some(sinks) => {
                            sinks.streams.disconnected();
                            std::mem::take(&mut sinks.waiting)
                        }
                        None => Vec::new(),
                    };
                    for (_, resource, sink) in waiting {
                        self.events.push_back(BrokerEvent::Subscribed {
                            device: device.clone(),
                            resource,
                            sink,
                            result: Err(StreamEnd::ConnectionEnded),
                        });
                    }
                }
                self.events
                    .push_back(BrokerEvent::DeviceOffline { device, reason });
            }
            None => self
                .events
                .push_back(BrokerEvent::ConnectionClosed { conn, reason }),
        }
    }
}

/// A connection that ended this way before it was accepted was an attempt to authenticate that
/// failed: refused credentials, a malformed or missing CONNECT, or garbage instead of frames.
/// A transport closed before any CONNECT is not (port probes and health checks do that), nor
/// is the server's own doing.
fn failed_to_authenticate(reason: &CloseReason) -> bool {
    matches!(
        reason,
        CloseReason::Refused { .. }
            | CloseReason::NotConnect
            | CloseReason::AuthDeadline
            | CloseReason::Framing(_)
            | CloseReason::Overload
    )
}

#[cfg(test)]
mod tests {
    /// Every idle device keeps one boxed `Conn`: at 200 bytes or less, glibc serves it from
    /// 208-byte chunks (it was 216 bytes in 224-byte chunks with the source address inline).
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_connection_entry_stays_compact() {
        let size = size_of::<super::Conn>();
        assert!(size <= 200, "{size}");
    }
}
