//! `org.apache.kafka.connect.transforms.MaskField$Key` / `$Value`: replaces
//! field values with the type's empty value (0, false, "", empty bytes,
//! array or map, decimal zero) or with `replacement` converted to the
//! field's type.

use std::collections::HashMap;

use super::util::{self, operating, require_map, require_struct, with_operating};
use super::{Target, TransformError, Transformation};
use crate::config_def::{ConfigDef, ConfigError, ConfigType, Importance, Validator};
use crate::data::{Decimal, DecimalValue, Schema, Struct, Value};
use crate::record::ConnectRecord;

const NAME: &str = "MaskField";

/// Masks fields of the key or value.
#[derive(Clone, Debug)]
pub struct MaskField {
    target: Target,
    fields: Vec<String>,
    replacement: Option<String>,
}

impl MaskField {
    /// The transform's keys.
    pub fn config_def() -> ConfigDef {
        ConfigDef::new()
            .define("fields", ConfigType::List, Importance::High, "Names of the fields to mask.")
            .validate(Validator::NonEmpty)
            .define_optional("replacement", ConfigType::String, Importance::Low, "Custom replacement value.")
    }

    /// Builds the transform.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming a bad, missing or unknown key.
    pub fn new(target: Target, props: &HashMap<String, String>) -> Result<MaskField, ConfigError> {
        let p = util::parse(&Self::config_def(), props)?;
        Ok(MaskField {
            target,
            fields: p.get_list("fields").unwrap_or_default().to_vec(),
            replacement: p.get_string("replacement").map(str::to_string),
        })
    }

    fn masked(&self, field: &str, schema: Option<&Schema>, value: &Value) -> Result<Value, TransformError> {
        let is_decimal = schema.is_some_and(|s| s.is_logical(Decimal::LOGICAL_NAME));
        let fail = |why: String| TransformError::record(NAME, format!("cannot mask field `{field}`: {why}"));
        let Some(r) = &self.replacement else {
            return Ok(match value {
                Value::Null => Value::Null,
                Value::Int8(_) => Value::Int8(0),
                Value::Int16(_) => Value::Int16(0),
                Value::Int32(_) => Value::Int32(0),
                Value::Int64(_) => Value::Int64(0),
                Value::Float32(_) => Value::Float32(0.0),
                Value::Float64(_) => Value::Float64(0.0),
                Value::Boolean(_) => Value::Boolean(false),
                Value::String(_) => Value::String(String::new()),
                Value::Bytes(_) if is_decimal => Value::Bytes(vec![0]),
                Value::Bytes(_) => Value::Bytes(Vec::new()),
                Value::Array(_) => Value::Array(Vec::new()),
                Value::Map(_) => Value::Map(Vec::new()),
                Value::Struct(_) => return Err(fail("structs cannot be masked".into())),
            });
        };
        let bad = || fail(format!("replacement `{r}` is not a valid {}", value.type_name()));
        let t = r.trim();
        Ok(match value {
            Value::Null => Value::Null,
            Value::Int8(_) => Value::Int8(t.parse().map_err(|_| bad())?),
            Value::Int16(_) => Value::Int16(t.parse().map_err(|_| bad())?),
            Value::Int32(_) => Value::Int32(t.parse().map_err(|_| bad())?),
            Value::Int64(_) => Value::Int64(t.parse().map_err(|_| bad())?),
            Value::Float32(_) => Value::Float32(t.parse().map_err(|_| bad())?),
            Value::Float64(_) => Value::Float64(t.parse().map_err(|_| bad())?),
            Value::Boolean(_) => Value::Boolean(t.parse().map_err(|_| bad())?),
            Value::String(_) => Value::String(r.clone()),
            Value::Bytes(_) if is_decimal => {
                let scale = match schema {
                    Some(s) => Decimal::scale(s)?,
                    None => 0,
                };
                let d: DecimalValue = t.parse()?;
                Value::Bytes(d.rescale(scale)?.to_bytes())
            }
            other => return Err(fail(format!("a {} cannot take a custom replacement", other.type_name()))),
        })
    }
}

impl Transformation for MaskField {
    fn apply(&self, record: ConnectRecord) -> Result<Option<ConnectRecord>, TransformError> {
        let (schema, value) = operating(&record, self.target);
        if value.is_null() {
            return Ok(Some(record));
        }
        let new_value = match schema {
            None => {
                let mut entries = require_map(value, NAME, "masking")?.to_vec();
                for (k, v) in &mut entries {
                    if let Some(name) = k.as_str().filter(|n| self.fields.iter().any(|f| f == n)) {
                        *v = self.masked(name, None, v)?;
                    }
                }
                Value::Map(entries)
            }
            Some(_) => {
                let s = require_struct(value, NAME, "masking")?;
                let mut values = s.values().to_vec();
                for name in &self.fields {
                    let field = s.schema().field(name).ok_or_else(|| {
                        TransformError::record(NAME, format!("`{name}` is not a field of the struct"))
                    })?;
                    let v = &mut values[field.index()];
                    *v = self.masked(name, Some(field.schema()), v)?;
                }
                Value::Struct(Struct::with_values(s.schema().clone(), values)?)
            }
        };
        let schema = schema.cloned();
        Ok(Some(with_operating(record, self.target, schema, new_value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{SchemaBuilder, SchemaType};
    use crate::transforms::util::tests::props;

    #[test]
    fn masks_struct_fields_to_empty_values() {
        let schema = SchemaBuilder::structure()
            .field("n", Schema::of(SchemaType::Int64))
            .field("s", Schema::of(SchemaType::String))
            .field("d", Decimal::schema(2))
            .field("keep", Schema::of(SchemaType::String))
            .build()
            .unwrap();
        let s = Struct::with_values(
            schema.clone(),
            vec![7i64.into(), "secret".into(), Value::Bytes(vec![4, 0xd2]), "k".into()],
        )
        .unwrap();
        let t = MaskField::new(Target::Value, &props(&[("fields", "n,s,d")])).unwrap();
        let out = t.apply(ConnectRecord::default().with_value(Some(schema), s)).unwrap().unwrap();
        assert_eq!(
            out.value.as_struct().unwrap().values(),
            &[
                Value::Int64(0),
                Value::String(String::new()),
                Value::Bytes(vec![0]),
                Value::String("k".into())
            ]
        );
    }

    #[test]
    fn masks_schemaless_fields_with_a_replacement() {
        let t =
            MaskField::new(Target::Value, &props(&[("fields", "ssn,age"), ("replacement", "99")])).unwrap();
        let v = Value::Map(vec![
            ("ssn".into(), "123".into()),
            ("age".into(), 40i64.into()),
            ("x".into(), 1i64.into()),
        ]);
        let out = t.apply(ConnectRecord::new("t", v)).unwrap().unwrap();
        assert_eq!(
            out.value,
            Value::Map(vec![
                ("ssn".into(), "99".into()),
                ("age".into(), 99i64.into()),
                ("x".into(), 1i64.into())
            ])
        );
    }

    #[test]
    fn replacement_of_the_wrong_type_names_the_field() {
        let t = MaskField::new(Target::Value, &props(&[("fields", "age"), ("replacement", "old")])).unwrap();
        let v = Value::Map(vec![("age".into(), 40i64.into())]);
        let err = t.apply(ConnectRecord::new("t", v)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "MaskField: cannot mask field `age`: replacement `old` is not a valid int64"
        );
    }

    #[test]
    fn fields_is_required() {
        let err = MaskField::new(Target::Value, &props(&[])).unwrap_err();
        assert_eq!(err.key(), "fields");
    }
}
