//! The ledger in one SQLite file (WAL, `synchronous=FULL`: a committed batch
//! survives a crash or power loss).

use crate::{expect_rows, StoredKey};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;
use weiquan_ledger::{FindingRow, LogStore, Private, PrivateRow, Row, StoreError, StoreErrorKind};

/// A ledger kept in a SQLite file.
pub struct SqliteStore {
    conn: Connection,
    /// Present for a file (an in-memory database has no WAL to copy).
    _checkpointer: Option<Checkpointer>,
}

/// Copies the WAL into the database file from a thread of its own, so that no
/// commit pays for it.
///
/// SQLite's automatic checkpoint runs inside the commit that crosses its
/// threshold (1000 pages): that commit then also copies the log into the
/// database and syncs it, one slow commit every 4 MB of WAL. A PASSIVE
/// checkpoint from another connection never waits for or blocks the writer
/// (moving it raised the server's maximum by 6–10%). The automatic checkpoint
/// stays as a backstop at 16384 pages (64 MB of WAL) in case this one falls behind.
struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// How often the background checkpoint runs.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

impl Checkpointer {
    fn start(path: &Path) -> Result<Checkpointer, StoreError> {
        let conn = open_file(path)?;
        conn.execute_batch("PRAGMA synchronous = FULL;")
            .map_err(err("configuring the checkpoint connection"))?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY) {
                    // A failed or partial checkpoint is retried next time; the automatic one is the backstop.
                    let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                }
            })
            .map_err(|e| StoreError::new("starting the checkpoint thread", e))?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn open_file(path: &Path) -> Result<Connection, StoreError> {
    restrict(path)?;
    Connection::open(path).map_err(|e| StoreError::of_kind(kind_of(&e), format!("opening {}", path.display()), e))
}

/// The database holds undisclosed draw seeds and key digests: it and its WAL
/// and shared-memory files are the owner's alone (0600). A new file is created
/// so before SQLite opens it (SQLite gives the WAL the database's mode); an
/// older, looser one is tightened by path.
///
/// An existing database is never opened here: closing any descriptor on it
/// drops every POSIX lock this process holds on it, after which another
/// process closing its connection believes it is the last one, checkpoints
/// and deletes the WAL this process still writes to.
fn restrict(path: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let fail = |e: std::io::Error| {
            StoreError::of_kind(StoreErrorKind::Unavailable, format!("securing {}", path.display()), e)
        };
        if !path.exists() {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
            {
                Ok(_) => return Ok(()),
                // Another process made it first: tighten it below, like any existing one.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(fail(e)),
            }
        }
        for suffix in ["", "-wal", "-shm"] {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            let p = std::path::PathBuf::from(p);
            match std::fs::metadata(&p) {
                Ok(m) if m.permissions().mode() & 0o077 != 0 => {
                    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).map_err(fail)?
                }
                _ => {}
            }
        }
    }
    Ok(())
}

fn err(context: &str) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError::of_kind(kind_of(&e), context, e)
}

/// What kind of failure a SQLite error is.
fn kind_of(e: &rusqlite::Error) -> StoreErrorKind {
    use rusqlite::ErrorCode as C;
    // Only a unique or primary key taken is "already there"; other
    // constraints failing are bugs.
    let unique = [
        rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY,
        rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE,
    ];
    if let rusqlite::Error::SqliteFailure(f, _) = e {
        if unique.contains(&f.extended_code) {
            return StoreErrorKind::Conflict;
        }
    }
    match e.sqlite_error_code() {
        Some(
            C::DatabaseBusy
            | C::DatabaseLocked
            | C::DiskFull
            | C::ReadOnly
            | C::CannotOpen
            | C::SystemIoFailure
            | C::OutOfMemory
            | C::PermissionDenied,
        ) => StoreErrorKind::Unavailable,
        Some(C::DatabaseCorrupt | C::NotADatabase) => StoreErrorKind::Corrupt,
        // Every row read with `query_row` must exist (a count, the schema
        // version, the pseudonym key): its absence, like a value of the
        // wrong type, is damage.
        _ if matches!(
            e,
            rusqlite::Error::QueryReturnedNoRows
                | rusqlite::Error::FromSqlConversionFailure(..)
                | rusqlite::Error::InvalidColumnType(..)
        ) =>
        {
            StoreErrorKind::Corrupt
        }
        _ => StoreErrorKind::Other,
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the ledger in the file at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut store = Self::init(open_file(path)?)?;
        store
            .conn
            .execute_batch("PRAGMA wal_autocheckpoint = 16384;")
            .map_err(err("configuring checkpoints"))?;
        store._checkpointer = Some(Checkpointer::start(path)?);
        Ok(store)
    }

    /// Copies the database, consistently, to a new file `out` (mode 0600) with
    /// SQLite's online backup: writers may go on meanwhile (pages they change
    /// during the copy are copied again), and the copy is one point in time.
    pub fn backup_to(&self, out: &Path) -> Result<(), StoreError> {
        if out.exists() {
            return Err(StoreError::new(
                format!("backing up to {}", out.display()),
                "the file exists; back up to a new file",
            ));
        }
        let mut dest = open_file(out)?;
        let backup = rusqlite::backup::Backup::new(&self.conn, &mut dest).map_err(err("starting the backup"))?;
        backup
            .run_to_completion(1024, Duration::from_millis(5), None)
            .map_err(err("copying the database"))?;
        drop(backup);
        // One self-contained file: the copy's WAL is folded into it.
        dest.execute_batch("PRAGMA journal_mode = DELETE;")
            .map_err(err("finishing the backup"))?;
        Ok(())
    }

    /// A second connection to the ledger at `path`, for reads beside the
    /// writer (WAL lets them run while it commits); it runs no checkpointer.
    pub fn open_for_reading(path: &Path) -> Result<Self, StoreError> {
        Self::init(open_file(path)?)
    }

    /// Opens the ledger at `path` to read it only (`verify`, `ledger`,
    /// `backtest`): no schema is set up and no mode is changed, so a file given
    /// by mistake is refused as it is, not turned into an empty ledger. A
    /// ledger of an older schema is upgraded first, as any open would: the one
    /// case that writes.
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        let context = || format!("reading {}", path.display());
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| StoreError::of_kind(kind_of(&e), context(), e))?;
        // Not damaged: another kind of file (a damaged ledger is `Corrupt`).
        let not_a_ledger = |why: &str| {
            StoreError::of_kind(
                StoreErrorKind::Other,
                context(),
                format!("not a weiquan ledger ({why}); give the ledger's .db file"),
            )
        };
        let at: u32 =
            conn.query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(|e| match e.sqlite_error_code() {
                    Some(rusqlite::ErrorCode::NotADatabase) => not_a_ledger("not an SQLite database"),
                    _ => StoreError::of_kind(kind_of(&e), context(), e),
                })?;
        let has_ledger = || {
            conn.query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'ledger_leaves'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)
            .map_err(|e| StoreError::of_kind(kind_of(&e), context(), e))
        };
        // Version 0 is also a ledger written before versions were kept: it has the tables.
        if at == 0 && !has_ledger()? {
            return Err(not_a_ledger("it holds no ledger table"));
        }
        crate::check_schema_version(at)?;
        if at < crate::SCHEMA_VERSION {
            drop(conn);
            return Self::open_for_reading(path);
        }
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(|e| StoreError::of_kind(kind_of(&e), context(), e))?;
        Ok(SqliteStore {
            conn,
            _checkpointer: None,
        })
    }

    /// A ledger in memory (for tests and dry runs).
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory().map_err(err("opening an in-memory database"))?)
    }

    fn init(mut conn: Connection) -> Result<Self, StoreError> {
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA busy_timeout = 5000;",
        )
        .map_err(err("configuring the database"))?;
        migrate(&mut conn)?;
        Ok(SqliteStore {
            conn,
            _checkpointer: None,
        })
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(err("starting the schema upgrade"))?;
    let at: u32 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(err("reading the schema version"))?;
    crate::check_schema_version(at)?;
    let dialect = crate::Dialect {
        int: "INTEGER",
        blob: "BLOB",
        if_not_exists: "",
        without_rowid: " WITHOUT ROWID",
    };
    for (step, sql) in crate::migrations_after(at, &dialect) {
        // SQLite has no `ADD COLUMN IF NOT EXISTS`, and some unversioned files have the column.
        let has_expiry = || -> Result<bool, StoreError> {
            tx.query_row(
                "SELECT COUNT(*) FROM pragma_table_info('api_keys') WHERE name = 'expires_at'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)
            .map_err(err("reading the key table's columns"))
        };
        if step == 2 && has_expiry()? {
            continue;
        }
        tx.execute_batch(&sql)
            .map_err(|e| StoreError::of_kind(kind_of(&e), format!("upgrading the schema to version {step}"), e))?;
    }
    tx.pragma_update(None, "user_version", crate::SCHEMA_VERSION)
        .map_err(err("recording the schema version"))?;
    tx.commit().map_err(err("committing the schema upgrade"))?;
    // Version 4 moved version 3's private rows out of their table and dropped
    // it: its pages, salts and values included, went to the free list as they were.
    if at == 3 {
        scrub(conn)?;
    }
    Ok(())
}

/// Rewrites the database from its live rows, so that nothing removed stays
/// readable in the file: clearing a column or dropping a table (even with
/// `secure_delete`) leaves older copies in free pages and in page space that
/// B-tree rebalancing left behind (found in a root page turned interior).
/// VACUUM's temporary copy is made beside the database (whose folder is
/// 0700), not in the system's temporary folder; then the WAL that carried the
/// rewrite is folded into the file and truncated, or this fails.
///
/// It holds the write lock throughout: a server writing to the same file
/// meanwhile has its writes refused after the busy timeout (5 s), and retries.
fn scrub(conn: &Connection) -> Result<(), StoreError> {
    if let Some(dir) = conn.path().map(Path::new).and_then(Path::parent) {
        // A process-wide setting; only `weiquan erase` and an upgrade scrub.
        let dir = dir.to_string_lossy().replace('\'', "''");
        conn.execute_batch(&format!("PRAGMA temp_store_directory = '{dir}';"))
            .map_err(err("placing the rewrite's temporary copy"))?;
    }
    conn.execute_batch("VACUUM;")
        .map_err(err("rewriting the database without what was removed"))?;
    for attempt in 0..50 {
        // (busy, frames in the WAL, frames copied): busy means a reader's snapshot still needs the old pages.
        let (busy, _, _): (i64, i64, i64) = conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(err("folding the rewrite into the database file"))?;
        if busy == 0 {
            return Ok(());
        }
        if attempt < 49 {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Err(StoreError::of_kind(
        StoreErrorKind::Unavailable,
        "folding the rewrite into the database file",
        "a reader kept the write-ahead log busy for 5 s, so it may still hold what was removed; \
         run the command again when the server is quiet",
    ))
}

fn count(conn: &Connection) -> Result<u64, StoreError> {
    conn.query_row("SELECT COALESCE(MAX(idx) + 1, 0) FROM ledger_leaves", [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|n| n as u64)
    .map_err(err("counting leaves"))
}

impl LogStore for SqliteStore {
    fn size(&mut self) -> Result<u64, StoreError> {
        count(&self.conn)
    }

    fn append(
        &mut self,
        first: u64,
        leaves: &[Row],
        private: Private<'_>,
        checkpoint: &[u8],
    ) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err("starting an append"))?;
        let size = count(&tx)?;
        crate::expect_size(size, first)?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO ledger_leaves (idx, data, hashes, consumer, salt, leaf_values) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(err("preparing the append"))?;
            for (idx, (data, hashes), (consumer, salt, values)) in crate::with_private(first, leaves, private.rows)? {
                insert
                    .execute(params![idx as i64, data, hashes, consumer, salt, values])
                    .map_err(err("appending a leaf"))?;
            }
            let mut name = tx
                .prepare_cached("INSERT OR IGNORE INTO consumers (pseudonym, consumer) VALUES (?1, ?2)")
                .map_err(err("preparing the append"))?;
            for (pseudonym, id) in private.consumers {
                name.execute(params![pseudonym, id])
                    .map_err(err("keeping a consumer's id"))?;
            }
        }
        crate::findings_in_append(first, leaves.len(), private.findings)?;
        insert_findings(&tx, "INSERT", private.findings)?;
        let new_size = first + leaves.len() as u64;
        tx.execute(
            "INSERT OR REPLACE INTO ledger_checkpoints (size, note) VALUES (?1, ?2)",
            params![new_size as i64, checkpoint],
        )
        .map_err(err("storing the checkpoint"))?;
        tx.commit().map_err(err("committing the append"))
    }

    fn hashes_of(&mut self, leaves: &[u64]) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut q = self
            .conn
            .prepare_cached("SELECT hashes FROM ledger_leaves WHERE idx = ?1")
            .map_err(err("preparing a hash read"))?;
        leaves
            .iter()
            .map(|&leaf| {
                q.query_row([leaf as i64], |r| r.get::<_, Vec<u8>>(0))
                    .optional()
                    .map_err(err("reading hashes"))?
                    .ok_or_else(|| crate::missing_leaf("reading hashes", leaf))
            })
            .collect()
    }

    fn leaves(&mut self, from: u64, to: u64) -> Result<Vec<Row>, StoreError> {
        let mut q = self
            .conn
            .prepare_cached("SELECT idx, data, hashes FROM ledger_leaves WHERE idx >= ?1 AND idx < ?2 ORDER BY idx")
            .map_err(err("preparing a leaf read"))?;
        let rows = q
            .query_map([from as i64, to as i64], |r| {
                Ok((r.get::<_, i64>(0)? as u64, (r.get(1)?, r.get(2)?)))
            })
            .map_err(err("reading leaves"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err("reading leaves"))?;
        expect_rows(rows, from, to)
    }

    fn checkpoints(&mut self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let mut q = self
            .conn
            .prepare_cached("SELECT size, note FROM ledger_checkpoints ORDER BY size")
            .map_err(err("preparing a checkpoint read"))?;
        let rows = q
            .query_map([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))
            .map_err(err("reading checkpoints"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err("reading checkpoints"));
        rows
    }

    fn latest_checkpoint(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        self.conn
            .query_row(
                "SELECT note FROM ledger_checkpoints ORDER BY size DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(err("reading the latest checkpoint"))
    }
}

impl crate::ApiKeys for SqliteStore {
    fn add_key(&mut self, digest: &[u8; 32], role: &str, expires_at_ms: Option<i64>) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO api_keys (digest, role, expires_at) VALUES (?1, ?2, ?3)",
                params![&digest[..], role, expires_at_ms],
            )
            .map(|_| ())
            .map_err(err("storing an API key"))
    }

    fn key_of(&mut self, digest: &[u8; 32]) -> Result<Option<StoredKey>, StoreError> {
        self.conn
            .query_row(
                "SELECT role, expires_at FROM api_keys WHERE digest = ?1",
                [&digest[..]],
                |r| {
                    Ok(StoredKey {
                        digest: *digest,
                        role: r.get(0)?,
                        expires_at_ms: r.get(1)?,
                    })
                },
            )
            .optional()
            .map_err(err("looking up an API key"))
    }

    fn keys(&mut self) -> Result<Vec<StoredKey>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT digest, role, expires_at FROM api_keys ORDER BY digest")
            .map_err(err("listing API keys"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(StoredKey {
                    digest: crate::digest_of(&r.get::<_, Vec<u8>>(0)?),
                    role: r.get(1)?,
                    expires_at_ms: r.get(2)?,
                })
            })
            .map_err(err("listing API keys"))?;
        rows.collect::<Result<_, _>>().map_err(err("listing API keys"))
    }

    fn remove_key(&mut self, digest: &[u8; 32]) -> Result<bool, StoreError> {
        self.conn
            .execute("DELETE FROM api_keys WHERE digest = ?1", [&digest[..]])
            .map(|n| n > 0)
            .map_err(err("revoking an API key"))
    }

    fn end_session(&mut self, sid: &str, expires_at_ms: i64, now_ms: i64) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM console_signouts WHERE expires_at <= ?1", [now_ms])
            .map_err(err("forgetting expired sign-outs"))?;
        self.conn
            .execute(
                "INSERT INTO console_signouts (sid, expires_at) VALUES (?1, ?2) ON CONFLICT (sid) DO NOTHING",
                params![sid, expires_at_ms],
            )
            .map(|_| ())
            .map_err(err("recording a sign-out"))
    }

    fn session_ended(&mut self, sid: &str) -> Result<bool, StoreError> {
        self.conn
            .query_row("SELECT COUNT(*) FROM console_signouts WHERE sid = ?1", [sid], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n > 0)
            .map_err(err("looking up a sign-out"))
    }
}

impl crate::LotterySeeds for SqliteStore {
    fn put_seed(&mut self, lottery: &str, seed: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO lottery_seeds (lottery, seed) VALUES (?1, ?2)",
                params![lottery, seed],
            )
            .map(|_| ())
            .map_err(err("keeping a draw seed"))
    }

    fn seed_of(&mut self, lottery: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row("SELECT seed FROM lottery_seeds WHERE lottery = ?1", [lottery], |r| {
                r.get(0)
            })
            .optional()
            .map_err(err("reading a draw seed"))
    }
}

/// Inserts finding rows on `conn` (`verb`: `INSERT`, or `INSERT OR IGNORE`
/// to keep the rows stored already).
fn insert_findings(conn: &Connection, verb: &str, rows: &[FindingRow]) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut insert = conn
        .prepare_cached(&format!(
            "{verb} INTO findings (leaf, rule, subject, merchant, at_ms, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
        ))
        .map_err(err("preparing to store findings"))?;
    for f in rows {
        insert
            .execute(params![f.leaf as i64, f.rule, f.subject, f.merchant, f.at_ms, f.body])
            .map_err(err("storing a finding"))?;
    }
    Ok(())
}

impl crate::Findings for SqliteStore {
    fn put_findings(&mut self, rows: &[FindingRow]) -> Result<(), StoreError> {
        let tx = self.conn.transaction().map_err(err("starting to store findings"))?;
        insert_findings(&tx, "INSERT OR IGNORE", rows)?;
        tx.commit().map_err(err("committing findings"))
    }

    fn findings(&mut self, filter: &crate::FindingFilter) -> Result<Vec<FindingRow>, StoreError> {
        let Some((sql, params)) = crate::findings_sql(filter, |n| format!("?{n}")) else {
            return Ok(Vec::new());
        };
        let params: Vec<&dyn rusqlite::ToSql> = (params.iter())
            .map(|p| match p {
                crate::SqlParam::Int(i) => i as &dyn rusqlite::ToSql,
                crate::SqlParam::Text(t) => t as &dyn rusqlite::ToSql,
            })
            .collect();
        let mut q = self
            .conn
            .prepare_cached(&sql)
            .map_err(err("preparing to read findings"))?;
        let rows = q
            .query_map(params.as_slice(), |r| {
                Ok(FindingRow {
                    leaf: r.get::<_, i64>(0)? as u64,
                    rule: r.get(1)?,
                    subject: r.get(2)?,
                    merchant: r.get(3)?,
                    at_ms: r.get(4)?,
                    body: r.get(5)?,
                })
            })
            .map_err(err("reading findings"))?;
        rows.collect::<Result<_, _>>().map_err(err("reading findings"))
    }

    fn finding_counts(&mut self, since_ms: i64, offset_ms: i64) -> Result<Vec<crate::FindingCount>, StoreError> {
        let [totals, days] = crate::finding_counts_sql(|n| format!("?{n}"));
        // One read transaction: both statements see the same findings.
        let tx = self.conn.transaction().map_err(err("starting to count findings"))?;
        let totals: Vec<(String, u64)> = {
            let mut q = tx.prepare_cached(&totals).map_err(err("preparing to count findings"))?;
            let rows = q
                .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))
                .map_err(err("counting findings"))?;
            rows.collect::<Result<_, _>>().map_err(err("counting findings"))?
        };
        let days: Vec<(String, i64, u64)> = {
            let mut q = tx.prepare_cached(&days).map_err(err("preparing to count findings"))?;
            let rows = q
                .query_map(params![since_ms, offset_ms], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64))
                })
                .map_err(err("counting findings"))?;
            rows.collect::<Result<_, _>>().map_err(err("counting findings"))?
        };
        tx.commit().map_err(err("counting findings"))?;
        Ok(crate::counts_from(totals, days))
    }
}

impl crate::EventIds for SqliteStore {
    fn id_runs(&mut self) -> Result<Vec<(u64, u64)>, StoreError> {
        let mut q = self
            .conn
            .prepare_cached("SELECT run, end_leaf FROM event_id_run_ends ORDER BY run")
            .map_err(err("preparing to list id runs"))?;
        let rows = q
            .query_map([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)))
            .map_err(err("listing id runs"))?;
        rows.collect::<Result<_, _>>().map_err(err("listing id runs"))
    }

    fn put_id_run(&mut self, run: u64, end_leaf: u64, buckets: &[(u32, Vec<u8>)]) -> Result<(), StoreError> {
        let tx = self.conn.transaction().map_err(err("starting to store an id run"))?;
        tx.execute(
            "INSERT INTO event_id_run_ends (run, end_leaf) VALUES (?1, ?2)",
            params![run as i64, end_leaf as i64],
        )
        .map_err(err("storing an id run"))?;
        {
            let mut insert = tx
                .prepare_cached("INSERT INTO event_id_runs (bucket, run, pairs) VALUES (?1, ?2, ?3)")
                .map_err(err("preparing to store an id run"))?;
            for (bucket, pairs) in buckets {
                insert
                    .execute(params![bucket, run as i64, pairs])
                    .map_err(err("storing an id run"))?;
            }
        }
        tx.commit().map_err(err("committing an id run"))
    }

    fn id_run_buckets(&mut self, buckets: &[u32]) -> Result<Vec<(u32, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        // SQLite binds at most 32,766 parameters; 4,096 a statement keeps it cached.
        for chunk in buckets.chunks(4096) {
            let marks = vec!["?"; chunk.len()].join(",");
            let mut q = self
                .conn
                .prepare_cached(&format!(
                    "SELECT bucket, pairs FROM event_id_runs WHERE bucket IN ({marks})"
                ))
                .map_err(err("preparing an id lookup"))?;
            let rows = q
                .query_map(rusqlite::params_from_iter(chunk), |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(err("looking up event ids"))?;
            for row in rows {
                out.push(row.map_err(err("looking up event ids"))?);
            }
        }
        Ok(out)
    }
}

impl crate::PrivateData for SqliteStore {
    fn private_rows(&mut self, from: u64, to: u64) -> Result<Vec<PrivateRow>, StoreError> {
        let mut q = self
            .conn
            .prepare_cached(
                "SELECT idx, consumer, salt, leaf_values FROM ledger_leaves \
                 WHERE idx >= ?1 AND idx < ?2 AND (consumer IS NOT NULL OR salt IS NOT NULL) ORDER BY idx",
            )
            .map_err(err("reading private parts"))?;
        let rows = q
            .query_map([from as i64, to as i64], |r| {
                Ok(PrivateRow {
                    leaf: r.get::<_, i64>(0)? as u64,
                    consumer: r.get(1)?,
                    salt: crate::bytes32(r.get(2)?),
                    values: r.get(3)?,
                })
            })
            .map_err(err("reading private parts"))?;
        rows.collect::<Result<_, _>>().map_err(err("reading private parts"))
    }

    fn erase_consumer(&mut self, pseudonym: &str) -> Result<u64, StoreError> {
        let tx = self.conn.transaction().map_err(err("erasing a consumer's data"))?;
        tx.execute(
            "INSERT INTO consumers (pseudonym, consumer) VALUES (?1, NULL)
             ON CONFLICT (pseudonym) DO UPDATE SET consumer = NULL",
            [pseudonym],
        )
        .map_err(err("erasing a consumer's id"))?;
        // Undelivered switch-offs stay: the consumer's request is still carried out.
        tx.execute(
            "DELETE FROM outbox WHERE pseudonym = ?1 AND delivered_ms IS NOT NULL",
            [pseudonym],
        )
        .map_err(err("erasing a consumer's instructions"))?;
        tx.execute("DELETE FROM evidence WHERE pseudonym = ?1", [pseudonym])
            .map_err(err("erasing a consumer's evidence"))?;
        let n = tx
            .execute(
                "UPDATE ledger_leaves SET salt = NULL, leaf_values = NULL WHERE consumer = ?1 AND salt IS NOT NULL",
                [pseudonym],
            )
            .map_err(err("erasing a consumer's data"))?;
        tx.execute("DELETE FROM secrets WHERE name = ?1", [crate::ERASURE_MARK])
            .map_err(err("marking the erasure"))?;
        tx.commit().map_err(err("committing the erasure"))?;
        scrub(&self.conn)?;
        Ok(n as u64)
    }

    fn consumer_id(&mut self, pseudonym: &str) -> Result<Option<Option<String>>, StoreError> {
        self.conn
            .query_row(
                "SELECT consumer FROM consumers WHERE pseudonym = ?1",
                [pseudonym],
                |r| r.get(0),
            )
            .optional()
            .map_err(err("reading a consumer's id"))
    }

    fn secret(&mut self, name: &str) -> Result<[u8; 32], StoreError> {
        // INSERT OR IGNORE then read: two processes opening one new database agree on one key.
        self.conn
            .execute(
                "INSERT OR IGNORE INTO secrets (name, value) VALUES (?1, ?2)",
                params![name, &crate::new_secret()[..]],
            )
            .map_err(err("making a secret"))?;
        let key: Vec<u8> = self
            .conn
            .query_row("SELECT value FROM secrets WHERE name = ?1", [name], |r| r.get(0))
            .map_err(err("reading a secret"))?;
        crate::bytes32(Some(key)).ok_or_else(|| {
            StoreError::of_kind(
                StoreErrorKind::Corrupt,
                "reading a secret",
                format!("`{name}` is not 32 bytes"),
            )
        })
    }
}

fn instruction_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<crate::Instruction> {
    Ok(crate::Instruction {
        id: r.get(0)?,
        pseudonym: r.get(1)?,
        actor_key: r.get(2)?,
        body: r.get(3)?,
        created_ms: r.get(4)?,
        recorded: r.get(5)?,
        attempts: r.get(6)?,
        next_ms: r.get(7)?,
        first_attempt_ms: r.get(8)?,
        delivered_ms: r.get(9)?,
        status: r.get(10)?,
        last_error: r.get(11)?,
        overdue: r.get(12)?,
    })
}

impl crate::Outbox for SqliteStore {
    fn outbox_put(&mut self, i: &crate::Instruction) -> Result<(), StoreError> {
        self.conn
            .execute(
                &format!(
                    "INSERT INTO outbox ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                    crate::OUTBOX_COLUMNS
                ),
                params![
                    i.id,
                    i.pseudonym,
                    i.actor_key,
                    i.body,
                    i.created_ms,
                    i.recorded,
                    i.attempts,
                    i.next_ms,
                    i.first_attempt_ms,
                    i.delivered_ms,
                    i.status,
                    i.last_error,
                    i.overdue
                ],
            )
            .map(|_| ())
            .map_err(err("keeping an instruction for the platform"))
    }

    fn outbox_update(&mut self, i: &crate::Instruction) -> Result<(), StoreError> {
        self.conn
            .execute(
                &crate::outbox_update_sql('?'),
                params![
                    i.id,
                    i.recorded,
                    i.attempts,
                    i.next_ms,
                    i.first_attempt_ms,
                    i.delivered_ms,
                    i.status,
                    i.last_error,
                    i.overdue
                ],
            )
            .map(|_| ())
            .map_err(err("updating an instruction for the platform"))
    }

    fn outbox_remove(&mut self, id: &str) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM outbox WHERE id = ?1", [id])
            .map(|_| ())
            .map_err(err("removing an instruction for the platform"))
    }

    fn outbox_due(&mut self, now_ms: i64, limit: u32) -> Result<Vec<crate::Instruction>, StoreError> {
        let sql = format!(
            "SELECT {} FROM outbox WHERE delivered_ms IS NULL AND next_ms <= ?1 ORDER BY next_ms, id LIMIT ?2",
            crate::OUTBOX_COLUMNS
        );
        let mut q = self.conn.prepare_cached(&sql).map_err(err("reading the outbox"))?;
        let rows = q
            .query_map(params![now_ms, limit], instruction_of)
            .map_err(err("reading the outbox"))?;
        rows.collect::<Result<_, _>>().map_err(err("reading the outbox"))
    }

    fn outbox_of(&mut self, pseudonym: &str) -> Result<Vec<crate::Instruction>, StoreError> {
        let sql = format!(
            "SELECT {} FROM outbox WHERE pseudonym = ?1 ORDER BY created_ms, id",
            crate::OUTBOX_COLUMNS
        );
        let mut q = self.conn.prepare_cached(&sql).map_err(err("reading the outbox"))?;
        let rows = q
            .query_map([pseudonym], instruction_of)
            .map_err(err("reading the outbox"))?;
        rows.collect::<Result<_, _>>().map_err(err("reading the outbox"))
    }
}

impl crate::EvidenceFiles for SqliteStore {
    fn evidence_put(&mut self, f: &crate::EvidenceFile) -> Result<bool, StoreError> {
        self.conn
            .execute(
                "INSERT INTO evidence (sha256, kind, size, pseudonym, sealed) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (pseudonym, sha256) DO NOTHING",
                params![f.sha256, f.kind, f.size, f.pseudonym, f.sealed],
            )
            .map(|n| n == 1)
            .map_err(err("keeping an evidence file"))
    }

    fn evidence_get(&mut self, pseudonym: &str, sha256: &str) -> Result<Option<crate::EvidenceFile>, StoreError> {
        self.conn
            .query_row(
                "SELECT sha256, kind, size, pseudonym, sealed FROM evidence WHERE pseudonym = ?1 AND sha256 = ?2",
                [pseudonym, sha256],
                |r| {
                    Ok(crate::EvidenceFile {
                        sha256: r.get(0)?,
                        kind: r.get(1)?,
                        size: r.get(2)?,
                        pseudonym: r.get(3)?,
                        sealed: r.get(4)?,
                    })
                },
            )
            .optional()
            .map_err(err("reading an evidence file"))
    }

    fn evidence_remove(&mut self, pseudonym: &str, sha256: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "DELETE FROM evidence WHERE pseudonym = ?1 AND sha256 = ?2",
                [pseudonym, sha256],
            )
            .map(|_| ())
            .map_err(err("removing an evidence file"))
    }
}
