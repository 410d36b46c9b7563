//! The erhai policy model, pure: column classification and allowed uses, release rules, and
//! verdicts with reasons.
//!
//! This crate knows nothing about DataFusion, files or the network. The engine describes a query
//! plan as [`lineage::PlanLineage`] (which source columns reach which output, and how); this crate
//! decides whether that is allowed under each column's [`model::ColumnPolicy`] and explains why not.
//! A regulator should be able to read it end to end.

pub mod check;
pub mod dev_sample;
pub mod dp;
pub mod error;
pub mod lineage;
pub mod masks;
pub mod model;
pub mod policy_file;
pub mod release;
pub mod shape;
pub mod versions;

pub use check::{ColumnVerdict, PlanVerdict, Refusal, check_plan};
pub use error::PolicyError;
pub use lineage::{
    ContextUse, Derivation, OutputLineage, PlanLineage, SourceColumn, Step, UseContext,
};
pub use masks::{ApprovedMask, MaskArg};
pub use model::{Bounds, ColumnKind, ColumnPolicy, DatasetPolicy, Grade, Use};
pub use release::{Contributions, Finding, ReleaseRules, Verdict};
pub use shape::{Construct, ShapeIssue};
