//! The engine: turns events into executions (dispatch) and runs executions step by step
//! (work), recording every attempt, retrying with backoff, sending failures to the
//! pipeline's `catch/` module and the lake's error topic. Workers lease executions in the
//! metadata store, so a crashed process's executions resume from the step that was running.

use crate::step::{self, StepEnv};
use crate::trigger;
use crate::PipelineError;
use std::sync::Arc;
use std::time::Duration;
use tarn_config::PipelineSpec;
use tarn_lake::{status, Event, ExecutionRecord, Lake, NewExecution};
use tarn_process::{LineSink, Python};

/// How often the origin zones are listed for objects that arrived without tarn.
pub const WATCH_EVERY: Duration = Duration::from_secs(1);
/// How often every zone, not only the trigger prefixes, is looked over for objects without
/// their event (a land killed between its object and its event): `tarn serve` also does it
/// once when it starts.
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// How long a step token lives if nobody revokes it (its process died).
pub const TOKEN_TTL: Duration = Duration::from_secs(6 * 3600);

/// How long a lease lasts without renewal; renewed every third of it while a step runs.
pub const LEASE: Duration = Duration::from_secs(15);

/// Runs the lake's pipelines.
#[derive(Clone)]
pub struct Engine {
    pub lake: Lake,
    pub pipelines: Arc<Vec<PipelineSpec>>,
    python: Python,
    notifier: tarn_notify::Notifier,
    /// This worker's lease owner name: `host:pid:random`.
    owner: String,
    /// Whether this node may take the coordinator role (watch zones, fire schedules); a
    /// `tarn worker` only runs executions.
    coordinate: bool,
    /// `TARN_SERVER` for steps, and whether the server needs tokens (then each execution's
    /// steps get one of their own), when run by `tarn serve`.
    server: Option<(String, bool)>,
    sink: Option<LineSink>,
    /// Runs `train` and `transform` steps.
    ml: Option<Arc<dyn crate::MlSteps>>,
    /// Woken when something lands in this process, so dispatch does not wait for its tick.
    pub wake: Arc<tokio::sync::Notify>,
    /// Notifications still being delivered.
    deliveries: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

/// What happened to one execution in one call of [`Engine::work_on`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// It ended (succeeded, failed or cancelled).
    Ended(String),
    /// A step failed and waits for its retry.
    Waiting,
    /// It was not ours any more (lease lost or cancelled).
    Lost,
}

impl Engine {
    /// An engine for `lake` with the pipelines of its `pipelines/` folder (checked).
    pub fn new(lake: Lake) -> Result<Engine, PipelineError> {
        let pipelines = tarn_config::load_pipelines(&lake.config)?;
        let notifier = tarn_notify::Notifier::for_lake(&lake.config);
        Ok(Engine {
            python: Python::new(&lake.config.root),
            pipelines: Arc::new(pipelines),
            notifier,
            owner: format!(
                "{}{}",
                tarn_lake::this_node(),
                &uuid::Uuid::new_v4().to_string()[..8]
            ),
            server: None,
            coordinate: true,
            sink: None,
            ml: None,
            wake: Default::default(),
            deliveries: Default::default(),
            lake,
        })
    }

    /// `train` and `transform` steps run with `ml`.
    pub fn with_ml(mut self, ml: Arc<dyn crate::MlSteps>) -> Engine {
        self.ml = Some(ml);
        self
    }

    /// Steps reach tarn at `url`; with `auth`, each execution's steps (and each trigger
    /// module run) get a token of their own that may write only the pipeline's domain,
    /// revoked when they are done and expiring by itself after a crash.
    /// An engine that only runs executions (never watches zones or fires schedules).
    pub fn executions_only(mut self) -> Engine {
        self.coordinate = false;
        self
    }

    pub fn with_server(mut self, url: String, auth: bool) -> Engine {
        self.server = Some((url, auth));
        self
    }

    /// A token for `p`'s code: `(name, token)`, or `None` when the server needs none.
    async fn mint(
        &self,
        p: &PipelineSpec,
        label: &str,
    ) -> Result<Option<(String, String)>, PipelineError> {
        if !matches!(self.server, Some((_, true))) {
            return Ok(None);
        }
        let name = format!(
            "pipeline-{}-{label}-{}",
            p.name,
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let (_, token) = self
            .lake
            .tokens()
            .create_scoped_token(
                &name,
                false,
                &[tarn_config::step_policy(&p.domain)],
                Some(&p.domain),
                Some(TOKEN_TTL),
            )
            .await?;
        Ok(Some((name, token)))
    }

    async fn revoke(&self, minted: Option<(String, String)>) {
        if let Some((name, _)) = minted {
            if let Err(e) = self.lake.tokens().revoke_token(&name).await {
                tracing::warn!("revoking the step token {name}: {e}");
            }
        }
    }

    /// Step output lines go to `sink` as they come.
    pub fn with_sink(mut self, sink: LineSink) -> Engine {
        // Live lines are shown with the lake's secrets hidden, as stored logs are.
        let secrets = self.lake.config.secrets();
        self.sink = Some(Arc::new(move |line: &str| {
            sink(&tarn_config::redact(line, &secrets))
        }));
        self
    }

    /// The pipeline named `name`.
    pub fn pipeline(&self, name: &str) -> Result<&PipelineSpec, PipelineError> {
        self.pipelines
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| PipelineError::UnknownPipeline {
                name: name.to_string(),
                known: self
                    .pipelines
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Records a `schedule.fired` event for each time a pipeline's cron schedule came due in
    /// `(since, now]`. The event is keyed by (pipeline, schedule, time), so several workers
    /// firing the same schedule record it once.
    pub async fn fire_schedules(
        &self,
        since: chrono::DateTime<chrono::Utc>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<usize, PipelineError> {
        let mut fired = 0;
        for p in self.pipelines.iter() {
            for t in &p.triggers {
                let tarn_config::Trigger::Schedule(expr) = t else {
                    continue;
                };
                let Ok(cron) = croner::Cron::new(expr).with_seconds_optional().parse() else {
                    continue;
                };
                let mut at = since;
                while let Ok(next) = cron.find_next_occurrence(&at, false) {
                    if next > now {
                        break;
                    }
                    let when = next.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                    let e = tarn_lake::NewEvent {
                        kind: trigger::SCHEDULE_EVENT.into(),
                        zone: p.name.clone(),
                        key: expr.clone(),
                        etag: when.clone(),
                        size: 0,
                        detail: serde_json::json!({"schedule": expr, "pipeline": p.name, "scheduled_time": when}),
                    };
                    if self.lake.events().record_event(&e).await? {
                        fired += 1;
                    }
                    at = next;
                }
            }
        }
        Ok(fired)
    }

    /// Looks for objects that appeared in the pipelines' origin zones (under their `s3`
    /// trigger prefixes) without tarn landing them, and records their events.
    pub async fn watch(&self) -> Result<usize, PipelineError> {
        let mut places = std::collections::BTreeSet::new();
        for p in self.pipelines.iter() {
            for t in &p.triggers {
                if let tarn_config::Trigger::S3 { prefix, .. } = t {
                    places.insert((p.domain.clone(), p.origin.clone(), prefix.clone()));
                }
            }
        }
        let mut noticed = 0;
        for (domain, layer, prefix) in places {
            noticed += self.lake.notice(&domain, &layer, &prefix).await?;
        }
        Ok(noticed)
    }

    /// Matches every undispatched event against the triggers; answers the executions created.
    pub async fn dispatch(&self) -> Result<Vec<String>, PipelineError> {
        let mut created = Vec::new();
        loop {
            let events = self.lake.executions().undispatched_events(200).await?;
            if events.is_empty() {
                return Ok(created);
            }
            for e in events {
                let wanted = self.executions_for(&e, None).await?;
                let (new, marked) = self
                    .lake
                    .executions()
                    .dispatch_marking(&e.id, &wanted)
                    .await?;
                created.extend(new);
                if marked {
                    self.publish_event(&e);
                }
            }
        }
    }

    /// The executions `event` asks for (only `only`'s when given): the trigger module's
    /// answer or the event's summary, checked against each pipeline's contract.
    pub async fn executions_for(
        &self,
        event: &Event,
        only: Option<&str>,
    ) -> Result<Vec<NewExecution>, PipelineError> {
        let mut out = Vec::new();
        for p in self.pipelines.iter() {
            let chosen = match only {
                Some(name) => p.name == name,
                None => trigger::matches(p, event),
            };
            let Some(first) = p.steps.first() else {
                continue;
            };
            if !chosen {
                continue;
            }
            let input = match self.trigger_input(p, event).await {
                Ok(Some(input)) => input,
                Ok(None) => continue,
                Err(why) => {
                    // The execution is recorded as failed so the problem is seen, and reported.
                    serde_json::json!({"trigger_error": why, "event": trigger::summary(event)})
                }
            };
            out.push(NewExecution {
                pipeline: p.name.clone(),
                input,
                first_step: first.name.clone(),
            });
        }
        Ok(out)
    }

    /// The execution input for `event`; `None` when the trigger module declines it.
    async fn trigger_input(
        &self,
        p: &PipelineSpec,
        event: &Event,
    ) -> Result<Option<serde_json::Value>, String> {
        let input = match &p.trigger {
            None if event.kind == trigger::MANUAL_EVENT => event.detail.clone(),
            None => trigger::summary(event),
            Some(module) => {
                let shaped = if event.kind == trigger::MANUAL_EVENT {
                    event.detail.clone()
                } else {
                    trigger::aws_shape(event, &self.bucket_of(p), &self.region())
                };
                let step = trigger_step(module);
                let token = self.mint(p, "trigger").await.map_err(|e| e.to_string())?;
                let env = self.step_env(p, "trigger", "trigger", &token, self.sink.clone());
                let vars = env.vars(&step);
                let ran = step::lambda(&env, &step, module, &shaped, vars).await;
                self.revoke(token).await;
                match ran {
                    Ok((v, _)) if v.is_null() => return Ok(None),
                    Ok((v, _)) => v,
                    Err(f) => {
                        let secrets = self.lake.config.secrets();
                        return Err(tarn_config::redact(
                            &format!(
                                "the trigger module of `{}` failed: {}\n{}",
                                p.name, f.error, f.logs
                            ),
                            &secrets,
                        ));
                    }
                }
            }
        };
        trigger::check_contract(p, &input)?;
        Ok(Some(input))
    }

    fn bucket_of(&self, p: &PipelineSpec) -> String {
        format!("{}-{}-{}", self.lake.config.lake, p.domain, p.origin)
    }

    fn region(&self) -> String {
        self.lake
            .config
            .s3
            .region
            .clone()
            .or_else(|| std::env::var("AWS_REGION").ok())
            .unwrap_or_else(|| "local".into())
    }

    fn step_env<'a>(
        &'a self,
        p: &'a PipelineSpec,
        exec: &'a str,
        attempt: &'a str,
        token: &Option<(String, String)>,
        sink: Option<LineSink>,
    ) -> StepEnv<'a> {
        StepEnv {
            lake: &self.lake,
            python: &self.python,
            pipeline: p,
            execution_id: exec,
            attempt_id: attempt,
            server: self.server.as_ref().map(|(url, _)| {
                (
                    url.clone(),
                    token.as_ref().map(|t| t.1.clone()).unwrap_or_default(),
                )
            }),
            sink,
            ml: self.ml.as_deref(),
        }
    }

    /// This node's `HOST:PID`, recorded with each attempt it runs: the lease owner without
    /// the worker's random tail.
    fn node(&self) -> &str {
        self.owner
            .rsplit_once(':')
            .map(|(node, _)| node)
            .unwrap_or(&self.owner)
    }

    /// The sink of one attempt's lines: the engine's own (the CLI prints them), and the
    /// attempt's logs in the store, written at most once a second while it runs (secrets
    /// hidden; the first MiB), so its page shows them before it ends. Answers the sink and
    /// the lines it has kept, which a cancelled attempt keeps as its logs.
    fn live_sink(&self, attempt: &str) -> (LineSink, LiveLogs) {
        /// How often a running attempt's logs are written.
        const EVERY: std::time::Duration = std::time::Duration::from_secs(1);
        let live = Arc::new(std::sync::Mutex::new(Live {
            text: String::new(),
            written: None,
            pending: false,
        }));
        let secrets = self.lake.config.secrets();
        let outer = self.sink.clone();
        let lake = self.lake.clone();
        let attempt = attempt.to_string();
        let kept = LiveLogs(live.clone());
        let sink: LineSink = Arc::new(move |line: &str| {
            if let Some(s) = &outer {
                s(line);
            }
            let Ok(handle) = tokio::runtime::Handle::try_current() else {
                return;
            };
            let mut l = live.lock().unwrap_or_else(|e| e.into_inner());
            // Past a MiB the page waits for the end (the stored logs keep their own cap).
            if l.text.len() > 1 << 20 {
                return;
            }
            l.text.push_str(&tarn_config::redact(line, &secrets));
            l.text.push('\n');
            if l.pending {
                return;
            }
            l.pending = true;
            let wait = l
                .written
                .map(|t| EVERY.saturating_sub(t.elapsed()))
                .unwrap_or_default();
            let (live, lake, attempt) = (live.clone(), lake.clone(), attempt.clone());
            handle.spawn(async move {
                tokio::time::sleep(wait).await;
                let text = {
                    let mut l = live.lock().unwrap_or_else(|e| e.into_inner());
                    l.pending = false;
                    l.written = Some(std::time::Instant::now());
                    l.text.clone()
                };
                if let Err(e) = lake.executions().running_logs(&attempt, &text).await {
                    tracing::debug!("writing the running logs of attempt {attempt}: {e}");
                }
            });
        });
        (sink, kept)
    }

    /// Leases one due execution (or the one with id `only`) and runs it until it ends or
    /// waits for a retry. `None` when nothing was due.
    pub async fn work_once(
        &self,
        only: Option<&str>,
    ) -> Result<Option<(String, Progress)>, PipelineError> {
        let claimed = match only {
            Some(id) => {
                self.lake
                    .executions()
                    .claim_execution_id(id, &self.owner, LEASE)
                    .await?
            }
            None => {
                self.lake
                    .executions()
                    .claim_execution(&self.owner, LEASE)
                    .await?
            }
        };
        let Some(exec) = claimed else { return Ok(None) };
        let id = exec.id.clone();
        let progress = self.work_on(exec).await?;
        Ok(Some((id, progress)))
    }

    /// Runs a leased execution from its current step.
    pub async fn work_on(&self, exec: ExecutionRecord) -> Result<Progress, PipelineError> {
        let p = match self.pipeline(&exec.pipeline) {
            Ok(p) => p.clone(),
            Err(e) => {
                self.lake
                    .executions()
                    .fail_execution(&exec.id, &self.owner, exec.failures, &e.to_string())
                    .await?;
                return Ok(Progress::Ended(status::FAILED.into()));
            }
        };
        let token = self.mint(&p, &exec.id).await?;
        let progress = self.run_steps(exec, &p, &token).await;
        self.revoke(token).await;
        progress
    }

    /// The steps of a leased execution, from its current one, with `token` for their code.
    async fn run_steps(
        &self,
        mut exec: ExecutionRecord,
        p: &PipelineSpec,
        token: &Option<(String, String)>,
    ) -> Result<Progress, PipelineError> {
        if let Some(why) = exec.input.get("trigger_error").and_then(|w| w.as_str()) {
            let why = why.to_string();
            self.lake
                .executions()
                .fail_execution(&exec.id, &self.owner, 0, &why)
                .await?;
            self.report_failure(p, &exec, "trigger", &why, token).await;
            return Ok(Progress::Ended(status::FAILED.into()));
        }
        loop {
            let Some(name) = exec.step.clone() else {
                return Ok(Progress::Ended(status::SUCCEEDED.into()));
            };
            let Some(step) = p.steps.iter().find(|s| s.name == name).cloned() else {
                let why = format!(
                    "step `{name}` is no longer in {}/config.yml",
                    p.dir.display()
                );
                self.lake
                    .executions()
                    .fail_execution(&exec.id, &self.owner, exec.failures, &why)
                    .await?;
                return Ok(Progress::Ended(status::FAILED.into()));
            };
            if let Some(limit) = step.max_concurrent_runs {
                if self
                    .lake
                    .executions()
                    .running_attempts(&p.name, &step.name)
                    .await?
                    >= limit as i64
                {
                    self.lake
                        .executions()
                        .postpone(&exec.id, &self.owner, Duration::from_millis(500))
                        .await?;
                    return Ok(Progress::Waiting);
                }
            }
            let input = exec
                .step_input
                .clone()
                .unwrap_or_else(|| exec.input.clone());
            let (attempt_id, _n) = self
                .lake
                .executions()
                .start_attempt(&exec, &step.name, &input, self.node())
                .await?;
            let (sink, live) = self.live_sink(&attempt_id);
            let outcome = {
                let env = self.step_env(p, &exec.id, &attempt_id, token, Some(sink));
                let run = step::run(&env, &step, &input);
                tokio::pin!(run);
                let mut beat = tokio::time::interval(LEASE / 3);
                beat.tick().await;
                loop {
                    tokio::select! {
                        r = &mut run => break Some(r),
                        _ = beat.tick() => {
                            if !self.lake.executions().renew_lease(&exec.id, &self.owner, LEASE).await? {
                                break None; // cancelled or taken: dropping the step kills it
                            }
                        }
                    }
                }
            };
            let Some(outcome) = outcome else {
                // The lines it printed until it was stopped stay its logs (secrets hidden).
                self.lake
                    .executions()
                    .finish_attempt(
                        &attempt_id,
                        status::CANCELLED,
                        None,
                        Some("the execution was cancelled or its lease lost"),
                        &live.text(),
                    )
                    .await?;
                return Ok(Progress::Lost);
            };
            // What the step printed or answered is stored with every secret hidden (the lake's
            // own, and the token this run was given).
            let mut secrets = self.lake.config.secrets();
            if let Some((_, t)) = token {
                secrets.push(t.clone());
            }
            let outcome = match outcome {
                Ok(mut done) => {
                    done.logs = tarn_config::redact(&done.logs, &secrets);
                    done.output = tarn_config::redact_json(&done.output, &secrets);
                    Ok(done)
                }
                Err(mut failed) => {
                    failed.logs = tarn_config::redact(&failed.logs, &secrets);
                    failed.error = tarn_config::redact(&failed.error, &secrets);
                    Err(failed)
                }
            };
            match outcome {
                Ok(done) => {
                    if !self
                        .lake
                        .executions()
                        .advance(
                            &exec.id,
                            &self.owner,
                            &attempt_id,
                            &done.logs,
                            done.next.as_deref(),
                            &done.output,
                        )
                        .await?
                    {
                        return Ok(Progress::Lost);
                    }
                    if done.next.is_none() {
                        return Ok(Progress::Ended(status::SUCCEEDED.into()));
                    }
                    exec.step = done.next;
                    exec.step_input = Some(done.output);
                    exec.failures = 0;
                }
                Err(failed) => {
                    self.lake
                        .executions()
                        .finish_attempt(
                            &attempt_id,
                            status::FAILED,
                            None,
                            Some(&failed.error),
                            &failed.logs,
                        )
                        .await?;
                    let failures = exec.failures + 1;
                    if (failures as u32) < step.retry.max_attempts {
                        let mut wait = step.retry.delay(failures as u32 + 1);
                        if step.retry.jitter {
                            let r = (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0;
                            wait = wait.mul_f64(r);
                        }
                        self.lake
                            .executions()
                            .retry_later(&exec.id, &self.owner, failures, wait)
                            .await?;
                        return Ok(Progress::Waiting);
                    }
                    let error = format!("step `{}` failed: {}", step.name, failed.error);
                    if !self
                        .lake
                        .executions()
                        .fail_execution(&exec.id, &self.owner, failures, &error)
                        .await?
                    {
                        return Ok(Progress::Lost);
                    }
                    self.report_failure(p, &exec, &step.name, &failed.error, token)
                        .await;
                    return Ok(Progress::Ended(status::FAILED.into()));
                }
            }
        }
    }

    /// A failed execution goes to the pipeline's `catch/` module, then to the error topic.
    async fn report_failure(
        &self,
        p: &PipelineSpec,
        exec: &ExecutionRecord,
        step_name: &str,
        error: &str,
        token: &Option<(String, String)>,
    ) {
        let logs = match &self.server {
            Some((url, _)) => format!("{url}/api/v1/executions/{}/logs", exec.id),
            None => format!("tarn executions logs {}", exec.id),
        };
        let detail = serde_json::json!({
            "lake": self.lake.config.lake,
            "pipeline": p.name,
            "execution_id": exec.id,
            "step": step_name,
            "error": error,
            "logs": logs,
            "input": exec.input,
        });
        if let Some(module) = &p.catch {
            let step = trigger_step(module);
            let env = self.step_env(p, &exec.id, "catch", token, self.sink.clone());
            let vars = env.vars(&step);
            if let Err(f) = step::lambda(&env, &step, module, &detail, vars).await {
                tracing::warn!(
                    pipeline = p.name,
                    execution = exec.id,
                    "the catch module failed: {}",
                    f.error
                );
            }
        }
        let topic = &self.lake.config.error_topic;
        if self.notifier.has_topic(topic) {
            let msg = tarn_notify::Message::new(
                format!(
                    "{}: pipeline {} failed at step {step_name}",
                    self.lake.config.lake, p.name
                ),
                detail,
            );
            self.publish(topic, msg);
        }
    }

    /// Publishes an event to the topics whose `events:` list its kind, e.g. a model version
    /// approved: the subject says what happened to what, by whom; the detail is the event's.
    fn publish_event(&self, e: &Event) {
        for topic in self.notifier.topics_for(&e.kind) {
            let d = &e.detail;
            let what = match (d["name"].as_str(), d["version"].as_str()) {
                (Some(n), Some(v)) => format!(" {n} version {v}"),
                _ if !e.key.is_empty() => format!(" {}", e.key),
                _ => String::new(),
            };
            let by = d["by"]
                .as_str()
                .map(|b| format!(" by {b}"))
                .unwrap_or_default();
            let why = d["reason"]
                .as_str()
                .filter(|r| !r.is_empty())
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            let mut detail = d.clone();
            detail["event_id"] = e.id.clone().into();
            detail["event"] = e.kind.clone().into();
            detail["lake"] = self.lake.config.lake.clone().into();
            let msg = tarn_notify::Message::new(
                format!("{}: {}{what}{by}{why}", self.lake.config.lake, e.kind),
                detail,
            );
            self.publish(&topic, msg);
        }
    }

    /// Delivers `msg` to `topic` in the background (retrying as the notifier does) and records
    /// each delivery; [`Engine::flush`] waits for what is still under way.
    fn publish(&self, topic: &str, msg: tarn_notify::Message) {
        let (notifier, lake, topic) = (self.notifier.clone(), self.lake.clone(), topic.to_string());
        let handle = tokio::spawn(async move {
            match notifier.deliver(&topic, &msg).await {
                Ok(report) => lake.record_deliveries(&topic, &msg.subject, &report).await,
                Err(e) => tracing::warn!("{e}"),
            }
        });
        let mut pending = self.deliveries.lock().expect("deliveries lock");
        pending.retain(|h| !h.is_finished());
        pending.push(handle);
    }

    /// Waits (at most `limit`) for notifications still being delivered: a process about to
    /// exit calls it so its messages are not cut off.
    pub async fn flush(&self, limit: Duration) {
        let pending: Vec<_> =
            std::mem::take(&mut *self.deliveries.lock().expect("deliveries lock"));
        let _ = tokio::time::timeout(limit, futures_join(pending)).await;
    }

    /// Executions held by workers of this host whose process is gone are let go now.
    pub async fn reclaim_dead_leases(&self) -> Result<u64, PipelineError> {
        let host = self.owner.split(':').next().unwrap_or_default().to_string();
        let mut freed = 0;
        for owner in self.lake.executions().lease_owners().await? {
            let mut parts = owner.split(':');
            if parts.next() != Some(host.as_str()) {
                continue;
            }
            let alive = parts
                .next()
                .and_then(|pid| pid.parse::<u32>().ok())
                .map(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
                .unwrap_or(true);
            if !alive {
                freed += self.lake.executions().release_leases(&owner).await?;
            }
        }
        Ok(freed)
    }

    /// Dispatches and works until `stop` resolves: what `tarn serve` runs, with `workers`
    /// executions at once.
    pub async fn run(self, workers: usize, stop: impl std::future::Future<Output = ()>) {
        if let Err(e) = self.reclaim_dead_leases().await {
            tracing::warn!("reclaiming leases: {e}");
        }
        let me = Arc::new(self);
        let work = Arc::new(tokio::sync::Notify::new());
        let mut tasks = Vec::new();
        {
            let (me, work) = (me.clone(), work.clone());
            // One node of a deployment watches, sweeps and fires schedules: whoever holds
            // the coordinator role, renewed every third of its lease by a task of its own
            // (never late behind slow work) and taken over by another node once it runs out.
            let holding = Arc::new(std::sync::atomic::AtomicBool::new(false));
            if me.coordinate {
                let (me, holding) = (me.clone(), holding.clone());
                tasks.push(tokio::spawn(async move {
                    loop {
                        let held = me
                            .lake
                            .roles()
                            .hold(tarn_lake::COORDINATOR, &me.owner, LEASE)
                            .await
                            .unwrap_or_else(|e| {
                                tracing::warn!("holding the coordinator role: {e}");
                                false
                            });
                        let was = holding.swap(held, std::sync::atomic::Ordering::SeqCst);
                        if held && !was {
                            tracing::info!(owner = %me.owner, "this node coordinates: it watches zones and fires schedules");
                        }
                        tokio::time::sleep(LEASE / 3).await;
                    }
                }));
            }
            tasks.push(tokio::spawn(async move {
                let mut since = chrono::Utc::now();
                let mut watched = std::time::Instant::now() - WATCH_EVERY;
                let mut swept = std::time::Instant::now();
                let mut held = false;
                loop {
                    let now_held = holding.load(std::sync::atomic::Ordering::SeqCst);
                    if now_held && !held {
                        // Schedules a dead coordinator missed are fired now (each once: an
                        // occurrence is one event whoever records it).
                        since = since.max(chrono::Utc::now() - chrono::Duration::minutes(10));
                    }
                    held = now_held;
                    if !held {
                        match me.dispatch().await {
                            Ok(c) if !c.is_empty() => work.notify_waiters(),
                            Ok(_) => {}
                            Err(e) => tracing::warn!("dispatching events: {e}"),
                        }
                        let _ =
                            tokio::time::timeout(Duration::from_millis(200), me.wake.notified())
                                .await;
                        continue;
                    }
                    if watched.elapsed() >= WATCH_EVERY {
                        watched = std::time::Instant::now();
                        if let Err(e) = me.watch().await {
                            tracing::warn!("watching zones: {e}");
                        }
                    }
                    if swept.elapsed() >= SWEEP_EVERY {
                        swept = std::time::Instant::now();
                        for z in me.lake.zones.all() {
                            if let Err(e) = me.lake.notice(&z.domain, &z.layer, "").await {
                                tracing::warn!("looking over {}: {e}", z.name());
                            }
                        }
                    }
                    let now = chrono::Utc::now();
                    match me.fire_schedules(since, now).await {
                        Ok(_) => since = now,
                        Err(e) => tracing::warn!("firing schedules: {e}"),
                    }
                    match me.dispatch().await {
                        Ok(c) if !c.is_empty() => work.notify_waiters(),
                        Ok(_) => {}
                        Err(e) => tracing::warn!("dispatching events: {e}"),
                    }
                    let _ =
                        tokio::time::timeout(Duration::from_millis(200), me.wake.notified()).await;
                }
            }));
        }
        for _ in 0..workers.max(1) {
            let (me, work) = (me.clone(), work.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let notified = work.notified();
                    match me.work_once(None).await {
                        Ok(Some(_)) => continue,
                        Ok(None) => {}
                        Err(e) => tracing::warn!("running an execution: {e}"),
                    }
                    let _ = tokio::time::timeout(Duration::from_millis(250), notified).await;
                }
            }));
        }
        stop.await;
        for t in &tasks {
            t.abort();
        }
        let _ = me.lake.executions().release_leases(&me.owner).await;
        let _ = me.lake.roles().release(&me.owner).await;
        me.flush(Duration::from_secs(5)).await;
    }
}

async fn futures_join(handles: Vec<tokio::task::JoinHandle<()>>) {
    for h in handles {
        let _ = h.await;
    }
}

/// A module run once as a lambda (trigger and catch modules).
fn trigger_step(module: &tarn_config::Module) -> tarn_config::Step {
    tarn_config::Step {
        name: module.name.clone(),
        kind: tarn_config::StepKind::Lambda {
            module: module.clone(),
            memory_size: None,
        },
        next: None,
        retry: Default::default(),
        timeout: Some(Duration::from_secs(60)),
        max_concurrent_runs: None,
        environment: Default::default(),
        line: 0,
    }
}

/// What a running attempt has printed so far, secrets hidden (the first MiB).
struct Live {
    text: String,
    written: Option<std::time::Instant>,
    pending: bool,
}

/// The lines a running attempt's sink has kept.
struct LiveLogs(Arc<std::sync::Mutex<Live>>);

impl LiveLogs {
    fn text(&self) -> String {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .text
            .clone()
    }
}
