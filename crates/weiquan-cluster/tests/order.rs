//! A front door keeps several batches in flight, so a retried batch can land
//! in the stream after later ones. A worker applies them in index order all
//! the same: here the batches of an example case are published last first,
//! and the findings equal one engine's. Against the NATS server at
//! 127.0.0.1:4222.

mod common;

use std::sync::Arc;
use std::time::Duration;
use weiquan_cluster::{worker, Stamp};
use weiquan_engine::Rulebook;
use weiquan_partition::{Partitioned, Route, Router};

#[test]
fn batches_stored_out_of_order_are_applied_in_index_order() {
    if !weiquan_testkit::services::nats_available() {
        return;
    }
    let text = std::fs::read_to_string(weiquan_testkit::root().join("tests/cases/presale/events.ndjson"))
        .expect("the example case");
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let rules = Arc::new(Rulebook::builtin());

    // What one partition finds, in process.
    let mut one = Partitioned::new(rules.clone(), 1);
    let mut router = Router::new(1);
    let mut expected = Vec::new();
    let mut stamped = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let ev = weiquan_events::parse_event(line).expect("the case parses");
        expected.extend(one.apply(line).expect("the line parses"));
        let clock = router.clock();
        let route = router.route(&ev);
        stamped.push((
            Stamp {
                index: i as u64 + 1,
                event: i as u64 + 1,
                clock,
                all: route == Route::All,
                copies: router.take_copies(),
                advance: false,
                of: None,
                rebuild: None,
            },
            *line,
        ));
    }
    assert!(!expected.is_empty(), "the case gives findings");

    common::runtime().block_on(async {
        let cluster = common::fresh_cluster("order", 1).await;
        let js = async_nats::jetstream::new(cluster.client.clone());
        // Three batches, stored last first.
        let batches: Vec<&[(Stamp, &str)]> = stamped.chunks(stamped.len().div_ceil(3)).collect();
        assert_eq!(batches.len(), 3);
        for batch in batches.iter().rev() {
            let mut bytes = Vec::new();
            for (stamp, line) in batch.iter() {
                stamp.write(line, &mut bytes);
            }
            js.publish(cluster.events_subject(0), bytes.into())
                .await
                .expect("published")
                .await
                .expect("stored");
        }
        let cfg = worker::WorkerConfig {
            name: "w".into(),
            snapshot_every: 1,
            lease: Duration::from_millis(800),
            logs: None,
            top_every: Duration::from_secs(1),
        };
        let watcher = cluster.clone();
        let n = lines.len() as u64;
        let stop = async move {
            let started = std::time::Instant::now();
            while watcher.progress().await.unwrap_or_default() != [n] && started.elapsed() < Duration::from_secs(30) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        worker::run(cluster.clone(), rules, cfg, stop)
            .await
            .expect("the worker runs");
        assert_eq!(cluster.progress().await.expect("progress"), [n], "every event applied");
        let (found, _) = weiquan_cluster::read_findings(&cluster).await.expect("findings");
        let found: Vec<_> = found.into_iter().map(|f| f.finding).collect();
        assert_eq!(found, expected, "the same findings in the same order as one engine");
    });
}
