//! Endpoints: a model version served over HTTP, as `tarn.yml` declares them under
//! `endpoints:` and `tarn endpoints deploy` stores them. The spec is checked here once, with
//! the fix in every message; the serving side only reads the checked values.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One endpoint: the model URI it follows and how it serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    /// `models:/NAME@ALIAS` (followed: a moved alias is deployed), `models:/NAME/VERSION` or
    /// `models:/NAME/STAGE`.
    pub model: String,
    /// A second model taking a share of the traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<Canary>,
    /// A bring-your-own server (SageMaker's `/ping` + `/invocations` contract) run instead of
    /// the runtime the model's flavors choose; `{port}` and `{model_dir}` are replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// The domain of the inference log table `DOMAIN.service.inference_<endpoint>` (`ml`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_domain: Option<String>,
    /// Rows run through the model at once when requests are micro-batched (64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_batch: Option<usize>,
    /// Requests that may wait for the model before new ones get 503 (256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_queue: Option<usize>,
    /// Longest a request may take (`10s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Largest request body (`6MiB`, SageMaker's limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body: Option<String>,
}

/// A traffic split: `percent` of the requests go to `model`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Canary {
    pub model: String,
    pub percent: f64,
}

impl EndpointSpec {
    /// A spec serving `model` with every default.
    pub fn new(model: &str) -> Self {
        EndpointSpec {
            model: model.to_string(),
            canary: None,
            command: None,
            log_domain: None,
            max_batch: None,
            max_queue: None,
            timeout: None,
            max_body: None,
        }
    }

    pub fn log_domain(&self) -> &str {
        self.log_domain.as_deref().unwrap_or("ml")
    }

    /// The inference table of endpoint `name`: `DOMAIN.service.inference_NAME`.
    pub fn inference_table(&self, name: &str) -> String {
        format!("{}.service.inference_{name}", self.log_domain())
    }

    pub fn max_batch(&self) -> usize {
        self.max_batch.unwrap_or(64).max(1)
    }

    pub fn max_queue(&self) -> usize {
        self.max_queue.unwrap_or(256).max(1)
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
            .as_deref()
            .and_then(crate::parse_duration)
            .unwrap_or(Duration::from_secs(10))
    }

    pub fn max_body(&self) -> usize {
        self.max_body
            .as_deref()
            .and_then(crate::parse_bytes)
            .unwrap_or(6 * 1024 * 1024) as usize
    }

    /// Checks the spec of endpoint `name`: answers the field at fault and the problem with
    /// its fix.
    pub fn check(&self, name: &str) -> Result<(), (&'static str, String)> {
        crate::check_identifier(name).map_err(|why| {
            (
                "name",
                format!("endpoint name: {why} (it names the table inference_{name})"),
            )
        })?;
        check_uri(&self.model).map_err(|m| ("model", m))?;
        if let Some(c) = &self.canary {
            check_uri(&c.model).map_err(|m| ("canary", m))?;
            if !(c.percent > 0.0 && c.percent < 100.0) {
                return Err((
                    "canary",
                    format!(
                        "canary percent {} must be between 0 and 100 (exclusive)",
                        c.percent
                    ),
                ));
            }
        }
        if let Some(cmd) = &self.command {
            if cmd.is_empty() || cmd[0].trim().is_empty() {
                return Err((
                    "command",
                    "command is empty; give the program and its arguments, e.g. [python, serve.py, --port, \"{port}\"]".into(),
                ));
            }
        }
        if let Some(d) = &self.log_domain {
            crate::check_identifier(d)
                .map_err(|why| ("log_domain", format!("log_domain: {why}")))?;
        }
        for (field, value, ok) in [
            (
                "timeout",
                &self.timeout,
                self.timeout
                    .as_deref()
                    .map(|t| crate::parse_duration(t).is_some()),
            ),
            (
                "max_body",
                &self.max_body,
                self.max_body
                    .as_deref()
                    .map(|t| crate::parse_bytes(t).is_some()),
            ),
        ] {
            if ok == Some(false) {
                return Err((
                    field,
                    format!(
                        "{field} {:?} is not understood; write e.g. {}",
                        value.as_deref().unwrap_or(""),
                        if field == "timeout" {
                            "`10s` or `500ms`"
                        } else {
                            "`6MiB`"
                        }
                    ),
                ));
            }
        }
        for (field, v) in [("max_batch", self.max_batch), ("max_queue", self.max_queue)] {
            if v == Some(0) {
                return Err((field, format!("{field} must be at least 1")));
            }
        }
        Ok(())
    }
}

fn check_uri(uri: &str) -> Result<(), String> {
    let ok = uri
        .strip_prefix("models:/")
        .is_some_and(|r| !r.is_empty() && !r.starts_with('/'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{uri}` is not a model URI; endpoints serve registered versions: write models:/NAME@ALIAS (followed when the alias moves), models:/NAME/VERSION or models:/NAME/STAGE (register a run's model first with `mlflow.register_model`)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_specs_name_the_field() {
        let mut s = EndpointSpec::new("models:/delays@champion");
        assert!(s.check("delays").is_ok());
        assert_eq!(s.check("Delays").unwrap_err().0, "name");
        s.model = "delays".into();
        assert_eq!(s.check("delays").unwrap_err().0, "model");
        s.model = "models:/delays/2".into();
        s.canary = Some(Canary {
            model: "models:/delays/3".into(),
            percent: 120.0,
        });
        assert!(s
            .check("delays")
            .unwrap_err()
            .1
            .contains("between 0 and 100"));
        s.canary = None;
        s.timeout = Some("soon".into());
        assert_eq!(s.check("delays").unwrap_err().0, "timeout");
    }
}
