//! Data contracts: `contracts/*.yml` next to `tarn.yml`, each giving one table's columns with
//! types, nullability, accepted values and ranges, and a unique key.

use crate::TablesError;
use deltalake::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// One table's contract.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Contract {
    /// `domain.layer.table`.
    pub table: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Columns whose values together must be unique.
    #[serde(default)]
    pub key: Vec<String>,
    /// Columns the Delta table is partitioned by.
    #[serde(default)]
    pub partition_by: Vec<String>,
    pub columns: Vec<ColumnRule>,
    /// Where the contract was read from (for error messages).
    #[serde(skip)]
    pub path: PathBuf,
}

/// What one column must hold.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ColumnRule {
    pub name: String,
    #[serde(rename = "type")]
    pub data_type: String,
    #[serde(default = "yes")]
    pub nullable: bool,
    /// The only values allowed (compared as text).
    #[serde(default)]
    pub accepted_values: Option<Vec<String>>,
    /// Smallest allowed value (numbers).
    #[serde(default)]
    pub min: Option<f64>,
    /// Largest allowed value (numbers).
    #[serde(default)]
    pub max: Option<f64>,
    #[serde(default)]
    pub description: Option<String>,
}

fn yes() -> bool {
    true
}

/// The Arrow type of a catalog/contract type name.
pub fn arrow_type(name: &str) -> Option<DataType> {
    Some(match name {
        "boolean" | "bool" => DataType::Boolean,
        "tinyint" => DataType::Int8,
        "smallint" => DataType::Int16,
        "int" | "integer" => DataType::Int32,
        "bigint" | "long" => DataType::Int64,
        "float" => DataType::Float32,
        "double" => DataType::Float64,
        "string" => DataType::Utf8,
        "date" => DataType::Date32,
        "timestamp" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        _ => return None,
    })
}

const TYPES: &str = "boolean, smallint, int, bigint, float, double, string, date, timestamp";

impl Contract {
    /// Reads and checks one contract file.
    pub fn load(path: &Path) -> Result<Contract, TablesError> {
        let text = std::fs::read_to_string(path).map_err(|e| TablesError::Contract {
            place: path.display().to_string(),
            message: format!("cannot read: {e}"),
        })?;
        let de = serde_norway::Deserializer::from_str(&text);
        let mut c: Contract = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            let inner = e.into_inner();
            let line = inner
                .location()
                .map(|l| format!(":{}", l.line()))
                .unwrap_or_default();
            let msg = inner.to_string();
            let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
            TablesError::Contract {
                place: format!("{}{line}", path.display()),
                message: format!("{msg} (at `{field}`)"),
            }
        })?;
        c.path = path.to_path_buf();
        c.check(&text)?;
        Ok(c)
    }

    fn check(&self, text: &str) -> Result<(), TablesError> {
        let line_of = |needle: &str| {
            text.lines()
                .position(|l| l.contains(needle))
                .map(|i| format!(":{}", i + 1))
                .unwrap_or_default()
        };
        let err = |needle: &str, message: String| TablesError::Contract {
            place: format!("{}{}", self.path.display(), line_of(needle)),
            message,
        };
        if self.table.split('.').count() != 3 {
            return Err(err(
                "table:",
                format!("`table: {}` must be domain.layer.table", self.table),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for c in &self.columns {
            if arrow_type(&c.data_type).is_none() {
                return Err(err(
                    &c.data_type,
                    format!(
                        "column `{}` has unknown type `{}`; use one of: {TYPES}",
                        c.name, c.data_type
                    ),
                ));
            }
            if !seen.insert(c.name.as_str()) {
                return Err(err(
                    &c.name,
                    format!("column `{}` is declared twice", c.name),
                ));
            }
            if let (Some(lo), Some(hi)) = (c.min, c.max) {
                if lo > hi {
                    return Err(err(
                        &c.name,
                        format!("column `{}`: min {lo} is above max {hi}", c.name),
                    ));
                }
            }
        }
        for k in self.key.iter().chain(&self.partition_by) {
            if !seen.contains(k.as_str()) {
                return Err(err(
                    k,
                    format!("`{k}` is not one of the contract's columns"),
                ));
            }
        }
        Ok(())
    }

    /// The Arrow schema the contract declares.
    pub fn schema(&self) -> Schema {
        Schema::new(
            self.columns
                .iter()
                .map(|c| {
                    Field::new(
                        &c.name,
                        arrow_type(&c.data_type).unwrap_or(DataType::Utf8),
                        true,
                    )
                })
                .collect::<Vec<_>>(),
        )
    }

    pub fn rule(&self, column: &str) -> Option<&ColumnRule> {
        self.columns.iter().find(|c| c.name == column)
    }
}

/// The `.yml`/`.yaml` files of a contracts folder, sorted (none when it does not exist).
fn contract_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")))
        .collect();
    paths.sort();
    paths
}

/// Every contract under `dir`, each checked.
pub fn load_all(dir: &Path) -> Result<Vec<Contract>, TablesError> {
    let mut out = Vec::new();
    for p in contract_files(dir) {
        let c = Contract::load(&p)?;
        if let Some(other) = out.iter().find(|o: &&Contract| o.table == c.table) {
            return Err(TablesError::Contract {
                place: p.display().to_string(),
                message: format!(
                    "table {} already has a contract in {}",
                    c.table,
                    other.path.display()
                ),
            });
        }
        out.push(c);
    }
    Ok(out)
}

/// The contract of `table` in `dir`, if one declares it. A broken file elsewhere does not
/// stop this table's loads: only a file that names `table` (by its file name or its `table:`
/// line) fails them, with its own error; the others are left to `load_all` to report.
pub fn load_for(dir: &Path, table: &str) -> Result<Option<Contract>, TablesError> {
    let mut found: Option<Contract> = None;
    for p in contract_files(dir) {
        match Contract::load(&p) {
            Ok(c) if c.table == table => {
                if let Some(other) = &found {
                    return Err(TablesError::Contract {
                        place: p.display().to_string(),
                        message: format!(
                            "table {table} already has a contract in {}",
                            other.path.display()
                        ),
                    });
                }
                found = Some(c);
            }
            Ok(_) => {}
            Err(e) => {
                let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("");
                let names_it = stem == table
                    || std::fs::read_to_string(&p)
                        .map(|t| {
                            t.lines().any(|l| {
                                l.trim().strip_prefix("table:").map(|v| {
                                    v.trim().trim_matches(|c| c == '"' || c == '\'') == table
                                }) == Some(true)
                            })
                        })
                        .unwrap_or(false);
                if names_it {
                    return Err(e);
                }
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_contract_fails_only_its_own_table() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.trusted.x.yml"),
            "table: a.trusted.x\ncolumns: [oops\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("b.yml"),
            "table: a.trusted.y\ncolumns:\n  - {name: id, type: int}\n",
        )
        .unwrap();
        assert!(load_for(dir.path(), "a.trusted.y").unwrap().is_some());
        assert!(load_for(dir.path(), "a.trusted.z").unwrap().is_none());
        assert!(load_for(dir.path(), "a.trusted.x").is_err());
    }

    #[test]
    fn bad_type_names_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.yml");
        std::fs::write(
            &p,
            "table: a.trusted.f\ncolumns:\n  - name: x\n    type: integr\n",
        )
        .unwrap();
        let err = Contract::load(&p).unwrap_err().to_string();
        assert!(err.contains("f.yml:4"), "{err}");
        assert!(err.contains("unknown type `integr`"), "{err}");
        std::fs::write(
            &p,
            "table: a.trusted.f\ncolumns:\n  - name: x\n    type: int\n    nulable: false\n",
        )
        .unwrap();
        let err = Contract::load(&p).unwrap_err().to_string();
        assert!(err.contains("nulable"), "{err}");
    }
}
