//! Console sessions: a signed cookie naming a session id, the digest of the
//! API key it was opened with (never the key) and its expiry; and the CSRF
//! token every form carries, derived from the session id.
//!
//! The cookie is stateless (HMAC-SHA-256 under a secret derived from the
//! ledger's signing key), so a session survives a restart and is honoured by
//! every server sharing that key. Each request looks the key's digest up
//! again: a revoked or expired key ends its sessions within
//! [`crate::KEY_CACHE_TTL`]. Signing out is remembered by the server until the
//! session would have expired.

use crate::problem::ApiError;
use hmac::{Hmac, Mac};
use rand_core::RngCore;
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// The signed-in session's cookie: set only by signing in, cleared by signing
/// out. A link into the console from elsewhere (a ticket, an email) arrives
/// signed in (`SameSite=Lax`); its pages change nothing on a GET, and every
/// form also needs the session's token.
pub(crate) const COOKIE: &str = "wq_session";
/// An anonymous visitor's session, which binds the sign-in and receipt forms'
/// token: a cookie of its own, so that a request arriving without the
/// signed-in cookie (a cross-site form, say) never replaces that one.
pub(crate) const ANON_COOKIE: &str = "wq_anon";
/// The language cookie's name.
pub(crate) const LANG_COOKIE: &str = "wq_lang";

/// The names the console's cookies go by on this server.
pub(crate) struct CookieNames {
    /// The signed-in session's ([`COOKIE`]).
    pub session: String,
    /// An anonymous visitor's session's ([`ANON_COOKIE`]).
    pub anon: String,
    /// The language's ([`LANG_COOKIE`]).
    pub lang: String,
}

impl CookieNames {
    /// With `__Host-` before each when every page is reached over TLS
    /// (`--secure-cookies`): a browser then lets no other host (a sibling
    /// subdomain, say) set them, so nobody can plant a session of their own
    /// on a reader. Bare otherwise, since a browser refuses a prefixed cookie
    /// without `Secure`.
    pub(crate) fn new(secure: bool) -> CookieNames {
        let name = |base: &str| {
            if secure {
                format!("__Host-{base}")
            } else {
                base.to_owned()
            }
        };
        CookieNames {
            session: name(COOKIE),
            anon: name(ANON_COOKIE),
            lang: name(LANG_COOKIE),
        }
    }
}
/// How long a session lasts.
pub(crate) const SESSION_SECS: i64 = 8 * 3600;
/// Most sign-out lookups cached: the cache is cleared when it fills.
const MAX_CACHED: usize = 100_000;

type HmacSha256 = Hmac<Sha256>;

/// One visitor's session, signed in or not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Session {
    /// Random, 16 bytes in hex.
    pub sid: String,
    /// The digest of the API key it was opened with; `None`: nobody signed in.
    pub key: Option<[u8; 32]>,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
}

/// The secret that signs sessions and their form tokens.
pub(crate) struct Sessions {
    secret: [u8; 32],
}

impl Sessions {
    /// Sessions whose secret is derived from `key_material` (the ledger
    /// signing key file's bytes: secret, and the same on every server that
    /// signs this log).
    pub(crate) fn new(key_material: &[u8]) -> Sessions {
        Sessions {
            secret: crate::derived_secret("weiquan console sessions v1", key_material),
        }
    }

    fn mac(&self, label: &str, text: &str) -> String {
        // A key of any length is accepted by HMAC: this cannot fail.
        let Ok(mut mac) = HmacSha256::new_from_slice(&self.secret) else {
            return String::new();
        };
        mac.update(label.as_bytes());
        mac.update(b"\0");
        mac.update(text.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// A new session (a fresh id), signed in with `key` or anonymous.
    pub(crate) fn open(&self, key: Option<[u8; 32]>, now: i64) -> Session {
        let mut sid = [0u8; 16];
        rand_core::OsRng.fill_bytes(&mut sid);
        Session {
            sid: hex::encode(sid),
            key,
            exp: now + SESSION_SECS,
        }
    }

    /// The cookie value of `s`.
    pub(crate) fn seal(&self, s: &Session) -> String {
        let key = s.key.map_or_else(|| "-".to_owned(), hex::encode);
        let body = format!("v1.{}.{key}.{}", s.sid, s.exp);
        let mac = self.mac("session", &body);
        format!("{body}.{mac}")
    }

    /// The session a cookie value names, if its signature holds and it has
    /// not expired by `now` (whether it was signed out is [`SignOuts`]'s).
    pub(crate) fn open_cookie(&self, value: &str, now: i64) -> Option<Session> {
        let (body, mac) = value.rsplit_once('.')?;
        if !same(&self.mac("session", body), mac) {
            return None;
        }
        let mut parts = body.split('.');
        let (Some("v1"), Some(sid), Some(key), Some(exp), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let exp: i64 = exp.parse().ok()?;
        let key = match key {
            "-" => None,
            k => Some(hex::decode(k).ok()?.try_into().ok()?),
        };
        if exp <= now {
            return None;
        }
        Some(Session {
            sid: sid.to_owned(),
            key,
            exp,
        })
    }

    /// The CSRF token of forms in session `sid`.
    pub(crate) fn csrf(&self, sid: &str) -> String {
        self.mac("csrf", sid)[..32].to_owned()
    }

    /// Whether `token` is the CSRF token of session `sid`.
    pub(crate) fn csrf_ok(&self, sid: &str, token: &str) -> bool {
        same(&self.csrf(sid), token)
    }
}

/// Sessions signed out before their expiry. They are kept in the database
/// until they would have expired, so that a sign-out holds across restarts and
/// on every server of the database; lookups are cached like keys' (a session
/// found signed out stays so; one found live is asked again after
/// [`crate::KEY_CACHE_TTL`]).
pub(crate) struct SignOuts {
    db: weiquan_store::Database,
    seen: Mutex<HashMap<String, (bool, Instant)>>,
}

impl SignOuts {
    /// Sign-outs kept in `db`.
    pub(crate) fn new(db: weiquan_store::Database) -> SignOuts {
        SignOuts {
            db,
            seen: Mutex::new(HashMap::new()),
        }
    }

    fn remember(&self, sid: &str, ended: bool) {
        let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.len() >= MAX_CACHED {
            seen.clear();
        }
        let ttl = if ended {
            std::time::Duration::from_secs(SESSION_SECS.unsigned_abs())
        } else {
            crate::KEY_CACHE_TTL
        };
        // A sign-out is never undone: a lookup that began before it was
        // written ("not ended") must not replace what the sign-out stored.
        if !ended && seen.get(sid).is_some_and(|(e, until)| *e && *until > Instant::now()) {
            return;
        }
        seen.insert(sid.to_owned(), (ended, Instant::now() + ttl));
    }

    /// Whether session `sid` was signed out.
    pub(crate) async fn ended(&self, sid: &str) -> Result<bool, ApiError> {
        {
            let seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some((ended, _)) = seen.get(sid).filter(|(_, until)| *until > Instant::now()) {
                return Ok(*ended);
            }
        }
        let (db, id) = (self.db.clone(), sid.to_owned());
        let ended = tokio::task::spawn_blocking(move || db.open_reader()?.session_ended(&id))
            .await
            .map_err(ApiError::internal)??;
        self.remember(sid, ended);
        Ok(ended)
    }

    /// Signs `s` out, for good, as of `now` (seconds). Only a signed-in
    /// session is recorded: an anonymous one holds nothing to protect, and
    /// anybody can make those.
    pub(crate) async fn end(&self, s: &Session, now: i64) -> Result<(), ApiError> {
        if s.key.is_none() {
            return Ok(());
        }
        let (db, sid, exp) = (self.db.clone(), s.sid.clone(), s.exp);
        // A plain connection: one row, no checkpointer of its own.
        tokio::task::spawn_blocking(move || db.open_reader()?.end_session(&sid, exp * 1000, now * 1000))
            .await
            .map_err(ApiError::internal)??;
        self.remember(&s.sid, true);
        Ok(())
    }
}

/// Equal strings, compared in time independent of where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of cookie `name` in a request's `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, for the whole site; Secure
/// when the page was reached over TLS. A `max_age` of 0 clears the cookie.
/// Lax, so that a link into the console from elsewhere (a ticket, an email)
/// arrives with its cookies (a Strict one is left out, and the anonymous
/// session was replaced, breaking the reader's open forms); what protects a
/// form is its token, bound to the session.
pub(crate) fn set_cookie(name: &str, value: &str, max_age: i64, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_opens_only_as_sealed_and_until_it_expires() {
        let s = Sessions::new(b"key");
        let session = s.open(Some([7; 32]), 1000);
        let value = s.seal(&session);
        assert_eq!(s.open_cookie(&value, 1001), Some(session.clone()));
        assert_eq!(s.open_cookie(&value, session.exp), None, "expired");
        // Another secret, or any changed character, and it is refused.
        assert_eq!(Sessions::new(b"other").open_cookie(&value, 1001), None);
        let forged = value.replacen(&hex::encode([7u8; 32]), &hex::encode([8u8; 32]), 1);
        assert_eq!(s.open_cookie(&forged, 1001), None);
        let anonymous = s.open(None, 1000);
        assert_eq!(s.open_cookie(&s.seal(&anonymous), 1001), Some(anonymous.clone()));
    }

    #[test]
    fn csrf_tokens_belong_to_their_session() {
        let s = Sessions::new(b"key");
        let (a, b) = (s.open(None, 0), s.open(None, 0));
        assert_ne!(a.sid, b.sid);
        assert!(s.csrf_ok(&a.sid, &s.csrf(&a.sid)));
        assert!(!s.csrf_ok(&a.sid, &s.csrf(&b.sid)));
        assert!(!s.csrf_ok(&a.sid, ""));
    }
}
