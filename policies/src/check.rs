//! The plan check: every output column and every other use of a source column is decided against
//! that column's policy. A refusal names the column, the use and the rule.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::lineage::{Derivation, PlanLineage, SourceColumn, Step, UseContext};
use crate::masks::{ApprovedMask, MaskArg};
use crate::model::{ColumnPolicy, DatasetPolicy, Use};

/// Aggregates that return one input value rather than a summary of many.
pub const SINGLE_VALUE_AGGREGATES: [&str; 14] = [
    "min",
    "max",
    "median",
    "approx_median",
    "approx_percentile_cont",
    "percentile_cont",
    "first_value",
    "last_value",
    "nth_value",
    "any_value",
    "array_agg",
    "string_agg",
    "min_by",
    "max_by",
];

/// Why one use was refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The output column involved, if the use is an output.
    pub output: Option<String>,
    /// The source column.
    pub source: SourceColumn,
    /// The use that was needed.
    pub use_: Use,
    /// The rule's short name.
    pub rule: String,
    /// A sentence an analyst can act on.
    pub message: String,
}

/// The decision on one output column.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnVerdict {
    /// Output column name.
    pub column: String,
    /// `dataset.column` of every source.
    pub sources: Vec<String>,
    /// How the sources reach the output.
    pub derivation: String,
    /// Whether every derivation is allowed.
    pub allowed: bool,
    /// The rule applied (the first refusal's, or the allowing rule).
    pub rule: String,
}

/// The decision on a whole plan.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanVerdict {
    /// Per output column.
    pub columns: Vec<ColumnVerdict>,
    /// Every refusal, outputs first.
    pub refusals: Vec<Refusal>,
}

impl PlanVerdict {
    /// Whether the plan may run.
    pub fn allowed(&self) -> bool {
        self.refusals.is_empty()
    }

    /// All refusal messages, one per line.
    pub fn explain(&self) -> String {
        self.refusals
            .iter()
            .map(|r| r.message.clone())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Decides `lineage` under the policies of the datasets it reads (`policies` by dataset name as
/// the query sees it). With `require_aggregation`, a plan whose rows are not aggregates is refused:
/// production results must summarize privacy units.
pub fn check_plan(
    lineage: &PlanLineage,
    policies: &BTreeMap<String, DatasetPolicy>,
    require_aggregation: bool,
) -> PlanVerdict {
    let mut verdict = PlanVerdict::default();
    for out in &lineage.outputs {
        let mut allowed = true;
        let mut rule = String::from("no source column");
        let mut paths = Vec::new();
        for d in &out.derivations {
            paths.push(format!("{} ({})", d.source, d.describe()));
            match decide_output(d, policies) {
                Ok(r) => {
                    if allowed {
                        rule = r.to_string();
                    }
                }
                Err(mut refusal) => {
                    if allowed {
                        rule = refusal.rule.clone();
                    }
                    allowed = false;
                    refusal.output = Some(out.name.clone());
                    refusal.message = format!("output column `{}`: {}", out.name, refusal.message);
                    push_unique(&mut verdict.refusals, *refusal);
                }
            }
        }
        let mut sources: Vec<String> = out
            .derivations
            .iter()
            .map(|d| d.source.to_string())
            .collect();
        sources.sort();
        sources.dedup();
        verdict.columns.push(ColumnVerdict {
            column: out.name.clone(),
            sources,
            derivation: if paths.is_empty() {
                "no source column (a constant or count(*))".to_string()
            } else {
                paths.join("; ")
            },
            allowed,
            rule,
        });
    }
    for u in &lineage.uses {
        if let Err(refusal) = decide_context(&u.derivation, u.context, &u.expr, policies) {
            push_unique(&mut verdict.refusals, *refusal);
        }
    }
    for issue in &lineage.shape {
        // Cutting rows before suppression matters only where rows are suppressed.
        if issue.construct == crate::shape::Construct::LimitOverAggregates && !require_aggregation {
            continue;
        }
        let source = issue.columns.first().cloned().unwrap_or(SourceColumn {
            dataset: "*".into(),
            column: "*".into(),
        });
        let refusal = Refusal {
            output: None,
            source,
            use_: Use::Aggregate,
            rule: issue.construct.rule().to_string(),
            message: issue.message(),
        };
        if !verdict
            .refusals
            .iter()
            .any(|r| r.message == refusal.message)
        {
            verdict.refusals.push(refusal);
        }
    }
    if require_aggregation && !lineage.aggregated && !lineage.outputs.is_empty() {
        let first = lineage
            .outputs
            .iter()
            .flat_map(|o| o.derivations.iter())
            .next()
            .map(|d| d.source.clone())
            .unwrap_or(SourceColumn {
                dataset: "*".into(),
                column: "*".into(),
            });
        verdict.refusals.push(Refusal {
            output: None,
            source: first,
            use_: Use::Output,
            rule: "aggregated-results-only".to_string(),
            message: "production results must be aggregated: each released row has to summarize \
                      at least k privacy units. Add GROUP BY with aggregate functions (count, sum, \
                      avg, ...) or a global aggregate"
                .to_string(),
        });
    }
    verdict
}

fn push_unique(list: &mut Vec<Refusal>, r: Refusal) {
    if !list.iter().any(|x| {
        x.source == r.source && x.use_ == r.use_ && x.rule == r.rule && x.output == r.output
    }) {
        list.push(r);
    }
}

fn policy_of<'a>(
    source: &SourceColumn,
    policies: &'a BTreeMap<String, DatasetPolicy>,
) -> Option<&'a ColumnPolicy> {
    policies.get(&source.dataset)?.column(&source.column)
}

fn refuse(source: &SourceColumn, use_: Use, rule: &str, message: String) -> Box<Refusal> {
    Box::new(Refusal {
        output: None,
        source: source.clone(),
        use_,
        rule: rule.to_string(),
        message,
    })
}

fn unclassified(source: &SourceColumn, use_: Use) -> Box<Refusal> {
    refuse(
        source,
        use_,
        "unclassified-column",
        format!("column {source} has no policy, so it may not be used at all"),
    )
}

/// Normalizes an aggregate's name as policy lists spell it.
fn policy_aggregate_name(func: &str, distinct: bool) -> String {
    let f = func.to_ascii_lowercase();
    match (f.as_str(), distinct) {
        ("count", true) => "count_distinct".to_string(),
        ("variance" | "var_samp", _) => "var".to_string(),
        ("stddev_samp", _) => "stddev".to_string(),
        ("average", _) => "avg".to_string(),
        _ => f,
    }
}

fn scalar_names(steps: &[Step]) -> Vec<String> {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::Scalar(n) => Some(format!("{n}()")),
            _ => None,
        })
        .collect()
}

/// Decides one output derivation; on success returns the rule that allowed it.
fn decide_output(
    d: &Derivation,
    policies: &BTreeMap<String, DatasetPolicy>,
) -> Result<&'static str, Box<Refusal>> {
    let src = &d.source;
    let Some(col) = policy_of(src, policies) else {
        return Err(unclassified(src, Use::Output));
    };
    if let Some((name, args)) = leading_mask(d) {
        return decide_mask(src, col, name, args);
    }
    reject_buried_pseudonym(d)?;
    let class = col.describe_class();
    let allowed = col.describe_uses();
    if !col.allows(Use::Output)
        && let Some(Step::Mask { name, .. }) =
            d.steps.iter().find(|s| matches!(s, Step::Mask { .. }))
    {
        return Err(refuse(
            src,
            Use::OutputMasked,
            "mask-not-on-column",
            format!(
                "column {src} ({class}) reaches {name}() through {}: a mask must be applied to the \
                 column itself (only casts may come first), or it may not hide what it should",
                d.describe()
            ),
        ));
    }

    if let Some(Step::Window(w)) = d.steps.iter().find(|s| matches!(s, Step::Window(_)))
        && !col.allows(Use::Output)
    {
        {
            return Err(refuse(
                src,
                Use::Output,
                "window-is-raw-output",
                format!(
                    "column {src} ({class}) reaches the output through window function {w}(), which \
                     keeps one row per input row and so counts as raw output; the column's allowed \
                     uses are: {allowed}"
                ),
            ));
        }
    }

    let agg_pos = d
        .steps
        .iter()
        .rposition(|s| matches!(s, Step::Aggregate { .. }));
    if let Some(pos) = agg_pos {
        let Step::Aggregate { func, distinct } = &d.steps[pos] else {
            return Ok("aggregate");
        };
        let name = policy_aggregate_name(func, *distinct);
        let single = SINGLE_VALUE_AGGREGATES.contains(&name.as_str());
        if !col.allows_aggregate(&name) {
            let (rule, why) = if single {
                (
                    "single-value-aggregate",
                    format!(
                        "{name}() returns one row's value, so it counts as raw output of {src}"
                    ),
                )
            } else if !col.allows(Use::Aggregate) {
                (
                    "aggregate-not-allowed",
                    format!("column {src} ({class}) may not be aggregated"),
                )
            } else {
                (
                    "aggregate-function-not-allowed",
                    format!("column {src} ({class}) may not be aggregated with {name}()"),
                )
            };
            return Err(refuse(
                src,
                Use::Aggregate,
                rule,
                format!("{why}; the column's allowed uses are: {allowed}"),
            ));
        }
        let inner = scalar_names(&d.steps[..pos]);
        if !inner.is_empty() && !col.allows(Use::Filter) && !col.allows(Use::Output) {
            return Err(refuse(
                src,
                Use::Filter,
                "function-inside-aggregate",
                format!(
                    "column {src} ({class}) passes through {} inside {name}(): a function or \
                     comparison inside an aggregate can test single values, which needs the filter \
                     use; the column's allowed uses are: {allowed}",
                    inner.join(", ")
                ),
            ));
        }
        return Ok("aggregate allowed by column policy");
    }

    if d.steps.iter().any(|s| matches!(s, Step::GroupKey)) {
        if !col.allows(Use::GroupBy) {
            return Err(refuse(
                src,
                Use::GroupBy,
                "group-by-not-allowed",
                format!(
                    "column {src} ({class}) is released as a group label, which needs the group_by \
                     use; the column's allowed uses are: {allowed}"
                ),
            ));
        }
        return Ok("group label allowed by column policy");
    }

    if !col.allows(Use::Output) {
        let through = scalar_names(&d.steps);
        let how = if through.is_empty() {
            "as stored".to_string()
        } else {
            format!("through {}", through.join(", "))
        };
        let hint = if col.allows(Use::Aggregate) {
            format!(
                "; aggregate it instead ({})",
                col.aggregate_functions
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else if col.allows(Use::GroupBy) {
            "; use it as a GROUP BY key instead".to_string()
        } else {
            String::new()
        };
        return Err(refuse(
            src,
            Use::Output,
            "raw-output-not-allowed",
            format!(
                "column {src} ({class}) may not be output raw, and it appears in the output {how}; \
                 the column's allowed uses are: {allowed}{hint}"
            ),
        ));
    }
    Ok("output allowed by column policy")
}

/// The name of the keyed pseudonym mask.
const PSEUDONYM: &str = "pseudonym";

/// `pseudonym()` over anything but the column itself would turn computed values into tokens that
/// match the pseudonyms of real identifiers.
fn reject_buried_pseudonym(d: &Derivation) -> Result<(), Box<Refusal>> {
    let leading = leading_mask(d).map(|(n, _)| n);
    let buried = d
        .steps
        .iter()
        .filter(|s| matches!(s, Step::Mask { name, .. } if name == PSEUDONYM))
        .count();
    if buried > usize::from(leading == Some(PSEUDONYM)) {
        return Err(refuse(
            &d.source,
            Use::OutputMasked,
            "pseudonym-not-on-column",
            format!(
                "column {} reaches pseudonym() through {}: pseudonym() applies to a column \
                 itself only, or computed values could be matched against real pseudonyms",
                d.source,
                d.describe()
            ),
        ));
    }
    Ok(())
}

/// The mask a derivation passes through first, applied to the column itself (casts aside).
fn leading_mask(d: &Derivation) -> Option<(&str, &[MaskArg])> {
    for s in &d.steps {
        match s {
            Step::Cast(_) => continue,
            Step::Mask { name, args } => return Some((name, args)),
            _ => return None,
        }
    }
    None
}

/// Decides a column that reaches the output through mask `name` called with `args`.
fn decide_mask(
    src: &SourceColumn,
    col: &ColumnPolicy,
    name: &str,
    args: &[MaskArg],
) -> Result<&'static str, Box<Refusal>> {
    // A pseudonym links values across datasets, so it is never implied by `output`: tokens of
    // freely readable values would be a dictionary for every pseudonymized identifier.
    if col.allows(Use::Output) && name != PSEUDONYM {
        return Ok("output allowed by column policy (masked)");
    }
    let class = col.describe_class();
    if !col.allows(Use::OutputMasked) && !col.allows(Use::Output) {
        return Err(refuse(
            src,
            Use::OutputMasked,
            "masked-output-not-allowed",
            format!(
                "column {src} ({class}) may not be output, not even through {name}(); the \
                 column's allowed uses are: {}",
                col.describe_uses()
            ),
        ));
    }
    let approved: Vec<&ApprovedMask> = col.masks.iter().filter(|m| m.name == name).collect();
    let list = || {
        col.masks
            .iter()
            .map(|m| m.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if approved.is_empty() {
        return Err(refuse(
            src,
            Use::OutputMasked,
            "mask-not-approved",
            format!(
                "mask {name}() is not approved for column {src} ({class}); its approved masks \
                 are: {}",
                list()
            ),
        ));
    }
    let mut reason = String::new();
    for m in approved {
        match m.admits(args) {
            Ok(()) => return Ok("output through a mask approved by column policy"),
            Err(e) => reason = e.to_string(),
        }
    }
    Err(refuse(
        src,
        Use::OutputMasked,
        "mask-parameters-not-approved",
        format!(
            "column {src} ({class}): {reason}; its approved masks are: {}",
            list()
        ),
    ))
}

fn decide_context(
    d: &Derivation,
    context: UseContext,
    expr: &str,
    policies: &BTreeMap<String, DatasetPolicy>,
) -> Result<(), Box<Refusal>> {
    let src = &d.source;
    let needed = match context {
        UseContext::Filter => Use::Filter,
        UseContext::JoinKey => Use::Join,
        UseContext::GroupBy => Use::GroupBy,
        UseContext::Sort => Use::Output,
    };
    let Some(col) = policy_of(src, policies) else {
        return Err(unclassified(src, needed));
    };
    // A masked value is no more revealing than the masked output the column already allows.
    reject_buried_pseudonym(d)?;
    if let Some((name, args)) = leading_mask(d) {
        return decide_mask(src, col, name, args)
            .map(|_| ())
            .map_err(|mut r| {
                r.message = format!("in {context} `{expr}`: {}", r.message);
                r
            });
    }
    // An aggregated value carries no single row: sorting or filtering (HAVING) on it is decided
    // by the output rules of the aggregate itself.
    if d.steps.iter().any(|s| matches!(s, Step::Aggregate { .. })) {
        return match decide_output(d, policies) {
            Ok(_) => Ok(()),
            Err(mut r) => {
                r.message = format!("in {context} `{expr}`: {}", r.message);
                Err(r)
            }
        };
    }
    let ok = match context {
        UseContext::Sort => {
            col.allows(Use::Output) || col.allows(Use::GroupBy) || col.allows(Use::Filter)
        }
        _ => col.allows(needed),
    };
    if ok {
        return Ok(());
    }
    let (rule, what) = match context {
        UseContext::Filter => ("filter-not-allowed", "compared in a filter"),
        UseContext::JoinKey => ("join-not-allowed", "used as a join key"),
        UseContext::GroupBy => ("group-by-not-allowed", "used as a GROUP BY key"),
        UseContext::Sort => ("order-by-not-allowed", "used to order rows"),
    };
    Err(refuse(
        src,
        needed,
        rule,
        format!(
            "column {src} ({}) may not be {what}: it appears in {context} `{expr}`; the column's \
             allowed uses are: {}",
            col.describe_class(),
            col.describe_uses()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lineage::OutputLineage;
    use crate::policy_file::parse_policy;

    fn policies() -> BTreeMap<String, DatasetPolicy> {
        let p = parse_policy(
            r#"
privacy_unit = "id_number"
[columns.id_number]
kind = "id_card"
grade = "important"
uses = "identifier"
[columns.district]
kind = "dimension"
grade = "general"
uses = "dimension"
[columns.spend]
kind = "measure"
grade = "general"
uses = "measure"
[columns.phone]
kind = "phone"
grade = "important"
uses = "masked"
[columns.card]
kind = "bank_card"
grade = "important"
uses = ["output_masked"]
masks = ["keep_first_n_last_m(4, 4)"]
"#,
        )
        .expect("policy");
        BTreeMap::from([("stays".to_string(), p)])
    }

    fn out(column: &str, steps: Vec<Step>) -> PlanLineage {
        PlanLineage {
            outputs: vec![OutputLineage {
                name: "c".into(),
                derivations: vec![Derivation {
                    source: SourceColumn {
                        dataset: "stays".into(),
                        column: column.into(),
                    },
                    steps,
                }],
            }],
            uses: vec![],
            aggregated: true,
            datasets: vec!["stays".into()],
            shape: vec![],
        }
    }

    fn agg(func: &str, distinct: bool) -> Step {
        Step::Aggregate {
            func: func.into(),
            distinct,
        }
    }

    /// `None` means allowed; `Some(rule)` the rule that refuses.
    fn check(column: &str, steps: Vec<Step>, expected: Option<&str>) {
        let v = check_plan(&out(column, steps.clone()), &policies(), true);
        assert_eq!(
            v.refusals.first().map(|r| r.rule.as_str()),
            expected,
            "{column} {steps:?}: {}",
            v.explain()
        );
    }

    #[test]
    fn output_rules() {
        check("id_number", vec![], Some("raw-output-not-allowed"));
        check(
            "id_number",
            vec![Step::Scalar("upper".into())],
            Some("raw-output-not-allowed"),
        );
        check("id_number", vec![agg("count", true)], None);
        check(
            "id_number",
            vec![agg("sum", false)],
            Some("aggregate-function-not-allowed"),
        );
        check(
            "id_number",
            vec![agg("max", false)],
            Some("single-value-aggregate"),
        );
        check(
            "id_number",
            vec![Step::Scalar("=".into()), agg("count", false)],
            Some("function-inside-aggregate"),
        );
        check("spend", vec![agg("sum", false)], None);
        check(
            "spend",
            vec![agg("min", false)],
            Some("single-value-aggregate"),
        );
        check("spend", vec![], Some("raw-output-not-allowed"));
        check("district", vec![Step::GroupKey], None);
        check("district", vec![], None);
        check(
            "id_number",
            vec![Step::GroupKey],
            Some("group-by-not-allowed"),
        );
        check(
            "spend",
            vec![Step::Window("sum".into())],
            Some("window-is-raw-output"),
        );
    }

    fn mask(name: &str, args: Vec<i64>) -> Step {
        Step::Mask {
            name: name.into(),
            args: args.into_iter().map(MaskArg::Int).collect(),
        }
    }

    #[test]
    fn mask_rules() {
        check("phone", vec![mask("mask_phone", vec![])], None);
        check(
            "phone",
            vec![Step::Cast("Utf8".into()), mask("mask_phone", vec![])],
            None,
        );
        check(
            "phone",
            vec![mask("mask_phone", vec![]), Step::GroupKey],
            None,
        );
        check("phone", vec![], Some("raw-output-not-allowed"));
        check(
            "phone",
            vec![mask("mask_name", vec![])],
            Some("mask-not-approved"),
        );
        check(
            "phone",
            vec![Step::Scalar("substr".into()), mask("mask_phone", vec![])],
            Some("mask-not-on-column"),
        );
        check(
            "id_number",
            vec![mask("mask_id_card", vec![])],
            Some("masked-output-not-allowed"),
        );
        check("card", vec![mask("keep_first_n_last_m", vec![4, 2])], None);
        check(
            "card",
            vec![mask("keep_first_n_last_m", vec![16, 0])],
            Some("mask-parameters-not-approved"),
        );
        check(
            "card",
            vec![mask("keep_first_n_last_m", vec![4])],
            Some("mask-parameters-not-approved"),
        );
    }

    #[test]
    fn refusal_names_column_use_and_rule() {
        let v = check_plan(
            &out("id_number", vec![Step::Scalar("upper".into())]),
            &policies(),
            true,
        );
        let msg = v.explain();
        assert!(msg.contains("stays.id_number"), "{msg}");
        assert!(msg.contains("upper()"), "{msg}");
        assert!(
            msg.contains("allowed uses are: aggregate[count, count_distinct], join"),
            "{msg}"
        );
    }

    #[test]
    fn row_level_results_need_aggregation() {
        let mut l = out("district", vec![]);
        l.aggregated = false;
        let v = check_plan(&l, &policies(), true);
        assert_eq!(v.refusals[0].rule, "aggregated-results-only");
        assert!(check_plan(&l, &policies(), false).allowed());
    }
}
