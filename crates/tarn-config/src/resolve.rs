//! From the text of `tarn.yml` to a validated [`LakeConfig`]: parse errors with places,
//! semantic checks, environment overrides, workspaces and defaults.

use crate::error::ConfigError;
use crate::file::{
    DomainSpec, FileConfig, S3Settings, Settings, SmtpSettings, SubscriptionProtocol, TopicSpec,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The kinds of events tarn records, which a topic's `events:` may list.
pub const EVENT_KINDS: [&str; 15] = [
    "object.created",
    "custom",
    "schedule.fired",
    "model.version.created",
    "model.version.approved",
    "model.version.rejected",
    "model.version.stage_changed",
    "model.version.alias_set",
    "model.version.alias_deleted",
    "model.version.deleted",
    "monitor.alert",
    "monitor.recovered",
    "tap.run.succeeded",
    "tap.run.failed",
    "access.denied",
];

/// The name of the configuration file in a lake's folder.
pub const CONFIG_FILE: &str = "tarn.yml";

const DEFAULT_LAYERS: [&str; 3] = ["raw", "trusted", "service"];
const DEFAULT_ENV: &str = "dev";

/// Which stage of the lake to open: `--env` and `--workspace`.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub env: Option<String>,
    pub workspace: Option<String>,
}

/// A lake's configuration with the environment applied and every default filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct LakeConfig {
    /// The folder holding `tarn.yml` (and `contracts/`).
    pub root: PathBuf,
    /// The lake's name.
    pub lake: String,
    /// The selected environment (`dev` unless chosen otherwise).
    pub env: String,
    /// A feature workspace: an isolated copy of every zone and all metadata.
    pub workspace: Option<String>,
    /// Object store URL under which every zone of this stage lives (ends without `/`).
    pub storage: String,
    /// Metadata store URL.
    pub metadata: String,
    /// How to reach S3 when `storage` is `s3://...` (empty otherwise).
    pub s3: S3Settings,
    /// The mail server for `email` subscriptions.
    pub smtp: Option<SmtpSettings>,
    pub domains: Vec<DomainSpec>,
    pub layers: Vec<String>,
    pub tags: BTreeMap<String, String>,
    pub topics: Vec<TopicSpec>,
    /// The topic failed pipeline executions are reported to.
    pub error_topic: String,
    /// The endpoints `tarn serve` hosts (`endpoints:`), by name.
    pub endpoints: BTreeMap<String, crate::EndpointSpec>,
    /// Limits on requests, queries and keys (`limits:`).
    pub limits: crate::Limits,
    /// Singer taps (`taps:`), checked against the Singer index.
    pub taps: Vec<crate::TapSpec>,
    /// Named grants (`policies:`), besides the built-in `full` and `read-only`.
    pub policies: std::collections::BTreeMap<String, Vec<crate::GrantSpec>>,
    /// Where Glue ETL and `spark` steps run (`spark:`).
    pub spark: crate::SparkSettings,
    /// Whether loads may add columns to tables without a contract (`schema_evolution:`).
    pub schema_evolution: crate::SchemaEvolution,
}

impl LakeConfig {
    /// Every secret this lake is configured with (the S3 secret key and session token, the
    /// SMTP password, the metadata store's password), from tarn.yml or the environment: what
    /// must never reach a log, an execution's history or an answer. Values shorter than 4
    /// characters are left out (hiding them would garble ordinary text).
    pub fn secrets(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        if let Some(s) = &self.s3.secret_access_key {
            out.push(s.expose().to_string());
        }
        if let Some(s) = self.smtp.as_ref().and_then(|s| s.password.as_ref()) {
            out.push(s.expose().to_string());
        }
        for var in [
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "TARN_SMTP_PASSWORD",
        ] {
            if let Ok(v) = std::env::var(var) {
                out.push(v);
            }
        }
        if let Ok(u) = url::Url::parse(&self.metadata) {
            if let Some(p) = u.password() {
                out.push(p.to_string());
                // The URL may carry it percent-encoded.
                if let Ok(d) = percent_encoding::percent_decode_str(p).decode_utf8() {
                    out.push(d.into_owned());
                }
            }
        }
        out.retain(|s| s.len() >= 4);
        out.sort_by_key(|s| std::cmp::Reverse(s.len()));
        out.dedup();
        out
    }

    /// Reads `tarn.yml` from `dir` (a folder, or the file itself) and resolves it.
    pub fn load(dir: &Path, selection: &Selection) -> Result<Self, ConfigError> {
        let path = if dir.is_dir() {
            dir.join(CONFIG_FILE)
        } else {
            dir.to_path_buf()
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        Self::parse(&path, &text, selection)
    }

    /// Resolves the text of a `tarn.yml` that lives at `path`.
    pub fn parse(path: &Path, text: &str, selection: &Selection) -> Result<Self, ConfigError> {
        let file = parse_file(path, text)?;
        let root = path
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    p.to_path_buf()
                }
            })
            .unwrap_or_else(|| PathBuf::from("."));
        let root = std::fs::canonicalize(&root).unwrap_or(root);
        let place = Place { path, text };

        let lake = match &file.lake {
            Some(l) => l.clone(),
            None => {
                return Err(place.error(
                    Some(1),
                    "the lake has no name",
                    "add `lake: NAME` at the top (lowercase letters, digits, `-`)",
                ))
            }
        };
        if lake.is_empty()
            || !lake
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(place.error(
                place.line_of_key("lake"),
                format!("lake name `{lake}` is not allowed"),
                "use lowercase letters, digits and `-` only",
            ));
        }

        for name in file.environments.keys() {
            check_stage_name(name).map_err(|why| {
                place.error(
                    place.line_of_key(name),
                    format!("environment {why}"),
                    "rename it",
                )
            })?;
        }
        let env = selection
            .env
            .clone()
            .or_else(|| file.environment.clone())
            .unwrap_or_else(|| DEFAULT_ENV.to_string());
        if env != DEFAULT_ENV && !file.environments.contains_key(&env) {
            let known: Vec<&str> = std::iter::once(DEFAULT_ENV)
                .chain(file.environments.keys().map(String::as_str))
                .collect();
            return Err(place.error(
                place.line_of_key("environments"),
                format!("environment `{env}` is not defined"),
                format!(
                    "{}add it under `environments:` or choose one of: {}",
                    did_you_mean(&env, known.iter().copied())
                        .map(|s| format!("did you mean `{s}`? "))
                        .unwrap_or_default(),
                    known.join(", ")
                ),
            ));
        }
        if let Some(ws) = &selection.workspace {
            check_stage_name(ws).map_err(|why| {
                ConfigError::invalid(
                    path,
                    None,
                    format!("workspace {why}"),
                    Some("pass --workspace with letters, digits, `-` or `_`".to_string()),
                )
            })?;
        }

        // Validate the base settings and every environment's, so a typo in `prd` is found in `dev`.
        let base = file.base();
        validate_settings(&place, &base, &base)?;
        for over in file.environments.values() {
            validate_settings(&place, &merge(&base, over), over)?;
        }
        let settings = match file.environments.get(&env) {
            Some(over) => merge(&base, over),
            None => base,
        };

        let stage = match &selection.workspace {
            Some(ws) => format!("{env}.{ws}"),
            None => env.clone(),
        };
        let storage_base = std::env::var("TARN_STORAGE")
            .ok()
            .or(settings.storage.clone())
            .unwrap_or_else(|| "lake".to_string());
        let storage = format!(
            "{}/{stage}",
            resolve_storage(&place, &root, &storage_base)?.trim_end_matches('/')
        );
        let metadata = match std::env::var("TARN_METADATA")
            .ok()
            .or(settings.metadata.clone())
        {
            None => format!("sqlite://{}/.tarn/{stage}.db", root.display()),
            Some(url) => resolve_metadata(&place, &root, &url, selection.workspace.as_deref())?,
        };

        if let Some(t) = &file.error_topic {
            let topics = settings.topics.as_deref().unwrap_or_default();
            if !topics.iter().any(|x| &x.name == t) {
                return Err(place.error(
                    place.line_of_key("error_topic"),
                    format!("error_topic `{t}` is not one of the topics"),
                    "declare it under `topics:` or name a declared topic",
                ));
            }
        }
        let endpoints = file.endpoints.clone().unwrap_or_default();
        for (name, spec) in &endpoints {
            if let Err((field, problem)) = spec.check(name) {
                let line = if field == "name" {
                    place.line_of_key(name)
                } else {
                    place.line_of_field(name, field)
                };
                return Err(place.error(
                    line,
                    format!("endpoint `{name}`: {problem}"),
                    "fix the endpoint under `endpoints:`",
                ));
            }
        }
        let limits = match &file.limits {
            None => crate::Limits::default(),
            Some(spec) => spec.resolve().map_err(|(field, problem)| {
                let line = place.line_of_field("limits", field);
                place.error(
                    line,
                    problem,
                    "fix the value under `limits:` (README lists each limit and its default)",
                )
            })?,
        };
        let taps = file.taps.clone().unwrap_or_default();
        let policies = file.policies.clone().unwrap_or_default();
        let config = LakeConfig {
            taps,
            policies,
            schema_evolution: file.schema_evolution.unwrap_or_default(),
            spark: file.spark.clone().unwrap_or_default(),
            limits,
            endpoints,
            root,
            lake,
            env,
            workspace: selection.workspace.clone(),
            storage,
            metadata,
            s3: settings.s3.clone().unwrap_or_default(),
            smtp: settings.smtp.clone(),
            domains: settings
                .domains
                .unwrap_or_default()
                .into_iter()
                .map(DomainSpec::from)
                .collect(),
            layers: settings
                .layers
                .unwrap_or_else(|| DEFAULT_LAYERS.iter().map(|s| s.to_string()).collect()),
            tags: settings.tags.unwrap_or_default(),
            topics: settings.topics.unwrap_or_default(),
            error_topic: file
                .error_topic
                .clone()
                .unwrap_or_else(|| "failures".to_string()),
        };
        for (name, spec) in &config.endpoints {
            if !config.has_domain(spec.log_domain()) {
                return Err(place.error(
                    place.line_of_key(name),
                    format!(
                        "endpoint `{name}` logs its inferences to {}, but `{}` is not a domain of the lake",
                        spec.inference_table(name),
                        spec.log_domain()
                    ),
                    format!(
                        "add `{}` under `domains:`, or set `log_domain:` to one of the lake's domains",
                        spec.log_domain()
                    ),
                ));
            }
        }
        let problems = crate::policy::check(
            &config.policies,
            &config
                .domains
                .iter()
                .map(|d| d.name.clone())
                .collect::<Vec<_>>(),
            &config.layers,
        );
        if let Some((name, _)) = problems.first() {
            return Err(place.error(
                place.line_of_key(name),
                problems
                    .iter()
                    .map(|(_, m)| m.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
                "fix the policy under `policies:` (README lists the resources and actions)",
            ));
        }
        if !config.taps.is_empty() {
            let index = crate::SingerIndex::load(&config.root)?;
            crate::tap::check_taps(path, text, &config.taps, &index, &|d, l| {
                config.check_zone(d, l)
            })?;
        }
        Ok(config)
    }

    /// The grants of these policies (built in or under `policies:`); a name that is neither
    /// is said, so a token keeps no grant it cannot be shown to have.
    pub fn grants(&self, names: &[String]) -> Result<crate::Grants, String> {
        let mut out = Vec::new();
        for n in names {
            match crate::policy::built_in(n).or_else(|| self.policies.get(n).cloned()) {
                Some(g) => out.extend(g),
                None => {
                    let known = [crate::FULL, crate::READ_ONLY]
                        .into_iter()
                        .chain(self.policies.keys().map(String::as_str));
                    return Err(format!(
                        "no policy `{n}`: {}policies: {}",
                        did_you_mean(n, known.clone())
                            .map(|s| format!("did you mean `{s}`? "))
                            .unwrap_or_default(),
                        known.collect::<Vec<_>>().join(", ")
                    ));
                }
            }
        }
        Ok(crate::Grants(out))
    }

    /// The tap named `name`, or why there is none (with a did-you-mean).
    pub fn tap(&self, name: &str) -> Result<&crate::TapSpec, String> {
        self.taps.iter().find(|t| t.name == name).ok_or_else(|| {
            let names = self.taps.iter().map(|t| t.name.as_str());
            format!(
                "no tap `{name}` under `taps:` in tarn.yml; {}taps: {}",
                did_you_mean(name, names.clone())
                    .map(|s| format!("did you mean `{s}`? "))
                    .unwrap_or_default(),
                if self.taps.is_empty() {
                    "none".to_string()
                } else {
                    names.collect::<Vec<_>>().join(", ")
                }
            )
        })
    }

    /// The stage this config opens: the environment, or `env.workspace`.
    pub fn stage(&self) -> String {
        match &self.workspace {
            Some(ws) => format!("{}.{ws}", self.env),
            None => self.env.clone(),
        }
    }

    /// Whether `domain` is declared.
    pub fn has_domain(&self, domain: &str) -> bool {
        self.domains.iter().any(|d| d.name == domain)
    }

    /// Whether `layer` is declared.
    pub fn has_layer(&self, layer: &str) -> bool {
        self.layers.iter().any(|l| l == layer)
    }

    /// Checks a `domain`/`layer` pair against the config, with a did-you-mean on typos.
    pub fn check_zone(&self, domain: &str, layer: &str) -> Result<(), String> {
        if !self.has_domain(domain) {
            let names = self.domains.iter().map(|d| d.name.as_str());
            return Err(format!(
                "domain `{domain}` is not declared in tarn.yml; {}declared: {}",
                did_you_mean(domain, names.clone())
                    .map(|s| format!("did you mean `{s}`? "))
                    .unwrap_or_default(),
                names.collect::<Vec<_>>().join(", ")
            ));
        }
        if !self.has_layer(layer) {
            return Err(format!(
                "layer `{layer}` is not declared; {}layers: {}",
                did_you_mean(layer, self.layers.iter().map(String::as_str))
                    .map(|s| format!("did you mean `{s}`? "))
                    .unwrap_or_default(),
                self.layers.join(", ")
            ));
        }
        Ok(())
    }

    /// The folder holding data contracts.
    pub fn contracts_dir(&self) -> PathBuf {
        self.root.join("contracts")
    }

    /// Whether a server of this lake runs the pipeline engine: it has pipelines, or topics
    /// that publish events.
    pub fn runs_pipelines(&self) -> bool {
        self.root.join(crate::PIPELINES_DIR).is_dir()
            || self.topics.iter().any(|t| !t.events.is_empty())
    }
}

fn check_stage_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "name `{name}` is not allowed (letters, digits, `-`, `_`)"
        ));
    }
    Ok(())
}

fn merge(base: &Settings, over: &Settings) -> Settings {
    Settings {
        storage: over.storage.clone().or(base.storage.clone()),
        metadata: over.metadata.clone().or(base.metadata.clone()),
        s3: over.s3.clone().or(base.s3.clone()),
        smtp: over.smtp.clone().or(base.smtp.clone()),
        domains: over.domains.clone().or(base.domains.clone()),
        layers: over.layers.clone().or(base.layers.clone()),
        tags: over.tags.clone().or(base.tags.clone()),
        topics: over.topics.clone().or(base.topics.clone()),
    }
}

/// The text of the file, to point errors at lines.
struct Place<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Place<'_> {
    fn error(
        &self,
        line: Option<usize>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> ConfigError {
        ConfigError::invalid(self.path, line, message, Some(fix.into()))
    }

    /// The line of `field:` under the first `section:` (the section's own line when the
    /// field is not written there).
    fn line_of_field(&self, section: &str, field: &str) -> Option<usize> {
        self.line_of_key(section).map(|at| {
            self.text
                .lines()
                .enumerate()
                .skip(at)
                .find(|(_, l)| l.trim_start().starts_with(&format!("{field}:")))
                .map(|(i, _)| i + 1)
                .unwrap_or(at)
        })
    }

    /// The first line that holds `key:` as a mapping key.
    fn line_of_key(&self, key: &str) -> Option<usize> {
        self.text
            .lines()
            .position(|l| {
                let t = l.trim_start().trim_start_matches("- ");
                t.strip_prefix(key)
                    .map(|rest| rest.trim_start().starts_with(':'))
                    .unwrap_or(false)
            })
            .map(|i| i + 1)
    }

    /// The `nth` line (0-based) that names `value`: `- value`, `name: value`, `[.., value, ..]`.
    fn line_of_value(&self, value: &str, nth: usize) -> Option<usize> {
        self.text
            .lines()
            .enumerate()
            .filter(|(_, l)| {
                let l = l.split('#').next().unwrap_or("");
                l.split(|c: char| {
                    !(c.is_alphanumeric() || c == '_' || c == '-' || c == '.' || c == '@')
                })
                .any(|tok| tok == value)
            })
            .nth(nth)
            .map(|(i, _)| i + 1)
    }
}

fn parse_file(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    if text.trim().is_empty() {
        return Err(ConfigError::invalid(
            path,
            Some(1),
            "the file is empty",
            Some("run `tarn init` for a commented starter".to_string()),
        ));
    }
    let de = serde_norway::Deserializer::from_str(text);
    serde_path_to_error::deserialize::<_, FileConfig>(de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        let line = inner.location().map(|l| l.line());
        let raw = inner.to_string();
        // serde_norway appends " at line L column C"; the line is reported separately.
        let msg = match raw.find(" at line ") {
            Some(i) => raw[..i].to_string(),
            None => raw,
        };
        let (message, fix) = explain(&field, &msg);
        ConfigError::invalid(path, line, message, fix)
    })
}

/// Turns a serde message into what is wrong and how to fix it.
fn explain(field: &str, msg: &str) -> (String, Option<String>) {
    // serde_norway may put the path first (`topics[0]: unknown field ...`); the path is
    // reported from serde_path_to_error instead.
    let msg = match msg.split_once(": ") {
        Some((head, rest)) if !head.contains(' ') && !head.is_empty() => rest,
        _ => msg,
    };
    let at = if field.is_empty() || field == "." {
        String::new()
    } else {
        format!(" at `{field}`")
    };
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let key = rest.split('`').next().unwrap_or("");
        let expected: Vec<&str> = rest
            .split("expected")
            .nth(1)
            .map(|e| e.split('`').skip(1).step_by(2).collect())
            .unwrap_or_default();
        let fix = match did_you_mean(key, expected.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("known keys here: {}", expected.join(", ")),
        };
        return (format!("unknown key `{key}`{at}"), Some(fix));
    }
    if msg.starts_with("invalid type") {
        let expected = msg.split("expected ").nth(1).unwrap_or("another type");
        return (
            format!("wrong type{at}: {msg}"),
            Some(format!("write `{field}` as {expected}")),
        );
    }
    if msg.starts_with("unknown variant") {
        let expected = msg.split("expected ").nth(1).unwrap_or("");
        return (format!("{msg}{at}"), Some(format!("use {expected}")));
    }
    if msg.starts_with("missing field") {
        return (
            format!("{msg}{at}"),
            Some("add the missing key".to_string()),
        );
    }
    if msg.contains("did not match any variant of untagged enum DomainEntry") {
        return (
            format!("domain entry{at} is neither a name nor a map"),
            Some(
                "write `- flights` or `- name: flights` with optional `description:` and `tags:`"
                    .to_string(),
            ),
        );
    }
    (
        format!("{msg}{at}"),
        Some("check the YAML syntax on that line".to_string()),
    )
}

/// The closest name among `options`, when it is close enough to be a typo.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    options: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    options
        .map(|o| (strsim::jaro_winkler(word, o), o))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, o)| o)
}

fn validate_settings(
    place: &Place<'_>,
    merged: &Settings,
    own: &Settings,
) -> Result<(), ConfigError> {
    let domains: Vec<DomainSpec> = merged
        .domains
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(DomainSpec::from)
        .collect();
    if own.domains.is_some() {
        let mut seen = BTreeSet::new();
        for d in &domains {
            if let Err(why) = crate::check_identifier(&d.name) {
                return Err(place.error(
                    place.line_of_value(&d.name, 0),
                    format!("domain name: {why}"),
                    "domains are SQL identifiers and path segments",
                ));
            }
            if !seen.insert(d.name.clone()) {
                return Err(place.error(
                    place.line_of_value(&d.name, 1),
                    format!("domain `{}` is declared twice", d.name),
                    "remove or rename one of them",
                ));
            }
        }
    }
    if let Some(layers) = &own.layers {
        if layers.is_empty() {
            return Err(place.error(
                place.line_of_key("layers"),
                "`layers` is empty",
                "list at least one layer, or remove the key for raw, trusted, service",
            ));
        }
        let mut seen = BTreeSet::new();
        for l in layers {
            if let Err(why) = crate::check_identifier(l) {
                return Err(place.error(
                    place.line_of_value(l, 0),
                    format!("layer name: {why}"),
                    "rename the layer",
                ));
            }
            if !seen.insert(l) {
                return Err(place.error(
                    place.line_of_value(l, 1),
                    format!("layer `{l}` is listed twice"),
                    "remove the repeated entry",
                ));
            }
        }
    }
    if let Some(topics) = &merged.topics {
        let mut seen = BTreeSet::new();
        for t in topics {
            if crate::check_identifier(&t.name).is_err()
                && !t
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(place.error(
                    place.line_of_value(&t.name, 0),
                    format!("topic name `{}` is not allowed", t.name),
                    "use letters, digits, `-` and `_`",
                ));
            }
            if !seen.insert(t.name.clone()) {
                return Err(place.error(
                    place.line_of_value(&t.name, 1),
                    format!("topic `{}` is declared twice", t.name),
                    "remove or rename one of them",
                ));
            }
            if let Some(d) = &t.domain {
                if !domains.iter().any(|x| &x.name == d) {
                    return Err(place.error(
                        place.line_of_value(d, 0),
                        format!(
                            "topic `{}` names domain `{d}`, which is not declared",
                            t.name
                        ),
                        match did_you_mean(d, domains.iter().map(|x| x.name.as_str())) {
                            Some(s) => format!("did you mean `{s}`? or add `{d}` under `domains:`"),
                            None => format!("add `{d}` under `domains:`"),
                        },
                    ));
                }
            }
            for e in &t.events {
                let known = EVENT_KINDS.iter().any(|k| match e.strip_suffix('*') {
                    Some(prefix) => k.starts_with(prefix),
                    None => k == e,
                });
                if !known {
                    return Err(place.error(
                        place.line_of_value(e, 0),
                        format!(
                            "topic `{}` lists event kind `{e}`, which tarn never records",
                            t.name
                        ),
                        match did_you_mean(e, EVENT_KINDS.iter().copied()) {
                            Some(s) => {
                                format!("did you mean `{s}`? kinds: {}", EVENT_KINDS.join(", "))
                            }
                            None => format!(
                                "kinds: {} (a trailing `*` matches a prefix)",
                                EVENT_KINDS.join(", ")
                            ),
                        },
                    ));
                }
            }
            for s in &t.subscriptions {
                let line = place
                    .line_of_value(&s.endpoint, 0)
                    .or_else(|| place.line_of_key("endpoint"));
                let ok = match s.protocol {
                    SubscriptionProtocol::Webhook => {
                        s.endpoint.starts_with("http://") || s.endpoint.starts_with("https://")
                    }
                    SubscriptionProtocol::Email => {
                        let parts: Vec<&str> = s.endpoint.split('@').collect();
                        parts.len() == 2 && !parts[0].is_empty() && parts[1].contains('.')
                    }
                    SubscriptionProtocol::Command | SubscriptionProtocol::File => {
                        !s.endpoint.trim().is_empty()
                    }
                };
                if ok && s.protocol == SubscriptionProtocol::Email && merged.smtp.is_none() {
                    return Err(place.error(
                        line,
                        format!(
                            "topic `{}`: email to `{}` needs a mail server",
                            t.name, s.endpoint
                        ),
                        "add an `smtp:` block (host, port, tls, username, from; the password in TARN_SMTP_PASSWORD)",
                    ));
                }
                if !ok {
                    let fix = match s.protocol {
                        SubscriptionProtocol::Webhook => {
                            "a webhook endpoint is an http:// or https:// URL"
                        }
                        SubscriptionProtocol::Email => {
                            "an email endpoint is an address like team@example.com"
                        }
                        SubscriptionProtocol::Command => "give the command to run",
                        SubscriptionProtocol::File => "give the path of the file to append to",
                    };
                    return Err(place.error(
                        line,
                        format!("topic `{}`: endpoint `{}` is not valid", t.name, s.endpoint),
                        fix,
                    ));
                }
            }
        }
    }
    if let Some(url) = &own.storage {
        if url.contains("://") && !url.starts_with("file://") && !url.starts_with("s3://") {
            return Err(place.error(
                place.line_of_key("storage"),
                format!("storage `{url}` has a scheme tarn does not know"),
                "use a folder, file:///abs/path or s3://bucket/prefix",
            ));
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            if rest.split('/').next().unwrap_or("").is_empty() {
                return Err(place.error(
                    place.line_of_key("storage"),
                    format!("storage `{url}` names no bucket"),
                    "write s3://BUCKET/PREFIX, e.g. s3://acme-lake/tarn",
                ));
            }
        }
    }
    if let Some(endpoint) = own.s3.as_ref().and_then(|s| s.endpoint.as_ref()) {
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(place.error(
                place.line_of_key("endpoint"),
                format!("s3 endpoint `{endpoint}` is not an http:// or https:// URL"),
                "write the store's address, e.g. http://127.0.0.1:9000",
            ));
        }
    }
    if let Some(url) = &own.metadata {
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(place.error(
                place.line_of_key("metadata"),
                format!("metadata `{}` is not a SQLite or Postgres URL", redact(url)),
                "use sqlite://path/to/file.db or postgres://user@host/db",
            ));
        }
    }
    Ok(())
}

/// Hides a password in a URL before it reaches an error message.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.find(':') {
                Some(c) => format!("{}://{}:***{}", &url[..s], &userinfo[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

fn resolve_storage(place: &Place<'_>, root: &Path, url: &str) -> Result<String, ConfigError> {
    if url.starts_with("s3://") {
        return Ok(url.to_string());
    }
    let path = url.strip_prefix("file://").unwrap_or(url);
    if path.is_empty() {
        return Err(place.error(
            place.line_of_key("storage"),
            "storage path is empty",
            "give a folder",
        ));
    }
    let p = Path::new(path);
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        root.join(p)
    };
    Ok(format!("file://{}", abs.display()))
}

fn resolve_metadata(
    place: &Place<'_>,
    root: &Path,
    url: &str,
    workspace: Option<&str>,
) -> Result<String, ConfigError> {
    if let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        let p = Path::new(path);
        let mut abs = if p.is_absolute() {
            p.to_path_buf()
        } else {
            root.join(p)
        };
        if let Some(ws) = workspace {
            let stem = abs
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("tarn")
                .to_string();
            abs.set_file_name(format!("{stem}.{ws}.db"));
        }
        return Ok(match query {
            Some(q) => format!("sqlite://{}?{q}", abs.display()),
            None => format!("sqlite://{}", abs.display()),
        });
    }
    if workspace.is_some() {
        return Err(place.error(
            place.line_of_key("metadata"),
            "workspaces on a Postgres metadata store are not supported yet",
            "use a SQLite metadata URL for feature workspaces",
        ));
    }
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<LakeConfig, ConfigError> {
        LakeConfig::parse(Path::new("/tmp/x/tarn.yml"), text, &Selection::default())
    }

    #[test]
    fn unknown_key_names_line_and_suggests() {
        let err = parse("lake: demo\ndomian: [flights]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("tarn.yml:2"), "{err}");
        assert!(err.contains("did you mean `domains`"), "{err}");
    }

    #[test]
    fn wrong_type_names_field() {
        let err = parse("lake: demo\nlayers: raw\n").unwrap_err().to_string();
        assert!(err.contains(":2"), "{err}");
        assert!(err.contains("layers"), "{err}");
    }

    #[test]
    fn duplicate_domain_points_at_second() {
        let err =
            parse("lake: demo\ndomains:\n  - flights\n  - weather\n  - flights\n").unwrap_err();
        assert_eq!(err.line(), Some(5), "{err}");
        assert!(err.to_string().contains("declared twice"));
    }

    #[test]
    fn undefined_domain_in_topic() {
        let err = parse(
            "lake: demo\ndomains: [flights]\ntopics:\n  - name: alerts\n    domain: flihgts\n",
        )
        .unwrap_err();
        assert_eq!(err.line(), Some(5), "{err}");
        assert!(err.to_string().contains("did you mean `flights`"), "{err}");
    }

    #[test]
    fn environment_overrides_and_workspace_isolate() {
        let text = "lake: demo\ndomains: [flights]\nenvironments:\n  prd:\n    storage: /data/prd\n    layers: [raw, trusted]\n";
        let sel = Selection {
            env: Some("prd".into()),
            workspace: None,
        };
        let cfg = LakeConfig::parse(Path::new("/tmp/x/tarn.yml"), text, &sel).unwrap();
        assert_eq!(cfg.storage, "file:///data/prd/prd");
        assert_eq!(cfg.layers, ["raw", "trusted"]);
        let sel = Selection {
            env: None,
            workspace: Some("feat-1".into()),
        };
        let dev = LakeConfig::parse(Path::new("/tmp/x/tarn.yml"), text, &sel).unwrap();
        assert!(dev.storage.ends_with("/lake/dev.feat-1"), "{}", dev.storage);
        assert!(
            dev.metadata.ends_with(".tarn/dev.feat-1.db"),
            "{}",
            dev.metadata
        );
        let err = LakeConfig::parse(
            Path::new("/tmp/x/tarn.yml"),
            text,
            &Selection {
                env: Some("prod".into()),
                workspace: None,
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("did you mean `prd`"), "{err}");
    }

    #[test]
    fn email_without_a_mail_server_is_refused_with_line() {
        let yml = "lake: x\ntopics:\n  - name: failures\n    subscriptions:\n      - protocol: email\n        endpoint: ops@example.com\n";
        let err = parse(yml).unwrap_err().to_string();
        assert!(err.contains("tarn.yml:6"), "{err}");
        assert!(
            err.contains("needs a mail server") && err.contains("smtp:"),
            "{err}"
        );
        let with = format!(
            "{yml}smtp:\n  host: mail.example.com\n  from: tarn@example.com\n  password: hunter2\n"
        );
        let c = parse(&with).unwrap();
        let smtp = c.smtp.unwrap();
        assert_eq!(smtp.port(), 587);
        assert!(!format!("{smtp:?}").contains("hunter2"));
    }

    #[test]
    fn bad_webhook_is_refused_with_line() {
        let err = parse("lake: demo\ntopics:\n  - name: a\n    subscriptions:\n      - protocol: webhook\n        endpoint: ftp-thing\n").unwrap_err();
        assert_eq!(err.line(), Some(6), "{err}");
    }

    #[test]
    fn password_is_redacted() {
        let err = parse("lake: demo\nmetadata: mysql://u:secret@h/db\n")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("secret"), "{err}");
    }
}
