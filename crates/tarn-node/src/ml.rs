//! The ML steps of pipelines, and the tracking server a trainer logs to when tarn is not
//! serving.

use crate::NodeError;
use std::sync::Arc;
use tarn_lake::Lake;
use tarn_ml::TrainOptions;
use tarn_pipelines::Engine;

/// The pipeline engine of `lake`, with its ML steps.
pub fn engine(lake: &Lake) -> Result<Engine, NodeError> {
    Ok(Engine::new(lake.clone())?.with_ml(Arc::new(MlSteps)))
}

/// Serves the lake's API on an ephemeral loopback port until the answer is dropped.
pub async fn loopback_server(
    lake: &Lake,
) -> Result<(String, tokio::sync::oneshot::Sender<()>), NodeError> {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    let app = tarn_server::App::build(lake.clone(), Default::default());
    tokio::spawn(async move {
        let stop = async move {
            let _ = stop_rx.await;
        };
        let r = app
            .serve("127.0.0.1:0".parse().expect("an address"), stop, |b| {
                let _ = bound_tx.send(b);
            })
            .await;
        if let Err(e) = r {
            tracing::error!("the training's tracking server stopped: {e}");
        }
    });
    let bound = bound_rx.await.map_err(|_| NodeError::TrackingServer)?;
    Ok((format!("http://{bound}"), stop_tx))
}

/// The `train` and `transform` steps of pipelines: `tarn-ml` jobs, whose trainers log through
/// the server the engine runs beside (or a loopback one when there is none).
pub struct MlSteps;

impl tarn_pipelines::MlSteps for MlSteps {
    fn train<'a>(
        &'a self,
        cx: tarn_pipelines::MlStepContext<'a>,
        model: &'a str,
    ) -> tarn_pipelines::MlFuture<'a> {
        Box::pin(async move {
            let dir = cx
                .lake
                .config
                .root
                .join(tarn_config::MODELS_DIR)
                .join(model);
            let spec =
                tarn_config::load_train_spec(&dir).map_err(|e| format!("TrainingConfig: {e}"))?;
            // Under `tarn serve` the trainer logs through it; otherwise through a loopback server.
            let (uri, token, _stop) = match &cx.server {
                Some((url, token)) => (
                    url.clone(),
                    (!token.is_empty()).then(|| token.clone()),
                    None,
                ),
                None => {
                    let (url, stop) = loopback_server(cx.lake)
                        .await
                        .map_err(|e| format!("ClientError: {e}"))?;
                    (url, None, Some(stop))
                }
            };
            let mut opts = TrainOptions::new(cx.lake, &uri, &format!("pipeline:{}", cx.pipeline));
            opts.tracking_token = token;
            opts.python = cx.python.clone();
            opts.sink = cx.sink.clone();
            opts.tags
                .insert("tarn.pipeline".into(), cx.pipeline.to_string());
            opts.tags
                .insert("tarn.execution_id".into(), cx.execution_id.to_string());
            opts.tags.insert("tarn.step".into(), cx.step.to_string());
            let report = tarn_ml::train(cx.lake, &spec, &opts)
                .await
                .map_err(|e| format!("TrainingError: {e}"))?;
            if report.status != "succeeded" {
                return Err(format!(
                    "TrainingFailed: {}",
                    report.reason.unwrap_or_default()
                ));
            }
            serde_json::to_value(&report).map_err(|e| format!("TrainingError: {e}"))
        })
    }

    fn transform<'a>(
        &'a self,
        cx: tarn_pipelines::MlStepContext<'a>,
        step: tarn_pipelines::TransformStep,
    ) -> tarn_pipelines::MlFuture<'a> {
        Box::pin(async move {
            let args = tarn_ml::TransformArgs {
                model_uri: step.model,
                input: step.input,
                output: step.output,
                id_columns: step.id_columns,
                csv: step.csv,
            };
            let report = tarn_ml::transform(cx.lake, &args, cx.python, None)
                .await
                .map_err(|e| format!("TransformError: {e}"))?;
            serde_json::to_value(&report).map_err(|e| format!("TransformError: {e}"))
        })
    }
}
