//! Grants: named policies under `policies:` in `tarn.yml`, each a list of `allow: read | write
//! | admin` on resources (`*`, `DOMAIN`, `DOMAIN.LAYER`, `DOMAIN.LAYER.TABLE` with `*` in any
//! part, `ml`, `pipelines`, `endpoints`), and the two built-in policies every lake has: `full`
//! (admin on everything: what a token created without `--read-only` has always meant) and
//! `read-only` (read on everything). Each action includes the ones below it (admin > write >
//! read).
//!
//! ```yaml
//! policies:
//!   aporia:                    # the Aporia seed's monitor: read the catalog, nothing else
//!     - allow: read
//!       on: ["*.*"]
//!   service-reader:
//!     - allow: read
//!       on: [flights.service]
//! ```

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a grant allows; each includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Read,
    Write,
    Admin,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Action::Read => "read",
            Action::Write => "write",
            Action::Admin => "admin",
        })
    }
}

/// One grant as written: an action on resources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantSpec {
    pub allow: Action,
    pub on: Vec<String>,
}

/// The built-in policies' names.
pub const FULL: &str = "full";
pub const READ_ONLY: &str = "read-only";
/// The prefix of the policy a pipeline's step token carries: `pipeline-step:DOMAIN`.
pub const PIPELINE_STEP: &str = "pipeline-step:";

/// The policy of a step of a pipeline of `domain`: see [`built_in`].
pub fn step_policy(domain: &str) -> String {
    format!("{PIPELINE_STEP}{domain}")
}

/// The areas of the lake a grant can name besides data.
const AREAS: [&str; 3] = ["ml", "pipelines", "endpoints"];

/// What a request acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// A table, a zone (`table` none) or a whole domain (`layer` none too).
    Data {
        domain: String,
        layer: Option<String>,
        table: Option<String>,
    },
    /// Tracking, the registry and monitors.
    Ml,
    Pipelines,
    Endpoints,
    /// The lake as a whole (repairs, every zone at once).
    Lake,
}

impl Resource {
    pub fn table(domain: &str, layer: &str, table: &str) -> Self {
        Resource::Data {
            domain: domain.into(),
            layer: Some(layer.into()),
            table: Some(table.into()),
        }
    }

    /// The table `domain.layer.table`, when `address` is one.
    pub fn of_table(address: &str) -> Option<Self> {
        match address.split('.').collect::<Vec<_>>()[..] {
            [d, l, t] => Some(Resource::table(d, l, t)),
            _ => None,
        }
    }

    pub fn zone(domain: &str, layer: &str) -> Self {
        Resource::Data {
            domain: domain.into(),
            layer: Some(layer.into()),
            table: None,
        }
    }
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Resource::Data {
                domain,
                layer,
                table,
            } => {
                write!(f, "{domain}")?;
                if let Some(l) = layer {
                    write!(f, ".{l}")?;
                }
                if let Some(t) = table {
                    write!(f, ".{t}")?;
                }
                Ok(())
            }
            Resource::Ml => f.write_str("ml"),
            Resource::Pipelines => f.write_str("pipelines"),
            Resource::Endpoints => f.write_str("endpoints"),
            Resource::Lake => f.write_str("*"),
        }
    }
}

/// `*` anywhere in a part stands for any run of characters.
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(after) = text.strip_prefix(head) else {
                return false;
            };
            (0..=after.len())
                .filter(|i| after.is_char_boundary(*i))
                .any(|i| glob(rest, &after[i..]))
        }
    }
}

/// Whether the resource pattern `pattern` (as written under `on:`) covers `r` (`below`: or
/// something inside it, a zone of a domain or a table of a zone).
fn covers(pattern: &str, r: &Resource) -> bool {
    covers_at(pattern, r, false)
}

fn covers_at(pattern: &str, r: &Resource, below: bool) -> bool {
    if pattern == "*" {
        return true;
    }
    match r {
        Resource::Ml => pattern == "ml",
        Resource::Pipelines => pattern == "pipelines",
        Resource::Endpoints => pattern == "endpoints",
        Resource::Lake => false,
        Resource::Data {
            domain,
            layer,
            table,
        } => {
            if AREAS.contains(&pattern) {
                return false;
            }
            let parts: Vec<&str> = pattern.split('.').collect();
            let wanted = [Some(domain.as_str()), layer.as_deref(), table.as_deref()];
            // A pattern covers everything below the parts it names; what it names must match.
            parts.iter().enumerate().all(|(i, p)| match wanted[i] {
                Some(w) => glob(p, w),
                // A grant on a table does not cover its whole zone (but is inside it).
                None => below,
            })
        }
    }
}

/// The grants a token holds: those of its policies.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grants(pub Vec<GrantSpec>);

impl Grants {
    /// Whether `action` on `resource` is granted.
    pub fn allows(&self, action: Action, resource: &Resource) -> bool {
        self.0
            .iter()
            .any(|g| g.allow >= action && g.on.iter().any(|p| covers(p, resource)))
    }

    /// Whether `action` is granted on `resource` or on something inside it: a listing of
    /// zones or databases shows `resource` then.
    pub fn reaches(&self, action: Action, resource: &Resource) -> bool {
        self.0
            .iter()
            .any(|g| g.allow >= action && g.on.iter().any(|p| covers_at(p, resource, true)))
    }

    /// Whether any data at all may be read (a listing then shows what may be).
    pub fn reads_some_data(&self) -> bool {
        self.0
            .iter()
            .any(|g| g.on.iter().any(|p| !AREAS.contains(&p.as_str())))
    }

    /// Whether these grants may do everything `other` may (the grants a pipeline hands a step
    /// may not exceed its own).
    pub fn includes(&self, other: &Grants) -> bool {
        other.0.iter().all(|g| {
            g.on.iter().all(|p| {
                self.0
                    .iter()
                    .any(|mine| mine.allow >= g.allow && mine.on.iter().any(|m| m == "*" || m == p))
            })
        })
    }
}

/// The built-in policies: `full`, `read-only`, and `pipeline-step:DOMAIN`, what a pipeline's
/// step may do with the token it is handed (read everything, as its pipeline's code may join
/// any table; write its own domain's zones and tables, and runs and models; nothing on other
/// domains, pipelines' executions, endpoints or the lake as a whole).
pub fn built_in(name: &str) -> Option<Vec<GrantSpec>> {
    let everything = vec!["*".to_string()];
    if let Some(domain) = name.strip_prefix(PIPELINE_STEP) {
        return Some(vec![
            GrantSpec {
                allow: Action::Read,
                on: everything,
            },
            GrantSpec {
                allow: Action::Write,
                on: vec![domain.to_string(), "ml".to_string()],
            },
        ]);
    }
    match name {
        FULL => Some(vec![GrantSpec {
            allow: Action::Admin,
            on: everything,
        }]),
        READ_ONLY => Some(vec![GrantSpec {
            allow: Action::Read,
            on: everything,
        }]),
        _ => None,
    }
}

/// Checks every policy: names, resources (each part an identifier or a `*` pattern; domains
/// and layers the lake declares), and answers every problem with the policy's name.
pub(crate) fn check(
    policies: &BTreeMap<String, Vec<GrantSpec>>,
    domains: &[String],
    layers: &[String],
) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    for (name, grants) in policies {
        if built_in(name).is_some() {
            problems.push((
                name.clone(),
                format!("policy `{name}` is built in; pick another name"),
            ));
        }
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        {
            problems.push((
                name.clone(),
                format!("policy name `{name}` must be lowercase letters, digits, `-` or `_`"),
            ));
        }
        if grants.is_empty() {
            problems.push((name.clone(), format!("policy `{name}` grants nothing")));
        }
        for g in grants {
            if g.on.is_empty() {
                problems.push((
                    name.clone(),
                    format!(
                        "policy `{name}`: `allow: {}` names no resource under `on:`",
                        g.allow
                    ),
                ));
            }
            for r in &g.on {
                if let Some(why) = resource_problem(r, domains, layers) {
                    problems.push((name.clone(), format!("policy `{name}`: `{r}` {why}")));
                }
            }
        }
    }
    problems
}

fn resource_problem(r: &str, domains: &[String], layers: &[String]) -> Option<String> {
    if r == "*" || AREAS.contains(&r) {
        return None;
    }
    let parts: Vec<&str> = r.split('.').collect();
    if parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
        return Some(
            "is not a resource: write *, DOMAIN, DOMAIN.LAYER, DOMAIN.LAYER.TABLE (with * in any part), ml, pipelines or endpoints".into(),
        );
    }
    for p in &parts {
        if !p
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '*')
        {
            return Some(format!(
                "has `{p}`, which is neither a name nor a `*` pattern"
            ));
        }
    }
    if !parts[0].contains('*') && !domains.iter().any(|d| d == parts[0]) {
        return Some(format!(
            "names domain `{}`, which tarn.yml does not declare (domains: {})",
            parts[0],
            domains.join(", ")
        ));
    }
    if let Some(l) = parts.get(1).filter(|l| !l.contains('*')) {
        if !layers.iter().any(|x| x == l) {
            return Some(format!(
                "names layer `{l}`, which is none of {}",
                layers.join(", ")
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(yaml: &str) -> Grants {
        Grants(serde_norway::from_str(yaml).unwrap())
    }

    #[test]
    fn a_grant_covers_what_it_names_and_below() {
        let g = grants("- {allow: read, on: [flights.service]}\n- {allow: write, on: ['flights.raw.air*', ml]}");
        assert!(g.allows(Action::Read, &Resource::table("flights", "service", "x")));
        assert!(g.allows(Action::Read, &Resource::zone("flights", "service")));
        assert!(!g.allows(Action::Write, &Resource::table("flights", "service", "x")));
        assert!(!g.allows(Action::Read, &Resource::table("flights", "trusted", "x")));
        assert!(g.allows(
            Action::Write,
            &Resource::table("flights", "raw", "airports")
        ));
        assert!(
            !g.allows(Action::Write, &Resource::zone("flights", "raw")),
            "a table grant is not its zone"
        );
        assert!(!g.allows(Action::Read, &Resource::table("flights", "raw", "planes")));
        assert!(g.reaches(Action::Write, &Resource::zone("flights", "raw")));
        assert!(!g.reaches(Action::Write, &Resource::zone("flights", "trusted")));
        assert!(g.reaches(Action::Read, &Resource::zone("flights", "service")));
        assert!(!g.reaches(Action::Read, &Resource::zone("weather", "service")));
        assert!(g.allows(Action::Read, &Resource::Ml) && !g.allows(Action::Admin, &Resource::Ml));
        assert!(!g.allows(Action::Read, &Resource::Pipelines));
        assert!(!g.allows(Action::Read, &Resource::Lake));
        let all = Grants(built_in(FULL).unwrap());
        assert!(all.allows(Action::Admin, &Resource::Lake));
        let reader = Grants(built_in(READ_ONLY).unwrap());
        assert!(reader.allows(Action::Read, &Resource::Endpoints));
        assert!(!reader.allows(Action::Write, &Resource::zone("flights", "raw")));
        let aporia = grants("- {allow: read, on: ['*.*']}");
        assert!(aporia.allows(Action::Read, &Resource::table("flights", "raw", "x")));
        assert!(!aporia.allows(Action::Read, &Resource::Ml));
        assert!(all.includes(&aporia) && !aporia.includes(&all));
        let step = Grants(built_in(&step_policy("flights")).unwrap());
        assert!(step.allows(Action::Write, &Resource::zone("flights", "raw")));
        assert!(step.allows(Action::Write, &Resource::table("flights", "trusted", "x")));
        assert!(step.allows(Action::Read, &Resource::table("weather", "raw", "x")));
        assert!(!step.allows(Action::Write, &Resource::zone("weather", "raw")));
        assert!(
            step.allows(Action::Write, &Resource::Ml) && !step.allows(Action::Admin, &Resource::Ml)
        );
        assert!(!step.allows(Action::Write, &Resource::Pipelines));
        assert!(!step.allows(Action::Write, &Resource::Lake));
    }

    #[test]
    fn bad_policies_are_named_with_the_fix() {
        let mut p = BTreeMap::new();
        p.insert(
            "full".to_string(),
            vec![GrantSpec {
                allow: Action::Read,
                on: vec!["*".into()],
            }],
        );
        p.insert(
            "x".to_string(),
            vec![GrantSpec {
                allow: Action::Read,
                on: vec![
                    "flight.raw".into(),
                    "flights.gold".into(),
                    "a.b.c.d".into(),
                    "flights/raw".into(),
                ],
            }],
        );
        let problems: Vec<String> =
            check(&p, &["flights".into()], &["raw".into(), "trusted".into()])
                .into_iter()
                .map(|(_, m)| m)
                .collect();
        let all = problems.join("\n");
        assert!(all.contains("`full` is built in"), "{all}");
        assert!(all.contains("domain `flight`"), "{all}");
        assert!(all.contains("layer `gold`"), "{all}");
        assert!(all.contains("`a.b.c.d` is not a resource"), "{all}");
        assert!(all.contains("`flights/raw` has"), "{all}");
    }
}
