//! Errors of the message codecs.

use thiserror::Error;

use super::Dialect;
use crate::message::MessageType;
use crate::outcome::Outcome;
use crate::pson::{ValueEncodeError, ValueErrorKind};

/// What was wrong with a message body (spec §7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MessageErrorKind {
    /// The frame's type is not defined in the dialect; its body was not looked at.
    #[error("unknown message type 0x{0:02X}")]
    UnknownType(u32),
    /// A field key varint longer than 5 bytes.
    #[error("field key longer than 5 bytes")]
    KeyTooLong,
    /// A 2020 field key above 0x7F.
    #[error("2020 field key above 0x7F")]
    KeyAbove7F,
    /// A wire type the dialect does not define (its length is unknowable).
    #[error("invalid {dialect} wire type {wire_type}")]
    InvalidWireType {
        /// The dialect whose table was used.
        dialect: Dialect,
        /// The offending wire type.
        wire_type: u8,
    },
    /// The body ends inside a field.
    #[error("body ends inside a field")]
    Truncated,
    /// A fixed-size 2020 value runs past the body.
    #[error("truncated fixed{0}")]
    TruncatedFixed(u8),
    /// A 2020 length-delimited value runs past the body.
    #[error("length exceeds remaining bytes")]
    LengthExceedsRemaining,
    /// A field varint longer than 10 bytes or above 2^64−1.
    #[error("field varint longer than 10 bytes or overflowing")]
    BadVarint,
    /// A PSON v2 or Protoson value was invalid.
    #[error("{0}")]
    Value(ValueErrorKind),
    /// A known field holds a value of the wrong type or range.
    #[error("{0} is not an unsigned integer in range")]
    IllTyped(&'static str),
    /// A known field holds a value of a shape the spec does not allow.
    #[error("{0} has an invalid shape")]
    BadShape(&'static str),
    /// A mandatory field is absent.
    #[error("missing mandatory {0}")]
    MissingField(&'static str),
}

impl MessageErrorKind {
    /// Syntax failures stop the field scan; content failures are found after it (spec §7.2).
    pub const fn is_syntax(&self) -> bool {
        !matches!(
            self,
            Self::IllTyped(_) | Self::BadShape(_) | Self::MissingField(_) | Self::UnknownType(_)
        )
    }
}

/// A message body that could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("{what}: {kind} at byte {offset} of the body", what = self.type_name())]
pub struct MessageError {
    /// What was wrong.
    pub kind: MessageErrorKind,
    /// Byte offset in the body where it was found.
    pub offset: usize,
    /// The message type, when the frame's type code is defined.
    pub message_type: Option<MessageType>,
    /// The stream id that counts for the malformed reply (spec §7.2), if one was decoded.
    pub stream_id: Option<u16>,
}

impl MessageError {
    fn type_name(&self) -> &'static str {
        match self.message_type {
            Some(t) => t.name(),
            None => "frame",
        }
    }

    /// What a receiver does with this message (spec §7.2).
    pub fn outcome(&self) -> Outcome {
        if matches!(self.kind, MessageErrorKind::UnknownType(_)) {
            return Outcome::Ignore;
        }
        match (self.message_type, self.stream_id) {
            (Some(t), Some(id)) if t.is_request() && id != 0 => {
                Outcome::DropAndError { stream_id: id }
            }
            _ => Outcome::Drop,
        }
    }
}

/// A message that cannot be encoded in the requested dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A field the dialect cannot carry for this message type is set.
    #[error("not representable in {dialect}: {field} on {message_type}")]
    NotRepresentable {
        /// Target dialect.
        dialect: Dialect,
        /// The message type.
        message_type: MessageType,
        /// The model field (vector JSON name).
        field: &'static str,
    },
    /// A mandatory field is absent.
    #[error("missing mandatory {0}")]
    MissingField(&'static str),
    /// 2020 STREAM_DATA must say whether it is a sample or an event.
    #[error("2020 STREAM_DATA needs kind 'sample' or 'event'")]
    StreamDataWithoutKind,
    /// 2020 intervals travel in whole seconds.
    #[error("interval {0} ms is not a whole number of seconds")]
    IntervalNotWholeSeconds(u64),
    /// A number is outside what its field can carry.
    #[error("{0} out of range")]
    OutOfRange(&'static str),
    /// An `AuthType::Other` number that would read back as a named auth type.
    #[error("auth type other({0}) collides with a named auth type in {1}")]
    AmbiguousAuthType(u32, Dialect),
    /// Params that would decode as something else (spec §4.5).
    #[error("{0}")]
    AmbiguousParams(&'static str),
    /// A value could not be encoded.
    #[error(transparent)]
    Value(#[from] ValueEncodeError),
    /// The body would exceed 2^32−1 bytes.
    #[error("message too large")]
    TooLarge,
}
