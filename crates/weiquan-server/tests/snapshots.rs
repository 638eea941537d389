//! State snapshots over real HTTP, on SQLite and PostgreSQL: a server
//! restarted many times from its snapshots answers exactly as one that never
//! stopped, replays only the leaves after its newest snapshot, and skips a
//! damaged, foreign or too-new snapshot for an older one or a full replay.

mod common;

use common::{Db, Server};
use weiquan_server::snapshots::Snapshots;

/// A simulated platform: enough merchants, orders, lotteries and deadlines
/// that the state has every kind of subject in it.
fn stream() -> Vec<String> {
    weiquan_sim::simulate(&weiquan_sim::Config {
        merchants: 12,
        consumers: 400,
        days: 20,
        seed: 7,
        violation_rate: 0.5,
        profile: weiquan_sim::Profile::Double11,
        orders_per_day: 6.0,
    })
    .lines
}

fn with_snapshots(db: &Db, every: u64) -> weiquan_server::Config {
    let mut cfg = db.config(None);
    cfg.max_future_ms = None;
    cfg.snapshots = Some(Snapshots {
        dir: db.dir.path().join("snapshots"),
        every,
    });
    cfg
}

/// A gauge of `/metrics`.
async fn gauge(server: &Server, name: &str) -> u64 {
    let (status, text) = server.call("GET", "/metrics", None, None).await;
    assert_eq!(status, 200);
    let text = text.as_str().expect("metrics are text").to_owned();
    weiquan_testkit::gauge(&text, name).unwrap_or_else(|| panic!("no gauge {name} in {text}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_restarted_from_snapshots_answers_as_one_that_never_stopped() {
    let lines = stream();
    assert!(lines.len() > 3000, "a stream of {} lines", lines.len());
    let chunks: Vec<String> = lines.chunks(400).map(|c| c.join("\n")).collect();
    for (name, steady_db) in Db::both() {
        // The reference: no snapshots, never restarted.
        let steady_key = steady_db.key("regulator").await;
        let steady_platform = steady_db.key("platform").await;
        let steady = Server::start({
            let mut cfg = steady_db.config(None);
            cfg.max_future_ms = None;
            cfg
        })
        .await;
        for chunk in &chunks {
            steady.post_events(&steady_platform, chunk.clone()).await;
        }
        let want = steady.findings(&steady_key, 500).await;
        assert!(
            want.len() >= 10,
            "{name}: the stream finds something ({} findings)",
            want.len()
        );
        steady.stop().await;

        let db = if name == "sqlite" { Db::sqlite() } else { Db::postgres() };
        let (key, platform) = (db.key("regulator").await, db.key("platform").await);
        let every = 700;
        let mut server = Server::start(with_snapshots(&db, every)).await;
        for (i, chunk) in chunks.iter().enumerate() {
            server.post_events(&platform, chunk.clone()).await;
            if i % 2 == 1 {
                server.stop().await;
                server = Server::start(with_snapshots(&db, every)).await;
                let (size, from) = (
                    gauge(&server, "weiquan_ledger_leaves").await,
                    gauge(&server, "weiquan_snapshot_leaves").await,
                );
                assert!(from > 0, "{name}: restarted from a snapshot");
                assert_eq!(
                    gauge(&server, "weiquan_replayed_leaves").await,
                    size - from,
                    "{name}: only the leaves after the snapshot are replayed"
                );
                assert!(size - from < every, "{name}: a snapshot at most {every} leaves old");
            }
        }
        let again = server.post_events(&platform, chunks[0].clone()).await;
        assert_eq!(
            again["duplicates"].as_u64(),
            Some(chunks[0].lines().count() as u64),
            "{name}: ids from before the snapshots are still duplicates"
        );
        assert_eq!(
            server.findings(&key, 500).await,
            want,
            "{name}: the same findings, byte for byte"
        );
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_foreign_or_too_new_snapshot_is_skipped() {
    let lines = stream();
    let chunks: Vec<String> = lines.chunks(500).take(6).map(|c| c.join("\n")).collect();
    let db = Db::sqlite();
    let (key, platform) = (db.key("regulator").await, db.key("platform").await);
    let snapshots = with_snapshots(&db, 600).snapshots.expect("configured");
    let server = Server::start(with_snapshots(&db, 600)).await;
    for chunk in &chunks {
        server.post_events(&platform, chunk.clone()).await;
    }
    let want = server.findings(&key, 500).await;
    let size = gauge(&server, "weiquan_ledger_leaves").await;
    // The running server shows its newest snapshot once the file is written
    // (each read of the engine passes through the sequencer, which looks
    // again; findings are read beside it).
    let mut shown = 0;
    for _ in 0..200 {
        let (status, _) = server.call("GET", "/v1/blacklist", Some(&key), None).await;
        assert_eq!(status, 200);
        shown = gauge(&server, "weiquan_snapshot_leaves").await;
        if shown + 600 > size {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        shown + 600 > size && shown > 0,
        "a snapshot within one interval of {size} leaves is shown, not {shown}"
    );
    server.stop().await;
    let files = snapshots.newest_first();
    assert_eq!(files.len(), weiquan_server::snapshots::KEEP, "{files:?}");
    let (newest, older) = (files[0].clone(), files[1].clone());

    // Snapshots of other ledgers, to be named as if of this one: one sealed
    // under this ledger's signing key, one under a key of its own.
    let foreign = |same_key: bool| {
        let (chunk, key_file) = (chunks[0].clone(), db.dir.path().join("ledger.key"));
        async move {
            let other = Db::sqlite();
            if same_key {
                std::fs::copy(&key_file, other.dir.path().join("ledger.key")).expect("key copied");
                std::fs::copy(
                    key_file.with_extension("key.pub"),
                    other.dir.path().join("ledger.key.pub"),
                )
                .expect("public key copied");
            }
            let platform = other.key("platform").await;
            let server = Server::start(with_snapshots(&other, 1)).await;
            server.post_events(&platform, chunk).await;
            server.stop().await;
            let (_, file) = with_snapshots(&other, 1).snapshots.expect("configured").newest_first()[0].clone();
            let bytes = std::fs::read(file).expect("readable");
            (other, bytes)
        }
    };
    let (_same, same_key) = foreign(true).await;
    let (_other, other_key) = foreign(false).await;

    let restart = |expect_from: u64, why: &'static str| {
        let (cfg, key, want) = (with_snapshots(&db, 600), key.clone(), want.clone());
        async move {
            let server = Server::start(cfg).await;
            // (A replay of a whole snapshot interval or more writes a new snapshot at once.)
            assert_eq!(
                gauge(&server, "weiquan_replayed_leaves").await,
                size - expect_from,
                "{why}"
            );
            assert_eq!(server.findings(&key, 500).await, want, "{why}: the same findings");
            server.stop().await;
        }
    };
    restart(newest.0, "the newest snapshot is used").await;

    let mut bytes = std::fs::read(&newest.1).expect("readable");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&newest.1, &bytes).expect("writable");
    restart(older.0, "a damaged snapshot is skipped for the one before").await;

    for (_, f) in snapshots.newest_first() {
        std::fs::remove_file(f).expect("removed");
    }
    std::fs::write(&newest.1, &bytes).expect("writable");
    std::fs::write(&older.1, &same_key).expect("writable");
    std::fs::write(
        snapshots.dir.join(format!("core-{:020}.wqsnap", older.0 - 1)),
        &other_key,
    )
    .expect("writable");
    // A file claiming more leaves than the ledger has.
    std::fs::write(snapshots.dir.join(format!("core-{:020}.wqsnap", size + 1)), &same_key).expect("writable");
    restart(
        0,
        "a damaged snapshot, one of another ledger, one sealed under another key and one too new: the whole ledger is replayed",
    )
    .await;

    // That replay wrote a new snapshot; an erasure since makes it unusable (a
    // replay would see the erasure; the snapshot holds what was erased).
    restart(size, "the snapshot the full replay wrote").await;
    let consumer = lines
        .iter()
        .find_map(|l| {
            serde_json::from_str::<serde_json::Value>(l).ok()?["consumer"]
                .as_str()
                .map(str::to_owned)
        })
        .expect("the stream names a consumer");
    let (database, who) = (db.db.clone(), consumer.clone());
    let erased = tokio::task::spawn_blocking(move || database.erase_consumer(&who))
        .await
        .expect("join")
        .expect("erased");
    assert!(erased.leaves > 0, "{consumer}'s leaves were erased");
    let server = Server::start(with_snapshots(&db, 600)).await;
    assert_eq!(
        gauge(&server, "weiquan_replayed_leaves").await,
        size,
        "a snapshot taken before an erasure is not used"
    );
    server.stop().await;
}
