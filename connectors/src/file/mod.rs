//! File connectors, with Kafka's class names and keys.
//!
//! | class | aliases | keys |
//! | --- | --- | --- |
//! | `FileStreamSource` | `org.apache.kafka.connect.file.FileStreamSourceConnector`, `FileStreamSourceConnector` | `file`, `topic`, `batch.size` (2000) |
//! | `FileStreamSink` | `org.apache.kafka.connect.file.FileStreamSinkConnector`, `FileStreamSinkConnector` | `file`, `topics` |

mod sink;
mod source;

use runnel_connect::plugin::PluginRegistry;

pub use sink::{FileStreamSink, FileStreamSinkTask, SinkOffsets};
pub use source::{FileStreamSource, FileStreamSourceTask};

/// Registers `FileStreamSource` and `FileStreamSink` under their names and
/// Kafka's.
pub fn register(registry: &mut PluginRegistry) {
    registry.register_source(
        FileStreamSource::CLASS,
        &["org.apache.kafka.connect.file.FileStreamSourceConnector", "FileStreamSourceConnector"],
        || Box::new(FileStreamSource::default()),
    );
    registry.register_sink(
        FileStreamSink::CLASS,
        &["org.apache.kafka.connect.file.FileStreamSinkConnector", "FileStreamSinkConnector"],
        || Box::new(FileStreamSink::default()),
    );
}
