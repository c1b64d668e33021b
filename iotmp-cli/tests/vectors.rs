//! `iotmp decode` and `iotmp encode` against every frame vector of the spec: frames-2020,
//! frames-2026 (decode_only entries re-encode to canonical_hex), captured-2026, and the frame
//! and encoder entries of invalid.json.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation must stop the test loudly"
)]

#[allow(dead_code, reason = "each test crate uses a subset of the helpers")]
mod common;

use common::{hex_bytes, iotmp, load_json, name_of, same_message, str_member};
use serde_json::Value as Json;

fn message_of(entry: &Json) -> &Json {
    entry
        .get("message")
        .unwrap_or_else(|| panic!("{}: no message", name_of(entry)))
}

fn pson_of(entry: &Json) -> &str {
    entry.get("pson").and_then(Json::as_str).unwrap_or("v2")
}

fn is_decode_only(entry: &Json) -> bool {
    entry
        .get("decode_only")
        .and_then(Json::as_bool)
        .unwrap_or(false)
}

/// The bytes `encode` must produce for an entry.
fn expected_encoding(entry: &Json) -> &str {
    if is_decode_only(entry) {
        str_member(entry, "canonical_hex")
    } else {
        str_member(entry, "hex")
    }
}

/// `iotmp decode --dialect D HEX` prints exactly the entry's message, one line.
fn check_decode(file: &str, dialect: &str, entry: &Json) {
    let name = name_of(entry);
    let run = iotmp(
        &["decode", "--dialect", dialect, str_member(entry, "hex")],
        "",
    );
    assert_eq!(run.code, 0, "{file} {name}: {}", run.stderr);
    assert!(run.stderr.is_empty(), "{file} {name}: {}", run.stderr);
    let lines = run.lines();
    assert_eq!(lines.len(), 1, "{file} {name}: {}", run.out());
    let printed: Json = serde_json::from_str(&lines[0]).unwrap();
    assert!(
        same_message(&printed, message_of(entry)),
        "{file} {name}:\n printed  {}\n expected {}",
        lines[0],
        message_of(entry)
    );
}

/// Every entry decodes on its own; then all of them together, one frame per line on stdin,
/// give one JSON line each, and those lines encode back to the expected bytes.
fn check_frame_file(file: &str, dialect: &str) -> usize {
    let entries = load_json(file);
    for entry in &entries {
        check_decode(file, dialect, entry);
    }
    for pson in ["v1", "v2"] {
        let group: Vec<&Json> = entries.iter().filter(|e| pson_of(e) == pson).collect();
        if group.is_empty() {
            continue;
        }
        // Decode the whole group as one stream.
        let hex: String = group
            .iter()
            .map(|e| format!("{}\n", str_member(e, "hex")))
            .collect();
        let decoded = iotmp(&["decode", "--dialect", dialect], &hex);
        assert_eq!(decoded.code, 0, "{file} {pson}: {}", decoded.stderr);
        let lines = decoded.lines();
        assert_eq!(lines.len(), group.len(), "{file} {pson}");
        // Encode the vectors' own messages, one per line.
        let messages: String = group
            .iter()
            .map(|e| format!("{}\n", message_of(e)))
            .collect();
        let encoded = iotmp(&["encode", "--dialect", dialect, "--pson", pson], &messages);
        assert_eq!(encoded.code, 0, "{file} {pson}: {}", encoded.stderr);
        // And re-encode what decode printed: decode_only entries come back canonical.
        let reencoded = iotmp(
            &["encode", "--dialect", dialect, "--pson", pson],
            &decoded.out(),
        );
        assert_eq!(reencoded.code, 0, "{file} {pson}: {}", reencoded.stderr);
        for (i, entry) in group.iter().enumerate() {
            let name = name_of(entry);
            let expected = expected_encoding(entry);
            assert_eq!(encoded.lines()[i], expected, "{file} {name}: encode");
            assert_eq!(
                reencoded.lines()[i],
                expected,
                "{file} {name}: decode | encode"
            );
        }
    }
    entries.len()
}

#[test]
fn frames_2020() {
    assert!(check_frame_file("frames-2020.json", "2020") >= 30);
}

#[test]
fn frames_2026() {
    let count = check_frame_file("frames-2026.json", "2026");
    assert!(count >= 60);
    let entries = load_json("frames-2026.json");
    assert!(
        entries.iter().any(is_decode_only) && entries.iter().any(|e| pson_of(e) == "v1"),
        "the 2026 file covers decode_only and Protoson entries"
    );
}

#[test]
fn captured_2026_decodes() {
    let entries = load_json("captured-2026.json");
    assert!(entries.len() >= 20);
    let mut detected = 0;
    for entry in &entries {
        check_decode("captured-2026.json", "2026", entry);
        // A captured CONNECT starts a connection: detection must pick 2026 from it.
        if str_member(entry, "hex").starts_with("03 ") {
            let run = iotmp(&["decode", str_member(entry, "hex")], "");
            assert_eq!(run.code, 0, "{}: {}", name_of(entry), run.stderr);
            let printed: Json = serde_json::from_str(run.out().trim()).unwrap();
            assert!(
                same_message(&printed, message_of(entry)),
                "{}",
                name_of(entry)
            );
            detected += 1;
        }
    }
    assert!(detected > 0, "no captured CONNECT");
}

/// Every frame entry of invalid.json is reported on stderr with the frame's byte offset and
/// the outcome the spec prescribes; nothing reaches stdout.
#[test]
fn invalid_frames_are_reported_with_offset_and_outcome() {
    let mut checked = 0;
    for entry in load_json("invalid.json") {
        let Some(state) = entry.get("state").and_then(Json::as_str) else {
            continue;
        };
        let name = name_of(&entry);
        let hex = str_member(&entry, "hex");
        let expect = str_member(&entry, "expect");
        let dialect = if state == "new" {
            "detect"
        } else {
            str_member(&entry, "dialect")
        };
        let run = iotmp(&["decode", "--dialect", dialect, hex], "");
        // A first frame that is no CONNECT leaves nothing to detect: the user must name the
        // dialect (usage, 2). Everything else is bad data (3).
        let first_type = hex_bytes(hex)[0];
        let undetectable = dialect == "detect" && first_type != 0x03 && first_type != 0x08;
        let expected_code = if undetectable { 2 } else { 3 };
        assert_eq!(run.code, expected_code, "{name}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{name}: printed {}", run.out());
        assert!(
            run.stderr.contains("at byte 0"),
            "{name}: no offset in {}",
            run.stderr
        );
        assert!(
            run.stderr.contains(&format!("outcome: {expect}")),
            "{name}: expected outcome {expect} in {}",
            run.stderr
        );
        if undetectable {
            assert!(run.stderr.contains("--dialect"), "{name}: {}", run.stderr);
        }
        if expect == "drop_and_error" {
            let id = entry["stream_id"].as_u64().unwrap();
            assert!(
                run.stderr.contains(&format!("stream id {id}")),
                "{name}: {}",
                run.stderr
            );
        }
        checked += 1;
    }
    assert!(checked >= 50, "only {checked} frame entries");
}

/// A bad frame amid good ones: reported with its own offset, and the good ones still decode.
#[test]
fn decoding_goes_on_after_a_bad_body() {
    let mut checked = 0;
    for entry in load_json("invalid.json") {
        let expect = entry.get("expect").and_then(Json::as_str);
        if entry.get("state").and_then(Json::as_str) != Some("established")
            || !matches!(expect, Some("drop" | "drop_and_error" | "ignore"))
        {
            continue;
        }
        let name = name_of(&entry);
        let dialect = str_member(&entry, "dialect");
        let keep_alive = if dialect == "2020" { "03 00" } else { "05 00" };
        let bad = str_member(&entry, "hex");
        let stream = format!("{keep_alive} {bad} {keep_alive}");
        let run = iotmp(&["decode", "--dialect", dialect, &stream], "");
        assert_eq!(run.code, 3, "{name}: {}", run.stderr);
        assert_eq!(
            run.lines(),
            ["{\"type\":\"KEEP_ALIVE\"}", "{\"type\":\"KEEP_ALIVE\"}"],
            "{name}"
        );
        assert!(run.stderr.contains("at byte 2"), "{name}: {}", run.stderr);
        assert!(
            run.stderr.contains("1 of 3 frames did not decode"),
            "{name}: {}",
            run.stderr
        );
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} body entries");
}

/// invalid.json's encoder entries: refused, named by position, nothing written.
#[test]
fn encoder_entries_are_refused() {
    let mut checked = 0;
    for entry in load_json("invalid.json") {
        if entry.get("expect").and_then(Json::as_str) != Some("encode_error") {
            continue;
        }
        let name = name_of(&entry);
        let dialect = str_member(&entry, "dialect");
        let line = format!("# {name}\n{}\n", message_of(&entry));
        let run = iotmp(&["encode", "--dialect", dialect], &line);
        assert_eq!(run.code, 3, "{name}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{name}: wrote {}", run.out());
        assert!(
            run.stderr.starts_with("error: stdin line 2: "),
            "{name}: {}",
            run.stderr
        );
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} encoder entries");
}
