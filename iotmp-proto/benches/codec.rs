//! Codec benchmarks: PSON v2 against serde_json, rmp-serde (MessagePack) and ciborium (CBOR) on
//! the same data, plus deframe+decode throughput of 2026 STREAM_DATA frames.
//!
//! Run with `cargo bench -p iotmp-proto --bench codec`; results are recorded in BENCHMARKS.md.
//!
//! Fairness rules applied to every contender alike:
//!
//! * Encoders append to one caller-owned `Vec<u8>` that is cleared (not freed) each iteration, so
//!   no contender pays for growing a fresh output buffer.
//! * Decoders read from a byte slice prepared outside the timed loop and build a dynamic,
//!   self-describing value (never a typed struct), because `iotmp_proto::Value` is dynamic too.
//!   The decoded value is dropped inside the timed loop for every contender (freeing is part of
//!   the cost of a decode).
//! * serde_json encodes and decodes `serde_json::Value`, the baseline the targets name. Note that
//!   the workspace enables serde_json's `preserve_order` (maps are `IndexMap`s) and
//!   `arbitrary_precision` (numbers are kept as their decimal text) because the crate's JSON
//!   mapping needs them; Cargo unifies features, so this benchmark cannot measure serde_json
//!   without them. They make decoding slower than in a default build and encoding faster
//!   (numbers are written by copying their text, without formatting); BENCHMARKS.md gives
//!   figures for both builds.
//! * rmp-serde and ciborium cannot use `serde_json::Value`: with `arbitrary_precision` its numbers
//!   serialise as a private one-field struct holding the number's text, which is neither the same
//!   data nor a natural MessagePack/CBOR encoding. They use [`Dyn`] instead, a minimal dynamic
//!   value written for this benchmark with the same shape as `iotmp_proto::Value` (u64/i64, f32
//!   and f64 kept apart, `String`, `Vec` elements, map as an ordered `Vec` of pairs). Its
//!   `Deserialize` does less work than either `iotmp_proto::Value` (no repeated-key merging) or
//!   `serde_json::Value` (no hashing), which favours those two contenders, not PSON.
//! * ciborium's `from_reader` zeroes a fresh 4 KiB scratch buffer on every call; we use
//!   `from_reader_with_buffer` with one reused scratch buffer, which is the cheaper way to call it.

// A benchmark binary: failing loudly on a broken setup is the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fmt;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use iotmp_proto::frame::Deframer;
use iotmp_proto::pson::v2;
use iotmp_proto::{Dialect, Map, Value};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

// ---------------------------------------------------------------------------------------------
// The data

/// (a) `{"temperature":23.5,"humidity":60,"pressure":1013,"label":"outdoor"}`.
fn telemetry() -> Value {
    let mut m = Map::new();
    m.insert("temperature", 23.5f32);
    m.insert("humidity", 60u32);
    m.insert("pressure", 1013u32);
    m.insert("label", "outdoor");
    Value::Map(m)
}

/// (b) A log-like record with a nested map and an array; its PSON v2 encoding is 140 bytes.
fn log_record() -> Value {
    let mut source = Map::new();
    source.insert("host", "gw-07.plant3");
    source.insert("pid", 4711u32);
    let mut m = Map::new();
    m.insert("ts", 1_767_225_600_123u64);
    m.insert("level", "warn");
    m.insert("source", source);
    m.insert("msg", "modbus timeout on unit 7, retrying");
    m.insert("tags", Value::Array(vec!["rs485".into(), "line-2".into()]));
    m.insert("retries", 3u32);
    m.insert("latency", 0.125f64);
    Value::Map(m)
}

/// The 35-byte 2026 `STREAM_DATA {sid 161, payload {"temperature": 23.5f32, "humidity": 60}}`.
const STREAM_DATA_FRAME: [u8; 35] = [
    0x0A, 0x21, 0x08, 0xA1, 0x01, 0x1A, 0xC2, 0x8B, 0x74, 0x65, 0x6D, 0x70, 0x65, 0x72, 0x61, 0x74,
    0x75, 0x72, 0x65, 0x40, 0x00, 0x00, 0xBC, 0x41, 0x88, 0x68, 0x75, 0x6D, 0x69, 0x64, 0x69, 0x74,
    0x79, 0x1F, 0x3C,
];

/// Frames per deframe+decode iteration (35 KiB of input: stays in L1/L2 like a socket buffer).
const FRAMES_PER_BUFFER: usize = 1000;

// ---------------------------------------------------------------------------------------------
// Conversions to the contenders' value types (outside the timed loops)

fn to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::UInt(u) => J::from(*u),
        Value::NegInt(m) => J::from(-(i64::try_from(*m).unwrap())),
        Value::F32(f) => J::from(f64::from(*f)),
        Value::F64(f) => J::from(*f),
        Value::Str(s) => J::String(s.to_string()),
        Value::Bytes(_) => panic!("no bytes in the benchmark data"),
        Value::Array(items) => J::Array(items.iter().map(to_json).collect()),
        Value::Map(m) => J::Object(m.iter().map(|(k, v)| (k.to_owned(), to_json(v))).collect()),
    }
}

/// A dynamic serde value with the shape of `iotmp_proto::Value` (see the module comment).
#[derive(Clone, PartialEq)]
enum Dyn {
    Null,
    Bool(bool),
    UInt(u64),
    Int(i64),
    F32(f32),
    F64(f64),
    Str(String),
    Array(Vec<Dyn>),
    Map(Vec<(String, Dyn)>),
}

impl fmt::Debug for Dyn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dyn::Null => f.write_str("null"),
            Dyn::Bool(b) => write!(f, "{b}"),
            Dyn::UInt(u) => write!(f, "{u}"),
            Dyn::Int(i) => write!(f, "{i}"),
            Dyn::F32(x) => write!(f, "{x}f32"),
            Dyn::F64(x) => write!(f, "{x}f64"),
            Dyn::Str(s) => write!(f, "{s:?}"),
            Dyn::Array(a) => f.debug_list().entries(a).finish(),
            Dyn::Map(m) => f
                .debug_map()
                .entries(m.iter().map(|(k, v)| (k, v)))
                .finish(),
        }
    }
}

fn to_dyn(v: &Value) -> Dyn {
    match v {
        Value::Null => Dyn::Null,
        Value::Bool(b) => Dyn::Bool(*b),
        Value::UInt(u) => Dyn::UInt(*u),
        Value::NegInt(m) => Dyn::Int(-(i64::try_from(*m).unwrap())),
        Value::F32(f) => Dyn::F32(*f),
        Value::F64(f) => Dyn::F64(*f),
        Value::Str(s) => Dyn::Str(s.to_string()),
        Value::Bytes(_) => panic!("no bytes in the benchmark data"),
        Value::Array(items) => Dyn::Array(items.iter().map(to_dyn).collect()),
        Value::Map(m) => Dyn::Map(m.iter().map(|(k, v)| (k.to_owned(), to_dyn(v))).collect()),
    }
}

impl Serialize for Dyn {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Dyn::Null => s.serialize_unit(),
            Dyn::Bool(b) => s.serialize_bool(*b),
            Dyn::UInt(u) => s.serialize_u64(*u),
            Dyn::Int(i) => s.serialize_i64(*i),
            Dyn::F32(f) => s.serialize_f32(*f),
            Dyn::F64(f) => s.serialize_f64(*f),
            Dyn::Str(text) => s.serialize_str(text),
            Dyn::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Dyn::Map(pairs) => {
                let mut map = s.serialize_map(Some(pairs.len()))?;
                for (k, v) in pairs {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

struct DynVisitor;

impl<'de> Visitor<'de> for DynVisitor {
    type Value = Dyn;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any self-describing value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Dyn, E> {
        Ok(Dyn::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Dyn, E> {
        Ok(Dyn::Null)
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Dyn, E> {
        Ok(Dyn::Bool(b))
    }
    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Dyn, E> {
        Ok(Dyn::UInt(u))
    }
    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Dyn, E> {
        Ok(if i >= 0 {
            Dyn::UInt(i.unsigned_abs())
        } else {
            Dyn::Int(i)
        })
    }
    fn visit_f32<E: de::Error>(self, f: f32) -> Result<Dyn, E> {
        Ok(Dyn::F32(f))
    }
    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Dyn, E> {
        Ok(Dyn::F64(f))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Dyn, E> {
        Ok(Dyn::Str(s.to_owned()))
    }
    fn visit_string<E: de::Error>(self, s: String) -> Result<Dyn, E> {
        Ok(Dyn::Str(s))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Dyn, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Dyn::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Dyn, A::Error> {
        let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0).min(4096));
        while let Some((k, v)) = map.next_entry::<String, Dyn>()? {
            pairs.push((k, v));
        }
        Ok(Dyn::Map(pairs))
    }
}

impl<'de> Deserialize<'de> for Dyn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Dyn, D::Error> {
        d.deserialize_any(DynVisitor)
    }
}

/// CBOR (ciborium) decodes every float as an f64 and writes `23.5f32` as a half float; the
/// value is the same number, so compare after widening.
fn widen_floats(v: &Dyn) -> Dyn {
    match v {
        Dyn::F32(f) => Dyn::F64(f64::from(*f)),
        Dyn::Array(a) => Dyn::Array(a.iter().map(widen_floats).collect()),
        Dyn::Map(m) => Dyn::Map(
            m.iter()
                .map(|(k, v)| (k.clone(), widen_floats(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// The contenders

struct Encoded {
    pson: Vec<u8>,
    json: Vec<u8>,
    msgpack: Vec<u8>,
    cbor: Vec<u8>,
}

/// Encodes `value` with every contender once and checks that each decodes back to it.
fn prepare(name: &str, value: &Value) -> (serde_json::Value, Dyn, Encoded) {
    let json_value = to_json(value);
    let dyn_value = to_dyn(value);
    let mut enc = Encoded {
        pson: Vec::new(),
        json: Vec::new(),
        msgpack: Vec::new(),
        cbor: Vec::new(),
    };
    v2::encode(value, &mut enc.pson).unwrap();
    serde_json::to_writer(&mut enc.json, &json_value).unwrap();
    rmp_serde::encode::write(&mut enc.msgpack, &dyn_value).unwrap();
    ciborium::into_writer(&dyn_value, &mut enc.cbor).unwrap();

    assert_eq!(&v2::decode(&enc.pson).unwrap(), value);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&enc.json).unwrap(),
        json_value
    );
    assert_eq!(
        rmp_serde::from_slice::<Dyn>(&enc.msgpack).unwrap(),
        dyn_value
    );
    // The same dynamic value written by serde_json is the same JSON document.
    let json_from_dyn = serde_json::to_vec(&dyn_value).unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&json_from_dyn).unwrap(),
        json_value
    );
    let cbor_back: Dyn = ciborium::from_reader(&enc.cbor[..]).unwrap();
    assert_eq!(widen_floats(&cbor_back), widen_floats(&dyn_value));
    eprintln!(
        "{name}: encoded sizes: pson_v2 {} B, serde_json {} B, rmp_serde {} B, ciborium {} B",
        enc.pson.len(),
        enc.json.len(),
        enc.msgpack.len(),
        enc.cbor.len()
    );
    (json_value, dyn_value, enc)
}

fn bench_value(c: &mut Criterion, name: &str, value: &Value) {
    let (json_value, dyn_value, enc) = prepare(name, value);

    let mut group = c.benchmark_group(format!("encode/{name}"));
    let mut out: Vec<u8> = Vec::with_capacity(1024);
    group.bench_function("pson_v2", |b| {
        b.iter(|| {
            out.clear();
            v2::encode(black_box(value), &mut out).unwrap();
            black_box(out.len())
        })
    });
    group.bench_function("serde_json", |b| {
        b.iter(|| {
            out.clear();
            serde_json::to_writer(&mut out, black_box(&json_value)).unwrap();
            black_box(out.len())
        })
    });
    // serde_json writing the same dynamic value type rmp-serde and ciborium write: numbers are
    // formatted (itoa / ryu) as in any serde_json build, instead of copied from the stored text
    // of `serde_json::Value` under `arbitrary_precision`.
    group.bench_function("serde_json_dyn", |b| {
        b.iter(|| {
            out.clear();
            serde_json::to_writer(&mut out, black_box(&dyn_value)).unwrap();
            black_box(out.len())
        })
    });
    group.bench_function("rmp_serde", |b| {
        b.iter(|| {
            out.clear();
            rmp_serde::encode::write(&mut out, black_box(&dyn_value)).unwrap();
            black_box(out.len())
        })
    });
    group.bench_function("ciborium", |b| {
        b.iter(|| {
            out.clear();
            ciborium::into_writer(black_box(&dyn_value), &mut out).unwrap();
            black_box(out.len())
        })
    });
    group.finish();

    let mut group = c.benchmark_group(format!("decode/{name}"));
    group.bench_function("pson_v2", |b| {
        b.iter(|| v2::decode(black_box(&enc.pson)).unwrap())
    });
    group.bench_function("serde_json", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(&enc.json)).unwrap())
    });
    group.bench_function("rmp_serde", |b| {
        b.iter(|| rmp_serde::from_slice::<Dyn>(black_box(&enc.msgpack)).unwrap())
    });
    let mut scratch = vec![0u8; 4096];
    group.bench_function("ciborium", |b| {
        b.iter(|| {
            ciborium::de::from_reader_with_buffer::<Dyn, _>(black_box(&enc.cbor[..]), &mut scratch)
                .unwrap()
        })
    });
    group.finish();
}

fn codec(c: &mut Criterion) {
    bench_value(c, "telemetry", &telemetry());
    bench_value(c, "log", &log_record());
}

fn deframe_decode(c: &mut Criterion) {
    let stream: Vec<u8> = STREAM_DATA_FRAME.repeat(FRAMES_PER_BUFFER);
    // Check the setup once: every frame decodes to the expected message.
    {
        let mut input = &stream[..];
        let mut deframer = Deframer::default();
        let mut count = 0;
        while let Some(frame) = deframer.next_frame(&mut input).unwrap() {
            let m = Dialect::Draft2026
                .decode(frame.type_code, frame.body)
                .unwrap();
            assert_eq!(m.stream_id, Some(161));
            assert_eq!(
                m.payload.as_ref().and_then(|p| p.as_map()).map(Map::len),
                Some(2)
            );
            count += 1;
        }
        assert_eq!(count, FRAMES_PER_BUFFER);
    }

    let mut group = c.benchmark_group("deframe_decode");
    group.throughput(Throughput::Elements(FRAMES_PER_BUFFER as u64));
    group.bench_with_input(
        BenchmarkId::new("stream_data_2026", "35B"),
        &stream,
        |b, stream| {
            b.iter(|| {
                let mut input = black_box(&stream[..]);
                let mut deframer = Deframer::default();
                let mut decoded = 0usize;
                while let Some(frame) = deframer.next_frame(&mut input).unwrap() {
                    let message = Dialect::Draft2026
                        .decode(frame.type_code, frame.body)
                        .unwrap();
                    black_box(&message);
                    decoded += 1;
                }
                decoded
            })
        },
    );
    group.finish();
}

criterion_group!(benches, codec, deframe_decode);
criterion_main!(benches);
