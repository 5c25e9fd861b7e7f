//! The initial snapshot: every captured table read in one REPEATABLE READ
//! transaction that imported the slot's exported snapshot, so it sees
//! exactly the transactions committed before the slot's consistent point
//! and the stream delivers exactly the ones after.
//!
//! Rows are read through a cursor, `snapshot.fetch.size` at a time, in
//! text form (the same output functions pgoutput uses), and handed on
//! through a bounded channel, so a large table never sits in memory.

use std::sync::Arc;

use bytes::Bytes;
use runnel_connect::plugin::{SourceMap, SourceRecord};
use tokio::sync::mpsc;
use tokio_postgres::{Client, SimpleQueryMessage};
use tracing::info;

use super::catalog::{describe_table, list_tables, TypeCatalog};
use super::config::CdcConfig;
use super::event::{self, Op, Position};
use super::pgoutput::Datum;
use super::table::{ColumnSource, Table};
use super::toast::{row_key, ToastStore, Version};
use crate::postgres::conn::PgError;
use crate::postgres::lsn::Lsn;
use crate::postgres::replication::{quote_ident, quote_literal};

/// The record channel closed: the task is stopping.
#[derive(Debug)]
pub(crate) struct Stopped;

/// Starts the snapshot transaction on `client` with the exported
/// snapshot. Once this returns, the replication connection that exported
/// it may be used (or closed) again.
///
/// # Errors
/// When the snapshot cannot be imported (it is gone because the exporting
/// connection sent a command or closed).
pub(crate) async fn begin(client: &Client, snapshot_name: &str) -> Result<(), PgError> {
    client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
            quote_literal(snapshot_name)
        ))
        .await
        .map_err(|e| PgError::from_sql(e, "snapshot"))
}

/// What a snapshot read.
#[derive(Debug, Default)]
pub(crate) struct SnapshotSummary {
    pub(crate) tables: usize,
    pub(crate) rows: u64,
}

/// Reads every captured table inside the transaction [`begin`] opened and
/// sends one `r` event per row, then commits. With `toast`, the store
/// starts over and keeps every row's image. The last record's offset
/// says `last_snapshot_record: true`: storing it marks the snapshot done.
///
/// # Errors
/// A database error; `Ok(Err(Stopped))` when the channel closed.
pub(crate) async fn read(
    config: &Arc<CdcConfig>,
    partition: &Arc<SourceMap>,
    client: &Client,
    consistent_point: Lsn,
    mut toast: Option<&mut ToastStore>,
    out: &mpsc::Sender<SourceRecord>,
) -> Result<Result<SnapshotSummary, Stopped>, PgError> {
    if let Some(store) = toast.as_deref_mut() {
        store.clear()?;
    }
    let sql = |e| PgError::from_sql(e, "snapshot");
    let xmin: Option<String> = client
        .query_one("SELECT pg_snapshot_xmin(pg_current_snapshot())::text", &[])
        .await
        .map_err(sql)?
        .get(0);
    let tx_id = xmin.and_then(|x| x.parse::<u64>().ok()).map(|x| x as u32);
    let tables: Vec<_> = list_tables(client)
        .await?
        .into_iter()
        .filter(|(_, schema, name)| config.tables.matches(&format!("{schema}.{name}")))
        .collect();
    let mut types = TypeCatalog::default();
    let mut summary = SnapshotSummary::default();
    // One record is held back until the next is known, so that the last
    // rows of a table and of the snapshot get their markers.
    let mut pending: Option<(Arc<Table>, Vec<Datum>, &'static str, i64)> = None;
    let emit = |pending: (Arc<Table>, Vec<Datum>, &'static str, i64), last: bool| {
        let (table, row, marker, ts) = pending;
        let position =
            Position { lsn: consistent_point, tx_id, ts_micros: ts, last_commit: None, snapshot: marker };
        let key = table.key(&row, config);
        let after = table.row(&row, config, false);
        let offset = event::snapshot_offset(&position, last);
        event::change(config, partition, &table, Op::Read, key, None, Some(after), &position, offset)
    };
    for (index, (oid, schema, name)) in tables.iter().enumerate() {
        let Some(info) = describe_table(client, *oid).await? else { continue };
        let oids: Vec<u32> = info.columns.iter().map(|c| c.type_oid).collect();
        types.load(client, &oids, false).await?;
        let columns: Vec<ColumnSource<'_>> = info
            .columns
            .iter()
            .map(|c| ColumnSource { name: &c.name, type_oid: c.type_oid, type_modifier: c.type_modifier })
            .collect();
        let table = Arc::new(Table::build(config, &info, &columns, &types));
        if table.columns.is_empty() {
            continue;
        }
        let list: Vec<String> = table.columns.iter().map(|c| quote_ident(&c.name)).collect();
        client
            .batch_execute(&format!(
                "DECLARE runnel_snapshot NO SCROLL CURSOR FOR SELECT {} FROM {}.{}",
                list.join(", "),
                quote_ident(schema),
                quote_ident(name)
            ))
            .await
            .map_err(sql)?;
        let fetch = format!("FETCH {} FROM runnel_snapshot", config.snapshot_fetch_size);
        let mut rows_in_table = 0u64;
        loop {
            let messages = client.simple_query(&fetch).await.map_err(sql)?;
            let mut fetched = 0;
            for message in messages {
                let SimpleQueryMessage::Row(row) = message else { continue };
                fetched += 1;
                let datums: Vec<Datum> = (0..row.len())
                    .map(|i| match row.get(i) {
                        Some(text) => Datum::Text(Bytes::copy_from_slice(text.as_bytes())),
                        None => Datum::Null,
                    })
                    .collect();
                if let Some(store) = toast.as_deref_mut() {
                    if let Some(key) = row_key(&datums, &table.key_columns) {
                        let version = Version { commit: consistent_point, change: Lsn::ZERO };
                        store.record(
                            &table.qualified_name(),
                            &key,
                            version,
                            &table.column_names(),
                            &datums,
                        )?;
                    }
                }
                let marker = match (rows_in_table, summary.rows) {
                    (0, 0) => "first",
                    (0, _) => "first_in_data_collection",
                    _ => "true",
                };
                rows_in_table += 1;
                summary.rows += 1;
                if let Some(mut previous) = pending.take() {
                    if !Arc::ptr_eq(&previous.0, &table) {
                        previous.2 = "last_in_data_collection";
                    }
                    if out.send(emit(previous, false)).await.is_err() {
                        return Ok(Err(Stopped));
                    }
                }
                pending = Some((Arc::clone(&table), datums, marker, event::now_micros()));
            }
            if fetched == 0 {
                break;
            }
        }
        client.batch_execute("CLOSE runnel_snapshot").await.map_err(sql)?;
        summary.tables += 1;
        info!(table = %table.qualified_name(), rows = rows_in_table, progress = %format!("{}/{}", index + 1, tables.len()), "table snapshot read");
    }
    client.batch_execute("COMMIT").await.map_err(sql)?;
    if let Some(mut last) = pending.take() {
        last.2 = "last";
        if out.send(emit(last, true)).await.is_err() {
            return Ok(Err(Stopped));
        }
    }
    Ok(Ok(summary))
}
