//! What a tap emits, written into the lake exactly once.
//!
//! Records are checked against their stream's schema and decoded into Arrow batches as they
//! come. A STATE message marks everything before it as covered by that state. A flush commits
//! the covered batches of every stream (one Delta commit per table, each carrying the
//! application transaction `tarn.tap.NAME` at the flush's sequence number), then saves the
//! state with that number. Before committing, the flush is recorded as pending with each
//! table's version; a run that finds a pending flush either completes it (every commit landed:
//! the state is saved) or rolls the tables that got a commit back to their versions before it
//! (the tap sends those records again from the saved state). Records after the last STATE of
//! a failed run are never committed: the tap sends them again.
//!
//! A stream with `key_properties` is merged on its keys (a batch keeps the last record of each
//! key). While a run writes a table that was empty when it started, batches whose keys the run
//! has not written yet are appended instead, which is the same result without a join.

use crate::singer::{StreamSchema, VERSION_COLUMN};
use crate::IngestError;
use arrow::array::{ArrayRef, RecordBatch, StringBuilder, TimestampMicrosecondBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use tarn_config::TapSpec;
use tarn_lake::{Lake, StreamWrite};

/// Records decoded into one batch at a time.
const DECODE_ROWS: usize = 8192;

/// A rejected record: why, and the record as the tap sent it.
struct Reject {
    reason: String,
    record: String,
}

/// A stream's records on their way to its table.
struct StreamBuf {
    schema: StreamSchema,
    arrow: SchemaRef,
    table: String,
    /// Checked records not decoded yet.
    rows: Vec<Map<String, Value>>,
    /// Decoded since the last STATE.
    open: Vec<RecordBatch>,
    open_rejects: Vec<Reject>,
    open_activate: Option<i64>,
    /// Covered by a STATE: what the next flush commits.
    covered: Vec<RecordBatch>,
    covered_rejects: Vec<Reject>,
    covered_activate: Option<i64>,
    /// The table was empty (or missing) when the run began.
    empty_at_start: Option<bool>,
    /// Keys written by this run (while `empty_at_start`).
    keys_seen: HashSet<Box<[u8]>>,
}

/// How many records of a stream came, were rejected, and were committed.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StreamCount {
    pub table: String,
    pub records: u64,
    pub rejected: u64,
    pub committed: u64,
}

/// Writes a tap's messages into its tables.
pub(crate) struct Writer<'a> {
    lake: &'a Lake,
    tap: &'a TapSpec,
    app: String,
    run_id: String,
    /// The last flush number used.
    pub seq: i64,
    /// The state the next flush saves (the last STATE covered, else the saved one).
    state: Value,
    state_changed: bool,
    streams: BTreeMap<String, StreamBuf>,
    pub counts: BTreeMap<String, StreamCount>,
}

impl<'a> Writer<'a> {
    /// A writer for `tap`, after settling a flush a crash left pending.
    pub async fn start(
        lake: &'a Lake,
        tap: &'a TapSpec,
        run_id: &str,
    ) -> Result<Writer<'a>, IngestError> {
        let app = app_id(&tap.name);
        let settled = settle_pending(lake, &tap.name).await?;
        let (mut seq, mut state) = (0, Value::Null);
        if let Some(saved) = lake.taps().state(&tap.name).await? {
            seq = saved.seq;
            state = saved.state;
        }
        // Commits go on numbering after a rolled-back flush (its number is in the tables' logs).
        if let Settled::RolledBack { seq: s, .. } = settled {
            seq = seq.max(s);
        }
        Ok(Writer {
            lake,
            tap,
            app,
            run_id: run_id.to_string(),
            seq,
            state,
            state_changed: false,
            streams: BTreeMap::new(),
            counts: BTreeMap::new(),
        })
    }

    /// The state the tap starts from.
    pub fn state(&self) -> &Value {
        &self.state
    }

    /// A SCHEMA message: the stream's (new) schema. Records already received keep the schema
    /// they came under.
    pub fn schema(&mut self, stream: &str, schema: StreamSchema) -> Result<(), String> {
        let table = format!(
            "{}.{}.{}",
            self.tap.domain,
            self.tap.layer(),
            self.tap.table_of(stream)
        );
        tarn_config::check_identifier(&self.tap.table_of(stream)).map_err(|why| {
            format!("the stream's table name: {why}; name it under the tap's `tables:`")
        })?;
        match self.streams.get_mut(stream) {
            Some(buf) => {
                let versioned = buf.schema.versioned;
                decode_rows(buf);
                buf.schema = schema;
                buf.schema.versioned = versioned;
                buf.arrow = buf.schema.arrow();
            }
            None => {
                let arrow = schema.arrow();
                self.counts.entry(stream.to_string()).or_default().table = table.clone();
                self.streams.insert(
                    stream.to_string(),
                    StreamBuf {
                        schema,
                        arrow,
                        table,
                        rows: Vec::new(),
                        open: Vec::new(),
                        open_rejects: Vec::new(),
                        open_activate: None,
                        covered: Vec::new(),
                        covered_rejects: Vec::new(),
                        covered_activate: None,
                        empty_at_start: None,
                        keys_seen: HashSet::new(),
                    },
                );
            }
        }
        Ok(())
    }

    /// A RECORD message; refused when its stream has had no SCHEMA. A record that breaks the
    /// schema is kept for the stream's `_rejected` table.
    pub fn record(
        &mut self,
        stream: &str,
        record: Value,
        version: Option<i64>,
    ) -> Result<(), String> {
        let Some(buf) = self.streams.get_mut(stream) else {
            return Err(
                "a RECORD came before the stream's SCHEMA; the tap must send SCHEMA first".into(),
            );
        };
        let count = self.counts.entry(stream.to_string()).or_default();
        count.records += 1;
        let Value::Object(map) = record else {
            count.rejected += 1;
            buf.open_rejects.push(Reject {
                reason: "the record is not a JSON object".into(),
                record: record.to_string(),
            });
            return Ok(());
        };
        if version.is_some() && !buf.schema.versioned {
            decode_rows(buf);
            buf.schema.versioned = true;
            buf.arrow = buf.schema.arrow();
        }
        match buf.schema.prepare(map, version) {
            Ok(row) => {
                buf.rows.push(row);
                if buf.rows.len() >= DECODE_ROWS {
                    let rejected = decode_rows(buf);
                    count.rejected += rejected;
                }
            }
            Err((reason, record)) => {
                count.rejected += 1;
                buf.open_rejects.push(Reject {
                    reason,
                    record: Value::Object(record).to_string(),
                });
            }
        }
        Ok(())
    }

    /// An ACTIVATE_VERSION message: once committed, the stream's table keeps only the rows of
    /// `version`.
    pub fn activate(&mut self, stream: &str, version: i64) -> Result<(), String> {
        let Some(buf) = self.streams.get_mut(stream) else {
            return Err("ACTIVATE_VERSION came before the stream's SCHEMA".into());
        };
        let rejected = decode_rows(buf);
        self.counts.entry(stream.to_string()).or_default().rejected += rejected;
        buf.open_activate = Some(version);
        Ok(())
    }

    /// A STATE message: everything received so far is covered by it.
    pub fn state_message(&mut self, value: Value) {
        for (name, buf) in self.streams.iter_mut() {
            let rejected = decode_rows(buf);
            self.counts.entry(name.clone()).or_default().rejected += rejected;
            buf.covered.append(&mut buf.open);
            buf.covered_rejects.append(&mut buf.open_rejects);
            if let Some(v) = buf.open_activate.take() {
                buf.covered_activate = Some(v);
            }
        }
        self.state = value;
        self.state_changed = true;
    }

    /// Rows covered and waiting for a flush.
    pub fn covered_rows(&self) -> usize {
        self.streams
            .values()
            .map(|b| b.covered.iter().map(|x| x.num_rows()).sum::<usize>())
            .sum()
    }

    /// Rows received but not covered by a STATE yet.
    pub fn open_rows(&self) -> usize {
        self.streams
            .values()
            .map(|b| b.rows.len() + b.open.iter().map(|x| x.num_rows()).sum::<usize>())
            .sum()
    }

    /// The end of a successful run: everything received is covered by the last state.
    pub fn cover_all(&mut self) {
        let state = self.state.clone();
        let changed = self.state_changed;
        self.state_message(state);
        self.state_changed = changed;
    }

    /// Commits every covered batch and saves the state that covers them.
    pub async fn flush(&mut self) -> Result<(), IngestError> {
        let touched: Vec<String> = self
            .streams
            .iter()
            .filter(|(_, b)| {
                !b.covered.is_empty()
                    || !b.covered_rejects.is_empty()
                    || b.covered_activate.is_some()
            })
            .map(|(n, _)| n.clone())
            .collect();
        if touched.is_empty() && !self.state_changed {
            return Ok(());
        }
        let seq = self.seq + 1;
        // What this flush will commit, table by table, with the versions before it.
        let mut tables = Vec::new();
        for name in &touched {
            let buf = &self.streams[name];
            let groups =
                groups(&buf.covered).len() as i64 + i64::from(buf.covered_activate.is_some());
            if groups > 0 {
                let (_, version) = self.lake.stream_txn(&buf.table, &self.app).await?;
                tables.push(json!({"table": buf.table, "version": version, "commits": groups}));
            }
            if !buf.covered_rejects.is_empty() {
                let rejected = format!("{}_rejected", buf.table);
                let (_, version) = self.lake.stream_txn(&rejected, &self.app).await?;
                tables.push(json!({"table": rejected, "version": version, "commits": 1}));
            }
        }
        let pending =
            json!({"seq": seq, "state": self.state, "tables": tables, "run": self.run_id});
        self.lake
            .taps()
            .begin_flush(&self.tap.name, &pending)
            .await?;
        for name in &touched {
            self.commit_stream(name, seq).await?;
        }
        self.lake
            .taps()
            .save_state(&self.tap.name, seq, &self.state)
            .await?;
        self.seq = seq;
        self.state_changed = false;
        Ok(())
    }

    async fn commit_stream(&mut self, name: &str, seq: i64) -> Result<(), IngestError> {
        let lake = self.lake;
        let app = self.app.clone();
        let tap = self.tap;
        let run_id = self.run_id.clone();
        let buf = self.streams.get_mut(name).expect("a stream");
        let write_err = |table: &str, source| IngestError::Write {
            tap: tap.name.clone(),
            stream: name.to_string(),
            table: table.to_string(),
            source: Box::new(source),
        };
        let mut params = BTreeMap::new();
        params.insert("tarn.tap".to_string(), tap.name.clone());
        params.insert("tarn.stream".to_string(), name.to_string());
        let note = format!("written by tap {} (stream {name})", tap.name);
        let mut committed = 0u64;
        for group in groups(&buf.covered) {
            let schema = group[0].schema();
            let mut batch = arrow::compute::concat_batches(&schema, group.iter().copied())
                .map_err(|e| {
                    IngestError::Config(format!("tap `{}`, stream `{name}`: {e}", tap.name))
                })?;
            let keys = buf.schema.key_properties.clone();
            let write = if keys.is_empty() {
                StreamWrite::Append
            } else {
                batch = last_of_each_key(&batch, &keys).map_err(|e| {
                    IngestError::Config(format!("tap `{}`, stream `{name}`: keys: {e}", tap.name))
                })?;
                if buf.empty_at_start.is_none() {
                    let (_, version) = lake.stream_txn(&buf.table, &app).await?;
                    let empty = match version {
                        None => true,
                        Some(_) => lake.table_rows(&buf.table).await? == 0,
                    };
                    buf.empty_at_start = Some(empty);
                }
                let fresh = buf.empty_at_start == Some(true)
                    && key_rows(&batch, &keys)
                        .map(|rows| {
                            let fresh = rows.iter().all(|r| !buf.keys_seen.contains(r));
                            if fresh {
                                buf.keys_seen.extend(rows);
                            }
                            fresh
                        })
                        .unwrap_or(false);
                if fresh {
                    StreamWrite::Append
                } else {
                    buf.empty_at_start = Some(false);
                    buf.keys_seen.clear();
                    StreamWrite::Merge(keys)
                }
            };
            let rows = batch.num_rows() as u64;
            lake.commit_stream(
                &buf.table,
                vec![batch],
                &schema,
                &write,
                &app,
                seq,
                params.clone(),
                &note,
            )
            .await
            .map_err(|e| write_err(&buf.table, e))?;
            committed += rows;
        }
        buf.covered.clear();
        if let Some(version) = buf.covered_activate.take() {
            let has_column = lake
                .table_columns(&buf.table)
                .await?
                .iter()
                .any(|c| c == VERSION_COLUMN);
            if has_column {
                let predicate =
                    format!("\"{VERSION_COLUMN}\" IS NULL OR \"{VERSION_COLUMN}\" <> {version}");
                lake.delete_stream_rows(&buf.table, &predicate, &app, seq)
                    .await
                    .map_err(|e| write_err(&buf.table, e))?;
            } else {
                tracing::warn!(
                    tap = tap.name,
                    stream = name,
                    "ACTIVATE_VERSION for a stream whose records carry no version: nothing deleted"
                );
            }
        }
        if !buf.covered_rejects.is_empty() {
            let rejected = format!("{}_rejected", buf.table);
            let batch = rejects_batch(name, &run_id, &buf.covered_rejects)
                .map_err(|e| IngestError::Config(e.to_string()))?;
            let schema = batch.schema();
            lake.commit_stream(
                &rejected,
                vec![batch],
                &schema,
                &StreamWrite::Append,
                &app,
                seq,
                params,
                &format!(
                    "records of tap {} (stream {name}) that broke the stream's schema",
                    tap.name
                ),
            )
            .await
            .map_err(|e| write_err(&rejected, e))?;
            buf.covered_rejects.clear();
        }
        self.counts.entry(name.to_string()).or_default().committed += committed;
        Ok(())
    }
}

/// The application transaction id of tap `name`'s commits.
pub fn app_id(name: &str) -> String {
    format!("tarn.tap.{name}")
}

/// What settling a tap's pending flush did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// No flush was pending.
    Nothing,
    /// Every commit of flush `seq` had landed: its state is saved now.
    Completed { seq: i64 },
    /// Flush `seq` was cut short: these tables got a commit and are back at their versions
    /// before it.
    RolledBack { seq: i64, tables: Vec<String> },
}

/// Settles the flush a crash left pending for tap `tap` (every run does this first): completes
/// it when every commit landed, else rolls back the tables that got one.
pub async fn settle_pending(lake: &Lake, tap: &str) -> Result<Settled, IngestError> {
    let Some(saved) = lake.taps().state(tap).await? else {
        return Ok(Settled::Nothing);
    };
    if saved.pending.is_null() {
        return Ok(Settled::Nothing);
    }
    settle(lake, tap, &app_id(tap), &saved.pending).await
}

async fn settle(
    lake: &Lake,
    tap: &str,
    app: &str,
    pending: &Value,
) -> Result<Settled, IngestError> {
    let seq = pending["seq"].as_i64().unwrap_or(0);
    let tables = pending["tables"].as_array().cloned().unwrap_or_default();
    let mut landed = Vec::new();
    let mut all = true;
    for t in &tables {
        let table = t["table"].as_str().unwrap_or_default();
        let before = t["version"].as_i64();
        let commits = t["commits"].as_i64().unwrap_or(1);
        let (txn, version) = lake.stream_txn(table, app).await?;
        let got = txn == Some(seq);
        let complete = got && version.unwrap_or(-1) >= before.unwrap_or(-1) + commits;
        if got {
            landed.push((table.to_string(), before));
        }
        all &= complete;
    }
    if all {
        tracing::info!(
            tap,
            seq,
            "a flush interrupted after its commits: its state is saved now"
        );
        lake.taps().save_state(tap, seq, &pending["state"]).await?;
        return Ok(Settled::Completed { seq });
    }
    let mut tables = Vec::new();
    for (table, before) in landed {
        tracing::info!(
            tap,
            seq,
            table,
            "rolling back a flush interrupted before its state was saved"
        );
        lake.roll_back_table(
            &table,
            before,
            &format!("tap {tap}: flush {seq} was interrupted before its state was saved"),
        )
        .await?;
        tables.push(table);
    }
    lake.taps().clear_pending(tap).await?;
    Ok(Settled::RolledBack { seq, tables })
}

/// Decodes a stream's checked rows into a batch; rows the decoder refuses (a date-time that
/// does not parse) are rejected with its reason. Answers how many were rejected.
fn decode_rows(buf: &mut StreamBuf) -> u64 {
    if buf.rows.is_empty() {
        return 0;
    }
    let rows = std::mem::take(&mut buf.rows);
    match decode(&buf.arrow, &rows) {
        Ok(b) => {
            buf.open.push(b);
            0
        }
        Err(_) => {
            let mut good = Vec::new();
            let mut rejected = 0;
            for row in rows {
                match decode(&buf.arrow, std::slice::from_ref(&row)) {
                    Ok(_) => good.push(row),
                    Err(e) => {
                        rejected += 1;
                        buf.open_rejects.push(Reject {
                            reason: e.to_string(),
                            record: Value::Object(row).to_string(),
                        });
                    }
                }
            }
            if let Ok(b) = decode(&buf.arrow, &good) {
                if b.num_rows() > 0 {
                    buf.open.push(b);
                }
            }
            rejected
        }
    }
}

fn decode(
    schema: &SchemaRef,
    rows: &[Map<String, Value>],
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let mut d = arrow::json::ReaderBuilder::new(schema.clone())
        .with_batch_size(rows.len().max(1))
        .with_strict_mode(true)
        .build_decoder()?;
    d.serialize(rows)?;
    Ok(d.flush()?
        .unwrap_or_else(|| RecordBatch::new_empty(schema.clone())))
}

/// Consecutive batches with one schema.
fn groups(batches: &[RecordBatch]) -> Vec<Vec<&RecordBatch>> {
    let mut out: Vec<Vec<&RecordBatch>> = Vec::new();
    for b in batches {
        match out.last_mut() {
            Some(g) if g[0].schema() == b.schema() => g.push(b),
            _ => out.push(vec![b]),
        }
    }
    out
}

/// The key columns of each row, as comparable bytes.
fn key_rows(
    batch: &RecordBatch,
    keys: &[String],
) -> Result<Vec<Box<[u8]>>, arrow::error::ArrowError> {
    use arrow::row::{RowConverter, SortField};
    let cols: Vec<ArrayRef> = keys
        .iter()
        .map(|k| {
            batch.column_by_name(k).cloned().ok_or_else(|| {
                arrow::error::ArrowError::SchemaError(format!("no key column `{k}`"))
            })
        })
        .collect::<Result<_, _>>()?;
    let conv = RowConverter::new(
        cols.iter()
            .map(|c| SortField::new(c.data_type().clone()))
            .collect(),
    )?;
    let rows = conv.convert_columns(&cols)?;
    Ok(rows
        .iter()
        .map(|r| r.as_ref().to_vec().into_boxed_slice())
        .collect())
}

/// The batch with only the last row of each key.
fn last_of_each_key(
    batch: &RecordBatch,
    keys: &[String],
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let rows = key_rows(batch, keys)?;
    let mut seen = HashSet::with_capacity(rows.len());
    let mut keep: Vec<u32> = Vec::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate().rev() {
        if seen.insert(r) {
            keep.push(i as u32);
        }
    }
    if keep.len() == rows.len() {
        return Ok(batch.clone());
    }
    keep.reverse();
    let idx = arrow::array::UInt32Array::from(keep);
    arrow::compute::take_record_batch(batch, &idx)
}

fn rejects_batch(
    stream: &str,
    run_id: &str,
    rejects: &[Reject],
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("_stream", DataType::Utf8, true),
        Field::new("_reason", DataType::Utf8, true),
        Field::new("_record", DataType::Utf8, true),
        Field::new("_tap_run", DataType::Utf8, true),
        Field::new(
            "_rejected_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
    ]));
    let now = chrono::Utc::now().timestamp_micros();
    let mut s = StringBuilder::new();
    let mut r = StringBuilder::new();
    let mut j = StringBuilder::new();
    let mut run = StringBuilder::new();
    let mut at = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    for x in rejects {
        s.append_value(stream);
        r.append_value(&x.reason);
        j.append_value(&x.record);
        run.append_value(run_id);
        at.append_value(now);
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(s.finish()),
        Arc::new(r.finish()),
        Arc::new(j.finish()),
        Arc::new(run.finish()),
        Arc::new(at.finish()),
    ];
    RecordBatch::try_new(schema, cols)
}
