//! The engine's description of a query plan: for every output column, the source columns it
//! derives from and the path of uses; and apart from outputs, every column used to filter, join,
//! group or sort. Columns are identified by dataset and name, never by alias.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A column of a registered dataset.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SourceColumn {
    /// Dataset name as the query sees it.
    pub dataset: String,
    /// Column name.
    pub column: String,
}

impl fmt::Display for SourceColumn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.dataset, self.column)
    }
}

/// One step on the way from a source column to where it ends up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    /// A scalar function or operator (`upper`, `||`, `=`, `case`, ...).
    Scalar(String),
    /// A type cast.
    Cast(String),
    /// A mask function from [`crate::masks::MASKS`] with its constant parameters.
    Mask {
        /// Function name.
        name: String,
        /// Parameters after the masked value, as written (defaults not filled in).
        args: Vec<crate::masks::MaskArg>,
    },
    /// An aggregate function; `func` is lower-case, DISTINCT recorded separately.
    Aggregate {
        /// Function name.
        func: String,
        /// Whether DISTINCT was applied.
        distinct: bool,
    },
    /// The value became a GROUP BY key (so it is released as a group label).
    GroupKey,
    /// A window function (one result per input row).
    Window(String),
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Scalar(s) => write!(f, "{s}()"),
            Step::Cast(t) => write!(f, "cast as {t}"),
            Step::Mask { name, args } => {
                let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
                if args.is_empty() {
                    write!(f, "mask {name}()")
                } else {
                    write!(f, "mask {name}(…, {})", args.join(", "))
                }
            }
            Step::Aggregate { func, distinct } => {
                write!(f, "{func}({}…)", if *distinct { "DISTINCT " } else { "" })
            }
            Step::GroupKey => f.write_str("group key"),
            Step::Window(w) => write!(f, "window {w}()"),
        }
    }
}

/// How one source column reaches an output or a use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Derivation {
    /// The source column.
    pub source: SourceColumn,
    /// Steps in order, from the source outward. Empty: the raw value.
    pub steps: Vec<Step>,
}

impl Derivation {
    /// The derivation path as text: `raw`, or the steps joined with ` → `.
    pub fn describe(&self) -> String {
        if self.steps.is_empty() {
            "raw".to_string()
        } else {
            self.steps
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(" → ")
        }
    }
}

/// One output column of the plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputLineage {
    /// The output column's name.
    pub name: String,
    /// Every source column that flows into it, with the path.
    pub derivations: Vec<Derivation>,
}

/// Where a column is used apart from the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UseContext {
    /// WHERE or HAVING, or a non-equality join condition.
    Filter,
    /// An equi-join key.
    JoinKey,
    /// A GROUP BY key.
    GroupBy,
    /// ORDER BY.
    Sort,
}

impl fmt::Display for UseContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UseContext::Filter => "filter",
            UseContext::JoinKey => "join key",
            UseContext::GroupBy => "group by",
            UseContext::Sort => "order by",
        })
    }
}

/// A use of a source column outside the output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextUse {
    /// The column and how it was transformed before the use.
    pub derivation: Derivation,
    /// Where it is used.
    pub context: UseContext,
    /// The expression, as the planner displays it (for messages).
    pub expr: String,
}

/// The lineage of a whole plan.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanLineage {
    /// Output columns by position.
    pub outputs: Vec<OutputLineage>,
    /// Uses outside the output.
    pub uses: Vec<ContextUse>,
    /// Whether every output row is an aggregate over input rows (GROUP BY, DISTINCT or a global
    /// aggregate at the top of the plan).
    pub aggregated: bool,
    /// The datasets the plan scans (sorted, each once): what a job reads, for lineage.
    #[serde(default)]
    pub datasets: Vec<String>,
    /// Constructs the release rules cannot judge (inside aggregates, in subqueries): each
    /// refuses the plan.
    #[serde(default)]
    pub shape: Vec<crate::shape::ShapeIssue>,
}
