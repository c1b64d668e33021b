//! Framing (spec §2.3): `type varint | size varint | body`, and the incremental deframer.

use thiserror::Error;

use crate::outcome::Outcome;
use crate::varint::{self, VarintError};

/// Default limit on a frame body (spec §7.1): 256 KiB.
pub const DEFAULT_MAX_BODY: u32 = 256 * 1024;

/// Header varints may use at most this many bytes each (spec §2.2).
const HEADER_VARINT_MAX: usize = 5;

/// One complete frame: its type code and body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The message type code (meaning depends on the dialect).
    pub type_code: u32,
    /// Exactly the body bytes.
    pub body: &'a [u8],
}

/// A framing violation. Every one of them closes the connection (spec §7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The message type varint is longer than 5 bytes.
    #[error("message type longer than 5 bytes at stream offset {offset}")]
    TypeTooLong {
        /// Offset of the frame in the byte stream.
        offset: u64,
    },
    /// The body size varint is longer than 5 bytes.
    #[error("message size longer than 5 bytes at stream offset {offset}")]
    SizeTooLong {
        /// Offset of the frame in the byte stream.
        offset: u64,
    },
    /// A header varint above 2^32−1.
    #[error("message header overflow at stream offset {offset}")]
    HeaderOverflow {
        /// Offset of the frame in the byte stream.
        offset: u64,
    },
    /// The announced body is larger than the configured limit.
    #[error("body of {size} bytes exceeds limit of {limit} at stream offset {offset}")]
    BodyTooLarge {
        /// The announced size.
        size: u32,
        /// The configured limit.
        limit: u32,
        /// Offset of the frame in the byte stream.
        offset: u64,
    },
    /// The stream ended inside a header or a body.
    #[error(
        "truncated frame at end of stream ({buffered} bytes of an incomplete frame at stream offset {offset})"
    )]
    TruncatedAtEof {
        /// Bytes of the incomplete frame that had arrived.
        buffered: usize,
        /// Offset of the frame in the byte stream.
        offset: u64,
    },
}

impl FrameError {
    /// Always [`Outcome::Close`].
    pub const fn outcome(&self) -> Outcome {
        Outcome::Close
    }
}

/// Appends a frame header for a body of `body_len` bytes.
pub fn write_header(out: &mut Vec<u8>, type_code: u32, body_len: u32) {
    varint::write(out, u64::from(type_code));
    varint::write(out, u64::from(body_len));
}

enum Header {
    Complete {
        type_code: u32,
        size: u32,
        len: usize,
    },
    Incomplete,
}

fn header_varint(
    bytes: &[u8],
    too_long: FrameError,
    overflow: FrameError,
) -> Result<Option<(u32, usize)>, FrameError> {
    match varint::read(bytes, HEADER_VARINT_MAX, u64::from(u32::MAX)) {
        // The range check above makes the cast exact.
        Ok((value, used)) => Ok(Some((value as u32, used))),
        Err(VarintError::Truncated) => Ok(None),
        Err(VarintError::TooLong) => Err(too_long),
        Err(VarintError::Overflow) => Err(overflow),
    }
}

fn parse_header(bytes: &[u8], offset: u64, limit: u32) -> Result<Header, FrameError> {
    let overflow = FrameError::HeaderOverflow { offset };
    let Some((type_code, type_len)) =
        header_varint(bytes, FrameError::TypeTooLong { offset }, overflow)?
    else {
        return Ok(Header::Incomplete);
    };
    let rest = bytes.get(type_len..).unwrap_or_default();
    let Some((size, size_len)) = header_varint(rest, FrameError::SizeTooLong { offset }, overflow)?
    else {
        return Ok(Header::Incomplete);
    };
    if size > limit {
        return Err(FrameError::BodyTooLarge {
            size,
            limit,
            offset,
        });
    }
    Ok(Header::Complete {
        type_code,
        size,
        len: type_len + size_len,
    })
}

/// Splits a byte stream, fed in chunks of any size, into frames.
///
/// A frame that arrives whole inside one chunk is handed out as a slice of that chunk, without
/// copying. Only a frame split across chunks is buffered, and the buffer never holds more than
/// one header (≤ 10 bytes) plus one body, whose announced size is checked against the limit
/// before a single body byte is kept. The buffer is released as soon as its frame is handed out,
/// so an idle connection holds no memory here.
///
/// Errors are sticky: after one, every call returns it again.
///
/// ```
/// use iotmp_proto::frame::Deframer;
/// let mut deframer = Deframer::default();
/// let mut frames = Vec::new();
/// for chunk in [&[0x05u8][..], &[0x00, 0x01, 0x02, 0x08], &[0x01]] {
///     let mut input = chunk;
///     while let Some(frame) = deframer.next_frame(&mut input)? {
///         frames.push((frame.type_code, frame.body.to_vec()));
///     }
/// }
/// assert_eq!(frames, [(5, vec![]), (1, vec![0x08, 0x01])]);
/// # Ok::<(), iotmp_proto::frame::FrameError>(())
/// ```
#[derive(Debug)]
pub struct Deframer {
    limit: u32,
    /// Bytes consumed so far (headers count once they are complete).
    offset: u64,
    /// What a frame split across chunks (or a failed stream) needs. None between frames: a
    /// server holds one deframer per connection, and most of them sit idle between frames, so
    /// the idle deframer is 24 bytes instead of the ~96 this state takes inline.
    partial: Option<Box<Partial>>,
}

#[derive(Debug, Default)]
struct Partial {
    header: [u8; 2 * HEADER_VARINT_MAX],
    header_len: u8,
    /// Type and size of the frame whose body is being buffered.
    pending: Option<(u32, u32)>,
    body: Vec<u8>,
    /// The buffered frame was handed out; drop it on the next call.
    handed_out: bool,
    error: Option<FrameError>,
    /// Stream offset where the frame whose body is being buffered starts.
    frame_start: u64,
}

impl Partial {
    fn buffered(&self) -> usize {
        if self.handed_out {
            0
        } else {
            usize::from(self.header_len) + self.body.len()
        }
    }
}

impl Default for Deframer {
    fn default() -> Self {
        Deframer::new(DEFAULT_MAX_BODY)
    }
}

impl Deframer {
    /// A deframer accepting bodies of at most `max_body` bytes.
    pub const fn new(max_body: u32) -> Self {
        Deframer {
            limit: max_body,
            offset: 0,
            partial: None,
        }
    }

    /// The body size limit.
    pub const fn max_body(&self) -> u32 {
        self.limit
    }

    /// Bytes of an incomplete frame currently held.
    pub fn buffered(&self) -> usize {
        self.partial.as_deref().map_or(0, Partial::buffered)
    }

    /// True when no partial frame is held (a clean place for the stream to end).
    pub fn is_between_frames(&self) -> bool {
        self.partial
            .as_deref()
            .is_none_or(|p| p.buffered() == 0 && (p.pending.is_none() || p.handed_out))
    }

    /// Bytes consumed so far: complete headers and buffered body bytes; the bytes of a header
    /// that is still incomplete (at most ten) are not counted until it completes.
    pub const fn stream_offset(&self) -> u64 {
        self.offset
    }

    fn fail(&mut self, error: FrameError) -> FrameError {
        let partial = self.partial.get_or_insert_with(Box::default);
        partial.error = Some(error);
        partial.body = Vec::new();
        error
    }

    /// Takes bytes from the front of `input` and returns the next complete frame, or `None` once
    /// `input` is used up without completing one (the partial frame is kept for the next call).
    pub fn next_frame<'s, 'i: 's>(
        &'s mut self,
        input: &mut &'i [u8],
    ) -> Result<Option<Frame<'s>>, FrameError> {
        if let Some(partial) = &self.partial {
            if let Some(error) = partial.error {
                return Err(error);
            }
            if partial.handed_out {
                self.partial = None;
            }
        }
        if self.partial.as_ref().is_none_or(|p| p.pending.is_none()) {
            let header_len = self.partial.as_ref().map_or(0, |p| p.header_len);
            let header = if header_len == 0 {
                // Fast path: the header is at the front of this chunk.
                match parse_header(input, self.offset, self.limit) {
                    Ok(h) => h,
                    Err(e) => return Err(self.fail(e)),
                }
            } else {
                Header::Incomplete
            };
            match header {
                Header::Complete {
                    type_code,
                    size,
                    len,
                } => {
                    let whole = len + size as usize;
                    if let Some(body) = input.get(len..whole) {
                        let chunk: &'i [u8] = input;
                        *input = chunk.get(whole..).unwrap_or_default();
                        self.offset += whole as u64;
                        return Ok(Some(Frame { type_code, body }));
                    }
                    *input = input.get(len..).unwrap_or_default();
                    let partial = self.partial.get_or_insert_with(Box::default);
                    partial.frame_start = self.offset;
                    partial.pending = Some((type_code, size));
                    self.offset += len as u64;
                }
                Header::Incomplete => {
                    // Feed the header byte by byte: it is at most ten bytes long.
                    loop {
                        let Some((&byte, rest)) = input.split_first() else {
                            return Ok(None);
                        };
                        let partial = self.partial.get_or_insert_with(Box::default);
                        let Some(slot) = partial.header.get_mut(usize::from(partial.header_len))
                        else {
                            // Unreachable: a full header buffer always parses or fails.
                            let offset = self.offset;
                            return Err(self.fail(FrameError::SizeTooLong { offset }));
                        };
                        *slot = byte;
                        partial.header_len += 1;
                        *input = rest;
                        let bytes = partial
                            .header
                            .get(..usize::from(partial.header_len))
                            .unwrap_or_default();
                        match parse_header(bytes, self.offset, self.limit) {
                            Err(e) => return Err(self.fail(e)),
                            Ok(Header::Incomplete) => continue,
                            Ok(Header::Complete {
                                type_code,
                                size,
                                len,
                            }) => {
                                partial.frame_start = self.offset;
                                partial.header_len = 0;
                                partial.pending = Some((type_code, size));
                                self.offset += len as u64;
                                break;
                            }
                        }
                    }
                }
            }
        }
        let Some(partial) = self.partial.as_mut() else {
            return Ok(None);
        };
        let Some((type_code, size)) = partial.pending else {
            return Ok(None);
        };
        let missing = (size as usize).saturating_sub(partial.body.len());
        let take = missing.min(input.len());
        let (now, later) = input.split_at(take);
        partial.body.extend_from_slice(now);
        *input = later;
        self.offset += take as u64;
        if partial.body.len() == size as usize {
            partial.handed_out = true;
            return Ok(Some(Frame {
                type_code,
                body: &partial.body,
            }));
        }
        Ok(None)
    }

    /// Declares the end of the stream: an error if it ended inside a frame (spec §7.2).
    pub fn finish(&mut self) -> Result<(), FrameError> {
        let Some(partial) = self.partial.as_deref() else {
            return Ok(());
        };
        if let Some(error) = partial.error {
            return Err(error);
        }
        let truncated = match (partial.pending, partial.handed_out) {
            // Inside a body: everything since the frame's first header byte.
            (Some(_), false) => Some((
                partial.frame_start,
                self.offset.saturating_sub(partial.frame_start),
            )),
            // Inside a header: its bytes are not counted in `offset` yet.
            (None, _) if partial.header_len > 0 => {
                Some((self.offset, u64::from(partial.header_len)))
            }
            _ => None,
        };
        if let Some((offset, received)) = truncated {
            let buffered = usize::try_from(received).unwrap_or(usize::MAX);
            return Err(self.fail(FrameError::TruncatedAtEof { buffered, offset }));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn all_frames(
        deframer: &mut Deframer,
        mut input: &[u8],
    ) -> Result<Vec<(u32, Vec<u8>)>, FrameError> {
        let mut out = Vec::new();
        while let Some(frame) = deframer.next_frame(&mut input)? {
            out.push((frame.type_code, frame.body.to_vec()));
        }
        Ok(out)
    }

    #[test]
    fn byte_by_byte_equals_whole() {
        let stream = [
            0x05, 0x00, 0x01, 0x02, 0x08, 0x01, 0x0A, 0x80, 0x00, 0x0B, 0x01, 0xFF,
        ];
        let whole = all_frames(&mut Deframer::default(), &stream).unwrap();
        let mut d = Deframer::default();
        let mut split = Vec::new();
        for b in stream {
            split.extend(all_frames(&mut d, &[b]).unwrap());
        }
        assert_eq!(whole, split);
        assert_eq!(whole.len(), 4);
        d.finish().unwrap();
    }

    #[test]
    fn limit_checked_before_body_arrives() {
        let mut d = Deframer::new(4);
        let err = all_frames(&mut d, &[0x01, 0x05]).unwrap_err();
        assert_eq!(
            err,
            FrameError::BodyTooLarge {
                size: 5,
                limit: 4,
                offset: 0
            }
        );
        assert_eq!(
            all_frames(&mut d, &[0x00]).unwrap_err(),
            err,
            "errors are sticky"
        );
    }

    #[test]
    fn eof_inside_frame() {
        let mut d = Deframer::default();
        all_frames(&mut d, &[0x05, 0x00, 0x01, 0x05, 0x01]).unwrap();
        assert_eq!(
            d.finish(),
            Err(FrameError::TruncatedAtEof {
                buffered: 3,
                offset: 2
            })
        );
        let mut d = Deframer::default();
        all_frames(&mut d, &[0x05, 0x00, 0x01, 0x80]).unwrap();
        assert_eq!(
            d.finish(),
            Err(FrameError::TruncatedAtEof {
                buffered: 2,
                offset: 2
            })
        );
    }

    #[test]
    fn buffer_released_after_frame() {
        let mut d = Deframer::default();
        all_frames(&mut d, &[0x01, 0x03, 0x01]).unwrap();
        assert_eq!(d.buffered(), 1);
        assert_eq!(
            all_frames(&mut d, &[0x02, 0x03]).unwrap(),
            [(1, vec![1, 2, 3])]
        );
        assert_eq!(d.buffered(), 0);
        assert!(d.is_between_frames());
        d.finish().unwrap();
    }
}
