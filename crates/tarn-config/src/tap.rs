//! Singer taps as `tarn.yml` declares them under `taps:`, and the Singer index that maps a
//! tap's `id` to the pip package and executable that run it.
//!
//! ```yaml
//! taps:
//!   - id: postgres                 # tap-postgres in the Singer index
//!     name: warehouse              # this source; tables are DOMAIN.LAYER.warehouse_<stream>
//!     domain: flights
//!     layer: raw                   # default raw
//!     settings: {host: db.internal, port: 5432, user: loader, database: ops}
//!     secrets:
//!       password: env:PGPASSWORD   # or file:secrets/pg.json#password, or tarn:pg_password
//!     select: [public-flights, "public-airports.faa"]
//!     schedule: "0 */6 * * *"
//! ```
//!
//! The index is the tapdance `singer_index.yml` form: a list of `name` (the executable's
//! package name, `tap-postgres`), `source` (what pip installs), `alias` (the id, when it is not
//! the name without `tap-`), and optionally `executable` and `variant`. tarn ships one for
//! common taps ([`BUNDLED_INDEX`]); a lake's own `singer_index.yml` beside `tarn.yml` adds
//! entries and wins over the bundled ones.

use crate::error::ConfigError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The Singer index tarn ships.
pub const BUNDLED_INDEX: &str = include_str!("singer_index.yml");

/// A lake's own index file, beside `tarn.yml`.
pub const INDEX_FILE: &str = "singer_index.yml";

/// One tap of `tarn.yml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TapSpec {
    /// The tap's id in the Singer index, without `tap-` (`postgres`, `jsonl`).
    pub id: String,
    /// This source's name (letters, digits, `_`): tables are `DOMAIN.LAYER.<name>_<stream>`.
    pub name: String,
    /// Which variant of the id the index lists (its `variant:`), when it lists several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// What pip installs instead of the index's source (`tap-foo==1.2`, a path, a git URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The program the package installs, when it is not the index's (`tap-<id>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executable: Option<String>,
    /// The tap's settings, handed to it in its config file.
    #[serde(default)]
    pub settings: serde_json::Map<String, serde_json::Value>,
    /// Settings that are secrets: `env:VAR`, `file:PATH[#KEY]`, `tarn:NAME` (tarn's secret
    /// store), or a bare path to a JSON file holding the setting under its own name.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// Streams (`public-flights`) or stream properties (`public-flights.carrier`) to select;
    /// `*` matches any run of characters. Empty: every stream the tap discovers.
    #[serde(default)]
    pub select: Vec<String>,
    /// The domain the tables land in.
    pub domain: String,
    /// The layer the tables land in (`raw`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
    /// Stream metadata laid over what discovery found, as Meltano's `metadata:` is: by stream
    /// pattern, e.g. `{public-flights: {replication-method: INCREMENTAL, replication-key: id}}`.
    #[serde(default)]
    pub metadata: BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
    /// A cron schedule `tarn serve` runs the tap on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// A stream's table, when `<name>_<stream>` is not wanted: `{public-flights: flights}`.
    #[serde(default)]
    pub tables: BTreeMap<String, String>,
    /// `delta` (default: tables only) or `jsonl` (tables, and the raw messages kept as files
    /// in the raw zone under `_singer/<name>/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Records buffered per stream before a commit at the next STATE (100000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_rows: Option<usize>,
    /// Longest a run may take (`6h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Hand the catalog with `--properties` instead of `--catalog` (older taps).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub properties: bool,
}

/// Where a secret setting's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// An environment variable of the process running the tap.
    Env(String),
    /// A file (relative to the lake folder): its whole text trimmed, or a key of its JSON.
    File { path: PathBuf, key: Option<String> },
    /// tarn's own secret store (`tarn secrets set NAME`).
    Store(String),
}

impl SecretSource {
    /// Reads how a secret is written; `setting` is the setting it fills (a bare JSON file
    /// holds the value under that name).
    pub fn parse(text: &str, setting: &str) -> Result<SecretSource, String> {
        let text = text.trim();
        if let Some(var) = text.strip_prefix("env:") {
            if var.is_empty() {
                return Err("`env:` needs a variable name: env:PGPASSWORD".into());
            }
            return Ok(SecretSource::Env(var.to_string()));
        }
        if let Some(name) = text.strip_prefix("tarn:") {
            crate::check_identifier(name).map_err(|why| {
                format!("secret store name: {why} (set it with `tarn secrets set NAME`)")
            })?;
            return Ok(SecretSource::Store(name.to_string()));
        }
        if text.contains("arn:aws:secretsmanager") {
            return Err("an AWS Secrets Manager ARN cannot be read here; put the value in tarn's store with `tarn secrets set NAME` and write tarn:NAME".into());
        }
        let file = text.strip_prefix("file:").unwrap_or(text);
        if file.is_empty() {
            return Err("give env:VAR, file:PATH[#KEY] or tarn:NAME".into());
        }
        let (path, key) = match file.split_once('#') {
            Some((p, k)) => (p, Some(k.to_string())),
            None if file.ends_with(".json") => (file, Some(setting.to_string())),
            None => (file, None),
        };
        Ok(SecretSource::File {
            path: PathBuf::from(path),
            key,
        })
    }
}

impl TapSpec {
    pub fn layer(&self) -> &str {
        self.layer.as_deref().unwrap_or("raw")
    }

    /// Records buffered per stream before a commit.
    pub fn batch_rows(&self) -> usize {
        self.batch_rows.unwrap_or(100_000).max(1)
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
            .as_deref()
            .and_then(crate::parse_duration)
            .unwrap_or(Duration::from_secs(6 * 3600))
    }

    /// Whether the raw messages are kept as files too.
    pub fn keeps_messages(&self) -> bool {
        self.format.as_deref() == Some("jsonl")
    }

    /// The table stream `stream` is written to (without domain and layer).
    pub fn table_of(&self, stream: &str) -> String {
        if let Some(t) = self.tables.get(stream) {
            return t.clone();
        }
        let mut out = format!("{}_", self.name);
        for c in stream.chars() {
            if c.is_ascii_alphanumeric() {
                out.push(c.to_ascii_lowercase());
            } else if !out.ends_with('_') {
                out.push('_');
            }
        }
        out.trim_end_matches('_').chars().take(64).collect()
    }

    /// Every problem of the spec (the field at fault, the problem with its fix).
    fn problems(&self, index: &SingerIndex) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Err(why) = crate::check_identifier(&self.name) {
            out.push((
                "name",
                format!("tap name: {why} (it names the tables <name>_<stream>)"),
            ));
        }
        if self.source.is_none() {
            if let Err(why) = index.find(&self.id, self.variant.as_deref()) {
                out.push(("id", why));
            }
        }
        for (setting, text) in &self.secrets {
            if let Err(why) = SecretSource::parse(text, setting) {
                out.push(("secrets", format!("secret `{setting}`: {why}")));
            }
            if self.settings.contains_key(setting) {
                out.push((
                    "secrets",
                    format!(
                        "`{setting}` is both a setting and a secret; keep it under `secrets:` only"
                    ),
                ));
            }
        }
        if let Some(s) = &self.schedule {
            if let Err(why) = crate::check_cron(s) {
                out.push(("schedule", why));
            }
        }
        if let Some(f) = &self.format {
            if f != "delta" && f != "jsonl" {
                out.push(("format", format!("format `{f}` is not known; write delta (tables) or jsonl (tables and the raw messages as files)")));
            }
        }
        if let Some(t) = &self.timeout {
            if crate::parse_duration(t).is_none() {
                out.push((
                    "timeout",
                    format!("timeout {t:?} is not understood; write e.g. `30m` or `6h`"),
                ));
            }
        }
        if self.batch_rows == Some(0) {
            out.push(("batch_rows", "batch_rows must be at least 1".into()));
        }
        for (stream, table) in &self.tables {
            if let Err(why) = crate::check_identifier(table) {
                out.push(("tables", format!("table of stream `{stream}`: {why}")));
            }
        }
        for pattern in &self.select {
            if pattern.trim().is_empty() {
                out.push((
                    "select",
                    "an empty select pattern; write a stream (public-flights) or stream.property"
                        .into(),
                ));
            }
        }
        out
    }
}

/// One entry of a Singer index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// The tap's name, `tap-postgres`.
    pub name: String,
    /// What pip installs.
    pub source: String,
    /// The id users write, when it is not the name without `tap-`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// The program the package installs (the name, unless given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executable: Option<String>,
    /// Which fork or maintainer this entry is (`meltanolabs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl IndexEntry {
    /// The id users write for this entry.
    pub fn id(&self) -> &str {
        self.alias
            .as_deref()
            .unwrap_or_else(|| self.name.strip_prefix("tap-").unwrap_or(&self.name))
    }

    pub fn executable(&self) -> &str {
        self.executable.as_deref().unwrap_or(&self.name)
    }
}

/// The Singer index: the bundled entries, then the lake's own (which win).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SingerIndex {
    pub entries: Vec<IndexEntry>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum IndexFile {
    List(Vec<IndexEntry>),
    Taps { taps: Vec<IndexEntry> },
}

impl SingerIndex {
    /// The bundled index, with the lake's `singer_index.yml` (in `root`) laid over it.
    pub fn load(root: &Path) -> Result<SingerIndex, ConfigError> {
        let mut entries = parse_index(Path::new("(bundled singer_index.yml)"), BUNDLED_INDEX)?;
        let own = root.join(INDEX_FILE);
        if own.is_file() {
            let text = std::fs::read_to_string(&own).map_err(|source| ConfigError::Read {
                path: own.clone(),
                source,
            })?;
            let mine = parse_index(&own, &text)?;
            entries.retain(|e| {
                !mine
                    .iter()
                    .any(|m| m.id() == e.id() && m.variant == e.variant)
            });
            let mut all = mine;
            all.extend(entries);
            entries = all;
        }
        Ok(SingerIndex { entries })
    }

    /// The entry of `id` (and `variant`), or why there is none (with a did-you-mean).
    pub fn find(&self, id: &str, variant: Option<&str>) -> Result<&IndexEntry, String> {
        let id = id.strip_prefix("tap-").unwrap_or(id);
        let mut matching = self.entries.iter().filter(|e| e.id() == id);
        let found = match variant {
            Some(v) => matching.find(|e| e.variant.as_deref() == Some(v)),
            None => matching.next(),
        };
        if let Some(e) = found {
            return Ok(e);
        }
        if let Some(v) = variant {
            let variants: Vec<&str> = self
                .entries
                .iter()
                .filter(|e| e.id() == id)
                .filter_map(|e| e.variant.as_deref())
                .collect();
            if !variants.is_empty() {
                return Err(format!(
                    "tap `{id}` has no variant `{v}` in the Singer index; variants: {}",
                    variants.join(", ")
                ));
            }
        }
        let ids: Vec<&str> = self.entries.iter().map(IndexEntry::id).collect();
        let hint = crate::resolve::did_you_mean(id, ids.iter().copied())
            .map(|s| format!("did you mean `{s}`? "))
            .unwrap_or_default();
        Err(format!(
            "tap `{id}` is not in the Singer index; {hint}add it to {INDEX_FILE} beside tarn.yml (name, source, alias) or give `source:` (a pip requirement) on the tap; known: {}",
            ids.join(", ")
        ))
    }
}

fn parse_index(path: &Path, text: &str) -> Result<Vec<IndexEntry>, ConfigError> {
    let parsed: IndexFile = serde_norway::from_str(text).map_err(|e| {
        ConfigError::invalid(
            path,
            e.location().map(|l| l.line()),
            format!("not a Singer index: {e}"),
            Some("write a list of entries with `name` (tap-foo), `source` (what pip installs) and optionally `alias`, `executable`, `variant`".to_string()),
        )
    })?;
    let entries = match parsed {
        IndexFile::List(l) => l,
        IndexFile::Taps { taps } => taps,
    };
    for e in &entries {
        if e.name.trim().is_empty() || e.source.trim().is_empty() {
            return Err(ConfigError::invalid(
                path,
                None,
                format!("index entry `{}` needs a name and a source", e.name),
                Some("give `name: tap-foo` and `source: tap-foo==1.0`".to_string()),
            ));
        }
    }
    Ok(entries)
}

/// Checks every tap of `tarn.yml` (the text at `path`): answers every problem at once, each
/// with its line.
pub(crate) fn check_taps(
    path: &Path,
    text: &str,
    taps: &[TapSpec],
    index: &SingerIndex,
    zone_ok: &dyn Fn(&str, &str) -> Result<(), String>,
) -> Result<(), ConfigError> {
    let mut problems = Vec::new();
    let starts = item_lines(text, "taps");
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, tap) in taps.iter().enumerate() {
        let start = starts.get(i).copied();
        let line_of = |field: &str| -> Option<usize> {
            let s = start?;
            let end = starts.get(i + 1).copied().unwrap_or(usize::MAX);
            text.lines()
                .enumerate()
                .skip(s - 1)
                .take_while(|(n, _)| n + 1 < end)
                .find(|(_, l)| {
                    l.trim_start()
                        .trim_start_matches("- ")
                        .starts_with(&format!("{field}:"))
                })
                .map(|(n, _)| n + 1)
                .or(Some(s))
        };
        let mut problem = |field: &str, message: String| {
            problems.push(ConfigError::invalid(
                path,
                line_of(field),
                format!("tap `{}`: {message}", tap.name),
                Some("fix the tap under `taps:` (see `tarn help taps`)".to_string()),
            ));
        };
        if let Some(first) = seen.insert(&tap.name, i) {
            problem(
                "name",
                format!(
                    "the name is used by tap {} too; names must differ",
                    first + 1
                ),
            );
        }
        for (field, message) in tap.problems(index) {
            problem(field, message);
        }
        if let Err(why) = zone_ok(&tap.domain, tap.layer()) {
            problem("domain", why);
        }
    }
    match problems.len() {
        0 => Ok(()),
        1 => Err(problems.remove(0)),
        _ => Err(ConfigError::Problems(problems)),
    }
}

/// The 1-based lines where each item of the list under `key:` starts.
fn item_lines(text: &str, key: &str) -> Vec<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let Some(at) = lines
        .iter()
        .position(|l| !l.starts_with(' ') && l.trim_end().starts_with(&format!("{key}:")))
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut indent = None;
    for (n, l) in lines.iter().enumerate().skip(at + 1) {
        let trimmed = l.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let depth = l.len() - trimmed.len();
        if depth == 0 && !trimmed.starts_with('-') {
            break; // the next top-level key
        }
        if trimmed.starts_with("- ") || trimmed == "-" {
            if indent.is_none() {
                indent = Some(depth);
            }
            if Some(depth) == indent {
                out.push(n + 1);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tap(yaml: &str) -> TapSpec {
        serde_norway::from_str(yaml).unwrap()
    }

    #[test]
    fn the_bundled_index_knows_the_common_taps() {
        let index = SingerIndex::load(Path::new("/nonexistent")).unwrap();
        let pg = index.find("postgres", None).unwrap();
        assert_eq!(pg.source, "meltanolabs-tap-postgres==0.10.0");
        assert_eq!(pg.executable(), "tap-postgres");
        assert_eq!(index.find("tap-jsonl", None).unwrap().id(), "jsonl");
        let err = index.find("postgress", None).unwrap_err();
        assert!(err.contains("did you mean `postgres`"), "{err}");
    }

    #[test]
    fn secrets_are_read_in_every_form() {
        assert_eq!(
            SecretSource::parse("env:PGPASSWORD", "password").unwrap(),
            SecretSource::Env("PGPASSWORD".into())
        );
        assert_eq!(
            SecretSource::parse("secrets/pg.json", "password").unwrap(),
            SecretSource::File {
                path: "secrets/pg.json".into(),
                key: Some("password".into())
            }
        );
        assert_eq!(
            SecretSource::parse("file:pw.txt", "password").unwrap(),
            SecretSource::File {
                path: "pw.txt".into(),
                key: None
            }
        );
        assert_eq!(
            SecretSource::parse("tarn:pg_pw", "password").unwrap(),
            SecretSource::Store("pg_pw".into())
        );
        assert!(SecretSource::parse("tarn:Bad-Name", "p").is_err());
    }

    #[test]
    fn stream_names_become_table_names() {
        let t = tap("id: postgres\nname: pg\ndomain: flights\n");
        assert_eq!(t.table_of("public-flights"), "pg_public_flights");
        assert_eq!(t.table_of("Users.Events"), "pg_users_events");
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let text = "lake: demo\ntaps:\n  - id: postgress\n    name: pg\n    domain: flights\n  - id: jsonl\n    name: Bad\n    domain: flights\n    schedule: every day\n";
        let taps: Vec<TapSpec> = vec![
            tap("id: postgress\nname: pg\ndomain: flights\n"),
            tap("id: jsonl\nname: Bad\ndomain: flights\nschedule: every day\n"),
        ];
        let index = SingerIndex::load(Path::new("/nonexistent")).unwrap();
        let err =
            check_taps(Path::new("tarn.yml"), text, &taps, &index, &|_, _| Ok(())).unwrap_err();
        let ConfigError::Problems(p) = &err else {
            panic!("{err}")
        };
        assert_eq!(p.len(), 3, "{err}");
        assert_eq!(p[0].line(), Some(3));
        assert_eq!(p[1].line(), Some(7));
        assert_eq!(p[2].line(), Some(9));
    }
}
