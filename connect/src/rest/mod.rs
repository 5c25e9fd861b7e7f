//! The REST API with Kafka Connect's paths and JSON, so `curl` scripts,
//! UIs and operators written for Kafka Connect work against a Runnel
//! worker.
//!
//! | method and path | answer |
//! | --- | --- |
//! | `GET /` | `{"version", "commit", "kafka_cluster_id"}` |
//! | `GET /connectors[?expand=status&expand=info]` | names, or `{name: {"status", "info"}}` |
//! | `POST /connectors` `{"name", "config"}` | 201 `ConnectorInfo`; 409 if it exists |
//! | `GET`, `DELETE /connectors/{name}` | `ConnectorInfo`; 204 |
//! | `GET`, `PUT`, `PATCH /connectors/{name}/config` | the config; 201 created / 200 updated; 200 merged (`null` removes) |
//! | `GET /connectors/{name}/status` | `ConnectorStateInfo` |
//! | `GET /connectors/{name}/tasks` | `[{"id": {"connector", "task"}, "config"}]` |
//! | `GET /connectors/{name}/tasks/{id}/status` | `{"id", "state", "worker_id", "trace"?}` |
//! | `POST /connectors/{name}/tasks/{id}/restart` | 204 |
//! | `POST /connectors/{name}/restart[?includeTasks&onlyFailed]` | 204, or 202 with the status |
//! | `PUT /connectors/{name}/pause`, `…/resume`, `…/stop` | 202 |
//! | `GET /connectors/{name}/topics`, `PUT …/topics/reset` | `{name: {"topics"}}`; 200 |
//! | `GET`, `PATCH`, `DELETE /connectors/{name}/offsets` | `{"offsets": [{"partition", "offset"}]}`; 200 `{"message"}` (STOPPED only) |
//! | `GET /connector-plugins` | `[{"class", "type", "version"}]` |
//! | `PUT /connector-plugins/{class}/config/validate` | `ConfigInfos` |
//!
//! Errors are `{"error_code": <status>, "message": "..."}`: 404 for an
//! unknown connector, task or path; 400 for malformed JSON (with line and
//! column), a missing `name` or `connector.class`, an invalid config or
//! offsets of a connector that is not STOPPED; 409 for a connector that
//! already exists.
//!
//! The server is axum over the worker's `listeners`
//! (`http://host:port`; an empty host binds every interface, port 0 a free
//! port). Handlers call the [`Worker`]; all state lives there.
//!
//! ```no_run
//! # async fn run(worker: std::sync::Arc<runnel_connect::worker::Worker>) -> Result<(), runnel_connect::ConnectError> {
//! use runnel_connect::rest::RestServer;
//! let server = RestServer::start(worker).await?;
//! println!("REST API at {}", server.url());
//! // ... until asked to stop:
//! server.shutdown().await;
//! # Ok(()) }
//! ```

mod error;
mod handlers;
mod json;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::error::ConnectError;
use crate::worker::Worker;

/// A JSON answer.
fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// The API's routes over a worker (for embedding in another server).
pub fn router(worker: Arc<Worker>) -> Router {
    use handlers as h;
    Router::new()
        .route("/", get(h::server_info))
        .route("/connectors", get(h::list_connectors).post(h::create_connector))
        .route("/connectors/{name}", get(h::connector).delete(h::delete_connector))
        .route("/connectors/{name}/config", get(h::get_config).put(h::put_config).patch(h::patch_config))
        .route("/connectors/{name}/status", get(h::status))
        .route("/connectors/{name}/tasks", get(h::tasks))
        .route("/connectors/{name}/tasks/{id}/status", get(h::task_status))
        .route("/connectors/{name}/tasks/{id}/restart", post(h::restart_task))
        .route("/connectors/{name}/restart", post(h::restart_connector))
        .route("/connectors/{name}/pause", put(h::pause))
        .route("/connectors/{name}/resume", put(h::resume))
        .route("/connectors/{name}/stop", put(h::stop))
        .route("/connectors/{name}/topics", get(h::topics))
        .route("/connectors/{name}/topics/reset", put(h::reset_topics))
        .route(
            "/connectors/{name}/offsets",
            get(h::get_offsets).patch(h::alter_offsets).delete(h::reset_offsets),
        )
        .route("/connector-plugins", get(h::plugins))
        .route("/connector-plugins/{class}/config/validate", put(h::validate))
        .fallback(h::not_found)
        .with_state(worker)
}

/// The REST server: one axum server per listener, sharing one worker.
#[derive(Debug)]
pub struct RestServer {
    addrs: Vec<SocketAddr>,
    cancel: CancellationToken,
    servers: Vec<JoinHandle<()>>,
    /// How long shutdown waits for requests in flight
    /// (`task.shutdown.graceful.timeout.ms`).
    grace: std::time::Duration,
}

impl RestServer {
    /// Serves the API on the worker's `listeners`.
    ///
    /// # Errors
    /// [`ConnectError::Rest`] naming a listener that is malformed or
    /// cannot be bound.
    pub async fn start(worker: Arc<Worker>) -> Result<RestServer, ConnectError> {
        let listeners = worker.listeners().to_vec();
        RestServer::bind(worker, &listeners).await
    }

    /// Serves the API on these listeners (`http://host:port`).
    ///
    /// # Errors
    /// As [`RestServer::start`].
    pub async fn bind(worker: Arc<Worker>, listeners: &[String]) -> Result<RestServer, ConnectError> {
        if listeners.is_empty() {
            return Err(ConnectError::Rest {
                listener: String::new(),
                reason: "no listener configured".into(),
            });
        }
        let mut bound = Vec::with_capacity(listeners.len());
        for listener in listeners {
            let err = |reason: String| ConnectError::Rest { listener: listener.clone(), reason };
            let (host, port) = parse_listener(listener).map_err(err)?;
            let socket = TcpListener::bind((host.as_str(), port)).await.map_err(|e| err(e.to_string()))?;
            let addr = socket.local_addr().map_err(|e| err(e.to_string()))?;
            bound.push((socket, addr));
        }
        let cancel = CancellationToken::new();
        let grace = worker.config().shutdown_timeout;
        let app = router(worker);
        let mut addrs = Vec::with_capacity(bound.len());
        let mut servers = Vec::with_capacity(bound.len());
        for (socket, addr) in bound {
            info!(%addr, "REST API listening");
            let shutdown = cancel.clone().cancelled_owned();
            let app = app.clone();
            servers.push(tokio::spawn(async move {
                if let Err(e) = axum::serve(socket, app).with_graceful_shutdown(shutdown).await {
                    tracing::error!(%addr, error = %e, "REST server failed");
                }
            }));
            addrs.push(addr);
        }
        Ok(RestServer { addrs, cancel, servers, grace })
    }

    /// The bound addresses, one per listener (with the real port when the
    /// listener asked for port 0).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The base URL of the first listener (`http://127.0.0.1:8083`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addrs[0])
    }

    /// Stops accepting, lets requests in flight finish, and returns when
    /// every server has stopped, waiting at most
    /// `task.shutdown.graceful.timeout.ms` for them: a request held up by a
    /// plugin that hangs (a connector whose `start` never returns) is left
    /// behind, logged.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        for mut server in self.servers {
            if tokio::time::timeout(self.grace, &mut server).await.is_err() {
                server.abort();
                tracing::warn!(
                    timeout_ms = self.grace.as_millis() as u64,
                    "REST requests still in flight after task.shutdown.graceful.timeout.ms; not waiting for them"
                );
            }
        }
        info!("REST API stopped");
    }
}

/// Splits a listener (`http://host:port`, `http://[::1]:port`, `host:port`;
/// an empty host means every interface) into host and port.
fn parse_listener(listener: &str) -> Result<(String, u16), String> {
    let trimmed = listener.trim();
    let lower = trimmed.to_ascii_lowercase();
    let rest = if lower.starts_with("http://") {
        &trimmed[7..]
    } else if lower.starts_with("https://") {
        return Err("HTTPS listeners are not supported; use http://".into());
    } else if lower.contains("://") {
        return Err("expected http://host:port".into());
    } else {
        trimmed
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, port) = v6.split_once("]:").ok_or("expected http://[address]:port")?;
        (host, port)
    } else {
        rest.rsplit_once(':').ok_or("expected http://host:port")?
    };
    let port = port.parse::<u16>().map_err(|_| format!("invalid port `{port}`"))?;
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::parse_listener;

    #[test]
    fn listeners_parse_like_kafkas() {
        assert_eq!(parse_listener("http://127.0.0.1:8083").unwrap(), ("127.0.0.1".into(), 8083));
        assert_eq!(parse_listener("HTTP://:8083").unwrap(), ("0.0.0.0".into(), 8083));
        assert_eq!(parse_listener("http://[::1]:0/").unwrap(), ("::1".into(), 0));
        assert_eq!(parse_listener("localhost:9").unwrap(), ("localhost".into(), 9));
        assert!(parse_listener("https://h:1").unwrap_err().contains("HTTPS"));
        assert!(parse_listener("http://h:x").unwrap_err().contains("`x`"));
        assert!(parse_listener("http://h").is_err());
    }
}
