//! The typed columns of an inference table: one column per input field and per output of
//! the rows a batch logs, beside the fixed columns and the JSON text of each row.
//!
//! Input fields come in name order, then outputs. Names: an input field keeps its name (`input_NAME` when it would collide with a fixed
//! column); a named output keeps its name (`output_NAME` on a collision); an unnamed output
//! (a model answering plain values) is `predicted`; an output of one value per class
//! (probabilities) gets a column per class, `NAME_CLASS`, the classes taken from a map's keys,
//! from the model's `metadata.tarn_classes`, or else numbered from 0. Characters Delta does
//! not allow in a name (` ,;{}()\n\t=`) become `_`.
//!
//! Types: the model's signature when it types the field (`double`, `float`, `long`,
//! `integer`, `boolean`, `string`, tensors by their dtype), else what the values are (numbers
//! as `double`, booleans, strings, lists of numbers as `array<double>`, anything else as its
//! JSON text). A column the table already has keeps its type; a value that does not fit is
//! null in the typed column and stays whole in the JSON column. At most
//! [`crate::log::LogOptions::max_columns`] typed columns per batch: fields past it are kept in
//! the JSON text only.

use crate::log::Record;
use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, ListBuilder, StringBuilder,
};
use arrow::datatypes::{DataType, Field};
use serde_json::Value as Json;
use std::collections::HashMap;
use std::sync::Arc;

/// The fixed columns of every inference table (see [`crate::log::schema`]).
pub const FIXED: [&str; 9] = [
    "request_id",
    "row",
    "timestamp",
    "endpoint",
    "model",
    "model_version",
    "features",
    "prediction",
    "latency_ms",
];

/// What a model version's signature says of its fields, for the typed columns.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Hints {
    /// Input (and output) field name -> its column type.
    pub types: HashMap<String, DataType>,
    /// The class labels of a classifier, in the order of its probability outputs.
    pub classes: Vec<String>,
    /// The input names the signature declares: when there are any, only those get typed
    /// columns (a request's other keys, which the model ignores, stay in the JSON text).
    pub inputs: std::collections::HashSet<String>,
}

impl Hints {
    /// Reads the hints from a version's parsed `MLmodel`.
    pub fn of_mlmodel(mlmodel: &Json) -> Hints {
        let mut types = HashMap::new();
        let mut inputs = std::collections::HashSet::new();
        for side in ["inputs", "outputs"] {
            let specs = mlmodel
                .pointer(&format!("/signature/{side}"))
                .and_then(Json::as_str)
                .and_then(|s| serde_json::from_str::<Json>(s).ok());
            for spec in specs
                .as_ref()
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
            {
                let Some(name) = spec.get("name").and_then(Json::as_str) else {
                    continue;
                };
                if side == "inputs" {
                    inputs.insert(name.to_string());
                }
                if let Some(t) = signature_type(spec) {
                    types.insert(name.to_string(), t);
                }
            }
        }
        let classes = match mlmodel.pointer("/metadata/tarn_classes") {
            Some(Json::Array(a)) => a.iter().map(text_of).collect(),
            Some(Json::String(s)) => serde_json::from_str::<Vec<Json>>(s)
                .map(|a| a.iter().map(text_of).collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        Hints {
            types,
            classes,
            inputs,
        }
    }
}

fn text_of(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The column type of one signature entry (column-based or tensor-based).
fn signature_type(spec: &Json) -> Option<DataType> {
    let (name, scalar) = match spec.get("type").and_then(Json::as_str)? {
        "tensor" => {
            let t = spec.get("tensor-spec")?;
            let width: i64 = t
                .get("shape")
                .and_then(Json::as_array)
                .map(|s| s.iter().skip(1).filter_map(Json::as_i64).product())
                .unwrap_or(1);
            (t.get("dtype").and_then(Json::as_str)?, width <= 1)
        }
        other => (other, true),
    };
    if !scalar {
        return None;
    }
    Some(match name {
        "double" | "float" | "float32" | "float64" | "float16" => DataType::Float64,
        "long" | "integer" | "int" | "int8" | "int16" | "int32" | "int64" | "uint8" | "uint16"
        | "uint32" => DataType::Int64,
        "boolean" | "bool" => DataType::Boolean,
        "string" | "str" | "object" => DataType::Utf8,
        _ => return None,
    })
}

/// Where a typed column's value is found in a record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Source {
    /// `features[key]` (or `features[i]` for an unnamed matrix).
    Input(String),
    InputAt(usize),
    /// `prediction[key]`, or the whole prediction when it is not an object.
    Output(String),
    Whole,
    /// `prediction[key][i]` or `prediction[key][class]`.
    OutputAt(String, usize),
    OutputKey(String, String),
}

impl Source {
    fn get<'a>(&self, r: &'a Record) -> Option<&'a Json> {
        let v = match self {
            Source::Input(k) => r.features.get(k),
            Source::InputAt(i) => r.features.get(i),
            Source::Output(k) => r.prediction.get(k),
            Source::Whole => Some(&r.prediction),
            Source::OutputAt(k, i) => r.prediction.get(k).and_then(|v| v.get(i)),
            Source::OutputKey(k, c) => r.prediction.get(k).and_then(|v| v.get(c)),
        };
        v.filter(|v| !v.is_null())
    }

    /// The signature name this column is typed by.
    fn field(&self) -> Option<&str> {
        match self {
            Source::Input(k) | Source::Output(k) => Some(k),
            _ => None,
        }
    }
}

/// Replaces the characters Delta does not allow in a column name.
fn clean(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| if " ,;{}()\n\t=".contains(c) { '_' } else { c })
        .collect();
    if s.is_empty() {
        "_".into()
    } else {
        s
    }
}

/// The typed columns of `records` (input fields by name, then outputs), at most `max`.
pub fn typed(records: &[Record], max: usize) -> (Vec<Field>, Vec<ArrayRef>) {
    let sources = sources(records, max);
    let mut fields = Vec::with_capacity(sources.len());
    let mut arrays = Vec::with_capacity(sources.len());
    for (name, source) in sources {
        let hint = source.field().and_then(|f| {
            records
                .iter()
                .find_map(|r| r.hints.as_ref().and_then(|h| h.types.get(f)).cloned())
        });
        let values: Vec<Option<&Json>> = records.iter().map(|r| source.get(r)).collect();
        let Some(t) = hint.or_else(|| infer(&values)) else {
            continue; // every value null: nothing to type the column by yet
        };
        arrays.push(build(&t, &values));
        fields.push(Field::new(name, t, true));
    }
    (fields, arrays)
}

/// Every column the records call for, named, in order of first appearance, at most `max`:
/// past it, inputs give way to outputs (the predictions a monitor reads).
fn sources(records: &[Record], max: usize) -> Vec<(String, Source)> {
    let mut out: Vec<(String, Source)> = Vec::new();
    let mut inputs = 0;
    let mut seen: HashMap<Source, ()> = HashMap::new();
    let mut names: HashMap<String, ()> = FIXED.iter().map(|f| (f.to_string(), ())).collect();
    let mut add = |source: Source, base: String, prefix: &str| {
        let input = prefix == "input";
        if (input && inputs >= max) || out.len() >= 2 * max || seen.contains_key(&source) {
            return;
        }
        inputs += usize::from(input);
        seen.insert(source.clone(), ());
        let mut name = clean(&base);
        if names.contains_key(&name) {
            name = clean(&format!("{prefix}_{base}"));
        }
        let mut n = 2;
        let stem = name.clone();
        while names.contains_key(&name) {
            name = format!("{stem}_{n}");
            n += 1;
        }
        names.insert(name.clone(), ());
        out.push((name, source));
    };
    for r in records {
        let declared = r
            .hints
            .as_ref()
            .map(|h| &h.inputs)
            .filter(|i| !i.is_empty());
        match &r.features {
            Json::Object(m) => {
                for k in m.keys().filter(|k| declared.is_none_or(|d| d.contains(*k))) {
                    add(Source::Input(k.clone()), k.clone(), "input");
                }
            }
            Json::Array(a) => {
                for i in 0..a.len() {
                    add(Source::InputAt(i), format!("input_{i}"), "input");
                }
            }
            _ => {}
        }
    }
    for r in records {
        let classes = r
            .hints
            .as_ref()
            .map(|h| h.classes.as_slice())
            .unwrap_or(&[]);
        match &r.prediction {
            Json::Object(m) => {
                for (k, v) in m {
                    match v {
                        Json::Array(a) if a.len() > 1 && a.iter().all(Json::is_number) => {
                            for i in 0..a.len() {
                                let class = classes
                                    .get(i)
                                    .filter(|_| classes.len() == a.len())
                                    .cloned()
                                    .unwrap_or_else(|| i.to_string());
                                add(
                                    Source::OutputAt(k.clone(), i),
                                    format!("{k}_{class}"),
                                    "output",
                                );
                            }
                        }
                        Json::Object(per_class) if per_class.values().all(Json::is_number) => {
                            for c in per_class.keys() {
                                add(
                                    Source::OutputKey(k.clone(), c.clone()),
                                    format!("{k}_{c}"),
                                    "output",
                                );
                            }
                        }
                        _ => add(Source::Output(k.clone()), k.clone(), "output"),
                    }
                }
            }
            Json::Null => {}
            _ => add(Source::Whole, "predicted".into(), "output"),
        }
    }
    let outputs = out.len() - inputs;
    let keep_inputs = max.saturating_sub(outputs).min(inputs);
    let mut kept_inputs = 0;
    out.retain(|(_, s)| match s {
        Source::Input(_) | Source::InputAt(_) => {
            kept_inputs += 1;
            kept_inputs <= keep_inputs
        }
        _ => true,
    });
    out.truncate(max);
    out
}

/// The type the values call for; `None` when all are null.
fn infer(values: &[Option<&Json>]) -> Option<DataType> {
    let mut present = values.iter().flatten().peekable();
    present.peek()?;
    let mut t: Option<DataType> = None;
    for v in present {
        let this = match v {
            Json::Bool(_) => DataType::Boolean,
            Json::Number(_) => DataType::Float64,
            Json::String(_) => DataType::Utf8,
            Json::Array(a) if a.iter().all(|x| x.is_number() || x.is_null()) => list(),
            _ => return Some(DataType::Utf8),
        };
        match &t {
            None => t = Some(this),
            Some(prev) if *prev == this => {}
            Some(_) => return Some(DataType::Utf8),
        }
    }
    t
}

fn list() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Float64, true)))
}

/// One column of type `t` from `values` (a value that does not fit is null).
fn build(t: &DataType, values: &[Option<&Json>]) -> ArrayRef {
    let n = values.len();
    match t {
        DataType::Float64 => {
            let mut b = Float64Builder::with_capacity(n);
            values
                .iter()
                .for_each(|v| b.append_option(v.and_then(number)));
            Arc::new(b.finish())
        }
        DataType::Int64 => {
            let mut b = Int64Builder::with_capacity(n);
            values.iter().for_each(|v| {
                b.append_option(v.and_then(|v| {
                    v.as_i64()
                        .or_else(|| number(v).filter(|x| x.fract() == 0.0).map(|x| x as i64))
                }))
            });
            Arc::new(b.finish())
        }
        DataType::Boolean => {
            let mut b = BooleanBuilder::with_capacity(n);
            values.iter().for_each(|v| {
                b.append_option(v.and_then(|v| match v {
                    Json::Bool(x) => Some(*x),
                    Json::String(s) => s.parse().ok(),
                    _ => None,
                }))
            });
            Arc::new(b.finish())
        }
        DataType::List(_) => {
            let mut b = ListBuilder::new(Float64Builder::new());
            for v in values {
                match v.and_then(|v| v.as_array()) {
                    Some(a) => {
                        a.iter().for_each(|x| b.values().append_option(number(x)));
                        b.append(true);
                    }
                    None => b.append(false),
                }
            }
            Arc::new(b.finish())
        }
        _ => {
            let mut b = StringBuilder::with_capacity(n, n * 8);
            values.iter().for_each(|v| {
                b.append_option(v.map(|v| match v {
                    Json::String(s) => s.clone(),
                    other => other.to_string(),
                }))
            });
            Arc::new(b.finish())
        }
    }
}

/// A JSON number, or a string holding one (CSV requests keep numbers as text).
fn number(v: &Json) -> Option<f64> {
    match v {
        Json::Number(x) => x.as_f64(),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Float64Array, StringArray};
    use serde_json::json;

    fn record(features: Json, prediction: Json) -> Record {
        Record {
            request_id: "r".into(),
            row: 0,
            timestamp: 0,
            endpoint: "e".into(),
            model: "m".into(),
            model_version: "1".into(),
            features,
            prediction,
            latency_ms: 1.0,
            hints: None,
        }
    }

    fn names(f: &[Field]) -> Vec<&str> {
        f.iter().map(|f| f.name().as_str()).collect()
    }

    #[test]
    fn inputs_and_outputs_get_a_column_each_and_probabilities_one_per_class() {
        let rs = vec![
            record(
                json!({"distance": 1000, "carrier": "UA", "row": 3}),
                json!({"label": 1, "probabilities": [0.25, 0.75]}),
            ),
            record(
                json!({"distance": 12.5, "carrier": null}),
                json!({"label": 0, "probabilities": [0.5, 0.5]}),
            ),
        ];
        let (f, a) = typed(&rs, 100);
        assert_eq!(
            names(&f),
            [
                "carrier",
                "distance",
                "input_row",
                "label",
                "probabilities_0",
                "probabilities_1"
            ]
        );
        assert_eq!(f[1].data_type(), &DataType::Float64);
        let d = a[1].as_any().downcast_ref::<Float64Array>().unwrap();
        assert_eq!((d.value(0), d.value(1)), (1000.0, 12.5));
        let c = a[0].as_any().downcast_ref::<StringArray>().unwrap();
        assert!(c.is_null(1));
        let p = a[5].as_any().downcast_ref::<Float64Array>().unwrap();
        assert_eq!(p.value(0), 0.75);
    }

    #[test]
    fn the_signature_types_and_names_the_classes() {
        let mlmodel = json!({
            "signature": {
                "inputs": r#"[{"type": "long", "name": "month"}, {"type": "string", "name": "carrier"}]"#,
                "outputs": r#"[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 2]}, "name": "probabilities"}]"#
            },
            "metadata": {"tarn_classes": ["late", "on time"]}
        });
        let hints = Arc::new(Hints::of_mlmodel(&mlmodel));
        assert_eq!(hints.types.get("month"), Some(&DataType::Int64));
        assert!(!hints.types.contains_key("probabilities"));
        let mut r = record(
            json!({"month": 7, "carrier": 5}),
            json!({"probabilities": [0.1, 0.9]}),
        );
        r.hints = Some(hints);
        let (f, a) = typed(&[r], 100);
        assert_eq!(
            names(&f),
            [
                "carrier",
                "month",
                "probabilities_late",
                "probabilities_on_time"
            ]
        );
        assert_eq!(f[1].data_type(), &DataType::Int64);
        // A number where the signature says string is kept as its text.
        let c = a[0].as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(c.value(0), "5");
    }

    #[test]
    fn plain_predictions_maps_and_unnamed_matrices() {
        let rs = vec![
            record(json!([1.0, "x"]), json!(3.5)),
            record(json!([2.0, "y"]), json!(4.5)),
        ];
        let (f, _) = typed(&rs, 100);
        assert_eq!(names(&f), ["input_0", "input_1", "predicted"]);
        let zipmap = record(
            json!({}),
            json!({"output_label": "a", "output_probability": {"a": 0.2, "b": 0.8}}),
        );
        let (f, _) = typed(&[zipmap], 100);
        assert_eq!(
            names(&f),
            [
                "output_label",
                "output_probability_a",
                "output_probability_b"
            ]
        );
    }

    #[test]
    fn mixed_values_are_text_all_null_columns_wait_and_the_count_is_capped() {
        let rs = vec![
            record(json!({"a": 1, "b": null, "bad name": true}), Json::Null),
            record(
                json!({"a": "one", "b": null, "bad name": false}),
                Json::Null,
            ),
        ];
        let (f, a) = typed(&rs, 100);
        assert_eq!(names(&f), ["a", "bad_name"]);
        assert_eq!(f[0].data_type(), &DataType::Utf8);
        let s = a[0].as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!((s.value(0), s.value(1)), ("1", "one"));
        let many: serde_json::Map<String, Json> =
            (0..1000).map(|i| (format!("f{i}"), json!(i))).collect();
        let (f, _) = typed(&[record(Json::Object(many), Json::Null)], 64);
        assert_eq!(f.len(), 64);
    }

    /// A request full of keys the model does not declare: only the signature's inputs get
    /// columns, and past the cap inputs give way so the prediction keeps its column.
    #[test]
    fn undeclared_keys_stay_in_the_json_and_outputs_survive_the_cap() {
        let mut features = serde_json::Map::new();
        for i in 0..50 {
            features.insert(format!("junk_{i}"), json!(i));
        }
        features.insert("distance".into(), json!(100));
        features.insert("hour".into(), json!(5));
        let mut r = record(Json::Object(features), json!({"variable": 1.5}));
        let (f, _) = typed(std::slice::from_ref(&r), 3);
        assert_eq!(names(&f), ["distance", "hour", "variable"]);
        let (f, _) = typed(std::slice::from_ref(&r), 2);
        assert_eq!(names(&f), ["distance", "variable"]);
        r.hints = Some(Arc::new(Hints {
            inputs: ["distance".to_string(), "hour".to_string()].into(),
            ..Hints::default()
        }));
        let (f, _) = typed(std::slice::from_ref(&r), 256);
        assert_eq!(names(&f), ["distance", "hour", "variable"]);
    }
}
