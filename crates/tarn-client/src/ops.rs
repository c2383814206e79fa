//! [`Operations`]: what a CLI command does to a lake, defined once and done either on a lake
//! folder opened here ([`tarn_lake::Lake`]) or through a running `tarn serve`
//! ([`crate::Client`]). Both answer with the same types, so a command prints the same way
//! wherever the lake is. Commands that only make sense where the lake's folder is (training,
//! serving, tokens, pipeline folders) are not operations: the CLI refuses `--server` for them
//! by name.

use crate::{Client, ClientError};
use async_trait::async_trait;
use std::path::Path;
use std::time::Duration;
use tarn_lake::registry::{ModelVersion, RegisteredModel};
use tarn_lake::{
    BatchStream, CrawlReport, DoctorReport, Event, ExecutionDetail, ExecutionRecord, HistoryEntry,
    Lake, LandOptions, Landed, LoadArgs, LoadReport, ObjectInfo, QueryOptions, SqlInto,
    TableDetail, TableFiles, TableSummary,
};
use tarn_monitoring::{Figure, MonitorSummary, RunOptions, RunReport, RunSummary};

type Result<T, E = ClientError> = std::result::Result<T, E>;

/// Called with the bytes sent so far, for a progress bar.
pub type Progress<'a> = &'a (dyn Fn(u64) + Sync);

/// The operations of the lake core, local or remote.
#[async_trait]
pub trait Operations: Send + Sync {
    /// Lands a file, or every file of a folder, at `target` (DOMAIN/LAYER[/KEY]).
    async fn land(
        &self,
        path: &Path,
        target: &str,
        force: bool,
        progress: Progress<'_>,
    ) -> Result<Vec<Landed>>;
    /// The objects of a zone (DOMAIN/LAYER[/PREFIX]).
    async fn ls(&self, target: &str) -> Result<Vec<ObjectInfo>>;
    /// Records a custom event; answers its id.
    async fn put_event(
        &self,
        source: &str,
        detail_type: &str,
        detail: serde_json::Value,
    ) -> Result<String>;
    /// `limit` events, the oldest or the newest (oldest first either way).
    async fn events(&self, kind: Option<&str>, limit: i64, oldest: bool) -> Result<Vec<Event>>;
    async fn crawl(&self, scope: Option<&str>) -> Result<CrawlReport>;
    async fn tables(&self, filter: Option<&str>, search: Option<&str>)
        -> Result<Vec<TableSummary>>;
    async fn table(&self, table: &str) -> Result<TableDetail>;
    async fn history(&self, table: &str) -> Result<Vec<HistoryEntry>>;
    /// The files behind a table (a Delta table's at its latest version).
    async fn table_files(&self, table: &str) -> Result<TableFiles>;
    async fn load(&self, args: &LoadArgs) -> Result<LoadReport>;
    async fn doctor(&self, check: bool, stale_after: Duration) -> Result<DoctorReport>;
    /// A query's schema and its rows as they come.
    async fn sql_stream(
        &self,
        query: &str,
        timeout: Option<Duration>,
    ) -> Result<(arrow::datatypes::SchemaRef, BatchStream)>;
    /// Materialises a query as the Delta table `table`.
    async fn sql_into(&self, query: &str, table: &str) -> Result<SqlInto>;
    /// The newest `limit` executions.
    async fn executions(
        &self,
        pipeline: Option<&str>,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ExecutionRecord>>;
    async fn execution(&self, id: &str) -> Result<ExecutionDetail>;
    async fn execution_logs(&self, id: &str) -> Result<String>;
    async fn retry_execution(&self, id: &str) -> Result<ExecutionRecord>;
    async fn cancel_execution(&self, id: &str) -> Result<ExecutionRecord>;
    async fn models(&self) -> Result<Vec<RegisteredModel>>;
    /// A registered model and every version of it.
    async fn model(&self, name: &str) -> Result<(RegisteredModel, Vec<ModelVersion>)>;
    /// Approves (or rejects) a version, saying why; `by` is who, when no token names them.
    async fn decide(
        &self,
        name: &str,
        version: &str,
        approve: bool,
        reason: &str,
        by: &str,
    ) -> Result<ModelVersion>;
    /// Points `alias` at `version`, or removes it (`None`).
    async fn set_alias(
        &self,
        name: &str,
        alias: &str,
        version: Option<&str>,
        by: &str,
    ) -> Result<()>;
    /// The lake's monitors (monitors/*.yml); every problem of the files at once when they
    /// have any.
    async fn monitors(&self) -> Result<Vec<MonitorSummary>>;
    async fn monitor(&self, name: &str) -> Result<MonitorSummary>;
    /// Runs a monitor now (over `window`, when given, instead of its file's): figures appended
    /// to its results table, new breaches alerted.
    async fn run_monitor(&self, name: &str, window: Option<&str>) -> Result<RunReport>;
    /// A monitor's newest `limit` runs, newest first.
    async fn monitor_runs(&self, name: &str, limit: usize) -> Result<Vec<RunSummary>>;
    /// The figures of one run of a monitor (by default its latest); with `alerting_only`,
    /// only the windows where something alerted.
    async fn monitor_figures(
        &self,
        name: &str,
        run: Option<&str>,
        alerting_only: bool,
    ) -> Result<Vec<Figure>>;
}

#[async_trait]
impl Operations for Lake {
    async fn land(
        &self,
        path: &Path,
        target: &str,
        force: bool,
        progress: Progress<'_>,
    ) -> Result<Vec<Landed>> {
        Ok(Lake::land(self, path, target, &LandOptions { force }, progress).await?)
    }
    async fn ls(&self, target: &str) -> Result<Vec<ObjectInfo>> {
        Ok(Lake::ls(self, target).await?)
    }
    async fn put_event(
        &self,
        source: &str,
        detail_type: &str,
        detail: serde_json::Value,
    ) -> Result<String> {
        Ok(Lake::put_event(self, source, detail_type, detail).await?)
    }
    async fn events(&self, kind: Option<&str>, limit: i64, oldest: bool) -> Result<Vec<Event>> {
        Ok(if oldest {
            Lake::events_after(self, kind, None, limit).await?
        } else {
            self.latest_events(kind, limit).await?
        })
    }
    async fn crawl(&self, scope: Option<&str>) -> Result<CrawlReport> {
        Ok(Lake::crawl(self, scope).await?)
    }
    async fn tables(
        &self,
        filter: Option<&str>,
        search: Option<&str>,
    ) -> Result<Vec<TableSummary>> {
        Ok(Lake::tables(self, filter, search).await?)
    }
    async fn table(&self, table: &str) -> Result<TableDetail> {
        Ok(Lake::table(self, table).await?)
    }
    async fn history(&self, table: &str) -> Result<Vec<HistoryEntry>> {
        Ok(Lake::history(self, table).await?)
    }
    async fn table_files(&self, table: &str) -> Result<TableFiles> {
        Ok(Lake::table_files(self, table).await?)
    }
    async fn load(&self, args: &LoadArgs) -> Result<LoadReport> {
        Ok(Lake::load(self, args).await?)
    }
    async fn doctor(&self, check: bool, stale_after: Duration) -> Result<DoctorReport> {
        Ok(Lake::doctor(self, check, stale_after).await?)
    }
    async fn sql_stream(
        &self,
        query: &str,
        timeout: Option<Duration>,
    ) -> Result<(arrow::datatypes::SchemaRef, BatchStream)> {
        let opts = QueryOptions {
            timeout,
            row_limit: None,
            may_read: None,
        };
        Ok(self.sql_stream_with(query, &opts).await?)
    }
    async fn sql_into(&self, query: &str, table: &str) -> Result<SqlInto> {
        Ok(Lake::sql_into(self, query, table).await?)
    }
    async fn executions(
        &self,
        pipeline: Option<&str>,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ExecutionRecord>> {
        Ok(self
            .executions_page(pipeline, status, None, limit.max(0) as usize)
            .await?
            .items)
    }
    async fn execution(&self, id: &str) -> Result<ExecutionDetail> {
        Ok(Lake::execution(self, id).await?)
    }
    async fn execution_logs(&self, id: &str) -> Result<String> {
        Ok(Lake::execution_logs(self, id).await?)
    }
    async fn retry_execution(&self, id: &str) -> Result<ExecutionRecord> {
        Ok(Lake::retry_execution(self, id).await?)
    }
    async fn cancel_execution(&self, id: &str) -> Result<ExecutionRecord> {
        Ok(Lake::cancel_execution(self, id).await?)
    }
    async fn models(&self) -> Result<Vec<RegisteredModel>> {
        Ok(self
            .registry()
            .registered_models()
            .await
            .map_err(tarn_lake::LakeError::from)?)
    }
    async fn model(&self, name: &str) -> Result<(RegisteredModel, Vec<ModelVersion>)> {
        let meta = |e| ClientError::Lake(tarn_lake::LakeError::Metadata(e));
        let Some(m) = self.registry().registered_model(name).await.map_err(meta)? else {
            return Err(ClientError::NoSuchModel(name.to_string()));
        };
        let v = self
            .registry()
            .model_versions(Some(name))
            .await
            .map_err(meta)?;
        Ok((m, v))
    }
    async fn decide(
        &self,
        name: &str,
        version: &str,
        approve: bool,
        reason: &str,
        by: &str,
    ) -> Result<ModelVersion> {
        Ok(self
            .registry()
            .decide(name, version, approve, by, reason)
            .await
            .map_err(tarn_lake::LakeError::from)?)
    }
    async fn set_alias(
        &self,
        name: &str,
        alias: &str,
        version: Option<&str>,
        by: &str,
    ) -> Result<()> {
        match version {
            Some(v) => self.registry().set_alias(name, alias, v, by).await,
            None => self.registry().delete_alias(name, alias, by).await,
        }
        .map_err(tarn_lake::LakeError::from)?;
        Ok(())
    }
    async fn monitors(&self) -> Result<Vec<MonitorSummary>> {
        Ok(tarn_monitoring::summaries(&self.config)?)
    }
    async fn monitor(&self, name: &str) -> Result<MonitorSummary> {
        Ok(tarn_monitoring::summary(&tarn_monitoring::find(
            &self.config,
            name,
        )?))
    }
    async fn run_monitor(&self, name: &str, window: Option<&str>) -> Result<RunReport> {
        let spec = tarn_monitoring::find(&self.config, name)?;
        let opts = RunOptions {
            window: window.map(tarn_monitoring::window).transpose()?,
            now_micros: None,
        };
        Ok(tarn_monitoring::run(self, &spec, &opts).await?)
    }
    async fn monitor_runs(&self, name: &str, limit: usize) -> Result<Vec<RunSummary>> {
        let spec = tarn_monitoring::find(&self.config, name)?;
        Ok(tarn_monitoring::runs(self, &spec, limit).await?)
    }
    async fn monitor_figures(
        &self,
        name: &str,
        run: Option<&str>,
        alerting_only: bool,
    ) -> Result<Vec<Figure>> {
        let spec = tarn_monitoring::find(&self.config, name)?;
        Ok(tarn_monitoring::figures(self, &spec, run, alerting_only).await?)
    }
}

#[async_trait]
impl Operations for Client {
    async fn land(
        &self,
        path: &Path,
        target: &str,
        force: bool,
        progress: Progress<'_>,
    ) -> Result<Vec<Landed>> {
        Client::land(self, path, target, force, progress).await
    }
    async fn ls(&self, target: &str) -> Result<Vec<ObjectInfo>> {
        Client::ls(self, target).await
    }
    async fn put_event(
        &self,
        source: &str,
        detail_type: &str,
        detail: serde_json::Value,
    ) -> Result<String> {
        Client::put_event(self, source, detail_type, detail).await
    }
    async fn events(&self, kind: Option<&str>, limit: i64, oldest: bool) -> Result<Vec<Event>> {
        if oldest {
            Client::events(self, kind, limit).await
        } else {
            self.latest_events(kind, limit).await
        }
    }
    async fn crawl(&self, scope: Option<&str>) -> Result<CrawlReport> {
        Client::crawl(self, scope).await
    }
    async fn tables(
        &self,
        filter: Option<&str>,
        search: Option<&str>,
    ) -> Result<Vec<TableSummary>> {
        Client::tables(self, filter, search).await
    }
    async fn table(&self, table: &str) -> Result<TableDetail> {
        Client::table(self, table).await
    }
    async fn history(&self, table: &str) -> Result<Vec<HistoryEntry>> {
        Client::history(self, table).await
    }
    async fn table_files(&self, table: &str) -> Result<TableFiles> {
        Client::table_files(self, table).await
    }
    async fn load(&self, args: &LoadArgs) -> Result<LoadReport> {
        Client::load(self, args).await
    }
    async fn doctor(&self, check: bool, stale_after: Duration) -> Result<DoctorReport> {
        Client::doctor(self, check, stale_after.as_secs()).await
    }
    async fn sql_stream(
        &self,
        query: &str,
        timeout: Option<Duration>,
    ) -> Result<(arrow::datatypes::SchemaRef, BatchStream)> {
        Client::sql_stream(self, query, timeout).await
    }
    async fn sql_into(&self, query: &str, table: &str) -> Result<SqlInto> {
        Client::sql_into(self, query, table).await
    }
    async fn executions(
        &self,
        pipeline: Option<&str>,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ExecutionRecord>> {
        Client::executions(self, pipeline, status, limit).await
    }
    async fn execution(&self, id: &str) -> Result<ExecutionDetail> {
        Client::execution(self, id).await
    }
    async fn execution_logs(&self, id: &str) -> Result<String> {
        Client::execution_logs(self, id).await
    }
    async fn retry_execution(&self, id: &str) -> Result<ExecutionRecord> {
        self.execution_action(id, "retry").await
    }
    async fn cancel_execution(&self, id: &str) -> Result<ExecutionRecord> {
        self.execution_action(id, "cancel").await
    }
    async fn models(&self) -> Result<Vec<RegisteredModel>> {
        Client::models(self).await
    }
    async fn model(&self, name: &str) -> Result<(RegisteredModel, Vec<ModelVersion>)> {
        Client::model(self, name).await
    }
    async fn decide(
        &self,
        name: &str,
        version: &str,
        approve: bool,
        reason: &str,
        by: &str,
    ) -> Result<ModelVersion> {
        let action = if approve { "approve" } else { "reject" };
        Client::decide(self, name, version, action, reason, by).await
    }
    async fn set_alias(
        &self,
        name: &str,
        alias: &str,
        version: Option<&str>,
        _by: &str,
    ) -> Result<()> {
        self.alias(name, alias, version).await
    }
    async fn monitors(&self) -> Result<Vec<MonitorSummary>> {
        Client::monitors(self).await
    }
    async fn monitor(&self, name: &str) -> Result<MonitorSummary> {
        Client::monitor(self, name).await
    }
    async fn run_monitor(&self, name: &str, window: Option<&str>) -> Result<RunReport> {
        Client::run_monitor(self, name, window).await
    }
    async fn monitor_runs(&self, name: &str, limit: usize) -> Result<Vec<RunSummary>> {
        Client::monitor_runs(self, name, limit).await
    }
    async fn monitor_figures(
        &self,
        name: &str,
        run: Option<&str>,
        alerting_only: bool,
    ) -> Result<Vec<Figure>> {
        Client::monitor_figures(self, name, run, alerting_only).await
    }
}
