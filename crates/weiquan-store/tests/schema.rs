//! The schema is versioned: an older database is upgraded when opened, a
//! newer one is refused with both versions named.

mod common;

use common::{pg_url, postgres_available};
use weiquan_store::{ApiKeys, PgStore, PrivateData, SqliteStore, SCHEMA_VERSION};

/// A file as weiquan wrote it before versions were kept and before key
/// expiry and the private side: it opens, is upgraded, and keeps its key.
#[test]
fn an_unversioned_sqlite_file_is_upgraded_and_keeps_what_it_held() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("old.db");
    {
        let conn = rusqlite::Connection::open(&path).expect("create");
        conn.execute_batch(
            "CREATE TABLE ledger_leaves (idx INTEGER PRIMARY KEY, data BLOB NOT NULL, hashes BLOB NOT NULL);
             CREATE TABLE ledger_checkpoints (size INTEGER PRIMARY KEY, note BLOB NOT NULL);
             CREATE TABLE api_keys (digest BLOB PRIMARY KEY, role TEXT NOT NULL);
             CREATE TABLE lottery_seeds (lottery TEXT PRIMARY KEY, seed TEXT NOT NULL);
             INSERT INTO api_keys VALUES (x'0101010101010101010101010101010101010101010101010101010101010101', 'regulator');",
        )
        .expect("old schema");
    }
    let mut store = SqliteStore::open(&path).expect("an older file opens");
    let kept = store.key_of(&[1; 32]).expect("read").expect("the old key is kept");
    assert_eq!((kept.role.as_str(), kept.expires_at_ms), ("regulator", None));
    store
        .add_key(&[2; 32], "platform", Some(5))
        .expect("expiry works after the upgrade");
    assert_eq!(store.private_rows(0, 10).expect("the private side exists"), vec![]);
    let key = store.pseudonym_key().expect("made once");
    drop(store);
    let conn = rusqlite::Connection::open(&path).expect("open");
    let version: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, SCHEMA_VERSION);
    drop(conn);
    // Reopening changes nothing, and the pseudonym key stays the same.
    let mut again = SqliteStore::open(&path).expect("reopens");
    assert_eq!(again.pseudonym_key().expect("key"), key);
}

#[test]
fn a_sqlite_file_from_a_newer_weiquan_is_refused_naming_both_versions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("new.db");
    SqliteStore::open(&path).expect("create");
    rusqlite::Connection::open(&path)
        .expect("open")
        .pragma_update(None, "user_version", SCHEMA_VERSION + 4)
        .expect("set");
    let err = SqliteStore::open(&path).err().expect("refused").to_string();
    assert!(
        err.contains(&format!("version {}", SCHEMA_VERSION + 4)) && err.contains(&format!("up to {SCHEMA_VERSION}")),
        "{err}"
    );
}

#[test]
fn a_postgres_schema_from_a_newer_weiquan_is_refused_and_an_older_one_upgraded() {
    if !postgres_available() {
        return;
    }
    let schema = format!("wq_schema_{}", std::process::id());
    let mut c = postgres::Client::connect(&pg_url(), postgres::NoTls).expect("connect");
    c.batch_execute(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}; SET search_path TO {schema};
         CREATE TABLE api_keys (digest BYTEA PRIMARY KEY, role TEXT NOT NULL);
         CREATE TABLE ledger_leaves (idx BIGINT PRIMARY KEY, data BYTEA NOT NULL, hashes BYTEA NOT NULL);"
    ))
    .expect("an unversioned schema");
    let mut store = PgStore::connect(&pg_url(), &schema).expect("upgraded");
    store
        .add_key(&[3; 32], "platform", Some(7))
        .expect("expiry after the upgrade");
    drop(store);
    c.batch_execute(&format!(
        "UPDATE {schema}.weiquan_schema SET version = {}",
        SCHEMA_VERSION + 1
    ))
    .expect("newer");
    let err = PgStore::connect(&pg_url(), &schema).err().expect("refused").to_string();
    assert!(err.contains(&format!("version {}", SCHEMA_VERSION + 1)), "{err}");
    c.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .expect("clean up");
}

/// A version-3 database keeps each salted leaf's private part in a table of
/// its own; version 4 moves it into the leaf's row. The move keeps every
/// private row (erased ones too) and leaves the log's bytes as they were.
#[test]
fn private_rows_of_a_version_3_database_move_into_their_leaves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("v3.db");
    {
        let conn = rusqlite::Connection::open(&path).expect("create");
        conn.execute_batch(
            "CREATE TABLE ledger_leaves (idx INTEGER PRIMARY KEY, data BLOB NOT NULL, hashes BLOB NOT NULL);
             CREATE TABLE ledger_checkpoints (size INTEGER PRIMARY KEY, note BLOB NOT NULL);
             CREATE TABLE api_keys (digest BLOB PRIMARY KEY, role TEXT NOT NULL, expires_at INTEGER);
             CREATE TABLE lottery_seeds (lottery TEXT PRIMARY KEY, seed TEXT NOT NULL);
             CREATE TABLE leaf_private (leaf INTEGER PRIMARY KEY, consumer TEXT, salt BLOB, leaf_values BLOB);
             CREATE TABLE consumers (pseudonym TEXT PRIMARY KEY, consumer TEXT);
             CREATE TABLE secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL);
             INSERT INTO ledger_leaves VALUES (0, x'30', x'00'), (1, x'31', x'01'), (2, x'32', x'02');
             INSERT INTO leaf_private VALUES
                 (0, 'p-a', x'0707070707070707070707070707070707070707070707070707070707070707', x'7b7d'),
                 (2, 'p-b', NULL, NULL);
             PRAGMA user_version = 3;",
        )
        .expect("a version-3 file");
    }
    let mut store = SqliteStore::open(&path).expect("upgraded");
    let rows = store.private_rows(0, 3).expect("read");
    assert_eq!(
        rows,
        vec![
            weiquan_store::PrivateRow {
                leaf: 0,
                consumer: Some("p-a".into()),
                salt: Some([7; 32]),
                values: Some(b"{}".to_vec()),
            },
            weiquan_store::PrivateRow {
                leaf: 2,
                consumer: Some("p-b".into()),
                salt: None,
                values: None,
            },
        ]
    );
    let leaves = weiquan_store::LogStore::leaves(&mut store, 0, 3).expect("leaves");
    assert_eq!(leaves[1], (b"1".to_vec(), vec![1]));
    assert_eq!(
        store.erase_consumer("p-a").expect("erase"),
        1,
        "erasure finds moved rows"
    );
    drop(store);
    let conn = rusqlite::Connection::open(&path).expect("open");
    let old_table: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'leaf_private'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(old_table, 0, "the old table is gone");
}
