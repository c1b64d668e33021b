//! Small, cheap generators over `arbitrary::Unstructured` for the session targets.
//!
//! Everything here stays small on purpose (short strings, shallow values, few resources): the
//! session logic is what is under test, not the value codecs, which have their own targets. Small
//! inputs keep the executions per second high enough for the 10 million runs of the record.

use core::time::Duration;

use arbitrary::{Result, Unstructured};
use iotmp_proto::client::ResourceKind;
use iotmp_proto::{Dialect, Flavour, Map, Value};

/// The resources every fuzzed device declares: one of each kind, one with a `/` in its name.
pub const RESOURCES: [(&str, ResourceKind); 5] = [
    ("led", ResourceKind::Input),
    ("temp", ResourceKind::Output),
    ("reboot", ResourceKind::Action),
    ("dim", ResourceKind::InputOutput),
    ("sensors/hum", ResourceKind::Output),
];

/// Names the fuzzer picks from: the declared ones and one no device declares.
pub const NAMES: [&str; 6] = ["led", "temp", "reboot", "dim", "sensors/hum", "nope"];

/// One of `items` (the first when the input is used up).
pub fn pick<T: Copy>(u: &mut Unstructured<'_>, items: &[T]) -> Result<T> {
    Ok(*u.choose(items)?)
}

/// A dialect.
pub fn dialect(u: &mut Unstructured<'_>) -> Result<Dialect> {
    Ok(if u.arbitrary::<bool>()? {
        Dialect::Draft2026
    } else {
        Dialect::Draft2020
    })
}

/// A value flavour for 2026 frames (2020 ignores it).
pub fn flavour(u: &mut Unstructured<'_>) -> Result<Flavour> {
    Ok(if u.ratio(1, 4)? {
        Flavour::V1
    } else {
        Flavour::V2
    })
}

/// A short string, usually one of the resource names.
pub fn text(u: &mut Unstructured<'_>) -> Result<String> {
    if u.ratio(3, 4)? {
        return Ok(pick(u, &NAMES)?.to_owned());
    }
    let len = u.int_in_range(0..=8usize)?;
    let bytes = u.bytes(len.min(u.len()))?;
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

/// A value nested at most `depth` more levels, with at most three items per container.
pub fn value(u: &mut Unstructured<'_>, depth: u32) -> Result<Value> {
    let kinds = if depth == 0 { 8 } else { 10 };
    Ok(match u.int_in_range(0..=kinds - 1)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::UInt(u.arbitrary()?),
        3 => Value::NegInt(u.int_in_range(1..=u64::MAX)?),
        4 => Value::F32(f32::from_bits(u.arbitrary()?)),
        5 => Value::F64(f64::from_bits(u.arbitrary()?)),
        6 => Value::from(text(u)?),
        7 => {
            let len = u.int_in_range(0..=4usize)?;
            Value::Bytes(u.bytes(len.min(u.len()))?.to_vec())
        }
        8 => {
            let n = u.int_in_range(0..=3)?;
            Value::Array((0..n).map(|_| value(u, depth - 1)).collect::<Result<_>>()?)
        }
        _ => {
            let mut map = Map::new();
            for _ in 0..u.int_in_range(0..=3)? {
                map.insert(text(u)?, value(u, depth - 1)?);
            }
            Value::Map(map)
        }
    })
}

/// An optional value.
pub fn opt_value(u: &mut Unstructured<'_>) -> Result<Option<Value>> {
    Ok(if u.arbitrary::<bool>()? {
        Some(value(u, 2)?)
    } else {
        None
    })
}

/// A resource reference as a peer may send it: a name, a name split into an array, or
/// something that names no resource.
pub fn resource(u: &mut Unstructured<'_>) -> Result<Value> {
    Ok(match u.int_in_range(0..=7)? {
        0 => Value::Array(vec![Value::from("sensors"), Value::from("hum")]),
        1 => value(u, 1)?,
        _ => Value::from(pick(u, &NAMES)?),
    })
}

/// A stream id, biased to the small ids sessions allocate first, 0 and the top of the range.
pub fn stream_id(u: &mut Unstructured<'_>) -> Result<u16> {
    Ok(match u.int_in_range(0..=7)? {
        0 => 0,
        1 => u16::MAX,
        2 => u.arbitrary()?,
        _ => u.int_in_range(1..=6)?,
    })
}

/// A clock advance: mostly small, sometimes across a keep-alive or an auth deadline, rarely a
/// day. Bounded so the fuzzed clock never nears the end of `Instant`'s range.
pub fn advance(u: &mut Unstructured<'_>) -> Result<Duration> {
    Ok(match u.int_in_range(0..=7)? {
        0 => Duration::ZERO,
        1..=3 => Duration::from_millis(u.int_in_range(0..=2_000)?),
        4 | 5 => Duration::from_millis(u.int_in_range(0..=90_000)?),
        6 => Duration::from_secs(u.int_in_range(0..=4_000)?),
        _ => Duration::from_secs(u.int_in_range(0..=86_400)?),
    })
}

/// A stream interval in milliseconds (0 = events).
pub fn interval_ms(u: &mut Unstructured<'_>) -> Result<u64> {
    Ok(match u.int_in_range(0..=5)? {
        0 | 1 => 0,
        2 => u.arbitrary()?,
        _ => u.int_in_range(1..=20_000)?,
    })
}
