//! MLflow's run search language: filter strings (`metrics.rmse < 0.8 AND params.model =
//! 'tree' AND tags.team LIKE 'ml%' AND attributes.status = 'FINISHED'`) and `order_by`
//! clauses (`metrics.rmse ASC`, `attributes.start_time DESC`): parsing, SQL for runs, and
//! matching in memory through [`Searchable`], which each aggregate implements for its own
//! types (tracking for runs and experiments, the registry, logged models, traces).

use crate::kv::KeyValue;
use std::cmp::Ordering;

/// What a clause compares.
#[derive(Debug, Clone, PartialEq)]
pub enum Entity {
    Metric(String),
    Param(String),
    Tag(String),
    Attribute(String),
    /// A run's dataset inputs: `datasets.name`, `datasets.digest`, `datasets.context`.
    Dataset(String),
    /// A trace's request metadata: `metadata.mlflow.sourceRun`.
    Metadata(String),
}

/// A value in a clause, or of a run or experiment.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Number(f64),
    Text(String),
    /// The values of `IN (...)` and `NOT IN (...)`.
    List(Vec<String>),
    /// No value: `IS NULL`, `IS NOT NULL`.
    Nothing,
}

/// One `entity.key OP value` clause.
#[derive(Debug, Clone)]
pub struct Clause {
    entity: Entity,
    op: String,
    value: Literal,
}

fn entity(word: &str) -> Result<Entity, String> {
    let Some((kind, key)) = word.split_once('.') else {
        // A bare name is an attribute (`name LIKE 'x%'`, as experiment search writes it).
        return Ok(Entity::Attribute(word.to_string()));
    };
    let key = key.trim_matches(|c| c == '`' || c == '"').to_string();
    Ok(match kind.to_ascii_lowercase().as_str() {
        "metric" | "metrics" => Entity::Metric(key),
        "param" | "params" | "parameter" | "parameters" => Entity::Param(key),
        "tag" | "tags" => Entity::Tag(key),
        "attribute" | "attributes" | "attr" | "run" | "trace" => Entity::Attribute(key),
        "dataset" | "datasets" => {
            if !["name", "digest", "context"].contains(&key.as_str()) {
                return Err(format!(
                    "Invalid dataset key '{key}'; valid ones are name, digest, context"
                ));
            }
            Entity::Dataset(key)
        }
        "metadata" | "request_metadata" => Entity::Metadata(key),
        other => {
            return Err(format!(
                "Invalid entity type '{other}'. Valid values are ['metric', 'parameter', 'tag', 'attribute', 'dataset']"
            ))
        }
    })
}

/// Splits a filter into tokens: identifiers (with backquoted or double-quoted keys), operators,
/// quoted strings, numbers and AND.
fn tokens(filter: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = filter.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            let mut s = String::from("'");
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                s.push(chars[i]);
                i += 1;
            }
            if i == chars.len() {
                return Err(format!("unterminated string in filter {filter:?}"));
            }
            s.push('\'');
            out.push(s);
            i += 1;
        } else if c == '(' || c == ')' || c == ',' {
            out.push(c.to_string());
            i += 1;
        } else if "<>=!".contains(c) {
            let mut s = c.to_string();
            if i + 1 < chars.len() && chars[i + 1] == '=' {
                s.push('=');
                i += 1;
            }
            out.push(s);
            i += 1;
        } else {
            let mut s = String::new();
            let mut quote: Option<char> = None;
            while i < chars.len() {
                let c = chars[i];
                match quote {
                    Some(q) if c == q => quote = None,
                    Some(_) => {}
                    None if c == '`' || c == '"' => quote = Some(c),
                    None if c.is_whitespace() || "<>=!'(),".contains(c) => break,
                    None => {}
                }
                s.push(c);
                i += 1;
            }
            out.push(s);
        }
    }
    Ok(out)
}

/// Parses a filter string; empty means every run.
pub fn parse(filter: &str) -> Result<Vec<Clause>, String> {
    let t = tokens(filter)?;
    let mut out = Vec::new();
    let mut i = 0;
    let word = |k: usize| t.get(k).map(|w| w.to_ascii_uppercase()).unwrap_or_default();
    let quoted = |raw: &str| {
        raw.strip_prefix('\'')
            .and_then(|s| s.strip_suffix('\''))
            .or_else(|| raw.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
            .map(str::to_string)
    };
    while i < t.len() {
        if i + 2 > t.len() {
            return Err(format!("incomplete filter near {:?}", t[i..].join(" ")));
        }
        let e = entity(&t[i])?;
        // Two-word comparators: NOT IN, IS NULL, IS NOT NULL.
        let (op, mut next) = match (word(i + 1).as_str(), word(i + 2).as_str()) {
            ("NOT", "IN") => ("NOT IN".to_string(), i + 3),
            ("IS", "NULL") => ("IS NULL".to_string(), i + 3),
            ("IS", "NOT") if word(i + 3) == "NULL" => ("IS NOT NULL".to_string(), i + 4),
            (op, _) => (op.to_string(), i + 2),
        };
        if ![
            "=",
            "!=",
            "<",
            "<=",
            ">",
            ">=",
            "LIKE",
            "ILIKE",
            "IN",
            "NOT IN",
            "IS NULL",
            "IS NOT NULL",
        ]
        .contains(&op.as_str())
        {
            return Err(format!(
                "Invalid comparator '{}' in filter {filter:?}",
                t[i + 1]
            ));
        }
        check_comparator(&e, &op, &Literal::Nothing)?;
        let value = if op.starts_with("IS") {
            Literal::Nothing
        } else if op.ends_with("IN") {
            if t.get(next).map(String::as_str) != Some("(") {
                return Err(format!(
                    "{op} takes a list of quoted strings in parentheses, as ('a', 'b'), in filter {filter:?}"
                ));
            }
            next += 1;
            let mut items = Vec::new();
            loop {
                let raw = t
                    .get(next)
                    .ok_or_else(|| format!("unclosed list in filter {filter:?}"))?;
                items.push(quoted(raw).ok_or_else(|| {
                    format!("{op} takes quoted strings, got {raw:?} in filter {filter:?}")
                })?);
                next += 1;
                match t.get(next).map(String::as_str) {
                    Some(",") => next += 1,
                    Some(")") => {
                        next += 1;
                        break;
                    }
                    _ => return Err(format!("expected , or ) in the list of filter {filter:?}")),
                }
            }
            Literal::List(items)
        } else {
            let raw = t
                .get(next)
                .ok_or_else(|| format!("incomplete filter near {:?}", t[i..].join(" ")))?;
            next += 1;
            match quoted(raw) {
                Some(s) => Literal::Text(s),
                None => Literal::Number(raw.parse().map_err(|_| {
                    format!("expected a number or a 'quoted string' in filter, got {raw:?}")
                })?),
            }
        };
        check_comparator(&e, &op, &value)?;
        out.push(Clause {
            entity: e,
            op,
            value,
        });
        i = next;
        if i < t.len() {
            if !t[i].eq_ignore_ascii_case("AND") {
                return Err(format!(
                    "expected AND between clauses, got {:?} (OR is not supported, as in MLflow)",
                    t[i]
                ));
            }
            i += 1;
        }
    }
    Ok(out)
}

/// The comparators MLflow accepts for each kind of key (its `SearchUtils` sets).
fn check_comparator(e: &Entity, op: &str, value: &Literal) -> Result<(), String> {
    let ok: &[&str] = match e {
        Entity::Metric(_) => &["=", "!=", "<", "<=", ">", ">="],
        Entity::Param(_) | Entity::Tag(_) | Entity::Metadata(_) => {
            &["=", "!=", "LIKE", "ILIKE", "IS NULL", "IS NOT NULL"]
        }
        Entity::Dataset(_) => &["=", "!=", "LIKE", "ILIKE", "IN", "NOT IN"],
        Entity::Attribute(_) => &[
            "=", "!=", "<", "<=", ">", ">=", "LIKE", "ILIKE", "IN", "NOT IN",
        ],
    };
    if !ok.contains(&op) {
        return Err(format!(
            "Invalid comparator '{op}' for this key; valid ones are {}",
            ok.join(", ")
        ));
    }
    if matches!(e, Entity::Metric(_)) && matches!(value, Literal::Text(_)) {
        return Err("metric comparisons take a number, not a quoted string".to_string());
    }
    Ok(())
}

fn like(pattern: &str, text: &str, fold: bool) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = if fold {
        (
            pattern.to_lowercase().chars().collect(),
            text.to_lowercase().chars().collect(),
        )
    } else {
        (pattern.chars().collect(), text.chars().collect())
    };
    fn go(p: &[char], t: &[char]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some('%') => (0..=t.len()).any(|k| go(&p[1..], &t[k..])),
            Some('_') => !t.is_empty() && go(&p[1..], &t[1..]),
            Some(c) => t.first() == Some(c) && go(&p[1..], &t[1..]),
        }
    }
    go(&p, &t)
}

fn compare<T: PartialOrd>(a: T, op: &str, b: T) -> bool {
    match op {
        "=" => a == b,
        "!=" => a != b,
        "<" => a < b,
        "<=" => a <= b,
        ">" => a > b,
        ">=" => a >= b,
        _ => false,
    }
}

/// What filters and orderings can look at.
pub trait Searchable {
    fn value_of(&self, e: &Entity) -> Option<Literal>;
    /// Every value a key has (a run reads several datasets); one at most for most keys.
    fn values_of(&self, e: &Entity) -> Vec<Literal> {
        self.value_of(e).into_iter().collect()
    }
    /// Whether `tags.k != 'v'` matches an item without tag `k`. The registry says yes (the
    /// client filters prompts out with `tags.mlflow.prompt.is_prompt != 'true'`); run search,
    /// like MLflow's, says no.
    fn missing_tag_differs(&self) -> bool {
        false
    }
}

/// The value of `key` among tags or params, as a literal.
pub(crate) fn find(pairs: &[KeyValue], key: &str) -> Option<Literal> {
    pairs
        .iter()
        .find(|t| t.key == key)
        .map(|t| Literal::Text(t.value.clone()))
}

/// The items matching `filter`, ordered by `order_by`, then by `tie`.
pub fn search_items<T: Searchable>(
    items: Vec<T>,
    filter: &str,
    order_by: &[String],
    tie: impl Fn(&T, &T) -> Ordering,
) -> Result<Vec<T>, String> {
    let clauses = parse(filter)?;
    let order = parse_order(order_by)?;
    let mut found: Vec<T> = items
        .into_iter()
        .filter(|x| clauses.iter().all(|c| c.matches(x)))
        .collect();
    sort_by(&mut found, &order, tie);
    Ok(found)
}

impl Clause {
    pub fn matches<T: Searchable>(&self, x: &T) -> bool {
        let values = x.values_of(&self.entity);
        if matches!(self.value, Literal::Nothing) {
            return values.is_empty() == (self.op == "IS NULL");
        }
        if values.is_empty() {
            return self.op == "!="
                && matches!(self.entity, Entity::Tag(_))
                && x.missing_tag_differs();
        }
        values.iter().any(|v| self.holds(v))
    }

    fn holds(&self, actual: &Literal) -> bool {
        match (actual, &self.value) {
            (Literal::Text(a), Literal::List(l)) => (self.op == "IN") == l.contains(a),
            (Literal::Number(a), Literal::Number(b)) => compare(*a, &self.op, *b),
            (Literal::Text(a), Literal::Text(b)) => match self.op.as_str() {
                "LIKE" => like(b, a, false),
                "ILIKE" => like(b, a, true),
                op => compare(a.as_str(), op, b.as_str()),
            },
            (Literal::Text(a), Literal::Number(b)) => {
                a.parse::<f64>().is_ok_and(|a| compare(a, &self.op, *b))
            }
            _ => false,
        }
    }
}

/// One `order_by` clause.
pub struct Order {
    entity: Entity,
    ascending: bool,
}

pub fn parse_order(clauses: &[String]) -> Result<Vec<Order>, String> {
    clauses
        .iter()
        .map(|c| {
            let mut words = c.split_whitespace();
            let what = words.next().ok_or("empty order_by clause")?;
            let ascending = match words.next().map(|w| w.to_ascii_uppercase()) {
                None => true,
                Some(w) if w == "ASC" => true,
                Some(w) if w == "DESC" => false,
                Some(w) => return Err(format!("order_by direction must be ASC or DESC, not {w}")),
            };
            let entity = if what.contains('.') {
                entity(what)?
            } else {
                Entity::Attribute(what.to_string())
            };
            Ok(Order { entity, ascending })
        })
        .collect()
}

/// Sorts by the clauses (missing values last), then by `tie`.
pub fn sort_by<T: Searchable>(items: &mut [T], order: &[Order], tie: impl Fn(&T, &T) -> Ordering) {
    items.sort_by(|a, b| {
        for o in order {
            let (x, y) = (a.value_of(&o.entity), b.value_of(&o.entity));
            // Missing values sort last and NaN just before them, in either direction (as
            // MLflow orders runs).
            let rank = |v: &Option<Literal>| match v {
                None => 2,
                Some(Literal::Number(n)) if n.is_nan() => 1,
                _ => 0,
            };
            match rank(&x).cmp(&rank(&y)) {
                Ordering::Equal => {}
                other => return other,
            }
            let c = match (x, y) {
                (None, None) => Ordering::Equal,
                (Some(Literal::Number(x)), Some(Literal::Number(y))) => {
                    x.partial_cmp(&y).unwrap_or(Ordering::Equal)
                }
                (Some(Literal::Text(x)), Some(Literal::Text(y))) => x.cmp(&y),
                _ => Ordering::Equal,
            };
            let c = if o.ascending { c } else { c.reverse() };
            if c != Ordering::Equal {
                return c;
            }
        }
        tie(a, b)
    });
}

/// A value bound into a search query.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Text(String),
    Number(f64),
    Integer(i64),
}

impl Bind {
    /// `sql` with `binds` bound to its placeholders in turn, answering one column.
    pub(crate) fn scalar<'q, O>(
        sql: &'q str,
        binds: &'q [Bind],
    ) -> sqlx::query::QueryScalar<'q, sqlx::Any, O, sqlx::any::AnyArguments<'q>>
    where
        (O,): for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow>,
    {
        let mut query = sqlx::query_scalar::<_, O>(sql);
        for b in binds {
            query = match b {
                Bind::Text(t) => query.bind(t.as_str()),
                Bind::Number(n) => query.bind(*n),
                Bind::Integer(n) => query.bind(*n),
            };
        }
        query
    }
}

/// The joins, conditions and ordering that find runs (table alias `r`) in SQL, with their
/// binds numbered from the `first` placeholder on.
#[derive(Debug, Default)]
pub struct RunQuery {
    /// What the filter joins: `TABLE ALIAS ON ...`, each an inner join.
    pub joins: Vec<String>,
    /// The left joins the order reads (`LEFT JOIN TABLE ALIAS ON ...`).
    pub order_joins: String,
    pub conditions: Vec<String>,
    pub order: String,
    pub binds: Vec<Bind>,
    /// Set when the order is one metric, param or tag: its values can be walked in order
    /// through the `(key, value)` index instead of sorting every run that matches.
    pub walk: Option<Walk>,
    /// For each of `joins`, a query counting the values its clause keeps (at most
    /// [`PROBE_CAP`]), to lead the search with the clause that keeps the fewest.
    pub probes: Vec<Probe>,
}

/// The most metric, param and tag clauses (with order keys) one search joins: SQLite joins
/// at most 64 tables, and each clause costs a probe.
pub const MAX_JOINED: usize = 40;

/// The most values a probe counts: past it a clause is as good as unselective.
pub const PROBE_CAP: usize = 200_000;

/// One filter clause alone, as a count of the values it keeps.
#[derive(Debug, Clone)]
pub struct Probe {
    pub sql: String,
    pub binds: Vec<Bind>,
}

/// The one key a search is ordered by, to walk in the order of its values.
#[derive(Debug, Clone)]
pub struct Walk {
    /// The table holding the key's values (`ml_latest_metrics`, `ml_params`, `ml_run_tags`).
    pub table: &'static str,
    /// The key's name, and the placeholder bound to it.
    pub key: String,
    pub placeholder: String,
    /// A metric: NaN values (marked `is_nan`) sort after numbers.
    pub metric: bool,
    pub ascending: bool,
    /// The filter's clauses on the same key (`metrics.rmse < 5` when ordered by rmse): the
    /// walk starts where they hold instead of at the first value.
    pub same_key: Vec<Clause>,
}

impl Walk {
    /// The clauses on the walked key as SQL on `ALIAS.value`, their binds numbered from the
    /// `first` placeholder (`None` when there are none).
    pub fn bounds(&self, alias: &str, first: usize) -> Option<(String, Vec<Bind>)> {
        let mut q = RunQuery::default();
        let parts: Vec<String> = self
            .same_key
            .iter()
            .map(|c| value_condition(&mut q, first, alias, c))
            .collect::<Result<_, _>>()
            .ok()?;
        (!parts.is_empty()).then(|| (parts.join(" AND "), q.binds))
    }
}

/// A metric, param or tag clause as a condition on `ALIAS.value` (binds numbered from
/// `first`): the filter's join, a probe and a walk's bounds all render it here.
fn value_condition(
    q: &mut RunQuery,
    first: usize,
    alias: &str,
    c: &Clause,
) -> Result<String, String> {
    let numeric = entity_table(&c.entity).is_some_and(|(_, numeric)| numeric);
    let cond = condition(q, first, &format!("{alias}.value"), numeric, c)?;
    // NaN is stored as 0 beside a mark: it fails every comparison but `!=`.
    Ok(match (&c.entity, c.op.as_str()) {
        (Entity::Metric(_), "!=") => format!("({cond} OR {alias}.is_nan = 1)"),
        (Entity::Metric(_), _) => format!("({cond} AND {alias}.is_nan = 0)"),
        _ => cond,
    })
}

/// The column of a run attribute, and whether it holds numbers.
fn run_column(attribute: &str) -> Result<(&'static str, bool), String> {
    Ok(match attribute {
        "status" => ("r.status", false),
        "run_name" | "name" => ("r.name", false),
        "run_id" | "run_uuid" => ("r.id", false),
        "user_id" => ("r.user_id", false),
        "artifact_uri" => ("r.artifact_uri", false),
        "lifecycle_stage" => ("r.lifecycle_stage", false),
        "start_time" => ("r.start_time", true),
        "end_time" => ("r.end_time", true),
        other => {
            return Err(format!(
                "invalid attribute key '{other}'; valid ones are run_id, run_name, status, user_id, artifact_uri, lifecycle_stage, start_time, end_time"
            ))
        }
    })
}

/// The table holding an entity's values for a run, and whether they are numbers.
fn entity_table(e: &Entity) -> Option<(&'static str, bool)> {
    match e {
        Entity::Metric(_) => Some(("ml_latest_metrics", true)),
        Entity::Param(_) => Some(("ml_params", false)),
        Entity::Tag(_) => Some(("ml_run_tags", false)),
        Entity::Attribute(_) | Entity::Dataset(_) | Entity::Metadata(_) => None,
    }
}

impl RunQuery {
    fn bind(&mut self, first: usize, b: Bind) -> String {
        self.binds.push(b);
        format!("${}", first + self.binds.len() - 1)
    }
}

/// Renders a comparison of `column` with the clause's value, checking that the types agree.
fn condition(
    q: &mut RunQuery,
    first: usize,
    column: &str,
    numeric: bool,
    c: &Clause,
) -> Result<String, String> {
    let value = match (&c.value, numeric) {
        (Literal::List(_) | Literal::Nothing, _) => Bind::Text(String::new()),
        (Literal::Number(n), true) => Bind::Number(*n),
        (Literal::Text(t), false) => Bind::Text(t.clone()),
        // An unquoted number against strings compares with its text, as `params.depth = 6`.
        (Literal::Number(n), false) => Bind::Text(n.to_string()),
        (Literal::Text(t), true) => {
            return Err(format!(
                "'{t}' is not a number, and this key holds numbers; compare it with a number"
            ))
        }
    };
    if let Literal::List(items) = &c.value {
        let binds: Vec<String> = items
            .iter()
            .map(|v| q.bind(first, Bind::Text(v.clone())))
            .collect();
        let not = if c.op == "NOT IN" { "NOT " } else { "" };
        return Ok(format!("{column} {not}IN ({})", binds.join(", ")));
    }
    Ok(match c.op.as_str() {
        "LIKE" | "ILIKE" if numeric => {
            return Err(format!("{} compares strings, not numbers", c.op));
        }
        "LIKE" => format!("{column} LIKE {}", q.bind(first, value)),
        "ILIKE" => format!("LOWER({column}) LIKE LOWER({})", q.bind(first, value)),
        op @ ("=" | "!=" | "<" | "<=" | ">" | ">=") => {
            let op = if op == "!=" { "<>" } else { op };
            format!("{column} {op} {}", q.bind(first, value))
        }
        other => return Err(format!("unsupported comparison {other}")),
    })
}

/// Translates a run filter and order into SQL over `ml_runs r`: each clause on a metric,
/// param or tag joins that table's row for the key (its primary key, so no run repeats), each
/// order clause left-joins it (runs lacking the key sort last), ties go newest first.
pub fn run_query(filter: &str, order_by: &[String], first: usize) -> Result<RunQuery, String> {
    let clauses = parse(filter)?;
    let order = parse_order(order_by)?;
    let joined = clauses
        .iter()
        .filter(|c| entity_table(&c.entity).is_some())
        .count()
        + order.len();
    if joined > MAX_JOINED {
        return Err(format!(
            "this search compares {joined} metrics, params and tags (filter clauses and order keys); at most {MAX_JOINED} can be searched at once"
        ));
    }
    let mut q = RunQuery::default();
    for (i, c) in clauses.iter().enumerate() {
        match (&c.entity, entity_table(&c.entity)) {
            (Entity::Attribute(a), _) => {
                let (column, numeric) = run_column(a)?;
                let cond = condition(&mut q, first, column, numeric, c)?;
                q.conditions.push(cond);
            }
            (Entity::Param(k) | Entity::Tag(k), Some((table, _)))
                if matches!(c.value, Literal::Nothing) =>
            {
                let key = q.bind(first, Bind::Text(k.clone()));
                let not = if c.op == "IS NULL" { "NOT " } else { "" };
                q.conditions.push(format!(
                    "{not}EXISTS (SELECT 1 FROM {table} n{i} WHERE n{i}.run_id = r.id AND n{i}.key = {key})"
                ));
            }
            (Entity::Metric(k) | Entity::Param(k) | Entity::Tag(k), Some((table, _))) => {
                let key = q.bind(first, Bind::Text(k.clone()));
                let alias = format!("f{i}");
                let cond = value_condition(&mut q, first, &alias, c)?;
                q.joins.push(format!(
                    "{table} {alias} ON {alias}.run_id = r.id AND {alias}.key = {key} AND {cond}"
                ));
                // The same clause alone, numbered from $1, to count the values it keeps.
                let mut alone = RunQuery::default();
                alone.bind(1, Bind::Text(k.clone()));
                let cond = value_condition(&mut alone, 1, "p", c)?;
                q.probes.push(Probe {
                    sql: format!(
                        "SELECT count(*) FROM (SELECT 1 FROM {table} p WHERE p.key = $1 AND {cond} LIMIT {PROBE_CAP}) AS c"
                    ),
                    binds: alone.binds,
                });
            }
            (Entity::Dataset(field), _) => {
                let cond = condition(&mut q, first, &format!("d{i}.{field}"), false, c)?;
                q.conditions.push(format!(
                    "EXISTS (SELECT 1 FROM ml_run_inputs d{i} WHERE d{i}.run_id = r.id AND d{i}.kind = 'dataset' AND {cond})"
                ));
            }
            (Entity::Metadata(k), _) => {
                return Err(format!(
                    "Invalid entity type 'metadata' ('{k}'): runs are searched by metrics, params, tags, attributes and datasets"
                ))
            }
            _ => unreachable!("every entity but attributes and datasets has a table"),
        }
    }
    let mut keys = Vec::new();
    for (i, o) in order.iter().enumerate() {
        let dir = if o.ascending { "ASC" } else { "DESC" };
        let column = match (&o.entity, entity_table(&o.entity)) {
            (Entity::Attribute(a), _) => run_column(a)?.0.to_string(),
            (Entity::Metric(k) | Entity::Param(k) | Entity::Tag(k), Some((table, _))) => {
                let key = q.bind(first, Bind::Text(k.clone()));
                let alias = format!("o{i}");
                q.order_joins.push_str(&format!(
                    " LEFT JOIN {table} {alias} ON {alias}.run_id = r.id AND {alias}.key = {key}"
                ));
                if order.len() == 1 {
                    // Clauses on the same key that keep values in a range (not `!=`, which
                    // also keeps NaN, nor NULL tests) bound the walk.
                    let same_key = clauses
                        .iter()
                        .filter(|c| c.entity == o.entity)
                        .filter(|c| {
                            matches!(c.op.as_str(), "=" | "<" | "<=" | ">" | ">=" | "LIKE" | "IN")
                        })
                        .filter(|c| !matches!(c.value, Literal::Nothing))
                        .cloned()
                        .collect();
                    q.walk = Some(Walk {
                        same_key,
                        table,
                        key: k.clone(),
                        placeholder: key.clone(),
                        metric: matches!(o.entity, Entity::Metric(_)),
                        ascending: o.ascending,
                    });
                }
                if matches!(o.entity, Entity::Metric(_)) {
                    // NaN after numbers, missing last, in either direction (MLflow's order).
                    keys.push(format!(
                        "CASE WHEN {alias}.is_nan = 1 THEN 1 WHEN {alias}.value IS NULL THEN 2 ELSE 0 END, {alias}.value {dir}"
                    ));
                    continue;
                }
                format!("{alias}.value")
            }
            _ => return Err("runs are ordered by metrics, params, tags and attributes".to_string()),
        };
        keys.push(format!("({column} IS NULL), {column} {dir}"));
    }
    keys.push("r.start_time DESC, r.id".into());
    q.order = keys.join(", ");
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_like_mlflow_and_refuse_what_it_refuses() {
        let c =
            parse("metrics.rmse < 0.8 and params.`model type` = 'tree' AND tags.team LIKE 'ml%'")
                .unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].entity, Entity::Metric("rmse".into()));
        assert_eq!(c[1].entity, Entity::Param("model type".into()));
        assert!(parse("").unwrap().is_empty());
        assert!(parse("metrics.a > 1 OR metrics.b > 2")
            .unwrap_err()
            .contains("OR is not supported"));
        assert!(parse("metrics.a > 'x'")
            .unwrap_err()
            .contains("take a number"));
        assert!(parse("foo.a = 1")
            .unwrap_err()
            .contains("Invalid entity type"));
        let c =
            parse("attributes.run_id IN ('a', 'b') AND params.x IS NOT NULL AND tags.t IS NULL")
                .unwrap();
        assert_eq!(c[0].value, Literal::List(vec!["a".into(), "b".into()]));
        assert_eq!(
            (c[1].op.as_str(), c[2].op.as_str()),
            ("IS NOT NULL", "IS NULL")
        );
        assert_eq!(parse("datasets.name NOT IN ('d')").unwrap()[0].op, "NOT IN");
        assert!(parse("datasets.size = 'x'")
            .unwrap_err()
            .contains("dataset key"));
        assert!(parse("metrics.a IN ('1')")
            .unwrap_err()
            .contains("Invalid comparator"));
        assert!(parse("params.a IN 'x'")
            .unwrap_err()
            .contains("Invalid comparator"));
        assert!(parse("attributes.run_id IN ('a'")
            .unwrap_err()
            .contains("list"));
        // A filter joining more keys than a search can take is refused, naming the bound.
        let many: Vec<String> = (0..MAX_JOINED)
            .map(|i| format!("metrics.m{i} > 0"))
            .collect();
        assert!(run_query(&many.join(" AND "), &[], 1).is_ok());
        let why = run_query(&many.join(" AND "), &["metrics.x DESC".into()], 1).unwrap_err();
        assert!(why.contains(&format!("at most {MAX_JOINED}")), "{why}");
        assert!(
            like("ml%", "ml-platform", false)
                && !like("ML%", "ml", false)
                && like("ML%", "ml", true)
        );
    }
}
