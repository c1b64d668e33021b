//! Checks shared by the fuzz targets in `fuzz_targets/`.
//!
//! Every check here asserts a property that must hold for *any* input, so a panic anywhere (in
//! `iotmp-proto` or in these assertions) is a bug worth reporting. Nothing in this file is
//! allowed to panic on its own for a legitimate reason.

use iotmp_proto::frame::{DEFAULT_MAX_BODY, Deframer, FrameError};
use iotmp_proto::pson::{self, Flavour, ValueErrorKind, protoson, v2};
use iotmp_proto::value::MAX_DEPTH;
use iotmp_proto::{Dialect, Message, MessageErrorKind, Outcome, Value};

// ---------------------------------------------------------------------------------------------
// Chunking
// ---------------------------------------------------------------------------------------------

/// Splits a stream into chunk sizes drawn from a tiny deterministic PRNG, seeded by the control
/// byte and the stream length, so the fuzzer steers the chunking through the input itself.
///
/// Control byte layout:
/// * bits 0..=3: the largest chunk is `max(2^bits, 2) - 1` bytes (1 to 32767); chunks may be
///   empty;
/// * bits 4..=6: extra seed bits for the PRNG, and (with bit 7) the body limit;
/// * bit 7: use a small body limit (`(bits 4..=6) * 9`, so 0..=63) instead of the default.
#[derive(Debug)]
pub struct Chunker {
    state: u64,
    max: usize,
}

impl Chunker {
    /// A chunker for a stream of `len` bytes under control byte `control`.
    pub fn new(control: u8, len: usize) -> Self {
        // At least 1, so that chunking always makes progress on average; sizes may still be 0.
        let max = (1usize << (control & 0x0F)).max(2) - 1;
        let state = (u64::from(control) << 32 | len as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        Chunker { state, max }
    }

    fn next_u64(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// The next chunk size, in `0..=max`.
    pub fn next_size(&mut self) -> usize {
        (self.next_u64() % (self.max as u64 + 1)) as usize
    }

    /// Splits `stream` into chunks (some possibly empty) covering it exactly, in order.
    pub fn split(mut self, stream: &[u8]) -> Vec<&[u8]> {
        let mut chunks = Vec::new();
        let mut rest = stream;
        while !rest.is_empty() {
            let size = self.next_size().min(rest.len());
            let (now, later) = rest.split_at(size);
            chunks.push(now);
            rest = later;
        }
        chunks
    }
}

/// The body limit selected by the control byte (see [`Chunker`]).
pub fn body_limit(control: u8) -> u32 {
    if control & 0x80 != 0 {
        u32::from((control >> 4) & 0x07) * 9
    } else {
        DEFAULT_MAX_BODY
    }
}

// ---------------------------------------------------------------------------------------------
// Deframing
// ---------------------------------------------------------------------------------------------

/// Everything observable about deframing one stream.
#[derive(Debug, PartialEq, Eq)]
pub struct DeframeRun {
    /// The frames, in order: type code and body.
    pub frames: Vec<(u32, Vec<u8>)>,
    /// The framing error that stopped the stream, if any.
    pub error: Option<FrameError>,
    /// What `finish()` said at the end.
    pub finish: Result<(), FrameError>,
    /// `stream_offset()` at the end when no error happened (it must equal the stream length).
    pub offset: Option<u64>,
}

/// Feeds `chunks` through a fresh deframer with body limit `limit`.
pub fn deframe<'a>(limit: u32, chunks: impl IntoIterator<Item = &'a [u8]>) -> DeframeRun {
    let mut deframer = Deframer::new(limit);
    assert_eq!(deframer.max_body(), limit);
    let mut frames = Vec::new();
    let mut error = None;
    let mut fed: u64 = 0;
    'chunks: for chunk in chunks {
        fed += chunk.len() as u64;
        let mut input = chunk;
        loop {
            let before = input.len();
            match deframer.next_frame(&mut input) {
                Ok(Some(frame)) => {
                    assert!(
                        frame.body.len() as u64 <= u64::from(limit),
                        "frame body above the limit"
                    );
                    frames.push((frame.type_code, frame.body.to_vec()));
                }
                Ok(None) => {
                    assert!(
                        input.is_empty(),
                        "next_frame returned None with {} bytes left",
                        input.len()
                    );
                    break;
                }
                Err(e) => {
                    assert_eq!(
                        e.outcome(),
                        Outcome::Close,
                        "framing errors close the connection"
                    );
                    let _ = e.to_string();
                    assert!(input.len() <= before);
                    // Errors are sticky, whatever comes next.
                    let mut more: &[u8] = &[0x01, 0x00];
                    assert_eq!(
                        deframer.next_frame(&mut more).map(|f| f.is_some()),
                        Err(e),
                        "error not sticky"
                    );
                    error = Some(e);
                    break 'chunks;
                }
            }
        }
        assert!(
            deframer.stream_offset() <= fed,
            "stream offset beyond the bytes fed"
        );
    }
    let between = deframer.is_between_frames();
    let offset = if error.is_none() {
        // stream_offset() counts body bytes as they are buffered, but not the bytes of a header
        // still being assembled (at most ten); between frames it is exactly what was fed.
        let offset = deframer.stream_offset();
        let unaccounted = fed - offset;
        assert!(
            unaccounted <= 10,
            "{unaccounted} bytes fed but not counted in the offset"
        );
        assert!(
            unaccounted <= deframer.buffered() as u64,
            "bytes missing from the offset are not buffered"
        );
        if between {
            assert_eq!(
                offset, fed,
                "between frames the offset must equal the bytes fed"
            );
        }
        Some(offset)
    } else {
        None
    };
    let finish = deframer.finish();
    match error {
        None => assert_eq!(
            finish.is_ok(),
            between,
            "finish() disagrees with is_between_frames()"
        ),
        Some(e) => assert_eq!(finish, Err(e), "finish() after an error must repeat it"),
    }
    if let Err(e) = finish {
        assert_eq!(e.outcome(), Outcome::Close);
        // finish() is sticky too.
        assert_eq!(deframer.finish(), Err(e));
    }
    DeframeRun {
        frames,
        error,
        finish,
        offset,
    }
}

/// The whole deframe → decode → re-encode → decode check for one fuzz input.
///
/// Input layout: byte 0 is the control byte (chunking and body limit, see [`Chunker`]); the rest
/// is the byte stream.
pub fn deframe_decode(dialect: Dialect, data: &[u8]) {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let limit = body_limit(control);
    let chunks = Chunker::new(control, stream.len()).split(stream);
    let chunked = deframe(limit, chunks.iter().copied());
    let whole = deframe(limit, [stream]);
    assert_eq!(chunked, whole, "chunked and whole deframing differ");
    // Byte by byte, the most extreme chunking, for short streams (it costs one call per byte).
    if stream.len() <= 64 {
        let bytewise = deframe(limit, stream.chunks(1));
        assert_eq!(bytewise, whole, "byte-by-byte and whole deframing differ");
    }
    for (type_code, body) in &whole.frames {
        check_frame(dialect, *type_code, body);
    }
}

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

/// Decodes one frame and, if it decodes, checks the re-encoding round trip.
pub fn check_frame(dialect: Dialect, type_code: u32, body: &[u8]) {
    match dialect.decode(type_code, body) {
        Ok(message) => check_message(dialect, &message),
        Err(e) => {
            let known = dialect.message_type(type_code);
            let outcome = e.outcome();
            match e.kind {
                MessageErrorKind::UnknownType(code) => {
                    assert_eq!(code, type_code);
                    assert!(known.is_none(), "UnknownType for a defined code");
                    assert_eq!(outcome, Outcome::Ignore);
                }
                _ => {
                    assert_eq!(
                        e.message_type,
                        known.map(|(kind, _)| kind),
                        "error names the wrong type"
                    );
                    assert!(e.offset <= body.len(), "error offset beyond the body");
                    match outcome {
                        Outcome::DropAndError { stream_id } => {
                            assert_ne!(stream_id, 0);
                            assert_eq!(Some(stream_id), e.stream_id);
                            assert!(e.message_type.is_some_and(|t| t.is_request()));
                        }
                        Outcome::Drop => {}
                        other => panic!("message error with outcome {other:?}"),
                    }
                }
            }
            let _ = e.to_string();
        }
    }
}

/// Re-encodes a decoded message in every flavour the dialect has; each encoding that succeeds
/// must be one whole frame that decodes to an equal message and re-encodes to the same bytes.
pub fn check_message(dialect: Dialect, first: &Message) {
    let _ = first.to_string();
    let flavours: &[Flavour] = match dialect {
        Dialect::Draft2020 => &[Flavour::V2],
        Dialect::Draft2026 => &[Flavour::V2, Flavour::V1],
    };
    for &flavour in flavours {
        let mut wire = vec![0xAA]; // a byte in front: encode must append, and leave it alone on error
        match dialect.encode(first, flavour, &mut wire) {
            Err(e) => {
                assert_eq!(wire, [0xAA], "failed encode wrote bytes: {e}");
                let _ = e.to_string();
            }
            Ok(()) => {
                assert_eq!(wire.first(), Some(&0xAA));
                let frame_bytes = wire.get(1..).unwrap_or_default();
                let mut input = frame_bytes;
                let mut deframer = Deframer::new(u32::MAX);
                let frame = match deframer.next_frame(&mut input) {
                    Ok(Some(frame)) => frame,
                    other => panic!(
                        "re-encoded {first:?} ({flavour:?}) is not one whole frame: {other:?}"
                    ),
                };
                assert!(
                    input.is_empty(),
                    "re-encoding of {first:?} has bytes after the frame"
                );
                let second = match dialect.decode(frame.type_code, frame.body) {
                    Ok(m) => m,
                    Err(e) => panic!(
                        "re-encoded {first:?} ({flavour:?}) does not decode: {e}\nbytes {frame_bytes:02X?}"
                    ),
                };
                assert_eq!(
                    first, &second,
                    "round trip changed the message ({flavour:?}); bytes {frame_bytes:02X?}"
                );
                let mut again = Vec::new();
                match dialect.encode(&second, flavour, &mut again) {
                    Ok(()) => {
                        assert_eq!(again, frame_bytes, "encoding is not stable ({flavour:?})")
                    }
                    Err(e) => panic!("re-decoded message does not encode again ({flavour:?}): {e}"),
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------

type DecodeFn = fn(&[u8]) -> Result<Value, pson::ValueError>;
type PrefixFn = fn(&[u8]) -> Result<(Value, usize), pson::ValueError>;

fn codec(flavour: Flavour) -> (DecodeFn, PrefixFn) {
    match flavour {
        Flavour::V2 => (v2::decode, v2::decode_prefix),
        Flavour::V1 => (protoson::decode, protoson::decode_prefix),
    }
}

/// Decodes `data` as one `flavour` value (whole and as a prefix), checks that the two agree, and
/// round-trips whatever decoded through both encodings.
pub fn check_value(flavour: Flavour, data: &[u8]) {
    let (decode, decode_prefix) = codec(flavour);
    let whole = decode(data);
    let prefix = decode_prefix(data);
    match (&whole, &prefix) {
        (Ok(value), Ok((prefix_value, used))) => {
            assert_eq!(
                *used,
                data.len(),
                "whole decode succeeded but the prefix is shorter"
            );
            assert_eq!(value, prefix_value);
        }
        (Ok(_), Err(e)) => panic!("whole decode succeeded but prefix decode failed: {e}"),
        (Err(e), Ok((prefix_value, used))) => {
            assert!(
                *used < data.len(),
                "prefix used all bytes but whole decode failed: {e}"
            );
            assert_eq!(e.kind, ValueErrorKind::TrailingBytes);
            assert_eq!(e.offset, *used);
            let head = data.get(..*used).unwrap_or_default();
            assert_eq!(
                decode(head).as_ref(),
                Ok(prefix_value),
                "the used prefix alone does not decode the same"
            );
        }
        (Err(a), Err(b)) => {
            assert_eq!(a, b, "whole and prefix decode fail differently");
            assert!(a.offset <= data.len(), "error offset beyond the input");
            let _ = a.to_string();
        }
    }
    if let Ok((value, _)) = prefix {
        check_value_roundtrip(flavour, &value);
    }
}

/// `value` came out of the `decoded_by` decoder: both encoders must accept it, and each encoding
/// must decode back to an equal value and re-encode to the same bytes.
pub fn check_value_roundtrip(_decoded_by: Flavour, value: &Value) {
    let _ = value.to_string();
    assert!(
        value.depth() <= MAX_DEPTH,
        "decoder produced a value nested {} deep",
        value.depth()
    );
    for flavour in [Flavour::V2, Flavour::V1] {
        let (decode, _) = codec(flavour);
        let mut out = vec![0x55];
        if let Err(e) = pson::encode(flavour, value, &mut out) {
            panic!("decoded value {value:?} does not encode as {flavour:?}: {e}");
        }
        let bytes = out.get(1..).unwrap_or_default();
        let back = match decode(bytes) {
            Ok(v) => v,
            Err(e) => {
                panic!("{flavour:?} encoding of {value:?} does not decode: {e}; bytes {bytes:02X?}")
            }
        };
        assert_eq!(
            &back, value,
            "{flavour:?} round trip changed the value; bytes {bytes:02X?}"
        );
        let mut again = Vec::new();
        match pson::encode(flavour, &back, &mut again) {
            Ok(()) => assert_eq!(again, bytes, "{flavour:?} encoding is not stable"),
            Err(e) => panic!("re-decoded value does not encode again: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------------------------

pub mod client_fuzz;
pub mod draw;
pub mod odd;
pub mod server_fuzz;
pub mod wire;
