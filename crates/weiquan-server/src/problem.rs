//! Errors as RFC 9457 problem details (`application/problem+json`).
//! Internal errors are logged, not leaked.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An API error.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: String,
    retry_after: Option<u64>,
}

/// The problem document.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the problem type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What happened here and what to do.
    pub detail: String,
}

impl ApiError {
    /// Its HTTP status.
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    /// What happened and what to do (English).
    pub(crate) fn detail(&self) -> &str {
        &self.detail
    }

    fn new(status: StatusCode, slug: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            slug,
            title,
            detail: detail.into(),
            retry_after: None,
        }
    }
    /// 400: the request is malformed.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", "Bad request", detail)
    }
    /// 401: no valid API key.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized", detail)
    }
    /// 403: this role may not do this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
    }
    /// 404: nothing here.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }
    /// 409: the state does not allow it (already done, not yet possible).
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", "Conflict", detail)
    }
    /// 413: too much in one request.
    pub fn too_large(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too-large", "Request too large", detail)
    }
    /// 422: well-formed but not acceptable.
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
            "Unprocessable request",
            detail,
        )
    }
    /// 429: slow down. `whose`: the limit that ran out (an API key's, or an address's).
    pub fn rate_limited(retry_after: u64, whose: &str) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Too many requests",
            format!("{whose} rate limit is exhausted; retry after {retry_after} s"),
        );
        e.retry_after = Some(retry_after);
        e
    }
    /// 408: the request's body did not arrive in time.
    pub fn timeout(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::REQUEST_TIMEOUT, "timeout", "Request timeout", detail)
    }
    /// 503: cannot serve now (store down, not the sequencer, shutting down).
    pub fn unavailable(detail: impl Into<String>) -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
            detail,
        );
        e.retry_after = Some(1);
        e
    }
    /// 500: logged; the client sees only that it happened.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "the server failed; the error was logged",
        )
    }
}

impl ApiError {
    /// A problem for a status produced outside the handlers (axum's extractors,
    /// the router, timeouts), with their text, if any, as the detail.
    fn from_status(status: StatusCode, text: &str) -> Self {
        let title = status.canonical_reason().unwrap_or("Error");
        let detail = match (status, text.trim()) {
            (StatusCode::METHOD_NOT_ALLOWED, _) => "this route does not take this method; see /openapi.json".to_owned(),
            (StatusCode::REQUEST_TIMEOUT, _) => {
                "the request took too long; send it again, faster or smaller".to_owned()
            }
            // This route's limit is not known here: each is named.
            (StatusCode::PAYLOAD_TOO_LARGE, _) => format!(
                "the body is larger than this route takes: {} MiB for events (send them in several requests), {} MiB for the console's receipt form, {} KiB for its other forms",
                crate::MAX_BODY_BYTES >> 20,
                crate::console::RECEIPT_BYTES >> 20,
                crate::console::FORM_BYTES >> 10
            ),
            (StatusCode::URI_TOO_LONG, _) => format!(
                "the request target is over {} bytes; no route of this API takes one that long",
                MAX_URI_BYTES
            ),
            (StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, _) => format!(
                "the request has over {MAX_HEADERS} header fields or {} KiB of them; send only the ones the API uses",
                MAX_HEADER_BYTES >> 10
            ),
            (_, "") => format!("{title}; see /openapi.json for what this route takes"),
            // An extractor's words say what was wrong, not what to do.
            (_, text) => format!("{text}; see /openapi.json for what this route takes"),
        };
        ApiError {
            status,
            slug: "http",
            title: "HTTP error",
            detail: format!("{title}: {detail}"),
            retry_after: None,
        }
    }
}

/// Longest request target (path and query) answered with more than a 414.
pub const MAX_URI_BYTES: usize = 8 << 10;
/// Most header fields in a request.
pub const MAX_HEADERS: usize = 64;
/// Most bytes of header fields (names and values) in a request.
pub const MAX_HEADER_BYTES: usize = 16 << 10;
/// What hyper itself refuses, with an empty 431 it writes before any
/// middleware can run: set well above the limits above, so that every request
/// between the two gets a problem document from [`problems_everywhere`].
pub const HYPER_MAX_HEADERS: usize = 4 * MAX_HEADERS;

/// Middleware: every error response is a problem document, whoever made it
/// (a handler already makes one; axum's rejections and the router do not);
/// and the URI and header limits, answered as problems (414, 431).
pub async fn problems_everywhere(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let uri = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if uri > MAX_URI_BYTES {
        return ApiError::from_status(StatusCode::URI_TOO_LONG, "").into_response();
    }
    let headers = req.headers();
    let header_bytes: usize = headers.iter().map(|(k, v)| k.as_str().len() + v.len()).sum();
    if headers.len() > MAX_HEADERS || header_bytes > MAX_HEADER_BYTES {
        return ApiError::from_status(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "").into_response();
    }
    // Every failed request is logged here, whoever answered it (a handler,
    // an extractor, the router, a timeout): one line with the route.
    let (method, uri) = (req.method().clone(), req.uri().clone());
    let resp = next.run(req).await;
    let status = resp.status();
    if status.is_server_error() {
        tracing::warn!(%method, path = uri.path(), status = status.as_u16(), "request failed");
    } else if status.is_client_error() {
        tracing::debug!(%method, path = uri.path(), status = status.as_u16(), "request refused");
    }
    // A problem already, or one of the console's pages (which say what went
    // wrong in the reader's language).
    let is_problem = resp.headers().get(header::CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes().starts_with(b"application/problem+json") || v.as_bytes().starts_with(b"text/html")
    });
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    // Rejection texts are short; anything longer is cut, not buffered.
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let mut out = ApiError::from_status(status, &String::from_utf8_lossy(&text)).into_response();
    // Keep what the original said beyond its body (`Allow` on a 405, say).
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

/// A store failure, answered by its kind: taken (409), missing (404), try
/// later (503); a damaged store or anything else is a 500. The store's own
/// words (table names, the server's address) are logged, never sent: a
/// failed key lookup answers a caller not yet known.
impl From<weiquan_store::StoreError> for ApiError {
    fn from(e: weiquan_store::StoreError) -> Self {
        use weiquan_store::StoreErrorKind as K;
        match e.kind {
            K::Conflict => {
                tracing::info!(error = %e, "store conflict");
                ApiError::conflict("this conflicts with what is stored: it was done already")
            }
            K::NotFound => {
                tracing::info!(error = %e, "not in the store");
                ApiError::not_found("not found in the store")
            }
            K::Unavailable => {
                tracing::warn!(error = %e, "store unavailable");
                ApiError::unavailable("the database cannot serve this now; retry")
            }
            K::Corrupt | K::Other => ApiError::internal(e),
        }
    }
}

impl From<crate::sequencer::IngestError> for ApiError {
    fn from(e: crate::sequencer::IngestError) -> Self {
        ApiError::unavailable(e.to_string())
    }
}

impl From<crate::sequencer::Stopped> for ApiError {
    fn from(e: crate::sequencer::Stopped) -> Self {
        ApiError::unavailable(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Problem {
            kind: format!("https://weiquan.dev/problems/{}", self.slug),
            title: self.title.to_owned(),
            status: self.status.as_u16(),
            detail: self.detail,
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(s) = self.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        // RFC 9110 §11.6.1: a 401 names the scheme that would be accepted.
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"weiquan\""),
            );
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weiquan_store::{StoreError, StoreErrorKind as K};

    /// A store failure is answered by its kind: a client can retry a 503, and
    /// learns that a 409's key is taken; only a damaged store is a 500.
    #[test]
    fn store_failures_answer_by_kind() {
        let status = |kind| ApiError::from(StoreError::of_kind(kind, "doing it", "because")).into_response();
        assert_eq!(status(K::Conflict).status(), StatusCode::CONFLICT);
        assert_eq!(status(K::NotFound).status(), StatusCode::NOT_FOUND);
        let busy = status(K::Unavailable);
        assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            busy.headers().contains_key(header::RETRY_AFTER),
            "a 503 says when to retry"
        );
        assert_eq!(status(K::Corrupt).status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(status(K::Other).status(), StatusCode::INTERNAL_SERVER_ERROR);
        // The store's own words (here "postgres://u:pw@db") are logged, never sent.
        for kind in [K::Conflict, K::NotFound, K::Unavailable, K::Corrupt, K::Other] {
            let e = ApiError::from(StoreError::of_kind(kind, "connecting to postgres://u:pw@db", "refused"));
            assert!(!format!("{e:?}").contains("pw@db"), "{kind:?}: {e:?}");
        }
    }
}
