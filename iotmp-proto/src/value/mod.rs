//! The value model shared by PSON v2 and Protoson (spec §5.1).
//!
//! A [`Value`] is what travels in resource, payload and params fields. Integers keep their sign
//! class ([`Value::UInt`] / [`Value::NegInt`]), floats keep their width, maps keep their order.
//! Strings use [`Text`], which stores up to 24 bytes inline, so decoding the typical small map
//! (`{"temperature": 23.5, "humidity": 60}`) costs one allocation instead of three.

mod display;
mod map;
mod number;

pub use map::Map;

/// UTF-8 text of a [`Value::Str`] or a map key; short strings are stored inline.
pub type Text = compact_str::CompactString;

/// Containers may nest at most this deep (spec §7.1); a top-level array or map has depth 1.
pub const MAX_DEPTH: usize = 32;

/// One datum of the IOTMP value model.
///
/// Equality is structural, with floats compared by bit pattern except that any NaN equals any NaN
/// of the same width (the rule the test vectors use). `NegInt(m)` means `-m` and is canonical for
/// `1 <= m <= 2^63`; use [`Value::from`] with an `i64`, or [`Value::from_i128`], to build one.
#[derive(Clone, Default)]
pub enum Value {
    /// The null value.
    #[default]
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer ≥ 0.
    UInt(u64),
    /// A negative integer, stored as its magnitude: `NegInt(3)` is −3.
    NegInt(u64),
    /// An IEEE-754 binary32 number.
    F32(f32),
    /// An IEEE-754 binary64 number.
    F64(f64),
    /// UTF-8 text.
    Str(Text),
    /// A raw byte string.
    Bytes(Vec<u8>),
    /// An ordered list of values.
    Array(Vec<Value>),
    /// An ordered map with unique string keys.
    Map(Map),
}

impl Value {
    /// Builds the integer value `n`, or `None` outside −2^63 ..= 2^64−1.
    pub fn from_i128(n: i128) -> Option<Self> {
        if n >= 0 {
            u64::try_from(n).ok().map(Value::UInt)
        } else {
            let magnitude = n.unsigned_abs();
            if magnitude <= 1u128 << 63 {
                u64::try_from(magnitude).ok().map(Value::NegInt)
            } else {
                None
            }
        }
    }

    /// The integer this value holds, if it is a UInt or a NegInt.
    pub fn as_i128(&self) -> Option<i128> {
        match *self {
            Value::UInt(u) => Some(i128::from(u)),
            Value::NegInt(m) => Some(-i128::from(m)),
            _ => None,
        }
    }

    /// The value as a `u64` if it is a UInt.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::UInt(u) => Some(u),
            _ => None,
        }
    }

    /// The text if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s.as_str()),
            _ => None,
        }
    }

    /// The map if this is a map.
    pub fn as_map(&self) -> Option<&Map> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The elements if this is an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The number as an `f64` for any numeric variant (integers may round).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::UInt(u) => Some(u as f64),
            Value::NegInt(m) => Some(-(m as f64)),
            Value::F32(f) => Some(f64::from(f)),
            Value::F64(f) => Some(f),
            _ => None,
        }
    }

    /// True for [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// How deeply containers nest inside this value (0 for scalars, 1 for `[]`).
    pub fn depth(&self) -> usize {
        // Iterative so that even a hand-built, absurdly deep value cannot overflow the stack.
        let mut deepest = 0;
        let mut stack: Vec<(&Value, usize)> = vec![(self, 0)];
        while let Some((value, depth)) = stack.pop() {
            match value {
                Value::Array(items) => {
                    deepest = deepest.max(depth + 1);
                    stack.extend(items.iter().map(|v| (v, depth + 1)));
                }
                Value::Map(map) => {
                    deepest = deepest.max(depth + 1);
                    stack.extend(map.values().map(|v| (v, depth + 1)));
                }
                _ => deepest = deepest.max(depth),
            }
        }
        deepest
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::UInt(a), Value::UInt(b)) | (Value::NegInt(a), Value::NegInt(b)) => a == b,
            (Value::F32(a), Value::F32(b)) => {
                (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
            }
            (Value::F64(a), Value::F64(b)) => {
                (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
            }
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Bytes(a), Value::Bytes(b)) => a == b,
            (Value::Array(a), Value::Array(b)) => a == b,
            (Value::Map(a), Value::Map(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Value {}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

macro_rules! from_unsigned {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(n: $t) -> Self {
                Value::UInt(u64::from(n))
            }
        }
    )*};
}
from_unsigned!(u8, u16, u32, u64);

macro_rules! from_signed {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(n: $t) -> Self {
                let n = i64::from(n);
                if n >= 0 { Value::UInt(n.unsigned_abs()) } else { Value::NegInt(n.unsigned_abs()) }
            }
        }
    )*};
}
from_signed!(i8, i16, i32, i64);

impl From<f32> for Value {
    /// Keeps the width: an `f32` stays [`Value::F32`]. Use [`Value::from_number`] to normalise.
    fn from(f: f32) -> Self {
        Value::F32(f)
    }
}

impl From<f64> for Value {
    /// Keeps the width: an `f64` stays [`Value::F64`]. Use [`Value::from_number`] to normalise.
    fn from(f: f64) -> Self {
        Value::F64(f)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(Text::from(s))
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(Text::from(s))
    }
}

impl From<Text> for Value {
    fn from(s: Text) -> Self {
        Value::Str(s)
    }
}

impl From<Vec<Value>> for Value {
    fn from(items: Vec<Value>) -> Self {
        Value::Array(items)
    }
}

impl From<Map> for Value {
    fn from(map: Map) -> Self {
        Value::Map(map)
    }
}

impl<V: Into<Value>> FromIterator<V> for Value {
    fn from_iter<I: IntoIterator<Item = V>>(iter: I) -> Self {
        Value::Array(iter.into_iter().map(Into::into).collect())
    }
}
