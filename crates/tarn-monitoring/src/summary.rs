//! A monitor as tarn reads it, for people and programs (the CLI's `--format json` and the
//! API answer the same shape).

use serde::{Deserialize, Serialize};
use tarn_config::{Baseline, MonitorSpec};

/// One monitor: its model, sources, window, fields and checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MonitorSummary {
    pub name: String,
    /// The monitor file.
    pub file: String,
    /// `NAME`, `NAME@ALIAS` or `NAME/VERSION`.
    pub model: Option<String>,
    /// regression, binary or multiclass.
    pub model_type: Option<String>,
    pub endpoint: Option<String>,
    /// The serving query (none: the endpoint's inference table).
    pub serving_query: Option<String>,
    pub id_column: String,
    pub timestamp_column: String,
    pub actuals_query: Option<String>,
    /// `training`, or the baseline's query.
    pub baseline: String,
    pub window: String,
    pub schedule: Option<String>,
    pub fields: Vec<FieldSummary>,
    /// The kinds of its checks, in file order.
    pub checks: Vec<String>,
    /// Each check as a sentence (what it compares, when it alerts), in file order.
    #[serde(default)]
    pub check_settings: Vec<String>,
    pub alert_topic: Option<String>,
    pub severity: Option<String>,
    /// `DOMAIN.service.monitor_NAME`.
    pub results_table: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FieldSummary {
    /// raw_inputs, features, predictions or actuals.
    pub group: String,
    pub name: String,
    /// numeric, boolean, categorical, string, datetime, text or tensor.
    pub field_type: String,
    /// The SQL expression it is read from.
    pub from: String,
}

pub fn summary(s: &MonitorSpec) -> MonitorSummary {
    MonitorSummary {
        name: s.name.clone(),
        file: s.path.display().to_string(),
        model: s.model.as_ref().map(|m| m.to_string()),
        model_type: s.model_type.map(|t| t.name().to_string()),
        endpoint: s.endpoint.clone(),
        serving_query: s.serving.query.clone(),
        id_column: s.serving.id_column.clone(),
        timestamp_column: s.serving.timestamp_column.clone(),
        actuals_query: s.actuals.as_ref().map(|a| a.query.clone()),
        baseline: match &s.baseline {
            Baseline::Training => "training".into(),
            Baseline::Query(q) => q.clone(),
        },
        window: s.window.to_string(),
        schedule: s.schedule.clone(),
        fields: s
            .fields
            .iter()
            .map(|f| FieldSummary {
                group: f.group.name().into(),
                name: f.name.clone(),
                field_type: f.field_type.name().into(),
                from: f.expression.clone(),
            })
            .collect(),
        checks: s.checks.iter().map(|c| c.name().to_string()).collect(),
        check_settings: s.checks.iter().map(|c| c.describe()).collect(),
        alert_topic: s.alert.as_ref().map(|a| a.topic.clone()),
        severity: s.alert.as_ref().map(|a| a.severity.clone()),
        results_table: s.results_table(),
    }
}
