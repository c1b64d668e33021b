//! The value ↔ JSON mapping of the HTTP API (spec §8.3).
//!
//! Towards JSON it is lossy by design: floats lose their width, bytes become base64 text, NaN and
//! infinities become `null`. From JSON, integer literals stay exact integers and every other
//! number is normalised (spec §5.1).

use base64::Engine as _;
use serde_json::{Number, Value as Json};
use thiserror::Error;

use crate::value::{Map, Value};

/// A JSON document that has no value-model equivalent.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FromJsonError {
    /// An integer literal outside −2^63 ..= 2^64−1.
    #[error("integer {0} is outside -2^63..=2^64-1")]
    IntegerOutOfRange(String),
    /// A number too large for an f64.
    #[error("number {0} overflows a 64-bit float")]
    FloatOverflow(String),
    /// Containers nested deeper than the protocol allows.
    #[error("JSON nests deeper than {} containers", crate::value::MAX_DEPTH)]
    TooDeep,
}

/// A float's shortest round-trip text; integral values keep a fraction (`22.0`).
pub(crate) fn float_number(text: String) -> Json {
    // `{:?}` on floats prints the shortest text that parses back to the same value, always
    // with a fraction or an exponent: exactly the JSON the spec asks for.
    match text.parse::<Number>() {
        Ok(n) => Json::Number(n),
        Err(_) => Json::Null,
    }
}

/// Converts a value to JSON (spec §8.3, PSON → JSON).
pub fn to_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::UInt(u) => Json::Number(Number::from(*u)),
        Value::NegInt(m) => match Value::NegInt(*m)
            .as_i128()
            .and_then(|n| i64::try_from(n).ok())
        {
            Some(n) => Json::Number(Number::from(n)),
            None => Json::Null,
        },
        Value::F32(f) if f.is_finite() => float_number(format!("{f:?}")),
        Value::F64(f) if f.is_finite() => float_number(format!("{f:?}")),
        Value::F32(_) | Value::F64(_) => Json::Null,
        Value::Str(s) => Json::String(s.to_string()),
        Value::Bytes(b) => Json::String(base64::engine::general_purpose::STANDARD.encode(b)),
        Value::Array(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Map(map) => Json::Object(
            map.iter()
                .map(|(k, v)| (k.to_owned(), to_json(v)))
                .collect(),
        ),
    }
}

/// Appends `value` as JSON text to `out`: the same text as `to_json(value).to_string()`, in one
/// pass without building the JSON tree (the API's streams write every delivered value).
pub fn write_json(value: &Value, out: &mut Vec<u8>) {
    // Writing into a `Vec` cannot fail (allocation failure aborts), so the `io::Result`s of the
    // formatter carry nothing.
    let _ = write_value(value, out);
}

fn write_value(value: &Value, out: &mut Vec<u8>) -> std::io::Result<()> {
    use serde_json::ser::{CompactFormatter, Formatter as _};
    use std::io::Write as _;
    let mut f = CompactFormatter;
    match value {
        Value::Null => f.write_null(out),
        Value::Bool(b) => f.write_bool(out, *b),
        Value::UInt(u) => f.write_u64(out, *u),
        Value::NegInt(m) => match Value::NegInt(*m)
            .as_i128()
            .and_then(|n| i64::try_from(n).ok())
        {
            Some(n) => f.write_i64(out, n),
            None => f.write_null(out),
        },
        Value::F32(x) if x.is_finite() => write_float(out, format_args!("{x:?}")),
        Value::F64(x) if x.is_finite() => write_float(out, format_args!("{x:?}")),
        Value::F32(_) | Value::F64(_) => f.write_null(out),
        Value::Str(s) => serde_json::to_writer(out, &**s).map_err(std::io::Error::from),
        Value::Bytes(b) => {
            out.push(b'"');
            {
                let mut encoder = base64::write::EncoderWriter::new(
                    &mut *out,
                    &base64::engine::general_purpose::STANDARD,
                );
                encoder.write_all(b)?;
                encoder.finish()?;
            }
            out.push(b'"');
            Ok(())
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out)?;
            }
            out.push(b']');
            Ok(())
        }
        Value::Map(map) => {
            out.push(b'{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, key)?;
                out.push(b':');
                write_value(item, out)?;
            }
            out.push(b'}');
            Ok(())
        }
    }
}

/// Appends a float's `{:?}` text as [`float_number`] ends up printing it: serde_json's number
/// parser spells an unsigned exponent `e+`.
fn write_float(out: &mut Vec<u8>, text: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    use std::io::Write as _;
    let start = out.len();
    out.write_fmt(text)?;
    if let Some(e) = out
        .get(start..)
        .and_then(|t| t.iter().position(|&c| c == b'e'))
    {
        let after = start + e + 1;
        if out.get(after) != Some(&b'-') {
            out.insert(after, b'+');
        }
    }
    Ok(())
}

/// True when a JSON number was written as an integer literal (no fraction, no exponent).
pub(crate) fn is_integer_literal(text: &str) -> bool {
    !text.contains(['.', 'e', 'E'])
}

/// Converts a JSON number (spec §8.3, JSON → PSON).
fn number_from_json(n: &Number) -> Result<Value, FromJsonError> {
    let text = n.to_string();
    if is_integer_literal(&text) {
        return text
            .parse::<i128>()
            .ok()
            .and_then(Value::from_i128)
            .ok_or(FromJsonError::IntegerOutOfRange(text));
    }
    match text.parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(Value::from_number(x)),
        _ => Err(FromJsonError::FloatOverflow(text)),
    }
}

/// Converts JSON to a value (spec §8.3, JSON → PSON). Duplicate object keys: the last wins.
pub fn from_json(json: &Json) -> Result<Value, FromJsonError> {
    from_json_at(json, 0)
}

fn from_json_at(json: &Json, depth: usize) -> Result<Value, FromJsonError> {
    Ok(match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => number_from_json(n)?,
        Json::String(s) => Value::from(s.as_str()),
        Json::Array(items) => {
            if depth >= crate::value::MAX_DEPTH {
                return Err(FromJsonError::TooDeep);
            }
            Value::Array(
                items
                    .iter()
                    .map(|v| from_json_at(v, depth + 1))
                    .collect::<Result<_, _>>()?,
            )
        }
        Json::Object(members) => {
            if depth >= crate::value::MAX_DEPTH {
                return Err(FromJsonError::TooDeep);
            }
            let mut map = Map::with_capacity(members.len());
            for (k, v) in members {
                map.insert(k.as_str(), from_json_at(v, depth + 1)?);
            }
            Value::Map(map)
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(text: &str) -> Result<Value, FromJsonError> {
        from_json(&serde_json::from_str(text).unwrap())
    }

    #[test]
    fn numbers_from_json() {
        assert_eq!(parse("22").unwrap(), Value::UInt(22));
        assert_eq!(parse("22.0").unwrap(), Value::UInt(22));
        assert_eq!(parse("23.5").unwrap(), Value::F32(23.5));
        assert_eq!(parse("0.3").unwrap(), Value::F64(0.3));
        assert_eq!(
            parse("-9223372036854775808").unwrap(),
            Value::NegInt(1 << 63)
        );
        assert_eq!(
            parse("18446744073709551615").unwrap(),
            Value::UInt(u64::MAX)
        );
        assert!(matches!(
            parse("18446744073709551616"),
            Err(FromJsonError::IntegerOutOfRange(_))
        ));
        assert!(matches!(
            parse("-9223372036854775809"),
            Err(FromJsonError::IntegerOutOfRange(_))
        ));
        assert!(matches!(
            parse("1e400"),
            Err(FromJsonError::FloatOverflow(_))
        ));
    }

    #[test]
    fn values_to_json() {
        let mut m = Map::new();
        m.insert("f", Value::F32(22.0));
        m.insert("g", Value::F32(0.1));
        m.insert("big", Value::UInt(u64::MAX));
        m.insert("neg", Value::NegInt(1 << 63));
        m.insert("raw", Value::Bytes(vec![1, 2, 3, 4]));
        m.insert("nan", Value::F64(f64::NAN));
        let text = serde_json::to_string(&to_json(&Value::Map(m))).unwrap();
        assert_eq!(
            text,
            r#"{"f":22.0,"g":0.1,"big":18446744073709551615,"neg":-9223372036854775808,"raw":"AQIDBA==","nan":null}"#
        );
    }

    /// A value built from `seed`, covering every variant, escapes, nesting and float edges.
    fn sample(seed: &mut u64, depth: u32) -> Value {
        *seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let r = *seed >> 11;
        let pick = if depth >= 3 { r % 9 } else { r % 11 };
        match pick {
            0 => Value::Null,
            1 => Value::Bool(r & 1 == 1),
            2 => Value::UInt(r.rotate_left(u32::try_from(r % 64).unwrap())),
            3 => Value::NegInt(r | 1),
            4 => Value::F32(f32::from_bits(u32::try_from(r & 0xFFFF_FFFF).unwrap())),
            5 => Value::F64(f64::from_bits(r.rotate_left(17))),
            6 => Value::from(["", "a\"b", "\\/\n\t\u{1}\u{7f}", "é€😀"][(r % 4) as usize]),
            7 => Value::Bytes((0..(r % 7)).map(|i| (r >> i) as u8).collect()),
            8 => Value::F64([0.0, -0.0, 1e-7, 1e300, 22.0, f64::INFINITY][(r % 6) as usize]),
            9 => Value::Array((0..(r % 4)).map(|_| sample(seed, depth + 1)).collect()),
            _ => {
                let mut m = Map::new();
                for i in 0..(r % 4) {
                    m.insert(format!("k{i}\"\n"), sample(seed, depth + 1));
                }
                Value::Map(m)
            }
        }
    }

    #[test]
    fn write_json_is_the_text_of_to_json() {
        let mut seed = 7;
        let mut out = Vec::new();
        for _ in 0..20_000 {
            let value = sample(&mut seed, 0);
            out.clear();
            write_json(&value, &mut out);
            assert_eq!(
                std::str::from_utf8(&out).unwrap(),
                to_json(&value).to_string(),
                "{value:?}"
            );
        }
        out.clear();
        write_json(&Value::NegInt(u64::MAX), &mut out);
        assert_eq!(out, b"null");
    }
}
