//! Partition logs and the top log (issue 19, item 5), against the NATS
//! server at 127.0.0.1:4222 and the PostgreSQL of the tests: a worker with
//! logs writes every event and finding of its partitions; the top log
//! commits to them all; every finding gets a receipt with both proofs; a
//! worker that applies a partition again from its start appends nothing
//! twice; and a leaf altered in the database fails verification.

mod common;

use std::sync::Arc;
use std::time::Duration;
use weiquan_cluster::logs::{verify_cluster_receipt, LogProblem, Logs, Which};
use weiquan_cluster::{door::FrontDoor, worker, Cluster, Published};
use weiquan_engine::Rulebook;

/// The lines of example case `name`.
fn case(name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(weiquan_testkit::root().join(format!("tests/cases/{name}/events.ndjson")))
        .expect("the example case");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// The pre-sale example case: its later findings (a final price over the
/// one promised, gifts withdrawn) cite its first events.
fn presale_case() -> Vec<String> {
    case("presale")
}

/// Runs one worker with `logs` until every partition has applied what was
/// routed and, when `top_every` is short, the top log commits to every
/// partition log as it stands (or a minute has passed: the caller checks
/// what was applied). With a long `top_every` the top log is written only
/// as the worker hands it over.
async fn work_until_committed(
    cluster: &Cluster,
    logs: &Logs,
    name: &str,
    public: &str,
    rules: Arc<Rulebook>,
    top_every: Duration,
) {
    let cfg = worker::WorkerConfig {
        name: name.into(),
        snapshot_every: 40,
        lease: Duration::from_millis(800),
        logs: Some(logs.clone()),
        top_every,
    };
    let wait_for_top = top_every < Duration::from_secs(10);
    let (watcher, reader, verifier, me) = (cluster.clone(), logs.clone(), verifier(public), name.to_owned());
    let stop = async move {
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            // Progress is this worker's once it holds every partition (an
            // earlier worker's figures are overwritten as it takes each).
            let mine = (watcher.owners().await).is_ok_and(|o| o.iter().all(|w| w.as_deref() == Some(me.as_str())));
            let caught_up = mine && watcher.progress().await.ok() == watcher.routed().await.ok();
            let committed = !wait_for_top
                || (verified(&reader, &verifier).await)
                    .is_ok_and(|r| r.partitions.iter().all(|p| p.committed == p.log.leaves));
            if caught_up && committed {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    worker::run(cluster.clone(), rules, cfg, stop)
        .await
        .expect("the worker runs");
}

/// [`Logs::verify`], on a thread where its blocking database client may run.
/// After worker `who` applied every partition again from the start: no fork
/// stopped a partition, the logs still verify, and no log grew past `before`.
async fn replayed_without_fork(
    cluster: &Cluster,
    logs: &Logs,
    v: &weiquan_ledger::StandardVerifier,
    before: &weiquan_cluster::logs::ClusterReport,
    who: &str,
) -> weiquan_cluster::logs::ClusterReport {
    assert_eq!(
        cluster.progress().await.ok(),
        cluster.routed().await.ok(),
        "{who} applied everything again (no fork stopped a partition)"
    );
    let after = verified(logs, v).await.expect("the logs still verify");
    let sizes =
        |r: &weiquan_cluster::logs::ClusterReport| -> Vec<u64> { r.partitions.iter().map(|p| p.log.leaves).collect() };
    assert_eq!(sizes(&after), sizes(before), "nothing appended twice");
    after
}

async fn verified(
    logs: &Logs,
    verifier: &weiquan_ledger::StandardVerifier,
) -> Result<weiquan_cluster::logs::ClusterReport, weiquan_cluster::logs::LogError> {
    let (logs, verifier) = (logs.clone(), verifier.clone());
    tokio::task::spawn_blocking(move || logs.verify(&verifier, None))
        .await
        .expect("joins")
}

fn verifier(public: &str) -> weiquan_ledger::StandardVerifier {
    weiquan_ledger::load_verifier(public).expect("a verifier key")
}

#[test]
fn partition_logs_and_the_top_log_prove_every_finding() {
    if !weiquan_testkit::services::nats_available() || !weiquan_testkit::services::postgres_available() {
        return;
    }
    let lines = presale_case();
    let rules = Arc::new(Rulebook::builtin());
    let (key, public) = weiquan_ledger::generate_key("weiquan-cluster-test").expect("a key");
    common::runtime().block_on(async {
        let cluster = common::fresh_cluster("logs", 3).await;
        let logs = Logs::of(&cluster, &weiquan_testkit::services::pg_url())
            .and_then(|l| l.signed_with(&key))
            .expect("the key");
        let mut door = FrontDoor::new(cluster.clone()).await.expect("a door");
        // An event whose line has no canonical JSON form (a number beyond a
        // double, in a field of the producer's own) is accepted like any
        // other (spec: extra fields never reject) and logged as a stand-in.
        let odd = r#"{"v": 1, "id": "odd", "type": "clock.tick", "at": "2026-11-01T00:00:00+08:00", "x": 1e400}"#;
        // And one too long for a leaf, in a field that is not salted: it
        // stands in for itself, as a commitment.
        let long = format!(
            r#"{{"v": 1, "id": "long", "type": "listing.published", "at": "2026-11-01T00:00:00+08:00", "merchant": "m1", "sku": "s9", "title": "{}", "price_fen": 100}}"#,
            "长".repeat(30_000)
        );
        for line in [odd, &long] {
            let ev = weiquan_events::parse_event(line).expect("it parses as an event");
            door.send(&ev, line).await.expect("routed");
        }
        // Through the deposits; then the price change, final payments and shipping.
        let (first, second) = lines.split_at(7);
        // Each partition log's size when the first worker stopped.
        let mut halfway = Vec::new();
        // Half the stream, one worker; then the rest, and another worker that
        // restores the partitions from the snapshots the first left with
        // their logs' positions.
        // The first writes the top log only as it stops (a top interval of
        // an hour): that last record commits to everything it wrote.
        let (hour, tenth) = (Duration::from_secs(3600), Duration::from_millis(100));
        for (half, name, top_every) in [(first, "w1", hour), (second, "w2", tenth)] {
            for line in half {
                let ev = weiquan_events::parse_event(line).expect("parses");
                door.send(&ev, line).await.expect("routed");
            }
            door.advance().await.expect("advanced");
            door.flush().await.expect("acknowledged");
            work_until_committed(&cluster, &logs, name, &public, rules.clone(), top_every).await;
            assert_eq!(
                cluster.progress().await.ok(),
                cluster.routed().await.ok(),
                "{name} applied everything"
            );
            if halfway.is_empty() {
                let report = verified(&logs, &verifier(&public)).await.expect("verifies");
                let committed = report.partitions.iter().all(|p| p.committed == p.log.leaves);
                assert!(
                    committed,
                    "the top log's last record, as w1 stopped, commits to all: {report:?}"
                );
                halfway = report.partitions.iter().map(|p| p.log.leaves).collect();
            }
        }
        let entries: u64 = door.sent().iter().sum();
        let v = verifier(&public);
        let report = verified(&logs, &v).await.expect("the logs verify");
        let (found, _) = weiquan_cluster::read_findings(&cluster).await.expect("findings");
        assert!(found.len() >= 4, "the case gives findings: {}", found.len());
        // Every event entry of a partition is a leaf (the two advances, sent
        // to each partition, are not events), and every finding.
        let advances = 2 * 3;
        let lines: Vec<&str> = lines.iter().map(String::as_str).chain([odd, long.as_str()]).collect();
        let leaves: u64 = report.partitions.iter().map(|p| p.log.leaves).sum();
        assert_eq!(
            leaves,
            entries - advances + found.len() as u64,
            "one leaf per event a partition applied and per finding"
        );
        assert!(
            lines.len() as u64 <= entries - advances,
            "broadcasts count once per partition"
        );
        let stand_ins: Vec<u64> = report.partitions.iter().map(|p| p.log.events_stand_in).collect();
        assert_eq!(stand_ins.iter().sum::<u64>(), 1, "the long listing stands in: {stand_ins:?}");
        // The other odd tick has a leaf of its own, its extra field (written as its text) salted.
        let name = cluster.name.clone();
        let leaves = tokio::task::spawn_blocking(move || (0..3).flat_map(|p| leaves_of(&name, p)).collect::<Vec<_>>())
            .await
            .expect("joins");
        let odd_leaves = (leaves.iter())
            .filter_map(|l| weiquan_ledger::leaf_event(l))
            .filter(|e| e.event.contains(r#""id":"odd""#))
            .map(|e| (e.raw, e.salted))
            .collect::<Vec<_>>();
        let x = vec!["x".to_owned()];
        assert_eq!(odd_leaves, vec![(x.clone(), x.clone()); 3], "one in each partition");
        let long_leaves = (leaves.iter()).filter_map(|l| weiquan_ledger::stand_in(l)).collect::<Vec<_>>();
        assert_eq!(long_leaves.len(), 1);
        assert!(
            long_leaves.iter().all(|s| s.id == "long" && s.line.is_none()),
            "{long_leaves:?}"
        );
        assert!(!leaves.iter().any(|l| l.contains("长长")), "the long line is in no leaf");
        assert!(report.entries >= 1);

        // Each finding's leaf has a receipt with both proofs, and says the finding.
        let receipts = {
            let logs = logs.clone();
            let found: Vec<Published> = found.clone();
            tokio::task::spawn_blocking(move || {
                found
                    .iter()
                    .map(|f| logs.receipt(f.partition, f.leaf.expect("a finding's leaf"), false))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await
            .expect("joins")
            .expect("receipts")
        };
        for (f, receipt) in found.iter().zip(&receipts) {
            let cp = verify_cluster_receipt(receipt, &v).expect("the receipt verifies");
            assert!(cp.origin.ends_with("/top"), "{}", cp.origin);
            let leaf: serde_json::Value = serde_json::from_str(&receipt.leaf).expect("JSON");
            assert_eq!(leaf["rule"], f.finding.rule.as_str(), "{leaf}");
            assert_eq!(leaf["subject"], f.finding.subject.as_str(), "{leaf}");
        }
        // The second worker went on from snapshots: a finding it logged
        // cites an event the first worker logged (its evidence index came
        // from the snapshot).
        let crossing = receipts.iter().filter(|r| {
            let leaf: serde_json::Value = serde_json::from_str(&r.leaf).expect("JSON");
            let before = halfway[r.partition as usize];
            let cites_before =
                (leaf["evidence"].as_array()).is_some_and(|e| e.iter().any(|i| i.as_u64().is_some_and(|i| i < before)));
            r.index >= before && cites_before
        });
        assert!(
            crossing.count() > 0,
            "a finding after the handover cites an event before it"
        );
        // Altered receipts fail.
        let mut other = receipts[0].clone();
        other.leaf = other.leaf.replace(f_rule(&found[0]), "XX-99");
        assert!(verify_cluster_receipt(&other, &v).is_err(), "an altered leaf");
        let mut other = receipts[0].clone();
        other.size += 1;
        assert!(verify_cluster_receipt(&other, &v).is_err(), "another tree size");
        let mut other = receipts[0].clone();
        other.partition = (other.partition + 1) % 3;
        assert!(verify_cluster_receipt(&other, &v).is_err(), "another partition");

        // Applied again from the start (snapshots gone) by another worker:
        // the same leaves are met, nothing is appended.
        for p in 0..3 {
            cluster.forget_snapshot(p).await.expect("deleted");
        }
        work_until_committed(
            &cluster,
            &logs,
            "w3",
            &public,
            rules.clone(),
            Duration::from_millis(100),
        )
        .await;
        let again = replayed_without_fork(&cluster, &logs, &v, &report, "w3").await;
        assert_eq!(again.entries, report.entries, "the top log had nothing new to record");

        // A monitor, from what is served alone: the same logs, all committed.
        let seen = monitored(&logs, &public, None).await.expect("the served logs verify");
        let served: Vec<(u64, u64)> = seen.partitions.iter().map(|p| (p.leaves, p.committed)).collect();
        let checked: Vec<(u64, u64)> = again.partitions.iter().map(|p| (p.log.leaves, p.committed)).collect();
        assert_eq!(served, checked);
        assert_eq!((seen.entries, seen.cluster.as_str()), (again.entries, cluster.name.as_str()));
        assert!(seen.partitions.iter().all(|p| p.unsalted == 0));
        // One byte changed in what is served: a leaf, then a checkpoint's signature.
        let size = seen.partitions[2].leaves;
        let bundle = format!("p2/{}", weiquan_ledger::tile_path(None, 0, size.min(256) as u32));
        let lied = monitored(&logs, &public, Some((&bundle, 40))).await;
        assert!(
            matches!(&lied, Err(weiquan_cluster::monitor::MonitorError::Invalid(why)) if why.contains("do not hash to its signed checkpoint")),
            "{lied:?}"
        );
        let lied = monitored(&logs, &public, Some(("top/checkpoint", 60))).await;
        assert!(matches!(&lied, Err(weiquan_cluster::monitor::MonitorError::Invalid(_))), "{lied:?}");

        // What an outsider (or the operator) might try, each refused by name.
        let pg = weiquan_testkit::services::pg_url();
        let (attacker, v2, top_cp) = (logs.clone(), v.clone(), receipts[0].top.checkpoint.clone());
        let name = cluster.name.clone();
        tokio::task::spawn_blocking(move || {
            // A top checkpoint kept from earlier: the top log extends it.
            attacker
                .verify(&v2, Some(top_cp.as_bytes()))
                .expect("the top log extends an earlier checkpoint");
            // A checkpoint of the same origin over other entries (signed with the key): a rewritten top log.
            let dir = tempfile::tempdir().expect("a folder");
            let store = weiquan_store::SqliteStore::open(&dir.path().join("other.db")).expect("SQLite");
            let signer = weiquan_ledger::load_signer(&key).expect("the key");
            let mut other = weiquan_ledger::Ledger::open(store, signer, &attacker.origin(Which::Top)).expect("opens");
            other.append(vec![b"{}".to_vec()]).expect("appended");
            let forged = other.checkpoint().expect("a checkpoint");
            let why = attacker
                .verify(&v2, Some(&forged))
                .expect_err("another history")
                .to_string();
            assert!(why.contains("the top log was rewritten"), "{why}");
            // A partition the cluster does not have.
            let why = attacker.receipt(7, 0, false).expect_err("no partition 7").to_string();
            assert!(why.contains("records 3 partitions"), "{why}");
            let why = attacker.receipt(0, 10_000, false).expect_err("no such leaf").to_string();
            assert!(why.contains("there is no leaf 10000"), "{why}");
            // Logs that do not exist are an error, not a verdict, and are not created.
            let missing = Logs::at(&pg, "no-such-cluster").expect("a name").verify(&v2, None);
            let missing = missing.expect_err("no logs");
            assert!(
                !missing.is_invalid() && missing.to_string().contains("does not exist"),
                "{missing}"
            );
            assert!(!weiquan_store::PgStore::schema_exists(&pg, "wq_no_such_cluster_top").expect("PostgreSQL"));
            // A top log over partitions no worker has taken: recorded empty.
            let idle = Logs::at(&pg, &format!("{name}-idle"))
                .and_then(|l| l.signed_with(&key))
                .expect("logs");
            let mut top = idle.top(2).expect("the top log");
            let early = idle.verify(&v2, None).expect_err("nothing recorded yet");
            assert!(
                !early.is_invalid() && early.to_string().contains("records no partition yet"),
                "{early}"
            );
            assert_eq!(top.record().expect("recorded"), Some(1));
            drop(top);
            let report = idle.verify(&v2, None).expect("empty logs verify");
            let sizes: Vec<(u64, u64)> = report.partitions.iter().map(|p| (p.log.leaves, p.committed)).collect();
            assert_eq!(sizes, [(0, 0), (0, 0)]);
            // A log signed with the key but as another partition's: refused by origin.
            let p0 = format!("wq_{}_idle_p0", name.replace('-', "_"));
            let store = weiquan_store::PgStore::connect(&pg, &p0).expect("partition 0's log");
            let signer = weiquan_ledger::load_signer(&key).expect("the key");
            let mut posing = weiquan_ledger::Ledger::open(store, signer, &idle.origin(Which::Partition(1))).expect("opens");
            posing.append(vec![b"{}".to_vec()]).expect("appended");
            drop(posing);
            let why = idle.verify(&v2, None).expect_err("another log's origin").to_string();
            assert!(why.contains("partition 0's log") && why.contains("idle/p1`, not `"), "{why}");
            // A snapshot's position over leaves the log no longer holds.
            let replaced = attacker.partition(0, 1, weiquan_app::LeafIndex::new(), Some(weiquan_ledger::Hash([7; 32])));
            assert!(
                matches!(&replaced, Err(e) if matches!(e.problem, LogProblem::Replaced { at: 1 })),
                "{:?}",
                replaced.err()
            );
            // Leaves without a signed checkpoint over them (the newest one deleted).
            let schema = format!("wq_{}_p2", name.replace('-', "_"));
            let mut db = postgres::Client::connect(&pg, postgres::NoTls).expect("PostgreSQL");
            let newest = format!(
                "\"{schema}\".ledger_checkpoints WHERE size = (SELECT max(size) FROM \"{schema}\".ledger_checkpoints)"
            );
            let row = db
                .query_one(&format!("SELECT size, note FROM {newest}"), &[])
                .expect("a checkpoint");
            let (size, note): (i64, Vec<u8>) = (row.get(0), row.get(1));
            db.execute(&format!("DELETE FROM {newest}"), &[]).expect("deleted");
            let why = attacker.verify(&v2, None).expect_err("unsigned leaves").to_string();
            assert!(
                why.contains("partition 2's log") && why.contains("no signed checkpoint"),
                "{why}"
            );
            db.execute(
                &format!("INSERT INTO \"{schema}\".ledger_checkpoints (size, note) VALUES ($1, $2)"),
                &[&size, &note],
            )
            .expect("put back");
            attacker.verify(&v2, None).expect("valid again");
            // A top entry, signed with the key, that records another root at
            // a size an earlier entry recorded: refused, then taken out again.
            let top_schema = format!("wq_{}_top", name.replace('-', "_"));
            let mut store = weiquan_store::PgStore::connect(&pg, &top_schema).expect("the top log");
            let entries = weiquan_ledger::LogStore::size(&mut store).expect("its size");
            let last = weiquan_ledger::LogStore::leaves(&mut store, entries - 1, entries).expect("its last entry");
            let mut entry: weiquan_cluster::logs::TopEntry = serde_json::from_slice(&last[0].0).expect("a top entry");
            entry.partitions[0].root = weiquan_ledger::hash_text(&weiquan_ledger::Hash([9; 32]));
            let signer = weiquan_ledger::load_signer(&key).expect("the key");
            let mut top = weiquan_ledger::Ledger::open(store, signer, &attacker.origin(Which::Top)).expect("opens");
            let bogus = top.append(vec![serde_json::to_vec(&entry).expect("JSON")]).expect("appended");
            drop(top);
            let why = attacker.verify(&v2, None).expect_err("another root at a recorded size").to_string();
            assert!(why.contains("partition 0's log") && why.contains("another root at size"), "{why}");
            db.batch_execute(&format!(
                "DELETE FROM \"{top_schema}\".ledger_leaves WHERE idx = {bogus}; DELETE FROM \"{top_schema}\".ledger_checkpoints WHERE size = {};",
                bogus + 1
            ))
            .expect("taken out");
            attacker.verify(&v2, None).expect("valid again");
        })
        .await
        .expect("joins");

        // Partition 1's history rewritten as a whole new log, every hash and
        // checkpoint valid under the same key: the top log's record of its
        // root gives it away.
        let schema = format!("wq_{}_p1", cluster.name.replace('-', "_"));
        let (rewriter, v1) = (logs.clone(), v.clone());
        let rewritten = tokio::task::spawn_blocking(move || {
            let mut db =
                postgres::Client::connect(&weiquan_testkit::services::pg_url(), postgres::NoTls).expect("PostgreSQL");
            db.batch_execute(&format!(
                "DELETE FROM \"{schema}\".ledger_leaves; DELETE FROM \"{schema}\".ledger_checkpoints;"
            ))
            .expect("emptied");
            let mut log = rewriter
                .partition(1, 0, weiquan_app::LeafIndex::new(), None)
                .expect("opens");
            for line in presale_case().iter().skip(1) {
                let (ev, extras) = weiquan_events::parse_event_with_extras(line).expect("parses");
                log.event(line, (&ev, &extras)).expect("logged");
            }
            log.flush().expect("written");
            drop(log);
            // The top log's writer keeps its record of partition 1 (and has nothing new to write).
            let mut top = rewriter.top(3).expect("the top log");
            assert_eq!(
                top.record().expect("recorded"),
                None,
                "nothing recorded over a replaced log"
            );
            drop(top);
            rewriter.verify(&v1, None)
        })
        .await
        .expect("joins");
        let why = rewritten.expect_err("a rewritten partition log").to_string();
        assert!(
            why.contains("partition 1's log") && why.contains("is not the one the top log"),
            "{why}"
        );
        // Shorter than the top log recorded, here; at another root when as long.
        let why = monitored(&logs, &public, None).await.expect_err("a rewritten partition log");
        assert!(
            matches!(&why, weiquan_cluster::monitor::MonitorError::Invalid(w) if w.contains("log `p1` at 26 leaves")),
            "{why}"
        );

        // A leaf altered in the database: verification names the log and the leaf.
        let schema = format!("wq_{}_p0", cluster.name.replace('-', "_"));
        tokio::task::spawn_blocking(move || {
            let mut db =
                postgres::Client::connect(&weiquan_testkit::services::pg_url(), postgres::NoTls).expect("PostgreSQL");
            db.execute(
                &format!("UPDATE \"{schema}\".ledger_leaves SET data = convert_to('{{}}', 'UTF8') WHERE idx = 1"),
                &[],
            )
            .expect("altered");
        })
        .await
        .expect("joins");
        let why = verified(&logs, &v).await.expect_err("an altered leaf").to_string();
        assert!(why.contains("partition 0's log") && why.contains("leaf 1"), "{why}");
    });
}

fn f_rule(f: &Published) -> &'static str {
    f.finding.rule.as_str()
}

/// A monitor's view of the logs, read through the same readers `serve-logs`
/// serves them with, with one change of its own to what is served (a
/// server that lies). Paths as the server's: `<log>/checkpoint`, `<log>/tile/…`.
struct Served {
    readers: weiquan_cluster::logs::LogReaders,
    tamper: Option<(String, usize)>,
}

impl weiquan_cluster::monitor::Fetch for Served {
    fn get(&mut self, path: &str) -> Result<Option<Vec<u8>>, String> {
        let (log, rest) = path.split_once('/').ok_or("no log in the path")?;
        let which = Which::parse(log).ok_or("no such log")?;
        let body = match rest {
            "checkpoint" => self.readers.checkpoint(which),
            tile => self
                .readers
                .tile(which, weiquan_ledger::parse_tile_path(tile).ok_or("not a tile")?),
        };
        let mut body = body.map_err(|e| e.to_string())?;
        if let (Some(body), Some((at, byte))) = (&mut body, &self.tamper) {
            if path == at {
                body[*byte] ^= 1;
            }
        }
        Ok(body)
    }
}

/// [`weiquan_cluster::monitor::verify_served`] over `logs`, with a byte of `tamper` flipped.
async fn monitored(
    logs: &Logs,
    public: &str,
    tamper: Option<(&str, usize)>,
) -> Result<weiquan_cluster::monitor::ServedReport, weiquan_cluster::monitor::MonitorError> {
    let (logs, v, tamper) = (logs.clone(), verifier(public), tamper.map(|(p, b)| (p.to_owned(), b)));
    tokio::task::spawn_blocking(move || {
        let mut served = Served {
            readers: weiquan_cluster::logs::LogReaders::new(logs),
            tamper,
        };
        weiquan_cluster::monitor::verify_served(&mut served, &v, None)
    })
    .await
    .expect("joins")
}

/// Every leaf of partition `p`'s log, as text.
fn leaves_of(cluster: &str, p: u32) -> Vec<String> {
    let schema = format!("wq_{}_p{p}", cluster.replace('-', "_"));
    let mut store = weiquan_store::PgStore::connect(&weiquan_testkit::services::pg_url(), &schema).expect("a log");
    let size = weiquan_ledger::LogStore::size(&mut store).expect("its size");
    let leaves = weiquan_ledger::LogStore::leaves(&mut store, 0, size).expect("its leaves");
    leaves
        .into_iter()
        .map(|(data, _)| String::from_utf8(data).expect("UTF-8"))
        .collect()
}

/// The string values an event's leaf may hold only as commitments: its
/// consumer, its free text, what the platform knows of the consumer.
fn private_values(line: &str) -> Vec<String> {
    let (ev, extras) = weiquan_events::parse_event_with_extras(line).expect("parses");
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line).expect("an object");
    (object.into_iter())
        .filter(|(k, _)| weiquan_events::is_private_member(&ev.body, &extras, false, k))
        .filter_map(|(_, v)| v.as_str().map(str::to_owned))
        .collect()
}

/// The partition logs hold no consumer id or private text, only salted
/// commitments; a receipt that reveals its salt and values opens them (and
/// forged values do not); erasing a consumer leaves nothing to open for any
/// leaf about them while the logs still verify; and a worker that applies
/// everything again, with salts of its own, meets every stored leaf (those
/// erased included) and appends nothing.
#[test]
fn partition_logs_keep_consumers_off_their_leaves_and_erase_them() {
    if !weiquan_testkit::services::nats_available() || !weiquan_testkit::services::postgres_available() {
        return;
    }
    let lines = case("bnpl-prices");
    let rules = Arc::new(Rulebook::builtin());
    let (key, public) = weiquan_ledger::generate_key("weiquan-cluster-test").expect("a key");
    common::runtime().block_on(async {
        let cluster = common::fresh_cluster("salted", 3).await;
        let logs = Logs::of(&cluster, &weiquan_testkit::services::pg_url())
            .and_then(|l| l.signed_with(&key))
            .expect("the key");
        let mut door = FrontDoor::new(cluster.clone()).await.expect("a door");
        for line in &lines {
            let ev = weiquan_events::parse_event(line).expect("parses");
            door.send(&ev, line).await.expect("routed");
        }
        door.advance().await.expect("advanced");
        door.flush().await.expect("acknowledged");
        let tenth = Duration::from_millis(100);
        work_until_committed(&cluster, &logs, "w1", &public, rules.clone(), tenth).await;
        assert_eq!(
            cluster.progress().await.ok(),
            cluster.routed().await.ok(),
            "w1 applied everything"
        );
        let v = verifier(&public);
        let report = verified(&logs, &v).await.expect("the logs verify");

        // Nothing private in any leaf, in the clear.
        let private: std::collections::BTreeSet<String> = lines.iter().flat_map(|l| private_values(l)).collect();
        assert!(
            private.contains("u1") && private.contains("找不到关闭入口"),
            "{private:?}"
        );
        let name = cluster.name.clone();
        let leaves = tokio::task::spawn_blocking(move || (0..3).flat_map(|p| leaves_of(&name, p)).collect::<Vec<_>>())
            .await
            .expect("joins");
        assert_eq!(
            leaves.len() as u64,
            report.partitions.iter().map(|p| p.log.leaves).sum::<u64>()
        );
        for leaf in &leaves {
            for value in &private {
                assert!(
                    !leaf.contains(&format!("\"{value}\"")),
                    "`{value}` is in a leaf: {leaf}"
                );
            }
        }

        // A finding about a consumer: its receipt reveals the subject on request.
        let (found, _) = weiquan_cluster::read_findings(&cluster).await.expect("findings");
        let about = |who: &str| {
            (found.iter())
                .filter(|f| f.finding.subject == format!("consumer:{who}"))
                .map(|f| (f.partition, f.leaf.expect("a leaf")))
                .collect::<Vec<_>>()
        };
        let (u1, u3) = (about("u1"), about("u3"));
        assert!(!u1.is_empty() && !u3.is_empty(), "BN findings on u1 and u3: {found:?}");
        let receipt = |(p, leaf): (u32, u64), reveal: bool| {
            let logs = logs.clone();
            async move {
                tokio::task::spawn_blocking(move || logs.receipt(p, leaf, reveal))
                    .await
                    .expect("joins")
                    .expect("a receipt")
            }
        };
        let shown = receipt(u3[0], true).await;
        verify_cluster_receipt(&shown, &v).expect("a revealed receipt verifies");
        let revealed = shown.private.clone().expect("revealed");
        assert_eq!(revealed.values["subject"], "consumer:u3");
        let leaf: serde_json::Value = serde_json::from_str(&shown.leaf).expect("JSON");
        assert_ne!(leaf["subject"], "consumer:u3", "the leaf holds a commitment: {leaf}");
        assert!(
            receipt(u3[0], false).await.private.is_none(),
            "revealed only on request"
        );
        let mut forged = shown.clone();
        if let Some(p) = forged.private.as_mut() {
            p.values.insert("subject".into(), "consumer:u9".into());
        }
        let why = verify_cluster_receipt(&forged, &v)
            .expect_err("another consumer")
            .to_string();
        assert!(why.contains("do not open the leaf"), "{why}");

        // Erasure: every leaf about u1, events and findings, and nothing else.
        let naming_u1 = lines.iter().filter(|l| l.contains("\"consumer\": \"u1\"")).count() as u64;
        let eraser = logs.clone();
        let erased = tokio::task::spawn_blocking(move || eraser.erase("u1"))
            .await
            .expect("joins")
            .expect("erased");
        assert_eq!(erased, naming_u1 + u1.len() as u64, "u1's events and findings");
        assert!(receipt(u1[0], true).await.private.is_none(), "nothing left to open");
        assert!(
            receipt(u3[0], true).await.private.is_some(),
            "another consumer's data stays"
        );
        let eraser = logs.clone();
        let again = tokio::task::spawn_blocking(move || eraser.erase("u1"))
            .await
            .expect("joins")
            .expect("erased");
        assert_eq!(again, 0, "nothing left to erase");
        verified(&logs, &v).await.expect("the logs still verify");

        // Applied again from the start by a worker with salts of its own.
        for p in 0..3 {
            cluster.forget_snapshot(p).await.expect("deleted");
        }
        work_until_committed(&cluster, &logs, "w2", &public, rules.clone(), tenth).await;
        replayed_without_fork(&cluster, &logs, &v, &report, "w2").await;

        // Logs no top entry records yet: erasure still finds them. A log
        // written before partition logs were salted is not served.
        let (pg, key, lines) = (weiquan_testkit::services::pg_url(), key.clone(), lines.clone());
        let name = format!("{}-early", cluster.name);
        tokio::task::spawn_blocking(move || {
            let early = Logs::at(&pg, &name).and_then(|l| l.signed_with(&key)).expect("logs");
            let mut log = early
                .partition(1, 0, weiquan_app::LeafIndex::new(), None)
                .expect("opens");
            for line in lines.iter().filter(|l| l.contains("\"u1\"")) {
                let (ev, extras) = weiquan_events::parse_event_with_extras(line).expect("parses");
                log.event(line, (&ev, &extras)).expect("logged");
            }
            log.flush().expect("written");
            drop(log);
            let why = early.erase("u1").expect_err("no top log yet").to_string();
            assert!(why.contains("does not exist"), "{why}");
            let top = early.top(2).expect("the top log");
            drop(top);
            let why = early.erase("u1").expect_err("no top entry yet").to_string();
            assert!(why.contains("erase again after its first entry"), "{why}");
            let mut top = early.top(2).expect("the top log");
            top.record().expect("recorded");
            drop(top);
            assert_eq!(early.erase("u1").expect("erased"), naming_u1);
            let served = weiquan_cluster::logs::LogReaders::new(early.clone());
            assert!(served.checkpoint(Which::Partition(1)).expect("served").is_some());
            let p0 = format!("wq_{}_p0", name.replace('-', "_"));
            let store = weiquan_store::PgStore::connect(&pg, &p0).expect("partition 0's log");
            let signer = weiquan_ledger::load_signer(&key).expect("the key");
            let mut old =
                weiquan_ledger::Ledger::open(store, signer, &early.origin(Which::Partition(0))).expect("opens");
            let leaf = weiquan_ledger::event_leaf(&lines[8]).expect("a format-1 leaf");
            old.append(vec![leaf]).expect("appended");
            drop(old);
            let served = weiquan_cluster::logs::LogReaders::new(early);
            let refused = served.tile(
                Which::Partition(0),
                weiquan_ledger::parse_tile_path("tile/entries/000.p/1").expect("a path"),
            );
            assert!(
                matches!(&refused, Err(e) if matches!(e.problem, LogProblem::Unsalted)),
                "{refused:?}"
            );
            assert!(served.checkpoint(Which::Top).expect("the top log is served").is_some());
        })
        .await
        .expect("joins");
    });
}
