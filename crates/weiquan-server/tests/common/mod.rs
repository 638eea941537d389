//! Shared by the server's integration tests: a database per test (SQLite
//! file or PostgreSQL schema) and a server on an ephemeral port.
#![allow(dead_code)] // each test crate uses a part

use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use weiquan_engine::Rulebook;
use weiquan_server::{create_key, Config, Database, Role};

#[allow(unused_imports)] // each test crate uses a part
pub use weiquan_testkit::{nats_available, pg_url, postgres_available, root};

/// The business time of the tests' hand-written events.
pub const AT: &str = "2026-11-01T10:00:00+08:00";

/// An event line: the envelope (`v`, `id`, `type`, `at` = [`AT`]) and `fields`.
pub fn ev(id: &str, ty: &str, fields: Value) -> String {
    let mut e = serde_json::json!({"v": 1, "id": id, "type": ty, "at": AT});
    if let (Some(o), Value::Object(f)) = (e.as_object_mut(), fields) {
        o.extend(f);
    }
    e.to_string()
}

pub static N: AtomicU32 = AtomicU32::new(0);

/// A database for one test, dropped at the end.
pub struct Db {
    pub db: Database,
    pub dir: tempfile::TempDir,
}

impl Db {
    pub fn sqlite() -> Db {
        let dir = tempfile::tempdir().expect("tempdir");
        Db {
            db: Database::Sqlite(dir.path().join("weiquan.db")),
            dir,
        }
    }
    pub fn postgres() -> Db {
        let schema = format!("wq_api_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        Db {
            db: Database::Postgres { url: pg_url(), schema },
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }
    pub fn both() -> Vec<(&'static str, Db)> {
        let mut dbs = vec![("sqlite", Db::sqlite())];
        if postgres_available() {
            dbs.push(("postgres", Db::postgres()));
        }
        dbs
    }
    pub fn config(&self, nats: Option<(String, String)>) -> Config {
        Config {
            data: self.dir.path().to_owned(),
            db: self.db.clone(),
            key: self.dir.path().join("ledger.key"),
            origin: None,
            rules: Arc::new(Rulebook::builtin()),
            nats,
            rate_limit: 10_000,
            max_future_ms: Some(24 * 3_600_000),
            limits: weiquan_server::ConnLimits::default(),
            webhook: None,
            time_zone: weiquan_server::china_time(),
            secure_cookies: false,
            snapshots: None,
        }
    }
    pub async fn key(&self, role: &str) -> String {
        let (db, role) = (self.db.clone(), Role::parse(role).expect("role"));
        tokio::task::spawn_blocking(move || create_key(&db, &role, None))
            .await
            .expect("join")
            .expect("key created")
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Database::Postgres { url, schema } = self.db.clone() {
            // The synchronous client may not run on an async runtime's thread.
            let _ = std::thread::spawn(move || {
                if let Ok(mut c) = postgres::Client::connect(&url, postgres::NoTls) {
                    let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"));
                }
            })
            .join();
        }
    }
}

/// A server on an ephemeral port.
pub struct Server {
    pub base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub http: reqwest::Client,
}

impl Server {
    pub async fn start(cfg: Config) -> Server {
        let service = weiquan_server::start(&cfg).await.expect("service starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let nats = cfg.nats.clone();
        let task = tokio::spawn(service.serve(listener, nats, async move {
            let _ = stopped.await;
        }));
        let server = Server {
            base,
            stop: Some(stop),
            task,
            http: reqwest::Client::new(),
        };
        // On PostgreSQL the sequencer first takes the ledger's lock; wait until it leads.
        for _ in 0..200 {
            if server.call("GET", "/readyz", None, None).await.0 == 200 {
                return server;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("the server did not become ready");
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        (&mut self.task)
            .await
            .expect("server task")
            .expect("server stops cleanly");
    }

    pub async fn call(&self, method: &str, path: &str, key: Option<&str>, body: Option<String>) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let mut req = match method {
            "POST" => self.http.post(url),
            _ => self.http.get(url),
        };
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn post_events(&self, key: &str, body: String) -> Value {
        let (status, v) = self.call("POST", "/v1/events", Some(key), Some(body)).await;
        assert_eq!(status, 200, "{v}");
        v
    }

    /// Every finding `key` may read, as the API gives them, `page` at a time.
    pub async fn findings(&self, key: &str, page: u32) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<u64> = None;
        loop {
            let path = match cursor {
                Some(c) => format!("/v1/findings?limit={page}&cursor={c}"),
                None => format!("/v1/findings?limit={page}"),
            };
            let (status, v) = self.call("GET", &path, Some(key), None).await;
            assert_eq!(status, 200, "{v}");
            out.extend(v["findings"].as_array().expect("findings").iter().cloned());
            match v["next_cursor"].as_u64() {
                Some(c) => cursor = Some(c),
                None => return out,
            }
        }
    }

    /// The `(rule, subject)` pairs of every finding `key` may read (paged by 7: the cursor is exercised).
    pub async fn pairs(&self, key: &str) -> BTreeSet<(String, String)> {
        weiquan_testkit::pairs(&self.findings(key, 7).await)
    }
}
