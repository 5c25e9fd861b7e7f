//! `org.apache.kafka.connect.transforms.ExtractField$Key` / `$Value`:
//! replaces the key or value with one of its fields. With
//! `field.syntax.version=V2`, dots in `field` walk into nested structs/maps
//! (`address.city`).

use std::collections::HashMap;

use super::util::{self, operating, require_map, require_struct, with_operating};
use super::{Target, TransformError, Transformation};
use crate::config_def::{ConfigDef, ConfigError, ConfigType, Importance, Validator};
use crate::data::{Schema, Value};
use crate::record::ConnectRecord;

const NAME: &str = "ExtractField";

/// Extracts one (possibly nested) field.
#[derive(Clone, Debug)]
pub struct ExtractField {
    target: Target,
    path: Vec<String>,
}

impl ExtractField {
    /// The transform's keys.
    pub fn config_def() -> ConfigDef {
        ConfigDef::new()
            .define("field", ConfigType::String, Importance::Medium, "Field name to extract.")
            .validate(Validator::NonEmpty)
            .define_with_default(
                "field.syntax.version",
                ConfigType::String,
                "V1",
                Importance::High,
                "V1: field names are literal; V2: dots separate nested field names.",
            )
            .validate(Validator::OneOf(vec!["V1".into(), "V2".into()]))
    }

    /// Builds the transform.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming a bad, missing or unknown key.
    pub fn new(target: Target, props: &HashMap<String, String>) -> Result<ExtractField, ConfigError> {
        let p = util::parse(&Self::config_def(), props)?;
        let field = p.require_string("field")?;
        let v2 = p.get_string("field.syntax.version").is_some_and(|v| v.eq_ignore_ascii_case("V2"));
        let path = if v2 { field.split('.').map(str::to_string).collect() } else { vec![field.to_string()] };
        Ok(ExtractField { target, path })
    }

    fn field_schema(&self, schema: &Schema) -> Result<Schema, TransformError> {
        let mut current = schema.clone();
        for name in &self.path {
            let next = current.field(name).map(|f| f.schema().clone()).ok_or_else(|| {
                TransformError::record(NAME, format!("unknown field `{}`", self.path.join(".")))
            })?;
            current = next;
        }
        Ok(current)
    }
}

impl Transformation for ExtractField {
    fn apply(&self, record: ConnectRecord) -> Result<Option<ConnectRecord>, TransformError> {
        let (schema, value) = operating(&record, self.target);
        let (new_schema, new_value) = match schema {
            None => {
                if !value.is_null() {
                    require_map(value, NAME, "field extraction")?;
                }
                let mut current = value;
                for name in &self.path {
                    current = current.map_get(name).unwrap_or(&Value::Null);
                }
                (None, current.clone())
            }
            Some(schema) => {
                let field_schema = self.field_schema(schema)?;
                if !value.is_null() {
                    require_struct(value, NAME, "field extraction")?;
                }
                let mut current = value.clone();
                for name in &self.path {
                    current = match current {
                        Value::Struct(s) => s.get(name)?.clone(),
                        _ => Value::Null,
                    };
                }
                (Some(field_schema), current)
            }
        };
        Ok(Some(with_operating(record, self.target, new_schema, new_value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{SchemaBuilder, SchemaType, Struct};
    use crate::transforms::util::tests::props;

    fn nested() -> (Schema, Struct) {
        let address =
            SchemaBuilder::structure().field("city", Schema::of(SchemaType::String)).build().unwrap();
        let schema = SchemaBuilder::structure()
            .field("id", Schema::of(SchemaType::Int64))
            .field("address", address.clone())
            .build()
            .unwrap();
        let a = Struct::with_values(address, vec!["Delft".into()]).unwrap();
        let s = Struct::with_values(schema.clone(), vec![9i64.into(), a.into()]).unwrap();
        (schema, s)
    }

    #[test]
    fn extracts_a_struct_field_with_its_schema() {
        let (schema, s) = nested();
        let t = ExtractField::new(Target::Key, &props(&[("field", "id")])).unwrap();
        let out = t.apply(ConnectRecord::default().with_key(Some(schema), s)).unwrap().unwrap();
        assert_eq!(out.key, Value::Int64(9));
        assert_eq!(out.key_schema, Some(Schema::of(SchemaType::Int64)));
    }

    #[test]
    fn v2_syntax_walks_nested_structs_and_maps() {
        let (schema, s) = nested();
        let t = ExtractField::new(
            Target::Value,
            &props(&[("field", "address.city"), ("field.syntax.version", "V2")]),
        )
        .unwrap();
        let out = t.apply(ConnectRecord::default().with_value(Some(schema), s)).unwrap().unwrap();
        assert_eq!(out.value, Value::String("Delft".into()));
        let inner = Value::Map(vec![("city".into(), "Leiden".into())]);
        let v = Value::Map(vec![("address".into(), inner)]);
        let out = t.apply(ConnectRecord::new("t", v)).unwrap().unwrap();
        assert_eq!(out.value, Value::String("Leiden".into()));
    }

    #[test]
    fn v1_syntax_treats_dots_literally() {
        let t = ExtractField::new(Target::Value, &props(&[("field", "a.b")])).unwrap();
        let v = Value::Map(vec![("a.b".into(), 1i64.into())]);
        assert_eq!(t.apply(ConnectRecord::new("t", v)).unwrap().unwrap().value, Value::Int64(1));
    }

    #[test]
    fn unknown_schema_field_is_an_error() {
        let (schema, s) = nested();
        let t = ExtractField::new(Target::Value, &props(&[("field", "nope")])).unwrap();
        let err = t.apply(ConnectRecord::default().with_value(Some(schema), s)).unwrap_err();
        assert_eq!(err.to_string(), "ExtractField: unknown field `nope`");
    }
}
