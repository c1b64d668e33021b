//! Human-readable rendering of values.
//!
//! `Display` is compact JSON-like text with explicit widths for floats (`21.5f32`) so that a
//! transcript shows exactly what travels; `Debug` is the same text, which reads far better in
//! test failures than a derived tree of variants.

use std::fmt::{self, Write as _};

use super::{Map, Value};

fn write_str_literal(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if c.is_control() => write!(f, "\\u{:04x}", u32::from(c))?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::UInt(u) => write!(f, "{u}"),
            Value::NegInt(m) => write!(f, "-{m}"),
            Value::F32(x) => write!(f, "{x:?}f32"),
            Value::F64(x) => write!(f, "{x:?}f64"),
            Value::Str(s) => write_str_literal(f, s),
            Value::Bytes(b) => {
                f.write_str("h'")?;
                for byte in b {
                    write!(f, "{byte:02x}")?;
                }
                f.write_char('\'')
            }
            Value::Array(items) => {
                f.write_char('[')?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_char(']')
            }
            Value::Map(map) => write!(f, "{map}"),
        }
    }
}

impl fmt::Display for Map {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('{')?;
        for (i, (k, v)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write_str_literal(f, k)?;
            write!(f, ": {v}")?;
        }
        f.write_char('}')
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Debug for Map {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use crate::value::{Map, Value};

    #[test]
    fn readable() {
        let mut m = Map::new();
        m.insert("temperature", 23.5f32);
        m.insert("humidity", 60u32);
        m.insert("label", "out\"door");
        m.insert("raw", Value::Bytes(vec![1, 0xAB]));
        m.insert(
            "list",
            Value::Array(vec![Value::NegInt(3), Value::F64(0.3), Value::Null]),
        );
        assert_eq!(
            Value::Map(m).to_string(),
            r#"{"temperature": 23.5f32, "humidity": 60, "label": "out\"door", "raw": h'01ab', "list": [-3, 0.3f64, null]}"#
        );
    }
}
