//! What a caller may do: the grants of its token's policies ([`Access`], put on every request
//! by the auth layer), what each route needs ([`need`]: one table for every route of the API,
//! MLflow's, the UI's and the endpoints', so a route added without a line here needs `admin`
//! on the whole lake), and a refusal that is recorded as an `access.denied` event (who, what,
//! when; never a token, a key or a body).

use crate::App;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use tarn_config::{Action, Grants, Resource};

/// The caller's name and grants. Without `--auth` every caller has `full`.
#[derive(Clone, Debug)]
pub(crate) struct Access {
    pub who: String,
    pub grants: Grants,
}

impl Default for Access {
    fn default() -> Self {
        Access {
            who: "anonymous".into(),
            grants: Grants(tarn_config::built_in_policy(tarn_config::FULL).unwrap_or_default()),
        }
    }
}

impl Access {
    pub(crate) fn allows(&self, action: Action, resource: &Resource) -> bool {
        self.grants.allows(action, resource)
    }

    /// Whether `domain.layer.table` may be read.
    pub(crate) fn reads_table(&self, domain: &str, layer: &str, table: &str) -> bool {
        self.allows(Action::Read, &Resource::table(domain, layer, table))
    }

    /// The check a query makes of each table it reads.
    pub(crate) fn may_read(&self) -> tarn_lake::MayRead {
        let grants = self.grants.clone();
        tarn_lake::MayRead(std::sync::Arc::new(move |d, l, t| {
            grants.allows(Action::Read, &Resource::table(d, l, t))
        }))
    }

    /// `Err(message)` (recorded) unless `action` on `resource` is granted.
    pub(crate) async fn check(
        &self,
        app: &App,
        action: Action,
        resource: Resource,
        method: Method,
        path: &str,
    ) -> Result<(), String> {
        if self.allows(action, &resource) {
            return Ok(());
        }
        let resource = resource.to_string();
        record(app, self, action, &resource, &method, path).await;
        Err(denial(&self.who, action, &resource))
    }

    /// Refuses (403, recorded) unless `action` on `resource` is granted.
    pub(crate) async fn require(
        &self,
        app: &App,
        action: Action,
        resource: Resource,
        method: Method,
        path: &str,
    ) -> Result<(), crate::ApiError> {
        self.check(app, action, resource, method, path)
            .await
            .map_err(|m| crate::ApiError::new(StatusCode::FORBIDDEN, "access_denied", m))
    }

    /// Refuses (403, recorded) unless the table `address` may be written.
    pub(crate) async fn require_write(
        &self,
        app: &App,
        address: &str,
        path: &str,
    ) -> Result<(), crate::ApiError> {
        let resource = Resource::of_table(address).ok_or_else(|| {
            crate::ApiError::bad_request(format!(
                "`{address}` is not a table address; write DOMAIN.LAYER.TABLE"
            ))
        })?;
        self.require(app, Action::Write, resource, Method::POST, path)
            .await
    }

    /// Records a query's refusal of a table it reads, and passes the result on.
    pub(crate) async fn noted<T>(
        &self,
        app: &App,
        result: Result<T, tarn_lake::LakeError>,
        path: &str,
    ) -> Result<T, tarn_lake::LakeError> {
        if let Err(tarn_lake::LakeError::Query(tarn_lake::QueryError::Denied(table))) = &result {
            record(app, self, Action::Read, table, &Method::POST, path).await;
        }
        result
    }
}

fn denial(who: &str, action: Action, resource: &str) -> String {
    format!(
        "token `{who}` may not {action} {resource}: none of its policies grants it (tarn.yml's `policies:`; `tarn token list` shows each token's)"
    )
}

/// What a route needs.
#[derive(Debug, PartialEq)]
pub(crate) enum Need {
    /// Open to any signed-in caller (documentation, probes, sign-in).
    Nothing,
    /// One action on one resource.
    On(Action, Resource),
    /// The action on some data: a listing that then shows only what may be read, or a call
    /// whose handler checks the tables it names (SQL, loads, crawls, Glue).
    SomeData(Action),
}

/// What `method` on `path` needs (`glue`: the Glue operation a `POST /` names).
pub(crate) fn need(method: &Method, path: &str, glue: Option<&str>) -> Need {
    use Action::{Admin, Read, Write};
    let read = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    let rw = if read { Read } else { Write };
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    match parts.get(1..).unwrap_or_default() {
        // Glue's handler checks each database and table it touches.
        [] if glue.is_some() => Need::SomeData(if glue.is_some_and(crate::glue::is_read) {
            Read
        } else {
            Write
        }),
        [] | ["health"] | ["ready"] | ["openapi.json"] | ["docs", ..] => Need::Nothing,
        ["ui"] => Need::SomeData(Read),
        ["ui", "sign-in" | "sign-out" | "assets", ..] => Need::Nothing,
        ["api", "v1", "zones"] => Need::SomeData(Read),
        ["api", "v1", "zones", d, l, "objects", ..] => Need::On(rw, Resource::zone(d, l)),
        ["api", "v1", "tables"] | ["api", "v1", "crawls"] if read => Need::SomeData(Read),
        ["api", "v1", "tables", t, ..] => match Resource::of_table(t) {
            Some(r) => Need::On(Read, r),
            None => Need::SomeData(Read),
        },
        ["api", "v1", "crawls" | "loads" | "sql", ..] => Need::SomeData(rw_for_body(path)),
        ["api", "v1", "doctor"] => Need::On(Admin, Resource::Lake),
        ["api", "v1", "events" | "executions", ..] => Need::On(rw, Resource::Pipelines),
        ["api", "v1", "models", _, "versions", _, "approve" | "reject"] => {
            Need::On(Admin, Resource::Ml)
        }
        ["api", "v1", "models" | "monitors", ..] => Need::On(rw, Resource::Ml),
        ["api", "2.0" | "3.0", "mlflow" | "mlflow-artifacts", ..] => {
            let search = path.ends_with("/search") || path.contains("/search/");
            Need::On(if read || search { Read } else { Write }, Resource::Ml)
        }
        ["api", "v1", "endpoints", ..] | ["metrics"] => Need::On(Read, Resource::Endpoints),
        ["endpoints", _, "ping"] => Need::On(Read, Resource::Endpoints),
        ["endpoints", ..] => Need::On(Write, Resource::Endpoints),
        ["ui", "tables"] | ["ui", "dashboards"] => Need::SomeData(Read),
        ["ui", "tables", t] => match Resource::of_table(t) {
            Some(r) => Need::On(Read, r),
            None => Need::SomeData(Read),
        },
        ["ui", "sql", ..] => Need::SomeData(Read),
        ["ui", "dashboards", "tiles"] => Need::SomeData(Write),
        ["ui", "dashboards", ..] => Need::SomeData(Read),
        ["ui", "pipelines" | "executions", ..] => Need::On(rw, Resource::Pipelines),
        ["ui", "models", _, "versions", ..] if !read => Need::On(Admin, Resource::Ml),
        ["ui", "experiments" | "runs" | "models" | "monitors", ..] => Need::On(rw, Resource::Ml),
        ["ui", "endpoints", ..] => Need::On(rw, Resource::Endpoints),
        // Anything not named above: only a caller who may do everything.
        _ => Need::On(Admin, Resource::Lake),
    }
}

/// SQL reads (its handler checks each table); `sql/into`, loads and crawls write.
fn rw_for_body(path: &str) -> Action {
    if path == "/api/v1/sql" {
        Action::Read
    } else {
        Action::Write
    }
}

/// Whether `access` meets `need` before the handler runs.
pub(crate) fn meets(access: &Access, need: &Need) -> bool {
    match need {
        Need::Nothing => true,
        Need::On(action, resource) => access.allows(*action, resource),
        Need::SomeData(action) => access.grants.0.iter().any(|g| {
            g.allow >= *action
                && g.on
                    .iter()
                    .any(|p| !["ml", "pipelines", "endpoints"].contains(&p.as_str()))
        }),
    }
}

/// Why a request was refused, recorded and answered: a 403 naming the token, the action and
/// the resource (in Glue's shape for a Glue call).
pub(crate) async fn refuse(
    app: &App,
    access: &Access,
    action: Action,
    resource: &str,
    method: &Method,
    path: &str,
    glue: bool,
) -> Response {
    let message = denial(&access.who, action, resource);
    record(app, access, action, resource, method, path).await;
    if glue {
        return crate::glue::GlueError::denied(message).into_response();
    }
    crate::ApiError::new(StatusCode::FORBIDDEN, "access_denied", message).into_response()
}

/// Records a refusal as an `access.denied` event (who, what, when), and logs it.
pub(crate) async fn record(
    app: &App,
    access: &Access,
    action: Action,
    resource: &str,
    method: &Method,
    path: &str,
) {
    tracing::warn!(token_name = %access.who, %action, resource, %method, path, "access denied");
    let event = tarn_lake::NewEvent {
        kind: "access.denied".into(),
        zone: String::new(),
        key: path.chars().take(1024).collect(),
        etag: uuid::Uuid::new_v4().to_string(),
        size: 0,
        detail: serde_json::json!({
            "who": access.who,
            "action": action.to_string(),
            "resource": resource,
            "method": method.as_str(),
            "path": path.chars().take(1024).collect::<String>(),
        }),
    };
    if let Err(e) = app.lake.events().record_event_id(&event).await {
        tracing::error!("cannot record a refusal: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_needs_something_and_unknown_ones_need_everything() {
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(need(&get, "/health", None), Need::Nothing);
        assert_eq!(
            need(
                &Method::PUT,
                "/api/v1/zones/flights/raw/objects/a.csv",
                None
            ),
            Need::On(Action::Write, Resource::zone("flights", "raw"))
        );
        assert_eq!(
            need(&get, "/api/v1/tables/flights.raw.airports", None),
            Need::On(Action::Read, Resource::table("flights", "raw", "airports"))
        );
        assert_eq!(
            need(&post, "/api/v1/models/m/versions/1/approve", None),
            Need::On(Action::Admin, Resource::Ml)
        );
        assert_eq!(
            need(&post, "/api/2.0/mlflow/runs/search", None),
            Need::On(Action::Read, Resource::Ml)
        );
        assert_eq!(
            need(&post, "/api/2.0/mlflow/runs/create", None),
            Need::On(Action::Write, Resource::Ml)
        );
        assert_eq!(
            need(&post, "/", Some("CreateTable")),
            Need::SomeData(Action::Write)
        );
        assert_eq!(
            need(&post, "/", Some("GetTables")),
            Need::SomeData(Action::Read)
        );
        assert_eq!(
            need(&get, "/api/v1/something-new", None),
            Need::On(Action::Admin, Resource::Lake)
        );
    }
}
