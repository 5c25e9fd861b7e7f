//! Turns the pgoutput stream into Debezium records: transactions, table
//! schemas from Relation messages, change events, tombstones, primary-key
//! changes, truncates and heartbeats; and skips what a previous run
//! already delivered.
//!
//! # Resuming exactly
//!
//! Every change record's offset names its transaction (`txId`), its own
//! LSN (`lsn_proc`) and the end of the last transaction received complete
//! before it (`lsn_commit`). The slot is only ever confirmed up to an
//! `lsn_commit` whose record is stored, so after any crash the server
//! sends again every transaction from the first one not wholly stored. A
//! restart from a stored offset `(lsn_commit p, lsn_proc l, txId x)` then
//! drops each transaction whose commit LSN is below `p` (stored), the
//! changes of transaction `x` at or below `l` (stored before the crash),
//! and passes everything after.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use runnel_connect::plugin::{SourceMap, SourceRecord};
use tokio_postgres::Client;
use tracing::{debug, info};

use super::catalog::{describe_table, ColumnInfo, TableInfo, TypeCatalog};
use super::config::CdcConfig;
use super::event::{self, Op, Position};
use super::pgoutput::{Datum, OldImage, PgOutput, Relation};
use super::table::{ColumnSource, Table};
use super::toast::{row_key, ToastStore, Version};
use crate::postgres::conn::PgError;
use crate::postgres::lsn::Lsn;
use crate::postgres::replication::PG_EPOCH_OFFSET_MICROS;

/// Where a previous run stopped, from its stored offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Resume {
    /// Transactions committed before this are stored.
    pub(crate) commit: Lsn,
    /// The transaction in progress when the offset was written, and the
    /// LSN of its last stored change.
    pub(crate) partial: Option<(u32, Lsn)>,
}

struct Transaction {
    xid: u32,
    /// The commit LSN (Begin's final LSN): orders `toast.fill` images.
    final_lsn: Lsn,
    ts_micros: i64,
    /// Changes of this transaction at or below this LSN are skipped.
    skip_through: Option<Lsn>,
    /// The whole transaction was delivered before: skip it.
    skip_all: bool,
}

/// The decoding state of one replication stream.
pub(crate) struct ChangeDecoder {
    config: Arc<CdcConfig>,
    partition: Arc<SourceMap>,
    /// Captured tables by relation OID; `None` for tables not captured.
    tables: HashMap<u32, Option<Arc<Table>>>,
    types: TypeCatalog,
    transaction: Option<Transaction>,
    /// The end of the last transaction received complete.
    last_commit: Lsn,
    /// The position confirmed safe while idle (a keepalive's WAL end with
    /// no transaction open), for heartbeats.
    idle_position: Lsn,
    last_xid: Option<u32>,
    resume: Option<Resume>,
    last_heartbeat: Instant,
    /// The LSN of the XLogData being handled.
    current_lsn: Lsn,
    /// Where the run started from.
    initial_resume: Option<Resume>,
    /// Where the last record handed on leaves off.
    sent: Option<Resume>,
}

impl ChangeDecoder {
    /// A decoder for a stream starting after `start` (the end of the last
    /// stored transaction), skipping what `resume` says was delivered.
    pub(crate) fn new(
        config: Arc<CdcConfig>,
        partition: Arc<SourceMap>,
        start: Lsn,
        resume: Option<Resume>,
    ) -> Self {
        ChangeDecoder {
            config,
            partition,
            tables: HashMap::new(),
            types: TypeCatalog::default(),
            transaction: None,
            last_commit: start,
            idle_position: start,
            last_xid: resume.and_then(|r| r.partial.map(|p| p.0)),
            resume,
            last_heartbeat: Instant::now(),
            current_lsn: start,
            initial_resume: resume,
            sent: None,
        }
    }

    /// Handles one pgoutput message, appending the records it yields.
    ///
    /// # Errors
    /// When a Relation message's table cannot be looked up in the catalog,
    /// or a change names a relation the stream never described.
    pub(crate) async fn handle(
        &mut self,
        message: PgOutput,
        catalog: &Client,
        toast: Option<&mut ToastStore>,
        out: &mut Vec<SourceRecord>,
    ) -> Result<(), PgError> {
        match message {
            PgOutput::Begin { final_lsn, commit_time_micros, xid } => {
                let (skip_all, skip_through) = match self.resume {
                    Some(r) if final_lsn < r.commit => (true, None),
                    Some(Resume { partial: Some((x, l)), .. }) if x == xid => (false, Some(l)),
                    _ => (false, None),
                };
                if !skip_all {
                    // The first transaction not wholly stored: from here on
                    // everything is new (or partly, for this one).
                    self.resume = None;
                }
                self.transaction = Some(Transaction {
                    xid,
                    final_lsn,
                    ts_micros: commit_time_micros + PG_EPOCH_OFFSET_MICROS,
                    skip_through,
                    skip_all,
                });
            }
            PgOutput::Commit { end_lsn, .. } => {
                if let Some(t) = self.transaction.take() {
                    self.last_xid = Some(t.xid);
                }
                self.last_commit = self.last_commit.max(end_lsn);
                self.idle_position = self.idle_position.max(end_lsn);
                self.maybe_heartbeat(out);
            }
            PgOutput::Relation(relation) => self.relation(relation, catalog).await?,
            PgOutput::Type { oid, .. } => self.types.load(catalog, &[oid], true).await?,
            PgOutput::Insert { relation, new } => {
                let Some((table, position)) = self.change_context(relation)? else { return Ok(()) };
                if let Some(store) = toast {
                    if let Some(key) = row_key(&new, &table.key_columns) {
                        store.record(
                            &table.qualified_name(),
                            &key,
                            self.version(),
                            &table.column_names(),
                            &new,
                        )?;
                    }
                }
                if self.config.skipped.create {
                    return Ok(());
                }
                let key = table.key(&new, &self.config);
                let after = table.row(&new, &self.config, false);
                let offset = event::stream_offset(&position);
                out.push(event::change(
                    &self.config,
                    &self.partition,
                    &table,
                    Op::Create,
                    key,
                    None,
                    Some(after),
                    &position,
                    offset,
                ));
            }
            PgOutput::Update { relation, mut old, mut new } => {
                let Some((table, position)) = self.change_context(relation)? else { return Ok(()) };
                if let Some(store) = toast {
                    self.fill_toast(store, &table, old.as_mut(), &mut new)?;
                }
                self.update(&table, &position, old, new, out);
            }
            PgOutput::Delete { relation, old: (kind, old) } => {
                let Some((table, position)) = self.change_context(relation)? else { return Ok(()) };
                if let Some(store) = toast {
                    if let Some(key) = row_key(&old, &table.key_columns) {
                        store.deleted(&table.qualified_name(), &key, self.version());
                    }
                }
                if self.config.skipped.delete {
                    return Ok(());
                }
                let key = table.key(&old, &self.config);
                let before = table.row(&old, &self.config, kind == OldImage::Key);
                let offset = event::stream_offset(&position);
                out.push(event::change(
                    &self.config,
                    &self.partition,
                    &table,
                    Op::Delete,
                    key.clone(),
                    Some(before),
                    None,
                    &position,
                    offset.clone(),
                ));
                if self.config.tombstones_on_delete {
                    if let Some(key) = key {
                        out.push(event::tombstone(&self.partition, &table, key, offset));
                    }
                }
            }
            PgOutput::Truncate { relations, .. } => {
                for relation in relations {
                    let Some((table, position)) = self.change_context(relation)? else { continue };
                    if self.config.skipped.truncate {
                        continue;
                    }
                    let offset = event::stream_offset(&position);
                    out.push(event::change(
                        &self.config,
                        &self.partition,
                        &table,
                        Op::Truncate,
                        None,
                        None,
                        None,
                        &position,
                        offset,
                    ));
                }
            }
            PgOutput::Origin | PgOutput::Message { .. } => {}
        }
        Ok(())
    }

    /// Where the change being handled sits in commit order.
    fn version(&self) -> Version {
        Version {
            commit: self.transaction.as_ref().map_or(Lsn::ZERO, |t| t.final_lsn),
            change: self.current_lsn,
        }
    }

    /// `toast.fill`: fills the unchanged values of an update's images from
    /// the row's last image, and keeps the new image (under the new key
    /// when the key changed, forgetting the old one).
    fn fill_toast(
        &self,
        store: &mut ToastStore,
        table: &Table,
        old: Option<&mut (OldImage, Vec<Datum>)>,
        new: &mut [Datum],
    ) -> Result<(), PgError> {
        let name = table.qualified_name();
        let names = table.column_names();
        let version = self.version();
        let new_key = row_key(new, &table.key_columns);
        let old_key = old.as_ref().and_then(|(_, image)| row_key(image, &table.key_columns));
        // The row's history is under its key before this change.
        let Some(history) = old_key.clone().or_else(|| new_key.clone()) else { return Ok(()) };
        store.fill(&name, &history, version, &names, new)?;
        if let Some((_, image)) = old {
            store.fill(&name, &history, version, &names, image)?;
        }
        if let Some(new_key) = new_key {
            if old_key.as_ref().is_some_and(|o| *o != new_key) {
                store.deleted(&name, &history, version);
            }
            store.record(&name, &new_key, version, &names, new)?;
        }
        Ok(())
    }

    fn update(
        &self,
        table: &Arc<Table>,
        position: &Position,
        old: Option<(OldImage, Vec<Datum>)>,
        new: Vec<Datum>,
        out: &mut Vec<SourceRecord>,
    ) {
        let config = &self.config;
        let new_key = table.key(&new, config);
        let old_key = old.as_ref().and_then(|(_, image)| table.key(image, config));
        let key_changed = match (&old_key, &new_key) {
            (Some(o), Some(n)) => o != n,
            _ => false,
        };
        let after = table.row(&new, config, false);
        if !key_changed {
            if config.skipped.update {
                return;
            }
            let before = old.map(|(kind, image)| table.row(&image, config, kind == OldImage::Key));
            let offset = event::stream_offset(position);
            out.push(event::change(
                config,
                &self.partition,
                table,
                Op::Update,
                new_key,
                before,
                Some(after),
                position,
                offset,
            ));
            return;
        }
        // A primary-key change: delete (old key) + tombstone + create (new
        // key), as Debezium emits it, each pointing at the other key.
        let (old_key, new_key) = (old_key.expect("changed key"), new_key.expect("changed key"));
        let (kind, image) = old.expect("an old image with the old key");
        let offset = event::stream_offset(position);
        if !config.skipped.delete {
            let before = table.row(&image, config, kind == OldImage::Key);
            let mut delete = event::change(
                config,
                &self.partition,
                table,
                Op::Delete,
                Some(old_key.clone()),
                Some(before),
                None,
                position,
                offset.clone(),
            );
            delete.record.headers.push(event::key_header("__debezium.newkey", table, &new_key));
            out.push(delete);
            if config.tombstones_on_delete {
                out.push(event::tombstone(&self.partition, table, old_key.clone(), offset.clone()));
            }
        }
        if !config.skipped.create {
            let mut create = event::change(
                config,
                &self.partition,
                table,
                Op::Create,
                Some(new_key),
                None,
                Some(after),
                position,
                offset,
            );
            create.record.headers.push(event::key_header("__debezium.oldkey", table, &old_key));
            out.push(create);
        }
    }

    /// The table and position of a change at the stream's current LSN;
    /// `None` when it is not captured or was delivered before.
    fn change_context(&mut self, relation: u32) -> Result<Option<(Arc<Table>, Position)>, PgError> {
        let Some(entry) = self.tables.get(&relation) else {
            return Err(PgError::Protocol(format!(
                "a change for relation {relation}, which the stream never described"
            )));
        };
        let Some(table) = entry.clone() else { return Ok(None) };
        let Some(t) = &self.transaction else {
            return Err(PgError::Protocol("a change outside a transaction".into()));
        };
        if t.skip_all {
            return Ok(None);
        }
        let lsn = self.current_lsn;
        if t.skip_through.is_some_and(|through| lsn <= through) {
            return Ok(None);
        }
        Ok(Some((
            table,
            Position {
                lsn,
                tx_id: Some(t.xid),
                ts_micros: t.ts_micros,
                last_commit: Some(self.last_commit),
                snapshot: "false",
            },
        )))
    }

    async fn relation(&mut self, relation: Relation, catalog: &Client) -> Result<(), PgError> {
        let name = format!("{}.{}", relation.namespace, relation.name);
        if !self.config.tables.matches(&name) {
            self.tables.insert(relation.oid, None);
            return Ok(());
        }
        let oids: Vec<u32> = relation.columns.iter().map(|c| c.type_oid).collect();
        self.types.load(catalog, &oids, false).await?;
        let info = match describe_table(catalog, relation.oid).await? {
            Some(info) => info,
            // Dropped since the change was written: what the stream says
            // is all there is (nullable columns, the key from the flags).
            None => TableInfo {
                oid: relation.oid,
                schema: relation.namespace.clone(),
                name: relation.name.clone(),
                replica_identity: relation.replica_identity,
                columns: Vec::<ColumnInfo>::new(),
                primary_key: if relation.replica_identity == b'd' {
                    relation.columns.iter().filter(|c| c.key).map(|c| c.name.clone()).collect()
                } else {
                    Vec::new()
                },
            },
        };
        let columns: Vec<ColumnSource<'_>> = relation
            .columns
            .iter()
            .map(|c| ColumnSource { name: &c.name, type_oid: c.type_oid, type_modifier: c.type_modifier })
            .collect();
        let table = Table::build(&self.config, &info, &columns, &self.types);
        let changed = self.tables.get(&relation.oid).is_some_and(Option::is_some);
        if changed {
            info!(table = %name, columns = table.columns.len(), "table schema changed in the stream");
        } else {
            debug!(table = %name, columns = table.columns.len(), "table described by the stream");
        }
        self.tables.insert(relation.oid, Some(Arc::new(table)));
        Ok(())
    }

    /// Notes where the stream is: the LSN of the XLogData being handled.
    pub(crate) fn set_lsn(&mut self, lsn: Lsn) {
        if lsn != Lsn::ZERO {
            self.current_lsn = lsn;
        }
    }

    /// A keepalive: with no transaction open, everything before `wal_end`
    /// has been received.
    pub(crate) fn keepalive(&mut self, wal_end: Lsn, out: &mut Vec<SourceRecord>) {
        if self.transaction.is_none() && self.resume.is_none() {
            self.idle_position = self.idle_position.max(wal_end);
        }
        self.maybe_heartbeat(out);
    }

    /// A timer tick: a heartbeat if one is due.
    pub(crate) fn tick(&mut self, out: &mut Vec<SourceRecord>) {
        self.maybe_heartbeat(out);
    }

    /// Whether a heartbeat is due (the caller runs `heartbeat.action.query`
    /// first, then calls [`ChangeDecoder::tick`]).
    pub(crate) fn heartbeat_due(&self) -> bool {
        !self.config.heartbeat_interval.is_zero()
            && self.transaction.is_none()
            && self.last_heartbeat.elapsed() >= self.config.heartbeat_interval
    }

    fn maybe_heartbeat(&mut self, out: &mut Vec<SourceRecord>) {
        if !self.heartbeat_due() {
            return;
        }
        self.last_heartbeat = Instant::now();
        out.push(self.heartbeat_record());
    }

    /// A heartbeat carrying the current position: once stored, the slot
    /// may be confirmed up to it.
    pub(crate) fn heartbeat_record(&self) -> SourceRecord {
        let at = self.idle_position.max(self.last_commit);
        let position = Position {
            lsn: at,
            tx_id: self.last_xid,
            ts_micros: event::now_micros(),
            last_commit: Some(at),
            snapshot: "false",
        };
        event::heartbeat(&self.config, &self.partition, event::stream_offset(&position))
    }

    /// Where a record leaves off, from its offset (`None` for snapshot
    /// records and offsets without a position).
    pub(crate) fn resume_point(record: &SourceRecord) -> Option<Resume> {
        let offset = &record.source_offset;
        let commit = offset.get("lsn_commit")?.as_u64().map(Lsn)?;
        let tx = offset.get("txId").and_then(|x| x.as_u64());
        let lsn = offset.get("lsn_proc").and_then(|l| l.as_u64()).map(Lsn);
        Some(Resume { commit, partial: tx.zip(lsn).map(|(x, l)| (x as u32, l)) })
    }

    /// A record was handed on (queued for the worker).
    pub(crate) fn mark_sent(&mut self, point: Option<Resume>) {
        if point.is_some() {
            self.sent = point;
        }
    }

    /// The connection was lost: the server will send again from the slot's
    /// confirmed position, so skip what was handed on before, forget the
    /// transaction in progress, and expect the tables to be described again.
    pub(crate) fn reconnected(&mut self) {
        self.transaction = None;
        self.tables.clear();
        self.resume = self.sent.or(self.initial_resume);
        if let Some(r) = self.resume {
            self.last_commit = r.commit;
            self.idle_position = r.commit;
        }
    }
}
