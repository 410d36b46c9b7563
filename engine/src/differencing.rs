//! Differencing and complementary suppression: checks a new result's populations against each
//! other and against the populations of every earlier release over the same data, whoever
//! released it. Two populations whose units differ by fewer than k (but more than none) let the
//! two figures be subtracted down to those units: the new row fails. A released total whose
//! released parts leave fewer than k units (or exactly a suppressed cell) uncovered lets the
//! suppressed figure be recovered by subtraction: the new rows involved fail. Sets hold keyed
//! unit indexes ([`UnitSet`]), never identifiers.
//!
//! Candidates are found without comparing every pair: if |A Δ B| < k, the smallest unit the two
//! share is among the k smallest of each (fewer than k of either set's units lie outside the
//! other), so only sets sharing one of their k smallest units are compared ("prefix
//! filtering"). The work is still bounded: every set comparison spends one unit of `budget`;
//! when it runs out the check stops and says so, and every row of the result fails (an
//! incomplete check must not pass anything).

use std::collections::HashMap;

use erhai_policies::{Finding, ReleaseRules};

use crate::checks::{RowUnits, SUBQUERY_ROWS};
use crate::statistics::Source;
use crate::unit_set::UnitSet;

/// A population of an earlier release, for one dataset.
#[derive(Clone, Debug)]
pub struct EarlierRow {
    /// The job that released it.
    pub job: String,
    /// Its row in that job's computed result.
    pub row: u64,
    /// Released (true) or suppressed (false) in that job.
    pub released: bool,
    /// Whether it is the row's group (rather than a condition's side or a subquery).
    pub group: bool,
    /// The digest of its definition (see [`crate::checks::fingerprint`]).
    pub fingerprint: u64,
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
    /// Whether the budget ran out before every candidate was compared.
    pub exhausted: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Who {
    New { row: u64, source: Source },
    Earlier(usize),
}

struct Entry<'a> {
    who: Who,
    released: bool,
    group: bool,
    fingerprint: u64,
    set: &'a UnitSet,
}

fn describe(who: Who, earlier: &[EarlierRow]) -> String {
    match who {
        Who::New { row, .. } if row >= SUBQUERY_ROWS => {
            format!("subquery #{} of this result", row - SUBQUERY_ROWS + 1)
        }
        Who::New { row, source } => match source {
            Source::Group => format!("row {row} of this result"),
            _ => format!("a condition's side in row {row} of this result"),
        },
        Who::Earlier(i) => earlier
            .get(i)
            .map(|e| format!("row {} of released job {}", e.row, e.job))
            .unwrap_or_else(|| "an earlier release".into()),
    }
}

/// Whether two populations of one new row are compared: the sides of one aggregate's conditions
/// are judged by the population rule (each side needs k), not against each other or the group.
fn compared(a: Who, b: Who) -> bool {
    match (a, b) {
        (
            Who::New {
                row: ra,
                source: sa,
            },
            Who::New {
                row: rb,
                source: sb,
            },
        ) if ra == rb => {
            !matches!(
                (sa, sb),
                (Source::Group, Source::Aggregate(_)) | (Source::Aggregate(_), Source::Group)
            ) && !matches!((sa, sb), (Source::Aggregate(x), Source::Aggregate(y)) if x == y)
        }
        (Who::Earlier(_), Who::Earlier(_)) => false,
        _ => true,
    }
}

/// Checks `dataset`'s populations of the new result against each other and `earlier`.
pub fn check(
    dataset: &str,
    new: &[RowUnits],
    earlier: &[EarlierRow],
    rules: &ReleaseRules,
    budget: u64,
) -> Outcome {
    let k = rules.k;
    let mut entries: Vec<Entry> = Vec::new();
    for r in new {
        for p in r.sets.iter().filter(|p| p.dataset == dataset) {
            entries.push(Entry {
                who: Who::New {
                    row: r.row,
                    source: p.source,
                },
                released: r.released_row.is_some(),
                group: p.source == Source::Group && r.row < SUBQUERY_ROWS,
                fingerprint: p.fingerprint,
                set: &p.set,
            });
        }
    }
    let first_earlier = entries.len();
    for (i, e) in earlier.iter().enumerate() {
        entries.push(Entry {
            who: Who::Earlier(i),
            released: e.released,
            group: e.group,
            fingerprint: e.fingerprint,
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

    // Released pairs, at least one new, whose sets differ by 1..k units.
    let prefix = usize::try_from(k).unwrap_or(usize::MAX);
    let mut index: HashMap<u32, Vec<usize>> = HashMap::new();
    for (i, e) in entries[..first_earlier].iter().enumerate() {
        if e.released && !e.set.is_empty() {
            for &u in e.set.prefix(prefix) {
                index.entry(u).or_default().push(i);
            }
        }
    }
    let flag = |out: &mut Outcome, a: &Entry, b: &Entry, d: u64| {
        for (x, y) in [(a, b), (b, a)] {
            if let Who::New { row, .. } = x.who
                && let Some(f) = rules.differencing(dataset, d, &describe(y.who, earlier))
            {
                out.flags.push((row, f));
            }
        }
    };
    'pairs: for (i, a) in entries.iter().enumerate() {
        if !a.released || a.set.is_empty() {
            continue;
        }
        let mut candidates: Vec<usize> = a
            .set
            .prefix(prefix)
            .iter()
            .filter_map(|u| index.get(u))
            .flatten()
            .copied()
            // A new pair is met from both sides: compare it once.
            .filter(|&j| j != i && (i >= first_earlier || j > i))
            .collect();
        candidates.sort_unstable();
        candidates.dedup();
        for j in candidates {
            let b = &entries[j];
            if !compared(a.who, b.who) {
                continue;
            }
            if !spend(&mut out) {
                break 'pairs;
            }
            match a.set.symmetric_difference_below(b.set, k) {
                Some(0) => {
                    // Equal to an earlier release's population through another definition:
                    // the two definitions select the same units, which is itself a
                    // disclosure (an oracle on whatever tells them apart).
                    let earlier_new = match (a.who, b.who) {
                        (Who::Earlier(_), Who::New { .. }) => Some((b, a)),
                        (Who::New { .. }, Who::Earlier(_)) => Some((a, b)),
                        _ => None,
                    };
                    if let Some((new, old)) = earlier_new
                        && new.fingerprint != old.fingerprint
                        && let Who::New { row, .. } = new.who
                    {
                        out.flags
                            .push((row, rules.coincidence(dataset, &describe(old.who, earlier))));
                    }
                }
                Some(d) => flag(&mut out, a, b, d),
                None => {}
            }
        }
    }

    // Complementary suppression: a released total T (a group) whose released parts (groups
    // inside it) leave a remainder of fewer than k units, or exactly a suppressed cell: T less
    // its parts is the remainder's figure. Parts are found by their smallest unit.
    if !out.exhausted {
        let mut by_min: HashMap<u32, Vec<usize>> = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            if e.released
                && e.group
                && let Some(m) = e.set.min()
            {
                by_min.entry(m).or_default().push(i);
            }
        }
        let suppressed: Vec<&Entry> = entries
            .iter()
            .filter(|e| !e.released && e.group && !e.set.is_empty())
            .collect();
        'totals: for (ti, t) in entries[..first_earlier].iter().enumerate() {
            if !t.released || !t.group || t.set.len() < 2 {
                continue;
            }
            let mut cover = UnitSet::default();
            let mut parts: Vec<usize> = Vec::new();
            for u in t.set.iter() {
                let Some(list) = by_min.get(&u) else { continue };
                for &pi in list {
                    let p = &entries[pi];
                    if pi == ti || p.set.len() >= t.set.len() {
                        continue;
                    }
                    if !spend(&mut out) {
                        break 'totals;
                    }
                    if p.set.is_subset(t.set) && p.set.intersection_len(&cover) == 0 {
                        cover.union_with(p.set);
                        parts.push(pi);
                    }
                }
            }
            if parts.is_empty() {
                continue;
            }
            let rest = t.set.difference(&cover);
            if rest.is_empty() {
                continue;
            }
            let recovers = rest.len() < k || suppressed.iter().any(|s| *s.set == rest);
            if !recovers {
                continue;
            }
            let message = format!(
                "complementary suppression: {} less {} released part(s) leaves {} unit(s) of \
                 {dataset} that are not released on their own; the subtraction would recover \
                 their figure",
                describe(t.who, earlier),
                parts.len(),
                rest.len()
            );
            if let Who::New { row, .. } = t.who {
                out.flags.push((
                    row,
                    Finding::fail("complementary", message.clone()).about(format!(
                        "a total less its released parts recovers withheld units of {dataset}"
                    )),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::RowPopulation;

    fn set(range: std::ops::Range<u32>) -> UnitSet {
        UnitSet::from_unsorted(range.collect())
    }

    fn row(row: u64, released: Option<u64>, s: UnitSet) -> RowUnits {
        RowUnits {
            row,
            released_row: released,
            sets: vec![RowPopulation {
                dataset: "d".into(),
                source: Source::Group,
                figure: true,
                fingerprint: 0,
                set: s,
            }],
        }
    }

    fn earlier(job: &str, s: UnitSet) -> EarlierRow {
        EarlierRow {
            job: job.into(),
            row: 0,
            released: true,
            group: true,
            fingerprint: 0,
            set: s,
        }
    }

    fn rules() -> ReleaseRules {
        ReleaseRules::default()
    }

    #[test]
    fn a_pair_differing_by_one_fails() {
        let before = vec![earlier("j1", set(0..50))];
        let new = vec![row(0, Some(0), set(0..51))];
        let o = check("d", &new, &before, &rules(), 1000);
        let d: Vec<&Finding> = o
            .flags
            .iter()
            .map(|(_, f)| f)
            .filter(|f| f.rule == "differencing")
            .collect();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].verdict, erhai_policies::Verdict::Fail);
        assert!(d[0].message.contains("job j1"));
        // Differing by k or more, or not at all: nothing.
        let same = vec![row(0, Some(0), set(0..50))];
        assert!(check("d", &same, &before, &rules(), 1000).flags.is_empty());
        let far = vec![row(0, Some(0), set(0..60))];
        assert!(check("d", &far, &before, &rules(), 1000).flags.is_empty());
        // The difference may lie anywhere, not only among the smallest units.
        let mut high: Vec<u32> = (0..50).collect();
        high[49] = 1_000_000;
        let new = vec![row(0, Some(0), UnitSet::from_unsorted(high))];
        let o = check("d", &new, &before, &rules(), 1000);
        assert!(o.flags.iter().any(|(_, f)| f.rule == "differencing"));
    }

    #[test]
    fn pairs_within_one_result_fail_both_rows() {
        let new = vec![row(0, Some(0), set(0..40)), row(1, Some(1), set(0..43))];
        let o = check("d", &new, &[], &rules(), 1000);
        let rows: Vec<u64> = o.flags.iter().map(|(r, _)| *r).collect();
        assert!(rows.contains(&0) && rows.contains(&1), "{rows:?}");
    }

    #[test]
    fn the_sides_of_one_aggregate_are_not_compared_with_each_other() {
        let sets = vec![
            RowPopulation {
                dataset: "d".into(),
                source: Source::Group,
                figure: true,
                fingerprint: 0,
                set: set(0..40),
            },
            RowPopulation {
                dataset: "d".into(),
                source: Source::Aggregate(0),
                figure: true,
                fingerprint: 0,
                set: set(0..38),
            },
            RowPopulation {
                dataset: "d".into(),
                source: Source::Aggregate(1),
                figure: true,
                fingerprint: 0,
                set: set(0..35),
            },
        ];
        let new = vec![RowUnits {
            row: 0,
            released_row: Some(0),
            sets,
        }];
        let o = check("d", &new, &[], &rules(), 1000);
        // Aggregate 0 against aggregate 1 differ by 3: compared; the group is not compared with
        // either side.
        assert_eq!(o.flags.len(), 2, "{:?}", o.flags);
        assert!(o.flags.iter().all(|(_, f)| f.message.contains("condition")));
    }

    #[test]
    fn a_suppressed_cell_recoverable_from_a_total_fails_the_total() {
        // Total 0..40 released with 0..18 and 18..37; 37..40 suppressed.
        let new = vec![
            row(0, Some(0), set(0..40)),
            row(1, Some(1), set(0..18)),
            row(2, Some(2), set(18..37)),
            row(3, None, set(37..40)),
        ];
        let o = check("d", &new, &[], &rules(), 10_000);
        let complementary: Vec<u64> = o
            .flags
            .iter()
            .filter(|(_, f)| f.rule == "complementary")
            .map(|(r, _)| *r)
            .collect();
        assert_eq!(complementary, vec![0]);
        // Without the total, nothing is recoverable.
        assert!(
            check("d", &new[1..], &[], &rules(), 10_000)
                .flags
                .iter()
                .all(|(_, f)| f.rule != "complementary")
        );
    }

    #[test]
    fn the_budget_stops_the_check_and_says_so() {
        let new: Vec<RowUnits> = (0..20)
            .map(|i| row(i, Some(i), set(i as u32 % 2..i as u32 % 2 + 20)))
            .collect();
        let o = check("d", &new, &[], &rules(), 5);
        assert!(o.exhausted);
    }

    #[test]
    fn thousands_of_cells_and_margins_need_few_comparisons() {
        // A ROLLUP-like result: 4000 disjoint cells of 12 units, 40 margins of 100 cells each
        // and a grand total; earlier releases of all the margins.
        let mut new = Vec::new();
        let mut before = Vec::new();
        for c in 0..4000u32 {
            new.push(row(c as u64, Some(c as u64), set(c * 12..c * 12 + 12)));
        }
        for m in 0..40u32 {
            let s = set(m * 1200..m * 1200 + 1200);
            new.push(row(4000 + m as u64, Some(4000 + m as u64), s.clone()));
            before.push(earlier("margins", s));
        }
        new.push(row(5000, Some(5000), set(0..48_000)));
        let o = check("d", &new, &before, &rules(), 5_000_000);
        assert!(!o.exhausted);
        assert!(o.flags.is_empty(), "{:?}", &o.flags[..o.flags.len().min(3)]);
        // Prefix filtering compares a few candidates per set, not every pair (16 million).
        assert!(o.comparisons < 100_000, "{}", o.comparisons);
    }
}
