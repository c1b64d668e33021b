//! Number normalisation (spec §5.1): how a number of unknown type becomes a value.

use super::Value;

/// The quiet NaN that normalisation produces (spec §5.1, rule 2).
const CANONICAL_NAN_F32: u32 = 0x7FC0_0000;

/// 2^64 as an `f64`, the first integral value that no longer fits a UInt.
const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;
/// −2^63 as an `f64`, the most negative integral value a NegInt holds.
const MINUS_TWO_POW_63: f64 = -9_223_372_036_854_775_808.0;

impl Value {
    /// Normalises an application or JSON number (spec §5.1): integral values become integers,
    /// NaN and infinities an `f32`, values an `f32` holds exactly an `f32`, the rest an `f64`.
    ///
    /// The codecs never apply this; it is for numbers whose type the application did not choose.
    pub fn from_number(x: f64) -> Value {
        if x.is_finite() && x.fract() == 0.0 && (MINUS_TWO_POW_63..TWO_POW_64).contains(&x) {
            // The range check above makes both casts exact.
            return if x >= 0.0 {
                Value::UInt(x as u64)
            } else {
                Value::NegInt((-x) as u64)
            };
        }
        if x.is_nan() {
            return Value::F32(f32::from_bits(CANONICAL_NAN_F32));
        }
        let narrow = x as f32;
        if x.is_infinite() || f64::from(narrow) == x {
            return Value::F32(narrow);
        }
        Value::F64(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_rules() {
        assert_eq!(Value::from_number(22.0), Value::UInt(22));
        assert_eq!(Value::from_number(-0.0), Value::UInt(0));
        assert_eq!(Value::from_number(-3.0), Value::NegInt(3));
        assert_eq!(Value::from_number(23.5), Value::F32(23.5));
        assert_eq!(Value::from_number(0.3), Value::F64(0.3));
        assert_eq!(
            Value::from_number(TWO_POW_64),
            Value::F32(TWO_POW_64 as f32)
        );
        assert_eq!(Value::from_number(MINUS_TWO_POW_63), Value::NegInt(1 << 63));
        assert_eq!(Value::from_number(f64::INFINITY), Value::F32(f32::INFINITY));
        match Value::from_number(f64::NAN) {
            Value::F32(f) => assert_eq!(f.to_bits(), CANONICAL_NAN_F32),
            other => panic!("NaN normalised to {other:?}"),
        }
    }
}
