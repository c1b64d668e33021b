//! Error information in ERROR messages (spec §6.10) and the malformed reply (spec §7.3).
//!
//! 2026 carries the code in params and the text in the payload map `{"error": text}`; 2020 has no
//! params field, so both go into the payload map `{"error": text, "code": n}`.

use super::Dialect;
use crate::message::{Message, MessageType};
use crate::value::{Map, Value};

const KEY_ERROR: &str = "error";
const KEY_CODE: &str = "code";

/// Code and text of the malformed reply (spec §7.3).
pub const MALFORMED_CODE: u32 = 400;
/// Text of the malformed reply (spec §7.3).
pub const MALFORMED_TEXT: &str = "malformed message";

/// The code and text an ERROR carries, as far as present (spec §6.10, §8.5).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrorInfo {
    /// The numeric code, if any.
    pub code: Option<u64>,
    /// The human-readable message, if any.
    pub text: Option<String>,
    /// Whether the ERROR carried a payload at all: spec §8.5 maps an ERROR with neither code
    /// nor payload to 404 and one with a payload but no usable code to 500.
    pub has_payload: bool,
}

impl Dialect {
    /// An ERROR for request `stream_id` with an optional code and text, laid out for this dialect.
    pub fn error_message(self, stream_id: u16, code: Option<u32>, text: Option<&str>) -> Message {
        let mut m = Message::new(MessageType::Error).with_stream_id(stream_id);
        let mut payload = Map::new();
        if let Some(text) = text {
            payload.insert(KEY_ERROR, text);
        }
        match self {
            Dialect::Draft2026 => m.params = code.map(Value::from),
            Dialect::Draft2020 => {
                if let Some(code) = code {
                    payload.insert(KEY_CODE, code);
                }
            }
        }
        if !payload.is_empty() {
            m.payload = Some(Value::Map(payload));
        }
        m
    }

    /// The reply to a malformed request that carried `stream_id` (spec §7.3).
    pub fn malformed_reply(self, stream_id: u16) -> Message {
        self.error_message(stream_id, Some(MALFORMED_CODE), Some(MALFORMED_TEXT))
    }

    /// The code and text of an ERROR (or any message) received in this dialect: 2026 reads the
    /// code from params (falling back to a payload `"code"`), 2020 from the payload.
    pub fn error_info(self, message: &Message) -> ErrorInfo {
        let payload_map = message.payload.as_ref().and_then(Value::as_map);
        let payload_code = payload_map
            .and_then(|m| m.get(KEY_CODE))
            .and_then(Value::as_u64);
        let code = match self {
            Dialect::Draft2026 => message
                .params
                .as_ref()
                .and_then(Value::as_u64)
                .or(payload_code),
            Dialect::Draft2020 => payload_code,
        };
        let text = payload_map
            .and_then(|m| m.get(KEY_ERROR))
            .and_then(Value::as_str)
            .map(str::to_owned);
        ErrorInfo {
            code,
            text,
            has_payload: message.payload.is_some(),
        }
    }
}
