//! How MLflow's requests arrive: each call's arguments, wherever the client put them (the JSON
//! body of POST, PATCH and DELETE, the query string of GET), read into that call's own serde
//! struct by [`Call`]. MLflow's JSON is lenient (an int64 may come as a string, a double as
//! `"NaN"`), so fields use the readers in [`field`]; a missing or empty required field, or a
//! value of the wrong kind, is refused as MLflow refuses it, naming the field's path
//! (`metrics[2].key`).

use crate::mlflow::{invalid, MlflowError};
use crate::App;
use axum::extract::{FromRequest, Query, Request};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

/// The arguments of one MLflow call, read into `T`.
pub(crate) struct Call<T>(pub T);

/// Query parameters a client repeats to give a list.
const LISTS: [&str; 3] = ["order_by", "stages", "experiment_ids"];

impl<T: DeserializeOwned> FromRequest<App> for Call<T> {
    type Rejection = MlflowError;

    async fn from_request(req: Request, app: &App) -> Result<Self, MlflowError> {
        let query = Query::<Vec<(String, String)>>::try_from_uri(req.uri())
            .map(|q| q.0)
            .unwrap_or_default();
        let bytes = crate::error::read_body(req, app).await?;
        let mut v = if bytes.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            serde_json::from_slice(&bytes)
                .map_err(|e| invalid(format!("the request body is not JSON: {e}")))?
        };
        if !v.is_object() {
            return Err(invalid("the request body must be a JSON object"));
        }
        for (k, value) in query {
            if LISTS.contains(&k.as_str()) {
                match v[&k].as_array_mut() {
                    Some(list) => list.push(json!(value)),
                    None => v[&k] = json!([value]),
                }
            } else {
                v[&k] = json!(value);
            }
        }
        read(v).map(Call)
    }
}

/// `v` read into `T`, refusals worded as MLflow words them.
pub(crate) fn read<T: DeserializeOwned>(v: Value) -> Result<T, MlflowError> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        let at = |field: &str| match path.as_str() {
            "." => field.to_string(),
            p => format!("{p}.{field}"),
        };
        if let Some(field) = message
            .strip_prefix("missing field `")
            .and_then(|m| m.strip_suffix('`'))
        {
            invalid(format!(
                "Missing value for required parameter '{}'.",
                at(field)
            ))
        } else if message == field::EMPTY {
            invalid(format!("Missing value for required parameter '{path}'."))
        } else {
            invalid(format!("Invalid value for parameter '{path}': {message}"))
        }
    })
}

/// Readers for `#[serde(deserialize_with = ...)]` that take what MLflow's clients send.
pub(crate) mod field {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer};
    use serde_json::Value;
    use tarn_lake::tracking::KeyValue;

    /// The message of an empty required field (worded by `read`, which knows its path).
    pub(crate) const EMPTY: &str = "empty";

    fn as_text(v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    /// A string, or a number read as one; anything else is absent.
    pub(crate) fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(as_text(&Value::deserialize(d)?))
    }

    /// Like `text`, and an empty string is absent too.
    pub(crate) fn some_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(text(d)?.filter(|s| !s.is_empty()))
    }

    /// A string (or number) that must be there and not be empty.
    pub(crate) fn required<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        as_text(&Value::deserialize(d)?)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| D::Error::custom(EMPTY))
    }

    /// An int64 as MLflow's JSON carries it: a number or a string of one.
    pub(crate) fn int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        match Value::deserialize(d)? {
            Value::Null => Ok(None),
            Value::Number(n) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| D::Error::custom("it must be an integer")),
            Value::String(s) => s
                .parse()
                .map(Some)
                .map_err(|_| D::Error::custom(format!("it must be an integer, not {s:?}"))),
            other => Err(D::Error::custom(format!(
                "it must be an integer, not {other}"
            ))),
        }
    }

    /// A double: a number, or `NaN`, `Infinity`, `-Infinity` (or a number) in a string.
    pub(crate) fn float<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        match Value::deserialize(d)? {
            Value::Number(n) => n
                .as_f64()
                .ok_or_else(|| D::Error::custom("it must be a number")),
            Value::String(s) => tarn_lake::tracking::metric_value(&s)
                .map_err(|_| D::Error::custom(format!("it must be a number, not {s:?}"))),
            Value::Null => Err(D::Error::custom(EMPTY)),
            other => Err(D::Error::custom(format!(
                "it must be a number, not {other}"
            ))),
        }
    }

    /// Tags or params: `[{"key": ..., "value": ...}]`; an entry without a key is skipped, a
    /// missing value is empty.
    pub(crate) fn pairs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<KeyValue>, D::Error> {
        let v = Value::deserialize(d)?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| {
                        Some(KeyValue {
                            key: as_text(&t["key"])?,
                            value: as_text(&t["value"]).unwrap_or_default(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// A boolean: `true`, or the string `"true"` (a query string's way).
    pub(crate) fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::Bool(b) => b,
            Value::String(s) => s.eq_ignore_ascii_case("true"),
            _ => false,
        })
    }

    /// A list of strings (or numbers, read as strings); a single one is a list of one.
    pub(crate) fn strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::Array(a) => a.iter().filter_map(as_text).collect(),
            other => as_text(&other).into_iter().collect(),
        })
    }
}

/// The run a call is about: `run_id`, or the older `run_uuid`.
#[derive(serde::Deserialize)]
pub(crate) struct RunRef {
    #[serde(default, deserialize_with = "field::some_text")]
    run_id: Option<String>,
    #[serde(default, deserialize_with = "field::some_text")]
    run_uuid: Option<String>,
}

impl RunRef {
    pub(crate) fn id(self) -> Result<String, MlflowError> {
        self.run_id
            .or(self.run_uuid)
            .ok_or_else(|| invalid("Missing value for required parameter 'run_id'."))
    }
}

/// A search: a filter in MLflow's language, an order, a page.
#[derive(serde::Deserialize)]
pub(crate) struct Search {
    #[serde(default, deserialize_with = "field::text")]
    filter: Option<String>,
    #[serde(default, deserialize_with = "field::strings")]
    pub(crate) order_by: Vec<String>,
    #[serde(flatten)]
    pub(crate) paging: Paging,
}

impl Search {
    /// The filter; none matches everything.
    pub(crate) fn filter(&self) -> &str {
        self.filter.as_deref().unwrap_or_default()
    }
}

/// A page of a search: how many, from where.
#[derive(serde::Deserialize, Default)]
pub(crate) struct Paging {
    #[serde(default, deserialize_with = "field::int")]
    pub(crate) max_results: Option<i64>,
    #[serde(default, deserialize_with = "field::some_text")]
    pub(crate) page_token: Option<String>,
}

impl Paging {
    /// `max_results`, `default` when absent, refused past `limit` (MLflow's rule).
    pub(crate) fn max(&self, default: i64, limit: i64) -> Result<usize, MlflowError> {
        let n = self.max_results.unwrap_or(default);
        Ok(tarn_lake::validation::max_results(n, limit)?)
    }
}
