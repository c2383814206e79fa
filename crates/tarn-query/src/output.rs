//! Writing query results: a table for people, CSV, JSON (an array of objects) and Parquet
//! for programs, Arrow IPC streams for the API.

use crate::{QueryError, QueryResult};
use deltalake::arrow::array::RecordBatch;
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

/// Rows a table for people shows before it says how many more there are.
pub const TABLE_PREVIEW_ROWS: usize = 1000;

/// Writes `result` to `w` in `format`.
pub fn write_result<W: Write>(
    result: &QueryResult,
    format: OutputFormat,
    w: W,
) -> Result<(), QueryError> {
    let mut writer = ResultWriter::new(format, &result.schema, w)?;
    for b in &result.batches {
        writer.write(b)?;
    }
    writer.finish(result.truncated)?;
    Ok(())
}

/// Writes a result batch by batch as it arrives, in any format, holding at most one batch
/// (and, for a table, the rows of its preview): a result of any size streams through.
pub struct ResultWriter<W: Write> {
    inner: Inner<W>,
    rows: usize,
}

enum Inner<W: Write> {
    Table {
        table: comfy_table::Table,
        w: W,
    },
    Csv(deltalake::arrow::csv::Writer<W>),
    Json(deltalake::arrow::json::ArrayWriter<W>),
    Parquet {
        writer: deltalake::parquet::arrow::ArrowWriter<Vec<u8>>,
        w: W,
    },
    Arrow(deltalake::arrow::ipc::writer::StreamWriter<W>),
}

impl<W: Write> ResultWriter<W> {
    /// A writer of rows shaped as `schema` to `w`.
    pub fn new(
        format: OutputFormat,
        schema: &deltalake::arrow::datatypes::SchemaRef,
        w: W,
    ) -> Result<Self, QueryError> {
        let inner = match format {
            OutputFormat::Table => {
                let mut table = comfy_table::Table::new();
                table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
                table.set_header(schema.fields().iter().map(|f| f.name().clone()));
                Inner::Table { table, w }
            }
            OutputFormat::Csv => Inner::Csv(
                deltalake::arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(w),
            ),
            OutputFormat::Json => Inner::Json(deltalake::arrow::json::ArrayWriter::new(w)),
            OutputFormat::Parquet => Inner::Parquet {
                writer: deltalake::parquet::arrow::ArrowWriter::try_new(
                    Vec::new(),
                    schema.clone(),
                    None,
                )
                .map_err(out)?,
                w,
            },
            OutputFormat::Arrow => Inner::Arrow(
                deltalake::arrow::ipc::writer::StreamWriter::try_new(w, schema).map_err(out)?,
            ),
        };
        Ok(ResultWriter { inner, rows: 0 })
    }

    /// Writes one batch.
    pub fn write(&mut self, b: &RecordBatch) -> Result<(), QueryError> {
        let before = self.rows;
        self.rows += b.num_rows();
        if b.num_rows() == 0 {
            return Ok(());
        }
        match &mut self.inner {
            Inner::Table { table, .. } => {
                let room = TABLE_PREVIEW_ROWS.saturating_sub(before).min(b.num_rows());
                if room > 0 {
                    let opts = FormatOptions::default().with_null("NULL");
                    let fmts: Vec<ArrayFormatter> = b
                        .columns()
                        .iter()
                        .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
                        .collect::<Result<_, _>>()
                        .map_err(out)?;
                    for row in 0..room {
                        table.add_row(fmts.iter().map(|f| f.value(row).to_string()));
                    }
                }
            }
            Inner::Csv(w) => w.write(b).map_err(out)?,
            Inner::Json(w) => w.write(b).map_err(out)?,
            Inner::Parquet { writer, w } => {
                writer.write(b).map_err(out)?;
                // Row groups the writer finished are passed on at once.
                let done = std::mem::take(writer.inner_mut());
                w.write_all(&done).map_err(out)?;
            }
            Inner::Arrow(w) => w.write(b).map_err(out)?,
        }
        Ok(())
    }

    /// Ends the output (`truncated`: a row limit cut the result) and answers the row count.
    pub fn finish(self, truncated: bool) -> Result<usize, QueryError> {
        let n = self.rows;
        match self.inner {
            Inner::Table { table, mut w } => {
                writeln!(w, "{table}").map_err(out)?;
                let more = n.saturating_sub(TABLE_PREVIEW_ROWS);
                if more > 0 {
                    writeln!(
                        w,
                        "{n} rows; the first {} are shown and {more} more are not: use --format csv (or json, parquet) for every row, or add a LIMIT",
                        TABLE_PREVIEW_ROWS
                    )
                    .map_err(out)?;
                } else {
                    writeln!(
                        w,
                        "{n} row{}{}",
                        if n == 1 { "" } else { "s" },
                        if truncated { " (truncated)" } else { "" }
                    )
                    .map_err(out)?;
                }
                w.flush().map_err(out)?;
            }
            Inner::Csv(w) => {
                w.into_inner().flush().map_err(out)?;
            }
            Inner::Json(mut writer) => {
                writer.finish().map_err(out)?;
                let mut w = writer.into_inner();
                if n == 0 {
                    write!(w, "[]").map_err(out)?;
                }
                writeln!(w).map_err(out)?;
                w.flush().map_err(out)?;
            }
            Inner::Parquet { writer, mut w } => {
                let rest = writer.into_inner().map_err(out)?;
                w.write_all(&rest).map_err(out)?;
                w.flush().map_err(out)?;
            }
            Inner::Arrow(mut writer) => {
                writer.finish().map_err(out)?;
                writer.into_inner().map_err(out)?.flush().map_err(out)?;
            }
        }
        Ok(n)
    }
}
