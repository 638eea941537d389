//! The published test vector of docs/ledger.md: three events logged with a
//! fixed key must give exactly the committed entries, tiles and checkpoint
//! (Ed25519 signatures are deterministic). `UPDATE_VECTORS=1` rewrites them.

use std::path::PathBuf;
use weiquan_ledger::{event_leaf, load_signer, parse_tile_path, Ledger};
use weiquan_store::SqliteStore;

#[test]
fn published_vector_is_reproduced_byte_for_byte() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/vectors/ledger");
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let events = String::from_utf8(read("events.ndjson")).expect("utf-8");
    let signer = load_signer(&String::from_utf8(read("signer.key")).expect("utf-8")).expect("signer");
    let mut ledger =
        Ledger::open(SqliteStore::in_memory().expect("db"), signer, "weiquan.example/vector").expect("open");
    let leaves: Vec<Vec<u8>> = events.lines().map(|l| event_leaf(l).expect("json")).collect();
    ledger.append(leaves).expect("append");
    let produced = [
        ("checkpoint", ledger.checkpoint().expect("checkpoint")),
        (
            "tile/0/000.p/3",
            ledger
                .tile(parse_tile_path("tile/0/000.p/3").expect("path"))
                .expect("tile")
                .expect("exists"),
        ),
        (
            "tile/entries/000.p/3",
            ledger
                .tile(parse_tile_path("tile/entries/000.p/3").expect("path"))
                .expect("tile")
                .expect("exists"),
        ),
    ];
    for (name, bytes) in produced {
        let path = dir.join(name);
        if std::env::var_os("UPDATE_VECTORS").is_some() {
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, &bytes).expect("write");
        }
        assert_eq!(read(name), bytes, "{name} differs from the published vector");
    }
    let verifier =
        weiquan_ledger::load_verifier(&String::from_utf8(read("verifier.pub")).expect("utf-8")).expect("verifier");
    weiquan_ledger::open_checkpoint(&read("checkpoint"), &verifier, "vector").expect("vector checkpoint verifies");
}
