//! Object keys inside a zone: what is allowed, and why the rest is refused.

use crate::StorageError;

/// Checks that `key` stays inside its zone: relative, no `.`/`..` or empty segments, no NUL
/// or control characters, no backslashes, and not under tarn's own `_versions/` prefix.
pub fn validate_key(key: &str) -> Result<(), StorageError> {
    let refuse = |reason: &str| {
        Err(StorageError::BadKey {
            key: key.escape_debug().to_string(),
            reason: reason.to_string(),
        })
    };
    if key.is_empty() {
        return refuse("the key is empty; give DOMAIN/LAYER/KEY");
    }
    if key.starts_with('/') {
        return refuse("absolute keys escape the zone; drop the leading `/`");
    }
    if key.chars().any(|c| c == '\0') {
        return refuse("it contains a NUL character");
    }
    if key.chars().any(char::is_control) {
        return refuse("it contains a control character (newline, tab, escape...)");
    }
    if key.contains('\\') {
        return refuse("it contains `\\`; use `/` between folders");
    }
    if key.len() > 1024 {
        return refuse("it is longer than 1024 bytes");
    }
    for seg in key.split('/') {
        match seg {
            "" => return refuse("it has an empty folder (`//` or a trailing `/`)"),
            "." | ".." => return refuse("`.` and `..` segments would escape the zone"),
            _ => {}
        }
    }
    if key.split('/').next() == Some(crate::VERSIONS_PREFIX) {
        return refuse("`_versions/` holds replaced raw objects and cannot be written");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate_key;

    #[test]
    fn hostile_keys_are_refused() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            "a\0b",
            "a\nb",
            "a\\b",
            "a//b",
            "a/",
            "_versions/a",
        ] {
            let err = validate_key(bad).unwrap_err().to_string();
            assert!(err.contains("refused"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn ordinary_keys_pass() {
        for ok in [
            "a.csv",
            "2013/01/flights.csv",
            "year=2013/month=1/part.parquet",
            "é/ü.json",
        ] {
            validate_key(ok).unwrap();
        }
    }
}
