//! `pson-v2.json`, `pson-v1.json`, `numbers.json` and the value entries of `invalid.json`.

use iotmp_proto::Value;
use iotmp_proto::json::tagged::{from_tagged, to_tagged};
use iotmp_proto::pson::{self, Flavour};
use iotmp_tests::{hex_bytes, hex_string, load_json, name_of, str_member};
use serde_json::Value as Json;

fn tagged(entry: &Json, member: &str) -> Value {
    let json = entry
        .get(member)
        .unwrap_or_else(|| panic!("{}: no {member}", name_of(entry)));
    from_tagged(json).unwrap_or_else(|e| panic!("{}: bad tagged value: {e}", name_of(entry)))
}

fn encode(flavour: Flavour, value: &Value) -> String {
    let mut out = Vec::new();
    pson::encode(flavour, value, &mut out).unwrap_or_else(|e| panic!("encode {value}: {e}"));
    hex_string(&out)
}

fn check_value_file(file: &str, flavour: Flavour) -> usize {
    let entries = load_json(file);
    assert!(!entries.is_empty(), "{file} has no entries");
    for entry in &entries {
        let name = name_of(entry);
        let value = tagged(entry, "value");
        let bytes = hex_bytes(str_member(entry, "hex"));
        let decoded = pson::decode(flavour, &bytes)
            .unwrap_or_else(|e| panic!("{file} {name}: decode failed: {e}"));
        assert_eq!(decoded, value, "{file} {name}: decode");
        let decode_only = entry
            .get("decode_only")
            .and_then(Json::as_bool)
            .unwrap_or(false);
        let expected = if decode_only {
            str_member(entry, "canonical_hex")
        } else {
            str_member(entry, "hex")
        };
        assert_eq!(encode(flavour, &value), expected, "{file} {name}: encode");
        // The tagged-JSON form must survive a round trip too (the CLI prints it).
        assert_eq!(
            from_tagged(&to_tagged(&value)).ok(),
            Some(value),
            "{file} {name}: tagged JSON round trip"
        );
    }
    entries.len()
}

#[test]
fn pson_v2_vectors() {
    assert!(check_value_file("pson-v2.json", Flavour::V2) > 50);
}

#[test]
fn pson_v1_vectors() {
    assert!(check_value_file("pson-v1.json", Flavour::V1) > 50);
}

fn number_input(entry: &Json) -> f64 {
    match entry.get("input") {
        Some(Json::Number(n)) => n
            .to_string()
            .parse()
            .unwrap_or_else(|e| panic!("{}: {e}", name_of(entry))),
        Some(Json::String(s)) => match s.as_str() {
            "NaN" => f64::NAN,
            "Infinity" => f64::INFINITY,
            "-Infinity" => f64::NEG_INFINITY,
            "-0.0" => -0.0,
            other => panic!("{}: unknown special input {other:?}", name_of(entry)),
        },
        other => panic!("{}: bad input {other:?}", name_of(entry)),
    }
}

#[test]
fn number_normalisation_vectors() {
    let entries = load_json("numbers.json");
    assert!(entries.len() >= 10);
    for entry in &entries {
        let name = name_of(entry);
        let value = Value::from_number(number_input(entry));
        assert_eq!(value, tagged(entry, "value"), "{name}: normalised value");
        if let Value::F32(f) = value
            && f.is_nan()
        {
            assert_eq!(
                f.to_bits(),
                0x7FC0_0000,
                "{name}: NaN must be the canonical quiet NaN"
            );
        }
        assert_eq!(
            encode(Flavour::V2, &value),
            str_member(entry, "v2_hex"),
            "{name}: v2 bytes"
        );
        assert_eq!(
            encode(Flavour::V1, &value),
            str_member(entry, "v1_hex"),
            "{name}: v1 bytes"
        );
    }
}

fn invalid_value_bytes(entry: &Json) -> Vec<u8> {
    if let Some(repeat) = entry.get("hex_repeat") {
        let byte = hex_bytes(str_member(repeat, "byte"));
        let count = repeat
            .get("count")
            .and_then(Json::as_u64)
            .unwrap_or_else(|| panic!("{}: count", name_of(entry)));
        let mut bytes = byte.repeat(count as usize);
        bytes.extend(hex_bytes(str_member(repeat, "then")));
        return bytes;
    }
    hex_bytes(str_member(entry, "hex"))
}

#[test]
fn invalid_values_are_rejected() {
    let mut checked = 0;
    for entry in load_json("invalid.json") {
        let flavour = match entry.get("dialect").and_then(Json::as_str) {
            Some("pson-v2") => Flavour::V2,
            Some("pson-v1") => Flavour::V1,
            _ => continue,
        };
        assert_eq!(str_member(&entry, "expect"), "reject");
        let bytes = invalid_value_bytes(&entry);
        let result = pson::decode(flavour, &bytes);
        assert!(
            result.is_err(),
            "{}: decoded to {:?} but must be rejected",
            name_of(&entry),
            result
        );
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} value entries found");
}
