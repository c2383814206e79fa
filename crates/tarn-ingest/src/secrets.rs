//! Secrets: tarn's own store (values sealed with ChaCha20-Poly1305 in the metadata store,
//! under a key kept outside it) and resolving a tap's `secrets:` into the values only its
//! private config file receives.
//!
//! The key is `TARN_SECRET_KEY` (64 hex digits: what every node of a shared deployment sets),
//! else the file `TARN_SECRET_KEY_FILE`, else `~/.config/tarn/secret.key`, written (mode 0600)
//! the first time a secret is set. A value sealed under one name cannot be opened as another.

use crate::IngestError;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use std::path::{Path, PathBuf};
use tarn_config::{SecretSource, TapSpec};
use tarn_lake::Lake;

/// Where the key is read from (and written to, for a file).
fn key_file() -> PathBuf {
    if let Some(p) = std::env::var_os("TARN_SECRET_KEY_FILE") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".config/tarn/secret.key")
}

/// The key; `create` writes a new key file when there is none.
fn key(create: bool) -> Result<LessSafeKey, IngestError> {
    let bytes = if let Ok(hexed) = std::env::var("TARN_SECRET_KEY") {
        hex::decode(hexed.trim()).map_err(|_| {
            IngestError::Store(
                "TARN_SECRET_KEY is not 64 hex digits; make one with `openssl rand -hex 32`".into(),
            )
        })?
    } else {
        let path = key_file();
        match std::fs::read_to_string(&path) {
            Ok(text) => hex::decode(text.trim()).map_err(|_| {
                IngestError::Store(format!("{} does not hold 64 hex digits", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => new_key_file(&path)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(IngestError::Store(format!(
                    "the key secrets are sealed with is not here ({} is missing and TARN_SECRET_KEY is not set); set TARN_SECRET_KEY or copy the key file from where the secrets were set",
                    path.display()
                )))
            }
            Err(e) => return Err(IngestError::io(&path, e)),
        }
    };
    let unbound = UnboundKey::new(&CHACHA20_POLY1305, &bytes)
        .map_err(|_| IngestError::Store("the key must be 32 bytes (64 hex digits)".into()))?;
    Ok(LessSafeKey::new(unbound))
}

fn new_key_file(path: &Path) -> Result<Vec<u8>, IngestError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut bytes = vec![0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| IngestError::Store("no randomness for a new key".into()))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| IngestError::io(dir, e))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| IngestError::io(path, e))?;
    f.write_all(hex::encode(&bytes).as_bytes())
        .map_err(|e| IngestError::io(path, e))?;
    Ok(bytes)
}

fn seal(name: &str, value: &str) -> Result<String, IngestError> {
    let key = key(true)?;
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| IngestError::Store("no randomness for a nonce".into()))?;
    let mut data = value.as_bytes().to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(name.as_bytes()),
        &mut data,
    )
    .map_err(|_| IngestError::Store("sealing failed".into()))?;
    let mut out = nonce.to_vec();
    out.extend(data);
    Ok(hex::encode(out))
}

fn open(name: &str, sealed: &str) -> Result<String, IngestError> {
    let key = key(false)?;
    let bytes = hex::decode(sealed)
        .map_err(|_| IngestError::Store(format!("secret `{name}` is damaged; set it again")))?;
    if bytes.len() < NONCE_LEN {
        return Err(IngestError::Store(format!(
            "secret `{name}` is damaged; set it again"
        )));
    }
    let (nonce, data) = bytes.split_at(NONCE_LEN);
    let mut data = data.to_vec();
    let nonce = Nonce::try_assume_unique_for_key(nonce)
        .map_err(|_| IngestError::Store(format!("secret `{name}` is damaged")))?;
    let clear = key
        .open_in_place(nonce, Aad::from(name.as_bytes()), &mut data)
        .map_err(|_| {
            IngestError::Store(format!(
                "secret `{name}` does not open with this key (it was sealed with another key, or altered); set it again with `tarn secrets set {name}`"
            ))
        })?;
    String::from_utf8(clear.to_vec())
        .map_err(|_| IngestError::Store(format!("secret `{name}` is not text")))
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_under_its_name_and_key() {
        let dir = tempfile::tempdir().unwrap();
        // One process-wide variable: this is the only test in the crate that sets it.
        std::env::set_var("TARN_SECRET_KEY_FILE", dir.path().join("k"));
        let sealed = seal("pg", "hunter22").unwrap();
        assert!(!sealed.contains(&hex::encode("hunter22")));
        assert_eq!(open("pg", &sealed).unwrap(), "hunter22");
        let err = open("other", &sealed).unwrap_err().to_string();
        assert!(err.contains("does not open"), "{err}");
        assert!(!err.contains("hunter22"));
        let mode = std::fs::metadata(dir.path().join("k")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.permissions().mode() & 0o777, 0o600);
    }
}
