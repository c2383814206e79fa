//! Column types the portable schema uses and rows read into: booleans kept as integers
//! ([`Flag`]) and JSON kept as text ([`JsonText`]), decoded by sqlx so row structs derive
//! `sqlx::FromRow` (`#[sqlx(try_from = "Flag")]`) instead of mapping columns by hand.

use sqlx::any::{Any, AnyTypeInfo, AnyValueRef};
use sqlx::error::BoxDynError;
use sqlx::{Decode, Type};

/// A boolean stored as an integer (0 or 1), as both SQLite and Postgres keep it here.
pub(crate) struct Flag(bool);

impl Type<Any> for Flag {
    fn type_info() -> AnyTypeInfo {
        <i64 as Type<Any>>::type_info()
    }

    fn compatible(ty: &AnyTypeInfo) -> bool {
        <i64 as Type<Any>>::compatible(ty) || <i32 as Type<Any>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Any> for Flag {
    fn decode(value: AnyValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Flag(<i64 as Decode<Any>>::decode(value)? != 0))
    }
}

impl From<Flag> for bool {
    fn from(f: Flag) -> bool {
        f.0
    }
}

/// A typed JSON document stored as text (a table's columns, its parameters, a partition's
/// values).
pub(crate) struct JsonOf<T>(T);

impl<T> Type<Any> for JsonOf<T> {
    fn type_info() -> AnyTypeInfo {
        <String as Type<Any>>::type_info()
    }

    fn compatible(ty: &AnyTypeInfo) -> bool {
        <String as Type<Any>>::compatible(ty)
    }
}

impl<'r, T: serde::de::DeserializeOwned> Decode<'r, Any> for JsonOf<T> {
    fn decode(value: AnyValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <String as Decode<Any>>::decode(value)?;
        Ok(JsonOf(serde_json::from_str(&text)?))
    }
}

/// `JsonOf<T>` into `T`, for each `T` a row holds (a blanket impl is not allowed here).
macro_rules! json_of {
    ($($t:ty),*) => {$(
        impl From<JsonOf<$t>> for $t {
            fn from(j: JsonOf<$t>) -> $t {
                j.0
            }
        }
    )*};
}

json_of!(
    Vec<crate::Column>,
    Vec<String>,
    std::collections::BTreeMap<String, String>
);

/// A JSON document stored as text, or NULL (read as JSON's `null`, or as `None` into an
/// optional field).
pub(crate) struct JsonText(Option<serde_json::Value>);

impl Type<Any> for JsonText {
    fn type_info() -> AnyTypeInfo {
        <String as Type<Any>>::type_info()
    }

    fn compatible(ty: &AnyTypeInfo) -> bool {
        <String as Type<Any>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Any> for JsonText {
    fn decode(value: AnyValueRef<'r>) -> Result<Self, BoxDynError> {
        if sqlx::ValueRef::is_null(&value) {
            return Ok(JsonText(None));
        }
        let text = <String as Decode<Any>>::decode(value)?;
        Ok(JsonText(Some(serde_json::from_str(&text)?)))
    }
}

impl From<JsonText> for serde_json::Value {
    fn from(j: JsonText) -> serde_json::Value {
        j.0.unwrap_or_default()
    }
}

impl From<JsonText> for Option<serde_json::Value> {
    fn from(j: JsonText) -> Option<serde_json::Value> {
        j.0
    }
}

/// An integer id read as the text MLflow's API carries it in (`"0"`, `"17"`).
pub(crate) struct IdText(String);

impl Type<Any> for IdText {
    fn type_info() -> AnyTypeInfo {
        <i64 as Type<Any>>::type_info()
    }

    fn compatible(ty: &AnyTypeInfo) -> bool {
        <i64 as Type<Any>>::compatible(ty) || <i32 as Type<Any>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Any> for IdText {
    fn decode(value: AnyValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(IdText(<i64 as Decode<Any>>::decode(value)?.to_string()))
    }
}

impl From<IdText> for String {
    fn from(i: IdText) -> String {
        i.0
    }
}
