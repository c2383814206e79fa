//! Reading a file to load: CSV (delimiter and header detected, each row's line number kept,
//! malformed rows set aside with a reason), JSON lines and Parquet, gzip or not.

use crate::TablesError;
use deltalake::arrow::array::{ArrayRef, Int64Builder, RecordBatch, StringBuilder};
use deltalake::arrow::datatypes::{DataType, Field, Schema};
use std::io::Read;
use std::sync::Arc;

/// The hidden column holding each row's line (CSV, JSON) or row number (Parquet) in the source.
pub const LINE: &str = "__tarn_line";

const BATCH_ROWS: usize = 64 * 1024;

/// A file format tarn can load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
    Parquet,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "csv" => Ok(Format::Csv),
            "json" | "jsonl" | "ndjson" => Ok(Format::Json),
            "parquet" => Ok(Format::Parquet),
            other => Err(format!(
                "unknown format `{other}`; use csv, json or parquet"
            )),
        }
    }
}

/// A row that could not even be split into columns.
#[derive(Debug, Clone)]
pub struct Malformed {
    pub line: u64,
    pub raw: String,
    pub reason: String,
}

/// What was read: batches with a trailing [`LINE`] column, and rows set aside.
#[derive(Debug)]
pub struct Source {
    pub batches: Vec<RecordBatch>,
    pub malformed: Vec<Malformed>,
    pub format: Format,
}

impl Source {
    /// Reads `bytes` (the whole file) named `name`. The format is detected unless given.
    pub fn read(name: &str, bytes: &[u8], format: Option<Format>) -> Result<Source, TablesError> {
        let bad = |reason: String| TablesError::Source {
            source_name: name.to_string(),
            reason,
        };
        if bytes.is_empty() {
            return Err(bad("the file is empty; nothing to load".into()));
        }
        let bytes: std::borrow::Cow<[u8]> = if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(bytes)
                .read_to_end(&mut out)
                .map_err(|e| bad(format!("gzip stream is corrupt: {e}")))?;
            out.into()
        } else {
            bytes.into()
        };
        let format = match format {
            Some(f) => f,
            None if bytes.starts_with(b"PAR1") => Format::Parquet,
            None => {
                let c = tarn_formats::classify(name, &bytes[..bytes.len().min(1 << 20)])
                    .map_err(|e| bad(e.reason().to_string()))?;
                c.format.parse().map_err(bad)?
            }
        };
        let source = match format {
            Format::Csv => read_csv(name, &bytes),
            Format::Json => read_json(&bytes).map_err(bad),
            Format::Parquet => read_parquet(&bytes).map_err(bad),
        }?;
        if source.columns().is_empty() && source.malformed.is_empty() {
            return Err(bad(format!(
                "no columns found in this {:?} file; a table needs at least one named field",
                source.format
            )));
        }
        Ok(source)
    }

    /// The source's column names (without the line column).
    pub fn columns(&self) -> Vec<String> {
        self.batches
            .first()
            .map(|b| {
                b.schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .filter(|n| n != LINE)
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }
}

fn read_csv(name: &str, bytes: &[u8]) -> Result<Source, TablesError> {
    let bad = |reason: String| TablesError::Source {
        source_name: name.to_string(),
        reason,
    };
    if bytes.contains(&0) {
        return Err(bad(
            "binary content (NUL bytes), not CSV text; check the file".into(),
        ));
    }
    let c = tarn_formats::classify(name, &bytes[..bytes.len().min(1 << 20)])
        .map_err(|e| bad(e.reason().to_string()))?;
    let delimiter = c
        .parameters
        .get("delimiter")
        .and_then(|d| d.bytes().next())
        .unwrap_or(b',');
    let header = c
        .parameters
        .get("header")
        .map(|h| h == "true")
        .unwrap_or(true);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut record = csv::ByteRecord::new();
    let mut names: Vec<String> = Vec::new();
    if header {
        if !reader
            .read_byte_record(&mut record)
            .map_err(|e| bad(format!("header: {e}")))?
        {
            return Err(bad("the file is empty; nothing to load".into()));
        }
        for (i, f) in record.iter().enumerate() {
            let n = String::from_utf8_lossy(f).trim().to_string();
            names.push(if n.is_empty() { format!("col{i}") } else { n });
        }
    } else {
        names = (0..c.columns.len()).map(|i| format!("col{i}")).collect();
    }
    let width = names.len();
    let mut fields: Vec<Field> = names
        .iter()
        .map(|n| Field::new(n, DataType::Utf8, true))
        .collect();
    fields.push(Field::new(LINE, DataType::Int64, false));
    let schema = Arc::new(Schema::new(fields));

    let mut batches = Vec::new();
    let mut malformed = Vec::new();
    let new_builders = || -> Vec<StringBuilder> {
        (0..width)
            .map(|_| StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 8))
            .collect()
    };
    let mut builders = new_builders();
    let mut lines = Int64Builder::with_capacity(BATCH_ROWS);
    let mut rows = 0usize;
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                malformed.push(Malformed {
                    line,
                    raw: String::new(),
                    reason: format!("unreadable CSV: {e}"),
                });
                continue;
            }
        }
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        if record.len() == 1 && record.get(0).map(|f| f.is_empty()).unwrap_or(false) {
            continue; // blank line
        }
        if record.len() != width {
            malformed.push(Malformed {
                line,
                raw: raw_of(&record, delimiter),
                reason: format!("expected {width} fields, found {}", record.len()),
            });
            continue;
        }
        let mut texts: Vec<&str> = Vec::with_capacity(width);
        let mut bad_utf8 = None;
        for (i, f) in record.iter().enumerate() {
            match std::str::from_utf8(f) {
                Ok(s) => texts.push(s),
                Err(_) => {
                    bad_utf8 = Some(i);
                    break;
                }
            }
        }
        if let Some(i) = bad_utf8 {
            malformed.push(Malformed {
                line,
                raw: raw_of(&record, delimiter),
                reason: format!("column `{}` is not valid UTF-8 text", names[i]),
            });
            continue;
        }
        for (b, s) in builders.iter_mut().zip(texts) {
            b.append_value(s);
        }
        lines.append_value(line as i64);
        rows += 1;
        if rows == BATCH_ROWS {
            batches.push(finish(&schema, &mut builders, &mut lines)?);
            builders = new_builders();
            rows = 0;
        }
    }
    if rows > 0 || batches.is_empty() {
        batches.push(finish(&schema, &mut builders, &mut lines)?);
    }
    Ok(Source {
        batches,
        malformed,
        format: Format::Csv,
    })
}

fn raw_of(record: &csv::ByteRecord, delimiter: u8) -> String {
    let parts: Vec<String> = record
        .iter()
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect();
    parts.join(&(delimiter as char).to_string())
}

fn finish(
    schema: &Arc<Schema>,
    builders: &mut [StringBuilder],
    lines: &mut Int64Builder,
) -> Result<RecordBatch, TablesError> {
    let mut cols: Vec<ArrayRef> = builders
        .iter_mut()
        .map(|b| Arc::new(b.finish()) as ArrayRef)
        .collect();
    cols.push(Arc::new(lines.finish()));
    Ok(RecordBatch::try_new(schema.clone(), cols)?)
}

fn with_row_numbers(batches: Vec<RecordBatch>, first: i64) -> Result<Vec<RecordBatch>, String> {
    let mut n = first;
    let mut out = Vec::with_capacity(batches.len());
    for b in batches {
        let mut fields: Vec<Field> = b
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new(LINE, DataType::Int64, false));
        let lines: Vec<i64> = (n..n + b.num_rows() as i64).collect();
        n += b.num_rows() as i64;
        let mut cols = b.columns().to_vec();
        cols.push(Arc::new(deltalake::arrow::array::Int64Array::from(lines)));
        out.push(
            RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).map_err(|e| e.to_string())?,
        );
    }
    Ok(out)
}

fn read_json(bytes: &[u8]) -> Result<Source, String> {
    use deltalake::arrow::json::reader::{infer_json_schema_from_seekable, ReaderBuilder};
    // Check every line first so a bad one is named by its line number.
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if let Err(e) = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(line) {
            return Err(format!("line {}: not a JSON object: {e}", i + 1));
        }
    }
    let (schema, _) = infer_json_schema_from_seekable(std::io::Cursor::new(bytes), None)
        .map_err(|e| format!("cannot infer a schema: {e}"))?;
    let reader = ReaderBuilder::new(Arc::new(schema))
        .with_batch_size(BATCH_ROWS)
        .build(std::io::Cursor::new(bytes))
        .map_err(|e| e.to_string())?;
    let batches: Vec<RecordBatch> = reader
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    Ok(Source {
        batches: with_row_numbers(batches, 1)?,
        malformed: vec![],
        format: Format::Json,
    })
}

fn read_parquet(bytes: &[u8]) -> Result<Source, String> {
    use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::copy_from_slice(bytes))
        .map_err(|e| format!("not a readable Parquet file: {e}"))?
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| e.to_string())?;
    let batches: Vec<RecordBatch> = reader
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    Ok(Source {
        batches: with_row_numbers(batches, 0)?,
        malformed: vec![],
        format: Format::Parquet,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_rows_are_set_aside_with_their_line() {
        let s = Source::read("f.csv", b"a,b\n1,2\n3\n4,5\n", None).unwrap();
        assert_eq!(s.rows(), 2);
        assert_eq!(s.malformed.len(), 1);
        assert_eq!(s.malformed[0].line, 3);
        assert!(s.malformed[0].reason.contains("expected 2 fields, found 1"));
    }

    #[test]
    fn empty_and_binary_files_are_refused() {
        assert!(Source::read("e.csv", b"", None)
            .unwrap_err()
            .to_string()
            .contains("empty"));
        let err = Source::read("b.csv", b"\x89PNG\0\0\x01", Some(Format::Csv))
            .unwrap_err()
            .to_string();
        assert!(err.contains("binary"), "{err}");
    }
}
