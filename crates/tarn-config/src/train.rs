//! Training specs (`models/<name>/train.yml`): input channels from the lake, the trainer
//! (a command of the team's own, or one of tarn's built-in algorithms), hyperparameters,
//! metric definitions, resources, tuning, the deploy gate and what to register. Checked all
//! at once, every problem with its file and line.

use crate::error::ConfigError;
use crate::pipeline::{folders_with, load_each, Parser};
use crate::resolve::LakeConfig;
use serde_norway::{Mapping, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The folder holding model folders, beside `tarn.yml`.
pub const MODELS_DIR: &str = "models";
/// A model folder's training spec.
pub const TRAIN_FILE: &str = "train.yml";

/// One `models/<name>/train.yml`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSpec {
    /// The model folder (commands run here).
    pub dir: PathBuf,
    /// The folder's name: the job's name.
    pub name: String,
    /// The tracking experiment jobs log into (default: the job's name).
    pub experiment: String,
    /// Input channels in file order (`train`, `validation`, ...).
    pub channels: Vec<Channel>,
    pub trainer: Trainer,
    /// Static hyperparameters (tuning adds the ranged ones per job).
    pub hyperparameters: BTreeMap<String, serde_json::Value>,
    /// Metrics read from the trainer's log.
    pub metrics: Vec<MetricDefinition>,
    pub resources: Resources,
    pub tuning: Option<Tuning>,
    pub gate: Option<Gate>,
    /// What a job that passes the gate registers (none: nothing).
    pub register: Option<Register>,
}

/// Where a channel's rows come from.
#[derive(Debug, Clone, PartialEq)]
pub enum ChannelSource {
    /// A query over the catalog.
    Query(String),
    /// A catalogued table, `domain.layer.table`.
    Table(String),
}

impl ChannelSource {
    /// The query that reads the channel.
    pub fn query(&self) -> String {
        match self {
            ChannelSource::Query(q) => q.clone(),
            ChannelSource::Table(t) => format!("SELECT * FROM {t}"),
        }
    }
}

/// A channel's file format in the job folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelFormat {
    Parquet,
    Csv,
}

impl ChannelFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelFormat::Parquet => "parquet",
            ChannelFormat::Csv => "csv",
        }
    }
}

/// One input channel, exported into `input/data/<name>/`.
#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    pub name: String,
    pub source: ChannelSource,
    pub format: ChannelFormat,
}

/// Who trains.
#[derive(Debug, Clone, PartialEq)]
pub enum Trainer {
    /// Any command (relative to the model folder), run in its own virtualenv when
    /// `requirements` names a requirements file.
    Command {
        command: Vec<String>,
        requirements: Option<PathBuf>,
        /// The virtualenv sees the interpreter's installed packages too.
        system_packages: bool,
    },
    /// One of tarn's algorithms, trained in process.
    Builtin {
        algorithm: Algorithm,
        /// The label column.
        target: String,
        /// Feature columns (empty: every column of `train` but the target).
        features: Vec<String>,
    },
}

/// tarn's built-in algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    LinearRegression,
    LogisticRegression,
    GbtRegressor,
    GbtClassifier,
}

impl Algorithm {
    pub const ALL: [(&'static str, Algorithm); 4] = [
        ("linear_regression", Algorithm::LinearRegression),
        ("logistic_regression", Algorithm::LogisticRegression),
        ("gbt_regressor", Algorithm::GbtRegressor),
        ("gbt_classifier", Algorithm::GbtClassifier),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, a)| *a == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }

    pub fn is_classifier(self) -> bool {
        matches!(
            self,
            Algorithm::LogisticRegression | Algorithm::GbtClassifier
        )
    }

    /// The hyperparameters the algorithm reads (others are refused).
    pub fn hyperparameters(self) -> &'static [&'static str] {
        match self {
            Algorithm::LinearRegression => &["l2"],
            Algorithm::LogisticRegression => &["l2", "max_iter"],
            Algorithm::GbtRegressor | Algorithm::GbtClassifier => &[
                "learning_rate",
                "max_iter",
                "max_depth",
                "max_leaf_nodes",
                "min_samples_leaf",
                "l2",
                "max_bins",
            ],
        }
    }
}

/// A metric read from the trainer's log: the first capture group of `regex`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricDefinition {
    pub name: String,
    pub regex: String,
}

/// Limits of one training job.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Resources {
    /// The trainer's process tree is killed after this long.
    pub timeout: Option<Duration>,
    /// Address space limit of the trainer's process, in bytes.
    pub max_memory: Option<u64>,
}

/// Hyperparameter tuning over several jobs.
#[derive(Debug, Clone, PartialEq)]
pub struct Tuning {
    pub strategy: Strategy,
    pub objective: Objective,
    pub ranges: BTreeMap<String, ParameterRange>,
    pub max_jobs: u32,
    pub max_parallel: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Grid,
    Random,
    Bayesian,
}

/// The metric tuning optimises.
#[derive(Debug, Clone, PartialEq)]
pub struct Objective {
    pub metric: String,
    pub maximize: bool,
}

impl Objective {
    /// Whether `a` is better than `b` for this objective.
    pub fn better(&self, a: f64, b: f64) -> bool {
        if self.maximize {
            a > b
        } else {
            a < b
        }
    }
}

/// One ranged hyperparameter, as SageMaker's `ParameterRanges`.
#[derive(Debug, Clone, PartialEq)]
pub enum ParameterRange {
    Continuous { min: f64, max: f64, log: bool },
    Integer { min: i64, max: i64, log: bool },
    Categorical(Vec<serde_json::Value>),
}

/// The deploy gate: `metric operator threshold` must hold for the model to be registered.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    pub metric: String,
    pub operator: String,
    pub threshold: f64,
}

impl Gate {
    pub const OPERATORS: [&'static str; 4] = ["<", "<=", ">", ">="];

    /// Whether `value` passes.
    pub fn passes(&self, value: f64) -> bool {
        match self.operator.as_str() {
            "<" => value < self.threshold,
            "<=" => value <= self.threshold,
            ">" => value > self.threshold,
            _ => value >= self.threshold,
        }
    }
}

/// The registered model a passing job adds a version to.
#[derive(Debug, Clone, PartialEq)]
pub struct Register {
    pub model: String,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
}

/// Every model folder with a `train.yml`, or every problem found in them.
pub fn load_train_specs(lake: &LakeConfig) -> Result<Vec<TrainSpec>, ConfigError> {
    let dirs = folders_with(&lake.root.join(MODELS_DIR), TRAIN_FILE);
    load_each(dirs, |dir, _: &[TrainSpec]| load_train_spec(dir))
}

/// The training spec of the model folder `dir` (`models/<name>`), checked.
pub fn load_train_spec(dir: &Path) -> Result<TrainSpec, ConfigError> {
    let path = dir.join(TRAIN_FILE);
    Parser::check(&path, |p, value| p.train(dir, value))
}

/// `90`, `90s`, `500ms`, `30m`, `2h` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let (num, unit) = t.split_at(t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len()));
    let n: f64 = num.trim().parse().ok().filter(|n: &f64| *n > 0.0)?;
    let secs = match unit.trim() {
        "" | "s" | "sec" | "seconds" => n,
        "ms" => n / 1000.0,
        "m" | "min" | "minutes" => n * 60.0,
        "h" | "hours" => n * 3600.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

/// `4GiB`, `512MiB`, `2GB`, `1048576` (bytes).
pub fn parse_bytes(text: &str) -> Option<u64> {
    let t = text.trim();
    let (num, unit) = t.split_at(t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len()));
    let n: f64 = num.trim().parse().ok().filter(|n: &f64| *n > 0.0)?;
    let mult: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "KB" | "K" => 1e3,
        "MB" | "M" => 1e6,
        "GB" | "G" => 1e9,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some((n * mult) as u64)
}

fn to_json(v: &Value) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

const TOP_KEYS: [&str; 10] = [
    "experiment",
    "channels",
    "trainer",
    "hyperparameters",
    "metrics",
    "resources",
    "tuning",
    "gate",
    "register",
    "description",
];

impl Parser<'_> {
    fn train(&mut self, dir: &Path, v: &Value) -> TrainSpec {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            self.problem(
                &[],
                format!("model folder name `{name}` is not allowed"),
                "name the folder with letters, digits, `_` and `-`",
            );
        }
        let empty = Mapping::new();
        let top = match v.as_mapping() {
            Some(m) => m,
            None => {
                self.problem(
                    &[],
                    "train.yml is not a mapping",
                    "write `channels:`, `trainer:` and the other keys",
                );
                &empty
            }
        };
        self.unknown_keys(top, &[], &TOP_KEYS);
        let experiment = self
            .string(top, &["experiment"])
            .unwrap_or_else(|| name.clone());
        let channels = self.channels(top.get("channels"));
        let trainer = self.trainer(dir, top.get("trainer"));
        let hyperparameters: BTreeMap<String, serde_json::Value> = match top.get("hyperparameters")
        {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Mapping(m)) => m
                .iter()
                .map(|(k, v)| (k.as_str().unwrap_or("?").to_string(), to_json(v)))
                .collect(),
            Some(_) => {
                self.problem(
                    &["hyperparameters"],
                    "`hyperparameters` must be a mapping",
                    "write `name: value` lines under it",
                );
                BTreeMap::new()
            }
        };
        let metrics = self.metric_definitions(top.get("metrics"));
        let resources = self.resources(top.get("resources"));
        let tuning = self.tuning(top.get("tuning"));
        if let Trainer::Builtin { algorithm, .. } = &trainer {
            let known = algorithm.hyperparameters();
            let tuned: Vec<&String> = tuning
                .as_ref()
                .map(|t| t.ranges.keys().collect())
                .unwrap_or_default();
            for (key, at) in hyperparameters
                .keys()
                .map(|k| (k, "hyperparameters"))
                .chain(tuned.into_iter().map(|k| (k, "tuning")))
            {
                if !known.contains(&key.as_str()) {
                    let path: Vec<&str> = if at == "tuning" {
                        vec!["tuning", "ranges", key]
                    } else {
                        vec![at, key]
                    };
                    self.problem(
                        &path,
                        format!("`{}` has no hyperparameter `{key}`", algorithm.name()),
                        format!("use: {}", known.join(", ")),
                    );
                }
            }
        }
        let gate = self.gate(top.get("gate"));
        let register = self.register(&name, top.get("register"));
        if let (Trainer::Builtin { .. }, false) =
            (&trainer, channels.iter().any(|c| c.name == "train"))
        {
            self.problem(
                &["channels"],
                "a built-in trainer reads the `train` channel, and there is none",
                "add `train: {query: SELECT ...}` under `channels`",
            );
        }
        TrainSpec {
            dir: dir.to_path_buf(),
            name,
            experiment,
            channels,
            trainer,
            hyperparameters,
            metrics,
            resources,
            tuning,
            gate,
            register,
        }
    }

    /// The first line at or after `at` that holds `needle` (list items have no key path).
    fn line_after(&self, at: &[&str], needle: &str) -> usize {
        let start = self.line(at);
        (start..=self.lines.len())
            .find(|l| self.lines[l - 1].contains(needle))
            .unwrap_or(start)
    }

    fn problem_on(&mut self, line: usize, message: impl Into<String>, fix: impl Into<String>) {
        self.problems.push(ConfigError::invalid(
            self.path,
            Some(line),
            message,
            Some(fix.into()),
        ));
    }

    fn mapping<'v>(&mut self, v: &'v Value, at: &[&str], fix: &str) -> Option<&'v Mapping> {
        match v.as_mapping() {
            Some(m) => Some(m),
            None => {
                let key = at.last().copied().unwrap_or("this");
                self.problem(at, format!("`{key}` must be a mapping"), fix);
                None
            }
        }
    }

    fn channels(&mut self, v: Option<&Value>) -> Vec<Channel> {
        let Some(v) = v else {
            self.problem(
                &[],
                "train.yml has no `channels`",
                "add `channels: {train: {query: SELECT ... FROM domain.layer.table}}`",
            );
            return Vec::new();
        };
        let Some(m) = self.mapping(v, &["channels"], "write `train: {query: ...}` under it") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, cv) in m {
            let name = k.as_str().unwrap_or("?").to_string();
            let at = ["channels", name.as_str()];
            if crate::check_identifier(&name).is_err() {
                self.problem(
                    &at,
                    format!("channel name `{name}` is not allowed"),
                    "use lowercase letters, digits and `_` (train, validation, test)",
                );
            }
            let cm = match cv {
                Value::String(q) => {
                    let mut m = Mapping::new();
                    m.insert(Value::from("query"), Value::from(q.clone()));
                    m
                }
                _ => match self.mapping(cv, &at, "write `query: SELECT ...` or `table: d.l.t`") {
                    Some(m) => m.clone(),
                    None => continue,
                },
            };
            self.unknown_keys(&cm, &at, &["query", "table", "format"]);
            let query = self.string(&cm, &["channels", &name, "query"]);
            let table = self.string(&cm, &["channels", &name, "table"]);
            let source = match (query, table) {
                (Some(q), None) if !q.trim().is_empty() => ChannelSource::Query(q),
                (None, Some(t)) if t.split('.').count() == 3 => ChannelSource::Table(t),
                (None, Some(t)) => {
                    self.problem(
                        &["channels", &name, "table"],
                        format!("`{t}` is not a table address"),
                        "write `table: domain.layer.table`",
                    );
                    continue;
                }
                (Some(_), Some(_)) => {
                    self.problem(
                        &at,
                        format!("channel `{name}` has both `query` and `table`"),
                        "keep one of them",
                    );
                    continue;
                }
                _ => {
                    self.problem(
                        &at,
                        format!("channel `{name}` has no `query` or `table`"),
                        "add `query: SELECT ...` or `table: domain.layer.table`",
                    );
                    continue;
                }
            };
            let format = match self.string(&cm, &["channels", &name, "format"]).as_deref() {
                None | Some("parquet") => ChannelFormat::Parquet,
                Some("csv") => ChannelFormat::Csv,
                Some(f) => {
                    self.problem(
                        &["channels", &name, "format"],
                        format!("unknown channel format `{f}`"),
                        "use parquet or csv",
                    );
                    ChannelFormat::Parquet
                }
            };
            out.push(Channel {
                name,
                source,
                format,
            });
        }
        out
    }

    fn trainer(&mut self, dir: &Path, v: Option<&Value>) -> Trainer {
        let fallback = Trainer::Command {
            command: Vec::new(),
            requirements: None,
            system_packages: false,
        };
        let Some(v) = v else {
            self.problem(
                &[],
                "train.yml has no `trainer`",
                "add `trainer: {builtin: gbt_regressor, target: COLUMN}` or `trainer: {command: [python, train.py]}`",
            );
            return fallback;
        };
        let Some(m) = self.mapping(v, &["trainer"], "write `builtin:` or `command:` under it")
        else {
            return fallback;
        };
        self.unknown_keys(
            m,
            &["trainer"],
            &[
                "builtin",
                "target",
                "features",
                "command",
                "requirements",
                "system_packages",
            ],
        );
        match (m.get("builtin"), m.get("command")) {
            (Some(_), None) => {
                let name = self.string(m, &["trainer", "builtin"]).unwrap_or_default();
                let algorithm = match Algorithm::ALL.iter().find(|(n, _)| *n == name) {
                    Some((_, a)) => *a,
                    None => {
                        let names = Algorithm::ALL.iter().map(|(n, _)| *n);
                        let fix = match crate::resolve::did_you_mean(&name, names.clone()) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => format!("use one of: {}", names.collect::<Vec<_>>().join(", ")),
                        };
                        self.problem(
                            &["trainer", "builtin"],
                            format!("unknown built-in algorithm `{name}`"),
                            fix,
                        );
                        return fallback;
                    }
                };
                let target = self.string(m, &["trainer", "target"]).unwrap_or_else(|| {
                    self.problem(
                        &["trainer"],
                        "a built-in trainer needs the label column",
                        "add `target: COLUMN` under `trainer`",
                    );
                    String::new()
                });
                let features = self.string_list(m.get("features"), &["trainer", "features"]);
                for key in ["requirements", "system_packages"] {
                    if m.contains_key(key) {
                        self.problem(
                            &["trainer", key],
                            format!(
                                "`{key}` is for command trainers; built-in ones need no Python"
                            ),
                            format!("remove `{key}`"),
                        );
                    }
                }
                Trainer::Builtin {
                    algorithm,
                    target,
                    features,
                }
            }
            (None, Some(c)) => {
                let command = match c {
                    Value::String(s) => s.split_whitespace().map(String::from).collect(),
                    _ => self.string_list(Some(c), &["trainer", "command"]),
                };
                if command.is_empty() {
                    self.problem(
                        &["trainer", "command"],
                        "the trainer's command is empty",
                        "write `command: [python, train.py]`",
                    );
                }
                let requirements = self
                    .string(m, &["trainer", "requirements"])
                    .map(|r| dir.join(r));
                if let Some(r) = &requirements {
                    if !r.is_file() {
                        self.problem(
                            &["trainer", "requirements"],
                            format!("{} does not exist", r.display()),
                            "write a pip requirements file there, or remove `requirements`",
                        );
                    }
                }
                let system_packages = match m.get("system_packages") {
                    None => false,
                    Some(Value::Bool(b)) => *b,
                    Some(_) => {
                        self.problem(
                            &["trainer", "system_packages"],
                            "`system_packages` must be true or false",
                            "write `system_packages: true`",
                        );
                        false
                    }
                };
                for key in ["target", "features"] {
                    if m.contains_key(key) {
                        self.problem(
                            &["trainer", key],
                            format!("`{key}` is for built-in trainers; a command reads its channels itself"),
                            format!("remove `{key}`"),
                        );
                    }
                }
                Trainer::Command {
                    command,
                    requirements,
                    system_packages,
                }
            }
            _ => {
                self.problem(
                    &["trainer"],
                    "the trainer needs exactly one of `builtin` and `command`",
                    "write `builtin: gbt_regressor` (with `target:`) or `command: [python, train.py]`",
                );
                fallback
            }
        }
    }

    fn metric_definitions(&mut self, v: Option<&Value>) -> Vec<MetricDefinition> {
        let mut out = Vec::new();
        let items = match v {
            None | Some(Value::Null) => return out,
            Some(Value::Sequence(s)) => s.clone(),
            Some(_) => {
                self.problem(
                    &["metrics"],
                    "`metrics` must be a list",
                    "write `- {name: rmse, regex: \"rmse: ([0-9.]+)\"}` items",
                );
                return out;
            }
        };
        for item in items {
            let Some(m) = item.as_mapping() else {
                self.problem(
                    &["metrics"],
                    "each metric must be a mapping",
                    "write `- {name: N, regex: R}`",
                );
                continue;
            };
            self.unknown_keys(m, &["metrics"], &["name", "regex"]);
            let name = self.string(m, &["metrics", "name"]).unwrap_or_default();
            let regex = self.string(m, &["metrics", "regex"]).unwrap_or_default();
            if name.is_empty() || regex.is_empty() {
                self.problem(
                    &["metrics"],
                    "a metric needs a `name` and a `regex`",
                    "write `- {name: rmse, regex: \"rmse: ([0-9.]+)\"}`",
                );
                continue;
            }
            let line = self.line_after(&["metrics"], &name);
            match regex::Regex::new(&regex) {
                Ok(r) if r.captures_len() >= 2 => {}
                Ok(_) => self.problem_on(
                    line,
                    format!("the regex of metric `{name}` has no capture group"),
                    "put the number in parentheses: `rmse: ([0-9.]+)`",
                ),
                Err(e) => self.problem_on(
                    line,
                    format!("the regex of metric `{name}` is invalid: {e}"),
                    "fix the regular expression",
                ),
            }
            out.push(MetricDefinition { name, regex });
        }
        out
    }

    fn resources(&mut self, v: Option<&Value>) -> Resources {
        let mut r = Resources::default();
        let Some(v) = v else { return r };
        let Some(m) = self.mapping(
            v,
            &["resources"],
            "write `timeout: 30m` and `max_memory: 4GiB`",
        ) else {
            return r;
        };
        self.unknown_keys(m, &["resources"], &["timeout", "max_memory"]);
        if let Some(t) = self.string(m, &["resources", "timeout"]) {
            r.timeout = parse_duration(&t);
            if r.timeout.is_none() {
                self.problem(
                    &["resources", "timeout"],
                    format!("`{t}` is not a duration"),
                    "write seconds or `90s`, `30m`, `2h`",
                );
            }
        }
        if let Some(t) = self.string(m, &["resources", "max_memory"]) {
            r.max_memory = parse_bytes(&t);
            if r.max_memory.is_none() {
                self.problem(
                    &["resources", "max_memory"],
                    format!("`{t}` is not a size"),
                    "write bytes or `512MiB`, `4GiB`, `2GB`",
                );
            }
        }
        r
    }

    fn tuning(&mut self, v: Option<&Value>) -> Option<Tuning> {
        let v = v?;
        let m = self.mapping(
            v,
            &["tuning"],
            "write `strategy:`, `objective:`, `ranges:`, `max_jobs:` under it",
        )?;
        self.unknown_keys(
            m,
            &["tuning"],
            &[
                "strategy",
                "objective",
                "ranges",
                "max_jobs",
                "max_parallel",
            ],
        );
        let strategy = match self.string(m, &["tuning", "strategy"]).as_deref() {
            None | Some("bayesian") => Strategy::Bayesian,
            Some("random") => Strategy::Random,
            Some("grid") => Strategy::Grid,
            Some(s) => {
                self.problem(
                    &["tuning", "strategy"],
                    format!("unknown tuning strategy `{s}`"),
                    "use grid, random or bayesian",
                );
                Strategy::Random
            }
        };
        let objective = match m.get("objective").and_then(|o| o.as_mapping()) {
            Some(o) => {
                self.unknown_keys(o, &["tuning", "objective"], &["metric", "goal"]);
                let metric = self
                    .string(o, &["tuning", "objective", "metric"])
                    .unwrap_or_else(|| {
                        self.problem(
                            &["tuning", "objective"],
                            "the objective has no `metric`",
                            "add `metric: NAME`",
                        );
                        String::new()
                    });
                let maximize = match self.string(o, &["tuning", "objective", "goal"]).as_deref() {
                    Some("maximize") | Some("Maximize") => true,
                    Some("minimize") | Some("Minimize") => false,
                    Some(g) => {
                        self.problem(
                            &["tuning", "objective", "goal"],
                            format!("unknown goal `{g}`"),
                            "use minimize or maximize",
                        );
                        false
                    }
                    None => {
                        self.problem(
                            &["tuning", "objective"],
                            "the objective has no `goal`",
                            "add `goal: minimize` or `goal: maximize`",
                        );
                        false
                    }
                };
                Objective { metric, maximize }
            }
            None => {
                self.problem(
                    &["tuning"],
                    "tuning needs an `objective` mapping",
                    "add `objective: {metric: rmse, goal: minimize}`",
                );
                Objective {
                    metric: String::new(),
                    maximize: false,
                }
            }
        };
        let mut ranges = BTreeMap::new();
        match m.get("ranges").and_then(|r| r.as_mapping()) {
            Some(rm) if !rm.is_empty() => {
                for (k, rv) in rm {
                    let name = k.as_str().unwrap_or("?").to_string();
                    if let Some(r) = self.range(&name, rv) {
                        ranges.insert(name, r);
                    }
                }
            }
            _ => self.problem(
                &["tuning"],
                "tuning needs `ranges` with at least one hyperparameter",
                "add `ranges: {learning_rate: {type: continuous, min: 0.01, max: 0.3, scaling: log}}`",
            ),
        }
        let count = |p: &mut Self, key: &str, default: u32| -> u32 {
            match m.get(key) {
                None => default,
                Some(Value::Number(n)) if n.as_u64().is_some_and(|n| (1..=10_000).contains(&n)) => {
                    n.as_u64().unwrap_or(1) as u32
                }
                Some(_) => {
                    p.problem(
                        &["tuning", key],
                        format!("`{key}` must be a whole number from 1 to 10000"),
                        format!("write `{key}: 4`"),
                    );
                    default
                }
            }
        };
        let max_jobs = count(self, "max_jobs", 10);
        let max_parallel = count(self, "max_parallel", 1).min(max_jobs);
        Some(Tuning {
            strategy,
            objective,
            ranges,
            max_jobs,
            max_parallel,
        })
    }

    fn range(&mut self, name: &str, v: &Value) -> Option<ParameterRange> {
        let at = ["tuning", "ranges", name];
        let m = self.mapping(v, &at, "write `{type: continuous, min: 0.01, max: 0.3}`")?;
        self.unknown_keys(m, &at, &["type", "min", "max", "scaling", "values"]);
        let ty = self
            .string(m, &["tuning", "ranges", name, "type"])
            .unwrap_or_default();
        let log = match self
            .string(m, &["tuning", "ranges", name, "scaling"])
            .as_deref()
        {
            None | Some("linear") | Some("Linear") | Some("auto") | Some("Auto") => false,
            Some("log") | Some("Logarithmic") | Some("logarithmic") => true,
            Some(s) => {
                self.problem(
                    &["tuning", "ranges", name, "scaling"],
                    format!("unknown scaling `{s}`"),
                    "use linear or log",
                );
                false
            }
        };
        let bounds = |p: &mut Self| -> Option<(f64, f64)> {
            let min = m.get("min").and_then(number);
            let max = m.get("max").and_then(number);
            match (min, max) {
                (Some(a), Some(b)) if a <= b && (!log || a > 0.0) => Some((a, b)),
                (Some(_), Some(_)) => {
                    p.problem(
                        &at,
                        format!(
                            "range `{name}` needs min <= max{}",
                            if log {
                                " and min > 0 for log scaling"
                            } else {
                                ""
                            }
                        ),
                        "fix `min` and `max`",
                    );
                    None
                }
                _ => {
                    p.problem(
                        &at,
                        format!("range `{name}` needs numeric `min` and `max`"),
                        "write `min: 0.01, max: 0.3`",
                    );
                    None
                }
            }
        };
        match ty.as_str() {
            "continuous" => {
                let (min, max) = bounds(self)?;
                Some(ParameterRange::Continuous { min, max, log })
            }
            "integer" => {
                let (min, max) = bounds(self)?;
                if min.fract() != 0.0 || max.fract() != 0.0 {
                    self.problem(
                        &at,
                        format!("integer range `{name}` has a fractional bound"),
                        "write whole numbers",
                    );
                    return None;
                }
                Some(ParameterRange::Integer {
                    min: min as i64,
                    max: max as i64,
                    log,
                })
            }
            "categorical" => match m.get("values") {
                Some(Value::Sequence(vals)) if !vals.is_empty() => Some(
                    ParameterRange::Categorical(vals.iter().map(to_json).collect()),
                ),
                _ => {
                    self.problem(
                        &at,
                        format!("categorical range `{name}` needs a non-empty `values` list"),
                        "write `values: [a, b]`",
                    );
                    None
                }
            },
            other => {
                self.problem(
                    &["tuning", "ranges", name, "type"],
                    if other.is_empty() {
                        format!("range `{name}` has no `type`")
                    } else {
                        format!("range `{name}` has unknown type `{other}`")
                    },
                    "use continuous, integer or categorical",
                );
                None
            }
        }
    }

    fn gate(&mut self, v: Option<&Value>) -> Option<Gate> {
        let v = v?;
        let m = self.mapping(
            v,
            &["gate"],
            "write `{metric: rmse, operator: \"<=\", threshold: 20}`",
        )?;
        self.unknown_keys(m, &["gate"], &["metric", "operator", "threshold"]);
        let metric = self.string(m, &["gate", "metric"]).unwrap_or_default();
        let operator = self.string(m, &["gate", "operator"]).unwrap_or_default();
        let threshold = m.get("threshold").and_then(number);
        if metric.is_empty() {
            self.problem(&["gate"], "the gate has no `metric`", "add `metric: NAME`");
        }
        if !Gate::OPERATORS.contains(&operator.as_str()) {
            self.problem(
                &["gate", "operator"],
                format!("unknown gate operator `{operator}`"),
                "use one of: <, <=, >, >= (quote it: `operator: \"<=\"`)",
            );
        }
        let Some(threshold) = threshold else {
            self.problem(
                &["gate"],
                "the gate needs a numeric `threshold`",
                "add `threshold: 0.8`",
            );
            return None;
        };
        Some(Gate {
            metric,
            operator,
            threshold,
        })
    }

    fn register(&mut self, name: &str, v: Option<&Value>) -> Option<Register> {
        let default = Register {
            model: name.to_string(),
            description: None,
            tags: BTreeMap::new(),
        };
        match v {
            None => Some(default),
            Some(Value::Bool(true)) => Some(default),
            Some(Value::Bool(false)) => None,
            Some(Value::String(s)) => Some(Register {
                model: s.clone(),
                ..default
            }),
            Some(Value::Mapping(m)) => {
                self.unknown_keys(m, &["register"], &["model", "description", "tags"]);
                let model = self
                    .string(m, &["register", "model"])
                    .unwrap_or_else(|| name.to_string());
                let description = self.string(m, &["register", "description"]);
                let tags = self.string_map(m.get("tags"), &["register", "tags"]);
                Some(Register {
                    model,
                    description,
                    tags,
                })
            }
            Some(_) => {
                self.problem(
                    &["register"],
                    "`register` must be true, false, a model name or a mapping",
                    "write `register: {model: NAME}` or `register: false`",
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<TrainSpec, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("delay");
        std::fs::create_dir_all(&m).unwrap();
        std::fs::write(m.join(TRAIN_FILE), text).unwrap();
        load_train_spec(&m)
    }

    #[test]
    fn a_full_spec_reads_back() {
        let s = load(
            "channels:\n  train: {query: SELECT * FROM flights.trusted.flights}\n  validation:\n    table: flights.service.val\n    format: csv\ntrainer:\n  builtin: gbt_regressor\n  target: arr_delay\nhyperparameters: {max_depth: 4}\nresources: {timeout: 30m, max_memory: 2GiB}\ntuning:\n  strategy: random\n  objective: {metric: rmse, goal: minimize}\n  ranges:\n    learning_rate: {type: continuous, min: 0.01, max: 0.3, scaling: log}\n    max_iter: {type: integer, min: 20, max: 100}\n  max_jobs: 6\n  max_parallel: 2\ngate: {metric: rmse, operator: \"<=\", threshold: 20}\n",
        )
        .unwrap();
        assert_eq!(s.name, "delay");
        assert_eq!(s.experiment, "delay");
        assert_eq!(s.channels.len(), 2);
        assert_eq!(s.channels[1].format, ChannelFormat::Csv);
        assert_eq!(
            s.channels[1].source.query(),
            "SELECT * FROM flights.service.val"
        );
        assert_eq!(s.resources.timeout, Some(Duration::from_secs(1800)));
        assert_eq!(s.resources.max_memory, Some(2 * 1024 * 1024 * 1024));
        let t = s.tuning.unwrap();
        assert_eq!(
            (t.max_jobs, t.max_parallel, t.strategy),
            (6, 2, Strategy::Random)
        );
        assert!(matches!(
            t.ranges["learning_rate"],
            ParameterRange::Continuous { log: true, .. }
        ));
        assert!(s.gate.unwrap().passes(19.5));
        assert_eq!(s.register.unwrap().model, "delay");
    }

    #[test]
    fn every_problem_is_named_with_its_line() {
        let e = load(
            "channels:\n  train: {query: SELECT 1}\ntrainer:\n  builtin: gbt_regresor\n  target: y\nhyperparameters: {depth: 3}\nmetrics:\n  - {name: acc, regex: \"acc: [0-9.]+\"}\ngate: {metric: acc, operator: \"=>\", threshold: 0.8}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("train.yml:4: unknown built-in algorithm `gbt_regresor`; did you mean `gbt_regressor`?"), "{e}");
        assert!(
            e.contains("train.yml:8: the regex of metric `acc` has no capture group"),
            "{e}"
        );
        assert!(e.contains("train.yml:9: unknown gate operator `=>`"), "{e}");
    }
}
