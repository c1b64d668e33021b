//! The message JSON form of the vector files (`vectors/README.md` §4): the model of spec §2.5 with
//! tagged-JSON values. `iotmp decode` prints it and `iotmp encode` reads it.

use serde_json::{Number, Value as Json};
use thiserror::Error;

use super::tagged::{TaggedError, from_tagged, to_tagged};
use crate::message::{AuthType, Message, MessageType, StreamKind};

/// Message JSON that does not describe a message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MessageJsonError {
    /// Not a JSON object.
    #[error("a message must be a JSON object")]
    NotAnObject,
    /// `type` absent or not one of the ten names.
    #[error(
        "\"type\" must be one of OK, ERROR, KEEP_ALIVE, RUN, START_STREAM, STOP_STREAM, DESCRIBE, CONNECT, DISCONNECT, STREAM_DATA"
    )]
    BadType,
    /// A member this form does not define.
    #[error("unknown member {0:?}")]
    UnknownMember(String),
    /// An integer member out of its range or of the wrong type.
    #[error("{0} out of range")]
    OutOfRange(&'static str),
    /// `kind` other than "sample" / "event".
    #[error("\"kind\" must be \"sample\" or \"event\"")]
    BadKind,
    /// `auth_type` of the wrong shape.
    #[error("\"auth_type\" must be \"credentials\", \"certificate\" or {{\"other\": n}}")]
    BadAuthType,
    /// A value member that is not valid tagged JSON.
    #[error("{member}: {source}")]
    Value {
        /// The member.
        member: &'static str,
        /// What was wrong.
        source: TaggedError,
    },
}

/// The JSON object of `message`, members in a fixed, readable order.
pub fn message_to_json(message: &Message) -> Json {
    let mut o = serde_json::Map::new();
    o.insert("type".into(), Json::String(message.kind.name().into()));
    if let Some(id) = message.stream_id {
        o.insert("stream_id".into(), Json::Number(Number::from(id)));
    }
    if let Some(kind) = message.data_kind {
        let name = match kind {
            StreamKind::Sample => "sample",
            StreamKind::Event => "event",
        };
        o.insert("kind".into(), Json::String(name.into()));
    }
    if let Some(auth) = message.auth_type {
        let json = match auth {
            AuthType::Credentials => Json::String("credentials".into()),
            AuthType::Certificate => Json::String("certificate".into()),
            AuthType::Other(n) => serde_json::json!({ "other": n }),
        };
        o.insert("auth_type".into(), json);
    }
    for (name, value) in [
        ("keep_alive", message.keep_alive),
        ("pson_version", message.pson_version),
        ("action", message.action),
    ] {
        if let Some(v) = value {
            o.insert(name.into(), Json::Number(Number::from(v)));
        }
    }
    if let Some(v) = &message.resource {
        o.insert("resource".into(), to_tagged(v));
    }
    if let Some(ms) = message.interval_ms {
        o.insert("interval_ms".into(), Json::Number(Number::from(ms)));
    }
    for (name, value) in [
        ("params", &message.params),
        ("reason", &message.reason),
        ("payload", &message.payload),
    ] {
        if let Some(v) = value {
            o.insert(name.into(), to_tagged(v));
        }
    }
    Json::Object(o)
}

fn integer(json: &Json, member: &'static str, max: u64) -> Result<u64, MessageJsonError> {
    json.as_u64()
        .filter(|&n| n <= max)
        .ok_or(MessageJsonError::OutOfRange(member))
}

/// The message a JSON object describes. Unknown members are errors, so typos do not vanish.
pub fn message_from_json(json: &Json) -> Result<Message, MessageJsonError> {
    let object = json.as_object().ok_or(MessageJsonError::NotAnObject)?;
    let kind = object
        .get("type")
        .and_then(Json::as_str)
        .and_then(MessageType::from_name)
        .ok_or(MessageJsonError::BadType)?;
    let mut m = Message::new(kind);
    let value = |member: &'static str, json: &Json| {
        from_tagged(json).map_err(|source| MessageJsonError::Value { member, source })
    };
    for (name, member) in object {
        match name.as_str() {
            "type" => {}
            "stream_id" => {
                m.stream_id = Some(integer(member, "stream_id", u64::from(u16::MAX))? as u16)
            }
            "keep_alive" => {
                m.keep_alive = Some(integer(member, "keep_alive", u64::from(u32::MAX))? as u32)
            }
            "pson_version" => {
                m.pson_version = Some(integer(member, "pson_version", u64::from(u32::MAX))? as u32)
            }
            "action" => m.action = Some(integer(member, "action", u64::from(u32::MAX))? as u32),
            "interval_ms" => m.interval_ms = Some(integer(member, "interval_ms", u64::MAX)?),
            "resource" => m.resource = Some(value("resource", member)?),
            "params" => m.params = Some(value("params", member)?),
            "reason" => m.reason = Some(value("reason", member)?),
            "payload" => m.payload = Some(value("payload", member)?),
            "kind" => {
                m.data_kind = Some(match member.as_str() {
                    Some("sample") => StreamKind::Sample,
                    Some("event") => StreamKind::Event,
                    _ => return Err(MessageJsonError::BadKind),
                })
            }
            "auth_type" => {
                m.auth_type = Some(match member {
                    Json::String(s) if s == "credentials" => AuthType::Credentials,
                    Json::String(s) if s == "certificate" => AuthType::Certificate,
                    Json::Object(o) if o.len() == 1 => {
                        let n = o
                            .get("other")
                            .and_then(Json::as_u64)
                            .ok_or(MessageJsonError::BadAuthType)?;
                        AuthType::Other(
                            u32::try_from(n).map_err(|_| MessageJsonError::BadAuthType)?,
                        )
                    }
                    _ => return Err(MessageJsonError::BadAuthType),
                })
            }
            other => return Err(MessageJsonError::UnknownMember(other.to_owned())),
        }
    }
    Ok(m)
}
