//! The dialect-neutral message model (spec §2.5).
//!
//! One [`Message`] type serves both wire generations; each [`Dialect`](crate::Dialect) is a codec
//! for it. Optional model fields are `Option`s: an absent field is absent on the wire and vice
//! versa. Defaults (auth type credentials, keep-alive 60 s, RUN action 1) belong to the session
//! layer, so that decoding then encoding a canonical frame gives back the same bytes.

use std::fmt;

use crate::value::Value;

/// The kind of a message, named as in the spec (the wire numbers differ per dialect).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// Positive answer to a request.
    Ok,
    /// Negative answer to a request.
    Error,
    /// Keep-alive ping (client) or its echo (server).
    KeepAlive,
    /// Run a resource (or a server action).
    Run,
    /// Open or reconfigure a stream.
    StartStream,
    /// Close a stream.
    StopStream,
    /// Describe one or all resources.
    Describe,
    /// Authenticate; the first frame of a connection.
    Connect,
    /// Announce the end of the connection.
    Disconnect,
    /// A value on a stream (2020: STREAM_SAMPLE or STREAM_EVENT).
    StreamData,
}

impl MessageType {
    /// Every message type, in the order of the spec's model table.
    pub const ALL: [MessageType; 10] = [
        MessageType::Ok,
        MessageType::Error,
        MessageType::KeepAlive,
        MessageType::Run,
        MessageType::StartStream,
        MessageType::StopStream,
        MessageType::Describe,
        MessageType::Connect,
        MessageType::Disconnect,
        MessageType::StreamData,
    ];

    /// The spec's upper-case name (`START_STREAM`), as used by the vector files.
    pub const fn name(self) -> &'static str {
        match self {
            MessageType::Ok => "OK",
            MessageType::Error => "ERROR",
            MessageType::KeepAlive => "KEEP_ALIVE",
            MessageType::Run => "RUN",
            MessageType::StartStream => "START_STREAM",
            MessageType::StopStream => "STOP_STREAM",
            MessageType::Describe => "DESCRIBE",
            MessageType::Connect => "CONNECT",
            MessageType::Disconnect => "DISCONNECT",
            MessageType::StreamData => "STREAM_DATA",
        }
    }

    /// Parses a name produced by [`MessageType::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        MessageType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Requests are answered with OK or ERROR when they carry a stream id (spec §6.4), and a
    /// malformed one gets the malformed reply (spec §7.2).
    pub const fn is_request(self) -> bool {
        matches!(
            self,
            MessageType::Run
                | MessageType::Describe
                | MessageType::StartStream
                | MessageType::StopStream
        )
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a CONNECT authenticates (spec §6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthType {
    /// Payload `[username, device, credential]` (2020: 1, 2026 `at`: 0).
    Credentials,
    /// Payload is the client certificate in PEM (2020: 2, 2026 `at`: 4).
    Certificate,
    /// Any other number, raw as found in the dialect it was decoded from.
    Other(u32),
}

/// Whether a 2020 STREAM_DATA travels as STREAM_SAMPLE or STREAM_EVENT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// A value of a sampling stream (2020 type 0x0B).
    Sample,
    /// A value of an event stream (2020 type 0x0A).
    Event,
}

/// One IOTMP message in the shared model of spec §2.5.
///
/// Which fields a message type uses, and how each dialect carries them, is the spec's table; an
/// encoder fails (writing nothing) when a field is set that its dialect cannot carry for the type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The message type.
    pub kind: MessageType,
    /// Request / stream identifier; `Some(0)` is a present field holding 0.
    pub stream_id: Option<u16>,
    /// Resource name (string or path array) or a server action target.
    pub resource: Option<Value>,
    /// 2026 params field; for CONNECT the extra params keys, for START_STREAM the extra options.
    pub params: Option<Value>,
    /// Payload: result, input, value, or authentication data.
    pub payload: Option<Value>,
    /// DISCONNECT reason.
    pub reason: Option<Value>,
    /// CONNECT auth type.
    pub auth_type: Option<AuthType>,
    /// CONNECT keep-alive in seconds.
    pub keep_alive: Option<u32>,
    /// CONNECT `pv` (2026 only).
    pub pson_version: Option<u32>,
    /// START_STREAM interval in milliseconds; `Some(0)` means "events" and is sent explicitly.
    pub interval_ms: Option<u64>,
    /// 2020 RUN action code.
    pub action: Option<u32>,
    /// 2020 STREAM_DATA kind (not carried in 2026).
    pub data_kind: Option<StreamKind>,
}

impl Message {
    /// A message of `kind` with every field absent.
    pub const fn new(kind: MessageType) -> Self {
        Message {
            kind,
            stream_id: None,
            resource: None,
            params: None,
            payload: None,
            reason: None,
            auth_type: None,
            keep_alive: None,
            pson_version: None,
            interval_ms: None,
            action: None,
            data_kind: None,
        }
    }

    /// Sets the stream id.
    pub fn with_stream_id(mut self, id: u16) -> Self {
        self.stream_id = Some(id);
        self
    }

    /// Sets the resource.
    pub fn with_resource(mut self, resource: impl Into<Value>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    /// Sets the params.
    pub fn with_params(mut self, params: impl Into<Value>) -> Self {
        self.params = Some(params.into());
        self
    }

    /// Sets the payload.
    pub fn with_payload(mut self, payload: impl Into<Value>) -> Self {
        self.payload = Some(payload.into());
        self
    }

    /// `KEEP_ALIVE`.
    pub const fn keep_alive() -> Self {
        Message::new(MessageType::KeepAlive)
    }

    /// `OK {id}`.
    pub fn ok(id: u16) -> Self {
        Message::new(MessageType::Ok).with_stream_id(id)
    }

    /// `STREAM_DATA {id, payload}` of the given kind.
    pub fn stream_data(id: u16, kind: StreamKind, payload: Value) -> Self {
        let mut m = Message::new(MessageType::StreamData)
            .with_stream_id(id)
            .with_payload(payload);
        m.data_kind = Some(kind);
        m
    }

    /// The stream id, treating 0 as absent (spec §6.4: id 0 means "no stream id").
    pub fn request_id(&self) -> Option<u16> {
        self.stream_id.filter(|&id| id != 0)
    }
}

impl fmt::Display for Message {
    /// One line, the way transcripts show a message: `RUN sid=3 resource="led" payload={...}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match (self.kind, self.data_kind) {
            (MessageType::StreamData, Some(StreamKind::Sample)) => "STREAM_SAMPLE",
            (MessageType::StreamData, Some(StreamKind::Event)) => "STREAM_EVENT",
            (kind, _) => kind.name(),
        };
        f.write_str(name)?;
        if let Some(id) = self.stream_id {
            write!(f, " sid={id}")?;
        }
        match self.auth_type {
            Some(AuthType::Credentials) => f.write_str(" auth=credentials")?,
            Some(AuthType::Certificate) => f.write_str(" auth=certificate")?,
            Some(AuthType::Other(n)) => write!(f, " auth=other({n})")?,
            None => {}
        }
        if let Some(ka) = self.keep_alive {
            write!(f, " ka={ka}")?;
        }
        if let Some(pv) = self.pson_version {
            write!(f, " pv={pv}")?;
        }
        if let Some(action) = self.action {
            write!(f, " action={action}")?;
        }
        if let Some(resource) = &self.resource {
            write!(f, " resource={resource}")?;
        }
        if let Some(ms) = self.interval_ms {
            write!(f, " interval_ms={ms}")?;
        }
        if let Some(params) = &self.params {
            write!(f, " params={params}")?;
        }
        if let Some(reason) = &self.reason {
            write!(f, " reason={reason}")?;
        }
        if let Some(payload) = &self.payload {
            write!(f, " payload={payload}")?;
        }
        Ok(())
    }
}
