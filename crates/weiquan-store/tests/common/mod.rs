//! Backends for the shared store suite: a SQLite file and a PostgreSQL schema
//! of its own on the server at 127.0.0.1:5432 (override with WEIQUAN_TEST_PG).

#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use weiquan_store::{PgStore, SqliteStore};

pub use weiquan_testkit::{pg_url, postgres_available};

/// A store under test and what to clean up after it.
pub enum Backend {
    /// SQLite in a temporary folder.
    Sqlite(tempfile::TempDir),
    /// A PostgreSQL schema, dropped at the end.
    Postgres(String),
}

impl Backend {
    /// Opens (another connection to) the store.
    pub fn open(&self) -> Box<dyn weiquan_store::LogStore> {
        match self {
            Backend::Sqlite(dir) => Box::new(SqliteStore::open(&dir.path().join("ledger.db")).expect("sqlite opens")),
            Backend::Postgres(schema) => {
                Box::new(PgStore::connect(&pg_url(), schema).expect("PostgreSQL at 127.0.0.1:5432 is running"))
            }
        }
    }

    /// Opens the store as a server does: ledger, keys and seeds.
    pub fn open_backend(&self) -> Box<dyn weiquan_store::Backend> {
        match self {
            Backend::Sqlite(dir) => Box::new(SqliteStore::open(&dir.path().join("ledger.db")).expect("sqlite opens")),
            Backend::Postgres(schema) => {
                Box::new(PgStore::connect(&pg_url(), schema).expect("PostgreSQL at 127.0.0.1:5432 is running"))
            }
        }
    }

    /// Overwrites a stored value with `sql` (`?1`/`$1` = new bytes, `?2`/`$2` = key).
    pub fn tamper(&self, table: &str, column: &str, key_column: &str, key: u64, bytes: &[u8]) {
        match self {
            Backend::Sqlite(dir) => {
                let conn = rusqlite_conn(dir);
                conn.execute(
                    &format!("UPDATE {table} SET {column} = ?1 WHERE {key_column} = ?2"),
                    rusqlite_params(bytes, key),
                )
                .expect("update");
            }
            Backend::Postgres(schema) => {
                let mut c = postgres::Client::connect(&pg_url(), postgres::NoTls).expect("connect");
                c.batch_execute(&format!("SET search_path TO \"{schema}\""))
                    .expect("schema");
                c.execute(
                    &format!("UPDATE {table} SET {column} = $1 WHERE {key_column} = $2"),
                    &[&bytes, &(key as i64)],
                )
                .expect("update");
            }
        }
    }
}

impl Backend {
    /// Runs `statement` (the same SQL on both) behind the store's back.
    pub fn sql(&self, statement: &str) {
        match self {
            Backend::Sqlite(dir) => {
                rusqlite_conn(dir).execute_batch(statement).expect("statement");
            }
            Backend::Postgres(schema) => {
                let mut c = postgres::Client::connect(&pg_url(), postgres::NoTls).expect("connect");
                c.batch_execute(&format!("SET search_path TO \"{schema}\"; {statement}"))
                    .expect("statement");
            }
        }
    }
}

fn rusqlite_conn(dir: &tempfile::TempDir) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.path().join("ledger.db")).expect("open")
}

fn rusqlite_params(bytes: &[u8], key: u64) -> (Vec<u8>, i64) {
    (bytes.to_vec(), key as i64)
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Backend::Postgres(schema) = self {
            if let Ok(mut c) = postgres::Client::connect(&pg_url(), postgres::NoTls) {
                let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"));
            }
        }
    }
}

static N: AtomicU32 = AtomicU32::new(0);

/// Both backends, fresh (PostgreSQL when it is here; see `weiquan_testkit::services`).
pub fn backends() -> Vec<(&'static str, Backend)> {
    let schema = format!("wq_test_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
    let mut backends = vec![("sqlite", Backend::Sqlite(tempfile::tempdir().expect("tempdir")))];
    if postgres_available() {
        backends.push(("postgres", Backend::Postgres(schema)));
    }
    backends
}

/// A signer and verifier for tests.
pub fn keys() -> (signed_note::StandardSigner, signed_note::StandardVerifier) {
    let (skey, vkey) = weiquan_ledger::generate_key("weiquan.test/log").expect("valid name");
    (
        weiquan_ledger::load_signer(&skey).expect("signer"),
        weiquan_ledger::load_verifier(&vkey).expect("verifier"),
    )
}
