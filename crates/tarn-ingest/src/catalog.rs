//! A tap's catalog: what `--discover` printed, kept under `.tarn/taps/NAME/catalog.json`, with
//! the tap's `select:` written into it as Singer's `selected` metadata and its `metadata:`
//! laid over each matching stream's own.
//!
//! `select:` patterns, as Meltano reads them: `STREAM` or `STREAM.*` selects a stream with
//! every property; `STREAM.PROPERTY` selects the stream with that property (properties the
//! tap marks `inclusion: automatic`, such as keys, come along); `!STREAM.PROPERTY` leaves a
//! property out. `*` matches any run of characters. No pattern at all selects everything.

use serde_json::{json, Value};
use tarn_config::TapSpec;

/// Whether `text` matches the glob `pattern` (`*` any run of characters).
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    true
}

/// The stream's id as selection patterns name it.
fn stream_id(stream: &Value) -> String {
    stream["tap_stream_id"]
        .as_str()
        .or_else(|| stream["stream"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// The catalog with `tap`'s selection and metadata applied; answers it and the selected
/// streams' ids.
pub(crate) fn apply(tap: &TapSpec, mut catalog: Value) -> (Value, Vec<String>) {
    let mut chosen = Vec::new();
    let patterns: Vec<(bool, String, Option<String>)> = tap
        .select
        .iter()
        .map(|p| {
            let (neg, p) = match p.strip_prefix('!') {
                Some(r) => (true, r),
                None => (false, p.as_str()),
            };
            match p.split_once('.') {
                Some((s, prop)) if prop != "*" => (neg, s.to_string(), Some(prop.to_string())),
                Some((s, _)) => (neg, s.to_string(), None),
                None => (neg, p.to_string(), None),
            }
        })
        .collect();
    let Some(streams) = catalog.get_mut("streams").and_then(Value::as_array_mut) else {
        return (catalog, chosen);
    };
    for stream in streams.iter_mut() {
        let id = stream_id(stream);
        let mine: Vec<&(bool, String, Option<String>)> =
            patterns.iter().filter(|(_, s, _)| glob(s, &id)).collect();
        let selected = patterns.is_empty() || mine.iter().any(|(neg, _, _)| !neg);
        let whole = patterns.is_empty() || mine.iter().any(|(neg, _, p)| !neg && p.is_none());
        let extra: serde_json::Map<String, Value> = tap
            .metadata
            .iter()
            .filter(|(pattern, _)| glob(pattern, &id))
            .flat_map(|(_, m)| m.clone())
            .collect();
        if !stream["metadata"].is_array() {
            stream["metadata"] = json!([]);
        }
        let props: Vec<String> = stream["schema"]["properties"]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        let meta = stream["metadata"].as_array_mut().expect("an array");
        // The stream's own entry (breadcrumb []) and one per property.
        if !meta
            .iter()
            .any(|m| m["breadcrumb"].as_array().is_some_and(|b| b.is_empty()))
        {
            meta.push(json!({"breadcrumb": [], "metadata": {}}));
        }
        for p in &props {
            if !meta
                .iter()
                .any(|m| m["breadcrumb"] == json!(["properties", p]))
            {
                meta.push(json!({"breadcrumb": ["properties", p], "metadata": {}}));
            }
        }
        for m in meta.iter_mut() {
            let crumb: Vec<String> = m["breadcrumb"]
                .as_array()
                .map(|b| {
                    b.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            if !m["metadata"].is_object() {
                m["metadata"] = json!({});
            }
            let md = m["metadata"].as_object_mut().expect("an object");
            if crumb.is_empty() {
                md.insert("selected".into(), Value::Bool(selected));
                for (k, v) in &extra {
                    md.insert(k.clone(), v.clone());
                }
            } else if crumb.len() == 2 && crumb[0] == "properties" {
                let prop = &crumb[1];
                let excluded = mine
                    .iter()
                    .any(|(neg, _, p)| *neg && p.as_deref().is_some_and(|p| glob(p, prop)));
                let named = mine
                    .iter()
                    .any(|(neg, _, p)| !neg && p.as_deref().is_some_and(|p| glob(p, prop)));
                let automatic = md.get("inclusion").and_then(Value::as_str) == Some("automatic");
                let unsupported =
                    md.get("inclusion").and_then(Value::as_str) == Some("unsupported");
                let on = selected && !unsupported && (automatic || (!excluded && (whole || named)));
                md.insert("selected".into(), Value::Bool(on));
            }
        }
        if selected {
            chosen.push(id);
        }
    }
    (catalog, chosen)
}

/// The catalog `applied` (the selection written into it) as JSON text, with each stream's
/// `schema` as the tap wrote it in `raw` (its properties in the tap's order, which is the
/// order the tap sends records in and the tables' columns take).
pub(crate) fn ordered_text(applied: &Value, raw: &str) -> String {
    let ordered: Option<crate::singer::Ordered> = serde_json::from_str(raw).ok();
    let originals: Vec<&crate::singer::Ordered> = ordered
        .as_ref()
        .and_then(|o| o.get("streams"))
        .map(|s| s.items().iter().collect())
        .unwrap_or_default();
    let streams = applied["streams"].as_array().cloned().unwrap_or_default();
    let mut parts = Vec::with_capacity(streams.len());
    for (i, stream) in streams.into_iter().enumerate() {
        let original = originals.get(i).and_then(|o| o.get("schema"));
        match (stream, original) {
            (Value::Object(mut fields), Some(schema)) => {
                fields.remove("schema");
                let rest = Value::Object(fields).to_string();
                let schema = serde_json::to_string(schema).unwrap_or_else(|_| "{}".into());
                let inner = rest.trim_start_matches('{');
                let sep = if inner == "}" { "" } else { "," };
                parts.push(format!("{{\"schema\":{schema}{sep}{inner}"));
            }
            (other, _) => parts.push(other.to_string()),
        }
    }
    format!("{{\"streams\":[{}]}}", parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tap(select: &[&str]) -> TapSpec {
        let mut t: TapSpec =
            serde_json::from_value(json!({"id": "postgres", "name": "pg", "domain": "flights"}))
                .unwrap();
        t.select = select.iter().map(|s| s.to_string()).collect();
        t.metadata.insert(
            "public-*".into(),
            json!({"replication-method": "INCREMENTAL", "replication-key": "id"})
                .as_object()
                .unwrap()
                .clone(),
        );
        t
    }

    fn catalog() -> Value {
        json!({"streams": [
            {"tap_stream_id": "public-flights", "schema": {"properties": {"id": {}, "carrier": {}, "dep_delay": {}}},
             "metadata": [{"breadcrumb": ["properties", "id"], "metadata": {"inclusion": "automatic"}}]},
            {"tap_stream_id": "public-airports", "schema": {"properties": {"faa": {}}}}
        ]})
    }

    fn selected(c: &Value, stream: usize, crumb: Value) -> bool {
        c["streams"][stream]["metadata"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["breadcrumb"] == crumb)
            .unwrap()["metadata"]["selected"]
            == json!(true)
    }

    #[test]
    fn select_patterns_become_selected_metadata() {
        let (c, chosen) = apply(&tap(&["public-flights.carrier"]), catalog());
        assert_eq!(chosen, ["public-flights"]);
        assert!(selected(&c, 0, json!([])));
        assert!(selected(&c, 0, json!(["properties", "carrier"])));
        assert!(
            selected(&c, 0, json!(["properties", "id"])),
            "automatic comes along"
        );
        assert!(!selected(&c, 0, json!(["properties", "dep_delay"])));
        assert!(!selected(&c, 1, json!([])));
        let md = &c["streams"][0]["metadata"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["breadcrumb"] == json!([]))
            .unwrap()["metadata"];
        assert_eq!(md["replication-key"], "id");

        let (c, chosen) = apply(&tap(&["public-*", "!public-flights.dep_delay"]), catalog());
        assert_eq!(chosen.len(), 2);
        assert!(selected(&c, 0, json!(["properties", "carrier"])));
        assert!(!selected(&c, 0, json!(["properties", "dep_delay"])));
        let (_, chosen) = apply(&tap(&[]), catalog());
        assert_eq!(chosen.len(), 2);
    }
}
