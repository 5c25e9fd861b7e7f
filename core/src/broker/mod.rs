//! The embedded broker's state: a data directory holding topics, each a set
//! of partition logs, plus the background maintenance thread.
//!
//! ```text
//! runnel-data/
//!   .lock            flock'd by the owning process (see DataDirLock)
//!   topics.json      the topic registry (names, partition counts, overrides)
//!   clicks-0/        one directory per partition (see crate::log)
//!   clicks-1/
//! ```
//!
//! A partition whose log fails to open (damage recovery must not cut) is
//! kept *offline* with the reason; every other partition keeps serving.

mod config;
pub mod group;
mod lock;
mod metadata;
mod offsets;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::{error, info, warn};

use crate::log::{CompactionReport, Log, LogConfig, RetentionReport};
use crate::topic::{
    collision_key, validate_topic_name, NewTopic, PartitionDescription, TopicDescription, TopicPartition,
};
use crate::{Error, Result};

pub use config::BrokerConfig;
pub use lock::{DataDirLock, LOCK_FILE};
pub use metadata::METADATA_FILE;
pub use offsets::{OffsetAndMetadata, OFFSETS_TOPIC};

/// Largest partition count one topic may have.
pub const MAX_PARTITIONS: i32 = 10_000;
const DELETE_SUFFIX: &str = "-delete";

#[derive(Debug, Clone)]
enum PartitionSlot {
    Online(Arc<Log>),
    Offline(String),
}

#[derive(Debug)]
struct Topic {
    configs: BTreeMap<String, String>,
    log_config: LogConfig,
    partitions: Vec<PartitionSlot>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    config: BrokerConfig,
    topics: RwLock<BTreeMap<String, Topic>>,
    /// Serializes admin operations (create, delete, add partitions).
    admin: Mutex<()>,
    /// Bumped by every change to the set of topics or partitions, so clients
    /// can cache metadata and notice when it goes stale.
    metadata_epoch: std::sync::atomic::AtomicU64,
    /// Committed offsets (the in-memory view of `__consumer_offsets`).
    offsets: Mutex<offsets::OffsetCache>,
    groups: group::GroupCoordinator,
    closed: AtomicBool,
    /// Released by `close`, so the directory can be reopened at once.
    lock: Mutex<Option<DataDirLock>>,
}

#[derive(Debug)]
struct Maintenance {
    stop: mpsc::SyncSender<()>,
    handle: JoinHandle<()>,
}

/// What one maintenance pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// Retention results per partition that deleted something.
    pub retention: Vec<(TopicPartition, RetentionReport)>,
    /// Compaction results per partition that ran a pass.
    pub compaction: Vec<(TopicPartition, CompactionReport)>,
    /// Partitions whose maintenance failed, with the error.
    pub errors: Vec<(TopicPartition, String)>,
}

/// Whatever hands out the broker it runs on, so the Kafka-protocol server
/// (which sits above the broker and knows nothing of clients) can serve it:
/// a shared [`Broker`], or an embedded `client::Cluster`.
pub trait BrokerHandle {
    /// The broker in this process, or `None` when there is none (a
    /// `kafka://` cluster).
    fn embedded_broker(&self) -> Option<Arc<Broker>>;
}

impl BrokerHandle for Arc<Broker> {
    fn embedded_broker(&self) -> Option<Arc<Broker>> {
        Some(self.clone())
    }
}

/// An embedded broker: owns a data directory and the topics in it.
///
/// See the [crate docs](crate) for an example.
#[derive(Debug)]
pub struct Broker {
    inner: Arc<Inner>,
    maintenance: Mutex<Option<Maintenance>>,
}

fn partition_dir(dir: &Path, topic: &str, partition: i32) -> PathBuf {
    dir.join(format!("{topic}-{partition}"))
}

impl Broker {
    /// Opens (creating if needed) the data directory `dir`, takes its lock,
    /// loads the registry and every partition log, and starts background
    /// maintenance if configured.
    ///
    /// # Errors
    /// [`Error::DataDirLocked`] if another process holds `dir`; I/O errors;
    /// [`Error::Corrupt`] if the registry itself is unreadable. A partition
    /// that fails to open is kept offline instead (see
    /// [`Broker::describe_topic`]).
    pub fn open(dir: impl AsRef<Path>, config: BrokerConfig) -> Result<Broker> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(Error::io("create directory", &dir))?;
        let lock = DataDirLock::acquire(&dir)?;
        remove_deleted_dirs(&dir)?;
        let mut topics = BTreeMap::new();
        for record in metadata::load(&dir)? {
            let log_config =
                config.log_defaults.with_overrides(&record.configs).map_err(|e| Error::Corrupt {
                    path: dir.join(METADATA_FILE),
                    position: 0,
                    reason: format!("topic '{}': {e}", record.name),
                })?;
            let partitions = (0..record.partitions)
                .map(|p| open_partition(&dir, &record.name, p, &log_config, &config))
                .collect();
            topics.insert(record.name, Topic { configs: record.configs, log_config, partitions });
        }
        info!(dir = %dir.display(), topics = topics.len(), "broker opened");
        let inner = Arc::new(Inner {
            dir,
            config,
            topics: RwLock::new(topics),
            admin: Mutex::new(()),
            metadata_epoch: std::sync::atomic::AtomicU64::new(0),
            offsets: Mutex::new(offsets::OffsetCache::default()),
            groups: group::GroupCoordinator::default(),
            closed: AtomicBool::new(false),
            lock: Mutex::new(Some(lock)),
        });
        let broker = Broker { inner, maintenance: Mutex::new(None) };
        broker.load_offsets()?;
        if broker.inner.config.background_maintenance {
            broker.start_maintenance()?;
        }
        Ok(broker)
    }

    fn start_maintenance(&self) -> Result<()> {
        let (stop, stopped) = mpsc::sync_channel::<()>(1);
        let inner = self.inner.clone();
        let handle = std::thread::Builder::new()
            .name("runnel-log-maintenance".into())
            .spawn(move || maintenance_loop(&inner, &stopped))
            .map_err(Error::io("spawn maintenance thread", &self.inner.dir))?;
        *self.maintenance.lock().expect("maintenance lock") = Some(Maintenance { stop, handle });
        Ok(())
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The broker's configuration.
    pub fn config(&self) -> &BrokerConfig {
        &self.inner.config
    }

    fn check_open(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed("broker".into()));
        }
        Ok(())
    }

    /// Creates a topic: validates the name (Kafka's rules, and no collision
    /// on `.` vs `_` with an existing topic), the partition count and every
    /// config override, persists it, then opens its partitions.
    ///
    /// # Errors
    /// [`Error::InvalidTopicName`], [`Error::TopicExists`],
    /// [`Error::InvalidPartitions`], [`Error::InvalidConfig`] naming the key.
    pub fn create_topic(&self, topic: NewTopic) -> Result<()> {
        if is_internal(&topic.name) {
            return Err(Error::InvalidTopicName { name: topic.name, reason: "is an internal topic".into() });
        }
        self.create_topic_unchecked(topic)
    }

    fn create_topic_unchecked(&self, topic: NewTopic) -> Result<()> {
        self.check_open()?;
        validate_topic_name(&topic.name)?;
        validate_partition_count(&topic.name, topic.num_partitions)?;
        let log_config = self.inner.config.log_defaults.with_overrides(&topic.configs)?;
        let _admin = self.inner.admin.lock().expect("admin lock");
        {
            let topics = self.inner.topics.read().expect("topics lock");
            if topics.contains_key(&topic.name) {
                return Err(Error::TopicExists(topic.name));
            }
            let key = collision_key(&topic.name);
            if let Some(other) = topics.keys().find(|t| collision_key(t) == key) {
                return Err(Error::InvalidTopicName {
                    name: topic.name.clone(),
                    reason: format!("collides with existing topic '{other}' ('.' and '_' are treated alike)"),
                });
            }
        }
        let mut records = self.registry();
        records.push(metadata::TopicRecord {
            name: topic.name.clone(),
            partitions: topic.num_partitions,
            configs: topic.configs.clone(),
        });
        metadata::store(&self.inner.dir, records)?;
        let partitions = (0..topic.num_partitions)
            .map(|p| open_partition(&self.inner.dir, &topic.name, p, &log_config, &self.inner.config))
            .collect();
        info!(topic = %topic.name, partitions = topic.num_partitions, "topic created");
        self.inner
            .topics
            .write()
            .expect("topics lock")
            .insert(topic.name, Topic { configs: topic.configs, log_config, partitions });
        self.bump_metadata_epoch();
        Ok(())
    }

    /// Deletes a topic and its files. Appends to its logs fail from now on;
    /// readers that still hold a log can finish what they are reading.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`]; I/O errors.
    pub fn delete_topic(&self, name: &str) -> Result<()> {
        self.check_open()?;
        if is_internal(name) {
            return Err(Error::InvalidTopicName {
                name: name.to_string(),
                reason: "is an internal topic".into(),
            });
        }
        let _admin = self.inner.admin.lock().expect("admin lock");
        let topic = self
            .inner
            .topics
            .write()
            .expect("topics lock")
            .remove(name)
            .ok_or_else(|| Error::UnknownTopic(name.to_string()))?;
        let stamp =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        for slot in &topic.partitions {
            if let PartitionSlot::Online(log) = slot {
                log.shut();
            }
        }
        // Move every partition directory aside, then drop the topic from the
        // registry. If either step fails, undo the moves and reopen the topic:
        // a half-deleted topic must not reappear with stale data later.
        let mut moved = Vec::new();
        let mut outcome = Ok(());
        for p in 0..topic.partitions.len() {
            let from = partition_dir(&self.inner.dir, name, p as i32);
            let to = self.inner.dir.join(format!("{name}-{p}.{stamp}{DELETE_SUFFIX}"));
            match std::fs::rename(&from, &to) {
                Ok(()) => moved.push((from, to)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    outcome = Err(Error::io("rename", &from)(e));
                    break;
                }
            }
        }
        if outcome.is_ok() {
            outcome = metadata::store(&self.inner.dir, self.registry());
        }
        if let Err(e) = outcome {
            for (from, to) in moved.iter().rev() {
                if let Err(undo) = std::fs::rename(to, from) {
                    error!(dir = %to.display(), error = %undo, "could not move a partition directory back");
                }
            }
            let partitions = (0..topic.partitions.len() as i32)
                .map(|p| open_partition(&self.inner.dir, name, p, &topic.log_config, &self.inner.config))
                .collect();
            let restored = Topic { configs: topic.configs, log_config: topic.log_config, partitions };
            self.inner.topics.write().expect("topics lock").insert(name.to_string(), restored);
            return Err(e);
        }
        for (_, dir) in moved {
            // What is left here is removed at the next open (the `-delete` suffix).
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                warn!(dir = %dir.display(), error = %e, "could not remove a deleted partition directory yet");
            }
        }
        self.bump_metadata_epoch();
        info!(topic = name, "topic deleted");
        Ok(())
    }

    /// Grows a topic to `total` partitions (Kafka's CreatePartitions).
    ///
    /// # Errors
    /// [`Error::UnknownTopic`]; [`Error::InvalidPartitions`] when `total` is
    /// not larger than the current count or above [`MAX_PARTITIONS`].
    pub fn create_partitions(&self, name: &str, total: i32) -> Result<()> {
        self.check_open()?;
        if is_internal(name) {
            // Its partition count decides where each group's commits live.
            return Err(Error::InvalidTopicName {
                name: name.to_string(),
                reason: "is an internal topic".into(),
            });
        }
        validate_partition_count(name, total)?;
        let _admin = self.inner.admin.lock().expect("admin lock");
        let (current, log_config) = {
            let topics = self.inner.topics.read().expect("topics lock");
            let topic = topics.get(name).ok_or_else(|| Error::UnknownTopic(name.to_string()))?;
            (topic.partitions.len() as i32, topic.log_config.clone())
        };
        if total <= current {
            return Err(Error::InvalidPartitions {
                topic: name.to_string(),
                reason: format!("topic has {current} partitions; the new count {total} must be larger"),
            });
        }
        let mut records = self.registry();
        if let Some(r) = records.iter_mut().find(|r| r.name == name) {
            r.partitions = total;
        }
        metadata::store(&self.inner.dir, records)?;
        let added: Vec<_> = (current..total)
            .map(|p| open_partition(&self.inner.dir, name, p, &log_config, &self.inner.config))
            .collect();
        if let Some(topic) = self.inner.topics.write().expect("topics lock").get_mut(name) {
            topic.partitions.extend(added);
        }
        self.bump_metadata_epoch();
        info!(topic = name, from = current, to = total, "partitions added");
        Ok(())
    }

    fn bump_metadata_epoch(&self) {
        self.inner.metadata_epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Changes whenever a topic is created or deleted or gains partitions.
    pub fn metadata_epoch(&self) -> u64 {
        self.inner.metadata_epoch.load(Ordering::Acquire)
    }

    /// Makes sure `name` exists: creates it with `num.partitions` partitions
    /// when `auto.create.topics.enable` is on.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`] when it is missing and auto-creation is off;
    /// [`Error::InvalidTopicName`] for a name Kafka would not accept.
    pub fn ensure_topic(&self, name: &str) -> Result<()> {
        if self.inner.topics.read().expect("topics lock").contains_key(name) {
            return Ok(());
        }
        if !self.inner.config.auto_create_topics {
            return Err(Error::UnknownTopic(name.to_string()));
        }
        match self.create_topic(NewTopic::new(name, self.inner.config.num_partitions)) {
            Ok(()) | Err(Error::TopicExists(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Every partition's log of a topic, or the reason it is offline.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`].
    pub fn partition_logs(&self, name: &str) -> Result<Vec<std::result::Result<Arc<Log>, String>>> {
        let topics = self.inner.topics.read().expect("topics lock");
        let topic = topics.get(name).ok_or_else(|| Error::UnknownTopic(name.to_string()))?;
        Ok(topic
            .partitions
            .iter()
            .map(|slot| match slot {
                PartitionSlot::Online(log) => Ok(log.clone()),
                PartitionSlot::Offline(reason) => Err(reason.clone()),
            })
            .collect())
    }

    fn registry(&self) -> Vec<metadata::TopicRecord> {
        self.inner
            .topics
            .read()
            .expect("topics lock")
            .iter()
            .map(|(name, t)| metadata::TopicRecord {
                name: name.clone(),
                partitions: t.partitions.len() as i32,
                configs: t.configs.clone(),
            })
            .collect()
    }

    /// Topic names, sorted.
    pub fn list_topics(&self) -> Vec<String> {
        self.inner.topics.read().expect("topics lock").keys().filter(|t| !is_internal(t)).cloned().collect()
    }

    /// The group coordinator.
    pub fn groups(&self) -> &group::GroupCoordinator {
        &self.inner.groups
    }

    /// The broker's clock reading.
    pub fn now_ms(&self) -> i64 {
        self.inner.config.clock.now_ms()
    }

    /// Topic names including internal ones (`__consumer_offsets`), sorted.
    pub fn list_all_topics(&self) -> Vec<String> {
        self.inner.topics.read().expect("topics lock").keys().cloned().collect()
    }

    fn load_offsets(&self) -> Result<()> {
        let Ok(logs) = self.partition_logs(OFFSETS_TOPIC) else { return Ok(()) };
        let mut cache = self.inner.offsets.lock().expect("offsets lock");
        for (p, log) in logs.into_iter().enumerate() {
            let log = match log {
                Ok(log) => log,
                Err(reason) => {
                    // The groups committing there fail until it is repaired;
                    // every other group keeps its offsets.
                    error!(partition = p, reason = %reason, "an offsets partition is offline; its groups' offsets are unavailable");
                    continue;
                }
            };
            let mut offset = log.log_start_offset();
            while offset < log.log_end_offset() {
                let records = log.read_records(offset, 1 << 20)?;
                let Some(last) = records.last() else { break };
                offset = last.offset + 1;
                for r in &records {
                    if let Some(key) = &r.key {
                        cache.apply(key, r.value.as_deref());
                    }
                }
            }
        }
        Ok(())
    }

    fn offsets_log(&self, group: &str) -> Result<Arc<Log>> {
        if !self.inner.topics.read().expect("topics lock").contains_key(OFFSETS_TOPIC) {
            let topic = NewTopic::new(OFFSETS_TOPIC, self.inner.config.offsets_topic_partitions)
                .config("cleanup.policy", "compact")
                .config("segment.bytes", "104857600");
            match self.create_topic_unchecked(topic) {
                Ok(()) | Err(Error::TopicExists(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let n = self.partition_count(OFFSETS_TOPIC)?;
        self.log(OFFSETS_TOPIC, offsets::partition_for_group(group, n))
    }

    /// Stores committed offsets for `group`, all or nothing. Generation
    /// checks belong to the group coordinator; this only persists.
    ///
    /// # Errors
    /// I/O failures appending to `__consumer_offsets`.
    pub fn commit_offsets(
        &self,
        group: &str,
        offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
    ) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let log = self.offsets_log(group)?;
        let entries: Vec<_> = offsets.iter().map(|(tp, o)| (tp.clone(), Some(o.clone()))).collect();
        let mut batch = offsets::encode_batch(group, &entries, self.inner.config.clock.now_ms())?;
        let mut cache = self.inner.offsets.lock().expect("offsets lock");
        log.append(&mut batch)?;
        for (tp, o) in offsets {
            cache.apply(&offsets::encode_key(group, tp), Some(&offsets::encode_value(o)));
        }
        Ok(())
    }

    /// The offsets `group` has committed.
    pub fn committed_offsets(&self, group: &str) -> BTreeMap<TopicPartition, OffsetAndMetadata> {
        self.inner.offsets.lock().expect("offsets lock").group(group)
    }

    /// Groups that have committed offsets.
    pub fn groups_with_offsets(&self) -> Vec<String> {
        self.inner.offsets.lock().expect("offsets lock").groups()
    }

    /// Deletes every committed offset of `group` (tombstones in
    /// `__consumer_offsets`). Returns how many were deleted.
    ///
    /// # Errors
    /// I/O failures.
    pub fn delete_group_offsets(&self, group: &str) -> Result<usize> {
        let current = self.committed_offsets(group);
        if current.is_empty() {
            return Ok(0);
        }
        let log = self.offsets_log(group)?;
        let entries: Vec<_> = current.keys().map(|tp| (tp.clone(), None)).collect();
        let mut batch = offsets::encode_batch(group, &entries, self.inner.config.clock.now_ms())?;
        let mut cache = self.inner.offsets.lock().expect("offsets lock");
        log.append(&mut batch)?;
        for tp in current.keys() {
            cache.apply(&offsets::encode_key(group, tp), None);
        }
        Ok(current.len())
    }

    /// Partition count of a topic.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`].
    pub fn partition_count(&self, name: &str) -> Result<i32> {
        let topics = self.inner.topics.read().expect("topics lock");
        let topic = topics.get(name).ok_or_else(|| Error::UnknownTopic(name.to_string()))?;
        Ok(topic.partitions.len() as i32)
    }

    /// Changes a topic's config overrides: `set` adds or replaces keys,
    /// `delete` reverts keys to the broker default. Validated as a whole
    /// before anything changes; applies to the logs at once and persists.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`]; [`Error::InvalidConfig`] naming the key.
    pub fn alter_topic_config(
        &self,
        name: &str,
        set: &BTreeMap<String, String>,
        delete: &[String],
    ) -> Result<()> {
        self.check_open()?;
        let _admin = self.inner.admin.lock().expect("admin lock");
        let mut configs = {
            let topics = self.inner.topics.read().expect("topics lock");
            topics.get(name).ok_or_else(|| Error::UnknownTopic(name.to_string()))?.configs.clone()
        };
        for key in delete {
            if !crate::log::TOPIC_CONFIG_KEYS.contains(&key.as_str()) {
                return Err(Error::InvalidConfig {
                    key: key.clone(),
                    reason: "unknown topic config key".into(),
                });
            }
            configs.remove(key);
        }
        configs.extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
        let log_config = self.inner.config.log_defaults.with_overrides(&configs)?;
        let mut records = self.registry();
        if let Some(r) = records.iter_mut().find(|r| r.name == name) {
            r.configs = configs.clone();
        }
        metadata::store(&self.inner.dir, records)?;
        let mut topics = self.inner.topics.write().expect("topics lock");
        if let Some(topic) = topics.get_mut(name) {
            for slot in &topic.partitions {
                if let PartitionSlot::Online(log) = slot {
                    log.set_config(log_config.clone());
                }
            }
            topic.configs = configs;
            topic.log_config = log_config;
        }
        info!(topic = name, "topic config altered");
        Ok(())
    }

    /// Every config of a topic with its effective value: `(value, is an override)`.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`].
    pub fn topic_configs(&self, name: &str) -> Result<BTreeMap<String, (String, bool)>> {
        let topics = self.inner.topics.read().expect("topics lock");
        let topic = topics.get(name).ok_or_else(|| Error::UnknownTopic(name.to_string()))?;
        Ok(topic
            .log_config
            .to_properties()
            .into_iter()
            .map(|(k, v)| {
                let overridden = topic.configs.contains_key(&k);
                (k, (v, overridden))
            })
            .collect())
    }

    /// The configs, offsets and sizes of a topic's partitions.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`].
    pub fn describe_topic(&self, name: &str) -> Result<TopicDescription> {
        let topics = self.inner.topics.read().expect("topics lock");
        let topic = topics.get(name).ok_or_else(|| Error::UnknownTopic(name.to_string()))?;
        let partitions = topic
            .partitions
            .iter()
            .enumerate()
            .map(|(p, slot)| match slot {
                PartitionSlot::Online(log) => PartitionDescription {
                    partition: p as i32,
                    log_start_offset: log.log_start_offset(),
                    log_end_offset: log.log_end_offset(),
                    size_bytes: log.size_bytes(),
                    segments: log.segments().len(),
                    offline_reason: None,
                },
                PartitionSlot::Offline(reason) => PartitionDescription {
                    partition: p as i32,
                    log_start_offset: -1,
                    log_end_offset: -1,
                    size_bytes: 0,
                    segments: 0,
                    offline_reason: Some(reason.clone()),
                },
            })
            .collect();
        Ok(TopicDescription { name: name.to_string(), configs: topic.configs.clone(), partitions })
    }

    /// The log of one partition.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`], [`Error::UnknownPartition`], or
    /// [`Error::PartitionOffline`] with the reason it failed to open.
    pub fn log(&self, topic: &str, partition: i32) -> Result<Arc<Log>> {
        let topics = self.inner.topics.read().expect("topics lock");
        let t = topics.get(topic).ok_or_else(|| Error::UnknownTopic(topic.to_string()))?;
        let tp = || TopicPartition::new(topic, partition);
        match usize::try_from(partition).ok().and_then(|p| t.partitions.get(p)) {
            None => Err(Error::UnknownPartition(tp())),
            Some(PartitionSlot::Online(log)) => Ok(log.clone()),
            Some(PartitionSlot::Offline(reason)) => {
                Err(Error::PartitionOffline { partition: tp(), reason: reason.clone() })
            }
        }
    }

    /// Runs retention, compaction and timed flushes on every partition once,
    /// at `now` (the background thread calls this; tests call it directly
    /// with a manual clock).
    pub fn run_maintenance(&self, now: i64) -> MaintenanceReport {
        run_maintenance(&self.inner, now, true)
    }

    /// Stops maintenance and closes every log cleanly (fsync, indexes,
    /// clean-shutdown markers). Idempotent.
    ///
    /// # Errors
    /// The first log that failed to close (the others are still closed).
    pub fn close(&self) -> Result<()> {
        if let Some(m) = self.maintenance.lock().expect("maintenance lock").take() {
            let _ = m.stop.send(());
            let _ = m.handle.join();
        }
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let mut first_error = None;
        for log in all_logs(&self.inner) {
            if let Err(e) = log.close() {
                error!(partition = %log.partition(), error = %e, "failed to close log cleanly");
                first_error.get_or_insert(e);
            }
        }
        self.inner.lock.lock().expect("lock lock").take();
        info!(dir = %self.inner.dir.display(), "broker closed");
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            warn!(error = %e, "broker closed with errors on drop");
        }
    }
}

/// Topics the broker manages itself.
pub fn is_internal(topic: &str) -> bool {
    topic == OFFSETS_TOPIC
}

fn validate_partition_count(topic: &str, n: i32) -> Result<()> {
    if !(1..=MAX_PARTITIONS).contains(&n) {
        return Err(Error::InvalidPartitions {
            topic: topic.to_string(),
            reason: format!("{n} is not between 1 and {MAX_PARTITIONS}"),
        });
    }
    Ok(())
}

fn open_partition(
    dir: &Path,
    topic: &str,
    p: i32,
    log_config: &LogConfig,
    config: &BrokerConfig,
) -> PartitionSlot {
    let tp = TopicPartition::new(topic, p);
    match Log::open(partition_dir(dir, topic, p), tp.clone(), log_config.clone(), config.clock.clone()) {
        Ok(log) => PartitionSlot::Online(Arc::new(log)),
        Err(e) => {
            error!(partition = %tp, error = %e, "partition failed to open and is offline; operator action needed");
            PartitionSlot::Offline(e.to_string())
        }
    }
}

fn remove_deleted_dirs(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(Error::io("list", dir))? {
        let entry = entry.map_err(Error::io("list", dir))?;
        if entry.file_name().to_string_lossy().ends_with(DELETE_SUFFIX) && entry.path().is_dir() {
            std::fs::remove_dir_all(entry.path()).map_err(Error::io("delete", entry.path()))?;
        }
    }
    Ok(())
}

fn all_logs(inner: &Inner) -> Vec<Arc<Log>> {
    inner
        .topics
        .read()
        .expect("topics lock")
        .values()
        .flat_map(|t| t.partitions.iter())
        .filter_map(|slot| match slot {
            PartitionSlot::Online(log) => Some(log.clone()),
            PartitionSlot::Offline(_) => None,
        })
        .collect()
}

fn run_maintenance(inner: &Inner, now: i64, cleanup: bool) -> MaintenanceReport {
    let mut report = MaintenanceReport::default();
    for log in all_logs(inner) {
        let tp = log.partition().clone();
        if let Err(e) = log.flush_if_due(now) {
            report.errors.push((tp.clone(), e.to_string()));
        }
        if !cleanup {
            continue;
        }
        match log.delete_old_segments(now) {
            Ok(r) if r.segments_deleted > 0 => report.retention.push((tp.clone(), r)),
            Ok(_) => {}
            Err(e) => report.errors.push((tp.clone(), e.to_string())),
        }
        match log.compact(now, false) {
            Ok(r) if r.ran => report.compaction.push((tp.clone(), r)),
            Ok(_) => {}
            Err(e) => report.errors.push((tp.clone(), e.to_string())),
        }
    }
    for (tp, e) in &report.errors {
        error!(partition = %tp, error = %e, "log maintenance failed");
    }
    report
}

fn maintenance_loop(inner: &Inner, stop: &mpsc::Receiver<()>) {
    let tick = inner.config.flush_scheduler_interval_ms.min(inner.config.retention_check_interval_ms).max(1);
    let mut last_cleanup = inner.config.clock.now_ms();
    loop {
        match stop.recv_timeout(Duration::from_millis(tick as u64)) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        let now = inner.config.clock.now_ms();
        let cleanup = now - last_cleanup >= inner.config.retention_check_interval_ms;
        if cleanup {
            last_cleanup = now;
        }
        run_maintenance(inner, now, cleanup);
    }
}
