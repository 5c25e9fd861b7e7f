//! `org.apache.kafka.connect.transforms.Filter`: drops every record it is
//! applied to; pair it with a predicate to drop some.

use std::collections::HashMap;

use super::{util, TransformError, Transformation};
use crate::config_def::{ConfigDef, ConfigError};
use crate::record::ConnectRecord;

/// Drops records (use with `predicate` / `negate`).
#[derive(Clone, Debug, Default)]
pub struct Filter;

impl Filter {
    /// Builds the transform; it has no keys of its own.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Unknown`] for any key other than the chain's.
    pub fn new(props: &HashMap<String, String>) -> Result<Filter, ConfigError> {
        util::parse(&Self::config_def(), props)?;
        Ok(Filter)
    }

    /// The transform's keys (none).
    pub fn config_def() -> ConfigDef {
        ConfigDef::new()
    }
}

impl Transformation for Filter {
    fn apply(&self, _record: ConnectRecord) -> Result<Option<ConnectRecord>, TransformError> {
        Ok(None)
    }
}
