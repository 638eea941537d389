//! Crash safety: a writer killed with SIGKILL at random moments loses no
//! acknowledged entry, leaves no gap or duplicate, and every checkpoint it
//! signed is consistent with every later one.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;
use weiquan_ledger::{event_leaf, load_signer, verify_consistency, verify_log, ConsistencyProof, Ledger, LogStore};
use weiquan_store::SqliteStore;

#[test]
fn sigkill_at_random_moments_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("ledger.db");
    let (skey, vkey) = weiquan_ledger::generate_key("weiquan.test/crash").expect("key");
    let key = dir.path().join("key");
    std::fs::write(&key, &skey).expect("write key");
    let verifier = weiquan_ledger::load_verifier(&vkey).expect("verifier");
    let mut acked_sizes: Vec<u64> = Vec::new();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    for round in 0..24 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ledger-crash-writer"))
            .arg(&db)
            .arg(&key)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("writer starts");
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(30 + rng % 200));
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        let mut out = String::new();
        child
            .stdout
            .take()
            .expect("stdout")
            .read_to_string(&mut out)
            .expect("read acks");
        let acks: Vec<u64> = out
            .lines()
            .filter_map(|l| l.strip_prefix("ack ")?.parse().ok())
            .collect();
        acked_sizes.extend(&acks);

        let mut store = SqliteStore::open(&db).expect("reopen after kill");
        let size = store.size().expect("size");
        let last_ack = acked_sizes.iter().copied().max().unwrap_or(0);
        assert!(
            size >= last_ack,
            "round {round}: acknowledged size {last_ack} but only {size} leaves survived"
        );
        // No gaps, no duplicates: leaf n is exactly {"n":n}.
        for (n, (data, _)) in store.leaves(0, size).expect("contiguous leaves").iter().enumerate() {
            assert_eq!(
                data,
                &event_leaf(&format!(r#"{{"n":{n}}}"#)).expect("json"),
                "round {round}: leaf {n}"
            );
        }
        verify_log(&mut store, &verifier).unwrap_or_else(|e| panic!("round {round}: {e}"));
        let cps = store.checkpoints().expect("checkpoints");
        for s in &acks {
            assert!(
                cps.iter().any(|(c, _)| c == s),
                "round {round}: acknowledged checkpoint {s} is missing"
            );
        }
    }
    assert!(acked_sizes.len() >= 24, "the writer made progress between kills");

    // Every checkpoint signed before is consistent with the final one, and each with the next.
    let signer = load_signer(&skey).expect("signer");
    let mut ledger = Ledger::open(SqliteStore::open(&db).expect("open"), signer, "weiquan.test/crash").expect("ledger");
    let cps = ledger.store_mut().checkpoints().expect("checkpoints");
    let (last_size, last) = cps.last().cloned().expect("some checkpoint");
    for pair in cps.windows(2) {
        let ((a, old), (b, new)) = (&pair[0], &pair[1]);
        let proof = ConsistencyProof::new(*a, *b, &ledger.consistency_proof(*a, *b).expect("proof"));
        verify_consistency(old, new, &proof, &verifier).unwrap_or_else(|e| panic!("{a}→{b}: {e}"));
    }
    for (a, old) in &cps {
        let proof = ConsistencyProof::new(*a, last_size, &ledger.consistency_proof(*a, last_size).expect("proof"));
        verify_consistency(old, &last, &proof, &verifier).unwrap_or_else(|e| panic!("{a}→{last_size}: {e}"));
    }
}
