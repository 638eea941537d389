//! A front door that stops (here: dropped with batches unsent, as a crash
//! would leave them: some partitions hold events others lack) is taken over
//! by a new one given the same input, which sends each partition only what
//! it lacks: the findings equal one engine's over the whole input, and
//! another input is refused. A door resumed over its own snapshot starts
//! there. Against the NATS server at 127.0.0.1:4222.

mod common;

use std::sync::Arc;
use std::time::Duration;
use weiquan_cluster::door::{FrontDoor, Position, Resumed, Shard};
use weiquan_cluster::{worker, Cluster, ClusterError};
use weiquan_engine::Rulebook;
use weiquan_partition::Partitioned;

/// A simulated platform's lines, and one engine's findings over them as
/// sorted JSON (partitions in one process equal one engine: tests/exact.rs).
fn platform(rules: &Arc<Rulebook>) -> (Vec<String>, Vec<String>) {
    let sim = weiquan_sim::simulate(&weiquan_sim::Config {
        merchants: 12,
        consumers: 300,
        days: 10,
        seed: 5,
        violation_rate: 0.5,
        profile: weiquan_sim::Profile::Double11,
        orders_per_day: 2.0,
    });
    let expected = one_engine(rules, &sim.lines);
    assert!(expected.len() > 10, "the stream gives findings: {}", expected.len());
    (sim.lines, expected)
}

/// One engine's findings over `lines`, as sorted JSON.
fn one_engine(rules: &Arc<Rulebook>, lines: &[String]) -> Vec<String> {
    let mut one = Partitioned::new(rules.clone(), 3);
    let mut expected = Vec::new();
    let mut clock = None;
    for line in lines {
        let ev = weiquan_events::parse_event(line).expect("the events parse");
        clock = clock.max(Some(ev.at));
        expected.extend(one.apply(line).expect("the line parses"));
    }
    expected.extend(one.advance(clock.expect("events")));
    let mut expected: Vec<String> = expected
        .iter()
        .map(|f| serde_json::to_string(f).expect("JSON"))
        .collect();
    expected.sort();
    expected
}

/// Routes `lines` with `door`.
async fn route(door: &mut FrontDoor, lines: &[String]) {
    for line in lines {
        let ev = weiquan_events::parse_event(line).expect("parses");
        door.send(&ev, line).await.expect("routed");
    }
}

/// Runs a worker until every partition has applied what `door` sent, and
/// checks that the cluster's findings are `expected`.
async fn work_and_check(cluster: &Cluster, rules: Arc<Rulebook>, door: &FrontDoor, expected: &[String]) {
    let sent = door.sent().to_vec();
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
        while watcher.progress().await.unwrap_or_default() != target && started.elapsed() < Duration::from_secs(60) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    worker::run(cluster.clone(), rules, cfg, stop)
        .await
        .expect("the worker runs");
    assert_eq!(cluster.progress().await.expect("progress"), sent, "every event applied");
    let (found, _) = weiquan_cluster::read_findings(cluster).await.expect("findings");
    let mut found: Vec<String> = found
        .iter()
        .map(|f| serde_json::to_string(&f.finding).expect("JSON"))
        .collect();
    found.sort();
    assert_eq!(found, expected, "the findings of one engine over the whole input");
}

#[test]
fn a_resumed_door_goes_on_exactly_where_the_stream_ends() {
    if !weiquan_testkit::services::nats_available() {
        return;
    }
    let rules = Arc::new(Rulebook::builtin());
    let (lines, expected) = platform(&rules);
    common::runtime().block_on(async {
        let cluster = common::fresh_cluster("resume", 3).await;
        let (half, more) = (lines.len() / 2, lines.len() * 6 / 10);
        {
            let mut first = FrontDoor::new(cluster.clone()).await.expect("an empty stream");
            route(&mut first, &lines[..half]).await;
            first.flush().await.expect("acknowledged");
            // Routed but never flushed: lost with the door, never acknowledged.
            route(&mut first, &lines[half..more]).await;
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
        assert_eq!(second.resumed(), None, "no snapshot: from the start");
        route(&mut second, &lines).await;
        second.advance().await.expect("acknowledged");
        work_and_check(&cluster, rules, &second, &expected).await;
    });
}

/// A door saves its state a third of the way in, routes on past half (the
/// last part never acknowledged), and stops. A door resumed over the
/// snapshot starts from it: given only the input after the snapshot's
/// place, it completes every partition, and the findings are one engine's.
/// The same over the hand-over, saved before the tie: the resumed door must
/// know where the pre-sale lives to move the merchants (a door resumed with
/// an empty routing state over it reports other findings: tried). A
/// damaged snapshot is passed over: the input is then routed again from its
/// start.
#[test]
fn a_door_resumed_from_its_snapshot_goes_on_from_there() {
    if !weiquan_testkit::services::nats_available() {
        return;
    }
    let rules = Arc::new(Rulebook::builtin());
    let (lines, expected) = platform(&rules);
    let handed = weiquan_testkit::streams::handed_over(3);
    let handed_expected = one_engine(&rules, &handed);
    common::runtime().block_on(async {
        let n = lines.len();
        let cluster = common::fresh_cluster("resnap", 3).await;
        resume_from_snapshot(&cluster, &rules, &lines, &expected, (n / 3, n / 2, n * 6 / 10)).await;
        let handed_cluster = common::fresh_cluster("resnap", 3).await;
        resume_from_snapshot(&handed_cluster, &rules, &handed, &handed_expected, (5, 6, 7)).await;

        // `resume` alone never uses a snapshot: its caller gives the input from the start.
        let plain = FrontDoor::resume(cluster.clone()).await.expect("resumes");
        assert_eq!(plain.resumed(), None, "resume is from the start");
        drop(plain);
        // A snapshot over a purged stream: the partitions start again.
        let purged = handed_cluster.events().await.expect("the stream");
        purged.purge().await.expect("purged");
        let after_purge = FrontDoor::resume_shard(handed_cluster.clone(), Shard::WHOLE, true)
            .await
            .expect("resumes");
        assert_eq!(
            after_purge.resumed(),
            None,
            "a snapshot over a purged stream is not used"
        );
        // A damaged snapshot: the resumed door starts from the beginning.
        let snapshots = (cluster.js.get_object_store(cluster.bucket("snapshots")).await).expect("the snapshots bucket");
        snapshots
            .put("door-0-of-1", &mut &b"not a snapshot of 32 bytes or more........"[..])
            .await
            .expect("put");
        let third_door = FrontDoor::resume_shard(cluster.clone(), Shard::WHOLE, true)
            .await
            .expect("resumes");
        assert_eq!(third_door.resumed(), None, "a damaged snapshot is not used");
    });
}

/// A door resumed without a snapshot routes its input again from the
/// start, past what its partitions hold: it saves nothing until it has
/// passed all of it (a snapshot taken there could not say what the
/// partitions hold beyond it, and a door resumed from it would send those
/// events twice). Once past, it saves, and a door resumed from that
/// snapshot finishes with one engine's findings.
#[test]
fn a_door_saves_nothing_while_it_passes_what_its_partitions_hold() {
    if !weiquan_testkit::services::nats_available() {
        return;
    }
    let rules = Arc::new(Rulebook::builtin());
    let (lines, expected) = platform(&rules);
    let id = |i: usize| weiquan_events::parse_event(&lines[i]).expect("parses").id.into_owned();
    let at = |line: usize| Position {
        unit: 0,
        line: line as u64,
    };
    common::runtime().block_on(async {
        let cluster = common::fresh_cluster("catchup", 3).await;
        let n = lines.len();
        let (third, half, past, more) = (n / 3, n / 2, n / 2 + 10, n * 7 / 10);
        {
            let mut first = FrontDoor::new(cluster.clone()).await.expect("an empty stream");
            route(&mut first, &lines[..half]).await;
            first.flush().await.expect("acknowledged");
        }
        {
            let mut second = FrontDoor::resume(cluster.clone()).await.expect("resumes");
            route(&mut second, &lines[..third]).await;
            let saved = second.save(at(third), Some((at(third), id(third - 1)))).await;
            assert!(!saved.expect("no error"), "not saved while catching up");
            route(&mut second, &lines[third..past]).await;
            let saved = second.save(at(past), Some((at(past), id(past - 1)))).await;
            assert!(saved.expect("no error"), "saved once past");
            route(&mut second, &lines[past..more]).await;
        }
        let mut third_door = FrontDoor::resume_shard(cluster.clone(), Shard::WHOLE, true)
            .await
            .expect("resumes");
        assert_eq!(third_door.resumed().map(|r| r.at), Some(at(past)), "from the snapshot");
        route(&mut third_door, &lines[past..]).await;
        third_door.advance().await.expect("acknowledged");
        work_and_check(&cluster, rules, &third_door, &expected).await;
    });
}

/// Routes `lines` into `cluster` with a door that saves its state after
/// line `saved`, flushes after line `flushed` and stops (crashes) after
/// line `stopped`; then resumes a door from the snapshot, routes the lines
/// after `saved`, and checks one engine's findings, `expected`.
async fn resume_from_snapshot(
    cluster: &Cluster,
    rules: &Arc<Rulebook>,
    lines: &[String],
    expected: &[String],
    (saved, flushed, stopped): (usize, usize, usize),
) {
    let at = Position {
        unit: 0,
        line: saved as u64,
    };
    let id = weiquan_events::parse_event(&lines[saved - 1])
        .expect("parses")
        .id
        .into_owned();
    let last = Some((at, id));
    {
        let mut first = FrontDoor::new(cluster.clone()).await.expect("an empty stream");
        route(&mut first, &lines[..saved]).await;
        first.save(at, last.clone()).await.expect("saved");
        route(&mut first, &lines[saved..flushed]).await;
        first.flush().await.expect("acknowledged");
        route(&mut first, &lines[flushed..stopped]).await;
    }
    let mut second = FrontDoor::resume_shard(cluster.clone(), Shard::WHOLE, true)
        .await
        .expect("resumes");
    let resumed = Resumed {
        at,
        routed: saved as u64,
        last,
    };
    assert_eq!(second.resumed(), Some(&resumed), "from the snapshot");
    route(&mut second, &lines[saved..]).await;
    second.advance().await.expect("acknowledged");
    work_and_check(cluster, rules.clone(), &second, expected).await;
}
