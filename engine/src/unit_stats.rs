//! The hidden aggregates the statistics rewrite adds beside a query's own:
//!
//! - `__erhai_unit_set(unit)`: the set of distinct privacy units behind a group, as a
//!   [`UnitSet`] of keyed 32-bit unit indexes. Its cardinality is the threshold count; the set
//!   itself lets later releases be checked for differencing without ever storing an identifier.
//! - `__erhai_contrib(unit, value)`: each unit's contribution to a sum, reduced to what the
//!   dominance rules need (total, the largest few, whether any was negative).
//!
//! The unit index is SipHash-1-3 under a key derived per dataset from the master key, truncated
//! to 32 bits: stable across versions and releases of one dataset, meaningless without the key.
//! Two units may share an index (about n²/2³³ pairs among n units); a collision can only make a
//! count smaller, which suppresses more, never less. These functions are never registered in a
//! session, so a query cannot call them: only the rewrite builds them.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hasher;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BinaryBuilder, BooleanArray, Float64Array,
};
use arrow::datatypes::{DataType, Field, FieldRef, Int64Type, UInt64Type};
use datafusion::common::{Result as DfResult, ScalarValue, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};
use siphasher::sip::SipHasher13;

use crate::unit_set::UnitSet;

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
    Ok(match units.data_type() {
        DataType::Utf8 => units
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(|s| of_bytes(s.as_bytes())))
            .collect(),
        DataType::LargeUtf8 => units
            .as_string::<i64>()
            .iter()
            .map(|v| v.map(|s| of_bytes(s.as_bytes())))
            .collect(),
        DataType::Utf8View => units
            .as_string_view()
            .iter()
            .map(|v| v.map(|s| of_bytes(s.as_bytes())))
            .collect(),
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            let wide = arrow::compute::cast(units, &DataType::Int64)?;
            wide.as_primitive::<Int64Type>()
                .iter()
                .map(|v| v.map(|x| of_int(x as u64)))
                .collect()
        }
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            let wide = arrow::compute::cast(units, &DataType::UInt64)?;
            wide.as_primitive::<UInt64Type>()
                .iter()
                .map(|v| v.map(of_int))
                .collect()
        }
        _ => {
            let text = arrow::compute::cast(units, &DataType::Utf8)?;
            text.as_string::<i32>()
                .iter()
                .map(|v| v.map(|s| of_bytes(s.as_bytes())))
                .collect()
        }
    })
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

fn binary_state(values: &[ArrayRef]) -> DfResult<&BinaryArray> {
    match values.first().and_then(|v| v.as_binary_opt::<i32>()) {
        Some(b) => Ok(b),
        None => exec_err!("privacy-unit statistics state has an unexpected type"),
    }
}

// ---------------------------------------------------------------------------------------------
// The unit set.

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
        Ok(vec![Arc::new(Field::new(
            format!("{}[set]", args.name),
            DataType::Binary,
            true,
        ))])
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
        for (row, (&g, unit)) in group_indices.iter().zip(indexes).enumerate() {
            if let Some(u) = unit
                && selected(opt_filter, row)
            {
                self.sets[g].add(u);
                self.added += 1;
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

// ---------------------------------------------------------------------------------------------
// Per-unit contributions to a sum.

/// Hashes unit indexes, which are already keyed-hash outputs: one multiplication spreads them.
/// (An attacker cannot aim collisions at indexes without the dataset's unit key.)
#[derive(Default, Clone, Copy)]
pub(crate) struct IndexHasher(u64);

impl Hasher for IndexHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u32(&mut self, i: u32) {
        self.0 = u64::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// Per-unit partial sums of one group.
type UnitSums = HashMap<u32, f64, std::hash::BuildHasherDefault<IndexHasher>>;

/// The dominance summary of one group, as `__erhai_contrib` returns it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContribSummary {
    /// Sum of absolute per-unit contributions.
    pub total: f64,
    /// Largest absolute per-unit contributions, descending.
    pub largest: Vec<f64>,
    /// Whether any unit's contribution was negative.
    pub negative: bool,
    /// Units that contributed a non-null value.
    pub units: u32,
}

impl ContribSummary {
    fn of(map: &UnitSums, keep: usize) -> ContribSummary {
        let mut largest: Vec<f64> = Vec::with_capacity(keep + 1);
        let mut total = 0.0;
        let mut negative = false;
        for &v in map.values() {
            negative |= v < 0.0;
            let a = v.abs();
            total += a;
            if largest.len() < keep || largest.last().is_some_and(|&m| a > m) {
                let at = largest.partition_point(|&x| x >= a);
                largest.insert(at, a);
                largest.truncate(keep);
            }
        }
        ContribSummary {
            total,
            largest,
            negative,
            units: u32::try_from(map.len()).unwrap_or(u32::MAX),
        }
    }

    /// The wire form: negative flag, total, unit count, count of largest, the largest.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(14 + 8 * self.largest.len());
        out.push(u8::from(self.negative));
        out.extend_from_slice(&self.total.to_le_bytes());
        out.extend_from_slice(&self.units.to_le_bytes());
        out.push(self.largest.len() as u8);
        for v in &self.largest {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// Reads the wire form.
    pub fn decode(bytes: &[u8]) -> Option<ContribSummary> {
        let negative = *bytes.first()? != 0;
        let total = f64::from_le_bytes(bytes.get(1..9)?.try_into().ok()?);
        let units = u32::from_le_bytes(bytes.get(9..13)?.try_into().ok()?);
        let n = usize::from(*bytes.get(13)?);
        let largest = (0..n)
            .map(|i| {
                let at = 14 + 8 * i;
                Some(f64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
            })
            .collect::<Option<Vec<f64>>>()?;
        (bytes.len() == 14 + 8 * n).then_some(ContribSummary {
            total,
            largest,
            negative,
            units,
        })
    }
}

/// `__erhai_contrib(unit, value)` for one dataset's units.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ContribUdaf {
    key: UnitKey,
    keep: usize,
    signature: Signature,
}

/// The contribution aggregate keyed for one dataset, keeping the `keep` largest.
pub fn contributions(key: UnitKey, keep: usize) -> AggregateUDF {
    AggregateUDF::new_from_impl(ContribUdaf {
        key,
        keep: keep.clamp(2, 255),
        signature: Signature::any(2, Volatility::Immutable),
    })
}

/// Per-unit partial sums of a state, encoded as (index u32, sum f64) pairs.
fn encode_map(map: &UnitSums) -> Vec<u8> {
    let mut out = Vec::with_capacity(map.len() * 12);
    for (k, v) in map {
        out.extend_from_slice(&k.to_le_bytes());
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

fn merge_map(into: &mut UnitSums, bytes: &[u8]) -> DfResult<()> {
    if !bytes.len().is_multiple_of(12) {
        return exec_err!("corrupt contribution state in aggregation");
    }
    for pair in bytes.chunks_exact(12) {
        let (k, v) = pair.split_at(4);
        let k = u32::from_le_bytes(k.try_into().unwrap_or_default());
        let v = f64::from_le_bytes(v.try_into().unwrap_or_default());
        *into.entry(k).or_insert(0.0) += v;
    }
    Ok(())
}

fn contrib_inputs(values: &[ArrayRef]) -> DfResult<(&ArrayRef, Float64Array)> {
    let (Some(units), Some(v)) = (values.first(), values.get(1)) else {
        return exec_err!("the contribution aggregate takes a unit and a value");
    };
    let v = arrow::compute::cast(v, &DataType::Float64)?;
    Ok((units, v.as_primitive().clone()))
}

impl AggregateUDFImpl for ContribUdaf {
    fn name(&self) -> &str {
        "__erhai_contrib"
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
        Ok(vec![Arc::new(Field::new(
            format!("{}[units]", args.name),
            DataType::Binary,
            true,
        ))])
    }
    fn accumulator(&self, _: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        Ok(Box::new(ContribAcc {
            key: self.key.clone(),
            keep: self.keep,
            map: UnitSums::default(),
        }))
    }
    fn groups_accumulator_supported(&self, _: AccumulatorArgs) -> bool {
        true
    }
    fn create_groups_accumulator(
        &self,
        _: AccumulatorArgs,
    ) -> DfResult<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(ContribGroups {
            key: self.key.clone(),
            keep: self.keep,
            maps: Vec::new(),
            added: 0,
        }))
    }
    fn default_value(&self, _: &DataType) -> DfResult<ScalarValue> {
        Ok(ScalarValue::Binary(Some(
            ContribSummary::default().encode(),
        )))
    }
}

#[derive(Debug)]
struct ContribAcc {
    key: UnitKey,
    keep: usize,
    map: UnitSums,
}

impl Accumulator for ContribAcc {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        let (units, v) = contrib_inputs(values)?;
        for (unit, x) in unit_indexes(&self.key, units)?.into_iter().zip(v.iter()) {
            if let (Some(u), Some(x)) = (unit, x) {
                *self.map.entry(u).or_insert(0.0) += x;
            }
        }
        Ok(())
    }
    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        Ok(ScalarValue::Binary(Some(
            ContribSummary::of(&self.map, self.keep).encode(),
        )))
    }
    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.map.capacity() * 16
    }
    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Binary(Some(encode_map(&self.map)))])
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        for bytes in binary_state(states)?.iter().flatten() {
            merge_map(&mut self.map, bytes)?;
        }
        Ok(())
    }
}

struct ContribGroups {
    key: UnitKey,
    keep: usize,
    maps: Vec<UnitSums>,
    /// Entries added so far: an upper bound of the maps' sizes (16 bytes each, as above).
    added: usize,
}

impl GroupsAccumulator for ContribGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> DfResult<()> {
        self.maps.resize_with(total_num_groups, UnitSums::default);
        let (units, v) = contrib_inputs(values)?;
        let indexes = unit_indexes(&self.key, units)?;
        for (row, (&g, unit)) in group_indices.iter().zip(indexes).enumerate() {
            if let Some(u) = unit
                && v.is_valid(row)
                && selected(opt_filter, row)
            {
                *self.maps[g].entry(u).or_insert(0.0) += v.value(row);
                self.added += 1;
            }
        }
        Ok(())
    }
    fn evaluate(&mut self, emit_to: EmitTo) -> DfResult<ArrayRef> {
        let maps = emit_to.take_needed(&mut self.maps);
        let mut b = BinaryBuilder::with_capacity(maps.len(), maps.len() * 40);
        for m in &maps {
            b.append_value(ContribSummary::of(m, self.keep).encode());
        }
        Ok(Arc::new(b.finish()))
    }
    fn state(&mut self, emit_to: EmitTo) -> DfResult<Vec<ArrayRef>> {
        let maps = emit_to.take_needed(&mut self.maps);
        let mut b = BinaryBuilder::with_capacity(maps.len(), maps.len() * 24);
        for m in &maps {
            b.append_value(encode_map(m));
        }
        Ok(vec![Arc::new(b.finish())])
    }
    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> DfResult<()> {
        self.maps.resize_with(total_num_groups, UnitSums::default);
        let states = binary_state(values)?;
        for (row, &g) in group_indices.iter().enumerate() {
            if states.is_valid(row) {
                let bytes = states.value(row);
                self.added += bytes.len() / 12;
                merge_map(&mut self.maps[g], bytes)?;
            }
        }
        Ok(())
    }
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> DfResult<Vec<ArrayRef>> {
        let (units, v) = contrib_inputs(values)?;
        let indexes = unit_indexes(&self.key, units)?;
        let mut b = BinaryBuilder::with_capacity(indexes.len(), indexes.len() * 12);
        for (row, unit) in indexes.into_iter().enumerate() {
            let mut m = UnitSums::default();
            if let Some(u) = unit
                && v.is_valid(row)
                && selected(opt_filter, row)
            {
                m.insert(u, v.value(row));
            }
            b.append_value(encode_map(&m));
        }
        Ok(vec![Arc::new(b.finish())])
    }
    fn size(&self) -> usize {
        self.maps.capacity() * std::mem::size_of::<UnitSums>() + self.added.saturating_mul(16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::StringArray;

    #[test]
    fn summary_keeps_the_largest_and_round_trips() {
        let map: UnitSums = [(1, 5.0), (2, -30.0), (3, 10.0), (4, 1.0)]
            .into_iter()
            .collect();
        let s = ContribSummary::of(&map, 2);
        assert_eq!(s.largest, vec![30.0, 10.0]);
        assert_eq!(s.total, 46.0);
        assert!(s.negative);
        assert_eq!(s.units, 4);
        assert_eq!(ContribSummary::decode(&s.encode()), Some(s));
        assert_eq!(ContribSummary::decode(&[1, 2, 3]), None);
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
