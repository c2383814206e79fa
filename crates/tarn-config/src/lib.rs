//! `tarn.yml`: parsing, validation and resolution of a lake's configuration.
//!
//! A lake is described by one `tarn.yml`. This crate reads it, checks it once, applies the
//! selected environment's overrides and the `TARN_*` variables, and hands back a
//! [`LakeConfig`] with every default filled in. Every error names the file, the line and
//! the fix.
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::write(dir.path().join("tarn.yml"), "lake: demo\ndomains: [flights]\n").unwrap();
//! let cfg = tarn_config::LakeConfig::load(dir.path(), &tarn_config::Selection::default()).unwrap();
//! assert_eq!(cfg.layers, ["raw", "trusted", "service"]);
//! assert_eq!(cfg.stage(), "dev");
//! ```

#![cfg_attr(not(test), deny(unused_crate_dependencies))]
#![forbid(unsafe_code)]

mod dashboard;
mod endpoint;
mod error;
mod file;
mod limits;
mod monitor;
mod pipeline;
mod policy;
mod resolve;
mod secrets;
mod starter;
mod tap;
mod train;

pub use dashboard::{
    append_tile, load_dashboard, load_dashboards, DashboardSpec, NewTile, Tile, CHARTS,
    DASHBOARDS_DIR,
};
pub use endpoint::{Canary, EndpointSpec};
pub use error::ConfigError;
pub use file::{
    DomainSpec, S3Settings, Secret, SmtpSettings, SmtpTls, SparkSettings, Subscription,
    SubscriptionProtocol, TopicSpec,
};
pub use limits::{Limits, SchemaEvolution, JSON_DEPTH_CEILING};
pub use monitor::{
    load_monitor, load_monitors, parse_window, Actuals, Alert, Baseline, Check, Field, FieldGroup,
    FieldType, ModelSelector, ModelType, MonitorSpec, Serving, VersionSelector, Window,
    DRIFT_METHODS, MONITORS_DIR, PERFORMANCE_METRICS,
};
pub use pipeline::{
    check_cron, load_pipeline, load_pipelines, Choice, GlueVersion, Module, PipelineSpec,
    Requirements, Retry, Step, StepKind, Trigger, PIPELINES_DIR, SHARED_DIR,
};
pub use policy::{
    built_in as built_in_policy, step_policy, Action, GrantSpec, Grants, Resource, FULL, READ_ONLY,
};
pub use resolve::{LakeConfig, Selection, CONFIG_FILE};
pub use secrets::{inherited_env, redact, redact_json, INHERITED};
pub use starter::STARTER;
pub use tap::{IndexEntry, SecretSource, SingerIndex, TapSpec, BUNDLED_INDEX, INDEX_FILE};
pub use train::{
    load_train_spec, load_train_specs, parse_bytes, parse_duration, Algorithm, Channel,
    ChannelFormat, ChannelSource, Gate, MetricDefinition, Objective, ParameterRange, Register,
    Resources, Strategy, TrainSpec, Trainer, Tuning, MODELS_DIR, TRAIN_FILE,
};

/// Checks that `name` can be used as a domain, layer or table name (a SQL identifier that is
/// also a safe path segment). Returns the reason when it cannot.
pub fn check_identifier(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    match chars.next() {
        None => return Err("the name is empty".into()),
        Some(c) if !c.is_ascii_lowercase() => {
            return Err(format!("`{name}` must start with a lowercase letter (a-z)"))
        }
        _ => {}
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        return Err(format!(
            "`{name}` contains `{bad}`; use lowercase letters, digits and `_` only"
        ));
    }
    if name.len() > 64 {
        return Err(format!("`{name}` is longer than 64 characters"));
    }
    Ok(())
}

#[cfg(test)]
mod fuzz {
    //! The config parser on mutated real files: the starter and the quickstart's `tarn.yml`
    //! with lines cut, repeated, swapped and re-indented, and bytes replaced. It never panics,
    //! and every refusal names the file.
    use proptest::prelude::*;

    fn corpus() -> Vec<String> {
        let quickstart = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../examples/quickstart/tarn.yml"),
        )
        .unwrap_or_default();
        vec![crate::STARTER.to_string(), quickstart]
    }

    fn mutate(text: &str, ops: &[(u8, usize, usize)]) -> String {
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        for &(op, a, b) in ops {
            if lines.is_empty() {
                break;
            }
            let (i, j) = (a % lines.len(), b % lines.len());
            match op % 6 {
                0 => {
                    lines.remove(i);
                }
                1 => {
                    let l = lines[i].clone();
                    lines.insert(j, l);
                }
                2 => lines.swap(i, j),
                3 => lines[i] = format!("  {}", lines[i]),
                4 => {
                    let l = &mut lines[i];
                    let at = (b % (l.len() + 1)).min(l.len());
                    let at = (0..=at).rev().find(|k| l.is_char_boundary(*k)).unwrap_or(0);
                    l.insert_str(
                        at,
                        [":", "- ", "{", "[", "\"", "&a", "*a", "!!", "\t"][b % 9],
                    );
                }
                _ => lines[i] = lines[i].chars().rev().collect(),
            }
        }
        lines.join("\n")
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]
        #[test]
        fn mutated_configs_parse_or_name_the_file(
            which in 0usize..2,
            ops in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<usize>()), 1..6),
        ) {
            let text = mutate(&corpus()[which], &ops);
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("tarn.yml");
            match crate::LakeConfig::parse(&path, &text, &crate::Selection::default()) {
                Ok(_) => {}
                Err(e) => prop_assert!(e.to_string().contains("tarn.yml"), "{e}\n---\n{text}"),
            }
        }
    }
}
