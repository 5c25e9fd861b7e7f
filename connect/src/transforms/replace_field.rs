//! `org.apache.kafka.connect.transforms.ReplaceField$Key` / `$Value`:
//! keeps (`include`), drops (`exclude`) and renames (`renames=old:new,...`)
//! fields. The pre-2.6 names `whitelist` and `blacklist` are accepted.

use std::collections::HashMap;

use super::util::{self, operating, require_map, require_struct, with_operating};
use super::{Target, TransformError, Transformation};
use crate::config_def::{ConfigDef, ConfigError, ConfigType, Importance};
use crate::data::{Struct, Value};
use crate::record::ConnectRecord;

const NAME: &str = "ReplaceField";

/// Filters and renames fields of the key or value.
#[derive(Clone, Debug)]
pub struct ReplaceField {
    target: Target,
    include: Vec<String>,
    exclude: Vec<String>,
    renames: Vec<(String, String)>,
}

impl ReplaceField {
    /// The transform's keys.
    pub fn config_def() -> ConfigDef {
        ConfigDef::new()
            .define_with_default(
                "exclude",
                ConfigType::List,
                Vec::new(),
                Importance::Medium,
                "Fields to drop.",
            )
            .define_with_default(
                "include",
                ConfigType::List,
                Vec::new(),
                Importance::Medium,
                "Fields to keep; all if empty.",
            )
            .define_with_default(
                "renames",
                ConfigType::List,
                Vec::new(),
                Importance::Medium,
                "Renames as old:new.",
            )
            .define_optional("blacklist", ConfigType::List, Importance::Low, "Deprecated name of `exclude`.")
            .define_optional("whitelist", ConfigType::List, Importance::Low, "Deprecated name of `include`.")
    }

    /// Builds the transform.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming a bad or unknown key (`renames` items must be `old:new`).
    pub fn new(target: Target, props: &HashMap<String, String>) -> Result<ReplaceField, ConfigError> {
        let p = util::parse(&Self::config_def(), props)?;
        let pick = |new: &str, old: &str| -> Vec<String> {
            if props.contains_key(new) {
                p.get_list(new).unwrap_or_default().to_vec()
            } else {
                p.get_list(old).unwrap_or_default().to_vec()
            }
        };
        let mut renames = Vec::new();
        for item in p.get_list("renames").unwrap_or_default() {
            match item.split_once(':') {
                Some((old, new)) if !old.trim().is_empty() && !new.trim().is_empty() => {
                    renames.push((old.trim().to_string(), new.trim().to_string()))
                }
                _ => return Err(ConfigError::invalid("renames", item, "each rename must be old:new")),
            }
        }
        Ok(ReplaceField {
            target,
            include: pick("include", "whitelist"),
            exclude: pick("exclude", "blacklist"),
            renames,
        })
    }

    fn keeps(&self, name: &str) -> bool {
        !self.exclude.iter().any(|e| e == name)
            && (self.include.is_empty() || self.include.iter().any(|i| i == name))
    }

    fn renamed<'a>(&'a self, name: &'a str) -> &'a str {
        self.renames.iter().find(|(old, _)| old == name).map_or(name, |(_, new)| new.as_str())
    }
}

impl Transformation for ReplaceField {
    fn apply(&self, record: ConnectRecord) -> Result<Option<ConnectRecord>, TransformError> {
        let (schema, value) = operating(&record, self.target);
        if value.is_null() {
            return Ok(Some(record));
        }
        let (new_schema, new_value) = match schema {
            None => {
                let entries = require_map(value, NAME, "field replacement")?;
                let kept = entries
                    .iter()
                    .filter_map(|(k, v)| {
                        let name = k.as_str()?;
                        self.keeps(name).then(|| (Value::String(self.renamed(name).to_string()), v.clone()))
                    })
                    .collect();
                (None, Value::Map(kept))
            }
            Some(schema) => {
                let s = require_struct(value, NAME, "field replacement")?;
                let mut b = util::struct_basics(schema);
                let mut values = Vec::new();
                for (field, v) in schema.fields().iter().zip(s.values()) {
                    if self.keeps(field.name()) {
                        b = b.field(self.renamed(field.name()), field.schema().clone());
                        values.push(v.clone());
                    }
                }
                let new_schema = b.build()?;
                (Some(new_schema.clone()), Value::Struct(Struct::with_values(new_schema, values)?))
            }
        };
        Ok(Some(with_operating(record, self.target, new_schema, new_value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Schema, SchemaBuilder, SchemaType};
    use crate::transforms::util::tests::props;

    fn schema() -> Schema {
        SchemaBuilder::structure()
            .field("a", Schema::of(SchemaType::Int32))
            .field("b", Schema::of(SchemaType::String))
            .field("c", Schema::of(SchemaType::Boolean))
            .build()
            .unwrap()
    }

    #[test]
    fn excludes_and_renames_struct_fields() {
        let t =
            ReplaceField::new(Target::Value, &props(&[("exclude", "b"), ("renames", "a:x,c:y")])).unwrap();
        let s = Struct::with_values(schema(), vec![1.into(), "s".into(), true.into()]).unwrap();
        let out = t.apply(ConnectRecord::new("t", s).with_value(Some(schema()), Value::Null)).unwrap();
        assert!(out.unwrap().value.is_null());
        let s = Struct::with_values(schema(), vec![1.into(), "s".into(), true.into()]).unwrap();
        let out = t.apply(ConnectRecord::default().with_value(Some(schema()), s)).unwrap().unwrap();
        let v = out.value.as_struct().unwrap();
        let names: Vec<_> = v.schema().fields().iter().map(|f| f.name()).collect();
        assert_eq!(names, ["x", "y"]);
        assert_eq!(v.values(), &[Value::Int32(1), Value::Boolean(true)]);
    }

    #[test]
    fn includes_schemaless_fields_with_the_old_whitelist_name() {
        let t = ReplaceField::new(Target::Key, &props(&[("whitelist", "a,c")])).unwrap();
        let key =
            Value::Map(vec![("a".into(), 1i64.into()), ("b".into(), 2i64.into()), ("c".into(), 3i64.into())]);
        let out = t.apply(ConnectRecord::default().with_key(None, key)).unwrap().unwrap();
        assert_eq!(out.key, Value::Map(vec![("a".into(), 1i64.into()), ("c".into(), 3i64.into())]));
    }

    #[test]
    fn bad_rename_names_the_key() {
        let err = ReplaceField::new(Target::Value, &props(&[("renames", "a:b,c")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid value `c` for configuration `renames`: each rename must be old:new"
        );
    }
}
