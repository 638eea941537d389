//! `weiquan serve`: the engine and the ledger as a long-running service.
//!
//! Requests go through axum handlers (`api`), which reach the state through
//! one sequencer thread (`sequencer`) that owns the engine and the ledger
//! (`core`). The ledger in SQLite or PostgreSQL is the system of record: on
//! start the state is rebuilt from it, so a restart neither loses nor repeats
//! anything. NATS JetStream can feed the same sequencer (`nats`).

mod acts;
mod api;
mod auth;
mod console;
mod core;
mod evidence;
mod findings;
pub mod fuzzing;
mod ids;
mod listen;
mod metrics;
pub mod nats;
mod paylater;
mod problem;
pub mod schemas;
mod sequencer;
pub mod shelf;
pub mod snapshots;

pub use acts::OWN_ID_PREFIX;
pub use auth::{new_key, Role, KEY_CACHE_TTL};
pub use core::ItemResult;
pub use listen::ConnLimits;
pub use nats::stream_name;
pub use paylater::{signature, Payload, Webhook, ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
pub use problem::Problem;

use anyhow::{Context, Result};
use std::path::PathBuf;
use std::sync::Arc;
use weiquan_engine::Rulebook;
use weiquan_store::Backend;
pub use weiquan_store::Database;

/// Most items in one `POST /v1/events`.
pub const MAX_BATCH_ITEMS: usize = 10_000;
/// Largest request body, in bytes.
pub const MAX_BODY_BYTES: usize = 16 << 20;

/// Reads on a connection of their own, so that they are not queued behind
/// ingest on the sequencer: opened on first use, dropped after a failure of
/// the store to be opened afresh.
pub(crate) struct Reads<R: Send + 'static> {
    db: Database,
    /// Taken before a blocking thread is: a request waiting its turn holds
    /// no thread of the blocking pool (which the other reads need too).
    reader: Arc<tokio::sync::Mutex<Option<R>>>,
    /// Opens the reader on `db`.
    open: ReaderOpener<R>,
}

/// How a [`Reads`] opens its reader.
pub(crate) type ReaderOpener<R> = Box<dyn Fn(&Database) -> Result<R, problem::ApiError> + Send + Sync>;

impl<R: Send + 'static> Drop for Reads<R> {
    fn drop(&mut self) {
        // The synchronous PostgreSQL client blocks on a runtime of its own when
        // it closes, which may not happen on an async runtime's thread.
        // A read still running holds the reader, and drops it on its blocking thread.
        let reader = Arc::get_mut(&mut self.reader).and_then(|m| m.get_mut().take());
        if let Some(reader) = reader {
            let _ = std::thread::spawn(move || drop(reader)).join();
        }
    }
}

impl<R: Send + 'static> Reads<R> {
    /// Reads with `open`'s readers on `db`.
    pub(crate) fn new(db: Database, open: ReaderOpener<R>) -> Reads<R> {
        Reads {
            db,
            reader: Arc::new(tokio::sync::Mutex::new(None)),
            open,
        }
    }

    /// Runs `f` on the reader, off the async runtime; `f` says whether the
    /// store failed (the reader is then dropped).
    async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut R) -> (Result<T, problem::ApiError>, bool) + Send + 'static,
    ) -> Result<T, problem::ApiError> {
        let this = self.clone();
        let mut slot = self.reader.clone().lock_owned().await;
        let run = move || -> Result<T, problem::ApiError> {
            if slot.is_none() {
                *slot = Some((this.open)(&this.db)?);
            }
            let Some(reader) = slot.as_mut() else {
                return Err(problem::ApiError::internal("the reader is missing"));
            };
            let (out, failed) = f(reader);
            if failed {
                *slot = None;
            }
            out
        };
        tokio::task::spawn_blocking(run)
            .await
            .map_err(problem::ApiError::internal)?
    }
}

/// The public log's reads (checkpoint, tiles, proofs).
pub(crate) type LogReads = Reads<weiquan_ledger::LedgerReader<Box<dyn Backend>>>;

impl LogReads {
    /// The log's reads on `db`.
    fn for_log(db: Database) -> LogReads {
        Reads::new(
            db,
            Box::new(|db| {
                let store = db.open_reader().map_err(|e| {
                    tracing::warn!(error = %format!("{e:#}"), "cannot open the log's reading connection");
                    problem::ApiError::unavailable("the log cannot be read now; retry")
                })?;
                weiquan_ledger::LedgerReader::open(store).map_err(api::ledger_error)
            }),
        )
    }

    /// Runs `f` on the reader, caught up with the ledger.
    pub(crate) async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut weiquan_ledger::LedgerReader<Box<dyn Backend>>) -> Result<T, weiquan_ledger::LedgerError>
            + Send
            + 'static,
    ) -> Result<T, problem::ApiError> {
        self.run(move |reader| {
            let out = reader.refresh().and_then(|()| f(reader));
            let failed = matches!(out, Err(weiquan_ledger::LedgerError::Store(_)));
            (out.map_err(api::ledger_error), failed)
        })
        .await
    }
}

/// Everything `weiquan serve` is configured with.
#[derive(Clone)]
pub struct Config {
    /// Data folder (SQLite file, signing key).
    pub data: PathBuf,
    /// System of record.
    pub db: Database,
    /// Signing key file (created on first start if missing).
    pub key: PathBuf,
    /// Checkpoint origin (default: the key's name).
    pub origin: Option<String>,
    /// The rulebook.
    pub rules: Arc<Rulebook>,
    /// NATS server and subject to consume events from.
    pub nats: Option<(String, String)>,
    /// Requests per second allowed per API key (burst: twice as many).
    pub rate_limit: u32,
    /// Submitted events may be dated at most this many ms ahead of the wall clock (`None`: no bound).
    pub max_future_ms: Option<i64>,
    /// Header timeout, connection cap and shutdown grace of the HTTP listener.
    pub limits: ConnLimits,
    /// Where consumers' pay-later switch-offs are delivered (`None`: kept in
    /// the outbox until one is configured, and overdue after the rulebook's time).
    pub webhook: Option<Webhook>,
    /// The platform's time zone: the console shows times in it.
    pub time_zone: chrono::FixedOffset,
    /// The console's cookies are always `Secure` and `__Host-` prefixed (set
    /// when users reach it over HTTPS through a proxy; otherwise they are
    /// `Secure` only when the proxy sends `X-Forwarded-Proto: https`).
    pub secure_cookies: bool,
    /// Where and how often the sequencer snapshots its state, so that a start
    /// replays only the ledger after the newest snapshot (`None`: never).
    pub snapshots: Option<snapshots::Snapshots>,
}

/// A secret for one purpose (`label`), derived from the ledger's signing key
/// file: secret, the same on every server that signs this log, and a
/// different one per purpose (console sessions, snapshot seals).
pub(crate) fn derived_secret(label: &str, key_material: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::new()
        .chain_update(label.as_bytes())
        .chain_update(b"\0")
        .chain_update(key_material)
        .finalize()
        .into()
}

/// The time zone a Chinese platform keeps (UTC+8), the console's default.
pub fn china_time() -> chrono::FixedOffset {
    chrono::FixedOffset::east_opt(8 * 3600).expect("8 hours is within a day")
}

/// Shared by every handler.
pub struct AppState {
    sequencer: sequencer::Sequencer,
    keys: auth::KeyCache,
    limiter: governor::DefaultKeyedRateLimiter<String>,
    /// Requests without a key, per source address.
    public_limiter: governor::DefaultKeyedRateLimiter<std::net::IpAddr>,
    /// weiquan's own acts (lift, announce, close, draw) check the state and write
    /// one at a time: two at once would both pass the check and both be written.
    acts: tokio::sync::Mutex<()>,
    /// The sequencer's bound on future-dated events, for routes that check before they act.
    max_future_ms: Option<i64>,
    /// Reads of the public log, beside the sequencer.
    log: Arc<LogReads>,
    /// Reads of findings, beside the sequencer.
    findings: Arc<findings::FindingReads>,
    metrics: Arc<metrics::Metrics>,
    /// The outbox of instructions for the platform.
    pub(crate) outbox: paylater::OutboxStore,
    /// Wakes the delivery task when an instruction is added.
    pub(crate) outbox_wake: tokio::sync::Notify,
    /// The rulebook's `bnpl_ack_hours`.
    pub(crate) ack_hours: f64,
    /// The web console's sessions, key and time zone.
    pub(crate) console: console::Console,
}

/// A running service: its state and the sequencer thread.
pub struct Service {
    /// Shared state for the router.
    pub state: Arc<AppState>,
    sequencer: std::thread::JoinHandle<()>,
    limits: ConnLimits,
    webhook: Option<Webhook>,
}

/// Opens the database, creates the signing key if needed, replays the ledger
/// and starts the sequencer (on a blocking thread: the stores are synchronous).
pub async fn start(cfg: &Config) -> Result<Service> {
    let cfg = cfg.clone();
    tokio::task::spawn_blocking(move || start_blocking(&cfg))
        .await
        .context("starting the service")?
}

fn start_blocking(cfg: &Config) -> Result<Service> {
    weiquan_store::create_data_dir(&cfg.data)?;
    let (signer, created) = weiquan_store::keyfile::load_or_create(&cfg.key, "weiquan.local/ledger")
        .with_context(|| format!("signing key {}", cfg.key.display()))?;
    if created {
        tracing::info!(key = %cfg.key.display(), "created the ledger's signing key (mode 0600) and its .pub");
    }
    // The console's sessions are signed with a secret derived from the
    // signing key; receipts pasted into it are checked with its public half.
    let key_material = std::fs::read(&cfg.key).with_context(|| format!("signing key {}", cfg.key.display()))?;
    let pub_file = weiquan_store::keyfile::pub_path(&cfg.key);
    let verifier_key = std::fs::read_to_string(&pub_file)
        .with_context(|| format!("the signing key's public half {}", pub_file.display()))?
        .trim()
        .to_owned();
    let console = console::Console {
        sessions: console::Sessions::new(&key_material),
        signouts: console::SignOuts::new(cfg.db.clone()),
        verifier: weiquan_ledger::load_verifier(&verifier_key)
            .with_context(|| format!("the signing key's public half {}", pub_file.display()))?,
        verifier_key,
        tz: cfg.time_zone,
        secure_cookies: cfg.secure_cookies,
        cookie_names: console::CookieNames::new(cfg.secure_cookies),
        receipt_reads: tokio::sync::Semaphore::new(console::RECEIPT_READS),
        receipt_sources: std::sync::Mutex::default(),
    };
    let origin = cfg
        .origin
        .clone()
        .unwrap_or_else(|| signed_note::Signer::name(&signer).to_owned());
    // Snapshots are sealed under the signing key: whoever can write to their
    // folder but does not hold the key cannot make the server load a state.
    let snapshots = (cfg.snapshots.clone()).map(|s| snapshots::Store::new(s, &key_material));
    // The consumers of pre-format-3 leaves, as the sequencer's replay finds them, for the findings' readers.
    let legacy = findings::Legacy::default();
    let startup = match &cfg.db {
        Database::Sqlite(_) => sequencer::Startup::Ready(Box::new(
            core::Core::open(cfg.db.open()?, signer, &origin, cfg.rules.clone(), snapshots)?
                .with_reader(cfg.db.open_reader()?)
                .with_max_future(cfg.max_future_ms)
                .with_legacy(legacy.clone()),
        )),
        Database::Postgres { url, schema } => {
            let mut lock = weiquan_store::LeaderLock::connect(url, schema)?;
            let (db, rules, bound, snaps) = (cfg.db.clone(), cfg.rules.clone(), cfg.max_future_ms, snapshots);
            let slot = legacy.clone();
            sequencer::Startup::Elect {
                try_lock: Box::new(move || Ok(lock.try_lead()?)),
                open: Box::new(move || {
                    Ok(core::Core::open(db.open()?, signer, &origin, rules, snaps)?
                        .with_reader(db.open_reader()?)
                        .with_max_future(bound)
                        .with_legacy(slot.clone()))
                }),
            }
        }
    };
    let metrics = Arc::new(metrics::Metrics::default());
    let (sequencer, handle) = sequencer::Sequencer::start(startup, metrics.clone());
    let db = cfg.db.clone();
    let quota = governor::Quota::per_second(
        std::num::NonZeroU32::new(cfg.rate_limit.max(1)).unwrap_or(std::num::NonZeroU32::MIN),
    )
    .allow_burst(std::num::NonZeroU32::new(cfg.rate_limit.max(1) * 2).unwrap_or(std::num::NonZeroU32::MIN));
    let state = Arc::new(AppState {
        sequencer,
        // A reading connection: no checkpointer of its own for a key lookup.
        keys: auth::KeyCache::new(Arc::new(move || db.open_reader())),
        limiter: governor::RateLimiter::keyed(quota),
        public_limiter: governor::RateLimiter::keyed(quota),
        acts: tokio::sync::Mutex::new(()),
        max_future_ms: cfg.max_future_ms,
        log: Arc::new(LogReads::for_log(cfg.db.clone())),
        findings: Arc::new(findings::FindingReads::for_findings(
            cfg.db.clone(),
            cfg.rules.clone(),
            legacy,
        )),
        metrics,
        outbox: paylater::OutboxStore::new(cfg.db.clone()),
        outbox_wake: tokio::sync::Notify::new(),
        ack_hours: cfg.rules.thresholds.bnpl_ack_hours,
        console,
    });
    Ok(Service {
        state,
        sequencer: handle,
        limits: cfg.limits,
        webhook: cfg.webhook.clone(),
    })
}

impl Service {
    /// The HTTP API.
    pub fn router(&self) -> axum::Router {
        api::router(self.state.clone())
    }

    /// Serves on `listener` until `shutdown` resolves, then lets in-flight
    /// requests finish and the sequencer write what it holds.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        nats: Option<(String, String)>,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let router = self.router();
        let nats_task = match nats {
            Some((url, subject)) => Some(tokio::spawn(nats::consume(url, subject, self.state.clone()))),
            None => None,
        };
        let outbox_task = tokio::spawn(paylater::deliver(self.state.clone(), self.webhook.clone()));
        listen::serve(listener, router, self.limits, shutdown).await;
        if let Some(t) = nats_task {
            t.abort();
        }
        outbox_task.abort();
        let Service { state, sequencer, .. } = self;
        drop(state);
        tokio::task::spawn_blocking(move || sequencer.join()).await.ok();
        Ok(())
    }
}

/// Creates an API key with `role` in `db`, valid until `expires_at_ms` (ms since
/// the epoch) if given; returns the key (shown once).
/// Blocking: call it outside an async runtime or through `spawn_blocking`.
pub fn create_key(db: &Database, role: &Role, expires_at_ms: Option<i64>) -> Result<String> {
    let (key, digest) = new_key();
    db.open()?.add_key(&digest, &role.as_string(), expires_at_ms)?;
    Ok(key)
}

/// One API key as `weiquan keys list` shows it (never the key itself).
#[derive(Clone, Debug, serde::Serialize)]
pub struct KeyInfo {
    /// The key's id: the first 8 bytes of its SHA-256, in hex.
    pub id: String,
    /// Its role.
    pub role: String,
    /// When it stops working (RFC 3339), if it does.
    pub expires_at: Option<String>,
}

/// Every API key in `db`. Blocking.
pub fn list_keys(db: &Database) -> Result<Vec<KeyInfo>> {
    Ok(db
        .open()?
        .keys()?
        .into_iter()
        .map(|k| KeyInfo {
            id: auth::key_id(&k.digest),
            role: k.role,
            expires_at: k
                .expires_at_ms
                .map(|ms| weiquan_events::Time::from_unix_ms(ms, 0).to_string()),
        })
        .collect())
}

/// Revokes the key given either as the key itself or as its id (from
/// [`list_keys`]); a running server stops taking it within
/// [`auth::KEY_CACHE_TTL`]. Returns the id revoked. Blocking.
pub fn revoke_key(db: &Database, key_or_id: &str) -> Result<String> {
    let mut store = db.open()?;
    let digest = if key_or_id.starts_with("wq_") {
        auth::digest(key_or_id)
    } else {
        let id = key_or_id.to_ascii_lowercase();
        let matching: Vec<[u8; 32]> = store
            .keys()?
            .into_iter()
            .map(|k| k.digest)
            .filter(|d| auth::key_id(d) == id)
            .collect();
        match matching[..] {
            [d] => d,
            [] => anyhow::bail!("no API key has the id `{key_or_id}`; `weiquan keys list` shows the ids"),
            _ => anyhow::bail!("more than one key has the id `{key_or_id}`; revoke it by the key itself"),
        }
    };
    if !store.remove_key(&digest)? {
        anyhow::bail!("that API key is not known here (already revoked?); `weiquan keys list` shows the keys");
    }
    Ok(auth::key_id(&digest))
}
