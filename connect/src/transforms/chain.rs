//! [`TransformChain`]: the transforms of a connector, built from its flat
//! config and applied in order.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use super::predicates::{predicate_for_class, Predicate};
use super::{transform_for_class, TransformError, Transformation};
use crate::config_def::ConfigError;
use crate::record::ConnectRecord;

struct Step {
    alias: String,
    transform: Box<dyn Transformation>,
    predicate: Option<(Arc<dyn Predicate>, bool)>,
}

/// The transforms of one connector, in `transforms` order, each optionally
/// gated by a predicate (`transforms.<alias>.predicate`, `.negate`).
#[derive(Default)]
pub struct TransformChain {
    steps: Vec<Step>,
}

impl fmt::Debug for TransformChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransformChain").field("aliases", &self.aliases()).finish()
    }
}

/// Splits a comma-separated alias list, trimming and dropping empty items.
fn aliases(config: &HashMap<String, String>, key: &str) -> Vec<String> {
    config
        .get(key)
        .map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect())
        .unwrap_or_default()
}

/// The keys under `prefix`, with the prefix removed.
fn sub_config(config: &HashMap<String, String>, prefix: &str) -> HashMap<String, String> {
    config.iter().filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_string(), v.clone()))).collect()
}

/// Rewrites the key a transform's error names to the full connector key.
fn qualify(err: ConfigError, prefix: &str) -> ConfigError {
    match err {
        ConfigError::Missing { key, doc } => ConfigError::Missing { key: format!("{prefix}{key}"), doc },
        ConfigError::Invalid { key, value, reason } => {
            ConfigError::Invalid { key: format!("{prefix}{key}"), value, reason }
        }
        ConfigError::Unknown { key } => ConfigError::Unknown { key: format!("{prefix}{key}") },
    }
}

impl TransformChain {
    /// An empty chain: records pass unchanged.
    pub fn new() -> TransformChain {
        TransformChain::default()
    }

    /// Builds the chain from a connector's config (`transforms`,
    /// `transforms.<alias>.type`, `transforms.<alias>.<key>`, `predicates`,
    /// `predicates.<alias>.type`, ...). Other keys are ignored.
    ///
    /// # Errors
    ///
    /// [`TransformError::Config`] / [`TransformError::PredicateConfig`]
    /// naming the alias and the full key (a missing or unknown `type`, a
    /// bad transform key, a duplicate alias), or
    /// [`TransformError::UndefinedPredicate`].
    pub fn from_config(config: &HashMap<String, String>) -> Result<TransformChain, TransformError> {
        let mut predicates: HashMap<String, Arc<dyn Predicate>> = HashMap::new();
        for alias in aliases(config, "predicates") {
            let prefix = format!("predicates.{alias}.");
            let err = |source: ConfigError| TransformError::PredicateConfig { alias: alias.clone(), source };
            if predicates.contains_key(&alias) {
                return Err(err(ConfigError::invalid("predicates", &alias, "duplicate predicate alias")));
            }
            let type_key = format!("{prefix}type");
            let class = config.get(&type_key).ok_or_else(|| {
                err(ConfigError::Missing { key: type_key.clone(), doc: "The predicate's class name.".into() })
            })?;
            let props = sub_config(config, &prefix);
            let predicate = predicate_for_class(class, &props)
                .map_err(|e| err(qualify(e, &prefix)))?
                .ok_or_else(|| err(ConfigError::invalid(&type_key, class, "unknown predicate class")))?;
            predicates.insert(alias.clone(), Arc::from(predicate));
        }

        let mut steps: Vec<Step> = Vec::new();
        for alias in aliases(config, "transforms") {
            let prefix = format!("transforms.{alias}.");
            let err = |source: ConfigError| TransformError::Config { alias: alias.clone(), source };
            if steps.iter().any(|s| s.alias == alias) {
                return Err(err(ConfigError::invalid("transforms", &alias, "duplicate transform alias")));
            }
            let type_key = format!("{prefix}type");
            let class = config.get(&type_key).ok_or_else(|| {
                err(ConfigError::Missing { key: type_key.clone(), doc: "The transform's class name.".into() })
            })?;
            let props = sub_config(config, &prefix);
            let transform = transform_for_class(class, &props)
                .map_err(|e| err(qualify(e, &prefix)))?
                .ok_or_else(|| err(ConfigError::invalid(&type_key, class, "unknown transformation class")))?;
            let negate_key = format!("{prefix}negate");
            let negate = match props.get("negate").map(|v| v.trim().to_ascii_lowercase()) {
                None => None,
                Some(v) if v == "true" => Some(true),
                Some(v) if v == "false" => Some(false),
                Some(v) => {
                    return Err(err(ConfigError::invalid(&negate_key, &v, "expected `true` or `false`")))
                }
            };
            let predicate = match props.get("predicate").map(|p| p.trim()).filter(|p| !p.is_empty()) {
                Some(name) => {
                    let p = predicates.get(name).ok_or_else(|| TransformError::UndefinedPredicate {
                        alias: alias.clone(),
                        predicate: name.to_string(),
                    })?;
                    Some((Arc::clone(p), negate.unwrap_or(false)))
                }
                None if negate.is_some() => {
                    return Err(err(ConfigError::invalid(
                        &negate_key,
                        props.get("negate").map_or("", String::as_str),
                        format!("negate needs a predicate (`{prefix}predicate`)"),
                    )))
                }
                None => None,
            };
            steps.push(Step { alias, transform, predicate });
        }
        Ok(TransformChain { steps })
    }

    /// Appends a transform under an alias, optionally gated by a predicate.
    pub fn push(
        &mut self,
        alias: impl Into<String>,
        transform: Box<dyn Transformation>,
        predicate: Option<(Arc<dyn Predicate>, bool)>,
    ) {
        self.steps.push(Step { alias: alias.into(), transform, predicate });
    }

    /// The aliases in order.
    pub fn aliases(&self) -> Vec<&str> {
        self.steps.iter().map(|s| s.alias.as_str()).collect()
    }

    /// The number of transforms.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether the chain has no transforms.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Applies the transforms in order; `None` when one drops the record.
    /// A transform whose predicate (negated if asked) does not match is skipped.
    ///
    /// # Errors
    ///
    /// [`TransformError::Apply`] naming the alias of the transform that failed.
    pub fn apply(&self, record: ConnectRecord) -> Result<Option<ConnectRecord>, TransformError> {
        let mut record = record;
        for step in &self.steps {
            if let Some((predicate, negate)) = &step.predicate {
                if predicate.test(&record) == *negate {
                    continue;
                }
            }
            match step.transform.apply(record) {
                Ok(Some(next)) => record = next,
                Ok(None) => return Ok(None),
                Err(e) => {
                    return Err(TransformError::Apply { alias: step.alias.clone(), source: Box::new(e) })
                }
            }
        }
        Ok(Some(record))
    }
}
