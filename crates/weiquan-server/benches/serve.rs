//! Sustained ingest into a real `weiquan serve` process over loopback, from
//! this separate process: the maximum durable events/s (closed loop), then
//! p50/p99 acknowledgement latency at fractions of it (open loop, fixed
//! request rate). SQLite and PostgreSQL. Run with `scripts/bench-serve`;
//! prints Markdown.
//!
//! Events come from `weiquan-sim`; each pass gets fresh ids so nothing is a duplicate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BATCH: usize = 500;

mod support;
use support::{key, post, start};

/// Bodies of `BATCH` events each, with ids made unique for pass `pass`.
fn bodies(lines: &[String], pass: usize) -> Vec<String> {
    lines
        .chunks(BATCH)
        .map(|c| {
            c.iter()
                .map(|l| l.replacen("\"id\":\"e", &format!("\"id\":\"p{pass}-e"), 1))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect()
}

/// Client counts of the closed-loop runs: `WEIQUAN_BENCH_CLIENTS`
/// (comma-separated), or 16 alone.
fn client_counts() -> Vec<usize> {
    let counts: Vec<usize> = std::env::var("WEIQUAN_BENCH_CLIENTS")
        .unwrap_or_default()
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .filter(|&c| c > 0)
        .collect();
    if counts.is_empty() {
        vec![16]
    } else {
        counts
    }
}

/// Closed loop: `conc` clients posting back to back for `secs`. Returns events/s.
async fn max_rate(base: &str, key: &str, bodies: Vec<String>, conc: usize, secs: u64) -> f64 {
    let client = reqwest::Client::new();
    let next = Arc::new(AtomicU64::new(0));
    let bodies = Arc::new(bodies);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (client, next, bodies, base, key) = (
            client.clone(),
            next.clone(),
            bodies.clone(),
            base.to_owned(),
            key.to_owned(),
        );
        tasks.push(tokio::spawn(async move {
            let mut sent = 0u64;
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(b) = bodies.get(i) else { break };
                post(&client, &base, &key, b.clone()).await;
                sent += 1;
            }
            sent
        }));
    }
    let mut requests = 0;
    for t in tasks {
        requests += t.await.expect("task");
    }
    (requests as usize * BATCH) as f64 / start.elapsed().as_secs_f64()
}

/// Requests in flight at most in the open loop. Every request here comes
/// from 127.0.0.1, and the server closes a connection over its cap per
/// source address (192, `listen.rs`) at once: near the maximum, the
/// unbounded loop opened more and the run stopped on "connection closed".
const MAX_IN_FLIGHT: usize = 128;

/// Open loop at `rate` events/s for `secs`: (achieved events/s, p50 ms, p99
/// ms). A request's latency runs from when it was due, so that time spent
/// waiting for one of the [`MAX_IN_FLIGHT`] slots counts.
async fn at_rate(base: &str, key: &str, bodies: Vec<String>, rate: f64, secs: u64) -> (f64, f64, f64) {
    let client = reqwest::Client::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let per_sec = rate / BATCH as f64;
    let interval = Duration::from_secs_f64(1.0 / per_sec);
    let n = ((per_sec * secs as f64) as usize).min(bodies.len());
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for (i, b) in bodies.into_iter().take(n).enumerate() {
        let due = start + interval * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let (client, base, key, slots) = (client.clone(), base.to_owned(), key.to_owned(), slots.clone());
        tasks.push(tokio::spawn(async move {
            let _slot = slots.acquire_owned().await.expect("the semaphore is never closed");
            post(&client, &base, &key, b).await;
            due.elapsed()
        }));
    }
    let mut lat: Vec<f64> = Vec::with_capacity(n);
    for t in tasks {
        lat.push(t.await.expect("task").as_secs_f64() * 1000.0);
    }
    let achieved = (n * BATCH) as f64 / start.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    (achieved, percentile(&lat, 0.50), percentile(&lat, 0.99))
}

/// Public log reads — the checkpoint, the first entries tile, the first hash
/// tile, in turn — one every 5 ms until `stop` is set: their latencies, in ms.
/// Public reads have their own database connection; they must not wait
/// behind ingest.
async fn log_reads(base: String, stop: Arc<std::sync::atomic::AtomicBool>) -> Vec<f64> {
    let client = reqwest::Client::new();
    let paths = ["/log/checkpoint", "/log/tile/entries/000", "/log/tile/0/000"];
    let mut lat = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    for i in 0.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        tick.tick().await;
        let t = Instant::now();
        let r = client
            .get(format!("{base}{}", paths[i % paths.len()]))
            .send()
            .await
            .expect("get");
        assert!(r.status().is_success(), "{}", r.status());
        r.bytes().await.expect("body");
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    lat
}

/// Percentile `p` (0..1) of sorted latencies.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0)
}

/// Log reads for `secs` on their own, or beside `during` until it finishes: (p50, p99) ms.
async fn log_read_latency(base: &str, during: Option<tokio::task::JoinHandle<(f64, f64, f64)>>) -> (f64, f64) {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reads = tokio::spawn(log_reads(base.to_owned(), stop.clone()));
    match during {
        Some(task) => {
            task.await.expect("ingest");
        }
        None => tokio::time::sleep(Duration::from_secs(2)).await,
    }
    stop.store(true, Ordering::Relaxed);
    let mut lat = reads.await.expect("reads");
    lat.sort_by(f64::total_cmp);
    (percentile(&lat, 0.5), percentile(&lat, 0.99))
}

/// Runs one statement on PostgreSQL (off the async threads); failures are printed, not fatal.
async fn sql(url: &str, statement: &'static str) -> i64 {
    let url = url.to_owned();
    let done = tokio::task::spawn_blocking(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls)?;
        let rows = c.simple_query(statement)?;
        Ok::<_, postgres::Error>(rows.iter().find_map(|m| match m {
            postgres::SimpleQueryMessage::Row(r) => r.get(0).and_then(|v| v.parse().ok()),
            _ => None,
        }))
    })
    .await
    .expect("sql task");
    match done {
        Ok(v) => v.unwrap_or(0),
        Err(e) => {
            println!("({statement} failed: {e})");
            0
        }
    }
}

/// Files in PostgreSQL's WAL directory (each new one was created and zero-filled).
async fn wal_segments(url: &str) -> i64 {
    sql(url, "SELECT count(*) FROM pg_ls_waldir()").await
}

fn main() {
    let sim = weiquan_sim::simulate(&weiquan_sim::Config {
        merchants: 400,
        days: 20,
        consumers: 20_000,
        seed: 3,
        ..Default::default()
    });
    let lines = sim.lines;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let pg = std::env::var("WEIQUAN_BENCH_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    println!(
        "events: {} simulated, posted {BATCH} per request over loopback by a separate process",
        lines.len()
    );
    println!();
    println!("| store | offered load | sustained durable events/s | p50 ack | p99 ack | new WAL segments |");
    println!("|---|---:|---:|---:|---:|---:|");
    // WEIQUAN_BENCH_STORES=PostgreSQL (or SQLite) measures one store only.
    let only = std::env::var("WEIQUAN_BENCH_STORES").unwrap_or_default();
    for store in ["SQLite", "PostgreSQL"] {
        if !only.is_empty() && !only.split(',').any(|s| s.eq_ignore_ascii_case(store)) {
            continue;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let d = data.to_str().expect("utf-8").to_owned();
        let schema = format!("wq_bench_serve_{}", std::process::id());
        let args: Vec<&str> = if store == "SQLite" {
            vec!["--data", &d]
        } else {
            vec!["--data", &d, "--db", &pg, "--db-schema", &schema]
        };
        let server = start(&args);
        let mut key_args: Vec<&str> = vec!["--data", &d];
        if store == "PostgreSQL" {
            key_args.extend(["--db", &pg, "--db-schema", &schema]);
        }
        let api = key(&key_args);
        rt.block_on(async {
            // On PostgreSQL the server first takes the ledger's lock: wait until it leads.
            let client = reqwest::Client::new();
            for _ in 0..100 {
                if client
                    .get(format!("{}/readyz", server.1))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            // The maximum is the best over the client counts asked for: with
            // writes pipelined behind the engine, few clients can leave the
            // pipeline half empty between their requests.
            let mut max = 0f64;
            for (k, clients) in client_counts().into_iter().enumerate() {
                let got = max_rate(&server.1, &api, bodies(&lines, 10 + k), clients, 6).await;
                println!("| {store} | closed loop, {clients} clients | {got:.0} | — | — | — |");
                max = max.max(got);
            }
            if store == "PostgreSQL" {
                // Without spare WAL segments, each 16 MB one is created and zero-filled by
                // the committing backend, stalling that batch. One pass as the cluster is,
                // then a CHECKPOINT recycles the segments the maximum run filled, as the
                // checkpoints of a server that has been running do.
                let before = wal_segments(&pg).await;
                let (got, p50, p99) = at_rate(&server.1, &api, bodies(&lines, 4), max * 0.5, 4).await;
                println!(
                    "| {store}, before CHECKPOINT | {:.0} events/s (50% of max) | {got:.0} | {p50:.1} ms | {p99:.1} ms | {} |",
                    max * 0.5,
                    wal_segments(&pg).await - before
                );
                sql(&pg, "CHECKPOINT").await;
            }
            for (pass, frac) in [(1, 0.25), (2, 0.5), (3, 0.75)] {
                // Only PostgreSQL has WAL segments to count; a SQLite run never touches it.
                let before = if store == "PostgreSQL" {
                    Some(wal_segments(&pg).await)
                } else {
                    None
                };
                let (got, p50, p99) = at_rate(&server.1, &api, bodies(&lines, pass), max * frac, 4).await;
                let created = match before {
                    Some(before) => (wal_segments(&pg).await - before).to_string(),
                    None => "—".into(),
                };
                println!(
                    "| {store} | {:.0} events/s ({:.0}% of max) | {got:.0} | {p50:.1} ms | {p99:.1} ms | {created} |",
                    max * frac,
                    frac * 100.0
                );
            }
            // Public log reads, idle and while ingesting at half the maximum.
            let (p50, p99) = log_read_latency(&server.1, None).await;
            println!("| {store} | log reads every 5 ms, no ingest | — | {p50:.1} ms | {p99:.1} ms | — |");
            let ingest = tokio::spawn({
                let (base, api, bodies) = (server.1.clone(), api.clone(), bodies(&lines, 5));
                async move { at_rate(&base, &api, bodies, max * 0.5, 4).await }
            });
            let (p50, p99) = log_read_latency(&server.1, Some(ingest)).await;
            println!(
                "| {store} | log reads every 5 ms, ingest at {:.0} events/s (50% of max) | — | {p50:.1} ms | {p99:.1} ms | — |",
                max * 0.5
            );
        });
        drop(server);
        if store == "PostgreSQL" {
            if let Ok(mut c) = postgres::Client::connect(&pg, postgres::NoTls) {
                let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"));
            }
        }
    }
}
