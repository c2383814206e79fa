//! `tarn endpoints`: deploy, list, show and delete model endpoints. They are stored in the
//! lake's metadata; a running `tarn serve` picks changes up within its poll interval.

use crate::print;
use anyhow::{bail, Result};
use clap::Subcommand;
use tarn_config::{Canary, EndpointSpec};
use tarn_lake::Lake;

#[derive(Subcommand)]
pub enum EndpointsCommand {
    /// Deploy (or replace) an endpoint serving a registered model version.
    ///
    /// Examples:
    ///   tarn endpoints deploy delays --model models:/delays@champion
    ///   tarn endpoints deploy delays --model models:/delays@champion --canary models:/delays/4 --canary-percent 10
    ///   tarn endpoints deploy custom --model models:/delays/3 --command python --command serve.py
    ///
    /// Then: curl -d '{"dataframe_records": [{"dep_delay": 12, "distance": 1400}]}' \
    ///   -H 'content-type: application/json' localhost:8080/endpoints/delays/invocations
    #[command(verbatim_doc_comment)]
    Deploy {
        name: String,
        /// models:/NAME@ALIAS (followed when the alias moves), models:/NAME/VERSION or /STAGE.
        #[arg(long)]
        model: String,
        /// A second model URI taking --canary-percent of the requests.
        #[arg(long, requires = "canary_percent")]
        canary: Option<String>,
        #[arg(long)]
        canary_percent: Option<f64>,
        /// A bring-your-own server (SageMaker's /ping and /invocations) instead of the runtime
        /// the model's flavors choose; repeat for each argument; {port} and {model_dir} are
        /// replaced.
        #[arg(long, allow_hyphen_values = true)]
        command: Vec<String>,
        /// Domain of the inference table DOMAIN.service.inference_NAME (default ml).
        #[arg(long)]
        log_domain: Option<String>,
        /// Rows scored at once when requests are micro-batched (default 64).
        #[arg(long)]
        max_batch: Option<usize>,
        /// Requests waiting before new ones get 503 (default 256).
        #[arg(long)]
        max_queue: Option<usize>,
        /// Longest a request may take, e.g. 10s or 500ms (default 10s).
        #[arg(long)]
        timeout: Option<String>,
        /// Largest request body, e.g. 6MiB (the default).
        #[arg(long)]
        max_body: Option<String>,
        #[command(flatten)]
        out: crate::cli::Output,
    },
    /// The endpoints, the model URI each follows and the version it names now.
    List {
        #[command(flatten)]
        out: crate::cli::Output,
    },
    /// One endpoint: its spec, where it came from, what it serves and its inference table.
    Show {
        name: String,
        #[command(flatten)]
        out: crate::cli::Output,
    },
    /// Delete an endpoint (its inference table stays).
    Delete { name: String },
}

/// What an endpoint names now, for list and show.
#[derive(serde::Serialize)]
struct View {
    name: String,
    model: String,
    serves: String,
    canary: Option<String>,
    source: String,
    inference_table: String,
    updated_at: String,
    spec: serde_json::Value,
}

async fn view(lake: &Lake, r: tarn_lake::EndpointRecord) -> View {
    let spec: Option<EndpointSpec> = serde_json::from_value(r.spec.clone()).ok();
    let serves = match &spec {
        Some(s) => match tarn_serving::deployable(lake, &r.name, s).await {
            Ok(v) => v
                .iter()
                .map(|(m, v)| format!("{m} v{v}"))
                .collect::<Vec<_>>()
                .join(" + "),
            Err(e) => format!("nothing: {e}"),
        },
        None => "nothing: the stored spec is unreadable".into(),
    };
    View {
        model: spec.as_ref().map(|s| s.model.clone()).unwrap_or_default(),
        canary: spec
            .as_ref()
            .and_then(|s| s.canary.as_ref())
            .map(|c| format!("{} ({}%)", c.model, c.percent)),
        inference_table: spec
            .as_ref()
            .map(|s| s.inference_table(&r.name))
            .unwrap_or_default(),
        name: r.name,
        serves,
        source: if r.source == "config" {
            "tarn.yml".into()
        } else {
            format!("deployed by {}", r.created_by)
        },
        updated_at: r.updated_at,
        spec: r.spec,
    }
}

/// `tarn --server URL endpoints ...`: what the server hosts now. Deploying and deleting
/// change the lake's metadata and are refused by name rather than done to a local folder.
pub async fn remote(client: &tarn_client::Client, cmd: &EndpointsCommand) -> Result<()> {
    let (name, out) = match cmd {
        EndpointsCommand::List { out } => (None, out),
        EndpointsCommand::Show { name, out } => (Some(name), out),
        EndpointsCommand::Deploy { .. } | EndpointsCommand::Delete { .. } => bail!(
            "`tarn endpoints deploy` and `delete` work on the lake folder, not through --server: run them where the lake's tarn.yml is (a running `tarn serve` picks the change up within seconds), or declare the endpoint under `endpoints:` in tarn.yml"
        ),
    };
    let mut statuses = client.endpoints().await?;
    if let Some(n) = name {
        statuses.retain(|s| &s.name == n);
        if statuses.is_empty() {
            bail!("the server hosts no endpoint called `{n}`; `tarn --server URL endpoints list` shows them");
        }
    }
    if out.json() {
        return match name {
            Some(_) => print::json(&statuses[0]),
            None => print::json(&statuses),
        };
    }
    if statuses.is_empty() {
        println!("the server hosts no endpoints");
        return Ok(());
    }
    let mut t = print::grid(&["endpoint", "model", "serves now", "canary", "state"]);
    for s in &statuses {
        t.add_row(vec![
            s.name.clone(),
            s.model.clone(),
            s.version
                .as_ref()
                .map(|v| format!("v{v} ({})", s.runtime.clone().unwrap_or_default()))
                .unwrap_or_else(|| "nothing".into()),
            s.canary
                .as_ref()
                .map(|c| format!("{c} v{}", s.canary_version.clone().unwrap_or_default()))
                .unwrap_or_default(),
            s.state.clone(),
        ]);
    }
    println!("{t}");
    Ok(())
}

pub async fn run(lake: &Lake, cmd: &EndpointsCommand) -> Result<()> {
    // Endpoints declared in tarn.yml are listed (and refused to deploy over) whether or not a
    // server has started since they were written.
    tarn_serving::sync_declared(lake, "tarn.yml").await?;
    match cmd {
        EndpointsCommand::Deploy {
            name,
            model,
            canary,
            canary_percent,
            command,
            log_domain,
            max_batch,
            max_queue,
            timeout,
            max_body,
            out,
        } => {
            if lake.config.endpoints.contains_key(name) {
                bail!("endpoint `{name}` is declared in tarn.yml; change it there (tarn serve applies it when it starts)");
            }
            let mut spec = EndpointSpec::new(model);
            spec.canary = canary.as_ref().map(|c| Canary {
                model: c.clone(),
                percent: canary_percent.unwrap_or(0.0),
            });
            spec.command = (!command.is_empty()).then(|| command.clone());
            spec.log_domain = log_domain.clone();
            spec.max_batch = *max_batch;
            spec.max_queue = *max_queue;
            spec.timeout = timeout.clone();
            spec.max_body = max_body.clone();
            let serves = tarn_serving::deployable(lake, name, &spec).await?;
            let record = lake
                .endpoints()
                .put_endpoint(name, &serde_json::to_value(&spec)?, "cli", &crate::me())
                .await?;
            if out.json() {
                return print::json(&view(lake, record).await);
            }
            let what = serves
                .iter()
                .map(|(m, v)| format!("{m} version {v}"))
                .collect::<Vec<_>>()
                .join(" and ");
            println!("deployed endpoint `{name}`: {model} serves {what}");
            println!("  a running `tarn serve` loads it within seconds at POST /endpoints/{name}/invocations");
            println!("  every answer is logged to {}", spec.inference_table(name));
        }
        EndpointsCommand::List { out } => {
            let mut views = Vec::new();
            for r in lake.endpoints().list().await? {
                views.push(view(lake, r).await);
            }
            if out.json() {
                return print::json(&views);
            }
            if views.is_empty() {
                println!("no endpoints yet; `tarn endpoints deploy NAME --model models:/MODEL@champion` makes one");
                return Ok(());
            }
            let mut t = print::grid(&["endpoint", "model", "serves now", "canary", "from"]);
            for v in &views {
                t.add_row(vec![
                    v.name.clone(),
                    v.model.clone(),
                    v.serves.clone(),
                    v.canary.clone().unwrap_or_default(),
                    v.source.clone(),
                ]);
            }
            println!("{t}");
        }
        EndpointsCommand::Show { name, out } => {
            let Some(r) = lake.endpoints().endpoint(name).await? else {
                bail!("no endpoint is called `{name}`; `tarn endpoints list` shows them");
            };
            let v = view(lake, r).await;
            if out.json() {
                return print::json(&v);
            }
            println!("endpoint         {}", v.name);
            println!("model            {}", v.model);
            println!("serves now       {}", v.serves);
            if let Some(c) = &v.canary {
                println!("canary           {c}");
            }
            println!("from             {} (updated {})", v.source, v.updated_at);
            println!("inference table  {}", v.inference_table);
            println!("invocations      POST /endpoints/{}/invocations", v.name);
            println!("spec             {}", v.spec);
        }
        EndpointsCommand::Delete { name } => {
            if lake.config.endpoints.contains_key(name) {
                bail!("endpoint `{name}` is declared in tarn.yml; remove it there");
            }
            if !lake.endpoints().delete_endpoint(name).await? {
                bail!("no endpoint is called `{name}`; `tarn endpoints list` shows them");
            }
            println!("deleted endpoint `{name}` (its inference table stays)");
        }
    }
    Ok(())
}
