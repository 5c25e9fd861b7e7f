//! The application's control topic, `<application.id>-control` (one
//! partition): how one instance asks every instance of its application to
//! shut down ([`ErrorResponse::ShutdownApplication`](super::ErrorResponse)).
//!
//! Kafka carries this request in the rebalance protocol's user data; a
//! topic works on any cluster (embedded, a Runnel broker, Apache Kafka)
//! without a custom assignor. Each instance watches the topic from its end
//! as of start, on a small thread of its own.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use runnel_core::client::{Cluster, ConsumerConfig, ProducerConfig, ProducerRecord};
use runnel_core::topic::TopicPartition;
use tracing::warn;

use super::{client_error, Shared, StreamsState};
use crate::StreamsError;

/// The record key of a shutdown request; the value says who failed and why.
const SHUTDOWN_APPLICATION: &str = "shutdown-application";

/// The control topic of `application_id`.
pub(crate) fn control_topic(application_id: &str) -> String {
    format!("{application_id}-control")
}

/// Asks every instance of `application_id` to shut down because `reason`.
pub(crate) async fn request_shutdown(
    cluster: &Cluster,
    application_id: &str,
    reason: &str,
) -> Result<(), StreamsError> {
    let producer =
        cluster.producer(ProducerConfig::default()).map_err(client_error("create control producer"))?;
    let record = ProducerRecord::new(control_topic(application_id))
        .key(SHUTDOWN_APPLICATION)
        .value(reason.to_string());
    let delivery = producer.enqueue(record).await.map_err(client_error("send shutdown request"))?;
    delivery.await.map_err(client_error("send shutdown request"))?;
    producer.close().await.map_err(client_error("close control producer"))
}

/// Watches the control topic until the instance shuts down; a shutdown
/// request stops this instance with the requester's reason in its errors.
pub(crate) async fn watch(
    cluster: Cluster,
    application_id: String,
    shared: Arc<Shared>,
) -> Result<(), StreamsError> {
    let mut consumer =
        cluster.consumer(ConsumerConfig::default()).map_err(client_error("create control consumer"))?;
    let partition = TopicPartition::new(control_topic(&application_id), 0);
    consumer.assign([partition.clone()]).map_err(client_error("assign control topic"))?;
    consumer.seek_to_end(&[partition]).map_err(client_error("seek control topic"))?;
    while !shared.shutdown.load(Ordering::Relaxed) {
        let records =
            consumer.poll(Duration::from_millis(200)).await.map_err(client_error("poll control topic"))?;
        let request = records.iter().find(|r| r.key.as_deref() == Some(SHUTDOWN_APPLICATION.as_bytes()));
        if let Some(request) = request {
            let reason = String::from_utf8_lossy(request.value.as_deref().unwrap_or_default()).into_owned();
            warn!(application = %application_id, %reason, "shutting down: another instance asked the application to stop");
            shared
                .errors
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(format!("application shutdown requested: {reason}"));
            shared.shutdown.store(true, Ordering::Relaxed);
            shared.set_state(StreamsState::Error);
        }
    }
    let _ = consumer.close().await;
    Ok(())
}
