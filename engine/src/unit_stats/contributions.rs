//! `__erhai_contrib(unit, value_1, …, value_k)`: each unit's contribution to each of `k` sums,
//! reduced to what the dominance rules need (total, the largest few, any negative) per sum.

use std::collections::HashMap;
use std::hash::Hasher;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BinaryBuilder, BooleanArray, Float64Array};
use arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result as DfResult, ScalarValue, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};

use super::{UnitKey, binary_state, binary_state_field, selected, unit_indexes};

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

/// Per-unit partial sums of one group for `k` values at once: one hash lookup a row whatever
/// `k` is. Slot `i` holds `sums[i*k..(i+1)*k]`; NaN marks "no value yet" (a unit that
/// contributed only nulls to a value is not among its contributors).
#[derive(Debug, Default)]
struct UnitSums {
    slots: HashMap<u32, u32, std::hash::BuildHasherDefault<IndexHasher>>,
    sums: Vec<f64>,
}

fn accumulate(slot: &mut f64, x: f64) {
    *slot = if slot.is_nan() { x } else { *slot + x };
}

impl UnitSums {
    /// The slot of unit `u`, created empty if new.
    fn slot(&mut self, u: u32, k: usize) -> usize {
        let next = self.slots.len() as u32;
        let sums = &mut self.sums;
        *self.slots.entry(u).or_insert_with(|| {
            sums.extend(std::iter::repeat_n(f64::NAN, k));
            next
        }) as usize
    }

    /// The `k` sums of unit `u`, created empty if new.
    fn of(&mut self, u: u32, k: usize) -> &mut [f64] {
        let slot = self.slot(u, k);
        &mut self.sums[slot * k..(slot + 1) * k]
    }

    /// The summary of each of the `k` values.
    fn summaries(&self, k: usize, keep: usize) -> Vec<ContribSummary> {
        (0..k)
            .map(|j| ContribSummary::of(self.sums.iter().skip(j).step_by(k.max(1)).copied(), keep))
            .collect()
    }

    /// The state: (unit u32, k sums f64) per unit.
    fn encode(&self, k: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.slots.len() * (4 + 8 * k));
        for (&u, &slot) in &self.slots {
            out.extend_from_slice(&u.to_le_bytes());
            for v in &self.sums[slot as usize * k..(slot as usize + 1) * k] {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        out
    }

    fn merge(&mut self, bytes: &[u8], k: usize) -> DfResult<()> {
        let width = 4 + 8 * k;
        if !bytes.len().is_multiple_of(width) {
            return exec_err!("corrupt contribution state in aggregation");
        }
        // Partial states of one group arrive as large maps: grow once, not by doubling.
        let entries = bytes.len() / width;
        self.slots.reserve(entries);
        self.sums.reserve(entries * k);
        for entry in bytes.chunks_exact(width) {
            let (u, rest) = entry.split_at(4);
            let u = u32::from_le_bytes(u.try_into().unwrap_or_default());
            let sums = self.of(u, k);
            for (slot, v) in sums.iter_mut().zip(rest.chunks_exact(8)) {
                let v = f64::from_le_bytes(v.try_into().unwrap_or_default());
                if !v.is_nan() {
                    accumulate(slot, v);
                }
            }
        }
        Ok(())
    }

    fn size(&self) -> usize {
        self.slots.capacity() * 12 + self.sums.capacity() * 8
    }
}

/// The largest per-unit contributions of one sign, and their total.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Side {
    /// Sum of the magnitudes.
    pub total: f64,
    /// The largest magnitudes, descending.
    pub largest: Vec<f64>,
}

impl Side {
    fn add(&mut self, a: f64, keep: usize) {
        self.total += a;
        if self.largest.len() < keep || self.largest.last().is_some_and(|&m| a > m) {
            let at = self.largest.partition_point(|&x| x >= a);
            self.largest.insert(at, a);
            self.largest.truncate(keep);
        }
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.total.to_le_bytes());
        out.push(self.largest.len() as u8);
        for v in &self.largest {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }

    fn decode(bytes: &[u8]) -> Option<(Side, usize)> {
        let total = f64::from_le_bytes(bytes.get(0..8)?.try_into().ok()?);
        let n = usize::from(*bytes.get(8)?);
        let largest = (0..n)
            .map(|i| {
                let at = 9 + 8 * i;
                Some(f64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
            })
            .collect::<Option<Vec<f64>>>()?;
        Some((Side { total, largest }, 9 + 8 * n))
    }
}

/// The dominance summary of one term of a sum in one group: units whose net contribution is
/// positive and those whose net contribution is negative, apart (cancelling contributions must
/// not hide a dominant one).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContribSummary {
    /// Units with a positive net contribution.
    pub positive: Side,
    /// Units with a negative net contribution (magnitudes).
    pub negative: Side,
    /// Units that contributed a non-null value.
    pub units: u32,
}

impl ContribSummary {
    /// Summarizes per-unit contributions (NaN: the unit did not contribute).
    fn of(contributions: impl Iterator<Item = f64>, keep: usize) -> ContribSummary {
        let mut s = ContribSummary::default();
        for v in contributions.filter(|v| !v.is_nan()) {
            s.units = s.units.saturating_add(1);
            if v < 0.0 {
                s.negative.add(-v, keep);
            } else {
                s.positive.add(v, keep);
            }
        }
        s
    }

    /// Whether every contribution is zero.
    pub fn is_zero(&self) -> bool {
        self.positive.total == 0.0 && self.negative.total == 0.0
    }

    /// The wire form: unit count, then the positive and the negative side.
    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.units.to_le_bytes());
        self.positive.encode_into(out);
        self.negative.encode_into(out);
    }

    /// Several summaries, as `__erhai_contrib` returns them.
    fn encode_all(all: &[ContribSummary]) -> Vec<u8> {
        let mut out = Vec::with_capacity(all.len() * 60);
        for s in all {
            s.encode_into(&mut out);
        }
        out
    }

    /// Reads one summary at the start of `bytes`; returns it and the bytes it took.
    fn decode_one(bytes: &[u8]) -> Option<(ContribSummary, usize)> {
        let units = u32::from_le_bytes(bytes.get(0..4)?.try_into().ok()?);
        let (positive, a) = Side::decode(bytes.get(4..)?)?;
        let (negative, b) = Side::decode(bytes.get(4 + a..)?)?;
        Some((
            ContribSummary {
                positive,
                negative,
                units,
            },
            4 + a + b,
        ))
    }

    /// Reads exactly `k` summaries; None if the bytes are anything else.
    pub fn decode_all(mut bytes: &[u8], k: usize) -> Option<Vec<ContribSummary>> {
        let mut all = Vec::with_capacity(k);
        for _ in 0..k {
            let (s, used) = Self::decode_one(bytes)?;
            all.push(s);
            bytes = &bytes[used..];
        }
        bytes.is_empty().then_some(all)
    }
}

/// `__erhai_contrib(unit, value_1, …, value_k)` for one dataset's units: each unit's
/// contribution to `k` sums that share a unit column and a filter, in one map.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ContribUdaf {
    key: UnitKey,
    keep: usize,
    k: usize,
    signature: Signature,
}

/// The contribution aggregate over `k` values keyed for one dataset, keeping the `keep` largest.
pub fn contributions(key: UnitKey, keep: usize, k: usize) -> AggregateUDF {
    AggregateUDF::new_from_impl(ContribUdaf {
        key,
        keep: keep.clamp(2, 255),
        k,
        signature: Signature::any(1 + k, Volatility::Immutable),
    })
}

fn contrib_inputs(values: &[ArrayRef], k: usize) -> DfResult<(&ArrayRef, Vec<Float64Array>)> {
    let Some(units) = values.first() else {
        return exec_err!("the contribution aggregate takes a unit and its values");
    };
    if values.len() != 1 + k {
        return exec_err!("the contribution aggregate takes a unit and {k} values");
    }
    let v = values[1..]
        .iter()
        .map(|v| {
            Ok(arrow::compute::cast(v, &DataType::Float64)?
                .as_primitive()
                .clone())
        })
        .collect::<DfResult<Vec<Float64Array>>>()?;
    Ok((units, v))
}

/// Adds row `row` of `v` to `sums` (nulls add nothing).
fn add_row(sums: &mut [f64], v: &[Float64Array], row: usize) {
    for (slot, col) in sums.iter_mut().zip(v) {
        if col.is_valid(row) {
            accumulate(slot, col.value(row));
        }
    }
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
        Ok(binary_state_field(&args, "units"))
    }
    fn accumulator(&self, _: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        Ok(Box::new(ContribAcc {
            key: self.key.clone(),
            keep: self.keep,
            k: self.k,
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
            k: self.k,
            maps: Vec::new(),
        }))
    }
    fn default_value(&self, _: &DataType) -> DfResult<ScalarValue> {
        Ok(ScalarValue::Binary(Some(ContribSummary::encode_all(
            &vec![ContribSummary::default(); self.k],
        ))))
    }
}

#[derive(Debug)]
struct ContribAcc {
    key: UnitKey,
    keep: usize,
    k: usize,
    map: UnitSums,
}

impl Accumulator for ContribAcc {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        let (units, v) = contrib_inputs(values, self.k)?;
        for (row, unit) in unit_indexes(&self.key, units)?.into_iter().enumerate() {
            if let Some(u) = unit {
                add_row(self.map.of(u, self.k), &v, row);
            }
        }
        Ok(())
    }
    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        Ok(ScalarValue::Binary(Some(ContribSummary::encode_all(
            &self.map.summaries(self.k, self.keep),
        ))))
    }
    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.map.size()
    }
    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Binary(Some(self.map.encode(self.k)))])
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        for bytes in binary_state(states)?.iter().flatten() {
            self.map.merge(bytes, self.k)?;
        }
        Ok(())
    }
}

struct ContribGroups {
    key: UnitKey,
    keep: usize,
    k: usize,
    maps: Vec<UnitSums>,
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
        let (units, v) = contrib_inputs(values, self.k)?;
        let indexes = unit_indexes(&self.key, units)?;
        let k = self.k;
        // Neighbouring rows of one unit in one group reuse its slot without a lookup.
        let mut last: Option<(usize, u32, usize)> = None;
        for (row, (&g, unit)) in group_indices.iter().zip(indexes).enumerate() {
            if let Some(u) = unit
                && selected(opt_filter, row)
            {
                let slot = match last {
                    Some((lg, lu, s)) if lg == g && lu == u => s,
                    _ => {
                        let s = self.maps[g].slot(u, k);
                        last = Some((g, u, s));
                        s
                    }
                };
                add_row(&mut self.maps[g].sums[slot * k..(slot + 1) * k], &v, row);
            }
        }
        Ok(())
    }
    fn evaluate(&mut self, emit_to: EmitTo) -> DfResult<ArrayRef> {
        let maps = emit_to.take_needed(&mut self.maps);
        let mut b = BinaryBuilder::with_capacity(maps.len(), maps.len() * 40 * self.k);
        for m in &maps {
            b.append_value(ContribSummary::encode_all(&m.summaries(self.k, self.keep)));
        }
        Ok(Arc::new(b.finish()))
    }
    fn state(&mut self, emit_to: EmitTo) -> DfResult<Vec<ArrayRef>> {
        let maps = emit_to.take_needed(&mut self.maps);
        let mut b = BinaryBuilder::with_capacity(maps.len(), maps.len() * 24);
        for m in &maps {
            b.append_value(m.encode(self.k));
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
                self.maps[g].merge(states.value(row), self.k)?;
            }
        }
        Ok(())
    }
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> DfResult<Vec<ArrayRef>> {
        let (units, v) = contrib_inputs(values, self.k)?;
        let indexes = unit_indexes(&self.key, units)?;
        let mut b = BinaryBuilder::with_capacity(indexes.len(), indexes.len() * (4 + 8 * self.k));
        for (row, unit) in indexes.into_iter().enumerate() {
            let mut m = UnitSums::default();
            if let Some(u) = unit
                && selected(opt_filter, row)
            {
                add_row(m.of(u, self.k), &v, row);
            }
            b.append_value(m.encode(self.k));
        }
        Ok(vec![Arc::new(b.finish())])
    }
    fn size(&self) -> usize {
        self.maps.capacity() * std::mem::size_of::<UnitSums>()
            + self.maps.iter().map(UnitSums::size).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_keep_the_largest_per_value_and_round_trip() {
        // Two values per unit; unit 4 contributed only to the first.
        let mut map = UnitSums::default();
        for (u, a, b) in [
            (1, 5.0, 1.0),
            (2, -30.0, 2.0),
            (3, 10.0, 3.0),
            (1, 0.5, 1.0),
        ] {
            let sums = map.of(u, 2);
            accumulate(&mut sums[0], a);
            accumulate(&mut sums[1], b);
        }
        accumulate(&mut map.of(4, 2)[0], 1.0);
        let s = map.summaries(2, 2);
        assert_eq!(s[0].positive.largest, vec![10.0, 5.5]);
        assert_eq!(s[0].positive.total, 16.5);
        assert_eq!(s[0].negative.largest, vec![30.0]);
        assert_eq!(s[0].negative.total, 30.0);
        assert_eq!(s[0].units, 4);
        assert_eq!(
            (s[1].positive.largest.clone(), s[1].units),
            (vec![3.0, 2.0], 3)
        );
        assert_eq!(
            ContribSummary::decode_all(&ContribSummary::encode_all(&s), 2),
            Some(s.clone())
        );
        assert_eq!(
            ContribSummary::decode_all(&ContribSummary::encode_all(&s), 1),
            None
        );
        assert_eq!(ContribSummary::decode_all(&[1, 2, 3], 1), None);
        // The state merges back to the same sums.
        let mut merged = UnitSums::default();
        merged.merge(&map.encode(2), 2).expect("merge");
        assert_eq!(merged.summaries(2, 2), s);
        assert!(merged.merge(&[0; 5], 2).is_err());
    }
}
