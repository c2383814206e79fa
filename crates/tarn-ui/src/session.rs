//! Signing in under `--auth`: a page takes a token and, when it is live, opens a session
//! whose id goes into a cookie (HttpOnly, SameSite=Strict, the whole site's path). The
//! session keeps the token only in this process's memory and every request checks it again
//! (a revoked token ends its sessions at once); signing out, or the server stopping, ends it.
//! The server's auth reads the cookie ([`Sessions::token_for`]) and tells the pages who is
//! looking ([`Viewer`]): a read-only token sees no control that writes.

use crate::layout::UiError;
use crate::Ui;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, DOCTYPE};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The cookie that carries a session's id.
pub const COOKIE: &str = "tarn_session";

/// Who is looking at a page, as the server's auth found it (none without `--auth`).
#[derive(Clone, Debug, Default)]
pub struct Viewer {
    /// The token's name.
    pub name: Option<String>,
    pub read_only: bool,
    /// The tables the viewer's queries may read (every one when none).
    pub may_read: Option<tarn_lake::MayRead>,
}

impl Viewer {
    /// Whether the viewer may read the table `domain.layer.table`.
    pub fn may_read_table(&self, address: &str) -> bool {
        let Some(check) = &self.may_read else {
            return true;
        };
        match address.split('.').collect::<Vec<_>>()[..] {
            [d, l, t] => (check.0)(d, l, t),
            _ => false,
        }
    }

    /// Whether the page may offer controls that change the lake.
    pub fn may_write(&self) -> bool {
        !self.read_only
    }

    /// Who a change made from a page is recorded as: the token's name, or the UI itself
    /// without `--auth`.
    pub fn who(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| "anonymous (web UI)".into())
    }
}

/// Open sessions: session id to the token that opened it.
#[derive(Clone, Default)]
pub struct Sessions(Arc<Mutex<HashMap<String, String>>>);

impl Sessions {
    fn open(&self, token: &str) -> String {
        let id = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        self.lock().insert(id.clone(), token.to_string());
        id
    }

    fn end(&self, id: &str) {
        self.lock().remove(id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The token of the session a request's cookie names, when it names an open one.
    pub fn token_for(&self, headers: &HeaderMap) -> Option<String> {
        let id = session_id(headers)?;
        self.lock().get(&id).cloned()
    }
}

/// The session id in a request's cookies.
fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// Paths a browser may open before signing in.
pub fn open_before_sign_in(path: &str) -> bool {
    path == "/ui/sign-in" || path.starts_with("/ui/assets/")
}

fn sign_in_page(ui: &Ui, status: StatusCode, problem: Option<&str>) -> Response {
    let body = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "sign in · " (ui.lake.config.lake) " · tarn" }
                link rel="icon" href="data:,";
                link rel="stylesheet" href="/ui/assets/tarn.css";
            }
            body {
                nav { span.brand { "tarn · " (ui.lake.config.lake) } }
                main {
                    h1 { "Sign in" }
                    @if let Some(p) = problem { p.error { (p) } }
                    form method="post" action="/ui/sign-in" {
                        input type="hidden" name="csrf" value=(ui.csrf);
                        label { "token " input type="password" name="token" autocomplete="off" autofocus; }
                        " " button type="submit" { "Sign in" }
                    }
                    p.quiet { "A token from " code { "tarn token create --name NAME" } " (add " code { "--read-only" } " for a token that only reads)." }
                }
            }
        }
    };
    (status, Html(body.into_string())).into_response()
}

pub(crate) async fn form(State(ui): State<Ui>) -> Response {
    sign_in_page(&ui, StatusCode::OK, None)
}

#[derive(Deserialize)]
pub(crate) struct SignIn {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
}

pub(crate) async fn sign_in(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Form(f): Form<SignIn>,
) -> Response {
    if let Err(e) = check_form(&ui, &headers, &f.csrf) {
        return e.into_response();
    }
    let token = f.token.trim();
    match ui.lake.tokens().verify_token(token).await {
        Ok(Some(_)) => {
            let id = ui.sessions.open(token);
            (
                [(
                    header::SET_COOKIE,
                    format!("{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/"),
                )],
                Redirect::to("/ui/"),
            )
                .into_response()
        }
        Ok(None) => sign_in_page(
            &ui,
            StatusCode::UNAUTHORIZED,
            Some("that token is unknown, revoked or expired"),
        ),
        Err(e) => UiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

#[derive(Deserialize)]
pub(crate) struct SignOut {
    #[serde(default)]
    csrf: String,
}

pub(crate) async fn sign_out(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Form(f): Form<SignOut>,
) -> Response {
    if let Err(e) = check_form(&ui, &headers, &f.csrf) {
        return e.into_response();
    }
    if let Some(id) = session_id(&headers) {
        ui.sessions.end(&id);
    }
    (
        [(
            header::SET_COOKIE,
            format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
        )],
        Redirect::to("/ui/sign-in"),
    )
        .into_response()
}

/// Refuses a state-changing form that did not come from a page this server made: its
/// token must be the one the pages carry, and a browser's `Origin`, when it names one (a
/// privacy setting may send `null`), must be this server.
pub(crate) fn check_form(ui: &Ui, headers: &HeaderMap, csrf: &str) -> Result<(), UiError> {
    let host = headers.get("host").and_then(|h| h.to_str().ok());
    let origin = headers.get("origin").and_then(|h| h.to_str().ok());
    if let (Some(origin), Some(host)) = (origin.filter(|o| *o != "null"), host) {
        let from = origin.split("://").nth(1).unwrap_or(origin);
        if from != host {
            return Err(UiError::new(
                StatusCode::FORBIDDEN,
                format!("refused: this form came from {origin}, not from this server"),
            ));
        }
    }
    if csrf != ui.csrf {
        return Err(UiError::new(
            StatusCode::FORBIDDEN,
            "refused: the form carries no valid CSRF token (reload the page and try again)",
        ));
    }
    Ok(())
}
