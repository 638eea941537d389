//! Storage for weiquan's ledger: one [`LogStore`] trait (in `weiquan-ledger`),
//! two implementations — SQLite in WAL mode (the default: one file, no setup)
//! and PostgreSQL (the system of record beyond one machine).
//!
//! Both keep one row per leaf (its data and the tree hashes it completed) and
//! one row per signed checkpoint, and write a batch in one transaction that is
//! durable when `append` returns.

mod database;
pub mod keyfile;
mod postgres_store;
mod sqlite;

pub use database::{create_data_dir, DataDirError, Database, Erased, LeaderLock};
pub use postgres_store::PgStore;
pub use sqlite::SqliteStore;
use weiquan_ledger::Row;
pub use weiquan_ledger::{FindingRow, LogStore, Private, PrivateRow, StoreError, StoreErrorKind};

/// The version of the database schema this build writes. Opening a database
/// at an older version upgrades it; a newer one is refused.
pub const SCHEMA_VERSION: u32 = 10;

/// The schema, one step per version, for both stores: `{int}` is a 64-bit
/// integer type, `{blob}` a byte string, `{if_not_exists}` what the dialect
/// says for a column that may exist already, `{without_rowid}` what it says
/// for a table stored as its primary key's index alone. A database records the version
/// it is at; opening it runs the steps after that, in one transaction.
/// Version 0 is a new database, or one written before versions were kept
/// (whose tables the first steps find in place: steps 1–3 are idempotent).
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [
    // 1: the ledger, API keys, held draw seeds.
    "CREATE TABLE IF NOT EXISTS ledger_leaves (
         idx {int} PRIMARY KEY,
         data {blob} NOT NULL,
         hashes {blob} NOT NULL
     );
     CREATE TABLE IF NOT EXISTS ledger_checkpoints (
         size {int} PRIMARY KEY,
         note {blob} NOT NULL
     );
     CREATE TABLE IF NOT EXISTS api_keys (
         digest {blob} PRIMARY KEY,
         role TEXT NOT NULL
     );
     CREATE TABLE IF NOT EXISTS lottery_seeds (
         lottery TEXT PRIMARY KEY,
         seed TEXT NOT NULL
     );",
    // 2: key expiry.
    "ALTER TABLE api_keys ADD COLUMN {if_not_exists}expires_at {int};",
    // 3: the private side of salted leaves, consumers' ids by pseudonym, and
    // the pseudonym key. No index on leaf_private.consumer: pseudonyms are
    // random, and an index on them dirtied a random page per leaf (ingest
    // fell to 37% on SQLite, 49% on PostgreSQL); erasure scans instead.
    "CREATE TABLE IF NOT EXISTS leaf_private (
         leaf {int} PRIMARY KEY,
         consumer TEXT,
         salt {blob},
         leaf_values {blob}
     );
     CREATE TABLE IF NOT EXISTS consumers (
         pseudonym TEXT PRIMARY KEY,
         consumer TEXT
     );
     CREATE TABLE IF NOT EXISTS secrets (
         name TEXT PRIMARY KEY,
         value {blob} NOT NULL
     );",
    // 4: the private side moves into the leaf's own row (columns that no
    // public read selects): one row per leaf instead of two for the two
    // thirds of leaves that name a consumer, a tenth of ingest's CPU on both
    // stores. A leaf has a private part when it names a consumer or has a salt.
    "ALTER TABLE ledger_leaves ADD COLUMN {if_not_exists}consumer TEXT;
     ALTER TABLE ledger_leaves ADD COLUMN {if_not_exists}salt {blob};
     ALTER TABLE ledger_leaves ADD COLUMN {if_not_exists}leaf_values {blob};
     UPDATE ledger_leaves SET
         consumer = (SELECT p.consumer FROM leaf_private p WHERE p.leaf = ledger_leaves.idx),
         salt = (SELECT p.salt FROM leaf_private p WHERE p.leaf = ledger_leaves.idx),
         leaf_values = (SELECT p.leaf_values FROM leaf_private p WHERE p.leaf = ledger_leaves.idx)
     WHERE idx IN (SELECT leaf FROM leaf_private);
     DROP TABLE leaf_private;",
    // 5: the outbox of instructions weiquan delivers to the platform (a
    // consumer's pay-later switch-off), kept after delivery as the record of
    // its acknowledgement. Only undelivered rows are looked up by time.
    "CREATE TABLE IF NOT EXISTS outbox (
         id TEXT PRIMARY KEY,
         pseudonym TEXT NOT NULL,
         actor_key TEXT,
         body {blob} NOT NULL,
         created_ms {int} NOT NULL,
         recorded {int} NOT NULL,
         attempts {int} NOT NULL,
         next_ms {int} NOT NULL,
         first_attempt_ms {int},
         delivered_ms {int},
         status {int},
         last_error TEXT,
         overdue {int} NOT NULL
     );
     CREATE INDEX IF NOT EXISTS outbox_due ON outbox (next_ms) WHERE delivered_ms IS NULL;
     CREATE INDEX IF NOT EXISTS outbox_pseudonym ON outbox (pseudonym);",
    // 6: complaints' evidence files, by the consumer who brought them and the
    // hex SHA-256 of their content (the log carries only that), sealed
    // (encrypted and authenticated) by the server; kept outside the log, so
    // that erasure removes a consumer's files and nobody else's.
    "CREATE TABLE IF NOT EXISTS evidence (
         pseudonym TEXT NOT NULL,
         sha256 TEXT NOT NULL,
         kind TEXT NOT NULL,
         size {int} NOT NULL,
         sealed {blob} NOT NULL,
         PRIMARY KEY (pseudonym, sha256)
     );
",
    // 7: console sessions signed out before their expiry (the session cookie
    // is stateless; its id is kept here until it would have expired, so that
    // a sign-out holds across restarts and on every server of the database).
    "CREATE TABLE IF NOT EXISTS console_signouts (
         sid TEXT PRIMARY KEY,
         expires_at {int} NOT NULL
     );
     CREATE INDEX IF NOT EXISTS console_signouts_expiry ON console_signouts (expires_at);
",
    // 8: accepted events' ids, one index row per id written with its leaf.
    // Replaced by step 9 (it halved ingest: a random page per event); kept
    // as it was, because databases were upgraded to it.
    "CREATE TABLE IF NOT EXISTS event_ids (
         digest {blob} PRIMARY KEY,
         leaf {int} NOT NULL
     ){without_rowid};
     CREATE TABLE IF NOT EXISTS event_ids_backfill (below {int} NOT NULL);
     INSERT INTO event_ids_backfill (below) SELECT COUNT(*) FROM ledger_leaves HAVING COUNT(*) > 0;
",
    // 9: accepted events' ids, by the first 16 bytes of their SHA-256, with
    // their leaf: the duplicate check and the evidence of findings read them
    // here instead of holding every id in memory (issue 19). The server
    // writes them a run at a time (the ids of a million or so leaves, once
    // those are durable), split by the digest's first bits into buckets of
    // sorted (digest, leaf) pairs. Keyed by bucket first, so that a lookup
    // reads one range per bucket; a run's write dirties one page per bucket
    // whatever the table's size. A run ends before `end_leaf`; the ids of the
    // leaves after the last run are the server's to index from the ledger.
    "DROP TABLE IF EXISTS event_ids;
     DROP TABLE IF EXISTS event_ids_backfill;
     CREATE TABLE IF NOT EXISTS event_id_runs (
         bucket {int} NOT NULL,
         run {int} NOT NULL,
         pairs {blob} NOT NULL,
         PRIMARY KEY (bucket, run)
     ){without_rowid};
     CREATE TABLE IF NOT EXISTS event_id_run_ends (
         run {int} PRIMARY KEY,
         end_leaf {int} NOT NULL
     );
",
    // 10: findings, one row per finding leaf, written in its transaction
    // (issue 19: a server held every finding in memory for the life of the
    // ledger). Readers page through them in leaf order, by rule, subject,
    // merchant or time (hence the indexes: findings are a few in ten
    // thousand leaves on an ordinary platform, so they cost ingest little). `body` is the finding as the
    // engine made it, with the facts its message names. A ledger written
    // before has its rows filled in by the server's replay: snapshots
    // written before this step are of another format, so the first start
    // after the upgrade replays the whole ledger.
    "CREATE TABLE IF NOT EXISTS findings (
         leaf {int} PRIMARY KEY,
         rule TEXT NOT NULL,
         subject TEXT NOT NULL,
         merchant TEXT,
         at_ms {int} NOT NULL,
         body {blob} NOT NULL
     );
     CREATE INDEX IF NOT EXISTS findings_by_merchant ON findings (merchant, leaf);
     CREATE INDEX IF NOT EXISTS findings_by_subject ON findings (subject, leaf);
     CREATE INDEX IF NOT EXISTS findings_by_rule ON findings (rule, leaf);
     CREATE INDEX IF NOT EXISTS findings_by_time ON findings (at_ms, leaf);
",
];

/// How one SQL dialect says what [`MIGRATIONS`] leaves open.
struct Dialect {
    int: &'static str,
    blob: &'static str,
    if_not_exists: &'static str,
    without_rowid: &'static str,
}

/// The SQL of migration steps `after+1..=SCHEMA_VERSION` in one dialect, with each step's number.
fn migrations_after(after: u32, d: &Dialect) -> Vec<(u32, String)> {
    (after..SCHEMA_VERSION)
        .map(|i| {
            let sql = MIGRATIONS[i as usize]
                .replace("{int}", d.int)
                .replace("{blob}", d.blob)
                .replace("{if_not_exists}", d.if_not_exists)
                .replace("{without_rowid}", d.without_rowid);
            (i + 1, sql)
        })
        .collect()
}

/// Refuses a database written by a newer weiquan.
fn check_schema_version(found: u32) -> Result<(), StoreError> {
    if found > SCHEMA_VERSION {
        return Err(StoreError::new(
            "opening the database",
            format!(
                "its schema is version {found}, written by a newer weiquan; this one reads versions up to \
                 {SCHEMA_VERSION}: run the newer weiquan, or restore a backup this version wrote"
            ),
        ));
    }
    Ok(())
}

/// A leaf's private columns as both stores write them: the consumer's
/// pseudonym, the salt, the original values (all `None` for a leaf without a
/// private part).
type PrivateColumns<'a> = (Option<&'a str>, Option<&'a [u8]>, Option<&'a [u8]>);

/// The leaves of an append at `first`, each with its index and its private
/// columns. Refuses private rows that are out of order or belong to no leaf
/// of the append: they would otherwise be dropped without a word.
fn with_private<'a>(
    first: u64,
    leaves: &'a [Row],
    rows: &'a [PrivateRow],
) -> Result<impl Iterator<Item = (u64, &'a Row, PrivateColumns<'a>)>, StoreError> {
    rows_of_append(first, leaves.len(), rows.iter().map(|r| r.leaf), "private")?;
    // A leaf has a private part when it names a consumer or has a salt: a row
    // with neither would be stored as nothing and never read back.
    if let Some(empty) = rows.iter().find(|r| r.consumer.is_none() && r.salt.is_none()) {
        return Err(StoreError::new(
            "appending leaves",
            format!(
                "the private row of leaf {} has neither a consumer nor a salt",
                empty.leaf
            ),
        ));
    }
    let mut private = rows.iter().peekable();
    Ok(leaves.iter().enumerate().map(move |(i, leaf)| {
        let idx = first + i as u64;
        let row = private.next_if(|r| r.leaf == idx);
        let columns = (
            row.and_then(|r| r.consumer.as_deref()),
            row.and_then(|r| r.salt.as_ref()).map(|s| &s[..]),
            row.and_then(|r| r.values.as_deref()),
        );
        (idx, leaf, columns)
    }))
}

/// Refuses finding rows of an append at `first` of `len` leaves that are out
/// of order or belong to no leaf of it.
fn findings_in_append(first: u64, len: usize, rows: &[FindingRow]) -> Result<(), StoreError> {
    rows_of_append(first, len, rows.iter().map(|r| r.leaf), "finding")
}

/// Refuses rows (`what` rows, of these leaves) of an append at `first` of
/// `len` leaves that are out of order or belong to no leaf of it: they
/// would otherwise be dropped, or stored beside the wrong leaf, without a word.
fn rows_of_append(first: u64, len: usize, leaves: impl Iterator<Item = u64>, what: &str) -> Result<(), StoreError> {
    let end = first + len as u64;
    let mut last = None;
    for leaf in leaves {
        if leaf < first || leaf >= end || last.is_some_and(|l| l >= leaf) {
            return Err(StoreError::new(
                "appending leaves",
                format!("{what} rows must be in leaf order and for leaves {first}..{end} of the append"),
            ));
        }
        last = Some(leaf);
    }
    Ok(())
}

/// Checks that `rows` leaves starting at `from` came back, in order.
fn expect_rows<T>(rows: Vec<(u64, T)>, from: u64, to: u64) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::with_capacity(rows.len());
    let context = || format!("reading leaves {from}..{to}");
    for (i, (idx, row)) in rows.into_iter().enumerate() {
        let want = from + i as u64;
        if idx != want {
            return Err(missing_leaf(context(), want));
        }
        out.push(row);
    }
    if (out.len() as u64) < to - from {
        return Err(missing_leaf(context(), from + out.len() as u64));
    }
    Ok(out)
}

/// A leaf below the log's size that is not stored: the store is damaged.
fn missing_leaf(context: impl Into<String>, leaf: impl std::fmt::Display) -> StoreError {
    StoreError::of_kind(StoreErrorKind::Corrupt, context, format!("leaf {leaf} is missing"))
}

/// Refuses an append at `first` to a log of `size` leaves: appends are
/// staged against a size, and another writer got there first.
fn expect_size(size: u64, first: u64) -> Result<(), StoreError> {
    if size != first {
        return Err(StoreError::of_kind(
            StoreErrorKind::Conflict,
            "appending",
            format!("the log has {size} leaves, not {first}: another writer appended"),
        ));
    }
    Ok(())
}

/// An API key as stored: its role and when it stops working.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredKey {
    /// SHA-256 of the key (the key itself is never stored).
    pub digest: [u8; 32],
    /// `platform`, `regulator`, `merchant:ID` or `consumer:ID`.
    pub role: String,
    /// Expiry, in ms since the Unix epoch (`None`: does not expire).
    pub expires_at_ms: Option<i64>,
}

/// API keys, kept as SHA-256 digests beside the ledger (a key is shown once, at creation).
pub trait ApiKeys {
    /// Records a key digest with its role and optional expiry.
    fn add_key(&mut self, digest: &[u8; 32], role: &str, expires_at_ms: Option<i64>) -> Result<(), StoreError>;
    /// The key with this digest, if it is known.
    fn key_of(&mut self, digest: &[u8; 32]) -> Result<Option<StoredKey>, StoreError>;
    /// Every key, in digest order.
    fn keys(&mut self) -> Result<Vec<StoredKey>, StoreError>;
    /// Removes the key with this digest; whether there was one.
    fn remove_key(&mut self, digest: &[u8; 32]) -> Result<bool, StoreError>;
    /// Records that console session `sid` (which would expire at
    /// `expires_at_ms`) was signed out, and forgets those expired by `now_ms`.
    fn end_session(&mut self, sid: &str, expires_at_ms: i64, now_ms: i64) -> Result<(), StoreError>;
    /// Whether console session `sid` was signed out.
    fn session_ended(&mut self, sid: &str) -> Result<bool, StoreError>;
}

fn digest_of(bytes: &[u8]) -> [u8; 32] {
    let mut d = [0u8; 32];
    if bytes.len() == 32 {
        d.copy_from_slice(bytes);
    }
    d
}

/// An instruction weiquan delivers to the platform through its outbox (at
/// least once, idempotent by `id`), and what became of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instruction {
    /// Its id: also the id of the event that records it, and the
    /// `X-Weiquan-Id` the platform deduplicates by.
    pub id: String,
    /// The pseudonym of the consumer it acts for (erasure finds it by this).
    pub pseudonym: String,
    /// The id of the key that asked for it.
    pub actor_key: Option<String>,
    /// What is delivered: a JSON object.
    pub body: Vec<u8>,
    /// When it was made (ms since the Unix epoch, wall clock).
    pub created_ms: i64,
    /// Whether its event is durable in the log.
    pub recorded: bool,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// The next attempt is due at (ms).
    pub next_ms: i64,
    /// When it was first offered to the platform (ms): the platform's time to
    /// acknowledge runs from here, not from while weiquan could not send it.
    pub first_attempt_ms: Option<i64>,
    /// When the platform acknowledged it (a 2xx answer), if it has.
    pub delivered_ms: Option<i64>,
    /// The HTTP status of the acknowledgement, or of the last failed attempt.
    pub status: Option<u16>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Whether weiquan recorded that the platform let it go unacknowledged too long.
    pub overdue: bool,
}

/// The outbox: instructions for the platform, kept until and after they are acknowledged.
pub trait Outbox {
    /// Adds an instruction (an id that exists is a conflict).
    fn outbox_put(&mut self, i: &Instruction) -> Result<(), StoreError>;
    /// Writes back an instruction's state (everything but its id, consumer, body
    /// and creation). What is settled stays settled: once recorded, delivered or
    /// overdue, a stale writer's copy does not undo it.
    fn outbox_update(&mut self, i: &Instruction) -> Result<(), StoreError>;
    /// Removes an instruction whose event the log refused (it will never be delivered).
    fn outbox_remove(&mut self, id: &str) -> Result<(), StoreError>;
    /// Up to `limit` undelivered instructions due at `now_ms`, earliest first.
    fn outbox_due(&mut self, now_ms: i64, limit: u32) -> Result<Vec<Instruction>, StoreError>;
    /// The instructions for the consumer with this pseudonym, oldest first.
    fn outbox_of(&mut self, pseudonym: &str) -> Result<Vec<Instruction>, StoreError>;
}

/// An evidence file as kept: what it is, its size, whose it is, and its sealed bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvidenceFile {
    /// Hex SHA-256 of the content.
    pub sha256: String,
    /// Its type as its first bytes say (`image/jpeg`, `application/pdf`, `text/plain`, …).
    pub kind: String,
    /// Its size in bytes.
    pub size: u64,
    /// The pseudonym of the consumer who brought it (erasure removes it).
    pub pseudonym: String,
    /// The content, sealed by the server.
    pub sealed: Vec<u8>,
}

/// Complaints' evidence files, content-addressed per consumer.
pub trait EvidenceFiles {
    /// Keeps a consumer's file unless they brought one with its hash before; whether it was new.
    fn evidence_put(&mut self, file: &EvidenceFile) -> Result<bool, StoreError>;
    /// The file with this hash that the consumer with this pseudonym brought.
    fn evidence_get(&mut self, pseudonym: &str, sha256: &str) -> Result<Option<EvidenceFile>, StoreError>;
    /// Removes a consumer's file (a complaint that was not recorded after all).
    fn evidence_remove(&mut self, pseudonym: &str, sha256: &str) -> Result<(), StoreError>;
}

/// The columns of `outbox`, in [`Instruction`]'s order.
const OUTBOX_COLUMNS: &str = "id, pseudonym, actor_key, body, created_ms, recorded, attempts, next_ms, \
     first_attempt_ms, delivered_ms, status, last_error, overdue";

/// `outbox_update`'s statement, `{n}` for the dialect's parameters: what is
/// settled (recorded, delivered, overdue, the first attempt) is never undone.
const OUTBOX_UPDATE: &str = "UPDATE outbox SET
         recorded = CASE WHEN recorded = 1 OR CAST({2} AS BIGINT) = 1 THEN 1 ELSE 0 END,
         attempts = {3}, next_ms = {4},
         first_attempt_ms = COALESCE(first_attempt_ms, {5}),
         delivered_ms = COALESCE(delivered_ms, {6}),
         status = CASE WHEN delivered_ms IS NULL THEN {7} ELSE status END,
         last_error = CASE WHEN delivered_ms IS NULL THEN {8} ELSE NULL END,
         overdue = CASE WHEN overdue = 1 OR CAST({9} AS BIGINT) = 1 THEN 1 ELSE 0 END
     WHERE id = {1}";

/// [`OUTBOX_UPDATE`] with `?N` (SQLite) or `$N` (PostgreSQL) parameters.
fn outbox_update_sql(mark: char) -> String {
    (1..=9).fold(OUTBOX_UPDATE.to_owned(), |sql, n| {
        sql.replace(&format!("{{{n}}}"), &format!("{mark}{n}"))
    })
}

/// Draw seeds weiquan holds for merchants until their lottery is drawn.
pub trait LotterySeeds {
    /// Keeps `seed` for `lottery` (an existing one is an error: a commitment is made once).
    fn put_seed(&mut self, lottery: &str, seed: &str) -> Result<(), StoreError>;
    /// The seed held for `lottery`.
    fn seed_of(&mut self, lottery: &str) -> Result<Option<String>, StoreError>;
}

/// Accepted events' ids, a run at a time: where a server finds a repeated
/// id and the evidence of a finding without holding every id in memory.
/// What a run's buckets hold is the server's business (sorted pairs of a
/// digest and a leaf); the store keeps them and hands a bucket back.
pub trait EventIds {
    /// Every stored run: its number and the leaf its ids end before, in order.
    fn id_runs(&mut self) -> Result<Vec<(u64, u64)>, StoreError>;
    /// Stores run `run`, of the ids of leaves before `end_leaf`, as its
    /// buckets (number, content), in one transaction. A run stored already
    /// is a conflict.
    fn put_id_run(&mut self, run: u64, end_leaf: u64, buckets: &[(u32, Vec<u8>)]) -> Result<(), StoreError>;
    /// The given buckets of every run that has them, as (bucket, content),
    /// in one statement (a group's lookups are one round trip).
    fn id_run_buckets(&mut self, buckets: &[u32]) -> Result<Vec<(u32, Vec<u8>)>, StoreError>;
}

/// Which findings a read selects, every condition given at once (`None`:
/// any). Results come in leaf order.
#[derive(Clone, Debug, Default)]
pub struct FindingFilter {
    /// Only findings after this leaf (a page's cursor).
    pub after: Option<u64>,
    /// Only findings of these rules.
    pub rules: Option<Vec<String>>,
    /// Only findings about these subjects.
    pub subjects: Option<Vec<String>>,
    /// Only findings of this merchant.
    pub merchant: Option<String>,
    /// Only findings at or after this business time (ms since the epoch).
    pub since_ms: Option<i64>,
    /// Only findings before this business time (ms since the epoch).
    pub until_ms: Option<i64>,
    /// At most this many.
    pub limit: Option<u32>,
    /// Newest first (`after` then selects the findings before the cursor).
    pub newest_first: bool,
}

/// How many findings of one rule fell on one day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FindingCount {
    /// Rule id.
    pub rule: String,
    /// The day, as days since 1970-01-01 in the time zone asked for;
    /// `None` for the findings before the first day asked for.
    pub day: Option<i64>,
    /// How many.
    pub count: u64,
}

/// Findings as their readers look them up: written with their leaves (in
/// [`Private::findings`]), read a page at a time.
pub trait Findings {
    /// Stores the rows of findings already in the log (a replay filling in
    /// those of a ledger written before the table); a row stored already is
    /// kept as it is.
    fn put_findings(&mut self, rows: &[FindingRow]) -> Result<(), StoreError>;
    /// The findings `filter` selects, in leaf order.
    fn findings(&mut self, filter: &FindingFilter) -> Result<Vec<FindingRow>, StoreError>;
    /// How many findings each rule has per day from `since_ms` on (days
    /// counted in a time zone `offset_ms` ahead of UTC), and before it.
    fn finding_counts(&mut self, since_ms: i64, offset_ms: i64) -> Result<Vec<FindingCount>, StoreError>;
}

/// A parameter of a findings query.
enum SqlParam<'a> {
    Int(i64),
    Text(&'a str),
}

/// The columns a findings read selects, in [`FindingRow`]'s order.
const FINDING_COLUMNS: &str = "leaf, rule, subject, merchant, at_ms, body";

/// The SQL of `filter` with its parameters, `mark(n)` naming the n-th
/// (from 1) in the dialect; `None` when it selects nothing (an empty list).
fn findings_sql<'a>(filter: &'a FindingFilter, mark: fn(usize) -> String) -> Option<(String, Vec<SqlParam<'a>>)> {
    let mut params = Vec::new();
    let mut conditions = Vec::new();
    let bind = |params: &mut Vec<SqlParam<'a>>, p| {
        params.push(p);
        mark(params.len())
    };
    if let Some(after) = filter.after {
        // A cursor past every leaf there can be selects nothing (not, wrapped, everything).
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let beyond = if filter.newest_first { "<" } else { ">" };
        conditions.push(format!("leaf {beyond} {}", bind(&mut params, SqlParam::Int(after))));
    }
    for (column, list) in [("rule", &filter.rules), ("subject", &filter.subjects)] {
        if let Some(list) = list {
            if list.is_empty() {
                return None;
            }
            let marks: Vec<String> = list.iter().map(|v| bind(&mut params, SqlParam::Text(v))).collect();
            conditions.push(format!("{column} IN ({})", marks.join(", ")));
        }
    }
    if let Some(m) = &filter.merchant {
        conditions.push(format!("merchant = {}", bind(&mut params, SqlParam::Text(m))));
    }
    if let Some(t) = filter.since_ms {
        let t = bind(&mut params, SqlParam::Int(t));
        // Pages go in leaf order, and the first finding at or after a time may
        // be far along it: its leaf, read from the time index alone, is where
        // the scan starts (without it, "the last ten days" read every finding
        // before them). `+leaf` keeps SQLite from taking the smallest leaf by
        // walking the table in leaf order instead.
        conditions.push(format!(
            "at_ms >= {t} AND leaf >= (SELECT COALESCE(MIN(+leaf), 0) FROM findings WHERE at_ms >= {t})"
        ));
    }
    if let Some(t) = filter.until_ms {
        conditions.push(format!("at_ms < {}", bind(&mut params, SqlParam::Int(t))));
    }
    let mut sql = format!("SELECT {FINDING_COLUMNS} FROM findings");
    if !conditions.is_empty() {
        sql = format!("{sql} WHERE {}", conditions.join(" AND "));
    }
    sql.push_str(if filter.newest_first {
        " ORDER BY leaf DESC"
    } else {
        " ORDER BY leaf"
    });
    if let Some(n) = filter.limit {
        sql = format!("{sql} LIMIT {}", bind(&mut params, SqlParam::Int(i64::from(n))));
    }
    Some((sql, params))
}

/// The SQL of [`Findings::finding_counts`]: every rule's count, then each
/// rule's count per day from `$1` on (`$2` the zone's offset), placeholders
/// as `mark` writes them. Two statements: the totals read the rule index
/// alone and the days only the findings from the first day on (one
/// statement grouping both read every finding's time from the table: 0.6 s
/// at 500,000 findings).
fn finding_counts_sql(mark: fn(usize) -> String) -> [String; 2] {
    let (since, offset) = (mark(1), mark(2));
    [
        "SELECT rule, COUNT(*) FROM findings GROUP BY rule".to_owned(),
        format!(
            "SELECT rule, (at_ms + {offset}) / 86400000 AS day, COUNT(*) FROM findings \
             WHERE at_ms >= {since} GROUP BY rule, day"
        ),
    ]
}

/// [`Findings::finding_counts`] from its two statements' rows: each rule's
/// total, and its count on each day from the first on (the rest of a total
/// fell before it).
fn counts_from(totals: Vec<(String, u64)>, days: Vec<(String, i64, u64)>) -> Vec<FindingCount> {
    let mut before: std::collections::BTreeMap<String, u64> = totals.into_iter().collect();
    let mut out = Vec::with_capacity(days.len() + before.len());
    for (rule, day, count) in days {
        if let Some(total) = before.get_mut(&rule) {
            *total = total.saturating_sub(count);
        }
        out.push(FindingCount {
            rule,
            day: Some(day),
            count,
        });
    }
    out.extend(
        (before.into_iter())
            .filter(|(_, n)| *n > 0)
            .map(|(rule, count)| FindingCount { rule, day: None, count }),
    );
    out
}

/// The name of the [`PrivateData::erasure_mark`] secret, which an erasure deletes.
pub const ERASURE_MARK: &str = "erasure_mark";

/// The private side of the log: salts and original values of salted leaves
/// (written with them by [`LogStore::append`]), and the key of consumer pseudonyms.
pub trait PrivateData {
    /// The private rows of leaves `from..to`, in leaf order (leaves with nothing private have none).
    fn private_rows(&mut self, from: u64, to: u64) -> Result<Vec<PrivateRow>, StoreError>;
    /// Erases the consumer with this pseudonym: their id, and the salts and
    /// values of every leaf about them (the leaves, and the pseudonym, stay);
    /// how many leaves it touched. The consumer's row stays as a tombstone, so
    /// that a later event under the same id does not bring the id back to the
    /// old findings. Reads the whole private side: erasure is rare.
    fn erase_consumer(&mut self, pseudonym: &str) -> Result<u64, StoreError>;
    /// The id of the consumer with this pseudonym; `Ok(None)` if unknown,
    /// `Ok(Some(None))` if erased.
    fn consumer_id(&mut self, pseudonym: &str) -> Result<Option<Option<String>>, StoreError>;
    /// A random value that every erasure replaces: a state snapshot taken
    /// under another value may hold what was erased since, and is not used.
    fn erasure_mark(&mut self) -> Result<[u8; 32], StoreError> {
        self.secret(ERASURE_MARK)
    }
    /// The secret key consumer pseudonyms are derived with, made on first use.
    fn pseudonym_key(&mut self) -> Result<[u8; 32], StoreError> {
        self.secret("pseudonym_key")
    }
    /// The 32-byte secret `name`, made on first use (two processes opening
    /// one new database agree on one).
    fn secret(&mut self, name: &str) -> Result<[u8; 32], StoreError>;
}

/// A boxed store's private side is its store's (as its log is: `LogStore for Box<T>`).
impl<T: PrivateData + ?Sized> PrivateData for Box<T> {
    fn private_rows(&mut self, from: u64, to: u64) -> Result<Vec<PrivateRow>, StoreError> {
        (**self).private_rows(from, to)
    }
    fn erase_consumer(&mut self, pseudonym: &str) -> Result<u64, StoreError> {
        (**self).erase_consumer(pseudonym)
    }
    fn consumer_id(&mut self, pseudonym: &str) -> Result<Option<Option<String>>, StoreError> {
        (**self).consumer_id(pseudonym)
    }
    fn secret(&mut self, name: &str) -> Result<[u8; 32], StoreError> {
        (**self).secret(name)
    }
}

/// Everything a server keeps in its database: the ledger and its private
/// side, API keys, held draw seeds.
pub trait Backend:
    LogStore + PrivateData + EventIds + Findings + ApiKeys + LotterySeeds + Outbox + EvidenceFiles + Send
{
}
impl<T: LogStore + PrivateData + EventIds + Findings + ApiKeys + LotterySeeds + Outbox + EvidenceFiles + Send> Backend
    for T
{
}

/// A [`Backend`] shared by the thread that stages batches and the one that
/// writes them (lock it with [`weiquan_ledger::lock`]).
pub type SharedBackend = std::sync::Arc<std::sync::Mutex<Box<dyn Backend>>>;

/// A leaf's index, its data, and its private row if it has one.
pub type LeafWithPrivate = (u64, Vec<u8>, Option<PrivateRow>);

/// Leaves `from..to` with their private rows, in order.
pub fn leaves_with_private<S>(store: &mut S, from: u64, to: u64) -> Result<Vec<LeafWithPrivate>, StoreError>
where
    S: LogStore + PrivateData + ?Sized,
{
    let mut private = store.private_rows(from, to)?.into_iter().peekable();
    let leaves = store.leaves(from, to)?;
    Ok((leaves.into_iter().enumerate())
        .map(|(i, (data, _))| {
            let index = from + i as u64;
            while private.next_if(|row| row.leaf < index).is_some() {}
            (index, data, private.next_if(|row| row.leaf == index))
        })
        .collect())
}

/// Leaves are read this many at a time by whole-ledger readers.
pub const LEAF_PAGE: u64 = 4096;

/// Calls `each` with every leaf of the log from index `from` on, in order:
/// its index, its text and its private row, if it has one. What readers of
/// a whole ledger share (backtests, draw checks, a server's replay after its
/// snapshot); leaves are read [`LEAF_PAGE`] at a time.
pub fn walk_leaves<S, E>(
    store: &mut S,
    from: u64,
    mut each: impl FnMut(u64, &str, Option<&PrivateRow>) -> Result<(), E>,
) -> Result<(), E>
where
    S: LogStore + PrivateData + ?Sized,
    E: From<StoreError>,
{
    let size = store.size()?;
    let mut from = from;
    while from < size {
        let to = (from + LEAF_PAGE).min(size);
        for (index, data, row) in leaves_with_private(store, from, to)? {
            each(index, &String::from_utf8_lossy(&data), row.as_ref())?;
        }
        from = to;
    }
    Ok(())
}

/// A PostgreSQL connection string fit for a message or a log: a password,
/// in a URL's user part or as `password=…`, is replaced by `***`. Errors
/// reach callers who must not learn it (a failed key lookup answers an
/// unauthenticated request).
pub fn redacted(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if let Some((user, host)) = authority.rsplit_once('@') {
            let user = user.split_once(':').map_or(user, |(name, _)| name);
            let query = path
                .split_once('?')
                .map(|(p, q)| {
                    let kept: Vec<&str> = q.split('&').filter(|kv| !kv.starts_with("password=")).collect();
                    if kept.is_empty() {
                        p.to_owned()
                    } else {
                        format!("{p}?{}", kept.join("&"))
                    }
                })
                .unwrap_or_else(|| path.to_owned());
            return format!("{scheme}://{user}:***@{host}{query}");
        }
        return url.split('?').next().unwrap_or(url).to_owned();
    }
    (url.split_whitespace())
        .map(|kv| {
            if kv.starts_with("password=") {
                "password=***"
            } else {
                kv
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A new random 32-byte secret, from the operating system.
fn new_secret() -> [u8; 32] {
    use rand_core::RngCore;
    let mut key = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut key);
    key
}

/// A stored 32-byte value (a salt, the pseudonym key), if it is one.
fn bytes32(bytes: Option<Vec<u8>>) -> Option<[u8; 32]> {
    bytes.and_then(|b| <[u8; 32]>::try_from(b).ok())
}

#[cfg(test)]
mod tests {
    use super::{redacted, with_private, PrivateRow};

    /// Private rows pair with their leaves, and rows that would be lost (out
    /// of order, outside the append, or with nothing to store) are refused.
    #[test]
    fn private_rows_pair_with_their_leaves_or_are_refused() {
        let leaves: Vec<(Vec<u8>, Vec<u8>)> = (0..3).map(|i| (vec![i], vec![])).collect();
        let row = |leaf: u64, consumer: Option<&str>, salt: Option<[u8; 32]>| PrivateRow {
            leaf,
            consumer: consumer.map(str::to_owned),
            salt,
            values: None,
        };
        let rows = [row(10, Some("p"), None), row(12, None, Some([1; 32]))];
        let paired: Vec<(u64, super::PrivateColumns)> = with_private(10, &leaves, &rows)
            .expect("valid")
            .map(|(i, _, columns)| (i, columns))
            .collect();
        let salt = [1u8; 32];
        assert_eq!(
            paired,
            [
                (10, (Some("p"), None, None)),
                (11, (None, None, None)),
                (12, (None, Some(&salt[..]), None))
            ]
        );
        for bad in [
            vec![row(12, Some("p"), None), row(10, Some("p"), None)],
            vec![row(13, Some("p"), None)],
            vec![row(9, Some("p"), None)],
            vec![row(11, None, None)],
        ] {
            assert!(with_private(10, &leaves, &bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn connection_strings_lose_their_passwords() {
        for (url, shown) in [
            ("postgres://u:s3cret@db:5432/w", "postgres://u:***@db:5432/w"),
            (
                "postgres://u:s3cret@db/w?password=x&sslmode=require",
                "postgres://u:***@db/w?sslmode=require",
            ),
            ("postgresql://db/w?password=s3cret", "postgresql://db/w"),
            (
                "host=db user=u password=s3cret dbname=w",
                "host=db user=u password=*** dbname=w",
            ),
            (
                "postgres://postgres@127.0.0.1:5432/test",
                "postgres://postgres:***@127.0.0.1:5432/test",
            ),
        ] {
            assert_eq!(redacted(url), shown);
            assert!(!redacted(url).contains("s3cret"));
        }
    }
}
