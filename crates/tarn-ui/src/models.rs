//! The model registry: every registered model; a model's page with each version's approval
//! (who, when, why), aliases, the run it came from and its lineage to the training tables at
//! the versions it read; approve or reject a pending version with a reason, recorded with
//! who decided (the signed-in token's name).

use crate::layout::{metadata_error, page, when, Section, UiError};
use crate::session::check_form;
use crate::session::Viewer;
use crate::Ui;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use maud::html;
use serde::Deserialize;

pub(crate) async fn list(State(ui): State<Ui>, viewer: Viewer) -> Result<Html<String>, UiError> {
    let models = ui
        .lake
        .registry()
        .registered_models()
        .await
        .map_err(metadata_error)?;
    let body = html! {
        @if models.is_empty() {
            p.quiet { "No model is registered yet: " code { "tarn train NAME" } " registers one." }
        }
        table {
            thead { tr { th { "model" } th { "description" } th { "aliases" } th { "updated" } } }
            tbody {
                @for m in &models {
                    tr {
                        td { a href={ "/ui/models/" (crate::catalog::percent(&m.name)) } { (m.name) } }
                        td { (m.description) }
                        td { @for a in &m.aliases { span.tag { (a.alias) " → " (a.version) } " " } }
                        td { (when(m.last_updated_timestamp)) }
                    }
                }
            }
        }
    };
    Ok(page(&ui, &viewer, "Models", Section::Models, body))
}

pub(crate) async fn show(
    State(ui): State<Ui>,
    viewer: Viewer,
    Path(name): Path<String>,
) -> Result<Html<String>, UiError> {
    let registry = ui.lake.registry();
    let model = registry
        .registered_model(&name)
        .await
        .map_err(metadata_error)?
        .ok_or_else(|| {
            UiError::new(
                StatusCode::NOT_FOUND,
                format!("no registered model `{name}`"),
            )
        })?;
    let mut versions = registry
        .model_versions(Some(&name))
        .await
        .map_err(metadata_error)?;
    versions.sort_by_key(|v| std::cmp::Reverse(v.version.parse::<i64>().unwrap_or(0)));
    let may_write = viewer.may_write();
    let aliases_action = format!("/ui/models/{}/aliases", crate::catalog::percent(&name));
    let body = html! {
        @if !model.description.is_empty() { p { (model.description) } }
        section.aliases {
            h2 { "Aliases" }
            @if model.aliases.is_empty() { p.quiet { "No alias yet. An endpoint that serves " code { "models:/" (name) "@ALIAS" } " follows its alias when it moves." } }
            table {
                tbody {
                    @for a in &model.aliases {
                        tr {
                            td.mono { "@" (a.alias) } td { "→ version " (a.version) }
                            td {
                                @if may_write {
                                    form.inline method="post" action=(aliases_action) {
                                        input type="hidden" name="csrf" value=(ui.csrf);
                                        input type="hidden" name="alias" value=(a.alias);
                                        button.bad type="submit" name="action" value="delete" { "Remove" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if may_write && !versions.is_empty() {
                form.alias method="post" action=(aliases_action) {
                    input type="hidden" name="csrf" value=(ui.csrf);
                    "Point " input type="text" name="alias" placeholder="champion" required;
                    " at version "
                    select name="version" {
                        @for v in &versions { option value=(v.version) { (v.version) " (" (v.approval.status) ")" } }
                    }
                    " " button type="submit" name="action" value="set" { "Set alias" }
                }
            }
        }
        h2 { "Versions" }
        table {
            thead { tr { th.num { "version" } th { "created" } th { "approval" } th { "by" } th { "reason" } th { "aliases" } th { "run" } th { "trained on" } th {} } }
            tbody {
                @for v in &versions {
                    @let lineage = v.tags.iter().find(|t| t.key == "tarn.lineage")
                        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t.value).ok());
                    tr {
                        td.num { (v.version) }
                        td { (when(v.creation_timestamp)) }
                        td { span class={ "status " (v.approval.status) } { (v.approval.status) } }
                        td { (v.approval.by) }
                        td { (v.approval.reason) }
                        td { (v.aliases.join(", ")) }
                        td.mono { @if v.run_id.is_empty() { "" } @else { a href={ "/ui/runs/" (crate::catalog::percent(&v.run_id)) } { (v.run_id) } } }
                        td {
                            @if let Some(channels) = lineage.as_ref().and_then(|l| l.as_object()) {
                                @for (channel, c) in channels {
                                    div {
                                        (channel) ": "
                                        @if let Some(tables) = c["tables"].as_object() {
                                            @for (table, version) in tables {
                                                a href={ "/ui/tables/" (table) } { (table) } " v" (version.to_string()) " "
                                            }
                                        }
                                        (c["rows"].as_u64().map(|r| format!("({r} rows)")).unwrap_or_default())
                                    }
                                }
                            }
                        }
                        td {
                            @if v.approval.status == "PendingManualApproval" && viewer.may_write() {
                                form.decide method="post" action={ "/ui/models/" (crate::catalog::percent(&name)) "/versions/" (v.version) "/decide" } {
                                    input type="hidden" name="csrf" value=(ui.csrf);
                                    input type="text" name="reason" placeholder="why" required;
                                    " " button type="submit" name="decision" value="approve" { "Approve" }
                                    " " button.bad type="submit" name="decision" value="reject" { "Reject" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(
        &ui,
        &viewer,
        &format!("Model {name}"),
        Section::Models,
        body,
    ))
}

#[derive(Deserialize)]
pub(crate) struct AliasForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    alias: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    action: String,
}

/// Sets or removes an alias (recorded with who, as the API does); the registry refuses an
/// alias that requires approval for a version that is not approved.
pub(crate) async fn alias(
    State(ui): State<Ui>,
    viewer: Viewer,
    Path(name): Path<String>,
    headers: HeaderMap,
    Form(f): Form<AliasForm>,
) -> Response {
    if let Err(e) = check_form(&ui, &headers, &f.csrf) {
        return e.into_response();
    }
    let by = viewer.who();
    let registry = ui.lake.registry();
    let alias = f.alias.trim();
    let done = match f.action.as_str() {
        "set" => {
            registry
                .set_alias(&name, alias, f.version.trim(), &by)
                .await
        }
        "delete" => registry.delete_alias(&name, alias, &by).await,
        other => {
            return UiError::new(
                StatusCode::BAD_REQUEST,
                format!("`{other}` is no alias action: set or delete"),
            )
            .into_response()
        }
    };
    match done {
        Ok(()) => {
            Redirect::to(&format!("/ui/models/{}", crate::catalog::percent(&name))).into_response()
        }
        Err(e) => metadata_error(e).into_response(),
    }
}

#[derive(Deserialize)]
pub(crate) struct Decision {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    decision: String,
}

pub(crate) async fn decide(
    State(ui): State<Ui>,
    viewer: Viewer,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
    Form(d): Form<Decision>,
) -> Response {
    if let Err(e) = check_form(&ui, &headers, &d.csrf) {
        return e.into_response();
    }
    let approve = match d.decision.as_str() {
        "approve" => true,
        "reject" => false,
        other => {
            return UiError::new(
                StatusCode::BAD_REQUEST,
                format!("`{other}` is no decision: approve or reject"),
            )
            .into_response()
        }
    };
    if d.reason.trim().is_empty() {
        return UiError::new(
            StatusCode::BAD_REQUEST,
            "a reason is required: say why the version is approved or rejected",
        )
        .into_response();
    }
    let by = viewer.who();
    match ui
        .lake
        .registry()
        .decide(&name, &version, approve, &by, d.reason.trim())
        .await
    {
        Ok(_) => {
            if let Some(w) = &ui.wake {
                w.notify_one();
            }
            Redirect::to(&format!("/ui/models/{}", crate::catalog::percent(&name))).into_response()
        }
        Err(e) => metadata_error(e).into_response(),
    }
}
