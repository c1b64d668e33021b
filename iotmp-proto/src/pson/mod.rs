//! The two value encodings: PSON v2 (spec §5.2) and Protoson, "PSON v1" (spec §5.3).
//!
//! Both encode into a caller's `Vec<u8>` and decode from a byte slice. Decoders validate every
//! rule of the spec, bound every count and length by the bytes actually left *before* allocating,
//! and stop at [`MAX_DEPTH`](crate::value::MAX_DEPTH) nested containers, so no input can make them
//! panic, recurse without bound or allocate more than a small multiple of the input size.

pub mod protoson;
pub mod v2;

use thiserror::Error;

use crate::varint::VarintError;

/// Which value encoding a PSON field uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Flavour {
    /// PSON v2 (spec §5.2): what this project sends.
    #[default]
    V2,
    /// Protoson, the 2020 "PSON" and the legacy 2026 flavour (spec §5.3).
    V1,
}

/// What was wrong with an encoded value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ValueErrorKind {
    /// The bytes end inside the value.
    #[error("truncated value")]
    Truncated,
    /// A varint's last allowed byte still had bit 7 set.
    #[error("varint longer than {0} bytes")]
    VarintTooLong(u8),
    /// A varint exceeds its allowed range.
    #[error("varint overflow")]
    VarintOverflow,
    /// PSON v2 float with a parameter other than 0 or 1.
    #[error("invalid float kind {0}")]
    InvalidFloatKind(u64),
    /// PSON v2 discrete value other than false, true, null.
    #[error("invalid discrete value {0}")]
    InvalidDiscrete(u64),
    /// A PSON v2 map key is not a string.
    #[error("map key is not a string")]
    MapKeyNotString,
    /// A string or map key is not UTF-8.
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    /// A negative magnitude above 2^63.
    #[error("negative integer below -2^63")]
    NegativeOutOfRange,
    /// A string, bytes or container length runs past the end of the input.
    #[error("length exceeds remaining bytes")]
    LengthExceedsRemaining,
    /// An array count larger than the bytes left.
    #[error("array count exceeds remaining bytes")]
    ArrayCountExceedsRemaining,
    /// A map pair count whose double exceeds the bytes left.
    #[error("map count exceeds remaining bytes")]
    MapCountExceedsRemaining,
    /// A Protoson map key length runs past its container.
    #[error("key length exceeds container")]
    KeyLengthExceedsContainer,
    /// Containers nested deeper than the limit.
    #[error("nesting deeper than {}", crate::value::MAX_DEPTH)]
    TooDeep,
    /// A whole-value decode found bytes after the value.
    #[error("trailing bytes after value")]
    TrailingBytes,
    /// A Protoson tag outside the sixteen defined ones.
    #[error("invalid Protoson tag 0x{0:02X}")]
    InvalidTag(u64),
}

/// A value that could not be decoded, with the byte offset (from the start of the decoded slice)
/// where the problem was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("{kind} at byte {offset}")]
pub struct ValueError {
    /// What was wrong.
    pub kind: ValueErrorKind,
    /// Offset of the offending byte.
    pub offset: usize,
}

/// A value that cannot be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ValueEncodeError {
    /// A `NegInt` magnitude above 2^63 (the model's range is −2^63 ..= 2^64−1).
    #[error("integer below -2^63")]
    IntegerOutOfRange,
    /// Containers nested deeper than any receiver accepts.
    #[error("nesting deeper than {}", crate::value::MAX_DEPTH)]
    TooDeep,
    /// A Protoson length does not fit its 32-bit varint.
    #[error("value too large for Protoson")]
    TooLarge,
}

pub(crate) fn varint_kind(err: VarintError, max_bytes: u8) -> ValueErrorKind {
    match err {
        VarintError::Truncated => ValueErrorKind::Truncated,
        VarintError::TooLong => ValueErrorKind::VarintTooLong(max_bytes),
        VarintError::Overflow => ValueErrorKind::VarintOverflow,
    }
}

/// Encodes `value` in `flavour` at the end of `out`; on error nothing is appended.
pub fn encode(
    flavour: Flavour,
    value: &crate::Value,
    out: &mut Vec<u8>,
) -> Result<(), ValueEncodeError> {
    match flavour {
        Flavour::V2 => v2::encode(value, out),
        Flavour::V1 => protoson::encode(value, out),
    }
}

/// Decodes exactly one `flavour` value spanning all of `input`.
pub fn decode(flavour: Flavour, input: &[u8]) -> Result<crate::Value, ValueError> {
    match flavour {
        Flavour::V2 => v2::decode(input),
        Flavour::V1 => protoson::decode(input),
    }
}
