//! A set of privacy units in compact form: sorted, distinct 32-bit unit indexes (keyed hashes,
//! never identifiers), stored as delta-encoded LEB128 varints.
//!
//! Unit indexes are spread uniformly over 32 bits, so a set of n units has gaps of about 2³²/n:
//! about 3 bytes per unit for sets of 10⁵, less for larger ones. A roaring bitmap, the usual
//! choice for integer sets, is built for dense ranges; on values this sparse nearly every value
//! gets a container of its own (an allocation and ~10 bytes), which measured several times
//! slower here. The operations differencing needs are merges of two sorted slices.

use std::cmp::Ordering;

/// A set of unit indexes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnitSet(Vec<u32>);

impl UnitSet {
    /// The set of `values` (any order, duplicates allowed).
    pub fn from_unsorted(mut values: Vec<u32>) -> UnitSet {
        values.sort_unstable();
        values.dedup();
        UnitSet(values)
    }

    /// Units in the set.
    pub fn len(&self) -> u64 {
        self.0.len() as u64
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The smallest index.
    pub fn min(&self) -> Option<u32> {
        self.0.first().copied()
    }

    /// Whether `u` is in the set.
    pub fn contains(&self, u: u32) -> bool {
        self.0.binary_search(&u).is_ok()
    }

    /// The indexes, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().copied()
    }

    /// |self Δ other|.
    pub fn symmetric_difference_len(&self, other: &UnitSet) -> u64 {
        let common = self.intersection_len(other);
        self.len() + other.len() - 2 * common
    }

    /// The `n` smallest indexes (all of them in a smaller set).
    pub fn prefix(&self, n: usize) -> &[u32] {
        &self.0[..n.min(self.0.len())]
    }

    /// |self Δ other| when it is below `limit`; `None` as soon as it reaches it.
    pub fn symmetric_difference_below(&self, other: &UnitSet, limit: u64) -> Option<u64> {
        if self.len().abs_diff(other.len()) >= limit {
            return None;
        }
        let (mut i, mut j, mut d) = (0, 0, 0u64);
        loop {
            match (self.0.get(i), other.0.get(j)) {
                (Some(a), Some(b)) => match a.cmp(b) {
                    Ordering::Less => {
                        d += 1;
                        i += 1;
                    }
                    Ordering::Greater => {
                        d += 1;
                        j += 1;
                    }
                    Ordering::Equal => {
                        i += 1;
                        j += 1;
                    }
                },
                (Some(_), None) | (None, Some(_)) => {
                    d += (self.0.len() - i + other.0.len() - j) as u64;
                    break;
                }
                (None, None) => break,
            }
            if d >= limit {
                return None;
            }
        }
        (d < limit).then_some(d)
    }

    /// |self ∩ other|.
    pub fn intersection_len(&self, other: &UnitSet) -> u64 {
        let (mut i, mut j, mut n) = (0, 0, 0);
        while let (Some(a), Some(b)) = (self.0.get(i), other.0.get(j)) {
            match a.cmp(b) {
                Ordering::Less => i += 1,
                Ordering::Greater => j += 1,
                Ordering::Equal => {
                    n += 1;
                    i += 1;
                    j += 1;
                }
            }
        }
        n
    }

    /// Whether every unit of `self` is in `other`.
    pub fn is_subset(&self, other: &UnitSet) -> bool {
        self.len() <= other.len() && self.intersection_len(other) == self.len()
    }

    /// self \ other.
    pub fn difference(&self, other: &UnitSet) -> UnitSet {
        let mut out = Vec::with_capacity(self.0.len());
        let mut j = 0;
        for &a in &self.0 {
            while other.0.get(j).is_some_and(|&b| b < a) {
                j += 1;
            }
            if other.0.get(j) != Some(&a) {
                out.push(a);
            }
        }
        UnitSet(out)
    }

    /// Adds every unit of `other`.
    pub fn union_with(&mut self, other: &UnitSet) {
        if other.0.is_empty() {
            return;
        }
        let mut out = Vec::with_capacity(self.0.len() + other.0.len());
        let (mut i, mut j) = (0, 0);
        loop {
            match (self.0.get(i), other.0.get(j)) {
                (Some(&a), Some(&b)) => match a.cmp(&b) {
                    Ordering::Less => {
                        out.push(a);
                        i += 1;
                    }
                    Ordering::Greater => {
                        out.push(b);
                        j += 1;
                    }
                    Ordering::Equal => {
                        out.push(a);
                        i += 1;
                        j += 1;
                    }
                },
                (Some(&a), None) => {
                    out.push(a);
                    i += 1;
                }
                (None, Some(&b)) => {
                    out.push(b);
                    j += 1;
                }
                (None, None) => break,
            }
        }
        self.0 = out;
    }

    /// The stored form: the count, then each gap from the previous index, as LEB128 varints.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + 3 * self.0.len());
        put_varint(&mut out, self.0.len() as u64);
        let mut prev = 0u64;
        for (i, &v) in self.0.iter().enumerate() {
            let v = u64::from(v);
            // The first value is stored as is, every later one as its gap (never 0).
            put_varint(&mut out, if i == 0 { v } else { v - prev });
            prev = v;
        }
        out
    }

    /// Reads the stored form; `None` for anything [`encode`](Self::encode) cannot produce.
    pub fn decode(bytes: &[u8]) -> Option<UnitSet> {
        let mut at = 0;
        let n = get_varint(bytes, &mut at)?;
        // Every value takes at least a byte: a count beyond the bytes left is a lie.
        if n > (bytes.len() - at) as u64 {
            return None;
        }
        let mut values = Vec::with_capacity(n as usize);
        let mut prev = 0u64;
        for i in 0..n {
            let d = get_varint(bytes, &mut at)?;
            let v = if i == 0 {
                d
            } else {
                prev.checked_add(d).filter(|_| d > 0)?
            };
            values.push(u32::try_from(v).ok()?);
            prev = v;
        }
        (at == bytes.len()).then_some(UnitSet(values))
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        let part = u64::from(b & 0x7f);
        // The tenth byte holds the 64th bit only; more would overflow.
        if shift == 63 && part > 1 {
            return None;
        }
        v |= part << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(v: &[u32]) -> UnitSet {
        UnitSet::from_unsorted(v.to_vec())
    }

    #[test]
    fn operations() {
        let a = set(&[5, 1, 9, 1, u32::MAX]);
        let b = set(&[1, 9, 12]);
        assert_eq!(a.len(), 4);
        assert_eq!(a.intersection_len(&b), 2);
        assert_eq!(a.symmetric_difference_len(&b), 3);
        assert_eq!(a.difference(&b), set(&[5, u32::MAX]));
        assert!(set(&[1, 9]).is_subset(&a));
        assert!(!b.is_subset(&a));
        let mut u = a.clone();
        u.union_with(&b);
        assert_eq!(u, set(&[1, 5, 9, 12, u32::MAX]));
        assert!(u.contains(12) && !u.contains(2));
        assert_eq!(UnitSet::decode(&a.encode()), Some(a));
        assert_eq!(
            UnitSet::decode(&UnitSet::default().encode()),
            Some(UnitSet::default())
        );
    }

    #[test]
    fn hostile_bytes_are_refused() {
        assert_eq!(UnitSet::decode(&[]), None);
        // A count larger than the bytes.
        assert_eq!(UnitSet::decode(&[0xff, 0xff, 0x01]), None);
        // A zero gap (a duplicate) and a value beyond 32 bits.
        assert_eq!(UnitSet::decode(&[2, 5, 0]), None);
        assert_eq!(UnitSet::decode(&[1, 0xff, 0xff, 0xff, 0xff, 0x7f]), None);
        // Trailing bytes.
        assert_eq!(UnitSet::decode(&[1, 5, 0]), None);
    }

    proptest! {
        #[test]
        fn round_trips_and_matches_a_btreeset(a in proptest::collection::vec(any::<u32>(), 0..200),
                                             b in proptest::collection::vec(any::<u32>(), 0..200)) {
            let (sa, sb) = (set(&a), set(&b));
            prop_assert_eq!(UnitSet::decode(&sa.encode()), Some(sa.clone()));
            let ta: std::collections::BTreeSet<u32> = a.iter().copied().collect();
            let tb: std::collections::BTreeSet<u32> = b.iter().copied().collect();
            prop_assert_eq!(sa.symmetric_difference_len(&sb), ta.symmetric_difference(&tb).count() as u64);
            prop_assert_eq!(sa.is_subset(&sb), ta.is_subset(&tb));
            prop_assert_eq!(sa.difference(&sb).iter().collect::<Vec<_>>(), ta.difference(&tb).copied().collect::<Vec<_>>());
            let mut u = sa.clone();
            u.union_with(&sb);
            prop_assert_eq!(u.iter().collect::<Vec<_>>(), ta.union(&tb).copied().collect::<Vec<_>>());
        }
    }
}
