//! The device side of a connection (spec §6).
//!
//! A [`Client`] is created when the transport to the server is open; it sends CONNECT at once,
//! keeps the link alive on a fixed schedule, answers the server's RUN, DESCRIBE, START_STREAM
//! and STOP_STREAM for the declared [`Resources`], runs the stream table, and lets the device
//! send requests of its own.
//!
//! The session never calls application code: when it needs something from the application it
//! says so with an event, and the application answers with a command. Every behaviour is thus a
//! function of the inputs and commands, which is what makes traces replayable.
//!
//! * [`ClientEvent::Run`]: a RUN of one of the resources. Answer with [`Client::respond`]
//!   (now or later: handlers may be asynchronous).
//! * [`ClientEvent::ValueNeeded`]: the current value of a resource is needed (a sample is due,
//!   a stream was just opened, a DESCRIBE asks for it, or [`Client::stream`] was called).
//!   Answer with [`Client::provide_value`]; the value then goes to every place that wants it.
//!
//! [`Device`](crate::device::Device) wraps a client with closures that answer both events on
//! the spot, for applications that do not need asynchronous handlers.

mod resources;
mod streams;

use core::time::Duration;
use std::collections::VecDeque;

pub use resources::{ResourceKind, Resources, resource_name};
pub use streams::StreamEntry;
use streams::{StartError, StreamTable};

use crate::dialect::Dialect;
use crate::frame::Deframer;
use crate::message::{AuthType, Message, MessageType};
use crate::outcome::Outcome;
use crate::pson::Flavour;
use crate::session::outbox::Outbox;
use crate::session::recording::Recording;
use crate::session::requests::{OwnTable, Resolution};
use crate::session::{
    Answer, CloseReason, CommandError, DEFAULT_KEEP_ALIVE_SECS, DEFAULT_MAX_REQUESTS,
    DEFAULT_MAX_STREAMS, DEFAULT_REQUEST_TIMEOUT, Timer,
};
use crate::session::{record_command, record_input};
use crate::time::Instant;
use crate::value::{Map, Text, Value};

/// How the device authenticates (spec §6.2). `Debug` hides the credential.
#[derive(Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// `[user, device, credential]`.
    Credentials {
        /// The owner's user name.
        user: String,
        /// The device id.
        device: String,
        /// The device credential.
        credential: String,
    },
    /// The client certificate in PEM (needs TLS with that certificate presented).
    Certificate {
        /// The PEM text.
        pem: String,
    },
}

impl core::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ClientAuth::Credentials { user, device, .. } => f
                .debug_struct("Credentials")
                .field("user", user)
                .field("device", device)
                .field("credential", &"<redacted>")
                .finish(),
            ClientAuth::Certificate { pem } => f
                .debug_struct("Certificate")
                .field("pem_len", &pem.len())
                .finish(),
        }
    }
}

/// Device session settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    /// The wire generation to speak.
    pub dialect: Dialect,
    /// How to authenticate.
    pub auth: ClientAuth,
    /// Keep-alive to request, seconds; `None` sends none and uses the default 60.
    pub keep_alive: Option<u32>,
    /// 2026 only: extra CONNECT params (`ct`, `fw`, …).
    pub connect_params: Option<Map>,
    /// 2026 only: the `pv` to announce (this client always sends PSON v2, so 1 if any).
    pub pson_version: Option<u32>,
    /// First stream id this side allocates; CONNECT takes it.
    pub first_stream_id: u16,
    /// How long to wait for answers (CONNECT included).
    pub request_timeout: Duration,
    /// Largest frame body accepted.
    pub max_body: u32,
    /// Outstanding requests of this side, and of the server being answered.
    pub max_requests: usize,
    /// Streams the server may open on this device.
    pub max_streams: usize,
}

impl ClientConfig {
    /// Credentials auth with every other setting at its default.
    pub fn new(dialect: Dialect, user: &str, device: &str, credential: &str) -> Self {
        ClientConfig {
            dialect,
            auth: ClientAuth::Credentials {
                user: user.into(),
                device: device.into(),
                credential: credential.into(),
            },
            keep_alive: None,
            connect_params: None,
            pson_version: None,
            first_stream_id: 1,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_body: crate::frame::DEFAULT_MAX_BODY,
            max_requests: DEFAULT_MAX_REQUESTS,
            max_streams: DEFAULT_MAX_STREAMS,
        }
    }

    /// Sets the keep-alive to request.
    pub fn with_keep_alive(mut self, seconds: u32) -> Self {
        self.keep_alive = Some(seconds);
        self
    }
}

/// Identifies a RUN waiting for [`Client::respond`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunId(pub u32);

/// A RUN of one of the device's resources.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRequest {
    /// Answer with this.
    pub id: RunId,
    /// The resource.
    pub resource: Text,
    /// Its kind.
    pub kind: ResourceKind,
    /// The input (fn 2 and 4 only).
    pub input: Option<Value>,
    /// 2026 options.
    pub params: Option<Value>,
    /// No answer will be sent (fire and forget).
    pub fire_and_forget: bool,
}

/// A handler's failure: becomes ERROR with `code` (default 500) and `message` (spec §6.5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerError {
    /// HTTP-like code.
    pub code: u32,
    /// Human-readable text.
    pub message: String,
}

impl HandlerError {
    /// A 500 with `message`.
    pub fn new(message: impl Into<String>) -> Self {
        HandlerError {
            code: 500,
            message: message.into(),
        }
    }
}

/// A successful RUN: the output (fn 3, 4) and an optional return code (2026 OK params).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunOutput {
    /// The output value.
    pub value: Option<Value>,
    /// A return code (2026 only; 2020 cannot carry it).
    pub code: Option<u32>,
}

impl RunOutput {
    /// Success with `value`.
    pub fn value(value: impl Into<Value>) -> Self {
        RunOutput {
            value: Some(value.into()),
            code: None,
        }
    }
}

/// Something the application learns from a client session.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The server accepted the CONNECT.
    Connected,
    /// A RUN to answer with [`Client::respond`].
    Run(RunRequest),
    /// The current value of `resource` is needed: answer with [`Client::provide_value`].
    ValueNeeded {
        /// The resource.
        resource: Text,
    },
    /// The server opened or reconfigured a stream.
    StreamStarted {
        /// The server's stream id.
        id: u16,
        /// The resource.
        resource: Text,
        /// Interval in ms, 0 = events.
        interval_ms: u64,
    },
    /// The server stopped a stream.
    StreamStopped {
        /// The stream id.
        id: u16,
    },
    /// The answer to one of this side's requests.
    Answered {
        /// The request.
        id: u16,
        /// OK or ERROR.
        answer: Answer,
    },
    /// One of this side's requests got no answer in time.
    RequestTimedOut {
        /// The request.
        id: u16,
    },
    /// The session is over; write what `poll_transmit` holds, then close the transport.
    Closed(CloseReason),
}

/// Server actions a device may request (spec §6.5.3, §11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerAction {
    /// Read a device property.
    ReadProperty,
    /// Set a device property.
    SetProperty,
    /// Call another device's resource.
    CallDevice,
    /// Call an endpoint.
    CallEndpoint,
    /// Write a record into a bucket.
    WriteBucket,
}

impl ServerAction {
    /// The action's code in `dialect` (2020 RUN field 4; 2026 params).
    pub const fn code(self, dialect: Dialect) -> u32 {
        match (dialect, self) {
            (Dialect::Draft2020, ServerAction::ReadProperty) => 12,
            (Dialect::Draft2020, ServerAction::SetProperty) => 13,
            (Dialect::Draft2020, ServerAction::CallDevice) => 10,
            (Dialect::Draft2020, ServerAction::CallEndpoint) => 9,
            (Dialect::Draft2020, ServerAction::WriteBucket) => 11,
            (Dialect::Draft2026, ServerAction::ReadProperty) => 1,
            (Dialect::Draft2026, ServerAction::SetProperty) => 2,
            (Dialect::Draft2026, ServerAction::CallDevice) => 3,
            (Dialect::Draft2026, ServerAction::CallEndpoint) => 4,
            (Dialect::Draft2026, ServerAction::WriteBucket) => 5,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connecting { connect_id: u16 },
    Connected,
    Closed,
}

#[derive(Debug, Clone)]
struct PendingRun {
    token: RunId,
    stream_id: Option<u16>,
    resource: Text,
    kind: ResourceKind,
    had_payload: bool,
}

#[derive(Debug, Clone)]
struct PendingDescribe {
    stream_id: u16,
    resource: Text,
    kind: ResourceKind,
}

/// The device side of one connection. See the [module docs](self) and the crate docs for the
/// contract and the run loop.
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    resources: Resources,
    phase: Phase,
    deframer: Deframer,
    outbox: Outbox,
    events: VecDeque<ClientEvent>,
    own: OwnTable,
    streams: StreamTable,
    runs: Vec<PendingRun>,
    describes: Vec<PendingDescribe>,
    next_run: u32,
    keep_alive: Duration,
    next_keep_alive: Option<Instant>,
    /// A keep-alive went out and no frame has arrived since.
    awaiting_traffic: bool,
    disconnect_id: Option<u16>,
    #[cfg_attr(not(feature = "serde"), allow(dead_code))]
    created_at: Instant,
    recording: Recording,
}

impl Client {
    /// A session on a transport that just opened at `now`; the CONNECT is queued at once.
    ///
    /// Fails if the configuration cannot be encoded (e.g. connect params reusing `pv`, `ka` or
    /// `at`).
    pub fn new(
        config: ClientConfig,
        resources: Resources,
        now: Instant,
    ) -> Result<Self, CommandError> {
        let mut own = OwnTable::new(
            config.first_stream_id,
            config.request_timeout,
            config.max_requests,
            usize::MAX,
        );
        let keep_alive = Duration::from_secs(u64::from(
            config.keep_alive.unwrap_or(DEFAULT_KEEP_ALIVE_SECS),
        ));
        let mut client = Client {
            deframer: Deframer::new(config.max_body),
            outbox: Outbox::new(config.dialect, Flavour::V2),
            resources,
            phase: Phase::Closed,
            events: VecDeque::new(),
            own: OwnTable::new(0, Duration::ZERO, 0, 0),
            streams: StreamTable::default(),
            runs: Vec::new(),
            describes: Vec::new(),
            next_run: 0,
            keep_alive,
            next_keep_alive: None,
            awaiting_traffic: false,
            disconnect_id: None,
            created_at: now,
            recording: Recording::new(now),
            config,
        };
        let id = own.allocate(|_| false)?;
        let connect = Message {
            stream_id: Some(id),
            ..client.connect_message()
        };
        client.outbox.send(&connect)?;
        own.insert_request(now, id, MessageType::Connect);
        client.own = own;
        client.phase = Phase::Connecting { connect_id: id };
        Ok(client)
    }

    fn connect_message(&self) -> Message {
        let mut m = Message::new(MessageType::Connect);
        match &self.config.auth {
            ClientAuth::Credentials {
                user,
                device,
                credential,
            } => {
                m.payload = Some(Value::Array(vec![
                    Value::from(user.as_str()),
                    Value::from(device.as_str()),
                    Value::from(credential.as_str()),
                ]));
            }
            ClientAuth::Certificate { pem } => {
                m.auth_type = Some(AuthType::Certificate);
                m.payload = Some(Value::from(pem.as_str()));
            }
        }
        m.keep_alive = self.config.keep_alive;
        if self.config.dialect == Dialect::Draft2026 {
            m.pson_version = self.config.pson_version;
            m.params = self
                .config
                .connect_params
                .clone()
                .filter(|p| !p.is_empty())
                .map(Value::Map);
        }
        m
    }

    // ----- tracing -------------------------------------------------------------------------

    /// Starts recording a replay trace ([`crate::trace`]). Call it right after [`Client::new`],
    /// before polling anything, so that the trace holds every output.
    #[cfg(feature = "serde")]
    pub fn start_trace(&mut self) {
        let config = crate::trace::client_config_json(&self.config);
        let resources = crate::trace::resources_json(&self.resources);
        let header =
            crate::trace::TraceWriter::header("client", &config, Some(&resources), self.created_at);
        self.recording.start(header);
    }

    /// Takes the trace text recorded since the last call (empty when not recording).
    #[cfg(feature = "serde")]
    pub fn take_trace(&mut self) -> String {
        self.recording.take()
    }

    // ----- getters -------------------------------------------------------------------------

    /// The dialect spoken.
    pub fn dialect(&self) -> Dialect {
        self.config.dialect
    }

    /// The declared resources.
    pub fn resources(&self) -> &Resources {
        &self.resources
    }

    /// True after OK to CONNECT, until the session closes.
    pub fn is_connected(&self) -> bool {
        self.phase == Phase::Connected
    }

    /// True once [`ClientEvent::Closed`] has been queued.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// The streams the server has open on this device.
    pub fn streams(&self) -> &[StreamEntry] {
        &self.streams.entries
    }

    /// True if an event stream listens to `resource` (so [`Client::stream`] would send).
    pub fn is_listened(&self, resource: &str) -> bool {
        self.streams
            .entries
            .iter()
            .any(|e| e.resource == resource && e.interval_ms == 0)
    }

    /// Bytes waiting for `poll_transmit`.
    pub fn pending_output(&self) -> usize {
        self.outbox.len()
    }

    // ----- inputs --------------------------------------------------------------------------

    /// Bytes arrived from the transport.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        record_input!(self, input(now, bytes));
        self.recording.now = now;
        if self.phase == Phase::Closed {
            return;
        }
        let mut deframer = core::mem::replace(&mut self.deframer, Deframer::new(0));
        let mut input = bytes;
        while self.phase != Phase::Closed {
            match deframer.next_frame(&mut input) {
                Ok(Some(frame)) => {
                    self.awaiting_traffic = false;
                    self.on_frame(now, frame.type_code, frame.body);
                }
                Ok(None) => break,
                Err(e) => self.close(CloseReason::Framing(e)),
            }
        }
        self.deframer = deframer;
    }

    /// The clock reached a deadline given by `poll_timeout` (spurious calls are harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        record_input!(self, timeout(now));
        self.recording.now = now;
        if self.phase == Phase::Closed {
            return;
        }
        let mut resolved = Vec::new();
        self.own.expire(now, &mut resolved);
        for resolution in resolved {
            // A CONNECT or DISCONNECT timing out closes the session, and Closed must stay the
            // last event: the other requests of the batch just end with the connection.
            if self.phase == Phase::Closed {
                break;
            }
            self.resolve(now, resolution);
        }
        if self.phase != Phase::Connected {
            return;
        }
        if let Some(due) = self.next_keep_alive
            && now >= due
        {
            if self.awaiting_traffic {
                // Nothing at all arrived since the last keep-alive: the link is dead (§6.3).
                self.outbox.clear();
                self.close(CloseReason::DeadLink);
                return;
            }
            self.outbox.send_raw(self.config.dialect.keep_alive_frame());
            self.awaiting_traffic = true;
            self.next_keep_alive = Some(next_on_schedule(due, self.keep_alive, now));
        }
        let mut due = Vec::new();
        self.streams.mark_due(now, &mut due);
        for resource in due {
            self.events.push_back(ClientEvent::ValueNeeded { resource });
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
            Ok(()) if self.disconnect_id.is_some() => CloseReason::LocalDisconnect,
            Ok(()) => CloseReason::TransportClosed,
        };
        self.close(reason);
    }

    // ----- commands ------------------------------------------------------------------------

    /// Answers a [`ClientEvent::Run`]. Fails with [`CommandError::Encode`] (nothing sent, the
    /// RUN still pending) when the output cannot be carried by the dialect.
    pub fn respond(
        &mut self,
        now: Instant,
        run: RunId,
        result: Result<RunOutput, HandlerError>,
    ) -> Result<(), CommandError> {
        record_command!(
            self,
            now,
            crate::trace::ClientCommand::Respond {
                run,
                result: result.clone()
            }
        );
        self.recording.now = now;
        if self.phase == Phase::Closed {
            return Err(CommandError::Closed);
        }
        let index = self
            .runs
            .iter()
            .position(|r| r.token == run)
            .ok_or(CommandError::NothingPending)?;
        let Some((stream_id, kind)) = self.runs.get(index).map(|r| (r.stream_id, r.kind)) else {
            return Err(CommandError::NothingPending);
        };
        if let Some(id) = stream_id {
            let dialect = self.config.dialect;
            let reply = match result {
                Ok(output) => {
                    let mut ok = Message::ok(id);
                    if kind.gives_output() {
                        ok.payload = output.value;
                    }
                    if dialect == Dialect::Draft2026 {
                        ok.params = output.code.map(Value::from);
                    }
                    ok
                }
                Err(e) => dialect.error_message(id, Some(e.code), Some(&e.message)),
            };
            // An output the dialect cannot carry (a 2020 integer below -2^63, say) is the
            // application's to fix: the command fails, nothing is sent, and the RUN stays
            // pending so that it can be answered again.
            self.outbox.send(&reply)?;
        }
        let pending = self.runs.swap_remove(index);
        if pending.had_payload {
            // The echo rule (§6.5.1): an input changes what event listeners should see.
            self.stream_inner(&pending.resource)?;
        }
        Ok(())
    }

    /// Answers a [`ClientEvent::ValueNeeded`]: the value goes to every stream and DESCRIBE that
    /// waits for `resource`; an error means no data message follows (spec §6.7). Fails with
    /// [`CommandError::Encode`] (nothing sent, everyone still waiting) when the value cannot be
    /// carried by the dialect.
    pub fn provide_value(
        &mut self,
        now: Instant,
        resource: &str,
        value: Result<Value, HandlerError>,
    ) -> Result<(), CommandError> {
        record_command!(
            self,
            now,
            crate::trace::ClientCommand::ProvideValue {
                resource: resource.to_owned(),
                value: value.clone()
            }
        );
        self.recording.now = now;
        if self.phase == Phase::Closed {
            return Err(CommandError::Closed);
        }
        let dialect = self.config.dialect;
        let mut messages = Vec::new();
        for entry in self
            .streams
            .entries
            .iter()
            .filter(|e| e.resource == resource && e.wants_value)
        {
            if let Ok(v) = &value {
                let mut m = Message::stream_data(entry.id, entry.kind(), v.clone());
                if dialect == Dialect::Draft2026 {
                    m.data_kind = None;
                }
                messages.push(m);
            }
        }
        for pending in self.describes.iter().filter(|d| d.resource == resource) {
            messages.push(match &value {
                Ok(v) => {
                    let key = if pending.kind == ResourceKind::Input {
                        "in"
                    } else {
                        "out"
                    };
                    let mut description = Map::with_capacity(1);
                    description.insert(key, v.clone());
                    Message::ok(pending.stream_id).with_payload(description)
                }
                Err(e) => dialect.error_message(pending.stream_id, Some(e.code), Some(&e.message)),
            });
        }
        // Everything is encoded before anything changes: a value the dialect cannot carry fails
        // the command, sends nothing and leaves the streams and DESCRIBEs waiting for a value.
        let mut frames = Vec::new();
        for m in &messages {
            dialect.encode(m, self.outbox.flavour, &mut frames)?;
        }
        for entry in self
            .streams
            .entries
            .iter_mut()
            .filter(|e| e.resource == resource)
        {
            entry.wants_value = false;
        }
        self.describes.retain(|d| d.resource != resource);
        self.outbox.send_raw(&frames);
        Ok(())
    }

    /// `stream(resource)` of spec §6.7: if an event stream listens, asks for the current value
    /// ([`ClientEvent::ValueNeeded`]) to send on it. Returns whether anyone listens.
    pub fn stream(&mut self, now: Instant, resource: &str) -> Result<bool, CommandError> {
        record_command!(
            self,
            now,
            crate::trace::ClientCommand::Stream {
                resource: resource.to_owned()
            }
        );
        self.recording.now = now;
        self.stream_inner(resource)
    }

    fn stream_inner(&mut self, resource: &str) -> Result<bool, CommandError> {
        self.check_connected()?;
        match self.streams.event_stream_mut(resource) {
            Some(entry) => {
                entry.wants_value = true;
                self.events.push_back(ClientEvent::ValueNeeded {
                    resource: entry.resource.clone(),
                });
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Sends `value` on the event stream of `resource` right away, if one listens.
    pub fn stream_value(
        &mut self,
        now: Instant,
        resource: &str,
        value: Value,
    ) -> Result<bool, CommandError> {
        record_command!(
            self,
            now,
            crate::trace::ClientCommand::StreamValue {
                resource: resource.to_owned(),
                value: value.clone()
            }
        );
        self.recording.now = now;
        self.check_connected()?;
        let dialect = self.config.dialect;
        let Some(entry) = self.streams.event_stream_mut(resource) else {
            return Ok(false);
        };
        entry.wants_value = false;
        let mut m = Message::stream_data(entry.id, entry.kind(), value);
        if dialect == Dialect::Draft2026 {
            m.data_kind = None;
        }
        self.outbox.send(&m)?;
        Ok(true)
    }

    /// Sends a RUN to the server (`stream id` allocated here); the answer comes as
    /// [`ClientEvent::Answered`]. With `fire_and_forget` no id is sent and no answer comes.
    pub fn run(
        &mut self,
        now: Instant,
        resource: impl Into<Value>,
        input: Option<Value>,
        fire_and_forget: bool,
    ) -> Result<Option<u16>, CommandError> {
        let resource = resource.into();
        record_command!(
            self,
            now,
            crate::trace::ClientCommand::Run {
                resource: resource.clone(),
                input: input.clone(),
                fire_and_forget
            }
        );
        self.recording.now = now;
        let mut m = Message::new(MessageType::Run).with_resource(resource);
        m.payload = input;
        self.request(now, m, fire_and_forget)
    }

    /// Requests a server action (spec §6.5.3) on `target` with an optional payload.
    pub fn run_action(
        &mut self,
        now: Instant,
        action: ServerAction,
        target: impl Into<Value>,
        payload: Option<Value>,
    ) -> Result<u16, CommandError> {
        let target = target.into();
        record_command!(
            self,
            now,
            crate::trace::ClientCommand::RunAction {
                action,
                target: target.clone(),
                payload: payload.clone()
            }
        );
        self.recording.now = now;
        let dialect = self.config.dialect;
        let mut m = Message::new(MessageType::Run).with_resource(target);
        m.payload = payload;
        match dialect {
            Dialect::Draft2020 => m.action = Some(action.code(dialect)),
            Dialect::Draft2026 => m.params = Some(Value::from(action.code(dialect))),
        }
        self.request(now, m, false)?
            .ok_or(CommandError::NothingPending)
    }

    /// Sends DISCONNECT. With `wait_for_ok` the session closes on the server's OK (or after the
    /// request timeout); without, it closes at once (spec §6.11). Before the server accepted the
    /// CONNECT nothing else may be sent (§6.1), so the session then just closes.
    pub fn disconnect(
        &mut self,
        now: Instant,
        reason: Option<Value>,
        wait_for_ok: bool,
    ) -> Result<(), CommandError> {
        record_command!(
            self,
            now,
            crate::trace::ClientCommand::Disconnect {
                reason: reason.clone(),
                wait_for_ok
            }
        );
        self.recording.now = now;
        if self.phase == Phase::Closed {
            return Err(CommandError::Closed);
        }
        if let Phase::Connecting { .. } = self.phase {
            // Nothing but CONNECT may precede the server's OK (§6.1): just close.
            self.outbox.clear();
            self.close(CloseReason::LocalDisconnect);
            return Ok(());
        }
        let mut m = Message::new(MessageType::Disconnect);
        m.reason = reason;
        if wait_for_ok && self.phase == Phase::Connected {
            let id = self.request(now, m, false)?;
            self.disconnect_id = id;
        } else {
            self.outbox.send(&m)?;
            self.close(CloseReason::LocalDisconnect);
        }
        Ok(())
    }

    /// Sends `message` as is, bypassing the request tables: no id is allocated, no answer is
    /// awaited. For tests, replays and tools that must put exact frames on the wire.
    pub fn send_unchecked(&mut self, message: &Message) -> Result<(), CommandError> {
        record_command!(
            self,
            self.recording.now,
            crate::trace::ClientCommand::SendUnchecked(message.clone())
        );
        self.check_connected()?;
        self.outbox.send(message)?;
        Ok(())
    }

    /// Closes without a DISCONNECT.
    pub fn close_now(&mut self, now: Instant) {
        record_command!(self, now, crate::trace::ClientCommand::CloseNow);
        self.recording.now = now;
        self.close(CloseReason::LocalClose);
    }

    // ----- outputs -------------------------------------------------------------------------

    /// Appends every byte waiting to be sent to `buf`; returns how many.
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> usize {
        let start = buf.len();
        let n = self.outbox.drain_into(buf);
        self.recording.output(buf, start);
        n
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        let event = self.events.pop_front();
        self.recording
            .event(event.as_ref().map(|e| e as &dyn core::fmt::Debug));
        event
    }

    /// When to call `handle_timeout` next, and why.
    pub fn poll_timeout(&self) -> Option<(Instant, Timer)> {
        if self.phase == Phase::Closed {
            return None;
        }
        let candidates = [
            self.own.next_deadline().map(|t| (t, Timer::RequestTimeout)),
            self.next_keep_alive.map(|t| (t, Timer::KeepAlive)),
            self.streams.next_due().map(|t| (t, Timer::Sample)),
        ];
        candidates.into_iter().flatten().min_by_key(|(t, _)| *t)
    }

    // ----- internals -----------------------------------------------------------------------

    fn check_connected(&self) -> Result<(), CommandError> {
        match self.phase {
            Phase::Connected => Ok(()),
            Phase::Closed => Err(CommandError::Closed),
            Phase::Connecting { .. } => Err(CommandError::NotEstablished),
        }
    }

    fn request(
        &mut self,
        now: Instant,
        mut m: Message,
        fire_and_forget: bool,
    ) -> Result<Option<u16>, CommandError> {
        self.check_connected()?;
        if fire_and_forget {
            self.outbox.send(&m)?;
            return Ok(None);
        }
        self.own.check_capacity(false)?;
        let streams = &self.streams;
        let runs = &self.runs;
        let describes = &self.describes;
        let id = self.own.allocate(|id| {
            streams.contains(id)
                || runs.iter().any(|r| r.stream_id == Some(id))
                || describes.iter().any(|d| d.stream_id == id)
        })?;
        m.stream_id = Some(id);
        self.outbox.send(&m)?;
        self.own.insert_request(now, id, m.kind);
        Ok(Some(id))
    }

    /// Sends a message built by the session itself; a failure here is a bug in the session, so
    /// it is reported as an overload close rather than a panic.
    fn send_or_report(&mut self, m: &Message) {
        if self.outbox.send(m).is_err() {
            self.close(CloseReason::Overload);
        }
    }

    fn close(&mut self, reason: CloseReason) {
        if self.phase == Phase::Closed {
            return;
        }
        self.phase = Phase::Closed;
        self.own.clear();
        self.streams.entries.clear();
        self.runs.clear();
        self.describes.clear();
        self.next_keep_alive = None;
        self.events.push_back(ClientEvent::Closed(reason));
    }

    fn resolve(&mut self, _now: Instant, resolution: Resolution) {
        match resolution {
            Resolution::Answered {
                kind: MessageType::Connect,
                answer,
                ..
            } => match answer {
                Answer::Ok { .. } => {}
                Answer::Error(info) => self.close(CloseReason::ConnectRejected(info)),
            },
            Resolution::Answered {
                kind: MessageType::Disconnect,
                ..
            } => self.close(CloseReason::LocalDisconnect),
            Resolution::Answered { id, answer, .. } => {
                self.events.push_back(ClientEvent::Answered { id, answer })
            }
            Resolution::TimedOut {
                kind: MessageType::Connect,
                ..
            } => {
                self.outbox.clear();
                self.close(CloseReason::ConnectTimeout);
            }
            Resolution::TimedOut {
                kind: MessageType::Disconnect,
                ..
            } => self.close(CloseReason::LocalDisconnect),
            Resolution::TimedOut { id, .. } => {
                self.events.push_back(ClientEvent::RequestTimedOut { id })
            }
            // This device opens no streams of its own.
            Resolution::StreamOpen { .. } | Resolution::StreamClosed { .. } => {}
        }
    }

    fn on_frame(&mut self, now: Instant, code: u32, body: &[u8]) {
        let dialect = self.config.dialect;
        let m = match dialect.decode(code, body) {
            Ok(m) => m,
            Err(e) => {
                if self.phase == Phase::Connected
                    && let Outcome::DropAndError { stream_id } = e.outcome()
                {
                    self.send_or_report(&dialect.malformed_reply(stream_id));
                }
                return;
            }
        };
        if let Phase::Connecting { connect_id } = self.phase {
            // Before OK nothing but the answer to CONNECT means anything (§6.1).
            if matches!(m.kind, MessageType::Ok | MessageType::Error)
                && m.request_id() == Some(connect_id)
            {
                let answer = if m.kind == MessageType::Ok {
                    Answer::Ok {
                        params: None,
                        payload: None,
                    }
                } else {
                    Answer::Error(dialect.error_info(&m))
                };
                let ok = m.kind == MessageType::Ok;
                if let Some(resolution) = self.own.answer(connect_id, answer) {
                    self.resolve(now, resolution);
                }
                if ok {
                    self.phase = Phase::Connected;
                    self.next_keep_alive = Some(now + self.keep_alive);
                    self.awaiting_traffic = false;
                    self.events.push_back(ClientEvent::Connected);
                }
            }
            return;
        }
        let id = m.request_id();
        match m.kind {
            MessageType::Ok | MessageType::Error => {
                let answer = if m.kind == MessageType::Ok {
                    Answer::Ok {
                        params: m.params,
                        payload: m.payload,
                    }
                } else {
                    Answer::Error(dialect.error_info(&m))
                };
                if let Some(id) = id
                    && let Some(resolution) = self.own.answer(id, answer)
                {
                    self.resolve(now, resolution);
                }
            }
            MessageType::Run => self.on_run(m),
            MessageType::Describe => self.on_describe(m),
            MessageType::StartStream => self.on_start_stream(now, m),
            MessageType::StopStream => {
                if let Some(id) = id {
                    if self.streams.remove(id) {
                        self.send_or_report(&Message::ok(id));
                        self.events.push_back(ClientEvent::StreamStopped { id });
                    } else {
                        self.send_or_report(&dialect.error_message(
                            id,
                            Some(404),
                            Some("unknown stream"),
                        ));
                    }
                }
            }
            MessageType::Disconnect => {
                if let Some(id) = id {
                    self.send_or_report(&Message::ok(id));
                }
                self.close(CloseReason::PeerDisconnect { reason: m.reason });
            }
            // Keep-alive echoes only count as traffic; streams from the server, and a CONNECT
            // sent to a device, mean nothing here (§6.7).
            MessageType::KeepAlive | MessageType::StreamData | MessageType::Connect => {}
        }
    }

    /// Too many requests of the server in progress: ERROR 503 (spec §6.4).
    fn over_limit(&self) -> bool {
        self.runs.len() + self.describes.len() >= self.config.max_requests
    }

    fn unknown_resource(&mut self, id: Option<u16>) {
        if let Some(id) = id {
            let reply = self
                .config
                .dialect
                .error_message(id, Some(404), Some("unknown resource"));
            self.send_or_report(&reply);
        }
    }

    fn on_run(&mut self, m: Message) {
        let dialect = self.config.dialect;
        let id = m.request_id();
        let found = m
            .resource
            .as_ref()
            .and_then(resource_name)
            .and_then(|name| self.resources.kind(&name).map(|kind| (name, kind)));
        let Some((resource, kind)) = found else {
            self.unknown_resource(id);
            return;
        };
        if self.over_limit() {
            if let Some(id) = id {
                self.send_or_report(&dialect.error_message(
                    id,
                    Some(503),
                    Some("too many requests"),
                ));
            }
            return;
        }
        let token = RunId(self.next_run);
        self.next_run = self.next_run.wrapping_add(1);
        // The echo rule looks at whether the RUN carried a payload, whatever the kind (§6.5.1).
        let had_payload = m.payload.is_some();
        let input = if kind.takes_input() { m.payload } else { None };
        self.runs.push(PendingRun {
            token,
            stream_id: id,
            resource: resource.clone(),
            kind,
            had_payload,
        });
        self.events.push_back(ClientEvent::Run(RunRequest {
            id: token,
            resource,
            kind,
            input,
            params: m.params,
            fire_and_forget: id.is_none(),
        }));
    }

    fn on_describe(&mut self, m: Message) {
        let Some(id) = m.request_id() else { return };
        let Some(resource) = m.resource.as_ref() else {
            let all = self.resources.describe_all();
            self.send_or_report(&Message::ok(id).with_payload(all));
            return;
        };
        let found = resource_name(resource)
            .and_then(|name| self.resources.kind(&name).map(|kind| (name, kind)));
        let Some((resource, kind)) = found else {
            self.unknown_resource(Some(id));
            return;
        };
        if kind == ResourceKind::Action {
            self.send_or_report(&Message::ok(id).with_payload(Map::new()));
            return;
        }
        if self.over_limit() {
            let reply = self
                .config
                .dialect
                .error_message(id, Some(503), Some("too many requests"));
            self.send_or_report(&reply);
            return;
        }
        self.describes.push(PendingDescribe {
            stream_id: id,
            resource: resource.clone(),
            kind,
        });
        self.events.push_back(ClientEvent::ValueNeeded { resource });
    }

    fn on_start_stream(&mut self, now: Instant, m: Message) {
        let dialect = self.config.dialect;
        let Some(id) = m.request_id() else { return };
        let interval_ms = m.interval_ms.unwrap_or(0);
        let result = match m.resource.as_ref() {
            Some(resource) => {
                let found = resource_name(resource)
                    .and_then(|name| self.resources.kind(&name).map(|kind| (name, kind)));
                match found {
                    None => Err((404, "unknown resource")),
                    Some((_, ResourceKind::Action)) => Err((400, "resource cannot be streamed")),
                    Some((name, _)) => self
                        .streams
                        .open(
                            now,
                            dialect,
                            id,
                            name.clone(),
                            interval_ms,
                            self.config.max_streams,
                        )
                        .map(|()| name)
                        .map_err(|_| (503, "too many streams")),
                }
            }
            None => self
                .streams
                .reconfigure(now, dialect, id, interval_ms)
                .map_err(|e| match e {
                    StartError::UnknownStream => (404, "unknown stream"),
                    StartError::TableFull => (503, "too many streams"),
                }),
        };
        match result {
            Err((code, text)) => {
                self.send_or_report(&dialect.error_message(id, Some(code), Some(text)))
            }
            Ok(resource) => {
                self.send_or_report(&Message::ok(id));
                if let Some(entry) = self.streams.get_mut(id) {
                    entry.wants_value = true;
                }
                self.events.push_back(ClientEvent::StreamStarted {
                    id,
                    resource: resource.clone(),
                    interval_ms,
                });
                self.events.push_back(ClientEvent::ValueNeeded { resource });
            }
        }
    }
}

/// The first time of the fixed schedule `due + k·period` (k ≥ 1) after `now` (spec §6.3:
/// keep-alives keep their schedule whatever the traffic, missed ones are not sent late). Computed,
/// not stepped: a keep-alive of 0 s (which only the application can configure) counts as 1 s,
/// and a clock at the end of its range yields that end instead of looping.
fn next_on_schedule(due: Instant, period: Duration, now: Instant) -> Instant {
    let period = period.as_micros().max(1_000_000);
    let behind = u128::from(now.as_micros().saturating_sub(due.as_micros()));
    let steps = behind / period + 1;
    let offset = steps.saturating_mul(period);
    due + Duration::from_micros(u64::try_from(offset).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> Instant {
        Instant::from_micros(secs * 1_000_000)
    }

    #[test]
    fn the_schedule_skips_missed_keep_alives() {
        let period = Duration::from_secs(60);
        assert_eq!(next_on_schedule(at(60), period, at(60)), at(120));
        assert_eq!(next_on_schedule(at(60), period, at(119)), at(120));
        assert_eq!(next_on_schedule(at(60), period, at(120)), at(180));
        assert_eq!(next_on_schedule(at(60), period, at(1000)), at(1020));
    }

    #[test]
    fn a_zero_keep_alive_counts_as_one_second() {
        assert_eq!(next_on_schedule(at(5), Duration::ZERO, at(5)), at(6));
        assert_eq!(next_on_schedule(at(5), Duration::ZERO, at(7)), at(8));
    }

    #[test]
    fn the_end_of_the_clock_does_not_loop() {
        let end = Instant::from_micros(u64::MAX);
        let next = next_on_schedule(at(1), Duration::from_secs(60), end);
        assert_eq!(next, end);
    }
}
