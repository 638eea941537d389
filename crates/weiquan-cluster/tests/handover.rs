//! Handing partitions over. A partition whose snapshot cannot be read
//! holds up nothing else. Its chunks never come when a read races the write
//! that replaces them, or reads a replica that lags (seen after SIGKILLs in
//! a three-server cluster: each new owner waited 30 s for the read, and the
//! worker that handed it over waited with it, so its other leases ran out
//! and passed on, round after round). Here the stall is made on purpose, by
//! purging a snapshot's chunks. And a worker shutting down keeps its leases
//! until its partitions are snapshotted. Against the NATS server at
//! 127.0.0.1:4222.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::sync::oneshot;
use weiquan_cluster::worker;
use weiquan_engine::Rulebook;

#[test]
fn a_stalled_snapshot_read_holds_up_neither_other_leases_nor_the_handover() {
    if !weiquan_testkit::services::nats_available() {
        return;
    }
    common::runtime().block_on(async {
        let cluster = common::fresh_cluster("stall", 2).await;
        let js = async_nats::jetstream::new(cluster.client.clone());
        let bucket = cluster.bucket("snapshots");
        let store = js.get_object_store(&bucket).await.expect("the snapshots bucket");
        let info = store
            .put("p1", &mut &b"a snapshot whose chunks go missing"[..])
            .await
            .expect("stored");
        let stream = js.get_stream(format!("OBJ_{bucket}")).await.expect("its stream");
        stream
            .purge()
            .filter(format!("$O.{bucket}.C.{}", info.nuid))
            .await
            .expect("its chunks purged");
        let mut object = store.get("p1").await.expect("its description is still there");
        let mut bytes = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(1), object.read_to_end(&mut bytes)).await;
        assert!(
            read.is_err(),
            "reading partition 1's snapshot waits for chunks that never come"
        );

        // As an earlier owner of partition 1 left it: applied up to event 7.
        let progress = js
            .get_key_value(cluster.bucket("progress"))
            .await
            .expect("the progress bucket");
        progress
            .put(worker::progress_key(1), "7".into())
            .await
            .expect("progress written");

        let rules = Arc::new(Rulebook::builtin());
        let start = |name: &str| {
            let (stop, stopped) = oneshot::channel::<()>();
            let cfg = worker::WorkerConfig {
                name: name.into(),
                snapshot_every: 1000,
                lease: Duration::from_millis(1000),
                logs: None,
                top_every: Duration::from_secs(1),
            };
            let run = worker::run(cluster.clone(), rules.clone(), cfg, async move {
                let _ = stopped.await;
            });
            (stop, tokio::spawn(run))
        };
        let owners = || async { cluster.owners().await.expect("the leases read") };

        // Alone, `a` takes both partitions; partition 1's restore stalls.
        let a = start("a");
        let started = Instant::now();
        while owners().await != [Some("a".to_owned()), Some("a".to_owned())] {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "a takes both: {:?}",
                owners().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        // With `b` up, `a` is over its share and hands partition 1 over (its
        // highest). Watched for five leases: partition 0 stays with `a`
        // throughout, and partition 1 passes to `b` long before the stalled
        // read would give up (30 s). Nobody knows how far partition 1 is
        // applied until its snapshot is read: its progress stays as it was.
        let b = start("b");
        let watched = Instant::now();
        let mut handed = None;
        while watched.elapsed() < Duration::from_secs(5) {
            let now = owners().await;
            assert_eq!(
                now[0].as_deref(),
                Some("a"),
                "partition 0 stays with a while partition 1's read stalls: owners {now:?} after {:?}",
                watched.elapsed()
            );
            assert_eq!(
                cluster.progress().await.expect("progress")[1],
                7,
                "partition 1's progress is not set back while it is restored"
            );
            if handed.is_none() && now[1].as_deref() == Some("b") {
                handed = Some(watched.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            handed.is_some(),
            "partition 1 passes to b within 5 s although its snapshot read still stalls: owners {:?}",
            owners().await
        );

        // Both stop without waiting for the read (b's restore of partition 1 stalls too).
        for (stop, run) in [a, b] {
            let _ = stop.send(());
            tokio::time::timeout(Duration::from_secs(10), run)
                .await
                .expect("a worker stops without waiting for a stalled restore")
                .expect("the worker's task")
                .expect("the worker ran");
        }
    });
}

/// A worker shutting down hands its partitions over (each snapshotted) with
/// their leases still renewed: a lease that ran out meanwhile would let
/// another worker take a partition that is still being written. The lease
/// is watched, against the clock, until the worker has stopped.
#[test]
fn a_worker_shutting_down_keeps_its_leases_until_it_has_handed_over() {
    if !weiquan_testkit::services::nats_available() {
        return;
    }
    let sim = weiquan_sim::simulate(&weiquan_sim::Config {
        merchants: 60,
        consumers: 4000,
        days: 30,
        seed: 19,
        violation_rate: 0.4,
        profile: weiquan_sim::Profile::Double11,
        orders_per_day: 2.0,
    });
    common::runtime().block_on(async {
        let cluster = common::fresh_cluster("stopping", 1).await;
        let mut door = weiquan_cluster::door::FrontDoor::new(cluster.clone())
            .await
            .expect("a door");
        for line in &sim.lines {
            let ev = weiquan_events::parse_event(line).expect("simulated events parse");
            door.send(&ev, line).await.expect("routed");
        }
        door.advance().await.expect("routed");
        let sent = door.sent().to_vec();

        // A short lease, and a state snapshotted only when handed over: the
        // snapshot of the whole partition takes a few leases (about 300 ms).
        let lease = Duration::from_millis(200);
        let (stop, stopped) = oneshot::channel::<()>();
        let cfg = worker::WorkerConfig {
            name: "a".into(),
            snapshot_every: u64::MAX,
            lease,
            logs: None,
            top_every: Duration::from_secs(1),
        };
        let run = tokio::spawn(worker::run(
            cluster.clone(),
            Arc::new(Rulebook::builtin()),
            cfg,
            async move {
                let _ = stopped.await;
            },
        ));
        let started = Instant::now();
        while cluster.progress().await.expect("progress") != sent {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the worker applies what was sent"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        let js = async_nats::jetstream::new(cluster.client.clone());
        let leases = js
            .get_key_value(cluster.bucket("leases"))
            .await
            .expect("the leases bucket");
        let _ = stop.send(());
        let stopping = Instant::now();
        // Each value the lease had while held, and whether the heartbeat
        // was seen gone while it was.
        let mut untils = std::collections::BTreeSet::new();
        let mut gone_first = false;
        while !run.is_finished() {
            let Some(lease) = held(&leases, &worker::lease_key(0)).await else {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            };
            assert!(
                !lease.expired(worker::now_ms()),
                "the lease ran out {:?} into the shutdown while the worker still held it",
                stopping.elapsed()
            );
            untils.insert(lease.until);
            gone_first |= held(&leases, &worker::heartbeat_key("a")).await.is_none();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        run.await.expect("the worker's task").expect("the worker ran");
        assert!(
            untils.len() >= 2,
            "the lease is renewed while the worker hands over: {} value(s) in {:?}",
            untils.len(),
            stopping.elapsed()
        );
        assert!(
            gone_first,
            "the heartbeat goes as the shutdown begins, so that the others take what is handed over"
        );
        assert_eq!(cluster.progress().await.expect("progress"), sent, "progress as applied");
        let owners = cluster.owners().await.expect("owners");
        assert_eq!(owners, [None], "the lease given back");
    });
}

/// The lease (or heartbeat) under `key`, if it is there.
async fn held(leases: &async_nats::jetstream::kv::Store, key: &str) -> Option<worker::Lease> {
    let entry = leases.entry(key).await.expect("the leases bucket reads")?;
    (entry.operation == async_nats::jetstream::kv::Operation::Put)
        .then(|| serde_json::from_slice(&entry.value).expect("a lease"))
}
