//! The desensitization library as DataFusion scalar functions. Which calls are safe is decided by
//! [`erhai_policies::masks`]; this module only computes them, vectorized over Arrow arrays with
//! one reused buffer per batch (no allocation per row), null-preserving and UTF-8 correct.
//!
//! Parameters must be constants: the plan check compares them with the column's approved masks,
//! and every call re-validates them, so a call the check did not see cannot widen a mask.

mod generalize;
mod text;

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Date32Array, Float64Array, Int32Builder, Int64Array,
    StringBuilder,
};
use arrow::datatypes::{DataType, Date32Type, Float64Type, Int64Type};
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use erhai_policies::MaskArg;
use erhai_policies::masks::{MASKS, MaskSpec};
use ring::hmac;

/// The key of `pseudonym()` for one scope (a scenario): the same value gets the same token
/// within the scope and unrelated tokens across scopes.
#[derive(Clone)]
pub struct PseudonymKey(hmac::Key);

impl PseudonymKey {
    pub(crate) fn new(key: hmac::Key) -> PseudonymKey {
        PseudonymKey(key)
    }
}

impl fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PseudonymKey(<redacted>)")
    }
}

/// What a mask computes, by input and output type.
#[derive(Clone, Copy)]
enum Kernel {
    /// string → string.
    Text(TextMask),
    /// string → boolean (`id_card_valid`).
    Valid,
    /// string → int32 (`id_card_birth_year`).
    BirthYear,
    /// string → 32 hex characters of a keyed HMAC.
    Pseudonym,
    /// date → string band.
    AgeBand,
    /// date → date.
    DateTrunc,
    /// int64 or float64 → the same type.
    Bucket,
}

/// Declares the string → string masks once: their SQL names, their functions, and a dispatch
/// that instantiates the batch loop per function (so each kernel is inlined into its loop).
macro_rules! text_masks {
    ($($variant:ident => $name:literal, $func:path;)*) => {
        #[derive(Clone, Copy, Debug)]
        enum TextMask { $($variant),* }

        fn text_mask(name: &str) -> Option<TextMask> {
            match name {
                $($name => Some(TextMask::$variant),)*
                _ => None,
            }
        }

        fn run_text(t: TextMask, array: &ArrayRef, params: &[MaskArg]) -> Result<ArrayRef> {
            match t {
                $(TextMask::$variant => text_array(array, params, $func),)*
            }
        }
    };
}

text_masks! {
    IdCard => "mask_id_card", text::mask_id_card;
    IdCardRegion => "id_card_region", text::id_card_region;
    IdCardGender => "id_card_gender", text::id_card_gender;
    Phone => "mask_phone", text::mask_phone;
    Name => "mask_name", text::mask_name;
    BankCard => "mask_bank_card", text::mask_bank_card;
    Email => "mask_email", text::mask_email;
    Address => "mask_address", text::mask_address;
    Plate => "mask_plate", text::mask_plate;
    Ip => "mask_ip", text::mask_ip;
    KeepFirstNLastM => "keep_first_n_last_m", text::keep_first_n_last_m;
    KeepFromXToY => "keep_from_x_to_y", text::keep_from_x_to_y;
    MaskFirstNLastM => "mask_first_n_last_m", text::mask_first_n_last_m;
    MaskFromXToY => "mask_from_x_to_y", text::mask_from_x_to_y;
    MaskBeforeChar => "mask_before_char", text::mask_before_char;
    MaskAfterChar => "mask_after_char", text::mask_after_char;
}

fn kernel(name: &str) -> Option<Kernel> {
    if let Some(t) = text_mask(name) {
        return Some(Kernel::Text(t));
    }
    Some(match name {
        "id_card_valid" => Kernel::Valid,
        "id_card_birth_year" => Kernel::BirthYear,
        "pseudonym" => Kernel::Pseudonym,
        "age_band" => Kernel::AgeBand,
        "date_trunc_to" => Kernel::DateTrunc,
        "bucket" => Kernel::Bucket,
        _ => return None,
    })
}

/// One batch through a string mask: one output buffer sized up front, one reused scratch string.
fn text_array(
    array: &ArrayRef,
    params: &[MaskArg],
    f: impl Fn(&str, &[MaskArg], &mut String) -> bool,
) -> Result<ArrayRef> {
    let bytes = match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>().values().len(),
        DataType::LargeUtf8 => array.as_string::<i64>().values().len(),
        _ => array.len() * 16,
    };
    let mut b = StringBuilder::with_capacity(array.len(), bytes + array.len());
    let mut buf = String::with_capacity(64);
    each_str(array, |v| match v {
        Some(s) => {
            buf.clear();
            if f(s, params, &mut buf) {
                b.append_value(&buf);
            } else {
                b.append_null();
            }
        }
        None => b.append_null(),
    })?;
    Ok(Arc::new(b.finish()))
}

/// One mask function as a scalar UDF.
pub struct MaskUdf {
    spec: &'static MaskSpec,
    kernel: Kernel,
    signature: Signature,
    pseudonym: PseudonymKey,
}

impl fmt::Debug for MaskUdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MaskUdf({})", self.spec.name)
    }
}

// One session holds one instance per name, so the name identifies it.
impl PartialEq for MaskUdf {
    fn eq(&self, other: &Self) -> bool {
        self.spec.name == other.spec.name
    }
}

impl Eq for MaskUdf {}

impl Hash for MaskUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.spec.name.hash(state);
    }
}

/// Every mask function, with `pseudonym` keyed for this session's scope.
pub fn mask_functions(pseudonym: &PseudonymKey) -> Vec<Arc<ScalarUDF>> {
    MASKS
        .iter()
        .filter_map(|spec| {
            Some(Arc::new(ScalarUDF::new_from_impl(MaskUdf {
                spec,
                kernel: kernel(spec.name)?,
                signature: Signature::user_defined(Volatility::Immutable),
                pseudonym: pseudonym.clone(),
            })))
        })
        .collect()
}

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// A constant mask parameter: a word or an integer; anything else is not a parameter. The plan
/// check (reading literals) and the function (reading its scalar arguments) both use this.
pub fn mask_arg(v: &ScalarValue) -> Option<MaskArg> {
    match v {
        ScalarValue::Utf8(Some(t))
        | ScalarValue::LargeUtf8(Some(t))
        | ScalarValue::Utf8View(Some(t)) => Some(MaskArg::Text(t.clone())),
        v if v.data_type().is_integer() => match v.cast_to(&DataType::Int64) {
            Ok(ScalarValue::Int64(Some(i))) => Some(MaskArg::Int(i)),
            _ => None,
        },
        _ => None,
    }
}

impl MaskUdf {
    fn param(&self, i: usize, v: &ColumnarValue) -> Result<MaskArg> {
        match v {
            ColumnarValue::Scalar(s) => mask_arg(s),
            ColumnarValue::Array(_) => None,
        }
        .ok_or_else(|| {
            datafusion::error::DataFusionError::Plan(format!(
                "{}() parameter {} must be a constant integer or word",
                self.spec.name,
                i + 1
            ))
        })
    }
}

impl ScalarUDFImpl for MaskUdf {
    fn name(&self) -> &str {
        self.spec.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let Some((value, params)) = arg_types.split_first() else {
            return plan_err!("{}() needs a value to mask", self.spec.name);
        };
        self.spec
            .check_arity(params.len())
            .map_err(|e| datafusion::error::DataFusionError::Plan(e.to_string()))?;
        let value = input_type(self.kernel, value)?;
        let mut out = vec![value];
        for p in params {
            out.push(if p.is_integer() {
                DataType::Int64
            } else {
                p.clone()
            });
        }
        Ok(out)
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.kernel {
            Kernel::Valid => DataType::Boolean,
            Kernel::BirthYear => DataType::Int32,
            Kernel::DateTrunc => DataType::Date32,
            Kernel::Bucket => arg_types.first().cloned().unwrap_or(DataType::Int64),
            Kernel::Text(_) | Kernel::Pseudonym | Kernel::AgeBand => DataType::Utf8,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let Some((value, params)) = args.args.split_first() else {
            return plan_err!("{}() needs a value to mask", self.spec.name);
        };
        let params = params
            .iter()
            .enumerate()
            .map(|(i, p)| self.param(i, p))
            .collect::<Result<Vec<_>>>()?;
        let params = self
            .spec
            .resolve(&params)
            .map_err(|e| datafusion::error::DataFusionError::Plan(e.to_string()))?;
        let array = value.to_array(args.number_rows)?;
        compute(self.kernel, &params, &array, &self.pseudonym).map(ColumnarValue::Array)
    }
}

/// Applies mask `name` with `args` (as a policy or query states them) to `array` outside SQL:
/// the development sample uses this.
pub fn apply_mask(
    name: &str,
    args: &[MaskArg],
    array: &ArrayRef,
    pseudonym: &PseudonymKey,
) -> Result<ArrayRef> {
    let (Some(spec), Some(kernel)) = (erhai_policies::masks::lookup(name), kernel(name)) else {
        return plan_err!("no mask function {name}");
    };
    let params = spec
        .resolve(args)
        .map_err(|e| datafusion::error::DataFusionError::Plan(e.to_string()))?;
    let target = input_type(kernel, array.data_type())?;
    let array = if array.data_type() == &target {
        array.clone()
    } else {
        arrow::compute::cast(array, &target)?
    };
    compute(kernel, &params, &array, pseudonym)
}

/// The type a mask's value is coerced to.
fn input_type(kernel: Kernel, value: &DataType) -> Result<DataType> {
    Ok(match kernel {
        Kernel::AgeBand | Kernel::DateTrunc => DataType::Date32,
        Kernel::Bucket if value.is_integer() || value.is_null() => DataType::Int64,
        Kernel::Bucket if value.is_numeric() => DataType::Float64,
        Kernel::Bucket => {
            return plan_err!("bucket() needs a number, found {value}");
        }
        _ if is_string(value) => value.clone(),
        _ => DataType::Utf8,
    })
}

fn compute(
    kernel: Kernel,
    params: &[MaskArg],
    array: &ArrayRef,
    pseudonym: &PseudonymKey,
) -> Result<ArrayRef> {
    let out: ArrayRef = match kernel {
        Kernel::Text(t) => run_text(t, array, params)?,
        Kernel::Pseudonym => {
            let mut b = StringBuilder::with_capacity(array.len(), array.len() * 32);
            let mut buf = String::with_capacity(32);
            each_str(array, |v| match v {
                Some(s) => {
                    buf.clear();
                    let tag = hmac::sign(&pseudonym.0, s.as_bytes());
                    push_hex(&tag.as_ref()[..16], &mut buf);
                    b.append_value(&buf);
                }
                None => b.append_null(),
            })?;
            Arc::new(b.finish())
        }
        Kernel::Valid => {
            let mut b = BooleanBuilder::with_capacity(array.len());
            each_str(array, |v| b.append_option(v.and_then(text::id_card_valid)))?;
            Arc::new(b.finish())
        }
        Kernel::BirthYear => {
            let mut b = Int32Builder::with_capacity(array.len());
            each_str(array, |v| {
                b.append_option(v.and_then(text::id_card_birth_year))
            })?;
            Arc::new(b.finish())
        }
        Kernel::AgeBand => {
            let width = int_param(params);
            let Some(today) = generalize::today() else {
                return exec_err!("the system clock is before 1970");
            };
            let dates = array.as_primitive_opt::<Date32Type>().ok_or_else(|| {
                datafusion::error::DataFusionError::Plan("age_band() needs a date".into())
            })?;
            let mut b = StringBuilder::with_capacity(dates.len(), dates.len() * 5);
            let mut buf = String::with_capacity(8);
            for v in dates.iter() {
                buf.clear();
                match v {
                    Some(d) if generalize::age_band(d, today, width, &mut buf) => {
                        b.append_value(&buf)
                    }
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        Kernel::DateTrunc => {
            let unit = match params.first() {
                Some(MaskArg::Text(u)) => u.as_str(),
                _ => "month",
            };
            let dates = array.as_primitive_opt::<Date32Type>().ok_or_else(|| {
                datafusion::error::DataFusionError::Plan("date_trunc_to() needs a date".into())
            })?;
            Arc::new(
                dates
                    .iter()
                    .map(|v| v.and_then(|d| generalize::date_trunc_to(d, unit)))
                    .collect::<Date32Array>(),
            )
        }
        Kernel::Bucket => {
            let width = int_param(params);
            if let Some(ints) = array.as_primitive_opt::<Int64Type>() {
                Arc::new(
                    ints.iter()
                        .map(|v| v.and_then(|v| generalize::bucket_int(v, width)))
                        .collect::<Int64Array>(),
                )
            } else if let Some(floats) = array.as_primitive_opt::<Float64Type>() {
                Arc::new(
                    floats
                        .iter()
                        .map(|v| v.and_then(|v| generalize::bucket_float(v, width)))
                        .collect::<Float64Array>(),
                )
            } else {
                return plan_err!("bucket() needs a number, found {}", array.data_type());
            }
        }
    };
    Ok(out)
}

fn int_param(params: &[MaskArg]) -> i64 {
    match params.first() {
        Some(MaskArg::Int(w)) => *w,
        _ => 0,
    }
}

/// Calls `f` with every value of a string array of any of Arrow's string layouts.
fn each_str(array: &ArrayRef, mut f: impl FnMut(Option<&str>)) -> Result<()> {
    match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>().iter().for_each(&mut f),
        DataType::LargeUtf8 => array.as_string::<i64>().iter().for_each(&mut f),
        DataType::Utf8View => array.as_string_view().iter().for_each(&mut f),
        other => return exec_err!("a mask needs a string, found {other}"),
    }
    Ok(())
}

fn push_hex(bytes: &[u8], out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
}
