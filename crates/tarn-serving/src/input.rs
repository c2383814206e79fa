//! Reading a request body as MLflow's scoring server reads it: JSON with exactly one of
//! `dataframe_split`, `dataframe_records`, `instances`, `inputs` (plus optional `params`), or
//! CSV with a header (SageMaker's CSV contract, and `text/csv` for MLflow), into a [`Frame`].
//! Media types and their parameters are checked the way MLflow checks them (415 for anything
//! but `application/json` / `text/csv` with `charset=utf-8`).

use crate::error::ServingError;
use serde_json::Value;

/// Input rows, column by column.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// Column names; `None` for an unnamed matrix (`instances` / `inputs` as lists of rows).
    pub names: Option<Vec<String>>,
    /// One vector of values per column (scalars, or arrays for tensor inputs).
    pub columns: Vec<Vec<Value>>,
    pub rows: usize,
}

impl Frame {
    /// Row `r` as a JSON object (or array for an unnamed matrix), as the inference log keeps it.
    pub fn row(&self, r: usize) -> Value {
        match &self.names {
            Some(names) => Value::Object(
                names
                    .iter()
                    .zip(&self.columns)
                    .map(|(n, c)| (n.clone(), c[r].clone()))
                    .collect(),
            ),
            None => Value::Array(self.columns.iter().map(|c| c[r].clone()).collect()),
        }
    }

    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&[Value]> {
        let names = self.names.as_ref()?;
        names
            .iter()
            .position(|n| n == name)
            .map(|i| self.columns[i].as_slice())
    }

    fn from_records(records: &[Value], what: &str) -> Result<Frame, ServingError> {
        let mut names: Vec<String> = Vec::new();
        for (i, r) in records.iter().enumerate() {
            let obj = r.as_object().ok_or_else(|| {
                bad(format!(
                    "{what}[{i}] is {}; each record must be an object of column: value",
                    kind(r)
                ))
            })?;
            for k in obj.keys() {
                if !names.contains(k) {
                    names.push(k.clone());
                }
            }
        }
        let columns = names
            .iter()
            .map(|n| {
                records
                    .iter()
                    .map(|r| r.get(n).cloned().unwrap_or(Value::Null))
                    .collect()
            })
            .collect();
        Ok(Frame {
            names: Some(names),
            columns,
            rows: records.len(),
        })
    }

    fn from_rows(
        rows: &[Value],
        names: Option<Vec<String>>,
        what: &str,
    ) -> Result<Frame, ServingError> {
        let width = match &names {
            Some(n) => n.len(),
            None => match rows.first() {
                Some(Value::Array(a)) => a.len(),
                Some(_) => 1,
                None => 0,
            },
        };
        let mut columns = vec![Vec::with_capacity(rows.len()); width];
        for (i, r) in rows.iter().enumerate() {
            match r {
                Value::Array(a)
                    if names.is_some() || matches!(rows.first(), Some(Value::Array(_))) =>
                {
                    if a.len() != width {
                        return Err(bad(format!(
                            "{what} row {i} has {} values where the first row (or the columns) has {width}",
                            a.len()
                        )));
                    }
                    for (c, v) in a.iter().enumerate() {
                        columns[c].push(v.clone());
                    }
                }
                v if width == 1 && names.is_none() => columns[0].push(v.clone()),
                v => {
                    return Err(bad(format!(
                        "{what} row {i} is {}; give every row as a list of {width} values",
                        kind(v)
                    )))
                }
            }
        }
        Ok(Frame {
            names,
            columns,
            rows: rows.len(),
        })
    }

    fn from_columns(
        map: &serde_json::Map<String, Value>,
        what: &str,
    ) -> Result<Frame, ServingError> {
        let mut rows = None;
        let mut names = Vec::new();
        let mut columns = Vec::new();
        for (k, v) in map {
            let col = match v {
                Value::Array(a) => a.clone(),
                scalar => vec![scalar.clone()],
            };
            match rows {
                None => rows = Some(col.len()),
                Some(n) if n != col.len() => {
                    return Err(bad(format!(
                        "{what}: column `{k}` has {} values where the others have {n}",
                        col.len()
                    )))
                }
                _ => {}
            }
            names.push(k.clone());
            columns.push(col);
        }
        Ok(Frame {
            names: Some(names),
            columns,
            rows: rows.unwrap_or(0),
        })
    }
}

/// How the caller sent the rows, which decides the shape of the answer as MLflow's server
/// answers it: a DataFrame (records) or tensors (one list per output).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Records,
    Tensors,
}

fn bad(message: String) -> ServingError {
    ServingError::BadRequest(message)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

const FORMATS: [&str; 4] = [
    "dataframe_split",
    "dataframe_records",
    "instances",
    "inputs",
];

/// Checks the media type as MLflow does: `application/json` or `text/csv`, only a
/// `charset=utf-8` parameter. Answers whether the body is CSV.
pub fn media_type(content_type: Option<&str>) -> Result<bool, ServingError> {
    let ct = content_type.unwrap_or("");
    let mut parts = ct.split(';').map(str::trim);
    let mime = parts.next().unwrap_or("").to_ascii_lowercase();
    for p in parts {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        if k.trim().eq_ignore_ascii_case("charset") {
            if !v.trim().trim_matches('"').eq_ignore_ascii_case("utf-8") {
                return Err(ServingError::Unsupported(
                    "The scoring server only supports UTF-8".into(),
                ));
            }
        } else {
            return Err(ServingError::Unsupported(format!(
                "Unrecognized content type parameters: {}. Send `Content-Type: application/json` or `text/csv`, with no parameter but charset=utf-8.",
                k.trim()
            )));
        }
    }
    match mime.as_str() {
        "application/json" => Ok(false),
        "text/csv" => Ok(true),
        _ => Err(ServingError::Unsupported(format!(
            "This predictor only supports the following content types: Types: ['text/csv', 'application/json']. Got '{ct}'."
        ))),
    }
}

/// Parses a body of the given media type.
pub fn parse(body: &[u8], csv: bool) -> Result<(Frame, Shape), ServingError> {
    if csv {
        return Ok((parse_csv(body)?, Shape::Records));
    }
    let doc: Value = serde_json::from_slice(body).map_err(|e| {
        bad(format!(
            "Ensure that input is a valid JSON formatted string. Error: {e} (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    let obj = match &doc {
        Value::Object(o) => o,
        other => {
            return Err(bad(format!(
                "The input must be a JSON dictionary with exactly one of the input fields {{'dataframe_split', 'dataframe_records', 'instances', 'inputs'}}. Received {}.",
                kind(other)
            )))
        }
    };
    let present: Vec<&str> = FORMATS
        .iter()
        .copied()
        .filter(|f| obj.contains_key(*f))
        .collect();
    if present.len() != 1 {
        let keys: Vec<&String> = obj.keys().collect();
        return Err(bad(format!(
            "The input must be a JSON dictionary with exactly one of the input fields {{'dataframe_split', 'dataframe_records', 'instances', 'inputs'}}. Received dictionary with input fields: {keys:?}."
        )));
    }
    let key = present[0];
    let data = &obj[key];
    match key {
        "dataframe_split" => {
            let split = data.as_object().ok_or_else(|| {
                bad(format!(
                    "dataframe_split is {}; give {{\"columns\": [...], \"data\": [[...], ...]}}",
                    kind(data)
                ))
            })?;
            let rows = match split.get("data") {
                Some(Value::Array(r)) => r.as_slice(),
                Some(other) => {
                    return Err(bad(format!(
                        "dataframe_split.data is {}; give a list of rows",
                        kind(other)
                    )))
                }
                None => &[],
            };
            let names = match split.get("columns") {
                Some(Value::Array(c)) => Some(
                    c.iter()
                        .map(|v| match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                        .collect::<Vec<_>>(),
                ),
                Some(other) => {
                    return Err(bad(format!(
                        "dataframe_split.columns is {}; give a list of column names",
                        kind(other)
                    )))
                }
                None => None,
            };
            if let Some(k) = split
                .keys()
                .find(|k| !["columns", "data", "index"].contains(&k.as_str()))
            {
                return Err(bad(format!(
                    "dataframe_split has the key `{k}`; it takes columns, data and index"
                )));
            }
            let names = names.unwrap_or_else(|| {
                let width = match rows.first() {
                    Some(Value::Array(a)) => a.len(),
                    _ => 1,
                };
                (0..width).map(|i| i.to_string()).collect()
            });
            Ok((
                Frame::from_rows(rows, Some(names), "dataframe_split.data")?,
                Shape::Records,
            ))
        }
        "dataframe_records" => match data {
            Value::Array(records) => Ok((
                Frame::from_records(records, "dataframe_records")?,
                Shape::Records,
            )),
            other => Err(bad(format!(
                "dataframe_records is {}; give a list of records",
                kind(other)
            ))),
        },
        _ => match data {
            Value::Array(items) if items.iter().all(Value::is_object) && !items.is_empty() => {
                Ok((Frame::from_records(items, key)?, Shape::Tensors))
            }
            Value::Array(items) => Ok((Frame::from_rows(items, None, key)?, Shape::Tensors)),
            Value::Object(map) => Ok((Frame::from_columns(map, key)?, Shape::Tensors)),
            other => Err(bad(format!(
                "{key} is {}; give a list of rows or an object of columns",
                kind(other)
            ))),
        },
    }
}

/// CSV with a header row; numbers are read as numbers, empty fields as missing.
fn parse_csv(body: &[u8]) -> Result<Frame, ServingError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        bad(format!(
            "Ensure that input is a valid UTF-8 encoded string. Error: {e}"
        ))
    })?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(text.as_bytes());
    let names: Vec<String> = reader
        .headers()
        .map_err(|e| bad(format!("Failed to parse input as CSV: {e}")))?
        .iter()
        .map(str::to_string)
        .collect();
    if names.is_empty() || names.iter().all(|n| n.is_empty()) {
        return Err(bad(
            "Failed to parse input as a Pandas DataFrame: the CSV has no header row; send the column names first".into(),
        ));
    }
    let mut columns = vec![Vec::new(); names.len()];
    let mut rows = 0;
    for (i, rec) in reader.records().enumerate() {
        let rec =
            rec.map_err(|e| bad(format!("Failed to parse input as CSV: line {}: {e}", i + 2)))?;
        if rec.len() != names.len() {
            return Err(bad(format!(
                "Failed to parse input as CSV: line {} has {} fields where the header has {}",
                i + 2,
                rec.len(),
                names.len()
            )));
        }
        for (c, field) in rec.iter().enumerate() {
            columns[c].push(csv_value(field));
        }
        rows += 1;
    }
    Ok(Frame {
        names: Some(names),
        columns,
        rows,
    })
}

fn csv_value(field: &str) -> Value {
    let t = field.trim();
    if t.is_empty() {
        return Value::Null;
    }
    if let Ok(i) = t.parse::<i64>() {
        return Value::from(i);
    }
    match t.parse::<f64>() {
        Ok(f) if f.is_finite() => Value::from(f),
        _ => Value::String(field.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_json_format_reads_the_same_rows() {
        let split =
            br#"{"dataframe_split": {"columns": ["a", "b"], "data": [[1, "x"], [2.5, "y"]]}}"#;
        let records = br#"{"dataframe_records": [{"a": 1, "b": "x"}, {"a": 2.5, "b": "y"}]}"#;
        let inputs = br#"{"inputs": {"a": [1, 2.5], "b": ["x", "y"]}}"#;
        let instances = br#"{"instances": [{"a": 1, "b": "x"}, {"a": 2.5, "b": "y"}]}"#;
        let want = parse(split, false).unwrap().0;
        assert_eq!(want.rows, 2);
        for body in [&records[..], &inputs[..], &instances[..]] {
            assert_eq!(parse(body, false).unwrap().0, want);
        }
        let csv = parse(b"a,b\n1,x\n2.5,y\n", true).unwrap().0;
        assert_eq!(csv, want);
    }

    #[test]
    fn bad_bodies_say_what_is_wrong() {
        let e = parse(b"[1, 2]", false).unwrap_err().to_string();
        assert!(e.contains("exactly one of the input fields"), "{e}");
        let e = parse(br#"{"data": []}"#, false).unwrap_err().to_string();
        assert!(e.contains("\"data\""), "{e}");
        let e = parse(b"{not json", false).unwrap_err().to_string();
        assert!(e.contains("line 1, column 2"), "{e}");
        let e = parse(b"a,b\n1\n", true).unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
        assert!(matches!(
            media_type(Some("text/plain")),
            Err(ServingError::Unsupported(_))
        ));
        assert!(matches!(
            media_type(Some("application/json; charset=latin-1")),
            Err(ServingError::Unsupported(_))
        ));
        assert!(!media_type(Some("application/json; charset=UTF-8")).unwrap());
        assert!(media_type(Some("text/csv")).unwrap());
    }
}
