//! What both dialect codecs share: which model fields each dialect carries per message type, and
//! the field scan that collects a body's fields before the typed checks.

use super::{Dialect, EncodeError, MessageError, MessageErrorKind};
use crate::message::{Message, MessageType};
use crate::value::Value;

/// The model fields, named as in the vector files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Field {
    StreamId,
    Resource,
    Params,
    Payload,
    Reason,
    AuthType,
    KeepAlive,
    PsonVersion,
    IntervalMs,
    Action,
    DataKind,
}

impl Field {
    const fn name(self) -> &'static str {
        match self {
            Field::StreamId => "stream_id",
            Field::Resource => "resource",
            Field::Params => "params",
            Field::Payload => "payload",
            Field::Reason => "reason",
            Field::AuthType => "auth_type",
            Field::KeepAlive => "keep_alive",
            Field::PsonVersion => "pson_version",
            Field::IntervalMs => "interval_ms",
            Field::Action => "action",
            Field::DataKind => "kind",
        }
    }
}

fn set_fields(m: &Message) -> [(Field, bool); 11] {
    [
        (Field::StreamId, m.stream_id.is_some()),
        (Field::Resource, m.resource.is_some()),
        (Field::Params, m.params.is_some()),
        (Field::Payload, m.payload.is_some()),
        (Field::Reason, m.reason.is_some()),
        (Field::AuthType, m.auth_type.is_some()),
        (Field::KeepAlive, m.keep_alive.is_some()),
        (Field::PsonVersion, m.pson_version.is_some()),
        (Field::IntervalMs, m.interval_ms.is_some()),
        (Field::Action, m.action.is_some()),
        (Field::DataKind, m.data_kind.is_some()),
    ]
}

/// The spec §2.5 table: may `field` be set on `kind` when encoding `dialect`?
fn carries(dialect: Dialect, kind: MessageType, field: Field) -> bool {
    use Field as F;
    use MessageType as T;
    let d2020 = dialect == Dialect::Draft2020;
    match kind {
        T::KeepAlive => false,
        T::Ok | T::Error => {
            matches!(field, F::StreamId | F::Payload) || (!d2020 && field == F::Params)
        }
        T::Run => {
            matches!(field, F::StreamId | F::Resource | F::Payload)
                || (d2020 && field == F::Action)
                || (!d2020 && field == F::Params)
        }
        T::StartStream => {
            matches!(field, F::StreamId | F::Resource | F::IntervalMs)
                || (!d2020 && matches!(field, F::Params | F::Payload))
        }
        T::StopStream => {
            field == F::StreamId || (!d2020 && matches!(field, F::Params | F::Payload))
        }
        T::Describe => {
            matches!(field, F::StreamId | F::Resource)
                || (!d2020 && matches!(field, F::Params | F::Payload))
        }
        T::Connect => {
            matches!(field, F::StreamId | F::Payload | F::AuthType | F::KeepAlive)
                || (!d2020 && matches!(field, F::PsonVersion | F::Params))
        }
        T::Disconnect => {
            matches!(field, F::StreamId | F::Reason) || (!d2020 && field == F::Payload)
        }
        T::StreamData => {
            matches!(field, F::StreamId | F::Payload | F::DataKind)
                || (!d2020 && field == F::Params)
        }
    }
}

/// Fails on the first set field that `dialect` cannot carry for the message's type, and on an
/// absent mandatory field.
pub(super) fn check_representable(dialect: Dialect, m: &Message) -> Result<(), EncodeError> {
    for (field, set) in set_fields(m) {
        if set && !carries(dialect, m.kind, field) {
            return Err(EncodeError::NotRepresentable {
                dialect,
                message_type: m.kind,
                field: field.name(),
            });
        }
    }
    use MessageType as T;
    let needs_stream_id = matches!(
        m.kind,
        T::Ok
            | T::Error
            | T::StartStream
            | T::StopStream
            | T::Describe
            | T::Connect
            | T::StreamData
    );
    if needs_stream_id && m.stream_id.is_none() {
        return Err(EncodeError::MissingField("stream_id"));
    }
    if m.kind == T::Run && m.resource.is_none() {
        return Err(EncodeError::MissingField("resource"));
    }
    if m.kind == T::Connect && m.payload.is_none() {
        return Err(EncodeError::MissingField("payload"));
    }
    if m.kind == T::StreamData && dialect == Dialect::Draft2020 && m.payload.is_none() {
        return Err(EncodeError::MissingField("payload"));
    }
    Ok(())
}

/// The fields of one body after the scan: the last occurrence of each of fields 1 to 5.
///
/// Field 1 is kept as what matters about it, the stream id it holds or the fact that it holds
/// none, rather than as a [`Value`]; fields 2 to 5 are kept as values.
#[derive(Default)]
pub(super) struct Scan {
    /// Field 1: `None` when absent, `Some(None)` when its last occurrence is not a UInt ≤ 65535.
    stream_id: Option<Option<u16>>,
    /// Fields 2 to 5.
    slots: [Option<Value>; 4],
    wire_types: [u8; 5],
    /// The last field-1 value that was a valid stream id (spec §7.2: the one the reply uses).
    pub(super) last_valid_stream_id: Option<u16>,
}

impl Scan {
    /// Records an occurrence of `field` holding `value`.
    #[inline]
    pub(super) fn record(&mut self, field: u32, wire_type: u8, value: Value) {
        if field == 1 {
            let id = match value {
                Value::UInt(id) => u16::try_from(id).ok(),
                _ => None,
            };
            self.record_stream_id(wire_type, id);
        } else if let Some(slot) = self.value_slot(field, wire_type) {
            *slot = value;
        }
    }

    /// Records an occurrence of field 2 to 5 and returns the place for its value (null until the
    /// caller decodes the value into it); `None` for other fields.
    #[inline]
    pub(super) fn value_slot(&mut self, field: u32, wire_type: u8) -> Option<&mut Value> {
        let index = field.wrapping_sub(2) as usize;
        let (slot, wt) = (
            self.slots.get_mut(index)?,
            self.wire_types.get_mut(index.wrapping_add(1))?,
        );
        *wt = wire_type;
        Some(slot.insert(Value::Null))
    }

    /// Records an occurrence of `field` holding the UInt `n`, as [`Scan::record`] would.
    #[inline]
    pub(super) fn record_uint(&mut self, field: u32, wire_type: u8, n: u64) {
        if field == 1 {
            self.record_stream_id(wire_type, u16::try_from(n).ok());
        } else if let Some(slot) = self.value_slot(field, wire_type) {
            *slot = Value::UInt(n);
        }
    }

    #[inline]
    fn record_stream_id(&mut self, wire_type: u8, id: Option<u16>) {
        if id.is_some() {
            self.last_valid_stream_id = id;
        }
        self.stream_id = Some(id);
        if let Some(wt) = self.wire_types.first_mut() {
            *wt = wire_type;
        }
    }

    /// Removes and returns field 1 as a stream id (an error if its last occurrence was not a UInt
    /// ≤ 65535), if it occurred.
    #[inline]
    pub(super) fn take_stream_id(&mut self) -> Option<Result<u16, MessageErrorKind>> {
        self.stream_id
            .take()
            .map(|id| id.ok_or(MessageErrorKind::IllTyped("stream_id")))
    }

    /// Removes and returns field `id` (2 to 5).
    #[inline]
    pub(super) fn take(&mut self, id: usize) -> Option<Value> {
        self.slots
            .get_mut(id.wrapping_sub(2))
            .and_then(Option::take)
    }

    /// The wire type of the last occurrence of field `id` (1 to 5), if it occurred and its value
    /// was not taken yet.
    pub(super) fn wire_type(&self, id: usize) -> Option<u8> {
        let index = id.wrapping_sub(1);
        let present = match index {
            0 => self.stream_id.is_some(),
            _ => matches!(self.slots.get(index.wrapping_sub(1)), Some(Some(_))),
        };
        if present {
            self.wire_types.get(index).copied()
        } else {
            None
        }
    }

    /// A content error (found after the scan) for a message of `kind`.
    pub(super) fn content_error(
        &self,
        message_type: MessageType,
        kind: MessageErrorKind,
        offset: usize,
    ) -> MessageError {
        MessageError {
            kind,
            offset,
            message_type: Some(message_type),
            stream_id: self.last_valid_stream_id,
        }
    }
}

/// An integer field with the range 0 ..= 2^32−1.
pub(super) fn uint32(value: Value, name: &'static str) -> Result<u32, MessageErrorKind> {
    match value {
        Value::UInt(n) => u32::try_from(n).map_err(|_| MessageErrorKind::IllTyped(name)),
        _ => Err(MessageErrorKind::IllTyped(name)),
    }
}
