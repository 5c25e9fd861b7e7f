//! One function per endpoint. Each reads its path, query and body, calls
//! the [`Worker`] and answers with Kafka Connect's status code and JSON.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value as Json};

use super::error::RestError;
use super::json::{self as shapes, bool_param, config_map, parse_body, props_of, query_params};
use super::json_response;
use crate::worker::{RestartRequest, Worker};

type Shared = State<Arc<Worker>>;
type Answer = Result<Response, RestError>;

fn ok(body: &Json) -> Answer {
    Ok(json_response(StatusCode::OK, body))
}

fn empty(status: StatusCode) -> Answer {
    Ok(status.into_response())
}

fn unknown(name: &str) -> RestError {
    RestError::not_found(format!("unknown connector `{name}`"))
}

/// `GET /`: the worker's version, commit and cluster id.
pub(crate) async fn server_info(State(worker): Shared) -> Answer {
    let cluster_id = match worker.cluster().broker() {
        Some(b) => {
            tokio::fs::read_to_string(b.dir().join("cluster.id")).await.ok().map(|s| s.trim().to_string())
        }
        None => None,
    };
    ok(&json!({
        "version": env!("CARGO_PKG_VERSION"),
        "commit": option_env!("RUNNEL_GIT_COMMIT").unwrap_or("unknown"),
        "kafka_cluster_id": cluster_id,
    }))
}

/// `GET /connectors[?expand=status][&expand=info]`.
pub(crate) async fn list_connectors(State(worker): Shared, RawQuery(query): RawQuery) -> Answer {
    let params = query_params(query.as_deref());
    let expand = |what: &str| params.iter().any(|(k, v)| k == "expand" && v == what);
    let (status, info) = (expand("status"), expand("info"));
    let names = worker.connectors().await;
    if !status && !info {
        return ok(&json!(names));
    }
    let mut out = Map::new();
    for name in names {
        let mut entry = Map::new();
        if info {
            if let Some(i) = worker.connector_info(&name).await {
                entry.insert("info".into(), shapes::connector_info(&i));
            }
        }
        if status {
            if let Some(s) = worker.status().connector(&name) {
                entry.insert("status".into(), shapes::connector_status(&s));
            }
        }
        out.insert(name, Json::Object(entry));
    }
    ok(&Json::Object(out))
}

/// `POST /connectors` with `{"name", "config"}`: 201 with the connector.
pub(crate) async fn create_connector(State(worker): Shared, body: Bytes) -> Answer {
    let body = parse_body(&body)?;
    let Json::Object(request) = &body else {
        return Err(RestError::bad_request("the request body must be a JSON object {\"name\", \"config\"}"));
    };
    let name = match request.get("name") {
        Some(Json::String(n)) if !n.trim().is_empty() => n.clone(),
        Some(_) => return Err(RestError::bad_request("\"name\" must be a non-empty string")),
        None => return Err(RestError::bad_request("missing \"name\" in the request body")),
    };
    let config = request
        .get("config")
        .ok_or_else(|| RestError::bad_request("missing \"config\" in the request body"))?;
    let mut props = props_of(config_map(config, "\"config\"", false)?);
    check_name(&props, &name)?;
    props.insert("name".into(), name.clone());
    if worker.connector_config(&name).await.is_some() {
        return Err(RestError::conflict(format!("connector `{name}` already exists")));
    }
    worker.add_connector(props).await?;
    let info = worker.connector_info(&name).await.ok_or_else(|| unknown(&name))?;
    let mut response = json_response(StatusCode::CREATED, &shapes::connector_info(&info));
    if let Ok(location) = format!("/connectors/{name}").parse() {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// A `name` inside a config must match the connector's.
fn check_name(props: &crate::plugin::Props, name: &str) -> Result<(), RestError> {
    match props.get("name") {
        Some(n) if n != name => Err(RestError::bad_request(format!(
            "the config's \"name\" (`{n}`) does not match the connector name `{name}`"
        ))),
        _ => Ok(()),
    }
}

/// `GET /connectors/{name}`.
pub(crate) async fn connector(State(worker): Shared, Path(name): Path<String>) -> Answer {
    let info = worker.connector_info(&name).await.ok_or_else(|| unknown(&name))?;
    ok(&shapes::connector_info(&info))
}

/// `DELETE /connectors/{name}`: 204.
pub(crate) async fn delete_connector(State(worker): Shared, Path(name): Path<String>) -> Answer {
    worker.remove_connector(&name).await?;
    empty(StatusCode::NO_CONTENT)
}

/// `GET /connectors/{name}/config`.
pub(crate) async fn get_config(State(worker): Shared, Path(name): Path<String>) -> Answer {
    let config = worker.connector_config(&name).await.ok_or_else(|| unknown(&name))?;
    ok(&json!(shapes::sorted(&config)))
}

/// `PUT /connectors/{name}/config`: 201 when created, 200 when updated.
pub(crate) async fn put_config(State(worker): Shared, Path(name): Path<String>, body: Bytes) -> Answer {
    let mut props = props_of(config_map(&parse_body(&body)?, "the config", false)?);
    check_name(&props, &name)?;
    props.insert("name".into(), name.clone());
    let created = worker.put_connector_config(props).await?;
    let info = worker.connector_info(&name).await.ok_or_else(|| unknown(&name))?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(json_response(status, &shapes::connector_info(&info)))
}

/// `PATCH /connectors/{name}/config`: merges into the config; `null`
/// removes a key.
pub(crate) async fn patch_config(State(worker): Shared, Path(name): Path<String>, body: Bytes) -> Answer {
    let patch = config_map(&parse_body(&body)?, "the config patch", true)?;
    let mut props = worker.connector_config(&name).await.ok_or_else(|| unknown(&name))?;
    for (k, v) in patch {
        if k == "name" && v.as_deref() != Some(name.as_str()) {
            return Err(RestError::bad_request(format!(
                "a patch cannot change or remove \"name\" (`{name}`)"
            )));
        }
        match v {
            Some(v) => props.insert(k, v),
            None => props.remove(&k),
        };
    }
    worker.put_connector_config(props).await?;
    let info = worker.connector_info(&name).await.ok_or_else(|| unknown(&name))?;
    ok(&shapes::connector_info(&info))
}

/// `GET /connectors/{name}/status`.
pub(crate) async fn status(State(worker): Shared, Path(name): Path<String>) -> Answer {
    let status = worker.status().connector(&name).ok_or_else(|| unknown(&name))?;
    ok(&shapes::connector_status(&status))
}

/// `GET /connectors/{name}/tasks`.
pub(crate) async fn tasks(State(worker): Shared, Path(name): Path<String>) -> Answer {
    let info = worker.connector_info(&name).await.ok_or_else(|| unknown(&name))?;
    ok(&shapes::task_infos(&info))
}

fn task_id(name: &str, id: &str) -> Result<u32, RestError> {
    id.parse().map_err(|_| RestError::not_found(format!("connector `{name}` has no task `{id}`")))
}

/// `GET /connectors/{name}/tasks/{id}/status`.
pub(crate) async fn task_status(State(worker): Shared, Path((name, id)): Path<(String, String)>) -> Answer {
    let status = worker.status().connector(&name).ok_or_else(|| unknown(&name))?;
    let id = task_id(&name, &id)?;
    let task = status
        .tasks
        .iter()
        .find(|t| t.id == id)
        .ok_or_else(|| RestError::not_found(format!("connector `{name}` has no task {id}")))?;
    ok(&shapes::task_status(task))
}

/// `POST /connectors/{name}/tasks/{id}/restart`: 204.
pub(crate) async fn restart_task(State(worker): Shared, Path((name, id)): Path<(String, String)>) -> Answer {
    if worker.connector_config(&name).await.is_none() {
        return Err(unknown(&name));
    }
    worker.restart_task(&name, task_id(&name, &id)?).await?;
    empty(StatusCode::NO_CONTENT)
}

/// `POST /connectors/{name}/restart[?includeTasks=..][&onlyFailed=..]`:
/// 204 when only the connector restarts, else 202 with the status showing
/// what restarts (Kafka's KIP-745).
pub(crate) async fn restart_connector(
    State(worker): Shared,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Answer {
    let params = query_params(query.as_deref());
    let request = RestartRequest {
        include_tasks: bool_param(&params, "includeTasks")?,
        only_failed: bool_param(&params, "onlyFailed")?,
    };
    let plan = worker.restart_connector(&name, request).await?;
    if !request.include_tasks && !request.only_failed {
        return empty(StatusCode::NO_CONTENT);
    }
    Ok(json_response(StatusCode::ACCEPTED, &shapes::connector_status(&plan)))
}

/// `PUT /connectors/{name}/pause`: 202.
pub(crate) async fn pause(State(worker): Shared, Path(name): Path<String>) -> Answer {
    worker.pause_connector(&name).await?;
    empty(StatusCode::ACCEPTED)
}

/// `PUT /connectors/{name}/resume`: 202.
pub(crate) async fn resume(State(worker): Shared, Path(name): Path<String>) -> Answer {
    worker.resume_connector(&name).await?;
    empty(StatusCode::ACCEPTED)
}

/// `PUT /connectors/{name}/stop`: 202.
pub(crate) async fn stop(State(worker): Shared, Path(name): Path<String>) -> Answer {
    worker.stop_connector(&name).await?;
    empty(StatusCode::ACCEPTED)
}

/// `GET /connectors/{name}/topics`: `{"<name>": {"topics": [..]}}`.
pub(crate) async fn topics(State(worker): Shared, Path(name): Path<String>) -> Answer {
    let topics = worker.active_topics(&name).await?;
    ok(&json!({ name: {"topics": topics} }))
}

/// `PUT /connectors/{name}/topics/reset`: 200.
pub(crate) async fn reset_topics(State(worker): Shared, Path(name): Path<String>) -> Answer {
    worker.reset_active_topics(&name).await?;
    empty(StatusCode::OK)
}

/// `GET /connectors/{name}/offsets`.
pub(crate) async fn get_offsets(State(worker): Shared, Path(name): Path<String>) -> Answer {
    ok(&shapes::offsets(&worker.connector_offsets(&name).await?))
}

/// `PATCH /connectors/{name}/offsets` (connector STOPPED).
pub(crate) async fn alter_offsets(State(worker): Shared, Path(name): Path<String>, body: Bytes) -> Answer {
    let offsets = shapes::parse_offsets(&parse_body(&body)?)?;
    worker.alter_offsets(&name, offsets).await?;
    ok(&json!({"message": "The offsets for this connector have been altered successfully"}))
}

/// `DELETE /connectors/{name}/offsets` (connector STOPPED).
pub(crate) async fn reset_offsets(State(worker): Shared, Path(name): Path<String>) -> Answer {
    worker.reset_offsets(&name).await?;
    ok(&json!({"message": "The offsets for this connector have been reset successfully"}))
}

/// `GET /connector-plugins`: `[{"class", "type", "version"}]`.
pub(crate) async fn plugins(State(worker): Shared) -> Answer {
    let registry = worker.registry();
    let plugins: Vec<Json> = registry
        .plugins()
        .into_iter()
        .map(|p| {
            let version = match registry.create(&p.class) {
                Ok(crate::plugin::Connector::Source(c)) => c.version(),
                Ok(crate::plugin::Connector::Sink(c)) => c.version(),
                Err(_) => String::new(),
            };
            json!({"class": p.class, "type": p.kind.to_string(), "version": version})
        })
        .collect();
    ok(&Json::Array(plugins))
}

/// `PUT /connector-plugins/{class}/config/validate`: Kafka's `ConfigInfos`.
pub(crate) async fn validate(State(worker): Shared, Path(class): Path<String>, body: Bytes) -> Answer {
    let registry = worker.registry();
    let Some(resolved) = registry.resolve(&class).map(str::to_string) else {
        let known: Vec<String> = registry.plugins().into_iter().map(|p| p.class).collect();
        return Err(RestError::not_found(format!(
            "unknown connector plugin `{class}`; known: {}",
            known.join(", ")
        )));
    };
    let mut props = props_of(config_map(&parse_body(&body)?, "the config", false)?);
    match props.get("connector.class") {
        Some(given) if registry.resolve(given) != Some(resolved.as_str()) => {
            return Err(RestError::bad_request(format!(
                "the config's \"connector.class\" (`{given}`) does not match the plugin `{class}` in the path"
            )));
        }
        Some(_) => {}
        None => {
            props.insert("connector.class".into(), class);
        }
    }
    ok(&shapes::config_infos(&worker.validate_report(&props)))
}

/// Any other path: 404 in the API's error shape.
pub(crate) async fn not_found(uri: axum::http::Uri) -> RestError {
    RestError::not_found(format!("no endpoint at {}", uri.path()))
}
