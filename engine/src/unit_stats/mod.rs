//! The hidden aggregates the statistics rewrite adds beside a query's own:
//!
//! - `__erhai_unit_set(unit)`: the set of distinct privacy units behind a group, as a
//!   [`UnitSet`] of keyed 32-bit unit indexes. Its cardinality is the threshold count; the set
//!   itself lets later releases be checked for differencing without ever storing an identifier.
//! - `__erhai_contrib(unit, value_1, …, value_k)`: each unit's contribution to each of `k` sums
//!   (one map entry per unit for all of them), reduced to what the dominance rules need (total,
//!   the largest few, whether any was negative) per sum.
//!
//! The unit index is SipHash-1-3 under a key derived per dataset from the master key, truncated
//! to 32 bits: stable across versions and releases of one dataset, meaningless without the key.
//! Two units may share an index (about n²/2³³ pairs among n units); a collision can only make a
//! count smaller, which suppresses more, never less. These functions are never registered in a
//! session, so a query cannot call them: only the rewrite builds them.

use std::fmt;
use std::hash::Hasher;

use arrow::array::{Array, ArrayRef, AsArray, BinaryArray, BooleanArray};
use arrow::datatypes::{DataType, Int64Type, UInt64Type};
use datafusion::common::{Result as DfResult, exec_err};
use siphasher::sip::SipHasher13;

use crate::unit_set::UnitSet;

mod contributions;
mod unit_sets;

pub(crate) use contributions::{ContribSummary, IndexHasher, contributions};
pub(crate) use unit_sets::unit_set;

/// The key of one dataset's unit index.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct UnitKey([u8; 16]);

impl UnitKey {
    pub(crate) fn new(bytes: [u8; 16]) -> UnitKey {
        UnitKey(bytes)
    }

    pub(crate) fn bytes(&self) -> &[u8; 16] {
        &self.0
    }

    fn hasher(&self) -> SipHasher13 {
        SipHasher13::new_with_key(&self.0)
    }
}

impl fmt::Debug for UnitKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UnitKey(<redacted>)")
    }
}

/// The unit index of every row of `units` (None for nulls).
pub(crate) fn unit_indexes(key: &UnitKey, units: &ArrayRef) -> DfResult<Vec<Option<u32>>> {
    let base = key.hasher();
    let of_bytes = |b: &[u8]| {
        let mut h = base;
        h.write(b);
        h.finish() as u32
    };
    let of_int = |v: u64| {
        let mut h = base;
        h.write_u64(v);
        h.finish() as u32
    };
    let of_str = |s: &str| of_bytes(s.as_bytes());
    Ok(match units.data_type() {
        DataType::Utf8 => memo(units.as_string::<i32>().iter(), of_str),
        DataType::LargeUtf8 => memo(units.as_string::<i64>().iter(), of_str),
        DataType::Utf8View => memo(units.as_string_view().iter(), of_str),
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            let wide = arrow::compute::cast(units, &DataType::Int64)?;
            memo(wide.as_primitive::<Int64Type>().iter(), |x| {
                of_int(x as u64)
            })
        }
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            let wide = arrow::compute::cast(units, &DataType::UInt64)?;
            memo(wide.as_primitive::<UInt64Type>().iter(), of_int)
        }
        _ => {
            let text = arrow::compute::cast(units, &DataType::Utf8)?;
            memo(text.as_string::<i32>().iter(), of_str)
        }
    })
}

/// `index` of every value, hashing a value once per run of equal values: data is often stored
/// by unit (lines of an order, stays of a person), so neighbours share their unit.
fn memo<T: PartialEq + Copy>(
    values: impl Iterator<Item = Option<T>>,
    index: impl Fn(T) -> u32,
) -> Vec<Option<u32>> {
    let mut last: Option<(T, u32)> = None;
    values
        .map(|v| {
            v.map(|x| match last {
                Some((p, i)) if p == x => i,
                _ => {
                    let i = index(x);
                    last = Some((x, i));
                    i
                }
            })
        })
        .collect()
}

fn selected(filter: Option<&BooleanArray>, row: usize) -> bool {
    filter.is_none_or(|f| f.is_valid(row) && f.value(row))
}

fn decode_or_fail(bytes: &[u8]) -> DfResult<UnitSet> {
    match UnitSet::decode(bytes) {
        Some(s) => Ok(s),
        None => exec_err!("corrupt privacy-unit set in aggregation state"),
    }
}

/// The one binary state column both hidden aggregates keep between partial and final stages.
fn binary_state_field(
    args: &datafusion::logical_expr::function::StateFieldsArgs,
    what: &str,
) -> Vec<arrow::datatypes::FieldRef> {
    vec![std::sync::Arc::new(arrow::datatypes::Field::new(
        format!("{}[{what}]", args.name),
        DataType::Binary,
        true,
    ))]
}

fn binary_state(values: &[ArrayRef]) -> DfResult<&BinaryArray> {
    match values.first().and_then(|v| v.as_binary_opt::<i32>()) {
        Some(b) => Ok(b),
        None => exec_err!("privacy-unit statistics state has an unexpected type"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use arrow::array::StringArray;

    #[test]
    fn runs_of_one_unit_share_one_hash_and_others_do_not() {
        let a: ArrayRef = Arc::new(arrow::array::Int64Array::from(vec![
            Some(7),
            Some(7),
            None,
            Some(7),
            Some(8),
            Some(7),
        ]));
        let i = unit_indexes(&UnitKey::new([3; 16]), &a).expect("hash");
        assert_eq!((i[0], i[1], i[3], i[5]), (i[0], i[0], i[0], i[0]));
        assert_eq!(i[2], None);
        assert_ne!(i[4], i[0]);
    }

    #[test]
    fn unit_index_is_keyed_and_stable() {
        let a: ArrayRef = Arc::new(StringArray::from(vec![Some("x"), None, Some("x")]));
        let k1 = UnitKey::new([1; 16]);
        let k2 = UnitKey::new([2; 16]);
        let i1 = unit_indexes(&k1, &a).expect("hash");
        assert_eq!(i1[0], i1[2]);
        assert_eq!(i1[1], None);
        assert_ne!(i1[0], unit_indexes(&k2, &a).expect("hash")[0]);
    }
}
