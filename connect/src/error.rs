//! [`ConnectError`]: what the worker reports.

use std::path::PathBuf;

use crate::config_def::ConfigError;
use crate::converter::ConverterError;
use crate::plugin::{TaskError, UnknownClass};
use crate::transforms::TransformError;

/// Errors from loading configs and running the worker. Each names what was
/// wrong: the file, the connector, the config key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// A config file could not be read or parsed.
    #[error("config file {}: {reason}", path.display())]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// What was wrong (with the line where known).
        reason: String,
    },
    /// A worker config key is missing, unknown or invalid.
    #[error("worker config: {0}")]
    WorkerConfig(#[source] ConfigError),
    /// A connector config key is missing or invalid.
    #[error("connector `{connector}`: {source}")]
    ConnectorConfig {
        /// The connector's name (empty when the name itself is missing).
        connector: String,
        /// The error, naming the key.
        #[source]
        source: ConfigError,
    },
    /// `connector.class` names no registered plugin.
    #[error("connector `{connector}`: {source}")]
    UnknownClass {
        /// The connector's name.
        connector: String,
        /// The class and the known ones.
        #[source]
        source: UnknownClass,
    },
    /// A converter could not be built.
    #[error("connector `{connector}`: key `{key}`: {source}")]
    Converter {
        /// The connector's name (or `worker`).
        connector: String,
        /// The config key naming the converter.
        key: String,
        /// What went wrong.
        #[source]
        source: Box<ConverterError>,
    },
    /// The transforms or predicates could not be built.
    #[error("connector `{connector}`: {source}")]
    Transform {
        /// The connector's name.
        connector: String,
        /// What went wrong, naming the key.
        #[source]
        source: Box<TransformError>,
    },
    /// The connector refused to start.
    #[error("connector `{connector}` failed to start: {source}")]
    ConnectorStart {
        /// The connector's name.
        connector: String,
        /// Its error.
        #[source]
        source: TaskError,
    },
    /// A connector of this name is already running.
    #[error("connector `{0}` already exists")]
    DuplicateConnector(String),
    /// No connector of this name is running.
    #[error("unknown connector `{0}`")]
    UnknownConnector(String),
    /// The connector has no task of this id.
    #[error("connector `{connector}` has no task {task}")]
    UnknownTask {
        /// The connector's name.
        connector: String,
        /// The task id asked for.
        task: u32,
    },
    /// Offsets may only change while the connector is STOPPED.
    #[error(
        "connector `{0}` must be STOPPED before its offsets can be altered or reset \
         (PUT /connectors/{0}/stop first)"
    )]
    NotStopped(String),
    /// Offsets given to alter are malformed.
    #[error("connector `{connector}`: invalid offsets: {reason}")]
    InvalidOffsets {
        /// The connector's name.
        connector: String,
        /// What is wrong, naming the entry.
        reason: String,
    },
    /// The REST server could not listen.
    #[error("REST listener `{listener}` (key `listeners`): {reason}")]
    Rest {
        /// The listener as configured.
        listener: String,
        /// What went wrong.
        reason: String,
    },
    /// The operation is not offered in this mode; the message says which.
    #[error("{0}")]
    Unsupported(String),
    /// The cluster failed.
    #[error("{what}: {source}")]
    Cluster {
        /// What the worker was doing.
        what: String,
        /// The client error.
        #[source]
        source: runnel_core::Error,
    },
}

impl ConnectError {
    pub(crate) fn cluster(what: impl Into<String>) -> impl FnOnce(runnel_core::Error) -> ConnectError {
        let what = what.into();
        move |source| ConnectError::Cluster { what, source }
    }
}
