//! Printing reports for people (tables, summaries) and for programs (JSON), and progress.

use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::Path;
use tarn_lake::{
    CrawlReport, Event, HistoryEntry, LandOutcome, Landed, LoadReport, ObjectInfo,
    QuickstartReport, TableDetail, TableSummary,
};

/// Writes the rows of a query as they arrive, in `fmt`; answers how many there were.
pub async fn stream_rows<W: std::io::Write>(
    fmt: tarn_lake::OutputFormat,
    schema: &arrow::datatypes::SchemaRef,
    mut rows: tarn_lake::BatchStream,
    w: W,
) -> anyhow::Result<usize> {
    use futures::StreamExt;
    let mut writer = tarn_lake::ResultWriter::new(fmt, schema, w)?;
    while let Some(batch) = rows.next().await {
        writer.write(&batch?)?;
    }
    Ok(writer.finish(false)?)
}

pub fn json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// What `validate` commands print: how many were read without a problem, or every problem
/// (each with its file and line) and a failure; `--format json` gives `ok`, the count and the
/// problems.
pub fn validation(
    loaded: Result<usize, tarn_config::ConfigError>,
    noun: &str,
    place: &str,
    out: crate::cli::Output,
) -> anyhow::Result<()> {
    match loaded {
        Ok(n) => {
            if out.json() {
                let mut answer = serde_json::json!({"ok": true, "problems": []});
                answer[format!("{noun}s")] = n.into();
                json(&answer)
            } else {
                println!("{n} {noun}(s), no problems");
                Ok(())
            }
        }
        Err(e) => {
            let problems: Vec<String> = match e {
                tarn_config::ConfigError::Problems(p) => p.iter().map(|e| e.to_string()).collect(),
                other => vec![other.to_string()],
            };
            if out.json() {
                json(&serde_json::json!({"ok": false, "problems": problems}))?;
            } else {
                for p in &problems {
                    eprintln!("{p}");
                }
            }
            anyhow::bail!("{} problem(s) in {place}", problems.len())
        }
    }
}

pub fn grid(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(header.to_vec());
    t
}

/// A spinner on stderr; hidden when stderr is not a terminal.
pub fn spinner(message: &str) -> ProgressBar {
    let p = ProgressBar::new_spinner();
    p.set_message(message.to_string());
    p.enable_steady_tick(std::time::Duration::from_millis(120));
    p
}

/// A byte progress bar on stderr; hidden when stderr is not a terminal.
pub fn bytes_bar(total: u64, message: &str) -> ProgressBar {
    let p = ProgressBar::new(total);
    p.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    p.set_message(message.to_string());
    p
}

/// Bytes under a file or folder.
pub fn size_of(path: &Path) -> u64 {
    if path.is_file() {
        return path.metadata().map(|m| m.len()).unwrap_or(0);
    }
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| size_of(&e.path()))
                .sum()
        })
        .unwrap_or(0)
}

fn human(bytes: u64) -> String {
    indicatif::HumanBytes(bytes).to_string()
}

pub fn landed(landed: &[Landed]) {
    for l in landed {
        let what = match l.outcome {
            LandOutcome::Created => "landed  ",
            LandOutcome::Replaced => "replaced",
            LandOutcome::Unchanged => "unchanged",
        };
        let event = if l.event_recorded {
            "event recorded"
        } else {
            "event already recorded"
        };
        println!(
            "{what} {}/{} ({}, sha256 {}…) {event}",
            l.zone,
            l.key,
            human(l.size),
            &l.etag[..12]
        );
        if let Some(v) = &l.previous_version {
            println!("         previous content kept at {}/{v}", l.zone);
        }
    }
}

pub fn objects(objects: &[ObjectInfo]) {
    let mut t = grid(&["key", "size", "last modified"]);
    for o in objects {
        t.add_row(vec![o.key.clone(), human(o.size), o.last_modified.clone()]);
    }
    println!("{t}\n{} object(s)", objects.len());
}

pub fn events(events: &[Event]) {
    let mut t = grid(&["time", "kind", "zone", "key", "size", "etag"]);
    for e in events {
        t.add_row(vec![
            e.created_at.clone(),
            e.kind.clone(),
            e.zone.clone(),
            e.key.clone(),
            human(e.size),
            e.etag.chars().take(12).collect(),
        ]);
    }
    println!("{t}\n{} event(s)", events.len());
}

pub fn tokens(tokens: &[tarn_lake::TokenRecord]) {
    let mut t = grid(&[
        "name",
        "rights",
        "policies",
        "aws access key",
        "created",
        "revoked",
    ]);
    for k in tokens {
        t.add_row(vec![
            k.name.clone(),
            if k.read_only {
                "read-only"
            } else {
                "read and write"
            }
            .to_string(),
            k.policies.join(", "),
            k.aws_access_key.clone().unwrap_or_default(),
            k.created_at.clone(),
            k.revoked_at.clone().unwrap_or_default(),
        ]);
    }
    println!("{t}\n{} token(s)", tokens.len());
}

pub fn crawl(r: &CrawlReport) {
    use tarn_lake::TableChange as change;
    println!(
        "crawl: {} table(s) created, {} updated, {} unchanged; {} file(s) skipped, {} unchanged file(s) not re-read",
        r.count(change::Created),
        r.count(change::Updated),
        r.count(change::Unchanged),
        r.skipped.len(),
        r.unchanged_files
    );
    for t in &r.tables {
        let what = match t.change {
            change::Created => "created",
            change::Updated => "updated",
            change::Unchanged => "unchanged",
        };
        let parts = if t.partitions > 0 {
            format!(", {} partition(s)", t.partitions)
        } else {
            String::new()
        };
        println!(
            "  {what:<9} {} ({}, {} file(s) read{parts})",
            t.table, t.format, t.files_read
        );
        if let Some(d) = &t.detail {
            println!("            {d}");
        }
    }
    for s in &r.skipped {
        println!("  skipped   {}/{}: {}", s.zone, s.key, s.reason);
    }
}

pub fn tables(tables: &[TableSummary]) {
    let mut t = grid(&[
        "table",
        "format",
        "columns",
        "partitioned by",
        "rows",
        "version",
        "updated",
    ]);
    for s in tables {
        t.add_row(vec![
            s.table.clone(),
            s.format.clone(),
            s.columns.to_string(),
            s.partition_keys.join(", "),
            s.row_count
                .map(|r| r.to_string())
                .unwrap_or_else(|| "?".into()),
            s.version.to_string(),
            s.updated_at.chars().take(19).collect(),
        ]);
    }
    println!("{t}\n{} table(s)", tables.len());
}

pub fn table(d: &TableDetail) {
    let r = &d.record;
    println!("{}  ({}, catalog version {})", d.table, r.format, r.version);
    println!("location: {}", r.location);
    println!(
        "rows:     {}",
        r.row_count
            .map(|n| n.to_string())
            .unwrap_or_else(|| "unknown".into())
    );
    let mut t = grid(&["column", "type", "nullable"]);
    for c in &r.columns {
        t.add_row(vec![
            c.name.clone(),
            c.data_type.clone(),
            c.nullable.to_string(),
        ]);
    }
    for c in &r.partition_keys {
        t.add_row(vec![
            format!("{} (partition)", c.name),
            c.data_type.clone(),
            c.nullable.to_string(),
        ]);
    }
    println!("{t}");
    if !r.parameters.is_empty() {
        let p: Vec<String> = r
            .parameters
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!("parameters: {}", p.join(", "));
    }
    if !d.partitions.is_empty() {
        println!("partitions ({}):", d.partitions.len());
        for p in d.partitions.iter().take(20) {
            println!("  {}", p.spec);
        }
        if d.partitions.len() > 20 {
            println!(
                "  … {} more (--format json lists all)",
                d.partitions.len() - 20
            );
        }
    }
    println!("schema versions:");
    for v in &d.versions {
        println!(
            "  v{} {} ({} columns): {}",
            v.version,
            v.created_at.chars().take(19).collect::<String>(),
            v.columns.len(),
            v.reason
        );
    }
    if !d.loads.is_empty() {
        println!("loads:");
        for l in &d.loads {
            println!(
                "  {} {} from {}: {} written, {} rejected -> Delta version {}",
                l.created_at.chars().take(19).collect::<String>(),
                l.mode,
                l.source,
                l.rows_written,
                l.rows_rejected,
                l.table_version
            );
        }
    }
}

pub fn table_files(f: &tarn_lake::TableFiles) {
    let mut t = grid(&["file", "bytes", "partition"]);
    for file in &f.files {
        t.add_row(vec![
            file.uri.clone(),
            file.size.to_string(),
            file.partition
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_deref().unwrap_or("null")))
                .collect::<Vec<_>>()
                .join(", "),
        ]);
    }
    println!("{t}");
    let version = f
        .version
        .map(|v| format!(" at Delta version {v}"))
        .unwrap_or_default();
    println!(
        "{}: {} {} file(s){version}, {} bytes",
        f.table,
        f.files.len(),
        f.format,
        f.files.iter().map(|x| x.size).sum::<i64>()
    );
}

pub fn history(name: &str, h: &[HistoryEntry]) {
    let mut t = grid(&["version", "time", "operation", "load", "parameters"]);
    for e in h {
        t.add_row(vec![
            e.version.to_string(),
            e.timestamp
                .clone()
                .unwrap_or_default()
                .chars()
                .take(19)
                .collect(),
            e.operation.clone(),
            e.load_id.clone().unwrap_or_default(),
            e.parameters.to_string(),
        ]);
    }
    println!("{t}\nread an older version with: tarn sql \"SELECT * FROM {name}@vN\"");
}

pub fn load(r: &LoadReport) {
    if r.already_loaded {
        println!(
            "already loaded: {} holds these bytes of {} ({} load); nothing was written. The table has {} row(s) at Delta version {}; pass --again to load a second copy",
            r.table,
            r.source,
            r.mode.as_str(),
            r.row_count,
            r.table_version
        );
        return;
    }
    println!(
        "loaded {} into {} ({}): {} row(s) written, {} rejected; table has {} row(s) at Delta version {}",
        r.source,
        r.table,
        r.mode.as_str(),
        r.rows_written,
        r.rows_rejected,
        r.row_count,
        r.table_version
    );
    if let Some(c) = &r.contract {
        println!("contract: {c}");
    }
    if let Some(t) = &r.rejected_table {
        println!("rejected rows are in {t}; see why with:\n  tarn sql \"SELECT _line, _column, _reason FROM {t} WHERE _load_id = '{}'\"", r.load_id);
    }
    if !r.ignored_columns.is_empty() {
        println!(
            "columns not in the contract, left out: {}",
            r.ignored_columns.join(", ")
        );
    }
    if !r.added_columns.is_empty() {
        println!(
            "the table has no contract and gained columns: {} (older rows read them as null; `schema_evolution: refuse` in tarn.yml refuses such loads)",
            r.added_columns.join(", ")
        );
    }
}

pub fn quickstart(r: &QuickstartReport) {
    println!("tarn quickstart: an example lake in {}\n", r.dir);
    println!("1. landed raw files (each recorded as an object.created event):");
    for l in &r.landed {
        println!("     {}/{} ({})", l.zone, l.key, human(l.size));
    }
    println!("2. crawled flights/raw: the crawler catalogued");
    for t in &r.crawl.tables {
        println!("     {} ({})", t.table, t.format);
    }
    if r.load.already_loaded {
        println!(
            "3. flights.trusted.flights already holds this flights.csv ({} rows): a second quickstart loads nothing twice",
            r.load.row_count
        );
    } else {
        println!(
            "3. loaded flights.trusted.flights under contracts/flights.trusted.flights.yml:\n     {} rows written, {} rejected into {}",
            r.load.rows_written,
            r.load.rows_rejected,
            r.load.rejected_table.clone().unwrap_or_else(|| "(none)".into())
        );
    }
    println!(
        "4. materialised {} ({} rows) with SQL:\n     {}\n",
        r.service.table, r.service.row_count, r.query
    );
}

/// The commands to try after the quickstart.
pub fn quickstart_next(dir: &Path) {
    let d = dir.display();
    println!("Go on:");
    println!("  tarn --dir {d} tables");
    println!("  tarn --dir {d} table show flights.trusted.flights");
    println!("  tarn --dir {d} sql \"SELECT _line, _column, _reason FROM flights.trusted.flights_rejected LIMIT 5\"");
    println!("  tarn --dir {d} sql \"SELECT origin, count(*) FROM flights.trusted.flights GROUP BY origin\"");
    println!("  tarn --dir {d} executions list");
    println!("  tarn --dir {d} models versions delays");
    println!("  tarn --dir {d} sql \"SELECT flight, arr_delay, prediction FROM flights.service.delay_scores LIMIT 5\"");
    println!("  tarn --dir {d} train delays --logs    # again: another tuning, a new version");
    println!("  tarn --dir {d} serve    # then land another day: pipelines run as files land,");
    println!("  curl -H 'content-type: application/json' -d '{{\"dataframe_records\": [{{\"dep_delay\": 12, \"distance\": 1400, \"hour\": 7, \"minute\": 5, \"day\": 3}}]}}' \\");
    println!("    localhost:8080/endpoints/arrival_delay/invocations    # and the model answers");
    println!("  python3 {d}/send_requests.py && python3 {d}/send_requests.py --scale distance=2");
    println!(
        "  tarn --dir {d} monitors run arrival_delay    # the second window drifts: an alert in"
    );
    println!(
        "    {d}/.tarn/ml-alerts.log, and the retrain pipeline registers a version to approve"
    );
    println!("\nThe service table, first rows:");
}

pub fn doctor(r: &tarn_lake::DoctorReport, check_only: bool) {
    for f in &r.findings {
        let state = match (f.fixed, check_only) {
            (true, _) => "fixed",
            (false, true) => "found",
            (false, false) => "NOT FIXED",
        };
        println!("{state:>9}  {:<22} {}: {}", f.kind, f.place, f.detail);
    }
    let fixed = r.findings.iter().filter(|f| f.fixed).count();
    println!(
        "checked {} table(s) and {} zone(s): {}",
        r.tables_checked,
        r.zones_checked,
        match (r.findings.len(), check_only) {
            (0, _) => "catalog, Delta logs, objects and events agree".to_string(),
            (n, true) => format!("{n} problem(s); run `tarn doctor` to repair them"),
            (n, false) => format!("{n} problem(s), {fixed} fixed"),
        }
    );
}
