//! A run's breaches raised once each as events (delivered to the monitor's alert topic), one
//! `monitor.alert` per window with new breaches (what a retraining pipeline triggers on), and
//! a recovery when a window passes after a breached one.

use crate::error::MonitorError;
use crate::results::Status;
use crate::run::{AlertRecord, WindowReport, ALERT, ALERT_SOURCE, BREACH, RECOVERED};
use std::collections::BTreeMap;
use tarn_config::MonitorSpec;
use tarn_lake::{Lake, NewEvent, CUSTOM_EVENT};

/// Raises each breach once as an event (delivered to the alert topic), and a recovery when a
/// window passes after a breached one.
pub(crate) async fn raise_alerts(
    lake: &Lake,
    spec: &MonitorSpec,
    windows: &[WindowReport],
    table: &str,
) -> Result<(Vec<AlertRecord>, Vec<AlertRecord>), MonitorError> {
    let mut alerts = Vec::new();
    let mut recovered = Vec::new();
    let severity = spec
        .alert
        .as_ref()
        .map(|a| a.severity.clone())
        .unwrap_or_else(|| "warning".into());
    let mut breached: BTreeMap<(String, String, String), bool> = BTreeMap::new();
    let notifier = tarn_notify::Notifier::for_lake(&lake.config);
    for w in windows {
        let mut new_breaches = Vec::new();
        for r in &w.results {
            let series = (r.check.clone(), r.field.clone(), r.method.clone());
            let was = breached.get(&series).copied().unwrap_or(false);
            let kind = match r.status {
                Status::Alert => BREACH,
                Status::Ok if was => RECOVERED,
                _ => continue,
            };
            breached.insert(series, r.status == Status::Alert);
            let detail = serde_json::json!({
                "monitor": spec.name,
                "check": r.check,
                "field": r.field,
                "method": r.method,
                "window_start": w.start,
                "window_end": w.end,
                "value": r.value,
                "threshold": r.threshold,
                "severity": severity,
                "model": spec.model.as_ref().map(|m| m.name.clone()),
                "model_version": r.model_version,
                "table": table,
                "detail": r.detail,
            });
            let event = NewEvent {
                kind: CUSTOM_EVENT.into(),
                zone: String::new(),
                key: kind.into(),
                etag: format!(
                    "{}|{}|{}|{}|{}",
                    spec.name, r.check, r.field, r.method, w.start
                ),
                size: 0,
                detail: serde_json::json!({"source": ALERT_SOURCE, "detail_type": kind, "detail": detail}),
            };
            let Some(event_id) = lake.events().record_event_id(&event).await? else {
                continue; // raised by an earlier run
            };
            let record = AlertRecord {
                event_id,
                check: r.check.clone(),
                field: r.field.clone(),
                window_start: w.start.clone(),
                value: r.value,
                threshold: r.threshold,
                severity: severity.clone(),
            };
            if let Some(alert) = &spec.alert {
                let verb = if kind == BREACH { "alert" } else { "recovered" };
                let subject = format!(
                    "{}: monitor {} {verb}: {} of {} = {} (threshold {}) in the window from {}",
                    lake.config.lake,
                    spec.name,
                    r.check,
                    r.field,
                    r.value
                        .map(|v| format!("{v:.4}"))
                        .unwrap_or_else(|| "none".into()),
                    r.threshold
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "none".into()),
                    w.start
                );
                let msg = tarn_notify::Message::new(subject.clone(), detail);
                match notifier.deliver(&alert.topic, &msg).await {
                    Ok(report) => {
                        lake.record_deliveries(&alert.topic, &subject, &report)
                            .await
                    }
                    Err(e) => tracing::warn!("monitor {}: {e}", spec.name),
                }
            }
            if kind == BREACH {
                new_breaches.push(serde_json::json!({
                    "check": r.check, "field": r.field, "method": r.method,
                    "value": r.value, "threshold": r.threshold,
                }));
                alerts.push(record);
            } else {
                recovered.push(record);
            }
        }
        if !new_breaches.is_empty() {
            // The window's alert: one event however many fields breached, so that a
            // retraining pipeline triggered by it runs once.
            let detail = serde_json::json!({
                "monitor": spec.name,
                "window_start": w.start,
                "window_end": w.end,
                "severity": severity,
                "model": spec.model.as_ref().map(|m| m.name.clone()),
                "model_version": w.model_versions.join(","),
                "table": table,
                "breaches": new_breaches,
            });
            let event = NewEvent {
                kind: CUSTOM_EVENT.into(),
                zone: String::new(),
                key: ALERT.into(),
                etag: format!("{}|{}", spec.name, w.start),
                size: 0,
                detail: serde_json::json!({"source": ALERT_SOURCE, "detail_type": ALERT, "detail": detail}),
            };
            lake.events().record_event_id(&event).await?;
        }
    }
    Ok((alerts, recovered))
}
