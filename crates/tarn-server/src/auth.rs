//! Who is calling: when auth is on, every call but `/health` and `/ready` needs
//! `Authorization: Bearer TOKEN` naming a live token from `tarn token create`, or a Signature V4
//! made with a token's AWS access key pair (`--aws`; service `glue` for Glue's API, `tarn` for
//! the rest, the lake's `s3.region` or us-east-1); a read-only token may read and query but not
//! land, crawl, load or change the catalog. Failures are logged with the path and the reason,
//! never with the token, the secret or the signature.

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
    req.extensions_mut().insert(Caller::default());
    // Without auth every caller may do everything; with it, nothing until its token is known.
    req.extensions_mut().insert(match app.auth {
        false => crate::access::Access::default(),
        true => crate::access::Access {
            who: "anonymous".into(),
            grants: Default::default(),
        },
    });
    if !app.auth || open_path(req.uri().path()) {
        return next.run(req).await;
    }
    let path = req.uri().path().to_string();
    // A Glue call is refused in Glue's shape, so its SDK reads the reason.
    let glue = crate::glue::operation(req.headers()).map(str::to_string);
    // `POST /` is Glue's, not the UI's (whose `/` only leads to `/ui/`).
    let ui = is_ui(&path) && !(path == "/" && req.method() == axum::http::Method::POST);
    let refuse = |status: StatusCode, code: &'static str, message: String| -> Response {
        if glue.is_some() {
            let mut e = crate::glue::GlueError::denied(message);
            e.status = status;
            e.into_response()
        } else if status == StatusCode::UNAUTHORIZED {
            unauthorized(&message)
        } else {
            ApiError::new(status, code, message).into_response()
        }
    };
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let record = if authorization.as_deref().is_some_and(crate::sigv4::is_sigv4) {
        match signed(&app, req, glue.is_some()).await {
            Ok((record, rebuilt)) => {
                req = rebuilt;
                record
            }
            Err(why) => {
                tracing::warn!(path, reason = %why, "auth failed: Signature V4");
                return refuse(StatusCode::FORBIDDEN, "signature", why);
            }
        }
    } else {
        let bearer = authorization
            .as_deref()
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
            return refuse(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                if glue.is_some() {
                    "this server needs requests signed with a token's AWS access key (`tarn token create NAME --aws`)".into()
                } else {
                    "this server needs `Authorization: Bearer TOKEN`; create a token with `tarn token create --name NAME`".into()
                },
            );
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
            return refuse(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the token is unknown or revoked; ask for a new one (`tarn token create --name NAME`)"
                    .into(),
            );
        };
        record
    };
    let read = match &glue {
        Some(op) => crate::glue::is_read(op),
        None => is_read(req.method(), &path),
    };
    if record.read_only && !read {
        tracing::warn!(path, method = %req.method(), token_name = %record.name, reason = "read-only token", "auth failed");
        return refuse(
            StatusCode::FORBIDDEN,
            "token_read_only",
            format!(
                "token `{}` is read-only: it may read and query, not land, crawl, load or change the catalog; use a token created without --read-only",
                record.name
            ),
        );
    }
    let grants = app.lake.config.grants(&record.policies).unwrap_or_else(|why| {
        tracing::warn!(token_name = %record.name, "the token's policies no longer resolve, so it is granted nothing: {why}");
        Default::default()
    });
    let access = crate::access::Access {
        who: record.name.clone(),
        grants,
    };
    let need = crate::access::need(req.method(), &path, glue.as_deref());
    if !crate::access::meets(&access, &need) {
        let (action, resource) = match &need {
            crate::access::Need::On(a, r) => (*a, r.to_string()),
            crate::access::Need::SomeData(a) => (*a, "any table".to_string()),
            crate::access::Need::Nothing => (tarn_config::Action::Read, path.clone()),
        };
        let method = req.method().clone();
        return crate::access::refuse(
            &app,
            &access,
            action,
            &resource,
            &method,
            &path,
            glue.is_some(),
        )
        .await;
    }
    let may_read = access.may_read();
    req.extensions_mut().insert(access);
    tracing::Span::current().record("token", record.name.as_str());
    req.extensions_mut()
        .insert(Caller(Some(record.name.clone())));
    req.extensions_mut().insert(tarn_ui::session::Viewer {
        name: Some(record.name.clone()),
        read_only: record.read_only,
        may_read: Some(may_read),
    });
    next.run(req).await
}

/// The token whose AWS access key signed `req` (Signature V4), and the request rebuilt with
/// its body (read within `limits.request_body` to hash it). The error says which check failed.
async fn signed(
    app: &App,
    req: Request,
    glue: bool,
) -> Result<(tarn_lake::TokenRecord, Request), String> {
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let signed = crate::sigv4::parse(authorization)?;
    let (parts, body) = req.into_parts();
    let max = app.limits.request_body as usize;
    let bytes = axum::body::to_bytes(body, max).await.map_err(|_| {
        format!("a signed request's body must be at most {max} bytes (limits.request_body in tarn.yml) and arrive whole")
    })?;
    let found = app
        .lake
        .tokens()
        .aws_key(&signed.access_key)
        .await
        .map_err(|e| match e {
            tarn_lake::MetadataError::Sealed(why) => {
                tracing::error!("cannot open a token's secret access key: {why}");
                "the server cannot open its keys (see its log)".to_string()
            }
            other => {
                tracing::error!("cannot look up an access key: {other}");
                "the server cannot read its tokens (see its log)".to_string()
            }
        })?;
    let Some((record, secret)) = found else {
        return Err(format!(
            "access key {} is unknown or its token was revoked",
            signed.access_key
        ));
    };
    let region = app
        .lake
        .config
        .s3
        .region
        .clone()
        .unwrap_or_else(|| "us-east-1".into());
    let service = if glue { "glue" } else { "tarn" };
    crate::sigv4::verify(
        &signed,
        &crate::sigv4::Request {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query().unwrap_or(""),
            headers: &parts.headers,
            body: &bytes,
        },
        &secret,
        &region,
        service,
        chrono::Utc::now(),
    )?;
    Ok((
        record,
        Request::from_parts(parts, axum::body::Body::from(bytes)),
    ))
}

fn unauthorized(message: &str) -> Response {
    let mut res = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    res
}
