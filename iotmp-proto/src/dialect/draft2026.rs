//! Dialect 2026 (spec chapter 4): keys `field << 3 | wire_type`, PSON v2 or Protoson values.

use super::fields::{self, Scan};
use super::{Dialect, EncodeError, MessageError, MessageErrorKind};
use crate::message::{AuthType, Message, MessageType};
use crate::pson::{Flavour, ValueError, protoson, v2};
use crate::value::{Map, Value};
use crate::varint::{self, VarintError};

const WT_VARINT: u8 = 0;
const WT_PROTOSON: u8 = 1;
const WT_PSON_V2: u8 = 2;

const F_STREAM_ID: u8 = 1;
const F_PARAMS: u8 = 2;
const F_PAYLOAD: u8 = 3;
const F_RESOURCE: u8 = 4;

const AT_CREDENTIALS: u32 = 0;
const AT_CERTIFICATE: u32 = 4;
/// A bare params number on a legacy CONNECT meaning "credentials".
const LEGACY_CREDENTIALS: u64 = 1;

const KEY_PV: &str = "pv";
const KEY_KA: &str = "ka";
const KEY_AT: &str = "at";
const KEY_INTERVAL: &str = "interval";

fn key(field: u8, wire_type: u8) -> u8 {
    field << 3 | wire_type
}

/// Writes a field: a UInt ≤ 2^32−1 as a varint, anything else as a value in `flavour`.
fn write_field(
    out: &mut Vec<u8>,
    field: u8,
    value: &Value,
    flavour: Flavour,
) -> Result<(), EncodeError> {
    match value {
        Value::UInt(n) if *n <= u64::from(u32::MAX) => {
            out.push(key(field, WT_VARINT));
            varint::write(out, *n);
        }
        _ => match flavour {
            Flavour::V2 => {
                out.push(key(field, WT_PSON_V2));
                v2::encode(value, out)?;
            }
            Flavour::V1 => {
                out.push(key(field, WT_PROTOSON));
                protoson::encode(value, out)?;
            }
        },
    }
    Ok(())
}

fn connect_params(m: &Message) -> Result<Option<Value>, EncodeError> {
    let mut map = Map::new();
    if let Some(pv) = m.pson_version {
        map.insert(KEY_PV, pv);
    }
    if let Some(ka) = m.keep_alive {
        map.insert(KEY_KA, ka);
    }
    match m.auth_type {
        None => {}
        Some(AuthType::Credentials) => {
            map.insert(KEY_AT, AT_CREDENTIALS);
        }
        Some(AuthType::Certificate) => {
            map.insert(KEY_AT, AT_CERTIFICATE);
        }
        Some(AuthType::Other(n)) if n == AT_CREDENTIALS || n == AT_CERTIFICATE => {
            return Err(EncodeError::AmbiguousAuthType(n, Dialect::Draft2026));
        }
        Some(AuthType::Other(n)) => {
            map.insert(KEY_AT, n);
        }
    }
    match &m.params {
        None => {}
        Some(Value::Map(extra)) if extra.is_empty() => {
            return Err(EncodeError::AmbiguousParams(
                "CONNECT extra params must not be an empty map (it would decode as absent)",
            ));
        }
        Some(Value::Map(extra)) => {
            for (k, v) in extra {
                if k == KEY_PV || k == KEY_KA || k == KEY_AT {
                    return Err(EncodeError::AmbiguousParams(
                        "CONNECT extra params must not use the keys pv, ka or at",
                    ));
                }
                map.insert(k, v.clone());
            }
        }
        Some(_) => {
            return Err(EncodeError::AmbiguousParams(
                "CONNECT extra params must be a map",
            ));
        }
    }
    Ok(if map.is_empty() {
        None
    } else {
        Some(Value::Map(map))
    })
}

fn start_stream_params(m: &Message) -> Result<Option<Value>, EncodeError> {
    match (m.interval_ms, &m.params) {
        (None, None) => Ok(None),
        (None, Some(Value::UInt(_))) => Err(EncodeError::AmbiguousParams(
            "START_STREAM params that are a bare number would decode as the interval",
        )),
        (None, Some(Value::Map(p))) if p.contains_key(KEY_INTERVAL) => {
            Err(EncodeError::AmbiguousParams(
                "START_STREAM params holding \"interval\" would decode as the interval",
            ))
        }
        (None, Some(p)) => Ok(Some(p.clone())),
        (Some(ms), extra) => {
            let mut map = Map::new();
            map.insert(KEY_INTERVAL, ms);
            match extra {
                None => {}
                Some(Value::Map(p)) if p.is_empty() => {
                    return Err(EncodeError::AmbiguousParams(
                        "START_STREAM extra params must not be an empty map (it would decode as absent)",
                    ));
                }
                Some(Value::Map(p)) => {
                    for (k, v) in p {
                        if k == KEY_INTERVAL {
                            return Err(EncodeError::AmbiguousParams(
                                "START_STREAM extra params must not hold \"interval\"",
                            ));
                        }
                        map.insert(k, v.clone());
                    }
                }
                Some(_) => {
                    return Err(EncodeError::AmbiguousParams(
                        "START_STREAM extra params must be a map when an interval is set",
                    ));
                }
            }
            Ok(Some(Value::Map(map)))
        }
    }
}

/// Writes the body of `m` in the canonical order of spec §4.3.
pub(super) fn encode_body(
    m: &Message,
    flavour: Flavour,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    if let Some(id) = m.stream_id {
        out.push(key(F_STREAM_ID, WT_VARINT));
        varint::write(out, u64::from(id));
    }
    let params = match m.kind {
        MessageType::Connect => connect_params(m)?,
        MessageType::StartStream => start_stream_params(m)?,
        MessageType::Disconnect => m.reason.clone(),
        _ => m.params.clone(),
    };
    let resource_first = matches!(m.kind, MessageType::StartStream | MessageType::Describe);
    let resource = m.resource.as_ref();
    if resource_first && let Some(r) = resource {
        write_field(out, F_RESOURCE, r, flavour)?;
    }
    if let Some(p) = &params {
        write_field(out, F_PARAMS, p, flavour)?;
    }
    if !resource_first && let Some(r) = resource {
        write_field(out, F_RESOURCE, r, flavour)?;
    }
    if let Some(payload) = &m.payload {
        write_field(out, F_PAYLOAD, payload, flavour)?;
    }
    Ok(())
}

/// Reads the field at `pos` into `scan`; returns the position after it.
#[inline(always)]
fn read_field(
    body: &[u8],
    pos: usize,
    scan: &mut Scan,
) -> Result<usize, (MessageErrorKind, usize)> {
    let rest = body.get(pos..).unwrap_or_default();
    let (raw_key, key_len) = match varint::read(rest, 5, u64::from(u32::MAX)) {
        Ok(k) => k,
        Err(VarintError::Truncated) => return Err((MessageErrorKind::Truncated, pos)),
        Err(_) => return Err((MessageErrorKind::KeyTooLong, pos)),
    };
    let field = (raw_key >> 3) as u32;
    let wire_type = (raw_key & 0x07) as u8;
    let at = pos + key_len;
    let rest = body.get(at..).unwrap_or_default();
    let used = match wire_type {
        WT_VARINT => match varint::read(rest, 10, u64::MAX) {
            Ok((v, used)) => {
                scan.record_uint(field, wire_type, v);
                used
            }
            Err(VarintError::Truncated) => return Err((MessageErrorKind::Truncated, at)),
            Err(_) => return Err((MessageErrorKind::BadVarint, at)),
        },
        WT_PSON_V2 => {
            let error = |e: ValueError| (MessageErrorKind::Value(e.kind), at + e.offset);
            // Fields 2 to 5 are decoded in place (moving a value just built is slow), field 1 and
            // unknown fields through a local.
            match scan.value_slot(field, wire_type) {
                Some(slot) => v2::decode_prefix_into(rest, slot).map_err(error)?,
                None => {
                    let mut value = Value::Null;
                    let used = v2::decode_prefix_into(rest, &mut value).map_err(error)?;
                    scan.record(field, wire_type, value);
                    used
                }
            }
        }
        WT_PROTOSON => match protoson::decode_prefix(rest) {
            Ok((value, used)) => {
                scan.record(field, wire_type, value);
                used
            }
            Err(e) => return Err((MessageErrorKind::Value(e.kind), at + e.offset)),
        },
        other => {
            return Err((
                MessageErrorKind::InvalidWireType {
                    dialect: Dialect::Draft2026,
                    wire_type: other,
                },
                pos,
            ));
        }
    };
    Ok(at + used)
}

/// Decodes a 2026 body of a known message type; sets `flavour` to the flavour of its payload
/// field (when the message decodes and has one).
pub(super) fn decode_body(
    kind: MessageType,
    body: &[u8],
    flavour: &mut Option<Flavour>,
) -> Result<Message, MessageError> {
    let mut scan = Scan::default();
    let mut pos = 0;
    while pos < body.len() {
        match read_field(body, pos, &mut scan) {
            Ok(next) => pos = next,
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
    *flavour = scan.wire_type(usize::from(F_PAYLOAD)).map(|wt| {
        if wt == WT_PROTOSON {
            Flavour::V1
        } else {
            Flavour::V2
        }
    });
    build(kind, &mut scan, body.len())
}

fn take_u32(map: &mut Map, key: &str, name: &'static str) -> Result<Option<u32>, MessageErrorKind> {
    map.remove(key).map(|v| fields::uint32(v, name)).transpose()
}

/// The message from the scanned fields, or the first content error (spec §7.2).
///
/// The fields are gathered in locals and the message is built in one piece at the end, which
/// lets it be written straight into the caller's return slot.
fn build(kind: MessageType, scan: &mut Scan, end: usize) -> Result<Message, MessageError> {
    use MessageType as T;
    let fail = |scan: &Scan, e: MessageErrorKind| scan.content_error(kind, e, end);
    if kind == T::KeepAlive {
        return Ok(Message::new(kind));
    }
    let stream_id = match scan.take_stream_id() {
        Some(Ok(id)) => Some(id),
        Some(Err(e)) => return Err(fail(scan, e)),
        None => None,
    };
    let params = scan.take(usize::from(F_PARAMS));
    let payload = scan.take(usize::from(F_PAYLOAD));
    let resource = scan.take(usize::from(F_RESOURCE));
    let mut m_resource = None;
    let mut m_params = None;
    let mut reason = None;
    let mut auth_type = None;
    let mut keep_alive = None;
    let mut pson_version = None;
    let mut interval_ms = None;
    match kind {
        T::Ok | T::Error | T::StopStream | T::StreamData => m_params = params,
        T::Run | T::Describe => {
            m_params = params;
            m_resource = resource;
        }
        T::Disconnect => reason = params,
        T::Connect => match params {
            None => {}
            Some(Value::Map(mut map)) => {
                let parsed = (|| {
                    let pv = take_u32(&mut map, KEY_PV, "pv")?;
                    let ka = take_u32(&mut map, KEY_KA, "ka")?;
                    let at = take_u32(&mut map, KEY_AT, "at")?;
                    Ok::<_, MessageErrorKind>((pv, ka, at))
                })();
                let (pv, ka, at) = parsed.map_err(|e| fail(scan, e))?;
                pson_version = pv;
                keep_alive = ka;
                auth_type = at.map(|n| match n {
                    AT_CREDENTIALS => AuthType::Credentials,
                    AT_CERTIFICATE => AuthType::Certificate,
                    n => AuthType::Other(n),
                });
                if !map.is_empty() {
                    m_params = Some(Value::Map(map));
                }
            }
            Some(Value::UInt(n)) => {
                auth_type = Some(if n == LEGACY_CREDENTIALS {
                    AuthType::Credentials
                } else {
                    AuthType::Other(
                        u32::try_from(n)
                            .map_err(|_| fail(scan, MessageErrorKind::IllTyped("auth_type")))?,
                    )
                });
            }
            Some(_) => return Err(fail(scan, MessageErrorKind::BadShape("params"))),
        },
        T::StartStream => {
            m_resource = resource;
            match params {
                None => {}
                Some(Value::UInt(ms)) => interval_ms = Some(ms),
                Some(Value::Map(mut map)) if map.contains_key(KEY_INTERVAL) => {
                    match map.remove(KEY_INTERVAL) {
                        Some(Value::UInt(ms)) => interval_ms = Some(ms),
                        _ => return Err(fail(scan, MessageErrorKind::IllTyped("interval"))),
                    }
                    if !map.is_empty() {
                        m_params = Some(Value::Map(map));
                    }
                }
                Some(other) => m_params = Some(other),
            }
        }
        T::KeepAlive => {}
    }
    if !matches!(kind, T::Run | T::Disconnect) && stream_id.is_none() {
        return Err(fail(scan, MessageErrorKind::MissingField("stream_id")));
    }
    let missing = match kind {
        T::Run if m_resource.is_none() => Some("resource"),
        T::Connect if payload.is_none() => Some("payload"),
        _ => None,
    };
    if let Some(field) = missing {
        return Err(fail(scan, MessageErrorKind::MissingField(field)));
    }
    Ok(Message {
        kind,
        stream_id,
        resource: m_resource,
        params: m_params,
        payload,
        reason,
        auth_type,
        keep_alive,
        pson_version,
        interval_ms,
        action: None,
        data_kind: None,
    })
}
