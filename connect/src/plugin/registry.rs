//! [`PluginRegistry`]: connector classes by name.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::{SinkConnector, SourceConnector};

/// Whether a plugin reads (source) or writes (sink).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectorKind {
    /// A source connector.
    Source,
    /// A sink connector.
    Sink,
}

impl fmt::Display for ConnectorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConnectorKind::Source => "source",
            ConnectorKind::Sink => "sink",
        })
    }
}

/// What the registry knows about one plugin (for `GET /connector-plugins`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginInfo {
    /// The class name.
    pub class: String,
    /// Other names it answers to.
    pub aliases: Vec<String>,
    /// Source or sink.
    pub kind: ConnectorKind,
}

type SourceFactory = Arc<dyn Fn() -> Box<dyn SourceConnector> + Send + Sync>;
type SinkFactory = Arc<dyn Fn() -> Box<dyn SinkConnector> + Send + Sync>;

#[derive(Clone)]
enum Factory {
    Source(SourceFactory),
    Sink(SinkFactory),
}

/// A new connector instance made by the registry.
pub enum Connector {
    /// A source connector.
    Source(Box<dyn SourceConnector>),
    /// A sink connector.
    Sink(Box<dyn SinkConnector>),
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Connector::Source(_) => f.write_str("Connector::Source"),
            Connector::Sink(_) => f.write_str("Connector::Sink"),
        }
    }
}

/// Connector classes by name: each registered under a class name and any
/// number of aliases (Kafka's full Java class name, a short name).
///
/// Registration is explicit: a connector crate exports a
/// `register(&mut PluginRegistry)` function and the binary calls it.
///
/// ```
/// use runnel_connect::plugin::PluginRegistry;
/// let registry = PluginRegistry::new();
/// let err = registry.create("NoSuchConnector").unwrap_err();
/// assert!(err.to_string().contains("NoSuchConnector"));
/// ```
#[derive(Clone, Default)]
pub struct PluginRegistry {
    /// Every name (class and aliases) → the class name.
    names: BTreeMap<String, String>,
    /// Class name → (aliases, factory).
    plugins: BTreeMap<String, (Vec<String>, Factory)>,
}

impl fmt::Debug for PluginRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginRegistry").field("classes", &self.plugins.keys().collect::<Vec<_>>()).finish()
    }
}

/// No plugin answers to a name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown connector class `{class}` (key `connector.class`); known classes: {}", known.join(", "))]
pub struct UnknownClass {
    /// The name asked for.
    pub class: String,
    /// The registered class names.
    pub known: Vec<String>,
}

impl PluginRegistry {
    /// An empty registry.
    pub fn new() -> PluginRegistry {
        PluginRegistry::default()
    }

    fn insert(&mut self, class: &str, aliases: &[&str], factory: Factory) {
        let aliases: Vec<String> = aliases.iter().map(|a| a.to_string()).collect();
        self.names.insert(class.to_string(), class.to_string());
        for alias in &aliases {
            self.names.insert(alias.clone(), class.to_string());
        }
        self.plugins.insert(class.to_string(), (aliases, factory));
    }

    /// Registers a source connector under `class` and `aliases`; a name
    /// registered before is taken over.
    pub fn register_source<F>(&mut self, class: &str, aliases: &[&str], factory: F)
    where
        F: Fn() -> Box<dyn SourceConnector> + Send + Sync + 'static,
    {
        self.insert(class, aliases, Factory::Source(Arc::new(factory)));
    }

    /// Registers a sink connector under `class` and `aliases`.
    pub fn register_sink<F>(&mut self, class: &str, aliases: &[&str], factory: F)
    where
        F: Fn() -> Box<dyn SinkConnector> + Send + Sync + 'static,
    {
        self.insert(class, aliases, Factory::Sink(Arc::new(factory)));
    }

    /// The class name a name (class or alias) resolves to.
    pub fn resolve(&self, name: &str) -> Option<&str> {
        self.names.get(name.trim()).map(String::as_str)
    }

    /// A new connector of the class (or alias) `name`.
    ///
    /// # Errors
    /// [`UnknownClass`] naming the class and listing the known ones.
    pub fn create(&self, name: &str) -> Result<Connector, UnknownClass> {
        let class = self.resolve(name).ok_or_else(|| UnknownClass {
            class: name.trim().to_string(),
            known: self.plugins.keys().cloned().collect(),
        })?;
        Ok(match &self.plugins[class].1 {
            Factory::Source(f) => Connector::Source(f()),
            Factory::Sink(f) => Connector::Sink(f()),
        })
    }

    /// Every registered plugin, by class name.
    pub fn plugins(&self) -> Vec<PluginInfo> {
        self.plugins
            .iter()
            .map(|(class, (aliases, factory))| PluginInfo {
                class: class.clone(),
                aliases: aliases.clone(),
                kind: match factory {
                    Factory::Source(_) => ConnectorKind::Source,
                    Factory::Sink(_) => ConnectorKind::Sink,
                },
            })
            .collect()
    }
}
