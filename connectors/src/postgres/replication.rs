//! A client for PostgreSQL's streaming replication protocol in logical
//! mode: the connection a CDC source creates its slot on and reads pgoutput
//! from.
//!
//! `tokio-postgres` cannot open a replication connection (`replication=
//! database` in the startup packet) nor speak CopyBoth, so this module does
//! both on a plain socket with `postgres-protocol`'s message codecs and
//! authentication (cleartext, MD5, SCRAM-SHA-256). Owning the socket is
//! what a CDC source needs anyway:
//!
//! - after `CREATE_REPLICATION_SLOT ... (SNAPSHOT 'export')` the connection
//!   must send nothing until another session has imported the snapshot
//!   (the server drops it at the next command);
//! - the flush position reported to the server must be exactly what is
//!   durable downstream, never more (the server frees WAL up to it);
//! - errors keep every field the server sent (SQLSTATE, detail, hint).
//!
//! Wire layouts (all integers big-endian), inside CopyData (`d`) messages:
//!
//! ```text
//! XLogData        'w' | start LSN u64 | server WAL end u64 | server clock i64 | pgoutput message ...
//! Keepalive       'k' | server WAL end u64 | server clock i64 | reply requested u8
//! Status update   'r' | written u64 | flushed u64 | applied u64 | client clock i64 | reply requested u8
//! ```
//!
//! Clocks are microseconds since 2000-01-01 00:00 UTC.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::{md5_hash, sasl};
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::conn::{ConnectionSettings, PgError, ServerError, CONNECT_TIMEOUT, SESSION_OPTIONS};
use super::lsn::Lsn;
use super::tls::{is_handshake_refusal, server_name, SslMode};

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
pub(crate) const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// The tag of CopyBothResponse, which `postgres-protocol` does not parse.
const COPY_BOTH_RESPONSE: u8 = b'W';

/// A logical replication connection, before streaming starts: it runs
/// replication commands and plain SQL (simple query protocol only).
pub(crate) struct ReplicationConnection {
    stream: Box<dyn Socket>,
    read: BytesMut,
    write: BytesMut,
}

/// A plain or TLS socket.
trait Socket: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Socket for T {}

/// The server's answer to SSLRequest: `S` (go ahead) or `N`.
const SSL_ACCEPTED: u8 = b'S';
const SSL_REFUSED: u8 = b'N';

/// What `CREATE_REPLICATION_SLOT` returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CreatedSlot {
    /// Where the slot became consistent: the exported snapshot sees every
    /// transaction committed before it, the stream every one after.
    pub(crate) consistent_point: Lsn,
    /// The exported snapshot, valid until this connection sends its next
    /// command or closes.
    pub(crate) snapshot_name: Option<String>,
}

/// One message of a replication stream.
#[derive(Debug)]
pub(crate) enum StreamMessage {
    /// WAL data: one pgoutput message.
    XLogData {
        /// The LSN of the data (0 for messages with no position of their
        /// own, such as Relation).
        wal_start: Lsn,
        /// The pgoutput message.
        data: Bytes,
    },
    /// The server's keepalive: everything before `wal_end` has been sent.
    Keepalive {
        /// The server's current end of WAL.
        wal_end: Lsn,
        /// The server wants a status update now.
        reply_requested: bool,
    },
}

/// SSLRequest and, when the server accepts, the TLS handshake, as
/// `database.sslmode` asks.
async fn negotiate_tls(
    mut stream: TcpStream,
    settings: &ConnectionSettings,
    attempt_tls: bool,
) -> Result<Box<dyn Socket>, PgError> {
    let tls = &settings.tls;
    let config = if attempt_tls { tls.client_config().map_err(PgError::Tls)? } else { None };
    let Some(config) = config else { return Ok(Box::new(stream)) };
    let lost = |e: std::io::Error| PgError::Lost(e.to_string());
    let mut request = BytesMut::new();
    frontend::ssl_request(&mut request);
    stream.write_all(&request).await.map_err(lost)?;
    let answer = stream.read_u8().await.map_err(lost)?;
    if answer != SSL_ACCEPTED && answer != SSL_REFUSED {
        return Err(PgError::Protocol(format!(
            "the server answered the TLS request with {:?}, not S or N",
            answer as char
        )));
    }
    if answer == SSL_REFUSED {
        if tls.mode.requires_tls() {
            return Err(PgError::Tls(tls.explain("the server does not accept TLS connections (ssl=off)")));
        }
        return Ok(Box::new(stream));
    }
    let name = server_name(&settings.host).map_err(|e| PgError::Tls(tls.explain(&e)))?;
    let stream = tokio_rustls::TlsConnector::from(config).connect(name, stream).await.map_err(|e| {
        if is_handshake_refusal(&e) {
            PgError::Tls(tls.explain(&e.to_string()))
        } else {
            // The connection broke during the handshake: retried.
            PgError::Lost(format!("during the TLS handshake: {e}"))
        }
    })?;
    Ok(Box::new(stream))
}

impl ReplicationConnection {
    /// Connects in logical replication mode and logs in.
    ///
    /// # Errors
    /// [`PgError::Unreachable`] when no connection can be made within
    /// [`CONNECT_TIMEOUT`]; [`PgError::Server`] when the login is refused.
    pub(crate) async fn connect(settings: &ConnectionSettings) -> Result<ReplicationConnection, PgError> {
        match ReplicationConnection::connect_with(settings, true).await {
            // libpq's `prefer`: when the handshake is refused, connect
            // again without TLS.
            Err(PgError::Tls(reason)) if settings.tls.mode == SslMode::Prefer => {
                tracing::warn!(reason = %reason, "TLS refused; connecting without it (database.sslmode=prefer)");
                ReplicationConnection::connect_with(settings, false).await
            }
            other => other,
        }
    }

    async fn connect_with(
        settings: &ConnectionSettings,
        attempt_tls: bool,
    ) -> Result<ReplicationConnection, PgError> {
        let address = settings.address();
        let unreachable = |reason: String| PgError::Unreachable { address: address.clone(), reason };
        let stream = tokio::time::timeout(
            CONNECT_TIMEOUT,
            TcpStream::connect((settings.host.as_str(), settings.port)),
        )
        .await
        .map_err(|_| unreachable(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs())))?
        .map_err(|e| unreachable(e.to_string()))?;
        stream.set_nodelay(true).map_err(|e| unreachable(e.to_string()))?;
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, negotiate_tls(stream, settings, attempt_tls))
            .await
            .map_err(|_| {
                unreachable(format!("TLS did not finish within {} s", CONNECT_TIMEOUT.as_secs()))
            })??;
        let mut connection = ReplicationConnection {
            stream,
            read: BytesMut::with_capacity(64 * 1024),
            write: BytesMut::new(),
        };
        tokio::time::timeout(CONNECT_TIMEOUT, connection.log_in(settings)).await.map_err(|_| {
            unreachable(format!("login did not finish within {} s", CONNECT_TIMEOUT.as_secs()))
        })??;
        Ok(connection)
    }

    async fn log_in(&mut self, settings: &ConnectionSettings) -> Result<(), PgError> {
        let params = [
            ("user", settings.user.as_str()),
            ("database", settings.dbname.as_str()),
            ("replication", "database"),
            ("application_name", settings.application_name.as_str()),
            ("client_encoding", "UTF8"),
            ("options", SESSION_OPTIONS),
        ];
        frontend::startup_message(params, &mut self.write).map_err(protocol)?;
        self.flush().await?;
        let password = settings.password.as_bytes();
        let mut scram: Option<sasl::ScramSha256> = None;
        loop {
            match self.next_message().await? {
                Received::Message(Message::AuthenticationOk) => {}
                Received::Message(Message::AuthenticationCleartextPassword) => {
                    frontend::password_message(password, &mut self.write).map_err(protocol)?;
                    self.flush().await?;
                }
                Received::Message(Message::AuthenticationMd5Password(body)) => {
                    let hash = md5_hash(settings.user.as_bytes(), password, body.salt());
                    frontend::password_message(hash.as_bytes(), &mut self.write).map_err(protocol)?;
                    self.flush().await?;
                }
                Received::Message(Message::AuthenticationSasl(body)) => {
                    let mut mechanisms = body.mechanisms();
                    let mut found = false;
                    while let Some(m) = mechanisms.next().map_err(protocol)? {
                        found |= m == sasl::SCRAM_SHA_256;
                    }
                    if !found {
                        return Err(PgError::Protocol(
                            "the server offers no SASL mechanism this client supports (SCRAM-SHA-256)".into(),
                        ));
                    }
                    let state = sasl::ScramSha256::new(password, sasl::ChannelBinding::unsupported());
                    frontend::sasl_initial_response(sasl::SCRAM_SHA_256, state.message(), &mut self.write)
                        .map_err(protocol)?;
                    scram = Some(state);
                    self.flush().await?;
                }
                Received::Message(Message::AuthenticationSaslContinue(body)) => {
                    let state =
                        scram.as_mut().ok_or_else(|| PgError::Protocol("SASL out of order".into()))?;
                    state.update(body.data()).map_err(protocol)?;
                    frontend::sasl_response(state.message(), &mut self.write).map_err(protocol)?;
                    self.flush().await?;
                }
                Received::Message(Message::AuthenticationSaslFinal(body)) => {
                    let state =
                        scram.as_mut().ok_or_else(|| PgError::Protocol("SASL out of order".into()))?;
                    state.finish(body.data()).map_err(protocol)?;
                }
                Received::Message(Message::ErrorResponse(body)) => return Err(server_error(&body)),
                Received::Message(Message::ReadyForQuery(_)) => return Ok(()),
                Received::Message(
                    Message::ParameterStatus(_) | Message::BackendKeyData(_) | Message::NoticeResponse(_),
                ) => {}
                Received::Message(_) | Received::CopyBothResponse => {
                    return Err(PgError::Protocol("unexpected message during login".into()))
                }
            }
        }
    }

    /// Runs one command with the simple query protocol and returns its rows
    /// as text (`None` for SQL NULL).
    ///
    /// # Errors
    /// [`PgError::Server`] when the server refuses the command (the
    /// connection stays usable).
    pub(crate) async fn simple_query(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, PgError> {
        frontend::query(sql, &mut self.write).map_err(protocol)?;
        self.flush().await?;
        let mut rows = Vec::new();
        let mut failed = None;
        loop {
            match self.next_message().await? {
                Received::Message(Message::DataRow(row)) => {
                    let buffer = row.buffer();
                    let mut values = Vec::new();
                    let mut ranges = row.ranges();
                    while let Some(range) = ranges.next().map_err(protocol)? {
                        values.push(range.map(|r| String::from_utf8_lossy(&buffer[r]).into_owned()));
                    }
                    rows.push(values);
                }
                Received::Message(Message::ErrorResponse(body)) => failed = Some(server_error(&body)),
                Received::Message(Message::ReadyForQuery(_)) => {
                    return match failed {
                        Some(e) => Err(e),
                        None => Ok(rows),
                    }
                }
                Received::CopyBothResponse => {
                    return Err(PgError::Protocol(format!("`{sql}` started a replication stream")))
                }
                Received::Message(_) => {}
            }
        }
    }

    /// Creates a permanent logical slot for pgoutput. With `export`, the
    /// slot's snapshot is exported: import it (`SET TRANSACTION SNAPSHOT`)
    /// before sending anything else on this connection.
    ///
    /// # Errors
    /// As [`ReplicationConnection::simple_query`] (`42710` when the slot
    /// exists).
    pub(crate) async fn create_slot(&mut self, slot: &str, export: bool) -> Result<CreatedSlot, PgError> {
        let snapshot = if export { "export" } else { "nothing" };
        let sql =
            format!("CREATE_REPLICATION_SLOT {} LOGICAL pgoutput (SNAPSHOT '{snapshot}')", quote_ident(slot));
        let rows = self.simple_query(&sql).await?;
        let row = rows
            .first()
            .ok_or_else(|| PgError::Protocol("CREATE_REPLICATION_SLOT returned no row".into()))?;
        let consistent_point = row
            .get(1)
            .cloned()
            .flatten()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| PgError::Protocol(format!("CREATE_REPLICATION_SLOT returned {row:?}")))?;
        Ok(CreatedSlot { consistent_point, snapshot_name: row.get(2).cloned().flatten() })
    }

    /// `START_REPLICATION` with pgoutput protocol version 1 from `start`
    /// (the server starts at the slot's `confirmed_flush_lsn` when that is
    /// later), and turns this connection into a stream.
    ///
    /// # Errors
    /// [`PgError::Server`] when the slot or publication is missing or the
    /// slot is in use by another connection.
    pub(crate) async fn start_replication(
        mut self,
        slot: &str,
        start: Lsn,
        publication: &str,
    ) -> Result<ReplicationStream, PgError> {
        let publications = quote_literal(&quote_ident(publication));
        let sql = format!(
            "START_REPLICATION SLOT {} LOGICAL {start} (proto_version '1', publication_names {publications})",
            quote_ident(slot)
        );
        frontend::query(&sql, &mut self.write).map_err(protocol)?;
        self.flush().await?;
        let mut failed = None;
        loop {
            match self.next_message().await? {
                Received::CopyBothResponse => break,
                Received::Message(Message::ErrorResponse(body)) => failed = Some(server_error(&body)),
                Received::Message(Message::ReadyForQuery(_)) => {
                    return Err(
                        failed.unwrap_or_else(|| PgError::Protocol("START_REPLICATION did not start".into()))
                    )
                }
                Received::Message(_) => {}
            }
        }
        Ok(ReplicationStream { connection: self, received: start, ended: false })
    }

    async fn flush(&mut self) -> Result<(), PgError> {
        self.stream.write_all(&self.write).await.map_err(lost)?;
        self.write.clear();
        Ok(())
    }

    /// The next backend message, reading more from the socket as needed.
    /// Cancel safe: bytes read stay in the buffer.
    async fn next_message(&mut self) -> Result<Received, PgError> {
        loop {
            if self.read.len() >= 5 && self.read[0] == COPY_BOTH_RESPONSE {
                let len =
                    u32::from_be_bytes([self.read[1], self.read[2], self.read[3], self.read[4]]) as usize;
                if self.read.len() > len {
                    self.read.advance(1 + len);
                    return Ok(Received::CopyBothResponse);
                }
            } else if let Some(message) = Message::parse(&mut self.read).map_err(protocol)? {
                return Ok(Received::Message(message));
            }
            if self.read.capacity() - self.read.len() < 8192 {
                self.read.reserve(64 * 1024);
            }
            let n = self.stream.read_buf(&mut self.read).await.map_err(lost)?;
            if n == 0 {
                return Err(PgError::Lost("the server closed the connection".into()));
            }
        }
    }
}

enum Received {
    Message(Message),
    CopyBothResponse,
}

/// A running logical replication stream (CopyBoth).
pub(crate) struct ReplicationStream {
    connection: ReplicationConnection,
    /// The end of the last WAL data or keepalive received.
    received: Lsn,
    ended: bool,
}

impl ReplicationStream {
    /// The next XLogData or keepalive. Cancel safe.
    ///
    /// # Errors
    /// [`PgError::Server`] when the server ends the stream with an error
    /// (the slot was dropped, the server shuts down); [`PgError::Lost`]
    /// when the connection breaks.
    pub(crate) async fn next(&mut self) -> Result<StreamMessage, PgError> {
        loop {
            if self.ended {
                return Err(PgError::Lost("the server ended the replication stream".into()));
            }
            match self.connection.next_message().await? {
                Received::Message(Message::CopyData(body)) => {
                    let mut data = body.into_bytes();
                    if data.is_empty() {
                        return Err(PgError::Protocol("empty CopyData in the replication stream".into()));
                    }
                    match data[0] {
                        b'w' if data.len() >= 25 => {
                            let header = data.split_to(25);
                            let wal_start =
                                Lsn(u64::from_be_bytes(header[1..9].try_into().expect("8 bytes")));
                            self.received = self.received.max(wal_start);
                            return Ok(StreamMessage::XLogData { wal_start, data });
                        }
                        b'k' if data.len() >= 18 => {
                            let wal_end = Lsn(u64::from_be_bytes(data[1..9].try_into().expect("8 bytes")));
                            self.received = self.received.max(wal_end);
                            return Ok(StreamMessage::Keepalive { wal_end, reply_requested: data[17] == 1 });
                        }
                        tag => {
                            return Err(PgError::Protocol(format!(
                                "replication message {:?} of {} bytes",
                                tag as char,
                                data.len()
                            )))
                        }
                    }
                }
                Received::Message(Message::ErrorResponse(body)) => return Err(server_error(&body)),
                Received::Message(Message::CopyDone) => self.ended = true,
                Received::Message(Message::NoticeResponse(_) | Message::ParameterStatus(_)) => {}
                Received::Message(_) | Received::CopyBothResponse => {
                    return Err(PgError::Protocol("unexpected message in the replication stream".into()))
                }
            }
        }
    }

    /// Sends a standby status update: `flushed` is what the server may
    /// consider consumed (it becomes the slot's `confirmed_flush_lsn`; 0/0
    /// changes nothing). Written and applied are reported as the same.
    ///
    /// # Errors
    /// [`PgError::Lost`] when the connection is broken.
    pub(crate) async fn send_status(&mut self, flushed: Lsn, reply_requested: bool) -> Result<(), PgError> {
        let mut payload = BytesMut::with_capacity(34);
        payload.put_u8(b'r');
        let written = self.received.max(flushed);
        payload.put_u64(written.0);
        payload.put_u64(flushed.0);
        payload.put_u64(flushed.0);
        payload.put_i64(pg_clock_now());
        payload.put_u8(u8::from(reply_requested));
        let connection = &mut self.connection;
        frontend::CopyData::new(payload.freeze()).map_err(protocol)?.write(&mut connection.write);
        connection.flush().await
    }

    /// Ends the stream politely (CopyDone, then Terminate).
    pub(crate) async fn close(mut self) {
        let connection = &mut self.connection;
        frontend::copy_done(&mut connection.write);
        frontend::terminate(&mut connection.write);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), connection.flush()).await;
    }
}

/// Now on PostgreSQL's clock (microseconds since 2000-01-01).
fn pg_clock_now() -> i64 {
    let since_unix = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0);
    since_unix - PG_EPOCH_OFFSET_MICROS
}

fn server_error(body: &postgres_protocol::message::backend::ErrorResponseBody) -> PgError {
    let mut error = ServerError::default();
    let mut fields = body.fields();
    while let Ok(Some(field)) = fields.next() {
        let value = String::from_utf8_lossy(field.value_bytes()).into_owned();
        match field.type_() {
            b'C' => error.code = value,
            b'M' => error.message = value,
            b'D' => error.detail = Some(value),
            b'H' => error.hint = Some(value),
            _ => {}
        }
    }
    PgError::Server(error)
}

fn protocol(e: std::io::Error) -> PgError {
    PgError::Protocol(e.to_string())
}

fn lost(e: std::io::Error) -> PgError {
    PgError::Lost(e.to_string())
}

/// `"name"` with inner quotes doubled: an SQL identifier.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'` with inner quotes doubled: an SQL string literal.
pub(crate) fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
