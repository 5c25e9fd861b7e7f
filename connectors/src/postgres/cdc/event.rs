//! Debezium's records: change events (envelope with `before`, `after`,
//! `source`, `op`), tombstones, heartbeats, and the source offsets they
//! carry.
//!
//! Source partition: `{"server": <topic.prefix>}`. Source offset while
//! streaming, after a change at LSN `l` of transaction `x`:
//! `{"lsn_proc": l, "lsn_commit": p, "lsn": l, "txId": x, "ts_usec": t}`, where `p` is the end of the last transaction
//! received complete before `x` (what may be flushed to the slot once this
//! record is stored) and `t` the commit time in µs. During a snapshot:
//! `{"last_snapshot_record": b, "lsn": <slot's consistent point>,
//! "txId": x, "ts_usec": t, "snapshot": true}`.

use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use runnel_connect::data::{Schema, SchemaBuilder, SchemaType, Struct, Value};
use runnel_connect::plugin::{SourceMap, SourceOffset, SourceRecord};
use runnel_connect::record::{ConnectRecord, Header};
use serde_json::json;

use super::config::CdcConfig;
use super::table::{source_schema, Table};
use crate::postgres::lsn::Lsn;

/// `source.version`: this connector's version in Debezium's
/// `<major>.<minor>.<patch>.<qualifier>` shape.
pub(crate) const SOURCE_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), ".Runnel");

/// Now in microseconds since the Unix epoch.
pub(crate) fn now_micros() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

/// `op`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Read,
    Create,
    Update,
    Delete,
    Truncate,
}

impl Op {
    fn code(self) -> &'static str {
        match self {
            Op::Read => "r",
            Op::Create => "c",
            Op::Update => "u",
            Op::Delete => "d",
            Op::Truncate => "t",
        }
    }
}

/// Where an event happened: what `source` says about it.
#[derive(Clone, Debug)]
pub(crate) struct Position {
    /// The change's LSN (the consistent point for snapshot rows).
    pub(crate) lsn: Lsn,
    pub(crate) tx_id: Option<u32>,
    /// Commit time (snapshot: read time), µs since the Unix epoch.
    pub(crate) ts_micros: i64,
    /// The end of the last complete transaction before this one.
    pub(crate) last_commit: Option<Lsn>,
    /// `source.snapshot`: `false` while streaming.
    pub(crate) snapshot: &'static str,
}

/// The source partition of a connector.
pub(crate) fn source_partition(config: &CdcConfig) -> Arc<SourceMap> {
    let mut map = SourceMap::new();
    map.insert("server".into(), json!(config.topic_prefix));
    Arc::new(map)
}

/// The offset's fields while streaming, with and without a transaction.
const STREAM_FIELDS: &[&str] = &["lsn_proc", "lsn_commit", "lsn", "txId", "ts_usec"];
const STREAM_FIELDS_NO_TX: &[&str] = &["lsn_proc", "lsn_commit", "lsn", "ts_usec"];

/// The streaming offset after a change: named integers, which cost no
/// allocation per record. (Debezium also stores `messageType`, which its
/// loader treats as optional; nothing here reads it.)
pub(crate) fn stream_offset(position: &Position) -> SourceOffset {
    let lsn = position.lsn.as_i64();
    let commit = position.last_commit.unwrap_or(position.lsn).as_i64();
    match position.tx_id {
        Some(x) => {
            SourceOffset::integers(STREAM_FIELDS, [lsn, commit, lsn, i64::from(x), position.ts_micros])
        }
        None => SourceOffset::integers(STREAM_FIELDS_NO_TX, [lsn, commit, lsn, position.ts_micros]),
    }
}

/// The offset of a snapshot row.
pub(crate) fn snapshot_offset(position: &Position, last: bool) -> SourceOffset {
    let mut map = SourceMap::new();
    map.insert("last_snapshot_record".into(), json!(last));
    map.insert("lsn".into(), json!(position.lsn.as_i64()));
    if let Some(x) = position.tx_id {
        map.insert("txId".into(), json!(x));
    }
    map.insert("ts_usec".into(), json!(position.ts_micros));
    map.insert("snapshot".into(), json!(true));
    SourceOffset::from(map)
}

fn source_block(config: &CdcConfig, table: Option<&Table>, position: &Position) -> Struct {
    let ts = position.ts_micros;
    // `["<last commit>","<lsn>"]`, built in one allocation.
    let mut sequence = String::with_capacity(48);
    {
        use std::fmt::Write as _;
        let _ = match position.last_commit {
            Some(l) => write!(sequence, "[\"{}\",\"{}\"]", l.0, position.lsn.0),
            None => write!(sequence, "[null,\"{}\"]", position.lsn.0),
        };
    }
    let values = vec![
        Value::String(SOURCE_VERSION.into()),
        Value::String("postgresql".into()),
        Value::String(config.topic_prefix.clone()),
        Value::Int64(ts.div_euclid(1000)),
        Value::String(position.snapshot.into()),
        Value::String(config.connection.dbname.clone()),
        Value::String(sequence),
        Value::Int64(ts),
        Value::Int64(ts.saturating_mul(1000)),
        Value::String(table.map(|t| t.schema.clone()).unwrap_or_default()),
        Value::String(table.map(|t| t.name.clone()).unwrap_or_default()),
        position.tx_id.map_or(Value::Null, |x| Value::Int64(i64::from(x))),
        Value::Int64(position.lsn.as_i64()),
        Value::Null,
    ];
    Struct::with_values(source_schema().clone(), values).expect("source values fit the source schema")
}

/// A change event: the envelope, keyed by the primary key.
#[allow(clippy::too_many_arguments)]
pub(crate) fn change(
    config: &CdcConfig,
    partition: &Arc<SourceMap>,
    table: &Table,
    op: Op,
    key: Option<Struct>,
    before: Option<Struct>,
    after: Option<Struct>,
    position: &Position,
    offset: SourceOffset,
) -> SourceRecord {
    let now = now_micros();
    let envelope = Struct::with_values(
        table.envelope_schema.clone(),
        vec![
            before.map_or(Value::Null, Value::Struct),
            after.map_or(Value::Null, Value::Struct),
            Value::Struct(source_block(config, Some(table), position)),
            Value::Null,
            Value::String(op.code().into()),
            Value::Int64(now / 1000),
            Value::Int64(now),
            Value::Int64(now.saturating_mul(1000)),
        ],
    )
    .expect("envelope values fit the envelope schema");
    let record = ConnectRecord {
        topic: table.topic.to_string(),
        key_schema: if op == Op::Truncate { None } else { table.key_schema.clone() },
        key: if op == Op::Truncate { Value::Null } else { key.map_or(Value::Null, Value::Struct) },
        value_schema: Some(table.envelope_schema.clone()),
        value: Value::Struct(envelope),
        ..ConnectRecord::default()
    };
    SourceRecord { source_partition: Arc::clone(partition), source_offset: offset, record }
}

/// The tombstone after a delete: same key, null value.
pub(crate) fn tombstone(
    partition: &Arc<SourceMap>,
    table: &Table,
    key: Struct,
    offset: SourceOffset,
) -> SourceRecord {
    let record = ConnectRecord {
        topic: table.topic.to_string(),
        key_schema: table.key_schema.clone(),
        key: Value::Struct(key),
        ..ConnectRecord::default()
    };
    SourceRecord { source_partition: Arc::clone(partition), source_offset: offset, record }
}

/// A header holding a key struct (`__debezium.newkey`, `__debezium.oldkey`).
pub(crate) fn key_header(name: &str, table: &Table, key: &Struct) -> Header {
    Header { key: name.to_string(), schema: table.key_schema.clone(), value: Value::Struct(key.clone()) }
}

fn heartbeat_schemas() -> &'static (Schema, Schema) {
    static SCHEMAS: OnceLock<(Schema, Schema)> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let key = SchemaBuilder::structure()
            .name("io.debezium.connector.common.ServerNameKey")
            .version(1)
            .field("serverName", Schema::of(SchemaType::String))
            .build()
            .expect("valid schema");
        let value = SchemaBuilder::structure()
            .name("io.debezium.connector.common.Heartbeat")
            .version(1)
            .field("ts_ms", Schema::of(SchemaType::Int64))
            .build()
            .expect("valid schema");
        (key, value)
    })
}

/// A heartbeat to `<topic.heartbeat.prefix>.<topic.prefix>`, carrying the
/// current offset so that storing it lets the slot advance.
pub(crate) fn heartbeat(
    config: &CdcConfig,
    partition: &Arc<SourceMap>,
    offset: SourceOffset,
) -> SourceRecord {
    let (key_schema, value_schema) = heartbeat_schemas();
    let key = Struct::with_values(key_schema.clone(), vec![Value::String(config.topic_prefix.clone())])
        .expect("heartbeat key");
    let value = Struct::with_values(value_schema.clone(), vec![Value::Int64(now_micros() / 1000)])
        .expect("heartbeat value");
    let record = ConnectRecord {
        topic: config.heartbeat_topic.clone(),
        kafka_partition: Some(0),
        key_schema: Some(key_schema.clone()),
        key: Value::Struct(key),
        value_schema: Some(value_schema.clone()),
        value: Value::Struct(value),
        ..ConnectRecord::default()
    };
    SourceRecord { source_partition: Arc::clone(partition), source_offset: offset, record }
}
