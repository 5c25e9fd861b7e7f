//! `org.apache.kafka.connect.transforms.SetSchemaMetadata$Key` / `$Value`:
//! sets the schema's name and/or version, updating struct values to match.

use std::collections::HashMap;

use super::util::{self, operating, with_operating};
use super::{Target, TransformError, Transformation};
use crate::config_def::{ConfigDef, ConfigError, ConfigType, Importance};
use crate::data::{Struct, Value};
use crate::record::ConnectRecord;

const NAME: &str = "SetSchemaMetadata";

/// Sets schema name and version.
#[derive(Clone, Debug)]
pub struct SetSchemaMetadata {
    target: Target,
    name: Option<String>,
    version: Option<i32>,
}

impl SetSchemaMetadata {
    /// The transform's keys.
    pub fn config_def() -> ConfigDef {
        ConfigDef::new()
            .define_optional("schema.name", ConfigType::String, Importance::High, "Schema name to set.")
            .define_optional("schema.version", ConfigType::Int, Importance::High, "Schema version to set.")
    }

    /// Builds the transform.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming a bad or unknown key, or `schema.name` when
    /// neither key is set.
    pub fn new(target: Target, props: &HashMap<String, String>) -> Result<SetSchemaMetadata, ConfigError> {
        let p = util::parse(&Self::config_def(), props)?;
        let name = p.get_string("schema.name").filter(|n| !n.is_empty()).map(str::to_string);
        let version = p.get_int("schema.version");
        if name.is_none() && version.is_none() {
            return Err(ConfigError::invalid(
                "schema.name",
                "",
                "neither schema.name nor schema.version is set",
            ));
        }
        Ok(SetSchemaMetadata { target, name, version })
    }
}

impl Transformation for SetSchemaMetadata {
    fn apply(&self, record: ConnectRecord) -> Result<Option<ConnectRecord>, TransformError> {
        let (schema, value) = operating(&record, self.target);
        let schema = schema
            .ok_or_else(|| TransformError::record(NAME, "a schema is required to update schema metadata"))?;
        let mut b = schema.to_builder();
        if let Some(name) = &self.name {
            b = b.name(name.clone());
        }
        if let Some(version) = self.version {
            b = b.version(version);
        }
        let new_schema = b.build()?;
        let new_value = match value {
            Value::Struct(s) => Value::Struct(Struct::with_values(new_schema.clone(), s.values().to_vec())?),
            other => other.clone(),
        };
        Ok(Some(with_operating(record, self.target, Some(new_schema), new_value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Schema, SchemaBuilder, SchemaType};
    use crate::transforms::util::tests::props;

    #[test]
    fn sets_name_and_version_on_schema_and_struct() {
        let schema =
            SchemaBuilder::structure().name("old").field("a", Schema::of(SchemaType::Int32)).build().unwrap();
        let s = Struct::with_values(schema.clone(), vec![1.into()]).unwrap();
        let t =
            SetSchemaMetadata::new(Target::Value, &props(&[("schema.name", "new"), ("schema.version", "3")]))
                .unwrap();
        let out = t.apply(ConnectRecord::default().with_value(Some(schema), s)).unwrap().unwrap();
        let new_schema = out.value_schema.clone().unwrap();
        assert_eq!((new_schema.name(), new_schema.version()), (Some("new"), Some(3)));
        assert_eq!(out.value.as_struct().unwrap().schema(), &new_schema);
    }

    #[test]
    fn needs_a_schema_and_a_setting() {
        let t = SetSchemaMetadata::new(Target::Key, &props(&[("schema.version", "2")])).unwrap();
        let err = t.apply(ConnectRecord::default().with_key(None, 1i64)).unwrap_err();
        assert_eq!(err.to_string(), "SetSchemaMetadata: a schema is required to update schema metadata");
        assert_eq!(SetSchemaMetadata::new(Target::Key, &props(&[])).unwrap_err().key(), "schema.name");
    }
}
