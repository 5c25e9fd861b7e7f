//! Single message transforms (SMTs) and predicates with Kafka's class names
//! and config keys, and [`TransformChain`], built from a connector's flat
//! config:
//!
//! ```text
//! transforms=route,mask
//! transforms.route.type=org.apache.kafka.connect.transforms.RegexRouter
//! transforms.route.regex=(.*)-raw
//! transforms.route.replacement=$1
//! transforms.mask.type=org.apache.kafka.connect.transforms.MaskField$Value
//! transforms.mask.fields=ssn
//! transforms.mask.predicate=isPeople
//! predicates=isPeople
//! predicates.isPeople.type=org.apache.kafka.connect.transforms.predicates.TopicNameMatches
//! predicates.isPeople.pattern=people.*
//! ```
//!
//! Every transform works on schema'd records (struct values) and on
//! schemaless ones (maps with string keys), like Kafka's. Transforms with
//! `$Key`/`$Value` variants take a [`Target`]. Configs are checked when a
//! transform is built: unknown keys, missing required keys and bad values are
//! errors naming the key.

mod cast;
mod chain;
mod date_format;
mod extract_field;
mod extract_new_record_state;
mod filter;
mod flatten;
mod headers;
mod hoist_field;
mod insert_field;
mod mask_field;
mod predicates;
mod replace_field;
mod routers;
mod set_schema_metadata;
mod timestamp_converter;
mod util;
mod value_to_key;

use std::collections::HashMap;

pub use cast::Cast;
pub use chain::TransformChain;
pub use extract_field::ExtractField;
pub use extract_new_record_state::{ExtractNewRecordState, EXTRACT_NEW_RECORD_STATE_CLASS};
pub use filter::Filter;
pub use flatten::Flatten;
pub use headers::{DropHeaders, HeaderFrom, InsertHeader};
pub use hoist_field::HoistField;
pub use insert_field::InsertField;
pub use mask_field::MaskField;
pub use predicates::{predicate_for_class, HasHeaderKey, Predicate, RecordIsTombstone, TopicNameMatches};
pub use replace_field::ReplaceField;
pub use routers::{RegexRouter, TimestampRouter};
pub use set_schema_metadata::SetSchemaMetadata;
pub use timestamp_converter::TimestampConverter;
pub use value_to_key::ValueToKey;

use crate::config_def::ConfigError;
use crate::data::DataError;
use crate::record::ConnectRecord;

/// A transform of one record (Kafka's `Transformation`): returns the new
/// record, or `None` to drop it.
pub trait Transformation: Send + Sync {
    /// Transforms one record.
    ///
    /// # Errors
    ///
    /// [`TransformError::Record`] when the record does not fit the transform
    /// (a value that is not a struct or map, an unknown field, ...).
    fn apply(&self, record: ConnectRecord) -> Result<Option<ConnectRecord>, TransformError>;
}

/// Whether a transform with `$Key`/`$Value` variants works on the key or the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The record key (`...$Key`).
    Key,
    /// The record value (`...$Value`).
    Value,
}

/// Errors from building or applying transforms.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TransformError {
    /// A transform's config is invalid; the key is the full connector key.
    #[error("transform `{alias}`: {source}")]
    Config {
        /// The transform's alias in `transforms`.
        alias: String,
        /// What is wrong, naming the key.
        #[source]
        source: ConfigError,
    },
    /// A predicate's config is invalid; the key is the full connector key.
    #[error("predicate `{alias}`: {source}")]
    PredicateConfig {
        /// The predicate's alias in `predicates`.
        alias: String,
        /// What is wrong, naming the key.
        #[source]
        source: ConfigError,
    },
    /// A transform names a predicate that is not listed in `predicates`.
    #[error("transform `{alias}`: predicate `{predicate}` (key `transforms.{alias}.predicate`) is not listed in `predicates`")]
    UndefinedPredicate {
        /// The transform's alias.
        alias: String,
        /// The predicate named.
        predicate: String,
    },
    /// A transform failed on a record.
    #[error("transform `{alias}` failed: {source}")]
    Apply {
        /// The transform's alias.
        alias: String,
        /// The failure.
        #[source]
        source: Box<TransformError>,
    },
    /// A record does not fit what the transform needs.
    #[error("{transform}: {reason}")]
    Record {
        /// The transform's class (short name).
        transform: &'static str,
        /// What is wrong with the record.
        reason: String,
    },
    /// A value did not match its schema.
    #[error(transparent)]
    Data(#[from] DataError),
}

impl TransformError {
    pub(crate) fn record(transform: &'static str, reason: impl Into<String>) -> TransformError {
        TransformError::Record { transform, reason: reason.into() }
    }
}

const PACKAGE: &str = "org.apache.kafka.connect.transforms.";

/// Strips Kafka's package from a class name; the short name is accepted too.
fn short_class_name(class: &str) -> &str {
    let class = class.trim();
    class.strip_prefix(PACKAGE).unwrap_or(class)
}

/// Builds a transform from its class name (full, like
/// `org.apache.kafka.connect.transforms.InsertField$Value`, or short, like
/// `InsertField$Value`) and its own config keys (the connector keys with
/// `transforms.<alias>.` removed; `type`, `predicate` and `negate` are
/// accepted and ignored), or Debezium's
/// `io.debezium.transforms.ExtractNewRecordState`. Returns `Ok(None)` for
/// an unknown class.
///
/// # Errors
///
/// A [`ConfigError`] naming the key, as given in `props`.
pub fn transform_for_class(
    class: &str,
    props: &HashMap<String, String>,
) -> Result<Option<Box<dyn Transformation>>, ConfigError> {
    let name = short_class_name(class);
    // Debezium's transform, by its full class name or its short one.
    if name == EXTRACT_NEW_RECORD_STATE_CLASS || name == "ExtractNewRecordState" {
        return Ok(Some(Box::new(ExtractNewRecordState::new(props)?)));
    }
    let (base, target) = match name.split_once('$') {
        Some((base, "Key")) => (base, Some(Target::Key)),
        Some((base, "Value")) => (base, Some(Target::Value)),
        Some(_) => return Ok(None),
        None => (name, None),
    };
    let t: Box<dyn Transformation> = match (base, target) {
        ("InsertField", Some(t)) => Box::new(InsertField::new(t, props)?),
        ("ReplaceField", Some(t)) => Box::new(ReplaceField::new(t, props)?),
        ("MaskField", Some(t)) => Box::new(MaskField::new(t, props)?),
        ("ExtractField", Some(t)) => Box::new(ExtractField::new(t, props)?),
        ("Cast", Some(t)) => Box::new(Cast::new(t, props)?),
        ("TimestampConverter", Some(t)) => Box::new(TimestampConverter::new(t, props)?),
        ("HoistField", Some(t)) => Box::new(HoistField::new(t, props)?),
        ("Flatten", Some(t)) => Box::new(Flatten::new(t, props)?),
        ("SetSchemaMetadata", Some(t)) => Box::new(SetSchemaMetadata::new(t, props)?),
        ("HeaderFrom", Some(t)) => Box::new(HeaderFrom::new(t, props)?),
        ("ValueToKey", None) => Box::new(ValueToKey::new(props)?),
        ("RegexRouter", None) => Box::new(RegexRouter::new(props)?),
        ("TimestampRouter", None) => Box::new(TimestampRouter::new(props)?),
        ("InsertHeader", None) => Box::new(InsertHeader::new(props)?),
        ("DropHeaders", None) => Box::new(DropHeaders::new(props)?),
        ("Filter", None) => Box::new(Filter::new(props)?),
        _ => return Ok(None),
    };
    Ok(Some(t))
}
