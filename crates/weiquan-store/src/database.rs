//! Where the system of record lives, and who may write it.

use crate::{Backend, PgStore, SqliteStore, StoreError, StoreErrorKind};
use std::path::PathBuf;

/// Where the system of record lives.
#[derive(Clone, Debug)]
pub enum Database {
    /// A SQLite file (`DATA/weiquan.db`).
    Sqlite(PathBuf),
    /// A PostgreSQL URL and the schema to use.
    Postgres {
        /// Connection string.
        url: String,
        /// Schema holding weiquan's tables.
        schema: String,
    },
}

impl Database {
    /// Opens a connection (for SQLite, the writer's, with its background checkpointer).
    pub fn open(&self) -> Result<Box<dyn Backend>, StoreError> {
        Ok(match self {
            Database::Sqlite(path) => Box::new(SqliteStore::open(path)?),
            Database::Postgres { url, schema } => Box::new(PgStore::connect(url, schema)?),
        })
    }

    /// Opens a connection for reads beside the writer's.
    pub fn open_reader(&self) -> Result<Box<dyn Backend>, StoreError> {
        Ok(match self {
            Database::Sqlite(path) => Box::new(SqliteStore::open_for_reading(path)?),
            Database::Postgres { url, schema } => Box::new(PgStore::connect(url, schema)?),
        })
    }
}

/// The right to write a PostgreSQL ledger: one process at a time appends to
/// it (the others stand by). A session advisory lock, held by a connection
/// of its own and released when that connection ends — also when the
/// process dies, so a standby takes over without anyone cleaning up.
/// (A SQLite file has one writer by construction: nothing to elect.)
pub struct LeaderLock {
    client: postgres::Client,
    key: i64,
}

impl LeaderLock {
    /// Connects to the server that holds the ledger in `schema` (the lock is not taken yet).
    pub fn connect(url: &str, schema: &str) -> Result<LeaderLock, StoreError> {
        let client = postgres::Client::connect(url, postgres::NoTls).map_err(|e| {
            StoreError::of_kind(
                StoreErrorKind::Unavailable,
                format!("connecting to {}", crate::redacted(url)),
                e,
            )
        })?;
        Ok(LeaderLock {
            client,
            key: advisory_key(schema),
        })
    }

    /// Takes the lock if no other process holds it; whether this one now leads
    /// (asking again while leading answers true).
    pub fn try_lead(&mut self) -> Result<bool, StoreError> {
        let row = (self.client)
            .query_one("SELECT pg_try_advisory_lock($1)", &[&self.key])
            .map_err(|e| StoreError::of_kind(StoreErrorKind::Unavailable, "asking for the ledger's writer lock", e))?;
        Ok(row.get::<_, bool>(0))
    }
}

/// The advisory-lock key of the ledger in `schema`.
fn advisory_key(schema: &str) -> i64 {
    use sha2::Digest;
    let d = sha2::Sha256::digest(format!("weiquan sequencer {schema}").as_bytes());
    i64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}
