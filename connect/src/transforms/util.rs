//! Helpers shared by the transforms.

use std::collections::HashMap;

use super::{Target, TransformError};
use crate::config_def::{ConfigDef, ConfigError, ParsedConfig};
use crate::data::{Schema, SchemaBuilder, Struct, Value};
use crate::record::ConnectRecord;

/// Keys the chain passes to every transform and predicate; not theirs to check.
const CHAIN_KEYS: &[&str] = &["type", "predicate", "negate"];

/// Parses a transform's own keys; any other key is an error naming it.
pub(crate) fn parse(def: &ConfigDef, props: &HashMap<String, String>) -> Result<ParsedConfig, ConfigError> {
    def.parse_strict(props, CHAIN_KEYS)
}

/// The schema and value a `$Key`/`$Value` transform works on.
pub(crate) fn operating(record: &ConnectRecord, target: Target) -> (Option<&Schema>, &Value) {
    match target {
        Target::Key => (record.key_schema.as_ref(), &record.key),
        Target::Value => (record.value_schema.as_ref(), &record.value),
    }
}

/// Replaces the key or value (and its schema).
pub(crate) fn with_operating(
    mut record: ConnectRecord,
    target: Target,
    schema: Option<Schema>,
    value: Value,
) -> ConnectRecord {
    match target {
        Target::Key => {
            record.key_schema = schema;
            record.key = value;
        }
        Target::Value => {
            record.value_schema = schema;
            record.value = value;
        }
    }
    record
}

/// A struct builder carrying the name, version, doc and parameters of
/// `schema` (Kafka's `SchemaUtil.copySchemaBasics`).
pub(crate) fn struct_basics(schema: &Schema) -> SchemaBuilder {
    let mut b = SchemaBuilder::structure().parameters(schema.parameters().iter().cloned());
    if let Some(name) = schema.name() {
        b = b.name(name);
    }
    if let Some(version) = schema.version() {
        b = b.version(version);
    }
    if let Some(doc) = schema.doc() {
        b = b.doc(doc);
    }
    if schema.is_optional() {
        b = b.optional();
    }
    b
}

pub(crate) fn require_struct<'a>(
    value: &'a Value,
    transform: &'static str,
    purpose: &str,
) -> Result<&'a Struct, TransformError> {
    value.as_struct().ok_or_else(|| {
        TransformError::record(
            transform,
            format!(
                "only struct values are supported for {purpose} with a schema, found {}",
                value.type_name()
            ),
        )
    })
}

pub(crate) fn require_map<'a>(
    value: &'a Value,
    transform: &'static str,
    purpose: &str,
) -> Result<&'a [(Value, Value)], TransformError> {
    value.as_map().ok_or_else(|| {
        TransformError::record(
            transform,
            format!(
                "only map values are supported for {purpose} without a schema, found {}",
                value.type_name()
            ),
        )
    })
}

/// Sets a string key in map entries, replacing an existing entry.
pub(crate) fn map_put(entries: &mut Vec<(Value, Value)>, key: &str, value: Value) {
    match entries.iter_mut().find(|(k, _)| k.as_str() == Some(key)) {
        Some(slot) => slot.1 = value,
        None => entries.push((Value::String(key.to_string()), value)),
    }
}

/// The struct's value for each field, defaults applied.
pub(crate) fn struct_get(s: &Struct, name: &str) -> Result<Value, TransformError> {
    Ok(s.get(name)?.clone())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashMap;

    pub(crate) fn props(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }
}
