//! What the client (device) and server sessions share: close reasons, timers, request errors,
//! the table of one's own outstanding requests, and the outgoing byte queue.

pub(crate) mod outbox;
pub(crate) mod recording;
pub(crate) mod requests;

pub use requests::StreamEnd;

use core::fmt;
use core::time::Duration;

use thiserror::Error;

use crate::dialect::ErrorInfo;
use crate::frame::FrameError;
use crate::value::Value;

/// Default time a requester waits for an answer (spec §6.4, §7.1).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Default outstanding own requests per connection (spec §7.1).
pub const DEFAULT_MAX_REQUESTS: usize = 64;
/// Default open streams per connection (spec §7.1).
pub const DEFAULT_MAX_STREAMS: usize = 64;
/// Keep-alive interval assumed when CONNECT names none (spec §3.4, §4.5).
pub const DEFAULT_KEEP_ALIVE_SECS: u32 = 60;

/// Why a session ended. Reported exactly once, as the last event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// This side sent DISCONNECT (and, if it asked for one, got the OK or gave up waiting).
    LocalDisconnect,
    /// The peer sent DISCONNECT.
    PeerDisconnect {
        /// The reason it gave, if any.
        reason: Option<Value>,
    },
    /// The application closed the session without a DISCONNECT.
    LocalClose,
    /// The transport ended (EOF) between frames, without DISCONNECT.
    TransportClosed,
    /// The byte stream broke the framing rules (spec §7.2).
    Framing(FrameError),
    /// Server: the first frame was not a well-formed CONNECT (spec §6.1).
    NotConnect,
    /// Server: no complete CONNECT before the authentication deadline.
    AuthDeadline,
    /// Server: the CONNECT was refused with this code (the ERROR was sent first).
    Refused {
        /// The CONNECT error code of spec §6.10.
        code: u32,
    },
    /// Client: the server answered CONNECT with ERROR.
    ConnectRejected(ErrorInfo),
    /// Client: no answer to CONNECT within the request timeout.
    ConnectTimeout,
    /// Server: no frame for keep-alive × factor.
    KeepAliveExpired,
    /// Client: a keep-alive came due with no frame received since the previous one.
    DeadLink,
    /// The session sent more than it may buffer, or received input it cannot hold.
    Overload,
    /// Server: the peer did not read its socket while the outgoing queue grew beyond
    /// `ServerConfig::max_outgoing`.
    SlowConsumer,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::LocalDisconnect => f.write_str("disconnected by this side"),
            CloseReason::PeerDisconnect { reason: Some(r) } => write!(f, "peer disconnected: {r}"),
            CloseReason::PeerDisconnect { reason: None } => f.write_str("peer disconnected"),
            CloseReason::LocalClose => f.write_str("closed by the application"),
            CloseReason::TransportClosed => f.write_str("transport closed by the peer"),
            CloseReason::Framing(e) => write!(f, "framing error: {e}"),
            CloseReason::NotConnect => f.write_str("first frame was not a valid CONNECT"),
            CloseReason::AuthDeadline => {
                f.write_str("no CONNECT before the authentication deadline")
            }
            CloseReason::Refused { code } => write!(f, "CONNECT refused with code {code}"),
            CloseReason::ConnectRejected(info) => {
                write!(f, "server refused CONNECT")?;
                if let Some(code) = info.code {
                    write!(f, " with code {code}")?;
                }
                if let Some(text) = &info.text {
                    write!(f, ": {text}")?;
                }
                Ok(())
            }
            CloseReason::ConnectTimeout => f.write_str("no answer to CONNECT"),
            CloseReason::KeepAliveExpired => f.write_str("keep-alive expired"),
            CloseReason::DeadLink => f.write_str("link dead: no frame since the last keep-alive"),
            CloseReason::Overload => f.write_str("overload"),
            CloseReason::SlowConsumer => {
                f.write_str("peer does not read: outgoing queue over its limit")
            }
        }
    }
}

/// Why the session wants to be woken up (the reason that comes with `poll_timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// Client: the next KEEP_ALIVE is due.
    KeepAlive,
    /// Server: the connection expires unless a frame arrives.
    KeepAliveExpiry,
    /// Server: the CONNECT must have arrived by then.
    AuthDeadline,
    /// One of this side's requests times out.
    RequestTimeout,
    /// Client: a sampling stream is due.
    Sample,
}

/// A command that could not be carried out; nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The session is closed.
    #[error("the session is closed")]
    Closed,
    /// The session is not authenticated yet (or, on a server, not accepted).
    #[error("the connection is not established yet")]
    NotEstablished,
    /// Too many outstanding requests (spec §7.1; the HTTP API answers 503).
    #[error("too many outstanding requests")]
    TooManyRequests,
    /// Too many open streams (spec §7.1).
    #[error("too many open streams")]
    TooManyStreams,
    /// Every stream id is in use.
    #[error("no free stream id")]
    NoStreamId,
    /// The stream id names no stream this side opened.
    #[error("unknown stream {0}")]
    UnknownStream(u16),
    /// The connection's outgoing queue is half full: the peer does not read fast enough for
    /// more requests (the HTTP API answers 503).
    #[error("the connection's outgoing queue is full")]
    OutputFull,
    /// No pending request or authentication has this handle.
    #[error("nothing is waiting for that answer")]
    NothingPending,
    /// The message cannot be encoded in this connection's dialect.
    #[error(transparent)]
    Encode(#[from] crate::dialect::EncodeError),
}

/// How a request of this side ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// OK, with its params (2026 return code) and payload.
    Ok {
        /// 2026 params (a return code), if any.
        params: Option<Value>,
        /// The result, if any.
        payload: Option<Value>,
    },
    /// ERROR, with its code and text (spec §6.10).
    Error(ErrorInfo),
}

/// Records a command on a session's trace, if it is recording (feature `serde`). The command
/// expression is only evaluated while recording.
macro_rules! record_command {
    ($session:expr, $now:expr, $command:expr) => {
        #[cfg(feature = "serde")]
        {
            if let Some(trace) = $session.recording.trace.as_deref_mut() {
                let (name, args) = $command.to_json();
                trace.command($now, name, &args);
            }
        }
    };
}
pub(crate) use record_command;

/// Records an input (`in`, `timeout`, `eof`) on a session's trace, if it is recording.
macro_rules! record_input {
    ($session:expr, $($call:tt)*) => {
        #[cfg(feature = "serde")]
        {
            if let Some(trace) = $session.recording.trace.as_deref_mut() {
                trace.$($call)*;
            }
        }
    };
}
pub(crate) use record_input;
