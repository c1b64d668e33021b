//! Decodes IOTMP frames given as hex and prints one JSON object per message (the message JSON
//! form of the spec's vector files).
//!
//! ```text
//! cargo run -p iotmp-proto --example decode                       # the spec's §10.2 sample
//! cargo run -p iotmp-proto --example decode -- 2020 "03 00 01 02 01 01"
//! echo "0A 04 08 6A 18 2A" | cargo run -p iotmp-proto --example decode -- 2026 -
//! ```
//!
//! This is a stop-gap until `iotmp decode` lands in the CLI.

use std::io::Read as _;
use std::process::ExitCode;

use iotmp_proto::Dialect;
use iotmp_proto::frame::Deframer;
use iotmp_proto::json::message::message_to_json;

/// The first exchange of spec §10.2: CONNECT, OK, DESCRIBE and its answer, in dialect 2026.
const SAMPLE_2026: &str = "03 1D 08 01 12 C1 82 6B 61 1E 1A E3 85 61 6C 69 63 65 85 64 65 76 30 31 86 73 33 63 72 33 74 \
    01 02 08 01 07 02 08 65 01 24 08 65 1A C3 83 6C 65 64 C1 82 66 6E 02 84 74 65 6D 70 C1 82 66 6E 03 \
    87 68 65 61 64 69 6E 67 C1 82 66 6E 03";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (dialect, hex_text) = match args.as_slice() {
        [] => (Dialect::Draft2026, SAMPLE_2026.to_owned()),
        [dialect, rest @ ..] => {
            let dialect: Dialect = match dialect.parse() {
                Ok(d) => d,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let text = if rest.is_empty() || rest == ["-"] {
                let mut text = String::new();
                if let Err(e) = std::io::stdin().read_to_string(&mut text) {
                    eprintln!("error: cannot read stdin: {e}");
                    return ExitCode::from(2);
                }
                text
            } else {
                rest.join(" ")
            };
            (dialect, text)
        }
    };
    let compact: String = hex_text.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = match hex::decode(&compact) {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("error: the input is not hexadecimal: {e}");
            return ExitCode::from(2);
        }
    };
    let mut deframer = Deframer::default();
    let mut input = &bytes[..];
    let mut failed = false;
    loop {
        let offset = deframer.stream_offset();
        match deframer.next_frame(&mut input) {
            Ok(Some(frame)) => match dialect.decode(frame.type_code, frame.body) {
                Ok(message) => println!("{}", message_to_json(&message)),
                Err(e) => {
                    eprintln!("frame at byte {offset}: {e} ({})", e.outcome().name());
                    failed = true;
                }
            },
            Ok(None) => break,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if let Err(e) = deframer.finish() {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
