//! Interactive queries: [`Streams::store`] reads a state store across
//! every task of this instance, and [`Streams::query_metadata_for_key`]
//! names the instance that holds a key (Kafka's `KafkaStreams#store` and
//! `#queryMetadataForKey`).
//!
//! # How a read runs
//!
//! Tasks and their stores belong to the stream threads. A read goes to
//! every thread's inbox; each thread answers between two poll loops (so
//! within about the poll timeout, 100 ms) from the stores of the tasks it
//! runs, record cache included; the answers are merged in key order. A
//! read blocks the calling thread until every stream thread answered: from
//! async code, call it in `tokio::task::spawn_blocking`. A read fails at
//! once when the instance is shutting down or a thread has stopped.
//!
//! # Where a key lives
//!
//! `application.server` (`host:port`) is published with each stream
//! thread's consumer, in its `client.id` (`<thread>-consumer@<host:port>`),
//! which the group's description carries to every instance. (Kafka puts it
//! in the subscription's user data; librdkafka's built-in assignors take
//! none.) A key's partition is the default partitioner's (murmur2 of the
//! serialized key) over the partition count of the store's input topic.

use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::config::HostInfo;
use crate::serdes::Serde;
use crate::store::kv::StoreReader;
use crate::store::window_view::View;
use crate::store::Entries;
use crate::task::StreamTask;
use crate::StreamsError;

/// How long a read waits for the stream threads.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// What a read asks of a store.
#[derive(Debug, Clone)]
pub(crate) enum QueryOp {
    Get(Vec<u8>),
    All,
    Range(Vec<u8>, Option<Vec<u8>>),
}

/// One read on its way to a stream thread.
pub(crate) struct Query {
    store: String,
    op: QueryOp,
    reply: mpsc::Sender<Result<Entries, StreamsError>>,
}

/// The reads waiting for one stream thread.
#[derive(Default)]
pub(crate) struct QueryInbox {
    queue: Mutex<Vec<Query>>,
    /// The thread stopped (for good or until it is replaced): reads fail
    /// at once instead of waiting for an answer.
    stopped: std::sync::atomic::AtomicBool,
}

impl QueryInbox {
    fn push(&self, query: Query) {
        if self.stopped.load(std::sync::atomic::Ordering::Acquire) {
            let _ = query.reply.send(Err(StreamsError::Runtime {
                reason: format!("store {:?} cannot be read: a stream thread is not running", query.store),
            }));
            return;
        }
        self.queue.lock().unwrap_or_else(PoisonError::into_inner).push(query);
    }

    /// Marks the thread running or stopped; stopping fails what waits.
    pub(crate) fn set_stopped(&self, stopped: bool) {
        self.stopped.store(stopped, std::sync::atomic::Ordering::Release);
        if stopped {
            for query in std::mem::take(&mut *self.queue.lock().unwrap_or_else(PoisonError::into_inner)) {
                let _ = query.reply.send(Err(StreamsError::Runtime {
                    reason: format!("store {:?} cannot be read: a stream thread stopped", query.store),
                }));
            }
        }
    }

    /// Answers every waiting read from `tasks`' stores.
    pub(crate) fn serve<'a>(&self, tasks: impl Iterator<Item = &'a StreamTask> + Clone) {
        let queries = std::mem::take(&mut *self.queue.lock().unwrap_or_else(PoisonError::into_inner));
        for query in queries {
            let answer = answer(&query, tasks.clone());
            // The reader may have given up waiting.
            let _ = query.reply.send(answer);
        }
    }
}

fn answer<'a>(query: &Query, tasks: impl Iterator<Item = &'a StreamTask>) -> Result<Entries, StreamsError> {
    let mut entries = Vec::new();
    for task in tasks {
        let stores = task.stores();
        let Some(handle) = stores.find(&query.store) else { continue };
        match &query.op {
            QueryOp::Get(key) => {
                if let Some(value) = stores.view_get(handle, key)? {
                    entries.push((key.clone(), value));
                }
            }
            QueryOp::All => entries.extend(stores.view_all(handle)?),
            QueryOp::Range(from, to) => entries.extend(stores.view_range(handle, from, to.as_deref())?),
        }
    }
    Ok(entries)
}

/// Reads a store through every stream thread of an instance.
pub(crate) struct RuntimeStoreReader {
    pub(crate) store: String,
    pub(crate) inboxes: Vec<Arc<QueryInbox>>,
    /// The instance's shutdown flag: reads fail once it is set.
    pub(crate) shutdown: Arc<std::sync::atomic::AtomicBool>,
}

impl RuntimeStoreReader {
    fn ask(&self, op: QueryOp) -> Result<Entries, StreamsError> {
        if self.shutdown.load(std::sync::atomic::Ordering::Acquire) {
            return Err(StreamsError::Runtime {
                reason: format!("store {:?} cannot be read: the instance is shutting down", self.store),
            });
        }
        let (reply, answers) = mpsc::channel();
        for inbox in &self.inboxes {
            inbox.push(Query { store: self.store.clone(), op: op.clone(), reply: reply.clone() });
        }
        drop(reply);
        let mut entries = Vec::new();
        for _ in &self.inboxes {
            match answers.recv_timeout(ANSWER_TIMEOUT) {
                Ok(answer) => entries.extend(answer?),
                Err(_) => {
                    return Err(StreamsError::Runtime {
                        reason: format!(
                            "reading store {:?}: a stream thread did not answer within {ANSWER_TIMEOUT:?} (is the instance running?)",
                            self.store
                        ),
                    })
                }
            }
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.dedup_by(|a, b| a.0 == b.0);
        Ok(entries)
    }
}

impl StoreReader for RuntimeStoreReader {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StreamsError> {
        Ok(self.ask(QueryOp::Get(key.to_vec()))?.into_iter().next().map(|(_, v)| v))
    }

    fn all(&self) -> Result<Entries, StreamsError> {
        self.ask(QueryOp::All)
    }

    fn range(&self, from: &[u8], to: Option<&[u8]>) -> Result<Entries, StreamsError> {
        self.ask(QueryOp::Range(from.to_vec(), to.map(<[u8]>::to_vec)))
    }
}

/// What [`Streams::store`](crate::Streams::store) reads (Kafka's `StoreQueryParameters`): a
/// store by name, with the serdes of its keys and values.
pub struct StoreQueryParameters<K, V> {
    pub(crate) name: String,
    pub(crate) key_serde: Box<dyn Serde<K>>,
    pub(crate) value_serde: Box<dyn Serde<V>>,
}

impl<K, V> StoreQueryParameters<K, V> {
    /// The store `name`, its keys and values read with these serdes.
    pub fn from_name(name: impl Into<String>, key_serde: impl Serde<K>, value_serde: impl Serde<V>) -> Self {
        StoreQueryParameters {
            name: name.into(),
            key_serde: Box::new(key_serde),
            value_serde: Box::new(value_serde),
        }
    }
}

impl<K, V> std::fmt::Debug for StoreQueryParameters<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreQueryParameters").field("name", &self.name).finish_non_exhaustive()
    }
}

/// Where a key of a store lives (Kafka's `KeyQueryMetadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyQueryMetadata {
    /// The instance whose task holds the key, when a member of the group
    /// owns its partition and published its `application.server`.
    pub active_host: Option<HostInfo>,
    /// The partition (and task) of the key.
    pub partition: i32,
}

/// The `application.server` in a consumer client id.
pub(crate) fn server_of_client_id(client_id: &str) -> Option<HostInfo> {
    HostInfo::parse(client_id.rsplit_once('@')?.1)
}

/// The typed view over `reader` that the store views wrap.
pub(crate) fn view<K, V>(
    topic: String,
    reader: Box<dyn StoreReader>,
    params: StoreQueryParameters<K, V>,
) -> View<K, V> {
    View { name: params.name, topic, reader, key_serde: params.key_serde, value_serde: params.value_serde }
}
