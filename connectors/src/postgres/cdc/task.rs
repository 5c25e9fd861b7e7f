//! The CDC source task: a background reader (snapshot, then the
//! replication stream) feeding a bounded queue that `poll` drains, and
//! the flush position reported to the server advancing only as the
//! worker stores records.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use runnel_connect::plugin::{
    Props, RecordMetadata, SourceMap, SourceRecord, SourceTask, SourceTaskContext, TaskError,
};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::config::{CdcConfig, SnapshotMode};
use super::event::{self, Position};
use super::pgoutput;
use super::setup::{self, Plan, StoredOffset};
use super::snapshot;
use super::stream::{ChangeDecoder, Resume};
use super::toast::ToastStore;
use crate::postgres::conn::PgError;
use crate::postgres::lsn::Lsn;
use crate::postgres::replication::{ReplicationConnection, ReplicationStream, StreamMessage};

/// What the reader and the task share.
struct Shared {
    config: Arc<CdcConfig>,
    partition: Arc<SourceMap>,
    /// The highest `lsn_commit` of a stored record: what the server may
    /// free WAL up to.
    flushed: AtomicU64,
    /// Wakes the reader to report `flushed` now.
    flush_changed: Notify,
}

/// The task of [`super::PostgresCdcSource`].
#[derive(Default)]
pub struct PostgresCdcSourceTask {
    shared: Option<Arc<Shared>>,
    records: Option<mpsc::Receiver<SourceRecord>>,
    reader: Option<JoinHandle<Result<(), TaskError>>>,
    cancel: CancellationToken,
}

impl std::fmt::Debug for PostgresCdcSourceTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresCdcSourceTask").finish_non_exhaustive()
    }
}

#[async_trait]
impl SourceTask for PostgresCdcSourceTask {
    async fn start(&mut self, props: &Props, context: &SourceTaskContext) -> Result<(), TaskError> {
        let config = Arc::new(CdcConfig::parse(props, &context.connector)?);
        let partition = event::source_partition(&config);
        let stored = context.offset(&partition).and_then(StoredOffset::parse);
        let client = config.connection.connect_sql().await.map_err(|e| e.explain(&config.connection))?;
        setup::check_server(&client, &config).await?;
        setup::ensure_publication(&client, &config).await?;
        let slot = setup::slot_state(&client, &config).await?;
        let plan = setup::plan(&config, stored, slot.as_ref()).map_err(TaskError::fatal)?;
        info!(connector = %context.connector, slot = %config.slot_name, ?plan, ?stored, "postgres cdc task starting");
        let shared = Arc::new(Shared {
            config: Arc::clone(&config),
            partition,
            flushed: AtomicU64::new(0),
            flush_changed: Notify::new(),
        });
        let toast = if config.toast_fill {
            let Some(state_dir) = &context.state_dir else {
                return Err(TaskError::fatal(
                    "toast.fill=true needs a directory for its store: set the worker's state.dir",
                ));
            };
            let dir =
                state_dir.join(&context.connector).join(format!("task-{}", context.task_id)).join("toast");
            std::fs::create_dir_all(&dir).map_err(|e| {
                TaskError::fatal(format!(
                    "toast.fill: cannot create {}: {e} (the worker's state.dir)",
                    dir.display()
                ))
            })?;
            Some(ToastStore::open(&dir).map_err(TaskError::fatal)?)
        } else {
            None
        };
        let (sender, receiver) = mpsc::channel(config.max_queue_size);
        let reader = Reader {
            shared: Arc::clone(&shared),
            sql: client,
            out: sender,
            cancel: self.cancel.clone(),
            toast,
            pruned: Lsn::ZERO,
        };
        self.reader = Some(tokio::spawn(reader.run(plan)));
        self.records = Some(receiver);
        self.shared = Some(shared);
        Ok(())
    }

    async fn poll(&mut self) -> Result<Vec<SourceRecord>, TaskError> {
        let (Some(records), Some(shared)) = (self.records.as_mut(), self.shared.as_ref()) else {
            return Err(TaskError::fatal("poll before start"));
        };
        let batch = shared.config.max_batch_size;
        let mut out = Vec::new();
        let received =
            tokio::time::timeout(shared.config.poll_interval, records.recv_many(&mut out, batch)).await;
        if let Ok(0) = received {
            // The reader is done: a clean end (initial_only) or a failure.
            match self.reader.take() {
                Some(reader) => match reader.await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(e),
                    Err(e) => return Err(TaskError::fatal(format!("the postgres reader stopped: {e}"))),
                },
                None => tokio::time::sleep(shared.config.poll_interval).await,
            }
        }
        Ok(out)
    }

    fn commit_record(&mut self, record: &SourceRecord, _metadata: &RecordMetadata) -> Result<(), TaskError> {
        if let (Some(shared), Some(commit)) = (&self.shared, record.source_offset.get("lsn_commit")) {
            if let Some(lsn) = commit.as_u64() {
                shared.flushed.fetch_max(lsn, Ordering::AcqRel);
            }
        }
        Ok(())
    }

    async fn commit(&mut self) -> Result<(), TaskError> {
        if let Some(shared) = &self.shared {
            shared.flush_changed.notify_one();
        }
        Ok(())
    }

    async fn stop(&mut self) {
        self.cancel.cancel();
        if let Some(reader) = self.reader.take() {
            match tokio::time::timeout(Duration::from_secs(10), reader).await {
                Ok(Ok(Err(e))) => warn!(error = %e, "postgres reader ended with an error"),
                Ok(_) => {}
                Err(_) => warn!("postgres reader did not stop within 10 s"),
            }
        }
        let Some(shared) = self.shared.take() else { return };
        if shared.config.slot_drop_on_stop {
            match shared.config.connection.connect_sql().await {
                Ok(client) => {
                    if let Err(e) = setup::drop_slot(&client, &shared.config).await {
                        warn!(error = %e, "could not drop the replication slot on stop");
                    }
                }
                Err(e) => warn!(error = %e, "could not connect to drop the replication slot"),
            }
        }
    }
}

/// Why reading stopped.
enum Ended {
    /// The task is stopping.
    Stopped,
    /// The slot is gone while streaming (dropped behind our back).
    SlotLost,
}

/// The background half: snapshot and stream into the queue.
struct Reader {
    shared: Arc<Shared>,
    /// For catalog lookups, heartbeat queries and slot management.
    sql: tokio_postgres::Client,
    out: mpsc::Sender<SourceRecord>,
    cancel: CancellationToken,
    /// `toast.fill`'s store.
    toast: Option<ToastStore>,
    /// The flush position the store was last pruned at.
    pruned: Lsn,
}

impl Reader {
    /// Drops `toast.fill` images that no change can need any more, once
    /// the worker stored more.
    fn prune_toast(&mut self) -> Result<(), PgError> {
        let Some(store) = self.toast.as_mut() else { return Ok(()) };
        let flushed = Lsn(self.shared.flushed.load(Ordering::Acquire));
        if flushed > self.pruned && store.has_pending() {
            store.prune(flushed)?;
            self.pruned = flushed;
        }
        Ok(())
    }

    async fn run(mut self, mut plan: Plan) -> Result<(), TaskError> {
        loop {
            let (start, resume) = match plan {
                Plan::Idle => {
                    info!("snapshot done and snapshot.mode=initial_only: not streaming");
                    self.cancel.cancelled().await;
                    return Ok(());
                }
                Plan::Snapshot { drop_existing } => match self.snapshot(drop_existing).await? {
                    Some(point) => (point, None),
                    None => return Ok(()),
                },
                Plan::Stream { create_slot, resume } => {
                    if resume.is_none() {
                        // No stored position: images kept by an earlier run
                        // (deleted offsets, a recreated connector) would fill
                        // values from another history.
                        if let Some(store) = self.toast.as_mut() {
                            store.clear().map_err(|e| TaskError::fatal(e.to_string()))?;
                        }
                    }
                    if create_slot {
                        let mut repl = self.connect().await?;
                        let slot = &self.shared.config.slot_name;
                        let created = repl.create_slot(slot, false).await.map_err(|e| self.explain(e))?;
                        info!(slot = %slot, consistent_point = %created.consistent_point, "replication slot created");
                    }
                    (resume.map_or(Lsn::ZERO, |r| r.commit), resume)
                }
            };
            if self.shared.config.snapshot_mode == SnapshotMode::InitialOnly
                && matches!(plan, Plan::Snapshot { .. })
            {
                plan = Plan::Idle;
                continue;
            }
            match self.stream(start, resume).await? {
                Ended::Stopped => return Ok(()),
                Ended::SlotLost => {
                    let config = &self.shared.config;
                    if config.snapshot_mode != SnapshotMode::WhenNeeded {
                        return Err(TaskError::fatal(format!(
                            "replication slot `{}` was dropped while streaming; the changes after the last stored \
                             offset are gone. Set snapshot.mode=when_needed to take a new snapshot, or delete this \
                             connector's offsets to start over",
                            config.slot_name
                        )));
                    }
                    warn!(slot = %config.slot_name, "replication slot lost: taking a new snapshot (snapshot.mode=when_needed)");
                    plan = Plan::Snapshot { drop_existing: false };
                }
            }
        }
    }

    fn explain(&self, e: PgError) -> TaskError {
        e.explain(&self.shared.config.connection)
    }

    async fn connect(&self) -> Result<ReplicationConnection, TaskError> {
        ReplicationConnection::connect(&self.shared.config.connection).await.map_err(|e| self.explain(e))
    }

    /// Creates the slot with an exported snapshot, reads it, and returns
    /// the slot's consistent point (`None`: stopped meanwhile).
    async fn snapshot(&mut self, drop_existing: bool) -> Result<Option<Lsn>, TaskError> {
        let config = Arc::clone(&self.shared.config);
        if drop_existing {
            setup::drop_slot(&self.sql, &config).await?;
        }
        let mut repl = self.connect().await?;
        let created = repl.create_slot(&config.slot_name, true).await.map_err(|e| self.explain(e))?;
        let name = created
            .snapshot_name
            .clone()
            .ok_or_else(|| TaskError::fatal("CREATE_REPLICATION_SLOT exported no snapshot"))?;
        info!(slot = %config.slot_name, consistent_point = %created.consistent_point, snapshot = %name, "replication slot created; snapshot starts");
        let reader = config.connection.connect_sql().await.map_err(|e| self.explain(e))?;
        snapshot::begin(&reader, &name).await.map_err(|e| self.explain(e))?;
        // The snapshot is imported: the exporting connection is done.
        drop(repl);
        let point = created.consistent_point;
        let summary = tokio::select! {
            read = snapshot::read(&config, &self.shared.partition, &reader, point, self.toast.as_mut(), &self.out) => read.map_err(|e| self.explain(e))?,
            () = self.cancel.cancelled() => return Ok(None),
        };
        let Ok(summary) = summary else { return Ok(None) };
        info!(tables = summary.tables, rows = summary.rows, "snapshot done");
        if summary.rows == 0 {
            // Nothing stored the snapshot's completion: a heartbeat does.
            let position = Position {
                lsn: point,
                tx_id: None,
                ts_micros: event::now_micros(),
                last_commit: Some(point),
                snapshot: "false",
            };
            let record = event::heartbeat(&config, &self.shared.partition, event::stream_offset(&position));
            if self.out.send(record).await.is_err() {
                return Ok(None);
            }
        }
        Ok(Some(point))
    }

    /// Streams from the slot until stopped, reconnecting after a lost
    /// connection (up to `errors.max.retries` times in a row).
    async fn stream(&mut self, start: Lsn, resume: Option<Resume>) -> Result<Ended, TaskError> {
        let config = Arc::clone(&self.shared.config);
        let mut decoder =
            ChangeDecoder::new(Arc::clone(&config), Arc::clone(&self.shared.partition), start, resume);
        let mut failures = 0u32;
        let mut slot_busy = 0u32;
        loop {
            let result = async {
                let repl = ReplicationConnection::connect(&config.connection).await?;
                repl.start_replication(&config.slot_name, Lsn::ZERO, &config.publication_name).await
            }
            .await;
            let stream = match result {
                Ok(stream) => stream,
                Err(e) if e.code() == Some("42704") => return Ok(Ended::SlotLost),
                Err(e) if e.code() == Some("55006") => {
                    if slot_busy >= config.slot_max_retries {
                        return Err(TaskError::fatal(format!(
                            "{} (tried {} times, slot.max.retries)",
                            self.explain(e),
                            slot_busy + 1
                        )));
                    }
                    slot_busy += 1;
                    warn!(slot = %config.slot_name, attempt = slot_busy, error = %e, "replication slot in use; retrying");
                    if self.wait(config.slot_retry_delay).await {
                        return Ok(Ended::Stopped);
                    }
                    continue;
                }
                Err(e) => {
                    let error = self.explain(e);
                    if !error.is_retriable() || config.max_reconnects.is_some_and(|m| failures >= m) {
                        return Err(error);
                    }
                    failures += 1;
                    warn!(attempt = failures, error = %error, "cannot stream from PostgreSQL; retrying");
                    if self.wait(backoff(failures)).await {
                        return Ok(Ended::Stopped);
                    }
                    continue;
                }
            };
            info!(slot = %config.slot_name, "streaming changes");
            match self.read_stream(stream, &mut decoder, &mut failures).await {
                Ok(ended) => return Ok(ended),
                Err(e) if e.code() == Some("42704") => return Ok(Ended::SlotLost),
                Err(e) => {
                    let error = self.explain(e);
                    if !error.is_retriable() || config.max_reconnects.is_some_and(|m| failures >= m) {
                        return Err(error);
                    }
                    failures += 1;
                    warn!(attempt = failures, error = %error, "lost the replication stream; reconnecting");
                    decoder.reconnected();
                    if self.wait(backoff(failures)).await {
                        return Ok(Ended::Stopped);
                    }
                }
            }
        }
    }

    /// Sleeps; `true` when the task stopped meanwhile.
    async fn wait(&self, delay: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(delay) => false,
            () = self.cancel.cancelled() => true,
        }
    }

    async fn read_stream(
        &mut self,
        mut stream: ReplicationStream,
        decoder: &mut ChangeDecoder,
        failures: &mut u32,
    ) -> Result<Ended, PgError> {
        let config = Arc::clone(&self.shared.config);
        let mut status = tokio::time::interval(config.status_update_interval);
        status.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let heartbeat_every = if config.heartbeat_interval.is_zero() {
            Duration::from_secs(3600)
        } else {
            config.heartbeat_interval
        };
        let mut heartbeat = tokio::time::interval(heartbeat_every);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut records = Vec::new();
        let mut reported = Lsn::ZERO;
        loop {
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => {
                    let flushed = Lsn(self.shared.flushed.load(Ordering::Acquire));
                    let _ = stream.send_status(flushed, false).await;
                    stream.close().await;
                    return Ok(Ended::Stopped);
                }
                () = self.shared.flush_changed.notified() => {
                    let flushed = Lsn(self.shared.flushed.load(Ordering::Acquire));
                    if flushed > reported {
                        stream.send_status(flushed, false).await?;
                        reported = flushed;
                    }
                }
                _ = status.tick() => {
                    let flushed = Lsn(self.shared.flushed.load(Ordering::Acquire));
                    stream.send_status(flushed, false).await?;
                    reported = reported.max(flushed);
                }
                _ = heartbeat.tick() => {
                    if decoder.heartbeat_due() {
                        if let Some(query) = &config.heartbeat_action_query {
                            if let Err(e) = self.sql.batch_execute(query).await {
                                warn!(error = %e, query = %query, "heartbeat.action.query failed");
                            }
                        }
                        decoder.tick(&mut records);
                    }
                }
                message = stream.next() => match message? {
                    StreamMessage::XLogData { wal_start, data, .. } => {
                        decoder.set_lsn(wal_start);
                        let message = pgoutput::decode(data).map_err(|e| PgError::Protocol(e.to_string()))?;
                        decoder.handle(message, &self.sql, self.toast.as_mut(), &mut records).await?;
                        *failures = 0;
                    }
                    StreamMessage::Keepalive { wal_end, reply_requested } => {
                        decoder.keepalive(wal_end, &mut records);
                        if reply_requested {
                            let flushed = Lsn(self.shared.flushed.load(Ordering::Acquire));
                            stream.send_status(flushed, false).await?;
                        }
                    }
                },
            }
            self.prune_toast()?;
            for record in records.drain(..) {
                let point = ChangeDecoder::resume_point(&record);
                // The queue is bounded: while it is full, keep the server
                // from timing the connection out.
                let mut send = std::pin::pin!(self.out.send(record));
                loop {
                    tokio::select! {
                        sent = &mut send => {
                            if sent.is_err() {
                                return Ok(Ended::Stopped);
                            }
                            decoder.mark_sent(point);
                            break;
                        }
                        _ = status.tick() => {
                            let flushed = Lsn(self.shared.flushed.load(Ordering::Acquire));
                            stream.send_status(flushed, false).await?;
                        }
                        () = self.cancel.cancelled() => return Ok(Ended::Stopped),
                    }
                }
            }
        }
    }
}

/// 1 s, 2 s, 4 s, ... up to 30 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.saturating_sub(1).min(5)).min(Duration::from_secs(30))
}
