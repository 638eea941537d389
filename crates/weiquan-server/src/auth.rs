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
use std::time::{Duration, Instant};

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

/// A key's public id: the first 8 bytes of its digest, in hex (what `weiquan keys list` shows).
pub fn key_id(digest: &[u8; 32]) -> String {
    hex::encode(&digest[..8])
}

/// Whether `key` has the form [`new_key`] gives (`wq_` and 43 base64url characters):
/// anything else is unknown without asking the database.
fn well_formed(key: &str) -> bool {
    key.len() == 46
        && key.starts_with("wq_")
        && key[3..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// How long a key lookup (found or not) is trusted: a revoked key stops
/// working, and a new one starts, within this time on a running server.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(2);

/// Most unknown keys remembered; the memory is cleared when it fills, so that
/// a flood of random keys costs a bounded map, not one database query each.
const MAX_UNKNOWN: usize = 100_000;

/// Opens a connection to the key table (a fresh one per lookup miss).
pub type KeyOpener = Arc<dyn Fn() -> Result<Box<dyn weiquan_store::Backend>, weiquan_store::StoreError> + Send + Sync>;

/// What a lookup found, and until when it is trusted.
struct Cached {
    /// The role and the key's expiry (ms since the epoch), or `None`: not a key.
    found: Option<(Role, Option<i64>)>,
    fresh_until: Instant,
}

/// The role of a lookup's result, unless the key has expired by `now_ms`.
fn live(now_ms: i64, found: &Option<(Role, Option<i64>)>) -> Option<Role> {
    found
        .as_ref()
        .filter(|(_, expires)| expires.is_none_or(|e| now_ms < e))
        .map(|(r, _)| r.clone())
}

/// Key lookups, each trusted for [`KEY_CACHE_TTL`].
pub struct KeyCache {
    cache: Mutex<HashMap<[u8; 32], Cached>>,
    open: KeyOpener,
}

impl KeyCache {
    /// A cache that looks misses up through `open`.
    pub fn new(open: KeyOpener) -> Self {
        KeyCache {
            cache: Mutex::new(HashMap::new()),
            open,
        }
    }

    /// What a fresh lookup of digest `d` found (`Some(None)`: not a key), without asking the database.
    fn cached(&self, d: &[u8; 32], now_ms: i64) -> Result<Option<Option<Role>>, ApiError> {
        let cache = self.cache.lock().map_err(ApiError::internal)?;
        Ok(cache
            .get(d)
            .filter(|c| c.fresh_until > Instant::now())
            .map(|c| live(now_ms, &c.found)))
    }

    /// Whether `key` is known to be valid without asking the database.
    fn known_valid(&self, key: &str) -> bool {
        well_formed(key) && self.known_valid_digest(&digest(key))
    }

    /// Whether the key whose digest is `d` is known to be valid without asking the database.
    pub(crate) fn known_valid_digest(&self, d: &[u8; 32]) -> bool {
        matches!(self.cached(d, chrono::Utc::now().timestamp_millis()), Ok(Some(Some(_))))
    }

    /// The role of `key`, or `None` if it is not a key (or no longer one: revoked or expired).
    pub async fn role(&self, key: &str) -> Result<Option<Role>, ApiError> {
        if !well_formed(key) {
            return Ok(None);
        }
        self.role_of(digest(key)).await
    }

    /// The role of the key whose digest is `d` (a console session holds the
    /// digest, never the key), or `None` if there is no such key (any more).
    pub async fn role_of(&self, d: [u8; 32]) -> Result<Option<Role>, ApiError> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        if let Some(role) = self.cached(&d, now_ms)? {
            return Ok(role);
        }
        let open = self.open.clone();
        // A database that cannot be reached answers 503 (retry), not 500.
        let stored = tokio::task::spawn_blocking(move || open()?.key_of(&d))
            .await
            .map_err(ApiError::internal)??;
        let found = stored.and_then(|k| Role::parse(&k.role).map(|r| (r, k.expires_at_ms)));
        let role = live(now_ms, &found);
        let mut cache = self.cache.lock().map_err(ApiError::internal)?;
        if cache.len() >= MAX_UNKNOWN {
            cache.clear();
        }
        cache.insert(
            d,
            Cached {
                found,
                fresh_until: Instant::now() + KEY_CACHE_TTL,
            },
        );
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

/// Which roles may POST to `path` (the handlers check again, with their reasons).
fn poster(path: &str) -> Option<fn(&Role) -> bool> {
    if path == "/v1/events" || path.starts_with("/v1/lotteries") {
        Some(|r| *r == Role::Platform)
    } else if path.starts_with("/v1/blacklist/") && path.ends_with("/lift") {
        Some(|r| *r == Role::Regulator)
    } else if path.starts_with("/v1/paylater/") && path.ends_with("/disable") {
        Some(|r| matches!(r, Role::Consumer(_)))
    } else if path == "/v1/complaints" {
        Some(|r| matches!(r, Role::Consumer(_) | Role::Platform))
    } else if let Some(rest) = path.strip_prefix("/v1/complaints/") {
        match rest.rsplit_once('/').map(|(_, step)| step) {
            Some("respond") => Some(|r| matches!(r, Role::Merchant(_) | Role::Platform)),
            Some("resolve" | "escalate") => Some(|r| *r == Role::Platform),
            // No such step: a 404 that names the steps, for any role, not a 403 that
            // would tell a merchant the step exists but is not theirs.
            _ => None,
        }
    } else {
        None
    }
}

/// Middleware: a request with a body (every POST) must bring a valid key of a
/// role that may POST there before its body is read, so that nobody else can
/// make the server read megabytes.
pub async fn key_before_body(
    axum::extract::State(app): axum::extract::State<std::sync::Arc<crate::AppState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    // The console's forms are authorised by their session and CSRF token.
    if req.method() == axum::http::Method::POST && !crate::console::is_form(req.uri().path()) {
        let role = match bearer(req.headers()) {
            Ok(Some(key)) => app.keys.role(key).await,
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        };
        let refusal = match role {
            Ok(Some(role)) => {
                let path = req.uri().path();
                let allowed = match poster(path) {
                    Some(allowed) => allowed(&role),
                    None => true, // no such route: the router answers 404 without reading the body
                };
                (!allowed).then(|| {
                    ApiError::forbidden(format!(
                        "a {} key may not POST to {path}; the body was not read",
                        role.as_string()
                    ))
                })
            }
            Ok(None) => Some(ApiError::unauthorized(
                "this needs a valid API key (`Authorization: Bearer <key>`); the body was not read",
            )),
            Err(e) => Some(e),
        };
        if let Some(e) = refusal {
            return e.into_response();
        }
    }
    next.run(req).await
}

/// Middleware: requests without a key (public pages, tiles, proofs) are
/// limited per source address, as keyed ones are per key. Health and metrics
/// routes are not: probes and scrapers must always get through.
pub async fn public_rate_limit(
    axum::extract::State(app): axum::extract::State<std::sync::Arc<crate::AppState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let ops = matches!(req.uri().path(), "/healthz" | "/readyz" | "/metrics");
    if ops {
        return next.run(req).await;
    }
    // Only a key known to be valid is limited per key instead: any other
    // Authorization header (or a key not looked up yet) counts against the
    // address, so that random keys can neither skip this limit nor make the
    // server query its database at will. A console session of such a key
    // counts the same way, so that an office of inspectors behind one address
    // is not limited as one anonymous visitor. The key is charged here, for
    // every route (tiles and proofs too, which do not ask who calls), and the
    // request marked so that its handler does not charge it again.
    let key = match bearer(req.headers()) {
        Ok(Some(k)) if app.keys.known_valid(k) => Some(digest(k)),
        _ if crate::console::signs_out(req.method(), req.uri().path()) => None,
        _ => crate::console::session_key(&app, req.headers())
            .await
            .filter(|d| app.keys.known_valid_digest(d)),
    };
    let mut req = req;
    match (key, crate::listen::peer(&req)) {
        (Some(d), _) => {
            let id = key_id(&d);
            if let Err(wait) = app.limiter.check_key(&id) {
                return ApiError::rate_limited(retry_secs(&wait), KEY_LIMIT).into_response();
            }
            req.extensions_mut().insert(KeyCharged(d));
        }
        (None, Some(peer)) => {
            if let Err(wait) = app.public_limiter.check_key(&crate::listen::source(peer.ip())) {
                return ApiError::rate_limited(retry_secs(&wait), "this address's (calls without a valid API key)")
                    .into_response();
            }
        }
        (None, None) => {}
    }
    next.run(req).await
}

/// A request whose key (by digest) was already charged to its rate limit.
#[derive(Clone, Copy)]
pub(crate) struct KeyCharged(pub [u8; 32]);

/// Whose limit a key's 429 names.
const KEY_LIMIT: &str = "this API key's";

fn retry_secs(wait: &governor::NotUntil<governor::clock::QuantaInstant>) -> u64 {
    wait.wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()))
        .as_secs()
        .max(1)
}

/// The caller of a request: a role and its key's id, or nobody (public).
pub struct Caller(pub Option<crate::acts::Party>);

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
        if !well_formed(key) {
            return Err(unknown_key());
        }
        let d = digest(key);
        let charged = parts.extensions.get::<KeyCharged>().is_some_and(|c| c.0 == d);
        Caller::of_digest(app, d, charged).await?.ok_or_else(unknown_key)
    }
}

fn unknown_key() -> ApiError {
    ApiError::unauthorized("unknown, revoked or expired API key; create one with `weiquan keys create`")
}

impl Caller {
    /// The caller holding the key whose digest is `d` (`None`: no such key,
    /// or no longer), counted against that key's rate limit unless `charged`
    /// (the middleware did): what a bearer header and a console session both come to.
    pub async fn of_digest(app: &crate::AppState, d: [u8; 32], charged: bool) -> Result<Option<Caller>, ApiError> {
        let Some(role) = app.keys.role_of(d).await? else {
            return Ok(None);
        };
        let id = key_id(&d);
        if !charged {
            if let Err(wait) = app.limiter.check_key(&id) {
                return Err(ApiError::rate_limited(retry_secs(&wait), KEY_LIMIT));
            }
        }
        Ok(Some(Caller(Some(crate::acts::Party { role, key: Some(id) }))))
    }

    /// The role, or 401 when there is none.
    pub fn role(&self) -> Result<&Role, ApiError> {
        self.party().map(|p| &p.role)
    }

    /// The role and key id, or 401 when there is none.
    pub fn party(&self) -> Result<&crate::acts::Party, ApiError> {
        self.0
            .as_ref()
            .ok_or_else(|| ApiError::unauthorized("this needs an API key: `Authorization: Bearer <key>`"))
    }

    /// The caller (role and key id); 403 unless the role is one of `allowed`.
    pub fn require(&self, what: &str, allowed: impl Fn(&Role) -> bool) -> Result<&crate::acts::Party, ApiError> {
        let party = self.party()?;
        if allowed(&party.role) {
            Ok(party)
        } else {
            Err(ApiError::forbidden(format!(
                "a {} key may not {what}",
                party.role.as_string()
            )))
        }
    }
}
