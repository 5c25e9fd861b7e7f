//! What a sink record asks of a table: a row to write, a key to delete, or
//! a truncate, read from a Debezium change event (by its `op`), a
//! flattened row (a struct value), or a tombstone.

use runnel_connect::data::{Schema, SchemaBuilder, SchemaType, Struct, Value};
use runnel_connect::plugin::SinkRecord;

use super::config::{PrimaryKeyMode, SinkConfig};

/// A table, schema-qualified or not.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct TableName {
    pub(crate) schema: Option<String>,
    pub(crate) name: String,
}

/// `"name"` with inner quotes doubled.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl TableName {
    /// The table of `topic` under `collection.name.format`: `${topic}` is
    /// the topic with its dots replaced by underscores; a dot left in the
    /// result separates schema and table.
    pub(crate) fn of_topic(format: &str, topic: &str, keep_case: bool) -> TableName {
        let name = format.replace("${topic}", &topic.replace('.', "_"));
        let name = if keep_case { name } else { name.to_lowercase() };
        match name.split_once('.') {
            Some((schema, table)) => TableName { schema: Some(schema.to_string()), name: table.to_string() },
            None => TableName { schema: None, name },
        }
    }

    /// The quoted, qualified name for SQL.
    pub(crate) fn sql(&self) -> String {
        match &self.schema {
            Some(schema) => format!("{}.{}", quote(schema), quote(&self.name)),
            None => quote(&self.name),
        }
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.schema {
            Some(schema) => write!(f, "{schema}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// One column's value in a change.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Column {
    pub(crate) name: String,
    pub(crate) schema: Schema,
    pub(crate) value: Value,
}

/// What to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Op {
    /// Write the row (insert, upsert or update per `insert.mode`).
    Write,
    /// Delete the row of the key.
    Delete,
    /// Empty the table.
    Truncate,
}

/// One change to one table.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Change {
    pub(crate) table: TableName,
    pub(crate) op: Op,
    /// The primary key's columns (empty with `primary.key.mode=none`).
    pub(crate) key: Vec<Column>,
    /// The other columns (empty for deletes and truncates).
    pub(crate) values: Vec<Column>,
}

/// Whether `schema` is a Debezium change event's envelope.
fn is_envelope(schema: &Schema) -> bool {
    schema.schema_type() == SchemaType::Struct
        && (schema.name().is_some_and(|n| n.ends_with(".Envelope") || n.ends_with("Envelope"))
            || ["op", "before", "after"].iter().all(|f| schema.field(f).is_some()))
}

fn columns_of(row: &Struct, keep_case: bool) -> Vec<Column> {
    row.schema()
        .fields()
        .iter()
        .map(|f| Column {
            name: column_name(f.name(), keep_case),
            schema: f.schema().clone(),
            value: row.get(f.name()).cloned().unwrap_or(Value::Null),
        })
        .collect()
}

fn column_name(name: &str, keep_case: bool) -> String {
    if keep_case {
        name.to_string()
    } else {
        name.to_lowercase()
    }
}

/// Reads what `record` asks for; `None` when it asks for nothing under this
/// config (a delete with `delete.enabled=false`, a truncate with
/// `truncate.enabled=false`).
pub(crate) fn change_of(record: &SinkRecord, config: &SinkConfig) -> Result<Option<Change>, String> {
    let r = &record.record;
    let keep_case = config.quote_identifiers;
    let table = TableName::of_topic(&config.table_format, &r.topic, keep_case);
    let (op, row) = match (&r.value_schema, &r.value) {
        // A tombstone, or a flattened delete (value null, schema kept).
        (_, Value::Null) => (Op::Delete, None),
        (Some(schema), Value::Struct(s)) if is_envelope(schema) => {
            let op = s.get("op").ok().and_then(Value::as_str).unwrap_or("");
            match op {
                "c" | "r" | "u" => match s.get("after") {
                    Ok(Value::Struct(after)) => (Op::Write, Some(after)),
                    _ => return Err(format!("a change event with op `{op}` but no `after` row")),
                },
                "d" => (Op::Delete, None),
                "t" => (Op::Truncate, None),
                other => return Err(format!("a change event with unknown op `{other}`")),
            }
        }
        (Some(_), Value::Struct(s)) => (Op::Write, Some(s)),
        (None, _) => {
            return Err("the value has no schema: the Postgres sink needs schema'd records \
                        (JsonConverter with schemas.enable=true, or Avro)"
                .into())
        }
        (Some(schema), value) => {
            return Err(format!(
                "the value is a {} ({}), not a struct: a row needs named fields",
                value.type_name(),
                schema.schema_type().name()
            ))
        }
    };
    match op {
        Op::Delete if !config.delete_enabled => return Ok(None),
        Op::Truncate if !config.truncate_enabled => return Ok(None),
        Op::Truncate => return Ok(Some(Change { table, op, key: Vec::new(), values: Vec::new() })),
        _ => {}
    }
    let mut values = row.map(|row| columns_of(row, keep_case)).unwrap_or_default();
    let named = |fields: &[String], columns: &mut Vec<Column>, what: &str| -> Result<Vec<Column>, String> {
        fields
            .iter()
            .map(|f| {
                let name = column_name(f, keep_case);
                let at = columns.iter().position(|c| c.name == name).ok_or_else(|| {
                    format!("primary.key.fields names `{f}`, which the {what} does not have")
                })?;
                Ok(columns.remove(at))
            })
            .collect()
    };
    let key = match config.primary_key_mode {
        PrimaryKeyMode::None => Vec::new(),
        PrimaryKeyMode::Kafka => {
            let column = |name: &str, t: SchemaType, value: Value| Column {
                name: name.to_string(),
                schema: SchemaBuilder::new(t).build().expect("a primitive schema"),
                value,
            };
            vec![
                column(
                    "__connect_topic",
                    SchemaType::String,
                    Value::String(record.original.topic.to_string()),
                ),
                column("__connect_partition", SchemaType::Int32, Value::Int32(record.original.partition)),
                column("__connect_offset", SchemaType::Int64, Value::Int64(record.offset)),
            ]
        }
        PrimaryKeyMode::RecordKey => {
            let key = match (&r.key_schema, &r.key) {
                (_, Value::Null) => {
                    return Err("primary.key.mode=record_key but the record has no key".into())
                }
                (Some(_), Value::Struct(k)) => {
                    let mut all = columns_of(k, keep_case);
                    if config.primary_key_fields.is_empty() {
                        all
                    } else {
                        named(&config.primary_key_fields, &mut all, "record key")?
                    }
                }
                (Some(schema), value) => {
                    let Some(name) = config.primary_key_fields.first() else {
                        return Err(
                            "the record key is a primitive: name its column in primary.key.fields".into()
                        );
                    };
                    vec![Column {
                        name: column_name(name, keep_case),
                        schema: schema.clone(),
                        value: value.clone(),
                    }]
                }
                (None, _) => return Err("primary.key.mode=record_key but the key has no schema".into()),
            };
            // The key's columns come from the key, not the value.
            values.retain(|c| !key.iter().any(|k| k.name == c.name));
            key
        }
        PrimaryKeyMode::RecordValue => {
            if op == Op::Delete {
                return Ok(None);
            }
            if config.primary_key_fields.is_empty() {
                std::mem::take(&mut values)
            } else {
                named(&config.primary_key_fields, &mut values, "record value")?
            }
        }
    };
    if op == Op::Delete {
        values.clear();
    }
    Ok(Some(Change { table, op, key, values }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_connect::record::ConnectRecord;
    use runnel_core::topic::TopicPartition;

    fn config(pk: PrimaryKeyMode, delete: bool) -> SinkConfig {
        let props: std::collections::HashMap<String, String> = [
            ("connection.url", "jdbc:postgresql://h/db"),
            ("connection.username", "u"),
            ("truncate.enabled", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut c = SinkConfig::parse("s", &props).unwrap();
        c.primary_key_mode = pk;
        c.delete_enabled = delete;
        c
    }

    fn row_schema() -> Schema {
        SchemaBuilder::structure()
            .name("dbserver1.public.orders.Value")
            .field("ID", Schema::of(SchemaType::Int32))
            .field("note", Schema::optional_of(SchemaType::String))
            .optional()
            .build()
            .unwrap()
    }

    fn row(id: i32, note: &str) -> Struct {
        Struct::with_values(row_schema(), vec![Value::Int32(id), Value::String(note.into())]).unwrap()
    }

    fn envelope(op: &str, after: Option<Struct>) -> (Schema, Value) {
        let optional_row = row_schema();
        let schema = SchemaBuilder::structure()
            .name("dbserver1.public.orders.Envelope")
            .field("before", optional_row.clone())
            .field("after", optional_row)
            .field("op", Schema::of(SchemaType::String))
            .build()
            .unwrap();
        let after = after.map_or(Value::Null, Value::Struct);
        let value =
            Struct::with_values(schema.clone(), vec![Value::Null, after, Value::String(op.into())]).unwrap();
        (schema, Value::Struct(value))
    }

    fn record(key: Option<i32>, value_schema: Option<Schema>, value: Value) -> SinkRecord {
        let key_schema =
            SchemaBuilder::structure().field("id", Schema::of(SchemaType::Int32)).build().unwrap();
        let mut r =
            ConnectRecord::new("dbserver1.public.orders", Value::Null).with_value(value_schema, value);
        if let Some(id) = key {
            r = r.with_key(
                Some(key_schema.clone()),
                Value::Struct(Struct::with_values(key_schema, vec![Value::Int32(id)]).unwrap()),
            );
        }
        SinkRecord {
            record: r,
            original: TopicPartition::new("dbserver1.public.orders", 3),
            offset: 42,
            raw: None,
        }
    }

    #[test]
    fn change_events_are_applied_as_their_op_says() {
        let c = config(PrimaryKeyMode::RecordKey, true);
        let (schema, value) = envelope("u", Some(row(7, "x")));
        let change = change_of(&record(Some(7), Some(schema), value), &c).unwrap().unwrap();
        assert_eq!(change.table, TableName { schema: None, name: "dbserver1_public_orders".into() });
        assert_eq!(change.op, Op::Write);
        let names = |cols: &[Column]| cols.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&change.key), vec!["id"]);
        assert_eq!(names(&change.values), vec!["note"], "the key's column comes from the key");
        let (schema, value) = envelope("d", None);
        let delete = change_of(&record(Some(7), Some(schema.clone()), value.clone()), &c).unwrap().unwrap();
        assert_eq!((delete.op, delete.values.len()), (Op::Delete, 0));
        let tombstone = change_of(&record(Some(7), None, Value::Null), &c).unwrap().unwrap();
        assert_eq!(tombstone.op, Op::Delete);
        let off = config(PrimaryKeyMode::RecordKey, false);
        assert_eq!(change_of(&record(Some(7), Some(schema), value), &off).unwrap(), None, "deletes off");
        let (schema, value) = envelope("t", None);
        assert_eq!(change_of(&record(None, Some(schema), value), &c).unwrap().unwrap().op, Op::Truncate);
    }

    #[test]
    fn key_modes_pick_their_columns_and_bad_records_say_why() {
        let plain = record(None, Some(row_schema()), Value::Struct(row(1, "a")));
        let kafka = change_of(&plain, &config(PrimaryKeyMode::Kafka, false)).unwrap().unwrap();
        assert_eq!(kafka.key[2].value, Value::Int64(42));
        assert_eq!(kafka.key[1].value, Value::Int32(3));
        assert_eq!(kafka.values.len(), 2);
        let mut by_value = config(PrimaryKeyMode::RecordValue, false);
        by_value.primary_key_fields = vec!["id".into()];
        let change = change_of(&plain, &by_value).unwrap().unwrap();
        assert_eq!((change.key.len(), change.values.len()), (1, 1));
        by_value.primary_key_fields = vec!["nope".into()];
        assert!(change_of(&plain, &by_value).unwrap_err().contains("`nope`"));
        let err = change_of(&plain, &config(PrimaryKeyMode::RecordKey, false)).unwrap_err();
        assert!(err.contains("no key"), "{err}");
        let schemaless = record(None, None, Value::String("x".into()));
        assert!(change_of(&schemaless, &config(PrimaryKeyMode::None, false))
            .unwrap_err()
            .contains("schemas.enable"));
        assert_eq!(TableName::of_topic("archive.${topic}", "a.B", false).sql(), "\"archive\".\"a_b\"");
    }
}
