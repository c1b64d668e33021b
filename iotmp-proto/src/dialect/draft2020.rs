//! Dialect 2020 (spec chapter 3): one-byte keys `wire_type << 4 | field`, Protoson values.

use super::fields::{self, Scan};
use super::{Dialect, EncodeError, MessageError, MessageErrorKind};
use crate::message::{AuthType, Message, MessageType, StreamKind};
use crate::pson::protoson;
use crate::value::Value;
use crate::varint::{self, VarintError};

const WT_VARINT: u8 = 0;
const WT_FIXED64: u8 = 1;
const WT_BYTES: u8 = 2;
const WT_FIXED32: u8 = 5;
const WT_PSON: u8 = 6;

const F_STREAM_ID: u8 = 1;
const F_RESOURCE: u8 = 2;
const F_PAYLOAD: u8 = 3;
const F_FOUR: u8 = 4;
const F_FIVE: u8 = 5;

const AUTH_CREDENTIALS: u32 = 1;
const AUTH_CERTIFICATE: u32 = 2;

fn key(field: u8, wire_type: u8) -> u8 {
    wire_type << 4 | field
}

fn write_varint_field(out: &mut Vec<u8>, field: u8, value: u64) {
    out.push(key(field, WT_VARINT));
    varint::write(out, value);
}

fn write_value_field(out: &mut Vec<u8>, field: u8, value: &Value) -> Result<(), EncodeError> {
    out.push(key(field, WT_PSON));
    protoson::encode(value, out)?;
    Ok(())
}

/// Writes the body of `m` in ascending field order (spec §3.3).
pub(super) fn encode_body(m: &Message, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    if let Some(id) = m.stream_id {
        write_varint_field(out, F_STREAM_ID, u64::from(id));
    }
    if let Some(resource) = &m.resource {
        write_value_field(out, F_RESOURCE, resource)?;
    }
    // Field 3 is the payload, or the reason of a DISCONNECT (the table never allows both).
    if let Some(payload) = m.payload.as_ref().or(m.reason.as_ref()) {
        write_value_field(out, F_PAYLOAD, payload)?;
    }
    let four = match m.kind {
        MessageType::Connect => match m.auth_type {
            None => None,
            Some(AuthType::Credentials) => Some(u64::from(AUTH_CREDENTIALS)),
            Some(AuthType::Certificate) => Some(u64::from(AUTH_CERTIFICATE)),
            Some(AuthType::Other(n)) if n == AUTH_CREDENTIALS || n == AUTH_CERTIFICATE => {
                return Err(EncodeError::AmbiguousAuthType(n, Dialect::Draft2020));
            }
            Some(AuthType::Other(n)) => Some(u64::from(n)),
        },
        MessageType::Run => m.action.map(u64::from),
        MessageType::StartStream => match m.interval_ms {
            None => None,
            Some(ms) if ms % 1000 != 0 => return Err(EncodeError::IntervalNotWholeSeconds(ms)),
            Some(ms) if ms / 1000 > u64::from(u32::MAX) => {
                return Err(EncodeError::OutOfRange("interval_ms"));
            }
            Some(ms) => Some(ms / 1000),
        },
        _ => None,
    };
    if let Some(value) = four {
        write_varint_field(out, F_FOUR, value);
    }
    if let Some(ka) = m.keep_alive {
        write_varint_field(out, F_FIVE, u64::from(ka));
    }
    Ok(())
}

/// Reads one field at `pos`; returns (field id, wire type, value, next position).
fn read_field(
    body: &[u8],
    pos: usize,
) -> Result<(u32, u8, Value, usize), (MessageErrorKind, usize)> {
    let rest = body.get(pos..).unwrap_or_default();
    let (raw_key, key_len) = match varint::read(rest, 5, u64::from(u32::MAX)) {
        Ok(k) => k,
        Err(VarintError::Truncated) => return Err((MessageErrorKind::Truncated, pos)),
        Err(_) => return Err((MessageErrorKind::KeyTooLong, pos)),
    };
    if raw_key > 0x7F {
        return Err((MessageErrorKind::KeyAbove7F, pos));
    }
    let field = (raw_key & 0x0F) as u32;
    let wire_type = (raw_key >> 4) as u8;
    let at = pos + key_len;
    let rest = body.get(at..).unwrap_or_default();
    let (value, used) = match wire_type {
        WT_VARINT => match varint::read(rest, 10, u64::MAX) {
            Ok((v, used)) => (Value::UInt(v), used),
            Err(VarintError::Truncated) => return Err((MessageErrorKind::Truncated, at)),
            Err(_) => return Err((MessageErrorKind::BadVarint, at)),
        },
        WT_FIXED64 => match rest.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
            Some(b) => (Value::F64(f64::from_le_bytes(b)), 8),
            None => return Err((MessageErrorKind::TruncatedFixed(64), at)),
        },
        WT_FIXED32 => match rest.get(..4).and_then(|b| <[u8; 4]>::try_from(b).ok()) {
            Some(b) => (Value::F32(f32::from_le_bytes(b)), 4),
            None => return Err((MessageErrorKind::TruncatedFixed(32), at)),
        },
        WT_BYTES => {
            let (len, len_len) = match varint::read(rest, 5, u64::from(u32::MAX)) {
                Ok(l) => l,
                Err(VarintError::Truncated) => return Err((MessageErrorKind::Truncated, at)),
                Err(_) => return Err((MessageErrorKind::BadVarint, at)),
            };
            let start = len_len;
            let end = start.saturating_add(len as usize);
            match rest.get(start..end) {
                Some(bytes) => (Value::Bytes(bytes.to_vec()), end),
                None => return Err((MessageErrorKind::LengthExceedsRemaining, at)),
            }
        }
        WT_PSON => match protoson::decode_prefix(rest) {
            Ok(decoded) => decoded,
            Err(e) => return Err((MessageErrorKind::Value(e.kind), at + e.offset)),
        },
        other => {
            return Err((
                MessageErrorKind::InvalidWireType {
                    dialect: Dialect::Draft2020,
                    wire_type: other,
                },
                pos,
            ));
        }
    };
    Ok((field, wire_type, value, at + used))
}

/// Decodes a 2020 body of a known message type.
pub(super) fn decode_body(
    kind: MessageType,
    data_kind: Option<StreamKind>,
    body: &[u8],
) -> Result<Message, MessageError> {
    let mut scan = Scan::default();
    let mut pos = 0;
    while pos < body.len() {
        match read_field(body, pos) {
            Ok((field, wire_type, value, next)) => {
                scan.record(field, wire_type, value);
                pos = next;
            }
            Err((error, offset)) => {
                return Err(MessageError {
                    kind: error,
                    offset,
                    message_type: Some(kind),
                    stream_id: scan.last_valid_stream_id,
                });
            }
        }
    }
    build(kind, data_kind, &mut scan, body.len())
}

fn build(
    kind: MessageType,
    data_kind: Option<StreamKind>,
    scan: &mut Scan,
    end: usize,
) -> Result<Message, MessageError> {
    use MessageType as T;
    let fail = |scan: &Scan, e: MessageErrorKind| scan.content_error(kind, e, end);
    let mut m = Message::new(kind);
    if kind == T::KeepAlive {
        return Ok(m);
    }
    if let Some(id) = scan.take_stream_id() {
        m.stream_id = Some(id.map_err(|e| fail(scan, e))?);
    }
    let resource = scan.take(usize::from(F_RESOURCE));
    let three = scan.take(usize::from(F_PAYLOAD));
    let four = scan.take(usize::from(F_FOUR));
    let five = scan.take(usize::from(F_FIVE));
    match kind {
        T::Ok | T::Error => m.payload = three,
        T::Run => {
            m.resource = resource;
            m.payload = three;
            if let Some(v) = four {
                m.action = Some(fields::uint32(v, "action").map_err(|e| fail(scan, e))?);
            }
        }
        T::StartStream => {
            m.resource = resource;
            if let Some(v) = four {
                let seconds = fields::uint32(v, "interval_ms").map_err(|e| fail(scan, e))?;
                m.interval_ms = Some(u64::from(seconds) * 1000);
            }
        }
        T::Describe => m.resource = resource,
        T::Connect => {
            m.payload = three;
            if let Some(v) = four {
                m.auth_type = Some(
                    match fields::uint32(v, "auth_type").map_err(|e| fail(scan, e))? {
                        AUTH_CREDENTIALS => AuthType::Credentials,
                        AUTH_CERTIFICATE => AuthType::Certificate,
                        n => AuthType::Other(n),
                    },
                );
            }
            if let Some(v) = five {
                m.keep_alive = Some(fields::uint32(v, "keep_alive").map_err(|e| fail(scan, e))?);
            }
        }
        T::Disconnect => m.reason = three,
        T::StreamData => {
            m.payload = three;
            m.data_kind = data_kind;
        }
        T::StopStream | T::KeepAlive => {}
    }
    let needs_stream_id = !matches!(kind, T::Run | T::Disconnect);
    if needs_stream_id && m.stream_id.is_none() {
        return Err(fail(scan, MessageErrorKind::MissingField("stream_id")));
    }
    let missing = match kind {
        T::Run if m.resource.is_none() => Some("resource"),
        T::Connect | T::StreamData if m.payload.is_none() => Some("payload"),
        _ => None,
    };
    if let Some(field) = missing {
        return Err(fail(scan, MessageErrorKind::MissingField(field)));
    }
    Ok(m)
}
