//! Storage for weiquan's ledger: one [`LogStore`] trait (in `weiquan-ledger`),
//! two implementations — SQLite in WAL mode (the default: one file, no setup)
//! and PostgreSQL (the system of record beyond one machine).
//!
//! Both keep one row per leaf (its data and the tree hashes it completed) and
//! one row per signed checkpoint, and write a batch in one transaction that is
//! durable when `append` returns.

pub mod keyfile;
mod postgres_store;
mod sqlite;

pub use postgres_store::PgStore;
pub use sqlite::SqliteStore;
pub use weiquan_ledger::{LogStore, PrivateRow, StoreError};

/// The version of the database schema this build writes. Opening a database
/// at an older version upgrades it; a newer one is refused.
pub const SCHEMA_VERSION: u32 = 3;

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

/// Checks that `rows` leaves starting at `from` came back, in order.
fn expect_rows<T>(rows: Vec<(u64, T)>, from: u64, to: u64) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::with_capacity(rows.len());
    for (i, (idx, row)) in rows.into_iter().enumerate() {
        let want = from + i as u64;
        if idx != want {
            return Err(StoreError::new(
                format!("reading leaves {from}..{to}"),
                format!("leaf {want} is missing"),
            ));
        }
        out.push(row);
    }
    if (out.len() as u64) < to - from {
        return Err(StoreError::new(
            format!("reading leaves {from}..{to}"),
            format!("leaf {} is missing", from + out.len() as u64),
        ));
    }
    Ok(out)
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
}

fn digest_of(bytes: &[u8]) -> [u8; 32] {
    let mut d = [0u8; 32];
    if bytes.len() == 32 {
        d.copy_from_slice(bytes);
    }
    d
}

/// Draw seeds weiquan holds for merchants until their lottery is drawn.
pub trait LotterySeeds {
    /// Keeps `seed` for `lottery` (an existing one is an error: a commitment is made once).
    fn put_seed(&mut self, lottery: &str, seed: &str) -> Result<(), StoreError>;
    /// The seed held for `lottery`.
    fn seed_of(&mut self, lottery: &str) -> Result<Option<String>, StoreError>;
}

/// The private side of the log: salts and original values of salted leaves
/// (written with them by [`LogStore::append`]), and the key of consumer pseudonyms.
pub trait PrivateData {
    /// The private rows of leaves `from..to`, in leaf order (leaves with nothing private have none).
    fn private_rows(&mut self, from: u64, to: u64) -> Result<Vec<PrivateRow>, StoreError>;
    /// Erases the salts and values of every leaf about the consumer with this
    /// pseudonym (the leaves, and the pseudonym, stay); how many leaves it touched.
    fn erase_consumer(&mut self, pseudonym: &str) -> Result<u64, StoreError>;
    /// The original values of one leaf about the consumer with this pseudonym
    /// that are not erased (a canonical JSON object), if any.
    fn values_of_consumer(&mut self, pseudonym: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// The secret key consumer pseudonyms are derived with, made on first use.
    fn pseudonym_key(&mut self) -> Result<[u8; 32], StoreError>;
}

/// Everything a server keeps in its database: the ledger and its private
/// side, API keys, held draw seeds.
pub trait Backend: LogStore + PrivateData + ApiKeys + LotterySeeds + Send {}
impl<T: LogStore + PrivateData + ApiKeys + LotterySeeds + Send> Backend for T {}

/// A new random 32-byte secret, from the operating system.
fn new_secret() -> [u8; 32] {
    use rand_core::RngCore;
    let mut key = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut key);
    key
}

fn salt_of(bytes: Option<Vec<u8>>) -> Option<[u8; 32]> {
    bytes.and_then(|b| <[u8; 32]>::try_from(b).ok())
}
