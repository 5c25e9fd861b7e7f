//! The Postgres sink's configuration: the Debezium JDBC sink connector's
//! keys (`io.debezium.connector.jdbc.JdbcSinkConnector`), with its
//! defaults and its cross-key rules.
//!
//! Differences from Debezium, on purpose:
//! - `connection.url` also takes a libpq URL (`postgresql://…`) or
//!   key/value string (`host=… port=… dbname=…`), not only
//!   `jdbc:postgresql://…`; its `user`, `password`, `sslmode` and
//!   `ApplicationName` parameters are read, other JDBC parameters ignored;
//! - `auto.create` (Confluent's JDBC sink key) creates missing tables
//!   without `schema.evolution=basic` (which also creates them, and adds
//!   missing columns).

use std::collections::HashMap;

use runnel_connect::config_def::{ConfigDef, ConfigError, ConfigType, Importance, ParsedConfig, Validator};

use crate::postgres::conn::ConnectionSettings;
use crate::postgres::tls::{SslMode, TlsSettings};

/// `insert.mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InsertMode {
    /// `INSERT`: a row whose key exists fails.
    Insert,
    /// `INSERT … ON CONFLICT (key) DO UPDATE`.
    Upsert,
    /// `UPDATE … WHERE key`: rows that do not exist are not created.
    Update,
}

/// `primary.key.mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PrimaryKeyMode {
    /// No key: rows are only inserted.
    None,
    /// `__connect_topic`, `__connect_partition`, `__connect_offset`.
    Kafka,
    /// The record key's fields (or `primary.key.fields` of them).
    RecordKey,
    /// The record value's fields named by `primary.key.fields` (all when empty).
    RecordValue,
}

/// The parsed configuration of one connector.
#[derive(Clone, Debug)]
pub(crate) struct SinkConfig {
    pub(crate) connection: ConnectionSettings,
    pub(crate) insert_mode: InsertMode,
    pub(crate) primary_key_mode: PrimaryKeyMode,
    pub(crate) primary_key_fields: Vec<String>,
    pub(crate) delete_enabled: bool,
    pub(crate) truncate_enabled: bool,
    /// `schema.evolution=basic`: create missing tables, add missing columns.
    pub(crate) evolve: bool,
    /// `auto.create`, or `schema.evolution=basic`.
    pub(crate) create: bool,
    pub(crate) table_format: String,
    pub(crate) batch_size: usize,
    pub(crate) reduction: bool,
    pub(crate) quote_identifiers: bool,
}

/// Every key the connector takes.
pub(crate) fn config_def() -> ConfigDef {
    ConfigDef::new()
        .define(
            "connection.url",
            ConfigType::String,
            Importance::High,
            "The database: jdbc:postgresql://host:port/db, postgresql://host:port/db, or host=… port=… dbname=….",
        )
        .validate(Validator::NonEmpty)
        .define_optional(
            "connection.username",
            ConfigType::String,
            Importance::High,
            "The user to log in as (overrides the URL's).",
        )
        .define_optional(
            "connection.password",
            ConfigType::Password,
            Importance::High,
            "The user's password (overrides the URL's).",
        )
        .define_with_default(
            "insert.mode",
            ConfigType::String,
            "insert",
            Importance::High,
            "insert, upsert (INSERT … ON CONFLICT DO UPDATE) or update.",
        )
        .validate(Validator::one_of(&["insert", "upsert", "update"]))
        .define_with_default(
            "primary.key.mode",
            ConfigType::String,
            "none",
            Importance::High,
            "Where the primary key comes from: none, kafka, record_key or record_value.",
        )
        .validate(Validator::one_of(&["none", "kafka", "record_key", "record_value"]))
        .define_optional(
            "primary.key.fields",
            ConfigType::List,
            Importance::Medium,
            "The key's fields (record_key, record_value), or the column of a primitive key.",
        )
        .define_with_default(
            "delete.enabled",
            ConfigType::Boolean,
            false,
            Importance::Medium,
            "Delete rows on delete events and tombstones (needs primary.key.mode=record_key).",
        )
        .define_with_default(
            "truncate.enabled",
            ConfigType::Boolean,
            false,
            Importance::Medium,
            "Truncate the table on truncate events.",
        )
        .define_with_default(
            "schema.evolution",
            ConfigType::String,
            "none",
            Importance::Medium,
            "none, or basic: create missing tables and add missing columns.",
        )
        .validate(Validator::one_of(&["none", "basic"]))
        .define_with_default(
            "auto.create",
            ConfigType::Boolean,
            false,
            Importance::Medium,
            "Create missing tables from the record schema (Confluent's key; schema.evolution=basic does too).",
        )
        .define_with_default(
            "collection.name.format",
            ConfigType::String,
            "${topic}",
            Importance::Medium,
            "The table of a topic: ${topic} is the topic with dots replaced by underscores; a dot in the \
             result separates schema and table.",
        )
        .validate(Validator::NonEmpty)
        .define_with_default(
            "batch.size",
            ConfigType::Int,
            500,
            Importance::Medium,
            "Rows per statement.",
        )
        .validate(Validator::Range { min: Some(1.0), max: None })
        .define_with_default(
            "use.reduction.buffer",
            ConfigType::Boolean,
            false,
            Importance::Low,
            "Within a batch, write only the last change of each key.",
        )
        .define_with_default(
            "quote.identifiers",
            ConfigType::Boolean,
            false,
            Importance::Low,
            "Keep table and column names as they are (quoted); otherwise they are lower-cased.",
        )
}

/// Where `connection.url` points and who logs in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ConnectionUrl {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) dbname: String,
    pub(crate) user: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) sslmode: Option<SslMode>,
    pub(crate) application_name: Option<String>,
}

/// Decodes `%XX` escapes of a URL part.
fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or_else(|| format!("a `%` escape is cut short in `{s}`"))?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("`%{hex}` is not a `%` escape"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("`{s}` does not decode to UTF-8"))
}

impl ConnectionUrl {
    /// Parses a JDBC URL (`jdbc:postgresql://host:port/db?k=v`, host and
    /// port optional), a libpq URL (`postgres[ql]://[user[:pw]@]host[:port][/db][?k=v]`)
    /// or a libpq key/value string (`host=h port=5432 dbname=d`).
    pub(crate) fn parse(url: &str) -> Result<ConnectionUrl, String> {
        let url = url.trim();
        let mut out = ConnectionUrl { host: "localhost".into(), port: 5432, ..ConnectionUrl::default() };
        let rest = if let Some(rest) = url.strip_prefix("jdbc:postgresql:") {
            rest
        } else if let Some(rest) = url.strip_prefix("jdbc:") {
            let vendor = rest.split(':').next().unwrap_or(rest);
            return Err(format!("`jdbc:{vendor}:` is not PostgreSQL: this sink writes to PostgreSQL only"));
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            &url[url.find(':').expect("scheme checked") + 1..]
        } else if url.contains('=') && !url.contains("://") {
            return Self::parse_key_values(url, out);
        } else {
            return Err("expected jdbc:postgresql://host:port/database, postgresql://host:port/database \
                        or host=… port=… dbname=…"
                .into());
        };
        let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
        // `//authority/db`, or (JDBC) just `db` on localhost.
        let path = if let Some(after) = main.strip_prefix("//") {
            let (authority, path) = after.split_once('/').unwrap_or((after, ""));
            let host_port = match authority.rsplit_once('@') {
                Some((login, host_port)) => {
                    let (user, password) = login.split_once(':').unwrap_or((login, ""));
                    out.user = Some(percent_decode(user)?);
                    if !password.is_empty() {
                        out.password = Some(percent_decode(password)?);
                    }
                    host_port
                }
                None => authority,
            };
            let (host, port) = match host_port.strip_prefix('[') {
                // [::1]:5432
                Some(v6) => {
                    let (host, rest) = v6.split_once(']').ok_or("an IPv6 host lacks its `]`")?;
                    (host, rest.strip_prefix(':'))
                }
                None => match host_port.split_once(':') {
                    Some((h, p)) => (h, Some(p)),
                    None => (host_port, None),
                },
            };
            if !host.is_empty() {
                out.host = percent_decode(host)?;
            }
            if let Some(port) = port.filter(|p| !p.is_empty()) {
                out.port =
                    port.parse().map_err(|_| format!("port `{port}` is not a number from 1 to 65535"))?;
            }
            path
        } else {
            main
        };
        out.dbname = percent_decode(path)?;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            out.set(&percent_decode(k)?, percent_decode(v)?)?;
        }
        Ok(out)
    }

    fn parse_key_values(text: &str, mut out: ConnectionUrl) -> Result<ConnectionUrl, String> {
        for pair in text.split_whitespace() {
            let (k, v) = pair.split_once('=').ok_or_else(|| format!("`{pair}` is not key=value"))?;
            let v = v.trim_matches('\'');
            match k {
                "host" | "hostaddr" => out.host = v.to_string(),
                "port" => {
                    out.port = v.parse().map_err(|_| format!("port `{v}` is not a number from 1 to 65535"))?
                }
                "dbname" => out.dbname = v.to_string(),
                other => out.set(other, v.to_string())?,
            }
        }
        Ok(out)
    }

    /// A URL parameter: the ones that matter here are read, other JDBC
    /// driver settings ignored.
    fn set(&mut self, key: &str, value: String) -> Result<(), String> {
        match key {
            "user" => self.user = Some(value),
            "password" => self.password = Some(value),
            "sslmode" => {
                self.sslmode = Some(SslMode::parse(&value).ok_or_else(|| {
                    format!(
                    "sslmode `{value}` is none of disable, allow, prefer, require, verify-ca, verify-full"
                )
                })?)
            }
            "ApplicationName" | "application_name" => self.application_name = Some(value),
            other => tracing::debug!(parameter = other, "connection.url parameter ignored"),
        }
        Ok(())
    }
}

/// Checks across keys, each error naming its key.
pub(crate) fn validate(props: &HashMap<String, String>) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let get = |k: &str| props.get(k).map(|v| v.trim().to_ascii_lowercase());
    if let Some(url) = props.get("connection.url") {
        if let Err(reason) = ConnectionUrl::parse(url) {
            errors.push(ConfigError::invalid("connection.url", url, reason));
        }
    }
    let pk_mode = get("primary.key.mode").unwrap_or_else(|| "none".into());
    if get("delete.enabled").as_deref() == Some("true") && pk_mode != "record_key" {
        errors.push(ConfigError::invalid(
            "delete.enabled",
            "true",
            format!("deletes need primary.key.mode=record_key (it is {pk_mode})"),
        ));
    }
    let mode = get("insert.mode").unwrap_or_else(|| "insert".into());
    if (mode == "upsert" || mode == "update") && pk_mode == "none" {
        errors.push(ConfigError::invalid(
            "insert.mode",
            &mode,
            "upsert and update need a primary key: set primary.key.mode to record_key, record_value or kafka",
        ));
    }
    let format = props.get("collection.name.format").map(String::as_str).unwrap_or("${topic}");
    if format.split('.').count() > 2 {
        errors.push(ConfigError::invalid(
            "collection.name.format",
            format,
            "at most one dot (schema.table): PostgreSQL tables of another database cannot be written",
        ));
    }
    errors
}

impl SinkConfig {
    /// Parses and checks `props` for connector `name`.
    pub(crate) fn parse(name: &str, props: &HashMap<String, String>) -> Result<SinkConfig, ConfigError> {
        let parsed: ParsedConfig = config_def().parse(props)?;
        if let Some(first) = validate(props).into_iter().next() {
            return Err(first);
        }
        let s = |k: &str| parsed.get_string(k).unwrap_or_default().to_string();
        let url_text = s("connection.url");
        let url = ConnectionUrl::parse(&url_text)
            .map_err(|reason| ConfigError::invalid("connection.url", &url_text, reason))?;
        let user = parsed.get_string("connection.username").map(str::to_string).or(url.user.clone());
        let Some(user) = user.filter(|u| !u.is_empty()) else {
            return Err(ConfigError::invalid(
                "connection.username",
                "",
                "no user: set connection.username (or user= in connection.url)",
            ));
        };
        let password = parsed
            .get_password("connection.password")
            .map(|p| p.value().to_string())
            .or(url.password.clone())
            .unwrap_or_default();
        let tls = TlsSettings { mode: url.sslmode.unwrap_or(SslMode::Prefer), ..TlsSettings::default() };
        let mode = |k: &str| s(k).to_ascii_lowercase();
        let evolve = mode("schema.evolution") == "basic";
        Ok(SinkConfig {
            connection: ConnectionSettings {
                host: url.host.clone(),
                port: url.port,
                dbname: if url.dbname.is_empty() { user.clone() } else { url.dbname.clone() },
                user,
                password,
                application_name: url
                    .application_name
                    .clone()
                    .unwrap_or_else(|| format!("runnel-sink {name}")),
                tls,
            },
            insert_mode: match mode("insert.mode").as_str() {
                "upsert" => InsertMode::Upsert,
                "update" => InsertMode::Update,
                _ => InsertMode::Insert,
            },
            primary_key_mode: match mode("primary.key.mode").as_str() {
                "kafka" => PrimaryKeyMode::Kafka,
                "record_key" => PrimaryKeyMode::RecordKey,
                "record_value" => PrimaryKeyMode::RecordValue,
                _ => PrimaryKeyMode::None,
            },
            primary_key_fields: parsed
                .get_list("primary.key.fields")
                .unwrap_or_default()
                .iter()
                .map(|f| f.trim().to_string())
                .filter(|f| !f.is_empty())
                .collect(),
            delete_enabled: parsed.get_boolean("delete.enabled").unwrap_or(false),
            truncate_enabled: parsed.get_boolean("truncate.enabled").unwrap_or(false),
            evolve,
            create: evolve || parsed.get_boolean("auto.create").unwrap_or(false),
            table_format: s("collection.name.format"),
            batch_size: parsed.get_int("batch.size").unwrap_or(500).max(1) as usize,
            reduction: parsed.get_boolean("use.reduction.buffer").unwrap_or(false),
            quote_identifiers: parsed.get_boolean("quote.identifiers").unwrap_or(false),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        let mut p: HashMap<String, String> =
            [("connection.url", "jdbc:postgresql://db.example:6543/shop"), ("connection.username", "app")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        for (k, v) in pairs {
            p.insert(k.to_string(), v.to_string());
        }
        p
    }

    #[test]
    fn urls_of_every_form_name_host_port_database_and_login() {
        let jdbc = ConnectionUrl::parse("jdbc:postgresql://db.example:6543/shop?user=a&password=p%40ss&sslmode=require&reWriteBatchedInserts=true").unwrap();
        assert_eq!((jdbc.host.as_str(), jdbc.port, jdbc.dbname.as_str()), ("db.example", 6543, "shop"));
        assert_eq!((jdbc.user.as_deref(), jdbc.password.as_deref()), (Some("a"), Some("p@ss")));
        assert_eq!(jdbc.sslmode, Some(SslMode::Require));
        let bare = ConnectionUrl::parse("jdbc:postgresql:shop").unwrap();
        assert_eq!((bare.host.as_str(), bare.port, bare.dbname.as_str()), ("localhost", 5432, "shop"));
        let libpq = ConnectionUrl::parse("postgresql://u:pw@[::1]:7000/d").unwrap();
        assert_eq!((libpq.host.as_str(), libpq.port, libpq.dbname.as_str()), ("::1", 7000, "d"));
        assert_eq!(libpq.user.as_deref(), Some("u"));
        let kv = ConnectionUrl::parse("host=10.0.0.1 port=5433 dbname=x user=y").unwrap();
        assert_eq!(
            (kv.host.as_str(), kv.port, kv.dbname.as_str(), kv.user.as_deref()),
            ("10.0.0.1", 5433, "x", Some("y"))
        );
        let mysql = ConnectionUrl::parse("jdbc:mysql://h/db").unwrap_err();
        assert!(mysql.contains("jdbc:mysql:") && mysql.contains("PostgreSQL only"), "{mysql}");
        assert!(ConnectionUrl::parse("jdbc:postgresql://h:70000/db").unwrap_err().contains("70000"));
    }

    #[test]
    fn defaults_are_debeziums() {
        let c = SinkConfig::parse("s", &props(&[])).unwrap();
        assert_eq!(c.insert_mode, InsertMode::Insert);
        assert_eq!(c.primary_key_mode, PrimaryKeyMode::None);
        assert!(!c.delete_enabled && !c.truncate_enabled && !c.evolve && !c.create && !c.reduction);
        assert_eq!((c.table_format.as_str(), c.batch_size), ("${topic}", 500));
        assert_eq!(c.connection.user, "app");
        assert_eq!(c.connection.address(), "db.example:6543");
    }

    #[test]
    fn cross_key_rules_name_the_key_that_breaks_them() {
        let err = SinkConfig::parse(
            "s",
            &props(&[("delete.enabled", "true"), ("primary.key.mode", "record_value")]),
        )
        .unwrap_err();
        assert_eq!(err.key(), "delete.enabled");
        assert!(err.to_string().contains("record_key"), "{err}");
        let err = SinkConfig::parse("s", &props(&[("insert.mode", "upsert")])).unwrap_err();
        assert_eq!(err.key(), "insert.mode");
        let err = SinkConfig::parse("s", &props(&[("collection.name.format", "a.b.${topic}")])).unwrap_err();
        assert_eq!(err.key(), "collection.name.format");
        let mut no_user = props(&[]);
        no_user.remove("connection.username");
        assert_eq!(SinkConfig::parse("s", &no_user).unwrap_err().key(), "connection.username");
        let err = SinkConfig::parse("s", &props(&[("insert.mode", "merge")])).unwrap_err();
        assert_eq!(err.key(), "insert.mode");
    }
}
