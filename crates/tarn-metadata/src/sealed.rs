//! Values sealed at rest: ChaCha20-Poly1305 under a key kept outside the store, each bound to
//! the name it is kept under (a value sealed as one name cannot be opened as another). Secrets
//! of taps and the secret access keys of tokens are kept this way.
//!
//! The key is `TARN_SECRET_KEY` (64 hex digits: what every node of a shared deployment sets),
//! else the file `TARN_SECRET_KEY_FILE`, else `~/.config/tarn/secret.key`, written (mode 0600)
//! the first time a value is sealed.

use crate::MetadataError;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use std::path::{Path, PathBuf};

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
fn key(create: bool) -> Result<LessSafeKey, MetadataError> {
    let bytes = if let Ok(hexed) = std::env::var("TARN_SECRET_KEY") {
        hex::decode(hexed.trim()).map_err(|_| {
            MetadataError::Sealed(
                "TARN_SECRET_KEY is not 64 hex digits; make one with `openssl rand -hex 32`".into(),
            )
        })?
    } else {
        let path = key_file();
        match std::fs::read_to_string(&path) {
            Ok(text) => hex::decode(text.trim()).map_err(|_| {
                MetadataError::Sealed(format!("{} does not hold 64 hex digits", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => new_key_file(&path)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(MetadataError::Sealed(format!(
                    "the key secrets are sealed with is not here ({} is missing and TARN_SECRET_KEY is not set); set TARN_SECRET_KEY or copy the key file from where the secrets were set",
                    path.display()
                )))
            }
            Err(e) => return Err(MetadataError::folder(&path, e)),
        }
    };
    let unbound = UnboundKey::new(&CHACHA20_POLY1305, &bytes)
        .map_err(|_| MetadataError::Sealed("the key must be 32 bytes (64 hex digits)".into()))?;
    Ok(LessSafeKey::new(unbound))
}

fn new_key_file(path: &Path) -> Result<Vec<u8>, MetadataError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut bytes = vec![0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| MetadataError::Sealed("no randomness for a new key".into()))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| MetadataError::folder(dir, e))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| MetadataError::folder(path, e))?;
    f.write_all(hex::encode(&bytes).as_bytes())
        .map_err(|e| MetadataError::folder(path, e))?;
    Ok(bytes)
}

/// Seals `value` under `name` (hex: nonce, then the sealed text and its tag).
pub fn seal(name: &str, value: &str) -> Result<String, MetadataError> {
    let key = key(true)?;
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| MetadataError::Sealed("no randomness for a nonce".into()))?;
    let mut data = value.as_bytes().to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(name.as_bytes()),
        &mut data,
    )
    .map_err(|_| MetadataError::Sealed("sealing failed".into()))?;
    let mut out = nonce.to_vec();
    out.extend(data);
    Ok(hex::encode(out))
}

/// Opens what [`seal`] sealed under `name`.
pub fn open(name: &str, sealed: &str) -> Result<String, MetadataError> {
    let key = key(false)?;
    let bytes = hex::decode(sealed)
        .map_err(|_| MetadataError::Sealed(format!("secret `{name}` is damaged; set it again")))?;
    if bytes.len() < NONCE_LEN {
        return Err(MetadataError::Sealed(format!(
            "secret `{name}` is damaged; set it again"
        )));
    }
    let (nonce, data) = bytes.split_at(NONCE_LEN);
    let mut data = data.to_vec();
    let nonce = Nonce::try_assume_unique_for_key(nonce)
        .map_err(|_| MetadataError::Sealed(format!("secret `{name}` is damaged")))?;
    let clear = key
        .open_in_place(nonce, Aad::from(name.as_bytes()), &mut data)
        .map_err(|_| {
            MetadataError::Sealed(format!(
                "secret `{name}` does not open with this key (it was sealed with another key, or altered); set it again with `tarn secrets set {name}`"
            ))
        })?;
    String::from_utf8(clear.to_vec())
        .map_err(|_| MetadataError::Sealed(format!("secret `{name}` is not text")))
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
