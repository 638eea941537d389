//! Where the system of record lives, and who may write it.

use crate::{Backend, PgStore, SqliteStore, StoreError, StoreErrorKind};
use std::path::{Path, PathBuf};

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

    /// Erases a consumer's personal data (PIPL 删除权): the salts and original
    /// values of every leaf about them. The leaves stay, so the log still
    /// verifies; the consumer's pseudonym stays, so findings are unchanged.
    /// On SQLite the file is rewritten (see `docs/ledger.md`): run it while
    /// ingest is quiet.
    pub fn erase_consumer(&self, consumer: &str) -> Result<Erased, StoreError> {
        let mut store = self.open()?;
        let pseudonym = weiquan_ledger::pseudonym(&store.pseudonym_key()?, consumer);
        let leaves = store.erase_consumer(&pseudonym)?;
        Ok(Erased { pseudonym, leaves })
    }

    /// Opens a connection for reads beside the writer's.
    pub fn open_reader(&self) -> Result<Box<dyn Backend>, StoreError> {
        Ok(match self {
            Database::Sqlite(path) => Box::new(SqliteStore::open_for_reading(path)?),
            Database::Postgres { url, schema } => Box::new(PgStore::connect(url, schema)?),
        })
    }
}

/// What [`Database::erase_consumer`] did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Erased {
    /// The pseudonym the consumer keeps in the engine and in findings.
    pub pseudonym: String,
    /// Leaves whose salt and values were erased.
    pub leaves: u64,
}

/// A data folder that could not be made private to its owner.
#[derive(Debug, thiserror::Error)]
#[error("cannot create the data folder {path} readable by its owner only: {source}")]
pub struct DataDirError {
    /// The folder.
    pub path: PathBuf,
    /// What failed.
    pub source: std::io::Error,
}

/// Creates the data folder (if needed) readable by its owner only (0700): it
/// holds the signing key, the database and the seeds weiquan keeps.
pub fn create_data_dir(path: &Path) -> Result<(), DataDirError> {
    let err = |source| DataDirError {
        path: path.to_owned(),
        source,
    };
    std::fs::create_dir_all(path).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
    }
    Ok(())
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
