//! The JSON shapes of Kafka Connect's REST API, built from the worker's
//! types, and the parsing of request bodies and query strings.
//!
//! ```text
//! ConnectorInfo      {"name", "config": {k: v}, "tasks": [{"connector", "task"}], "type": "source"|"sink"}
//! ConnectorStateInfo {"name", "connector": {"state", "worker_id", "trace"?},
//!                     "tasks": [{"id", "state", "worker_id", "trace"?}], "type"}
//! TaskInfo           {"id": {"connector", "task"}, "config": {k: v}}
//! ConfigInfos        {"name", "error_count", "groups": [..], "configs": [{"definition": {..}, "value": {..}}]}
//! offsets            {"offsets": [{"partition": {..}, "offset": {..}}]}
//! error              {"error_code", "message"}
//! ```

use std::collections::BTreeMap;

use serde_json::{json, Map, Value as Json};

use super::error::RestError;
use crate::config_def::{ConfigType, DefaultValue, Importance};
use crate::plugin::Props;
use crate::worker::{ConfigReport, ConnectorInfo, ConnectorOffset, ConnectorStatus, TaskStatus};

/// Kafka's `ConnectorInfo`.
pub(crate) fn connector_info(info: &ConnectorInfo) -> Json {
    json!({
        "name": info.name,
        "config": sorted(&info.config),
        "tasks": (0..info.tasks.len()).map(|t| json!({"connector": info.name, "task": t})).collect::<Vec<_>>(),
        "type": info.kind.to_string(),
    })
}

/// A config map with sorted keys.
pub(crate) fn sorted(props: &Props) -> BTreeMap<&str, &str> {
    props.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn state(state: impl ToString, worker_id: &str, trace: &Option<String>) -> Map<String, Json> {
    let mut m = Map::new();
    m.insert("state".into(), json!(state.to_string()));
    m.insert("worker_id".into(), json!(worker_id));
    if let Some(t) = trace {
        m.insert("trace".into(), json!(t));
    }
    m
}

/// A task's status: `{"id", "state", "worker_id", "trace"?}`.
pub(crate) fn task_status(t: &TaskStatus) -> Json {
    let mut m = Map::new();
    m.insert("id".into(), json!(t.id));
    m.extend(state(t.state, &t.worker_id, &t.trace));
    Json::Object(m)
}

/// Kafka's `ConnectorStateInfo`.
pub(crate) fn connector_status(s: &ConnectorStatus) -> Json {
    json!({
        "name": s.name,
        "connector": state(s.state, &s.worker_id, &s.trace),
        "tasks": s.tasks.iter().map(task_status).collect::<Vec<_>>(),
        "type": s.kind.to_string(),
    })
}

/// Kafka's `TaskInfo` list.
pub(crate) fn task_infos(info: &ConnectorInfo) -> Json {
    Json::Array(
        info.tasks
            .iter()
            .enumerate()
            .map(|(t, props)| json!({"id": {"connector": info.name, "task": t}, "config": sorted(props)}))
            .collect(),
    )
}

/// The offsets answer of KIP-875.
pub(crate) fn offsets(offsets: &[ConnectorOffset]) -> Json {
    json!({
        "offsets": offsets.iter().map(|o| json!({"partition": o.partition, "offset": o.offset})).collect::<Vec<_>>()
    })
}

fn type_name(t: ConfigType) -> &'static str {
    match t {
        ConfigType::String => "STRING",
        ConfigType::Int => "INT",
        ConfigType::Long => "LONG",
        ConfigType::Double => "DOUBLE",
        ConfigType::Boolean => "BOOLEAN",
        ConfigType::List => "LIST",
        ConfigType::Class => "CLASS",
        ConfigType::Password => "PASSWORD",
    }
}

fn importance_name(i: Importance) -> &'static str {
    match i {
        Importance::High => "HIGH",
        Importance::Medium => "MEDIUM",
        Importance::Low => "LOW",
    }
}

/// Kafka's `ConfigInfos`: every key's definition and value with its errors.
pub(crate) fn config_infos(report: &ConfigReport) -> Json {
    let mut order_in_group: BTreeMap<Option<&str>, i32> = BTreeMap::new();
    let configs: Vec<Json> = report
        .entries
        .iter()
        .map(|e| {
            let order = match e.group.as_deref() {
                Some(g) => {
                    let n = order_in_group.entry(Some(g)).or_insert(0);
                    *n += 1;
                    *n
                }
                None => -1,
            };
            let default = match &e.key.default {
                DefaultValue::Value(v) => json!(v.to_string()),
                DefaultValue::Required | DefaultValue::Absent => Json::Null,
            };
            json!({
                "definition": {
                    "name": e.key.name,
                    "type": type_name(e.key.config_type),
                    "required": e.key.default == DefaultValue::Required,
                    "default_value": default,
                    "importance": importance_name(e.key.importance),
                    "documentation": e.key.doc,
                    "group": e.group,
                    "width": "NONE",
                    "display_name": e.key.name,
                    "dependents": [],
                    "order": order,
                },
                "value": {
                    "name": e.key.name,
                    "value": e.value,
                    "recommended_values": [],
                    "errors": e.errors,
                    "visible": true,
                },
            })
        })
        .collect();
    json!({
        "name": report.class,
        "error_count": report.error_count(),
        "groups": report.groups,
        "configs": configs,
    })
}

/// Parses a request body as JSON; the error names what is wrong and where
/// (line and column).
pub(crate) fn parse_body(body: &[u8]) -> Result<Json, RestError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(RestError::bad_request("the request body is empty; expected JSON"));
    }
    serde_json::from_slice(body)
        .map_err(|e| RestError::bad_request(format!("malformed JSON in the request body: {e}")))
}

/// A JSON object of config values as strings (numbers and booleans are
/// taken as their text, as Kafka's JSON reader does); with `allow_null`,
/// a `null` value is kept as `None` (PATCH removes the key).
pub(crate) fn config_map(
    value: &Json,
    what: &str,
    allow_null: bool,
) -> Result<BTreeMap<String, Option<String>>, RestError> {
    let Json::Object(map) = value else {
        return Err(RestError::bad_request(format!("{what} must be a JSON object of string values")));
    };
    map.iter()
        .map(|(k, v)| {
            let v = match v {
                Json::String(s) => Some(s.clone()),
                Json::Number(n) => Some(n.to_string()),
                Json::Bool(b) => Some(b.to_string()),
                Json::Null if allow_null => None,
                other => {
                    let kind = match other {
                        Json::Null => "null",
                        Json::Array(_) => "an array",
                        _ => "an object",
                    };
                    return Err(RestError::bad_request(format!(
                        "{what}: the value of `{k}` must be a string, not {kind}"
                    )));
                }
            };
            Ok((k.clone(), v))
        })
        .collect()
}

/// A config map without nulls.
pub(crate) fn props_of(map: BTreeMap<String, Option<String>>) -> Props {
    map.into_iter().filter_map(|(k, v)| Some((k, v?))).collect()
}

/// The offsets of a `PATCH …/offsets` body.
pub(crate) fn parse_offsets(body: &Json) -> Result<Vec<ConnectorOffset>, RestError> {
    let bad = |m: String| RestError::bad_request(m);
    let list = body.get("offsets").and_then(Json::as_array).ok_or_else(|| {
        bad("the request body must be {\"offsets\": [{\"partition\": {..}, \"offset\": {..}}, ..]}".into())
    })?;
    list.iter()
        .enumerate()
        .map(|(i, entry)| {
            let partition = entry
                .get("partition")
                .and_then(Json::as_object)
                .ok_or_else(|| bad(format!("offsets[{i}]: \"partition\" must be a JSON object")))?;
            let offset = match entry.get("offset") {
                None | Some(Json::Null) => None,
                Some(Json::Object(o)) => Some(o.clone()),
                Some(_) => {
                    return Err(bad(format!("offsets[{i}]: \"offset\" must be a JSON object or null")))
                }
            };
            Ok(ConnectorOffset { partition: partition.clone(), offset })
        })
        .collect()
}

/// The parameters of a query string, percent-decoded, in order.
pub(crate) fn query_params(raw: Option<&str>) -> Vec<(String, String)> {
    raw.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// A boolean query parameter (`true`/`false`, default `false`).
pub(crate) fn bool_param(params: &[(String, String)], name: &str) -> Result<bool, RestError> {
    match params.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if v == "true" => Ok(true),
        Some(v) if v == "false" => Ok(false),
        Some(v) => Err(RestError::bad_request(format!(
            "query parameter `{name}` must be `true` or `false`, not `{v}`"
        ))),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_are_split_and_decoded() {
        let p = query_params(Some("expand=status&expand=info&x=a%20b+c&flag"));
        assert_eq!(p[0], ("expand".into(), "status".into()));
        assert_eq!(p[2], ("x".into(), "a b c".into()));
        assert_eq!(p[3], ("flag".into(), "".into()));
        assert_eq!(query_params(Some("a=%2")), vec![("a".into(), "%2".into())]);
        assert!(bool_param(&query_params(Some("includeTasks=TRUE")), "includeTasks").unwrap());
        assert!(bool_param(&query_params(Some("onlyFailed=yes")), "onlyFailed").is_err());
    }

    #[test]
    fn config_maps_take_scalars_and_name_bad_values() {
        let m = config_map(&json!({"a": "x", "n": 3, "b": true, "z": null}), "config", true).unwrap();
        assert_eq!(m["n"].as_deref(), Some("3"));
        assert_eq!(m["z"], None);
        let e = config_map(&json!({"a": [1]}), "config", false).unwrap_err();
        assert!(e.message.contains("`a`") && e.message.contains("array"), "{}", e.message);
        let e = config_map(&json!({"a": null}), "config", false).unwrap_err();
        assert!(e.message.contains("`a`"), "{}", e.message);
        let e = parse_body(b"{\"a\": }").unwrap_err();
        assert!(e.message.contains("line 1 column"), "{}", e.message);
    }
}
