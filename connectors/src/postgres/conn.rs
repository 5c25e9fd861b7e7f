//! Where a PostgreSQL server is and how to log in, and the errors talking
//! to it can produce, explained in one line each.

use std::fmt;
use std::time::Duration;

use runnel_connect::plugin::TaskError;

pub(crate) use super::tls::TlsSettings;
use super::tls::{is_handshake_refusal, SslMode};

/// How long connecting (TCP and login) may take before it counts as
/// unreachable.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Session settings for every connection, so values print the same way on
/// the snapshot and the streaming side whatever the server's defaults:
/// ISO dates, ISO 8601 intervals (`P1Y2M3DT4H5M6.78S`), times in UTC.
pub(crate) const SESSION_OPTIONS: &str = "-c datestyle=ISO,YMD -c intervalstyle=iso_8601 -c timezone=UTC";

/// A server and a login: Debezium's `database.*` keys.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ConnectionSettings {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) user: String,
    pub(crate) password: String,
    pub(crate) dbname: String,
    /// Shown in `pg_stat_activity`.
    pub(crate) application_name: String,
    /// `database.sslmode` and the certificate files.
    pub(crate) tls: TlsSettings,
}

impl fmt::Debug for ConnectionSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("dbname", &self.dbname)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl ConnectionSettings {
    /// `host:port`, for messages.
    pub(crate) fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// A `tokio-postgres` config for an ordinary (SQL) connection.
    pub(crate) fn sql_config(&self) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&self.host)
            .port(self.port)
            .user(&self.user)
            .password(&self.password)
            .dbname(&self.dbname)
            .application_name(&self.application_name)
            .options(SESSION_OPTIONS)
            .connect_timeout(CONNECT_TIMEOUT);
        config
    }

    /// Opens an ordinary connection and drives it on a task of its own
    /// (which ends when the client is dropped).
    pub(crate) async fn connect_sql(&self) -> Result<tokio_postgres::Client, PgError> {
        match self.connect_sql_with(true).await {
            // libpq's `prefer`: when the handshake is refused, connect
            // again without TLS.
            Err(PgError::Tls(reason)) if self.tls.mode == SslMode::Prefer => {
                tracing::warn!(reason = %reason, "TLS refused; connecting without it (database.sslmode=prefer)");
                self.connect_sql_with(false).await
            }
            other => other,
        }
    }

    async fn connect_sql_with(&self, attempt_tls: bool) -> Result<tokio_postgres::Client, PgError> {
        let mut config = self.sql_config();
        let fail = |e: tokio_postgres::Error| {
            // A refused handshake or a server without TLS (when it is
            // required) cannot be retried away; a broken connection can.
            let text = e.to_string();
            let source = std::error::Error::source(&e).map(ToString::to_string);
            let no_tls = source.as_deref().is_some_and(|s| s.contains("server does not support TLS"));
            if no_tls || is_handshake_refusal(&e) {
                PgError::Tls(self.tls.explain(&source.unwrap_or(text)))
            } else {
                PgError::from_sql(e, &self.address())
            }
        };
        let tls = if attempt_tls { self.tls.client_config().map_err(PgError::Tls)? } else { None };
        let client = match tls {
            None => {
                let (client, connection) = config.connect(tokio_postgres::NoTls).await.map_err(fail)?;
                tokio::spawn(drive(connection));
                client
            }
            Some(tls) => {
                let mode = if self.tls.mode.requires_tls() {
                    tokio_postgres::config::SslMode::Require
                } else {
                    tokio_postgres::config::SslMode::Prefer
                };
                config.ssl_mode(mode);
                let connector = tokio_postgres_rustls::MakeRustlsConnect::new((*tls).clone());
                let (client, connection) = config.connect(connector).await.map_err(fail)?;
                tokio::spawn(drive(connection));
                client
            }
        };
        Ok(client)
    }
}

/// Drives a SQL connection until its client is dropped.
async fn drive<S, T>(connection: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if let Err(e) = connection.await {
        tracing::debug!(error = %e, "postgres connection ended");
    }
}

/// An error the server sent (`ErrorResponse`), with the fields that say
/// what to fix.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub(crate) struct ServerError {
    /// SQLSTATE, e.g. `28P01`.
    pub(crate) code: String,
    pub(crate) message: String,
    pub(crate) detail: Option<String>,
    pub(crate) hint: Option<String>,
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (SQLSTATE {})", self.message, self.code)?;
        if let Some(detail) = &self.detail {
            write!(f, "; {detail}")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "; hint: {hint}")?;
        }
        Ok(())
    }
}

/// What went wrong talking to PostgreSQL.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PgError {
    /// No connection could be made (refused, unresolvable, timed out).
    #[error("cannot reach PostgreSQL at {address}: {reason}")]
    Unreachable { address: String, reason: String },
    /// The server refused a command or the login.
    #[error("{0}")]
    Server(ServerError),
    /// An established connection broke.
    #[error("connection to PostgreSQL lost: {0}")]
    Lost(String),
    /// The server sent something this client does not understand.
    #[error("unexpected reply from PostgreSQL: {0}")]
    Protocol(String),
    /// TLS could not be set up as `database.sslmode` asks (a certificate
    /// file, the handshake, or a server without TLS).
    #[error("{0}")]
    Tls(String),
    /// The connector's local state (the `toast.fill` store) failed.
    #[error("{0}")]
    LocalState(String),
}

impl PgError {
    /// From a `tokio-postgres` error.
    pub(crate) fn from_sql(error: tokio_postgres::Error, address: &str) -> PgError {
        if let Some(db) = error.as_db_error() {
            return PgError::Server(ServerError {
                code: db.code().code().to_string(),
                message: db.message().to_string(),
                detail: db.detail().map(str::to_string),
                hint: db.hint().map(str::to_string),
            });
        }
        let text = error.to_string();
        let source = std::error::Error::source(&error).map(ToString::to_string).unwrap_or_default();
        if text.contains("error connecting") || text.contains("timed out") {
            PgError::Unreachable { address: address.to_string(), reason: source_or(&source, &text) }
        } else if error.is_closed() || text.contains("error communicating") {
            PgError::Lost(source_or(&source, &text))
        } else {
            PgError::Protocol(format!("{text} {source}").trim().to_string())
        }
    }

    /// The SQLSTATE of a server error.
    pub(crate) fn code(&self) -> Option<&str> {
        match self {
            PgError::Server(e) => Some(&e.code),
            _ => None,
        }
    }

    /// One line that says what is wrong and what to do, as a task error
    /// that is retriable where trying again can help (an unreachable or
    /// restarting server, a slot still held by a connection that is going
    /// away).
    pub(crate) fn explain(&self, settings: &ConnectionSettings) -> TaskError {
        self.explain_with_keys(settings, "database.password", "database.dbname")
    }

    /// [`explain`](Self::explain) naming a connector's own keys for the
    /// password and the database.
    pub(crate) fn explain_with_keys(
        &self,
        settings: &ConnectionSettings,
        password_key: &str,
        database_key: &str,
    ) -> TaskError {
        let user = &settings.user;
        let db = &settings.dbname;
        let Some(code) = self.code() else {
            return match self {
                PgError::Protocol(_) | PgError::LocalState(_) | PgError::Tls(_) => TaskError::fatal(self),
                _ => TaskError::retriable(self),
            };
        };
        let PgError::Server(e) = self else { unreachable!("code() is only set for server errors") };
        let message = match code {
            "28P01" => {
                format!("PostgreSQL rejected the password of user `{user}` ({password_key}): {}", e.message)
            }
            "28000" => format!(
                "PostgreSQL does not let user `{user}` connect to database `{db}` from here: {} \
                 (add a pg_hba.conf entry for this host, user and database)",
                e.message
            ),
            "3D000" => format!("database `{db}` does not exist ({database_key}): {}", e.message),
            "42501" if e.message.contains("replication") => format!(
                "user `{user}` may not use replication: run `ALTER ROLE {user} REPLICATION;` \
                 as a superuser ({})",
                e.message
            ),
            "42501" => format!("user `{user}` lacks a privilege: {e}"),
            "55000" if e.message.contains("wal_level") => format!(
                "logical decoding needs wal_level=logical: set `wal_level = logical` in postgresql.conf \
                 and restart PostgreSQL ({})",
                e.message
            ),
            "55006" => {
                return TaskError::retriable(format!(
                    "{e}: another connection is using it; stop the other consumer or give this connector \
                     its own slot.name"
                ))
            }
            "53300" => return TaskError::retriable(format!("PostgreSQL has no free connection slots: {e}")),
            "57P01" | "57P02" | "57P03" => {
                return TaskError::retriable(format!("PostgreSQL is not available: {e}"))
            }
            _ => e.to_string(),
        };
        TaskError::fatal(message)
    }
}

fn source_or(source: &str, text: &str) -> String {
    if source.is_empty() {
        text.to_string()
    } else {
        source.to_string()
    }
}
