//! Writing query results: a table for people, CSV, JSON (an array of objects) and Parquet
//! for programs, Arrow IPC streams for the API.

use crate::{QueryError, QueryResult};
use deltalake::arrow::util::display::{ArrayFormatter, FormatOptions};
use std::io::Write;

/// An output format of `tarn sql`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
    Parquet,
    Arrow,
}

impl std::str::FromStr for OutputFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "table" => Ok(OutputFormat::Table),
            "csv" => Ok(OutputFormat::Csv),
            "json" => Ok(OutputFormat::Json),
            "parquet" => Ok(OutputFormat::Parquet),
            "arrow" => Ok(OutputFormat::Arrow),
            o => Err(format!(
                "unknown format `{o}`; use table, csv, json, parquet or arrow"
            )),
        }
    }
}

fn out(e: impl std::fmt::Display) -> QueryError {
    QueryError::Output(e.to_string())
}

/// Writes `result` to `w` in `format`.
pub fn write_result(
    result: &QueryResult,
    format: OutputFormat,
    w: &mut dyn Write,
) -> Result<(), QueryError> {
    match format {
        OutputFormat::Table => {
            let mut t = comfy_table::Table::new();
            t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
            t.set_header(result.schema.fields().iter().map(|f| f.name().clone()));
            let opts = FormatOptions::default().with_null("NULL");
            for b in &result.batches {
                let fmts: Vec<ArrayFormatter> = b
                    .columns()
                    .iter()
                    .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
                    .collect::<Result<_, _>>()
                    .map_err(out)?;
                for row in 0..b.num_rows() {
                    t.add_row(fmts.iter().map(|f| f.value(row).to_string()));
                }
            }
            writeln!(w, "{t}").map_err(out)?;
            let n = result.rows();
            writeln!(
                w,
                "{n} row{}{}",
                if n == 1 { "" } else { "s" },
                if result.truncated { " (truncated)" } else { "" }
            )
            .map_err(out)?;
        }
        OutputFormat::Csv => {
            let mut writer = deltalake::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(w);
            for b in &result.batches {
                writer.write(b).map_err(out)?;
            }
        }
        OutputFormat::Json => {
            let mut writer = deltalake::arrow::json::ArrayWriter::new(&mut *w);
            let refs: Vec<_> = result.batches.iter().collect();
            writer.write_batches(&refs).map_err(out)?;
            writer.finish().map_err(out)?;
            if result.batches.iter().all(|b| b.num_rows() == 0) {
                write!(w, "[]").map_err(out)?;
            }
            writeln!(w).map_err(out)?;
        }
        OutputFormat::Parquet => {
            let mut buf = Vec::new();
            let mut writer = deltalake::parquet::arrow::ArrowWriter::try_new(
                &mut buf,
                result.schema.clone(),
                None,
            )
            .map_err(out)?;
            for b in &result.batches {
                writer.write(b).map_err(out)?;
            }
            writer.close().map_err(out)?;
            w.write_all(&buf).map_err(out)?;
        }
        OutputFormat::Arrow => {
            let mut writer =
                deltalake::arrow::ipc::writer::StreamWriter::try_new(&mut *w, &result.schema)
                    .map_err(out)?;
            for b in &result.batches {
                writer.write(b).map_err(out)?;
            }
            writer.finish().map_err(out)?;
        }
    }
    Ok(())
}
