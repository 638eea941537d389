//! One story, run on SQLite and on the real PostgreSQL: append, reopen, prove,
//! verify, and detect tampering with any stored byte.

mod common;

use common::{backends, keys};
use weiquan_ledger::{
    event_leaf, open_checkpoint, parse_tile_path, verify_consistency, verify_log, verify_receipt, ConsistencyProof,
    Ledger, LogStore, VerifyError,
};
use weiquan_store::{ApiKeys, StoreErrorKind};

const ORIGIN: &str = "weiquan.test/log";

fn leaf(n: u64) -> Vec<u8> {
    event_leaf(&format!(
        r#"{{"v":1,"id":"e{n}","type":"clock.tick","at":"2026-11-01T00:00:00+08:00"}}"#
    ))
    .expect("json")
}

/// A ledger of `sizes.sum()` leaves appended in batches of `sizes`.
fn fill(store: Box<dyn LogStore>, sizes: &[u64]) -> Ledger<Box<dyn LogStore>> {
    let (signer, _) = keys();
    let mut ledger = Ledger::open(store, signer, ORIGIN).expect("open");
    for &k in sizes {
        let first = ledger.size();
        let got = ledger.append((first..first + k).map(leaf).collect()).expect("append");
        assert_eq!(got, first);
    }
    ledger
}

#[test]
fn append_reopen_and_continue() {
    for (name, b) in backends() {
        let (signer, verifier) = keys();
        let mut ledger = Ledger::open(b.open(), signer, ORIGIN).expect("open");
        assert_eq!(ledger.append(vec![leaf(0), leaf(1), leaf(2)]).expect("append"), 0);
        let cp = ledger.checkpoint().expect("checkpoint");
        let c = open_checkpoint(&cp, &verifier, "latest").expect("signature verifies");
        assert_eq!(
            (c.size, c.root, c.origin.as_str()),
            (3, ledger.root(), ORIGIN),
            "{name}"
        );
        let root3 = ledger.root();
        drop(ledger);

        // A second process (connection) picks up where the first stopped.
        let (signer2, _) = keys();
        let mut again = Ledger::open(b.open(), signer2, ORIGIN).expect("reopen");
        assert_eq!((again.size(), again.root()), (3, root3), "{name}");
        assert_eq!(again.append(vec![leaf(3)]).expect("append"), 3);
        let proof = again.consistency_proof(3, 4).expect("proof");
        let old = again.store_mut().checkpoints().expect("cps")[0].1.clone();
        let new = again.checkpoint().expect("cp");
        // Checkpoints signed by different keys: each is checked with its own.
        assert!(
            verify_consistency(&old, &new, &ConsistencyProof::new(3, 4, &proof), &verifier).is_err(),
            "{name}: new checkpoint is not signed by the old key"
        );
        assert!(
            again
                .store_mut()
                .append(2, &[(leaf(9), vec![0; 32])], Default::default(), b"x")
                .is_err(),
            "{name}: a stale writer is refused"
        );
    }
}

#[test]
fn receipts_and_consistency_proofs_verify_and_catch_changes() {
    for (name, b) in backends() {
        let (signer, verifier_own) = keys();
        let mut ledger = Ledger::open(b.open(), signer, ORIGIN).expect("open");
        let mut cps = Vec::new();
        for k in [1u64, 2, 5, 8, 17] {
            let first = ledger.size();
            ledger.append((first..first + k).map(leaf).collect()).expect("append");
            cps.push((ledger.size(), ledger.checkpoint().expect("cp")));
        }
        for index in 0..ledger.size() {
            let r = ledger.receipt(index).expect("receipt");
            verify_receipt(&r, &verifier_own).unwrap_or_else(|e| panic!("{name}: receipt {index}: {e}"));
            let mut bad = r.clone();
            bad.leaf = bad.leaf.replace("clock.tick", "clock.tock");
            assert!(
                matches!(verify_receipt(&bad, &verifier_own), Err(VerifyError::Proof(_))),
                "{name}: altered leaf"
            );
        }
        for (i, (old_size, old)) in cps.iter().enumerate() {
            for (new_size, new) in &cps[i..] {
                let proof = ledger.consistency_proof(*old_size, *new_size).expect("proof");
                let p = ConsistencyProof::new(*old_size, *new_size, &proof);
                verify_consistency(old, new, &p, &verifier_own)
                    .unwrap_or_else(|e| panic!("{name}: {old_size}→{new_size}: {e}"));
                if let Some(first) = p.proof.first() {
                    let mut bad = p.clone();
                    bad.proof[0] = if first.starts_with('A') {
                        first.replacen('A', "B", 1)
                    } else {
                        format!("A{}", &first[1..])
                    };
                    assert!(
                        verify_consistency(old, new, &bad, &verifier_own).is_err(),
                        "{name}: altered proof {old_size}→{new_size}"
                    );
                }
            }
        }
        assert!(
            ledger.inclusion_proof(40, 33).is_err(),
            "{name}: index beyond size is an error, not a panic"
        );
        assert!(ledger.consistency_proof(5, 99).is_err(), "{name}");
        assert!(
            ledger.consistency_proof(0, 5).is_err(),
            "{name}: from an empty tree is an error, not a panic"
        );
    }
}

#[test]
fn verify_log_names_any_tampered_byte() {
    for (name, b) in backends() {
        let (signer, verifier) = keys();
        let mut ledger = Ledger::open(b.open(), signer, ORIGIN).expect("open");
        for k in [3u64, 2, 3] {
            let first = ledger.size();
            ledger.append((first..first + k).map(leaf).collect()).expect("append");
        }
        let size = ledger.size();
        let mut store = b.open();
        let report = verify_log(&mut store, &verifier).expect("untouched log verifies");
        assert_eq!((report.leaves, report.checkpoints), (8, 3), "{name}");
        let rows = store.leaves(0, size).expect("rows");
        for (i, (data, hashes)) in rows.iter().enumerate() {
            let i = i as u64;
            for pos in 0..data.len() {
                let mut d = data.clone();
                d[pos] ^= 0x01;
                b.tamper("ledger_leaves", "data", "idx", i, &d);
                match verify_log(&mut b.open(), &verifier) {
                    Err(VerifyError::Hash { leaf, level: 0 }) => assert_eq!(leaf, i, "{name}"),
                    other => panic!("{name}: entry {i} byte {pos} changed: {other:?}"),
                }
            }
            b.tamper("ledger_leaves", "data", "idx", i, data);
            for pos in 0..hashes.len() {
                let mut h = hashes.clone();
                h[pos] ^= 0x80;
                b.tamper("ledger_leaves", "hashes", "idx", i, &h);
                match verify_log(&mut b.open(), &verifier) {
                    Err(VerifyError::Hash { leaf, level }) => {
                        assert_eq!((leaf, usize::from(level)), (i, pos / 32), "{name}")
                    }
                    other => panic!("{name}: leaf {i} hash byte {pos} changed: {other:?}"),
                }
            }
            b.tamper("ledger_leaves", "hashes", "idx", i, hashes);
        }
        for (cp_size, note) in store.checkpoints().expect("cps") {
            for pos in 0..note.len() {
                let mut n = note.clone();
                n[pos] ^= 0x01;
                b.tamper("ledger_checkpoints", "note", "size", cp_size, &n);
                match verify_log(&mut b.open(), &verifier) {
                    Err(VerifyError::Checkpoint { what, .. }) => {
                        assert_eq!(what, format!("for size {cp_size}"), "{name}")
                    }
                    Err(VerifyError::Root { size }) => assert_eq!(size, cp_size, "{name}"),
                    other => panic!("{name}: checkpoint {cp_size} byte {pos} changed: {other:?}"),
                }
            }
            b.tamper("ledger_checkpoints", "note", "size", cp_size, &note);
        }
        verify_log(&mut b.open(), &verifier).expect("restored log verifies again");
    }
}

#[test]
fn tiles_are_served_at_c2sp_paths() {
    for (name, b) in backends() {
        let mut ledger = fill(b.open(), &[300]);
        let full = ledger
            .tile(parse_tile_path("tile/0/000").expect("path"))
            .expect("read")
            .expect("full tile exists");
        assert_eq!(full.len(), 256 * 32, "{name}");
        let first_leaf_hash = tlog_leaf_hash(&leaf(0));
        assert_eq!(&full[..32], &first_leaf_hash, "{name}");
        let partial = ledger
            .tile(parse_tile_path("tile/0/001.p/44").expect("path"))
            .expect("read")
            .expect("partial");
        assert_eq!(partial.len(), 44 * 32, "{name}");
        assert!(
            ledger
                .tile(parse_tile_path("tile/0/001").expect("path"))
                .expect("read")
                .is_none(),
            "{name}: not full yet"
        );
        assert!(
            ledger
                .tile(parse_tile_path("tile/0/001.p/45").expect("path"))
                .expect("read")
                .is_none(),
            "{name}: wrong width"
        );
        let level1 = ledger
            .tile(parse_tile_path("tile/1/000.p/1").expect("path"))
            .expect("read")
            .expect("level 1");
        assert_eq!(level1.len(), 32, "{name}");
        let entries = ledger
            .tile(parse_tile_path("tile/entries/001.p/44").expect("path"))
            .expect("read")
            .expect("entries");
        let first_len = u16::from_be_bytes([entries[0], entries[1]]) as usize;
        assert_eq!(&entries[2..2 + first_len], &leaf(256)[..], "{name}");
    }
}

/// RFC 6962 leaf hash: SHA-256(0x00 ‖ data).
fn tlog_leaf_hash(data: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::new().chain_update([0u8]).chain_update(data).finalize().into()
}

/// SQLite's WAL is copied into the database file by the store's background
/// checkpoint: after one append smaller than SQLite's own automatic threshold
/// (1000 pages), which no commit would ever checkpoint, the data still reaches
/// the database file with no further write.
#[test]
fn sqlite_wal_is_checkpointed_in_the_background() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("ledger.db");
    let store = weiquan_store::SqliteStore::open(&db).expect("open");
    let ledger = fill(Box::new(store), &[8_000]);
    let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let wal = size(&dir.path().join("ledger.db-wal"));
    assert!(
        (1 << 20..4000 * 4096).contains(&wal),
        "one append of {wal} bytes, under 1000 pages"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while size(&db) < 1 << 20 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        size(&db) >= 1 << 20,
        "database file still {} bytes: the WAL was not checkpointed",
        size(&db)
    );
    drop(ledger);
}

#[test]
fn api_keys_are_listed_expire_and_are_revoked_on_both_stores() {
    for (name, backend) in backends() {
        let mut store = backend.open_backend();
        let (a, b) = ([1u8; 32], [2u8; 32]);
        store.add_key(&a, "platform", None).expect("added");
        store
            .add_key(&b, "merchant:m1", Some(1_800_000_000_000))
            .expect("added");
        assert!(
            store.add_key(&a, "regulator", None).is_err(),
            "{name}: a digest is stored once"
        );
        let got = store.key_of(&b).expect("read").expect("known");
        assert_eq!(
            (got.role.as_str(), got.expires_at_ms),
            ("merchant:m1", Some(1_800_000_000_000)),
            "{name}"
        );
        let all: Vec<_> = store
            .keys()
            .expect("listed")
            .into_iter()
            .map(|k| (k.digest, k.role))
            .collect();
        assert_eq!(
            all,
            [(a, "platform".to_owned()), (b, "merchant:m1".to_owned())],
            "{name}"
        );
        assert!(store.remove_key(&a).expect("revoked"), "{name}");
        assert!(
            !store.remove_key(&a).expect("second revoke"),
            "{name}: nothing left to revoke"
        );
        // Another connection (another process) sees the revocation.
        assert_eq!(backend.open_backend().key_of(&a).expect("read"), None, "{name}");
    }
}

/// A database made before key expiry existed gets the column when opened.
#[test]
fn an_older_sqlite_key_table_is_upgraded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ledger.db");
    {
        let conn = rusqlite::Connection::open(&path).expect("open");
        conn.execute_batch(
            "CREATE TABLE api_keys (digest BLOB PRIMARY KEY, role TEXT NOT NULL);
             INSERT INTO api_keys VALUES (x'0303030303030303030303030303030303030303030303030303030303030303', 'regulator');",
        )
        .expect("old schema");
    }
    let mut store = weiquan_store::SqliteStore::open(&path).expect("opens and upgrades");
    let k = store.key_of(&[3u8; 32]).expect("read").expect("kept");
    assert_eq!((k.role.as_str(), k.expires_at_ms), ("regulator", None));
}

/// An existing database file readable by others is tightened to its owner when opened.
#[cfg(unix)]
#[test]
fn a_world_readable_database_is_tightened_when_opened() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ledger.db");
    drop(weiquan_store::SqliteStore::open(&path).expect("created"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("loosened");
    drop(weiquan_store::SqliteStore::open(&path).expect("reopened"));
    let mode = std::fs::metadata(&path).expect("exists").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

/// Several connections to one file in one process (the sequencer's, the
/// checkpointer's, a key lookup's): opening and closing one must not disturb
/// the others. (Closing any file descriptor on the database releases every
/// POSIX lock the process holds on it; then the next connection to close
/// believes it is the last, checkpoints and deletes the WAL the first one
/// still writes to, and acknowledged writes vanish for every other process.)
#[test]
fn a_second_connection_in_the_same_process_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ledger.db");
    let (signer, _) = keys();
    let mut a = Ledger::open(
        weiquan_store::SqliteStore::open(&path).expect("a"),
        signer,
        "weiquan.test/log",
    )
    .expect("ledger");
    a.append(vec![leaf(0)]).expect("first");
    let count = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ledger-crash-writer"))
            .arg("count")
            .arg(&path)
            .output()
            .expect("reader runs");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    for _ in 0..3 {
        let mut b = weiquan_store::SqliteStore::open(&path).expect("b");
        b.key_of(&[0u8; 32]).expect("a lookup, as the key cache does");
    }
    // Another process opens and closes the database in between (`weiquan keys create`).
    assert_eq!(count(), "1");
    a.append(vec![leaf(1), leaf(2)]).expect("second");
    assert_eq!(count(), "3", "another process sees every acknowledged leaf");
}

/// Store errors say what kind of failure they are, alike on both stores, so
/// that a caller can answer "taken" (409), "try later" (503) or "damaged"
/// (500) instead of one message for all.
#[test]
fn store_errors_say_what_kind_of_failure_they_are() {
    for (name, backend) in backends() {
        let mut store = backend.open_backend();
        store.put_seed("L1", "seed").expect("kept");
        let taken = store.put_seed("L1", "another").expect_err("a lottery has one seed");
        assert_eq!(taken.kind, StoreErrorKind::Conflict, "{name}: {taken}");

        let mut ledger = fill(backend.open(), &[3]);
        // An append staged against a size the log no longer has.
        let stale = ledger
            .store_mut()
            .append(1, &[(leaf(9), vec![0; 32])], weiquan_store::Private::default(), b"cp")
            .expect_err("the log has 3 leaves");
        assert_eq!(stale.kind, StoreErrorKind::Conflict, "{name}: {stale}");

        backend.sql("DELETE FROM ledger_leaves WHERE idx = 1");
        let damaged = ledger.store_mut().leaves(0, 3).expect_err("leaf 1 is gone");
        assert_eq!(damaged.kind, StoreErrorKind::Corrupt, "{name}: {damaged}");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let nowhere = weiquan_store::SqliteStore::open(&dir.path().join("no-such-folder/ledger.db"))
        .err()
        .expect("no folder");
    assert_eq!(nowhere.kind, StoreErrorKind::Unavailable, "{nowhere}");
    // Port 1 on loopback: nothing listens there.
    let down = weiquan_store::PgStore::connect("postgres://postgres@127.0.0.1:1/test", "wq_none")
        .err()
        .expect("no server");
    assert_eq!(down.kind, StoreErrorKind::Unavailable, "{down}");
}

/// Staged appends (what the server's writer thread stores while the next
/// group is staged) are written in the order they were staged, on both
/// stores; one written out of order is refused as a conflict, and after a
/// failed write `reload` takes the tree back to what is stored.
#[test]
fn staged_appends_are_written_in_order_and_forgotten_on_reload() {
    for (name, backend) in backends() {
        let mut ledger = fill(backend.open(), &[2]);
        let unhashed = |from: u64, to: u64| (from..to).map(|n| (leaf(n), None)).collect::<Vec<_>>();
        let first = ledger.stage(unhashed(2, 4)).expect("staged");
        let second = ledger.stage(unhashed(4, 5)).expect("staged");
        assert_eq!((first.first, second.first, ledger.size()), (2, 4, 5), "{name}");
        let out_of_order = second
            .write(&mut backend.open(), weiquan_store::Private::default())
            .expect_err("leaves 2 and 3 are not stored yet");
        assert_eq!(out_of_order.kind, StoreErrorKind::Conflict, "{name}: {out_of_order}");
        ledger.reload().expect("reload");
        assert_eq!(ledger.size(), 2, "{name}: what was staged and not stored is forgotten");
        let again = ledger.stage(unhashed(2, 4)).expect("staged again");
        again
            .write(ledger.store_mut(), weiquan_store::Private::default())
            .expect("written in order");
        let mut reopened = Ledger::open(backend.open(), keys().0, ORIGIN).expect("reopen");
        assert_eq!(reopened.size(), 4, "{name}");
        assert_eq!(
            reopened.root(),
            ledger.root(),
            "{name}: the stored tree is the staged one"
        );
        assert!(reopened.inclusion_proof(3, 4).is_ok(), "{name}");
    }
}

/// The outbox, on both stores: an instruction is kept, comes due, is updated
/// (attempts, acknowledgement) and leaves the due list once delivered; an id
/// is taken once; erasure removes a consumer's instructions; secrets are
/// made once and are distinct by name.
#[test]
fn the_outbox_keeps_instructions_until_and_after_they_are_delivered() {
    use weiquan_store::Instruction;
    for (name, b) in backends() {
        let mut store = b.open_backend();
        let make = |id: &str, pseudonym: &str, next_ms: i64| Instruction {
            id: id.into(),
            pseudonym: pseudonym.into(),
            actor_key: Some("k1".into()),
            body: br#"{"instruction":"bnpl.disable"}"#.to_vec(),
            created_ms: 1_000,
            recorded: false,
            attempts: 0,
            next_ms,
            first_attempt_ms: None,
            delivered_ms: None,
            status: None,
            last_error: None,
            overdue: false,
        };
        store.outbox_put(&make("i1", "ps:a", 2_000)).expect("put");
        store.outbox_put(&make("i2", "ps:b", 5_000)).expect("put");
        let again = store
            .outbox_put(&make("i1", "ps:a", 9))
            .expect_err("an id is taken once");
        assert_eq!(again.kind, StoreErrorKind::Conflict, "{name}");
        assert_eq!(store.outbox_due(1_999, 10).expect("due"), [], "{name}: nothing due yet");
        let due = store.outbox_due(5_000, 10).expect("due");
        assert_eq!(
            due.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
            ["i1", "i2"],
            "{name}"
        );
        assert_eq!(due[0], make("i1", "ps:a", 2_000), "{name}: read back as written");
        let mut tried = due[0].clone();
        (
            tried.recorded,
            tried.attempts,
            tried.next_ms,
            tried.status,
            tried.last_error,
        ) = (true, 1, 7_000, Some(503), Some("unavailable".into()));
        store.outbox_update(&tried).expect("update");
        assert_eq!(
            store.outbox_due(5_000, 10).expect("due").len(),
            1,
            "{name}: i1 waits for its retry"
        );
        let mut done = tried.clone();
        (
            done.attempts,
            done.first_attempt_ms,
            done.delivered_ms,
            done.status,
            done.overdue,
        ) = (2, Some(7_000), Some(7_100), Some(200), true);
        store.outbox_update(&done).expect("update");
        // A stale copy (another writer's) does not undo what is settled.
        store.outbox_update(&tried).expect("stale update");
        (done.attempts, done.next_ms, done.last_error) = (1, 7_000, None);
        assert_eq!(
            store.outbox_due(i64::MAX, 10).expect("due").len(),
            1,
            "{name}: delivered leaves the list"
        );
        assert_eq!(
            store.outbox_of("ps:a").expect("of"),
            [done],
            "{name}: and stays on record"
        );
        store.erase_consumer("ps:b").expect("erase");
        let kept = store.outbox_of("ps:b").expect("of").len();
        assert_eq!(kept, 1, "{name}: an undelivered switch-off is still carried out");
        store.erase_consumer("ps:a").expect("erase");
        assert_eq!(
            store.outbox_of("ps:a").expect("of"),
            [],
            "{name}: erasure removes delivered instructions"
        );
        store.outbox_remove("i2").expect("remove");
        assert_eq!(store.outbox_due(i64::MAX, 10).expect("due"), [], "{name}");
        let (a, b2) = (
            store.secret("webhook_key").expect("secret"),
            store.secret("webhook_key").expect("again"),
        );
        assert_eq!(a, b2, "{name}: made once");
        assert_ne!(a, store.pseudonym_key().expect("key"), "{name}: distinct by name");
    }
}

/// Runs of event ids are stored whole and listed in order; a bucket comes
/// back from every run that has it (asked in one call, however many), and
/// a run stored twice is refused.
#[test]
fn runs_of_event_ids_are_stored_whole_and_read_a_bucket_at_a_time() {
    for (name, b) in backends() {
        let mut store = b.open_backend();
        assert_eq!(store.id_runs().expect("runs"), vec![], "{name}");
        store
            .put_id_run(0, 100, &[(1, vec![1; 24]), (7, vec![7; 48])])
            .expect("run 0");
        store.put_id_run(1, 250, &[(7, vec![8; 24])]).expect("run 1");
        assert_eq!(store.id_runs().expect("runs"), vec![(0, 100), (1, 250)], "{name}");
        let mut got = store.id_run_buckets(&[7, 1, 2]).expect("buckets");
        got.sort();
        assert_eq!(
            got,
            vec![(1, vec![1; 24]), (7, vec![7; 48]), (7, vec![8; 24])],
            "{name}"
        );
        assert_eq!(store.id_run_buckets(&[2]).expect("bucket"), vec![], "{name}");
        assert!(
            store.put_id_run(1, 300, &[(2, vec![2; 24])]).is_err(),
            "{name}: run 1 again"
        );
        assert_eq!(
            store.id_run_buckets(&[2]).expect("bucket"),
            vec![],
            "{name}: nothing of it stays"
        );
        let many: Vec<u32> = (0..5000).collect();
        assert_eq!(
            store.id_run_buckets(&many).expect("buckets").len(),
            3,
            "{name}: more buckets than one statement binds"
        );
        drop(store);
        assert_eq!(b.open_backend().id_runs().expect("runs").len(), 2, "{name}: kept");
    }
}

#[test]
fn findings_are_written_with_their_leaves_and_read_by_filter_and_page() {
    use weiquan_store::{FindingCount, FindingFilter, FindingRow, Private};
    let row = |leaf: u64, rule: &str, subject: &str, merchant: Option<&str>, at_ms: i64| FindingRow {
        leaf,
        rule: rule.into(),
        subject: subject.into(),
        merchant: merchant.map(str::to_owned),
        at_ms,
        body: format!("{{\"leaf\":{leaf}}}").into_bytes(),
    };
    const DAY: i64 = 86_400_000;
    for (name, b) in backends() {
        let mut store = b.open_backend();
        let rows = [
            row(1, "PS-01", "presale:p1", Some("m1"), 10 * DAY),
            row(2, "LT-04", "lottery:l1", Some("m2"), 10 * DAY + 1),
            row(4, "BN-03", "consumer:ps:aa", None, 11 * DAY),
            row(5, "PS-01", "presale:p2", Some("m1"), 12 * DAY - 1),
        ];
        let leaves: Vec<(Vec<u8>, Vec<u8>)> = (0..6).map(|i| (leaf(i), vec![0; 32])).collect();
        let findings = Private {
            findings: &rows,
            ..Private::default()
        };
        // Out of order, or outside the append: refused, and nothing is written.
        for bad in [
            vec![rows[1].clone(), rows[0].clone()],
            vec![row(6, "PS-01", "s", None, 0)],
        ] {
            let refused = Private {
                findings: &bad,
                ..Private::default()
            };
            assert!(store.append(0, &leaves, refused, b"cp").is_err(), "{name}: {bad:?}");
        }
        assert_eq!(
            store.size().expect("size"),
            0,
            "{name}: a refused append writes nothing"
        );
        store.append(0, &leaves, findings, b"cp").expect("append");

        let read = |store: &mut Box<dyn weiquan_store::Backend>, f: FindingFilter| -> Vec<u64> {
            store.findings(&f).expect("read").iter().map(|r| r.leaf).collect()
        };
        assert_eq!(store.findings(&FindingFilter::default()).expect("all"), rows, "{name}");
        let page = |after, limit| FindingFilter {
            after,
            limit: Some(limit),
            ..FindingFilter::default()
        };
        assert_eq!(read(&mut store, page(None, 2)), [1, 2], "{name}");
        assert_eq!(read(&mut store, page(Some(2), 2)), [4, 5], "{name}");
        assert_eq!(read(&mut store, page(Some(5), 2)), [] as [u64; 0], "{name}");
        let by = |f: fn(&mut FindingFilter)| {
            let mut filter = FindingFilter::default();
            f(&mut filter);
            filter
        };
        assert_eq!(
            read(&mut store, by(|f| f.merchant = Some("m1".into()))),
            [1, 5],
            "{name}"
        );
        assert_eq!(
            read(&mut store, by(|f| f.rules = Some(vec!["LT-04".into(), "BN-03".into()]))),
            [2, 4],
            "{name}"
        );
        assert_eq!(
            read(&mut store, by(|f| f.rules = Some(vec![]))),
            [] as [u64; 0],
            "{name}"
        );
        assert_eq!(
            read(&mut store, by(|f| f.subjects = Some(vec!["consumer:ps:aa".into()]))),
            [4],
            "{name}"
        );
        assert_eq!(
            read(
                &mut store,
                by(|f| (f.since_ms, f.until_ms) = (Some(10 * DAY + 1), Some(12 * DAY - 1)))
            ),
            [2, 4],
            "{name}: since is inclusive, until is not"
        );
        assert_eq!(
            read(
                &mut store,
                by(|f| (f.merchant, f.rules, f.after) = (Some("m1".into()), Some(vec!["PS-01".into()]), Some(1)))
            ),
            [5],
            "{name}: every condition at once"
        );

        // A replay's rows: those stored already are kept as they are.
        let mut again = rows[0].clone();
        again.body = b"other".to_vec();
        store.put_findings(&[again]).expect("kept");
        assert_eq!(store.findings(&page(None, 1)).expect("first")[0], rows[0], "{name}");
        store
            .put_findings(&[row(3, "MC-06", "merchant:m3", Some("m3"), 11 * DAY)])
            .expect("filled in");
        assert_eq!(read(&mut store, page(None, 10)), [1, 2, 3, 4, 5], "{name}");

        // Per rule and local day from day 11 (UTC+8) on; earlier ones apart.
        let offset = 8 * 3_600_000;
        let mut counts = store.finding_counts(11 * DAY - offset, offset).expect("counts");
        counts.sort_by(|a, b| (&a.rule, a.day).cmp(&(&b.rule, b.day)));
        let count = |rule: &str, day: Option<i64>, count| FindingCount {
            rule: rule.into(),
            day,
            count,
        };
        assert_eq!(
            counts,
            [
                count("BN-03", Some(11), 1),
                count("LT-04", None, 1),
                count("MC-06", Some(11), 1),
                count("PS-01", None, 1),
                count("PS-01", Some(12), 1),
            ],
            "{name}"
        );
        drop(store);
        assert_eq!(
            b.open_backend()
                .findings(&FindingFilter::default())
                .expect("kept")
                .len(),
            5,
            "{name}"
        );
    }
}
