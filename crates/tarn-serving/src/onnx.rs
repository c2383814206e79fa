//! The in-process runtime: an ONNX model (tarn's built-in trainers, `mlflow.onnx.log_model`,
//! skl2onnx exports) run by `tarn-onnx`. Checks a request against the model's inputs before
//! inference (a missing column or a value of the wrong type is a 400 naming the column),
//! joins the feeds of several requests into one batch and splits the answers again.

use crate::error::ServingError;
use crate::input::Frame;
use serde_json::{Map, Value as Json};
use tarn_onnx::{Keys, Model, Value};

/// A loaded ONNX model.
pub struct OnnxModel {
    pub model: Model,
}

/// The feeds of one request: one tensor per model input, and the row count.
pub struct Feeds {
    pub values: Vec<Value>,
    pub rows: usize,
}

fn type_name(elem: i64) -> &'static str {
    match elem {
        1 => "float32",
        11 => "float64",
        7 => "int64",
        6 => "int32",
        8 => "string",
        9 => "bool",
        _ => "tensor",
    }
}

fn bad(m: String) -> ServingError {
    ServingError::BadRequest(m)
}

fn number(v: &Json, column: &str, row: usize) -> Result<f32, ServingError> {
    match v {
        Json::Number(n) => Ok(n.as_f64().unwrap_or(f64::NAN) as f32),
        Json::Null => Ok(f32::NAN),
        Json::Bool(b) => Ok(if *b { 1.0 } else { 0.0 }),
        Json::String(s) if s.eq_ignore_ascii_case("nan") => Ok(f32::NAN),
        other => Err(bad(format!(
            "column `{column}` must hold numbers; row {row} holds {other}"
        ))),
    }
}

fn integer(v: &Json, column: &str, row: usize) -> Result<i64, ServingError> {
    match v {
        Json::Number(n) if n.as_i64().is_some() => Ok(n.as_i64().unwrap_or(0)),
        Json::Number(n) if n.as_f64().is_some_and(|f| f.fract() == 0.0) => {
            Ok(n.as_f64().unwrap_or(0.0) as i64)
        }
        Json::Bool(b) => Ok(i64::from(*b)),
        other => Err(bad(format!(
            "column `{column}` must hold whole numbers (int64); row {row} holds {other}"
        ))),
    }
}

fn text(v: &Json, column: &str, row: usize) -> Result<String, ServingError> {
    match v {
        Json::String(s) => Ok(s.clone()),
        other => Err(bad(format!(
            "column `{column}` must hold text; row {row} holds {other}"
        ))),
    }
}

/// The values of a column (scalars, or rows of `width` values) as a tensor of `elem`.
fn tensor(
    col: &[Json],
    column: &str,
    elem: i64,
    shape: Vec<usize>,
    width: usize,
) -> Result<Value, ServingError> {
    let cells: Vec<(usize, &Json)> = if width == 1 {
        col.iter()
            .enumerate()
            .map(|(r, v)| match v {
                Json::Array(a) if a.len() == 1 => (r, &a[0]),
                v => (r, v),
            })
            .collect()
    } else {
        let mut out = Vec::with_capacity(col.len() * width);
        for (r, v) in col.iter().enumerate() {
            match v {
                Json::Array(a) if a.len() == width => out.extend(a.iter().map(|x| (r, x))),
                other => {
                    return Err(bad(format!(
                        "column `{column}` takes {width} values per row; row {r} holds {other}"
                    )))
                }
            }
        }
        out
    };
    Ok(match elem {
        8 => Value::Str(
            shape,
            cells
                .iter()
                .map(|(r, v)| text(v, column, *r))
                .collect::<Result<_, _>>()?,
        ),
        6 | 7 => Value::I64(
            shape,
            cells
                .iter()
                .map(|(r, v)| integer(v, column, *r))
                .collect::<Result<_, _>>()?,
        ),
        _ => Value::F32(
            shape,
            cells
                .iter()
                .map(|(r, v)| number(v, column, *r))
                .collect::<Result<_, _>>()?,
        ),
    })
}

impl OnnxModel {
    /// The input schema for the OpenAPI description and errors: `(name, type, width)`.
    pub fn schema(&self) -> Vec<(String, &'static str, Option<usize>)> {
        self.model
            .inputs()
            .iter()
            .map(|i| {
                let width = match i.dims.as_slice() {
                    [_] => Some(1),
                    [_, Some(w)] => Some(*w as usize),
                    _ => None,
                };
                (i.name.clone(), type_name(i.elem_type), width)
            })
            .collect()
    }

    /// Checks a request against the model's inputs and makes its feeds.
    pub fn feeds(&self, frame: &Frame) -> Result<Feeds, ServingError> {
        let n = frame.rows;
        let inputs = self.model.inputs();
        let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
        // One matrix input fed from all the columns in order.
        if let [only] = inputs {
            let width = match only.dims.as_slice() {
                [_, Some(w)] => Some(*w as usize),
                [_, None] => None,
                _ => Some(1),
            };
            let named = frame.column(&only.name).is_some();
            if !named && width != Some(1) {
                if let Some(w) = width {
                    if frame.columns.len() != w {
                        return Err(bad(format!(
                            "the model takes one input `{}` of {w} columns; the request has {} columns",
                            only.name,
                            frame.columns.len()
                        )));
                    }
                }
                let w = frame.columns.len();
                let mut data = Vec::with_capacity(n * w);
                for r in 0..n {
                    for (c, col) in frame.columns.iter().enumerate() {
                        let name = frame
                            .names
                            .as_ref()
                            .map(|ns| ns[c].clone())
                            .unwrap_or_else(|| c.to_string());
                        data.push(number(&col[r], &name, r)?);
                    }
                }
                let v = match only.elem_type {
                    6 | 7 => Value::I64(vec![n, w], data.iter().map(|x| *x as i64).collect()),
                    _ => Value::F32(vec![n, w], data),
                };
                return Ok(Feeds {
                    values: vec![v],
                    rows: n,
                });
            }
        }
        if frame.names.is_none() && frame.columns.len() != inputs.len() {
            return Err(bad(format!(
                "the rows have {} values but the model takes {} named inputs ({}); send them by name (dataframe_split with columns, or records)",
                frame.columns.len(),
                inputs.len(),
                names.join(", ")
            )));
        }
        let mut values = Vec::with_capacity(inputs.len());
        for (k, i) in inputs.iter().enumerate() {
            let col = match &frame.names {
                Some(_) => frame.column(&i.name).ok_or_else(|| {
                    bad(format!(
                        "the request has no column `{}` ({}), which the model needs; its inputs are: {}",
                        i.name,
                        type_name(i.elem_type),
                        names.join(", ")
                    ))
                })?,
                None => frame.columns[k].as_slice(),
            };
            let (shape, width) = match i.dims.as_slice() {
                [_] => (vec![n], 1),
                [_, Some(w)] => (vec![n, *w as usize], *w as usize),
                [_, None] => {
                    let w = match col.first() {
                        Some(Json::Array(a)) => a.len(),
                        _ => 1,
                    };
                    (vec![n, w], w)
                }
                _ => (vec![n], 1),
            };
            values.push(tensor(col, &i.name, i.elem_type, shape, width)?);
        }
        Ok(Feeds { values, rows: n })
    }

    /// Runs one batch (several requests' feeds joined) and answers each request's outputs.
    pub fn run(&self, batch: &[&Feeds]) -> Result<Vec<Vec<Value>>, ServingError> {
        let inputs = self.model.inputs();
        let mut feeds = std::collections::HashMap::with_capacity(inputs.len());
        for (k, i) in inputs.iter().enumerate() {
            let parts: Vec<&Value> = batch.iter().map(|f| &f.values[k]).collect();
            feeds.insert(i.name.clone(), join_rows(&parts));
        }
        let out = self.model.run(feeds).map_err(|e| {
            ServingError::BadRequest(format!("the model could not score the input: {e}"))
        })?;
        let mut answers = Vec::with_capacity(batch.len());
        let mut start = 0;
        for f in batch {
            answers.push(out.iter().map(|v| rows_of(v, start, f.rows)).collect());
            start += f.rows;
        }
        Ok(answers)
    }

    pub fn output_names(&self) -> Vec<String> {
        self.model
            .outputs()
            .iter()
            .map(|o| o.name.clone())
            .collect()
    }
}

/// Joins tensors along their first axis.
fn join_rows(parts: &[&Value]) -> Value {
    if parts.len() == 1 {
        return parts[0].clone();
    }
    let rows: usize = parts
        .iter()
        .map(|p| p.shape().first().copied().unwrap_or(0))
        .sum();
    let mut shape = parts[0].shape().to_vec();
    if let Some(first) = shape.first_mut() {
        *first = rows;
    }
    match parts[0] {
        Value::F32(..) => Value::F32(
            shape,
            parts
                .iter()
                .flat_map(|p| match p {
                    Value::F32(_, d) => d.as_slice(),
                    _ => &[],
                })
                .copied()
                .collect(),
        ),
        Value::I64(..) => Value::I64(
            shape,
            parts
                .iter()
                .flat_map(|p| match p {
                    Value::I64(_, d) => d.as_slice(),
                    _ => &[],
                })
                .copied()
                .collect(),
        ),
        _ => Value::Str(
            shape,
            parts
                .iter()
                .flat_map(|p| match p {
                    Value::Str(_, d) => d.as_slice(),
                    _ => &[],
                })
                .cloned()
                .collect(),
        ),
    }
}

/// Rows `start..start + n` of a tensor (or of ZipMap's maps).
fn rows_of(v: &Value, start: usize, n: usize) -> Value {
    let shape = v.shape();
    let width: usize = shape.iter().skip(1).product::<usize>().max(1);
    let mut s = shape.to_vec();
    if let Some(first) = s.first_mut() {
        *first = n;
    }
    let range = start * width..(start + n) * width;
    match v {
        Value::F32(_, d) => Value::F32(s, d[range].to_vec()),
        Value::I64(_, d) => Value::I64(s, d[range].to_vec()),
        Value::Str(_, d) => Value::Str(s, d[range].to_vec()),
        Value::Maps(_, keys, d) => {
            let k = match keys {
                Keys::Ints(x) => x.len(),
                Keys::Strs(x) => x.len(),
            };
            Value::Maps(s, keys.clone(), d[start * k..(start + n) * k].to_vec())
        }
    }
}

fn num(x: f32) -> Json {
    serde_json::Number::from_f64(x as f64)
        .map(Json::Number)
        .unwrap_or(Json::Null)
}

/// Row `r` of an output as JSON: a scalar for one value per row, a list for several, an
/// object for ZipMap's maps.
pub fn cell(v: &Value, r: usize) -> Json {
    let width: usize = v.shape().iter().skip(1).product::<usize>().max(1);
    let one = v.shape().len() <= 1 || width == 1;
    match v {
        Value::F32(_, d) if one => num(d[r]),
        Value::F32(_, d) => Json::Array(
            d[r * width..(r + 1) * width]
                .iter()
                .map(|x| num(*x))
                .collect(),
        ),
        Value::I64(_, d) if one => Json::from(d[r]),
        Value::I64(_, d) => Json::from(d[r * width..(r + 1) * width].to_vec()),
        Value::Str(_, d) if one => Json::from(d[r].clone()),
        Value::Str(_, d) => Json::from(d[r * width..(r + 1) * width].to_vec()),
        Value::Maps(_, keys, d) => {
            let mut m = Map::new();
            match keys {
                Keys::Ints(k) => {
                    for (c, key) in k.iter().enumerate() {
                        m.insert(key.to_string(), num(d[r * k.len() + c]));
                    }
                }
                Keys::Strs(k) => {
                    for (c, key) in k.iter().enumerate() {
                        m.insert(key.clone(), num(d[r * k.len() + c]));
                    }
                }
            }
            Json::Object(m)
        }
    }
}

/// The whole of an output as MLflow answers tensors: one entry per row, rows of one value
/// kept as one-element lists.
pub fn column(v: &Value, rows: usize) -> Json {
    let keep_rows = v.shape().len() == 2;
    Json::Array(
        (0..rows)
            .map(|r| {
                let c = cell(v, r);
                if keep_rows && !c.is_array() && !c.is_object() {
                    Json::Array(vec![c])
                } else {
                    c
                }
            })
            .collect(),
    )
}
