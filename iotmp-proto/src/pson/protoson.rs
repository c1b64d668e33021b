//! Protoson (spec §5.3): the 2020 "PSON", also the legacy flavour of 2026.
//!
//! Every value starts with a tag `kind << 3 | protobuf wire type`; containers carry the byte size
//! of their content rather than an element count, so decoding reads each container inside a
//! window of exactly that size.

use super::{ValueEncodeError, ValueError, ValueErrorKind, varint_kind};
use crate::len_prefix;
use crate::value::{MAX_DEPTH, Map, Text, Value};
use crate::varint;

const TAG_NULL: u8 = 0x00;
const TAG_UINT: u8 = 0x08;
const TAG_NEGINT: u8 = 0x10;
const TAG_F32: u8 = 0x1D;
const TAG_F64: u8 = 0x21;
const TAG_TRUE: u8 = 0x28;
const TAG_FALSE: u8 = 0x30;
const TAG_ZERO: u8 = 0x38;
const TAG_ONE: u8 = 0x40;
const TAG_STRING: u8 = 0x4A;
const TAG_EMPTY_STRING: u8 = 0x50;
const TAG_BYTES: u8 = 0x5A;
const TAG_EMPTY_BYTES: u8 = 0x60;
const TAG_MAP: u8 = 0x6A;
const TAG_ARRAY: u8 = 0x72;
const TAG_UNDEFINED: u8 = 0x78;

const NEG_LIMIT: u64 = 1 << 63;
const U32_MAX: u64 = u32::MAX as u64;

/// Appends the Protoson encoding of `value`; on error nothing is appended.
pub fn encode(value: &Value, out: &mut Vec<u8>) -> Result<(), ValueEncodeError> {
    let start = out.len();
    let result = write_value(value, out, 0);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn write_len(out: &mut Vec<u8>, len: usize) -> Result<(), ValueEncodeError> {
    if len as u64 > U32_MAX {
        return Err(ValueEncodeError::TooLarge);
    }
    varint::write(out, len as u64);
    Ok(())
}

fn write_value(value: &Value, out: &mut Vec<u8>, depth: usize) -> Result<(), ValueEncodeError> {
    match value {
        Value::Null => out.push(TAG_NULL),
        Value::Bool(true) => out.push(TAG_TRUE),
        Value::Bool(false) => out.push(TAG_FALSE),
        Value::UInt(0) | Value::NegInt(0) => out.push(TAG_ZERO),
        Value::UInt(1) => out.push(TAG_ONE),
        Value::UInt(u) => {
            out.push(TAG_UINT);
            varint::write(out, *u);
        }
        Value::NegInt(m) if *m > NEG_LIMIT => return Err(ValueEncodeError::IntegerOutOfRange),
        Value::NegInt(m) => {
            out.push(TAG_NEGINT);
            varint::write(out, *m);
        }
        Value::F32(f) => {
            out.push(TAG_F32);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Value::F64(f) => {
            out.push(TAG_F64);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Value::Str(s) if s.is_empty() => out.push(TAG_EMPTY_STRING),
        Value::Str(s) => {
            out.push(TAG_STRING);
            write_len(out, s.len())?;
            out.extend_from_slice(s.as_bytes());
        }
        Value::Bytes(b) if b.is_empty() => out.push(TAG_EMPTY_BYTES),
        Value::Bytes(b) => {
            out.push(TAG_BYTES);
            write_len(out, b.len())?;
            out.extend_from_slice(b);
        }
        Value::Array(items) => {
            if depth >= MAX_DEPTH {
                return Err(ValueEncodeError::TooDeep);
            }
            out.push(TAG_ARRAY);
            let at = len_prefix::start(out);
            for item in items {
                write_value(item, out, depth + 1)?;
            }
            check_container(out, at)?;
            len_prefix::finish(out, at);
        }
        Value::Map(map) => {
            if depth >= MAX_DEPTH {
                return Err(ValueEncodeError::TooDeep);
            }
            out.push(TAG_MAP);
            let at = len_prefix::start(out);
            for (key, item) in map {
                write_len(out, key.len())?;
                out.extend_from_slice(key.as_bytes());
                write_value(item, out, depth + 1)?;
            }
            check_container(out, at)?;
            len_prefix::finish(out, at);
        }
    }
    Ok(())
}

fn check_container(out: &[u8], at: usize) -> Result<(), ValueEncodeError> {
    if out.len().saturating_sub(at + 1) as u64 > U32_MAX {
        Err(ValueEncodeError::TooLarge)
    } else {
        Ok(())
    }
}

/// Decodes exactly one value spanning all of `input`.
pub fn decode(input: &[u8]) -> Result<Value, ValueError> {
    let (value, used) = decode_prefix(input)?;
    if used != input.len() {
        return Err(ValueError {
            kind: ValueErrorKind::TrailingBytes,
            offset: used,
        });
    }
    Ok(value)
}

/// Decodes one value from the start of `input`; returns it and the number of bytes it used.
pub fn decode_prefix(input: &[u8]) -> Result<(Value, usize), ValueError> {
    let mut reader = Reader {
        input,
        pos: 0,
        base: 0,
    };
    let value = reader.value(0)?;
    Ok((value, reader.pos))
}

/// A cursor over a window of the input; `base` maps window positions back to input offsets.
struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    fn fail<T>(&self, kind: ValueErrorKind, window_pos: usize) -> Result<T, ValueError> {
        Err(ValueError {
            kind,
            offset: self.base + window_pos,
        })
    }

    fn remaining(&self) -> usize {
        self.input.len().saturating_sub(self.pos)
    }

    fn varint(&mut self, max_bytes: u8, max_value: u64) -> Result<u64, ValueError> {
        let rest = self.input.get(self.pos..).unwrap_or_default();
        match varint::read(rest, usize::from(max_bytes), max_value) {
            Ok((value, used)) => {
                self.pos += used;
                Ok(value)
            }
            Err(e) => self.fail(varint_kind(e, max_bytes), self.pos),
        }
    }

    fn take(&mut self, len: u64, at: usize, kind: ValueErrorKind) -> Result<&'a [u8], ValueError> {
        if len > self.remaining() as u64 {
            return self.fail(kind, at);
        }
        let start = self.pos;
        self.pos += len as usize;
        match self.input.get(start..self.pos) {
            Some(bytes) => Ok(bytes),
            None => self.fail(kind, at),
        }
    }

    fn text(&mut self, len: u64, at: usize, kind: ValueErrorKind) -> Result<Text, ValueError> {
        let bytes = self.take(len, at, kind)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(Text::from(s)),
            Err(_) => self.fail(ValueErrorKind::InvalidUtf8, at),
        }
    }

    fn fixed<const N: usize>(&mut self, at: usize) -> Result<[u8; N], ValueError> {
        match self
            .input
            .get(self.pos..self.pos + N)
            .and_then(|s| <[u8; N]>::try_from(s).ok())
        {
            Some(bytes) => {
                self.pos += N;
                Ok(bytes)
            }
            None => self.fail(ValueErrorKind::Truncated, at),
        }
    }

    /// The window holding a container's content, advancing past it.
    fn content(&mut self, at: usize) -> Result<Reader<'a>, ValueError> {
        let size = self.varint(5, U32_MAX)?;
        let start = self.pos;
        let window = self.take(size, at, ValueErrorKind::LengthExceedsRemaining)?;
        Ok(Reader {
            input: window,
            pos: 0,
            base: self.base + start,
        })
    }

    fn value(&mut self, depth: usize) -> Result<Value, ValueError> {
        let at = self.pos;
        if self.remaining() == 0 {
            return self.fail(ValueErrorKind::Truncated, at);
        }
        let tag = self.varint(5, U32_MAX)?;
        let Ok(tag) = u8::try_from(tag) else {
            return self.fail(ValueErrorKind::InvalidTag(tag), at);
        };
        match tag {
            TAG_NULL => Ok(Value::Null),
            TAG_UINT => Ok(Value::UInt(self.varint(10, u64::MAX)?)),
            TAG_NEGINT => match self.varint(10, u64::MAX)? {
                0 => Ok(Value::UInt(0)),
                m if m > NEG_LIMIT => self.fail(ValueErrorKind::NegativeOutOfRange, at),
                m => Ok(Value::NegInt(m)),
            },
            TAG_F32 => Ok(Value::F32(f32::from_le_bytes(self.fixed::<4>(at)?))),
            TAG_F64 => Ok(Value::F64(f64::from_le_bytes(self.fixed::<8>(at)?))),
            TAG_TRUE => Ok(Value::Bool(true)),
            TAG_FALSE => Ok(Value::Bool(false)),
            TAG_ZERO => Ok(Value::UInt(0)),
            TAG_ONE => Ok(Value::UInt(1)),
            TAG_STRING => {
                let len = self.varint(5, U32_MAX)?;
                Ok(Value::Str(self.text(
                    len,
                    at,
                    ValueErrorKind::LengthExceedsRemaining,
                )?))
            }
            TAG_EMPTY_STRING => Ok(Value::Str(Text::default())),
            TAG_BYTES => {
                let len = self.varint(5, U32_MAX)?;
                Ok(Value::Bytes(
                    self.take(len, at, ValueErrorKind::LengthExceedsRemaining)?
                        .to_vec(),
                ))
            }
            TAG_EMPTY_BYTES => Ok(Value::Bytes(Vec::new())),
            TAG_MAP => {
                if depth >= MAX_DEPTH {
                    return self.fail(ValueErrorKind::TooDeep, at);
                }
                let mut content = self.content(at)?;
                let mut map = Map::new();
                while content.remaining() > 0 {
                    let key_at = content.pos;
                    let key_len = content.varint(5, U32_MAX)?;
                    let key =
                        content.text(key_len, key_at, ValueErrorKind::KeyLengthExceedsContainer)?;
                    let item = content.value(depth + 1)?;
                    map.push_unchecked(key, item);
                }
                map.merge_duplicates();
                Ok(Value::Map(map))
            }
            TAG_ARRAY => {
                if depth >= MAX_DEPTH {
                    return self.fail(ValueErrorKind::TooDeep, at);
                }
                let mut content = self.content(at)?;
                let mut items = Vec::new();
                while content.remaining() > 0 {
                    items.push(content.value(depth + 1)?);
                }
                Ok(Value::Array(items))
            }
            // The empty map it stands for is a container like any other: it counts for depth.
            TAG_UNDEFINED if depth >= MAX_DEPTH => self.fail(ValueErrorKind::TooDeep, at),
            TAG_UNDEFINED => Ok(Value::Map(Map::new())),
            other => self.fail(ValueErrorKind::InvalidTag(u64::from(other)), at),
        }
    }
}
