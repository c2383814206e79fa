//! What the processes tarn starts (steps, trainers, taps, scorers, bring-your-own servers,
//! command subscribers) inherit, and hiding secrets in what they write. A child never gets
//! the server's whole environment: only the variables that make a program run (paths,
//! locale, Python and Java homes, proxies, certificates), plus what its caller passes on
//! purpose. Whatever a child prints is stored with every configured secret replaced by `***`.

/// Variables passed through from tarn's own environment to the processes it starts.
pub const INHERITED: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "TERM",
    "LD_LIBRARY_PATH",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "PYTHONHOME",
    "PYTHONPATH",
    "JAVA_HOME",
    "SPARK_HOME",
    "PYSPARK_PYTHON",
    "HADOOP_CONF_DIR",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "OMP_NUM_THREADS",
    "TARN_PYTHON",
    "TARN_SPARK_MASTER",
];

/// The part of tarn's environment a child process inherits ([`INHERITED`] and `LC_*`).
pub fn inherited_env() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(k, _)| INHERITED.contains(&k.as_str()) || k.starts_with("LC_"))
        .collect()
}

/// `text` with every one of `secrets` replaced by `***`.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if !s.is_empty() && out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "***");
        }
    }
    out
}

/// A JSON value with every secret in its strings (and keys) replaced by `***`.
pub fn redact_json(value: &serde_json::Value, secrets: &[String]) -> serde_json::Value {
    let text = value.to_string();
    if !secrets.iter().any(|s| text.contains(s.as_str())) {
        return value.clone();
    }
    match value {
        serde_json::Value::String(s) => serde_json::Value::String(redact(s, secrets)),
        serde_json::Value::Array(a) => a.iter().map(|v| redact_json(v, secrets)).collect(),
        serde_json::Value::Object(o) => o
            .iter()
            .map(|(k, v)| (redact(k, secrets), redact_json(v, secrets)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_hidden_in_text_and_json() {
        let secrets = vec!["hunter22".to_string()];
        assert_eq!(redact("pw=hunter22;", &secrets), "pw=***;");
        let v = serde_json::json!({"env": ["X=hunter22"], "hunter22": 1, "n": 2});
        assert_eq!(
            redact_json(&v, &secrets),
            serde_json::json!({"env": ["X=***"], "***": 1, "n": 2})
        );
    }
}
