//! quickcheck properties of the wire layer: round trips, chunking independence, and robustness
//! against arbitrary bytes.

use iotmp_proto::frame::{Deframer, FrameError};
use iotmp_proto::pson::{self, Flavour};
use iotmp_proto::{Dialect, Message, Value};
use iotmp_tests::arbitrary::{AnyValue, Message2020, Message2026};
use quickcheck::{QuickCheck, TestResult};

const CASES: u64 = 2_000;

fn roundtrip(dialect: Dialect, message: &Message, flavour: Flavour) -> TestResult {
    let mut wire = Vec::new();
    if let Err(e) = dialect.encode(message, flavour, &mut wire) {
        return TestResult::error(format!("generated message must encode: {e}: {message}"));
    }
    let mut input = &wire[..];
    let mut deframer = Deframer::default();
    let frame = match deframer.next_frame(&mut input) {
        Ok(Some(frame)) => frame,
        other => return TestResult::error(format!("not one frame: {other:?}")),
    };
    if !input.is_empty() {
        return TestResult::error("bytes left after the frame");
    }
    match dialect.decode(frame.type_code, frame.body) {
        Ok(decoded) if decoded == *message => TestResult::passed(),
        Ok(decoded) => TestResult::error(format!("{message}\n decoded as\n{decoded}")),
        Err(e) => TestResult::error(format!("{message}: {e}")),
    }
}

#[test]
fn messages_2020_round_trip() {
    fn prop(m: Message2020) -> TestResult {
        roundtrip(Dialect::Draft2020, &m.0, Flavour::V2)
    }
    QuickCheck::new()
        .tests(CASES)
        .quickcheck(prop as fn(Message2020) -> TestResult);
}

#[test]
fn messages_2026_round_trip() {
    fn prop(m: Message2026) -> TestResult {
        roundtrip(Dialect::Draft2026, &m.0, m.1)
    }
    QuickCheck::new()
        .tests(CASES)
        .quickcheck(prop as fn(Message2026) -> TestResult);
}

#[test]
fn values_round_trip_in_both_flavours() {
    fn prop(v: AnyValue) -> TestResult {
        for flavour in [Flavour::V2, Flavour::V1] {
            let mut bytes = Vec::new();
            if let Err(e) = pson::encode(flavour, &v.0, &mut bytes) {
                return TestResult::error(format!("{flavour:?} encode {}: {e}", v.0));
            }
            match pson::decode(flavour, &bytes) {
                Ok(back) if back == v.0 => {}
                other => {
                    return TestResult::error(format!(
                        "{flavour:?}: {} came back as {other:?}",
                        v.0
                    ));
                }
            }
        }
        TestResult::passed()
    }
    QuickCheck::new()
        .tests(CASES)
        .quickcheck(prop as fn(AnyValue) -> TestResult);
}

fn deframe(bytes: &[u8], cuts: &[usize]) -> (Vec<(u32, Vec<u8>)>, Option<FrameError>) {
    let mut deframer = Deframer::new(4096);
    let mut frames = Vec::new();
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.push(bytes.len());
    points.sort_unstable();
    let mut start = 0;
    for end in points {
        let mut input = &bytes[start..end];
        start = end;
        loop {
            match deframer.next_frame(&mut input) {
                Ok(Some(frame)) => frames.push((frame.type_code, frame.body.to_vec())),
                Ok(None) => break,
                // Offsets aside, the error must be the same wherever the cuts fall.
                Err(e) => return (frames, Some(e)),
            }
        }
    }
    (frames, deframer.finish().err())
}

#[test]
fn deframing_ignores_chunk_boundaries() {
    fn prop(noise: Vec<u8>, messages: Vec<Message2026>, cuts: Vec<usize>) -> TestResult {
        // A stream of valid frames with arbitrary bytes after them.
        let mut bytes = Vec::new();
        for m in &messages {
            if Dialect::Draft2026.encode(&m.0, m.1, &mut bytes).is_err() {
                return TestResult::discard();
            }
        }
        bytes.extend_from_slice(&noise);
        let whole = deframe(&bytes, &[]);
        let split = deframe(&bytes, &cuts);
        if whole != split {
            return TestResult::error(format!("whole {whole:?}\nsplit {split:?}"));
        }
        if whole.0.len() < messages.len() {
            return TestResult::error("lost frames");
        }
        TestResult::passed()
    }
    QuickCheck::new()
        .tests(CASES)
        .quickcheck(prop as fn(Vec<u8>, Vec<Message2026>, Vec<usize>) -> TestResult);
}

#[test]
fn arbitrary_bytes_never_panic() {
    fn prop(bytes: Vec<u8>, cuts: Vec<usize>) -> bool {
        let _ = pson::v2::decode(&bytes);
        let _ = pson::protoson::decode(&bytes);
        for dialect in [Dialect::Draft2020, Dialect::Draft2026] {
            for code in 0..13 {
                if let Err(e) = dialect.decode(code, &bytes) {
                    let _ = e.outcome();
                }
            }
        }
        deframe(&bytes, &cuts) == deframe(&bytes, &[])
    }
    QuickCheck::new()
        .tests(CASES * 5)
        .quickcheck(prop as fn(Vec<u8>, Vec<usize>) -> bool);
}

/// Inputs built to cost the most per byte still fail (or succeed) after bounded work: no deep
/// recursion, no allocation from a count the bytes cannot back, no quadratic duplicate checks.
#[test]
fn hostile_values_are_cheap() {
    // 256 KiB of nesting.
    let mut bomb = vec![0xE1u8; 256 * 1024];
    bomb.push(0xE0);
    assert!(pson::v2::decode(&bomb).is_err());
    let protoson_bomb: Vec<u8> = std::iter::repeat_n([0x72u8, 0x7F], 100_000)
        .flatten()
        .collect();
    assert!(pson::protoson::decode(&protoson_bomb).is_err());

    // A count of 2^64-1 elements with a handful of bytes behind it.
    let huge = [
        0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0x00,
    ];
    assert!(pson::v2::decode(&huge).is_err());

    // 60,000 pairs with the same key: one entry, last value wins.
    let pairs = 60_000u64;
    let mut dupes = vec![0xDF];
    let mut count = Vec::new();
    let mut n = pairs;
    while n >= 0x80 {
        count.push((n as u8) | 0x80);
        n >>= 7;
    }
    count.push(n as u8);
    dupes.extend(count);
    for i in 0..pairs {
        dupes.extend([0x81, b'k', (i % 30) as u8]);
    }
    let value = pson::v2::decode(&dupes).unwrap();
    assert_eq!(value.as_map().map(|m| m.len()), Some(1));
    assert_eq!(
        value.as_map().and_then(|m| m.get("k")),
        Some(&Value::UInt((pairs - 1) % 30))
    );
}

#[test]
fn nesting_limit_is_32_containers_both_ways() {
    let mut value = Value::Null;
    for depth in 1..=33 {
        value = Value::Array(vec![value]);
        for flavour in [Flavour::V2, Flavour::V1] {
            let mut bytes = Vec::new();
            let encoded = pson::encode(flavour, &value, &mut bytes);
            assert_eq!(
                encoded.is_ok(),
                depth <= 32,
                "{flavour:?} encode at depth {depth}"
            );
            if depth <= 32 {
                assert_eq!(
                    pson::decode(flavour, &bytes).as_ref(),
                    Ok(&value),
                    "{flavour:?} depth {depth}"
                );
            }
        }
    }
}

/// Found by fuzzing: Protoson's "undefined" tag stands for an empty map, so it counts as a
/// container for the depth limit too.
#[test]
fn protoson_undefined_counts_for_depth() {
    let nest = |levels: usize| {
        let mut bytes = vec![0x78u8];
        for _ in 0..levels {
            let mut outer = vec![0x72, bytes.len() as u8];
            outer.extend(bytes);
            bytes = outer;
        }
        bytes
    };
    assert_eq!(pson::protoson::decode(&nest(31)).map(|v| v.depth()), Ok(32));
    assert!(
        pson::protoson::decode(&nest(32)).is_err(),
        "33 containers deep must be rejected"
    );
}
