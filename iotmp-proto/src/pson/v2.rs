//! PSON v2 (spec §5.2): a header byte `type << 5 | param`, `param == 31` escaping to a varint.

use super::{ValueEncodeError, ValueError, ValueErrorKind, varint_kind};
use crate::value::{MAX_DEPTH, Map, Text, Value};
use crate::varint;

const T_UINT: u8 = 0;
const T_NEGINT: u8 = 1;
const T_FLOAT: u8 = 2;
const T_DISCRETE: u8 = 3;
const T_STRING: u8 = 4;
const T_BYTES: u8 = 5;
const T_MAP: u8 = 6;
const T_ARRAY: u8 = 7;

const ESCAPE: u8 = 31;
const NEG_LIMIT: u64 = 1 << 63;

/// Appends the PSON v2 encoding of `value`; on error nothing is appended.
pub fn encode(value: &Value, out: &mut Vec<u8>) -> Result<(), ValueEncodeError> {
    let start = out.len();
    let mut w = Writer { out, start };
    w.make_room(start + first_guess(value));
    let result = w.value(value, start, 0);
    // Cut off the unused room (or, on error, everything written).
    w.out.truncate(*result.as_ref().unwrap_or(&start));
    result.map(|_| ())
}

/// A first guess of the encoded size, enough for typical device values so that they need no
/// second round of zero-filling, and capped so that a huge map does not zero-fill far more than
/// it needs.
#[inline(always)]
fn first_guess(value: &Value) -> usize {
    match value {
        Value::Map(m) => 16 + 24 * m.len().min(256),
        Value::Array(a) => 16 + 12 * a.len().min(512),
        _ => 16,
    }
}

/// Zero bytes appended per step of [`Writer::make_room`].
const ROOM_STEP: usize = 64;

/// Writes the encoding into zero-filled room at the end of the caller's vector; [`encode`] then
/// cuts the vector back to the bytes written.
///
/// The write position is passed by value, so it stays in a register, and a write is a bounds
/// check against the room and a store, where a push onto the vector is a capacity check, a store
/// and a length update. The room also lets a piece of 2 to 8 bytes be assembled in a register and
/// stored as a whole word (see [`Writer::put_word`]), and short strings be copied as two
/// overlapping fixed-size chunks rather than by a `memcpy` call.
struct Writer<'a> {
    out: &'a mut Vec<u8>,
    /// Where the encoding starts in `out`.
    start: usize,
}

impl Writer<'_> {
    /// Zero-fills the vector up to at least `end` bytes, in fixed-size steps (plain stores, no
    /// `memset` call).
    #[inline(always)]
    fn make_room(&mut self, end: usize) {
        while self.out.len() < end {
            self.out.extend_from_slice(&[0; ROOM_STEP]);
        }
    }

    /// Makes room for `bytes` at `pos`, then writes them; returns the position after them.
    #[cold]
    #[inline(never)]
    fn grow_put(&mut self, pos: usize, bytes: &[u8]) -> usize {
        let end = pos + bytes.len();
        // Doubling the room keeps the zero-filling linear in the size of the encoding.
        let doubled = self.out.len() + self.out.len().saturating_sub(self.start);
        self.make_room(end.max(doubled));
        if let Some(dst) = self.out.get_mut(pos..end) {
            dst.copy_from_slice(bytes);
        }
        end
    }

    /// Writes `chunk` at `pos`; returns the position after it.
    #[inline(always)]
    fn put<const K: usize>(&mut self, pos: usize, chunk: &[u8; K]) -> usize {
        match self.out.get_mut(pos..pos + K) {
            Some(dst) => {
                dst.copy_from_slice(chunk);
                pos + K
            }
            None => self.grow_put(pos, chunk),
        }
    }

    /// Stores the 8 bytes of `word` (little-endian) at `pos`, of which the first `used` count;
    /// returns the position after those. The others land in the room beyond, to be overwritten
    /// by later writes or cut off at the end. Assembling a piece in a register and storing it
    /// whole avoids reading back bytes just stored one by one (a store-forwarding stall).
    #[inline(always)]
    fn put_word(&mut self, pos: usize, word: u64, used: usize) -> usize {
        let bytes = word.to_le_bytes();
        match self.out.get_mut(pos..pos + 8) {
            Some(dst) => {
                dst.copy_from_slice(&bytes);
                pos + used
            }
            None => self.grow_put(pos, bytes.get(..used).unwrap_or_default()),
        }
    }

    /// Writes `bytes` at `pos`; returns the position after them.
    #[inline(always)]
    fn put_slice(&mut self, pos: usize, bytes: &[u8]) -> usize {
        match self.out.get_mut(pos..pos + bytes.len()) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                pos + bytes.len()
            }
            None => self.grow_put(pos, bytes),
        }
    }

    /// Writes `first` (the first `K` bytes) and `last` (the last `K` bytes) of a run of `len`
    /// bytes, `K <= len <= 2K`, at `pos`: two fixed-size stores, the second overwriting the end of
    /// the first with the same bytes. Returns the position after the run.
    #[inline(always)]
    fn put_run<const K: usize>(
        &mut self,
        pos: usize,
        len: usize,
        first: [u8; K],
        last: &[u8; K],
    ) -> usize {
        let end = pos + len;
        if let Some(dst) = self.out.get_mut(pos..end) {
            if let Some(a) = dst.first_chunk_mut::<K>() {
                *a = first;
            }
            if let Some(b) = dst.last_chunk_mut::<K>() {
                *b = *last;
            }
            return end;
        }
        self.put_run_slow(pos, len, &first, last)
    }

    #[cold]
    #[inline(never)]
    fn put_run_slow<const K: usize>(
        &mut self,
        pos: usize,
        len: usize,
        first: &[u8; K],
        last: &[u8; K],
    ) -> usize {
        let end = pos + len;
        // Room for `first`, then for `last`, which may reach up to K bytes further.
        self.grow_put(pos, first);
        self.make_room(end);
        if let Some(dst) = self.out.get_mut(end - K..end) {
            dst.copy_from_slice(last);
        }
        end
    }

    /// Writes a string or byte-string value: its header, then its content.
    ///
    /// Below 31 content bytes (most keys and strings of device values) the header is one byte,
    /// and header plus content are written as one word or as two overlapping fixed-size chunks:
    /// the header shifted (in a register) into the first content bytes, then the last content
    /// bytes. Content of 31 to 64 bytes follows its header as two overlapping chunks too. Each
    /// chunk is one load and one store instead of a `memcpy` call.
    #[inline(always)]
    fn text(&mut self, pos: usize, ty: u8, bytes: &[u8]) -> usize {
        let n = bytes.len();
        // Only used when n < 31, where it is the header byte.
        let hdr = ty << 5 | (n as u8 & 0x1F);
        match n {
            0 => return self.put(pos, &[hdr]),
            1 => {
                let b0 = bytes.first().copied().unwrap_or_default();
                return self.put_word(pos, u64::from(hdr) | u64::from(b0) << 8, 2);
            }
            2..4 => {
                if let (Some(&[b0, _]), Some(last)) =
                    (bytes.first_chunk::<2>(), bytes.last_chunk::<2>())
                {
                    return self.put_run(pos, n + 1, [hdr, b0], last);
                }
            }
            4..8 => {
                if let (Some(first), Some(last)) =
                    (bytes.first_chunk::<4>(), bytes.last_chunk::<4>())
                {
                    let first = (u32::from_le_bytes(*first) << 8 | u32::from(hdr)).to_le_bytes();
                    return self.put_run(pos, n + 1, first, last);
                }
            }
            8..16 => {
                if let (Some(first), Some(last)) =
                    (bytes.first_chunk::<8>(), bytes.last_chunk::<8>())
                {
                    let first = (u64::from_le_bytes(*first) << 8 | u64::from(hdr)).to_le_bytes();
                    return self.put_run(pos, n + 1, first, last);
                }
            }
            16..31 => {
                if let (Some(first), Some(last)) =
                    (bytes.first_chunk::<16>(), bytes.last_chunk::<16>())
                {
                    let first = (u128::from_le_bytes(*first) << 8 | u128::from(hdr)).to_le_bytes();
                    return self.put_run(pos, n + 1, first, last);
                }
            }
            31..=64 => {
                let pos = self.header(pos, ty, n as u64);
                if let (Some(first), Some(last)) =
                    (bytes.first_chunk::<32>(), bytes.last_chunk::<32>())
                {
                    return self.put_run(pos, n, *first, last);
                }
                return self.put_slice(pos, bytes);
            }
            _ => {}
        }
        let pos = self.header(pos, ty, n as u64);
        self.put_slice(pos, bytes)
    }

    /// Writes a header: the parameter inline below 31, else the escape and a varint.
    #[inline(always)]
    fn header(&mut self, pos: usize, ty: u8, param: u64) -> usize {
        if param < u64::from(ESCAPE) {
            self.put(pos, &[ty << 5 | param as u8])
        } else if param < 0x80 {
            self.put_word(pos, u64::from(ty << 5 | ESCAPE) | param << 8, 2)
        } else {
            self.escape(pos, ty << 5 | ESCAPE, param)
        }
    }

    /// Writes `first` and the varint of `param` (≥ 128), assembled in two registers and stored
    /// as 16 bytes, of which the first 3 to 11 count.
    #[inline(always)]
    fn escape(&mut self, pos: usize, first: u8, param: u64) -> usize {
        let mut lo = u64::from(first);
        let mut hi = 0u64;
        let mut shift = 8;
        let mut rest = param;
        while rest >= 0x80 {
            let group = u64::from((rest & 0x7F) as u8 | 0x80);
            if shift < 64 {
                lo |= group << shift;
            } else {
                hi |= group << (shift - 64);
            }
            rest >>= 7;
            shift += 8;
        }
        if shift < 64 {
            lo |= rest << shift;
        } else {
            hi |= rest << (shift - 64);
        }
        let len = shift / 8 + 1;
        match self.out.get_mut(pos..pos + 16) {
            Some(dst) => {
                if let Some(d) = dst.first_chunk_mut::<8>() {
                    *d = lo.to_le_bytes();
                }
                if let Some(d) = dst.last_chunk_mut::<8>() {
                    *d = hi.to_le_bytes();
                }
                pos + len
            }
            None => {
                let [a0, a1, a2, a3, a4, a5, a6, a7] = lo.to_le_bytes();
                let [b0, b1, b2, _, _, _, _, _] = hi.to_le_bytes();
                let bytes = [a0, a1, a2, a3, a4, a5, a6, a7, b0, b1, b2];
                self.grow_put(pos, bytes.get(..len).unwrap_or_default())
            }
        }
    }

    /// Writes one value at `pos`; returns the position after it. Scalars are written inline,
    /// containers by a call, which recurses.
    #[inline(always)]
    fn value(
        &mut self,
        value: &Value,
        pos: usize,
        depth: usize,
    ) -> Result<usize, ValueEncodeError> {
        Ok(match value {
            Value::Null => self.put(pos, &[T_DISCRETE << 5 | 2]),
            Value::Bool(b) => self.put(pos, &[T_DISCRETE << 5 | u8::from(*b)]),
            Value::UInt(u) => self.header(pos, T_UINT, *u),
            // NegInt(0) is not canonical; it is the integer 0.
            Value::NegInt(0) => self.put(pos, &[T_UINT << 5]),
            Value::NegInt(m) if *m > NEG_LIMIT => return Err(ValueEncodeError::IntegerOutOfRange),
            Value::NegInt(m) => self.header(pos, T_NEGINT, *m),
            Value::F32(f) => {
                let word = u64::from(T_FLOAT << 5) | u64::from(f.to_bits()) << 8;
                self.put_word(pos, word, 5)
            }
            Value::F64(f) => {
                let [b0, b1, b2, b3, b4, b5, b6, b7] = f.to_le_bytes();
                self.put(pos, &[T_FLOAT << 5 | 1, b0, b1, b2, b3, b4, b5, b6, b7])
            }
            Value::Str(s) => self.text(pos, T_STRING, s.as_bytes()),
            Value::Bytes(b) => self.text(pos, T_BYTES, b),
            Value::Array(items) => self.array(items, pos, depth)?,
            Value::Map(map) => self.map(map, pos, depth)?,
        })
    }

    #[inline(never)]
    fn array(
        &mut self,
        items: &[Value],
        pos: usize,
        depth: usize,
    ) -> Result<usize, ValueEncodeError> {
        if depth >= MAX_DEPTH {
            return Err(ValueEncodeError::TooDeep);
        }
        let mut pos = self.header(pos, T_ARRAY, items.len() as u64);
        for item in items {
            pos = self.value(item, pos, depth + 1)?;
        }
        Ok(pos)
    }

    #[inline(never)]
    fn map(&mut self, map: &Map, pos: usize, depth: usize) -> Result<usize, ValueEncodeError> {
        if depth >= MAX_DEPTH {
            return Err(ValueEncodeError::TooDeep);
        }
        let mut pos = self.header(pos, T_MAP, map.len() as u64);
        for (key, item) in map {
            pos = self.text(pos, T_STRING, key.as_bytes());
            pos = self.value(item, pos, depth + 1)?;
        }
        Ok(pos)
    }
}

/// Decodes exactly one value spanning all of `input`.
pub fn decode(input: &[u8]) -> Result<Value, ValueError> {
    let (value, used) = decode_prefix(input)?;
    if used != input.len() {
        return Err(ValueError {
            kind: ValueErrorKind::TrailingBytes,
            offset: used,
        });
    }
    Ok(value)
}

/// Decodes one value from the start of `input`; returns it and the number of bytes it used.
pub fn decode_prefix(input: &[u8]) -> Result<(Value, usize), ValueError> {
    let mut value = Value::Null;
    let used = decode_prefix_into(input, &mut value)?;
    Ok((value, used))
}

/// [`decode_prefix`] writing the value into `out` (left unspecified on error); returns the
/// number of bytes used.
///
/// Decoding in place is faster than returning the value: a freshly written value that is then
/// moved is read back before its bytes have left the store buffer, which stalls the load.
#[inline]
pub(crate) fn decode_prefix_into(input: &[u8], out: &mut Value) -> Result<usize, ValueError> {
    let mut reader = Reader { input, pos: 0 };
    reader.value_into(0, out)?;
    Ok(reader.pos)
}

struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    #[inline]
    fn fail<T>(&self, kind: ValueErrorKind, offset: usize) -> Result<T, ValueError> {
        Err(ValueError { kind, offset })
    }

    #[inline]
    fn remaining(&self) -> usize {
        self.input.len().saturating_sub(self.pos)
    }

    #[inline(always)]
    fn header(&mut self) -> Result<(u8, u64), ValueError> {
        let at = self.pos;
        let Some(&byte) = self.input.get(at) else {
            return self.fail(ValueErrorKind::Truncated, at);
        };
        self.pos += 1;
        let ty = byte >> 5;
        let param = byte & 0x1F;
        if param != ESCAPE {
            return Ok((ty, u64::from(param)));
        }
        let rest = self.input.get(self.pos..).unwrap_or_default();
        match varint::read(rest, 10, u64::MAX) {
            Ok((value, used)) => {
                self.pos += used;
                Ok((ty, value))
            }
            Err(e) => self.fail(varint_kind(e, 10), self.pos),
        }
    }

    #[inline(always)]
    fn take(&mut self, len: u64, at: usize) -> Result<&'a [u8], ValueError> {
        if len > self.remaining() as u64 {
            return self.fail(ValueErrorKind::LengthExceedsRemaining, at);
        }
        let start = self.pos;
        let end = start + len as usize;
        self.pos = end;
        match self.input.get(start..end) {
            Some(bytes) => Ok(bytes),
            None => self.fail(ValueErrorKind::LengthExceedsRemaining, at),
        }
    }

    #[inline(always)]
    fn text(&mut self, len: u64, at: usize) -> Result<Text, ValueError> {
        let bytes = self.take(len, at)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(Text::from(s)),
            Err(_) => self.fail(ValueErrorKind::InvalidUtf8, at),
        }
    }

    #[inline(always)]
    fn fixed<const N: usize>(&mut self, at: usize) -> Result<[u8; N], ValueError> {
        match self
            .input
            .get(self.pos..self.pos + N)
            .and_then(|s| <[u8; N]>::try_from(s).ok())
        {
            Some(bytes) => {
                self.pos += N;
                Ok(bytes)
            }
            None => self.fail(ValueErrorKind::Truncated, at),
        }
    }

    /// One value, written into `out`. Scalars are decoded inline (also inside the container
    /// loops, which call this for every element), containers by a call, which recurses.
    #[inline(always)]
    fn value_into(&mut self, depth: usize, out: &mut Value) -> Result<(), ValueError> {
        let at = self.pos;
        let (ty, param) = self.header()?;
        *out = match ty {
            T_UINT => Value::UInt(param),
            T_NEGINT => match param {
                0 => Value::UInt(0),
                m if m > NEG_LIMIT => return self.fail(ValueErrorKind::NegativeOutOfRange, at),
                m => Value::NegInt(m),
            },
            T_FLOAT => match param {
                0 => Value::F32(f32::from_le_bytes(self.fixed::<4>(at)?)),
                1 => Value::F64(f64::from_le_bytes(self.fixed::<8>(at)?)),
                kind => return self.fail(ValueErrorKind::InvalidFloatKind(kind), at),
            },
            T_DISCRETE => match param {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                2 => Value::Null,
                other => return self.fail(ValueErrorKind::InvalidDiscrete(other), at),
            },
            T_STRING => Value::Str(self.text(param, at)?),
            T_BYTES => Value::Bytes(self.take(param, at)?.to_vec()),
            T_MAP => return self.map(param, at, depth, out),
            // T_ARRAY: the only type left in three bits.
            _ => return self.array(param, at, depth, out),
        };
        Ok(())
    }

    /// The pairs of a map of `param` pairs whose header starts at `at`, into `out`.
    #[inline(never)]
    fn map(
        &mut self,
        param: u64,
        at: usize,
        depth: usize,
        out: &mut Value,
    ) -> Result<(), ValueError> {
        if depth >= MAX_DEPTH {
            return self.fail(ValueErrorKind::TooDeep, at);
        }
        if param.saturating_mul(2) > self.remaining() as u64 {
            return self.fail(ValueErrorKind::MapCountExceedsRemaining, at);
        }
        let count = param as usize;
        // The map is built where it ends up: moving a just-built value costs a stall on
        // reading back bytes still in the store buffer.
        *out = Value::Map(Map::with_capacity(count));
        let Value::Map(map) = out else {
            return Ok(());
        };
        for _ in 0..count {
            let key_at = self.pos;
            let (key_ty, key_len) = self.header()?;
            if key_ty != T_STRING {
                return self.fail(ValueErrorKind::MapKeyNotString, key_at);
            }
            let key = self.text(key_len, key_at)?;
            if let Some(slot) = map.push_slot(key) {
                self.value_into(depth + 1, slot)?;
            }
        }
        map.merge_duplicates();
        Ok(())
    }

    /// The elements of an array of `param` elements whose header starts at `at`, into `out`.
    #[inline(never)]
    fn array(
        &mut self,
        param: u64,
        at: usize,
        depth: usize,
        out: &mut Value,
    ) -> Result<(), ValueError> {
        if depth >= MAX_DEPTH {
            return self.fail(ValueErrorKind::TooDeep, at);
        }
        if param > self.remaining() as u64 {
            return self.fail(ValueErrorKind::ArrayCountExceedsRemaining, at);
        }
        let count = param as usize;
        *out = Value::Array(Vec::with_capacity(count));
        let Value::Array(items) = out else {
            return Ok(());
        };
        for _ in 0..count {
            items.push(Value::Null);
            if let Some(slot) = items.last_mut() {
                self.value_into(depth + 1, slot)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The encoding the plain way, byte by byte: what [`encode`]'s fast paths must reproduce.
    fn reference(value: &Value, out: &mut Vec<u8>) {
        fn header(out: &mut Vec<u8>, ty: u8, param: u64) {
            if param < 31 {
                out.push(ty << 5 | param as u8);
            } else {
                out.push(ty << 5 | 31);
                varint::write(out, param);
            }
        }
        match value {
            Value::Null => out.push(0x62),
            Value::Bool(b) => out.push(0x60 | u8::from(*b)),
            Value::UInt(u) => header(out, T_UINT, *u),
            Value::NegInt(0) => out.push(0),
            Value::NegInt(m) => header(out, T_NEGINT, *m),
            Value::F32(f) => {
                out.push(0x40);
                out.extend_from_slice(&f.to_le_bytes());
            }
            Value::F64(f) => {
                out.push(0x41);
                out.extend_from_slice(&f.to_le_bytes());
            }
            Value::Str(s) => {
                header(out, T_STRING, s.len() as u64);
                out.extend_from_slice(s.as_bytes());
            }
            Value::Bytes(b) => {
                header(out, T_BYTES, b.len() as u64);
                out.extend_from_slice(b);
            }
            Value::Array(items) => {
                header(out, T_ARRAY, items.len() as u64);
                items.iter().for_each(|item| reference(item, out));
            }
            Value::Map(map) => {
                header(out, T_MAP, map.len() as u64);
                for (k, v) in map {
                    header(out, T_STRING, k.len() as u64);
                    out.extend_from_slice(k.as_bytes());
                    reference(v, out);
                }
            }
        }
    }

    /// Encodes after a prefix already in the vector; checks the bytes and the round trip.
    fn check(value: &Value) {
        for prefix in [0usize, 3, 300] {
            let mut expected = vec![0xA5; prefix];
            reference(value, &mut expected);
            let mut out = vec![0xA5; prefix];
            encode(value, &mut out).unwrap();
            assert_eq!(out, expected, "{value}");
            assert_eq!(&decode(&out[prefix..]).unwrap(), value);
        }
    }

    fn text(len: usize) -> String {
        (0..len)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect()
    }

    #[test]
    fn every_text_length_and_integer_size_encodes_as_the_plain_way() {
        for len in 0..=300 {
            check(&Value::from(text(len)));
            check(&Value::Bytes((0..len).map(|i| i as u8).collect()));
            let mut m = Map::new();
            m.insert(text(len), len as u64);
            m.insert("x", text(len));
            check(&Value::Map(m));
        }
        check(&Value::from("été ünïcödé €"));
        for shift in 0..64 {
            for n in [1u64 << shift, (1u64 << shift) - 1, (1u64 << shift) + 1] {
                check(&Value::UInt(n));
                check(&Value::NegInt(n.clamp(1, 1 << 63)));
                check(&Value::from(vec![Value::UInt(n), Value::Null]));
            }
        }
        check(&Value::UInt(u64::MAX));
        // Not canonical: encodes as the integer 0 (and so decodes as UInt 0).
        let mut out = Vec::new();
        encode(&Value::NegInt(0), &mut out).unwrap();
        assert_eq!(out, [0x00]);
        for f in [0.0f32, -2.5, 23.5, f32::NAN, f32::INFINITY] {
            check(&Value::F32(f));
        }
        for f in [0.0f64, 0.1, -1e300, f64::NAN] {
            check(&Value::F64(f));
        }
        check(&Value::Bool(true));
        check(&Value::Null);
    }

    #[test]
    fn values_larger_than_the_first_guess_grow_the_room() {
        let big: Value = (0..2000u32)
            .map(|i| Value::from(text(i as usize % 70)))
            .collect();
        check(&big);
        let mut m = Map::new();
        for i in 0..600u32 {
            m.insert(
                format!("key{i}"),
                Value::from(vec![Value::UInt(u64::from(i) << 20); 3]),
            );
        }
        check(&Value::Map(m));
        let mut nested = Value::Null;
        for i in 0..MAX_DEPTH {
            nested = Value::from(vec![nested, Value::from(text(i * 3))]);
        }
        check(&nested);
    }

    #[test]
    fn errors_append_nothing() {
        let mut out = vec![1, 2, 3];
        let bad = Value::from(vec![Value::from(text(100)), Value::NegInt((1 << 63) + 1)]);
        assert_eq!(
            encode(&bad, &mut out),
            Err(ValueEncodeError::IntegerOutOfRange)
        );
        assert_eq!(out, [1, 2, 3]);
        let mut deep = Value::Null;
        for _ in 0..=MAX_DEPTH {
            deep = Value::from(vec![Value::from(text(40)), deep]);
        }
        assert_eq!(encode(&deep, &mut out), Err(ValueEncodeError::TooDeep));
        assert_eq!(out, [1, 2, 3]);
    }
}
