//! `org.apache.kafka.connect.transforms.HoistField$Key` / `$Value`: wraps
//! the key or value in a struct (or map) with one field.

use std::collections::HashMap;

use super::util::{self, operating, with_operating};
use super::{Target, TransformError, Transformation};
use crate::config_def::{ConfigDef, ConfigError, ConfigType, Importance, Validator};
use crate::data::{SchemaBuilder, Struct, Value};
use crate::record::ConnectRecord;

/// Wraps the key or value in a single-field struct or map.
#[derive(Clone, Debug)]
pub struct HoistField {
    target: Target,
    field: String,
}

impl HoistField {
    /// The transform's keys.
    pub fn config_def() -> ConfigDef {
        ConfigDef::new()
            .define("field", ConfigType::String, Importance::Medium, "Name of the single field.")
            .validate(Validator::NonEmpty)
    }

    /// Builds the transform.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming a bad, missing or unknown key.
    pub fn new(target: Target, props: &HashMap<String, String>) -> Result<HoistField, ConfigError> {
        let p = util::parse(&Self::config_def(), props)?;
        Ok(HoistField { target, field: p.require_string("field")?.to_string() })
    }
}

impl Transformation for HoistField {
    fn apply(&self, record: ConnectRecord) -> Result<Option<ConnectRecord>, TransformError> {
        let (schema, value) = operating(&record, self.target);
        let (new_schema, new_value) = match schema {
            None => (None, Value::Map(vec![(Value::String(self.field.clone()), value.clone())])),
            Some(schema) => {
                let wrapper = SchemaBuilder::structure().field(self.field.clone(), schema.clone()).build()?;
                let s = Struct::with_values(wrapper.clone(), vec![value.clone()])?;
                (Some(wrapper), Value::Struct(s))
            }
        };
        Ok(Some(with_operating(record, self.target, new_schema, new_value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Schema, SchemaType};
    use crate::transforms::util::tests::props;

    #[test]
    fn hoists_a_schema_value_into_a_struct() {
        let t = HoistField::new(Target::Value, &props(&[("field", "line")])).unwrap();
        let r = ConnectRecord::default().with_value(Some(Schema::of(SchemaType::String)), "hello");
        let out = t.apply(r).unwrap().unwrap();
        let s = out.value.as_struct().unwrap();
        assert_eq!(s.get("line").unwrap(), &Value::String("hello".into()));
        assert_eq!(s.schema().field("line").unwrap().schema(), &Schema::of(SchemaType::String));
    }

    #[test]
    fn hoists_a_schemaless_key_into_a_map() {
        let t = HoistField::new(Target::Key, &props(&[("field", "id")])).unwrap();
        let out = t.apply(ConnectRecord::default().with_key(None, 5i64)).unwrap().unwrap();
        assert_eq!(out.key, Value::Map(vec![("id".into(), 5i64.into())]));
    }
}
