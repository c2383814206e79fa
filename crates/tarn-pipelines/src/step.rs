//! One attempt of one step: runs the step's code and answers its output (the next step's
//! input) or its failure, with its logs.

use std::path::{Path, PathBuf};
use tarn_config::{GlueVersion, Module, PipelineSpec, Step, StepKind};
use tarn_lake::Lake;
use tarn_process::{process, LineSink, Python};

/// What a step attempt ended with.
#[derive(Debug)]
pub struct StepDone {
    pub output: serde_json::Value,
    /// The step to go to (a `choice` picks it; other steps use `next_step`).
    pub next: Option<String>,
    pub logs: String,
}

/// A failed attempt.
#[derive(Debug)]
pub struct StepFailed {
    /// `errorType: message`, as Step Functions reports a task's error.
    pub error: String,
    pub logs: String,
}

/// What every step's process gets in its environment.
pub struct StepEnv<'a> {
    pub lake: &'a Lake,
    pub python: &'a Python,
    pub pipeline: &'a PipelineSpec,
    pub execution_id: &'a str,
    pub attempt_id: &'a str,
    /// `TARN_SERVER` and `TARN_TOKEN` when a server runs the step.
    pub server: Option<(String, String)>,
    pub sink: Option<LineSink>,
    /// Runs `train` and `transform` steps (none: they fail, saying so).
    pub ml: Option<&'a dyn crate::MlSteps>,
}

impl StepEnv<'_> {
    /// Where the lake and the zones are, which execution and step this is, how to reach tarn.
    pub(crate) fn vars(&self, step: &Step) -> Vec<(String, String)> {
        let lake = self.lake;
        let zone = |layer: &str| {
            lake.zones
                .zone(&self.pipeline.domain, layer)
                .map(|z| lake.zones.url_of(&z.root()))
                .unwrap_or_default()
        };
        let mut v = vec![
            ("TARN_DIR".into(), lake.config.root.display().to_string()),
            ("TARN_PIPELINE".into(), self.pipeline.name.clone()),
            ("TARN_EXECUTION_ID".into(), self.execution_id.into()),
            ("TARN_ATTEMPT_ID".into(), self.attempt_id.into()),
            ("TARN_STEP".into(), step.name.clone()),
            ("TARN_DOMAIN".into(), self.pipeline.domain.clone()),
            ("TARN_ORIGIN_LAYER".into(), self.pipeline.origin.clone()),
            ("TARN_TARGET_LAYER".into(), self.pipeline.target.clone()),
            ("TARN_ORIGIN_ZONE".into(), zone(&self.pipeline.origin)),
            ("TARN_TARGET_ZONE".into(), zone(&self.pipeline.target)),
        ];
        if let Some((url, token)) = &self.server {
            v.push(("TARN_SERVER".into(), url.clone()));
            v.push(("TARN_TOKEN".into(), token.clone()));
        }
        if let Some(t) = step.timeout {
            v.push(("TARN_TIMEOUT_SECONDS".into(), t.as_secs().to_string()));
        }
        // A lake on S3: the step reads and writes its zones with the lake's own credentials
        // (what it prints is stored with them hidden).
        if lake.config.storage.starts_with("s3://") {
            let s3 = &lake.config.s3;
            let from_env = |k: &str| std::env::var(k).ok();
            let pairs = [
                (
                    "AWS_ACCESS_KEY_ID",
                    s3.access_key_id
                        .clone()
                        .or_else(|| from_env("AWS_ACCESS_KEY_ID")),
                ),
                (
                    "AWS_SECRET_ACCESS_KEY",
                    s3.secret_access_key
                        .as_ref()
                        .map(|s| s.expose().to_string())
                        .or_else(|| from_env("AWS_SECRET_ACCESS_KEY")),
                ),
                ("AWS_SESSION_TOKEN", from_env("AWS_SESSION_TOKEN")),
                (
                    "AWS_REGION",
                    s3.region.clone().or_else(|| from_env("AWS_REGION")),
                ),
                (
                    "AWS_DEFAULT_REGION",
                    s3.region
                        .clone()
                        .or_else(|| from_env("AWS_DEFAULT_REGION"))
                        .or_else(|| from_env("AWS_REGION")),
                ),
                (
                    "AWS_ENDPOINT_URL",
                    s3.endpoint.clone().or_else(|| from_env("AWS_ENDPOINT_URL")),
                ),
            ];
            v.extend(
                pairs
                    .into_iter()
                    .filter_map(|(k, val)| Some((k.to_string(), val?))),
            );
        }
        v.extend(
            step.environment
                .iter()
                .map(|(k, val)| (k.clone(), val.clone())),
        );
        v
    }
}

fn fail(error: impl Into<String>, logs: impl Into<String>) -> StepFailed {
    StepFailed {
        error: error.into(),
        logs: logs.into(),
    }
}

/// Runs one attempt of `step` on `input`.
pub async fn run(
    env: &StepEnv<'_>,
    step: &Step,
    input: &serde_json::Value,
) -> Result<StepDone, StepFailed> {
    let done = |output: serde_json::Value, logs: String| StepDone {
        output,
        next: step.next.clone(),
        logs,
    };
    match &step.kind {
        StepKind::Lambda {
            module,
            memory_size,
        } => {
            let mut vars = env.vars(step);
            if let Some(m) = memory_size {
                vars.push(("TARN_MEMORY_MB".into(), m.to_string()));
            }
            let (output, logs) = lambda(env, step, module, input, vars).await?;
            Ok(done(output, logs))
        }
        StepKind::Glue {
            module,
            glue_version: GlueVersion::PythonShell,
            default_args,
            ..
        } => {
            let logs = glue_python(env, step, module, default_args, input).await?;
            Ok(done(input.clone(), logs))
        }
        StepKind::Glue {
            module,
            default_args,
            ..
        }
        | StepKind::Spark {
            module,
            default_args,
            ..
        } => {
            let master = match &step.kind {
                StepKind::Spark {
                    master: Some(m), ..
                } => m.clone(),
                _ => std::env::var("TARN_SPARK_MASTER")
                    .ok()
                    .filter(|m| !m.is_empty())
                    .or_else(|| env.lake.config.spark.master.clone())
                    .unwrap_or_else(|| "local[*]".into()),
            };
            let (writes, logs) = spark(env, step, module, &master, default_args, input).await?;
            // The step's input goes on, with what the job wrote when it wrote anything.
            let output = match (input, writes.is_empty()) {
                (serde_json::Value::Object(m), false) => {
                    let mut m = m.clone();
                    m.insert("glue_writes".into(), serde_json::Value::Array(writes));
                    serde_json::Value::Object(m)
                }
                _ => input.clone(),
            };
            Ok(done(output, logs))
        }
        StepKind::Train { model } => {
            let (ml, cx) = ml_context(env, step)?;
            ml.train(cx, model)
                .await
                .map(|output| done(output, String::new()))
                .map_err(|e| fail(e, ""))
        }
        StepKind::Transform {
            model,
            input: source,
            output,
            id_columns,
            csv,
        } => {
            let model = if model.starts_with("$.") {
                match lookup(input, model).and_then(|v| v.as_str()) {
                    Some(m) => m.to_string(),
                    None => {
                        return Err(fail(
                            format!("States.Runtime: `{model}` names no text in the step's input (the model URI to score with)"),
                            "",
                        ))
                    }
                }
            } else {
                model.clone()
            };
            let (ml, cx) = ml_context(env, step)?;
            let args = crate::TransformStep {
                model,
                input: source.clone(),
                output: output.clone(),
                id_columns: id_columns.clone(),
                csv: csv.clone(),
            };
            ml.transform(cx, args)
                .await
                .map(|output| done(output, String::new()))
                .map_err(|e| fail(e, ""))
        }
        StepKind::Command { command } => {
            let (output, logs) = command_step(env, step, command, input).await?;
            Ok(done(output, logs))
        }
        StepKind::Choice { choices, default } => {
            let picked = choices
                .iter()
                .find(|c| lookup(input, &c.variable) == Some(&c.equals))
                .map(|c| c.next_step.clone())
                .or_else(|| default.clone());
            match picked {
                Some(next) => Ok(StepDone {
                    output: input.clone(),
                    next: Some(next),
                    logs: String::new(),
                }),
                None => Err(fail(
                    format!(
                        "States.NoChoiceMatched: no choice of `{}` matched the input and it has no `default`",
                        step.name
                    ),
                    "",
                )),
            }
        }
        StepKind::Sql {
            query,
            table,
            mode,
            keys,
        } => sql(env, step, query, table, mode, keys, input)
            .await
            .map(|output| done(output, String::new()))
            .map_err(|e| fail(e, "")),
    }
}

fn ml_context<'a>(
    env: &'a StepEnv<'a>,
    step: &'a Step,
) -> Result<(&'a dyn crate::MlSteps, crate::MlStepContext<'a>), StepFailed> {
    let ml = env.ml.ok_or_else(|| {
        fail(
            format!(
                "States.Runtime: `{}` is a {} step, and this engine runs no ML steps",
                step.name,
                step.kind.type_name()
            ),
            "",
        )
    })?;
    Ok((
        ml,
        crate::MlStepContext {
            lake: env.lake,
            python: env.python,
            server: env.server.clone(),
            pipeline: &env.pipeline.name,
            execution_id: env.execution_id,
            step: &step.name,
            sink: env.sink.clone(),
        },
    ))
}

/// `$.a.b`, `a.b` or `a` in `input`.
fn lookup<'v>(input: &'v serde_json::Value, variable: &str) -> Option<&'v serde_json::Value> {
    let path = variable.trim_start_matches('$').trim_start_matches('.');
    let mut v = input;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        v = v.get(part)?;
    }
    Some(v)
}

/// Runs `module`'s handler as a lambda with `event`; answers its return value and logs.
pub async fn lambda(
    env: &StepEnv<'_>,
    step: &Step,
    module: &Module,
    event: &serde_json::Value,
    mut vars: Vec<(String, String)>,
) -> Result<(serde_json::Value, String), StepFailed> {
    let py = env
        .python
        .env_for(module)
        .await
        .map_err(|e| fail(format!("PythonEnvironment: {e}"), ""))?;
    let result = tempfile::NamedTempFile::new().map_err(|e| fail(e.to_string(), ""))?;
    vars.push((
        "TARN_STEP_RESULT".into(),
        result.path().display().to_string(),
    ));
    vars.push(("TARN_PYTHONPATH".into(), join_paths(&py.path)));
    let finished = process::run(
        &py.python,
        &[
            py.runner.display().to_string(),
            module.src().display().to_string(),
        ],
        &module.src(),
        &vars,
        event.to_string().as_bytes(),
        step.timeout,
        env.sink.clone(),
    )
    .await
    .map_err(|e| fail(format!("cannot start Python: {e}"), ""))?;
    if finished.timed_out {
        return Err(timed_out(step, finished.logs));
    }
    let written = std::fs::read_to_string(result.path()).unwrap_or_default();
    let answer: serde_json::Value = serde_json::from_str(&written).unwrap_or_default();
    if let Some(ok) = answer.get("ok") {
        return Ok((ok.clone(), finished.logs));
    }
    let error = match answer.get("error") {
        Some(e) => format!(
            "{}: {}",
            e["errorType"].as_str().unwrap_or("Error"),
            e["errorMessage"].as_str().unwrap_or("")
        ),
        None => format!(
            "Runtime.ExitError: the handler's process exited with {} before returning",
            finished.how()
        ),
    };
    Err(fail(error, finished.logs))
}

/// `--KEY VALUE` arguments: Glue's `--JOB_NAME`, `default_args` as written, then each contract
/// field from the input.
fn glue_args(
    env: &StepEnv<'_>,
    step: &Step,
    default_args: &std::collections::BTreeMap<String, String>,
    input: &serde_json::Value,
) -> Vec<String> {
    let mut args = vec![
        "--JOB_NAME".to_string(),
        format!("{}-{}", env.pipeline.name, step.name),
    ];
    for (k, v) in default_args {
        args.push(format!("--{}", k.trim_start_matches("--")));
        args.push(v.clone());
    }
    for field in env.pipeline.contract.keys() {
        if let Some(v) = input.get(field) {
            args.push(format!("--{field}"));
            args.push(match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            });
        }
    }
    args
}

async fn glue_python(
    env: &StepEnv<'_>,
    step: &Step,
    module: &Module,
    default_args: &std::collections::BTreeMap<String, String>,
    input: &serde_json::Value,
) -> Result<String, StepFailed> {
    let py = env
        .python
        .env_for(module)
        .await
        .map_err(|e| fail(format!("PythonEnvironment: {e}"), ""))?;
    let mut args = vec![module.entry().display().to_string()];
    args.extend(glue_args(env, step, default_args, input));
    let mut vars = env.vars(step);
    let mut path = vec![module.src()];
    path.extend(py.path.iter().cloned());
    vars.push(("PYTHONPATH".into(), join_paths(&path)));
    let finished = process::run(
        &py.python,
        &args,
        &module.src(),
        &vars,
        input.to_string().as_bytes(),
        step.timeout,
        env.sink.clone(),
    )
    .await
    .map_err(|e| fail(format!("cannot start Python: {e}"), ""))?;
    exited(step, finished)
}

fn exited(step: &Step, finished: process::Finished) -> Result<String, StepFailed> {
    if finished.timed_out {
        return Err(timed_out(step, finished.logs));
    }
    if finished.success {
        return Ok(finished.logs);
    }
    let last = finished
        .logs
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .to_string();
    Err(fail(
        format!(
            "States.TaskFailed: `{}` exited with {}; its last line: {last}",
            step.name,
            finished.how()
        ),
        finished.logs,
    ))
}

fn timed_out(step: &Step, logs: String) -> StepFailed {
    fail(
        format!(
            "States.Timeout: `{}` ran past its timeout of {} s and was killed with its processes",
            step.name,
            step.timeout.map(|t| t.as_secs()).unwrap_or(0)
        ),
        logs,
    )
}

/// `spark-submit` of the module's `index.py` with tarn's `awsglue` (`--py-files`), then the
/// job's staged writes committed: answers each write's load report and the logs.
async fn spark(
    env: &StepEnv<'_>,
    step: &Step,
    module: &Module,
    master: &str,
    default_args: &std::collections::BTreeMap<String, String>,
    input: &serde_json::Value,
) -> Result<(Vec<serde_json::Value>, String), StepFailed> {
    let submit = spark_submit().ok_or_else(|| {
        fail(
            format!(
                "SparkNotFound: step `{}` needs `spark-submit`, which is not on PATH or in $SPARK_HOME/bin; install Spark (or `pip install pyspark`), or make it a `glue_version: pythonshell` step",
                step.name
            ),
            "",
        )
    })?;
    let lake = env.lake;
    let library = crate::glue::library(lake).map_err(|e| fail(format!("GlueLibrary: {e}"), ""))?;
    let mut args = vec![
        "--master".to_string(),
        master.to_string(),
        "--py-files".to_string(),
        library.display().to_string(),
        // Timestamps are UTC, as tarn keeps them.
        "--conf".to_string(),
        "spark.sql.session.timeZone=UTC".to_string(),
        // Spark's own INFO lines would bury the script's output in the step's log.
        "--conf".to_string(),
        "spark.log.level=WARN".to_string(),
    ];
    for (k, v) in &lake.config.spark.conf {
        args.push("--conf".into());
        args.push(format!("{k}={v}"));
    }
    let jars = &module.requirements.extra_jars;
    if !jars.is_empty() {
        let mut found = Vec::new();
        for j in jars {
            let p = if Path::new(j).is_absolute() {
                PathBuf::from(j)
            } else {
                module.dir.join(j)
            };
            if !p.is_file() {
                return Err(fail(
                    format!(
                        "States.TaskFailed: extra_jars in {}: `{j}` is not a file here ({}); put the jar in the module's folder (nothing is downloaded)",
                        module.dir.join("requirements.json").display(),
                        p.display()
                    ),
                    "",
                ));
            }
            found.push(p.display().to_string());
        }
        args.push("--jars".into());
        args.push(found.join(","));
    }
    args.push(module.entry().display().to_string());
    args.extend(glue_args(env, step, default_args, input));
    let staging = crate::glue::Staging::new(lake, env.execution_id, &step.name, env.attempt_id);
    let work = tempfile::tempdir().map_err(|e| fail(format!("a folder for the job: {e}"), ""))?;
    let manifest = work.path().join("manifest.jsonl");
    let bookmarks = work.path().join("bookmarks.json");
    crate::glue::bookmarks_for(lake, &env.pipeline.name, &step.name, &bookmarks)
        .await
        .map_err(|e| fail(format!("GlueBookmarks: {e}"), ""))?;
    let mut vars = env.vars(step);
    let exe = std::env::current_exe().map(|p| p.display().to_string());
    vars.extend([
        (
            "TARN_BIN".to_string(),
            exe.unwrap_or_else(|_| "tarn".into()),
        ),
        ("TARN_STORAGE_URL".into(), lake.zones.url().to_string()),
        ("TARN_GLUE_STAGING".into(), staging.url.clone()),
        ("TARN_GLUE_STAGING_PATH".into(), staging.path.clone()),
        ("TARN_GLUE_MANIFEST".into(), manifest.display().to_string()),
        (
            "TARN_GLUE_BOOKMARKS".into(),
            bookmarks.display().to_string(),
        ),
    ]);
    let finished = process::run(
        &submit,
        &args,
        &module.src(),
        &vars,
        input.to_string().as_bytes(),
        step.timeout,
        env.sink.clone(),
    )
    .await
    .map_err(|e| fail(format!("cannot start spark-submit: {e}"), ""))?;
    let logs = match exited(step, finished) {
        Ok(logs) => logs,
        Err(mut failed) => {
            crate::glue::remove_staged(lake, &staging.path).await;
            // The script's exception, not the last line Spark logged while stopping.
            if let Some(raised) = python_exception(&failed.logs) {
                failed.error = format!("States.TaskFailed: `{}` raised {raised}", step.name);
            }
            return Err(failed);
        }
    };
    let writes = crate::glue::commit(
        lake,
        &manifest,
        &staging,
        &env.pipeline.name,
        env.execution_id,
        &step.name,
    )
    .await
    .map_err(|e| fail(format!("States.TaskFailed: {e}"), logs.clone()))?;
    Ok((writes, logs))
}

/// The last exception a Python traceback in `logs` ends with (`KeyError: 'x'`).
fn python_exception(logs: &str) -> Option<String> {
    let lines: Vec<&str> = logs.lines().collect();
    let start = lines
        .iter()
        .rposition(|l| l.contains("Traceback (most recent call last)"))?;
    lines[start + 1..]
        .iter()
        .map(|l| l.trim_start_matches(['|', ' ']).trim_end())
        .find(|l| {
            !l.starts_with(' ')
                && !l.starts_with("File ")
                && l.split(':').next().is_some_and(|head| {
                    !head.is_empty()
                        && head
                            .chars()
                            .all(|c| c.is_alphanumeric() || c == '.' || c == '_')
                        && (head.ends_with("Error") || head.ends_with("Exception"))
                })
        })
        .map(str::to_string)
}

fn spark_submit() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("SPARK_HOME") {
        let p = Path::new(&home).join("bin/spark-submit");
        if p.is_file() {
            return Some(p);
        }
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("spark-submit"))
            .find(|p| p.is_file())
    })
}

async fn command_step(
    env: &StepEnv<'_>,
    step: &Step,
    command: &[String],
    input: &serde_json::Value,
) -> Result<(serde_json::Value, String), StepFailed> {
    let program = PathBuf::from(&command[0]);
    let program = if command[0].contains('/') {
        env.pipeline.dir.join(program)
    } else {
        program
    };
    let finished = process::run(
        &program,
        &command[1..],
        &env.pipeline.dir,
        &env.vars(step),
        input.to_string().as_bytes(),
        step.timeout,
        env.sink.clone(),
    )
    .await
    .map_err(|e| fail(format!("cannot start `{}`: {e}", command[0]), ""))?;
    let stdout = finished.stdout.clone();
    let logs = exited(step, finished)?;
    if stdout.trim().is_empty() {
        return Ok((input.clone(), logs));
    }
    match serde_json::from_str(stdout.trim()) {
        Ok(v) => Ok((v, logs)),
        Err(e) => Err(fail(
            format!(
                "States.TaskFailed: `{}` printed something that is not JSON on stdout ({e}); print one JSON value, and log to stderr",
                step.name
            ),
            logs,
        )),
    }
}

/// The query (with `{{field}}` replaced by the input's field as a SQL literal) written into
/// `DOMAIN.TARGET.TABLE` under the table's contract; answers the input with the write's
/// report under `results.STEP`.
async fn sql(
    env: &StepEnv<'_>,
    step: &Step,
    query: &str,
    table: &str,
    mode: &str,
    keys: &[String],
    input: &serde_json::Value,
) -> Result<serde_json::Value, String> {
    let query = substitute(query, input)?;
    let lake = env.lake;
    let result = lake
        .sql(&query, &tarn_lake::QueryOptions::default())
        .await
        .map_err(|e| format!("SqlError: {e}"))?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let file = dir.path().join(format!("{}.parquet", step.name));
    {
        let mut f = std::fs::File::create(&file).map_err(|e| e.to_string())?;
        tarn_lake::write_result(&result, tarn_lake::OutputFormat::Parquet, &mut f)
            .map_err(|e| format!("SqlError: {e}"))?;
    }
    let target = format!("{}.{}.{table}", env.pipeline.domain, env.pipeline.target);
    // One commit per (execution, step): a step resumed after a crash does not write twice.
    let txn = format!("tarn:{}:{}", env.execution_id, step.name);
    let report = lake
        .load_once(
            &tarn_lake::LoadArgs {
                table: target.clone(),
                source: file.display().to_string(),
                format: None,
                mode: mode.parse().map_err(|e: String| e)?,
                key: keys.to_vec(),
                again: false,
            },
            &txn,
        )
        .await
        .map_err(|e| format!("SqlWriteError: writing {target}: {e}"))?;
    let mut out = input.clone();
    if let Some(obj) = out.as_object_mut() {
        let results = obj
            .entry("results")
            .or_insert_with(|| serde_json::json!({}));
        if let Some(r) = results.as_object_mut() {
            r.insert(
                step.name.clone(),
                serde_json::to_value(&report).unwrap_or_default(),
            );
        }
    }
    Ok(out)
}

/// `{{field}}` and `{{$.a.b}}` replaced by SQL literals of the input's values.
fn substitute(query: &str, input: &serde_json::Value) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = query;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| "SqlError: `{{` without `}}` in the query".to_string())?;
        let var = after[..end].trim();
        let value = lookup(input, var).ok_or_else(|| {
            format!("SqlError: the query uses {{{{{var}}}}}, which the input does not have")
        })?;
        out.push_str(&match value {
            serde_json::Value::String(s) => format!("'{}'", s.replace('\'', "''")),
            serde_json::Value::Null => "NULL".into(),
            serde_json::Value::Bool(b) => b.to_string(),
            serde_json::Value::Number(n) => n.to_string(),
            other => format!("'{}'", other.to_string().replace('\'', "''")),
        });
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn join_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_sql_literals() {
        let input = serde_json::json!({"key": "in/a'b.csv", "n": 3, "o": {"d": "x"}});
        assert_eq!(
            substitute("SELECT {{key}}, {{ n }}, {{$.o.d}}", &input).unwrap(),
            "SELECT 'in/a''b.csv', 3, 'x'"
        );
        assert!(substitute("SELECT {{missing}}", &input)
            .unwrap_err()
            .contains("missing"));
    }
}
