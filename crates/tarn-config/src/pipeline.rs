//! Pipeline folders (`pipelines/<name>/config.yml` with `steps/`, `trigger/`, `catch/`), as the
//! datalake boilerplate seed lays them out: parsed and checked all at once, every problem with
//! its file and line.

use crate::error::ConfigError;
use crate::resolve::LakeConfig;
use serde_norway::{Mapping, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The folder holding pipeline folders, beside `tarn.yml`.
pub const PIPELINES_DIR: &str = "pipelines";
/// The lake-level folder of shared modules (`requirements.json`'s `shared_modules`).
pub const SHARED_DIR: &str = "shared";

/// The text of a YAML file and its parsed value; a syntax error names its line.
fn read_yaml(path: &Path) -> Result<(String, Value), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_yaml(path, text)
}

/// `text` (what `path` holds, or is about to) parsed; a syntax error names its line.
fn parse_yaml(path: &Path, text: String) -> Result<(String, Value), ConfigError> {
    let value: Value = serde_norway::from_str(&text).map_err(|e| {
        let line = e.location().map(|l| l.line());
        let msg = e.to_string();
        let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
        ConfigError::invalid(
            path,
            line,
            format!("not valid YAML: {msg}"),
            Some("fix the syntax (indent with spaces, `key: value`)".to_string()),
        )
    })?;
    Ok((text, value))
}

/// One pipeline folder, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineSpec {
    /// The pipeline folder.
    pub dir: PathBuf,
    pub name: String,
    pub domain: String,
    /// The layer its triggers watch.
    pub origin: String,
    /// The layer its steps write.
    pub target: String,
    pub triggers: Vec<Trigger>,
    pub tags: BTreeMap<String, String>,
    /// Field name to type (`str`, `int`, `float`, `bool`, `list`, `dict`, `any`): what the
    /// trigger module must return and what glue scripts receive as `--FIELD VALUE`.
    pub contract: BTreeMap<String, String>,
    /// In file order; the first one starts every execution.
    pub steps: Vec<Step>,
    /// `trigger/`: turns the event into the execution's input.
    pub trigger: Option<Module>,
    /// `catch/`: receives a failed step's error.
    pub catch: Option<Module>,
}

/// What starts a pipeline.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// An object landed in the origin zone with this key prefix and suffix.
    S3 { prefix: String, suffix: String },
    /// A custom event whose source and detail type are among these (empty: any).
    EventRule {
        source: Vec<String>,
        detail_type: Vec<String>,
    },
    /// A cron expression (5 fields, or 6 with seconds), in UTC.
    Schedule(String),
}

/// One state of the pipeline's state machine.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub name: String,
    pub kind: StepKind,
    /// The step after this one (none: the execution ends here).
    pub next: Option<String>,
    pub retry: Retry,
    /// Killed (with its process tree) after this long.
    pub timeout: Option<Duration>,
    /// At most this many attempts of this step at once, across executions.
    pub max_concurrent_runs: Option<u32>,
    /// Extra environment variables for the step's process.
    pub environment: BTreeMap<String, String>,
    /// Where the step is declared in config.yml.
    pub line: usize,
}

/// The step types: the seed's (`lambda`, `glue`, `choice`) and tarn's (`spark`, `sql`,
/// `command`).
#[derive(Debug, Clone, PartialEq)]
pub enum StepKind {
    /// `index.handler(event, context)` of the module.
    Lambda {
        module: Module,
        memory_size: Option<u64>,
    },
    /// The module's `index.py` as a Glue job: `--KEY VALUE` arguments; passes its input on.
    Glue {
        module: Module,
        glue_version: GlueVersion,
        default_args: BTreeMap<String, String>,
        job_bookmark: Option<String>,
        worker_type: Option<String>,
        worker_count: Option<u32>,
    },
    /// `spark-submit` of the module's `index.py`.
    Spark {
        module: Module,
        master: Option<String>,
        default_args: BTreeMap<String, String>,
    },
    /// A query over the catalog written into a table of the target layer.
    Sql {
        query: String,
        /// The table's name in the target zone.
        table: String,
        /// `append`, `overwrite` or `merge`.
        mode: String,
        keys: Vec<String>,
    },
    /// Any executable: the input on stdin, JSON output on stdout. Relative to the pipeline folder.
    Command { command: Vec<String> },
    /// A training of `models/<model>/train.yml`; its report is the step's output.
    Train { model: String },
    /// A batch transform; `model` may be `$.path` into the step's input (the version a
    /// `train` step registered is `$.registered.model_uri`).
    Transform {
        model: String,
        input: String,
        output: String,
        id_columns: Vec<String>,
        csv: Option<String>,
    },
    /// The first choice whose variable equals its value, else `default`.
    Choice {
        choices: Vec<Choice>,
        default: Option<String>,
    },
}

impl StepKind {
    /// The type's name as written in config.yml.
    pub fn type_name(&self) -> &'static str {
        match self {
            StepKind::Lambda { .. } => "lambda",
            StepKind::Glue { .. } => "glue",
            StepKind::Spark { .. } => "spark",
            StepKind::Sql { .. } => "sql",
            StepKind::Command { .. } => "command",
            StepKind::Train { .. } => "train",
            StepKind::Transform { .. } => "transform",
            StepKind::Choice { .. } => "choice",
        }
    }
}

/// A Glue job's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GlueVersion {
    PythonShell,
    GlueEtl,
}

/// One branch of a `choice` step.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// A field of the input: `example`, `$.example` or `$.a.b`.
    pub variable: String,
    pub equals: serde_json::Value,
    pub next_step: String,
}

/// How often and how patiently a failed step is tried again, as Step Functions' `Retry`.
#[derive(Debug, Clone, PartialEq)]
pub struct Retry {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    pub interval: Duration,
    pub backoff_rate: f64,
    pub max_delay: Option<Duration>,
    /// Full jitter: a random wait between 0 and the computed delay.
    pub jitter: bool,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            max_attempts: 1,
            interval: Duration::from_secs(1),
            backoff_rate: 2.0,
            max_delay: None,
            jitter: false,
        }
    }
}

impl Retry {
    /// The wait before attempt `next` (2 for the first retry), before jitter.
    pub fn delay(&self, next: u32) -> Duration {
        let exp = next.saturating_sub(2) as i32;
        let d = self.interval.as_secs_f64() * self.backoff_rate.powi(exp);
        let d = Duration::from_secs_f64(d.min(86_400.0));
        match self.max_delay {
            Some(m) => d.min(m),
            None => d,
        }
    }
}

/// A folder of Python code: `src/index.py` and `requirements.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct Module {
    pub name: String,
    pub dir: PathBuf,
    pub requirements: Requirements,
}

impl Module {
    /// The module's `src/` folder.
    pub fn src(&self) -> PathBuf {
        self.dir.join("src")
    }

    /// The module's entry point, `src/index.py`.
    pub fn entry(&self) -> PathBuf {
        self.src().join("index.py")
    }
}

/// `requirements.json`.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Requirements {
    #[serde(default)]
    pub packages: Vec<String>,
    #[serde(default)]
    pub extra_jars: Vec<String>,
    #[serde(default)]
    pub shared_modules: Vec<String>,
}

/// The folders under `root` that hold `file`, sorted (none when `root` is missing).
pub(crate) fn folders_with(root: &Path, file: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = match std::fs::read_dir(root) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.join(file).is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    dirs.sort();
    dirs
}

/// Each folder loaded with `load` (which sees those loaded before it); every problem of every
/// folder when any has one.
/// The `.yml` and `.yaml` files directly in `dir`, sorted (none when it does not exist).
pub(crate) fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.is_file()
                    && matches!(
                        p.extension().and_then(|e| e.to_str()),
                        Some("yml") | Some("yaml")
                    )
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

pub(crate) fn load_each<T>(
    dirs: Vec<PathBuf>,
    mut load: impl FnMut(&Path, &[T]) -> Result<T, ConfigError>,
) -> Result<Vec<T>, ConfigError> {
    let mut problems = Vec::new();
    let mut specs = Vec::new();
    for dir in dirs {
        match load(&dir, &specs) {
            Ok(spec) => specs.push(spec),
            Err(ConfigError::Problems(mut p)) => problems.append(&mut p),
            Err(e) => problems.push(e),
        }
    }
    if problems.is_empty() {
        Ok(specs)
    } else {
        Err(ConfigError::Problems(problems))
    }
}

/// Every pipeline of the lake (`pipelines/*/config.yml`), or every problem found in them.
pub fn load_pipelines(lake: &LakeConfig) -> Result<Vec<PipelineSpec>, ConfigError> {
    let dirs = folders_with(&lake.root.join(PIPELINES_DIR), "config.yml");
    load_each(dirs, |dir, loaded: &[PipelineSpec]| {
        let spec = load_pipeline(lake, dir)?;
        match loaded.iter().find(|s| s.name == spec.name) {
            Some(other) => Err(ConfigError::invalid(
                &dir.join("config.yml"),
                Some(1),
                format!(
                    "pipeline name `{}` is also used by {}",
                    spec.name,
                    other.dir.display()
                ),
                Some("give every pipeline its own name".to_string()),
            )),
            None => Ok(spec),
        }
    })
}

/// One pipeline folder, checked: every problem is reported, each with file and line.
pub fn load_pipeline(lake: &LakeConfig, dir: &Path) -> Result<PipelineSpec, ConfigError> {
    let path = dir.join("config.yml");
    Parser::check(&path, |p, value| p.pipeline(lake, dir, value))
}

const STEP_TYPES: [&str; 8] = [
    "lambda",
    "glue",
    "spark",
    "sql",
    "command",
    "train",
    "transform",
    "choice",
];
const COMMON_PROPS: [&str; 7] = [
    "next_step",
    "retry",
    "timeout",
    "timeout_seconds",
    "max_concurrent_runs",
    "environment",
    "max_retries",
];
const CONTRACT_TYPES: [&str; 12] = [
    "str", "string", "int", "integer", "float", "number", "bool", "boolean", "list", "dict",
    "object", "any",
];

pub(crate) struct Parser<'a> {
    pub(crate) path: &'a Path,
    pub(crate) lines: Vec<&'a str>,
    pub(crate) problems: Vec<ConfigError>,
}

impl Parser<'_> {
    /// Reads the YAML file at `path` and parses it with `parse`: what it built when it found
    /// no problem, otherwise every problem it found, each with the file and its line.
    pub(crate) fn check<T>(
        path: &Path,
        parse: impl FnOnce(&mut Parser<'_>, &Value) -> T,
    ) -> Result<T, ConfigError> {
        let (text, value) = read_yaml(path)?;
        Self::check_text(path, text, value, parse)
    }

    /// [`Parser::check`] of `text`, what `path` is about to hold (before it is written).
    pub(crate) fn check_new<T>(
        path: &Path,
        text: String,
        parse: impl FnOnce(&mut Parser<'_>, &Value) -> T,
    ) -> Result<T, ConfigError> {
        let (text, value) = parse_yaml(path, text)?;
        Self::check_text(path, text, value, parse)
    }

    fn check_text<T>(
        path: &Path,
        text: String,
        value: Value,
        parse: impl FnOnce(&mut Parser<'_>, &Value) -> T,
    ) -> Result<T, ConfigError> {
        let mut p = Parser {
            path,
            lines: text.lines().collect(),
            problems: Vec::new(),
        };
        let built = parse(&mut p, &value);
        if p.problems.is_empty() {
            Ok(built)
        } else {
            Err(ConfigError::Problems(p.problems))
        }
    }

    /// A file named for what it declares (`monitors/NAME.yml`): its name, checked as an
    /// identifier, and its top-level mapping (`empty` when the file is something else).
    pub(crate) fn named_file<'v>(
        &mut self,
        path: &Path,
        v: &'v Value,
        empty: &'v Mapping,
        kind: &str,
        example: &str,
        start: &str,
    ) -> (String, &'v Mapping) {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        if let Err(why) = crate::check_identifier(&name) {
            self.problem(
                &[],
                format!("{kind} name `{name}` (the file's name) {why}"),
                format!("rename the file to letters, digits and underscores, e.g. {example}"),
            );
        }
        match v.as_mapping() {
            Some(m) => (name, m),
            None => {
                self.problem(&[], format!("a {kind} file is a mapping"), start);
                (name, empty)
            }
        }
    }

    pub(crate) fn problem(
        &mut self,
        at: &[&str],
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        let line = self.line(at);
        self.problems.push(ConfigError::invalid(
            self.path,
            Some(line),
            message,
            Some(fix.into()),
        ));
    }

    /// The line of a key path (`["steps", "Load", "properties", "next_step"]`), or of the
    /// deepest part of it that is there; 1 when none is.
    pub(crate) fn line(&self, at: &[&str]) -> usize {
        let mut best = 1;
        let mut start = 0;
        let mut parent: isize = -1;
        for key in at {
            let mut found = None;
            for i in start..self.lines.len() {
                let l = self.lines[i];
                let t = l.trim_start();
                if t.is_empty() || t.starts_with('#') {
                    continue;
                }
                let mut indent = (l.len() - t.len()) as isize;
                let mut body = t;
                while let Some(rest) = body.strip_prefix("- ") {
                    indent += 2;
                    body = rest.trim_start();
                }
                if indent <= parent && i > start {
                    break;
                }
                let body = body.trim_start_matches(['"', '\'']);
                if let Some(rest) = body.strip_prefix(key) {
                    if rest
                        .trim_start_matches(['"', '\''])
                        .trim_start()
                        .starts_with(':')
                    {
                        found = Some((i, indent));
                        break;
                    }
                }
            }
            match found {
                Some((i, indent)) => {
                    best = i + 1;
                    start = i + 1;
                    parent = indent;
                }
                None => break,
            }
        }
        best
    }

    fn pipeline(&mut self, lake: &LakeConfig, dir: &Path, v: &Value) -> PipelineSpec {
        let folder = dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let empty = Mapping::new();
        let top = match v.as_mapping() {
            Some(m) => m,
            None => {
                self.problem(
                    &[],
                    "config.yml is not a mapping",
                    "write `name:`, `domain:`, `layers:`, `triggers:`, `steps:` keys",
                );
                &empty
            }
        };
        self.unknown_keys(
            top,
            &[],
            &[
                "name", "domain", "layers", "triggers", "tags", "contract", "steps",
            ],
        );
        let name = self.string(top, &["name"]).unwrap_or_else(|| {
            self.problem(&[], "the pipeline has no `name`", "add `name: NAME`");
            folder.clone()
        });
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            self.problem(
                &["name"],
                format!("pipeline name `{name}` is not allowed"),
                "use letters, digits, `_` and `-`",
            );
        }
        let domain = self.string(top, &["domain"]).unwrap_or_default();
        if domain.is_empty() {
            self.problem(&[], "the pipeline has no `domain`", "add `domain: DOMAIN`");
        } else if !lake.has_domain(&domain) {
            let known: Vec<&str> = lake.domains.iter().map(|d| d.name.as_str()).collect();
            self.problem(
                &["domain"],
                format!("domain `{domain}` is not declared in tarn.yml"),
                format!(
                    "use one of: {} (or add it to `domains:` in tarn.yml)",
                    known.join(", ")
                ),
            );
        }
        let (mut origin, mut target) = (String::new(), String::new());
        match top.get("layers").map(|l| l.as_mapping()) {
            Some(Some(layers)) => {
                self.unknown_keys(layers, &["layers"], &["origin", "target"]);
                for (key, slot) in [("origin", &mut origin), ("target", &mut target)] {
                    match self.string(layers, &["layers", key]) {
                        Some(l) if lake.has_layer(&l) => *slot = l,
                        Some(l) => {
                            let msg = format!("layer `{l}` is not a layer of the lake");
                            let fix = format!("use one of: {}", lake.layers.join(", "));
                            self.problem(&["layers", key], msg, fix);
                        }
                        None => self.problem(
                            &["layers"],
                            format!("`layers` has no `{key}`"),
                            format!("add `{key}: LAYER`"),
                        ),
                    }
                }
            }
            _ => self.problem(
                &[],
                "the pipeline has no `layers`",
                "add `layers: {origin: raw, target: trusted}`",
            ),
        }
        let triggers = self.triggers(top);
        let tags = self.string_map(top.get("tags"), &["tags"]);
        let contract = self.string_map(top.get("contract"), &["contract"]);
        for (field, ty) in &contract {
            if !CONTRACT_TYPES.contains(&ty.as_str()) {
                self.problem(
                    &["contract", field],
                    format!("contract field `{field}` has unknown type `{ty}`"),
                    format!("use one of: {}", CONTRACT_TYPES.join(", ")),
                );
            }
        }
        let steps = self.steps(lake, dir, top);
        self.graph(&steps);
        let trigger = self.optional_module(lake, dir, "trigger");
        let catch = self.optional_module(lake, dir, "catch");
        PipelineSpec {
            dir: dir.to_path_buf(),
            name,
            domain,
            origin,
            target,
            triggers,
            tags,
            contract,
            steps,
            trigger,
            catch,
        }
    }

    pub(crate) fn unknown_keys(&mut self, m: &Mapping, at: &[&str], known: &[&str]) {
        for k in m.keys() {
            let key = k.as_str().unwrap_or("?").to_string();
            if !known.contains(&key.as_str()) {
                let mut path = at.to_vec();
                path.push(&key);
                let fix = match crate::resolve::did_you_mean(&key, known.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("known keys here: {}", known.join(", ")),
                };
                self.problem(&path, format!("unknown key `{key}`"), fix);
            }
        }
    }

    pub(crate) fn string(&mut self, m: &Mapping, at: &[&str]) -> Option<String> {
        let key = at.last().copied().unwrap_or_default();
        match m.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => {
                self.problem(
                    at,
                    format!("`{key}` must be a text value"),
                    "write `key: value`",
                );
                None
            }
        }
    }

    pub(crate) fn string_map(
        &mut self,
        v: Option<&Value>,
        at: &[&str],
    ) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let Some(v) = v else { return out };
        let Some(m) = v.as_mapping() else {
            if !v.is_null() {
                self.problem(
                    at,
                    "this must be a mapping of names to values",
                    "write `name: value` lines under it",
                );
            }
            return out;
        };
        for (k, val) in m {
            let key = k.as_str().unwrap_or("?").to_string();
            let mut path = at.to_vec();
            path.push(&key);
            match val {
                Value::String(s) => {
                    out.insert(key, s.clone());
                }
                Value::Number(n) => {
                    out.insert(key, n.to_string());
                }
                Value::Bool(b) => {
                    out.insert(key, b.to_string());
                }
                _ => self.problem(&path, format!("`{key}` must be a text value"), "quote it"),
            }
        }
        out
    }

    pub(crate) fn string_list(&mut self, v: Option<&Value>, at: &[&str]) -> Vec<String> {
        match v {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Sequence(items)) => items
                .iter()
                .filter_map(|i| match i {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect(),
            Some(_) => {
                self.problem(at, "this must be a list of text values", "write `[a, b]`");
                Vec::new()
            }
        }
    }

    fn triggers(&mut self, top: &Mapping) -> Vec<Trigger> {
        let mut out = Vec::new();
        let items = match top.get("triggers") {
            None | Some(Value::Null) => return out,
            Some(Value::Sequence(items)) => items.clone(),
            Some(_) => {
                self.problem(
                    &["triggers"],
                    "`triggers` must be a list",
                    "write `- s3: {prefix: ..., suffix: ...}` items",
                );
                return out;
            }
        };
        for item in &items {
            let Some(m) = item.as_mapping().filter(|m| m.len() == 1) else {
                self.problem(
                    &["triggers"],
                    "each trigger is one of `s3`, `event_rule` or `schedule`",
                    "write `- s3: {prefix: in/, suffix: .json}`, `- event_rule: {source: [..], detail_type: [..]}` or `- schedule: \"0 * * * *\"`",
                );
                continue;
            };
            let (k, v) = m.iter().next().expect("one entry");
            let kind = k.as_str().unwrap_or("?");
            match kind {
                "s3" => {
                    let empty = Mapping::new();
                    let s = v.as_mapping().unwrap_or(&empty);
                    self.unknown_keys(s, &["triggers", "s3"], &["prefix", "suffix"]);
                    let prefix = self
                        .string(s, &["triggers", "s3", "prefix"])
                        .unwrap_or_default();
                    let suffix = self
                        .string(s, &["triggers", "s3", "suffix"])
                        .unwrap_or_default();
                    out.push(Trigger::S3 { prefix, suffix });
                }
                "event_rule" => {
                    let empty = Mapping::new();
                    let s = v.as_mapping().unwrap_or(&empty);
                    self.unknown_keys(s, &["triggers", "event_rule"], &["source", "detail_type"]);
                    let source =
                        self.string_list(s.get("source"), &["triggers", "event_rule", "source"]);
                    let detail_type = self.string_list(
                        s.get("detail_type"),
                        &["triggers", "event_rule", "detail_type"],
                    );
                    out.push(Trigger::EventRule {
                        source,
                        detail_type,
                    });
                }
                "schedule" => match v.as_str() {
                    Some(expr) => match check_cron(expr) {
                        Ok(()) => out.push(Trigger::Schedule(expr.to_string())),
                        Err(why) => self.problem(
                            &["triggers", "schedule"],
                            format!("schedule `{expr}` is not a cron expression: {why}"),
                            "write 5 fields (minute hour day month weekday), e.g. \"*/5 * * * *\"",
                        ),
                    },
                    None => self.problem(
                        &["triggers", "schedule"],
                        "`schedule` must be a cron expression",
                        "write `- schedule: \"0 6 * * *\"`",
                    ),
                },
                other => self.problem(
                    &["triggers", other],
                    format!("unknown trigger `{other}`"),
                    "use `s3`, `event_rule` or `schedule`",
                ),
            }
        }
        out
    }

    fn steps(&mut self, lake: &LakeConfig, dir: &Path, top: &Mapping) -> Vec<Step> {
        let mut out = Vec::new();
        let steps = match top.get("steps") {
            Some(Value::Mapping(m)) if !m.is_empty() => m.clone(),
            _ => {
                self.problem(
                    &["steps"],
                    "the pipeline has no steps",
                    "add `steps:` with at least one `NAME: {type: lambda, properties: {module: ...}}`",
                );
                return out;
            }
        };
        for (k, v) in &steps {
            let name = k.as_str().unwrap_or("?").to_string();
            if let Some(step) = self.step(lake, dir, &name, v) {
                out.push(step);
            }
        }
        out
    }

    fn step(&mut self, lake: &LakeConfig, dir: &Path, name: &str, v: &Value) -> Option<Step> {
        let at = ["steps", name];
        let line = self.line(&at);
        let empty = Mapping::new();
        let Some(m) = v.as_mapping() else {
            self.problem(
                &at,
                format!("step `{name}` must be a mapping"),
                "write `type:` and `properties:` under it",
            );
            return None;
        };
        self.unknown_keys(m, &at, &["type", "properties"]);
        let ty = self.string(m, &["steps", name, "type"]).unwrap_or_default();
        if !STEP_TYPES.contains(&ty.as_str()) {
            let fix = match crate::resolve::did_you_mean(&ty, STEP_TYPES.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("use one of: {}", STEP_TYPES.join(", ")),
            };
            let what = if ty.is_empty() {
                "has no `type`".to_string()
            } else {
                format!("has unknown type `{ty}`")
            };
            self.problem(
                &["steps", name, "type"],
                format!("step `{name}` {what}"),
                fix,
            );
            // Kept in the graph (with its `next_step`) so the other checks stay right.
            let next = m
                .get("properties")
                .and_then(|p| p.get("next_step"))
                .and_then(|n| n.as_str())
                .map(String::from);
            return Some(Step {
                name: name.to_string(),
                kind: StepKind::Command {
                    command: Vec::new(),
                },
                next,
                retry: Retry::default(),
                timeout: None,
                max_concurrent_runs: None,
                environment: BTreeMap::new(),
                line,
            });
        }
        let props = match m.get("properties") {
            None | Some(Value::Null) => &empty,
            Some(Value::Mapping(p)) => p,
            Some(_) => {
                self.problem(
                    &["steps", name, "properties"],
                    "`properties` must be a mapping",
                    "write `key: value` lines under it",
                );
                &empty
            }
        };
        let pat = |key: &'static str| -> Vec<&str> { vec!["steps", name, "properties", key] };
        let own: &[&str] = match ty.as_str() {
            "lambda" => &["module", "memory_size"],
            "glue" => &[
                "module",
                "glue_version",
                "default_args",
                "timeout_minutes",
                "job_bookmark",
                "worker_type",
                "worker_count",
            ],
            "spark" => &["module", "master", "default_args", "timeout_minutes"],
            "sql" => &["query", "table", "mode", "keys"],
            "command" => &["command"],
            "train" => &["model"],
            "transform" => &["model", "input", "output", "id_columns", "csv"],
            _ => &["choices", "default"],
        };
        let known: Vec<&str> = own.iter().chain(COMMON_PROPS.iter()).copied().collect();
        self.unknown_keys(props, &["steps", name, "properties"], &known);

        let next = self.string(props, &pat("next_step"));
        let number = |p: &mut Self, key: &'static str| -> Option<u64> {
            match props.get(key)? {
                Value::Number(n) if n.as_u64().is_some() => n.as_u64(),
                _ => {
                    p.problem(
                        &pat(key),
                        format!("`{key}` must be a whole number"),
                        format!("write `{key}: 60`"),
                    );
                    None
                }
            }
        };
        let timeout = number(self, "timeout_seconds")
            .or_else(|| number(self, "timeout"))
            .map(Duration::from_secs)
            .or_else(|| number(self, "timeout_minutes").map(|m| Duration::from_secs(m * 60)));
        let max_concurrent_runs = number(self, "max_concurrent_runs").map(|n| n as u32);
        let mut retry = self.retry(props.get("retry"), &pat("retry"));
        if let Some(r) = number(self, "max_retries") {
            retry.max_attempts = r as u32 + 1;
        }
        let environment = self.string_map(props.get("environment"), &pat("environment"));
        let module = |p: &mut Self| -> Option<Module> {
            match p.string(props, &pat("module")) {
                Some(m) => p.module(lake, &dir.join("steps").join(&m), &m, &pat("module")),
                None => {
                    p.problem(
                        &["steps", name],
                        format!("step `{name}` has no `module`"),
                        "add `module: FOLDER` naming a folder of steps/",
                    );
                    None
                }
            }
        };
        let kind = match ty.as_str() {
            "lambda" => StepKind::Lambda {
                module: module(self)?,
                memory_size: number(self, "memory_size"),
            },
            "glue" | "spark" => {
                let module = module(self)?;
                let default_args = self.string_map(props.get("default_args"), &pat("default_args"));
                if ty == "spark" {
                    StepKind::Spark {
                        module,
                        master: self.string(props, &pat("master")),
                        default_args,
                    }
                } else {
                    let glue_version = match self.string(props, &pat("glue_version")).as_deref() {
                        None | Some("pythonshell") => GlueVersion::PythonShell,
                        Some("glueetl") => GlueVersion::GlueEtl,
                        Some(other) => {
                            self.problem(
                                &pat("glue_version"),
                                format!("glue_version `{other}` is unknown"),
                                "use `pythonshell` or `glueetl`",
                            );
                            GlueVersion::PythonShell
                        }
                    };
                    StepKind::Glue {
                        module,
                        glue_version,
                        default_args,
                        job_bookmark: self.string(props, &pat("job_bookmark")),
                        worker_type: self.string(props, &pat("worker_type")),
                        worker_count: number(self, "worker_count").map(|n| n as u32),
                    }
                }
            }
            "sql" => {
                let query = self.string(props, &pat("query")).unwrap_or_default();
                let table = self.string(props, &pat("table")).unwrap_or_default();
                if query.trim().is_empty() {
                    self.problem(
                        &["steps", name],
                        format!("sql step `{name}` has no `query`"),
                        "add `query: SELECT ...`",
                    );
                }
                if let Err(why) = crate::check_identifier(&table) {
                    self.problem(&pat("table"), format!("sql step `{name}` needs `table`, a table name of the target layer: {why}"), "add `table: NAME`");
                }
                let mode = self
                    .string(props, &pat("mode"))
                    .unwrap_or_else(|| "append".into());
                if !["append", "overwrite", "merge"].contains(&mode.as_str()) {
                    self.problem(
                        &pat("mode"),
                        format!("mode `{mode}` is unknown"),
                        "use append, overwrite or merge",
                    );
                }
                let keys = self.string_list(props.get("keys"), &pat("keys"));
                StepKind::Sql {
                    query,
                    table,
                    mode,
                    keys,
                }
            }
            "command" => {
                let command = match props.get("command") {
                    Some(Value::String(s)) => s.split_whitespace().map(String::from).collect(),
                    other => self.string_list(other, &pat("command")),
                };
                if command.is_empty() {
                    self.problem(
                        &["steps", name],
                        format!("command step `{name}` has no `command`"),
                        "add `command: [./bin/step, --flag]`",
                    );
                }
                StepKind::Command { command }
            }
            "train" => {
                let model = self.string(props, &pat("model")).unwrap_or_default();
                let spec = lake
                    .root
                    .join(crate::MODELS_DIR)
                    .join(&model)
                    .join(crate::TRAIN_FILE);
                if model.is_empty() {
                    self.problem(
                        &["steps", name],
                        format!("train step `{name}` has no `model`"),
                        "add `model: NAME` (the folder models/NAME/ with a train.yml)",
                    );
                } else if !spec.is_file() {
                    self.problem(
                        &pat("model"),
                        format!("there is no {}", spec.display()),
                        "write models/NAME/train.yml beside tarn.yml, or fix `model`",
                    );
                }
                StepKind::Train { model }
            }
            "transform" => {
                let need = |p: &mut Self, key: &'static str, example: &str| {
                    let v = p.string(props, &pat(key)).unwrap_or_default();
                    if v.is_empty() {
                        p.problem(
                            &["steps", name],
                            format!("transform step `{name}` has no `{key}`"),
                            format!("add `{key}: {example}`"),
                        );
                    }
                    v
                };
                let model = need(self, "model", "models:/NAME@champion");
                let input = need(self, "input", "domain.layer.table");
                let output = need(self, "output", "domain.service.table");
                let id_columns = self.string_list(props.get("id_columns"), &pat("id_columns"));
                let csv = self.string(props, &pat("csv"));
                StepKind::Transform {
                    model,
                    input,
                    output,
                    id_columns,
                    csv,
                }
            }
            _ => {
                let mut choices = Vec::new();
                match props.get("choices") {
                    Some(Value::Sequence(items)) => {
                        for item in items {
                            let c = item.as_mapping().cloned().unwrap_or_default();
                            let variable =
                                c.get("variable").and_then(|v| v.as_str()).map(String::from);
                            let next_step = c
                                .get("next_step")
                                .and_then(|v| v.as_str())
                                .map(String::from);
                            let equals = c.get("equals").and_then(|v| serde_json::to_value(v).ok());
                            match (variable, equals, next_step) {
                                (Some(variable), Some(equals), Some(next_step)) => choices.push(Choice { variable, equals, next_step }),
                                _ => self.problem(&pat("choices"), format!("a choice of step `{name}` needs `variable`, `equals` and `next_step`"), "write `- {variable: status, equals: ok, next_step: NEXT}`"),
                            }
                        }
                    }
                    _ => self.problem(
                        &["steps", name],
                        format!("choice step `{name}` has no `choices`"),
                        "add `choices:` with `- {variable: ..., equals: ..., next_step: ...}`",
                    ),
                }
                StepKind::Choice {
                    choices,
                    default: self.string(props, &pat("default")),
                }
            }
        };
        Some(Step {
            name: name.to_string(),
            kind,
            next,
            retry,
            timeout,
            max_concurrent_runs,
            environment,
            line,
        })
    }

    fn retry(&mut self, v: Option<&Value>, at: &[&str]) -> Retry {
        let mut r = Retry::default();
        let Some(v) = v else { return r };
        let Some(m) = v.as_mapping() else {
            self.problem(
                at,
                "`retry` must be a mapping",
                "write `retry: {max_attempts: 3, interval_seconds: 1, backoff_rate: 2}`",
            );
            return r;
        };
        self.unknown_keys(
            m,
            at,
            &[
                "max_attempts",
                "interval_seconds",
                "backoff_rate",
                "max_delay_seconds",
                "jitter",
            ],
        );
        let num = |key: &str| m.get(key).and_then(|v| v.as_f64());
        if let Some(n) = num("max_attempts") {
            r.max_attempts = (n.max(1.0)) as u32;
        }
        if let Some(n) = num("interval_seconds") {
            r.interval = Duration::from_secs_f64(n.max(0.0));
        }
        if let Some(n) = num("backoff_rate") {
            r.backoff_rate = n.max(1.0);
        }
        if let Some(n) = num("max_delay_seconds") {
            r.max_delay = Some(Duration::from_secs_f64(n.max(0.0)));
        }
        r.jitter = m.get("jitter").and_then(|v| v.as_bool()).unwrap_or(false);
        r
    }

    /// `trigger/` or `catch/`, when the folder is there.
    fn optional_module(&mut self, lake: &LakeConfig, dir: &Path, name: &str) -> Option<Module> {
        let d = dir.join(name);
        if !d.is_dir() {
            return None;
        }
        self.module(lake, &d, name, &[])
    }

    fn module(&mut self, lake: &LakeConfig, dir: &Path, name: &str, at: &[&str]) -> Option<Module> {
        let entry = dir.join("src").join("index.py");
        if !entry.is_file() {
            self.problem(
                at,
                format!("module `{name}` has no {}", entry.display()),
                format!(
                    "create {} (with `def handler(event, context):` for a lambda)",
                    entry.display()
                ),
            );
            return None;
        }
        let req_path = dir.join("requirements.json");
        let requirements = match std::fs::read_to_string(&req_path) {
            Err(_) => Requirements::default(),
            Ok(text) => {
                match serde_json::from_str::<Requirements>(&text) {
                    Ok(r) => r,
                    Err(e) => {
                        self.problems.push(ConfigError::invalid(&req_path, Some(e.line()), format!("not a valid requirements.json: {e}"), Some("write {\"packages\": [], \"extra_jars\": [], \"shared_modules\": []}".to_string())));
                        Requirements::default()
                    }
                }
            }
        };
        let mut versions: BTreeMap<String, (String, PathBuf)> = BTreeMap::new();
        let mut check_packages = |p: &mut Self, pkgs: &[String], from: &Path| {
            for spec in pkgs {
                let (pkg, ver) = split_requirement(spec);
                match versions.get(&pkg) {
                    Some((v, other)) if *v != ver => p.problems.push(ConfigError::invalid(
                        from,
                        line_of_text(from, spec),
                        format!(
                            "package `{pkg}` is asked for at two versions: `{v}` ({}) and `{ver}`",
                            other.display()
                        ),
                        Some("keep one version of each package per module".to_string()),
                    )),
                    _ => {
                        versions.insert(pkg, (ver, from.to_path_buf()));
                    }
                }
            }
        };
        check_packages(self, &requirements.packages, &req_path);
        for shared in &requirements.shared_modules {
            let base = lake.root.join(SHARED_DIR);
            let there = base.join(shared).is_dir() || base.join(format!("{shared}.py")).is_file();
            if !there {
                self.problems.push(ConfigError::invalid(
                    &req_path,
                    line_of_text(&req_path, shared),
                    format!("shared module `{shared}` is not in {}", base.display()),
                    Some(format!(
                        "add {}/{shared}/ (or {shared}.py), or remove it from shared_modules",
                        base.display()
                    )),
                ));
                continue;
            }
            let shared_req = base.join(shared).join("requirements.json");
            if let Ok(text) = std::fs::read_to_string(&shared_req) {
                if let Ok(r) = serde_json::from_str::<Requirements>(&text) {
                    check_packages(self, &r.packages, &shared_req);
                }
            }
        }
        Some(Module {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            requirements,
        })
    }

    /// `next_step`s that go nowhere, cycles, and steps no path reaches.
    fn graph(&mut self, steps: &[Step]) {
        let names: BTreeSet<&str> = steps.iter().map(|s| s.name.as_str()).collect();
        let mut edges: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for s in steps {
            let mut out: Vec<(&str, Vec<&str>)> = Vec::new();
            if let Some(n) = &s.next {
                out.push((n, vec!["steps", &s.name, "properties", "next_step"]));
            }
            if let StepKind::Choice { choices, default } = &s.kind {
                for c in choices {
                    out.push((
                        &c.next_step,
                        vec!["steps", &s.name, "properties", "choices"],
                    ));
                }
                if let Some(d) = default {
                    out.push((d, vec!["steps", &s.name, "properties", "default"]));
                }
            }
            let mut targets = Vec::new();
            for (target, at) in out {
                if names.contains(target) {
                    targets.push(target);
                } else {
                    let fix = match crate::resolve::did_you_mean(target, names.iter().copied()) {
                        Some(n) => format!("did you mean `{n}`?"),
                        None => format!(
                            "steps are: {}",
                            names.iter().copied().collect::<Vec<_>>().join(", ")
                        ),
                    };
                    self.problem(
                        &at,
                        format!("step `{}` goes to `{target}`, which is not a step", s.name),
                        fix,
                    );
                }
            }
            edges.insert(&s.name, targets);
        }
        let Some(first) = steps.first() else { return };
        // Reachability from the first step.
        let mut seen = BTreeSet::new();
        let mut stack = vec![first.name.as_str()];
        while let Some(n) = stack.pop() {
            if seen.insert(n) {
                stack.extend(edges.get(n).into_iter().flatten().copied());
            }
        }
        for s in steps {
            if !seen.contains(s.name.as_str()) {
                self.problem(
                    &["steps", &s.name],
                    format!(
                        "step `{}` is unreachable: no step goes to it and it is not the first",
                        s.name
                    ),
                    format!(
                        "point a `next_step` at it from a step reached from `{}`, or remove it",
                        first.name
                    ),
                );
            }
        }
        // Cycles: a depth-first search that meets a step still on its path.
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Open,
            Done,
        }
        let mut mark: BTreeMap<&str, Mark> = names.iter().map(|n| (*n, Mark::New)).collect();
        fn visit<'s>(
            n: &'s str,
            edges: &BTreeMap<&'s str, Vec<&'s str>>,
            mark: &mut BTreeMap<&'s str, Mark>,
            path: &mut Vec<&'s str>,
        ) -> Option<Vec<&'s str>> {
            mark.insert(n, Mark::Open);
            path.push(n);
            for &t in edges.get(n).into_iter().flatten() {
                match mark[t] {
                    Mark::Open => {
                        let from = path.iter().position(|p| *p == t).unwrap_or(0);
                        let mut cycle = path[from..].to_vec();
                        cycle.push(t);
                        return Some(cycle);
                    }
                    Mark::New => {
                        if let Some(c) = visit(t, edges, mark, path) {
                            return Some(c);
                        }
                    }
                    Mark::Done => {}
                }
            }
            path.pop();
            mark.insert(n, Mark::Done);
            None
        }
        for s in steps {
            if mark[s.name.as_str()] == Mark::New {
                if let Some(cycle) = visit(&s.name, &edges, &mut mark, &mut Vec::new()) {
                    let last = cycle[cycle.len() - 2];
                    self.problem(
                        &["steps", last, "properties"],
                        format!("the steps form a cycle: {}", cycle.join(" -> ")),
                        "an execution must end: break the loop (retries are `retry:`, not a loop)",
                    );
                }
            }
        }
    }
}

/// `pandas==2.1.0` -> (`pandas`, `==2.1.0`); names compared as pip does (case, `-`/`_`).
fn split_requirement(spec: &str) -> (String, String) {
    let i = spec
        .find(|c: char| "=<>!~; [".contains(c))
        .unwrap_or(spec.len());
    let name = spec[..i].trim().to_lowercase().replace(['_', '.'], "-");
    (name, spec[i..].trim().to_string())
}

fn line_of_text(path: &Path, needle: &str) -> Option<usize> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().position(|l| l.contains(needle)).map(|i| i + 1)
}

/// Whether `expr` is a cron expression tarn can schedule.
pub fn check_cron(expr: &str) -> Result<(), String> {
    croner::Cron::new(expr)
        .with_seconds_optional()
        .parse()
        .map(|_| ())
        .map_err(|e| e.to_string())
}
