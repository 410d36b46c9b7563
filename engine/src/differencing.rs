//! Differencing and complementary suppression: checks a new result's unit sets against each
//! other and against the unit sets of earlier releases in the same scope. Two released rows
//! whose units differ by fewer than k (but more than none) disclose the difference; a suppressed
//! row whose units are exactly a released total less other released rows is recoverable by
//! subtraction. Sets hold keyed unit indexes ([`UnitSet`]), never identifiers.
//!
//! The work is bounded: every set comparison spends one unit of `budget`; when it runs out the
//! check stops and says so, and the caller sends the result to review.

use erhai_policies::Finding;

use crate::checks::RowUnits;
use crate::unit_set::UnitSet;

/// A row of an earlier approved release, for one dataset.
#[derive(Clone, Debug)]
pub struct EarlierRow {
    /// The job that released it.
    pub job: String,
    /// Its position in that job's computed result.
    pub row: u64,
    /// Released (true) or suppressed (false) in that job.
    pub released: bool,
    /// Its units of the dataset.
    pub set: UnitSet,
}

/// What the check found.
#[derive(Debug, Default)]
pub struct Outcome {
    /// (row of the new result, finding); a row may appear more than once.
    pub flags: Vec<(u64, Finding)>,
    /// Set comparisons made.
    pub comparisons: u64,
    /// Whether the budget ran out before every pair was compared.
    pub exhausted: bool,
}

#[derive(Clone, Copy)]
enum Who {
    New(u64),
    Earlier(usize),
}

struct Entry<'a> {
    who: Who,
    released: bool,
    set: &'a UnitSet,
}

fn describe(who: Who, earlier: &[EarlierRow]) -> String {
    match who {
        Who::New(r) => format!("row {r} of this result"),
        Who::Earlier(i) => earlier
            .get(i)
            .map(|e| format!("row {} of released job {}", e.row, e.job))
            .unwrap_or_else(|| "an earlier release".into()),
    }
}

/// Checks `dataset`'s unit sets of the new result against each other and `earlier`.
pub fn check(
    dataset: &str,
    new: &[RowUnits],
    earlier: &[EarlierRow],
    k: u64,
    budget: u64,
) -> Outcome {
    let mut entries: Vec<Entry> = Vec::new();
    for r in new {
        if let Some((_, set)) = r.sets.iter().find(|(d, _)| d == dataset) {
            entries.push(Entry {
                who: Who::New(r.row),
                released: r.released_row.is_some(),
                set,
            });
        }
    }
    for (i, e) in earlier.iter().enumerate() {
        entries.push(Entry {
            who: Who::Earlier(i),
            released: e.released,
            set: &e.set,
        });
    }
    let mut out = Outcome::default();
    let spend = |out: &mut Outcome| {
        out.comparisons += 1;
        if out.comparisons > budget {
            out.exhausted = true;
        }
        !out.exhausted
    };

    // Pairs of released rows, at least one new, whose sets differ by 1..k units. Sorted by
    // size, only neighbours within k of each other can qualify.
    let mut released: Vec<&Entry> = entries.iter().filter(|e| e.released).collect();
    released.sort_by_key(|e| e.set.len());
    'pairs: for (i, a) in released.iter().enumerate() {
        for b in &released[i + 1..] {
            if b.set.len() - a.set.len() >= k {
                break;
            }
            if matches!((a.who, b.who), (Who::Earlier(_), Who::Earlier(_))) {
                continue;
            }
            if !spend(&mut out) {
                break 'pairs;
            }
            let d = a.set.symmetric_difference_len(b.set);
            if d > 0 && d < k {
                for (x, y) in [(a, b), (b, a)] {
                    if let Who::New(row) = x.who {
                        out.flags.push((
                            row,
                            Finding::review(
                                "differencing",
                                format!(
                                    "its units of {dataset} differ from those of {} by {d} \
                                     (fewer than k = {k}): the two together would disclose \
                                     those units",
                                    describe(y.who, earlier)
                                ),
                            ),
                        ));
                    }
                }
            }
        }
    }

    // Complementary suppression: a suppressed row S inside a released total T, where T's other
    // units are exactly covered by released rows: T minus those rows gives S.
    if !out.exhausted {
        'suppressed: for s in entries.iter().filter(|e| !e.released && !e.set.is_empty()) {
            let Some(first) = s.set.min() else { continue };
            for t in &released {
                if t.set.len() <= s.set.len() || !t.set.contains(first) {
                    continue;
                }
                if !spend(&mut out) {
                    break 'suppressed;
                }
                if !s.set.is_subset(t.set) {
                    continue;
                }
                let rest = t.set.difference(s.set);
                let mut cover = UnitSet::default();
                let mut parts = Vec::new();
                for r in &released {
                    if std::ptr::eq(*r, *t) || r.set.min().is_none_or(|m| !rest.contains(m)) {
                        continue;
                    }
                    if !spend(&mut out) {
                        break 'suppressed;
                    }
                    if r.set.is_subset(&rest) {
                        cover.union_with(r.set);
                        parts.push(r.who);
                    }
                }
                if cover != rest {
                    continue;
                }
                let involved: Vec<Who> = std::iter::once(s.who)
                    .chain(std::iter::once(t.who))
                    .chain(parts.iter().copied())
                    .collect();
                if !involved.iter().any(|w| matches!(w, Who::New(_))) {
                    continue;
                }
                let message = format!(
                    "complementary suppression: {} (suppressed) equals {} less {} released \
                     row(s) over the units of {dataset}",
                    describe(s.who, earlier),
                    describe(t.who, earlier),
                    parts.len()
                );
                // Flag the new released rows that make the subtraction possible.
                for w in std::iter::once(t.who).chain(parts.iter().copied()) {
                    if let Who::New(row) = w {
                        out.flags
                            .push((row, Finding::review("complementary", message.clone())));
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(range: std::ops::Range<u32>) -> UnitSet {
        UnitSet::from_unsorted(range.collect())
    }

    fn row(row: u64, released: Option<u64>, s: UnitSet) -> RowUnits {
        RowUnits {
            row,
            released_row: released,
            sets: vec![("d".into(), s)],
        }
    }

    #[test]
    fn a_pair_differing_by_one_is_flagged_both_ways() {
        let earlier = vec![EarlierRow {
            job: "j1".into(),
            row: 0,
            released: true,
            set: set(0..50),
        }];
        let new = vec![row(0, Some(0), set(0..51))];
        let o = check("d", &new, &earlier, 10, 1000);
        assert_eq!(o.flags.len(), 1);
        assert_eq!(o.flags[0].1.rule, "differencing");
        assert!(o.flags[0].1.message.contains("job j1"));
        // Differing by k or more, or not at all: nothing.
        let same = vec![row(0, Some(0), set(0..50))];
        assert!(check("d", &same, &earlier, 10, 1000).flags.is_empty());
        let far = vec![row(0, Some(0), set(0..60))];
        assert!(check("d", &far, &earlier, 10, 1000).flags.is_empty());
    }

    #[test]
    fn a_suppressed_cell_recoverable_from_a_total_is_flagged() {
        // Total 0..40 released earlier; now 0..18 and 18..37 released and 37..40 suppressed.
        let earlier = vec![EarlierRow {
            job: "total".into(),
            row: 0,
            released: true,
            set: set(0..40),
        }];
        let new = vec![
            row(0, Some(0), set(0..18)),
            row(1, Some(1), set(18..37)),
            row(2, None, set(37..40)),
        ];
        let o = check("d", &new, &earlier, 10, 1000);
        let rules: Vec<&str> = o.flags.iter().map(|(_, f)| f.rule.as_str()).collect();
        assert!(rules.contains(&"complementary"), "{rules:?}");
        // Without the total, nothing is recoverable.
        assert!(check("d", &new, &[], 10, 1000).flags.is_empty());
    }

    #[test]
    fn the_budget_stops_the_check_and_says_so() {
        let new: Vec<RowUnits> = (0..20)
            .map(|i| row(i, Some(i), set(i as u32 * 100..i as u32 * 100 + 20)))
            .collect();
        let o = check("d", &new, &[], 10, 5);
        assert!(o.exhausted);
    }
}
