//! tarn's built-in trainers: linear and logistic regression and gradient-boosted trees
//! (regression and binary classification), trained in process from the `train` channel,
//! evaluated on `validation` (or `train` when there is none), and saved into the model folder
//! as `model.onnx` plus an MLflow `MLmodel` file (onnx and python_function flavours), so
//! serving, batch transform and `mlflow.pyfunc.load_model` treat them as any ONNX model.

mod data;
mod gbt;
mod linear;
pub use tarn_onnx::write as onnx;

use crate::channels::ChannelData;
use crate::MlError;
pub use data::{Labels, Matrix};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use tarn_config::Algorithm;

/// One built-in training job.
#[derive(Debug, Clone)]
pub struct Job {
    pub algorithm: Algorithm,
    pub target: String,
    pub features: Vec<String>,
    pub hyperparameters: BTreeMap<String, serde_json::Value>,
    pub data: Vec<ChannelData>,
    pub model_dir: PathBuf,
}

/// What a built-in job produced besides its files.
#[derive(Debug, Clone)]
pub struct Done {
    pub metrics: BTreeMap<String, f64>,
    pub log: String,
    /// The model's fit alone (what a peer's `fit` measures): no reading, scoring or saving.
    pub fit_seconds: f64,
}

/// A trained model, written as an ONNX graph (and scored as that graph: the metrics a job
/// logs are those of the file it saves).
pub(crate) trait Model {
    /// The ONNX graph's nodes and initializers after the `features` matrix, ending in the
    /// outputs `variable` (regression) or `label` and `probabilities` (classification).
    fn onnx(&self, labels: &Labels) -> (Vec<onnx::Msg>, Vec<onnx::Msg>);
}

pub(crate) fn hp_f64(
    hp: &BTreeMap<String, serde_json::Value>,
    key: &str,
    default: f64,
) -> Result<f64, MlError> {
    match hp.get(key) {
        None => Ok(default),
        Some(v) => v
            .as_f64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .filter(|x: &f64| x.is_finite())
            .ok_or_else(|| {
                MlError::Usage(format!("hyperparameter `{key}` must be a number, not {v}"))
            }),
    }
}

/// Trains, evaluates and saves the model; `cancel` stops it between iterations.
pub fn train(job: &Job, cancel: &AtomicBool) -> Result<Done, MlError> {
    let started = std::time::Instant::now();
    let train = job
        .data
        .iter()
        .find(|c| c.name == "train")
        .ok_or_else(|| MlError::Usage("a built-in trainer needs a `train` channel".into()))?;
    let eval_set = job.data.iter().find(|c| c.name == "validation");
    let features = data::feature_names(train, &job.target, &job.features)?;
    let classifier = job.algorithm.is_classifier();
    let (x, labels, dropped) = data::prepare(train, &features, &job.target, classifier, None)?;
    let mut log = format!(
        "{}: {} rows x {} features from `train`{}\n",
        job.algorithm.name(),
        x.rows,
        features.len(),
        if dropped > 0 {
            format!(" ({dropped} rows without a `{}` left out)", job.target)
        } else {
            String::new()
        }
    );
    if x.rows == 0 {
        return Err(MlError::Usage(format!(
            "the `train` channel has no rows with a `{}` ({dropped} rows lack one)",
            job.target
        )));
    }
    // The rows the model is judged on, checked before anything is fitted.
    let (ex, elabels, eval_name) = match eval_set {
        Some(v) => {
            let (ex, el, dropped) =
                data::prepare(v, &features, &job.target, classifier, Some(&labels))?;
            // Judged on no rows, a model would log empty metrics that any gate passes.
            if ex.rows == 0 {
                return Err(MlError::Usage(format!(
                    "the `validation` channel has no rows with a `{}` ({dropped} rows lack one): a model cannot be judged on none; fix the channel's query or leave the channel out to judge on `train`",
                    job.target
                )));
            }
            (ex, el, "validation")
        }
        None => (x.clone(), labels.clone(), "train"),
    };
    let fitting = std::time::Instant::now();
    let model: Box<dyn Model> = match job.algorithm {
        Algorithm::LinearRegression | Algorithm::LogisticRegression => {
            Box::new(linear::fit(&x, &labels, classifier, &job.hyperparameters)?)
        }
        Algorithm::GbtRegressor | Algorithm::GbtClassifier => Box::new(gbt::fit(
            &x,
            &labels,
            classifier,
            &job.hyperparameters,
            cancel,
            &mut log,
        )?),
    };
    let fit_seconds = fitting.elapsed().as_secs_f64();
    log.push_str(&format!("fitted in {fit_seconds:.3} s\n"));
    let mut metrics = BTreeMap::new();
    // Scored as saved: the ONNX graph run by the runtime `tarn serve` and `tarn transform`
    // use (float32, as every ONNX runtime scores it).
    let scorer =
        tarn_onnx::Model::load(&graph(job, &features, &labels, model.as_ref(), &metrics).0)
            .map_err(|e| MlError::Model(format!("the trained model does not load as ONNX: {e}")))?;
    let train_pred = score(&scorer, &x, &features, classifier)?;
    for (k, v) in data::evaluate(&train_pred, &labels) {
        metrics.insert(format!("train_{k}"), v);
    }
    let pred = score(&scorer, &ex, &features, classifier)?;
    for (k, v) in data::evaluate(&pred, &elabels) {
        log.push_str(&format!("{eval_name} {k}: {v}\n"));
        metrics.insert(k, v);
    }
    log.push_str(&format!(
        "trained in {:.2} s\n",
        started.elapsed().as_secs_f64()
    ));
    save(job, &features, &labels, model.as_ref(), &metrics)?;
    Ok(Done {
        metrics,
        log,
        fit_seconds,
    })
}

/// The class labels in the order of the `probabilities` output, as `metadata.tarn_classes`
/// (the inference table names its per-class columns by them).
fn classes_metadata(labels: &Labels) -> String {
    match labels {
        Labels::Classes { names, .. } => format!(
            "metadata:\n  tarn_classes: '{}'\n",
            serde_json::to_string(names)
                .unwrap_or_default()
                .replace('\'', "''")
        ),
        Labels::Regression(_) => String::new(),
    }
}

/// Each row's score from the model's ONNX graph: the prediction for regression, the
/// positive class's probability for classification.
fn score(
    model: &tarn_onnx::Model,
    x: &Matrix,
    features: &[String],
    classifier: bool,
) -> Result<Vec<f64>, MlError> {
    use tarn_onnx::Value;
    let shape = if features.len() == 1 {
        vec![x.rows, 1]
    } else {
        vec![x.rows]
    };
    let feeds = features
        .iter()
        .zip(&x.cols)
        .map(|(f, c)| {
            let col: Vec<f32> = c.iter().take(x.rows).copied().collect();
            (f.clone(), Value::F32(shape.clone(), col))
        })
        .collect();
    let fail = |why: String| MlError::Model(format!("scoring the trained model: {why}"));
    let out = model.run(feeds).map_err(|e| fail(e.to_string()))?;
    let want = if classifier {
        "probabilities"
    } else {
        "variable"
    };
    let at = model
        .outputs()
        .iter()
        .position(|o| o.name == want)
        .ok_or_else(|| fail(format!("the graph has no `{want}` output")))?;
    let Some(Value::F32(_, data)) = out.get(at) else {
        return Err(fail(format!("`{want}` is not a float tensor")));
    };
    Ok(if classifier {
        data.chunks(2).map(|p| p[1] as f64).collect()
    } else {
        data.iter().map(|v| *v as f64).collect()
    })
}

/// The model as an ONNX file's bytes, with `metrics` in its metadata, and its outputs'
/// signature for `MLmodel`.
fn graph(
    job: &Job,
    features: &[String],
    labels: &Labels,
    model: &dyn Model,
    metrics: &BTreeMap<String, f64>,
) -> (Vec<u8>, serde_json::Value) {
    let (inputs, mut nodes, mut inits) = onnx::feature_inputs(features);
    let (more_nodes, more_inits) = model.onnx(labels);
    nodes.extend(more_nodes);
    inits.extend(more_inits);
    let (outputs, signature_out) = match labels {
        Labels::Regression(_) => (
            vec![onnx::value_info("variable", onnx::FLOAT, &[None, Some(1)])],
            serde_json::json!([{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 1]}, "name": "variable"}]),
        ),
        Labels::Classes { names, .. } => {
            let label_type = if names.iter().all(|n| n.parse::<i64>().is_ok()) {
                (onnx::INT64, "int64")
            } else {
                (8, "str")
            };
            (
                vec![
                    onnx::value_info("label", label_type.0, &[None]),
                    onnx::value_info("probabilities", onnx::FLOAT, &[None, Some(2)]),
                ],
                serde_json::json!([
                    {"type": "tensor", "tensor-spec": {"dtype": label_type.1, "shape": [-1]}, "name": "label"},
                    {"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 2]}, "name": "probabilities"}
                ]),
            )
        }
    };
    let task = if job.algorithm.is_classifier() {
        "classification"
    } else {
        "regression"
    };
    let bytes = onnx::model(
        job.algorithm.name(),
        &nodes,
        &inits,
        &inputs,
        &outputs,
        &[
            ("tarn.algorithm", job.algorithm.name().to_string()),
            ("tarn.task", task.to_string()),
            ("tarn.target", job.target.clone()),
            (
                "tarn.features",
                serde_json::to_string(features).unwrap_or_default(),
            ),
            (
                "tarn.metrics",
                serde_json::to_string(metrics).unwrap_or_default(),
            ),
        ],
    );
    (bytes, signature_out)
}

/// Writes `model.onnx` and `MLmodel` into the model folder.
fn save(
    job: &Job,
    features: &[String],
    labels: &Labels,
    model: &dyn Model,
    metrics: &BTreeMap<String, f64>,
) -> Result<(), MlError> {
    let (bytes, signature_out) = graph(job, features, labels, model, metrics);
    let task = if job.algorithm.is_classifier() {
        "classification"
    } else {
        "regression"
    };
    let dir = &job.model_dir;
    std::fs::create_dir_all(dir).map_err(|e| MlError::io(dir, e))?;
    let file = dir.join("model.onnx");
    std::fs::write(&file, bytes).map_err(|e| MlError::io(&file, e))?;
    let inputs_sig: Vec<serde_json::Value> = features
        .iter()
        .map(|f| {
            let shape = if features.len() == 1 {
                serde_json::json!([-1, 1])
            } else {
                serde_json::json!([-1])
            };
            serde_json::json!({"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": shape}, "name": f})
        })
        .collect();
    let mlmodel = format!(
        "artifact_path: model\nflavors:\n  onnx:\n    code: null\n    data: model.onnx\n    onnx_version: 1.17.0\n    providers:\n    - CPUExecutionProvider\n  python_function:\n    data: model.onnx\n    loader_module: mlflow.onnx\n    python_version: 3.11.7\n  tarn:\n    algorithm: {}\n    task: {task}\n    target: {}\nmodel_uuid: {}\nutc_time_created: '{}'\nsignature:\n  inputs: '{}'\n  outputs: '{}'\n  params: null\n{}",
        job.algorithm.name(),
        serde_json::Value::String(job.target.clone()),
        uuid::Uuid::new_v4().simple(),
        chrono::Utc::now().format("%Y-%m-%d %H:%M:%S%.6f"),
        serde_json::Value::from(inputs_sig).to_string().replace('\'', "''"),
        signature_out.to_string().replace('\'', "''"),
        classes_metadata(labels),
    );
    let file = dir.join("MLmodel");
    std::fs::write(&file, mlmodel).map_err(|e| MlError::io(&file, e))?;
    Ok(())
}
