//! The server side of one device connection (spec §6).
//!
//! A [`ServerSession`] is created when the transport is accepted. It detects the dialect from
//! the first frame, validates the CONNECT, hands the authentication decision to the application
//! ([`ServerEvent::Authenticate`], answered by [`ServerSession::accept`] or
//! [`ServerSession::reject`]), echoes keep-alives, expires silent connections, answers the
//! device's own requests as spec §6.5.3 says, and lets the application RUN, DESCRIBE and stream
//! the device's resources.
//!
//! # Contract
//!
//! The same as [`Client`](crate::client::Client): inputs are `handle_input(now, bytes)`,
//! `handle_timeout(now)` and `handle_eof(now)`; commands are verbs; outputs are drained with
//! `poll_transmit`, `poll_event` and `poll_timeout`, in that order, after every input or command.
//! When [`ServerEvent::Closed`] comes out, write what `poll_transmit` still holds (an ERROR to a
//! refused CONNECT, say), then close the transport. After that every call is a no-op.

use core::time::Duration;
use std::collections::VecDeque;
use std::sync::Arc;

use base64::Engine as _;

use crate::dialect::Dialect;
use crate::frame::Deframer;
use crate::message::{AuthType, Message, MessageType, StreamKind};
use crate::outcome::Outcome;
use crate::pson::Flavour;
use crate::session::outbox::Outbox;
use crate::session::recording::Recording;
use crate::session::requests::{OwnTable, Resolution, StreamEnd};
use crate::session::{
    Answer, CloseReason, CommandError, DEFAULT_KEEP_ALIVE_SECS, DEFAULT_MAX_REQUESTS,
    DEFAULT_MAX_STREAMS, DEFAULT_REQUEST_TIMEOUT, Timer,
};
use crate::session::{record_command, record_input};
use crate::time::Instant;
use crate::value::{Map, Value};

/// CONNECT refusal codes (spec §6.10).
pub mod connect_code {
    /// The credentials (or certificate) were not accepted.
    pub const BAD_CREDENTIALS: u32 = 2;
    /// The requested keep-alive is outside the accepted range.
    pub const INVALID_KEEP_ALIVE: u32 = 3;
    /// The PSON version does not match the encoding the client used.
    pub const ENCODING_NOT_SUPPORTED: u32 = 4;
}

/// Server limits and timers (spec §7.1 defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Time from accepting the transport to a decided CONNECT.
    pub auth_deadline: Duration,
    /// Smallest accepted keep-alive, seconds.
    pub keep_alive_min: u32,
    /// Largest accepted keep-alive, seconds.
    pub keep_alive_max: u32,
    /// A connection expires after keep-alive × this factor, in thousandths (1150 = 1.15).
    pub keep_alive_factor_permille: u32,
    /// How long this side waits for answers to its requests.
    pub request_timeout: Duration,
    /// First stream id this side allocates (a random start is recommended; the core has none).
    pub first_stream_id: u16,
    /// Largest frame body accepted.
    pub max_body: u32,
    /// Outstanding requests of this side.
    pub max_requests: usize,
    /// Streams this side may have open on the device.
    pub max_streams: usize,
    /// Bytes queued for the device at most. Requests of the application are refused
    /// ([`CommandError::OutputFull`]) once half of it is queued; a queue that still grows beyond
    /// it (the device keeps sending but does not read) closes the connection
    /// ([`CloseReason::SlowConsumer`]).
    pub max_outgoing: usize,
}

/// [`ServerConfig::max_outgoing`] by default: four maximal frames.
pub const DEFAULT_MAX_OUTGOING: usize = 4 * crate::frame::DEFAULT_MAX_BODY as usize;

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            auth_deadline: Duration::from_secs(10),
            keep_alive_min: 5,
            keep_alive_max: 1800,
            keep_alive_factor_permille: 1150,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            first_stream_id: 1,
            max_body: crate::frame::DEFAULT_MAX_BODY,
            max_requests: DEFAULT_MAX_REQUESTS,
            max_streams: DEFAULT_MAX_STREAMS,
            max_outgoing: DEFAULT_MAX_OUTGOING,
        }
    }
}

/// What the driver knows about the transport (spec §6.2, §9).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransportInfo {
    /// TLS terminated by this server.
    pub tls: bool,
    /// The client certificate (DER) the TLS handshake requested and verified, if any.
    pub verified_client_certificate: Option<Vec<u8>>,
}

/// What a device presented to authenticate. `Debug` hides the credential, so that logs and
/// traces of events do not leak it.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// `[username, device_id, credential]` (compare the credential in constant time).
    Password {
        /// The owner's user name.
        user: String,
        /// The device id.
        device: String,
        /// The device credential.
        credential: String,
    },
    /// A certificate that is byte-for-byte the verified TLS client certificate: look up the
    /// device by the SHA-256 fingerprint of `der`.
    Certificate {
        /// The certificate, DER.
        der: Vec<u8>,
    },
}

impl core::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Credentials::Password { user, device, .. } => f
                .debug_struct("Password")
                .field("user", user)
                .field("device", device)
                .field("credential", &"<redacted>")
                .finish(),
            Credentials::Certificate { der } => f
                .debug_struct("Certificate")
                .field("der_len", &der.len())
                .finish(),
        }
    }
}

/// A CONNECT waiting for the application's decision.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthRequest {
    /// The dialect detected from the first frame.
    pub dialect: Dialect,
    /// The value flavour of the connection (2026; Protoson for 2020).
    pub flavour: Flavour,
    /// The keep-alive the device asked for (checked against the accepted range).
    pub keep_alive: u32,
    /// What to check.
    pub credentials: Credentials,
    /// 2026 informational params (`ct`, `fw`, …), if any.
    pub params: Option<Value>,
}

/// Something the application learns from a server session.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// A valid CONNECT arrived; call [`ServerSession::accept`] or [`ServerSession::reject`].
    Authenticate(AuthRequest),
    /// The answer to a RUN or DESCRIBE this side sent.
    Answered {
        /// The request's stream id.
        id: u16,
        /// OK or ERROR.
        answer: Answer,
    },
    /// A RUN or DESCRIBE of this side got no answer in time.
    RequestTimedOut {
        /// The request's stream id.
        id: u16,
    },
    /// The device accepted a START_STREAM (new or reconfigured).
    StreamOpened {
        /// The stream.
        id: u16,
        /// Its interval.
        interval_ms: u64,
    },
    /// A value arrived on one of this side's streams.
    StreamData {
        /// The stream.
        id: u16,
        /// The value (absent if the device sent a STREAM_DATA without payload).
        value: Option<Value>,
        /// 2020 only: STREAM_SAMPLE or STREAM_EVENT.
        kind: Option<StreamKind>,
    },
    /// One of this side's streams ended.
    StreamClosed {
        /// The stream.
        id: u16,
        /// Why.
        why: StreamEnd,
    },
    /// The session is over; see [`ServerSession`] for what to do.
    Closed(CloseReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitConnect,
    Authenticating { connect_id: u16 },
    Established,
    Closed,
}

/// The server side of one connection. See the [module docs](self) for the contract.
///
/// A server holds many of these at once, most of them idle, so an established session keeps
/// only what an idle connection needs inline (a few hundred bytes, no heap buffer): the config
/// is shared, what only the CONNECT needs lives in [`Opening`] until it is decided, the
/// request table is allocated by the first request, and the event and output queues give their
/// memory back once nothing of this side is outstanding.
#[derive(Debug)]
pub struct ServerSession {
    config: Arc<ServerConfig>,
    phase: Phase,
    keep_alive: u32,
    /// A DISCONNECT of ours awaits its OK.
    disconnecting: Option<u16>,
    /// Until the CONNECT is decided: the transport accepted at `last_frame`, and its input held.
    opening: Option<Box<Opening>>,
    /// The transport's acceptance until established, then the last frame received.
    last_frame: Instant,
    deframer: Deframer,
    outbox: Outbox,
    events: VecDeque<ServerEvent>,
    /// Table (a), from this side's first request on.
    own: Option<Box<OwnTable>>,
    recording: Recording,
}

/// What a session needs only until its CONNECT is decided.
#[derive(Debug, Default)]
struct Opening {
    transport: TransportInfo,
    /// Bytes that arrived while the application decides on the CONNECT.
    held_input: Vec<u8>,
}

impl ServerSession {
    /// A session for a transport accepted at `now`.
    ///
    /// A server with many connections passes one `Arc<ServerConfig>` to all of them.
    pub fn new(
        config: impl Into<Arc<ServerConfig>>,
        transport: TransportInfo,
        now: Instant,
    ) -> Self {
        let config = config.into();
        ServerSession {
            deframer: Deframer::new(config.max_body),
            config,
            phase: Phase::AwaitConnect,
            keep_alive: DEFAULT_KEEP_ALIVE_SECS,
            disconnecting: None,
            opening: Some(Box::new(Opening {
                transport,
                held_input: Vec::new(),
            })),
            last_frame: now,
            outbox: Outbox::new(Dialect::Draft2026, Flavour::V2),
            events: VecDeque::new(),
            own: None,
            recording: Recording::new(now),
        }
    }

    /// Starts recording a replay trace ([`crate::trace`]). Call it right after
    /// [`ServerSession::new`], so that the trace holds every input.
    #[cfg(feature = "serde")]
    pub fn start_trace(&mut self) {
        let default = TransportInfo::default();
        let transport = self.opening.as_ref().map_or(&default, |o| &o.transport);
        let config = crate::trace::server_config_json(&self.config, transport);
        // Before the CONNECT is decided, `last_frame` is when the transport was accepted.
        let header = crate::trace::TraceWriter::header("server", &config, None, self.last_frame);
        self.recording.start(header);
    }

    /// Takes the trace text recorded since the last call (empty when not recording).
    #[cfg(feature = "serde")]
    pub fn take_trace(&mut self) -> String {
        self.recording.take()
    }

    // ----- getters -------------------------------------------------------------------------

    /// The dialect, once the first frame has been seen.
    pub fn dialect(&self) -> Option<Dialect> {
        (self.phase != Phase::AwaitConnect).then_some(self.outbox.dialect)
    }

    /// The value flavour used towards the device.
    pub fn flavour(&self) -> Flavour {
        self.outbox.flavour
    }

    /// The negotiated keep-alive, seconds.
    pub fn keep_alive(&self) -> u32 {
        self.keep_alive
    }

    /// True once the application accepted the CONNECT (and until the session closes).
    pub fn is_established(&self) -> bool {
        self.phase == Phase::Established
    }

    /// True once [`ServerEvent::Closed`] has been queued.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Bytes waiting for `poll_transmit`.
    pub fn pending_output(&self) -> usize {
        self.outbox.len()
    }

    /// Updates what is known about the transport, e.g. once a TLS handshake finished and the
    /// client certificate is verified. Only before the first frame; ignored afterwards.
    pub fn set_transport(&mut self, transport: TransportInfo) {
        if self.phase == Phase::AwaitConnect
            && self.deframer.stream_offset() == 0
            && let Some(opening) = &mut self.opening
        {
            opening.transport = transport;
        }
    }

    // ----- inputs --------------------------------------------------------------------------

    /// Bytes arrived from the transport.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        record_input!(self, input(now, bytes));
        self.recording.now = now;
        match self.phase {
            Phase::Closed => {}
            Phase::Authenticating { .. } => self.hold(bytes),
            _ => self.process(now, bytes),
        }
    }

    /// The clock reached a deadline given by `poll_timeout` (spurious calls are harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        record_input!(self, timeout(now));
        self.recording.now = now;
        match self.phase {
            Phase::Closed => {}
            Phase::AwaitConnect | Phase::Authenticating { .. } => {
                if now >= self.last_frame + self.config.auth_deadline {
                    self.outbox.clear();
                    self.close(CloseReason::AuthDeadline);
                }
            }
            Phase::Established => {
                if now >= self.expiry() {
                    self.close(CloseReason::KeepAliveExpired);
                    return;
                }
                let mut resolved = Vec::new();
                if let Some(own) = &mut self.own {
                    own.expire(now, &mut resolved);
                }
                for resolution in resolved {
                    self.resolve(resolution);
                }
            }
        }
    }

    /// The transport ended.
    pub fn handle_eof(&mut self, now: Instant) {
        record_input!(self, eof(now));
        self.recording.now = now;
        if self.phase == Phase::Closed {
            return;
        }
        let reason = match self.deframer.finish() {
            Err(e) => CloseReason::Framing(e),
            Ok(()) if self.disconnecting.is_some() => CloseReason::LocalDisconnect,
            Ok(()) => CloseReason::TransportClosed,
        };
        self.close(reason);
    }

    // ----- commands ------------------------------------------------------------------------

    /// Accepts the pending CONNECT: OK goes out, keep-alive supervision starts, and input that
    /// arrived meanwhile is processed.
    pub fn accept(&mut self, now: Instant) -> Result<(), CommandError> {
        record_command!(self, now, crate::trace::ServerCommand::Accept);
        self.recording.now = now;
        let Phase::Authenticating { connect_id } = self.phase else {
            return Err(self.not_pending());
        };
        self.outbox.send(&Message::ok(connect_id))?;
        self.phase = Phase::Established;
        self.last_frame = now;
        let held = self
            .opening
            .take()
            .map(|o| o.held_input)
            .unwrap_or_default();
        if !held.is_empty() {
            self.process(now, &held);
        }
        Ok(())
    }

    /// Refuses the pending CONNECT with "bad credentials" and closes.
    pub fn reject(&mut self, now: Instant) -> Result<(), CommandError> {
        record_command!(self, now, crate::trace::ServerCommand::Reject);
        self.recording.now = now;
        let Phase::Authenticating { connect_id } = self.phase else {
            return Err(self.not_pending());
        };
        self.refuse(connect_id, connect_code::BAD_CREDENTIALS);
        Ok(())
    }

    /// RUNs `resource` on the device with an optional input; the answer comes as
    /// [`ServerEvent::Answered`] (or [`ServerEvent::RequestTimedOut`]).
    pub fn run(
        &mut self,
        now: Instant,
        resource: impl Into<Value>,
        input: Option<Value>,
    ) -> Result<u16, CommandError> {
        let resource = resource.into();
        record_command!(
            self,
            now,
            crate::trace::ServerCommand::Run {
                resource: resource.clone(),
                input: input.clone()
            }
        );
        self.recording.now = now;
        let mut m = Message::new(MessageType::Run).with_resource(resource);
        m.payload = input;
        self.request(now, m)
    }

    /// DESCRIBEs one resource, or all of them.
    pub fn describe(&mut self, now: Instant, resource: Option<Value>) -> Result<u16, CommandError> {
        record_command!(
            self,
            now,
            crate::trace::ServerCommand::Describe {
                resource: resource.clone()
            }
        );
        self.recording.now = now;
        let mut m = Message::new(MessageType::Describe);
        m.resource = resource;
        self.copy_resource_for_v1(&mut m);
        self.request(now, m)
    }

    /// Opens a stream of `resource` with `interval_ms` (0 = events); returns its id.
    pub fn start_stream(
        &mut self,
        now: Instant,
        resource: impl Into<Value>,
        interval_ms: u64,
    ) -> Result<u16, CommandError> {
        let resource = resource.into();
        record_command!(
            self,
            now,
            crate::trace::ServerCommand::StartStream {
                resource: resource.clone(),
                interval_ms
            }
        );
        self.recording.now = now;
        self.check_established()?;
        self.check_output_room()?;
        let own = self.own_table();
        own.check_capacity(true)?;
        let id = own.allocate(|_| false)?;
        let mut m = Message::new(MessageType::StartStream)
            .with_stream_id(id)
            .with_resource(resource);
        m.interval_ms = (interval_ms > 0).then_some(interval_ms);
        self.copy_resource_for_v1(&mut m);
        self.outbox.send(&m)?;
        self.own_table().insert_stream(now, id, interval_ms);
        Ok(id)
    }

    /// Changes the interval of an open stream (0 = events, sent explicitly).
    pub fn reconfigure_stream(
        &mut self,
        now: Instant,
        id: u16,
        interval_ms: u64,
    ) -> Result<(), CommandError> {
        record_command!(
            self,
            now,
            crate::trace::ServerCommand::ReconfigureStream { id, interval_ms }
        );
        self.recording.now = now;
        self.check_established()?;
        if !self.is_live_stream(id) {
            return Err(CommandError::UnknownStream(id));
        }
        self.check_output_room()?;
        let mut m = Message::new(MessageType::StartStream).with_stream_id(id);
        m.interval_ms = Some(interval_ms);
        self.outbox.send(&m)?;
        self.own_table().reconfigure(now, id, interval_ms)
    }

    /// Stops a stream; [`ServerEvent::StreamClosed`] follows the device's answer.
    pub fn stop_stream(&mut self, now: Instant, id: u16) -> Result<(), CommandError> {
        record_command!(self, now, crate::trace::ServerCommand::StopStream { id });
        self.recording.now = now;
        self.check_established()?;
        if !self.is_live_stream(id) {
            return Err(CommandError::UnknownStream(id));
        }
        self.outbox
            .send(&Message::new(MessageType::StopStream).with_stream_id(id))?;
        self.own_table().stop(now, id)
    }

    /// Sends DISCONNECT with `reason` and closes (spec §6.11; "replaced" when a newer connection
    /// of the same device wins, spec §6.1).
    pub fn disconnect(&mut self, now: Instant, reason: Option<Value>) -> Result<(), CommandError> {
        record_command!(
            self,
            now,
            crate::trace::ServerCommand::Disconnect {
                reason: reason.clone()
            }
        );
        self.recording.now = now;
        if self.phase == Phase::Closed {
            return Err(CommandError::Closed);
        }
        if self.phase == Phase::Established {
            let mut m = Message::new(MessageType::Disconnect);
            m.reason = reason;
            self.outbox.send(&m)?;
        }
        self.close(CloseReason::LocalDisconnect);
        Ok(())
    }

    /// Sends `message` as is, bypassing the request tables: no id is allocated, no answer is
    /// awaited. For tests, replays and tools that must put exact frames on the wire.
    pub fn send_unchecked(&mut self, message: &Message) -> Result<(), CommandError> {
        record_command!(
            self,
            self.recording.now,
            crate::trace::ServerCommand::SendUnchecked(message.clone())
        );
        self.check_established()?;
        self.outbox.send(message)?;
        Ok(())
    }

    /// Closes without a DISCONNECT.
    pub fn close_now(&mut self, now: Instant) {
        record_command!(self, now, crate::trace::ServerCommand::CloseNow);
        self.recording.now = now;
        if self.phase != Phase::Closed {
            self.close(CloseReason::LocalClose);
        }
    }

    // ----- outputs -------------------------------------------------------------------------

    /// Appends every byte waiting to be sent to `buf`; returns how many.
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> usize {
        let start = buf.len();
        let n = self.outbox.drain_into(buf);
        if self.owes_nothing() {
            self.outbox.release();
        }
        self.recording.output(buf, start);
        n
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        let event = self.events.pop_front();
        if event.is_none() && self.events.capacity() > 0 && self.owes_nothing() {
            self.events = VecDeque::new();
        }
        self.recording
            .event(event.as_ref().map(|e| e as &dyn core::fmt::Debug));
        event
    }

    /// When to call `handle_timeout` next, and why.
    pub fn poll_timeout(&self) -> Option<(Instant, Timer)> {
        match self.phase {
            Phase::Closed => None,
            Phase::AwaitConnect | Phase::Authenticating { .. } => Some((
                self.last_frame + self.config.auth_deadline,
                Timer::AuthDeadline,
            )),
            Phase::Established => {
                let expiry = (self.expiry(), Timer::KeepAliveExpiry);
                match self.own.as_ref().and_then(|own| own.next_deadline()) {
                    Some(d) if d < expiry.0 => Some((d, Timer::RequestTimeout)),
                    _ => Some(expiry),
                }
            }
        }
    }

    // ----- internals -----------------------------------------------------------------------

    /// Table (a), allocated on first use.
    fn own_table(&mut self) -> &mut OwnTable {
        let config = &self.config;
        self.own.get_or_insert_with(|| {
            Box::new(OwnTable::new(
                config.first_stream_id,
                config.request_timeout,
                config.max_requests,
                config.max_streams,
            ))
        })
    }

    fn is_live_stream(&self, id: u16) -> bool {
        self.own.as_ref().is_some_and(|own| own.is_live_stream(id))
    }

    /// No request or stream of this side is outstanding: the only steady sources of events
    /// and output are quiet, so idle queues may give their memory back.
    fn owes_nothing(&self) -> bool {
        self.own.as_ref().is_none_or(|own| own.is_empty())
    }

    fn not_pending(&self) -> CommandError {
        if self.phase == Phase::Closed {
            CommandError::Closed
        } else {
            CommandError::NothingPending
        }
    }

    /// Requests of the application wait for the device to read half of the queue first, so
    /// that answers to the device's own frames always have room.
    fn check_output_room(&self) -> Result<(), CommandError> {
        if self.outbox.len() >= self.config.max_outgoing / 2 {
            return Err(CommandError::OutputFull);
        }
        Ok(())
    }

    /// The device keeps sending without reading what it is sent: nothing more can help it.
    fn enforce_output_limit(&mut self) {
        if self.phase != Phase::Closed && self.outbox.len() > self.config.max_outgoing {
            self.outbox.clear();
            self.close(CloseReason::SlowConsumer);
        }
    }

    fn check_established(&self) -> Result<(), CommandError> {
        match self.phase {
            Phase::Established => Ok(()),
            Phase::Closed => Err(CommandError::Closed),
            _ => Err(CommandError::NotEstablished),
        }
    }

    fn request(&mut self, now: Instant, mut m: Message) -> Result<u16, CommandError> {
        self.check_established()?;
        self.check_output_room()?;
        let own = self.own_table();
        own.check_capacity(false)?;
        let id = own.allocate(|_| false)?;
        m.stream_id = Some(id);
        self.outbox.send(&m)?;
        self.own_table().insert_request(now, id, m.kind);
        Ok(id)
    }

    /// Legacy (Protoson) clients read a START_STREAM / DESCRIBE resource from field 3 (§4.6).
    fn copy_resource_for_v1(&self, m: &mut Message) {
        if self.outbox.dialect == Dialect::Draft2026
            && self.outbox.flavour == Flavour::V1
            && m.payload.is_none()
        {
            m.payload = m.resource.clone();
        }
    }

    fn expiry(&self) -> Instant {
        let ka_us =
            u64::from(self.keep_alive) * u64::from(self.config.keep_alive_factor_permille) * 1000;
        self.last_frame + Duration::from_micros(ka_us)
    }

    fn hold(&mut self, bytes: &[u8]) {
        // A client must wait for OK before sending more (§6.1); hold at most one frame's worth.
        let limit = self.config.max_body as usize + 16;
        let opening = self.opening.get_or_insert_with(Box::default);
        if opening.held_input.len() + bytes.len() > limit {
            self.outbox.clear();
            self.close(CloseReason::Overload);
            return;
        }
        opening.held_input.extend_from_slice(bytes);
    }

    fn close(&mut self, reason: CloseReason) {
        if self.phase == Phase::Closed {
            return;
        }
        self.phase = Phase::Closed;
        let own = self.own.as_mut().map(|own| own.clear()).unwrap_or_default();
        for entry in own {
            if let crate::session::requests::OwnKind::Stream { .. } = entry.kind {
                self.events.push_back(ServerEvent::StreamClosed {
                    id: entry.id,
                    why: StreamEnd::ConnectionEnded,
                });
            }
        }
        self.opening = None;
        self.events.push_back(ServerEvent::Closed(reason));
    }

    fn refuse(&mut self, connect_id: u16, code: u32) {
        let text = match (self.outbox.dialect, code) {
            // 2026 servers refuse with the code only (spec §6.10).
            (Dialect::Draft2026, _) => None,
            (_, connect_code::BAD_CREDENTIALS) => Some("bad credentials"),
            (_, connect_code::INVALID_KEEP_ALIVE) => Some("invalid keep alive"),
            (_, _) => Some("encoding not supported"),
        };
        let m = self
            .outbox
            .dialect
            .error_message(connect_id, Some(code), text);
        // An error message of our own always encodes; if it ever did not, closing is still right.
        let _ = self.outbox.send(&m);
        self.close(CloseReason::Refused { code });
    }

    fn process(&mut self, now: Instant, bytes: &[u8]) {
        // The deframer lends frames out of its own buffer; moving it out for the loop lets the
        // handlers borrow the session mutably without copying each body.
        let mut deframer = core::mem::replace(&mut self.deframer, Deframer::new(0));
        let mut input = bytes;
        loop {
            if matches!(self.phase, Phase::Closed) {
                break;
            }
            if let Phase::Authenticating { .. } = self.phase {
                self.hold(input);
                break;
            }
            let frame = match deframer.next_frame(&mut input) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    self.close(CloseReason::Framing(e));
                    break;
                }
            };
            match self.phase {
                Phase::AwaitConnect => self.on_first_frame(frame.type_code, frame.body),
                Phase::Established => {
                    self.last_frame = now;
                    self.on_frame(frame.type_code, frame.body);
                    self.enforce_output_limit();
                }
                _ => {}
            }
        }
        self.deframer = deframer;
    }

    fn on_first_frame(&mut self, code: u32, body: &[u8]) {
        let Some(dialect) = Dialect::detect(code) else {
            self.close(CloseReason::NotConnect);
            return;
        };
        self.outbox.dialect = dialect;
        let (connect, payload_flavour) = match dialect.decode_detailed(code, body) {
            Ok((m, f)) if m.kind == MessageType::Connect => (m, f),
            _ => {
                self.close(CloseReason::NotConnect);
                return;
            }
        };
        // A stream id of 0 means "no stream id" (§6.4), and a CONNECT without one is closed
        // without an answer (§6.1 step 3): an ERROR could only carry the id 0.
        let Some(id) = connect.request_id() else {
            self.close(CloseReason::NotConnect);
            return;
        };
        if dialect == Dialect::Draft2026 {
            let flavour = payload_flavour.unwrap_or(Flavour::V2);
            self.outbox.flavour = flavour;
            let pv_ok = match connect.pson_version {
                None => true,
                Some(0) => flavour == Flavour::V1,
                Some(1) => flavour == Flavour::V2,
                Some(_) => false,
            };
            if !pv_ok {
                self.refuse(id, connect_code::ENCODING_NOT_SUPPORTED);
                return;
            }
        } else {
            self.outbox.flavour = Flavour::V1;
        }
        let keep_alive = connect.keep_alive.unwrap_or(DEFAULT_KEEP_ALIVE_SECS);
        if !(self.config.keep_alive_min..=self.config.keep_alive_max).contains(&keep_alive) {
            self.refuse(id, connect_code::INVALID_KEEP_ALIVE);
            return;
        }
        let credentials = match connect.auth_type.unwrap_or(AuthType::Credentials) {
            AuthType::Credentials => password(connect.payload.as_ref()),
            AuthType::Certificate => self.certificate(connect.payload.as_ref()),
            AuthType::Other(_) => None,
        };
        let Some(credentials) = credentials else {
            self.refuse(id, connect_code::BAD_CREDENTIALS);
            return;
        };
        self.keep_alive = keep_alive;
        self.phase = Phase::Authenticating { connect_id: id };
        self.events
            .push_back(ServerEvent::Authenticate(AuthRequest {
                dialect,
                flavour: self.outbox.flavour,
                keep_alive,
                credentials,
                params: connect.params,
            }));
    }

    /// Spec §6.2: only over TLS with a verified client certificate that is byte-for-byte the
    /// first certificate of the payload.
    fn certificate(&self, payload: Option<&Value>) -> Option<Credentials> {
        let transport = &self.opening.as_ref()?.transport;
        if !transport.tls {
            return None;
        }
        let verified = transport.verified_client_certificate.as_ref()?;
        let der = first_pem_certificate(payload?.as_str()?)?;
        (der == *verified).then_some(Credentials::Certificate { der })
    }

    fn on_frame(&mut self, code: u32, body: &[u8]) {
        let dialect = self.outbox.dialect;
        let m = match dialect.decode(code, body) {
            Ok(m) => m,
            Err(e) => {
                if let Outcome::DropAndError { stream_id } = e.outcome() {
                    let _ = self.outbox.send(&dialect.malformed_reply(stream_id));
                }
                return;
            }
        };
        let id = m.request_id();
        match m.kind {
            MessageType::KeepAlive => self.outbox.send_raw(dialect.keep_alive_frame()),
            MessageType::Connect => {
                if let Some(id) = id {
                    let _ = self.outbox.send(&dialect.error_message(
                        id,
                        Some(400),
                        Some("already connected"),
                    ));
                }
            }
            MessageType::Ok | MessageType::Error => {
                let answer = if m.kind == MessageType::Ok {
                    Answer::Ok {
                        params: m.params.clone(),
                        payload: m.payload.clone(),
                    }
                } else {
                    Answer::Error(dialect.error_info(&m))
                };
                if let Some(id) = id
                    && let Some(resolution) =
                        self.own.as_mut().and_then(|own| own.answer(id, answer))
                {
                    self.resolve(resolution);
                }
            }
            MessageType::StreamData => {
                if let Some(id) = id
                    && self.is_live_stream(id)
                {
                    self.events.push_back(ServerEvent::StreamData {
                        id,
                        value: m.payload,
                        kind: m.data_kind,
                    });
                }
            }
            MessageType::Run | MessageType::StartStream => {
                // This server implements no server actions, resources or device streams (§6.5.3).
                if let Some(id) = id {
                    let _ = self.outbox.send(&dialect.error_message(
                        id,
                        Some(501),
                        Some("unsupported action"),
                    ));
                }
            }
            MessageType::Describe => {
                if let Some(id) = id {
                    let _ = self.outbox.send(&Message::ok(id).with_payload(Map::new()));
                }
            }
            MessageType::StopStream => {
                if let Some(id) = id {
                    let _ = self.outbox.send(&dialect.error_message(
                        id,
                        Some(404),
                        Some("unknown stream"),
                    ));
                }
            }
            MessageType::Disconnect => {
                if let Some(id) = id {
                    let _ = self.outbox.send(&Message::ok(id));
                }
                self.close(CloseReason::PeerDisconnect { reason: m.reason });
            }
        }
    }

    fn resolve(&mut self, resolution: Resolution) {
        match resolution {
            Resolution::Answered { id, answer, .. } => {
                self.events.push_back(ServerEvent::Answered { id, answer })
            }
            Resolution::TimedOut { id, .. } => {
                self.events.push_back(ServerEvent::RequestTimedOut { id })
            }
            Resolution::StreamOpen { id, interval_ms } => {
                self.events
                    .push_back(ServerEvent::StreamOpened { id, interval_ms });
            }
            Resolution::StreamClosed { id, why, send_stop } => {
                if send_stop {
                    let _ = self
                        .outbox
                        .send(&Message::new(MessageType::StopStream).with_stream_id(id));
                }
                self.events.push_back(ServerEvent::StreamClosed { id, why });
            }
        }
    }
}

/// `[user, device, credential]`, three strings exactly (spec §6.2).
fn password(payload: Option<&Value>) -> Option<Credentials> {
    match payload?.as_array()? {
        [Value::Str(user), Value::Str(device), Value::Str(credential)] => {
            Some(Credentials::Password {
                user: user.to_string(),
                device: device.to_string(),
                credential: credential.to_string(),
            })
        }
        _ => None,
    }
}

/// The DER bytes of the first `CERTIFICATE` block of a PEM text.
pub fn first_pem_certificate(pem: &str) -> Option<Vec<u8>> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let start = pem.find(BEGIN)? + BEGIN.len();
    let rest = pem.get(start..)?;
    let body = rest.get(..rest.find(END)?)?;
    let compact: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .ok()
}
