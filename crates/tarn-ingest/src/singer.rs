//! The Singer protocol as taps speak it: one JSON message per line (SCHEMA, RECORD, STATE,
//! ACTIVATE_VERSION), and a stream's JSON Schema turned into Arrow types.
//!
//! | JSON Schema | Arrow |
//! |---|---|
//! | `integer` | Int64 |
//! | `number` (or `integer` and `number`) | Float64 |
//! | `boolean` | Boolean |
//! | `string` with `format: date-time` | Timestamp(µs, UTC) |
//! | `string` with `format: date` | Date32 |
//! | `string` (any other format) | Utf8 |
//! | `object` with `properties` | Struct of its properties |
//! | `object` without properties, `array`, several types, no type | Utf8 holding the JSON text |
//!
//! Every column is nullable. A record is checked against its stream's schema before it is
//! written: a property the schema lacks, or a value of another type, rejects the record with
//! the reason (an integer written as `3.0` is an integer; `3.5` is not).

use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::sync::Arc;

/// The column a versioned stream's records carry their table version in.
pub const VERSION_COLUMN: &str = "_sdc_table_version";

/// One line of a tap's output.
#[derive(Debug, Deserialize)]
pub(crate) struct Message {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub stream: Option<String>,
    #[serde(default)]
    pub record: Option<Value>,
    #[serde(default)]
    pub schema: Option<Ordered>,
    #[serde(default)]
    pub key_properties: Option<Vec<String>>,
    #[serde(default)]
    pub value: Option<Value>,
    #[serde(default)]
    pub version: Option<i64>,
}

/// A JSON value whose objects keep their keys in written order (a schema's `properties` are
/// the table's columns, in the order the tap gives them).
#[derive(Debug, Clone)]
pub(crate) enum Ordered {
    Object(Vec<(String, Ordered)>),
    Array(Vec<Ordered>),
    Other(Value),
}

impl Ordered {
    pub fn get(&self, key: &str) -> Option<&Ordered> {
        match self {
            Ordered::Object(o) => o.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The value as plain JSON (object keys in name order).
    pub fn to_value(&self) -> Value {
        match self {
            Ordered::Object(o) => {
                Value::Object(o.iter().map(|(k, v)| (k.clone(), v.to_value())).collect())
            }
            Ordered::Array(a) => Value::Array(a.iter().map(Ordered::to_value).collect()),
            Ordered::Other(v) => v.clone(),
        }
    }

    /// The items of an array.
    pub fn items(&self) -> &[Ordered] {
        match self {
            Ordered::Array(a) => a,
            _ => &[],
        }
    }
}

impl serde::Serialize for Ordered {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self {
            Ordered::Object(o) => {
                let mut m = s.serialize_map(Some(o.len()))?;
                for (k, v) in o {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
            Ordered::Array(a) => {
                let mut q = s.serialize_seq(Some(a.len()))?;
                for v in a {
                    q.serialize_element(v)?;
                }
                q.end()
            }
            Ordered::Other(v) => v.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Ordered, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, Ordered>()? {
                    out.push((k, v));
                }
                Ok(Ordered::Object(out))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut s: A,
            ) -> Result<Ordered, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = s.next_element::<Ordered>()? {
                    out.push(v);
                }
                Ok(Ordered::Array(out))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Ordered, E> {
                Ok(Ordered::Other(Value::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Ordered, E> {
                Ok(Ordered::Other(Value::from(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Ordered, E> {
                Ok(Ordered::Other(Value::from(v)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Ordered, E> {
                Ok(Ordered::Other(Value::from(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Ordered, E> {
                Ok(Ordered::Other(Value::String(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Ordered, E> {
                Ok(Ordered::Other(Value::String(v)))
            }
            fn visit_unit<E>(self) -> Result<Ordered, E> {
                Ok(Ordered::Other(Value::Null))
            }
            fn visit_none<E>(self) -> Result<Ordered, E> {
                Ok(Ordered::Other(Value::Null))
            }
        }
        d.deserialize_any(V)
    }
}

/// What a property holds, as checked and converted.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    Integer,
    Number,
    Boolean,
    Timestamp,
    Date,
    Text,
    Struct(Vec<(String, Kind)>),
    /// Kept as its JSON text.
    Json,
}

/// A stream's schema, compiled for checking records and building Arrow batches.
#[derive(Debug, Clone)]
pub(crate) struct StreamSchema {
    pub properties: Vec<(String, Kind)>,
    pub key_properties: Vec<String>,
    /// Whether the records carry a table version (ACTIVATE_VERSION streams).
    pub versioned: bool,
}

impl StreamSchema {
    /// Compiles a SCHEMA message's `schema`; answers why not when it has no properties.
    pub fn compile(schema: &Ordered, key_properties: Vec<String>) -> Result<StreamSchema, String> {
        let Some(Ordered::Object(props)) = schema.get("properties") else {
            return Err("the SCHEMA message's schema has no `properties` object".into());
        };
        let properties: Vec<(String, Kind)> =
            props.iter().map(|(k, v)| (k.clone(), kind_of(v))).collect();
        for k in &key_properties {
            if !properties.iter().any(|(p, _)| p == k) {
                return Err(format!(
                    "key property `{k}` is not one of the schema's properties"
                ));
            }
        }
        Ok(StreamSchema {
            properties,
            key_properties,
            versioned: false,
        })
    }

    /// The Arrow schema of the stream's table.
    pub fn arrow(&self) -> SchemaRef {
        let mut fields: Vec<Field> = self
            .properties
            .iter()
            .map(|(n, k)| Field::new(n, arrow_type(k), true))
            .collect();
        if self.versioned {
            fields.push(Field::new(VERSION_COLUMN, DataType::Int64, true));
        }
        Arc::new(Schema::new(fields))
    }

    /// Checks `record` and brings it to what the Arrow decoder reads (JSON-text properties as
    /// strings, integers written as `3.0` as integers, the version added); answers why it does
    /// not fit otherwise, with the record as it came.
    pub fn prepare(
        &self,
        mut record: Map<String, Value>,
        version: Option<i64>,
    ) -> Result<Map<String, Value>, (String, Map<String, Value>)> {
        let mut fix = false;
        for (name, value) in record.iter() {
            let Some((_, kind)) = self.properties.iter().find(|(p, _)| p == name) else {
                return Err((
                    format!("property `{name}` is not in the stream's schema"),
                    record,
                ));
            };
            match check(kind, value) {
                Ok(f) => fix |= f,
                Err(why) => return Err((format!("property `{name}`: {why}"), record)),
            }
        }
        if fix {
            for (name, value) in record.iter_mut() {
                if let Some((_, kind)) = self.properties.iter().find(|(p, _)| p == name) {
                    convert(kind, value);
                }
            }
        }
        if self.versioned {
            record.insert(
                VERSION_COLUMN.into(),
                version.map(Value::from).unwrap_or(Value::Null),
            );
        }
        Ok(record)
    }
}

/// Checks a value against its kind; answers whether it needs [`convert`] before decoding.
fn check(kind: &Kind, value: &Value) -> Result<bool, String> {
    if value.is_null() {
        return Ok(false);
    }
    let ok = match kind {
        Kind::Integer => match value {
            Value::Number(n) if n.is_i64() => return Ok(false),
            Value::Number(n) => n
                .as_f64()
                .is_some_and(|f| f.fract() == 0.0 && f.abs() < 9.2e18),
            _ => false,
        },
        Kind::Number => value.is_number(),
        Kind::Boolean => value.is_boolean(),
        Kind::Timestamp | Kind::Date | Kind::Text => value.is_string(),
        Kind::Struct(props) => match value {
            Value::Object(o) => {
                let mut fix = false;
                for (name, v) in o {
                    let Some((_, k)) = props.iter().find(|(p, _)| p == name) else {
                        return Err(format!("property `{name}` is not in its object's schema"));
                    };
                    fix |= check(k, v).map_err(|why| format!("`{name}`: {why}"))?;
                }
                return Ok(fix);
            }
            _ => false,
        },
        Kind::Json => return Ok(true),
    };
    if ok {
        Ok(matches!(kind, Kind::Integer))
    } else {
        Err(format!("{} is not {}", short(value), kind_name(kind)))
    }
}

/// Brings a checked value to what the decoder reads: JSON text for JSON properties, an integer
/// for an integer written with a zero fraction.
fn convert(kind: &Kind, value: &mut Value) {
    match (kind, &mut *value) {
        (_, Value::Null) => {}
        (Kind::Json, v) => *v = Value::String(v.to_string()),
        (Kind::Integer, Value::Number(n)) if !n.is_i64() => {
            *value = Value::from(n.as_f64().unwrap_or_default() as i64)
        }
        (Kind::Struct(props), Value::Object(o)) => {
            for (name, v) in o.iter_mut() {
                if let Some((_, k)) = props.iter().find(|(p, _)| p == name) {
                    convert(k, v);
                }
            }
        }
        _ => {}
    }
}

fn short(v: &Value) -> String {
    let t = v.to_string();
    if t.chars().count() > 60 {
        format!("{}…", t.chars().take(60).collect::<String>())
    } else {
        t
    }
}

fn kind_name(k: &Kind) -> &'static str {
    match k {
        Kind::Integer => "an integer",
        Kind::Number => "a number",
        Kind::Boolean => "a boolean",
        Kind::Timestamp => "a date-time string",
        Kind::Date => "a date string",
        Kind::Text => "a string",
        Kind::Struct(_) => "an object",
        Kind::Json => "JSON",
    }
}

/// The kind of a property's JSON Schema.
fn kind_of(schema: &Ordered) -> Kind {
    let mut types: Vec<String> = match schema.get("type").map(Ordered::to_value) {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|t| t.as_str().map(String::from))
            .collect(),
        _ => {
            // anyOf / oneOf: one alternative besides null decides.
            for key in ["anyOf", "oneOf"] {
                if let Some(Ordered::Array(alts)) = schema.get(key) {
                    let kinds: Vec<Kind> = alts
                        .iter()
                        .filter(|a| {
                            a.get("type").map(Ordered::to_value) != Some(Value::from("null"))
                        })
                        .map(kind_of)
                        .collect();
                    if kinds.len() == 1 {
                        return kinds[0].clone();
                    }
                }
            }
            return Kind::Json;
        }
    };
    types.retain(|t| t != "null");
    types.sort();
    let format = schema.get("format").map(Ordered::to_value);
    let format = format.as_ref().and_then(Value::as_str);
    match types.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["integer"] => Kind::Integer,
        ["number"] | ["integer", "number"] => Kind::Number,
        ["boolean"] => Kind::Boolean,
        ["string"] => match format {
            Some("date-time") => Kind::Timestamp,
            Some("date") => Kind::Date,
            _ => Kind::Text,
        },
        ["object"] => match schema.get("properties") {
            Some(Ordered::Object(p)) if !p.is_empty() => {
                let props: Vec<(String, Kind)> =
                    p.iter().map(|(k, v)| (k.clone(), kind_of(v))).collect();
                Kind::Struct(props)
            }
            _ => Kind::Json,
        },
        _ => Kind::Json,
    }
}

fn arrow_type(k: &Kind) -> DataType {
    match k {
        Kind::Integer => DataType::Int64,
        Kind::Number => DataType::Float64,
        Kind::Boolean => DataType::Boolean,
        Kind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        Kind::Date => DataType::Date32,
        Kind::Text | Kind::Json => DataType::Utf8,
        Kind::Struct(props) => DataType::Struct(Fields::from(
            props
                .iter()
                .map(|(n, k)| Field::new(n, arrow_type(k), true))
                .collect::<Vec<_>>(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(text: &str) -> StreamSchema {
        let o: Ordered = serde_json::from_str(text).unwrap();
        StreamSchema::compile(&o, vec!["id".into()]).unwrap()
    }

    #[test]
    fn json_schema_types_become_arrow_types_in_the_written_order() {
        let s = schema(
            r#"{"properties": {"id": {"type": ["integer"]}, "carrier": {"type": ["string", "null"]},
               "dep_delay": {"type": ["number", "null"]}, "time_hour": {"type": "string", "format": "date-time"},
               "day": {"type": "string", "format": "date"}, "ok": {"type": "boolean"},
               "tags": {"type": "array", "items": {"type": "string"}},
               "plane": {"type": "object", "properties": {"tailnum": {"type": "string"}, "seats": {"type": "integer"}}},
               "extra": {"anyOf": [{"type": "null"}, {"type": "integer"}]}}}"#,
        );
        let a = s.arrow();
        let names: Vec<&str> = a.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(
            names,
            [
                "id",
                "carrier",
                "dep_delay",
                "time_hour",
                "day",
                "ok",
                "tags",
                "plane",
                "extra"
            ]
        );
        assert_eq!(a.field(0).data_type(), &DataType::Int64);
        assert_eq!(a.field(2).data_type(), &DataType::Float64);
        assert!(matches!(
            a.field(3).data_type(),
            DataType::Timestamp(TimeUnit::Microsecond, _)
        ));
        assert_eq!(a.field(4).data_type(), &DataType::Date32);
        assert_eq!(a.field(6).data_type(), &DataType::Utf8);
        assert!(matches!(a.field(7).data_type(), DataType::Struct(_)));
        assert_eq!(a.field(8).data_type(), &DataType::Int64);
    }

    #[test]
    fn records_that_break_the_schema_say_why() {
        let s = schema(r#"{"properties": {"id": {"type": "integer"}, "tags": {"type": "array"}}}"#);
        let rec = |t: &str| serde_json::from_str::<Map<String, Value>>(t).unwrap();
        let ok = s
            .prepare(rec(r#"{"id": 3.0, "tags": ["a"]}"#), None)
            .unwrap();
        assert_eq!(ok["id"], Value::from(3));
        assert_eq!(ok["tags"], Value::String("[\"a\"]".into()));
        let err = s.prepare(rec(r#"{"id": 3.5}"#), None).unwrap_err().0;
        assert_eq!(err, "property `id`: 3.5 is not an integer");
        let (err, back) = s
            .prepare(rec(r#"{"id": 1, "name": "x", "tags": [1]}"#), None)
            .unwrap_err();
        assert!(
            err.contains("`name` is not in the stream's schema"),
            "{err}"
        );
        assert_eq!(
            back["tags"],
            serde_json::json!([1]),
            "given back as it came"
        );
    }
}

#[cfg(test)]
mod order_tests {
    use super::*;

    #[test]
    fn a_schema_message_keeps_its_properties_in_order() {
        let line = r#"{"type":"SCHEMA","stream":"things","schema":{"properties":{"id":{"type":["integer","null"]},"name":{"type":["null","string"]},"_sdc_stream":{"type":["string","null"]}},"type":"object"},"key_properties":["id"]}"#;
        let m: Message = serde_json::from_str(line).unwrap();
        let s = StreamSchema::compile(m.schema.as_ref().unwrap(), vec![]).unwrap();
        let names: Vec<&str> = s.properties.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["id", "name", "_sdc_stream"]);
    }
}
