//! What a CDC task checks and prepares on the server before it reads:
//! `wal_level`, the REPLICATION privilege, the publication, the slot; and
//! the decision of where to start, from the stored offset and the slot.

use runnel_connect::plugin::{SourceMap, TaskError};
use tokio_postgres::Client;
use tracing::{info, warn};

use super::catalog::list_tables;
use super::config::{CdcConfig, PublicationAutocreate, SnapshotMode};
use super::stream::Resume;
use crate::postgres::conn::PgError;
use crate::postgres::lsn::Lsn;
use crate::postgres::replication::{quote_ident, quote_literal};

fn sql_error(config: &CdcConfig) -> impl Fn(tokio_postgres::Error) -> TaskError + '_ {
    move |e| PgError::from_sql(e, &config.connection.address()).explain(&config.connection)
}

/// Fails with what to fix when the server cannot do logical decoding or
/// the user may not use replication.
///
/// # Errors
/// A fatal [`TaskError`] naming the setting or privilege.
pub(crate) async fn check_server(client: &Client, config: &CdcConfig) -> Result<(), TaskError> {
    let wal_level: String = client.query_one("SHOW wal_level", &[]).await.map_err(sql_error(config))?.get(0);
    if wal_level != "logical" {
        return Err(TaskError::fatal(format!(
            "PostgreSQL at {} has wal_level={wal_level}; logical decoding needs wal_level=logical: set \
             `wal_level = logical` in postgresql.conf and restart PostgreSQL",
            config.connection.address()
        )));
    }
    let row = client
        .query_one("SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user", &[])
        .await
        .map_err(sql_error(config))?;
    if !row.get::<_, bool>(0) {
        let user = &config.connection.user;
        return Err(TaskError::fatal(format!(
            "user `{user}` may not use replication: run `ALTER ROLE {user} REPLICATION;` as a superuser"
        )));
    }
    Ok(())
}

/// The captured tables, as `schema.table`.
async fn captured_tables(client: &Client, config: &CdcConfig) -> Result<Vec<String>, TaskError> {
    let tables = list_tables(client).await.map_err(|e| e.explain(&config.connection))?;
    Ok(tables
        .into_iter()
        .map(|(_, schema, name)| format!("{schema}.{name}"))
        .filter(|name| config.tables.matches(name))
        .collect())
}

fn table_list(tables: &[String]) -> String {
    tables
        .iter()
        .map(|t| {
            let (schema, name) = t.split_once('.').unwrap_or(("public", t));
            format!("{}.{}", quote_ident(schema), quote_ident(name))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Creates or updates the publication as `publication.autocreate.mode`
/// says, then checks that it covers every captured table.
///
/// # Errors
/// A fatal [`TaskError`] when the publication is missing (mode
/// `disabled`) or leaves captured tables out.
pub(crate) async fn ensure_publication(client: &Client, config: &CdcConfig) -> Result<(), TaskError> {
    let name = &config.publication_name;
    let existing = client
        .query_opt("SELECT puballtables FROM pg_publication WHERE pubname = $1", &[name])
        .await
        .map_err(sql_error(config))?
        .map(|r| r.get::<_, bool>(0));
    let tables = captured_tables(client, config).await?;
    match (existing, config.publication_autocreate) {
        (None, PublicationAutocreate::Disabled) => {
            return Err(TaskError::fatal(format!(
                "publication `{name}` does not exist and publication.autocreate.mode=disabled: create it \
                 (CREATE PUBLICATION {} FOR TABLE ...) or set publication.autocreate.mode",
                quote_ident(name)
            )))
        }
        (None, PublicationAutocreate::AllTables) => {
            info!(publication = %name, "creating publication FOR ALL TABLES");
            let created = client
                .batch_execute(&format!("CREATE PUBLICATION {} FOR ALL TABLES", quote_ident(name)))
                .await;
            // Another connector may have created it meanwhile.
            return match created {
                Err(e)
                    if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_OBJECT)
                        || e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) =>
                {
                    Ok(())
                }
                other => other.map_err(sql_error(config)),
            };
        }
        (None, PublicationAutocreate::Filtered) => {
            let sql = if tables.is_empty() {
                format!("CREATE PUBLICATION {}", quote_ident(name))
            } else {
                format!("CREATE PUBLICATION {} FOR TABLE {}", quote_ident(name), table_list(&tables))
            };
            info!(publication = %name, tables = tables.len(), "creating publication for the captured tables");
            client.batch_execute(&sql).await.map_err(sql_error(config))?;
            return Ok(());
        }
        (Some(false), PublicationAutocreate::Filtered) if !tables.is_empty() => {
            client
                .batch_execute(&format!(
                    "ALTER PUBLICATION {} SET TABLE {}",
                    quote_ident(name),
                    table_list(&tables)
                ))
                .await
                .map_err(sql_error(config))?;
        }
        (Some(true), _) => return Ok(()),
        _ => {}
    }
    let published: Vec<String> = client
        .query("SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = $1", &[name])
        .await
        .map_err(sql_error(config))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let missing: Vec<&String> = tables.iter().filter(|t| !published.contains(t)).collect();
    if !missing.is_empty() {
        let list: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
        return Err(TaskError::fatal(format!(
            "publication `{name}` does not cover the captured tables {}: add them (ALTER PUBLICATION {} ADD TABLE ...), \
             narrow table.include.list, or set publication.autocreate.mode=filtered",
            list.join(", "),
            quote_ident(name)
        )));
    }
    Ok(())
}

/// A replication slot as `pg_replication_slots` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SlotState {
    pub(crate) plugin: Option<String>,
    pub(crate) database: Option<String>,
    pub(crate) active_pid: Option<i32>,
    pub(crate) confirmed_flush: Option<Lsn>,
}

/// The slot named in the config, if it exists.
///
/// # Errors
/// When the catalog cannot be read.
pub(crate) async fn slot_state(client: &Client, config: &CdcConfig) -> Result<Option<SlotState>, TaskError> {
    let row = client
        .query_opt(
            "SELECT plugin::text, database::text, active_pid, confirmed_flush_lsn::text FROM pg_replication_slots \
             WHERE slot_name = $1",
            &[&config.slot_name],
        )
        .await
        .map_err(sql_error(config))?;
    Ok(row.map(|r| SlotState {
        plugin: r.get(0),
        database: r.get(1),
        active_pid: r.get(2),
        confirmed_flush: r.get::<_, Option<String>>(3).and_then(|l| l.parse().ok()),
    }))
}

/// Drops the slot (it must not be in use).
///
/// # Errors
/// A retriable [`TaskError`] when a connection still uses it.
pub(crate) async fn drop_slot(client: &Client, config: &CdcConfig) -> Result<(), TaskError> {
    warn!(slot = %config.slot_name, "dropping replication slot");
    client
        .batch_execute(&format!("SELECT pg_drop_replication_slot({})", quote_literal(&config.slot_name)))
        .await
        .map_err(sql_error(config))
}

/// What a stored offset says about where the last run got to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StoredOffset {
    /// A snapshot was running and its last record was not stored.
    pub(crate) snapshot_unfinished: bool,
    /// Transactions committed before this are stored.
    pub(crate) commit: Lsn,
    /// The transaction in progress and the LSN of its last stored change.
    pub(crate) partial: Option<(u32, Lsn)>,
}

impl StoredOffset {
    /// Reads Debezium's offset keys.
    pub(crate) fn parse(map: &SourceMap) -> Option<StoredOffset> {
        let long = |k: &str| map.get(k).and_then(serde_json::Value::as_i64);
        let lsn = |k: &str| long(k).and_then(Lsn::from_i64);
        let snapshot = map.get("snapshot").and_then(serde_json::Value::as_bool).unwrap_or(false);
        let last = map.get("last_snapshot_record").and_then(serde_json::Value::as_bool).unwrap_or(false);
        let commit = lsn("lsn_commit").or_else(|| lsn("lsn"))?;
        let partial = match (long("txId"), lsn("lsn_proc")) {
            (Some(x), Some(l)) if !snapshot => Some((x as u32, l)),
            _ => None,
        };
        Some(StoredOffset { snapshot_unfinished: snapshot && !last, commit, partial })
    }
}

/// Where a task starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    /// (Re)create the slot with an exported snapshot (dropping an existing
    /// one first), read the snapshot, then stream (unless `initial_only`).
    Snapshot { drop_existing: bool },
    /// Stream from the slot; create it first (without a snapshot) if it is
    /// missing.
    Stream { create_slot: bool, resume: Option<Resume> },
    /// The snapshot is done and nothing is streamed (`initial_only`).
    Idle,
}

/// Decides where to start.
///
/// # Errors
/// A message naming the slot and both positions when the changes after
/// the stored offset are gone (slot missing, or confirmed past the
/// offset), unless `snapshot.mode=when_needed` re-snapshots.
pub(crate) fn plan(
    config: &CdcConfig,
    stored: Option<StoredOffset>,
    slot: Option<&SlotState>,
) -> Result<Plan, String> {
    let slot_name = &config.slot_name;
    if let Some(s) = slot {
        if s.plugin.as_deref().is_some_and(|p| p != "pgoutput") {
            return Err(format!(
                "replication slot `{slot_name}` uses plugin {}, not pgoutput: drop it or choose another slot.name",
                s.plugin.as_deref().unwrap_or("?")
            ));
        }
        if s.database.as_deref().is_some_and(|d| d != config.connection.dbname) {
            return Err(format!(
                "replication slot `{slot_name}` belongs to database {}, not {}: choose another slot.name",
                s.database.as_deref().unwrap_or("?"),
                config.connection.dbname
            ));
        }
    }
    let mode = config.snapshot_mode;
    let snapshot = Plan::Snapshot { drop_existing: slot.is_some() };
    let Some(stored) = stored.filter(|s| !(s.snapshot_unfinished && mode != SnapshotMode::NoData)) else {
        return Ok(match mode {
            SnapshotMode::NoData => Plan::Stream { create_slot: slot.is_none(), resume: None },
            _ => snapshot,
        });
    };
    if mode == SnapshotMode::Always {
        return Ok(snapshot);
    }
    let p = stored.commit;
    let Some(s) = slot else {
        if mode == SnapshotMode::WhenNeeded {
            warn!(slot = %slot_name, stored = %p, "replication slot is missing: taking a new snapshot (snapshot.mode=when_needed)");
            return Ok(snapshot);
        }
        return Err(format!(
            "replication slot `{slot_name}` does not exist, but the stored offset is at LSN {p}: the changes after \
             {p} are gone. Set snapshot.mode=when_needed to take a new snapshot, or delete this connector's \
             offsets to start over"
        ));
    };
    if let Some(c) = s.confirmed_flush.filter(|c| *c > p) {
        if mode == SnapshotMode::WhenNeeded {
            warn!(slot = %slot_name, stored = %p, confirmed = %c, "replication slot is ahead of the stored offset: taking a new snapshot (snapshot.mode=when_needed)");
            return Ok(snapshot);
        }
        return Err(format!(
            "replication slot `{slot_name}` has confirmed_flush_lsn {c}, ahead of the stored offset at LSN {p}: the \
             changes between them are gone (was the slot recreated, or read by another consumer?). Set \
             snapshot.mode=when_needed to take a new snapshot, or delete this connector's offsets to start over"
        ));
    }
    if mode == SnapshotMode::InitialOnly {
        return Ok(Plan::Idle);
    }
    Ok(Plan::Stream { create_slot: false, resume: Some(Resume { commit: p, partial: stored.partial }) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(mode: &str) -> CdcConfig {
        let props: HashMap<String, String> = [
            ("database.hostname", "h"),
            ("database.user", "u"),
            ("database.password", "p"),
            ("database.dbname", "shop"),
            ("topic.prefix", "s"),
            ("snapshot.mode", mode),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        CdcConfig::parse(&props, "c").unwrap()
    }

    fn slot(confirmed: u64) -> SlotState {
        SlotState {
            plugin: Some("pgoutput".into()),
            database: Some("shop".into()),
            active_pid: None,
            confirmed_flush: Some(Lsn(confirmed)),
        }
    }

    fn stored(commit: u64) -> StoredOffset {
        StoredOffset { snapshot_unfinished: false, commit: Lsn(commit), partial: Some((7, Lsn(commit + 10))) }
    }

    #[test]
    fn a_first_start_snapshots_unless_no_data() {
        assert_eq!(plan(&config("initial"), None, None), Ok(Plan::Snapshot { drop_existing: false }));
        assert_eq!(
            plan(&config("initial"), None, Some(&slot(5))),
            Ok(Plan::Snapshot { drop_existing: true })
        );
        assert_eq!(
            plan(&config("no_data"), None, None),
            Ok(Plan::Stream { create_slot: true, resume: None })
        );
        let unfinished = StoredOffset { snapshot_unfinished: true, ..stored(5) };
        assert_eq!(
            plan(&config("initial"), Some(unfinished), Some(&slot(5))),
            Ok(Plan::Snapshot { drop_existing: true })
        );
    }

    #[test]
    fn a_restart_resumes_and_a_lost_position_is_never_silent() {
        let resume = Resume { commit: Lsn(100), partial: Some((7, Lsn(110))) };
        assert_eq!(
            plan(&config("initial"), Some(stored(100)), Some(&slot(90))),
            Ok(Plan::Stream { create_slot: false, resume: Some(resume) })
        );
        let missing = plan(&config("initial"), Some(stored(100)), None).unwrap_err();
        assert!(missing.contains("`debezium` does not exist") && missing.contains("0/64"), "{missing}");
        let ahead = plan(&config("initial"), Some(stored(100)), Some(&slot(200))).unwrap_err();
        assert!(ahead.contains("0/C8") && ahead.contains("0/64"), "{ahead}");
        assert_eq!(
            plan(&config("when_needed"), Some(stored(100)), None),
            Ok(Plan::Snapshot { drop_existing: false })
        );
        assert_eq!(
            plan(&config("when_needed"), Some(stored(100)), Some(&slot(200))),
            Ok(Plan::Snapshot { drop_existing: true })
        );
        assert_eq!(
            plan(&config("always"), Some(stored(100)), Some(&slot(90))),
            Ok(Plan::Snapshot { drop_existing: true })
        );
        assert_eq!(plan(&config("initial_only"), Some(stored(100)), Some(&slot(90))), Ok(Plan::Idle));
        let other = SlotState { plugin: Some("wal2json".into()), ..slot(1) };
        assert!(plan(&config("initial"), None, Some(&other)).unwrap_err().contains("wal2json"));
    }
}
