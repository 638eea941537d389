//! Throughput of `weiquan cluster` on a three-node NATS JetStream cluster on
//! this machine (every stream and bucket R3, six partitions): the front door
//! routing a simulated platform, then 1, 2 and 3 worker processes applying
//! it from the stream, against one engine (`weiquan audit`) in the same run;
//! then one worker keeping the partition logs and the top log, in
//! PostgreSQL and in a folder, against one without logs again.
//! Prints Markdown. `WEIQUAN_BENCH_CLUSTER_MERCHANTS` scales the stream
//! (default 600 merchants, about 680,000 events).

mod support;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use weiquan_cluster::Cluster;
use weiquan_testkit::nats::NatsCluster;
use weiquan_testkit::process::{log_file, Proc};

const PARTITIONS: u32 = 6;

fn main() {
    let merchants = weiquan_testkit::setting("WEIQUAN_BENCH_CLUSTER_MERCHANTS", 600);
    let dir = weiquan_testkit::root().join("bench-out/cluster");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench-out/cluster");
    let (file, events) = support::platform(&dir, merchants);
    let bin = env!("CARGO_BIN_EXE_weiquan");

    let started = Instant::now();
    let audit = Command::new(bin)
        .args(["audit", &file])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("audit runs");
    assert!(audit.success());
    let one_engine = started.elapsed();

    let nats = NatsCluster::start(&dir);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!("{events} events, {PARTITIONS} partitions, R3 on 3 NATS servers (2.9), all on this machine\n");
    println!("| contender | seconds | events/s | events/s per worker | ÷ one engine |");
    println!("|---|---:|---:|---:|---:|");
    let rate = |d: Duration| events as f64 / d.as_secs_f64();
    println!(
        "| one engine (`weiquan audit`) | {:.2} | {:.0} | | 1.00 |",
        one_engine.as_secs_f64(),
        rate(one_engine)
    );
    // Where workers keep logs: none, PostgreSQL (a schema per log) or a
    // folder (a SQLite file per log). Without logs again last, to bracket
    // the runs with logs against the order's drift.
    let pg = weiquan_testkit::services::pg_url();
    let folder = dir.join("logs");
    let folder = folder.to_str().expect("UTF-8 path").to_owned();
    let key = dir.join("cluster.key");
    let key = key.to_str().expect("UTF-8 path").to_owned();
    let made = Command::new(bin)
        .args(["keygen", "--out", &key, "--name", "bench-cluster"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("keygen runs");
    assert!(made.success());
    let runs: [(usize, Option<(&str, &str)>); 6] = [
        (1, None),
        (2, None),
        (3, None),
        (1, Some(("logs in PostgreSQL", &pg))),
        (1, Some(("logs in a folder (SQLite)", &folder))),
        (1, None),
    ];
    for (run, (workers, logs)) in runs.into_iter().enumerate() {
        // A new name each run: logs left by an earlier run would be compared, not written.
        let name = weiquan_testkit::unique(&format!("bench-{run}"));
        let started = Instant::now();
        let route = Command::new(bin)
            .args(["cluster", "--nats", &nats.urls, "--cluster", &name, "route", &file])
            .args(["--partitions", &PARTITIONS.to_string(), "--replicas", "3"])
            .stdout(Stdio::null())
            .stderr(log_file(&dir.join(format!("{name}-route.log"))))
            .status()
            .expect("route runs");
        assert!(route.success(), "route failed: see {}", dir.display());
        let door = started.elapsed();
        println!(
            "| front door into the stream (before {workers} worker{}) | {:.2} | {:.0} | | {:.2} |",
            if workers == 1 { "" } else { "s" },
            door.as_secs_f64(),
            rate(door),
            rate(door) / rate(one_engine)
        );
        let cluster = runtime.block_on(async {
            let client = weiquan_cluster::connect(&nats.urls).await.expect("connects");
            Cluster::open(client, &name).await.expect("set up by route")
        });
        // Every partition's last index is what the workers must reach.
        let target: Vec<u64> = runtime.block_on(last_indexes(&cluster));
        let started = Instant::now();
        let procs: Vec<Proc> = (0..workers)
            .map(|i| {
                let mut command = Command::new(bin);
                command
                    .args(["cluster", "--nats", &nats.urls, "--cluster", &name, "work"])
                    .args(["--name", &format!("w{i}"), "--snapshot-every", "100000"]);
                if let Some((_, place)) = logs {
                    command.args(["--logs", place, "--log-key", &key]);
                }
                let child = command
                    .stdout(Stdio::null())
                    .stderr(log_file(&dir.join(format!("{name}-w{i}.log"))))
                    .spawn()
                    .expect("worker runs");
                Proc(child)
            })
            .collect();
        runtime.block_on(async {
            while cluster.progress().await.unwrap_or_default() != target {
                assert!(
                    started.elapsed() < Duration::from_secs(900),
                    "workers did not finish: see {}",
                    dir.display()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let took = started.elapsed();
        drop(procs);
        println!(
            "| {workers} worker{} from the stream{} | {:.2} | {:.0} | {:.0} | {:.2} |",
            if workers == 1 { "" } else { "s" },
            logs.map(|(what, _)| format!(", {what}")).unwrap_or_default(),
            took.as_secs_f64(),
            rate(took),
            rate(took) / workers as f64,
            rate(took) / rate(one_engine)
        );
    }
}

/// The index of each partition's last event in the stream.
async fn last_indexes(cluster: &Cluster) -> Vec<u64> {
    let events = cluster.events().await.expect("stream");
    let mut out = Vec::new();
    for p in 0..cluster.partitions {
        let last = events
            .get_last_raw_message_by_subject(&cluster.events_subject(p))
            .await
            .expect("a partition with messages");
        let batch = weiquan_cluster::Stamp::read_batch(&last.payload).expect("a front door's batch");
        out.push(batch.last().map_or(0, |(s, _)| s.index));
    }
    out
}
