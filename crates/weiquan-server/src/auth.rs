//! API keys and roles. Keys are random, shown once, and stored as SHA-256
//! digests; each has one role.

use crate::problem::ApiError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::prelude::{Engine as _, BASE64_URL_SAFE_NO_PAD};
use rand_core::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Who is calling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Ingests events, reads everything.
    Platform,
    /// Reads everything, lifts blacklists.
    Regulator,
    /// Reads its own findings, grade and complaints.
    Merchant(String),
    /// Reads public grades and its own receipts.
    Consumer(String),
}

impl Role {
    /// Parses `platform`, `regulator`, `merchant:ID` or `consumer:ID`.
    pub fn parse(s: &str) -> Option<Role> {
        match s.split_once(':') {
            None if s == "platform" => Some(Role::Platform),
            None if s == "regulator" => Some(Role::Regulator),
            Some(("merchant", id)) if weiquan_events::check_id(id).is_ok() => Some(Role::Merchant(id.to_owned())),
            Some(("consumer", id)) if weiquan_events::check_id(id).is_ok() => Some(Role::Consumer(id.to_owned())),
            _ => None,
        }
    }

    /// The stored form.
    pub fn as_string(&self) -> String {
        match self {
            Role::Platform => "platform".into(),
            Role::Regulator => "regulator".into(),
            Role::Merchant(id) => format!("merchant:{id}"),
            Role::Consumer(id) => format!("consumer:{id}"),
        }
    }

    /// Platform or regulator: may read everything.
    pub fn reads_all(&self) -> bool {
        matches!(self, Role::Platform | Role::Regulator)
    }
}

/// A new random API key and its digest.
pub fn new_key() -> (String, [u8; 32]) {
    let mut bytes = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut bytes);
    let key = format!("wq_{}", BASE64_URL_SAFE_NO_PAD.encode(bytes));
    let d = digest(&key);
    (key, d)
}

/// SHA-256 of a key, as stored.
pub fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Opens a connection to the key table (a fresh one per lookup miss).
pub type KeyOpener = Arc<dyn Fn() -> anyhow::Result<Box<dyn weiquan_store::Backend>> + Send + Sync>;

/// Known keys, loaded from the database on first use.
pub struct KeyCache {
    known: Mutex<HashMap<[u8; 32], Role>>,
    open: KeyOpener,
}

impl KeyCache {
    /// A cache that looks misses up through `open`.
    pub fn new(open: KeyOpener) -> Self {
        KeyCache {
            known: Mutex::new(HashMap::new()),
            open,
        }
    }

    /// The role of `key`, or `None` if it is not a key.
    pub async fn role(&self, key: &str) -> Result<Option<Role>, ApiError> {
        let d = digest(key);
        if let Some(r) = self.known.lock().map_err(ApiError::internal)?.get(&d) {
            return Ok(Some(r.clone()));
        }
        let open = self.open.clone();
        let found = tokio::task::spawn_blocking(move || -> anyhow::Result<Option<String>> { Ok(open()?.role_of(&d)?) })
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?;
        let role = found.as_deref().and_then(Role::parse);
        if let Some(r) = &role {
            self.known.lock().map_err(ApiError::internal)?.insert(d, r.clone());
        }
        Ok(role)
    }
}

/// The key of an `Authorization: Bearer <key>` header (the scheme in any case,
/// RFC 9110); `Ok(None)` without the header, an error when it is malformed.
fn bearer(headers: &axum::http::HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| Some(key.trim()))
        .ok_or_else(|| ApiError::unauthorized("send the API key as `Authorization: Bearer <key>`"))
}

/// Middleware: a request with a body (every POST) must bring a valid key
/// before its body is read, so that nobody without one can make the server
/// read megabytes.
pub async fn key_before_body(
    axum::extract::State(app): axum::extract::State<std::sync::Arc<crate::AppState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if req.method() == axum::http::Method::POST {
        let known = match bearer(req.headers()) {
            Ok(Some(key)) => app.keys.role(key).await.map(|r| r.is_some()),
            Ok(None) => Ok(false),
            Err(e) => Err(e),
        };
        match known {
            Ok(true) => {}
            Ok(false) => {
                return ApiError::unauthorized(
                    "this needs a valid API key (`Authorization: Bearer <key>`); the body was not read",
                )
                .into_response()
            }
            Err(e) => return e.into_response(),
        }
    }
    next.run(req).await
}

/// The caller of a request: a role, or nobody (public).
pub struct Caller(pub Option<Role>);

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync + AsRef<crate::AppState>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let app = state.as_ref();
        let Some(key) = bearer(&parts.headers)? else {
            return Ok(Caller(None));
        };
        let role = app
            .keys
            .role(key)
            .await?
            .ok_or_else(|| ApiError::unauthorized("unknown API key; create one with `weiquan keys create`"))?;
        let id = hex::encode(&digest(key)[..8]);
        if let Err(wait) = app.limiter.check_key(&id) {
            let secs = wait
                .wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()))
                .as_secs()
                .max(1);
            return Err(ApiError::rate_limited(secs));
        }
        Ok(Caller(Some(role)))
    }
}

impl Caller {
    /// The role, or 401 when there is none.
    pub fn role(&self) -> Result<&Role, ApiError> {
        self.0
            .as_ref()
            .ok_or_else(|| ApiError::unauthorized("this needs an API key: `Authorization: Bearer <key>`"))
    }

    /// 403 unless the role is one of `allowed`.
    pub fn require(&self, what: &str, allowed: impl Fn(&Role) -> bool) -> Result<&Role, ApiError> {
        let role = self.role()?;
        if allowed(role) {
            Ok(role)
        } else {
            Err(ApiError::forbidden(format!(
                "a {} key may not {what}",
                role.as_string()
            )))
        }
    }
}
