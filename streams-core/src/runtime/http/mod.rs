//! The built-in HTTP server (`http.listen`): interactive queries as JSON over GET, routed to the
//! instance that holds a key, plus pages an application serves beside them (a dashboard).
//!
//! It runs on a tokio runtime of its own thread; store reads run on tokio's blocking pool, and
//! a query forwarded to another instance has a deadline, so a slow or dead peer gives an error.

mod local;
mod routes;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::group::GroupShared;
use super::Shared;
use crate::error::{Result, StreamsError};
use crate::topology::Topology;

/// A static page served at `path` (the dashboard's HTML and script).
#[derive(Debug, Clone)]
pub(crate) struct HttpPage {
    pub(crate) path: String,
    pub(crate) content_type: String,
    pub(crate) body: &'static str,
}

/// What the handlers read.
pub(crate) struct HttpContext {
    pub(crate) shared: Arc<Shared>,
    pub(crate) topology: Arc<Topology>,
    pub(crate) group: Arc<GroupShared>,
    pub(crate) config: Arc<crate::config::ResolvedConfig>,
    /// Kafka Streams' client id (the client metrics' tag).
    pub(crate) client_id: String,
    /// This instance's `application.server`, as other instances reach it.
    pub(crate) own: String,
    pub(crate) client: reqwest::Client,
    pub(crate) forward_timeout: Duration,
}

/// A running server: dropping it (or [`HttpServer::stop`]) stops it.
pub(crate) struct HttpServer {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `addr` now (so that a taken port fails start, naming it) and serves on a thread.
    pub(crate) fn start(
        addr: SocketAddr,
        ctx: HttpContext,
        pages: Vec<HttpPage>,
        thread_name: String,
    ) -> Result<HttpServer> {
        let io = |source| StreamsError::Io {
            path: format!("http.listen {addr}"),
            source,
        };
        let listener = std::net::TcpListener::bind(addr).map_err(io)?;
        listener.set_nonblocking(true).map_err(io)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(io)?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let router = routes::router(Arc::new(ctx), pages);
        let thread = std::thread::Builder::new()
            .name(thread_name.clone())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!(error = %e, %addr, "HTTP server cannot listen");
                            return;
                        }
                    };
                    tracing::info!(%addr, "HTTP server listening");
                    let served = axum::serve(listener, router)
                        .with_graceful_shutdown(async {
                            let _ = stopped.await;
                        })
                        .await;
                    if let Err(e) = served {
                        tracing::error!(error = %e, %addr, "HTTP server failed");
                    }
                })
            })
            .map_err(|source| StreamsError::Io {
                path: thread_name,
                source,
            })?;
        Ok(HttpServer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Stops accepting, lets requests under way finish, and waits for the thread.
    pub(crate) fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An error answer: a status and a JSON body with a code and a message naming the store, the
/// key and the reason.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    body: serde_json::Value,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: serde_json::json!({ "code": code, "message": message.into() }),
        }
    }

    /// Adds a field to the body (the owner of a key held elsewhere).
    pub(crate) fn with(mut self, field: &str, value: impl Into<serde_json::Value>) -> Self {
        self.body[field] = value.into();
        self
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub(crate) fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}
