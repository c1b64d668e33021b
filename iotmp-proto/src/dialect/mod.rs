//! The two wire generations as codecs for the shared [`Message`] model.
//!
//! [`Dialect::Draft2020`] is the seed's protocol (chapter 3), [`Dialect::Draft2026`] the deployed
//! one (chapter 4). Encoders write the canonical field order and fail, writing nothing, on what
//! their dialect cannot carry; decoders accept any field order, repeated fields (last wins) and
//! unknown fields, and report malformed bodies with enough context to apply spec §7.2.

mod draft2020;
mod draft2026;
mod error;
mod errors_info;
mod fields;

pub use error::{EncodeError, MessageError, MessageErrorKind};
pub use errors_info::{ErrorInfo, MALFORMED_CODE, MALFORMED_TEXT};

use crate::len_prefix;
use crate::message::{Message, MessageType, StreamKind};
use crate::pson::Flavour;

/// A wire generation of IOTMP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// The 2020 draft: CONNECT 0x08, key `wire_type << 4 | field`, Protoson values.
    Draft2020,
    /// The 2026 generation: CONNECT 0x03, key `field << 3 | wire_type`, PSON v2 (or Protoson).
    Draft2026,
}

impl Dialect {
    /// The year, as the CLI and the HTTP API print it.
    pub const fn year(self) -> &'static str {
        match self {
            Dialect::Draft2020 => "2020",
            Dialect::Draft2026 => "2026",
        }
    }

    /// The message type code of `kind` (2020 STREAM_DATA needs its `data_kind`).
    pub const fn type_code(self, kind: MessageType, data_kind: Option<StreamKind>) -> Option<u8> {
        use MessageType as T;
        Some(match self {
            Dialect::Draft2020 => match kind {
                T::Ok => 0x01,
                T::Error => 0x02,
                T::KeepAlive => 0x03,
                T::Run => 0x04,
                T::StartStream => 0x05,
                T::StopStream => 0x06,
                T::Describe => 0x07,
                T::Connect => 0x08,
                T::Disconnect => 0x09,
                T::StreamData => match data_kind {
                    Some(StreamKind::Event) => 0x0A,
                    Some(StreamKind::Sample) => 0x0B,
                    None => return None,
                },
            },
            Dialect::Draft2026 => match kind {
                T::Ok => 0x01,
                T::Error => 0x02,
                T::Connect => 0x03,
                T::Disconnect => 0x04,
                T::KeepAlive => 0x05,
                T::Run => 0x06,
                T::Describe => 0x07,
                T::StartStream => 0x08,
                T::StopStream => 0x09,
                T::StreamData => 0x0A,
            },
        })
    }

    /// The message type a code stands for, or `None` for codes this dialect does not define.
    pub const fn message_type(self, code: u32) -> Option<(MessageType, Option<StreamKind>)> {
        use MessageType as T;
        Some(match (self, code) {
            (_, 0x01) => (T::Ok, None),
            (_, 0x02) => (T::Error, None),
            (_, 0x07) => (T::Describe, None),
            (Dialect::Draft2020, 0x03) => (T::KeepAlive, None),
            (Dialect::Draft2020, 0x04) => (T::Run, None),
            (Dialect::Draft2020, 0x05) => (T::StartStream, None),
            (Dialect::Draft2020, 0x06) => (T::StopStream, None),
            (Dialect::Draft2020, 0x08) => (T::Connect, None),
            (Dialect::Draft2020, 0x09) => (T::Disconnect, None),
            (Dialect::Draft2020, 0x0A) => (T::StreamData, Some(StreamKind::Event)),
            (Dialect::Draft2020, 0x0B) => (T::StreamData, Some(StreamKind::Sample)),
            (Dialect::Draft2026, 0x03) => (T::Connect, None),
            (Dialect::Draft2026, 0x04) => (T::Disconnect, None),
            (Dialect::Draft2026, 0x05) => (T::KeepAlive, None),
            (Dialect::Draft2026, 0x06) => (T::Run, None),
            (Dialect::Draft2026, 0x08) => (T::StartStream, None),
            (Dialect::Draft2026, 0x09) => (T::StopStream, None),
            (Dialect::Draft2026, 0x0A) => (T::StreamData, None),
            _ => return None,
        })
    }

    /// The whole KEEP_ALIVE frame (`03 00` or `05 00`).
    pub const fn keep_alive_frame(self) -> &'static [u8] {
        match self {
            Dialect::Draft2020 => &[0x03, 0x00],
            Dialect::Draft2026 => &[0x05, 0x00],
        }
    }

    /// Which dialect a server connection speaks, from the type of its first frame (spec §6.1).
    pub const fn detect(first_type_code: u32) -> Option<Dialect> {
        match first_type_code {
            0x08 => Some(Dialect::Draft2020),
            0x03 => Some(Dialect::Draft2026),
            _ => None,
        }
    }

    /// Appends `message` as one whole frame.
    ///
    /// `flavour` picks the value encoding of 2026 PSON fields (ignored by 2020, which always uses
    /// Protoson). On error nothing is appended.
    pub fn encode(
        self,
        message: &Message,
        flavour: Flavour,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        let start = out.len();
        let result = self.encode_inner(message, flavour, out);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    fn encode_inner(
        self,
        message: &Message,
        flavour: Flavour,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        fields::check_representable(self, message)?;
        let code = self
            .type_code(message.kind, message.data_kind)
            .ok_or(EncodeError::StreamDataWithoutKind)?;
        out.push(code);
        let at = len_prefix::start(out);
        match self {
            Dialect::Draft2020 => draft2020::encode_body(message, out)?,
            Dialect::Draft2026 => draft2026::encode_body(message, flavour, out)?,
        }
        if out.len() - at - 1 > u32::MAX as usize {
            return Err(EncodeError::TooLarge);
        }
        len_prefix::finish(out, at);
        Ok(())
    }

    /// Decodes the body of a frame of type `code`.
    ///
    /// An undefined `code` gives [`MessageErrorKind::UnknownType`] (whose outcome is "ignore").
    pub fn decode(self, code: u32, body: &[u8]) -> Result<Message, MessageError> {
        let mut flavour = None;
        self.decode_with_flavour(code, body, &mut flavour)
    }

    /// Like [`Dialect::decode`], also telling which value flavour the payload field used (a 2026
    /// server picks a connection's flavour from its CONNECT payload, spec §4.6).
    pub fn decode_detailed(
        self,
        code: u32,
        body: &[u8],
    ) -> Result<(Message, Option<Flavour>), MessageError> {
        let mut flavour = None;
        let message = self.decode_with_flavour(code, body, &mut flavour)?;
        Ok((message, flavour))
    }

    /// [`Dialect::decode`], setting `flavour` as [`Dialect::decode_detailed`] reports it. The
    /// message is returned as is from the dialect's decoder, so that it is built in place.
    #[inline]
    fn decode_with_flavour(
        self,
        code: u32,
        body: &[u8],
        flavour: &mut Option<Flavour>,
    ) -> Result<Message, MessageError> {
        let Some((kind, data_kind)) = self.message_type(code) else {
            return Err(MessageError {
                kind: MessageErrorKind::UnknownType(code),
                offset: 0,
                message_type: None,
                stream_id: None,
            });
        };
        match self {
            Dialect::Draft2020 => draft2020::decode_body(kind, data_kind, body),
            Dialect::Draft2026 => draft2026::decode_body(kind, body, flavour),
        }
    }
}

impl std::fmt::Display for Dialect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.year())
    }
}

impl std::str::FromStr for Dialect {
    type Err = UnknownDialect;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "2020" => Ok(Dialect::Draft2020),
            "2026" => Ok(Dialect::Draft2026),
            other => Err(UnknownDialect(other.to_owned())),
        }
    }
}

/// A dialect name other than `2020` or `2026`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown dialect {0:?}: expected 2020 or 2026")]
pub struct UnknownDialect(pub String);
