//! What the CDC source reads from PostgreSQL's catalog: tables, their
//! columns (nullability, primary key) and column types (domains, enums,
//! arrays), over an ordinary SQL connection.
//!
//! pgoutput's Relation message gives each column's name, type and type
//! modifier as of the change; nullability and the primary key come from
//! here, matched by column name (as Debezium refreshes its schema).

use std::collections::HashMap;
use std::sync::Arc;

use tokio_postgres::Client;

use super::types::PgType;
use crate::postgres::conn::PgError;

/// One row of `pg_type`.
#[derive(Clone, Debug)]
struct TypeInfo {
    name: String,
    namespace: String,
    /// `b` base, `d` domain, `e` enum, `r` range, `c` composite, `p` pseudo.
    typtype: u8,
    /// `A` for arrays.
    category: u8,
    element: u32,
    base: u32,
    /// A domain's type modifier.
    typmod: i32,
    enum_labels: Option<Arc<[String]>>,
}

/// Column types by OID, loaded on demand and cached.
#[derive(Debug, Default)]
pub(crate) struct TypeCatalog {
    types: HashMap<u32, TypeInfo>,
}

impl TypeCatalog {
    /// Loads the types of `oids` (and the types they are built on) that
    /// are not cached yet; `refresh` reloads them (a Type message said one
    /// changed, say an enum got a label).
    ///
    /// # Errors
    /// When the catalog cannot be read.
    pub(crate) async fn load(&mut self, client: &Client, oids: &[u32], refresh: bool) -> Result<(), PgError> {
        let mut wanted: Vec<u32> =
            oids.iter().copied().filter(|o| refresh || !self.types.contains_key(o)).collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut rounds = 0;
        while !wanted.is_empty() && rounds < 8 {
            rounds += 1;
            let rows = client
                .query(
                    "SELECT t.oid, t.typname::text, n.nspname::text, t.typtype, t.typcategory, t.typelem, \
                     t.typbasetype, t.typtypmod, \
                     CASE WHEN t.typtype = 'e' THEN ARRAY(SELECT e.enumlabel::text FROM pg_enum e \
                          WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder) END \
                     FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.oid = ANY($1)",
                    &[&wanted],
                )
                .await
                .map_err(|e| PgError::from_sql(e, "catalog"))?;
            let mut next = Vec::new();
            for row in rows {
                let oid: u32 = row.get(0);
                let info = TypeInfo {
                    name: row.get(1),
                    namespace: row.get(2),
                    typtype: row.get::<_, i8>(3) as u8,
                    category: row.get::<_, i8>(4) as u8,
                    element: row.get(5),
                    base: row.get(6),
                    typmod: row.get(7),
                    enum_labels: row.get::<_, Option<Vec<String>>>(8).map(Arc::from),
                };
                for dep in [info.element, info.base] {
                    if dep != 0 && !self.types.contains_key(&dep) {
                        next.push(dep);
                    }
                }
                self.types.insert(oid, info);
            }
            next.sort_unstable();
            next.dedup();
            wanted = next;
        }
        Ok(())
    }

    /// The type of a column with type `oid` and modifier `typmod` (load
    /// it first).
    pub(crate) fn resolve(&self, oid: u32, typmod: i32) -> PgType {
        self.resolve_depth(oid, typmod, 0)
    }

    fn resolve_depth(&self, oid: u32, typmod: i32, depth: u32) -> PgType {
        let Some(t) = self.types.get(&oid) else { return PgType::Unknown(format!("type oid {oid}")) };
        if depth > 8 {
            return PgType::Unknown(t.name.clone());
        }
        match t.typtype {
            b'd' => self.resolve_depth(t.base, if t.typmod >= 0 { t.typmod } else { typmod }, depth + 1),
            b'e' => PgType::Enum(t.enum_labels.clone().unwrap_or_else(|| Arc::from(Vec::new()))),
            _ if t.category == b'A' && t.element != 0 => {
                PgType::Array(Box::new(self.resolve_depth(t.element, typmod, depth + 1)))
            }
            b'r' => PgType::Text,
            _ => {
                let builtin = t.namespace == "pg_catalog" || matches!(t.name.as_str(), "citext" | "ltree");
                builtin
                    .then(|| PgType::builtin(&t.name, typmod))
                    .flatten()
                    .unwrap_or(PgType::Unknown(t.name.clone()))
            }
        }
    }
}

/// A table as the catalog describes it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TableInfo {
    pub(crate) oid: u32,
    pub(crate) schema: String,
    pub(crate) name: String,
    /// `d`, `n`, `f` or `i`.
    pub(crate) replica_identity: u8,
    /// Columns in order, generated and dropped ones left out (pgoutput
    /// never sends them).
    pub(crate) columns: Vec<ColumnInfo>,
    /// Primary key column names in key order.
    pub(crate) primary_key: Vec<String>,
}

/// One column of [`TableInfo`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ColumnInfo {
    pub(crate) name: String,
    pub(crate) type_oid: u32,
    pub(crate) type_modifier: i32,
    pub(crate) not_null: bool,
}

/// Every ordinary and partitioned table outside the system schemas, as
/// `(oid, schema, name)`.
///
/// # Errors
/// When the catalog cannot be read.
pub(crate) async fn list_tables(client: &Client) -> Result<Vec<(u32, String, String)>, PgError> {
    let rows = client
        .query(
            "SELECT c.oid, n.nspname::text, c.relname::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
             AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%' \
             ORDER BY n.nspname, c.relname",
            &[],
        )
        .await
        .map_err(|e| PgError::from_sql(e, "catalog"))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
}

/// A table's columns, primary key and replica identity; `None` when no
/// table has this OID (any more).
///
/// # Errors
/// When the catalog cannot be read.
pub(crate) async fn describe_table(client: &Client, oid: u32) -> Result<Option<TableInfo>, PgError> {
    let sql = |e| PgError::from_sql(e, "catalog");
    let Some(table) = client
        .query_opt(
            "SELECT n.nspname::text, c.relname::text, c.relreplident FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
            &[&oid],
        )
        .await
        .map_err(sql)?
    else {
        return Ok(None);
    };
    let columns = client
        .query(
            "SELECT a.attname::text, a.atttypid, a.atttypmod, a.attnotnull FROM pg_attribute a \
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' \
             ORDER BY a.attnum",
            &[&oid],
        )
        .await
        .map_err(sql)?
        .iter()
        .map(|r| ColumnInfo {
            name: r.get(0),
            type_oid: r.get(1),
            type_modifier: r.get(2),
            not_null: r.get(3),
        })
        .collect();
    let primary_key = client
        .query(
            "SELECT a.attname::text FROM pg_index i \
             CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
             WHERE i.indrelid = $1 AND i.indisprimary ORDER BY k.ord",
            &[&oid],
        )
        .await
        .map_err(sql)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(Some(TableInfo {
        oid,
        schema: table.get(0),
        name: table.get(1),
        replica_identity: table.get::<_, i8>(2) as u8,
        columns,
        primary_key,
    }))
}
