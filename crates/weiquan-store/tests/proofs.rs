//! Property tests: inclusion and consistency proofs verify for random tree
//! sizes and fail when any hash in them is altered.

mod common;

use proptest::prelude::*;
use std::sync::OnceLock;
use weiquan_ledger::{event_leaf, verify_consistency, verify_receipt, ConsistencyProof, Ledger, LogStore};
use weiquan_store::SqliteStore;

/// One log of 300 leaves with a checkpoint at every size, built once.
struct Fixture {
    db: tempfile::TempDir,
    skey: String,
    verifier: signed_note::StandardVerifier,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let db = tempfile::tempdir().expect("tempdir");
        let (skey, vkey) = weiquan_ledger::generate_key("weiquan.test/prop").expect("key");
        let signer = weiquan_ledger::load_signer(&skey).expect("signer");
        let mut ledger = Ledger::open(
            SqliteStore::open(&db.path().join("l.db")).expect("db"),
            signer,
            "weiquan.test/prop",
        )
        .expect("open");
        for n in 0..300u64 {
            ledger
                .append(vec![event_leaf(&format!(r#"{{"n":{n}}}"#)).expect("json")])
                .expect("append");
        }
        Fixture {
            db,
            skey,
            verifier: weiquan_ledger::load_verifier(&vkey).expect("verifier"),
        }
    })
}

fn ledger() -> Ledger<SqliteStore> {
    let f = fixture();
    let store = SqliteStore::open(&f.db.path().join("l.db")).expect("db");
    Ledger::open(
        store,
        weiquan_ledger::load_signer(&f.skey).expect("signer"),
        "weiquan.test/prop",
    )
    .expect("open")
}

fn flip(b64: &str, bit: usize) -> String {
    use base64::prelude::{Engine as _, BASE64_STANDARD};
    let mut bytes = BASE64_STANDARD.decode(b64).expect("base64");
    let i = bit % (bytes.len() * 8);
    bytes[i / 8] ^= 1 << (i % 8);
    BASE64_STANDARD.encode(bytes)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn inclusion_proofs_verify_and_altered_ones_fail(index in 0u64..300, which in 0usize..64, bit in 0usize..256) {
        let mut l = ledger();
        let r = l.receipt(index).expect("receipt");
        prop_assert!(verify_receipt(&r, &fixture().verifier).is_ok());
        // A format this code does not know is not called valid.
        let later = weiquan_ledger::Receipt { v: 2, ..r.clone() };
        prop_assert!(verify_receipt(&later, &fixture().verifier).is_err());
        if !r.inclusion.is_empty() {
            let mut bad = r.clone();
            let k = which % bad.inclusion.len();
            bad.inclusion[k] = flip(&bad.inclusion[k], bit);
            prop_assert!(verify_receipt(&bad, &fixture().verifier).is_err());
        }
    }

    #[test]
    fn consistency_proofs_verify_and_altered_ones_fail(a in 1u64..=300, b in 1u64..=300, which in 0usize..64, bit in 0usize..256) {
        let (old, new) = (a.min(b), a.max(b));
        let mut l = ledger();
        let cps = l.store_mut().checkpoints().expect("checkpoints");
        let note = |s: u64| cps.iter().find(|(c, _)| *c == s).map(|(_, n)| n.clone()).expect("checkpoint per size");
        let proof = ConsistencyProof::new(old, new, &l.consistency_proof(old, new).expect("proof"));
        prop_assert!(verify_consistency(&note(old), &note(new), &proof, &fixture().verifier).is_ok());
        if !proof.proof.is_empty() {
            let mut bad = proof.clone();
            let k = which % bad.proof.len();
            bad.proof[k] = flip(&bad.proof[k], bit);
            prop_assert!(verify_consistency(&note(old), &note(new), &bad, &fixture().verifier).is_err());
        }
    }
}

/// Reading needs no key: a reader's receipts and proofs are the writer's.
#[test]
fn a_reader_without_a_key_gives_the_receipts_and_proofs_the_writer_gives() {
    let f = fixture();
    let store = SqliteStore::open(&f.db.path().join("l.db")).expect("db");
    let mut reader = weiquan_ledger::LedgerReader::open(store).expect("reader");
    let mut writer = ledger();
    assert_eq!(reader.size(), writer.size());
    for index in [0, 17, 299] {
        let receipt = reader.receipt(index).expect("receipt");
        assert_eq!(receipt, writer.receipt(index).expect("receipt"));
        verify_receipt(&receipt, &f.verifier).expect("verifies");
    }
    assert_eq!(
        reader.consistency_proof(10, 300).expect("proof"),
        writer.consistency_proof(10, 300).expect("proof")
    );
    assert!(reader.inclusion_proof(300, 300).is_err(), "beyond the log");
}
