//! Monitors (`monitors/NAME.yml` beside `tarn.yml`): which model they watch, the shape of its
//! data in Aporia's terms (raw inputs, features, predictions, actuals, each typed), where the
//! serving data, the delayed actuals and the baseline come from, how serving data is cut into
//! windows, what is checked and where alerts go. Checked all at once, every problem with its
//! file and line.

use crate::error::ConfigError;
use crate::pipeline::{check_cron, load_each, Parser};
use crate::resolve::LakeConfig;
use serde_norway::{Mapping, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The folder holding monitor files, beside `tarn.yml`.
pub const MONITORS_DIR: &str = "monitors";

/// The drift methods a check may name (Evidently's names).
pub const DRIFT_METHODS: [&str; 9] = [
    "auto",
    "ks",
    "chisquare",
    "z",
    "wasserstein",
    "jensenshannon",
    "psi",
    "hellinger",
    "distance",
];

/// The performance metrics a check may name.
pub const PERFORMANCE_METRICS: [&str; 8] = [
    "rmse",
    "mae",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "auc",
    "log_loss",
];

/// One monitor, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorSpec {
    /// The file it was read from.
    pub path: PathBuf,
    /// The file's stem.
    pub name: String,
    /// The domain of its results table `DOMAIN.service.monitor_NAME`.
    pub domain: String,
    /// The registered model and which of its versions (none: a data monitor over any query).
    pub model: Option<ModelSelector>,
    /// The endpoint whose inference table is the default serving data.
    pub endpoint: Option<String>,
    pub model_type: Option<ModelType>,
    /// Every declared field, in file order within each group.
    pub fields: Vec<Field>,
    pub serving: Serving,
    pub actuals: Option<Actuals>,
    pub baseline: Baseline,
    pub window: Window,
    /// When `tarn serve` runs it (a cron expression).
    pub schedule: Option<String>,
    pub checks: Vec<Check>,
    pub alert: Option<Alert>,
}

impl MonitorSpec {
    /// The results table.
    pub fn results_table(&self) -> String {
        format!("{}.service.monitor_{}", self.domain, self.name)
    }

    /// The fields of one group.
    pub fn fields_of(&self, group: FieldGroup) -> impl Iterator<Item = &Field> {
        self.fields.iter().filter(move |f| f.group == group)
    }
}

/// `NAME` (every version served), `NAME@ALIAS` or `NAME/VERSION`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSelector {
    pub name: String,
    pub version: VersionSelector,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionSelector {
    All,
    Alias(String),
    Number(u32),
}

impl std::fmt::Display for ModelSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.version {
            VersionSelector::All => write!(f, "{}", self.name),
            VersionSelector::Alias(a) => write!(f, "{}@{a}", self.name),
            VersionSelector::Number(n) => write!(f, "{}/{n}", self.name),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelType {
    Regression,
    Binary,
    Multiclass,
}

impl ModelType {
    pub fn name(self) -> &'static str {
        match self {
            ModelType::Regression => "regression",
            ModelType::Binary => "binary",
            ModelType::Multiclass => "multiclass",
        }
    }
}

/// Aporia's groups of a model version's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FieldGroup {
    RawInput,
    Feature,
    Prediction,
    Actual,
}

impl FieldGroup {
    pub const ALL: [(&'static str, FieldGroup); 4] = [
        ("raw_inputs", FieldGroup::RawInput),
        ("features", FieldGroup::Feature),
        ("predictions", FieldGroup::Prediction),
        ("actuals", FieldGroup::Actual),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, g)| *g == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }
}

/// Aporia's field types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldType {
    Numeric,
    Boolean,
    Categorical,
    String,
    Datetime,
    Text,
    /// An embedding of `dimensions` numbers.
    Tensor {
        dimensions: Vec<usize>,
    },
}

impl FieldType {
    pub const NAMES: [&'static str; 7] = [
        "numeric",
        "boolean",
        "categorical",
        "string",
        "datetime",
        "text",
        "tensor",
    ];

    pub fn name(&self) -> &'static str {
        match self {
            FieldType::Numeric => "numeric",
            FieldType::Boolean => "boolean",
            FieldType::Categorical => "categorical",
            FieldType::String => "string",
            FieldType::Datetime => "datetime",
            FieldType::Text => "text",
            FieldType::Tensor { .. } => "tensor",
        }
    }

    /// Whether values are compared as numbers (otherwise as labels).
    pub fn is_numeric(&self) -> bool {
        matches!(self, FieldType::Numeric)
    }

    /// Whether values are labels (counted per value).
    pub fn is_label(&self) -> bool {
        matches!(
            self,
            FieldType::Boolean | FieldType::Categorical | FieldType::String
        )
    }
}

/// One declared field.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub group: FieldGroup,
    pub name: String,
    pub field_type: FieldType,
    /// The SQL expression giving its value in the serving (or actuals) rows: the column of the
    /// same name unless `column:` or `sql:` says otherwise.
    pub expression: String,
    /// The column it reads, unless `sql:` gives an expression.
    pub column: Option<String>,
}

/// The serving data: a query with the prediction id and timestamp columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Serving {
    /// None: the endpoint's inference table.
    pub query: Option<String>,
    pub id_column: String,
    pub timestamp_column: String,
}

/// Delayed actuals: a query with the prediction id, joined whenever they arrive.
#[derive(Debug, Clone, PartialEq)]
pub struct Actuals {
    pub query: String,
    pub id_column: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Baseline {
    /// The version's training data, found through the lineage the registry records.
    Training,
    Query(String),
}

/// How serving data is cut.
#[derive(Debug, Clone, PartialEq)]
pub enum Window {
    /// Consecutive windows of this length, aligned to the epoch.
    Time(Duration),
    /// Consecutive windows of this many rows, in timestamp order.
    Rows(u64),
    /// One window of everything.
    All,
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Window::Time(d) => write!(f, "{}", human_duration(*d)),
            Window::Rows(n) => write!(f, "{n} rows"),
            Window::All => write!(f, "all"),
        }
    }
}

fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(86_400) {
        format!("{}d", s / 86_400)
    } else if s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// `1h`, `1d`, `7d`, `30m`, `500` (rows), `500 rows` or `all`.
pub fn parse_window(text: &str) -> Option<Window> {
    let t = text.trim();
    if t == "all" {
        return Some(Window::All);
    }
    let rows = t.strip_suffix("rows").unwrap_or(t).trim();
    if let Ok(n) = rows.parse::<u64>() {
        return (n > 0).then_some(Window::Rows(n));
    }
    if let Some(days) = t.strip_suffix('d') {
        let n: f64 = days.trim().parse().ok().filter(|n: &f64| *n > 0.0)?;
        return Some(Window::Time(Duration::from_secs_f64(n * 86_400.0)));
    }
    crate::train::parse_duration(t)
        .filter(|d| d.as_secs() >= 1)
        .map(Window::Time)
}

/// One check.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// Drift of each named feature (none: every feature and raw input that can drift).
    Drift {
        fields: Vec<String>,
        method: String,
        threshold: Option<f64>,
    },
    /// Drift of every prediction.
    PredictionDrift {
        method: String,
        threshold: Option<f64>,
    },
    /// The share of missing values above `max_share`.
    MissingValues { fields: Vec<String>, max_share: f64 },
    /// The share of label values the baseline never had above `max_share`.
    NewValues { fields: Vec<String>, max_share: f64 },
    /// The share of numbers outside [min, max] (default: the baseline's range) above
    /// `max_share`.
    ValueRange {
        fields: Vec<String>,
        min: Option<f64>,
        max: Option<f64>,
        max_share: f64,
    },
    /// Rows per window below `min_rows`, or no row for longer than `max_staleness`.
    Activity {
        min_rows: Option<u64>,
        max_staleness: Option<Duration>,
    },
    /// A performance metric (once actuals exist) outside [min, max].
    Performance {
        metric: String,
        min: Option<f64>,
        max: Option<f64>,
    },
    /// A query over the window (`{window}` stands for its rows) giving one number, outside
    /// [min, max].
    Sql {
        name: String,
        query: String,
        min: Option<f64>,
        max: Option<f64>,
    },
}

impl Check {
    pub const NAMES: [&'static str; 8] = [
        "drift",
        "prediction_drift",
        "missing_values",
        "new_values",
        "value_range",
        "activity",
        "performance",
        "sql",
    ];

    pub fn name(&self) -> &'static str {
        match self {
            Check::Drift { .. } => "drift",
            Check::PredictionDrift { .. } => "prediction_drift",
            Check::MissingValues { .. } => "missing_values",
            Check::NewValues { .. } => "new_values",
            Check::ValueRange { .. } => "value_range",
            Check::Activity { .. } => "activity",
            Check::Performance { .. } => "performance",
            Check::Sql { .. } => "sql",
        }
    }

    /// The check as a person reads it: what it compares and when it alerts.
    pub fn describe(&self) -> String {
        fn fields(f: &[String], default: &str) -> String {
            if f.is_empty() {
                default.to_string()
            } else {
                f.join(", ")
            }
        }
        fn threshold(t: Option<f64>) -> String {
            t.map(|t| format!("threshold {t}"))
                .unwrap_or_else(|| "the method's default threshold".into())
        }
        fn bounds(min: Option<f64>, max: Option<f64>) -> String {
            match (min, max) {
                (Some(a), Some(b)) => format!("outside [{a}, {b}]"),
                (Some(a), None) => format!("below {a}"),
                (None, Some(b)) => format!("above {b}"),
                (None, None) => "never (no bound set)".into(),
            }
        }
        let share = |s: f64| format!("{}%", s * 100.0);
        match self {
            Check::Drift {
                fields: f,
                method,
                threshold: t,
            } => format!(
                "drift of {} by {method}, {}",
                fields(f, "every feature and raw input"),
                threshold(*t)
            ),
            Check::PredictionDrift {
                method,
                threshold: t,
            } => format!("drift of every prediction by {method}, {}", threshold(*t)),
            Check::MissingValues {
                fields: f,
                max_share,
            } => format!(
                "missing values of {} above {}",
                fields(f, "every field"),
                share(*max_share)
            ),
            Check::NewValues {
                fields: f,
                max_share,
            } => format!(
                "values the baseline never had, in {}, above {}",
                fields(f, "every categorical field"),
                share(*max_share)
            ),
            Check::ValueRange {
                fields: f,
                min,
                max,
                max_share,
            } => format!(
                "numbers of {} outside {} above {}",
                fields(f, "every numeric field"),
                match (min, max) {
                    (None, None) => "the baseline's range".to_string(),
                    _ => format!(
                        "[{}, {}]",
                        min.map_or("-inf".into(), |v| v.to_string()),
                        max.map_or("inf".into(), |v| v.to_string())
                    ),
                },
                share(*max_share)
            ),
            Check::Activity {
                min_rows,
                max_staleness,
            } => {
                let mut parts = Vec::new();
                if let Some(n) = min_rows {
                    parts.push(format!("fewer than {n} rows in a window"));
                }
                if let Some(d) = max_staleness {
                    parts.push(format!("no row for more than {}s", d.as_secs()));
                }
                if parts.is_empty() {
                    parts.push("rows per window, never alerting (no bound set)".into());
                }
                format!("activity: {}", parts.join(" or "))
            }
            Check::Performance { metric, min, max } => {
                format!(
                    "{metric} once actuals exist, alerting {}",
                    bounds(*min, *max)
                )
            }
            Check::Sql {
                name,
                query,
                min,
                max,
            } => format!(
                "sql metric {name} ({query}), alerting {}",
                bounds(*min, *max)
            ),
        }
    }
}

/// Where alerts go.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub topic: String,
    pub severity: String,
}

/// Every monitor of the lake (`monitors/*.yml`), or every problem found in them.
pub fn load_monitors(lake: &LakeConfig) -> Result<Vec<MonitorSpec>, ConfigError> {
    let root = lake.root.join(MONITORS_DIR);
    let files = crate::pipeline::yaml_files(&root);
    load_each(files, |path, loaded: &[MonitorSpec]| {
        let spec = load_monitor(lake, path)?;
        match loaded.iter().find(|s| s.name == spec.name) {
            Some(other) => Err(ConfigError::invalid(
                path,
                Some(1),
                format!(
                    "monitor name `{}` is also used by {}",
                    spec.name,
                    other.path.display()
                ),
                Some("keep one file per monitor name (.yml or .yaml, not both)".to_string()),
            )),
            None => Ok(spec),
        }
    })
}

/// One monitor file, checked: every problem is reported, each with file and line.
pub fn load_monitor(lake: &LakeConfig, path: &Path) -> Result<MonitorSpec, ConfigError> {
    Parser::check(path, |p, value| p.monitor(lake, path, value))
}

const TOP_KEYS: [&str; 12] = [
    "model", "endpoint", "type", "domain", "schema", "serving", "actuals", "baseline", "window",
    "schedule", "checks", "alert",
];

impl Parser<'_> {
    fn monitor(&mut self, lake: &LakeConfig, path: &Path, v: &Value) -> MonitorSpec {
        let empty = Mapping::new();
        let (name, top) = self.named_file(
            path,
            v,
            &empty,
            "monitor",
            "monitors/delays.yml",
            "start with `model: NAME@champion` and `schema:`",
        );
        self.unknown_keys(top, &[], &TOP_KEYS);

        let model = self.string(top, &["model"]).and_then(|m| {
            let parsed = parse_model(&m);
            if parsed.is_none() {
                self.problem(
                    &["model"],
                    format!("`model: {m}` is not a model selector"),
                    "write NAME (every version served), NAME@ALIAS or NAME/VERSION",
                );
            }
            parsed
        });
        let endpoint = self.string(top, &["endpoint"]);
        if let Some(e) = &endpoint {
            if !lake.endpoints.contains_key(e) {
                let fix = match crate::resolve::did_you_mean(e, lake.endpoints.keys().map(|k| k.as_str())) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => "declare it under `endpoints:` in tarn.yml, or leave `endpoint:` out and give `serving: {query: ...}`".to_string(),
                };
                self.problem(&["endpoint"], format!("no endpoint `{e}` in tarn.yml"), fix);
            }
        }
        let model_type = self.string(top, &["type"]).and_then(|t| match t.as_str() {
            "regression" => Some(ModelType::Regression),
            "binary" => Some(ModelType::Binary),
            "multiclass" => Some(ModelType::Multiclass),
            other => {
                self.problem(
                    &["type"],
                    format!("unknown model type `{other}`"),
                    "use regression, binary or multiclass",
                );
                None
            }
        });
        let domain = match self.string(top, &["domain"]) {
            Some(d) => {
                if !lake.domains.iter().any(|x| x.name == d) {
                    self.problem(
                        &["domain"],
                        format!("no domain `{d}` in tarn.yml"),
                        "name one of the lake's domains",
                    );
                }
                d
            }
            None => endpoint
                .as_ref()
                .and_then(|e| lake.endpoints.get(e))
                .map(|e| e.log_domain().to_string())
                .unwrap_or_else(|| "ml".to_string()),
        };

        let fields = self.fields(top.get("schema"));
        let serving = self.serving(top.get("serving"), endpoint.is_some());
        let actuals = self.actuals(top.get("actuals"));
        if actuals.is_some() && !fields.iter().any(|f| f.group == FieldGroup::Actual) {
            self.problem(
                &["actuals"],
                "`actuals:` gives a query but `schema:` declares no actuals",
                "add `actuals: {NAME: numeric}` under `schema:`",
            );
        }
        let baseline = match top.get("baseline") {
            None | Some(Value::Null) => Baseline::Training,
            Some(Value::String(s)) if s == "training" => Baseline::Training,
            Some(Value::Mapping(m)) => {
                self.unknown_keys(m, &["baseline"], &["query"]);
                match self.string(m, &["baseline", "query"]) {
                    Some(q) if !q.trim().is_empty() => Baseline::Query(q),
                    _ => {
                        self.problem(
                            &["baseline"],
                            "`baseline:` needs a `query`",
                            "write `baseline: training` or `baseline: {query: SELECT ...}`",
                        );
                        Baseline::Training
                    }
                }
            }
            Some(_) => {
                self.problem(
                    &["baseline"],
                    "`baseline` must be `training` or `{query: ...}`",
                    "write `baseline: training` (the version's training data) or `baseline: {query: SELECT ...}`",
                );
                Baseline::Training
            }
        };
        if baseline == Baseline::Training && model.is_none() {
            self.problem(
                &["baseline"],
                "`baseline: training` needs a `model:` whose training data the registry knows",
                "add `model: NAME@ALIAS`, or give `baseline: {query: SELECT ...}`",
            );
        }
        let window = match self.string(top, &["window"]) {
            None => Window::Time(Duration::from_secs(86_400)),
            Some(w) => parse_window(&w).unwrap_or_else(|| {
                self.problem(
                    &["window"],
                    format!("`window: {w}` is not a window"),
                    "write a length (30m, 1h, 1d, 7d), a row count (1000) or `all`",
                );
                Window::All
            }),
        };
        let schedule = self.string(top, &["schedule"]);
        if let Some(s) = &schedule {
            if let Err(why) = check_cron(s) {
                self.problem(
                    &["schedule"],
                    format!("schedule `{s}` is not a cron expression: {why}"),
                    "write 5 fields (minute hour day month weekday), e.g. \"0 * * * *\"",
                );
            }
        }
        let checks = self.checks(top.get("checks"), &fields);
        let alert = match top.get("alert") {
            None | Some(Value::Null) => None,
            Some(Value::Mapping(m)) => {
                self.unknown_keys(m, &["alert"], &["topic", "severity"]);
                let topic = self.string(m, &["alert", "topic"]).unwrap_or_default();
                if topic.is_empty() {
                    self.problem(
                        &["alert"],
                        "`alert:` needs a `topic`",
                        "write `alert: {topic: NAME}`",
                    );
                } else if !lake.topics.iter().any(|t| t.name == topic) {
                    let fix = match crate::resolve::did_you_mean(
                        &topic,
                        lake.topics.iter().map(|t| t.name.as_str()),
                    ) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => "declare it under `topics:` in tarn.yml".to_string(),
                    };
                    self.problem(
                        &["alert", "topic"],
                        format!("no topic `{topic}` in tarn.yml"),
                        fix,
                    );
                }
                let severity = self
                    .string(m, &["alert", "severity"])
                    .unwrap_or_else(|| "warning".to_string());
                if !["info", "warning", "critical"].contains(&severity.as_str()) {
                    self.problem(
                        &["alert", "severity"],
                        format!("unknown severity `{severity}`"),
                        "use info, warning or critical",
                    );
                }
                Some(Alert { topic, severity })
            }
            Some(_) => {
                self.problem(
                    &["alert"],
                    "`alert` must be a mapping",
                    "write `alert: {topic: NAME, severity: warning}`",
                );
                None
            }
        };
        MonitorSpec {
            path: path.to_path_buf(),
            name,
            domain,
            model,
            endpoint,
            model_type,
            fields,
            serving,
            actuals,
            baseline,
            window,
            schedule,
            checks,
            alert,
        }
    }

    fn fields(&mut self, v: Option<&Value>) -> Vec<Field> {
        let mut out: Vec<Field> = Vec::new();
        let Some(m) = v.and_then(|v| v.as_mapping()) else {
            self.problem(
                &["schema"],
                "the monitor has no `schema:`",
                "declare `schema: {features: {NAME: numeric}, predictions: {NAME: numeric}}`",
            );
            return out;
        };
        let groups: Vec<&str> = FieldGroup::ALL.iter().map(|(n, _)| *n).collect();
        self.unknown_keys(m, &["schema"], &groups);
        for (group_name, group) in FieldGroup::ALL {
            let Some(g) = m.get(group_name) else { continue };
            let Some(g) = g.as_mapping() else {
                if !g.is_null() {
                    self.problem(
                        &["schema", group_name],
                        format!("`{group_name}` must map field names to types"),
                        "write `NAME: numeric` lines under it",
                    );
                }
                continue;
            };
            for (k, val) in g {
                let name = k.as_str().unwrap_or("?").to_string();
                let at = ["schema", group_name, name.as_str()];
                if let Some(other) = out.iter().find(|f| f.name == name) {
                    self.problem(
                        &at,
                        format!(
                            "field `{name}` is declared twice (also in {})",
                            other.group.name()
                        ),
                        "give every field its own name",
                    );
                    continue;
                }
                let (type_text, column, sql, dimensions) = match val {
                    Value::String(s) => (Some(s.clone()), None, None, None),
                    Value::Mapping(fm) => {
                        self.unknown_keys(fm, &at, &["type", "column", "sql", "dimensions"]);
                        let dims = fm.get("dimensions").map(|d| match d.as_sequence() {
                            Some(items) => items
                                .iter()
                                .filter_map(|i| i.as_u64().map(|n| n as usize))
                                .collect::<Vec<_>>(),
                            None => Vec::new(),
                        });
                        (
                            self.string(fm, &[at[0], at[1], at[2], "type"]),
                            self.string(fm, &[at[0], at[1], at[2], "column"]),
                            self.string(fm, &[at[0], at[1], at[2], "sql"]),
                            dims,
                        )
                    }
                    _ => (None, None, None, None),
                };
                let field_type = match type_text.as_deref() {
                    Some("numeric") => FieldType::Numeric,
                    Some("boolean") => FieldType::Boolean,
                    Some("categorical") => FieldType::Categorical,
                    Some("string") => FieldType::String,
                    Some("datetime") => FieldType::Datetime,
                    Some("text") => FieldType::Text,
                    Some("tensor") => match dimensions {
                        Some(d) if d.len() == 1 && d[0] > 0 => FieldType::Tensor { dimensions: d },
                        _ => {
                            self.problem(
                                &at,
                                format!("tensor field `{name}` needs its size"),
                                "write `{type: tensor, dimensions: [768]}`",
                            );
                            continue;
                        }
                    },
                    Some(other) => {
                        let fix = match crate::resolve::did_you_mean(
                            other,
                            FieldType::NAMES.iter().copied(),
                        ) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => format!("use one of {}", FieldType::NAMES.join(", ")),
                        };
                        self.problem(
                            &at,
                            format!("field `{name}` has unknown type `{other}`"),
                            fix,
                        );
                        continue;
                    }
                    None => {
                        self.problem(
                            &at,
                            format!("field `{name}` has no type"),
                            format!(
                                "write `{name}: numeric` (types: {})",
                                FieldType::NAMES.join(", ")
                            ),
                        );
                        continue;
                    }
                };
                if column.is_some() && sql.is_some() {
                    self.problem(
                        &at,
                        format!("field `{name}` gives both `column` and `sql`"),
                        "keep one",
                    );
                }
                let (expression, column) = match (column, sql) {
                    (_, Some(sql)) => (sql, None),
                    (column, None) => {
                        let c = column.unwrap_or_else(|| name.clone());
                        (quote_ident(&c), Some(c))
                    }
                };
                out.push(Field {
                    group,
                    name,
                    field_type,
                    expression,
                    column,
                });
            }
        }
        if !out.iter().any(|f| {
            matches!(
                f.group,
                FieldGroup::Feature | FieldGroup::RawInput | FieldGroup::Prediction
            )
        }) {
            self.problem(
                &["schema"],
                "`schema:` declares no raw input, feature or prediction",
                "declare at least one, e.g. `features: {distance: numeric}`",
            );
        }
        out
    }

    fn serving(&mut self, v: Option<&Value>, has_endpoint: bool) -> Serving {
        let empty = Mapping::new();
        let m = match v {
            None | Some(Value::Null) => &empty,
            Some(Value::Mapping(m)) => m,
            Some(_) => {
                self.problem(
                    &["serving"],
                    "`serving` must be a mapping",
                    "write `serving: {query: SELECT ..., id_column: id, timestamp_column: ts}`",
                );
                &empty
            }
        };
        self.unknown_keys(m, &["serving"], &["query", "id_column", "timestamp_column"]);
        let query = self.string(m, &["serving", "query"]);
        if query.is_none() && !has_endpoint {
            self.problem(
                &["serving"],
                "the monitor has no serving data",
                "name an `endpoint:` (its inference table is read) or give `serving: {query: SELECT ...}`",
            );
        }
        let (id_default, ts_default) = if query.is_none() {
            ("request_id", "timestamp")
        } else {
            ("id", "timestamp")
        };
        Serving {
            id_column: self
                .string(m, &["serving", "id_column"])
                .unwrap_or_else(|| id_default.to_string()),
            timestamp_column: self
                .string(m, &["serving", "timestamp_column"])
                .unwrap_or_else(|| ts_default.to_string()),
            query,
        }
    }

    fn actuals(&mut self, v: Option<&Value>) -> Option<Actuals> {
        let m = match v {
            None | Some(Value::Null) => return None,
            Some(Value::Mapping(m)) => m,
            Some(_) => {
                self.problem(
                    &["actuals"],
                    "`actuals` must be a mapping",
                    "write `actuals: {query: SELECT ..., id_column: id}`",
                );
                return None;
            }
        };
        self.unknown_keys(m, &["actuals"], &["query", "id_column"]);
        let Some(query) = self.string(m, &["actuals", "query"]) else {
            self.problem(
                &["actuals"],
                "`actuals:` needs a `query`",
                "write `actuals: {query: SELECT id, label FROM ..., id_column: id}`",
            );
            return None;
        };
        let id_column = self
            .string(m, &["actuals", "id_column"])
            .unwrap_or_else(|| "id".to_string());
        Some(Actuals { query, id_column })
    }

    fn number(&mut self, m: &Mapping, at: &[&str]) -> Option<f64> {
        let key = at.last().copied().unwrap_or_default();
        match m.get(key)? {
            Value::Number(n) => n.as_f64(),
            _ => {
                self.problem(
                    at,
                    format!("`{key}` must be a number"),
                    format!("write `{key}: 0.1`"),
                );
                None
            }
        }
    }

    fn checks(&mut self, v: Option<&Value>, fields: &[Field]) -> Vec<Check> {
        let mut out = Vec::new();
        let items = match v {
            None | Some(Value::Null) => {
                self.problem(
                    &["checks"],
                    "the monitor has no `checks:`",
                    "add `checks: [{drift: {method: auto}}]`",
                );
                return out;
            }
            Some(Value::Sequence(items)) => items.clone(),
            Some(_) => {
                self.problem(
                    &["checks"],
                    "`checks` must be a list",
                    "write `- drift: {method: auto}` items",
                );
                return out;
            }
        };
        for item in &items {
            let (kind, body) = match item {
                Value::String(s) => (s.clone(), Mapping::new()),
                Value::Mapping(m) if m.len() == 1 => {
                    let (k, v) = m.iter().next().expect("one entry");
                    (
                        k.as_str().unwrap_or("?").to_string(),
                        v.as_mapping().cloned().unwrap_or_default(),
                    )
                }
                _ => {
                    self.problem(
                        &["checks"],
                        "each check is one of its kinds with its settings",
                        format!(
                            "write `- drift: {{method: auto}}`; kinds: {}",
                            Check::NAMES.join(", ")
                        ),
                    );
                    continue;
                }
            };
            let at = ["checks", kind.as_str()];
            let field_list = |p: &mut Self, keys: &[&str]| -> Vec<String> {
                let names = p.string_list(body.get("fields"), &[at[0], at[1], "fields"]);
                for n in &names {
                    if !fields.iter().any(|f| &f.name == n) {
                        let fix = match crate::resolve::did_you_mean(
                            n,
                            fields.iter().map(|f| f.name.as_str()),
                        ) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => "declare it under `schema:`".to_string(),
                        };
                        p.problem(
                            &[at[0], at[1], "fields"],
                            format!(
                                "check `{}` names field `{n}`, which `schema:` does not declare",
                                at[1]
                            ),
                            fix,
                        );
                    }
                }
                let _ = keys;
                names
            };
            let method = |p: &mut Self| -> String {
                let m = p
                    .string(&body, &[at[0], at[1], "method"])
                    .unwrap_or_else(|| "auto".to_string());
                if !DRIFT_METHODS.contains(&m.as_str()) {
                    p.problem(
                        &[at[0], at[1], "method"],
                        format!("unknown drift method `{m}`"),
                        format!("use one of {}", DRIFT_METHODS.join(", ")),
                    );
                }
                m
            };
            let share = |p: &mut Self, default: f64| -> f64 {
                let s = p
                    .number(&body, &[at[0], at[1], "max_share"])
                    .unwrap_or(default);
                if !(0.0..=1.0).contains(&s) {
                    p.problem(
                        &[at[0], at[1], "max_share"],
                        format!("`max_share: {s}` is not a share"),
                        "write a number from 0 to 1",
                    );
                }
                s
            };
            let check = match kind.as_str() {
                "drift" => {
                    self.unknown_keys(&body, &at, &["fields", "method", "threshold"]);
                    let fields = field_list(self, &[]);
                    Check::Drift {
                        fields,
                        method: method(self),
                        threshold: self.number(&body, &[at[0], at[1], "threshold"]),
                    }
                }
                "prediction_drift" => {
                    self.unknown_keys(&body, &at, &["method", "threshold"]);
                    if !fields.iter().any(|f| f.group == FieldGroup::Prediction) {
                        self.problem(
                            &at,
                            "`prediction_drift` needs a prediction",
                            "declare `predictions: {NAME: numeric}` under `schema:`",
                        );
                    }
                    Check::PredictionDrift {
                        method: method(self),
                        threshold: self.number(&body, &[at[0], at[1], "threshold"]),
                    }
                }
                "missing_values" => {
                    self.unknown_keys(&body, &at, &["fields", "max_share"]);
                    Check::MissingValues {
                        fields: field_list(self, &[]),
                        max_share: share(self, 0.0),
                    }
                }
                "new_values" => {
                    self.unknown_keys(&body, &at, &["fields", "max_share"]);
                    Check::NewValues {
                        fields: field_list(self, &[]),
                        max_share: share(self, 0.0),
                    }
                }
                "value_range" => {
                    self.unknown_keys(&body, &at, &["fields", "min", "max", "max_share"]);
                    let min = self.number(&body, &[at[0], at[1], "min"]);
                    let max = self.number(&body, &[at[0], at[1], "max"]);
                    if let (Some(a), Some(b)) = (min, max) {
                        if a > b {
                            self.problem(
                                &[at[0], at[1], "min"],
                                format!("`min: {a}` is above `max: {b}`"),
                                "swap them",
                            );
                        }
                    }
                    Check::ValueRange {
                        fields: field_list(self, &[]),
                        min,
                        max,
                        max_share: share(self, 0.0),
                    }
                }
                "activity" => {
                    self.unknown_keys(&body, &at, &["min_rows", "max_staleness"]);
                    let min_rows = self
                        .number(&body, &[at[0], at[1], "min_rows"])
                        .map(|n| n.max(0.0) as u64);
                    let max_staleness = self
                        .string(&body, &[at[0], at[1], "max_staleness"])
                        .and_then(|s| {
                            let d = match parse_window(&s) {
                                Some(Window::Time(d)) => Some(d),
                                _ => None,
                            };
                            if d.is_none() {
                                self.problem(
                                    &[at[0], at[1], "max_staleness"],
                                    format!("`max_staleness: {s}` is not a length of time"),
                                    "write 30m, 2h or 1d",
                                );
                            }
                            d
                        });
                    if min_rows.is_none() && max_staleness.is_none() {
                        self.problem(
                            &at,
                            "`activity` needs `min_rows` or `max_staleness`",
                            "write `activity: {min_rows: 100, max_staleness: 2h}`",
                        );
                    }
                    Check::Activity {
                        min_rows,
                        max_staleness,
                    }
                }
                "performance" => {
                    self.unknown_keys(&body, &at, &["metric", "min", "max"]);
                    let metric = self
                        .string(&body, &[at[0], at[1], "metric"])
                        .unwrap_or_default();
                    if !PERFORMANCE_METRICS.contains(&metric.as_str()) {
                        self.problem(
                            &[at[0], at[1], "metric"],
                            format!("unknown performance metric `{metric}`"),
                            format!("use one of {}", PERFORMANCE_METRICS.join(", ")),
                        );
                    }
                    if !fields.iter().any(|f| f.group == FieldGroup::Actual) {
                        self.problem(&at, "`performance` needs actuals", "declare `actuals: {NAME: numeric}` under `schema:` and give `actuals: {query: ...}`");
                    }
                    let min = self.number(&body, &[at[0], at[1], "min"]);
                    let max = self.number(&body, &[at[0], at[1], "max"]);
                    Check::Performance { metric, min, max }
                }
                "sql" => {
                    self.unknown_keys(&body, &at, &["name", "query", "min", "max"]);
                    let name = self
                        .string(&body, &[at[0], at[1], "name"])
                        .unwrap_or_default();
                    if crate::check_identifier(&name).is_err() {
                        self.problem(
                            &at,
                            "a `sql` check needs a `name` (letters, digits, underscores)",
                            "write `sql: {name: late_share, query: ..., max: 0.3}`",
                        );
                    }
                    let query = self
                        .string(&body, &[at[0], at[1], "query"])
                        .unwrap_or_default();
                    if !query.contains("{window}") {
                        self.problem(
                            &[at[0], at[1], "query"],
                            "a `sql` check's query must read `{window}`",
                            "write e.g. `SELECT avg(prediction) FROM {window}`",
                        );
                    }
                    let min = self.number(&body, &[at[0], at[1], "min"]);
                    let max = self.number(&body, &[at[0], at[1], "max"]);
                    if min.is_none() && max.is_none() {
                        self.problem(
                            &at,
                            "a `sql` check needs `min` or `max`",
                            "give the bounds its figure must stay within",
                        );
                    }
                    Check::Sql {
                        name,
                        query,
                        min,
                        max,
                    }
                }
                other => {
                    let fix =
                        match crate::resolve::did_you_mean(other, Check::NAMES.iter().copied()) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => format!("kinds: {}", Check::NAMES.join(", ")),
                        };
                    self.problem(&["checks", other], format!("unknown check `{other}`"), fix);
                    continue;
                }
            };
            out.push(check);
        }
        out
    }
}

/// A SQL identifier in double quotes (a column name as written).
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn parse_model(text: &str) -> Option<ModelSelector> {
    let t = text.trim().trim_start_matches("models:/");
    let ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    };
    if let Some((name, alias)) = t.split_once('@') {
        return (ok(name) && ok(alias)).then(|| ModelSelector {
            name: name.to_string(),
            version: VersionSelector::Alias(alias.to_string()),
        });
    }
    if let Some((name, v)) = t.split_once('/') {
        let n: u32 = v.parse().ok()?;
        return ok(name).then(|| ModelSelector {
            name: name.to_string(),
            version: VersionSelector::Number(n),
        });
    }
    ok(t).then(|| ModelSelector {
        name: t.to_string(),
        version: VersionSelector::All,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Selection;

    fn lake(dir: &Path) -> LakeConfig {
        std::fs::write(
            dir.join("tarn.yml"),
            "lake: t\ndomains: [flights, ml]\ntopics:\n  - name: ml-alerts\nendpoints:\n  delays:\n    model: models:/delays@champion\n",
        )
        .unwrap();
        LakeConfig::load(dir, &Selection::default()).unwrap()
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        std::fs::create_dir_all(dir.join(MONITORS_DIR)).unwrap();
        let p = dir.join(MONITORS_DIR).join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn a_monitor_on_an_endpoint_reads_its_inference_table_by_default() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = lake(dir.path());
        write(
            dir.path(),
            "delays.yml",
            "model: delays@champion\nendpoint: delays\ntype: regression\nschema:\n  features:\n    distance: numeric\n    carrier: {type: categorical, column: carrier_code}\n  predictions:\n    prediction: numeric\nwindow: 1h\nschedule: \"0 * * * *\"\nchecks:\n  - drift: {method: auto}\n  - missing_values: {max_share: 0.1}\nalert: {topic: ml-alerts}\n",
        );
        let specs = load_monitors(&cfg).unwrap();
        let m = &specs[0];
        assert_eq!(m.name, "delays");
        assert_eq!(m.results_table(), "ml.service.monitor_delays");
        assert_eq!(m.model.as_ref().unwrap().to_string(), "delays@champion");
        assert_eq!(m.serving.query, None);
        assert_eq!(m.serving.id_column, "request_id");
        assert_eq!(m.window, Window::Time(Duration::from_secs(3600)));
        assert_eq!(m.fields[1].expression, "\"carrier_code\"");
        assert_eq!(m.baseline, Baseline::Training);
        assert_eq!(m.alert.as_ref().unwrap().severity, "warning");
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = lake(dir.path());
        write(
            dir.path(),
            "bad.yml",
            "endpoint: nope\nschema:\n  features:\n    distance: numerc\nwindow: soon\nchecks:\n  - drift: {fields: [distanse], method: magic}\n  - wobble: {}\nalert: {topic: missing}\n",
        );
        let err = load_monitors(&cfg).unwrap_err().to_string();
        for want in [
            "bad.yml:1: no endpoint `nope`",
            "bad.yml:4: field `distance` has unknown type `numerc`; did you mean `numeric`?",
            "bad.yml:5: `window: soon` is not a window",
            "bad.yml:7: check `drift` names field `distanse`",
            "unknown drift method `magic`",
            "bad.yml:8: unknown check `wobble`",
            "bad.yml:9: no topic `missing`",
            "`baseline: training` needs a `model:`",
        ] {
            assert!(err.contains(want), "missing {want:?} in:\n{err}");
        }
    }

    #[test]
    fn windows_parse_as_lengths_row_counts_or_all() {
        assert_eq!(
            parse_window("7d"),
            Some(Window::Time(Duration::from_secs(7 * 86_400)))
        );
        assert_eq!(
            parse_window("30m"),
            Some(Window::Time(Duration::from_secs(1800)))
        );
        assert_eq!(parse_window("1000"), Some(Window::Rows(1000)));
        assert_eq!(parse_window("500 rows"), Some(Window::Rows(500)));
        assert_eq!(parse_window("all"), Some(Window::All));
        assert_eq!(parse_window("0"), None);
        assert_eq!(parse_window("later"), None);
    }
}
