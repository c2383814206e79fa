//! Limits on what enters tarn (`limits:` in `tarn.yml`): every input a server takes has one,
//! documented here with its default, so a hostile or careless request gets a 4xx naming the
//! limit instead of taking the process down. [`Limits`] is the resolved set with every default
//! filled in; [`LimitsSpec`] is what users write.

use serde::Deserialize;
use std::time::Duration;

/// `limits:` as written in `tarn.yml`: sizes as `16MiB`, durations as `30s`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitsSpec {
    pub request_body: Option<String>,
    pub object_size: Option<String>,
    pub json_depth: Option<usize>,
    pub sql_length: Option<String>,
    pub sql_depth: Option<usize>,
    pub sql_in_list: Option<usize>,
    pub query_timeout: Option<String>,
    pub query_rows: Option<usize>,
    pub query_memory: Option<String>,
    pub query_concurrency: Option<usize>,
    pub key_length: Option<usize>,
    pub key_segment: Option<usize>,
    pub page_size: Option<usize>,
    pub inference_columns: Option<usize>,
}

/// The limits of one lake, every default filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Largest JSON body of an API call (not an object upload): 16 MiB.
    pub request_body: u64,
    /// Largest object a `PUT` or an upload may land: 5 GiB.
    pub object_size: u64,
    /// Deepest nesting of a JSON body: 64 (serde_json refuses past 128 in any case).
    pub json_depth: usize,
    /// Longest SQL text: 1 MiB.
    pub sql_length: usize,
    /// Deepest nesting of one SQL expression (`1+1+...` counts one level per operator): 256.
    pub sql_depth: usize,
    /// Most values in one `IN (...)` list: 10,000.
    pub sql_in_list: usize,
    /// Longest a query may run when the caller names no timeout: 30 s.
    pub query_timeout: Duration,
    /// Rows an API answer holds at most when the caller names no limit: 10,000.
    pub query_rows: usize,
    /// Memory one query may hold for sorts, joins and aggregations before it spills or
    /// stops: 2 GiB.
    pub query_memory: u64,
    /// Queries that run at once; more wait for a slot within their timeout: the core count.
    pub query_concurrency: usize,
    /// Longest object key, in bytes: 1,024 (S3's limit).
    pub key_length: usize,
    /// Longest segment of a key between `/`, in bytes: 255 (a file name's limit).
    pub key_segment: usize,
    /// Most items one page of a list may ask for: 10,000.
    pub page_size: usize,
    /// Typed columns one inference log commit may add to an endpoint's table (its input
    /// fields and outputs); fields past it stay in the row's JSON text only: 256.
    pub inference_columns: usize,
}

/// What a load does when a file brings columns that a table without a contract lacks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchemaEvolution {
    /// Add the columns (older rows read them as null) and say so in the load's report.
    #[default]
    Widen,
    /// Refuse the load, naming the columns; nothing is written.
    Refuse,
}

/// serde_json's own recursion limit: no configured depth may exceed it.
pub const JSON_DEPTH_CEILING: usize = 128;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_body: 16 * 1024 * 1024,
            object_size: 5 * 1024 * 1024 * 1024,
            json_depth: 64,
            sql_length: 1024 * 1024,
            sql_depth: 256,
            sql_in_list: 10_000,
            query_timeout: Duration::from_secs(30),
            query_rows: 10_000,
            query_memory: 2 * 1024 * 1024 * 1024,
            query_concurrency: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            key_length: 1024,
            key_segment: 255,
            page_size: 10_000,
            inference_columns: 256,
        }
    }
}

impl LimitsSpec {
    /// The resolved limits, or the field at fault and the problem with its fix.
    pub(crate) fn resolve(&self) -> Result<Limits, (&'static str, String)> {
        let d = Limits::default();
        let bytes = |field: &'static str, v: &Option<String>, default: u64| {
            match v {
            None => Ok(default),
            Some(t) => crate::parse_bytes(t).filter(|n| *n > 0).ok_or((
                field,
                format!("limits.{field}: `{t}` is not a size; write it as 16MiB, 2GiB or a number of bytes"),
            )),
        }
        };
        let count = |field: &'static str, v: Option<usize>, default: usize| match v {
            None => Ok(default),
            Some(0) => Err((field, format!("limits.{field}: must be at least 1"))),
            Some(n) => Ok(n),
        };
        let duration = |field: &'static str, v: &Option<String>, default: Duration| match v {
            None => Ok(default),
            Some(t) => crate::parse_duration(t).ok_or((
                field,
                format!("limits.{field}: `{t}` is not a duration; write it as 30s, 5m or 500ms"),
            )),
        };
        let json_depth = count("json_depth", self.json_depth, d.json_depth)?;
        if json_depth > JSON_DEPTH_CEILING {
            return Err((
                "json_depth",
                format!("limits.json_depth: {json_depth} is above {JSON_DEPTH_CEILING}, the most the JSON reader can nest; use at most {JSON_DEPTH_CEILING}"),
            ));
        }
        Ok(Limits {
            request_body: bytes("request_body", &self.request_body, d.request_body)?,
            object_size: bytes("object_size", &self.object_size, d.object_size)?,
            json_depth,
            sql_length: bytes("sql_length", &self.sql_length, d.sql_length as u64)? as usize,
            sql_depth: count("sql_depth", self.sql_depth, d.sql_depth)?,
            sql_in_list: count("sql_in_list", self.sql_in_list, d.sql_in_list)?,
            query_timeout: duration("query_timeout", &self.query_timeout, d.query_timeout)?,
            query_rows: count("query_rows", self.query_rows, d.query_rows)?,
            query_memory: bytes("query_memory", &self.query_memory, d.query_memory)?,
            query_concurrency: count(
                "query_concurrency",
                self.query_concurrency,
                d.query_concurrency,
            )?,
            key_length: count("key_length", self.key_length, d.key_length)?,
            key_segment: count("key_segment", self.key_segment, d.key_segment)?,
            page_size: count("page_size", self.page_size, d.page_size)?,
            inference_columns: count(
                "inference_columns",
                self.inference_columns,
                d.inference_columns,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let spec = LimitsSpec {
            sql_length: Some("64KiB".into()),
            query_timeout: Some("2s".into()),
            ..Default::default()
        };
        let l = spec.resolve().unwrap();
        assert_eq!(l.sql_length, 65536);
        assert_eq!(l.query_timeout, Duration::from_secs(2));
        assert_eq!(l.sql_depth, Limits::default().sql_depth);
    }

    #[test]
    fn bad_values_name_the_field() {
        let spec = LimitsSpec {
            json_depth: Some(500),
            ..Default::default()
        };
        assert_eq!(spec.resolve().unwrap_err().0, "json_depth");
        let spec = LimitsSpec {
            request_body: Some("lots".into()),
            ..Default::default()
        };
        let (field, msg) = spec.resolve().unwrap_err();
        assert_eq!(field, "request_body");
        assert!(msg.contains("16MiB"), "{msg}");
    }
}
