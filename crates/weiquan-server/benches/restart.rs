//! Restart time of a real `weiquan serve` (SQLite) over a large ledger: the
//! full replay, against restoring the newest state snapshot and replaying only
//! the leaves after it, in the same run; and the server's memory (RSS) as the
//! ledger grows. Run with `scripts/bench-restart`; prints Markdown.
//!
//! `WEIQUAN_BENCH_RESTART_EVENTS` sets the ledger's size in events (default
//! 10,000,000); the last half snapshot interval of them arrive after the
//! snapshot (the average tail a restart replays). `WEIQUAN_BENCH_RESTART_DAYS`
//! sets how long the simulated platform runs (default 30): the events are
//! the same in number, spread over fewer merchants. Over two years (720)
//! retention's horizon (180 days) is passed, and memory follows the subjects
//! still open, not the ledger.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod support;
use support::{key, post, rss_mib, start, Server};

/// Events per request while filling.
const BATCH: usize = 2000;
/// Leaves between snapshots: the server's default (smaller ledgers, a fifth of theirs).
const EVERY: u64 = 1_000_000;

/// Posts `lines` with 4 clients; calls `each_million` with the events sent so far at every million.
async fn fill(base: &str, key: &str, lines: &[String], mut each_million: impl FnMut(usize)) {
    let client = reqwest::Client::new();
    let bodies: Arc<Vec<String>> = Arc::new(lines.chunks(BATCH).map(|c| c.join("\n")).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (client, bodies, next, done, base, key) = (
            client.clone(),
            bodies.clone(),
            next.clone(),
            done.clone(),
            base.to_owned(),
            key.to_owned(),
        );
        tasks.push(tokio::spawn(async move {
            while let Some(b) = bodies.get(next.fetch_add(1, Ordering::Relaxed)) {
                post(&client, &base, &key, b.clone()).await;
                done.fetch_add(b.lines().count(), Ordering::Relaxed);
            }
        }));
    }
    let mut reported = 0;
    while tasks.iter().any(|t| !t.is_finished()) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let sent = done.load(Ordering::Relaxed);
        if sent / 1_000_000 > reported {
            reported = sent / 1_000_000;
            each_million(sent);
        }
    }
    for t in tasks {
        t.await.expect("poster");
    }
}

/// Starts a server and waits for `/readyz`: the server and the seconds from spawn to ready.
async fn restart(args: &[&str]) -> (Server, f64) {
    let t = Instant::now();
    let server = start(args);
    let client = reqwest::Client::new();
    loop {
        let ready = client.get(format!("{}/readyz", server.1)).send().await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            return (server, t.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A gauge of `/metrics`.
async fn gauge(server: &Server, name: &str) -> u64 {
    let text = reqwest::get(format!("{}/metrics", server.1))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    weiquan_testkit::gauge(&text, name).unwrap_or(0)
}

fn main() {
    let events: usize = weiquan_testkit::setting("WEIQUAN_BENCH_RESTART_EVENTS", 10_000_000);
    let days: u32 = weiquan_testkit::setting("WEIQUAN_BENCH_RESTART_DAYS", 30);
    // About 71 events per merchant and day at the simulator's defaults.
    let merchants = (events / (71 * days.max(1) as usize)).max(10) as u32;
    let sim = weiquan_sim::simulate(&weiquan_sim::Config {
        merchants,
        consumers: merchants * 100,
        days,
        seed: 5,
        ..Default::default()
    });
    let lines = sim.lines;
    let every = EVERY.min(lines.len() as u64 / 5);
    let tail = (every / 2) as usize;
    let (head, rest) = lines.split_at(lines.len() - tail);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let d = data.to_str().expect("utf-8").to_owned();
    let every = every.to_string();
    let off: Vec<&str> = vec!["--data", &d, "--snapshot-every", "0", "--max-future-hours", "0"];
    let on: Vec<&str> = vec!["--data", &d, "--snapshot-every", &every, "--max-future-hours", "0"];
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "simulated: {} events ({merchants} merchants, {days} days); {} before the snapshot, {tail} after",
        lines.len(),
        head.len()
    );
    println!();
    rt.block_on(async {
        let (server, _) = restart(&off).await;
        let api = key(&["--data", &d]);
        println!("| events in the ledger | server RSS |");
        println!("|---:|---:|");
        let t = Instant::now();
        fill(&server.1, &api, head, |sent| {
            println!("| {sent} | {:.0} MiB |", rss_mib(&server));
        })
        .await;
        let fill_secs = t.elapsed().as_secs_f64();
        let leaves = gauge(&server, "weiquan_ledger_leaves").await;
        println!("| {} (all) | {:.0} MiB |", head.len(), rss_mib(&server));
        println!();
        println!(
            "filled {leaves} leaves in {fill_secs:.1} s ({:.0} events/s)",
            head.len() as f64 / fill_secs
        );
        drop(server);

        println!();
        println!("| start | ledger leaves | replayed leaves | seconds to ready | RSS when ready |");
        println!("|---|---:|---:|---:|---:|");
        let row = |what: &str, server: &Server, leaves: u64, replayed: u64, secs: f64| {
            println!(
                "| {what} | {leaves} | {replayed} | {secs:.2} | {:.0} MiB |",
                rss_mib(server)
            );
        };
        let (server, secs) = restart(&off).await;
        let replayed = gauge(&server, "weiquan_replayed_leaves").await;
        row("full replay, no snapshots", &server, leaves, replayed, secs);
        drop(server);

        let (server, secs) = restart(&on).await;
        let replayed = gauge(&server, "weiquan_replayed_leaves").await;
        row(
            "full replay, then the first snapshot written",
            &server,
            leaves,
            replayed,
            secs,
        );
        fill(&server.1, &api, rest, |_| {}).await;
        let leaves = gauge(&server, "weiquan_ledger_leaves").await;
        drop(server);

        let (server, secs) = restart(&off).await;
        let full = secs;
        let replayed = gauge(&server, "weiquan_replayed_leaves").await;
        row("full replay, no snapshots", &server, leaves, replayed, secs);
        drop(server);

        let (server, secs) = restart(&on).await;
        let replayed = gauge(&server, "weiquan_replayed_leaves").await;
        row("snapshot restored, the tail replayed", &server, leaves, replayed, secs);
        drop(server);
        let size: u64 = std::fs::read_dir(data.join("snapshots"))
            .expect("snapshots")
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len())
            .max()
            .unwrap_or(0);
        println!();
        println!(
            "snapshot file: {:.0} MiB; restart {:.1}× faster than the full replay of the same ledger",
            size as f64 / (1 << 20) as f64,
            full / secs
        );
    });
}
