//! Total, bounded expressions. An error that happens for some values and not others is an
//! oracle (`1 / (x - 4321)` fails only where x = 4321), and a function whose output outgrows its
//! input can exhaust memory that no pool accounts for (`repeat(name, 10^6)`, a CTE chain of
//! `s || s`). So inside the sandbox:
//!
//! - every built-in scalar function is wrapped ([`total`]): an error on a batch makes it
//!   evaluate row by row, and the rows that fail become NULL; rows whose output would exceed
//!   [`MAX_VALUE_BYTES`] (estimated from the arguments before anything is allocated) become NULL;
//! - after the plan check, [`harden`] rewrites the plan: casts become `TRY_CAST` (NULL on
//!   failure), a division's divisor `NULLIF(divisor, 0)`, and `a || b` a bounded concatenation.
//!
//! NULL is no oracle of its own: inside an aggregate, a value that may be null is a population
//! the release rules check (see [`crate::aggregate_args`]), and the analyst sees nothing of a
//! job before review.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, StringBuilder, new_null_array};
use arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::expr::{ScalarFunction, TryCast};
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, LogicalPlan, Operator, ReturnFieldArgs, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::error::{EngineError, Result};

/// The largest string a function may produce for one row; larger results are NULL.
pub const MAX_VALUE_BYTES: usize = 8 * 1024;

/// A built-in function made total and bounded (same name, same signature).
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Total {
    inner: ScalarUDF,
}

/// `f` as a total, bounded function.
pub(crate) fn total(f: Arc<ScalarUDF>) -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(Total {
        inner: f.as_ref().clone(),
    }))
}

/// The lengths in bytes of a string argument, per row (None: not a string, or null).
fn lengths(v: &ColumnarValue, rows: usize) -> Option<Vec<usize>> {
    match v {
        ColumnarValue::Scalar(s) => {
            let n = match s {
                ScalarValue::Utf8(Some(x))
                | ScalarValue::LargeUtf8(Some(x))
                | ScalarValue::Utf8View(Some(x)) => x.len(),
                ScalarValue::Utf8(None)
                | ScalarValue::LargeUtf8(None)
                | ScalarValue::Utf8View(None) => 0,
                _ => return None,
            };
            Some(vec![n; rows])
        }
        ColumnarValue::Array(a) => {
            let text = arrow::compute::cast(a, &DataType::Utf8).ok()?;
            let text = text.as_any().downcast_ref::<arrow::array::StringArray>()?;
            Some(
                (0..text.len())
                    .map(|i| {
                        if text.is_valid(i) {
                            text.value(i).len()
                        } else {
                            0
                        }
                    })
                    .collect(),
            )
        }
    }
}

/// An integer argument per row (None where null or not an integer).
fn integers(v: &ColumnarValue, rows: usize) -> Option<Vec<Option<i64>>> {
    let a = v.clone().into_array(rows).ok()?;
    let a = arrow::compute::cast(&a, &DataType::Int64).ok()?;
    let a = a.as_any().downcast_ref::<arrow::array::Int64Array>()?;
    Some(
        (0..a.len())
            .map(|i| a.is_valid(i).then(|| a.value(i)))
            .collect(),
    )
}

/// The rows whose output would exceed [`MAX_VALUE_BYTES`], estimated from the arguments for
/// the functions whose output can outgrow their input; None when no row does.
fn oversized(name: &str, args: &[ColumnarValue], rows: usize) -> Option<Vec<bool>> {
    let len = |i: usize| args.get(i).and_then(|a| lengths(a, rows));
    let int = |i: usize| args.get(i).and_then(|a| integers(a, rows));
    let bound: Vec<usize> = match name {
        "repeat" => {
            let (s, n) = (len(0)?, int(1)?);
            s.iter()
                .zip(n)
                .map(|(l, n)| l.saturating_mul(n.unwrap_or(0).max(0) as usize))
                .collect()
        }
        "lpad" | "rpad" => int(1)?
            .into_iter()
            .map(|n| (n.unwrap_or(0).max(0) as usize).saturating_mul(4))
            .collect(),
        "concat" | "concat_ws" => {
            let all: Vec<Vec<usize>> = (0..args.len()).filter_map(len).collect();
            let sep = if name == "concat_ws" {
                len(0).unwrap_or_else(|| vec![0; rows])
            } else {
                vec![0; rows]
            };
            (0..rows)
                .map(|r| {
                    let total: usize = all.iter().map(|l| l[r]).sum();
                    total.saturating_add(sep[r].saturating_mul(args.len()))
                })
                .collect()
        }
        "replace" => {
            let (s, from, to) = (len(0)?, len(1)?, len(2)?);
            (0..rows)
                .map(|r| {
                    let occurrences = s[r] / from[r].max(1) + 1;
                    s[r].saturating_add(occurrences.saturating_mul(to[r]))
                })
                .collect()
        }
        "regexp_replace" => {
            let (s, rep) = (len(0)?, len(2)?);
            (0..rows)
                .map(|r| {
                    (s[r] + 1)
                        .saturating_mul(rep[r].max(1))
                        .saturating_mul(s[r].max(1))
                })
                .collect()
        }
        _ => return None,
    };
    let over: Vec<bool> = bound.iter().map(|&b| b > MAX_VALUE_BYTES).collect();
    over.iter().any(|&o| o).then_some(over)
}

/// The same value with the `over` rows nulled.
fn null_rows(v: &ColumnarValue, over: &[bool], rows: usize) -> DfResult<ColumnarValue> {
    let a = v.clone().into_array(rows)?;
    let keep = BooleanArray::from(over.iter().map(|&o| !o).collect::<Vec<_>>());
    let nulls = new_null_array(a.data_type(), a.len());
    Ok(ColumnarValue::Array(arrow::compute::kernels::zip::zip(
        &keep, &a, &nulls,
    )?))
}

impl Total {
    /// Row by row, NULL where the function fails.
    fn row_by_row(&self, args: &ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        let ty = args.return_field.data_type().clone();
        let mut parts: Vec<ArrayRef> = Vec::with_capacity(rows);
        for r in 0..rows {
            let one: Vec<ColumnarValue> = args
                .args
                .iter()
                .map(|a| match a {
                    ColumnarValue::Array(x) => ColumnarValue::Array(x.slice(r, 1)),
                    s => s.clone(),
                })
                .collect();
            let call = ScalarFunctionArgs {
                args: one,
                arg_fields: args.arg_fields.clone(),
                number_rows: 1,
                return_field: args.return_field.clone(),
                config_options: args.config_options.clone(),
            };
            let value = match self.inner.invoke_with_args(call) {
                Ok(v) => v.into_array(1).unwrap_or_else(|_| new_null_array(&ty, 1)),
                Err(_) => new_null_array(&ty, 1),
            };
            parts.push(if value.data_type() == &ty {
                value
            } else {
                new_null_array(&ty, 1)
            });
        }
        if parts.is_empty() {
            return Ok(ColumnarValue::Array(new_null_array(&ty, 0)));
        }
        let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
        Ok(ColumnarValue::Array(arrow::compute::concat(&refs)?))
    }
}

impl ScalarUDFImpl for Total {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }
    fn signature(&self) -> &Signature {
        self.inner.signature()
    }
    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        self.inner.return_type(arg_types)
    }
    fn return_field_from_args(
        &self,
        args: ReturnFieldArgs,
    ) -> DfResult<arrow::datatypes::FieldRef> {
        let f = self.inner.return_field_from_args(args)?;
        Ok(Arc::new(f.as_ref().clone().with_nullable(true)))
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        self.inner.inner().coerce_types(arg_types)
    }
    fn short_circuits(&self) -> bool {
        self.inner.short_circuits()
    }
    fn conditional_arguments<'a>(
        &self,
        args: &'a [Expr],
    ) -> Option<(Vec<&'a Expr>, Vec<&'a Expr>)> {
        self.inner.conditional_arguments(args)
    }
    /// Some built-ins only run simplified (`coalesce`, `nvl`, `nvl2` become CASE; their own
    /// kernels refuse to run), so the simplification is the inner function's; any function it
    /// introduces (`concat` folding its literal arguments) is made total and bounded in turn.
    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> DfResult<ExprSimplifyResult> {
        match self.inner.simplify(args, info)? {
            ExprSimplifyResult::Simplified(e) => Ok(ExprSimplifyResult::Simplified(
                e.transform_up(|e| match e {
                    Expr::ScalarFunction(f)
                        if (f.func.inner().as_ref() as &dyn std::any::Any)
                            .downcast_ref::<Total>()
                            .is_none() =>
                    {
                        Ok(Transformed::yes(Expr::ScalarFunction(
                            ScalarFunction::new_udf(total(f.func), f.args),
                        )))
                    }
                    other => Ok(Transformed::no(other)),
                })?
                .data,
            )),
            original => Ok(original),
        }
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        let over = oversized(self.name(), &args.args, rows);
        let args = match &over {
            Some(over) => ScalarFunctionArgs {
                args: args
                    .args
                    .iter()
                    .map(|a| null_rows(a, over, rows))
                    .collect::<DfResult<_>>()?,
                ..args
            },
            None => args,
        };
        let out = match self.inner.invoke_with_args(ScalarFunctionArgs {
            args: args.args.clone(),
            arg_fields: args.arg_fields.clone(),
            number_rows: args.number_rows,
            return_field: args.return_field.clone(),
            config_options: args.config_options.clone(),
        }) {
            Ok(v) => v,
            Err(_) => self.row_by_row(&args)?,
        };
        match over {
            Some(over) => null_rows(&out, &over, rows),
            None => Ok(out),
        }
    }
}

/// `a || b` with a bound: NULL when either is NULL (as `||`) or the result would exceed
/// [`MAX_VALUE_BYTES`].
#[derive(Debug, PartialEq, Eq, Hash)]
struct ConcatOp {
    signature: Signature,
}

const CONCAT_OP: &str = "__erhai_concat";

impl ScalarUDFImpl for ConcatOp {
    fn name(&self) -> &str {
        CONCAT_OP
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        let text = |v: &ColumnarValue| -> DfResult<ArrayRef> {
            Ok(arrow::compute::cast(
                &v.clone().into_array(rows)?,
                &DataType::Utf8,
            )?)
        };
        let (Some(a), Some(b)) = (args.args.first(), args.args.get(1)) else {
            return datafusion::common::exec_err!("|| takes two values");
        };
        let (a, b) = (text(a)?, text(b)?);
        let (a, b) = (
            a.as_any().downcast_ref::<arrow::array::StringArray>(),
            b.as_any().downcast_ref::<arrow::array::StringArray>(),
        );
        let (Some(a), Some(b)) = (a, b) else {
            return datafusion::common::exec_err!("|| takes two strings");
        };
        let mut out = StringBuilder::with_capacity(rows, 16 * rows);
        for r in 0..rows {
            if a.is_null(r) || b.is_null(r) {
                out.append_null();
                continue;
            }
            let (x, y) = (a.value(r), b.value(r));
            if x.len() + y.len() > MAX_VALUE_BYTES {
                out.append_null();
            } else {
                out.append_value(format!("{x}{y}"));
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

fn concat_op() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(ConcatOp {
        signature: Signature::any(2, Volatility::Immutable),
    }))
}

/// The plan with its fallible operators made total: casts become `TRY_CAST`, divisors
/// `NULLIF(divisor, 0)`, `a || b` a bounded concatenation. Run after the plan check (which
/// judged the query as written) and before execution.
pub(crate) fn harden(plan: LogicalPlan) -> Result<LogicalPlan> {
    let concat = concat_op();
    let nullif = datafusion::functions::core::nullif();
    plan.transform_up_with_subqueries(|node| {
        node.map_expressions(|e| {
            e.transform_up(|x| {
                Ok(match x {
                    Expr::Cast(c) => Transformed::yes(Expr::TryCast(TryCast::new(
                        c.expr,
                        c.field.data_type().clone(),
                    ))),
                    Expr::BinaryExpr(b)
                        if matches!(b.op, Operator::Divide | Operator::Modulo)
                            && !matches!(*b.right, Expr::Literal(ref v, _) if !is_zero(v)) =>
                    {
                        let zero = Expr::Literal(ScalarValue::Int64(Some(0)), None);
                        let right = Expr::ScalarFunction(ScalarFunction::new_udf(
                            nullif.clone(),
                            vec![*b.right, zero],
                        ));
                        Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
                            b.left,
                            b.op,
                            Box::new(right),
                        )))
                    }
                    // Built-ins the planner reached without the session's registry (SUBSTRING
                    // syntax and the like) are made total too.
                    Expr::ScalarFunction(mut f)
                        if crate::sandbox::SCALAR_FUNCTIONS.contains(&f.func.name())
                            && !is_total(&f.func) =>
                    {
                        f.func = total(f.func);
                        Transformed::yes(Expr::ScalarFunction(f))
                    }
                    Expr::BinaryExpr(b) if b.op == Operator::StringConcat => {
                        Transformed::yes(Expr::ScalarFunction(ScalarFunction::new_udf(
                            concat.clone(),
                            vec![*b.left, *b.right],
                        )))
                    }
                    other => Transformed::no(other),
                })
            })
        })
    })
    .map(|t| t.data)
    .map_err(|e| EngineError::Plan(e.to_string()))
}

fn is_total(f: &ScalarUDF) -> bool {
    let inner: &dyn std::any::Any = f.inner().as_ref();
    inner.downcast_ref::<Total>().is_some()
}

fn is_zero(v: &ScalarValue) -> bool {
    v.is_null()
        || v.cast_to(&DataType::Float64)
            .is_ok_and(|f| f == ScalarValue::Float64(Some(0.0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::Field;

    fn call(f: &Arc<ScalarUDF>, args: Vec<ColumnarValue>, rows: usize, ty: DataType) -> ArrayRef {
        let arg_fields = args
            .iter()
            .map(|a| Arc::new(Field::new("a", a.data_type(), true)))
            .collect();
        f.invoke_with_args(ScalarFunctionArgs {
            args,
            arg_fields,
            number_rows: rows,
            return_field: Arc::new(Field::new("r", ty, true)),
            config_options: Arc::new(Default::default()),
        })
        .expect("total functions do not fail")
        .into_array(rows)
        .expect("array")
    }

    #[test]
    fn amplifying_functions_return_null_beyond_the_bound() {
        let repeat = total(datafusion::functions::string::repeat());
        let names: ArrayRef = Arc::new(StringArray::from(vec!["ab", "cd"]));
        let counts: ArrayRef = Arc::new(Int64Array::from(vec![3, 1_000_000]));
        let out = call(
            &repeat,
            vec![ColumnarValue::Array(names), ColumnarValue::Array(counts)],
            2,
            DataType::Utf8,
        );
        let out = out.as_any().downcast_ref::<StringArray>().expect("strings");
        assert_eq!(out.value(0), "ababab");
        assert!(out.is_null(1));
    }

    #[test]
    fn failing_rows_become_null_instead_of_an_error() {
        // substr with a negative length fails in DataFusion; here only that row is NULL.
        let substr = total(datafusion::functions::unicode::substr());
        let s: ArrayRef = Arc::new(StringArray::from(vec!["hello", "world"]));
        let len: ArrayRef = Arc::new(Int64Array::from(vec![2, -1]));
        let out = call(
            &substr,
            vec![
                ColumnarValue::Array(s),
                ColumnarValue::Scalar(ScalarValue::Int64(Some(1))),
                ColumnarValue::Array(len),
            ],
            2,
            DataType::Utf8,
        );
        let out = out.as_any().downcast_ref::<StringArray>().expect("strings");
        assert_eq!(out.value(0), "he");
        assert!(out.is_null(1));
    }
}
