//! Operations: health, readiness, metrics, the OpenAPI document.

use super::{ApiDoc, AppStateRef};
use crate::problem::{ApiError, Problem};
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use utoipa::OpenApi;

/// Liveness.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, description = "The process is up", body = String, content_type = "text/plain")))]
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the sequencer answers.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses((status = 200, description = "Ready", body = String, content_type = "text/plain"), (status = 503, body = Problem)))]
pub(crate) async fn readyz(State(app): AppStateRef) -> Result<&'static str, ApiError> {
    // A standby process is alive but not ready: route traffic to the sequencer.
    app.sequencer.read(|_| ()).await?;
    Ok("ready")
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub(crate) async fn metrics(State(app): AppStateRef) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        app.metrics.render(),
    )
        .into_response()
}

/// This API's OpenAPI 3.1 description.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", responses((status = 200, description = "OpenAPI 3.1 document", body = Object)))]
pub(crate) async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
