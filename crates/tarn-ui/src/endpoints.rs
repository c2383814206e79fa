//! Endpoints: each endpoint with the model URI it follows and its traffic split; an
//! endpoint's page with the versions it serves now, its last hour of requests per minute
//! (rate, errors, mean and 95th-percentile latency, by version) as charts, the inference
//! table every answered row goes to, and a form built from the served version's signature
//! that sends a request and shows the answer.
//!
//! What only the serving side knows (the loaded versions, the minute counters, scoring a
//! request) comes through [`Serving`], which `tarn serve` implements over its endpoints; the
//! counters are this node's, kept in memory for [`MINUTES`] minutes.

use crate::catalog::percent;
use crate::layout::{json_island as island, metadata_error, page, Section, UiError};
use crate::session::{check_form, Viewer};
use crate::Ui;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Form;
use maud::{html, Markup};
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use tarn_config::EndpointSpec;

/// Minutes of traffic the serving side keeps and the page charts.
pub const MINUTES: i64 = 60;

/// What an endpoint serves right now.
#[derive(Debug, Clone, Default)]
pub struct Live {
    pub version: Option<String>,
    pub canary_version: Option<String>,
    pub runtime: Option<String>,
    /// What it is doing or why it cannot serve.
    pub state: String,
}

/// One minute of an endpoint's requests to one version.
#[derive(Debug, Clone, Default)]
pub struct Traffic {
    /// The minute's start, seconds since the epoch.
    pub start: i64,
    pub version: String,
    pub requests: u64,
    pub client_errors: u64,
    pub server_errors: u64,
    pub latency_mean_ms: f64,
    pub latency_p95_ms: f64,
}

/// A scored request's answer: its status and body.
pub type Answer = Pin<Box<dyn Future<Output = (u16, String)> + Send>>;

/// The serving side of the endpoints, as the pages need it.
pub trait Serving: Send + Sync {
    /// What endpoint `name` serves now (`None`: this process does not serve it).
    fn live(&self, name: &str) -> Option<Live>;
    /// Its last [`MINUTES`] minutes, oldest first; a minute without requests is absent.
    fn traffic(&self, name: &str) -> Vec<Traffic>;
    /// Scores a JSON body as a request to its invocations path would be.
    fn invoke(&self, name: &str, body: Vec<u8>) -> Answer;
}

pub(crate) async fn specs(ui: &Ui) -> Result<Vec<(String, Result<EndpointSpec, String>)>, UiError> {
    let records = ui.lake.endpoints().list().await.map_err(metadata_error)?;
    Ok(records
        .into_iter()
        .map(|r| {
            let spec = serde_json::from_value::<EndpointSpec>(r.spec).map_err(|e| e.to_string());
            (r.name, spec)
        })
        .collect())
}

fn split(spec: &EndpointSpec) -> String {
    match &spec.canary {
        Some(c) => format!(
            "{}% {} · {}% {}",
            100.0 - c.percent,
            spec.model,
            c.percent,
            c.model
        ),
        None => format!("100% {}", spec.model),
    }
}

pub(crate) async fn list(State(ui): State<Ui>, viewer: Viewer) -> Result<Html<String>, UiError> {
    let all = specs(&ui).await?;
    let body = html! {
        @if all.is_empty() {
            p.quiet { "No endpoint yet: declare one under " code { "endpoints:" } " in tarn.yml, or " code { "tarn endpoints deploy NAME --model models:/MODEL@champion" } "." }
        }
        table {
            thead { tr { th { "endpoint" } th { "traffic" } th { "serving now" } th { "state" } th { "inference table" } } }
            tbody {
                @for (name, spec) in &all {
                    @let live = ui.serving.as_ref().and_then(|s| s.live(name));
                    tr {
                        td { a href={ "/ui/endpoints/" (percent(name)) } { (name) } }
                        @match spec {
                            Ok(spec) => {
                                td { (split(spec)) }
                                td { (served(live.as_ref())) }
                                td { (live.as_ref().map(|l| l.state.as_str()).unwrap_or("not served by this process")) }
                                td { @let t = spec.inference_table(name); a href={ "/ui/tables/" (t) } { (t) } }
                            }
                            Err(e) => { td.error colspan="4" { "its stored spec is unreadable: " (e) } }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&ui, &viewer, "Endpoints", Section::Endpoints, body))
}

fn served(live: Option<&Live>) -> String {
    let Some(l) = live else { return String::new() };
    match (&l.version, &l.canary_version) {
        (Some(v), Some(c)) => format!("version {v}, canary version {c}"),
        (Some(v), None) => format!("version {v}"),
        (None, Some(c)) => format!("canary version {c} only"),
        (None, None) => "nothing loaded".into(),
    }
}

/// The served version's input fields from its `MLmodel` signature: (name, type), or `None`
/// when it has none, or an input is not one value per row (an unnamed tensor, or one of
/// several values a row); the form then takes a JSON body. A named tensor of one value a row
/// (tarn's own models' inputs) is a field of its dtype.
async fn signature(ui: &Ui, spec: &EndpointSpec) -> Option<Vec<(String, String)>> {
    let resolved = ui.lake.resolve_model(&spec.model).await.ok()?;
    let mlmodel = ui.lake.model_file(&resolved.location).await.ok()??;
    let inputs = mlmodel.pointer("/signature/inputs")?;
    // MLflow writes the signature's inputs as JSON text inside the YAML.
    let inputs: Json = match inputs {
        Json::String(s) => serde_json::from_str(s).ok()?,
        v => v.clone(),
    };
    let fields: Vec<(String, String)> = inputs
        .as_array()?
        .iter()
        .map(|f| {
            let name = f["name"].as_str().unwrap_or("").to_string();
            match f["type"].as_str().unwrap_or("") {
                "tensor" => {
                    let spec = &f["tensor-spec"];
                    let shape: Vec<i64> = spec["shape"]
                        .as_array()?
                        .iter()
                        .map(|d| d.as_i64())
                        .collect::<Option<_>>()?;
                    let one_a_row = matches!(shape.as_slice(), [-1] | [-1, 1]);
                    let ty = match spec["dtype"].as_str().unwrap_or("") {
                        "float32" | "float64" | "float16" => "double",
                        "int8" | "int16" | "int32" | "int64" | "uint8" | "uint16" | "uint32"
                        | "uint64" => "long",
                        "bool" => "boolean",
                        _ => "string",
                    };
                    one_a_row.then(|| (name, ty.to_string()))
                }
                ty => Some((name, ty.to_string())),
            }
        })
        .collect::<Option<_>>()?;
    (!fields.is_empty() && fields.iter().all(|(n, _)| !n.is_empty())).then_some(fields)
}

/// Chart data for the traffic: every minute of the last hour, one line per version.
fn charts(traffic: &[Traffic], now: i64) -> Vec<(&'static str, Json)> {
    let first = now.div_euclid(60) * 60 - (MINUTES - 1) * 60;
    let minutes: Vec<i64> = (0..MINUTES).map(|i| first + i * 60).collect();
    let mut by_version: BTreeMap<&str, BTreeMap<i64, &Traffic>> = BTreeMap::new();
    for t in traffic {
        by_version
            .entry(t.version.as_str())
            .or_default()
            .insert(t.start, t);
    }
    let line = |label: String,
                f: &dyn Fn(Option<&Traffic>) -> Option<f64>,
                at: &BTreeMap<i64, &Traffic>| {
        let points: Vec<(i64, Option<f64>)> = minutes
            .iter()
            .map(|m| (*m, f(at.get(m).copied())))
            .collect();
        serde_json::json!({"label": label, "points": points})
    };
    let mut rate = Vec::new();
    let mut errors = Vec::new();
    let mut latency = Vec::new();
    for (v, at) in &by_version {
        rate.push(line(
            format!("version {v}"),
            &|t| Some(t.map_or(0.0, |t| t.requests as f64)),
            at,
        ));
        errors.push(line(
            format!("version {v}: 4xx"),
            &|t| Some(t.map_or(0.0, |t| t.client_errors as f64)),
            at,
        ));
        errors.push(line(
            format!("version {v}: 5xx"),
            &|t| Some(t.map_or(0.0, |t| t.server_errors as f64)),
            at,
        ));
        latency.push(line(
            format!("version {v}: mean"),
            &|t| t.map(|t| t.latency_mean_ms),
            at,
        ));
        latency.push(line(
            format!("version {v}: p95"),
            &|t| t.map(|t| t.latency_p95_ms).filter(|x| x.is_finite()),
            at,
        ));
    }
    vec![
        ("Requests per minute", serde_json::json!({"series": rate})),
        ("Errors per minute", serde_json::json!({"series": errors})),
        ("Latency (ms)", serde_json::json!({"series": latency})),
    ]
}

/// The request form: a field per signature input, or a JSON body.
fn form(
    ui: &Ui,
    name: &str,
    fields: Option<&[(String, String)]>,
    sent: &BTreeMap<String, String>,
) -> Markup {
    html! {
        form.invoke method="post" action={ "/ui/endpoints/" (percent(name)) "/invoke" } {
            input type="hidden" name="csrf" value=(ui.csrf);
            @if let Some(fields) = fields {
                table {
                    tbody {
                        @for (field, ty) in fields {
                            tr {
                                td { label for={ "f-" (field) } { (field) } }
                                td.mono.quiet { (ty) }
                                td { input id={ "f-" (field) } type="text" name={ "field." (field) } value=(sent.get(field.as_str()).map(String::as_str).unwrap_or("")); }
                            }
                        }
                    }
                }
            } @else {
                p.quiet { "This version's signature names no columns: write the body in one of MLflow's scoring formats." }
                textarea name="body" rows="6" cols="80" placeholder="{\"dataframe_records\": [{\"x\": 1.0}]}" { (sent.get("").map(String::as_str).unwrap_or("")) }
            }
            button type="submit" { "Send" }
        }
    }
}

async fn endpoint_page(
    ui: &Ui,
    viewer: &Viewer,
    name: &str,
    sent: BTreeMap<String, String>,
    answer: Option<(String, u16, String)>,
) -> Result<Html<String>, UiError> {
    let spec = specs(ui)
        .await?
        .into_iter()
        .find(|(n, _)| n == name)
        .ok_or_else(|| UiError::new(StatusCode::NOT_FOUND, format!("no endpoint `{name}`")))?
        .1
        .map_err(|e| {
            UiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("endpoint `{name}`'s stored spec is unreadable: {e}"),
            )
        })?;
    let live = ui.serving.as_ref().and_then(|s| s.live(name));
    let traffic = ui
        .serving
        .as_ref()
        .map(|s| s.traffic(name))
        .unwrap_or_default();
    let fields = signature(ui, &spec).await;
    let table = spec.inference_table(name);
    let model_link = |uri: &str| {
        let model = uri
            .strip_prefix("models:/")
            .and_then(|r| r.split(['@', '/']).next())
            .unwrap_or("");
        html! { @if model.is_empty() { span.mono { (uri) } } @else { a.mono href={ "/ui/models/" (percent(model)) } { (uri) } } }
    };
    let body = html! {
        section {
            h2 { "Traffic" }
            table {
                thead { tr { th { "model" } th.num { "share" } th { "version serving now" } } }
                tbody {
                    tr {
                        td { (model_link(&spec.model)) }
                        td.num { (format!("{}%", 100.0 - spec.canary.as_ref().map_or(0.0, |c| c.percent))) }
                        td { (live.as_ref().and_then(|l| l.version.clone()).unwrap_or_default()) }
                    }
                    @if let Some(c) = &spec.canary {
                        tr {
                            td { (model_link(&c.model)) " (canary)" }
                            td.num { (format!("{}%", c.percent)) }
                            td { (live.as_ref().and_then(|l| l.canary_version.clone()).unwrap_or_default()) }
                        }
                    }
                }
            }
            p.quiet {
                @match &live {
                    Some(l) => { (l.runtime.as_deref().unwrap_or("")) " · " (l.state) }
                    None => "This process does not serve endpoints (tarn serve does).",
                }
                " · every answered row goes to " a href={ "/ui/tables/" (table) } { (table) }
            }
        }
        section {
            h2 { "The last hour" }
            @if traffic.is_empty() {
                p.quiet { "No request in the last hour on this node." }
            }
            @for (i, (title, data)) in charts(&traffic, chrono::Utc::now().timestamp()).iter().enumerate() {
                @let id = format!("traffic-{i}");
                h3 { (title) }
                script id=(id) type="application/json" { (island(data)) }
                div.series-chart data-source=(id) data-x="time" {}
            }
        }
        @if viewer.may_write() && live.is_some() {
            section #try {
                h2 { "Send a request" }
                (form(ui, name, fields.as_deref(), &sent))
                @if let Some((request, status, text)) = &answer {
                    h3 { "Request" }
                    pre.mono { (request) }
                    h3 { "Answer " span class={ "status " (if *status < 400 { "succeeded" } else { "failed" }) } { (status) } }
                    pre.mono.answer { (text) }
                }
            }
        }
    };
    Ok(page(
        ui,
        viewer,
        &format!("Endpoint {name}"),
        Section::Endpoints,
        body,
    ))
}

pub(crate) async fn show(
    State(ui): State<Ui>,
    viewer: Viewer,
    Path(name): Path<String>,
) -> Result<Html<String>, UiError> {
    endpoint_page(&ui, &viewer, &name, BTreeMap::new(), None).await
}

/// A form value as the signature's type reads it: numbers for numeric types, true or false
/// for booleans, text otherwise; empty is null.
fn typed(value: &str, ty: &str) -> Result<Json, String> {
    let v = value.trim();
    if v.is_empty() {
        return Ok(Json::Null);
    }
    match ty {
        "double" | "float" => v
            .parse::<f64>()
            .map(Json::from)
            .map_err(|_| format!("`{v}` is not a number")),
        "long" | "integer" => v
            .parse::<i64>()
            .map(Json::from)
            .map_err(|_| format!("`{v}` is not a whole number")),
        "boolean" => match v {
            "true" => Ok(Json::Bool(true)),
            "false" => Ok(Json::Bool(false)),
            _ => Err(format!("`{v}` is not true or false")),
        },
        _ => Ok(Json::String(value.to_string())),
    }
}

pub(crate) async fn invoke(
    State(ui): State<Ui>,
    viewer: Viewer,
    Path(name): Path<String>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let csrf = form
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    if let Err(e) = check_form(&ui, &headers, csrf) {
        return e.into_response();
    }
    let Some(serving) = ui.serving.clone() else {
        return UiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "this process serves no endpoint; start tarn serve",
        )
        .into_response();
    };
    let mut sent = BTreeMap::new();
    let body = if let Some((_, raw)) = form.iter().find(|(k, _)| k == "body") {
        sent.insert(String::new(), raw.clone());
        raw.clone()
    } else {
        let spec = match specs(&ui).await {
            Ok(all) => all
                .into_iter()
                .find(|(n, _)| *n == name)
                .and_then(|(_, s)| s.ok()),
            Err(e) => return e.into_response(),
        };
        let types: BTreeMap<String, String> = match &spec {
            Some(s) => signature(&ui, s)
                .await
                .unwrap_or_default()
                .into_iter()
                .collect(),
            None => BTreeMap::new(),
        };
        let mut record = serde_json::Map::new();
        for (k, v) in &form {
            let Some(field) = k.strip_prefix("field.") else {
                continue;
            };
            sent.insert(field.to_string(), v.clone());
            let ty = types.get(field).map(String::as_str).unwrap_or("string");
            match typed(v, ty) {
                Ok(j) => {
                    record.insert(field.to_string(), j);
                }
                Err(why) => {
                    let answer =
                        Some((String::new(), 400, format!("field `{field}` ({ty}): {why}")));
                    return match endpoint_page(&ui, &viewer, &name, sent, answer).await {
                        Ok(p) => (StatusCode::BAD_REQUEST, p).into_response(),
                        Err(e) => e.into_response(),
                    };
                }
            }
        }
        serde_json::json!({ "dataframe_records": [record] }).to_string()
    };
    let (status, text) = serving.invoke(&name, body.clone().into_bytes()).await;
    let pretty = serde_json::from_str::<Json>(&text)
        .ok()
        .and_then(|j| serde_json::to_string_pretty(&j).ok())
        .unwrap_or(text);
    let request = serde_json::from_str::<Json>(&body)
        .ok()
        .and_then(|j| serde_json::to_string_pretty(&j).ok())
        .unwrap_or(body);
    match endpoint_page(&ui, &viewer, &name, sent, Some((request, status, pretty))).await {
        Ok(p) => p.into_response(),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_value_is_read_as_its_signature_type() {
        assert_eq!(typed("1.5", "double").unwrap(), serde_json::json!(1.5));
        assert_eq!(typed("7", "long").unwrap(), serde_json::json!(7));
        assert_eq!(typed(" ", "double").unwrap(), Json::Null);
        assert_eq!(typed("true", "boolean").unwrap(), Json::Bool(true));
        assert_eq!(typed("JFK", "string").unwrap(), serde_json::json!("JFK"));
        assert!(typed("x", "double").unwrap_err().contains("not a number"));
        assert!(typed("1.5", "long").unwrap_err().contains("whole number"));
    }

    #[test]
    fn the_traffic_charts_every_minute_with_zero_requests_where_none_came() {
        let now = 1_800_000_000;
        let minute = now / 60 * 60;
        let t = vec![Traffic {
            start: minute,
            version: "2".into(),
            requests: 5,
            server_errors: 1,
            latency_mean_ms: 3.0,
            latency_p95_ms: 5.0,
            ..Default::default()
        }];
        let c = charts(&t, now);
        let rate = &c[0].1["series"][0]["points"];
        assert_eq!(rate.as_array().unwrap().len(), MINUTES as usize);
        assert_eq!(rate[MINUTES as usize - 1], serde_json::json!([minute, 5.0]));
        assert_eq!(
            rate[0],
            serde_json::json!([minute - (MINUTES - 1) * 60, 0.0])
        );
        let latency = &c[2].1["series"][0]["points"];
        assert_eq!(latency[0][1], Json::Null);
        assert_eq!(c[1].1["series"][1]["points"][MINUTES as usize - 1][1], 1.0);
    }
}
