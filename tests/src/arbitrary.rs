//! quickcheck generators for values and messages of each dialect.
//!
//! Generated messages are always representable in their dialect (the encoder must accept them),
//! so a round-trip property over them cannot pass by skipping cases.

use iotmp_proto::{AuthType, Dialect, Flavour, Map, Message, MessageType, StreamKind, Value};
use quickcheck::{Arbitrary, Gen};

fn pick<T: Copy>(g: &mut Gen, items: &[T]) -> T {
    *g.choose(items)
        .unwrap_or_else(|| unreachable!("pick from an empty list"))
}

fn below(g: &mut Gen, n: u64) -> u64 {
    u64::arbitrary(g) % n.max(1)
}

fn uint(g: &mut Gen) -> u64 {
    match below(g, 4) {
        0 => below(g, 31),
        1 => below(g, 70_000),
        2 => pick(
            g,
            &[
                30,
                31,
                127,
                128,
                65_535,
                65_536,
                u64::from(u32::MAX),
                1 << 32,
                u64::MAX,
            ],
        ),
        _ => u64::arbitrary(g),
    }
}

fn text(g: &mut Gen) -> String {
    match below(g, 3) {
        0 => pick(g, &["", "temp", "led", "sensors/temp", "interval", "a"]).to_owned(),
        1 => "x".repeat(below(g, 300) as usize),
        _ => String::arbitrary(g),
    }
}

/// A value whose containers nest at most `depth` more levels.
pub fn value(g: &mut Gen, depth: usize) -> Value {
    let kinds = if depth == 0 { 8 } else { 10 };
    match below(g, kinds) {
        0 => Value::Null,
        1 => Value::Bool(bool::arbitrary(g)),
        2 => Value::UInt(uint(g)),
        3 => Value::NegInt(below(g, 1 << 63) + 1),
        4 => Value::F32(f32::from_bits(u32::arbitrary(g))),
        5 => Value::F64(f64::from_bits(u64::arbitrary(g))),
        6 => Value::from(text(g)),
        7 => Value::Bytes(Vec::<u8>::arbitrary(g)),
        8 => Value::Array((0..below(g, 5)).map(|_| value(g, depth - 1)).collect()),
        _ => Value::Map(map(g, depth - 1)),
    }
}

fn map(g: &mut Gen, depth: usize) -> Map {
    let mut m = Map::new();
    for _ in 0..below(g, 5) {
        m.insert(text(g), value(g, depth));
    }
    m
}

/// A non-empty map without the given reserved keys.
fn extra_map(g: &mut Gen, reserved: &[&str]) -> Map {
    let mut m = map(g, 2);
    for key in reserved {
        m.remove(key);
    }
    if m.is_empty() {
        m.insert("x", value(g, 1));
    }
    m
}

/// Any value that is not a bare UInt and not a map holding `reserved` (START_STREAM params).
fn non_interval_params(g: &mut Gen) -> Value {
    loop {
        let v = value(g, 2);
        match &v {
            Value::UInt(_) => continue,
            Value::Map(m) if m.contains_key("interval") => continue,
            _ => return v,
        }
    }
}

fn maybe<T>(g: &mut Gen, f: impl FnOnce(&mut Gen) -> T) -> Option<T> {
    if bool::arbitrary(g) { Some(f(g)) } else { None }
}

/// A message that `dialect` can carry.
pub fn message(g: &mut Gen, dialect: Dialect) -> Message {
    let kind = pick(g, &MessageType::ALL);
    let d2026 = dialect == Dialect::Draft2026;
    let mut m = Message::new(kind);
    let sid = |g: &mut Gen| u16::arbitrary(g);
    use MessageType as T;
    match kind {
        T::KeepAlive => {}
        T::Ok | T::Error => {
            m.stream_id = Some(sid(g));
            m.payload = maybe(g, |g| value(g, 3));
            if d2026 {
                m.params = maybe(g, |g| value(g, 2));
            }
        }
        T::Run => {
            m.stream_id = maybe(g, sid);
            m.resource = Some(value(g, 2));
            m.payload = maybe(g, |g| value(g, 3));
            if d2026 {
                m.params = maybe(g, |g| value(g, 2));
            } else {
                m.action = maybe(g, u32::arbitrary);
            }
        }
        T::StartStream => {
            m.stream_id = Some(sid(g));
            m.resource = maybe(g, |g| value(g, 1));
            if d2026 {
                m.interval_ms = maybe(g, u64::arbitrary);
                m.params = if m.interval_ms.is_some() {
                    maybe(g, |g| Value::Map(extra_map(g, &["interval"])))
                } else {
                    maybe(g, non_interval_params)
                };
                m.payload = maybe(g, |g| value(g, 1));
            } else {
                m.interval_ms = maybe(g, |g| u64::from(u32::arbitrary(g)) * 1000);
            }
        }
        T::StopStream => {
            m.stream_id = Some(sid(g));
            if d2026 {
                m.params = maybe(g, |g| value(g, 1));
                m.payload = maybe(g, |g| value(g, 1));
            }
        }
        T::Describe => {
            m.stream_id = Some(sid(g));
            m.resource = maybe(g, |g| value(g, 1));
            if d2026 {
                m.params = maybe(g, |g| value(g, 1));
                m.payload = maybe(g, |g| value(g, 1));
            }
        }
        T::Connect => {
            m.stream_id = Some(sid(g));
            m.payload = Some(value(g, 2));
            m.keep_alive = maybe(g, u32::arbitrary);
            let reserved: &[u32] = if d2026 { &[0, 4] } else { &[1, 2] };
            m.auth_type = maybe(g, |g| match below(g, 3) {
                0 => AuthType::Credentials,
                1 => AuthType::Certificate,
                _ => {
                    let n = u32::arbitrary(g);
                    AuthType::Other(if reserved.contains(&n) { 7 } else { n })
                }
            });
            if d2026 {
                m.pson_version = maybe(g, u32::arbitrary);
                m.params = maybe(g, |g| Value::Map(extra_map(g, &["pv", "ka", "at"])));
            }
        }
        T::Disconnect => {
            m.stream_id = maybe(g, sid);
            m.reason = maybe(g, |g| value(g, 1));
            if d2026 {
                m.payload = maybe(g, |g| value(g, 1));
            }
        }
        T::StreamData => {
            m.stream_id = Some(sid(g));
            if d2026 {
                m.payload = maybe(g, |g| value(g, 3));
                m.params = maybe(g, |g| value(g, 1));
            } else {
                m.payload = Some(value(g, 3));
                m.data_kind = Some(pick(g, &[StreamKind::Sample, StreamKind::Event]));
            }
        }
    }
    m
}

/// A value for quickcheck properties.
#[derive(Debug, Clone)]
pub struct AnyValue(pub Value);

impl Arbitrary for AnyValue {
    fn arbitrary(g: &mut Gen) -> Self {
        AnyValue(value(g, 4))
    }
}

/// A 2020 message for quickcheck properties.
#[derive(Debug, Clone)]
pub struct Message2020(pub Message);

impl Arbitrary for Message2020 {
    fn arbitrary(g: &mut Gen) -> Self {
        Message2020(message(g, Dialect::Draft2020))
    }
}

/// A 2026 message and the flavour to send it in.
#[derive(Debug, Clone)]
pub struct Message2026(pub Message, pub Flavour);

impl Arbitrary for Message2026 {
    fn arbitrary(g: &mut Gen) -> Self {
        let flavour = pick(g, &[Flavour::V2, Flavour::V1]);
        Message2026(message(g, Dialect::Draft2026), flavour)
    }
}
