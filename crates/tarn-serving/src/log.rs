//! The inference log: every answered row (request id, time, endpoint, model version, input
//! features, prediction, latency) appended to the Delta table
//! `DOMAIN.service.inference_<endpoint>`, in batches, off the request path. Each row keeps its
//! input and its prediction as JSON text (`features`, `prediction`) and as typed columns, one
//! per input field and per output ([`crate::columns`]); a version with other fields adds
//! columns to the table (a new catalog version), never drops a row.
//!
//! Requests hand records to a bounded channel and never wait. One task per endpoint commits
//! what arrived every second (or every `max_rows`). Each commit carries a Delta application
//! transaction (this writer's id, a sequence number), so a retry never duplicates rows. When
//! the store fails, the batch goes to a file under `.tarn/inference/<endpoint>/`, and so does
//! every later batch until the files are flushed, oldest first, once the store answers again
//! (order kept, so the sequence check stays exact). When the channel is full, the request's
//! records go straight to a file of their own. Nothing is dropped; memory stays bounded.

use crate::columns::{self, Hints};
use arrow::array::{ArrayRef, Float64Array, Int32Array, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tarn_lake::Lake;

/// One answered row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub request_id: String,
    pub row: i32,
    /// Microseconds since the epoch (UTC).
    pub timestamp: i64,
    pub endpoint: String,
    pub model: String,
    pub model_version: String,
    /// The row's input (kept as JSON text in the table and in buffered files).
    #[serde(with = "json_text")]
    pub features: Json,
    /// The row's prediction.
    #[serde(with = "json_text")]
    pub prediction: Json,
    pub latency_ms: f64,
    /// What the version's signature says of the fields (types, classes), for the typed columns.
    #[serde(skip)]
    pub hints: Option<Arc<Hints>>,
}

/// A JSON value kept as its text (empty for null), as the inference table's columns hold it.
mod json_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_json::Value as Json;

    pub fn text(v: &Json) -> String {
        match v {
            Json::Null => String::new(),
            v => v.to_string(),
        }
    }

    pub fn serialize<S: Serializer>(v: &Json, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&text(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Json, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() {
            return Ok(Json::Null);
        }
        Ok(serde_json::from_str(&s).unwrap_or(Json::String(s)))
    }
}

/// Counters of one endpoint's log, for `/metrics`.
#[derive(Debug, Default)]
pub struct LogStats {
    pub written: AtomicU64,
    pub buffered: AtomicU64,
    pub failures: AtomicU64,
}

/// The fixed columns of an inference table (the typed ones follow them).
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("request_id", DataType::Utf8, false),
        Field::new("row", DataType::Int32, false),
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("endpoint", DataType::Utf8, false),
        Field::new("model", DataType::Utf8, false),
        Field::new("model_version", DataType::Utf8, false),
        Field::new("features", DataType::Utf8, true),
        Field::new("prediction", DataType::Utf8, true),
        Field::new("latency_ms", DataType::Float64, false),
    ]))
}

fn batch_of(records: &[Record], max_columns: usize) -> Result<RecordBatch, String> {
    let s = |f: fn(&Record) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(records.iter().map(f)))
    };
    let j = |f: fn(&Record) -> &Json| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(
            records.iter().map(|r| json_text::text(f(r))),
        ))
    };
    let (typed_fields, typed) = columns::typed(records, max_columns);
    let mut fields: Vec<Field> = schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.extend(typed_fields);
    let mut arrays: Vec<ArrayRef> = vec![
        s(|r| &r.request_id),
        Arc::new(Int32Array::from_iter_values(records.iter().map(|r| r.row))),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(records.iter().map(|r| r.timestamp))
                .with_timezone("UTC"),
        ),
        s(|r| &r.endpoint),
        s(|r| &r.model),
        s(|r| &r.model_version),
        j(|r| &r.features),
        j(|r| &r.prediction),
        Arc::new(Float64Array::from_iter_values(
            records.iter().map(|r| r.latency_ms),
        )),
    ];
    arrays.extend(typed);
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| e.to_string())
}

/// How the log batches.
#[derive(Debug, Clone)]
pub struct LogOptions {
    pub flush_every: Duration,
    pub max_rows: usize,
    /// Records the channel holds before requests write their own files.
    pub channel: usize,
    /// Typed columns a batch may add (input fields and outputs); fields past it stay in the
    /// JSON text only, so a request with thousands of keys cannot widen the table without end.
    pub max_columns: usize,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            flush_every: Duration::from_secs(1),
            max_rows: 5000,
            channel: 100_000,
            max_columns: 256,
        }
    }
}

/// The sending side, held by the endpoint.
#[derive(Clone)]
pub struct InferenceLog {
    tx: tokio::sync::mpsc::Sender<Vec<Record>>,
    dir: PathBuf,
    pub stats: Arc<LogStats>,
    stop: Arc<tokio::sync::Notify>,
    writer: Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl InferenceLog {
    /// Starts the writer of endpoint `endpoint` into table `target`.
    pub fn start(lake: Lake, endpoint: &str, target: String, options: LogOptions) -> InferenceLog {
        let dir = lake
            .config
            .root
            .join(".tarn")
            .join("inference")
            .join(endpoint);
        let (tx, rx) = tokio::sync::mpsc::channel(options.channel.max(1));
        let stats = Arc::new(LogStats::default());
        let writer = Writer {
            lake,
            target,
            app: format!(
                "tarn-inference-{endpoint}-{}",
                uuid::Uuid::new_v4().simple()
            ),
            seq: 0,
            dir: dir.clone(),
            stats: stats.clone(),
            options,
        };
        let stop = Arc::new(tokio::sync::Notify::new());
        let handle = tokio::spawn(writer.run(rx, stop.clone()));
        InferenceLog {
            tx,
            dir,
            stats,
            stop,
            writer: Arc::new(std::sync::Mutex::new(Some(handle))),
        }
    }

    /// Commits what is waiting and stops the writer (records pushed later go to files).
    pub async fn close(&self) {
        let handle = self.writer.lock().ok().and_then(|mut h| h.take());
        if let Some(h) = handle {
            self.stop.notify_one();
            let _ = h.await;
        }
    }

    /// Hands a request's records to the writer without waiting.
    pub fn push(&self, records: Vec<Record>) {
        match self.tx.try_send(records) {
            Ok(()) => {}
            Err(tokio::sync::mpsc::error::TrySendError::Full(records))
            | Err(tokio::sync::mpsc::error::TrySendError::Closed(records)) => {
                // The writer is behind: these records get a file (and an id) of their own.
                let app = format!("tarn-inference-overflow-{}", uuid::Uuid::new_v4().simple());
                let n = records.len() as u64;
                match spill(&self.dir, &app, 1, &records) {
                    Ok(()) => {
                        self.stats.buffered.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(e) => tracing::error!(
                        "inference log: cannot buffer {n} records in {}: {e}",
                        self.dir.display()
                    ),
                }
            }
        }
    }
}

struct Writer {
    lake: Lake,
    target: String,
    app: String,
    seq: i64,
    dir: PathBuf,
    stats: Arc<LogStats>,
    options: LogOptions,
}

/// A buffered batch's file name: `APP__SEQ.jsonl` (the sequence zero-padded, so names sort).
fn file_name(app: &str, seq: i64) -> String {
    format!("{app}__{seq:012}.jsonl")
}

fn spill(dir: &Path, app: &str, seq: i64, records: &[Record]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut text = String::new();
    for r in records {
        text.push_str(&serde_json::to_string(r).unwrap_or_default());
        text.push('\n');
    }
    let name = file_name(app, seq);
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, dir.join(name))
}

impl Writer {
    async fn run(
        mut self,
        mut rx: tokio::sync::mpsc::Receiver<Vec<Record>>,
        stop: Arc<tokio::sync::Notify>,
    ) {
        self.stats
            .buffered
            .store(self.pending_rows(), Ordering::Relaxed);
        let mut pending: Vec<Record> = Vec::new();
        let mut tick = tokio::time::interval(self.options.flush_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                got = rx.recv() => match got {
                    Some(records) => {
                        pending.extend(records);
                        if pending.len() >= self.options.max_rows {
                            self.flush(std::mem::take(&mut pending)).await;
                        }
                    }
                    None => {
                        // The endpoint is gone: commit what is left, then stop.
                        self.flush(std::mem::take(&mut pending)).await;
                        return;
                    }
                },
                _ = tick.tick() => {
                    self.flush(std::mem::take(&mut pending)).await;
                }
                _ = stop.notified() => {
                    rx.close();
                    while let Ok(records) = rx.try_recv() {
                        pending.extend(records);
                    }
                    self.flush(std::mem::take(&mut pending)).await;
                    return;
                }
            }
        }
    }

    fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    }

    fn pending_rows(&self) -> u64 {
        self.files()
            .iter()
            .map(|f| {
                std::fs::read_to_string(f)
                    .map(|t| t.lines().count() as u64)
                    .unwrap_or(0)
            })
            .sum()
    }

    async fn commit(&self, app: &str, seq: i64, records: &[Record]) -> Result<bool, String> {
        let batch = batch_of(records, self.options.max_columns)?;
        let schema = batch.schema();
        self.lake
            .append_service(
                &self.target,
                vec![batch],
                &schema,
                app,
                seq,
                "inference log of a tarn endpoint",
            )
            .await
            .map_err(|e| e.to_string())
    }

    /// Commits the buffered files, oldest first; stops at the first that fails.
    async fn drain(&self) -> bool {
        for f in self.files() {
            let name = f.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            let Some((app, seq)) = name.rsplit_once("__") else {
                continue;
            };
            let seq: i64 = seq.parse().unwrap_or(1);
            let text = match std::fs::read_to_string(&f) {
                Ok(t) => t,
                Err(_) => continue,
            };
            let records: Vec<Record> = text
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            match self.commit(app, seq, &records).await {
                Ok(_) => {
                    let _ = std::fs::remove_file(&f);
                    let n = records.len() as u64;
                    self.stats.written.fetch_add(n, Ordering::Relaxed);
                    let _ = self.stats.buffered.fetch_update(
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                        |b| Some(b.saturating_sub(n)),
                    );
                }
                Err(e) => {
                    self.stats.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        "inference log: the store is still failing ({e}); {} kept on disk",
                        f.display()
                    );
                    return false;
                }
            }
        }
        true
    }

    async fn flush(&mut self, records: Vec<Record>) {
        let drained = self.drain().await;
        if records.is_empty() {
            return;
        }
        self.seq += 1;
        let seq = self.seq;
        if drained {
            match self.commit(&self.app, seq, &records).await {
                Ok(_) => {
                    self.stats
                        .written
                        .fetch_add(records.len() as u64, Ordering::Relaxed);
                    return;
                }
                Err(e) => {
                    self.stats.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        "inference log: cannot write {} ({e}); buffering {} records in {}",
                        self.target,
                        records.len(),
                        self.dir.display()
                    );
                }
            }
        }
        match spill(&self.dir, &self.app, seq, &records) {
            Ok(()) => {
                self.stats
                    .buffered
                    .fetch_add(records.len() as u64, Ordering::Relaxed);
            }
            Err(e) => tracing::error!(
                "inference log: cannot buffer {} records in {}: {e}",
                records.len(),
                self.dir.display()
            ),
        }
    }
}
