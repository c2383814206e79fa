//! Object keys inside a zone: what is allowed, and why the rest is refused.

use crate::StorageError;

/// Longest key and key segment by default (S3's key limit; a file name's limit).
pub const MAX_KEY_BYTES: usize = 1024;
pub const MAX_SEGMENT_BYTES: usize = 255;

/// Checks that `key` stays inside its zone: relative, no `.`/`..` or empty segments, no NUL
/// or control characters, no backslashes, and not under tarn's own `_versions/` prefix; and
/// that it fits the default length limits.
pub fn validate_key(key: &str) -> Result<(), StorageError> {
    validate_key_within(key, MAX_KEY_BYTES, MAX_SEGMENT_BYTES)
}

/// [`validate_key`] with the lake's own limits on the key's length and on each segment's
/// (`limits.key_length`, `limits.key_segment`).
pub fn validate_key_within(
    key: &str,
    max_len: usize,
    max_segment: usize,
) -> Result<(), StorageError> {
    let shown: String = if key.len() > 80 {
        format!("{}…", key.chars().take(60).collect::<String>())
    } else {
        key.to_string()
    };
    let refuse = |reason: &str| {
        Err(StorageError::BadKey {
            key: shown.escape_debug().to_string(),
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
    if key.len() > max_len {
        return refuse(&format!(
            "it is {} bytes long, over the limit of {max_len} (limits.key_length); use a shorter key",
            key.len()
        ));
    }
    for seg in key.split('/') {
        match seg {
            "" => return refuse("it has an empty folder (`//` or a trailing `/`)"),
            "." | ".." => return refuse("`.` and `..` segments would escape the zone"),
            s if s.len() > max_segment => {
                return refuse(&format!(
                    "one of its segments is {} bytes long, over the limit of {max_segment} per name between `/` (limits.key_segment); split it into folders or shorten it",
                    s.len()
                ))
            }
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
    use super::{validate_key, validate_key_within};

    #[test]
    fn length_limits_name_themselves() {
        let err = validate_key(&"k".repeat(300)).unwrap_err().to_string();
        assert!(
            err.contains("limits.key_segment") && err.contains("255"),
            "{err}"
        );
        let err = validate_key_within("abcdef", 4, 4).unwrap_err().to_string();
        assert!(err.contains("limits.key_length"), "{err}");
        validate_key_within(&"k".repeat(300), 1024, 400).unwrap();
    }

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
            &"x".repeat(300),
            &format!("a/{}", "y".repeat(256)),
            &"a/".repeat(600),
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
