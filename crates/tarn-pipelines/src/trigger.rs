//! Triggers: which pipelines an event starts, the event as AWS would deliver it to a
//! `trigger/` module (an S3 event notification or an EventBridge event), and the input an
//! execution gets when the pipeline has no trigger module.

use tarn_config::{PipelineSpec, Trigger};
use tarn_lake::Event;

/// The kind of events put with `tarn events put` / `POST /api/v1/events`.
pub const CUSTOM_EVENT: &str = "custom";
/// The kind of events a cron schedule records when it fires.
pub const SCHEDULE_EVENT: &str = "schedule.fired";
/// The kind of events `tarn pipelines run --event` records.
pub const MANUAL_EVENT: &str = "manual";

/// Whether `event` starts `p`: an object landing in the origin zone under the prefix with the
/// suffix, a custom or registry event (source `tarn.registry`, detail type
/// `model.version.approved`...) whose source and detail type are listed, or its own schedule.
pub fn matches(p: &PipelineSpec, event: &Event) -> bool {
    p.triggers.iter().any(|t| match t {
        Trigger::S3 { prefix, suffix } => {
            event.kind == tarn_lake::OBJECT_CREATED
                && event.zone == format!("{}/{}", p.domain, p.origin)
                && event.key.starts_with(prefix.as_str())
                && event.key.ends_with(suffix.as_str())
        }
        Trigger::EventRule {
            source,
            detail_type,
        } => {
            let s = event.detail["source"].as_str().unwrap_or_default();
            let d = event.detail["detail_type"].as_str().unwrap_or_default();
            (event.kind == CUSTOM_EVENT
                || s == tarn_lake::registry::EVENT_SOURCE
                || s == tarn_lake::taps::EVENT_SOURCE)
                && (source.is_empty() || source.iter().any(|x| x == s))
                && (detail_type.is_empty() || detail_type.iter().any(|x| x == d))
        }
        Trigger::Schedule(expr) => {
            event.kind == SCHEDULE_EVENT && event.zone == p.name && event.key == *expr
        }
    })
}

/// The event as AWS delivers it: an S3 event notification for landed objects, an EventBridge
/// event otherwise (schedules as EventBridge's "Scheduled Event").
pub fn aws_shape(event: &Event, bucket: &str, region: &str) -> serde_json::Value {
    if event.kind == tarn_lake::OBJECT_CREATED {
        let key: String = event
            .key
            .split('/')
            .map(url_encode)
            .collect::<Vec<_>>()
            .join("/");
        return serde_json::json!({
            "Records": [{
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": region,
                "eventTime": event.created_at,
                "eventName": "ObjectCreated:Put",
                "userIdentity": {"principalId": "tarn"},
                "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                "responseElements": {"x-amz-request-id": event.id},
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "tarn",
                    "bucket": {
                        "name": bucket,
                        "ownerIdentity": {"principalId": "tarn"},
                        "arn": format!("arn:aws:s3:::{bucket}"),
                    },
                    "object": {
                        "key": key,
                        "size": event.size,
                        "eTag": event.etag,
                        "sequencer": event.id,
                    },
                },
            }]
        });
    }
    let (source, detail_type, detail) = if event.kind == CUSTOM_EVENT {
        (
            event.detail["source"].clone(),
            event.detail["detail_type"].clone(),
            event.detail["detail"].clone(),
        )
    } else if event.kind == SCHEDULE_EVENT {
        (
            "aws.events".into(),
            "Scheduled Event".into(),
            serde_json::json!({}),
        )
    } else {
        (
            event.detail["source"].as_str().unwrap_or("tarn").into(),
            event.kind.clone().into(),
            event.detail.clone(),
        )
    };
    serde_json::json!({
        "version": "0",
        "id": event.id,
        "detail-type": detail_type,
        "source": source,
        "account": "000000000000",
        "time": event.created_at,
        "region": region,
        "resources": [],
        "detail": detail,
    })
}

/// The execution input when the pipeline has no `trigger/` module.
///
/// - landed object: `{event_id, event: "object.created", domain, layer, zone, key, etag, size, time}`
/// - custom event: `{event_id, event: "custom", source, detail_type, detail, time}`
/// - schedule: `{event_id, event: "schedule.fired", schedule, time}`
/// - `tarn pipelines run --event FILE` with a plain JSON object: that object.
pub fn summary(event: &Event) -> serde_json::Value {
    match event.kind.as_str() {
        tarn_lake::OBJECT_CREATED => {
            let (domain, layer) = event.zone.split_once('/').unwrap_or((&event.zone, ""));
            serde_json::json!({
                "event_id": event.id, "event": event.kind, "domain": domain, "layer": layer,
                "zone": event.zone, "key": event.key, "etag": event.etag, "size": event.size,
                "time": event.created_at,
            })
        }
        CUSTOM_EVENT => serde_json::json!({
            "event_id": event.id, "event": event.kind, "source": event.detail["source"],
            "detail_type": event.detail["detail_type"], "detail": event.detail["detail"],
            "time": event.created_at,
        }),
        SCHEDULE_EVENT => serde_json::json!({
            "event_id": event.id, "event": event.kind, "schedule": event.detail["schedule"],
            "time": event.detail["scheduled_time"],
        }),
        _ => event.detail.clone(),
    }
}

/// Problems of `input` against the pipeline's contract (a field missing or of another type).
pub fn check_contract(p: &PipelineSpec, input: &serde_json::Value) -> Result<(), String> {
    if p.contract.is_empty() {
        return Ok(());
    }
    let Some(obj) = input.as_object() else {
        return Err(format!(
            "the input must be a JSON object with {}",
            fields(p)
        ));
    };
    let mut problems = Vec::new();
    for (field, ty) in &p.contract {
        let Some(v) = obj.get(field) else {
            problems.push(format!("`{field}` is missing"));
            continue;
        };
        let ok = match ty.as_str() {
            "str" | "string" => v.is_string(),
            "int" | "integer" => v.is_i64() || v.is_u64(),
            "float" | "number" => v.is_number(),
            "bool" | "boolean" => v.is_boolean(),
            "list" => v.is_array(),
            "dict" | "object" => v.is_object(),
            _ => true,
        };
        if !ok {
            problems.push(format!("`{field}` must be {ty}, not {v}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the input breaks the contract of {}/config.yml: {}",
            p.dir.display(),
            problems.join("; ")
        ))
    }
}

fn fields(p: &PipelineSpec) -> String {
    p.contract
        .iter()
        .map(|(k, t)| format!("{k}: {t}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
