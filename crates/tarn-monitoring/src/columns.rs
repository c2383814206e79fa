//! A field's values in one batch of serving or baseline rows, read as the field's type says,
//! and a side (a window or the baseline) profiled from them: each profiled field's distinct
//! values with their counts, the missing values of fields that are not profiled, and the
//! summed embeddings of tensor fields.

use crate::embedding::Embedding;
use crate::error::MonitorError;
use crate::profile::{Profile, Value};
use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Float64Type, TimeUnit, TimestampMicrosecondType};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tarn_config::{Field, FieldType, MonitorSpec};

/// The profile of every field of one side (a window or the baseline). Each missing value is
/// counted once: by the field's profile, or for a field that is not profiled in `nulls`, and
/// for a tensor also as its embedding's misfit vectors.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Side {
    pub(crate) rows: u64,
    pub(crate) fields: BTreeMap<String, Profile>,
    /// Null values of fields that are not profiled (datetime, text, tensor).
    #[serde(default)]
    pub(crate) nulls: BTreeMap<String, u64>,
    /// The summed embeddings of tensor fields.
    #[serde(default)]
    pub(crate) embeddings: BTreeMap<String, Embedding>,
}

impl Side {
    /// Adds `rows` of a batch: each field's values from its column (`columns[i]` holds
    /// `fields[i]`).
    pub(crate) fn add(&mut self, fields: &[&Field], columns: &[Column], rows: &[usize]) {
        self.rows += rows.len() as u64;
        for (f, c) in fields.iter().zip(columns) {
            match c {
                Column::Unprofiled(_) | Column::Tensor { .. } => self.tally(&f.name, c, rows),
                _ => c.count_into(
                    self.fields
                        .entry(f.name.clone())
                        .or_insert_with(|| Profile::new(c.integer_typed())),
                    rows,
                ),
            }
        }
    }

    /// The missing values of one field: nulls, and the vectors a tensor field left out.
    pub(crate) fn missing(&self, name: &str) -> u64 {
        match self.fields.get(name) {
            Some(p) => p.missing(),
            None => {
                self.nulls.get(name).copied().unwrap_or(0)
                    + self.embeddings.get(name).map_or(0, |e| e.misfit)
            }
        }
    }

    /// Adds `rows` of a column that is not profiled: its nulls, and a tensor's vectors into
    /// its embedding sum.
    fn tally(&mut self, name: &str, c: &Column, rows: &[usize]) {
        let nulls = match c {
            Column::Unprofiled(a) => rows.iter().filter(|&&r| a.is_null(r)).count() as u64,
            Column::Tensor { list, dimensions } => {
                let e = self.embeddings.entry(name.to_string()).or_default();
                let mut nulls = 0;
                for &r in rows {
                    if list.is_null(r) {
                        nulls += 1;
                        continue;
                    }
                    let v = list.value(r);
                    e.add(*dimensions, v.as_primitive::<Float64Type>().iter());
                }
                nulls
            }
            _ => return,
        };
        *self.nulls.entry(name.to_string()).or_default() += nulls;
    }
}

/// One field's values in a batch, read as its type says.
pub(crate) enum Column {
    Number {
        values: arrow::array::PrimitiveArray<Float64Type>,
        integer: bool,
    },
    Label(LabelArray),
    /// An embedding: a list of numbers per row, of `dimensions` numbers when it fits.
    Tensor {
        list: arrow::array::ListArray,
        dimensions: usize,
    },
    Unprofiled(ArrayRef),
}

pub(crate) enum LabelArray {
    Number(arrow::array::PrimitiveArray<Float64Type>),
    Bool(arrow::array::BooleanArray),
    Text(arrow::array::StringArray),
}

impl Column {
    pub(crate) fn of(spec: &MonitorSpec, f: &Field, a: &ArrayRef) -> Result<Column, MonitorError> {
        let dt = a.data_type();
        let misfit = |why: String| MonitorError::Spec {
            path: spec.path.display().to_string(),
            message: format!(
                "field `{}` is declared {} but {why}",
                f.name,
                f.field_type.name()
            ),
        };
        match &f.field_type {
            FieldType::Numeric => {
                if !(dt.is_numeric() || *dt == DataType::Boolean || *dt == DataType::Null) {
                    return Err(misfit(format!(
                        "its column holds {dt}; declare it categorical or string, or cast it in `sql:`"
                    )));
                }
                let values = arrow::compute::cast(a, &DataType::Float64)?;
                Ok(Column::Number {
                    values: values.as_primitive::<Float64Type>().clone(),
                    integer: dt.is_integer(),
                })
            }
            t if t.is_label() => Ok(Column::Label(match dt {
                DataType::Boolean => LabelArray::Bool(a.as_boolean().clone()),
                d if d.is_numeric() => LabelArray::Number(
                    arrow::compute::cast(a, &DataType::Float64)?
                        .as_primitive::<Float64Type>()
                        .clone(),
                ),
                _ => LabelArray::Text(
                    arrow::compute::cast(a, &DataType::Utf8)
                        .map_err(|e| misfit(format!("its column cannot be read as text: {e}")))?
                        .as_string::<i32>()
                        .clone(),
                ),
            })),
            FieldType::Tensor { dimensions } => {
                let item = DataType::List(Arc::new(arrow::datatypes::Field::new(
                    "item",
                    DataType::Float64,
                    true,
                )));
                let fits = matches!(
                    dt,
                    DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..)
                ) || *dt == DataType::Null;
                let list = fits
                    .then(|| arrow::compute::cast(a, &item).ok())
                    .flatten()
                    .ok_or_else(|| {
                        misfit(format!(
                            "its column holds {dt}; a tensor field reads a list of numbers per row (an inference table's array<double> column, or `sql:` building one)"
                        ))
                    })?;
                Ok(Column::Tensor {
                    list: list.as_list::<i32>().clone(),
                    dimensions: dimensions.iter().product(),
                })
            }
            _ => Ok(Column::Unprofiled(a.clone())),
        }
    }

    fn integer_typed(&self) -> bool {
        matches!(self, Column::Number { integer: true, .. })
    }

    /// Counts the values of `rows` into `profile`, through one hash per call.
    fn count_into(&self, profile: &mut Profile, rows: &[usize]) {
        fn numbers(
            a: &arrow::array::PrimitiveArray<Float64Type>,
            rows: &[usize],
            profile: &mut Profile,
        ) {
            let mut counts: HashMap<u64, u64> = HashMap::new();
            let mut missing = 0;
            for &r in rows {
                if a.is_null(r) {
                    missing += 1;
                } else {
                    let x = a.value(r);
                    let x = if x == 0.0 { 0.0 } else { x };
                    *counts.entry(x.to_bits()).or_default() += 1;
                }
            }
            profile.add_n(None, missing);
            for (bits, n) in counts {
                profile.add_n(Some(Value::Number(f64::from_bits(bits))), n);
            }
        }
        match self {
            Column::Number { values, .. } | Column::Label(LabelArray::Number(values)) => {
                numbers(values, rows, profile)
            }
            Column::Label(LabelArray::Bool(a)) => {
                let (mut t, mut f, mut missing) = (0, 0, 0);
                for &r in rows {
                    match (a.is_null(r), a.is_null(r) || a.value(r)) {
                        (true, _) => missing += 1,
                        (false, true) => t += 1,
                        (false, false) => f += 1,
                    }
                }
                profile.add_n(None, missing);
                profile.add_n(Some(Value::Number(1.0)), t);
                profile.add_n(Some(Value::Number(0.0)), f);
            }
            Column::Label(LabelArray::Text(a)) => {
                let mut counts: HashMap<&str, u64> = HashMap::new();
                let mut missing = 0;
                for &r in rows {
                    if a.is_null(r) {
                        missing += 1;
                    } else {
                        *counts.entry(a.value(r)).or_default() += 1;
                    }
                }
                profile.add_n(None, missing);
                for (s, n) in counts {
                    profile.add_n(Some(Value::Text(s.to_string())), n);
                }
            }
            Column::Tensor { .. } | Column::Unprofiled(_) => {}
        }
    }

    pub(crate) fn value(&self, row: usize) -> Option<Value> {
        match self {
            Column::Number { values, .. } => {
                (!values.is_null(row)).then(|| Value::Number(values.value(row)))
            }
            Column::Label(LabelArray::Number(a)) => {
                (!a.is_null(row)).then(|| Value::Number(a.value(row)))
            }
            Column::Label(LabelArray::Bool(a)) => {
                (!a.is_null(row)).then(|| Value::Number(if a.value(row) { 1.0 } else { 0.0 }))
            }
            Column::Label(LabelArray::Text(a)) => {
                (!a.is_null(row)).then(|| Value::Text(a.value(row).to_string()))
            }
            Column::Tensor { list: a, .. } => (!a.is_null(row)).then_some(Value::Number(0.0)),
            Column::Unprofiled(a) => (!a.is_null(row)).then_some(Value::Number(0.0)),
        }
    }
}

/// The serving data's timestamp column as microseconds since the epoch, or why it cannot be
/// read as times.
pub(crate) fn timestamps(
    spec: &MonitorSpec,
    a: &ArrayRef,
) -> Result<arrow::array::PrimitiveArray<TimestampMicrosecondType>, MonitorError> {
    let misfit = |why: String| MonitorError::Spec {
        path: spec.path.display().to_string(),
        message: format!("timestamp column `{}` {why}", spec.serving.timestamp_column),
    };
    let target = DataType::Timestamp(TimeUnit::Microsecond, None);
    let cast = match a.data_type() {
        // A zoned time is read as UTC.
        DataType::Timestamp(_, Some(_)) => arrow::compute::cast(
            a,
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        )
        .and_then(|utc| arrow::compute::cast(&utc, &DataType::Int64))
        .and_then(|i| arrow::compute::cast(&i, &target))?,
        DataType::Timestamp(_, None)
        | DataType::Date32
        | DataType::Date64
        | DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View => arrow::compute::cast(a, &target)
            .map_err(|e| misfit(format!("cannot be read as a time: {e}")))?,
        other => {
            return Err(misfit(format!(
                "is {other}, not a timestamp; cast it in the serving query"
            )))
        }
    };
    Ok(cast.as_primitive::<TimestampMicrosecondType>().clone())
}
