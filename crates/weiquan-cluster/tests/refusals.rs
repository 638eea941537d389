//! What the cluster layer refuses, and how: another partition count, a
//! second front door, names that cannot name streams, and a message on a
//! partition subject that no front door wrote. Against the NATS server at
//! 127.0.0.1:4222, each test under a cluster name of its own.

use std::time::Duration;
use weiquan_cluster::{door::FrontDoor, worker, Cluster, ClusterError};

mod common;

use common::{runtime, URL};

/// A cluster name no earlier run used.
fn fresh(what: &str) -> String {
    weiquan_testkit::unique(&format!("t-{what}"))
}

/// A valid event of merchant `m`.
fn verified(m: u32) -> String {
    format!(
        r#"{{"v":1,"id":"e{m}","type":"merchant.verified","at":"2026-11-01T10:00:00+08:00","merchant":"m{m}","method":"licence_check","by":"platform"}}"#
    )
}

#[test]
fn a_cluster_keeps_its_partition_count_and_one_front_door() {
    if !weiquan_testkit::services::nats_available() {
        return;
    }
    runtime().block_on(async {
        let name = fresh("layout");
        let client = weiquan_cluster::connect(URL).await.expect("connects");
        let cluster = Cluster::set_up(client.clone(), &name, 3, 1).await.expect("set up");
        match Cluster::set_up(client.clone(), &name, 4, 1).await {
            Err(e @ ClusterError::Partitions { have: 3, want: 4, .. }) => {
                assert!(e.to_string().contains("use the same --partitions"), "{e}");
            }
            other => panic!(
                "another partition count must be refused: {:?}",
                other.map(|c| c.partitions)
            ),
        }
        assert_eq!(Cluster::open(client.clone(), &name).await.expect("opens").partitions, 3);

        let mut door = FrontDoor::new(cluster.clone()).await.expect("an empty stream");
        let line = verified(1);
        let ev = weiquan_events::parse_event(&line).expect("a valid event");
        door.send(&ev, &line).await.expect("routed");
        door.flush().await.expect("acknowledged");
        assert_eq!(door.acked().iter().sum::<u64>(), 1);
        let second = FrontDoor::new(cluster).await;
        assert!(
            matches!(second, Err(ClusterError::NotEmpty(..))),
            "a second door would restart the indexes"
        );

        let missing = Cluster::open(client, &fresh("never")).await;
        assert!(matches!(missing, Err(ClusterError::NotSetUp(_))));
    });
}

#[test]
fn names_that_cannot_name_streams_or_keys_are_refused() {
    if !weiquan_testkit::services::nats_available() {
        return;
    }
    runtime().block_on(async {
        let client = weiquan_cluster::connect(URL).await.expect("connects");
        let long = "x".repeat(33);
        for bad in ["", "Upper", "dots.in.it", "wild*", long.as_str()] {
            let r = Cluster::set_up(client.clone(), bad, 2, 1).await;
            assert!(matches!(r, Err(ClusterError::Name(_))), "`{bad}` must be refused");
        }
        let cluster = Cluster::set_up(client, &fresh("names"), 1, 1).await.expect("set up");
        let rules = std::sync::Arc::new(weiquan_engine::Rulebook::builtin());
        for bad in ["", "w/1", "w.1", "w 1"] {
            let cfg = worker::WorkerConfig {
                name: bad.into(),
                snapshot_every: 10,
                lease: Duration::from_secs(1),
                logs: None,
                top_every: Duration::from_secs(1),
            };
            let r = worker::run(cluster.clone(), rules.clone(), cfg, async {}).await;
            assert!(
                matches!(r, Err(ClusterError::WorkerName(_))),
                "worker `{bad}` must be refused"
            );
        }
    });
}

/// Someone with publish rights on a partition subject sends bytes that are
/// not a front door's batch: that partition stops there with an error
/// naming the message (every worker would meet it again: NATS permissions
/// must keep `<cluster>.p.>` to the front door), the worker does not panic,
/// and the other partition goes on.
#[test]
fn a_message_no_front_door_wrote_stops_only_its_partition() {
    if !weiquan_testkit::services::nats_available() {
        return;
    }
    let garbage: Vec<Box<dyn Fn(u64) -> Vec<u8>>> = vec![
        Box::new(|_| b"not a batch".to_vec()),
        Box::new(|_| b"{\"i\":1}\n{\"id\":".to_vec()),
        Box::new(|_| b"\xff\xfe".to_vec()),
    ];
    runtime().block_on(forged_stops_its_partition(None, garbage));
}

/// A rebuild marker no door wrote, on an unsealed cluster: one that moves a
/// merchant to a partition the cluster does not have stops its partition
/// (it would silence that merchant's findings everywhere).
#[test]
fn a_forged_rebuild_marker_stops_only_its_partition() {
    if !weiquan_testkit::services::nats_available() {
        return;
    }
    let marker = |next: u64| {
        let mut bytes = Vec::new();
        let stamp = weiquan_cluster::Stamp {
            index: next,
            event: 0,
            clock: None,
            all: false,
            copies: Vec::new(),
            advance: false,
            of: None,
            rebuild: Some(weiquan_cluster::Rebuild {
                before: 1_000_000,
                moves: vec![weiquan_partition::Move {
                    merchants: vec!["m0".into()],
                    from: 0,
                    to: 99,
                }],
                partial: false,
            }),
        };
        stamp.write("", &mut bytes);
        bytes
    };
    runtime().block_on(forged_stops_its_partition(None, vec![Box::new(marker)]));
}

/// With a secret, even a well-formed batch carrying the next indexes (which
/// would otherwise be applied, and the door's own batch then skipped as a
/// repeat) is refused when it lacks the seal, or carries one for another
/// subject.
#[test]
fn a_sealed_cluster_refuses_a_well_formed_batch_without_its_seal() {
    if !weiquan_testkit::services::nats_available() {
        return;
    }
    let well_formed = |next: u64| {
        let mut bytes = Vec::new();
        let stamp = weiquan_cluster::Stamp {
            index: next,
            event: next,
            clock: None,
            all: false,
            copies: Vec::new(),
            advance: false,
            of: None,
            rebuild: None,
        };
        stamp.write(&verified(999), &mut bytes);
        bytes
    };
    runtime().block_on(forged_stops_its_partition(
        Some(b"sixteen bytes or more"),
        vec![Box::new(well_formed)],
    ));
}

/// Routes events into two partitions, publishes `forged` messages (given the
/// next index of partition 0) on partition 0, routes more, and runs a worker:
/// partition 0 must stop at the forged message and partition 1 reach its end.
async fn forged_stops_its_partition(secret: Option<&[u8]>, forged: Vec<Box<dyn Fn(u64) -> Vec<u8>>>) {
    let name = fresh("forged");
    let client = weiquan_cluster::connect(URL).await.expect("connects");
    let mut cluster = Cluster::set_up(client.clone(), &name, 2, 1).await.expect("set up");
    if let Some(secret) = secret {
        cluster = cluster.sealed_with(secret);
    }
    let mut door = FrontDoor::new(cluster.clone()).await.expect("an empty stream");
    for m in 0..20 {
        let line = verified(m);
        let ev = weiquan_events::parse_event(&line).expect("valid");
        door.send(&ev, &line).await.expect("routed");
    }
    door.flush().await.expect("acknowledged");
    let sent = door.sent().to_vec();
    assert!(sent.iter().all(|&n| n > 0), "both partitions have events: {sent:?}");
    let js = async_nats::jetstream::new(client);
    for forge in &forged {
        js.publish(cluster.events_subject(0), forge(sent[0] + 1).into())
            .await
            .expect("published")
            .await
            .expect("stored");
    }
    if secret.is_some() {
        // A sealed batch of partition 1 moved onto partition 0 fails too.
        let mut moved = async_nats::HeaderMap::new();
        let batch = forged[0](sent[0] + 1);
        let seal = cluster
            .seal(&cluster.events_subject(1), &batch)
            .expect("a sealed cluster");
        moved.insert(weiquan_cluster::SEAL_HEADER, seal.as_str());
        js.publish_with_headers(cluster.events_subject(0), moved, batch.into())
            .await
            .expect("published")
            .await
            .expect("stored");
    }
    // The door goes on after the forged messages, in both partitions.
    for m in 20..40 {
        let line = verified(m);
        let ev = weiquan_events::parse_event(&line).expect("valid");
        door.send(&ev, &line).await.expect("routed");
    }
    door.flush().await.expect("acknowledged");
    let after = door.sent().to_vec();
    assert!(after[0] > sent[0] && after[1] > sent[1], "{sent:?} then {after:?}");
    let cfg = worker::WorkerConfig {
        name: "w".into(),
        snapshot_every: 1000,
        lease: Duration::from_millis(800),
        logs: None,
        top_every: Duration::from_secs(1),
    };
    let rules = std::sync::Arc::new(weiquan_engine::Rulebook::builtin());
    let watcher = cluster.clone();
    let (stuck, target) = (sent[0], after[1]);
    let stop = async move {
        let started = std::time::Instant::now();
        while watcher.progress().await.unwrap_or_default() != [stuck, target]
            && started.elapsed() < Duration::from_secs(30)
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // A few more rounds: partition 0 meets the forged message again.
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    worker::run(cluster.clone(), rules, cfg, stop)
        .await
        .expect("the worker itself goes on");
    let progress = cluster.progress().await.expect("progress");
    assert_eq!(
        progress,
        [sent[0], after[1]],
        "partition 0 stops at the forged message; partition 1 is applied to its end"
    );
}
