//! MLflow's rules for what tracking may store, applied where MLflow's own store applies them
//! (so the HTTP API and the local CLI refuse the same things): key names (alphanumerics and
//! `_ - . : / ` and space, never a path that resolves to another name), key and value
//! lengths (long param and tag values are cut to the limit, as MLflow's server does by
//! default), and how many items one batch may carry. Messages follow MLflow's wording.

use crate::MetadataError;

/// Longest metric, param or tag key.
pub const MAX_ENTITY_KEY_LENGTH: usize = 250;
/// Longest param value; longer ones are cut to it.
pub const MAX_PARAM_VAL_LENGTH: usize = 6000;
/// Longest run tag value; longer ones are cut to it.
pub const MAX_TAG_VAL_LENGTH: usize = 8000;
/// Longest experiment name.
pub const MAX_EXPERIMENT_NAME_LENGTH: usize = 500;
/// Longest experiment tag value.
pub const MAX_EXPERIMENT_TAG_VAL_LENGTH: usize = 20000;
/// Longest registered model or model version tag value.
pub const MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH: usize = 100_000;
/// Longest trace tag value.
pub const MAX_TRACE_TAG_VAL_LENGTH: usize = 8000;
/// Batch limits of `log-batch`.
pub const MAX_METRICS_PER_BATCH: usize = 1000;
pub const MAX_PARAMS_TAGS_PER_BATCH: usize = 100;
pub const MAX_ENTITIES_PER_BATCH: usize = 1000;
/// The most results one search page may ask for.
pub const MAX_RESULTS_PER_PAGE: i64 = 50_000;

fn invalid(m: String) -> MetadataError {
    MetadataError::Refused(m)
}

/// `Invalid value "x" for parameter 'path' supplied: why`, as MLflow words it.
fn invalid_value(path: &str, value: &str, why: &str) -> MetadataError {
    let shown = serde_json::Value::String(value.to_string()).to_string();
    invalid(format!(
        "Invalid value {shown} for parameter '{path}' supplied: {why}"
    ))
}

/// Whether `name` resolves to itself when read as a path (no `..`, no leading `/`, no `./`).
fn resolves_to_itself(name: &str) -> Result<(), String> {
    let mut parts: Vec<&str> = Vec::new();
    for p in name.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let normal = if parts.is_empty() {
        ".".to_string()
    } else {
        format!(
            "{}{}",
            if name.starts_with('/') { "/" } else { "" },
            parts.join("/")
        )
    };
    if normal != name || normal == "." || normal.starts_with("..") || normal.starts_with('/') {
        return Err(format!(
            "Names may be treated as files in certain cases, and must not resolve to other names when treated as such. This name would resolve to '{normal}'"
        ));
    }
    Ok(())
}

/// Checks a metric, param or tag key at `path` (`key`, `metrics[3].name`).
pub fn key(name: &str, path: &str) -> Result<(), MetadataError> {
    let allowed = |c: char| c.is_alphanumeric() || "_-. :/".contains(c);
    if !name.chars().all(allowed) {
        return Err(invalid_value(
            path,
            name,
            "Names may only contain alphanumerics, underscores (_), dashes (-), periods (.), spaces ( ), colon(:) and slashes (/).",
        ));
    }
    resolves_to_itself(name).map_err(|why| invalid_value(path, name, &why))?;
    length(path, MAX_ENTITY_KEY_LENGTH, name)
}

/// Refuses `value` longer than `limit` characters.
pub fn length(what: &str, limit: usize, value: &str) -> Result<(), MetadataError> {
    if value.chars().count() > limit {
        return Err(invalid(format!(
            "'{what}' exceeds the maximum length of {limit} characters"
        )));
    }
    Ok(())
}

/// `value` cut to `limit` characters (MLflow's server cuts long param and tag values).
pub fn truncated(value: &str, limit: usize) -> String {
    match value.char_indices().nth(limit) {
        Some((i, _)) => value[..i].to_string(),
        None => value.to_string(),
    }
}

/// Refuses a batch with more than `limit` items of one kind.
pub fn batch(what: &str, limit: usize, n: usize) -> Result<(), MetadataError> {
    if n > limit {
        return Err(invalid(format!(
            "A batch logging request can contain at most {limit} {what}. Got {n} {what}. Please split up {what} across multiple requests and try again."
        )));
    }
    Ok(())
}

/// Checks an experiment name.
pub fn experiment_name(name: &str) -> Result<(), MetadataError> {
    if name.is_empty() {
        return Err(invalid(format!("Invalid experiment name: '{name}'")));
    }
    length("name", MAX_EXPERIMENT_NAME_LENGTH, name)
}

/// Checks a registered model's name: not empty, no `/` or `:`, not a path resolving to
/// another name.
pub fn model_name(name: &str, field: &str) -> Result<(), MetadataError> {
    if name.trim().is_empty() {
        return Err(invalid(format!(
            "Missing value for required parameter '{field}'."
        )));
    }
    if name.contains(['/', ':']) {
        return Err(invalid(format!(
            "Invalid model name '{name}'. Names cannot contain '/' or ':'."
        )));
    }
    resolves_to_itself(name).map_err(|why| invalid_value(field, name, &why))
}

/// Checks a `DatasetInput` of `runs/log-inputs`: name, digest, source type and source
/// present, within MLflow's sizes, and its tags' keys and values too.
pub fn dataset_input(d: &serde_json::Value) -> Result<(), MetadataError> {
    let ds = &d["dataset"];
    for (field, limit) in [
        ("name", 500),
        ("digest", 36),
        ("source_type", usize::MAX),
        ("source", 65535),
    ] {
        let Some(v) = ds[field].as_str() else {
            return Err(invalid(format!("Dataset {field} cannot be None")));
        };
        length(field, limit, v)?;
    }
    for (field, limit) in [("schema", 1_048_575), ("profile", 16_777_215)] {
        if let Some(v) = ds[field].as_str() {
            length(field, limit, v)?;
        }
    }
    for t in d["tags"].as_array().into_iter().flatten() {
        let (Some(k), Some(v)) = (t["key"].as_str(), t["value"].as_str()) else {
            return Err(invalid("InputTag key and value cannot be None".into()));
        };
        length("key", 255, k)?;
        length("value", 500, v)?;
    }
    Ok(())
}

/// Checks a search's `max_results`.
pub fn max_results(n: i64, limit: i64) -> Result<usize, MetadataError> {
    if n <= 0 || n > limit {
        return Err(invalid(format!(
            "Invalid value {n} for parameter 'max_results' supplied. It must be at most {limit}"
        )));
    }
    Ok(n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_mlflows_rules() {
        for good in ["loss", "val/loss", "a b", "m:1", "x.y-z_2", "ÄÖ"] {
            assert!(key(good, "key").is_ok(), "{good}");
        }
        for bad in [
            "bad key!@#",
            "../etc",
            "a/../b",
            "/abs",
            "./a",
            "a//b",
            "a/",
            ".",
        ] {
            let e = key(bad, "key").unwrap_err().to_string();
            assert!(e.contains("Invalid value"), "{bad}: {e}");
        }
        assert!(key(&"k".repeat(250), "key").is_ok());
        let e = key(&"k".repeat(251), "key").unwrap_err().to_string();
        assert!(e.contains("maximum length of 250"), "{e}");
        assert_eq!(truncated("héllo", 2), "hé");
        assert_eq!(truncated("hi", 6000), "hi");
        assert!(max_results(60_000, MAX_RESULTS_PER_PAGE).is_err());
        assert!(max_results(0, MAX_RESULTS_PER_PAGE).is_err());
        assert_eq!(max_results(10, MAX_RESULTS_PER_PAGE).unwrap(), 10);
        assert!(model_name("delays", "name").is_ok());
        for bad in ["", " ", "a/b", "m:1", ".."] {
            assert!(model_name(bad, "name").is_err(), "{bad}");
        }
        let ds = |name: &str, digest: &str| {
            serde_json::json!({"dataset": {"name": name, "digest": digest, "source_type": "code", "source": "{}"},
                               "tags": [{"key": "mlflow.data.context", "value": "training"}]})
        };
        assert!(dataset_input(&ds("flights", "abc")).is_ok());
        assert!(dataset_input(&ds(&"n".repeat(501), "abc")).is_err());
        assert!(dataset_input(&ds("flights", &"d".repeat(37))).is_err());
        assert!(dataset_input(&serde_json::json!({"dataset": {"name": "x"}})).is_err());
    }
}
