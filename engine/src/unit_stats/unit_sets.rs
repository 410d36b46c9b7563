//! `__erhai_unit_set(unit)`: the set of distinct privacy units behind a group (threshold and
//! differencing).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BinaryBuilder, BooleanArray};
use arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result as DfResult, ScalarValue, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};

use super::{UnitKey, binary_state, binary_state_field, decode_or_fail, selected, unit_indexes};
use crate::unit_set::UnitSet;

/// Values gathered beyond the last compaction before the next one.
const SLACK: usize = 16 * 1024;

/// A unit set being built: values are gathered in a vector and compacted (sorted,
/// deduplicated) whenever it doubles, so memory stays within twice the distinct units plus a
/// little, and each value costs a push.
#[derive(Debug, Default)]
struct GrowingSet {
    values: Vec<u32>,
    /// Length after the last compaction: the distinct values seen up to then.
    compacted: usize,
}

impl GrowingSet {
    fn add(&mut self, u: u32) {
        self.values.push(u);
        if self.values.len() >= 2 * self.compacted + SLACK {
            self.compact();
        }
    }

    fn compact(&mut self) {
        self.values.sort_unstable();
        self.values.dedup();
        self.compacted = self.values.len();
    }

    fn merge(&mut self, other: &UnitSet) {
        self.values.extend(other.iter());
        if self.values.len() >= 2 * self.compacted + SLACK {
            self.compact();
        }
    }

    fn finish(&mut self) -> UnitSet {
        UnitSet::from_unsorted(std::mem::take(&mut self.values))
    }

    fn size(&self) -> usize {
        self.values.capacity() * 4
    }
}

/// `__erhai_unit_set(unit)` for one dataset.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct UnitSetUdaf {
    key: UnitKey,
    signature: Signature,
}

/// The unit-set aggregate keyed for one dataset.
pub fn unit_set(key: UnitKey) -> AggregateUDF {
    AggregateUDF::new_from_impl(UnitSetUdaf {
        key,
        signature: Signature::any(1, Volatility::Immutable),
    })
}

impl AggregateUDFImpl for UnitSetUdaf {
    fn name(&self) -> &str {
        "__erhai_unit_set"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Binary)
    }
    fn is_nullable(&self) -> bool {
        false
    }
    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        Ok(binary_state_field(&args, "set"))
    }
    fn accumulator(&self, _: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        Ok(Box::new(UnitSetAcc {
            key: self.key.clone(),
            set: GrowingSet::default(),
        }))
    }
    fn groups_accumulator_supported(&self, _: AccumulatorArgs) -> bool {
        true
    }
    fn create_groups_accumulator(
        &self,
        _: AccumulatorArgs,
    ) -> DfResult<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(UnitSetGroups {
            key: self.key.clone(),
            sets: Vec::new(),
            added: 0,
        }))
    }
    fn default_value(&self, _: &DataType) -> DfResult<ScalarValue> {
        Ok(ScalarValue::Binary(Some(UnitSet::default().encode())))
    }
}

#[derive(Debug)]
struct UnitSetAcc {
    key: UnitKey,
    set: GrowingSet,
}

impl Accumulator for UnitSetAcc {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        if let Some(units) = values.first() {
            for u in unit_indexes(&self.key, units)?.into_iter().flatten() {
                self.set.add(u);
            }
        }
        Ok(())
    }
    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        Ok(ScalarValue::Binary(Some(self.set.finish().encode())))
    }
    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.set.size()
    }
    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        Ok(vec![self.evaluate()?])
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        for bytes in binary_state(states)?.iter().flatten() {
            self.set.merge(&decode_or_fail(bytes)?);
        }
        Ok(())
    }
}

struct UnitSetGroups {
    key: UnitKey,
    sets: Vec<GrowingSet>,
    /// Indexes added so far: an upper bound of what the sets hold (4 bytes each), so the
    /// memory pool sees the cost without walking every group.
    added: usize,
}

impl UnitSetGroups {
    fn emit(&mut self, emit_to: EmitTo) -> ArrayRef {
        let mut sets = emit_to.take_needed(&mut self.sets);
        let mut b = BinaryBuilder::with_capacity(sets.len(), sets.len() * 16);
        for s in &mut sets {
            b.append_value(s.finish().encode());
        }
        Arc::new(b.finish())
    }
}

impl GroupsAccumulator for UnitSetGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> DfResult<()> {
        self.sets.resize_with(total_num_groups, GrowingSet::default);
        let Some(units) = values.first() else {
            return Ok(());
        };
        let indexes = unit_indexes(&self.key, units)?;
        // A unit repeated on neighbouring rows of one group is added once.
        let mut last = None;
        for (row, (&g, unit)) in group_indices.iter().zip(indexes).enumerate() {
            if let Some(u) = unit
                && selected(opt_filter, row)
                && last != Some((g, u))
            {
                self.sets[g].add(u);
                self.added += 1;
                last = Some((g, u));
            }
        }
        Ok(())
    }
    fn evaluate(&mut self, emit_to: EmitTo) -> DfResult<ArrayRef> {
        Ok(self.emit(emit_to))
    }
    fn state(&mut self, emit_to: EmitTo) -> DfResult<Vec<ArrayRef>> {
        Ok(vec![self.emit(emit_to)])
    }
    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> DfResult<()> {
        self.sets.resize_with(total_num_groups, GrowingSet::default);
        let states = binary_state(values)?;
        for (row, &g) in group_indices.iter().enumerate() {
            if states.is_valid(row) {
                let set = decode_or_fail(states.value(row))?;
                self.added += set.len() as usize;
                self.sets[g].merge(&set);
            }
        }
        Ok(())
    }
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> DfResult<Vec<ArrayRef>> {
        let Some(units) = values.first() else {
            return exec_err!("the unit set takes one argument");
        };
        let indexes = unit_indexes(&self.key, units)?;
        let mut b = BinaryBuilder::with_capacity(indexes.len(), indexes.len() * 16);
        for (row, unit) in indexes.into_iter().enumerate() {
            let mut values = Vec::with_capacity(1);
            if let Some(u) = unit
                && selected(opt_filter, row)
            {
                values.push(u);
            }
            b.append_value(UnitSet::from_unsorted(values).encode());
        }
        Ok(vec![Arc::new(b.finish())])
    }
    fn size(&self) -> usize {
        // Counting each set's bytes would be O(groups) per batch; an estimate suffices.
        self.sets.capacity() * std::mem::size_of::<GrowingSet>() + self.added.saturating_mul(4)
    }
}
