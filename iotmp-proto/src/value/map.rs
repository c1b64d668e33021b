//! The ordered map of the value model.

use super::{Text, Value};

/// An insertion-ordered map with unique string keys.
///
/// Order is part of the value (PSON maps are ordered on the wire). Inserting an existing key
/// replaces its value in place, which is also how decoders treat a repeated key (spec §5.1: the
/// last value, at the position of the first occurrence). Device maps are small, so entries live
/// in one vector and lookups scan it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Map {
    entries: Vec<(Text, Value)>,
}

/// Above this many entries duplicate detection sorts instead of scanning pairwise.
const LINEAR_DEDUP_LIMIT: usize = 16;

impl Map {
    /// An empty map.
    pub const fn new() -> Self {
        Map {
            entries: Vec::new(),
        }
    }

    /// An empty map with room for `capacity` entries.
    pub fn with_capacity(capacity: usize) -> Self {
        Map {
            entries: Vec::with_capacity(capacity),
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the map has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sets `key` to `value`; an existing key keeps its position. Returns the previous value.
    pub fn insert(&mut self, key: impl Into<Text>, value: impl Into<Value>) -> Option<Value> {
        let key = key.into();
        let value = value.into();
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some((_, slot)) => Some(std::mem::replace(slot, value)),
            None => {
                self.entries.push((key, value));
                None
            }
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// True when `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Removes `key`, keeping the order of the other entries.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let index = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(index).1)
    }

    /// The entries in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The keys in order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    /// The values in order.
    pub fn values(&self) -> impl ExactSizeIterator<Item = &Value> {
        self.entries.iter().map(|(_, v)| v)
    }

    /// Appends without checking for an existing key; decoders call [`Map::merge_duplicates`] once
    /// all pairs are in, which keeps hostile maps with many keys at O(n log n).
    #[inline]
    pub(crate) fn push_unchecked(&mut self, key: Text, value: Value) {
        self.entries.push((key, value));
    }

    /// Appends `key` (without checking for an existing one, as [`Map::push_unchecked`]) with a
    /// null value, and returns that value for the caller to fill in place (always `Some`).
    #[inline]
    pub(crate) fn push_slot(&mut self, key: Text) -> Option<&mut Value> {
        let entry = (key, Value::Null);
        if self.entries.len() < self.entries.capacity() {
            // Known not to grow, the push stores the entry straight into the vector instead of
            // assembling it on the stack (around the possible call to grow) and copying it with
            // wide loads that stall on the narrow stores just made.
            self.entries.push(entry);
        } else {
            push_growing(&mut self.entries, entry);
        }
        self.entries.last_mut().map(|(_, value)| value)
    }

    /// Collapses repeated keys: the last value wins, at the position of the first occurrence.
    #[inline]
    pub(crate) fn merge_duplicates(&mut self) {
        let n = self.entries.len();
        if n < 2 {
            return;
        }
        if n <= LINEAR_DEDUP_LIMIT {
            if !self.has_duplicate_keys() {
                return;
            }
            self.merge_duplicates_linear();
            return;
        }
        self.merge_duplicates_sorted();
    }

    /// Whether two entries share a key; pairwise, for small maps. Comparing lengths first rejects
    /// most pairs without looking at the bytes.
    fn has_duplicate_keys(&self) -> bool {
        let mut rest = self.entries.as_slice();
        while let Some(((key, _), later)) = rest.split_first() {
            let key = key.as_str();
            if later
                .iter()
                .any(|(other, _)| other.len() == key.len() && other.as_str() == key)
            {
                return true;
            }
            rest = later;
        }
        false
    }

    /// [`Map::merge_duplicates`] for small maps: pairwise.
    #[cold]
    fn merge_duplicates_linear(&mut self) {
        let mut i = 0;
        while i < self.entries.len() {
            let mut j = i + 1;
            while j < self.entries.len() {
                if self.entries.get(i).map(|e| &e.0) == self.entries.get(j).map(|e| &e.0) {
                    let (_, later) = self.entries.remove(j);
                    if let Some(first) = self.entries.get_mut(i) {
                        first.1 = later;
                    }
                } else {
                    j += 1;
                }
            }
            i += 1;
        }
    }

    /// [`Map::merge_duplicates`] for larger maps: a stable sort of the indices by key.
    fn merge_duplicates_sorted(&mut self) {
        let n = self.entries.len();
        let mut order: Vec<usize> = (0..n).collect();
        // Stable sort: equal keys stay in wire order, so the group's first index is the
        // position kept and its last index holds the winning value.
        order.sort_by(|&a, &b| {
            let ka = self.entries.get(a).map(|e| e.0.as_str());
            let kb = self.entries.get(b).map(|e| e.0.as_str());
            ka.cmp(&kb)
        });
        let mut drop = vec![false; n];
        let mut moves: Vec<(usize, usize)> = Vec::new();
        let mut start = 0;
        while start < n {
            let mut end = start + 1;
            let key_at = |i: usize| {
                order
                    .get(i)
                    .and_then(|&idx| self.entries.get(idx))
                    .map(|e| &e.0)
            };
            while end < n && key_at(end) == key_at(start) {
                end += 1;
            }
            if end - start > 1
                && let (Some(&first), Some(&last)) = (order.get(start), order.get(end - 1))
            {
                moves.push((first, last));
                for &idx in order.get(start + 1..end).unwrap_or_default() {
                    if let Some(flag) = drop.get_mut(idx) {
                        *flag = true;
                    }
                }
            }
            start = end;
        }
        if moves.is_empty() {
            return;
        }
        for (first, last) in moves {
            let winner = self.entries.get_mut(last).map(|e| std::mem::take(&mut e.1));
            if let (Some(winner), Some(slot)) = (winner, self.entries.get_mut(first)) {
                slot.1 = winner;
            }
        }
        let mut index = 0;
        self.entries.retain(|_| {
            let keep = !drop.get(index).copied().unwrap_or(false);
            index += 1;
            keep
        });
    }
}

/// The push of [`Map::push_slot`] that has to grow the vector.
#[cold]
#[inline(never)]
fn push_growing(entries: &mut Vec<(Text, Value)>, entry: (Text, Value)) {
    entries.push(entry);
}

impl<K: Into<Text>, V: Into<Value>> FromIterator<(K, V)> for Map {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut map = Map::new();
        for (k, v) in iter {
            map.insert(k, v);
        }
        map
    }
}

impl IntoIterator for Map {
    type Item = (Text, Value);
    type IntoIter = std::vec::IntoIter<(Text, Value)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl<'a> IntoIterator for &'a Map {
    type Item = (&'a str, &'a Value);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (Text, Value)>,
        fn(&'a (Text, Value)) -> (&'a str, &'a Value),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(pairs: &[(&str, u64)]) -> Map {
        let mut m = Map::new();
        for &(k, v) in pairs {
            m.push_unchecked(Text::from(k), Value::UInt(v));
        }
        m.merge_duplicates();
        m
    }

    #[test]
    fn last_value_wins_at_first_position() {
        let m = decoded(&[("a", 1), ("b", 2), ("a", 3)]);
        assert_eq!(
            m.iter().map(|(k, v)| (k, v.as_u64())).collect::<Vec<_>>(),
            [("a", Some(3)), ("b", Some(2))]
        );
    }

    #[test]
    fn large_maps_merge_like_small_ones() {
        let mut pairs: Vec<(String, u64)> = (0..40).map(|i| (format!("k{}", i % 13), i)).collect();
        pairs.push(("z".into(), 99));
        let refs: Vec<(&str, u64)> = pairs.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let fast = decoded(&refs);
        let mut slow = Map::new();
        for (k, v) in &refs {
            slow.insert(*k, *v);
        }
        assert_eq!(fast, slow);
        assert_eq!(fast.len(), 14);
    }
}
