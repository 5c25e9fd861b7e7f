//! `org.apache.kafka.connect.transforms.Flatten$Key` / `$Value`: flattens
//! nested structs (or maps with string keys) into one level, joining names
//! with `delimiter` (default `.`). Arrays are kept as they are. Fields under
//! an optional struct become optional.

use std::collections::HashMap;

use super::util::{self, operating, require_map, require_struct, with_operating};
use super::{Target, TransformError, Transformation};
use crate::config_def::{ConfigDef, ConfigError, ConfigType, Importance};
use crate::data::{Schema, SchemaBuilder, SchemaType, Struct, Value};
use crate::record::ConnectRecord;

const NAME: &str = "Flatten";

/// Flattens nested structs or maps.
#[derive(Clone, Debug)]
pub struct Flatten {
    target: Target,
    delimiter: String,
}

impl Flatten {
    /// The transform's keys.
    pub fn config_def() -> ConfigDef {
        ConfigDef::new().define_with_default(
            "delimiter",
            ConfigType::String,
            ".",
            Importance::Medium,
            "Delimiter between the names of nested fields.",
        )
    }

    /// Builds the transform.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming an unknown key.
    pub fn new(target: Target, props: &HashMap<String, String>) -> Result<Flatten, ConfigError> {
        util::parse(&Self::config_def(), props)?;
        // Taken raw: a delimiter may be a space, which parsing would trim.
        let delimiter = props.get("delimiter").cloned().unwrap_or_else(|| ".".to_string());
        Ok(Flatten { target, delimiter })
    }

    fn name(&self, prefix: &str, name: &str) -> String {
        if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}{}{name}", self.delimiter)
        }
    }

    fn flatten_schema(
        &self,
        schema: &Schema,
        prefix: &str,
        optional: bool,
        b: SchemaBuilder,
    ) -> SchemaBuilder {
        let mut b = b;
        for field in schema.fields() {
            let name = self.name(prefix, field.name());
            let fs = field.schema();
            if fs.schema_type() == SchemaType::Struct {
                b = self.flatten_schema(fs, &name, optional || fs.is_optional(), b);
            } else if optional && !fs.is_optional() {
                b = b.field(name, fs.to_builder().optional().build_unchecked());
            } else {
                b = b.field(name, fs.clone());
            }
        }
        b
    }

    fn flatten_struct(&self, schema: &Schema, value: Option<&Struct>, out: &mut Vec<Value>) {
        for field in schema.fields() {
            let v = value.map(|s| s.values()[field.index()].clone()).unwrap_or_default();
            if field.schema().schema_type() == SchemaType::Struct {
                self.flatten_struct(field.schema(), v.as_struct(), out);
            } else {
                out.push(v);
            }
        }
    }

    fn flatten_map(&self, entries: &[(Value, Value)], prefix: &str, out: &mut Vec<(Value, Value)>) {
        for (k, v) in entries {
            let key = match k {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let name = self.name(prefix, &key);
            match v {
                Value::Map(inner) => self.flatten_map(inner, &name, out),
                other => out.push((Value::String(name), other.clone())),
            }
        }
    }
}

impl Transformation for Flatten {
    fn apply(&self, record: ConnectRecord) -> Result<Option<ConnectRecord>, TransformError> {
        let (schema, value) = operating(&record, self.target);
        let (new_schema, new_value) = match schema {
            None => {
                if value.is_null() {
                    return Ok(Some(record));
                }
                let mut out = Vec::new();
                self.flatten_map(require_map(value, NAME, "flattening")?, "", &mut out);
                (None, Value::Map(out))
            }
            Some(schema) => {
                if schema.schema_type() != SchemaType::Struct {
                    return Err(TransformError::record(
                        NAME,
                        format!("cannot flatten a {}", schema.describe()),
                    ));
                }
                let new_schema =
                    self.flatten_schema(schema, "", false, util::struct_basics(schema)).build()?;
                if value.is_null() {
                    (Some(new_schema), Value::Null)
                } else {
                    let s = require_struct(value, NAME, "flattening")?;
                    let mut values = Vec::new();
                    self.flatten_struct(schema, Some(s), &mut values);
                    (Some(new_schema.clone()), Value::Struct(Struct::with_values(new_schema, values)?))
                }
            }
        };
        Ok(Some(with_operating(record, self.target, new_schema, new_value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::util::tests::props;

    #[test]
    fn flattens_nested_structs_with_the_delimiter() {
        let geo = SchemaBuilder::structure()
            .optional()
            .field("lat", Schema::of(SchemaType::Float64))
            .field("lon", Schema::of(SchemaType::Float64))
            .build()
            .unwrap();
        let address = SchemaBuilder::structure()
            .field("city", Schema::of(SchemaType::String))
            .field("geo", geo.clone())
            .build()
            .unwrap();
        let schema = SchemaBuilder::structure()
            .name("Person")
            .field("id", Schema::of(SchemaType::Int32))
            .field("address", address.clone())
            .build()
            .unwrap();
        let g = Struct::with_values(geo, vec![52.0.into(), 4.3.into()]).unwrap();
        let a = Struct::with_values(address, vec!["Delft".into(), g.into()]).unwrap();
        let s = Struct::with_values(schema.clone(), vec![1.into(), a.into()]).unwrap();
        let t = Flatten::new(Target::Value, &props(&[("delimiter", "_")])).unwrap();
        let out = t.apply(ConnectRecord::default().with_value(Some(schema), s)).unwrap().unwrap();
        let v = out.value.as_struct().unwrap();
        let names: Vec<_> = v.schema().fields().iter().map(|f| f.name()).collect();
        assert_eq!(names, ["id", "address_city", "address_geo_lat", "address_geo_lon"]);
        assert_eq!(v.schema().name(), Some("Person"));
        assert!(v.schema().field("address_geo_lat").unwrap().schema().is_optional());
        assert!(!v.schema().field("address_city").unwrap().schema().is_optional());
        assert_eq!(v.values(), &[Value::Int32(1), "Delft".into(), 52.0.into(), 4.3.into()]);
    }

    #[test]
    fn flattens_nested_maps_and_keeps_arrays() {
        let inner =
            Value::Map(vec![("b".into(), 1i64.into()), ("c".into(), Value::Array(vec![2i64.into()]))]);
        let v = Value::Map(vec![("a".into(), inner), ("d".into(), "x".into())]);
        let out =
            Flatten::new(Target::Value, &props(&[])).unwrap().apply(ConnectRecord::new("t", v)).unwrap();
        assert_eq!(
            out.unwrap().value,
            Value::Map(vec![
                ("a.b".into(), 1i64.into()),
                ("a.c".into(), Value::Array(vec![2i64.into()])),
                ("d".into(), "x".into())
            ])
        );
    }
}
