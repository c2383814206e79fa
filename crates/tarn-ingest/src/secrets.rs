//! Secrets: tarn's own store (values sealed with ChaCha20-Poly1305 in the metadata store,
//! under a key kept outside it) and resolving a tap's `secrets:` into the values only its
//! private config file receives.
//!
//! The key is `TARN_SECRET_KEY` (64 hex digits: what every node of a shared deployment sets),
//! else the file `TARN_SECRET_KEY_FILE`, else `~/.config/tarn/secret.key`, written (mode 0600)
//! the first time a secret is set. A value sealed under one name cannot be opened as another.

use crate::IngestError;
use tarn_config::{SecretSource, TapSpec};
use tarn_lake::sealed::{open, seal};
use tarn_lake::Lake;

/// Stores `value` as secret `name` (sealed), replacing what it held.
pub async fn set(lake: &Lake, name: &str, value: &str) -> Result<(), IngestError> {
    tarn_config::check_identifier(name)
        .map_err(|why| IngestError::Config(format!("secret name: {why}")))?;
    if value.is_empty() {
        return Err(IngestError::Config(format!(
            "secret `{name}` is empty; give a value on standard input"
        )));
    }
    lake.taps().put_secret(name, &seal(name, value)?).await?;
    Ok(())
}

/// Secret `name`'s value.
pub async fn get(lake: &Lake, name: &str) -> Result<Option<String>, IngestError> {
    match lake.taps().secret(name).await? {
        Some(s) => Ok(Some(open(name, &s.sealed)?)),
        None => Ok(None),
    }
}

/// The names of the stored secrets, with when each was last set (never their values).
pub async fn list(lake: &Lake) -> Result<Vec<(String, String)>, IngestError> {
    Ok(lake
        .taps()
        .secrets()
        .await?
        .into_iter()
        .map(|s| (s.name, s.updated_at))
        .collect())
}

/// Deletes secret `name`; answers whether it existed.
pub async fn delete(lake: &Lake, name: &str) -> Result<bool, IngestError> {
    Ok(lake.taps().delete_secret(name).await?)
}

/// The values of `tap`'s secrets, by setting, read from where each is kept.
pub async fn resolve(
    lake: &Lake,
    tap: &TapSpec,
) -> Result<Vec<(String, serde_json::Value)>, IngestError> {
    let mut out = Vec::new();
    for (setting, text) in &tap.secrets {
        let problem = |problem: String| IngestError::Secret {
            tap: tap.name.clone(),
            setting: setting.clone(),
            problem,
        };
        let source = SecretSource::parse(text, setting).map_err(problem)?;
        let value = match source {
            SecretSource::Env(var) => serde_json::Value::String(std::env::var(&var).map_err(|_| {
                problem(format!("the environment variable {var} is not set; export it where tarn runs"))
            })?),
            SecretSource::Store(name) => serde_json::Value::String(get(lake, &name).await?.ok_or_else(|| {
                problem(format!("tarn's secret store has no `{name}`; set it with `tarn secrets set {name}`"))
            })?),
            SecretSource::File { path, key } => {
                let full = if path.is_absolute() { path.clone() } else { lake.config.root.join(&path) };
                let text = std::fs::read_to_string(&full).map_err(|e| {
                    problem(format!("cannot read {}: {}; create the file or fix the path (relative to the lake folder)", full.display(), e.kind()))
                })?;
                match key {
                    None => serde_json::Value::String(text.trim_end_matches(['\n', '\r']).to_string()),
                    Some(k) => {
                        let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                            problem(format!("{} is not JSON (line {}, column {})", full.display(), e.line(), e.column()))
                        })?;
                        json.get(&k).cloned().ok_or_else(|| {
                            problem(format!("{} has no key `{k}`", full.display()))
                        })?
                    }
                }
            }
        };
        out.push((setting.clone(), value));
    }
    Ok(out)
}

/// The text forms of resolved secret values, for hiding in logs and errors (values shorter
/// than 4 characters are left out: hiding them would garble ordinary text).
pub(crate) fn texts(values: &[(String, serde_json::Value)]) -> Vec<String> {
    let mut out: Vec<String> = values
        .iter()
        .map(|(_, v)| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .filter(|s| s.len() >= 4)
        .collect();
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out
}
