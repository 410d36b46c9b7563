//! The linear audit: can some linear combination of released figures isolate fewer than k
//! units? Pairwise differencing catches `total − (total less one)`, but three releases —
//! `A ∪ {t}`, `A ∪ B`, `B` — give `t` with every pair differing by many units (a general
//! tracker), and a total released before its parts gives a suppressed part by subtraction.
//! Both are linear combinations, and the audit finds them all the same way.
//!
//! Units are grouped into *atoms*: units that every released population either holds or does
//! not (they cannot be told apart by any combination). Each population is a 0/1 vector over the
//! atoms; the released vectors are kept in reduced row echelon form over GF(p), p = 2⁶¹ − 1
//! (exact: a rank over the rationals of a 0/1 matrix equals its rank modulo a large prime except
//! for primes dividing a minor, which p is not in practice). A row of the reduced basis is a
//! combination of released figures; if its support — the atoms with a non-zero coefficient —
//! holds fewer than k units, that combination discloses those units: the populations that made
//! it fail. (Other small combinations may exist that no basis row shows; finding the sparsest
//! vector of a row space is NP-hard. The basis catches trackers, complementary suppression and
//! every difference of two populations.)
//!
//! The state of a dataset's audit is kept with the ledger and grows as releases are approved;
//! checking a new result works on a copy. The work is bounded; at the bound the check says so
//! and the result is withheld.

use std::collections::{BTreeMap, HashMap};

use crate::unit_set::UnitSet;

const P: u64 = (1 << 61) - 1;

fn sub(a: u64, b: u64) -> u64 {
    if a >= b { a - b } else { a + P - b }
}

fn mul(a: u64, b: u64) -> u64 {
    let r = (a as u128 * b as u128) % P as u128;
    r as u64
}

fn pow(mut a: u64, mut e: u64) -> u64 {
    let mut r = 1;
    while e > 0 {
        if e & 1 == 1 {
            r = mul(r, a);
        }
        a = mul(a, a);
        e >>= 1;
    }
    r
}

fn inv(a: u64) -> u64 {
    pow(a, P - 2)
}

/// A row of the reduced basis: coefficients by atom (non-zero only), the pivot its smallest atom
/// with coefficient 1.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Row {
    coefs: BTreeMap<u32, u64>,
    /// The rows of the result being checked that took part in it (empty for earlier releases).
    provenance: Vec<u64>,
}

impl Row {
    fn pivot(&self) -> Option<u32> {
        self.coefs.keys().next().copied()
    }
}

/// The audit state of one dataset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinearAudit {
    /// The atom of every unit that some released population holds.
    atom_of: HashMap<u32, u32>,
    /// Units per atom.
    sizes: Vec<u32>,
    /// The reduced basis, by pivot atom.
    rows: BTreeMap<u32, Row>,
    /// Rows holding each atom (for splits and eliminations).
    holding: HashMap<u32, Vec<u32>>,
    /// Work done since the last reset.
    work: u64,
}

/// Work (coefficient updates and unit moves) one check may do.
pub const AUDIT_WORK: u64 = 20_000_000;

/// Longest a check may take, whatever its count of work: at the bound the result is withheld
/// with a finding that says so (a fine-grained result of tens of thousands of rows must not
/// hold a job slot for minutes).
pub const AUDIT_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// What a check found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AuditOutcome {
    /// Rows of the new result whose populations isolate fewer than k units in combination,
    /// with the number of units isolated.
    pub isolating: Vec<(u64, u64)>,
    /// Whether the work ran out before every row was added.
    pub exhausted: bool,
}

impl LinearAudit {
    /// Units the audit knows.
    pub fn units(&self) -> usize {
        self.atom_of.len()
    }

    /// Rank of the released vectors.
    pub fn rank(&self) -> usize {
        self.rows.len()
    }

    fn hold(&mut self, row: u32, atom: u32) {
        let list = self.holding.entry(atom).or_default();
        if !list.contains(&row) {
            list.push(row);
        }
    }

    fn unhold(&mut self, row: u32, atom: u32) {
        if let Some(list) = self.holding.get_mut(&atom) {
            list.retain(|r| *r != row);
        }
    }

    /// Splits atoms so that `set` is a union of atoms; returns those atoms.
    fn split(&mut self, set: &UnitSet) -> Vec<u32> {
        let mut hits: HashMap<u32, Vec<u32>> = HashMap::new();
        let mut fresh: Vec<u32> = Vec::new();
        for u in set.iter() {
            match self.atom_of.get(&u) {
                Some(&a) => hits.entry(a).or_default().push(u),
                None => fresh.push(u),
            }
        }
        self.work += set.len();
        let mut atoms = Vec::with_capacity(hits.len() + 1);
        if !fresh.is_empty() {
            let a = self.sizes.len() as u32;
            self.sizes.push(fresh.len() as u32);
            for u in fresh {
                self.atom_of.insert(u, a);
            }
            atoms.push(a);
        }
        for (a, units) in hits {
            let n = units.len() as u32;
            if n == self.sizes[a as usize] {
                atoms.push(a);
                continue;
            }
            // The part of `a` inside the set becomes an atom of its own, with the same
            // coefficient as `a` in every row (no released vector told them apart before).
            let b = self.sizes.len() as u32;
            self.sizes.push(n);
            self.sizes[a as usize] -= n;
            for u in units {
                self.atom_of.insert(u, b);
            }
            let rows = self.holding.get(&a).cloned().unwrap_or_default();
            for r in rows {
                if let Some(row) = self.rows.get_mut(&r)
                    && let Some(&c) = row.coefs.get(&a)
                {
                    row.coefs.insert(b, c);
                    self.work += 1;
                }
                self.hold(r, b);
            }
            atoms.push(b);
        }
        atoms
    }

    /// Adds a released population; `from` is the row of the new result it belongs to (none for
    /// an earlier release). Returns the pivots of the basis rows that changed.
    fn add_set(&mut self, set: &UnitSet, from: Option<u64>) -> Vec<u32> {
        if set.is_empty() {
            return Vec::new();
        }
        let atoms = self.split(set);
        let mut v = Row {
            coefs: atoms.into_iter().map(|a| (a, 1u64)).collect(),
            provenance: from.into_iter().collect(),
        };
        // Reduce by the basis: eliminate every pivot v holds.
        while let Some(p) = v.coefs.keys().copied().find(|a| self.rows.contains_key(a)) {
            let c = v.coefs[&p];
            let Some(row) = self.rows.get(&p) else { break };
            for (&a, &x) in &row.coefs {
                let e = v.coefs.entry(a).or_insert(0);
                *e = sub(*e, mul(c, x));
                self.work += 1;
            }
            v.coefs.retain(|_, x| *x != 0);
            for s in &row.provenance {
                if !v.provenance.contains(s) {
                    v.provenance.push(*s);
                }
            }
        }
        let Some(p) = v.pivot() else {
            return Vec::new();
        };
        let scale = inv(v.coefs[&p]);
        for x in v.coefs.values_mut() {
            *x = mul(*x, scale);
        }
        // Eliminate the new pivot from the other rows.
        let mut changed = vec![p];
        let others: Vec<u32> = self
            .holding
            .get(&p)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|r| *r != p)
            .collect();
        for r in others {
            let Some(mut row) = self.rows.remove(&r) else {
                continue;
            };
            let Some(&c) = row.coefs.get(&p) else {
                self.rows.insert(r, row);
                continue;
            };
            let before: Vec<u32> = row.coefs.keys().copied().collect();
            for (&a, &x) in &v.coefs {
                let e = row.coefs.entry(a).or_insert(0);
                *e = sub(*e, mul(c, x));
                self.work += 1;
            }
            row.coefs.retain(|_, x| *x != 0);
            for s in &v.provenance {
                if !row.provenance.contains(s) {
                    row.provenance.push(*s);
                }
            }
            for a in before {
                if !row.coefs.contains_key(&a) {
                    self.unhold(r, a);
                }
            }
            let atoms: Vec<u32> = row.coefs.keys().copied().collect();
            for a in atoms {
                self.hold(r, a);
            }
            self.rows.insert(r, row);
            changed.push(r);
        }
        let atoms: Vec<u32> = v.coefs.keys().copied().collect();
        for a in atoms {
            self.hold(p, a);
        }
        self.rows.insert(p, v);
        changed
    }

    /// Units on the support of basis row `pivot`.
    fn support(&self, pivot: u32) -> u64 {
        self.rows.get(&pivot).map_or(0, |r| {
            r.coefs
                .keys()
                .map(|a| u64::from(self.sizes[*a as usize]))
                .sum()
        })
    }

    /// Records an earlier release's populations for good.
    pub fn record(&mut self, sets: &[&UnitSet]) {
        for s in sets {
            self.add_set(s, None);
        }
        for row in self.rows.values_mut() {
            row.provenance.clear();
        }
        self.work = 0;
    }

    /// Checks the released rows of a new result (`rows`: row → its populations) against this
    /// state (which it leaves unchanged): the rows that, in combination with each other and
    /// earlier releases, isolate fewer than `k` units.
    pub fn check(&self, rows: &[(u64, Vec<&UnitSet>)], k: u64) -> AuditOutcome {
        let mut out = AuditOutcome::default();
        let mut excluded: Vec<u64> = Vec::new();
        let deadline = std::time::Instant::now() + AUDIT_TIME;
        // Each round adds the rows not yet excluded; a combination isolating units excludes
        // the rows it came from, and the next round starts again without them.
        for _ in 0..8 {
            let mut a = self.clone();
            a.work = 0;
            let mut found: Vec<(u64, u64)> = Vec::new();
            for (row, sets) in rows.iter().filter(|(r, _)| !excluded.contains(r)) {
                for s in sets {
                    for p in a.add_set(s, Some(*row)) {
                        let n = a.support(p);
                        if n < k
                            && let Some(r) = a.rows.get(&p)
                        {
                            for src in &r.provenance {
                                if !found.iter().any(|(x, _)| x == src) {
                                    found.push((*src, n));
                                }
                            }
                        }
                    }
                    if a.work > AUDIT_WORK || std::time::Instant::now() > deadline {
                        out.exhausted = true;
                        return out;
                    }
                }
            }
            if found.is_empty() {
                return out;
            }
            for (r, n) in found {
                if !excluded.contains(&r) {
                    excluded.push(r);
                    out.isolating.push((r, n));
                }
            }
        }
        // Still isolating after several rounds: nothing of the rest is released either.
        for (r, _) in rows {
            if !excluded.contains(r) {
                out.isolating.push((*r, 0));
            }
        }
        out
    }

    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.atom_of.len() * 8 + self.sizes.len() * 4);
        out.extend_from_slice(b"ELA1");
        out.extend_from_slice(&(self.sizes.len() as u32).to_le_bytes());
        for s in &self.sizes {
            out.extend_from_slice(&s.to_le_bytes());
        }
        let mut units: Vec<(&u32, &u32)> = self.atom_of.iter().collect();
        units.sort();
        out.extend_from_slice(&(units.len() as u32).to_le_bytes());
        for (u, a) in units {
            out.extend_from_slice(&u.to_le_bytes());
            out.extend_from_slice(&a.to_le_bytes());
        }
        out.extend_from_slice(&(self.rows.len() as u32).to_le_bytes());
        for row in self.rows.values() {
            out.extend_from_slice(&(row.coefs.len() as u32).to_le_bytes());
            for (a, c) in &row.coefs {
                out.extend_from_slice(&a.to_le_bytes());
                out.extend_from_slice(&c.to_le_bytes());
            }
        }
        out
    }

    /// Reads the stored form; None if it is anything else.
    pub fn decode(bytes: &[u8]) -> Option<LinearAudit> {
        let mut at = 0usize;
        let mut take = |n: usize| -> Option<&[u8]> {
            let s = bytes.get(at..at + n)?;
            at += n;
            Some(s)
        };
        if take(4)? != b"ELA1" {
            return None;
        }
        let u32_ = |b: &[u8]| u32::from_le_bytes(b.try_into().unwrap_or([0; 4]));
        let mut a = LinearAudit::default();
        let atoms = u32_(take(4)?) as usize;
        for _ in 0..atoms {
            a.sizes.push(u32_(take(4)?));
        }
        let units = u32_(take(4)?) as usize;
        for _ in 0..units {
            let u = u32_(take(4)?);
            let atom = u32_(take(4)?);
            if atom as usize >= a.sizes.len() {
                return None;
            }
            a.atom_of.insert(u, atom);
        }
        let rows = u32_(take(4)?) as usize;
        for _ in 0..rows {
            let n = u32_(take(4)?) as usize;
            let mut row = Row::default();
            for _ in 0..n {
                let atom = u32_(take(4)?);
                let c = u64::from_le_bytes(take(8)?.try_into().ok()?);
                if atom as usize >= a.sizes.len() || c == 0 || c >= P {
                    return None;
                }
                row.coefs.insert(atom, c);
            }
            let p = row.pivot()?;
            for &atom in row.coefs.keys() {
                a.holding.entry(atom).or_default().push(p);
            }
            a.rows.insert(p, row);
        }
        (at == bytes.len()).then_some(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(units: impl IntoIterator<Item = u32>) -> UnitSet {
        UnitSet::from_unsorted(units.into_iter().collect())
    }

    #[test]
    fn field_arithmetic() {
        assert_eq!(mul(inv(12345), 12345), 1);
        assert_eq!(sub(3, 5), P - 2);
        assert_eq!(sub(mul(P - 1, P - 1), 1), 0);
    }

    #[test]
    fn a_general_tracker_of_three_releases_is_found() {
        // A: 0..50, B: 100..150, the target: 999. A ∪ {t}, A ∪ B, B: every pair differs by 50+.
        let a: Vec<u32> = (0..50).collect();
        let b: Vec<u32> = (100..150).collect();
        let mut audit = LinearAudit::default();
        audit.record(&[&set(a.iter().copied().chain([999]))]);
        audit.record(&[&set(a.iter().copied().chain(b.iter().copied()))]);
        let third = set(b.clone());
        let o = audit.check(&[(0, vec![&third])], 10);
        assert_eq!(o.isolating, vec![(0, 1)]);
        // Without the first release the same query is harmless.
        let mut clean = LinearAudit::default();
        clean.record(&[&set(a.iter().copied().chain(b.iter().copied()))]);
        assert!(clean.check(&[(0, vec![&third])], 10).isolating.is_empty());
    }

    #[test]
    fn a_total_released_first_and_its_parts_later_expose_the_missing_part() {
        // Total 0..40 released; now parts 0..18 and 18..37 (37..40, three units, suppressed).
        let mut audit = LinearAudit::default();
        audit.record(&[&set(0..40)]);
        let (p1, p2) = (set(0..18), set(18..37));
        let o = audit.check(&[(0, vec![&p1]), (1, vec![&p2])], 10);
        assert!(!o.isolating.is_empty(), "{o:?}");
        // Disjoint cells of one table and their margin are fine.
        let mut audit = LinearAudit::default();
        audit.record(&[&set(0..40)]);
        let (c1, c2) = (set(0..20), set(20..40));
        assert!(
            audit
                .check(&[(0, vec![&c1]), (1, vec![&c2])], 10)
                .isolating
                .is_empty()
        );
    }

    #[test]
    fn a_difference_of_two_is_found_and_overlapping_groupings_are_not_flagged() {
        let mut audit = LinearAudit::default();
        audit.record(&[&set(0..50)]);
        let o = audit.check(&[(3, vec![&set(0..51)])], 10);
        assert_eq!(o.isolating, vec![(3, 1)]);
        // Two groupings of 100 units: by halves and by residue classes; atoms hold 25 each.
        let mut audit = LinearAudit::default();
        audit.record(&[&set(0..50), &set(50..100)]);
        let even = set((0..100).filter(|u| u % 2 == 0));
        let odd = set((0..100).filter(|u| u % 2 == 1));
        assert!(
            audit
                .check(&[(0, vec![&even]), (1, vec![&odd])], 10)
                .isolating
                .is_empty()
        );
    }

    #[test]
    fn the_state_round_trips() {
        let mut audit = LinearAudit::default();
        audit.record(&[&set(0..30), &set(10..60), &set(5..7)]);
        let back = LinearAudit::decode(&audit.encode()).expect("decode");
        assert_eq!(back.sizes, audit.sizes);
        assert_eq!(back.atom_of, audit.atom_of);
        assert_eq!(back.rows, audit.rows);
        assert!(LinearAudit::decode(b"nope").is_none());
    }
}
