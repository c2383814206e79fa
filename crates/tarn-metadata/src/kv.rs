//! Key-value pairs (tags and params) as every aggregate stores them: in a table of their own
//! with `key` and `value` columns, read straight into [`KeyValue`] rows.

use serde::{Deserialize, Serialize};

/// A tag or a param.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema, sqlx::FromRow)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}
