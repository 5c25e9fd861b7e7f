//! A small `ConfigDef`, after Kafka's: declared keys with a type, a default,
//! an importance and a doc, parsed from a flat string map into typed values.
//!
//! Transforms declare their keys here; the runtime will declare connector and
//! worker keys the same way. Errors name the key and say what was wrong.
//!
//! ```
//! use std::collections::HashMap;
//! use runnel_connect::config_def::{ConfigDef, ConfigType, Importance};
//!
//! let def = ConfigDef::new()
//!     .define("topic.format", ConfigType::String, Importance::High, "Topic pattern")
//!     .define_with_default("retries", ConfigType::Int, 3, Importance::Low, "Retries");
//! let parsed = def.parse(&HashMap::from([("topic.format".into(), "${topic}".into())])).unwrap();
//! assert_eq!(parsed.get_string("topic.format"), Some("${topic}"));
//! assert_eq!(parsed.get_int("retries"), Some(3));
//! ```

use std::collections::HashMap;
use std::fmt;

/// The type of a config key, as in Kafka's `ConfigDef.Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigType {
    /// Free text.
    String,
    /// 32-bit integer.
    Int,
    /// 64-bit integer.
    Long,
    /// 64-bit float.
    Double,
    /// `true` or `false` (case-insensitive).
    Boolean,
    /// Comma-separated list; items are trimmed, empty items dropped.
    List,
    /// A class name (a plugin name in Runnel).
    Class,
    /// A secret: never printed in errors or `Debug`.
    Password,
}

impl ConfigType {
    fn describe(self) -> &'static str {
        match self {
            ConfigType::String => "a string",
            ConfigType::Int => "a 32-bit integer",
            ConfigType::Long => "a 64-bit integer",
            ConfigType::Double => "a number",
            ConfigType::Boolean => "`true` or `false`",
            ConfigType::List => "a comma-separated list",
            ConfigType::Class => "a class name",
            ConfigType::Password => "a password",
        }
    }
}

/// How much a key matters to a user, as in Kafka's `ConfigDef.Importance`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Importance {
    /// Most users set it.
    High,
    /// Some users set it.
    Medium,
    /// Rarely set.
    Low,
}

/// A secret string; `Debug` and `Display` print `[hidden]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Password {
        Password(secret.into())
    }

    /// The secret itself.
    pub fn value(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[hidden]")
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[hidden]")
    }
}

/// A typed config value.
#[derive(Clone, Debug, PartialEq)]
pub enum ConfigValue {
    /// A string (also a class name).
    String(String),
    /// An int.
    Int(i32),
    /// A long.
    Long(i64),
    /// A double.
    Double(f64),
    /// A boolean.
    Boolean(bool),
    /// A list.
    List(Vec<String>),
    /// A password.
    Password(Password),
}

/// The value as a config file would spell it (lists comma-separated,
/// passwords `[hidden]`).
impl fmt::Display for ConfigValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigValue::String(s) => f.write_str(s),
            ConfigValue::Int(n) => write!(f, "{n}"),
            ConfigValue::Long(n) => write!(f, "{n}"),
            ConfigValue::Double(n) => write!(f, "{n}"),
            ConfigValue::Boolean(b) => write!(f, "{b}"),
            ConfigValue::List(items) => f.write_str(&items.join(",")),
            ConfigValue::Password(p) => write!(f, "{p}"),
        }
    }
}

impl From<&str> for ConfigValue {
    fn from(v: &str) -> Self {
        ConfigValue::String(v.to_string())
    }
}
impl From<String> for ConfigValue {
    fn from(v: String) -> Self {
        ConfigValue::String(v)
    }
}
impl From<i32> for ConfigValue {
    fn from(v: i32) -> Self {
        ConfigValue::Int(v)
    }
}
impl From<i64> for ConfigValue {
    fn from(v: i64) -> Self {
        ConfigValue::Long(v)
    }
}
impl From<f64> for ConfigValue {
    fn from(v: f64) -> Self {
        ConfigValue::Double(v)
    }
}
impl From<bool> for ConfigValue {
    fn from(v: bool) -> Self {
        ConfigValue::Boolean(v)
    }
}
impl From<Vec<String>> for ConfigValue {
    fn from(v: Vec<String>) -> Self {
        ConfigValue::List(v)
    }
}

/// A check run on a parsed value.
#[derive(Clone, Debug, PartialEq)]
pub enum Validator {
    /// The (string) value must be one of these, compared case-insensitively.
    OneOf(Vec<String>),
    /// A string must not be empty; a list must have at least one item.
    NonEmpty,
    /// A number must lie in this inclusive range.
    Range {
        /// Smallest allowed value.
        min: Option<f64>,
        /// Largest allowed value.
        max: Option<f64>,
    },
}

impl Validator {
    /// [`Validator::OneOf`] these values.
    ///
    /// ```
    /// use runnel_connect::config_def::Validator;
    /// assert_eq!(Validator::one_of(&["a", "b"]), Validator::OneOf(vec!["a".into(), "b".into()]));
    /// ```
    pub fn one_of(values: &[&str]) -> Validator {
        Validator::OneOf(values.iter().map(|v| v.to_string()).collect())
    }
}

/// Errors from parsing a config; each names the key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A key without a default was not set.
    #[error("missing required configuration `{key}`: {doc}")]
    Missing {
        /// The key.
        key: String,
        /// The key's documentation.
        doc: String,
    },
    /// A value could not be parsed or failed its validator.
    #[error("invalid value {value} for configuration `{key}`: {reason}")]
    Invalid {
        /// The key.
        key: String,
        /// The value as given, quoted (or `[hidden]` for passwords).
        value: String,
        /// What was wrong.
        reason: String,
    },
    /// A key is not defined (reported by [`ConfigDef::parse_strict`]).
    #[error("unknown configuration `{key}`")]
    Unknown {
        /// The key.
        key: String,
    },
}

impl ConfigError {
    /// An invalid-value error (for checks beyond the declared type).
    pub fn invalid(key: &str, value: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid { key: key.to_string(), value: format!("`{value}`"), reason: reason.into() }
    }

    /// The key the error names.
    pub fn key(&self) -> &str {
        match self {
            ConfigError::Missing { key, .. }
            | ConfigError::Invalid { key, .. }
            | ConfigError::Unknown { key } => key,
        }
    }
}

/// How a key gets its value when it is not set.
#[derive(Clone, Debug, PartialEq)]
pub enum DefaultValue {
    /// The key is required.
    Required,
    /// The key is optional and absent when unset (Kafka's `null` default).
    Absent,
    /// The key takes this value when unset.
    Value(ConfigValue),
}

/// One declared key.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigKey {
    /// The key.
    pub name: String,
    /// Its type.
    pub config_type: ConfigType,
    /// What happens when unset.
    pub default: DefaultValue,
    /// Its importance.
    pub importance: Importance,
    /// Its documentation.
    pub doc: String,
    /// Checks on the parsed value.
    pub validators: Vec<Validator>,
}

/// One key's outcome in [`ConfigDef::validate_all`].
#[derive(Clone, Debug, PartialEq)]
pub struct KeyValidation {
    /// The declared key.
    pub key: ConfigKey,
    /// The value as given, else the default's text; `None` when neither
    /// exists. Passwords show as `[hidden]`.
    pub value: Option<String>,
    /// Everything wrong with it (empty when valid).
    pub errors: Vec<ConfigError>,
}

/// A set of declared keys.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConfigDef {
    keys: Vec<ConfigKey>,
}

impl ConfigDef {
    /// An empty definition.
    pub fn new() -> ConfigDef {
        ConfigDef::default()
    }

    fn push(mut self, name: &str, t: ConfigType, default: DefaultValue, imp: Importance, doc: &str) -> Self {
        self.keys.retain(|k| k.name != name);
        self.keys.push(ConfigKey {
            name: name.to_string(),
            config_type: t,
            default,
            importance: imp,
            doc: doc.to_string(),
            validators: Vec::new(),
        });
        self
    }

    /// Declares a required key.
    pub fn define(self, name: &str, t: ConfigType, importance: Importance, doc: &str) -> Self {
        self.push(name, t, DefaultValue::Required, importance, doc)
    }

    /// Declares a key with a default value.
    pub fn define_with_default(
        self,
        name: &str,
        t: ConfigType,
        default: impl Into<ConfigValue>,
        importance: Importance,
        doc: &str,
    ) -> Self {
        self.push(name, t, DefaultValue::Value(default.into()), importance, doc)
    }

    /// Declares an optional key that is absent when unset.
    pub fn define_optional(self, name: &str, t: ConfigType, importance: Importance, doc: &str) -> Self {
        self.push(name, t, DefaultValue::Absent, importance, doc)
    }

    /// Adds a validator to the most recently declared key.
    pub fn validate(mut self, validator: Validator) -> Self {
        if let Some(last) = self.keys.last_mut() {
            last.validators.push(validator);
        }
        self
    }

    /// The declared keys in declaration order.
    pub fn keys(&self) -> &[ConfigKey] {
        &self.keys
    }

    /// Parses the declared keys out of `props`, ignoring other keys (as
    /// Kafka does for a connector config shared by several components).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Missing`] for an unset required key,
    /// [`ConfigError::Invalid`] for a value of the wrong type or failing a
    /// validator.
    pub fn parse(&self, props: &HashMap<String, String>) -> Result<ParsedConfig, ConfigError> {
        let mut values = HashMap::new();
        for key in &self.keys {
            let value = match props.get(&key.name) {
                Some(raw) => parse_value(key, raw)?,
                None => match &key.default {
                    DefaultValue::Required => {
                        return Err(ConfigError::Missing { key: key.name.clone(), doc: key.doc.clone() })
                    }
                    DefaultValue::Absent => continue,
                    DefaultValue::Value(v) => v.clone(),
                },
            };
            for validator in &key.validators {
                check(key, &value, validator)?;
            }
            values.insert(key.name.clone(), value);
        }
        Ok(ParsedConfig { values })
    }

    /// Checks every declared key on its own, collecting all errors instead
    /// of stopping at the first (what Kafka's `validate` endpoint shows).
    pub fn validate_all(&self, props: &HashMap<String, String>) -> Vec<KeyValidation> {
        self.keys
            .iter()
            .map(|key| {
                let mut errors = Vec::new();
                let value = match props.get(&key.name) {
                    Some(raw) => {
                        match parse_value(key, raw) {
                            Ok(v) => errors.extend(
                                key.validators
                                    .iter()
                                    .filter_map(|check_with| check(key, &v, check_with).err()),
                            ),
                            Err(e) => errors.push(e),
                        }
                        Some(match key.config_type {
                            ConfigType::Password => "[hidden]".to_string(),
                            _ => raw.clone(),
                        })
                    }
                    None => match &key.default {
                        DefaultValue::Required => {
                            errors.push(ConfigError::Missing { key: key.name.clone(), doc: key.doc.clone() });
                            None
                        }
                        DefaultValue::Absent => None,
                        DefaultValue::Value(v) => Some(v.to_string()),
                    },
                };
                KeyValidation { key: key.clone(), value, errors }
            })
            .collect()
    }

    /// Like [`ConfigDef::parse`], but a key in `props` that is not declared
    /// (and not listed in `allowed`) is an error naming it.
    ///
    /// # Errors
    ///
    /// As [`ConfigDef::parse`], plus [`ConfigError::Unknown`].
    pub fn parse_strict(
        &self,
        props: &HashMap<String, String>,
        allowed: &[&str],
    ) -> Result<ParsedConfig, ConfigError> {
        let mut unknown: Vec<&String> = props
            .keys()
            .filter(|k| !allowed.contains(&k.as_str()) && !self.keys.iter().any(|d| &d.name == *k))
            .collect();
        unknown.sort();
        if let Some(key) = unknown.first() {
            return Err(ConfigError::Unknown { key: (*key).clone() });
        }
        self.parse(props)
    }
}

fn parse_value(key: &ConfigKey, raw: &str) -> Result<ConfigValue, ConfigError> {
    let shown =
        if key.config_type == ConfigType::Password { "[hidden]".to_string() } else { format!("`{raw}`") };
    let invalid = || ConfigError::Invalid {
        key: key.name.clone(),
        value: shown.clone(),
        reason: format!("expected {}", key.config_type.describe()),
    };
    let t = raw.trim();
    Ok(match key.config_type {
        ConfigType::String => ConfigValue::String(t.to_string()),
        ConfigType::Class => ConfigValue::String(t.to_string()),
        ConfigType::Password => ConfigValue::Password(Password(raw.to_string())),
        ConfigType::Int => ConfigValue::Int(t.parse().map_err(|_| invalid())?),
        ConfigType::Long => ConfigValue::Long(t.parse().map_err(|_| invalid())?),
        ConfigType::Double => ConfigValue::Double(t.parse().map_err(|_| invalid())?),
        ConfigType::Boolean => match t.to_ascii_lowercase().as_str() {
            "true" => ConfigValue::Boolean(true),
            "false" => ConfigValue::Boolean(false),
            _ => return Err(invalid()),
        },
        ConfigType::List => ConfigValue::List(
            t.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect(),
        ),
    })
}

fn check(key: &ConfigKey, value: &ConfigValue, validator: &Validator) -> Result<(), ConfigError> {
    let fail = |shown: String, reason: String| {
        Err(ConfigError::Invalid { key: key.name.clone(), value: format!("`{shown}`"), reason })
    };
    match (validator, value) {
        (Validator::OneOf(allowed), ConfigValue::String(s))
            if !allowed.iter().any(|a| a.eq_ignore_ascii_case(s)) =>
        {
            return fail(s.clone(), format!("must be one of {}", allowed.join(", ")));
        }
        (Validator::OneOf(allowed), ConfigValue::List(items)) => {
            if let Some(bad) = items.iter().find(|i| !allowed.iter().any(|a| a.eq_ignore_ascii_case(i))) {
                return fail(bad.clone(), format!("each item must be one of {}", allowed.join(", ")));
            }
        }
        (Validator::NonEmpty, ConfigValue::String(s)) if s.is_empty() => {
            return fail(String::new(), "must not be empty".into());
        }
        (Validator::NonEmpty, ConfigValue::List(items)) if items.is_empty() => {
            return fail(String::new(), "must list at least one item".into());
        }
        (Validator::Range { min, max }, v) => {
            let n = match v {
                ConfigValue::Int(n) => f64::from(*n),
                ConfigValue::Long(n) => *n as f64,
                ConfigValue::Double(n) => *n,
                _ => return Ok(()),
            };
            let below = min.is_some_and(|m| n < m);
            let above = max.is_some_and(|m| n > m);
            if below || above {
                let bounds = match (min, max) {
                    (Some(a), Some(b)) => format!("between {a} and {b}"),
                    (Some(a), None) => format!("at least {a}"),
                    (None, Some(b)) => format!("at most {b}"),
                    (None, None) => String::new(),
                };
                return fail(n.to_string(), format!("must be {bounds}"));
            }
        }
        _ => {}
    }
    Ok(())
}

/// The typed values of a parsed config. Getters return `None` for keys that
/// are unset without a default, undeclared, or of another type.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParsedConfig {
    values: HashMap<String, ConfigValue>,
}

impl ParsedConfig {
    /// The typed value of a key.
    pub fn get(&self, key: &str) -> Option<&ConfigValue> {
        self.values.get(key)
    }

    /// A string or class key.
    pub fn get_string(&self, key: &str) -> Option<&str> {
        match self.values.get(key)? {
            ConfigValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// A string key that must be present (declared required, or checked here).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Missing`] when unset.
    pub fn require_string(&self, key: &str) -> Result<&str, ConfigError> {
        self.get_string(key).ok_or_else(|| ConfigError::Missing { key: key.to_string(), doc: String::new() })
    }

    /// An int key.
    pub fn get_int(&self, key: &str) -> Option<i32> {
        match self.values.get(key)? {
            ConfigValue::Int(v) => Some(*v),
            _ => None,
        }
    }

    /// A long key.
    pub fn get_long(&self, key: &str) -> Option<i64> {
        match self.values.get(key)? {
            ConfigValue::Long(v) => Some(*v),
            ConfigValue::Int(v) => Some(i64::from(*v)),
            _ => None,
        }
    }

    /// A double key.
    pub fn get_double(&self, key: &str) -> Option<f64> {
        match self.values.get(key)? {
            ConfigValue::Double(v) => Some(*v),
            _ => None,
        }
    }

    /// A boolean key.
    pub fn get_boolean(&self, key: &str) -> Option<bool> {
        match self.values.get(key)? {
            ConfigValue::Boolean(v) => Some(*v),
            _ => None,
        }
    }

    /// A list key.
    pub fn get_list(&self, key: &str) -> Option<&[String]> {
        match self.values.get(key)? {
            ConfigValue::List(v) => Some(v),
            _ => None,
        }
    }

    /// A password key.
    pub fn get_password(&self, key: &str) -> Option<&Password> {
        match self.values.get(key)? {
            ConfigValue::Password(v) => Some(v),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn def() -> ConfigDef {
        ConfigDef::new()
            .define("name", ConfigType::String, Importance::High, "The name.")
            .define_with_default("count", ConfigType::Int, 3, Importance::Medium, "How many.")
            .validate(Validator::Range { min: Some(1.0), max: Some(10.0) })
            .define_with_default("big", ConfigType::Long, 5i64, Importance::Low, "Big.")
            .define_with_default("ratio", ConfigType::Double, 0.5, Importance::Low, "Ratio.")
            .define_with_default("on", ConfigType::Boolean, false, Importance::Low, "On.")
            .define_with_default("items", ConfigType::List, Vec::new(), Importance::Low, "Items.")
            .define_optional("secret", ConfigType::Password, Importance::Low, "Secret.")
            .define_with_default("mode", ConfigType::String, "copy", Importance::Low, "Mode.")
            .validate(Validator::OneOf(vec!["copy".into(), "move".into()]))
    }

    #[test]
    fn parses_every_type() {
        let p = def()
            .parse(&props(&[
                ("name", " n "),
                ("count", "7"),
                ("big", "9000000000"),
                ("ratio", "1.5"),
                ("on", "TRUE"),
                ("items", "a, b,,c"),
                ("secret", "s3"),
                ("mode", "MOVE"),
            ]))
            .unwrap();
        assert_eq!(p.get_string("name"), Some("n"));
        assert_eq!(p.get_int("count"), Some(7));
        assert_eq!(p.get_long("big"), Some(9_000_000_000));
        assert_eq!(p.get_double("ratio"), Some(1.5));
        assert_eq!(p.get_boolean("on"), Some(true));
        assert_eq!(p.get_list("items").unwrap(), ["a", "b", "c"]);
        assert_eq!(p.get_password("secret").unwrap().value(), "s3");
        assert_eq!(format!("{:?}", p.get_password("secret").unwrap()), "[hidden]");
    }

    #[test]
    fn defaults_apply_and_absent_stays_absent() {
        let p = def().parse(&props(&[("name", "n")])).unwrap();
        assert_eq!(p.get_int("count"), Some(3));
        assert_eq!(p.get_string("mode"), Some("copy"));
        assert_eq!(p.get_password("secret"), None);
    }

    #[test]
    fn missing_required_key_is_named() {
        let err = def().parse(&props(&[])).unwrap_err();
        assert_eq!(err.to_string(), "missing required configuration `name`: The name.");
        assert_eq!(err.key(), "name");
    }

    #[test]
    fn bad_values_are_named_with_the_reason() {
        let err = def().parse(&props(&[("name", "n"), ("count", "x")])).unwrap_err();
        assert_eq!(err.to_string(), "invalid value `x` for configuration `count`: expected a 32-bit integer");
        let err = def().parse(&props(&[("name", "n"), ("count", "11")])).unwrap_err();
        assert_eq!(err.to_string(), "invalid value `11` for configuration `count`: must be between 1 and 10");
        let err = def().parse(&props(&[("name", "n"), ("mode", "swap")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid value `swap` for configuration `mode`: must be one of copy, move"
        );
        let err = def().parse(&props(&[("name", "n"), ("on", "yes")])).unwrap_err();
        assert_eq!(err.to_string(), "invalid value `yes` for configuration `on`: expected `true` or `false`");
    }

    #[test]
    fn validate_all_reports_every_bad_key() {
        let report = def().validate_all(&props(&[("count", "x"), ("mode", "swap"), ("secret", "s")]));
        let errors = |name: &str| {
            let k = report.iter().find(|k| k.key.name == name).unwrap();
            (k.value.clone(), k.errors.iter().map(ToString::to_string).collect::<Vec<_>>())
        };
        assert_eq!(errors("name").0, None);
        assert!(errors("name").1[0].contains("`name`"));
        assert_eq!(errors("count").0.as_deref(), Some("x"));
        assert!(errors("count").1[0].contains("`count`"));
        assert!(errors("mode").1[0].contains("must be one of"));
        assert_eq!(errors("big"), (Some("5".into()), vec![]));
        assert_eq!(errors("secret").0.as_deref(), Some("[hidden]"));
    }

    #[test]
    fn strict_parse_names_unknown_keys() {
        let err = def().parse_strict(&props(&[("name", "n"), ("nmae", "x")]), &["type"]).unwrap_err();
        assert_eq!(err, ConfigError::Unknown { key: "nmae".into() });
        def().parse_strict(&props(&[("name", "n"), ("type", "x")]), &["type"]).unwrap();
    }
}
