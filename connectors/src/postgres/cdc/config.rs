//! The CDC source's configuration: Debezium's PostgreSQL connector keys,
//! with Debezium's defaults except where noted.
//!
//! Differences from Debezium, on purpose:
//! - `heartbeat.interval.ms` defaults to 10000 (Debezium: 0, off), so an
//!   idle captured database does not hold WAL on the server without bound;
//! - `plugin.name` accepts only `pgoutput` (built into PostgreSQL ≥ 10);
//!   `decoderbufs` needs a server plugin Debezium ships;
//! - `database.sslmode` follows libpq (`postgres/tls.rs`), with
//!   `database.sslrootcert`, `database.sslcert` and `database.sslkey` as
//!   PEM files; `allow` connects without TLS;
//! - `toast.fill` (ours): fill unchanged TOASTed values from the last row
//!   image emitted for the key instead of the placeholder (a RocksDB store
//!   under the worker's `state.dir`; see `toast.rs`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use regex::{Regex, RegexBuilder};
use runnel_connect::config_def::{ConfigDef, ConfigError, ConfigType, Importance, ParsedConfig, Validator};

use super::types::{BinaryMode, DecimalMode, IntervalMode, TimePrecisionMode, TypeModes};
use crate::postgres::conn::ConnectionSettings;
use crate::postgres::tls::{SslMode, TlsSettings};

/// `snapshot.mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SnapshotMode {
    /// Snapshot when there is no stored offset (or the last snapshot did
    /// not finish), then stream.
    Initial,
    /// Snapshot as `initial`, then stop (no streaming).
    InitialOnly,
    /// Never snapshot; stream from the slot.
    NoData,
    /// Snapshot at every start, then stream.
    Always,
    /// As `initial`, and also when the stored position is no longer
    /// available on the server (slot lost or ahead of the offset).
    WhenNeeded,
}

/// `publication.autocreate.mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PublicationAutocreate {
    /// Create `FOR ALL TABLES` when missing.
    AllTables,
    /// Create or set the publication to the captured tables.
    Filtered,
    /// The publication must exist.
    Disabled,
}

/// Operations not emitted (`skipped.operations`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SkippedOperations {
    pub(crate) create: bool,
    pub(crate) update: bool,
    pub(crate) delete: bool,
    pub(crate) truncate: bool,
}

/// Include or exclude regex lists, matched case-insensitively against the
/// whole identifier (`schema.table`, `schema.table.column`), as Debezium
/// does.
#[derive(Clone, Debug, Default)]
pub(crate) struct NameFilter {
    include: Option<Vec<Regex>>,
    exclude: Vec<Regex>,
}

impl NameFilter {
    pub(crate) fn matches(&self, name: &str) -> bool {
        let included = self.include.as_ref().is_none_or(|list| list.iter().any(|r| r.is_match(name)));
        included && !self.exclude.iter().any(|r| r.is_match(name))
    }
}

/// The parsed configuration of one connector.
#[derive(Clone, Debug)]
pub(crate) struct CdcConfig {
    pub(crate) connection: ConnectionSettings,
    pub(crate) topic_prefix: String,
    pub(crate) slot_name: String,
    pub(crate) publication_name: String,
    pub(crate) publication_autocreate: PublicationAutocreate,
    pub(crate) tables: NameFilter,
    pub(crate) columns: NameFilter,
    pub(crate) snapshot_mode: SnapshotMode,
    pub(crate) snapshot_fetch_size: usize,
    pub(crate) tombstones_on_delete: bool,
    pub(crate) skipped: SkippedOperations,
    pub(crate) modes: TypeModes,
    /// Zero: no heartbeats.
    pub(crate) heartbeat_interval: Duration,
    pub(crate) heartbeat_topic: String,
    pub(crate) heartbeat_action_query: Option<String>,
    pub(crate) slot_drop_on_stop: bool,
    pub(crate) max_batch_size: usize,
    pub(crate) max_queue_size: usize,
    pub(crate) poll_interval: Duration,
    pub(crate) unavailable_value_placeholder: String,
    /// `toast.fill` (ours): fill unchanged TOASTed values from the last
    /// row image emitted for the key.
    pub(crate) toast_fill: bool,
    pub(crate) status_update_interval: Duration,
    /// `None`: reconnect without limit.
    pub(crate) max_reconnects: Option<u32>,
    pub(crate) slot_max_retries: u32,
    pub(crate) slot_retry_delay: Duration,
}

const REGEX_LIST_KEYS: [&str; 4] =
    ["table.include.list", "table.exclude.list", "column.include.list", "column.exclude.list"];

/// The TLS keys, when `database.sslmode` is valid (the config def
/// reports an invalid one).
fn tls_settings<'a>(get: &impl Fn(&str) -> Option<&'a str>) -> Option<TlsSettings> {
    let mode = SslMode::parse(get("database.sslmode").unwrap_or("prefer"))?;
    let path = |k: &str| get(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    Some(TlsSettings {
        mode,
        root_cert: path("database.sslrootcert"),
        client_cert: path("database.sslcert"),
        client_key: path("database.sslkey"),
    })
}

/// Every key the connector takes.
pub(crate) fn config_def() -> ConfigDef {
    let positive = Validator::Range { min: Some(1.0), max: None };
    let non_negative = Validator::Range { min: Some(0.0), max: None };
    ConfigDef::new()
        .define("database.hostname", ConfigType::String, Importance::High, "PostgreSQL server host.")
        .validate(Validator::NonEmpty)
        .define_with_default(
            "database.port",
            ConfigType::Int,
            5432,
            Importance::High,
            "PostgreSQL server port.",
        )
        .validate(Validator::Range { min: Some(1.0), max: Some(65535.0) })
        .define(
            "database.user",
            ConfigType::String,
            Importance::High,
            "User to connect as (needs REPLICATION).",
        )
        .validate(Validator::NonEmpty)
        .define("database.password", ConfigType::Password, Importance::High, "Password of database.user.")
        .define("database.dbname", ConfigType::String, Importance::High, "The database to capture.")
        .validate(Validator::NonEmpty)
        .define_with_default(
            "database.sslmode",
            ConfigType::String,
            "prefer",
            Importance::Medium,
            "TLS as libpq's sslmode: disable, allow, prefer, require, verify-ca or verify-full.",
        )
        .validate(Validator::one_of(&["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]))
        .define_optional(
            "database.sslrootcert",
            ConfigType::String,
            Importance::Medium,
            "PEM file of the CA certificates the server's certificate is checked against.",
        )
        .define_optional(
            "database.sslcert",
            ConfigType::String,
            Importance::Low,
            "PEM file of the client certificate.",
        )
        .define_optional(
            "database.sslkey",
            ConfigType::String,
            Importance::Low,
            "PEM file of the client key.",
        )
        .define(
            "topic.prefix",
            ConfigType::String,
            Importance::High,
            "Logical server name: prefixes topics (<prefix>.<schema>.<table>) and schema names.",
        )
        .validate(Validator::NonEmpty)
        .define_with_default(
            "plugin.name",
            ConfigType::String,
            "pgoutput",
            Importance::Medium,
            "Logical decoding plugin: pgoutput.",
        )
        .define_with_default(
            "slot.name",
            ConfigType::String,
            "debezium",
            Importance::Medium,
            "Replication slot name.",
        )
        .validate(Validator::NonEmpty)
        .define_with_default(
            "publication.name",
            ConfigType::String,
            "dbz_publication",
            Importance::Medium,
            "Publication pgoutput streams.",
        )
        .validate(Validator::NonEmpty)
        .define_with_default(
            "publication.autocreate.mode",
            ConfigType::String,
            "all_tables",
            Importance::Medium,
            "all_tables, filtered or disabled.",
        )
        .validate(Validator::one_of(&["all_tables", "filtered", "disabled"]))
        .define_optional(
            "table.include.list",
            ConfigType::List,
            Importance::Medium,
            "Regexes of schema.table to capture.",
        )
        .define_optional(
            "table.exclude.list",
            ConfigType::List,
            Importance::Medium,
            "Regexes of schema.table to skip.",
        )
        .define_optional(
            "column.include.list",
            ConfigType::List,
            Importance::Medium,
            "Regexes of schema.table.column to emit.",
        )
        .define_optional(
            "column.exclude.list",
            ConfigType::List,
            Importance::Medium,
            "Regexes of schema.table.column to leave out.",
        )
        .define_with_default(
            "snapshot.mode",
            ConfigType::String,
            "initial",
            Importance::Medium,
            "initial, initial_only, no_data (or never), always, when_needed.",
        )
        .validate(Validator::one_of(&[
            "initial",
            "initial_only",
            "no_data",
            "never",
            "always",
            "when_needed",
        ]))
        .define_with_default(
            "snapshot.fetch.size",
            ConfigType::Int,
            10240,
            Importance::Low,
            "Rows fetched per round trip in a snapshot.",
        )
        .validate(positive.clone())
        .define_with_default(
            "tombstones.on.delete",
            ConfigType::Boolean,
            true,
            Importance::Medium,
            "Follow each delete with a tombstone.",
        )
        .define_with_default(
            "skipped.operations",
            ConfigType::List,
            vec!["t".to_string()],
            Importance::Low,
            "Operations not emitted: c, u, d, t, or none.",
        )
        .define_with_default(
            "decimal.handling.mode",
            ConfigType::String,
            "precise",
            Importance::Medium,
            "precise, double or string.",
        )
        .validate(Validator::one_of(&["precise", "double", "string"]))
        .define_with_default(
            "time.precision.mode",
            ConfigType::String,
            "adaptive",
            Importance::Medium,
            "adaptive, adaptive_time_microseconds or connect.",
        )
        .validate(Validator::one_of(&["adaptive", "adaptive_time_microseconds", "connect"]))
        .define_with_default(
            "binary.handling.mode",
            ConfigType::String,
            "bytes",
            Importance::Low,
            "bytes, base64, base64-url-safe or hex.",
        )
        .validate(Validator::one_of(&["bytes", "base64", "base64-url-safe", "hex"]))
        .define_with_default(
            "interval.handling.mode",
            ConfigType::String,
            "numeric",
            Importance::Low,
            "numeric (MicroDuration) or string (ISO 8601).",
        )
        .validate(Validator::one_of(&["numeric", "string"]))
        .define_with_default(
            "money.fraction.digits",
            ConfigType::Int,
            2,
            Importance::Low,
            "Scale of money values.",
        )
        .validate(non_negative.clone())
        .define_with_default(
            "heartbeat.interval.ms",
            ConfigType::Int,
            10000,
            Importance::Medium,
            "Heartbeat period (0: off). Default 10000, unlike Debezium's 0.",
        )
        .validate(non_negative.clone())
        .define_with_default(
            "topic.heartbeat.prefix",
            ConfigType::String,
            "__debezium-heartbeat",
            Importance::Low,
            "Heartbeat topic: <prefix>.<topic.prefix>.",
        )
        .define_optional(
            "heartbeat.action.query",
            ConfigType::String,
            Importance::Low,
            "SQL run before each heartbeat.",
        )
        .define_with_default(
            "slot.drop.on.stop",
            ConfigType::Boolean,
            false,
            Importance::Low,
            "Drop the slot when the task stops cleanly.",
        )
        .define_with_default(
            "max.batch.size",
            ConfigType::Int,
            2048,
            Importance::Low,
            "Most records per poll.",
        )
        .validate(positive.clone())
        .define_with_default(
            "max.queue.size",
            ConfigType::Int,
            8192,
            Importance::Low,
            "Most records buffered between the stream and the worker.",
        )
        .validate(positive.clone())
        .define_with_default(
            "poll.interval.ms",
            ConfigType::Int,
            500,
            Importance::Low,
            "Longest wait of an empty poll.",
        )
        .validate(positive.clone())
        .define_with_default(
            "unavailable.value.placeholder",
            ConfigType::String,
            "__debezium_unavailable_value",
            Importance::Low,
            "Emitted for unchanged TOASTed values.",
        )
        .define_with_default(
            "toast.fill",
            ConfigType::Boolean,
            false,
            Importance::Low,
            "Fill unchanged TOASTed values from the last row emitted for the key (RocksDB store).",
        )
        .define_with_default(
            "errors.max.retries",
            ConfigType::Int,
            -1,
            Importance::Low,
            "Reconnects after a lost connection before the task fails (-1: no limit).",
        )
        .validate(Validator::Range { min: Some(-1.0), max: None })
        .define_with_default(
            "slot.max.retries",
            ConfigType::Int,
            6,
            Importance::Low,
            "Attempts to get a slot another connection holds.",
        )
        .validate(non_negative.clone())
        .define_with_default(
            "slot.retry.delay.ms",
            ConfigType::Int,
            10000,
            Importance::Low,
            "Wait between attempts to get a held slot.",
        )
        .validate(non_negative.clone())
        .define_with_default(
            "status.update.interval.ms",
            ConfigType::Int,
            10000,
            Importance::Low,
            "How often the flushed position is reported to the server.",
        )
        .validate(positive)
}

/// Checks across keys and beyond types: each error names its key.
pub(crate) fn validate(props: &HashMap<String, String>) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let get = |k: &str| props.get(k).map(|v| v.trim());
    if let Some(plugin) = get("plugin.name") {
        if plugin != "pgoutput" {
            let reason = match plugin {
                "decoderbufs" => {
                    "decoderbufs needs a server-side plugin; use pgoutput, built into PostgreSQL 10 and later"
                }
                "wal2json" => "wal2json was removed from Debezium 2.0; use pgoutput",
                _ => "only pgoutput is supported",
            };
            errors.push(ConfigError::invalid("plugin.name", plugin, reason));
        }
    }
    if let Some(tls) = tls_settings(&get) {
        // Certificate files are read now, so a wrong path fails validation.
        if let Err(message) = tls.client_config() {
            let key = ["database.sslrootcert", "database.sslcert", "database.sslkey"]
                .into_iter()
                .find(|k| message.starts_with(k))
                .unwrap_or("database.sslmode");
            let value = get(key).unwrap_or_default();
            errors.push(ConfigError::invalid(key, value, message));
        }
    }
    if let Some(prefix) = get("topic.prefix") {
        if !prefix.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
            errors.push(ConfigError::invalid(
                "topic.prefix",
                prefix,
                "only letters, digits, '.', '_' and '-' are allowed",
            ));
        }
    }
    if let Some(slot) = get("slot.name") {
        if !slot.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') || slot.len() > 63
        {
            errors.push(ConfigError::invalid(
                "slot.name",
                slot,
                "a slot name has at most 63 lower-case letters, digits and underscores",
            ));
        }
    }
    for key in REGEX_LIST_KEYS {
        if let Some(list) = get(key) {
            for pattern in split_list(list) {
                if let Err(e) = anchored(&pattern) {
                    errors.push(ConfigError::invalid(
                        key,
                        &pattern,
                        format!("not a regular expression: {e}"),
                    ));
                }
            }
        }
    }
    for (include, exclude) in
        [("table.include.list", "table.exclude.list"), ("column.include.list", "column.exclude.list")]
    {
        if get(include).is_some_and(|v| !v.is_empty()) && get(exclude).is_some_and(|v| !v.is_empty()) {
            errors.push(ConfigError::invalid(
                exclude,
                get(exclude).unwrap_or(""),
                format!("set {include} or {exclude}, not both"),
            ));
        }
    }
    if let Some(ops) = get("skipped.operations") {
        for op in split_list(ops) {
            if !matches!(op.as_str(), "c" | "u" | "d" | "t" | "none") {
                errors.push(ConfigError::invalid(
                    "skipped.operations",
                    &op,
                    "operations are c, u, d, t or none",
                ));
            }
        }
    }
    let int = |k: &str, default: i64| get(k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(default);
    if int("max.queue.size", 8192) <= int("max.batch.size", 2048) {
        errors.push(ConfigError::invalid(
            "max.queue.size",
            &int("max.queue.size", 8192).to_string(),
            "must be larger than max.batch.size",
        ));
    }
    errors
}

/// Items of a comma-separated list; `\,` is a literal comma (Debezium's rule).
fn split_list(list: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut item = String::new();
    let mut chars = list.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&',') => {
                item.push(',');
                chars.next();
            }
            ',' => items.push(std::mem::take(&mut item)),
            c => item.push(c),
        }
    }
    items.push(item);
    items.into_iter().map(|i| i.trim().to_string()).filter(|i| !i.is_empty()).collect()
}

fn anchored(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(&format!("^(?:{pattern})$")).case_insensitive(true).build()
}

fn filter(props: &HashMap<String, String>, include: &str, exclude: &str) -> Result<NameFilter, ConfigError> {
    let list = |key: &str| -> Result<Option<Vec<Regex>>, ConfigError> {
        let Some(raw) = props.get(key) else { return Ok(None) };
        let items = split_list(raw);
        if items.is_empty() {
            return Ok(None);
        }
        items
            .iter()
            .map(|p| {
                anchored(p)
                    .map_err(|e| ConfigError::invalid(key, p, format!("not a regular expression: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    };
    Ok(NameFilter { include: list(include)?, exclude: list(exclude)?.unwrap_or_default() })
}

impl CdcConfig {
    /// Parses and checks a connector's config.
    ///
    /// # Errors
    /// The first bad key, named.
    pub(crate) fn parse(props: &HashMap<String, String>, connector: &str) -> Result<CdcConfig, ConfigError> {
        let parsed = config_def().parse(props)?;
        if let Some(e) = validate(props).into_iter().next() {
            return Err(e);
        }
        let s = |k: &str| parsed.get_string(k).unwrap_or_default().to_string();
        let int = |k: &str| parsed.get_int(k).unwrap_or_default();
        let mode = |k: &str| s(k).to_ascii_lowercase();
        let skipped = parsed.get_list("skipped.operations").unwrap_or_default();
        let has = |op: &str| skipped.iter().any(|o| o.trim() == op);
        let topic_prefix = s("topic.prefix");
        Ok(CdcConfig {
            connection: ConnectionSettings {
                host: s("database.hostname"),
                port: int("database.port") as u16,
                user: s("database.user"),
                password: password(&parsed),
                dbname: s("database.dbname"),
                application_name: format!("runnel-cdc {connector}"),
                tls: tls_settings(&|k: &str| props.get(k).map(|v| v.trim())).unwrap_or_default(),
            },
            heartbeat_topic: format!("{}.{topic_prefix}", s("topic.heartbeat.prefix")),
            topic_prefix,
            slot_name: s("slot.name"),
            publication_name: s("publication.name"),
            publication_autocreate: match mode("publication.autocreate.mode").as_str() {
                "filtered" => PublicationAutocreate::Filtered,
                "disabled" => PublicationAutocreate::Disabled,
                _ => PublicationAutocreate::AllTables,
            },
            tables: filter(props, "table.include.list", "table.exclude.list")?,
            columns: filter(props, "column.include.list", "column.exclude.list")?,
            snapshot_mode: match mode("snapshot.mode").as_str() {
                "initial_only" => SnapshotMode::InitialOnly,
                "no_data" | "never" => SnapshotMode::NoData,
                "always" => SnapshotMode::Always,
                "when_needed" => SnapshotMode::WhenNeeded,
                _ => SnapshotMode::Initial,
            },
            snapshot_fetch_size: int("snapshot.fetch.size") as usize,
            tombstones_on_delete: parsed.get_boolean("tombstones.on.delete").unwrap_or(true),
            skipped: SkippedOperations {
                create: has("c"),
                update: has("u"),
                delete: has("d"),
                truncate: has("t"),
            },
            modes: TypeModes {
                decimal: match mode("decimal.handling.mode").as_str() {
                    "double" => DecimalMode::Double,
                    "string" => DecimalMode::String,
                    _ => DecimalMode::Precise,
                },
                time: match mode("time.precision.mode").as_str() {
                    "adaptive_time_microseconds" => TimePrecisionMode::AdaptiveTimeMicroseconds,
                    "connect" => TimePrecisionMode::Connect,
                    _ => TimePrecisionMode::Adaptive,
                },
                binary: match mode("binary.handling.mode").as_str() {
                    "base64" => BinaryMode::Base64,
                    "base64-url-safe" => BinaryMode::Base64UrlSafe,
                    "hex" => BinaryMode::Hex,
                    _ => BinaryMode::Bytes,
                },
                interval: match mode("interval.handling.mode").as_str() {
                    "string" => IntervalMode::String,
                    _ => IntervalMode::Numeric,
                },
                money_fraction_digits: int("money.fraction.digits"),
            },
            heartbeat_interval: Duration::from_millis(int("heartbeat.interval.ms") as u64),
            heartbeat_action_query: parsed
                .get_string("heartbeat.action.query")
                .filter(|q| !q.trim().is_empty())
                .map(str::to_string),
            slot_drop_on_stop: parsed.get_boolean("slot.drop.on.stop").unwrap_or(false),
            max_batch_size: int("max.batch.size") as usize,
            max_queue_size: int("max.queue.size") as usize,
            poll_interval: Duration::from_millis(int("poll.interval.ms") as u64),
            unavailable_value_placeholder: s("unavailable.value.placeholder"),
            toast_fill: parsed.get_boolean("toast.fill").unwrap_or(false),
            status_update_interval: Duration::from_millis(int("status.update.interval.ms") as u64),
            max_reconnects: u32::try_from(int("errors.max.retries")).ok(),
            slot_max_retries: int("slot.max.retries") as u32,
            slot_retry_delay: Duration::from_millis(int("slot.retry.delay.ms") as u64),
        })
    }
}

fn password(parsed: &ParsedConfig) -> String {
    parsed.get_password("database.password").map(|p| p.value().to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        let mut p: HashMap<String, String> = [
            ("database.hostname", "127.0.0.1"),
            ("database.user", "postgres"),
            ("database.password", "secret"),
            ("database.dbname", "shop"),
            ("topic.prefix", "dbserver1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in pairs {
            p.insert(k.to_string(), v.to_string());
        }
        p
    }

    #[test]
    fn defaults_are_debeziums_except_the_heartbeat() {
        let c = CdcConfig::parse(&props(&[]), "inventory").unwrap();
        assert_eq!(c.connection.port, 5432);
        assert_eq!((c.slot_name.as_str(), c.publication_name.as_str()), ("debezium", "dbz_publication"));
        assert_eq!(c.publication_autocreate, PublicationAutocreate::AllTables);
        assert_eq!(c.snapshot_mode, SnapshotMode::Initial);
        assert_eq!(c.snapshot_fetch_size, 10240);
        assert!(c.tombstones_on_delete);
        assert_eq!(c.skipped, SkippedOperations { truncate: true, ..SkippedOperations::default() });
        assert_eq!(c.modes, TypeModes::default());
        assert_eq!(c.heartbeat_interval, Duration::from_secs(10));
        assert_eq!(c.heartbeat_topic, "__debezium-heartbeat.dbserver1");
        assert_eq!((c.max_batch_size, c.max_queue_size), (2048, 8192));
        assert_eq!(c.poll_interval, Duration::from_millis(500));
        assert_eq!(c.unavailable_value_placeholder, "__debezium_unavailable_value");
        assert!(c.tables.matches("any.table"));
    }

    #[test]
    fn table_lists_match_whole_names_case_insensitively() {
        let c =
            CdcConfig::parse(&props(&[("table.include.list", "public.orders,inventory\\..*")]), "x").unwrap();
        assert!(c.tables.matches("public.orders"));
        assert!(c.tables.matches("PUBLIC.Orders"));
        assert!(!c.tables.matches("public.orders_archive"));
        assert!(c.tables.matches("inventory.items"));
        assert!(!c.tables.matches("public.items"));
        let c = CdcConfig::parse(&props(&[("column.exclude.list", "public.users.password")]), "x").unwrap();
        assert!(!c.columns.matches("public.users.password"));
        assert!(c.columns.matches("public.users.name"));
    }

    #[test]
    fn each_bad_key_is_named() {
        let cases = [
            (("plugin.name", "decoderbufs"), "plugin.name"),
            (("database.sslmode", "sometimes"), "database.sslmode"),
            (("database.sslmode", "verify-full"), "database.sslrootcert"),
            (("table.include.list", "public.(orders"), "table.include.list"),
            (("skipped.operations", "x"), "skipped.operations"),
            (("max.queue.size", "100"), "max.queue.size"),
            (("topic.prefix", "a b"), "topic.prefix"),
            (("slot.name", "Bad-Slot"), "slot.name"),
            (("snapshot.mode", "sometimes"), "snapshot.mode"),
            (("decimal.handling.mode", "exact"), "decimal.handling.mode"),
            (("database.port", "70000"), "database.port"),
        ];
        for ((key, value), named) in cases {
            let err = CdcConfig::parse(&props(&[(key, value)]), "x").unwrap_err();
            assert_eq!(err.key(), named, "{key}={value}: {err}");
        }
        let both = props(&[("table.include.list", "a.b"), ("table.exclude.list", "c.d")]);
        assert_eq!(CdcConfig::parse(&both, "x").unwrap_err().key(), "table.exclude.list");
        let mut missing = props(&[]);
        missing.remove("topic.prefix");
        assert_eq!(CdcConfig::parse(&missing, "x").unwrap_err().key(), "topic.prefix");
    }
}
