//! [`Worker::validate_report`]: every key of a connector config checked on
//! its own, for `PUT /connector-plugins/{class}/config/validate` (Kafka's
//! `ConfigInfos`), where [`Worker::validate`] stops at the first problem.

use crate::config_def::{ConfigError, ConfigKey, ConfigType, DefaultValue, Importance, KeyValidation};
use crate::plugin::{Connector, Props};
use crate::transforms::{TransformChain, TransformError};

use super::config::connector_def;
use super::{sink_topics_error, ConnectorConfig, Worker};

/// The group of the runtime's own keys.
const COMMON_GROUP: &str = "Common";
/// The group of `errors.*`.
const ERRORS_GROUP: &str = "Error Handling";
/// The group of `transforms` and `predicates` keys.
const TRANSFORMS_GROUP: &str = "Transforms";

/// One key's definition, value and errors.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigReportEntry {
    /// The key's definition.
    pub key: ConfigKey,
    /// Its group (`Common`, `Error Handling`, `Transforms`), `None` for
    /// the connector's own keys.
    pub group: Option<String>,
    /// The value as given (or the default), `None` when unset.
    pub value: Option<String>,
    /// What is wrong with it, one message each.
    pub errors: Vec<String>,
}

/// A whole connector config checked key by key.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigReport {
    /// The connector class (resolved; as given when unknown).
    pub class: String,
    /// The groups, in order of first appearance.
    pub groups: Vec<String>,
    /// Every key: the runtime's, then the connector's, then any other key
    /// an error names.
    pub entries: Vec<ConfigReportEntry>,
}

impl ConfigReport {
    /// How many errors in all.
    pub fn error_count(&self) -> usize {
        self.entries.iter().map(|e| e.errors.len()).sum()
    }

    fn attach(&mut self, key: &str, group: Option<&str>, props: &Props, error: String) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.key.name == key) {
            e.errors.push(error);
            return;
        }
        self.entries.push(ConfigReportEntry {
            key: ConfigKey {
                name: key.to_string(),
                config_type: ConfigType::String,
                default: DefaultValue::Absent,
                importance: Importance::Low,
                doc: String::new(),
                validators: Vec::new(),
            },
            group: group.map(str::to_string),
            value: props.get(key).cloned(),
            errors: vec![error],
        });
        if let Some(g) = group {
            if !self.groups.iter().any(|x| x == g) {
                self.groups.push(g.to_string());
            }
        }
    }
}

impl Worker {
    /// Checks a connector config key by key: the runtime's keys, the class,
    /// the connector's own keys, transforms and predicates, converters and,
    /// for sinks, `topics`/`topics.regex`. Never fails: problems are in
    /// the report, each under the key it concerns.
    pub fn validate_report(&self, props: &Props) -> ConfigReport {
        let class = props.get("connector.class").map(|c| c.trim().to_string()).unwrap_or_default();
        let mut report = ConfigReport {
            class: self.registry.resolve(&class).map(str::to_string).unwrap_or(class.clone()),
            groups: vec![COMMON_GROUP.to_string()],
            entries: Vec::new(),
        };
        let entry = |v: KeyValidation, group: Option<&str>| ConfigReportEntry {
            group: group.map(str::to_string),
            value: v.value,
            errors: v.errors.iter().map(ToString::to_string).collect(),
            key: v.key,
        };
        for v in connector_def().validate_all(props) {
            let group = if v.key.name.starts_with("errors.") { ERRORS_GROUP } else { COMMON_GROUP };
            if !report.groups.iter().any(|g| g == group) {
                report.groups.push(group.to_string());
            }
            report.entries.push(entry(v, Some(group)));
        }
        let connector = match self.registry.create(&class) {
            Ok(c) => Some(c),
            Err(e) if !class.is_empty() => {
                report.attach("connector.class", Some(COMMON_GROUP), props, e.to_string());
                None
            }
            Err(_) => None,
        };
        if let Some(connector) = &connector {
            let def = match connector {
                Connector::Source(c) => c.config_def(),
                Connector::Sink(c) => c.config_def(),
            };
            let mut keys_ok = true;
            for v in def.validate_all(props) {
                keys_ok &= v.errors.is_empty();
                // A key the runtime also declares (say `topics`) is shown once.
                match report.entries.iter_mut().find(|e| e.key.name == v.key.name) {
                    Some(e) => e.errors.extend(v.errors.iter().map(ToString::to_string)),
                    None => report.entries.push(entry(v, None)),
                }
            }
            if keys_ok {
                let cross = match connector {
                    Connector::Source(c) => c.validate(props),
                    Connector::Sink(c) => c.validate(props),
                };
                for e in cross {
                    report.attach(e.key(), None, props, e.to_string());
                }
            }
        }
        if let Err(e) = TransformChain::from_config(props) {
            let key = match &e {
                TransformError::Config { source, .. } | TransformError::PredicateConfig { source, .. } => {
                    source.key().to_string()
                }
                TransformError::UndefinedPredicate { alias, .. } => format!("transforms.{alias}.predicate"),
                _ => "transforms".to_string(),
            };
            report.attach(&key, Some(TRANSFORMS_GROUP), props, e.to_string());
        }
        // Converters and sink topics need the runtime's keys to parse.
        if let Ok(config) = ConnectorConfig::parse(props, &self.config) {
            let converters = [
                ("key.converter", &config.key_converter, true),
                ("value.converter", &config.value_converter, false),
            ];
            for (key, converter, is_key) in converters {
                if let Err(e) = converter.build(&config.name, key, is_key) {
                    report.attach(key, Some(COMMON_GROUP), props, e.to_string());
                }
            }
            if let Some(Connector::Sink(_)) = &connector {
                if let Some(e) = sink_topics_error(&config) {
                    let key = match &e {
                        ConfigError::Invalid { key, .. } => key.clone(),
                        other => other.key().to_string(),
                    };
                    report.attach(&key, Some(COMMON_GROUP), props, e.to_string());
                }
            }
        }
        report
    }
}
