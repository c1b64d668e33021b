//! PSON v2 (spec §5.2): a header byte `type << 5 | param`, `param == 31` escaping to a varint.

use super::{ValueEncodeError, ValueError, ValueErrorKind, varint_kind};
use crate::value::{MAX_DEPTH, Map, Text, Value};
use crate::varint;

const T_UINT: u8 = 0;
const T_NEGINT: u8 = 1;
const T_FLOAT: u8 = 2;
const T_DISCRETE: u8 = 3;
const T_STRING: u8 = 4;
const T_BYTES: u8 = 5;
const T_MAP: u8 = 6;
const T_ARRAY: u8 = 7;

const ESCAPE: u8 = 31;
const NEG_LIMIT: u64 = 1 << 63;

/// Appends the PSON v2 encoding of `value`; on error nothing is appended.
pub fn encode(value: &Value, out: &mut Vec<u8>) -> Result<(), ValueEncodeError> {
    let start = out.len();
    let result = write_value(value, out, 0);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

#[inline]
fn write_header(out: &mut Vec<u8>, ty: u8, param: u64) {
    if param < u64::from(ESCAPE) {
        out.push(ty << 5 | param as u8);
    } else {
        out.push(ty << 5 | ESCAPE);
        varint::write(out, param);
    }
}

fn write_value(value: &Value, out: &mut Vec<u8>, depth: usize) -> Result<(), ValueEncodeError> {
    match value {
        Value::Null => out.push(T_DISCRETE << 5 | 2),
        Value::Bool(b) => out.push(T_DISCRETE << 5 | u8::from(*b)),
        Value::UInt(u) => write_header(out, T_UINT, *u),
        // NegInt(0) is not canonical; it is the integer 0.
        Value::NegInt(0) => out.push(T_UINT << 5),
        Value::NegInt(m) if *m > NEG_LIMIT => return Err(ValueEncodeError::IntegerOutOfRange),
        Value::NegInt(m) => write_header(out, T_NEGINT, *m),
        Value::F32(f) => {
            out.push(T_FLOAT << 5);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Value::F64(f) => {
            out.push(T_FLOAT << 5 | 1);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Value::Str(s) => {
            write_header(out, T_STRING, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        Value::Bytes(b) => {
            write_header(out, T_BYTES, b.len() as u64);
            out.extend_from_slice(b);
        }
        Value::Array(items) => {
            if depth >= MAX_DEPTH {
                return Err(ValueEncodeError::TooDeep);
            }
            write_header(out, T_ARRAY, items.len() as u64);
            for item in items {
                write_value(item, out, depth + 1)?;
            }
        }
        Value::Map(map) => {
            if depth >= MAX_DEPTH {
                return Err(ValueEncodeError::TooDeep);
            }
            write_header(out, T_MAP, map.len() as u64);
            for (key, item) in map {
                write_header(out, T_STRING, key.len() as u64);
                out.extend_from_slice(key.as_bytes());
                write_value(item, out, depth + 1)?;
            }
        }
    }
    Ok(())
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
    let mut reader = Reader { input, pos: 0 };
    let value = reader.value(0)?;
    Ok((value, reader.pos))
}

struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    #[inline]
    fn fail<T>(&self, kind: ValueErrorKind, offset: usize) -> Result<T, ValueError> {
        Err(ValueError { kind, offset })
    }

    #[inline]
    fn remaining(&self) -> usize {
        self.input.len().saturating_sub(self.pos)
    }

    #[inline]
    fn header(&mut self) -> Result<(u8, u64), ValueError> {
        let at = self.pos;
        let Some(&byte) = self.input.get(at) else {
            return self.fail(ValueErrorKind::Truncated, at);
        };
        self.pos += 1;
        let ty = byte >> 5;
        let param = byte & 0x1F;
        if param != ESCAPE {
            return Ok((ty, u64::from(param)));
        }
        let rest = self.input.get(self.pos..).unwrap_or_default();
        match varint::read(rest, 10, u64::MAX) {
            Ok((value, used)) => {
                self.pos += used;
                Ok((ty, value))
            }
            Err(e) => self.fail(varint_kind(e, 10), self.pos),
        }
    }

    #[inline]
    fn take(&mut self, len: u64, at: usize) -> Result<&'a [u8], ValueError> {
        if len > self.remaining() as u64 {
            return self.fail(ValueErrorKind::LengthExceedsRemaining, at);
        }
        let start = self.pos;
        let end = start + len as usize;
        self.pos = end;
        match self.input.get(start..end) {
            Some(bytes) => Ok(bytes),
            None => self.fail(ValueErrorKind::LengthExceedsRemaining, at),
        }
    }

    #[inline]
    fn text(&mut self, len: u64, at: usize) -> Result<Text, ValueError> {
        let bytes = self.take(len, at)?;
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

    fn value(&mut self, depth: usize) -> Result<Value, ValueError> {
        let at = self.pos;
        let (ty, param) = self.header()?;
        match ty {
            T_UINT => Ok(Value::UInt(param)),
            T_NEGINT => match param {
                0 => Ok(Value::UInt(0)),
                m if m > NEG_LIMIT => self.fail(ValueErrorKind::NegativeOutOfRange, at),
                m => Ok(Value::NegInt(m)),
            },
            T_FLOAT => match param {
                0 => Ok(Value::F32(f32::from_le_bytes(self.fixed::<4>(at)?))),
                1 => Ok(Value::F64(f64::from_le_bytes(self.fixed::<8>(at)?))),
                kind => self.fail(ValueErrorKind::InvalidFloatKind(kind), at),
            },
            T_DISCRETE => match param {
                0 => Ok(Value::Bool(false)),
                1 => Ok(Value::Bool(true)),
                2 => Ok(Value::Null),
                other => self.fail(ValueErrorKind::InvalidDiscrete(other), at),
            },
            T_STRING => Ok(Value::Str(self.text(param, at)?)),
            T_BYTES => Ok(Value::Bytes(self.take(param, at)?.to_vec())),
            T_MAP => {
                if depth >= MAX_DEPTH {
                    return self.fail(ValueErrorKind::TooDeep, at);
                }
                if param.saturating_mul(2) > self.remaining() as u64 {
                    return self.fail(ValueErrorKind::MapCountExceedsRemaining, at);
                }
                let count = param as usize;
                let mut map = Map::with_capacity(count);
                for _ in 0..count {
                    let key_at = self.pos;
                    let (key_ty, key_len) = self.header()?;
                    if key_ty != T_STRING {
                        return self.fail(ValueErrorKind::MapKeyNotString, key_at);
                    }
                    let key = self.text(key_len, key_at)?;
                    let item = self.value(depth + 1)?;
                    map.push_unchecked(key, item);
                }
                map.merge_duplicates();
                Ok(Value::Map(map))
            }
            _ => {
                // T_ARRAY: the only type left in three bits.
                if depth >= MAX_DEPTH {
                    return self.fail(ValueErrorKind::TooDeep, at);
                }
                if param > self.remaining() as u64 {
                    return self.fail(ValueErrorKind::ArrayCountExceedsRemaining, at);
                }
                let count = param as usize;
                let mut items = Vec::with_capacity(count);
                for _ in 0..count {
                    items.push(self.value(depth + 1)?);
                }
                Ok(Value::Array(items))
            }
        }
    }
}
