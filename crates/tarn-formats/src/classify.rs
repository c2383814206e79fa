//! Classifying an object and inferring its schema: CSV (header and delimiter detection),
//! JSON lines, Parquet, each possibly gzip-compressed. Null markers never widen a type.

use crate::{Field, FormatError};
use std::collections::BTreeMap;
use std::io::Read;

/// How many decompressed bytes of a text object are sampled, as a Glue crawler does.
pub const SAMPLE_BYTES: usize = 4 * 1024 * 1024;

/// Values read as null, not as strings.
pub const NULL_MARKERS: [&str; 6] = ["", "NA", "N/A", "NULL", "null", "\\N"];

/// What an object turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub struct Classified {
    /// `csv`, `json` or `parquet`.
    pub format: String,
    pub compression: Option<String>,
    pub columns: Vec<Field>,
    /// Format details kept as table parameters (delimiter, header).
    pub parameters: BTreeMap<String, String>,
}

/// A column's type as the sample suggests; ordered from narrowest to widest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Null,
    Boolean,
    Bigint,
    Double,
    Date,
    Timestamp,
    String,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Null | Kind::String => "string",
            Kind::Boolean => "boolean",
            Kind::Bigint => "bigint",
            Kind::Double => "double",
            Kind::Date => "date",
            Kind::Timestamp => "timestamp",
        }
    }

    pub fn of(value: &str) -> Kind {
        if NULL_MARKERS.contains(&value) {
            return Kind::Null;
        }
        let v = value.trim();
        // As loads infer (tarn-tables' conform): leading zeros make a code, not a number, and
        // an integer too long for a bigint is not made a double.
        let digits = v.strip_prefix('-').unwrap_or(v);
        let integral = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
        if integral && digits.len() > 1 && digits.starts_with('0') {
            return Kind::String;
        }
        if v.parse::<i64>().is_ok() {
            return Kind::Bigint;
        }
        if integral {
            return Kind::String;
        }
        if v.parse::<f64>().is_ok() && v.chars().any(|c| c.is_ascii_digit()) {
            return Kind::Double;
        }
        if v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false") {
            return Kind::Boolean;
        }
        if chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").is_ok() {
            return Kind::Date;
        }
        if chrono::DateTime::parse_from_rfc3339(v).is_ok()
            || chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%d %H:%M:%S").is_ok()
            || chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S").is_ok()
        {
            return Kind::Timestamp;
        }
        Kind::String
    }

    /// The narrowest kind holding both.
    pub fn widen(self, other: Kind) -> Kind {
        use Kind::*;
        match (self, other) {
            (a, b) if a == b => a,
            (Null, x) | (x, Null) => x,
            (Bigint, Double) | (Double, Bigint) => Double,
            (Date, Timestamp) | (Timestamp, Date) => Timestamp,
            _ => String,
        }
    }
}

/// Widens catalog type names the same way (for merging with what the catalog has).
pub fn widen_type(a: &str, b: &str) -> String {
    if a == b {
        return a.to_string();
    }
    let rank = |t: &str| match t {
        "boolean" => Some(Kind::Boolean),
        "int" | "bigint" | "smallint" | "tinyint" => Some(Kind::Bigint),
        "float" | "double" => Some(Kind::Double),
        "date" => Some(Kind::Date),
        "timestamp" => Some(Kind::Timestamp),
        "string" => Some(Kind::String),
        _ => None,
    };
    match (rank(a), rank(b)) {
        (Some(x), Some(y)) => x.widen(y).name().to_string(),
        _ => "string".to_string(),
    }
}

/// Classifies an object from its bytes (the whole object, or its first bytes for text).
pub fn classify(key: &str, bytes: &[u8]) -> Result<Classified, FormatError> {
    let skip = |reason: String| FormatError::Unreadable {
        key: key.to_string(),
        reason,
    };
    if bytes.is_empty() {
        return Err(skip("the file is empty".into()));
    }
    if bytes.starts_with(b"PAR1") {
        return parquet_schema(bytes).map_err(skip);
    }
    let (text, compression) = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        let mut dec = flate2::read::MultiGzDecoder::new(bytes).take(SAMPLE_BYTES as u64);
        if let Err(e) = dec.read_to_end(&mut out) {
            if out.is_empty() {
                return Err(skip(format!("gzip stream is corrupt: {e}")));
            }
        }
        if out.is_empty() {
            return Err(skip("the gzip file holds no data".into()));
        }
        (out, Some("gzip".to_string()))
    } else {
        (bytes[..bytes.len().min(SAMPLE_BYTES)].to_vec(), None)
    };
    if text.contains(&0) {
        return Err(skip(
            "binary content (NUL bytes), not CSV or JSON text".into(),
        ));
    }
    // A sample may cut a multi-byte character at its end; only the start must be valid UTF-8.
    let text = match std::str::from_utf8(&text) {
        Ok(t) => t.to_string(),
        Err(e) if e.valid_up_to() + 4 >= text.len() => {
            String::from_utf8_lossy(&text[..e.valid_up_to()]).into_owned()
        }
        Err(e) => {
            return Err(skip(format!(
                "not UTF-8 text (invalid byte at offset {})",
                e.valid_up_to()
            )))
        }
    };
    let truncated = text.len() >= SAMPLE_BYTES;
    let mut c = if text.trim_start().starts_with('{') {
        json_schema(&text, truncated).map_err(skip)?
    } else {
        csv_schema(&text, truncated).map_err(skip)?
    };
    if let Some(comp) = &compression {
        c.parameters.insert("compression".into(), comp.clone());
    }
    c.compression = compression;
    Ok(c)
}

fn parquet_schema(bytes: &[u8]) -> Result<Classified, String> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let b = bytes::Bytes::copy_from_slice(bytes);
    let builder = ParquetRecordBatchReaderBuilder::try_new(b)
        .map_err(|e| format!("not a readable Parquet file: {e}"))?;
    let rows = builder.metadata().file_metadata().num_rows();
    let columns = builder
        .schema()
        .fields()
        .iter()
        .map(|f| Field {
            name: f.name().clone(),
            data_type: arrow_type_name(f.data_type()),
            nullable: f.is_nullable(),
        })
        .collect();
    let mut parameters = BTreeMap::new();
    parameters.insert("classification".into(), "parquet".into());
    parameters.insert("recordCount".into(), rows.to_string());
    Ok(Classified {
        format: "parquet".into(),
        compression: None,
        columns,
        parameters,
    })
}

/// The catalog type name of an Arrow type.
pub fn arrow_type_name(t: &arrow::datatypes::DataType) -> String {
    use arrow::datatypes::DataType::*;
    match t {
        Boolean => "boolean".into(),
        Int8 | Int16 | UInt8 => "smallint".into(),
        Int32 | UInt16 => "int".into(),
        Int64 | UInt32 | UInt64 => "bigint".into(),
        Float16 | Float32 => "float".into(),
        Float64 => "double".into(),
        Date32 | Date64 => "date".into(),
        Timestamp(_, _) => "timestamp".into(),
        Decimal128(p, s) | Decimal256(p, s) => format!("decimal({p},{s})"),
        Binary | LargeBinary | BinaryView | FixedSizeBinary(_) => "binary".into(),
        List(f) | LargeList(f) => format!("array<{}>", arrow_type_name(f.data_type())),
        Struct(_) | Map(_, _) => "struct".into(),
        _ => "string".into(),
    }
}

fn json_schema(text: &str, truncated: bool) -> Result<Classified, String> {
    let mut kinds: Vec<(String, Kind)> = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let n = lines.len();
    let mut rows = 0;
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(_) if truncated && i + 1 == n => break,
            Err(e) => return Err(format!("line {}: not a JSON object: {e}", i + 1)),
        };
        let obj = v
            .as_object()
            .ok_or_else(|| format!("line {}: JSON lines must hold one object per line", i + 1))?;
        rows += 1;
        for (k, val) in obj {
            let kind = match val {
                serde_json::Value::Null => Kind::Null,
                serde_json::Value::Bool(_) => Kind::Boolean,
                serde_json::Value::Number(n) if n.is_i64() => Kind::Bigint,
                serde_json::Value::Number(_) => Kind::Double,
                serde_json::Value::String(s) => match Kind::of(s) {
                    k @ (Kind::Date | Kind::Timestamp) => k,
                    _ => Kind::String,
                },
                _ => Kind::String,
            };
            match kinds.iter_mut().find(|(name, _)| name == k) {
                Some((_, existing)) => *existing = existing.widen(kind),
                None => kinds.push((k.clone(), kind)),
            }
        }
    }
    if rows == 0 {
        return Err("no JSON objects found".into());
    }
    let mut parameters = BTreeMap::new();
    parameters.insert("classification".into(), "json".into());
    Ok(Classified {
        format: "json".into(),
        compression: None,
        columns: kinds
            .into_iter()
            .map(|(n, k)| Field::new(n, k.name()))
            .collect(),
        parameters,
    })
}

/// The delimiter among `, | \t ;` that splits the first lines into the same number (> 1) of
/// fields most consistently.
pub(crate) fn detect_delimiter(text: &str) -> u8 {
    let head: Vec<&str> = text.lines().filter(|l| !l.is_empty()).take(50).collect();
    let mut best = (b',', 0usize);
    for d in [b',', b'|', b'\t', b';'] {
        let mut rdr = csv::ReaderBuilder::new()
            .delimiter(d)
            .has_headers(false)
            .flexible(true)
            .from_reader(head.join("\n").as_bytes().to_vec().as_slice())
            .into_records()
            .filter_map(Result::ok)
            .map(|r| r.len())
            .collect::<Vec<_>>();
        if rdr.is_empty() {
            continue;
        }
        let first = rdr[0];
        if first < 2 {
            continue;
        }
        // Drop a possibly cut last line of a sample.
        if rdr.len() > 2 {
            rdr.pop();
        }
        let consistent = rdr.iter().filter(|&&n| n == first).count();
        let score = if consistent == rdr.len() {
            first * 1000 + consistent
        } else {
            consistent
        };
        if score > best.1 {
            best = (d, score);
        }
    }
    best.0
}

fn csv_schema(text: &str, truncated: bool) -> Result<Classified, String> {
    let delimiter = detect_delimiter(text);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut records: Vec<csv::StringRecord> = Vec::new();
    for (i, r) in reader.records().enumerate() {
        match r {
            Ok(r) => records.push(r),
            Err(_) if truncated => break,
            Err(e) => return Err(format!("record {}: {e}", i + 1)),
        }
    }
    if truncated && records.len() > 2 {
        records.pop(); // the sample may cut the last row
    }
    let first = records.first().ok_or("no rows")?;
    let width = first.len();
    if width < 2 && delimiter == b',' && records.len() < 2 {
        // One value, one line: still a CSV, but say what was found.
    }
    let data_kinds = |rows: &[csv::StringRecord]| {
        let mut kinds = vec![Kind::Null; width];
        for r in rows {
            for (i, v) in r.iter().enumerate().take(width) {
                kinds[i] = kinds[i].widen(Kind::of(v));
            }
        }
        kinds
    };
    let first_kinds: Vec<Kind> = first.iter().map(Kind::of).collect();
    let rest_kinds = data_kinds(&records[1.min(records.len())..]);
    let first_all_text = first_kinds.iter().all(|k| *k == Kind::String);
    let distinct = {
        let mut v: Vec<&str> = first.iter().collect();
        v.sort();
        v.dedup();
        v.len() == width
    };
    // Glue's rule: a header is a first row of distinct strings over rows that are not all strings,
    // or a first row of distinct strings when every row is text but the first differs in shape.
    let has_header = first_all_text
        && distinct
        && (records.len() == 1 || rest_kinds.iter().any(|k| *k != Kind::String) || width > 1);
    let (names, kinds): (Vec<String>, Vec<Kind>) = if has_header {
        (first.iter().map(sanitize_column).collect(), rest_kinds)
    } else {
        (
            (0..width).map(|i| format!("col{i}")).collect(),
            data_kinds(&records),
        )
    };
    let mut parameters = BTreeMap::new();
    parameters.insert("classification".into(), "csv".into());
    parameters.insert("delimiter".into(), (delimiter as char).to_string());
    parameters.insert("header".into(), has_header.to_string());
    parameters.insert("null_markers".into(), NULL_MARKERS.join(","));
    Ok(Classified {
        format: "csv".into(),
        compression: None,
        columns: names
            .into_iter()
            .zip(kinds)
            .map(|(n, k)| Field::new(n, k.name()))
            .collect(),
        parameters,
    })
}

/// A header cell as a column name: trimmed, lowercase, `_` for anything else.
pub fn sanitize_column(s: &str) -> String {
    let mut out: String = s
        .trim()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() {
        out = "_col".into();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn na_does_not_make_numbers_strings() {
        let c = classify(
            "f.csv",
            b"year,dep_time,carrier\n2013,517,UA\n2013,NA,AA\n2013,,B6\n",
        )
        .unwrap();
        let types: Vec<&str> = c.columns.iter().map(|c| c.data_type.as_str()).collect();
        assert_eq!(types, ["bigint", "bigint", "string"]);
        assert_eq!(c.parameters["header"], "true");
    }

    #[test]
    fn delimiters_are_detected() {
        for (d, text) in [
            (",", "a,b\n1,2\n"),
            ("|", "a|b\n1|2\n"),
            ("\t", "a\tb\n1\t2\n"),
            (";", "a;b\n1,5;2\n"),
        ] {
            let c = classify("x.csv", text.as_bytes()).unwrap();
            assert_eq!(c.parameters["delimiter"], d, "{text:?}");
            assert_eq!(c.columns.len(), 2, "{text:?}");
        }
    }

    #[test]
    fn headerless_csv_gets_col_names() {
        let c = classify("x.csv", b"1,2.5\n3,4\n").unwrap();
        assert_eq!(c.columns[0].name, "col0");
        assert_eq!(c.columns[1].data_type, "double");
    }

    #[test]
    fn gzip_and_json_lines() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"{\"a\": 1, \"b\": \"x\"}\n{\"a\": 2.5, \"c\": true}\n")
            .unwrap();
        let c = classify("x.json.gz", &gz.finish().unwrap()).unwrap();
        assert_eq!(c.format, "json");
        assert_eq!(c.compression.as_deref(), Some("gzip"));
        assert_eq!(c.columns[0].data_type, "double");
        assert_eq!(c.columns.len(), 3);
    }

    #[test]
    fn bad_files_get_reasons() {
        let empty = classify("e.csv", b"").unwrap_err().to_string();
        assert!(empty.contains("empty"), "{empty}");
        let bin = classify("b.csv", &[0x89, b'P', b'N', b'G', 0, 0, 1, 2])
            .unwrap_err()
            .to_string();
        assert!(bin.contains("binary"), "{bin}");
    }

    #[test]
    fn widening() {
        assert_eq!(widen_type("bigint", "double"), "double");
        assert_eq!(widen_type("bigint", "string"), "string");
        assert_eq!(widen_type("date", "timestamp"), "timestamp");
    }
}
