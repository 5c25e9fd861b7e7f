//! A captured table's Debezium schemas (Key, Value, Envelope) and the
//! conversion of row images into them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use runnel_connect::data::{Schema, SchemaBuilder, SchemaType, Struct, Value};
use tracing::warn;

use super::catalog::{TableInfo, TypeCatalog};
use super::config::CdcConfig;
use super::pgoutput::Datum;
use super::types::PgType;

/// Debezium's Envelope schema version (2.7 and later).
const ENVELOPE_VERSION: i32 = 2;

/// The values `source.snapshot` takes (Debezium 3.1's list).
const SNAPSHOT_VALUES: &str =
    "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental";

/// One column as events carry it.
#[derive(Debug)]
pub(crate) struct Column {
    pub(crate) name: String,
    pub(crate) pg_type: PgType,
    /// The field's schema in the Value struct.
    pub(crate) schema: Schema,
    /// Left out of events by `column.include/exclude.list` (key columns
    /// stay in the key).
    pub(crate) included: bool,
    /// A conversion problem was logged for this column already.
    warned: AtomicBool,
}

/// A captured table, with the schemas of its events.
#[derive(Debug)]
pub(crate) struct Table {
    pub(crate) schema: String,
    pub(crate) name: String,
    /// `<prefix>.<schema>.<table>`.
    pub(crate) topic: Arc<str>,
    /// In the order of the stream's (or the snapshot query's) row images.
    pub(crate) columns: Vec<Column>,
    /// Indices into `columns` of the primary key, in key order.
    pub(crate) key_columns: Vec<usize>,
    pub(crate) key_schema: Option<Schema>,
    pub(crate) value_schema: Schema,
    pub(crate) envelope_schema: Schema,
}

/// The `source` block's schema.
pub(crate) fn source_schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let s = |t| Schema::of(t);
        let o = |t| Schema::optional_of(t);
        SchemaBuilder::structure()
            .name("io.debezium.connector.postgresql.Source")
            .version(1)
            .field("version", s(SchemaType::String))
            .field("connector", s(SchemaType::String))
            .field("name", s(SchemaType::String))
            .field("ts_ms", s(SchemaType::Int64))
            .field(
                "snapshot",
                SchemaBuilder::string()
                    .optional()
                    .name("io.debezium.data.Enum")
                    .version(1)
                    .parameter("allowed", SNAPSHOT_VALUES)
                    .default_value(Value::String("false".into()))
                    .build()
                    .expect("valid schema"),
            )
            .field("db", s(SchemaType::String))
            .field("sequence", o(SchemaType::String))
            .field("ts_us", o(SchemaType::Int64))
            .field("ts_ns", o(SchemaType::Int64))
            .field("schema", s(SchemaType::String))
            .field("table", s(SchemaType::String))
            .field("txId", o(SchemaType::Int64))
            .field("lsn", o(SchemaType::Int64))
            .field("xmin", o(SchemaType::Int64))
            .build()
            .expect("valid schema")
    })
}

/// The envelope's optional `transaction` block (always null here:
/// `provide.transaction.metadata` is not supported).
fn transaction_schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        SchemaBuilder::structure()
            .name("event.block")
            .version(1)
            .optional()
            .field("id", Schema::of(SchemaType::String))
            .field("total_order", Schema::of(SchemaType::Int64))
            .field("data_collection_order", Schema::of(SchemaType::Int64))
            .build()
            .expect("valid schema")
    })
}

/// A column of a row image: its name, type and modifier (from a Relation
/// message or the catalog).
pub(crate) struct ColumnSource<'a> {
    pub(crate) name: &'a str,
    pub(crate) type_oid: u32,
    pub(crate) type_modifier: i32,
}

impl Table {
    /// The table's schemas for row images with `columns` (in image order),
    /// with nullability and the primary key from `info` (matched by name;
    /// a column the catalog no longer has is nullable and not in the key).
    pub(crate) fn build(
        config: &CdcConfig,
        info: &TableInfo,
        columns: &[ColumnSource<'_>],
        types: &TypeCatalog,
    ) -> Table {
        let prefix = format!("{}.{}.{}", config.topic_prefix, info.schema, info.name);
        let mut cols = Vec::with_capacity(columns.len());
        for c in columns {
            let pg_type = types.resolve(c.type_oid, c.type_modifier);
            let not_null = info.columns.iter().find(|i| i.name == c.name).is_some_and(|i| i.not_null);
            let mut builder = pg_type.schema(&config.modes);
            if !not_null {
                builder = builder.optional();
            }
            let schema = builder.build().expect("column schemas are valid");
            if pg_type.is_unknown() {
                warn!(
                    table = %format!("{}.{}", info.schema, info.name),
                    column = c.name,
                    r#type = %pg_type.describe(),
                    "no mapping for this column type: its values are sent as text"
                );
            }
            let included = config.columns.matches(&format!("{}.{}.{}", info.schema, info.name, c.name));
            cols.push(Column {
                name: c.name.to_string(),
                pg_type,
                schema,
                included,
                warned: AtomicBool::new(false),
            });
        }
        let key_columns: Vec<usize> =
            info.primary_key.iter().filter_map(|k| cols.iter().position(|c| &c.name == k)).collect();
        let key_schema =
            (!key_columns.is_empty() && key_columns.len() == info.primary_key.len()).then(|| {
                let mut b = SchemaBuilder::structure().name(format!("{prefix}.Key"));
                for &i in &key_columns {
                    b = b.field(cols[i].name.clone(), cols[i].schema.clone());
                }
                b.build().expect("valid key schema")
            });
        let key_columns = if key_schema.is_some() { key_columns } else { Vec::new() };
        let mut value = SchemaBuilder::structure().name(format!("{prefix}.Value")).optional();
        for c in cols.iter().filter(|c| c.included) {
            value = value.field(c.name.clone(), c.schema.clone());
        }
        let value_schema = value.build().expect("valid value schema");
        let envelope_schema = SchemaBuilder::structure()
            .name(format!("{prefix}.Envelope"))
            .version(ENVELOPE_VERSION)
            .field("before", value_schema.clone())
            .field("after", value_schema.clone())
            .field("source", source_schema().clone())
            .field("transaction", transaction_schema().clone())
            .field("op", Schema::of(SchemaType::String))
            .field("ts_ms", Schema::optional_of(SchemaType::Int64))
            .field("ts_us", Schema::optional_of(SchemaType::Int64))
            .field("ts_ns", Schema::optional_of(SchemaType::Int64))
            .build()
            .expect("valid envelope schema");
        Table {
            schema: info.schema.clone(),
            name: info.name.clone(),
            topic: Arc::from(prefix.as_str()),
            columns: cols,
            key_columns,
            key_schema,
            value_schema,
            envelope_schema,
        }
    }

    /// `schema.table`.
    pub(crate) fn qualified_name(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// The columns' names, in row-image order.
    pub(crate) fn column_names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }

    /// The row image `datums` (one per column, in column order) as the
    /// Value struct.
    pub(crate) fn row(&self, datums: &[Datum], config: &CdcConfig, key_only_image: bool) -> Struct {
        let mut values = Vec::with_capacity(self.value_schema.fields().len());
        for (i, column) in self.columns.iter().enumerate() {
            if !column.included {
                continue;
            }
            let datum = datums.get(i).unwrap_or(&Datum::Null);
            values.push(self.convert(i, datum, config, key_only_image));
        }
        Struct::with_values(self.value_schema.clone(), values).unwrap_or_else(|e| {
            warn!(table = %self.qualified_name(), error = %e, "row image does not fit its schema");
            Struct::new(self.value_schema.clone()).expect("a struct schema")
        })
    }

    /// The key struct of a row image; `None` for a table without a
    /// primary key.
    pub(crate) fn key(&self, datums: &[Datum], config: &CdcConfig) -> Option<Struct> {
        let schema = self.key_schema.as_ref()?;
        let values = self
            .key_columns
            .iter()
            .map(|&i| self.convert(i, datums.get(i).unwrap_or(&Datum::Null), config, false))
            .collect();
        Struct::with_values(schema.clone(), values).ok()
    }

    fn convert(&self, index: usize, datum: &Datum, config: &CdcConfig, key_only_image: bool) -> Value {
        let column = &self.columns[index];
        match datum {
            Datum::Text(bytes) | Datum::Binary(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => match column.pg_type.convert(text, &config.modes, &column.schema) {
                    Ok(v) => v,
                    Err(reason) => self.failed(column, &reason),
                },
                Err(_) => self.failed(column, "the value is not UTF-8"),
            },
            // A key-only old image leaves non-key columns null; NOT NULL
            // ones get their type's zero value, as Debezium's do.
            Datum::Null if key_only_image && !column.schema.is_optional() => zero_value(&column.schema),
            Datum::Null => Value::Null,
            Datum::Unchanged => unavailable(&column.schema, &config.unavailable_value_placeholder),
        }
    }

    fn failed(&self, column: &Column, reason: &str) -> Value {
        if !column.warned.swap(true, Ordering::Relaxed) {
            warn!(
                table = %self.qualified_name(),
                column = column.name,
                error = reason,
                "value not converted; sent as null (further failures of this column are not logged)"
            );
        }
        if column.schema.is_optional() {
            Value::Null
        } else {
            zero_value(&column.schema)
        }
    }
}

/// Debezium's value for an unchanged TOASTed column: the placeholder, as
/// a string or its bytes (in an array for array columns).
fn unavailable(schema: &Schema, placeholder: &str) -> Value {
    match schema.schema_type() {
        SchemaType::String => Value::String(placeholder.to_string()),
        SchemaType::Bytes if schema.name().is_none() => Value::Bytes(placeholder.as_bytes().to_vec()),
        SchemaType::Array => match schema.value_schema() {
            Some(element) => Value::Array(vec![unavailable(element, placeholder)]),
            None => Value::Null,
        },
        _ if schema.is_optional() => Value::Null,
        _ => zero_value(schema),
    }
}

/// The zero of a schema's type (`0`, `""`, `false`, empty bytes or
/// array), for a NOT NULL column with no value in an image.
fn zero_value(schema: &Schema) -> Value {
    match schema.schema_type() {
        SchemaType::Int8 => Value::Int8(0),
        SchemaType::Int16 => Value::Int16(0),
        SchemaType::Int32 => Value::Int32(0),
        SchemaType::Int64 => Value::Int64(0),
        SchemaType::Float32 => Value::Float32(0.0),
        SchemaType::Float64 => Value::Float64(0.0),
        SchemaType::Boolean => Value::Boolean(false),
        SchemaType::String => Value::String(String::new()),
        SchemaType::Bytes => Value::Bytes(vec![0]),
        SchemaType::Array => Value::Array(Vec::new()),
        SchemaType::Map => Value::Map(Vec::new()),
        SchemaType::Struct => {
            let mut s = Struct::new(schema.clone()).expect("a struct schema");
            for field in schema.fields() {
                let _ = s.put(field.name(), zero_value(field.schema()));
            }
            Value::Struct(s)
        }
    }
}
