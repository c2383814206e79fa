//! Bearer tokens: when auth is on, every call but `/health` and `/ready` needs
//! `Authorization: Bearer TOKEN` naming a live token from `tarn token create`; a read-only token
//! may read and query but not land, crawl or load. Failures are logged with the path and the
//! reason, never with the token.

use crate::{ApiError, App};
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Whether a request may go on with a read-only token: reads, and SQL (which is read-only).
fn is_read(method: &Method, path: &str) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
        || matches!(
            path,
            "/api/v1/sql" | "/ui/sql" | "/ui/sql/download" | "/ui/sign-in" | "/ui/sign-out"
        )
}

/// Whether a path is the web UI's (a browser signs in there with a session cookie; the API
/// takes bearer tokens only).
fn is_ui(path: &str) -> bool {
    path == "/" || path == "/ui" || path.starts_with("/ui/")
}

fn open_path(path: &str) -> bool {
    matches!(path, "/health" | "/ready")
}

/// What the request's token may write: every domain (`None`), or one. Handlers that write
/// take it and call [`Scope::allows`].
#[derive(Clone, Debug, Default)]
pub(crate) struct Scope(pub Option<(String, String)>);

impl Scope {
    /// Whether the token may write domain `domain`; the error names the token and its domain.
    pub(crate) fn allows(&self, domain: &str) -> Result<(), ApiError> {
        match &self.0 {
            Some((token, d)) if d != domain => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "token_scope",
                format!("token `{token}` may write only domain `{d}`, not `{domain}`"),
            )),
            _ => Ok(()),
        }
    }

    /// Whether the token may act on the lake as a whole (not scoped to one domain).
    pub(crate) fn unscoped(&self, what: &str) -> Result<(), ApiError> {
        match &self.0 {
            Some((token, d)) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "token_scope",
                format!("token `{token}` may write only domain `{d}`; it may not {what}"),
            )),
            None => Ok(()),
        }
    }
}

/// Who is calling: the name of the request's token when auth is on.
#[derive(Clone, Debug, Default)]
pub(crate) struct Caller(pub Option<String>);

impl Caller {
    /// The token's name; without auth, what the request claims (the CLI sends the user), or
    /// `anonymous`.
    pub(crate) fn name(&self, claimed: Option<String>) -> String {
        self.0
            .clone()
            .or(claimed.filter(|c| !c.trim().is_empty()))
            .unwrap_or_else(|| "anonymous".into())
    }
}

pub(crate) async fn require_token(
    State(app): State<App>,
    mut req: Request,
    next: Next,
) -> Response {
    req.extensions_mut().insert(Scope::default());
    req.extensions_mut().insert(Caller::default());
    if !app.auth || open_path(req.uri().path()) {
        return next.run(req).await;
    }
    let path = req.uri().path().to_string();
    let ui = is_ui(&path);
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    // A browser on the UI's pages carries its session's cookie instead.
    let presented = bearer.or_else(|| {
        ui.then(|| app.ui_sessions.token_for(req.headers()))
            .flatten()
    });
    let Some(token) = presented.as_deref() else {
        if ui {
            if tarn_ui::session::open_before_sign_in(&path) {
                return next.run(req).await;
            }
            return axum::response::Redirect::to("/ui/sign-in").into_response();
        }
        tracing::warn!(path, method = %req.method(), reason = "no bearer token", "auth failed");
        return unauthorized("this server needs `Authorization: Bearer TOKEN`; create a token with `tarn token create --name NAME`");
    };
    let record = match app.lake.tokens().verify_token(token).await {
        Ok(r) => r,
        Err(e) => return ApiError::internal(e).into_response(),
    };
    let Some(record) = record else {
        tracing::warn!(path, method = %req.method(), reason = "unknown or revoked token", "auth failed");
        if ui {
            return axum::response::Redirect::to("/ui/sign-in").into_response();
        }
        return unauthorized(
            "the token is unknown or revoked; ask for a new one (`tarn token create --name NAME`)",
        );
    };
    if record.read_only && !is_read(req.method(), &path) {
        tracing::warn!(path, method = %req.method(), token_name = %record.name, reason = "read-only token", "auth failed");
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "token_read_only",
            format!(
                "token `{}` is read-only: it may read and query, not land, crawl or load; use a token created without --read-only",
                record.name
            ),
        )
        .into_response();
    }
    tracing::Span::current().record("token", record.name.as_str());
    req.extensions_mut()
        .insert(Caller(Some(record.name.clone())));
    req.extensions_mut().insert(tarn_ui::session::Viewer {
        name: Some(record.name.clone()),
        read_only: record.read_only,
    });
    if let Some(domain) = &record.scope {
        req.extensions_mut()
            .insert(Scope(Some((record.name.clone(), domain.clone()))));
    }
    next.run(req).await
}

fn unauthorized(message: &str) -> Response {
    let mut res = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    res
}
