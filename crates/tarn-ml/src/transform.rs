//! Batch transform: every row of a query (or table) scored by a model and written, with the
//! inputs' ids, as a Delta table in a service zone (catalogued, so SQL sees it), optionally
//! also as a CSV file landed in a zone. Rows stream through in batches: memory stays bounded
//! whatever the input's size. ONNX models (tarn's built-ins, `mlflow.onnx` models) run in
//! process; other MLflow models run through their `python_function` flavour in one Python
//! process fed batch by batch.

use crate::MlError;
use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Float32Type, Schema, SchemaRef};
use futures::StreamExt;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tarn_lake::Lake;

/// What to score and where to write it.
#[derive(Debug, Clone)]
pub struct TransformArgs {
    /// `models:/NAME/VERSION`, `models:/NAME@ALIAS`, `models:/NAME/STAGE`, `models:/NAME`
    /// (the newest version), `runs:/RUN_ID/PATH` or `mlflow-artifacts:/...`.
    pub model_uri: String,
    /// A query, or a table address.
    pub input: String,
    /// `DOMAIN.service.TABLE`.
    pub output: String,
    /// Input columns carried into the output (none: every input column).
    pub id_columns: Vec<String>,
    /// Also land the output as CSV at `DOMAIN/LAYER/KEY`.
    pub csv: Option<String>,
}

/// What a batch transform did.
#[derive(Debug, Clone, Serialize)]
pub struct TransformReport {
    pub model_uri: String,
    pub model: Option<String>,
    pub version: Option<String>,
    /// `onnx` or `python_function`.
    pub runtime: String,
    pub table: String,
    pub table_version: i64,
    pub rows: i64,
    pub seconds: f64,
    pub rows_per_second: f64,
    pub csv: Option<String>,
}

/// Called with the rows scored so far.
pub type RowProgress = Arc<dyn Fn(u64) + Send + Sync>;

/// Scores batches with one model.
enum Scorer {
    Onnx(Box<tarn_onnx::Model>),
    Python(PyScorer),
}

/// `input` as a query.
fn input_query(input: &str) -> String {
    let t = input.trim();
    let is_address = t.split('.').count() == 3
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '@');
    if is_address {
        format!("SELECT * FROM {t}")
    } else {
        t.to_string()
    }
}

fn model_error(e: tarn_onnx::OnnxError) -> MlError {
    MlError::Model(e.to_string())
}

/// The feeds of an ONNX model from a batch: each input by column name; a single matrix input
/// takes every non-id column in order.
fn feeds(
    model: &tarn_onnx::Model,
    batch: &RecordBatch,
    ids: &[String],
) -> Result<HashMap<String, tarn_onnx::Value>, MlError> {
    let n = batch.num_rows();
    let schema = batch.schema();
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let as_f32 = |col: &ArrayRef, name: &str| -> Result<Vec<f32>, MlError> {
        let c = arrow::compute::cast(col, &DataType::Float32).map_err(|e| {
            MlError::Usage(format!("column `{name}` cannot be read as a number: {e}"))
        })?;
        let a = c.as_primitive::<Float32Type>();
        Ok((0..n)
            .map(|i| if a.is_valid(i) { a.value(i) } else { f32::NAN })
            .collect())
    };
    let mut out = HashMap::new();
    let inputs = model.inputs();
    if inputs.len() == 1
        && inputs[0].dims.len() == 2
        && inputs[0].dims[1] != Some(1)
        && !names.contains(&inputs[0].name)
    {
        let cols: Vec<&String> = names.iter().filter(|c| !ids.contains(c)).collect();
        if let Some(Some(width)) = inputs[0].dims.get(1) {
            if cols.len() != *width as usize {
                return Err(MlError::Usage(format!(
                    "the model takes one matrix `{}` of {width} columns; the input has {} columns besides the ids ({})",
                    inputs[0].name,
                    cols.len(),
                    cols.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")
                )));
            }
        }
        let parts: Vec<Vec<f32>> = cols
            .iter()
            .map(|c| as_f32(batch.column_by_name(c).expect("a column"), c))
            .collect::<Result<_, _>>()?;
        let mut data = Vec::with_capacity(n * parts.len());
        for r in 0..n {
            for p in &parts {
                data.push(p[r]);
            }
        }
        out.insert(
            inputs[0].name.clone(),
            tarn_onnx::Value::F32(vec![n, parts.len()], data),
        );
        return Ok(out);
    }
    for i in inputs {
        let col = batch.column_by_name(&i.name).ok_or_else(|| {
            MlError::Usage(format!(
                "the input has no column `{}`, which the model needs; its columns are: {}",
                i.name,
                names.join(", ")
            ))
        })?;
        let shape = if i.dims.len() == 2 {
            vec![n, 1]
        } else {
            vec![n]
        };
        let v = match i.elem_type {
            7 => {
                let c = arrow::compute::cast(col, &DataType::Int64)
                    .map_err(|e| MlError::Usage(format!("column `{}`: {e}", i.name)))?;
                let a = c.as_primitive::<arrow::datatypes::Int64Type>();
                tarn_onnx::Value::I64(shape, (0..n).map(|k| a.value(k)).collect())
            }
            8 => {
                let c = arrow::compute::cast(col, &DataType::Utf8)
                    .map_err(|e| MlError::Usage(format!("column `{}`: {e}", i.name)))?;
                let a = c.as_string::<i32>();
                tarn_onnx::Value::Str(shape, (0..n).map(|k| a.value(k).to_string()).collect())
            }
            _ => tarn_onnx::Value::F32(shape, as_f32(col, &i.name)?),
        };
        out.insert(i.name.clone(), v);
    }
    Ok(out)
}

/// Output columns of an ONNX model's answers: `prediction` for a single prediction (or the
/// label), `probability` for a binary classifier's positive class, else the output names.
fn prediction_columns(
    model: &tarn_onnx::Model,
    values: Vec<tarn_onnx::Value>,
) -> Vec<(String, ArrayRef)> {
    let names: Vec<String> = model.outputs().iter().map(|o| o.name.clone()).collect();
    let classifier = names.len() == 2;
    let mut cols = Vec::new();
    for (k, (name, v)) in names.iter().zip(values).enumerate() {
        let base = if k == 0 {
            "prediction".to_string()
        } else if classifier {
            "probability".to_string()
        } else {
            name.clone()
        };
        let shape = v.shape().to_vec();
        let width = if shape.len() == 2 { shape[1] } else { 1 };
        let rows = shape.first().copied().unwrap_or(0);
        match v {
            tarn_onnx::Value::F32(_, d) if width == 1 => cols.push((
                base,
                Arc::new(Float64Array::from_iter_values(d.iter().map(|x| *x as f64))) as ArrayRef,
            )),
            tarn_onnx::Value::F32(_, d) => {
                let keys: Vec<String> = (0..width).map(|c| c.to_string()).collect();
                score_columns(&mut cols, base, &keys, &d, rows, classifier && k == 1);
            }
            tarn_onnx::Value::I64(_, d) => {
                cols.push((base, Arc::new(Int64Array::from(d)) as ArrayRef))
            }
            tarn_onnx::Value::Str(_, d) => {
                cols.push((base, Arc::new(StringArray::from(d)) as ArrayRef))
            }
            tarn_onnx::Value::Maps(_, keys, d) => {
                // ZipMap: the positive class's probability, or one column per class.
                let names: Vec<String> = match keys {
                    tarn_onnx::Keys::Ints(k) => k.iter().map(i64::to_string).collect(),
                    tarn_onnx::Keys::Strs(k) => k,
                };
                score_columns(&mut cols, base, &names, &d, rows, classifier);
            }
        }
    }
    cols
}

/// Columns of `rows` score rows (one score per key): a binary classifier's positive class
/// as `base`, else one `base_KEY` column per key.
fn score_columns(
    cols: &mut Vec<(String, ArrayRef)>,
    base: String,
    keys: &[String],
    d: &[f32],
    rows: usize,
    positive_only: bool,
) {
    let width = keys.len().max(1);
    if positive_only && keys.len() == 2 {
        cols.push((
            base,
            Arc::new(Float64Array::from_iter_values(
                (0..rows).map(|r| d[r * 2 + 1] as f64),
            )) as ArrayRef,
        ));
        return;
    }
    for (c, key) in keys.iter().enumerate() {
        cols.push((
            format!("{base}_{key}"),
            Arc::new(Float64Array::from_iter_values(
                (0..rows).map(|r| d[r * width + c] as f64),
            )) as ArrayRef,
        ));
    }
}

/// Runs a model on batches: answers the output batch (ids + predictions).
/// [`score_now`] off the async worker it is called from: scoring is CPU work (ONNX) or a
/// blocking exchange with a Python process, so on a multi-threaded runtime the worker hands
/// its other tasks on while it scores.
fn score(scorer: &mut Scorer, batch: &RecordBatch, ids: &[String]) -> Result<RecordBatch, MlError> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => {
            tokio::task::block_in_place(|| score_now(scorer, batch, ids))
        }
        _ => score_now(scorer, batch, ids),
    }
}

fn score_now(
    scorer: &mut Scorer,
    batch: &RecordBatch,
    ids: &[String],
) -> Result<RecordBatch, MlError> {
    let mut fields: Vec<Field> = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    let keep: Vec<String> = if ids.is_empty() {
        batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    } else {
        ids.to_vec()
    };
    for c in &keep {
        let col = batch.column_by_name(c).ok_or_else(|| {
            MlError::Usage(format!("--id-column `{c}` is not a column of the input"))
        })?;
        fields.push(Field::new(c, col.data_type().clone(), true));
        arrays.push(col.clone());
    }
    let predicted = match scorer {
        Scorer::Onnx(m) => {
            let f = feeds(m, batch, ids)?;
            let out = m.run(f).map_err(model_error)?;
            prediction_columns(m, out)
        }
        Scorer::Python(p) => p.score(batch)?,
    };
    for (name, a) in predicted {
        let name = if keep.contains(&name) {
            format!("{name}_predicted")
        } else {
            name
        };
        fields.push(Field::new(&name, a.data_type().clone(), true));
        arrays.push(a);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .map_err(|e| MlError::Model(e.to_string()))
}

/// Scores every row of `args.input` and writes the table.
pub async fn transform(
    lake: &Lake,
    args: &TransformArgs,
    python: &tarn_process::Python,
    progress: Option<RowProgress>,
) -> Result<TransformReport, MlError> {
    let started = std::time::Instant::now();
    let resolved = lake.resolve_model(&args.model_uri).await?;
    let work = tempfile::tempdir().map_err(|e| MlError::io(Path::new("a temporary folder"), e))?;
    let model_dir = work.path().join("model");
    let mlmodel = lake.download_model(&resolved.location, &model_dir).await?;
    let flavors = &mlmodel["flavors"];
    let (mut scorer, runtime) = if let Some(data) = flavors["onnx"]["data"].as_str() {
        let file = model_dir.join(data);
        let bytes = std::fs::read(&file).map_err(|e| MlError::io(&file, e))?;
        (
            Scorer::Onnx(Box::new(
                tarn_onnx::Model::load(&bytes).map_err(model_error)?,
            )),
            "onnx",
        )
    } else if flavors.get("python_function").is_some() {
        (
            Scorer::Python(PyScorer::start(python, &model_dir, work.path()).await?),
            "python_function",
        )
    } else {
        return Err(MlError::Model(format!(
            "{} has neither an onnx nor a python_function flavour; tarn scores ONNX models in process and other MLflow models through python_function",
            args.model_uri
        )));
    };
    let query = input_query(&args.input);
    let (_schema, mut rows) = lake.sql_stream(&query).await?;
    // Score the first batch to learn the output's schema, then stream the rest.
    let ids = args.id_columns.clone();
    let first = loop {
        match rows.next().await {
            Some(Ok(b)) if b.num_rows() == 0 => continue,
            Some(Ok(b)) => break Some(b),
            Some(Err(e)) => return Err(tarn_lake::LakeError::from(e).into()),
            None => break None,
        }
    };
    let Some(first) = first else {
        return Err(MlError::Usage(format!(
            "`{query}` returned no rows; nothing to score"
        )));
    };
    let first_out = score(&mut scorer, &first, &ids)?;
    let schema: SchemaRef = first_out.schema();
    let mut csv = match &args.csv {
        Some(_) => {
            let path = work.path().join("predictions.csv");
            let f = std::fs::File::create(&path).map_err(|e| MlError::io(&path, e))?;
            Some((
                path,
                arrow::csv::WriterBuilder::new().with_header(true).build(f),
            ))
        }
        None => None,
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<RecordBatch, String>>(2);
    let writer = {
        let lake = lake.clone();
        let output = args.output.clone();
        let schema = schema.clone();
        let mut p = BTreeMap::new();
        p.insert("tarn.model_uri".to_string(), args.model_uri.clone());
        if let (Some(m), Some(v)) = (&resolved.model, &resolved.version) {
            p.insert("tarn.model_version".to_string(), format!("{m}/{v}"));
        }
        p.insert("query".to_string(), query.clone());
        tokio::spawn(async move {
            let stream = tokio_stream(rx);
            lake.write_service_stream(
                &output,
                "--output",
                &schema,
                stream,
                p,
                "written by tarn transform",
            )
            .await
        })
    };
    let mut scored = 0u64;
    let send = |out: RecordBatch,
                csv: &mut Option<(PathBuf, arrow::csv::Writer<std::fs::File>)>|
     -> Result<RecordBatch, MlError> {
        if let Some((_, w)) = csv {
            w.write(&out)
                .map_err(|e| MlError::Model(format!("writing the CSV: {e}")))?;
        }
        Ok(out)
    };
    let out = send(first_out, &mut csv)?;
    scored += out.num_rows() as u64;
    let mut failed: Option<MlError> = None;
    if tx.send(Ok(out)).await.is_err() {
        failed = Some(MlError::Model("the table writer stopped".into()));
    }
    if let Some(p) = &progress {
        p(scored);
    }
    while failed.is_none() {
        let Some(next) = rows.next().await else { break };
        let result = match next {
            Ok(b) if b.num_rows() == 0 => continue,
            Ok(b) => score(&mut scorer, &b, &ids).and_then(|o| {
                if o.schema() != schema {
                    return Err(MlError::Model(
                        "the model answered a batch with other columns than the first".into(),
                    ));
                }
                send(o, &mut csv)
            }),
            Err(e) => Err(tarn_lake::LakeError::from(e).into()),
        };
        match result {
            Ok(o) => {
                scored += o.num_rows() as u64;
                if tx.send(Ok(o)).await.is_err() {
                    failed = Some(MlError::Model("the table writer stopped".into()));
                }
                if let Some(p) = &progress {
                    p(scored);
                }
            }
            Err(e) => {
                // The writer sees the error and commits nothing.
                let _ = tx.send(Err(e.to_string())).await;
                failed = Some(e);
            }
        }
    }
    drop(tx);
    let written = writer.await.map_err(|e| MlError::Model(e.to_string()))?;
    if let Some(e) = failed {
        return Err(e);
    }
    let written = written?;
    let csv_target = match (csv, &args.csv) {
        (Some((path, w)), Some(target)) => {
            drop(w);
            lake.land(&path, target, &Default::default(), &|_| {})
                .await?;
            Some(target.clone())
        }
        _ => None,
    };
    let seconds = started.elapsed().as_secs_f64();
    Ok(TransformReport {
        model_uri: args.model_uri.clone(),
        model: resolved.model,
        version: resolved.version,
        runtime: runtime.to_string(),
        table: written.table,
        table_version: written.table_version,
        rows: written.row_count,
        seconds,
        rows_per_second: written.row_count as f64 / seconds.max(1e-9),
        csv: csv_target,
    })
}

/// A receiver as a stream.
fn tokio_stream(
    mut rx: tokio::sync::mpsc::Receiver<Result<RecordBatch, String>>,
) -> tarn_lake::BatchSource {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

const PYFUNC_RUNNER: &str = include_str!("py/pyfunc_runner.py");

/// A Python process scoring batches with `mlflow.pyfunc`: a Parquet file in, a Parquet file
/// out, one line on stdin and one on stdout per batch.
struct PyScorer {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
    dir: PathBuf,
    n: usize,
}

impl PyScorer {
    /// Starts the scorer and waits until its model is loaded (seconds, for mlflow's imports),
    /// on tokio's blocking pool rather than an async worker.
    async fn start(
        python: &tarn_process::Python,
        model: &Path,
        work: &Path,
    ) -> Result<PyScorer, MlError> {
        let (base, model, work) = (
            python.base().to_path_buf(),
            model.to_path_buf(),
            work.to_path_buf(),
        );
        tokio::task::spawn_blocking(move || Self::start_blocking(&base, &model, &work))
            .await
            .map_err(|e| MlError::Model(format!("the Python scorer did not start: {e}")))?
    }

    fn start_blocking(base: &Path, model: &Path, work: &Path) -> Result<PyScorer, MlError> {
        let runner = work.join("pyfunc_runner.py");
        std::fs::write(&runner, PYFUNC_RUNNER).map_err(|e| MlError::io(&runner, e))?;
        let mut child = std::process::Command::new(base)
            .arg(&runner)
            .arg(model)
            .env_clear()
            .envs(tarn_config::inherited_env())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .map_err(|e| MlError::Usage(format!("cannot start Python ({}): {e}; install Python 3 with mlflow, or point TARN_PYTHON at one", base.display())))?;
        let stdin = child.stdin.take().expect("piped");
        let mut stdout = std::io::BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut line)
            .map_err(|e| MlError::Model(e.to_string()))?;
        if line.trim() != "ready" {
            let _ = child.kill();
            return Err(MlError::Model(format!(
                "the model did not load in Python (mlflow.pyfunc.load_model): {}",
                line.trim()
            )));
        }
        Ok(PyScorer {
            child,
            stdin,
            stdout,
            dir: work.to_path_buf(),
            n: 0,
        })
    }

    fn score(&mut self, batch: &RecordBatch) -> Result<Vec<(String, ArrayRef)>, MlError> {
        use std::io::{BufRead, Write};
        self.n += 1;
        let input = self.dir.join(format!("in-{}.parquet", self.n));
        let output = self.dir.join(format!("out-{}.parquet", self.n));
        crate::channels::write_file(
            &input,
            tarn_config::ChannelFormat::Parquet,
            &batch.schema(),
            std::slice::from_ref(batch),
        )?;
        writeln!(self.stdin, "{}\t{}", input.display(), output.display())
            .map_err(|e| MlError::Model(format!("the Python scorer stopped: {e}")))?;
        self.stdin
            .flush()
            .map_err(|e| MlError::Model(e.to_string()))?;
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .map_err(|e| MlError::Model(e.to_string()))?;
        let _ = std::fs::remove_file(&input);
        if line.trim() != "ok" {
            return Err(MlError::Model(format!(
                "the model failed on a batch: {}",
                line.trim()
            )));
        }
        let file = std::fs::File::open(&output).map_err(|e| MlError::io(&output, e))?;
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.build())
            .map_err(|e| MlError::Model(e.to_string()))?;
        let mut cols: Vec<(String, ArrayRef)> = Vec::new();
        let mut parts: Vec<RecordBatch> = Vec::new();
        for b in reader {
            parts.push(b.map_err(|e| MlError::Model(e.to_string()))?);
        }
        let _ = std::fs::remove_file(&output);
        let Some(first) = parts.first() else {
            return Err(MlError::Model("the model answered no rows".into()));
        };
        let schema = first.schema();
        let all = arrow::compute::concat_batches(&schema, &parts)
            .map_err(|e| MlError::Model(e.to_string()))?;
        if all.num_rows() != batch.num_rows() {
            return Err(MlError::Model(format!(
                "the model answered {} rows for {}",
                all.num_rows(),
                batch.num_rows()
            )));
        }
        for (f, c) in schema.fields().iter().zip(all.columns()) {
            let c = if matches!(c.data_type(), DataType::Float32) {
                arrow::compute::cast(c, &DataType::Float64)
                    .map_err(|e| MlError::Model(e.to_string()))?
            } else {
                c.clone()
            };
            cols.push((f.name().clone(), c));
        }
        Ok(cols)
    }
}

impl Drop for PyScorer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
