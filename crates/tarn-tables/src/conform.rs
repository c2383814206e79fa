//! Conforming a source to a table: null markers to nulls, casts to the declared (or inferred)
//! types, contract checks, and every breaking row set aside with its column and reason.

use crate::contract::{arrow_type, Contract};
use crate::source::{Malformed, Source, LINE};
use crate::TablesError;
use deltalake::arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    StringBuilder, TimestampMicrosecondArray,
};
use deltalake::arrow::compute::{cast_with_options, filter_record_batch, CastOptions};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use deltalake::arrow::util::display::{ArrayFormatter, FormatOptions};
use std::collections::HashSet;
use std::sync::Arc;

/// Columns of a rejected-rows table besides the source's own (all text).
pub const REJECT_COLUMNS: [&str; 6] = [
    "_line",
    "_column",
    "_reason",
    "_raw",
    "_load_id",
    "_rejected_at",
];

/// The outcome of conforming: rows to write, rows rejected.
#[derive(Debug)]
pub struct Conformed {
    pub schema: SchemaRef,
    pub good: Vec<RecordBatch>,
    pub rejected: Vec<RecordBatch>,
    pub rejected_rows: usize,
    /// Source columns the contract does not declare (left out of the table).
    pub ignored_columns: Vec<String>,
}

/// One column's target: name, type, and the contract rule when there is one.
struct Target<'a> {
    name: String,
    data_type: DataType,
    rule: Option<&'a crate::contract::ColumnRule>,
}

/// Picks the narrowest type that holds every non-null value of a text column without losing
/// anything: a cast must read every value, and the text must say no more than the type keeps
/// (a time of day is not a date, `007` is not the number 7, a 20-digit id is not a double,
/// `yes` is not `true`).
fn infer_type(arrays: &[ArrayRef]) -> DataType {
    let candidates = [
        DataType::Int64,
        DataType::Float64,
        DataType::Boolean,
        DataType::Date32,
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
    ];
    if arrays.iter().all(|a| a.null_count() == a.len()) {
        return DataType::Utf8;
    }
    'next: for t in candidates {
        for a in arrays {
            if !texts_fit(a, &t) {
                continue 'next;
            }
            let Ok(c) = cast_with_options(
                a,
                &t,
                &CastOptions {
                    safe: true,
                    ..Default::default()
                },
            ) else {
                continue 'next;
            };
            if c.null_count() != a.null_count() {
                continue 'next;
            }
        }
        return t;
    }
    DataType::Utf8
}

/// Whether every value's text is one `t` keeps whole (the cast decides whether it reads).
fn texts_fit(a: &ArrayRef, t: &DataType) -> bool {
    let Some(s) = a.as_any().downcast_ref::<StringArray>() else {
        return true;
    };
    let fits = |v: &str| -> bool {
        let v = v.trim();
        let digits = v.strip_prefix('-').unwrap_or(v);
        let integral = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
        match t {
            // Leading zeros are part of a code (zip, id), not of a number.
            DataType::Int64 => integral && (digits.len() == 1 || !digits.starts_with('0')),
            DataType::Float64 => {
                let significant = v.bytes().filter(u8::is_ascii_digit).count();
                !(integral && (significant > 15 || digits.len() > 1 && digits.starts_with('0')))
                    && v.bytes().any(|b| b.is_ascii_digit())
            }
            DataType::Boolean => v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false"),
            DataType::Date32 => chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").is_ok(),
            _ => true,
        }
    };
    s.iter().flatten().all(fits)
}

/// Replaces the null markers of a text column with nulls.
fn nulls_for_markers(a: &ArrayRef) -> ArrayRef {
    let Some(s) = a.as_any().downcast_ref::<StringArray>() else {
        return a.clone();
    };
    if !s.iter().any(|v| v.map(is_null_marker).unwrap_or(false)) {
        return a.clone();
    }
    Arc::new(
        s.iter()
            .map(|v| v.filter(|v| !is_null_marker(v)))
            .collect::<StringArray>(),
    )
}

fn is_null_marker(v: &str) -> bool {
    tarn_formats::NULL_MARKERS.contains(&v)
}

fn text_of(a: &ArrayRef, i: usize) -> String {
    if a.is_null(i) {
        return "null".into();
    }
    ArrayFormatter::try_new(a.as_ref(), &FormatOptions::default())
        .map(|f| f.value(i).to_string())
        .unwrap_or_default()
}

/// Conforms `source` to a contract, or to `existing` (the table's schema), or to types
/// inferred from the data.
pub fn conform(
    source: &Source,
    contract: Option<&Contract>,
    existing: Option<&Schema>,
    load_id: &str,
) -> Result<Conformed, TablesError> {
    conform_against(source, contract, existing, &[], load_id)
}

/// As [`conform`], with the key columns of the rows the table already holds (batches of the
/// contract's key columns, in key order), so an append cannot add a key twice.
pub fn conform_against(
    source: &Source,
    contract: Option<&Contract>,
    existing: Option<&Schema>,
    existing_keys: &[RecordBatch],
    load_id: &str,
) -> Result<Conformed, TablesError> {
    let src_cols = source.columns();
    // Normalise null markers once; every check below sees nulls.
    let inputs: Vec<Vec<ArrayRef>> = par_map(source.batches.len(), |b| {
        let batch = &source.batches[b];
        Ok(src_cols
            .iter()
            .map(|c| {
                nulls_for_markers(
                    batch
                        .column_by_name(c)
                        .expect("column from the same source"),
                )
            })
            .collect())
    })?;
    let mut targets: Vec<Target> = Vec::new();
    let mut ignored = Vec::new();
    match contract {
        Some(c) => {
            for rule in &c.columns {
                if !src_cols.contains(&rule.name) {
                    return Err(TablesError::Contract {
                        place: c.path.display().to_string(),
                        message: format!(
                            "the source has no column `{}` that the contract of {} declares; source columns: {}",
                            rule.name,
                            c.table,
                            src_cols.join(", ")
                        ),
                    });
                }
                targets.push(Target {
                    name: rule.name.clone(),
                    data_type: arrow_type(&rule.data_type).unwrap_or(DataType::Utf8),
                    rule: Some(rule),
                });
            }
            ignored = src_cols
                .iter()
                .filter(|s| c.rule(s).is_none())
                .cloned()
                .collect();
        }
        None => {
            for (i, name) in src_cols.iter().enumerate() {
                let data_type = match existing.and_then(|s| s.field_with_name(name).ok()) {
                    Some(f) => f.data_type().clone(),
                    None => {
                        let col: Vec<ArrayRef> = inputs.iter().map(|b| b[i].clone()).collect();
                        if col
                            .first()
                            .map(|a| a.data_type() == &DataType::Utf8)
                            .unwrap_or(true)
                        {
                            infer_type(&col)
                        } else {
                            col[0].data_type().clone()
                        }
                    }
                };
                targets.push(Target {
                    name: name.clone(),
                    data_type,
                    rule: None,
                });
            }
        }
    }
    // Checks run on a nullable schema; rows that pass are re-labelled with the contract's
    // nullability, so the Delta table itself declares NOT NULL where the contract does.
    let loose: SchemaRef = Arc::new(Schema::new(
        targets
            .iter()
            .map(|t| Field::new(&t.name, t.data_type.clone(), true))
            .collect::<Vec<_>>(),
    ));
    let schema: SchemaRef = Arc::new(Schema::new(
        targets
            .iter()
            .map(|t| {
                Field::new(
                    &t.name,
                    t.data_type.clone(),
                    t.rule.map(|r| r.nullable).unwrap_or(true),
                )
            })
            .collect::<Vec<_>>(),
    ));
    let reject_schema = reject_schema(&src_cols);
    let key: Vec<usize> = contract
        .map(|c| {
            c.key
                .iter()
                .filter_map(|k| targets.iter().position(|t| &t.name == k))
                .collect()
        })
        .unwrap_or_default();
    let now = chrono::Utc::now().timestamp_micros();

    // Pass 1, batches in parallel: cast every column and check its rules.
    let mut checked: Vec<Checked> = par_map(source.batches.len(), |b| {
        check_batch(
            &targets,
            &src_cols,
            &inputs[b],
            source.batches[b].num_rows(),
        )
    })?;

    // Pass 2, in source order: a key may appear once, and not again if the table has it.
    if !key.is_empty() {
        dedupe_keys(&key, &targets, &mut checked, existing_keys)?;
    }

    // Pass 3, batches in parallel: split rows that pass from rows set aside.
    let split = par_map(checked.len(), |b| {
        split_batch(
            &checked[b],
            &inputs[b],
            &source.batches[b],
            (&loose, &schema, &reject_schema),
            load_id,
            now,
        )
    })?;
    let mut good = Vec::new();
    let mut rejected = Vec::new();
    let mut rejected_rows = 0;
    for (g, r) in split {
        good.push(g);
        if let Some(r) = r {
            rejected_rows += r.num_rows();
            rejected.push(r);
        }
    }
    if !source.malformed.is_empty() {
        rejected_rows += source.malformed.len();
        rejected.push(malformed_batch(
            &reject_schema,
            &src_cols,
            &source.malformed,
            load_id,
            now,
        )?);
    }
    good.retain(|b| b.num_rows() > 0);
    Ok(Conformed {
        schema,
        good,
        rejected,
        rejected_rows,
        ignored_columns: ignored,
    })
}

/// Why a row is set aside: the column and the reason.
type Why = Option<(String, String)>;

/// One batch after pass 1: typed columns, and why each row is set aside (if it is).
struct Checked {
    cols: Vec<ArrayRef>,
    why: Vec<Why>,
}

/// Runs `f` over `0..n` on every core, keeping the order of results.
fn par_map<T: Send>(
    n: usize,
    f: impl Fn(usize) -> Result<T, TablesError> + Sync,
) -> Result<Vec<T>, TablesError> {
    let threads = std::thread::available_parallelism()
        .map(|t| t.get())
        .unwrap_or(1)
        .min(n.max(1));
    if threads <= 1 {
        return (0..n).map(f).collect();
    }
    let f = &f;
    let chunks: Vec<Result<Vec<T>, TablesError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (t..n)
                        .step_by(threads)
                        .map(f)
                        .collect::<Result<Vec<T>, _>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("conform worker"))
            .collect()
    });
    let mut per_thread: Vec<std::vec::IntoIter<T>> = Vec::with_capacity(threads);
    for c in chunks {
        per_thread.push(c?.into_iter());
    }
    Ok((0..n)
        .map(|i| {
            per_thread[i % threads]
                .next()
                .expect("one result per index")
        })
        .collect())
}

fn check_batch(
    targets: &[Target],
    src_cols: &[String],
    inputs: &[ArrayRef],
    n: usize,
) -> Result<Checked, TablesError> {
    let mut why: Vec<Why> = vec![None; n];
    let mut cols: Vec<ArrayRef> = Vec::with_capacity(targets.len());
    for t in targets {
        let si = src_cols
            .iter()
            .position(|c| c == &t.name)
            .expect("target from source");
        let input = &inputs[si];
        let cast = cast_with_options(
            input,
            &t.data_type,
            &CastOptions {
                safe: true,
                ..Default::default()
            },
        )
        .map_err(|e| TablesError::Source {
            source_name: t.name.clone(),
            reason: format!(
                "cannot convert {} to {}: {e}",
                input.data_type(),
                t.data_type
            ),
        })?;
        if cast.null_count() != input.null_count() {
            for (i, w) in why.iter_mut().enumerate() {
                if w.is_none() && input.is_valid(i) && cast.is_null(i) {
                    *w = Some((
                        t.name.clone(),
                        format!(
                            "cannot read `{}` as {}",
                            text_of(input, i),
                            type_word(&t.data_type)
                        ),
                    ));
                }
            }
        }
        if let Some(rule) = t.rule {
            check_rule(rule, &cast, &mut why);
        }
        cols.push(cast);
    }
    Ok(Checked { cols, why })
}

fn dedupe_keys(
    key: &[usize],
    targets: &[Target],
    checked: &mut [Checked],
    existing_keys: &[RecordBatch],
) -> Result<(), TablesError> {
    use deltalake::arrow::row::{RowConverter, SortField};
    let types: Vec<DataType> = key.iter().map(|&c| targets[c].data_type.clone()).collect();
    let converter = RowConverter::new(types.iter().map(|t| SortField::new(t.clone())).collect())?;
    let encode = |cols: Vec<ArrayRef>| -> Result<deltalake::arrow::row::Rows, TablesError> {
        let cols: Vec<ArrayRef> = cols
            .iter()
            .zip(&types)
            .map(|(c, t)| cast_with_options(c, t, &CastOptions::default()))
            .collect::<Result<_, _>>()?;
        Ok(converter.convert_columns(&cols)?)
    };
    let old: Vec<_> = existing_keys
        .iter()
        .map(|b| encode(b.columns().to_vec()))
        .collect::<Result<_, _>>()?;
    let new: Vec<_> = checked
        .iter()
        .map(|c| encode(key.iter().map(|&k| c.cols[k].clone()).collect()))
        .collect::<Result<_, _>>()?;
    let in_table: HashSet<&[u8]> = old
        .iter()
        .flat_map(|r| r.iter().map(|row| row.data()))
        .collect();
    let mut seen: HashSet<&[u8]> = HashSet::with_capacity(new.iter().map(|r| r.num_rows()).sum());
    let key_name = key
        .iter()
        .map(|&c| targets[c].name.as_str())
        .collect::<Vec<_>>()
        .join(",");
    for (c, rows) in checked.iter_mut().zip(&new) {
        for (i, w) in c.why.iter_mut().enumerate() {
            if w.is_some() {
                continue;
            }
            let k = rows.row(i).data();
            let clash = if in_table.contains(k) {
                Some("already in the table")
            } else if !seen.insert(k) {
                Some("within this load")
            } else {
                None
            };
            if let Some(how) = clash {
                let values: Vec<String> = key.iter().map(|&col| text_of(&c.cols[col], i)).collect();
                *w = Some((
                    key_name.clone(),
                    format!("duplicate key ({}) {how}", values.join(", ")),
                ));
            }
        }
    }
    Ok(())
}

fn split_batch(
    c: &Checked,
    inputs: &[ArrayRef],
    batch: &RecordBatch,
    (loose, schema, reject_schema): (&SchemaRef, &SchemaRef, &SchemaRef),
    load_id: &str,
    now: i64,
) -> Result<(RecordBatch, Option<RecordBatch>), TablesError> {
    let n = batch.num_rows();
    let typed = RecordBatch::try_new(loose.clone(), c.cols.clone())?;
    let keep: BooleanArray = c.why.iter().map(|w| Some(w.is_none())).collect();
    let bad_n = keep.false_count();
    let kept = if bad_n == 0 {
        typed
    } else {
        filter_record_batch(&typed, &keep)?
    };
    let good = RecordBatch::try_new(schema.clone(), kept.columns().to_vec())?;
    if bad_n == 0 {
        return Ok((good, None));
    }
    let lines = batch
        .column_by_name(LINE)
        .and_then(|c| c.as_any().downcast_ref::<Int64Array>().cloned())
        .unwrap_or_else(|| Int64Array::from(vec![0; n]));
    let drop: BooleanArray = c.why.iter().map(|w| Some(w.is_some())).collect();
    let mut cols: Vec<ArrayRef> = Vec::new();
    for a in inputs {
        let text = cast_with_options(a, &DataType::Utf8, &CastOptions::default())?;
        cols.push(deltalake::arrow::compute::filter(&text, &drop)?);
    }
    let rows: Vec<usize> = (0..n).filter(|&i| c.why[i].is_some()).collect();
    cols.push(Arc::new(Int64Array::from(
        rows.iter().map(|&i| lines.value(i)).collect::<Vec<_>>(),
    )));
    cols.push(Arc::new(StringArray::from(
        rows.iter()
            .map(|&i| c.why[i].as_ref().map(|w| w.0.clone()))
            .collect::<Vec<_>>(),
    )));
    cols.push(Arc::new(StringArray::from(
        rows.iter()
            .map(|&i| c.why[i].as_ref().map(|w| w.1.clone()))
            .collect::<Vec<_>>(),
    )));
    cols.push(Arc::new(StringArray::from(vec![
        None::<String>;
        rows.len()
    ])));
    cols.push(Arc::new(StringArray::from(vec![
        Some(load_id.to_string());
        rows.len()
    ])));
    cols.push(Arc::new(
        TimestampMicrosecondArray::from(vec![now; rows.len()]).with_timezone("UTC"),
    ));
    Ok((
        good,
        Some(RecordBatch::try_new(reject_schema.clone(), cols)?),
    ))
}

fn type_word(t: &DataType) -> &'static str {
    match t {
        DataType::Boolean => "boolean",
        DataType::Int8 => "tinyint",
        DataType::Int16 => "smallint",
        DataType::Int32 => "int",
        DataType::Int64 => "bigint",
        DataType::Float32 => "float",
        DataType::Float64 => "double",
        DataType::Date32 => "date",
        DataType::Timestamp(_, _) => "timestamp",
        _ => "string",
    }
}

fn check_rule(
    rule: &crate::contract::ColumnRule,
    cast: &ArrayRef,
    why: &mut [Option<(String, String)>],
) {
    let n = cast.len();
    if !rule.nullable && cast.null_count() > 0 {
        for (i, w) in why.iter_mut().enumerate() {
            if w.is_none() && cast.is_null(i) {
                *w = Some((
                    rule.name.clone(),
                    "null in a column the contract declares not nullable".into(),
                ));
            }
        }
    }
    if let Some(accepted) = &rule.accepted_values {
        let set: HashSet<&str> = accepted.iter().map(String::as_str).collect();
        let opts = FormatOptions::default();
        let Ok(f) = ArrayFormatter::try_new(cast.as_ref(), &opts) else {
            return;
        };
        let text = cast.as_any().downcast_ref::<StringArray>();
        for (i, w) in why.iter_mut().enumerate().take(n) {
            if w.is_none() && cast.is_valid(i) {
                let accepted = match text {
                    Some(t) => set.contains(t.value(i)),
                    None => set.contains(f.value(i).to_string().as_str()),
                };
                if !accepted {
                    *w = Some((
                        rule.name.clone(),
                        format!("`{}` is not an accepted value", f.value(i)),
                    ));
                }
            }
        }
    }
    if rule.min.is_some() || rule.max.is_some() {
        let Ok(nums) = cast_with_options(cast, &DataType::Float64, &CastOptions::default()) else {
            return;
        };
        let nums = nums
            .as_any()
            .downcast_ref::<Float64Array>()
            .expect("cast to f64");
        for (i, w) in why.iter_mut().enumerate().take(n) {
            if w.is_some() || nums.is_null(i) {
                continue;
            }
            let v = nums.value(i);
            if let Some(lo) = rule.min.filter(|lo| v < *lo) {
                *w = Some((rule.name.clone(), format!("{v} is below the minimum {lo}")));
            } else if let Some(hi) = rule.max.filter(|hi| v > *hi) {
                *w = Some((rule.name.clone(), format!("{v} is above the maximum {hi}")));
            }
        }
    }
}

/// The schema of `TABLE_rejected`: the source's columns as text, then where and why.
pub fn reject_schema(src_cols: &[String]) -> SchemaRef {
    let mut fields: Vec<Field> = src_cols
        .iter()
        .map(|c| Field::new(c, DataType::Utf8, true))
        .collect();
    fields.push(Field::new("_line", DataType::Int64, true));
    fields.push(Field::new("_column", DataType::Utf8, true));
    fields.push(Field::new("_reason", DataType::Utf8, true));
    fields.push(Field::new("_raw", DataType::Utf8, true));
    fields.push(Field::new("_load_id", DataType::Utf8, true));
    fields.push(Field::new(
        "_rejected_at",
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        true,
    ));
    Arc::new(Schema::new(fields))
}

fn malformed_batch(
    schema: &SchemaRef,
    src_cols: &[String],
    rows: &[Malformed],
    load_id: &str,
    now: i64,
) -> Result<RecordBatch, TablesError> {
    let mut cols: Vec<ArrayRef> = src_cols
        .iter()
        .map(|_| Arc::new(StringArray::from(vec![None::<String>; rows.len()])) as ArrayRef)
        .collect();
    cols.push(Arc::new(Int64Array::from(
        rows.iter().map(|m| m.line as i64).collect::<Vec<_>>(),
    )));
    cols.push(Arc::new(StringArray::from(vec![
        None::<String>;
        rows.len()
    ])));
    let mut reasons = StringBuilder::new();
    let mut raws = StringBuilder::new();
    for m in rows {
        reasons.append_value(&m.reason);
        raws.append_value(&m.raw);
    }
    cols.push(Arc::new(reasons.finish()));
    cols.push(Arc::new(raws.finish()));
    cols.push(Arc::new(StringArray::from(vec![
        Some(load_id.to_string());
        rows.len()
    ])));
    cols.push(Arc::new(
        TimestampMicrosecondArray::from(vec![now; rows.len()]).with_timezone("UTC"),
    ));
    Ok(RecordBatch::try_new(schema.clone(), cols)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::Contract;

    fn contract(text: &str) -> Contract {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.yml");
        std::fs::write(&p, text).unwrap();
        Contract::load(&p).unwrap()
    }

    #[test]
    fn contract_breaks_are_rejected_with_column_and_reason() {
        let c = contract(
            "table: f.trusted.t\nkey: [id]\ncolumns:\n  - {name: id, type: int, nullable: false}\n  - {name: carrier, type: string, accepted_values: [UA, AA]}\n  - {name: delay, type: double, min: -100, max: 2000}\n",
        );
        let src = Source::read(
            "t.csv",
            b"id,carrier,delay,extra\n1,UA,5,x\n2,ZZ,1,x\nabc,AA,1,x\n3,AA,9999,x\n1,AA,0,x\n,UA,NA,x\n4,AA,NA,x\n",
            None,
        )
        .unwrap();
        let out = conform(&src, Some(&c), None, "load1").unwrap();
        let good: usize = out.good.iter().map(|b| b.num_rows()).sum();
        assert_eq!(good, 2, "rows 1 and 4 pass");
        assert_eq!(out.rejected_rows, 5);
        assert_eq!(out.ignored_columns, ["extra"]);
        let r = &out.rejected[0];
        let reasons = r
            .column_by_name("_reason")
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        let all: Vec<&str> = reasons.iter().flatten().collect();
        assert!(
            all.iter()
                .any(|r| r.contains("`ZZ` is not an accepted value")),
            "{all:?}"
        );
        assert!(
            all.iter().any(|r| r.contains("cannot read `abc` as int")),
            "{all:?}"
        );
        assert!(
            all.iter().any(|r| r.contains("above the maximum")),
            "{all:?}"
        );
        assert!(all.iter().any(|r| r.contains("duplicate key")), "{all:?}");
        assert!(all.iter().any(|r| r.contains("not nullable")), "{all:?}");
        let lines = r
            .column_by_name("_line")
            .unwrap()
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(lines.value(0), 3);
    }

    fn types_of(c: &Conformed) -> Vec<DataType> {
        c.schema
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect()
    }

    #[test]
    fn inference_keeps_na_numbers_numeric() {
        let src = Source::read("t.csv", b"a,b,c\n1,2.5,x\nNA,NA,y\n3,,z\n", None).unwrap();
        let out = conform(&src, None, None, "l").unwrap();
        let types = types_of(&out);
        assert_eq!(types, [DataType::Int64, DataType::Float64, DataType::Utf8]);
        assert_eq!(out.rejected_rows, 0);
    }

    #[test]
    fn inference_never_loses_what_the_text_says() {
        let src = Source::read(
            "t.csv",
            b"ts,d,zip,id,flag,n\n2013-01-01T10:00:00Z,2013-01-01,02134,12345678901234567890,yes,1.5\n2013-01-01T11:30:00+02:00,2013-01-02,10001,1,no,2\n",
            None,
        )
        .unwrap();
        let out = conform(&src, None, None, "l").unwrap();
        let types = types_of(&out);
        assert_eq!(
            types,
            [
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                DataType::Date32,
                DataType::Utf8,
                DataType::Utf8,
                DataType::Utf8,
                DataType::Float64,
            ]
        );
        let ts = out.good[0]
            .column(0)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        // 10:00Z and 11:30+02:00 (09:30Z): the time and the zone are kept as the instant.
        assert_eq!(ts.value(0) - ts.value(1), 30 * 60 * 1_000_000);
    }
}
