//! A front door that stops (here: dropped with batches unsent, as a crash
//! would leave them: some partitions hold events others lack) is taken over
//! by a new one given the same input, which sends each partition only what
//! it lacks: the findings equal one engine's over the whole input, and
//! another input is refused. Against the NATS server at 127.0.0.1:4222.

mod common;

use std::sync::Arc;
use std::time::Duration;
use weiquan_cluster::{door::FrontDoor, worker, ClusterError};
use weiquan_engine::Rulebook;
use weiquan_partition::Partitioned;

#[test]
fn a_resumed_door_goes_on_exactly_where_the_stream_ends() {
    if !weiquan_testkit::services::nats_available() {
        return;
    }
    let sim = weiquan_sim::simulate(&weiquan_sim::Config {
        merchants: 12,
        consumers: 300,
        days: 10,
        seed: 5,
        violation_rate: 0.5,
        profile: weiquan_sim::Profile::Double11,
        orders_per_day: 2.0,
    });
    let lines = sim.lines;
    let rules = Arc::new(Rulebook::builtin());
    // One engine's findings (partitions in one process equal it: tests/exact.rs).
    let mut one = Partitioned::new(rules.clone(), 3);
    let mut expected = Vec::new();
    let mut clock = None;
    for line in &lines {
        let ev = weiquan_events::parse_event(line).expect("simulated events parse");
        clock = clock.max(Some(ev.at));
        expected.extend(one.apply(line).expect("the line parses"));
    }
    expected.extend(one.advance(clock.expect("events")));
    let mut expected: Vec<String> = expected
        .iter()
        .map(|f| serde_json::to_string(f).expect("JSON"))
        .collect();
    expected.sort();
    assert!(expected.len() > 10, "the stream gives findings: {}", expected.len());

    common::runtime().block_on(async {
        let cluster = common::fresh_cluster("resume", 3).await;
        let (half, more) = (lines.len() / 2, lines.len() * 6 / 10);
        {
            let mut first = FrontDoor::new(cluster.clone()).await.expect("an empty stream");
            for line in &lines[..half] {
                let ev = weiquan_events::parse_event(line).expect("parses");
                first.send(&ev, line).await.expect("routed");
            }
            first.flush().await.expect("acknowledged");
            // Routed but never flushed: lost with the door, never acknowledged.
            for line in &lines[half..more] {
                let ev = weiquan_events::parse_event(line).expect("parses");
                first.send(&ev, line).await.expect("routed");
            }
        }
        assert!(
            matches!(FrontDoor::new(cluster.clone()).await, Err(ClusterError::NotEmpty(..))),
            "a new door is still refused"
        );
        // Another input is refused at the first event a partition holds.
        let mut wrong = FrontDoor::resume(cluster.clone()).await.expect("resumes");
        let mut refused = None;
        for line in lines.iter().rev() {
            let ev = weiquan_events::parse_event(line).expect("parses");
            if let Err(e) = wrong.send(&ev, line).await {
                refused = Some(e);
                break;
            }
        }
        assert!(
            matches!(refused, Some(ClusterError::Unresumable { .. })),
            "the input reversed is not the stream's: {refused:?}"
        );
        drop(wrong);
        // The same input again, from its start.
        let mut second = FrontDoor::resume(cluster.clone()).await.expect("resumes");
        for line in &lines {
            let ev = weiquan_events::parse_event(line).expect("parses");
            second.send(&ev, line).await.expect("routed");
        }
        second.advance().await.expect("acknowledged");
        let sent = second.sent().to_vec();

        let cfg = worker::WorkerConfig {
            name: "w".into(),
            snapshot_every: 500,
            lease: Duration::from_millis(800),
            logs: None,
            top_every: Duration::from_secs(1),
        };
        let watcher = cluster.clone();
        let target = sent.clone();
        let stop = async move {
            let started = std::time::Instant::now();
            while watcher.progress().await.unwrap_or_default() != target && started.elapsed() < Duration::from_secs(60)
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        worker::run(cluster.clone(), rules, cfg, stop)
            .await
            .expect("the worker runs");
        assert_eq!(cluster.progress().await.expect("progress"), sent, "every event applied");
        let (found, _) = weiquan_cluster::read_findings(&cluster).await.expect("findings");
        let mut found: Vec<String> = found
            .iter()
            .map(|f| serde_json::to_string(&f.finding).expect("JSON"))
            .collect();
        found.sort();
        assert_eq!(found, expected, "the findings of one engine over the whole input");
    });
}
