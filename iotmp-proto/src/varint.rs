//! Unsigned LEB128 varints (spec §2.2), the integer form shared by frame headers, field keys,
//! PSON v2 escapes and Protoson.
//!
//! Encoders always write the shortest form. Decoders accept longer forms up to a byte budget
//! chosen by the caller (5 bytes where the spec caps the value at 2^32−1, 10 where it allows
//! 2^64−1), because the spec assigns a different outcome to each place a varint appears.

/// Why a varint could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VarintError {
    /// The input ended before the last byte (one without bit 7).
    Truncated,
    /// Byte number `max_bytes` still had bit 7 set.
    TooLong,
    /// The value does not fit the allowed range.
    Overflow,
}

/// Appends `value` in its shortest form.
#[inline]
pub(crate) fn write(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        // Truncation to the low 7 bits is the point of the encoding.
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads a varint from the start of `input`.
///
/// Returns the value and the number of bytes used. At most `max_bytes` bytes (≤ 10) are read and
/// the value must not exceed `max_value`.
#[inline]
pub(crate) fn read(
    input: &[u8],
    max_bytes: usize,
    max_value: u64,
) -> Result<(u64, usize), VarintError> {
    // Fast paths: the overwhelmingly common one- and two-byte forms (the latter where two bytes
    // are allowed, which every caller does).
    match input {
        [b, ..] if *b < 0x80 => {
            let v = u64::from(*b);
            return if v > max_value {
                Err(VarintError::Overflow)
            } else {
                Ok((v, 1))
            };
        }
        [b0, b1, ..] if *b1 < 0x80 && max_bytes >= 2 => {
            let v = u64::from(b0 & 0x7F) | u64::from(*b1) << 7;
            return if v > max_value {
                Err(VarintError::Overflow)
            } else {
                Ok((v, 2))
            };
        }
        _ => {}
    }
    let mut value: u64 = 0;
    for (i, &byte) in input.iter().enumerate() {
        if byte & 0x80 != 0 && i + 1 >= max_bytes {
            return Err(VarintError::TooLong);
        }
        let group = u64::from(byte & 0x7F);
        let shift = 7 * i as u32;
        if shift >= 64 || (shift > 0 && group >> (64 - shift) != 0) {
            // Bits beyond 2^64: only a zero group (a non-minimal tail) may sit here.
            if group != 0 {
                return Err(VarintError::Overflow);
            }
        } else {
            value |= group << shift;
        }
        if byte & 0x80 == 0 {
            return if value > max_value {
                Err(VarintError::Overflow)
            } else {
                Ok((value, i + 1))
            };
        }
    }
    if input.len() >= max_bytes {
        Err(VarintError::TooLong)
    } else {
        Err(VarintError::Truncated)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn enc(v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        write(&mut out, v);
        out
    }

    #[test]
    fn spec_examples() {
        let cases: &[(u64, &[u8])] = &[
            (0, &[0x00]),
            (1, &[0x01]),
            (127, &[0x7F]),
            (128, &[0x80, 0x01]),
            (300, &[0xAC, 0x02]),
            (5000, &[0x88, 0x27]),
            (16384, &[0x80, 0x80, 0x01]),
            (65535, &[0xFF, 0xFF, 0x03]),
            (u64::from(u32::MAX), &[0xFF, 0xFF, 0xFF, 0xFF, 0x0F]),
            (
                u64::MAX,
                &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
            ),
        ];
        for &(v, bytes) in cases {
            assert_eq!(enc(v), bytes, "encode {v}");
            assert_eq!(
                read(bytes, 10, u64::MAX).unwrap(),
                (v, bytes.len()),
                "decode {v}"
            );
        }
    }

    #[test]
    fn limits() {
        assert_eq!(read(&[0x80, 0x00], 5, u64::MAX), Ok((0, 2)));
        assert_eq!(
            read(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01], 5, u64::MAX),
            Err(VarintError::TooLong)
        );
        assert_eq!(
            read(&[0x80, 0x80, 0x80, 0x80, 0x80], 5, u64::MAX),
            Err(VarintError::TooLong)
        );
        assert_eq!(
            read(&[0x80, 0x80], 5, u64::MAX),
            Err(VarintError::Truncated)
        );
        assert_eq!(read(&[], 5, u64::MAX), Err(VarintError::Truncated));
        assert_eq!(
            read(&[0xFF, 0xFF, 0xFF, 0xFF, 0x1F], 5, u64::from(u32::MAX)),
            Err(VarintError::Overflow)
        );
        let over = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02];
        assert_eq!(read(&over, 10, u64::MAX), Err(VarintError::Overflow));
        let eleven = [
            0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01,
        ];
        assert_eq!(read(&eleven, 10, u64::MAX), Err(VarintError::TooLong));
    }
}
