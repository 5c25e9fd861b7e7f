//! `io.debezium.transforms.ExtractNewRecordState`: turns a Debezium change
//! event into the row it leaves (the `after` struct), for sinks that do not
//! read change events.
//!
//! - Inserts, updates and snapshot reads (`op` `c`, `u`, `r`) become their
//!   `after` row; key, topic and headers stay.
//! - Deletes and Debezium's tombstones follow
//!   `delete.tombstone.handling.mode`: `drop` drops both; `tombstone` turns
//!   the delete into a record with a null value (the row's schema) and
//!   drops Debezium's tombstone; `rewrite` turns the delete into its
//!   `before` row with `__deleted` = `"true"` (other rows get `"false"`)
//!   and drops tombstones; `rewrite-with-tombstone` also keeps tombstones.
//!   Without that key, the legacy `delete.handling.mode` (`drop`, `none`,
//!   `rewrite`) and `drop.tombstones` (default `true`) decide.
//! - A truncate event (no row before or after) is dropped; a record that is
//!   not a change event (a heartbeat) passes unchanged.
//! - `add.fields` appends envelope fields to the row, `add.headers` adds
//!   them as headers, each named `add.fields.prefix` (`__`) + its name:
//!   `op` and `ts_ms` (also `ts_us`, `ts_ns`) come from the envelope, `id`,
//!   `total_order` and `data_collection_order` from `transaction`, any
//!   other name from `source` (`table`, `lsn`, `db`…); `source.ts_ms` names
//!   its struct (`__source_ts_ms`), and `field:alias` renames.

use std::collections::HashMap;

use super::util;
use super::{TransformError, Transformation};
use crate::config_def::{ConfigDef, ConfigError, ConfigType, Importance, Validator};
use crate::data::{Schema, SchemaType, Struct, Value};
use crate::record::{ConnectRecord, Header};

const NAME: &str = "ExtractNewRecordState";

/// What becomes of a delete event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Deletes {
    Drop,
    /// A record with a null value.
    Null,
    /// The `before` row with `__deleted` = `"true"`.
    Rewrite,
}

/// An envelope field to copy: where it is and what it is called.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Added {
    /// `None`: the envelope's top level (or the default place for the name).
    parent: Option<String>,
    field: String,
    name: String,
}

impl Added {
    fn parse(spec: &str, prefix: &str) -> Added {
        let (path, alias) = match spec.split_once(':') {
            Some((path, alias)) => (path.trim(), Some(alias.trim())),
            None => (spec.trim(), None),
        };
        let (parent, field) = match path.split_once('.') {
            Some((parent, field)) => (Some(parent.to_string()), field.to_string()),
            None => (None, path.to_string()),
        };
        let name = match (alias, &parent) {
            (Some(alias), _) => format!("{prefix}{alias}"),
            (None, Some(parent)) => format!("{prefix}{parent}_{field}"),
            (None, None) => format!("{prefix}{field}"),
        };
        Added { parent, field, name }
    }

    /// The field's schema and value in `envelope`, if it has it.
    fn find<'a>(&self, envelope: &'a Struct) -> Option<(&'a Schema, &'a Value)> {
        let top = |field: &str| {
            let f = envelope.schema().field(field)?;
            Some((f.schema(), envelope.get(field).ok()?))
        };
        let within = |parent: &str, field: &str| {
            let s = envelope.get(parent).ok()?.as_struct()?;
            let f = s.schema().field(field)?;
            Some((f.schema(), s.get(field).ok()?))
        };
        match &self.parent {
            Some(parent) => within(parent, &self.field).or_else(|| top(&self.field)),
            None => match self.field.as_str() {
                "op" | "ts_ms" | "ts_us" | "ts_ns" => top(&self.field),
                "id" | "total_order" | "data_collection_order" => within("transaction", &self.field),
                _ => within("source", &self.field),
            },
        }
    }
}

/// Debezium's `ExtractNewRecordState` (see the module docs).
#[derive(Clone, Debug)]
pub struct ExtractNewRecordState {
    deletes: Deletes,
    keep_tombstones: bool,
    fields: Vec<Added>,
    headers: Vec<Added>,
}

/// Debezium's class name.
pub const EXTRACT_NEW_RECORD_STATE_CLASS: &str = "io.debezium.transforms.ExtractNewRecordState";

impl ExtractNewRecordState {
    /// The transform's keys.
    pub fn config_def() -> ConfigDef {
        ConfigDef::new()
            .define_optional(
                "delete.tombstone.handling.mode",
                ConfigType::String,
                Importance::Medium,
                "drop, tombstone, rewrite or rewrite-with-tombstone (overrides the two legacy keys).",
            )
            .validate(Validator::one_of(&["drop", "tombstone", "rewrite", "rewrite-with-tombstone"]))
            .define_with_default(
                "delete.handling.mode",
                ConfigType::String,
                "drop",
                Importance::Low,
                "Legacy: drop, none (a null-value record) or rewrite.",
            )
            .validate(Validator::one_of(&["drop", "none", "rewrite"]))
            .define_with_default(
                "drop.tombstones",
                ConfigType::Boolean,
                true,
                Importance::Low,
                "Legacy: drop Debezium's tombstones.",
            )
            .define_with_default(
                "add.fields",
                ConfigType::List,
                "",
                Importance::Low,
                "Envelope fields to append to the row.",
            )
            .define_with_default(
                "add.fields.prefix",
                ConfigType::String,
                "__",
                Importance::Low,
                "Prefix of added fields.",
            )
            .define_with_default(
                "add.headers",
                ConfigType::List,
                "",
                Importance::Low,
                "Envelope fields to add as headers.",
            )
            .define_with_default(
                "add.headers.prefix",
                ConfigType::String,
                "__",
                Importance::Low,
                "Prefix of added headers.",
            )
    }

    /// Builds the transform.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming a bad or unknown key.
    pub fn new(props: &HashMap<String, String>) -> Result<ExtractNewRecordState, ConfigError> {
        let p = util::parse(&Self::config_def(), props)?;
        let (deletes, keep_tombstones) = match p.get_string("delete.tombstone.handling.mode") {
            Some(mode) => match mode.trim().to_ascii_lowercase().as_str() {
                "drop" => (Deletes::Drop, false),
                "tombstone" => (Deletes::Null, false),
                "rewrite" => (Deletes::Rewrite, false),
                _ => (Deletes::Rewrite, true),
            },
            None => {
                let deletes = match p.get_string("delete.handling.mode").unwrap_or("drop").trim() {
                    "none" => Deletes::Null,
                    "rewrite" => Deletes::Rewrite,
                    _ => Deletes::Drop,
                };
                (deletes, !p.get_boolean("drop.tombstones").unwrap_or(true))
            }
        };
        let list = |key: &str, prefix: &str| -> Vec<Added> {
            let prefix = p.get_string(prefix).unwrap_or("__");
            p.get_list(key)
                .unwrap_or_default()
                .iter()
                .filter(|s| !s.trim().is_empty())
                .map(|s| Added::parse(s, prefix))
                .collect()
        };
        Ok(ExtractNewRecordState {
            deletes,
            keep_tombstones,
            fields: list("add.fields", "add.fields.prefix"),
            headers: list("add.headers", "add.headers.prefix"),
        })
    }

    /// `row` with the added fields (and `__deleted` when rewriting).
    fn extend(
        &self,
        row_schema: &Schema,
        row: &Struct,
        envelope: &Struct,
        deleted: Option<bool>,
    ) -> Result<(Schema, Value), TransformError> {
        let mut b = util::struct_basics(row_schema);
        for f in row_schema.fields() {
            b = b.field(f.name(), f.schema().clone());
        }
        let mut values = row.values().to_vec();
        for added in &self.fields {
            if let Some((schema, value)) = added.find(envelope) {
                let optional = schema.to_builder().optional().build()?;
                b = b.field(added.name.clone(), optional);
                values.push(value.clone());
            }
        }
        if let Some(deleted) = deleted {
            b = b.field("__deleted", Schema::optional_of(SchemaType::String));
            values.push(Value::String(deleted.to_string()));
        }
        let schema = b.build()?;
        let value = Struct::with_values(schema.clone(), values)?;
        Ok((schema, Value::Struct(value)))
    }
}

/// Whether `schema` is a change event's envelope.
fn is_envelope(schema: &Schema) -> bool {
    schema.schema_type() == SchemaType::Struct
        && schema.field("op").is_some()
        && schema.field("before").is_some()
        && schema.field("after").is_some()
}

impl Transformation for ExtractNewRecordState {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, TransformError> {
        let envelope = match (&record.value_schema, &record.value) {
            (_, Value::Null) => return Ok(self.keep_tombstones.then_some(record)),
            (Some(schema), Value::Struct(s)) if is_envelope(schema) => s.clone(),
            _ => return Ok(Some(record)),
        };
        let op = envelope.get("op").ok().and_then(Value::as_str).unwrap_or("").to_string();
        let side = |name: &str| -> Result<Option<(Schema, Struct)>, TransformError> {
            let field = envelope.schema().field(name).expect("an envelope has before and after");
            Ok(match envelope.get(name)? {
                Value::Struct(s) => Some((field.schema().clone(), s.clone())),
                _ => None,
            })
        };
        let rewrite = self.deletes == Deletes::Rewrite;
        let (schema, value) = match op.as_str() {
            "d" => match self.deletes {
                Deletes::Drop => return Ok(None),
                Deletes::Null => {
                    let schema = envelope.schema().field("after").expect("checked").schema().clone();
                    (Some(schema), Value::Null)
                }
                Deletes::Rewrite => {
                    let Some((row_schema, before)) = side("before")? else {
                        return Err(TransformError::record(NAME, "a delete event without its `before` row"));
                    };
                    let (schema, value) = self.extend(&row_schema, &before, &envelope, Some(true))?;
                    (Some(schema), value)
                }
            },
            _ => match side("after")? {
                Some((row_schema, after)) => {
                    let (schema, value) =
                        self.extend(&row_schema, &after, &envelope, rewrite.then_some(false))?;
                    (Some(schema), value)
                }
                // A truncate (or a message without rows): nothing to extract.
                None => return Ok(None),
            },
        };
        for added in &self.headers {
            if let Some((schema, value)) = added.find(&envelope) {
                record.headers.push(Header {
                    key: added.name.clone(),
                    schema: Some(schema.clone()),
                    value: value.clone(),
                });
            }
        }
        record.value_schema = schema;
        record.value = value;
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::SchemaBuilder;

    fn row_schema() -> Schema {
        SchemaBuilder::structure()
            .name("db.public.t.Value")
            .field("id", Schema::of(SchemaType::Int32))
            .field("name", Schema::optional_of(SchemaType::String))
            .optional()
            .build()
            .unwrap()
    }

    fn envelope(op: &str, before: Option<(i32, &str)>, after: Option<(i32, &str)>) -> ConnectRecord {
        let source = SchemaBuilder::structure()
            .name("io.debezium.connector.postgresql.Source")
            .field("table", Schema::of(SchemaType::String))
            .field("lsn", Schema::optional_of(SchemaType::Int64))
            .field("ts_ms", Schema::of(SchemaType::Int64))
            .build()
            .unwrap();
        let schema = SchemaBuilder::structure()
            .name("db.public.t.Envelope")
            .field("before", row_schema())
            .field("after", row_schema())
            .field("source", source.clone())
            .field("op", Schema::of(SchemaType::String))
            .field("ts_ms", Schema::optional_of(SchemaType::Int64))
            .build()
            .unwrap();
        let row = |r: Option<(i32, &str)>| {
            r.map_or(Value::Null, |(id, name)| {
                Value::Struct(
                    Struct::with_values(row_schema(), vec![Value::Int32(id), Value::String(name.into())])
                        .unwrap(),
                )
            })
        };
        let source =
            Struct::with_values(source, vec![Value::String("t".into()), Value::Int64(77), Value::Int64(5)])
                .unwrap();
        let value = Struct::with_values(
            schema.clone(),
            vec![row(before), row(after), Value::Struct(source), Value::String(op.into()), Value::Int64(9)],
        )
        .unwrap();
        ConnectRecord::new("db.public.t", Value::Null).with_value(Some(schema), Value::Struct(value))
    }

    fn transform(pairs: &[(&str, &str)]) -> ExtractNewRecordState {
        ExtractNewRecordState::new(&pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
            .unwrap()
    }

    fn field<'a>(r: &'a ConnectRecord, name: &str) -> &'a Value {
        r.value.as_struct().unwrap().get(name).unwrap()
    }

    #[test]
    fn rows_come_out_of_inserts_and_updates_and_deletes_are_dropped_by_default() {
        let t = transform(&[]);
        let out = t.apply(envelope("u", Some((1, "a")), Some((1, "b")))).unwrap().unwrap();
        assert_eq!(out.value_schema.as_ref().unwrap().name(), Some("db.public.t.Value"));
        assert_eq!(field(&out, "name"), &Value::String("b".into()));
        assert!(t.apply(envelope("d", Some((1, "b")), None)).unwrap().is_none());
        assert!(
            t.apply(ConnectRecord::new("db.public.t", Value::Null)).unwrap().is_none(),
            "tombstones dropped"
        );
        assert!(t.apply(envelope("t", None, None)).unwrap().is_none(), "truncates dropped");
        let heartbeat = ConnectRecord::new("__debezium-heartbeat.db", Value::String("x".into()));
        assert_eq!(t.apply(heartbeat.clone()).unwrap(), Some(heartbeat), "not an envelope: unchanged");
    }

    #[test]
    fn each_delete_mode_does_what_debezium_documents() {
        let delete = || envelope("d", Some((1, "gone")), None);
        let tombstone = || ConnectRecord::new("db.public.t", Value::Null);
        let null = transform(&[("delete.tombstone.handling.mode", "tombstone")]);
        let out = null.apply(delete()).unwrap().unwrap();
        assert!(out.value.is_null() && out.value_schema.is_some());
        assert!(null.apply(tombstone()).unwrap().is_none());
        let rewrite = transform(&[
            ("delete.tombstone.handling.mode", "rewrite"),
            ("add.fields", "op,table,source.ts_ms,lsn:position"),
        ]);
        let out = rewrite.apply(delete()).unwrap().unwrap();
        assert_eq!(field(&out, "name"), &Value::String("gone".into()));
        assert_eq!(field(&out, "__deleted"), &Value::String("true".into()));
        assert_eq!(field(&out, "__op"), &Value::String("d".into()));
        assert_eq!(field(&out, "__table"), &Value::String("t".into()));
        assert_eq!(field(&out, "__source_ts_ms"), &Value::Int64(5));
        assert_eq!(field(&out, "__position"), &Value::Int64(77));
        let created = rewrite.apply(envelope("c", None, Some((2, "new")))).unwrap().unwrap();
        assert_eq!(field(&created, "__deleted"), &Value::String("false".into()));
        assert!(rewrite.apply(tombstone()).unwrap().is_none());
        let with_tombstones = transform(&[("delete.tombstone.handling.mode", "rewrite-with-tombstone")]);
        assert!(with_tombstones.apply(tombstone()).unwrap().is_some());
        // The legacy keys: none + drop.tombstones=false keeps both.
        let legacy = transform(&[("delete.handling.mode", "none"), ("drop.tombstones", "false")]);
        assert!(legacy.apply(delete()).unwrap().unwrap().value.is_null());
        assert!(legacy.apply(tombstone()).unwrap().is_some());
    }

    #[test]
    fn headers_carry_envelope_fields_and_bad_keys_are_named() {
        let t = transform(&[("add.headers", "op,ts_ms"), ("add.headers.prefix", "dbz.")]);
        let out = t.apply(envelope("c", None, Some((3, "x")))).unwrap().unwrap();
        let keys: Vec<&str> = out.headers.iter().map(|h| h.key.as_str()).collect();
        assert_eq!(keys, ["dbz.op", "dbz.ts_ms"]);
        let err = ExtractNewRecordState::new(
            &[("delete.tombstone.handling.mode".to_string(), "keep".to_string())].into(),
        )
        .unwrap_err();
        assert_eq!(err.key(), "delete.tombstone.handling.mode");
        let err = ExtractNewRecordState::new(&[("route.by.field".to_string(), "x".to_string())].into())
            .unwrap_err();
        assert_eq!(err.key(), "route.by.field", "not supported, and said so");
    }
}
