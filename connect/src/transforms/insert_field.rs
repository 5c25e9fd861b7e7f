//! `org.apache.kafka.connect.transforms.InsertField$Key` / `$Value`: adds
//! record metadata (topic, partition, offset, timestamp) or a static string
//! as fields.
//!
//! A field name may end in `!` (required field in the new schema) or `?`
//! (optional, the default). Timestamps are `Timestamp` (epoch millis) fields.

use std::collections::HashMap;

use super::util::{self, operating, require_map, require_struct, with_operating};
use super::{Target, TransformError, Transformation};
use crate::config_def::{ConfigDef, ConfigError, ConfigType, Importance};
use crate::data::{Schema, SchemaType, Struct, Timestamp, Value};
use crate::record::ConnectRecord;

const NAME: &str = "InsertField";

#[derive(Clone, Debug, PartialEq)]
struct Spec {
    name: String,
    optional: bool,
}

impl Spec {
    fn parse(raw: Option<&str>) -> Option<Spec> {
        let raw = raw?.trim();
        if raw.is_empty() {
            return None;
        }
        Some(if let Some(name) = raw.strip_suffix('!') {
            Spec { name: name.to_string(), optional: false }
        } else if let Some(name) = raw.strip_suffix('?') {
            Spec { name: name.to_string(), optional: true }
        } else {
            Spec { name: raw.to_string(), optional: true }
        })
    }
}

/// Inserts metadata fields into the key or value.
#[derive(Clone, Debug)]
pub struct InsertField {
    target: Target,
    topic: Option<Spec>,
    partition: Option<Spec>,
    offset: Option<Spec>,
    timestamp: Option<Spec>,
    static_field: Option<Spec>,
    static_value: Option<String>,
}

impl InsertField {
    /// The transform's keys.
    pub fn config_def() -> ConfigDef {
        let field = |def: ConfigDef, key: &str, doc: &str| {
            def.define_optional(key, ConfigType::String, Importance::Medium, doc)
        };
        let def = field(ConfigDef::new(), "topic.field", "Field name for the topic.");
        let def = field(def, "partition.field", "Field name for the partition.");
        let def = field(def, "offset.field", "Field name for the offset (sink records only).");
        let def = field(def, "timestamp.field", "Field name for the record timestamp.");
        let def = field(def, "static.field", "Field name for the static value.");
        def.define_optional("static.value", ConfigType::String, Importance::Medium, "The static field value.")
    }

    /// Builds the transform.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming a bad or unknown key.
    pub fn new(target: Target, props: &HashMap<String, String>) -> Result<InsertField, ConfigError> {
        let p = util::parse(&Self::config_def(), props)?;
        Ok(InsertField {
            target,
            topic: Spec::parse(p.get_string("topic.field")),
            partition: Spec::parse(p.get_string("partition.field")),
            offset: Spec::parse(p.get_string("offset.field")),
            timestamp: Spec::parse(p.get_string("timestamp.field")),
            static_field: Spec::parse(p.get_string("static.field")),
            static_value: p.get_string("static.value").map(str::to_string),
        })
    }

    /// The fields to insert: spec, schema and value, in Kafka's order.
    fn insertions(&self, record: &ConnectRecord) -> Result<Vec<(&Spec, Schema, Value)>, TransformError> {
        let schema = |spec: &Spec, t: SchemaType| {
            if spec.optional {
                Schema::optional_of(t)
            } else {
                Schema::of(t)
            }
        };
        let mut out = Vec::new();
        if let Some(spec) = &self.topic {
            out.push((spec, schema(spec, SchemaType::String), Value::String(record.topic.clone())));
        }
        if let Some(spec) = &self.partition {
            out.push((spec, schema(spec, SchemaType::Int32), record.kafka_partition.into()));
        }
        if let Some(spec) = &self.offset {
            let offset = record.kafka_offset.ok_or_else(|| {
                TransformError::record(
                    NAME,
                    "offset.field needs a sink record (the record has no kafka offset)",
                )
            })?;
            out.push((spec, schema(spec, SchemaType::Int64), Value::Int64(offset)));
        }
        if let Some(spec) = &self.timestamp {
            let b = Timestamp::builder();
            let s = if spec.optional { b.optional() } else { b }.build()?;
            out.push((spec, s, record.timestamp.into()));
        }
        if let Some(spec) = &self.static_field {
            out.push((spec, schema(spec, SchemaType::String), self.static_value.clone().into()));
        }
        Ok(out)
    }
}

impl Transformation for InsertField {
    fn apply(&self, record: ConnectRecord) -> Result<Option<ConnectRecord>, TransformError> {
        let (schema, value) = operating(&record, self.target);
        if value.is_null() {
            return Ok(Some(record));
        }
        let insertions = self.insertions(&record)?;
        let (new_schema, new_value) = match schema {
            None => {
                let mut entries = require_map(value, NAME, "field insertion")?.to_vec();
                for (spec, _, v) in insertions {
                    util::map_put(&mut entries, &spec.name, v);
                }
                (None, Value::Map(entries))
            }
            Some(schema) => {
                let s = require_struct(value, NAME, "field insertion")?;
                let mut b = util::struct_basics(schema);
                for f in schema.fields() {
                    b = b.field(f.name(), f.schema().clone());
                }
                let mut values = s.values().to_vec();
                for (spec, field_schema, v) in insertions {
                    b = b.field(spec.name.clone(), field_schema);
                    values.push(v);
                }
                let new_schema = b.build()?;
                let new_struct = Struct::with_values(new_schema.clone(), values)?;
                (Some(new_schema), Value::Struct(new_struct))
            }
        };
        Ok(Some(with_operating(record, self.target, new_schema, new_value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::SchemaBuilder;
    use crate::transforms::util::tests::props;

    fn transform(target: Target) -> InsertField {
        InsertField::new(
            target,
            &props(&[
                ("topic.field", "t!"),
                ("partition.field", "p"),
                ("offset.field", "o"),
                ("timestamp.field", "ts"),
                ("static.field", "s"),
                ("static.value", "v"),
            ]),
        )
        .unwrap()
    }

    fn record() -> ConnectRecord {
        let mut r = ConnectRecord::new("orders", Value::Null);
        r.kafka_partition = Some(3);
        r.kafka_offset = Some(42);
        r.timestamp = Some(1000);
        r
    }

    #[test]
    fn inserts_fields_into_a_struct_with_schema() {
        let schema =
            SchemaBuilder::structure().name("V").field("a", Schema::of(SchemaType::Int32)).build().unwrap();
        let mut s = Struct::new(schema.clone()).unwrap();
        s.put("a", 1).unwrap();
        let out = transform(Target::Value).apply(record().with_value(Some(schema), s)).unwrap().unwrap();
        let new_schema = out.value_schema.clone().unwrap();
        assert_eq!(new_schema.name(), Some("V"));
        let names: Vec<_> = new_schema.fields().iter().map(|f| f.name()).collect();
        assert_eq!(names, ["a", "t", "p", "o", "ts", "s"]);
        assert!(!new_schema.field("t").unwrap().schema().is_optional());
        assert!(new_schema.field("p").unwrap().schema().is_optional());
        assert_eq!(new_schema.field("ts").unwrap().schema().name(), Some(Timestamp::LOGICAL_NAME));
        let v = out.value.as_struct().unwrap();
        assert_eq!(
            v.values(),
            &[
                Value::Int32(1),
                Value::String("orders".into()),
                Value::Int32(3),
                Value::Int64(42),
                Value::Int64(1000),
                Value::String("v".into())
            ]
        );
    }

    #[test]
    fn inserts_fields_into_a_schemaless_key_map() {
        let r = record().with_key(None, Value::Map(vec![("k".into(), 1i64.into())]));
        let out = transform(Target::Key).apply(r).unwrap().unwrap();
        assert_eq!(out.key.map_get("t"), Some(&Value::String("orders".into())));
        assert_eq!(out.key.map_get("o"), Some(&Value::Int64(42)));
        assert_eq!(out.key.map_get("k"), Some(&Value::Int64(1)));
        assert_eq!(out.key.as_map().unwrap().len(), 6);
    }

    #[test]
    fn offset_field_needs_a_sink_record() {
        let mut r = record().with_value(None, Value::Map(vec![]));
        r.kafka_offset = None;
        let err = transform(Target::Value).apply(r).unwrap_err();
        assert_eq!(
            err.to_string(),
            "InsertField: offset.field needs a sink record (the record has no kafka offset)"
        );
    }

    #[test]
    fn tombstones_pass_unchanged() {
        let r = record();
        assert_eq!(transform(Target::Value).apply(r.clone()).unwrap(), Some(r));
    }

    #[test]
    fn non_map_schemaless_value_is_an_error() {
        let err = transform(Target::Value).apply(record().with_value(None, "x")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "InsertField: only map values are supported for field insertion without a schema, found string"
        );
    }
}
