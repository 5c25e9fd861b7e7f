//! Kafka's `org.apache.kafka.connect.json.JsonConverter`.
//!
//! With `schemas.enable=true` (the default) every message is an envelope:
//!
//! ```text
//! {"schema": <schema JSON or null>, "payload": <value JSON>}
//! ```
//!
//! The schema JSON lists, in this order: `type` (`int8` `int16` `int32`
//! `int64` `float` `double` `boolean` `string` `bytes` `array` `map`
//! `struct`), then `items` (array) or `keys`/`values` (map) or `fields`
//! (struct; each field's schema plus `"field": name`), then `optional`,
//! `name`, `version`, `doc`, `parameters` and `default` when set. Bytes are
//! base64; maps with string keys are objects, other maps arrays of
//! `[key, value]` pairs; `Decimal` is base64 of the unscaled bytes
//! (`decimal.format=BASE64`) or a JSON number (`NUMERIC`). With
//! `schemas.enable=false` the payload is written alone, and plain JSON is
//! read into schemaless values (integers as int64, other numbers float64,
//! objects as maps with string keys).
//!
//! Decimals read exactly in either format (up to 38 digits).

use std::collections::HashMap;

use base64::Engine as _;

mod tree;
mod writer;

use super::{Converter, ConverterError};
use crate::config_def::{ConfigDef, ConfigType, Importance, Validator};
use crate::data::{Decimal, DecimalValue, Schema, SchemaAndValue, SchemaBuilder, SchemaType, Struct, Value};
use tree::{Json, Number};
use writer::{At, SchemaCache};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// How `Decimal` values are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DecimalFormat {
    /// Base64 of the big-endian unscaled bytes (Kafka's default).
    #[default]
    Base64,
    /// A JSON number.
    Numeric,
}

/// Kafka's `JsonConverter`; see the module docs for the format.
#[derive(Clone, Debug)]
pub struct JsonConverter {
    schemas_enable: bool,
    decimal_format: DecimalFormat,
    replace_null_with_default: bool,
    /// The JSON of the schemas written lately (`schemas.cache.size`).
    schema_cache: SchemaCache,
    /// The schemas read lately, by their JSON.
    read_cache: ReadSchemaCache,
}

/// Connect schemas of the envelope `schema` objects read lately, most
/// recent first (Kafka's `toConnectSchemaCache`): a topic's messages repeat
/// one schema, and building it anew for each message, then dropping it,
/// cost more than parsing the payload. Compared by value, so at most
/// [`READ_CACHE_MAX`] entries.
struct ReadSchemaCache {
    entries: std::sync::Mutex<Vec<(Json, Option<Schema>)>>,
    capacity: usize,
}

/// The most schemas the read cache compares a message's against.
const READ_CACHE_MAX: usize = 16;

impl ReadSchemaCache {
    fn new(capacity: usize) -> Self {
        ReadSchemaCache {
            entries: std::sync::Mutex::new(Vec::new()),
            capacity: capacity.clamp(1, READ_CACHE_MAX),
        }
    }

    /// The schema of `json`, built by `build` the first time.
    fn get_or_build(
        &self,
        json: &Json,
        build: impl FnOnce() -> Result<Option<Schema>, String>,
    ) -> Result<Option<Schema>, String> {
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(at) = entries.iter().position(|(j, _)| j == json) {
            let schema = entries[at].1.clone();
            if at > 0 {
                let hit = entries.remove(at);
                entries.insert(0, hit);
            }
            return Ok(schema);
        }
        let schema = build()?;
        entries.insert(0, (json.clone(), schema.clone()));
        entries.truncate(self.capacity);
        Ok(schema)
    }
}

impl Clone for ReadSchemaCache {
    fn clone(&self) -> Self {
        ReadSchemaCache::new(self.capacity)
    }
}

impl std::fmt::Debug for ReadSchemaCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadSchemaCache").field("capacity", &self.capacity).finish_non_exhaustive()
    }
}

impl Default for JsonConverter {
    fn default() -> Self {
        JsonConverter {
            schemas_enable: true,
            decimal_format: DecimalFormat::Base64,
            replace_null_with_default: true,
            schema_cache: SchemaCache::new(DEFAULT_SCHEMA_CACHE_SIZE),
            read_cache: ReadSchemaCache::new(DEFAULT_SCHEMA_CACHE_SIZE),
        }
    }
}

/// Kafka's default `schemas.cache.size`.
const DEFAULT_SCHEMA_CACHE_SIZE: usize = 1000;

impl JsonConverter {
    /// Kafka's class name.
    pub const CLASS: &'static str = "org.apache.kafka.connect.json.JsonConverter";

    /// A converter with Kafka's defaults (`schemas.enable=true`, `decimal.format=BASE64`).
    pub fn new() -> JsonConverter {
        JsonConverter::default()
    }

    /// The keys this converter understands.
    pub fn config_def() -> ConfigDef {
        ConfigDef::new()
            .define_with_default(
                "schemas.enable",
                ConfigType::Boolean,
                true,
                Importance::High,
                "Include schemas within each of the serialized values and keys.",
            )
            .define_with_default(
                "schemas.cache.size",
                ConfigType::Int,
                1000,
                Importance::High,
                "How many schemas' JSON is kept for reuse when writing.",
            )
            .validate(Validator::Range { min: Some(1.0), max: None })
            .define_with_default(
                "decimal.format",
                ConfigType::String,
                "BASE64",
                Importance::Low,
                "Serialization format of Decimal values: BASE64 or NUMERIC.",
            )
            .validate(Validator::OneOf(vec!["BASE64".into(), "NUMERIC".into()]))
            .define_with_default(
                "replace.null.with.default",
                ConfigType::Boolean,
                true,
                Importance::Low,
                "Replace null fields that have a default with the default.",
            )
            .define_optional("converter.type", ConfigType::String, Importance::Low, "key, value or header.")
    }

    /// Whether envelopes with schemas are written and expected.
    pub fn schemas_enabled(&self) -> bool {
        self.schemas_enable
    }

    /// The JSON text of a schema as it appears in the envelope's `schema`.
    ///
    /// # Errors
    ///
    /// [`ConverterError::Serialize`] when the schema's default value does not
    /// match the schema.
    pub fn schema_to_json(&self, schema: &Schema) -> Result<String, ConverterError> {
        let json = self
            .as_json_schema(schema)
            .map_err(|reason| ConverterError::Serialize { topic: String::new(), reason })?;
        Ok(String::from_utf8_lossy(&json.to_bytes()).into_owned())
    }

    /// Whether null fields with a default are written as the default.
    pub(crate) fn replaces_null_with_default(&self) -> bool {
        self.replace_null_with_default
    }

    /// Whether decimals are written as JSON numbers.
    pub(crate) fn writes_numeric_decimals(&self) -> bool {
        self.decimal_format == DecimalFormat::Numeric
    }

    /// A value without a schema as JSON.
    pub(crate) fn schemaless_json(&self, value: &Value, path: &str) -> Result<Json, String> {
        self.schemaless_to_json(value, path)
    }

    fn as_json_schema(&self, schema: &Schema) -> Result<Json, String> {
        let type_name = match schema.schema_type() {
            SchemaType::Float32 => "float",
            SchemaType::Float64 => "double",
            t => t.name(),
        };
        let mut obj = vec![("type".to_string(), Json::String(type_name.into()))];
        match schema.schema_type() {
            SchemaType::Array => {
                let items = schema.value_schema().ok_or("array schema has no item schema")?;
                obj.push(("items".into(), self.as_json_schema(items)?));
            }
            SchemaType::Map => {
                let keys = schema.key_schema().ok_or("map schema has no key schema")?;
                let values = schema.value_schema().ok_or("map schema has no value schema")?;
                obj.push(("keys".into(), self.as_json_schema(keys)?));
                obj.push(("values".into(), self.as_json_schema(values)?));
            }
            SchemaType::Struct => {
                let mut fields = Vec::with_capacity(schema.fields().len());
                for field in schema.fields() {
                    let mut f = self.as_json_schema(field.schema())?;
                    if let Json::Object(entries) = &mut f {
                        entries.push(("field".into(), Json::String(field.name().into())));
                    }
                    fields.push(f);
                }
                obj.push(("fields".into(), Json::Array(fields)));
            }
            _ => {}
        }
        obj.push(("optional".into(), Json::Bool(schema.is_optional())));
        if let Some(name) = schema.name() {
            obj.push(("name".into(), Json::String(name.into())));
        }
        if let Some(version) = schema.version() {
            obj.push(("version".into(), Json::Number(Number::I64(version.into()))));
        }
        if let Some(doc) = schema.doc() {
            obj.push(("doc".into(), Json::String(doc.into())));
        }
        if !schema.parameters().is_empty() {
            let params =
                schema.parameters().iter().map(|(k, v)| (k.clone(), Json::String(v.clone()))).collect();
            obj.push(("parameters".into(), Json::Object(params)));
        }
        if let Some(default) = schema.default_value() {
            obj.push(("default".into(), self.to_json(Some(schema), default, "default")?));
        }
        Ok(Json::Object(obj))
    }

    fn to_json(&self, schema: Option<&Schema>, value: &Value, path: &str) -> Result<Json, String> {
        let at = if path.is_empty() { "value" } else { path };
        let Some(schema) = schema else {
            return self.schemaless_to_json(value, path);
        };
        if value.is_null() {
            if let (Some(default), true) = (schema.default_value(), self.replace_null_with_default) {
                return self.to_json(Some(schema), default, path);
            }
            if schema.is_optional() {
                return Ok(Json::Null);
            }
            return Err(format!("`{at}` is null but its schema is required and has no default"));
        }
        let mismatch = || format!("`{at}`: expected {}, got {}", schema.describe(), value.type_name());
        if schema.is_logical(Decimal::LOGICAL_NAME) && self.decimal_format == DecimalFormat::Numeric {
            let Value::Bytes(bytes) = value else { return Err(mismatch()) };
            let scale = Decimal::scale(schema).map_err(|e| format!("`{at}`: {e}"))?;
            let decimal = DecimalValue::from_bytes(bytes, scale).map_err(|e| format!("`{at}`: {e}"))?;
            return Ok(Json::Number(Number::Raw(decimal.to_string())));
        }
        Ok(match (schema.schema_type(), value) {
            (SchemaType::Int8, Value::Int8(v)) => Json::Number(Number::I64((*v).into())),
            (SchemaType::Int16, Value::Int16(v)) => Json::Number(Number::I64((*v).into())),
            (SchemaType::Int32, Value::Int32(v)) => Json::Number(Number::I64((*v).into())),
            (SchemaType::Int64, Value::Int64(v)) => Json::Number(Number::I64(*v)),
            (SchemaType::Float32, Value::Float32(v)) => Json::Number(Number::F32(*v)),
            (SchemaType::Float64, Value::Float64(v)) => Json::Number(Number::F64(*v)),
            (SchemaType::Boolean, Value::Boolean(v)) => Json::Bool(*v),
            (SchemaType::String, Value::String(v)) => Json::String(v.clone()),
            (SchemaType::Bytes, Value::Bytes(v)) => Json::String(B64.encode(v)),
            (SchemaType::Array, Value::Array(items)) => {
                let item_schema = schema.value_schema();
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    out.push(self.to_json(item_schema, item, &format!("{path}[{i}]"))?);
                }
                Json::Array(out)
            }
            (SchemaType::Map, Value::Map(entries)) => {
                let (ks, vs) = (schema.key_schema(), schema.value_schema());
                let string_keys = ks.is_some_and(|k| k.schema_type() == SchemaType::String);
                if string_keys {
                    let mut out = Vec::with_capacity(entries.len());
                    for (k, v) in entries {
                        let Value::String(key) = k else {
                            return Err(format!("`{at}`: map key must be a string, got {}", k.type_name()));
                        };
                        out.push((key.clone(), self.to_json(vs, v, &child(path, key))?));
                    }
                    Json::Object(out)
                } else {
                    let mut out = Vec::with_capacity(entries.len());
                    for (k, v) in entries {
                        let key = self.to_json(ks, k, &child(path, "<key>"))?;
                        let value = self.to_json(vs, v, &child(path, "<value>"))?;
                        out.push(Json::Array(vec![key, value]));
                    }
                    Json::Array(out)
                }
            }
            (SchemaType::Struct, Value::Struct(s)) => {
                if s.schema() != schema {
                    return Err(format!("`{at}`: struct schema does not match the field's schema"));
                }
                self.struct_to_json(s, path)?
            }
            _ => return Err(mismatch()),
        })
    }

    fn struct_to_json(&self, s: &Struct, path: &str) -> Result<Json, String> {
        let mut out = Vec::with_capacity(s.values().len());
        for (field, v) in s.schema().fields().iter().zip(s.values()) {
            let field_path = child(path, field.name());
            out.push((field.name().to_string(), self.to_json(Some(field.schema()), v, &field_path)?));
        }
        Ok(Json::Object(out))
    }

    fn schemaless_to_json(&self, value: &Value, path: &str) -> Result<Json, String> {
        Ok(match value {
            Value::Null => Json::Null,
            Value::Int8(v) => Json::Number(Number::I64((*v).into())),
            Value::Int16(v) => Json::Number(Number::I64((*v).into())),
            Value::Int32(v) => Json::Number(Number::I64((*v).into())),
            Value::Int64(v) => Json::Number(Number::I64(*v)),
            Value::Float32(v) => Json::Number(Number::F32(*v)),
            Value::Float64(v) => Json::Number(Number::F64(*v)),
            Value::Boolean(v) => Json::Bool(*v),
            Value::String(v) => Json::String(v.clone()),
            Value::Bytes(v) => Json::String(B64.encode(v)),
            Value::Array(items) => Json::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.schemaless_to_json(item, &format!("{path}[{i}]")))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Map(entries) => {
                if entries.iter().all(|(k, _)| matches!(k, Value::String(_))) {
                    let mut out = Vec::with_capacity(entries.len());
                    for (k, v) in entries {
                        let key = k.as_str().unwrap_or_default().to_string();
                        let json = self.schemaless_to_json(v, &child(path, &key))?;
                        out.push((key, json));
                    }
                    Json::Object(out)
                } else {
                    let mut out = Vec::with_capacity(entries.len());
                    for (k, v) in entries {
                        out.push(Json::Array(vec![
                            self.schemaless_to_json(k, path)?,
                            self.schemaless_to_json(v, path)?,
                        ]));
                    }
                    Json::Array(out)
                }
            }
            // A struct carries its own schema; Kafka refuses it without one,
            // writing its fields is the more useful choice.
            Value::Struct(s) => self.struct_to_json(s, path)?,
        })
    }

    fn as_connect_schema(&self, json: &Json) -> Result<Option<Schema>, String> {
        if *json == Json::Null {
            return Ok(None);
        }
        let Json::Object(_) = json else {
            return Err(format!("schema must be an object or null, got {}", json.kind()));
        };
        let type_name = match json.get("type") {
            Some(Json::String(t)) => t.as_str(),
            _ => return Err("schema must contain a string `type` field".into()),
        };
        let sub = |key: &str| -> Result<Schema, String> {
            let node = json.get(key).ok_or_else(|| format!("{type_name} schema must contain `{key}`"))?;
            self.as_connect_schema(node)?
                .ok_or_else(|| format!("`{key}` of a {type_name} schema must not be null"))
        };
        let mut builder = match type_name {
            "boolean" => SchemaBuilder::boolean(),
            "int8" => SchemaBuilder::int8(),
            "int16" => SchemaBuilder::int16(),
            "int32" => SchemaBuilder::int32(),
            "int64" => SchemaBuilder::int64(),
            "float" | "float32" => SchemaBuilder::float32(),
            "double" | "float64" => SchemaBuilder::float64(),
            "bytes" => SchemaBuilder::bytes(),
            "string" => SchemaBuilder::string(),
            "array" => SchemaBuilder::array(sub("items")?),
            "map" => SchemaBuilder::map(sub("keys")?, sub("values")?),
            "struct" => {
                let Some(Json::Array(fields)) = json.get("fields") else {
                    return Err("struct schema must contain a `fields` array".into());
                };
                let mut b = SchemaBuilder::structure();
                for field in fields {
                    let Some(Json::String(name)) = field.get("field") else {
                        return Err("each struct field must contain a string `field` name".into());
                    };
                    let field_schema = self
                        .as_connect_schema(field)?
                        .ok_or_else(|| format!("field `{name}` has no schema"))?;
                    b = b.field(name.clone(), field_schema);
                }
                b
            }
            other => return Err(format!("unknown schema type `{other}`")),
        };
        if json.get("optional") == Some(&Json::Bool(true)) {
            builder = builder.optional();
        }
        match json.get("name") {
            Some(Json::String(name)) => builder = builder.name(name.clone()),
            None | Some(Json::Null) => {}
            Some(other) => return Err(format!("schema `name` must be a string, got {}", other.kind())),
        }
        match json.get("version") {
            Some(Json::Number(Number::I64(v))) => {
                let v = i32::try_from(*v).map_err(|_| format!("schema `version` {v} is out of range"))?;
                builder = builder.version(v);
            }
            None | Some(Json::Null) => {}
            Some(other) => return Err(format!("schema `version` must be an integer, got {}", other.kind())),
        }
        match json.get("doc") {
            Some(Json::String(doc)) => builder = builder.doc(doc.clone()),
            None | Some(Json::Null) => {}
            Some(other) => return Err(format!("schema `doc` must be a string, got {}", other.kind())),
        }
        match json.get("parameters") {
            Some(Json::Object(params)) => {
                for (k, v) in params {
                    let Json::String(v) = v else {
                        return Err(format!("schema parameter `{k}` must be a string, got {}", v.kind()));
                    };
                    builder = builder.parameter(k.clone(), v.clone());
                }
            }
            None | Some(Json::Null) => {}
            Some(other) => {
                return Err(format!("schema `parameters` must be an object, got {}", other.kind()))
            }
        }
        if let Some(default) = json.get("default") {
            let without_default = builder.clone().build().map_err(|e| e.to_string())?;
            let value = self.to_connect_value(Some(&without_default), default, "default")?;
            builder = builder.default_value(value);
        }
        builder.build().map(Some).map_err(|e| e.to_string())
    }

    fn to_connect_value(&self, schema: Option<&Schema>, json: &Json, path: &str) -> Result<Value, String> {
        let at = if path.is_empty() { "value" } else { path };
        let Some(schema) = schema else {
            return Ok(infer(json));
        };
        if *json == Json::Null {
            if let (Some(default), true) = (schema.default_value(), self.replace_null_with_default) {
                return Ok(default.clone());
            }
            if schema.is_optional() {
                return Ok(Value::Null);
            }
            return Err(format!("`{at}`: null for a required {} with no default", schema.describe()));
        }
        let mismatch = || format!("`{at}`: expected {}, got {}", schema.describe(), json.kind());
        if schema.is_logical(Decimal::LOGICAL_NAME) {
            if let Json::Number(n) = json {
                let scale = Decimal::scale(schema).map_err(|e| format!("`{at}`: {e}"))?;
                let decimal = match n {
                    Number::I64(v) => DecimalValue::new((*v).into(), 0),
                    Number::U64(v) => DecimalValue::new((*v).into(), 0),
                    Number::F32(v) => {
                        DecimalValue::from_f64((*v).into(), scale).map_err(|e| e.to_string())?
                    }
                    Number::F64(v) => DecimalValue::from_f64(*v, scale).map_err(|e| e.to_string())?,
                    Number::Raw(t) => t.parse().map_err(|e: crate::data::DataError| e.to_string())?,
                };
                let decimal = decimal.rescale(scale).map_err(|e| format!("`{at}`: {e}"))?;
                return Ok(Value::Bytes(decimal.to_bytes()));
            }
        }
        let int = |min: i64, max: i64| -> Result<i64, String> {
            match json {
                Json::Number(Number::I64(v)) if (min..=max).contains(v) => Ok(*v),
                Json::Number(Number::I64(v)) => {
                    Err(format!("`{at}`: {v} is out of range for {}", schema.describe()))
                }
                _ => Err(mismatch()),
            }
        };
        let float = || -> Result<f64, String> {
            match json {
                Json::Number(Number::I64(v)) => Ok(*v as f64),
                Json::Number(Number::U64(v)) => Ok(*v as f64),
                Json::Number(Number::F64(v)) => Ok(*v),
                Json::Number(Number::F32(v)) => Ok((*v).into()),
                Json::Number(Number::Raw(t)) => t.parse().map_err(|_| mismatch()),
                Json::String(s) if s == "NaN" => Ok(f64::NAN),
                Json::String(s) if s == "Infinity" => Ok(f64::INFINITY),
                Json::String(s) if s == "-Infinity" => Ok(f64::NEG_INFINITY),
                _ => Err(mismatch()),
            }
        };
        Ok(match schema.schema_type() {
            SchemaType::Int8 => Value::Int8(int(i8::MIN.into(), i8::MAX.into())? as i8),
            SchemaType::Int16 => Value::Int16(int(i16::MIN.into(), i16::MAX.into())? as i16),
            SchemaType::Int32 => Value::Int32(int(i32::MIN.into(), i32::MAX.into())? as i32),
            SchemaType::Int64 => Value::Int64(int(i64::MIN, i64::MAX)?),
            SchemaType::Float32 => Value::Float32(float()? as f32),
            SchemaType::Float64 => Value::Float64(float()?),
            SchemaType::Boolean => match json {
                Json::Bool(b) => Value::Boolean(*b),
                _ => return Err(mismatch()),
            },
            SchemaType::String => match json {
                Json::String(s) => Value::String(s.clone()),
                _ => return Err(mismatch()),
            },
            SchemaType::Bytes => match json {
                Json::String(s) => {
                    Value::Bytes(B64.decode(s).map_err(|e| format!("`{at}`: invalid base64: {e}"))?)
                }
                _ => return Err(mismatch()),
            },
            SchemaType::Array => {
                let Json::Array(items) = json else { return Err(mismatch()) };
                let item_schema = schema.value_schema();
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    out.push(self.to_connect_value(item_schema, item, &format!("{path}[{i}]"))?);
                }
                Value::Array(out)
            }
            SchemaType::Map => {
                let (ks, vs) = (schema.key_schema(), schema.value_schema());
                let mut out = Vec::new();
                if ks.is_some_and(|k| k.schema_type() == SchemaType::String) {
                    let Json::Object(fields) = json else { return Err(mismatch()) };
                    for (k, v) in fields {
                        out.push((Value::String(k.clone()), self.to_connect_value(vs, v, &child(path, k))?));
                    }
                } else {
                    let Json::Array(pairs) = json else { return Err(mismatch()) };
                    for pair in pairs {
                        let Json::Array(kv) = pair else {
                            return Err(format!("`{at}`: map entries must be [key, value] arrays"));
                        };
                        let [k, v] = kv.as_slice() else {
                            return Err(format!("`{at}`: map entries must be [key, value] arrays"));
                        };
                        out.push((
                            self.to_connect_value(ks, k, &child(path, "<key>"))?,
                            self.to_connect_value(vs, v, &child(path, "<value>"))?,
                        ));
                    }
                }
                Value::Map(out)
            }
            SchemaType::Struct => {
                let Json::Object(_) = json else { return Err(mismatch()) };
                let mut values = Vec::with_capacity(schema.fields().len());
                for field in schema.fields() {
                    let node = json.get(field.name()).unwrap_or(&Json::Null);
                    let field_path = child(path, field.name());
                    values.push(self.to_connect_value(Some(field.schema()), node, &field_path)?);
                }
                Value::Struct(Struct::with_values(schema.clone(), values).map_err(|e| e.to_string())?)
            }
        })
    }
}

/// The path of a map entry or field below `path` (the top level is empty).
fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// Plain JSON to a schemaless value, as Kafka infers it.
fn infer(json: &Json) -> Value {
    match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(Number::I64(v)) => Value::Int64(*v),
        Json::Number(Number::U64(v)) => Value::Float64(*v as f64),
        Json::Number(Number::F64(v)) => Value::Float64(*v),
        Json::Number(Number::F32(v)) => Value::Float64((*v).into()),
        Json::Number(Number::Raw(t)) => Value::Float64(t.parse().unwrap_or(f64::NAN)),
        Json::String(s) => Value::String(s.clone()),
        Json::Array(items) => Value::Array(items.iter().map(infer).collect()),
        Json::Object(fields) => {
            Value::Map(fields.iter().map(|(k, v)| (Value::String(k.clone()), infer(v))).collect())
        }
    }
}

impl Converter for JsonConverter {
    fn configure(&mut self, props: &HashMap<String, String>, _is_key: bool) -> Result<(), ConverterError> {
        let parsed = Self::config_def().parse(props)?;
        self.schemas_enable = parsed.get_boolean("schemas.enable").unwrap_or(true);
        self.replace_null_with_default = parsed.get_boolean("replace.null.with.default").unwrap_or(true);
        self.decimal_format = match parsed.get_string("decimal.format") {
            Some(f) if f.eq_ignore_ascii_case("NUMERIC") => DecimalFormat::Numeric,
            _ => DecimalFormat::Base64,
        };
        let cache_size = parsed.get_int("schemas.cache.size").unwrap_or(DEFAULT_SCHEMA_CACHE_SIZE as i32);
        self.schema_cache = SchemaCache::new(usize::try_from(cache_size).unwrap_or(1));
        self.read_cache = ReadSchemaCache::new(usize::try_from(cache_size).unwrap_or(1));
        Ok(())
    }

    fn from_connect(
        &self,
        topic: &str,
        schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Vec<u8>>, ConverterError> {
        if schema.is_none() && value.is_null() {
            return Ok(None);
        }
        let fail = |reason: String| ConverterError::Serialize { topic: topic.to_string(), reason };
        // Written straight into the text (writer.rs), schemas from the
        // cache: the same bytes as the tree below, which tests compare.
        let mut out = String::with_capacity(256);
        if self.schemas_enable {
            out.push_str("{\"schema\":");
            match schema {
                Some(s) => self
                    .schema_cache
                    .write(s, &mut out, || {
                        let mut text = String::new();
                        self.as_json_schema(s)?.write_to(&mut text);
                        Ok(text)
                    })
                    .map_err(fail)?,
                None => out.push_str("null"),
            }
            out.push_str(",\"payload\":");
            self.write_value(schema, value, At::Root, &mut out).map_err(fail)?;
            out.push('}');
        } else {
            self.write_value(schema, value, At::Root, &mut out).map_err(fail)?;
        }
        Ok(Some(out.into_bytes()))
    }

    fn to_connect(&self, topic: &str, bytes: Option<&[u8]>) -> Result<SchemaAndValue, ConverterError> {
        let Some(bytes) = bytes.filter(|b| !b.is_empty()) else {
            return Ok(SchemaAndValue::null());
        };
        let fail = |reason: String| ConverterError::Deserialize { topic: topic.to_string(), reason };
        let json = Json::parse(bytes).map_err(|e| fail(format!("invalid JSON: {e}")))?;
        if !self.schemas_enable {
            return Ok(SchemaAndValue::new(None, infer(&json)));
        }
        let envelope_ok = match &json {
            Json::Object(fields) => {
                fields.len() == 2 && json.get("schema").is_some() && json.get("payload").is_some()
            }
            _ => false,
        };
        if !envelope_ok {
            return Err(fail(
                "JsonConverter with schemas.enable requires \"schema\" and \"payload\" fields and may not \
                 contain additional fields. If you are trying to deserialize plain JSON data, set \
                 schemas.enable=false in your converter configuration."
                    .into(),
            ));
        }
        let schema_json = json.get("schema").unwrap_or(&Json::Null);
        let schema = self
            .read_cache
            .get_or_build(schema_json, || self.as_connect_schema(schema_json))
            .map_err(fail)?;
        let value = self
            .to_connect_value(schema.as_ref(), json.get("payload").unwrap_or(&Json::Null), "")
            .map_err(fail)?;
        Ok(SchemaAndValue { schema, value })
    }
}

impl JsonConverter {
    /// `from_connect` through the JSON tree: the reference the writer is
    /// tested against.
    #[cfg(test)]
    pub(crate) fn write_through_tree(
        &self,
        topic: &str,
        schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Vec<u8>>, ConverterError> {
        if schema.is_none() && value.is_null() {
            return Ok(None);
        }
        let fail = |reason: String| ConverterError::Serialize { topic: topic.to_string(), reason };
        let payload = self.to_json(schema, value, "").map_err(fail)?;
        let json = if self.schemas_enable {
            let schema_json = match schema {
                Some(s) => self.as_json_schema(s).map_err(fail)?,
                None => Json::Null,
            };
            Json::Object(vec![("schema".into(), schema_json), ("payload".into(), payload)])
        } else {
            payload
        };
        Ok(Some(json.to_bytes()))
    }
}
