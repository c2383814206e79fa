//! MLflow's run search language: filter strings (`metrics.rmse < 0.8 AND params.model =
//! 'tree' AND tags.team LIKE 'ml%' AND attributes.status = 'FINISHED'`) and `order_by`
//! clauses (`metrics.rmse ASC`, `attributes.start_time DESC`).

use crate::tracking::{run_maps, Experiment, Run};
use std::cmp::Ordering;

/// What a clause compares.
#[derive(Debug, Clone, PartialEq)]
pub enum Entity {
    Metric(String),
    Param(String),
    Tag(String),
    Attribute(String),
}

/// A value in a clause, or of a run or experiment.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Number(f64),
    Text(String),
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
        "attribute" | "attributes" | "attr" | "run" => Entity::Attribute(key),
        other => {
            return Err(format!(
                "invalid entity type '{other}'; valid types are metrics, params, tags, attributes"
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
                    None if c.is_whitespace() || "<>=!'".contains(c) => break,
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
    while i < t.len() {
        if i + 2 >= t.len() {
            return Err(format!("incomplete filter near {:?}", t[i..].join(" ")));
        }
        let e = entity(&t[i])?;
        let op = t[i + 1].to_ascii_uppercase();
        if !["=", "!=", "<", "<=", ">", ">=", "LIKE", "ILIKE"].contains(&op.as_str()) {
            return Err(format!(
                "invalid comparator '{}' in filter {filter:?}",
                t[i + 1]
            ));
        }
        let raw = &t[i + 2];
        let value = if let Some(s) = raw.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
            Literal::Text(s.to_string())
        } else if let Some(s) = raw.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
            Literal::Text(s.to_string())
        } else {
            Literal::Number(raw.parse().map_err(|_| {
                format!("expected a number or a 'quoted string' in filter, got {raw:?}")
            })?)
        };
        if matches!(e, Entity::Metric(_)) && matches!(value, Literal::Text(_)) {
            return Err(format!("metric comparisons take a number, not {raw}"));
        }
        out.push(Clause {
            entity: e,
            op,
            value,
        });
        i += 3;
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
}

impl Searchable for Run {
    fn value_of(&self, e: &Entity) -> Option<Literal> {
        let (params, metrics, tags) = run_maps(self);
        let i = &self.info;
        match e {
            Entity::Metric(k) => metrics.get(k.as_str()).map(|v| Literal::Number(*v)),
            Entity::Param(k) => params.get(k.as_str()).map(|v| Literal::Text(v.to_string())),
            Entity::Tag(k) => tags.get(k.as_str()).map(|v| Literal::Text(v.to_string())),
            Entity::Attribute(k) => Some(match k.as_str() {
                "status" => Literal::Text(i.status.clone()),
                "run_name" | "name" => Literal::Text(i.run_name.clone()),
                "run_id" | "run_uuid" => Literal::Text(i.run_id.clone()),
                "user_id" => Literal::Text(i.user_id.clone()),
                "artifact_uri" => Literal::Text(i.artifact_uri.clone()),
                "lifecycle_stage" => Literal::Text(i.lifecycle_stage.clone()),
                "start_time" => Literal::Number(i.start_time as f64),
                "end_time" => Literal::Number(i.end_time? as f64),
                _ => return None,
            }),
        }
    }
}

impl Searchable for Experiment {
    fn value_of(&self, e: &Entity) -> Option<Literal> {
        match e {
            Entity::Tag(k) => self
                .tags
                .iter()
                .find(|t| &t.key == k)
                .map(|t| Literal::Text(t.value.clone())),
            Entity::Attribute(k) => Some(match k.as_str() {
                "name" => Literal::Text(self.name.clone()),
                "experiment_id" => Literal::Text(self.experiment_id.clone()),
                "creation_time" => Literal::Number(self.creation_time as f64),
                "last_update_time" => Literal::Number(self.last_update_time as f64),
                _ => return None,
            }),
            _ => None,
        }
    }
}

impl Clause {
    pub fn matches<T: Searchable>(&self, x: &T) -> bool {
        let actual = x.value_of(&self.entity);
        let Some(actual) = actual else { return false };
        match (&actual, &self.value) {
            (Literal::Number(a), Literal::Number(b)) => compare(*a, &self.op, *b),
            (Literal::Text(a), Literal::Text(b)) => match self.op.as_str() {
                "LIKE" => like(b, a, false),
                "ILIKE" => like(b, a, true),
                op => compare(a.as_str(), op, b.as_str()),
            },
            (Literal::Text(a), Literal::Number(b)) => {
                a.parse::<f64>().is_ok_and(|a| compare(a, &self.op, *b))
            }
            (Literal::Number(_), Literal::Text(_)) => false,
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

/// Sorts runs by the clauses (missing values last), then newest first, as MLflow does.
pub fn sort(runs: &mut [Run], order: &[Order]) {
    sort_by(runs, order, |a, b| {
        b.info
            .start_time
            .cmp(&a.info.start_time)
            .then(a.info.run_id.cmp(&b.info.run_id))
    });
}

/// Sorts by the clauses (missing values last), then by `tie`.
pub fn sort_by<T: Searchable>(items: &mut [T], order: &[Order], tie: impl Fn(&T, &T) -> Ordering) {
    items.sort_by(|a, b| {
        for o in order {
            let (x, y) = (a.value_of(&o.entity), b.value_of(&o.entity));
            let c = match (x, y) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => return Ordering::Greater,
                (Some(_), None) => return Ordering::Less,
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

/// The runs matching `filter`, ordered by `order_by` (then newest first).
pub fn search(runs: Vec<Run>, filter: &str, order_by: &[String]) -> Result<Vec<Run>, String> {
    let clauses = parse(filter)?;
    let order = parse_order(order_by)?;
    let mut runs: Vec<Run> = runs
        .into_iter()
        .filter(|r| clauses.iter().all(|c| c.matches(r)))
        .collect();
    sort(&mut runs, &order);
    Ok(runs)
}

/// The experiments matching `filter`, ordered by `order_by` (then by id).
pub fn search_experiments(
    experiments: Vec<Experiment>,
    filter: &str,
    order_by: &[String],
) -> Result<Vec<Experiment>, String> {
    let clauses = parse(filter)?;
    let order = parse_order(order_by)?;
    let mut found: Vec<Experiment> = experiments
        .into_iter()
        .filter(|e| clauses.iter().all(|c| c.matches(e)))
        .collect();
    sort_by(&mut found, &order, |a, b| {
        let id = |e: &Experiment| e.experiment_id.parse::<i64>().unwrap_or_default();
        id(a).cmp(&id(b))
    });
    Ok(found)
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
            .contains("invalid entity type"));
        assert!(
            like("ml%", "ml-platform", false)
                && !like("ML%", "ml", false)
                && like("ML%", "ml", true)
        );
    }
}
