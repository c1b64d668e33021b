//! Tagged JSON: the lossless JSON form of values used by the vector files (`vectors/README.md`
//! §1) and by `iotmp decode` / `iotmp encode`.
//!
//! Integers are plain JSON integers; `{"$f32": x}` / `{"$f64": x}` keep float widths (x may be
//! `"NaN"`, `"Infinity"`, `"-Infinity"`); `{"$bytes": "<hex>"}` holds bytes; an object is a map in
//! member order, and `{"$map": [[k, v], …]}` spells a map whose only key would read as a tag.

use serde_json::{Number, Value as Json};
use thiserror::Error;

use super::value::{float_number, is_integer_literal};
use crate::value::{MAX_DEPTH, Map, Value};

const TAG_F32: &str = "$f32";
const TAG_F64: &str = "$f64";
const TAG_BYTES: &str = "$bytes";
const TAG_MAP: &str = "$map";

/// Tagged JSON that does not describe a value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TaggedError {
    /// An integer outside −2^63 ..= 2^64−1.
    #[error("integer {0} is outside -2^63..=2^64-1")]
    IntegerOutOfRange(String),
    /// A plain JSON number with a fraction or exponent (floats must be tagged).
    #[error(
        "number {0} has a fraction or exponent: write floats as {{\"$f32\": x}} or {{\"$f64\": x}}"
    )]
    UntaggedFloat(String),
    /// A `$f32` / `$f64` tag holding something other than a number or a special name.
    #[error("{tag} must hold a number or \"NaN\", \"Infinity\", \"-Infinity\", not {found}")]
    BadFloat {
        /// The tag.
        tag: &'static str,
        /// What it held.
        found: String,
    },
    /// A `$bytes` tag whose text is not hexadecimal.
    #[error("$bytes must hold an even number of hex digits: {0}")]
    BadBytes(String),
    /// A `$map` tag that is not a list of `[key, value]` pairs.
    #[error("$map must be a list of [string key, value] pairs")]
    BadMap,
    /// Containers nested deeper than the protocol allows.
    #[error("nesting deeper than {MAX_DEPTH} containers")]
    TooDeep,
}

fn float_json(text: String, is_nan: bool, is_infinite: bool, negative: bool) -> Json {
    match (is_nan, is_infinite, negative) {
        (true, _, _) => Json::String("NaN".into()),
        (_, true, false) => Json::String("Infinity".into()),
        (_, true, true) => Json::String("-Infinity".into()),
        _ => float_number(text),
    }
}

fn tag(name: &str, inner: Json) -> Json {
    let mut object = serde_json::Map::new();
    object.insert(name.to_owned(), inner);
    Json::Object(object)
}

/// The tagged JSON of `value`.
pub fn to_tagged(value: &Value) -> Json {
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
        Value::F32(f) => tag(
            TAG_F32,
            float_json(format!("{f:?}"), f.is_nan(), f.is_infinite(), *f < 0.0),
        ),
        Value::F64(f) => tag(
            TAG_F64,
            float_json(format!("{f:?}"), f.is_nan(), f.is_infinite(), *f < 0.0),
        ),
        Value::Str(s) => Json::String(s.to_string()),
        Value::Bytes(b) => tag(TAG_BYTES, Json::String(hex::encode(b))),
        Value::Array(items) => Json::Array(items.iter().map(to_tagged).collect()),
        Value::Map(map) => {
            let looks_like_tag = map.len() == 1
                && map
                    .keys()
                    .all(|k| [TAG_F32, TAG_F64, TAG_BYTES, TAG_MAP].contains(&k));
            if looks_like_tag {
                let pairs = map
                    .iter()
                    .map(|(k, v)| Json::Array(vec![Json::String(k.to_owned()), to_tagged(v)]))
                    .collect();
                tag(TAG_MAP, Json::Array(pairs))
            } else {
                Json::Object(
                    map.iter()
                        .map(|(k, v)| (k.to_owned(), to_tagged(v)))
                        .collect(),
                )
            }
        }
    }
}

fn parse_float<T: std::str::FromStr>(
    json: &Json,
    tag: &'static str,
    nan: T,
    inf: T,
    neg_inf: T,
) -> Result<T, TaggedError> {
    let bad = || TaggedError::BadFloat {
        tag,
        found: json.to_string(),
    };
    match json {
        // Parsing the decimal text straight into the target width rounds once, to nearest.
        Json::Number(n) => n.to_string().parse::<T>().map_err(|_| bad()),
        Json::String(s) => match s.as_str() {
            "NaN" => Ok(nan),
            "Infinity" => Ok(inf),
            "-Infinity" => Ok(neg_inf),
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

/// The value that tagged JSON describes.
pub fn from_tagged(json: &Json) -> Result<Value, TaggedError> {
    from_tagged_at(json, 0)
}

fn from_tagged_at(json: &Json, depth: usize) -> Result<Value, TaggedError> {
    Ok(match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => {
            let text = n.to_string();
            if !is_integer_literal(&text) {
                return Err(TaggedError::UntaggedFloat(text));
            }
            text.parse::<i128>()
                .ok()
                .and_then(Value::from_i128)
                .ok_or(TaggedError::IntegerOutOfRange(text))?
        }
        Json::String(s) => Value::from(s.as_str()),
        Json::Array(items) => {
            if depth >= MAX_DEPTH {
                return Err(TaggedError::TooDeep);
            }
            Value::Array(
                items
                    .iter()
                    .map(|v| from_tagged_at(v, depth + 1))
                    .collect::<Result<_, _>>()?,
            )
        }
        Json::Object(members) => {
            if members.len() == 1
                && let Some((name, inner)) = members.iter().next()
            {
                match name.as_str() {
                    TAG_F32 => {
                        return Ok(Value::F32(parse_float(
                            inner,
                            TAG_F32,
                            f32::NAN,
                            f32::INFINITY,
                            f32::NEG_INFINITY,
                        )?));
                    }
                    TAG_F64 => {
                        return Ok(Value::F64(parse_float(
                            inner,
                            TAG_F64,
                            f64::NAN,
                            f64::INFINITY,
                            f64::NEG_INFINITY,
                        )?));
                    }
                    TAG_BYTES => {
                        let text = inner
                            .as_str()
                            .ok_or_else(|| TaggedError::BadBytes(inner.to_string()))?;
                        return hex::decode(text)
                            .map(Value::Bytes)
                            .map_err(|_| TaggedError::BadBytes(text.to_owned()));
                    }
                    TAG_MAP => {
                        if depth >= MAX_DEPTH {
                            return Err(TaggedError::TooDeep);
                        }
                        let pairs = inner.as_array().ok_or(TaggedError::BadMap)?;
                        let mut map = Map::with_capacity(pairs.len());
                        for pair in pairs {
                            match pair.as_array().map(Vec::as_slice) {
                                Some([Json::String(k), v]) => {
                                    map.insert(k.as_str(), from_tagged_at(v, depth + 1)?);
                                }
                                _ => return Err(TaggedError::BadMap),
                            }
                        }
                        return Ok(Value::Map(map));
                    }
                    _ => {}
                }
            }
            if depth >= MAX_DEPTH {
                return Err(TaggedError::TooDeep);
            }
            let mut map = Map::with_capacity(members.len());
            for (k, v) in members {
                map.insert(k.as_str(), from_tagged_at(v, depth + 1)?);
            }
            Value::Map(map)
        }
    })
}
