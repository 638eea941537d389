//! Pay-later (先用后付) switched off by the consumer, delivered to the platform.
//!
//! A consumer's `POST /v1/paylater/{provider}/disable` keeps an instruction in
//! the outbox (durable) *before* it records the consumer's `bnpl.disabled`
//! (steps: 1) in the log; a task here then delivers every instruction to the
//! platform's webhook, at least once, signed with HMAC-SHA-256, retrying with
//! backoff, until the platform acknowledges it (a 2xx answer, recorded in the
//! outbox). The order makes a crash safe anywhere: an instruction whose event
//! was not recorded yet is recorded by the task first (the event's id is the
//! instruction's, so a second recording is a duplicate). An instruction left
//! unacknowledged past the rulebook's `bnpl_ack_hours`, counted from when the
//! platform was first offered it (weiquan's own downtime does not count), is
//! recorded as the consumer's `bnpl.cancel_failed`: BN-04 against the platform.

use crate::acts::{Party, Submitter, OWN_ID_PREFIX};
use crate::api::NotRecorded;
use crate::auth::Role;
use crate::AppState;
use hmac::Mac;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use weiquan_store::{Backend, Instruction, StoreError};

/// Where instructions go, and the secret they are signed with (shared with the platform).
#[derive(Clone)]
pub struct Webhook {
    /// The platform's receiver (`http://` or `https://`).
    pub url: String,
    /// The HMAC-SHA-256 key.
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.url)
            .field("secret", &"***")
            .finish()
    }
}

/// The header carrying the signature: `sha256=` and the hex HMAC of `{timestamp}.{body}`.
pub const SIGNATURE_HEADER: &str = "x-weiquan-signature";
/// The header carrying the signing time, seconds since the Unix epoch.
pub const TIMESTAMP_HEADER: &str = "x-weiquan-timestamp";
/// The header carrying the instruction's id, which the platform deduplicates by.
pub const ID_HEADER: &str = "x-weiquan-id";

/// Longest wait between two attempts.
const MAX_BACKOFF_MS: i64 = 300_000;
/// Instructions looked at per pass.
const BATCH: u32 = 64;
/// Deliveries in flight at once.
const CONCURRENT: usize = 8;

/// What the platform receives: one instruction (the outbox keeps it as it is sent).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Payload {
    /// The instruction's id (also the id of its event in the log).
    pub id: String,
    /// What to do: `bnpl.disable`.
    pub instruction: String,
    /// The consumer, by the platform's own id.
    pub consumer: String,
    /// The pay-later provider to switch off.
    pub provider: String,
    /// The business time of the event that records it.
    pub at: String,
    /// When the consumer asked (wall clock, RFC 3339).
    pub requested_at: String,
}

impl Payload {
    /// The event that records the consumer's switch-off: one step, theirs.
    pub fn event(&self) -> String {
        serde_json::json!({"v": 1, "id": self.id, "type": "bnpl.disabled", "at": self.at,
            "consumer": self.consumer, "provider": self.provider, "steps": 1, "acted_at": self.requested_at})
        .to_string()
    }
}

/// `sha256=` and the hex HMAC-SHA-256 under `secret` of `{timestamp}.{body}`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap_or_else(|_| {
        // HMAC takes keys of any length; this cannot fail.
        unreachable!("HMAC accepts any key length")
    });
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The wait before attempt `attempts + 1`: 1 s, doubling, at most five minutes.
fn backoff_ms(attempts: u32) -> i64 {
    1_000i64.saturating_mul(1 << attempts.min(16)).min(MAX_BACKOFF_MS)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The consumer an instruction acts for, as a party (their key's id when known).
fn consumer_party(payload: &Payload, key: Option<String>) -> Party {
    Party {
        role: Role::Consumer(payload.consumer.clone()),
        key,
    }
}

/// Records the instruction's event for its consumer; `Ok` once it is in the
/// log (now, with its leaf index, or before: its id is reserved for it, so a
/// duplicate is this same event).
pub(crate) async fn record(app: &AppState, payload: &Payload, key: Option<String>) -> Result<Option<u64>, NotRecorded> {
    let submitter = Submitter::Party(consumer_party(payload, key));
    Ok(crate::api::submit_one(app, submitter, payload.event()).await?.index())
}

/// The outbox's connection, shared by the route and the delivery task
/// (opened on first use; dropped after a failure, to be opened afresh).
#[derive(Clone)]
pub(crate) struct OutboxStore {
    db: weiquan_store::Database,
    conn: Arc<Conn>,
}

struct Conn(std::sync::Mutex<Option<Box<dyn Backend>>>);

impl Drop for Conn {
    fn drop(&mut self) {
        // The synchronous PostgreSQL client blocks on a runtime of its own when
        // it closes, which may not happen on an async runtime's thread.
        let conn = (self.0.get_mut())
            .map(Option::take)
            .unwrap_or_else(|e| e.into_inner().take());
        if let Some(conn) = conn {
            let _ = std::thread::spawn(move || drop(conn)).join();
        }
    }
}

impl OutboxStore {
    pub(crate) fn new(db: weiquan_store::Database) -> OutboxStore {
        OutboxStore {
            db,
            conn: Arc::new(Conn(std::sync::Mutex::new(None))),
        }
    }

    /// Runs `f` on the outbox's connection, off the async threads.
    pub(crate) async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Backend) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut slot = this.conn.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let store = match slot.as_mut() {
                Some(store) => store,
                None => slot.insert(this.db.open()?),
            };
            let out = f(&mut **store);
            if out.is_err() {
                *slot = None;
            }
            out
        })
        .await
        .map_err(|e| StoreError::new("the outbox task", e.to_string()))?
    }
}

/// Delivers the outbox until the service stops: due instructions are
/// recorded if they were not, sent, and marked overdue once (BN-04) when
/// the platform has let the rulebook's time pass since it was first offered
/// them. Only the process that sequences the ledger delivers: a standby
/// would send everything twice.
pub(crate) async fn deliver(app: Arc<AppState>, webhook: Option<Webhook>) {
    // Redirects are not followed: a redirected POST becomes a GET without the
    // instruction, whose 2xx would pass for an acknowledgement.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build();
    let client = match client {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot make the webhook client; pay-later instructions are not delivered");
            return;
        }
    };
    loop {
        if app.sequencer.is_leader() {
            match app.outbox.with(|s| s.outbox_due(now_ms(), BATCH)).await {
                Ok(due) => {
                    // A few at a time: one platform endpoint that hangs holds up
                    // its own attempts (10 s each), not every other instruction's.
                    use futures::StreamExt;
                    futures::stream::iter(due)
                        .for_each_concurrent(CONCURRENT, |i| attempt(&app, &client, webhook.as_ref(), i))
                        .await;
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the outbox; retrying"),
            }
        }
        tokio::select! {
            _ = app.outbox_wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

/// One pass over one instruction.
async fn attempt(app: &AppState, client: &reqwest::Client, webhook: Option<&Webhook>, mut i: Instruction) {
    let payload: Payload = match serde_json::from_slice(&i.body) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(id = %i.id, error = %e, "an outbox instruction is not readable; it is skipped");
            i.next_ms = i64::MAX;
            i.last_error = Some(format!("not readable: {e}"));
            let _ = app.outbox.with(move |s| s.outbox_update(&i)).await;
            return;
        }
    };
    if !i.recorded {
        match record(app, &payload, i.actor_key.clone()).await {
            Ok(_) => i.recorded = true,
            Err(NotRecorded::Refused(why)) => {
                // Never deliverable: the consumer sees it gone and may ask again.
                tracing::warn!(id = %i.id, %why, "the log refuses an instruction's event; it is dropped");
                let id = i.id.clone();
                let _ = app.outbox.with(move |s| s.outbox_remove(&id)).await;
                return;
            }
            Err(NotRecorded::Unavailable(why)) => {
                tracing::warn!(id = %i.id, %why, "cannot record an instruction's event yet")
            }
        }
    }
    // Deliver only what the log holds: the platform must be able to check it there.
    let outcome = match (webhook, i.recorded) {
        (_, false) => Err((None, "its event is not recorded yet".to_owned())),
        (None, true) => Err((
            None,
            "no webhook is configured (start weiquan serve with --paylater-webhook)".to_owned(),
        )),
        (Some(w), true) => {
            i.first_attempt_ms.get_or_insert_with(now_ms);
            send(client, w, &i).await
        }
    };
    i.attempts = i.attempts.saturating_add(1);
    match outcome {
        Ok(status) => {
            (i.delivered_ms, i.status, i.last_error) = (Some(now_ms()), Some(status), None);
            tracing::info!(id = %i.id, status, "pay-later instruction acknowledged by the platform");
        }
        Err((status, why)) => {
            (i.status, i.last_error) = (status, Some(why));
            i.next_ms = now_ms().saturating_add(backoff_ms(i.attempts - 1));
            // The platform's time runs from when it was first offered the instruction.
            let window_ms = (app.ack_hours * 3_600_000.0) as i64;
            let late = i
                .first_attempt_ms
                .is_some_and(|first| now_ms().saturating_sub(first) > window_ms);
            if late && !i.overdue {
                match record_overdue(app, &payload, &i, app.ack_hours).await {
                    Ok(()) => i.overdue = true,
                    Err(e) => tracing::warn!(id = %i.id, error = %e, "cannot record an unacknowledged instruction yet"),
                }
            }
        }
    }
    if let Err(e) = app.outbox.with(move |s| s.outbox_update(&i)).await {
        tracing::warn!(error = %e, "cannot write an instruction's state; it is delivered again (the platform deduplicates by id)");
    }
}

/// Posts the instruction; the status of a 2xx acknowledgement, or what went wrong.
async fn send(client: &reqwest::Client, w: &Webhook, i: &Instruction) -> Result<u16, (Option<u16>, String)> {
    let ts = now_ms() / 1000;
    let sent = client
        .post(&w.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(ID_HEADER, &i.id)
        .header(TIMESTAMP_HEADER, ts.to_string())
        .header(SIGNATURE_HEADER, signature(&w.secret, ts, &i.body))
        .body(i.body.clone())
        .send()
        .await;
    match sent {
        Ok(r) if r.status().is_success() => Ok(r.status().as_u16()),
        Ok(r) => Err((
            Some(r.status().as_u16()),
            format!("the platform answered {}", r.status()),
        )),
        Err(e) => Err((None, format!("cannot reach the platform's webhook: {e}"))),
    }
}

/// Records that the platform left the instruction unacknowledged too long:
/// the consumer's switch-off failed (BN-04). Its id follows from the
/// instruction's, so recording it twice is a duplicate.
async fn record_overdue(app: &AppState, payload: &Payload, i: &Instruction, hours: f64) -> Result<(), String> {
    let at = app
        .sequencer
        .read(|core: &mut crate::core::Core| crate::api::business_time(core))
        .await
        .map_err(|e| e.to_string())?;
    let event = serde_json::json!({"v": 1, "id": format!("{OWN_ID_PREFIX}paylater-unacknowledged:{}", i.id.trim_start_matches(crate::acts::PARTY_ACT_PREFIX)),
        "type": "bnpl.cancel_failed", "at": at, "consumer": payload.consumer, "provider": payload.provider,
        "reason": format!("the platform did not acknowledge weiquan's switch-off instruction {} within {hours} hours", i.id)});
    let submitter = Submitter::Weiquan(consumer_party(payload, i.actor_key.clone()));
    crate::api::submit_one(app, submitter, event.to_string())
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The signature is the standard HMAC-SHA-256 (checked on RFC 4231's test
    /// case 2) of `{timestamp}.{body}`, so any platform's library can check it.
    #[test]
    fn the_signature_is_rfc_4231_hmac_sha256_of_timestamp_dot_body() {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"Jefe").expect("key");
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"Jefe").expect("key");
        mac.update(b"1700000000.{\"id\":\"i\"}");
        let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(signature(b"Jefe", 1_700_000_000, b"{\"id\":\"i\"}"), want);
        assert_ne!(
            signature(b"Jefe", 1_700_000_001, b"{\"id\":\"i\"}"),
            want,
            "the time is signed"
        );
    }

    #[test]
    fn backoff_doubles_to_five_minutes() {
        let waits: Vec<i64> = (0..12).map(backoff_ms).collect();
        assert_eq!(&waits[..4], [1_000, 2_000, 4_000, 8_000]);
        assert_eq!(waits[11], MAX_BACKOFF_MS);
        assert_eq!(backoff_ms(u32::MAX), MAX_BACKOFF_MS);
    }
}
