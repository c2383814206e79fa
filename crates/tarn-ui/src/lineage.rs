//! What reads or writes a table, from the files beside `tarn.yml` and the stored endpoints:
//! pipelines (a SQL step's table and query, a transform's input and output, the zone a Glue
//! or Spark job writes into and the zone whose landings trigger it), training jobs (their
//! channels), monitors (their serving, actuals and baseline queries, their results table)
//! and endpoints (their inference table). A query counts as reading a table when it names
//! it in full (`domain.layer.table`, quoted or not).

use tarn_config::{
    Baseline, ChannelSource, EndpointSpec, LakeConfig, MonitorSpec, PipelineSpec, StepKind,
    TrainSpec,
};

/// One thing that reads or writes the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Use {
    /// `pipeline`, `training`, `monitor` or `endpoint`.
    pub kind: &'static str,
    pub name: String,
    /// Its page in the UI.
    pub link: String,
    pub writes: bool,
    /// How, as a sentence.
    pub how: String,
}

/// Whether `sql` names `table` (`d.l.t`) in full, with or without quotes, in any case.
pub fn mentions(sql: &str, table: &str) -> bool {
    let text: String = sql
        .chars()
        .filter(|c| *c != '"' && *c != '`')
        .collect::<String>()
        .to_lowercase();
    let table = table.to_lowercase();
    let word = |c: char| c.is_alphanumeric() || c == '_' || c == '.';
    text.match_indices(&table).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + table.len()..].chars().next();
        !before.is_some_and(word) && !after.is_some_and(word)
    })
}

fn pipeline_uses(p: &PipelineSpec, table: &str, out: &mut Vec<Use>) {
    let zone = table.rsplit_once('.').map(|(z, _)| z).unwrap_or("");
    let mut add = |writes: bool, how: String| {
        out.push(Use {
            kind: "pipeline",
            name: p.name.clone(),
            link: format!("/ui/pipelines/{}", crate::catalog::percent(&p.name)),
            writes,
            how,
        })
    };
    if zone == format!("{}.{}", p.domain, p.origin) && !p.triggers.is_empty() {
        add(false, format!("is triggered by objects landing in {zone}"));
    }
    for s in &p.steps {
        match &s.kind {
            StepKind::Sql {
                query,
                table: t,
                mode,
                ..
            } => {
                if format!("{}.{}.{t}", p.domain, p.target) == table {
                    add(true, format!("step `{}` writes it ({mode})", s.name));
                }
                if mentions(query, table) {
                    add(false, format!("step `{}` queries it", s.name));
                }
            }
            StepKind::Transform { input, output, .. } => {
                if output == table {
                    add(true, format!("step `{}` writes its scores here", s.name));
                }
                if input == table || mentions(input, table) {
                    add(false, format!("step `{}` scores its rows", s.name));
                }
            }
            // A job's script writes files into the pipeline's target zone (which tables, only
            // the script knows); a lambda or command step passes data on.
            StepKind::Glue { .. } | StepKind::Spark { .. }
                if zone == format!("{}.{}", p.domain, p.target) =>
            {
                add(
                    true,
                    format!(
                        "step `{}` ({}) writes into its zone {zone}",
                        s.name,
                        s.kind.type_name()
                    ),
                );
            }
            _ => {}
        }
    }
}

fn training_uses(t: &TrainSpec, table: &str, out: &mut Vec<Use>) {
    for c in &t.channels {
        let reads = match &c.source {
            ChannelSource::Table(name) => name == table,
            ChannelSource::Query(q) => mentions(q, table),
        };
        if reads {
            out.push(Use {
                kind: "training",
                name: t.name.clone(),
                link: format!("/ui/models/{}", crate::catalog::percent(&t.name)),
                writes: false,
                how: format!("channel `{}` trains on it", c.name),
            });
        }
    }
}

fn monitor_uses(
    m: &MonitorSpec,
    table: &str,
    inference_table: impl Fn(&str) -> String,
    out: &mut Vec<Use>,
) {
    let mut add = |writes: bool, how: &str| {
        out.push(Use {
            kind: "monitor",
            name: m.name.clone(),
            link: format!("/ui/monitors/{}", crate::catalog::percent(&m.name)),
            writes,
            how: how.to_string(),
        })
    };
    let serving = match (&m.serving.query, &m.endpoint) {
        (Some(q), _) => mentions(q, table),
        (None, Some(e)) => inference_table(e) == table,
        (None, None) => false,
    };
    if serving {
        add(false, "watches its rows as serving data");
    }
    if m.actuals
        .as_ref()
        .is_some_and(|a| mentions(&a.query, table))
    {
        add(false, "joins its rows as actuals");
    }
    if matches!(&m.baseline, Baseline::Query(q) if mentions(q, table)) {
        add(false, "compares with its rows as the baseline");
    }
    if m.results_table() == table {
        add(true, "writes its figures here");
    }
}

/// Everything that reads or writes `table`, writers first. A file that does not parse is
/// skipped here (its own page names the problem).
pub fn uses(config: &LakeConfig, endpoints: &[(String, EndpointSpec)], table: &str) -> Vec<Use> {
    let mut out = Vec::new();
    for p in tarn_config::load_pipelines(config).unwrap_or_default() {
        pipeline_uses(&p, table, &mut out);
    }
    for t in tarn_config::load_train_specs(config).unwrap_or_default() {
        training_uses(&t, table, &mut out);
    }
    let inference_table = |e: &str| {
        endpoints
            .iter()
            .find(|(n, _)| n == e)
            .map(|(_, s)| s.inference_table(e))
            .unwrap_or_else(|| EndpointSpec::new("").inference_table(e))
    };
    for m in tarn_config::load_monitors(config).unwrap_or_default() {
        monitor_uses(&m, table, inference_table, &mut out);
    }
    for (name, spec) in endpoints {
        if spec.inference_table(name) == table {
            out.push(Use {
                kind: "endpoint",
                name: name.clone(),
                link: format!("/ui/endpoints/{}", crate::catalog::percent(name)),
                writes: true,
                how: "logs every answered row here".into(),
            });
        }
    }
    out.sort_by_key(|u| !u.writes);
    out
}

#[cfg(test)]
mod tests {
    use super::mentions;

    #[test]
    fn a_query_reads_a_table_it_names_in_full() {
        assert!(mentions(
            "SELECT * FROM flights.raw.flights",
            "flights.raw.flights"
        ));
        assert!(mentions(
            "select 1 from \"flights\".\"raw\".\"flights\" f",
            "flights.raw.flights"
        ));
        assert!(mentions("FROM FLIGHTS.RAW.FLIGHTS;", "flights.raw.flights"));
        assert!(!mentions(
            "FROM flights.raw.flights_rejected",
            "flights.raw.flights"
        ));
        assert!(!mentions(
            "FROM x.flights.raw.flights",
            "flights.raw.flights"
        ));
        assert!(!mentions("FROM flights.raw.weather", "flights.raw.flights"));
    }
}
