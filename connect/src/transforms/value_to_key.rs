//! `org.apache.kafka.connect.transforms.ValueToKey`: replaces the key with a
//! struct (or map) of fields taken from the value.

use std::collections::HashMap;

use super::util::{self, require_map, require_struct};
use super::{TransformError, Transformation};
use crate::config_def::{ConfigDef, ConfigError, ConfigType, Importance, Validator};
use crate::data::{SchemaBuilder, Struct, Value};
use crate::record::ConnectRecord;

const NAME: &str = "ValueToKey";

/// Builds the key from value fields.
#[derive(Clone, Debug)]
pub struct ValueToKey {
    fields: Vec<String>,
}

impl ValueToKey {
    /// The transform's keys.
    pub fn config_def() -> ConfigDef {
        ConfigDef::new()
            .define("fields", ConfigType::List, Importance::High, "Value fields to copy into the key.")
            .validate(Validator::NonEmpty)
    }

    /// Builds the transform.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming a bad, missing or unknown key.
    pub fn new(props: &HashMap<String, String>) -> Result<ValueToKey, ConfigError> {
        let p = util::parse(&Self::config_def(), props)?;
        Ok(ValueToKey { fields: p.get_list("fields").unwrap_or_default().to_vec() })
    }
}

impl Transformation for ValueToKey {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, TransformError> {
        match &record.value_schema {
            None => {
                require_map(&record.value, NAME, "copying fields from value to key")?;
                let key = self
                    .fields
                    .iter()
                    .map(|f| (Value::String(f.clone()), record.value.map_get(f).cloned().unwrap_or_default()))
                    .collect();
                record.key_schema = None;
                record.key = Value::Map(key);
            }
            Some(schema) => {
                let s = require_struct(&record.value, NAME, "copying fields from value to key")?;
                let mut b = SchemaBuilder::structure();
                let mut values = Vec::with_capacity(self.fields.len());
                for name in &self.fields {
                    let field = schema.field(name).ok_or_else(|| {
                        TransformError::record(NAME, format!("field `{name}` is not in the value schema"))
                    })?;
                    b = b.field(name.clone(), field.schema().clone());
                    values.push(s.values()[field.index()].clone());
                }
                let key_schema = b.build()?;
                record.key = Value::Struct(Struct::with_values(key_schema.clone(), values)?);
                record.key_schema = Some(key_schema);
            }
        }
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Schema, SchemaType};
    use crate::transforms::util::tests::props;

    #[test]
    fn struct_value_fields_become_the_key() {
        let schema = SchemaBuilder::structure()
            .field("id", Schema::of(SchemaType::Int32))
            .field("region", Schema::optional_of(SchemaType::String))
            .field("body", Schema::of(SchemaType::String))
            .build()
            .unwrap();
        let v = Struct::with_values(schema.clone(), vec![5.into(), "eu".into(), "x".into()]).unwrap();
        let t = ValueToKey::new(&props(&[("fields", "region,id")])).unwrap();
        let out = t.apply(ConnectRecord::default().with_value(Some(schema), v)).unwrap().unwrap();
        let key = out.key.as_struct().unwrap();
        let names: Vec<_> = key.schema().fields().iter().map(|f| f.name()).collect();
        assert_eq!(names, ["region", "id"]);
        assert_eq!(key.values(), &[Value::String("eu".into()), Value::Int32(5)]);
        assert_eq!(out.key_schema.as_ref(), Some(key.schema()));
    }

    #[test]
    fn schemaless_value_fields_become_a_map_key() {
        let t = ValueToKey::new(&props(&[("fields", "id,missing")])).unwrap();
        let v = Value::Map(vec![("id".into(), 5i64.into()), ("x".into(), 1i64.into())]);
        let out = t.apply(ConnectRecord::new("t", v)).unwrap().unwrap();
        assert_eq!(out.key, Value::Map(vec![("id".into(), 5i64.into()), ("missing".into(), Value::Null)]));
        assert_eq!(out.key_schema, None);
    }

    #[test]
    fn unknown_field_is_named() {
        let schema = SchemaBuilder::structure().field("id", Schema::of(SchemaType::Int32)).build().unwrap();
        let v = Struct::with_values(schema.clone(), vec![5.into()]).unwrap();
        let t = ValueToKey::new(&props(&[("fields", "nope")])).unwrap();
        let err = t.apply(ConnectRecord::default().with_value(Some(schema), v)).unwrap_err();
        assert_eq!(err.to_string(), "ValueToKey: field `nope` is not in the value schema");
    }
}
