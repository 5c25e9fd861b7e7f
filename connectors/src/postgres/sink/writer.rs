//! Writes a batch of changes and the offsets they came from in one
//! PostgreSQL transaction, creating and widening tables as the config
//! allows.
//!
//! Consecutive changes of one table and one kind go together. Inserts and
//! upserts of more than a few rows are `COPY`ed (text format) into a
//! temporary table with the target's column types, then moved with one
//! `INSERT … SELECT` (`ON CONFLICT … DO UPDATE` for upserts); other runs
//! are multi-row statements (`INSERT … VALUES (…), (…)`; `UPDATE … FROM
//! (VALUES …)`; `DELETE … WHERE (key) IN (VALUES …)`), `batch.size` rows
//! each. Every value travels as text and is parsed by PostgreSQL's own
//! input function for its column's type (`$1::text::numeric(10,2)`, or the
//! temporary table's column).

use std::collections::{BTreeMap, HashMap};

use bytes::{BufMut, Bytes, BytesMut};
use futures::SinkExt;
use runnel_connect::plugin::{ErrantRecordReporter, SinkRecord, TaskError, TopicPartition};
use tokio_postgres::types::ToSql;

use super::change::{quote, Change, Column, Op, TableName};
use super::config::{InsertMode, SinkConfig};
use super::types::{column_type, encode};
use crate::postgres::conn::PgError;

/// The table holding, per connector and topic-partition, the next offset
/// to apply: written in the same transaction as the rows.
pub(crate) const OFFSETS_TABLE: &str = "__runnel_sink_offsets";

/// PostgreSQL's limit of parameters per statement.
const MAX_PARAMS: usize = 65_535;

/// Runs of inserts or upserts at least this long go through `COPY`.
const COPY_FROM_ROWS: usize = 16;

/// What a batch's transaction runs, in order.
enum Step {
    /// A prepared statement and its text parameters.
    Sql(tokio_postgres::Statement, Vec<Option<String>>),
    /// `COPY` of rows into a temporary table (emptied at commit), then a
    /// statement that moves them into the target, then the table emptied.
    Copy { copy: String, data: Bytes, then: String, empty: String },
}

/// A column's type: in full (`character varying(8)`), and without its
/// modifier (`character varying`), the type a statement's text parameter is
/// cast to. An explicit cast to the full type would cut an over-long string
/// or bit string silently; storing the base-typed value into the column
/// checks its length, as an assignment does, and fails the row.
#[derive(Clone, Debug, Default)]
struct ColumnType {
    full: String,
    base: String,
}

/// What the writer knows of a table: its columns and their types.
#[derive(Clone, Debug, Default)]
struct TableInfo {
    columns: HashMap<String, ColumnType>,
}

impl TableInfo {
    fn base(&self, column: &str) -> &str {
        self.columns.get(column).map_or("text", |t| t.base.as_str())
    }

    fn full(&self, column: &str) -> &str {
        self.columns.get(column).map_or("text", |t| t.full.as_str())
    }
}

/// A failure while writing: a server or connection error, a table the
/// config cannot write, or a change whose values cannot be written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WriteError {
    #[error("{0}")]
    Pg(PgError),
    /// The table is missing or lacks columns (the config's or the
    /// table's fault, not one record's).
    #[error("{0}")]
    Rejected(String),
    /// A value that has no text form for its column.
    #[error("{0}")]
    Row(String),
    /// Reporting a failed record failed (errors not tolerated, or the dead
    /// letter queue unwritable).
    #[error("{0}")]
    Report(TaskError),
}

impl WriteError {
    /// Whether the failure belongs to a row rather than to the batch: a
    /// value without a text form, or the server refusing data (SQLSTATE
    /// class 22, data exception, or 23, integrity constraint).
    pub(crate) fn is_row_error(&self) -> bool {
        match self {
            WriteError::Row(_) => true,
            WriteError::Pg(e) => e.code().is_some_and(|c| c.starts_with("22") || c.starts_with("23")),
            _ => false,
        }
    }
}

/// Writes batches through one connection.
pub(crate) struct Writer {
    client: tokio_postgres::Client,
    address: String,
    tables: HashMap<TableName, TableInfo>,
    statements: HashMap<String, tokio_postgres::Statement>,
    /// The temporary table of each target and column list (they live as
    /// long as the connection).
    staging: HashMap<(TableName, Vec<String>), String>,
}

/// Adds context to a server error.
fn pg(address: &str) -> impl Fn(tokio_postgres::Error) -> WriteError + '_ {
    move |e| WriteError::Pg(PgError::from_sql(e, address))
}

impl Writer {
    pub(crate) fn new(client: tokio_postgres::Client, address: String) -> Writer {
        Writer {
            client,
            address,
            tables: HashMap::new(),
            statements: HashMap::new(),
            staging: HashMap::new(),
        }
    }

    /// Whether the connection is gone (the next batch needs a new one).
    pub(crate) fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Creates the offsets table if needed and reads `connector`'s rows.
    pub(crate) async fn load_offsets(
        &mut self,
        connector: &str,
    ) -> Result<BTreeMap<TopicPartition, i64>, WriteError> {
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {OFFSETS_TABLE} (connector text NOT NULL, topic text NOT NULL, \
             partition integer NOT NULL, next_offset bigint NOT NULL, PRIMARY KEY (connector, topic, partition))"
        );
        if let Err(e) = self.client.batch_execute(&create).await {
            // Two tasks creating it at once: one wins, the other sees it exist.
            let raced = e.as_db_error().is_some_and(|d| matches!(d.code().code(), "23505" | "42P07"));
            if !raced {
                return Err(pg(&self.address)(e));
            }
        }
        let rows = self
            .client
            .query(
                &format!("SELECT topic, partition, next_offset FROM {OFFSETS_TABLE} WHERE connector = $1"),
                &[&connector],
            )
            .await
            .map_err(pg(&self.address))?;
        Ok(rows
            .iter()
            .map(|row| {
                (TopicPartition::new(row.get::<_, String>(0), row.get::<_, i32>(1)), row.get::<_, i64>(2))
            })
            .collect())
    }

    /// The columns of `table`, read from the catalog; `None` when it does
    /// not exist.
    async fn read_table(&self, table: &TableName) -> Result<Option<TableInfo>, WriteError> {
        let rows = self
            .client
            .query(
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), format_type(a.atttypid, NULL) \
                 FROM pg_attribute a \
                 JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relname = $1 AND n.nspname = coalesce($2, current_schema()) \
                 AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped",
                &[&table.name, &table.schema],
            )
            .await
            .map_err(pg(&self.address))?;
        if rows.is_empty() {
            return Ok(None);
        }
        let columns =
            rows.iter().map(|r| (r.get(0), ColumnType { full: r.get(1), base: r.get(2) })).collect();
        Ok(Some(TableInfo { columns }))
    }

    /// Makes sure `change`'s table exists with its columns: created or
    /// widened when the config allows, else an error naming what is missing.
    /// `false` for a delete or truncate of a table that does not exist
    /// (nothing to do).
    async fn prepare_table(&mut self, change: &Change, config: &SinkConfig) -> Result<bool, WriteError> {
        let wanted = change.key.iter().chain(&change.values);
        if let Some(info) = self.tables.get(&change.table) {
            if wanted.clone().all(|c| info.columns.contains_key(&c.name)) {
                return Ok(true);
            }
        }
        let info = match self.read_table(&change.table).await? {
            Some(info) => info,
            None if change.op != Op::Write => return Ok(false),
            None if config.create => {
                self.create_table(change).await?;
                self.read_table(&change.table).await?.ok_or_else(|| {
                    WriteError::Rejected(format!("table {} is not there after CREATE TABLE", change.table))
                })?
            }
            None => {
                return Err(WriteError::Rejected(format!(
                    "table {} does not exist: create it, or set schema.evolution=basic (or auto.create=true) \
                     to have the sink create it",
                    change.table
                )))
            }
        };
        let missing: Vec<&Column> = wanted.filter(|c| !info.columns.contains_key(&c.name)).collect();
        if !missing.is_empty() {
            if !config.evolve {
                let names: Vec<&str> = missing.iter().map(|c| c.name.as_str()).collect();
                return Err(WriteError::Rejected(format!(
                    "table {} has no column {}: add it, or set schema.evolution=basic",
                    change.table,
                    names.join(", ")
                )));
            }
            let mut sql = format!("ALTER TABLE {}", change.table.sql());
            for (i, column) in missing.iter().enumerate() {
                let t = column_type(&column.schema).map_err(|e| self.column_error(change, column, &e))?;
                sql.push_str(&format!(
                    "{} ADD COLUMN IF NOT EXISTS {} {t}",
                    if i > 0 { "," } else { "" },
                    quote(&column.name)
                ));
            }
            tracing::info!(table = %change.table, sql = %sql, "adding columns");
            self.client.batch_execute(&sql).await.map_err(pg(&self.address))?;
            self.statements.clear();
            let info = self.read_table(&change.table).await?.unwrap_or_default();
            self.tables.insert(change.table.clone(), info);
            return Ok(true);
        }
        self.tables.insert(change.table.clone(), info);
        Ok(true)
    }

    fn column_error(&self, change: &Change, column: &Column, reason: &str) -> WriteError {
        WriteError::Rejected(format!("table {}, column {}: {reason}", change.table, column.name))
    }

    async fn create_table(&mut self, change: &Change) -> Result<(), WriteError> {
        let mut parts = Vec::new();
        for column in change.key.iter().chain(&change.values) {
            let t = column_type(&column.schema).map_err(|e| self.column_error(change, column, &e))?;
            let is_key = change.key.iter().any(|k| k.name == column.name);
            let null = if is_key || !column.schema.is_optional() { " NOT NULL" } else { "" };
            parts.push(format!("{} {t}{null}", quote(&column.name)));
        }
        if !change.key.is_empty() {
            let key: Vec<String> = change.key.iter().map(|c| quote(&c.name)).collect();
            parts.push(format!("PRIMARY KEY ({})", key.join(", ")));
        }
        let sql = format!("CREATE TABLE IF NOT EXISTS {} ({})", change.table.sql(), parts.join(", "));
        tracing::info!(table = %change.table, sql = %sql, "creating table");
        self.client.batch_execute(&sql).await.map_err(pg(&self.address))
    }

    /// A prepared statement for `sql`, from the cache when seen before.
    async fn statement(&mut self, sql: String) -> Result<tokio_postgres::Statement, WriteError> {
        if let Some(s) = self.statements.get(&sql) {
            return Ok(s.clone());
        }
        let statement = self.client.prepare(&sql).await.map_err(pg(&self.address))?;
        if self.statements.len() >= 256 {
            self.statements.clear();
        }
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    /// Applies `changes` in order and records `next_offsets` for
    /// `connector`, all in one transaction.
    pub(crate) async fn write(
        &mut self,
        changes: &[Change],
        config: &SinkConfig,
        connector: &str,
        next_offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<usize, WriteError> {
        let mut kept = Vec::with_capacity(changes.len());
        for change in changes {
            if self.prepare_table(change, config).await? {
                kept.push(change);
            }
        }
        let changes = if config.reduction { reduce(kept) } else { kept };
        // Runs of one table, one kind and one column list.
        let mut runs: Vec<Vec<&Change>> = Vec::new();
        for &change in &changes {
            let same = runs.last().and_then(|run| run.first()).is_some_and(|first| {
                first.table == change.table
                    && first.op == change.op
                    && names(&first.key) == names(&change.key)
                    && names(&first.values) == names(&change.values)
            });
            match runs.last_mut() {
                Some(run) if same => run.push(change),
                _ => runs.push(vec![change]),
            }
        }
        let mut steps = Vec::new();
        for run in &runs {
            let copies = run[0].op == Op::Write && config.insert_mode != InsertMode::Update;
            if copies && run.len() >= COPY_FROM_ROWS {
                steps.push(self.copy_step(run, config.insert_mode).await?);
                continue;
            }
            let per_statement = config.batch_size.min(MAX_PARAMS / columns_of(run[0]).max(1)).max(1);
            for chunk in run.chunks(per_statement) {
                let (sql, params) = self.build(chunk, config.insert_mode)?;
                steps.push(Step::Sql(self.statement(sql).await?, params));
            }
        }
        let address = self.address.clone();
        let tx = self.client.transaction().await.map_err(pg(&address))?;
        for step in steps {
            match step {
                Step::Sql(statement, params) => {
                    tx.execute(&statement, &text_params(&params)).await.map_err(pg(&address))?;
                }
                Step::Copy { copy, data, then, empty } => {
                    let sink = tx.copy_in::<_, Bytes>(copy.as_str()).await.map_err(pg(&address))?;
                    futures::pin_mut!(sink);
                    sink.send(data).await.map_err(pg(&address))?;
                    sink.as_mut().finish().await.map_err(pg(&address))?;
                    tx.batch_execute(&then).await.map_err(pg(&address))?;
                    tx.batch_execute(&empty).await.map_err(pg(&address))?;
                }
            }
        }
        upsert_offsets(&tx, connector, next_offsets).await.map_err(pg(&address))?;
        tx.commit().await.map_err(pg(&address))?;
        Ok(changes.len())
    }

    /// Writes each change of `items` on its own, within one transaction
    /// (a savepoint each), after a batch failed on a row: a change the
    /// table refuses is rolled back and reported with the record it came
    /// from (`records[i]` for item `i`), the others are written, and the
    /// offsets are recorded. Reports happen before the commit, so a crash
    /// between them repeats a report rather than losing one.
    pub(crate) async fn write_each(
        &mut self,
        items: &[(usize, &Change)],
        records: &[SinkRecord],
        reporter: &dyn ErrantRecordReporter,
        config: &SinkConfig,
        connector: &str,
        next_offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<usize, WriteError> {
        let mut failures: Vec<(usize, String)> = Vec::new();
        let mut kept = Vec::with_capacity(items.len());
        for &(i, change) in items {
            match self.prepare_table(change, config).await {
                Ok(true) => kept.push((i, change)),
                Ok(false) => {}
                Err(e) if e.is_row_error() => failures.push((i, e.to_string())),
                Err(e) => return Err(e),
            }
        }
        let mut statements = Vec::with_capacity(kept.len());
        for &(i, change) in &kept {
            match self.build(&[change], config.insert_mode) {
                Ok((sql, params)) => statements.push((i, Some((self.statement(sql).await?, params)))),
                Err(e) if e.is_row_error() => failures.push((i, e.to_string())),
                Err(e) => return Err(e),
            }
        }
        let address = self.address.clone();
        let tx = self.client.transaction().await.map_err(pg(&address))?;
        for (i, statement) in statements {
            let Some((statement, params)) = statement else { continue };
            tx.batch_execute("SAVEPOINT runnel_row").await.map_err(pg(&address))?;
            match tx.execute(&statement, &text_params(&params)).await.map_err(pg(&address)) {
                Ok(_) => tx.batch_execute("RELEASE SAVEPOINT runnel_row").await.map_err(pg(&address))?,
                Err(e) if e.is_row_error() => {
                    tx.batch_execute("ROLLBACK TO SAVEPOINT runnel_row").await.map_err(pg(&address))?;
                    failures.push((i, e.to_string()));
                }
                Err(e) => return Err(e),
            }
        }
        upsert_offsets(&tx, connector, next_offsets).await.map_err(pg(&address))?;
        failures.sort_by_key(|(i, _)| *i);
        for (i, error) in &failures {
            reporter.report(&records[*i], error).await.map_err(WriteError::Report)?;
        }
        tx.commit().await.map_err(pg(&address))?;
        Ok(failures.len())
    }

    /// The `COPY` of a run of inserts or upserts (one table, one column
    /// list) into its temporary table, created on first use, and the
    /// statement that moves the rows into the target.
    async fn copy_step(&mut self, run: &[&Change], mode: InsertMode) -> Result<Step, WriteError> {
        let first = run[0];
        let columns: Vec<&Column> = first.key.iter().chain(&first.values).collect();
        let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
        let info = self.tables.get(&first.table).cloned().unwrap_or_default();
        let staging_key = (first.table.clone(), names.clone());
        let staging = match self.staging.get(&staging_key) {
            Some(name) => name.clone(),
            None => {
                let name = format!("runnel_staging_{}", self.staging.len());
                let defs: Vec<String> =
                    columns.iter().map(|c| format!("{} {}", quote(&c.name), info.full(&c.name))).collect();
                let sql =
                    format!("CREATE TEMPORARY TABLE {name} ({}) ON COMMIT DELETE ROWS", defs.join(", "));
                self.client.batch_execute(&sql).await.map_err(pg(&self.address))?;
                self.staging.insert(staging_key, name.clone());
                name
            }
        };
        let rows = self.rows_to_write(run, mode)?;
        let mut data = BytesMut::with_capacity(rows.len() * 64);
        for change in rows {
            for (i, column) in change.key.iter().chain(&change.values).enumerate() {
                if i > 0 {
                    data.put_u8(b'\t');
                }
                match encode(&column.schema, &column.value).map_err(|e| {
                    WriteError::Row(format!("table {}, column {}: {e}", first.table, column.name))
                })? {
                    None => data.put_slice(b"\\N"),
                    Some(text) => copy_escape(&mut data, &text),
                }
            }
            data.put_u8(b'\n');
        }
        let list = names.iter().map(|n| quote(n)).collect::<Vec<_>>().join(", ");
        let mut then = format!("INSERT INTO {} ({list}) SELECT {list} FROM {staging}", first.table.sql());
        if mode == InsertMode::Upsert && !first.key.is_empty() {
            then.push_str(&upsert_action(first));
        }
        Ok(Step::Copy {
            copy: format!("COPY {staging} ({list}) FROM STDIN"),
            data: data.freeze(),
            then,
            empty: format!("TRUNCATE {staging}"),
        })
    }

    /// The changes of `chunk` a statement writes: for upserts and updates,
    /// the last of each key (a statement may not touch a row twice, and the
    /// last write is the one that counts).
    fn rows_to_write<'a>(
        &self,
        chunk: &[&'a Change],
        mode: InsertMode,
    ) -> Result<Vec<&'a Change>, WriteError> {
        let first = chunk[0];
        if first.op != Op::Write || mode == InsertMode::Insert || first.key.is_empty() {
            return Ok(chunk.to_vec());
        }
        let mut last: HashMap<Vec<Option<String>>, usize> = HashMap::new();
        let mut keys = Vec::with_capacity(chunk.len());
        for (i, change) in chunk.iter().enumerate() {
            let key = key_text(change)?;
            last.insert(key.clone(), i);
            keys.push(key);
        }
        Ok(chunk
            .iter()
            .zip(keys)
            .enumerate()
            .filter(|(i, (_, k))| last.get(k) == Some(i))
            .map(|(_, (c, _))| *c)
            .collect())
    }

    /// One statement for `chunk` (changes of one table, kind and columns)
    /// and its text parameters.
    fn build(
        &self,
        chunk: &[&Change],
        mode: InsertMode,
    ) -> Result<(String, Vec<Option<String>>), WriteError> {
        let first = chunk[0];
        let table = first.table.sql();
        if first.op == Op::Truncate {
            return Ok((format!("TRUNCATE TABLE {table}"), Vec::new()));
        }
        let info = self.tables.get(&first.table).cloned().unwrap_or_default();
        let columns: Vec<&Column> = match first.op {
            Op::Delete => first.key.iter().collect(),
            _ => first.key.iter().chain(&first.values).collect(),
        };
        let rows = self.rows_to_write(chunk, mode)?;
        let mut params = Vec::with_capacity(rows.len() * columns.len());
        let mut values = String::new();
        for (r, change) in rows.iter().enumerate() {
            values.push_str(if r > 0 { ", (" } else { "(" });
            let row_columns: Vec<&Column> = match first.op {
                Op::Delete => change.key.iter().collect(),
                _ => change.key.iter().chain(&change.values).collect(),
            };
            for (i, column) in row_columns.iter().enumerate() {
                let text = encode(&column.schema, &column.value).map_err(|e| {
                    WriteError::Row(format!("table {}, column {}: {e}", first.table, column.name))
                })?;
                params.push(text);
                let t = info.base(&column.name);
                values.push_str(&format!("{}${}::text::{t}", if i > 0 { ", " } else { "" }, params.len()));
            }
            values.push(')');
        }
        let list = |cols: &[&Column]| cols.iter().map(|c| quote(&c.name)).collect::<Vec<_>>().join(", ");
        let key: Vec<&Column> = first.key.iter().collect();
        let rest: Vec<&Column> = first.values.iter().collect();
        let sql = match (first.op, mode) {
            (Op::Delete, _) => format!("DELETE FROM {table} WHERE ({}) IN (VALUES {values})", list(&key)),
            (_, InsertMode::Insert) => format!("INSERT INTO {table} ({}) VALUES {values}", list(&columns)),
            (_, InsertMode::Upsert) => {
                format!("INSERT INTO {table} ({}) VALUES {values}{}", list(&columns), upsert_action(first))
            }
            (_, InsertMode::Update) => {
                if rest.is_empty() {
                    return Ok(("SELECT 1 WHERE false".into(), Vec::new()));
                }
                let set: Vec<String> = rest.iter().map(|c| format!("{0} = v.{0}", quote(&c.name))).collect();
                let on: Vec<String> = key.iter().map(|c| format!("t.{0} = v.{0}", quote(&c.name))).collect();
                format!(
                    "UPDATE {table} AS t SET {} FROM (VALUES {values}) AS v ({}) WHERE {}",
                    set.join(", "),
                    list(&columns),
                    on.join(" AND ")
                )
            }
        };
        Ok((sql, params))
    }
}

/// Records `next_offsets` for `connector` in the offsets table, within
/// the batch's transaction.
async fn upsert_offsets(
    tx: &tokio_postgres::Transaction<'_>,
    connector: &str,
    next_offsets: &BTreeMap<TopicPartition, i64>,
) -> Result<(), tokio_postgres::Error> {
    if next_offsets.is_empty() {
        return Ok(());
    }
    let mut sql = format!("INSERT INTO {OFFSETS_TABLE} (connector, topic, partition, next_offset) VALUES ");
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    for (i, (tp, next)) in next_offsets.iter().enumerate() {
        let n = 4 * i;
        sql.push_str(&format!(
            "{}(${}, ${}, ${}, ${})",
            if i > 0 { ", " } else { "" },
            n + 1,
            n + 2,
            n + 3,
            n + 4
        ));
        params.push(Box::new(connector.to_string()));
        params.push(Box::new(tp.topic.to_string()));
        params.push(Box::new(tp.partition));
        params.push(Box::new(*next));
    }
    sql.push_str(
        " ON CONFLICT (connector, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset",
    );
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
    tx.execute(sql.as_str(), &refs).await.map(|_| ())
}

/// ` ON CONFLICT (key) DO UPDATE SET c = EXCLUDED.c, …` (or `DO NOTHING`
/// when every column is in the key).
fn upsert_action(change: &Change) -> String {
    let key: Vec<String> = change.key.iter().map(|c| quote(&c.name)).collect();
    let action = if change.values.is_empty() {
        "DO NOTHING".to_string()
    } else {
        let set: Vec<String> =
            change.values.iter().map(|c| format!("{0} = EXCLUDED.{0}", quote(&c.name))).collect();
        format!("DO UPDATE SET {}", set.join(", "))
    };
    format!(" ON CONFLICT ({}) {action}", key.join(", "))
}

/// Appends `text` as a field of `COPY`'s text format (backslash escapes).
fn copy_escape(out: &mut BytesMut, text: &str) {
    for b in text.bytes() {
        match b {
            b'\\' => out.put_slice(b"\\\\"),
            b'\t' => out.put_slice(b"\\t"),
            b'\n' => out.put_slice(b"\\n"),
            b'\r' => out.put_slice(b"\\r"),
            other => out.put_u8(other),
        }
    }
}

/// Text parameters as `execute` takes them.
fn text_params(params: &[Option<String>]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

fn names(columns: &[Column]) -> Vec<&str> {
    columns.iter().map(|c| c.name.as_str()).collect()
}

fn columns_of(change: &Change) -> usize {
    change.key.len() + change.values.len()
}

/// A key's columns as text (`None`: NULL), to compare keys.
type KeyText = Vec<Option<String>>;

/// A change's key as text, to compare keys.
fn key_text(change: &Change) -> Result<KeyText, WriteError> {
    change
        .key
        .iter()
        .map(|c| {
            encode(&c.schema, &c.value).map_err(|e| WriteError::Row(format!("key column {}: {e}", c.name)))
        })
        .collect()
}

/// `use.reduction.buffer`: of the changes to one key of one table between
/// truncates, only the last is kept (in its place).
fn reduce(changes: Vec<&Change>) -> Vec<&Change> {
    // Each keyed change's identity: table, key (`None` when it cannot be
    // written as text: the change is dropped) and truncate epoch.
    let mut epoch = 0;
    let ids: Vec<Option<(&TableName, Option<KeyText>, usize)>> = changes
        .iter()
        .map(|change| {
            if change.op == Op::Truncate {
                epoch += 1;
                return None;
            }
            (!change.key.is_empty()).then(|| (&change.table, key_text(change).ok(), epoch))
        })
        .collect();
    let mut last = HashMap::new();
    for (i, id) in ids.iter().enumerate() {
        if let Some(id @ (_, Some(_), _)) = id {
            last.insert(id, i);
        }
    }
    changes
        .iter()
        .zip(&ids)
        .enumerate()
        .filter(|(i, (_, id))| id.as_ref().is_none_or(|id| last.get(id) == Some(i)))
        .map(|(_, (change, _))| *change)
        .collect()
}
