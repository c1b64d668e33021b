//! `frames-2020.json`, `frames-2026.json`, `captured-2026.json` and the frame and encoder entries
//! of `invalid.json`, checked byte for byte in both directions where the vectors README says so.

use iotmp_proto::json::message::{message_from_json, message_to_json};
use iotmp_proto::{Dialect, Flavour, Message, Outcome};
use iotmp_tests::{
    dialect_of, flavour_of, hex_bytes, hex_string, load_json, name_of, react, str_member,
    whole_frames,
};
use serde_json::Value as Json;

fn message_of(entry: &Json) -> Message {
    let json = entry
        .get("message")
        .unwrap_or_else(|| panic!("{}: no message", name_of(entry)));
    message_from_json(json).unwrap_or_else(|e| panic!("{}: bad message JSON: {e}", name_of(entry)))
}

fn decode_one(dialect: Dialect, bytes: &[u8], name: &str) -> Message {
    let frames = whole_frames(bytes);
    assert_eq!(frames.len(), 1, "{name}: expected exactly one frame");
    let (code, body) = &frames[0];
    dialect
        .decode(*code, body)
        .unwrap_or_else(|e| panic!("{name}: decode failed: {e}"))
}

fn encode(dialect: Dialect, flavour: Flavour, message: &Message, name: &str) -> String {
    let mut out = Vec::new();
    dialect
        .encode(message, flavour, &mut out)
        .unwrap_or_else(|e| panic!("{name}: encode failed: {e}"));
    hex_string(&out)
}

fn check_frame_file(file: &str, dialect: Dialect) -> usize {
    let entries = load_json(file);
    for entry in &entries {
        let name = name_of(entry);
        let message = message_of(entry);
        let flavour = flavour_of(entry);
        let decoded = decode_one(dialect, &hex_bytes(str_member(entry, "hex")), name);
        assert_eq!(decoded, message, "{file} {name}: decode");
        let decode_only = entry
            .get("decode_only")
            .and_then(Json::as_bool)
            .unwrap_or(false);
        let expected = if decode_only {
            str_member(entry, "canonical_hex")
        } else {
            str_member(entry, "hex")
        };
        assert_eq!(
            encode(dialect, flavour, &message, name),
            expected,
            "{file} {name}: encode"
        );
        // The message JSON form is what `iotmp decode` prints; it must describe the same message.
        assert_eq!(
            message_from_json(&message_to_json(&decoded)).ok(),
            Some(decoded),
            "{file} {name}: JSON round trip"
        );
    }
    entries.len()
}

#[test]
fn frames_2020() {
    assert!(check_frame_file("frames-2020.json", Dialect::Draft2020) >= 30);
}

#[test]
fn frames_2026() {
    assert!(check_frame_file("frames-2026.json", Dialect::Draft2026) >= 60);
}

#[test]
fn captured_2026_frames_decode() {
    let entries = load_json("captured-2026.json");
    assert!(entries.len() >= 20);
    for entry in &entries {
        let name = name_of(entry);
        let decoded = decode_one(
            Dialect::Draft2026,
            &hex_bytes(str_member(entry, "hex")),
            name,
        );
        assert_eq!(decoded, message_of(entry), "{name}");
    }
}

#[test]
fn captured_connects_are_accepted_as_first_frames() {
    for entry in load_json("captured-2026.json") {
        let bytes = hex_bytes(str_member(&entry, "hex"));
        let reaction = react(None, &bytes);
        if reaction.accepted.first().map(|m| m.kind) == Some(iotmp_proto::MessageType::Connect) {
            assert_eq!(reaction.outcome, None, "{}", name_of(&entry));
        }
    }
}

#[test]
fn invalid_frames_get_the_spec_outcome() {
    let mut checked = 0;
    for entry in load_json("invalid.json") {
        let name = name_of(&entry);
        let state = match entry.get("state").and_then(Json::as_str) {
            Some(state) => state,
            None => continue,
        };
        let dialect = match (state, str_member(&entry, "dialect")) {
            ("new", _) => None,
            (_, _) => Some(dialect_of(&entry)),
        };
        let reaction = react(dialect, &hex_bytes(str_member(&entry, "hex")));
        let expect = str_member(&entry, "expect");
        assert_eq!(
            reaction.outcome.map(Outcome::name),
            Some(expect),
            "{name}: outcome"
        );
        assert!(
            reaction.accepted.is_empty(),
            "{name}: accepted {:?}",
            reaction.accepted
        );
        if expect == "drop_and_error" {
            let id = entry
                .get("stream_id")
                .and_then(Json::as_u64)
                .unwrap_or_else(|| panic!("{name}: stream_id"));
            assert_eq!(
                reaction.outcome,
                Some(Outcome::DropAndError {
                    stream_id: id as u16
                }),
                "{name}"
            );
            assert_eq!(
                hex_string(&reaction.reply),
                str_member(&entry, "reply_hex"),
                "{name}: reply"
            );
        } else {
            assert!(
                reaction.reply.is_empty(),
                "{name}: must send nothing, sent {}",
                hex_string(&reaction.reply)
            );
        }
        checked += 1;
    }
    assert!(checked >= 50, "only {checked} frame entries");
}

#[test]
fn encoder_errors_write_nothing() {
    let mut checked = 0;
    for entry in load_json("invalid.json") {
        if entry.get("expect").and_then(Json::as_str) != Some("encode_error") {
            continue;
        }
        let name = name_of(&entry);
        let dialect = dialect_of(&entry);
        checked += 1;
        // Values the model itself cannot hold (stream id 65536, integers below -2^63) are
        // refused while reading the message; the rest must be refused by the encoder.
        let Ok(message) = message_from_json(&entry["message"]) else {
            continue;
        };
        let mut out = vec![0xEE; 3];
        let result = dialect.encode(&message, Flavour::V2, &mut out);
        assert!(result.is_err(), "{name}: encoded {}", hex_string(&out));
        assert_eq!(
            out, [0xEE; 3],
            "{name}: an encoder error must write nothing"
        );
    }
    assert!(checked >= 8, "only {checked} encoder entries");
}

#[test]
fn malformed_replies_match_spec_7_3() {
    let mut out = Vec::new();
    Dialect::Draft2026
        .encode(
            &Dialect::Draft2026.malformed_reply(7),
            Flavour::V2,
            &mut out,
        )
        .unwrap();
    assert_eq!(
        hex_string(&out),
        "02 1F 08 07 10 90 03 1A C1 85 65 72 72 6F 72 91 6D 61 6C 66 6F 72 6D 65 64 20 6D 65 73 73 61 67 65"
    );
    out.clear();
    Dialect::Draft2020
        .encode(
            &Dialect::Draft2020.malformed_reply(7),
            Flavour::V2,
            &mut out,
        )
        .unwrap();
    assert_eq!(
        hex_string(&out),
        "02 26 01 07 63 6A 21 05 65 72 72 6F 72 4A 11 6D 61 6C 66 6F 72 6D 65 64 20 6D 65 73 73 61 67 65 04 63 6F 64 65 08 90 03"
    );
}
