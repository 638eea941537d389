//! Public, read-only serving of logs kept elsewhere, each under its name: a
//! cluster's partition logs and its top log (`weiquan cluster serve-logs`).
//! Paths are C2SP tlog-tiles paths under the log's name:
//! `/<log>/checkpoint` and `/<log>/tile/<L>/<N>[.p/<W>]` (or
//! `tile/entries/…`), as a server's own log is served under `/log/`; `/`
//! lists the logs. Nothing here writes, and nothing needs a key: the leaves
//! hold personal data only as salted commitments.

use crate::api::log::{checkpoint_response, tile_request, tile_response};
use crate::listen::{self, ConnLimits};
use crate::problem::ApiError;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;
use std::time::Duration;
use weiquan_ledger::TileRequest;

/// Why a log could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ShelfError {
    /// There is no log of that name here.
    #[error("{0}")]
    NoLog(String),
    /// The log could not be read (its database is down, or it is damaged).
    #[error("{0}")]
    Failed(String),
}

/// One log on the shelf, as `/` lists it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ShelvedLog {
    /// Its name in paths (`top`, `p0`, …).
    pub name: String,
    /// The origin line of its checkpoints.
    pub origin: String,
}

/// Logs to serve, by name. Blocking: each call runs on a blocking thread.
pub trait LogShelf: Send + Sync + 'static {
    /// The logs served.
    fn logs(&self) -> Result<Vec<ShelvedLog>, ShelfError>;
    /// The newest signed checkpoint of log `name` (`None`: it has none yet).
    fn checkpoint(&self, name: &str) -> Result<Option<Vec<u8>>, ShelfError>;
    /// A tile of log `name` (`None`: its tree does not have it, or not yet).
    fn tile(&self, name: &str, req: TileRequest) -> Result<Option<Vec<u8>>, ShelfError>;
}

/// The shelf, and the permits for reading it: one per blocking read.
#[derive(Clone)]
struct Shelf {
    logs: Arc<dyn LogShelf>,
    reads: Arc<tokio::sync::Semaphore>,
}

impl From<ShelfError> for ApiError {
    fn from(e: ShelfError) -> Self {
        match e {
            ShelfError::NoLog(m) => ApiError::not_found(m),
            ShelfError::Failed(m) => ApiError::unavailable(m),
        }
    }
}

/// Runs `read` on a blocking thread once a permit is free. The read holds
/// its permit until it returns, even when the request timed out and left:
/// a database that hangs holds at most [`MAX_READS`] threads, not one more
/// per request.
async fn blocking<T: Send + 'static>(
    shelf: &Shelf,
    read: impl FnOnce(&dyn LogShelf) -> Result<T, ShelfError> + Send + 'static,
) -> Result<T, ApiError> {
    let permit = (shelf.reads.clone().acquire_owned().await).map_err(ApiError::internal)?;
    let logs = shelf.logs.clone();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        read(&*logs)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::from)
}

async fn index(State(shelf): State<Shelf>) -> Result<Json<serde_json::Value>, ApiError> {
    let logs = blocking(&shelf, |s| s.logs()).await?;
    Ok(Json(serde_json::json!({ "logs": logs })))
}

async fn checkpoint(State(shelf): State<Shelf>, Path(log): Path<String>) -> Result<Response, ApiError> {
    let cp = blocking(&shelf, move |s| s.checkpoint(&log)).await?;
    let cp = cp.ok_or_else(|| ApiError::not_found("the log has no checkpoint yet: nothing was written to it"))?;
    Ok(checkpoint_response(cp))
}

async fn tile(State(shelf): State<Shelf>, Path((log, path)): Path<(String, String)>) -> Result<Response, ApiError> {
    let req = tile_request(&path)?;
    tile_response(req, blocking(&shelf, move |s| s.tile(&log, req)).await?)
}

/// Reads at once: each holds a blocking thread and a database read.
const MAX_READS: usize = 64;

/// The routes over `shelf`, with their limits: at most [`MAX_READS`] reads
/// at once (more wait), each request within 60 s, every error a problem
/// document.
pub fn router(shelf: Arc<dyn LogShelf>) -> Router {
    let shelf = Shelf {
        logs: shelf,
        reads: Arc::new(tokio::sync::Semaphore::new(MAX_READS)),
    };
    Router::new()
        .route("/", get(index))
        .route("/{log}/checkpoint", get(checkpoint))
        .route("/{log}/tile/{*path}", get(tile))
        .fallback(|| async { ApiError::not_found("no such route: `/<log>/checkpoint` or `/<log>/tile/…`") })
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(60),
        ))
        .layer(axum::middleware::from_fn(crate::problem::problems_everywhere))
        .with_state(shelf)
}

/// Serves `shelf` on `listener` within `limits` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shelf: Arc<dyn LogShelf>,
    limits: ConnLimits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    listen::serve(listener, router(shelf), limits, shutdown).await;
}
