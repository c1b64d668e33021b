//! Helpers shared by the workspace tests: where the spec's vector files are, how to read them,
//! and the receiver-side classification of spec §7.2 applied to raw bytes.

#![allow(
    clippy::panic,
    reason = "test support: a broken vector file must fail the test loudly"
)]

pub mod arbitrary;
pub mod drivers;
pub mod net;
pub mod pair;
pub mod sample;
pub mod sessions;
pub mod transcript;

use std::path::PathBuf;

use iotmp_proto::frame::Deframer;
use iotmp_proto::{Dialect, Flavour, Message, Outcome};
use serde_json::Value as Json;

/// The vector folder: `$IOTMP_VECTORS`, else `../shared/spec/vectors` from the repository root.
pub fn vectors_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("IOTMP_VECTORS") {
        return PathBuf::from(dir);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/spec/vectors")
}

/// Reads and parses one vector file, failing the test with a clear message if it is missing.
pub fn load_json(name: &str) -> Vec<Json> {
    let path = vectors_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read vector file {}: {e} (set IOTMP_VECTORS to the vectors folder)",
            path.display()
        )
    });
    match serde_json::from_str::<Json>(&text) {
        Ok(Json::Array(entries)) => entries,
        Ok(_) => panic!("{} is not a JSON array", path.display()),
        Err(e) => panic!("{} is not valid JSON: {e}", path.display()),
    }
}

/// Reads a text vector file.
pub fn load_text(name: &str) -> String {
    let path = vectors_dir().join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read vector file {}: {e}", path.display()))
}

/// Parses the vectors' hex form ("0A 21 08", spaces optional, any case).
pub fn hex_bytes(text: &str) -> Vec<u8> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(&compact).unwrap_or_else(|e| panic!("bad hex {text:?}: {e}"))
}

/// Formats bytes the way the vectors do: upper case, one space between bytes.
pub fn hex_string(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `name` member of a vector entry.
pub fn name_of(entry: &Json) -> &str {
    entry
        .get("name")
        .and_then(Json::as_str)
        .unwrap_or("<unnamed>")
}

/// A string member of a vector entry.
pub fn str_member<'a>(entry: &'a Json, member: &str) -> &'a str {
    entry
        .get(member)
        .and_then(Json::as_str)
        .unwrap_or_else(|| panic!("{}: missing string {member:?}", name_of(entry)))
}

/// The dialect named by a vector entry's `dialect` member (`"2020"` / `"2026"`).
pub fn dialect_of(entry: &Json) -> Dialect {
    str_member(entry, "dialect")
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e}", name_of(entry)))
}

/// The value flavour of a frame entry (`"pson": "v1"`, default v2).
pub fn flavour_of(entry: &Json) -> Flavour {
    match entry.get("pson").and_then(Json::as_str) {
        Some("v1") => Flavour::V1,
        _ => Flavour::V2,
    }
}

/// Splits a byte string into frames, requiring that it is exactly whole frames.
pub fn whole_frames(bytes: &[u8]) -> Vec<(u32, Vec<u8>)> {
    let mut deframer = Deframer::default();
    let mut input = bytes;
    let mut frames = Vec::new();
    while let Some(frame) = deframer
        .next_frame(&mut input)
        .unwrap_or_else(|e| panic!("framing failed: {e}"))
    {
        frames.push((frame.type_code, frame.body.to_vec()));
    }
    deframer
        .finish()
        .unwrap_or_else(|e| panic!("not whole frames: {e}"));
    frames
}

/// What a receiver in a given state made of a byte stream that then ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaction {
    /// The outcome of spec §7.2 (the last non-accepting one, or `None` if every frame was fine).
    pub outcome: Option<Outcome>,
    /// Bytes the receiver sent back.
    pub reply: Vec<u8>,
    /// Messages that decoded fine.
    pub accepted: Vec<Message>,
}

/// Applies spec §7.2 to `bytes` at the codec level: `dialect` is `None` for a new server
/// connection (the dialect is detected from the first frame, spec §6.1).
pub fn react(dialect: Option<Dialect>, bytes: &[u8]) -> Reaction {
    let mut deframer = Deframer::default();
    let mut input = bytes;
    let mut known = dialect;
    let mut reaction = Reaction {
        outcome: None,
        reply: Vec::new(),
        accepted: Vec::new(),
    };
    loop {
        let frame = match deframer.next_frame(&mut input) {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(e) => {
                assert_eq!(e.outcome(), Outcome::Close);
                reaction.outcome = Some(Outcome::Close);
                return reaction;
            }
        };
        let dialect = match known {
            Some(d) => d,
            None => match Dialect::detect(frame.type_code) {
                Some(d) => d,
                None => {
                    reaction.outcome = Some(Outcome::Close);
                    return reaction;
                }
            },
        };
        let first = known.is_none();
        known = Some(dialect);
        match dialect.decode(frame.type_code, frame.body) {
            Ok(message) => reaction.accepted.push(message),
            Err(_) if first => {
                reaction.outcome = Some(Outcome::Close);
                return reaction;
            }
            Err(e) => {
                let outcome = e.outcome();
                if let Outcome::DropAndError { stream_id } = outcome {
                    dialect
                        .encode(
                            &dialect.malformed_reply(stream_id),
                            Flavour::V2,
                            &mut reaction.reply,
                        )
                        .unwrap_or_else(|e| panic!("the malformed reply must encode: {e}"));
                }
                reaction.outcome = Some(outcome);
            }
        }
    }
    if deframer.finish().is_err() {
        reaction.outcome = Some(Outcome::Close);
    }
    reaction
}
