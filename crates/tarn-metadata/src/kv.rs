//! Key-value pairs (tags and params) as every aggregate stores them: in a table of their own
//! with `key` and `value` columns, read with [`pairs_of`].

use serde::{Deserialize, Serialize};

/// A tag or a param.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema, sqlx::FromRow)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

/// The pairs of rows with `key` and `value` columns.
pub(crate) fn pairs_of(rows: &[sqlx::any::AnyRow]) -> Vec<KeyValue> {
    use sqlx::FromRow;
    rows.iter()
        .filter_map(|r| KeyValue::from_row(r).ok())
        .collect()
}
