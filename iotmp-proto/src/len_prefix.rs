//! Length prefixes written after the content they measure.
//!
//! Frame headers and Protoson containers put a varint length *before* content whose length is
//! only known once it is encoded. We reserve one byte (enough for anything under 128 bytes, the
//! common case), encode the content, then patch the byte, shifting the content only when the
//! length needs more bytes.

use crate::varint;

/// Reserves the one-byte placeholder; returns its position for [`finish`].
#[inline]
pub(crate) fn start(out: &mut Vec<u8>) -> usize {
    let at = out.len();
    out.push(0);
    at
}

/// Writes the length of everything after the placeholder at `at` into the placeholder.
#[inline]
pub(crate) fn finish(out: &mut Vec<u8>, at: usize) {
    let content_len = out.len().saturating_sub(at + 1);
    if content_len < 0x80 {
        if let Some(slot) = out.get_mut(at) {
            *slot = content_len as u8;
        }
        return;
    }
    let mut prefix = Vec::with_capacity(10);
    varint::write(&mut prefix, content_len as u64);
    out.splice(at..at + 1, prefix);
}

#[cfg(test)]
mod tests {
    #[test]
    fn short_and_long() {
        let mut out = vec![0xAA];
        let at = super::start(&mut out);
        out.extend_from_slice(&[1, 2, 3]);
        super::finish(&mut out, at);
        assert_eq!(out, [0xAA, 3, 1, 2, 3]);

        let mut out = Vec::new();
        let at = super::start(&mut out);
        out.extend(std::iter::repeat_n(7u8, 300));
        super::finish(&mut out, at);
        assert_eq!(&out[..3], &[0xAC, 0x02, 7]);
        assert_eq!(out.len(), 302);
    }
}
