//! Durable ledger appends per second on SQLite and PostgreSQL, for batch
//! sizes 1, 100 and 1000, beside the SHA-256 floor of the same leaves (plain
//! SHA-256 of each leaf, and the full RFC 6962 tree hashing), all in one run.
//! Run with `scripts/bench-ledger`; prints a Markdown table.

use sha2::{Digest, Sha256};
use std::time::Instant;
use weiquan_ledger::{event_leaf, generate_key, load_signer, Frontier, Ledger, LogStore};
use weiquan_store::{PgStore, SqliteStore};

fn leaves(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            event_leaf(&format!(
                r#"{{"v":1,"id":"e{i}","type":"order.placed","at":"2026-11-11T00:00:{:02}+08:00","order":"o{i}","merchant":"m{}","consumer":"u{}","sku":"s1","qty":1,"amount_fen":9900,"payment":"standard"}}"#,
                i % 60,
                i % 500,
                i % 9000
            ))
            .expect("json")
        })
        .collect()
}

fn run<S: LogStore>(store: S, batch: usize, total: usize) -> f64 {
    let (skey, _) = generate_key("weiquan.bench/log").expect("key");
    let mut ledger = Ledger::open(store, load_signer(&skey).expect("signer"), "weiquan.bench/log").expect("open");
    let data = leaves(total);
    let start = Instant::now();
    for chunk in data.chunks(batch) {
        ledger.append(chunk.to_vec()).expect("append");
    }
    total as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let pg_url = std::env::var("WEIQUAN_TEST_PG")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into());
    let floor_leaves = leaves(200_000);
    let t = Instant::now();
    let mut sink = 0u8;
    for l in &floor_leaves {
        sink ^= Sha256::digest(l)[0];
    }
    let sha = floor_leaves.len() as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut f = Frontier::new();
    for l in &floor_leaves {
        f.append(l);
    }
    let tree = floor_leaves.len() as f64 / t.elapsed().as_secs_f64();
    let bytes: usize = floor_leaves.iter().map(Vec::len).sum::<usize>() / floor_leaves.len();

    println!("| store | batch | leaves | durable appends/s | × SHA-256 floor |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| SHA-256 of each leaf ({bytes} B avg) | — | {} | {sha:.0} | 1.00 |",
        floor_leaves.len()
    );
    println!(
        "| RFC 6962 tree hashing, no storage | — | {} | {tree:.0} | {:.2} |",
        floor_leaves.len(),
        tree / sha
    );
    for (batch, total) in [(1usize, 300usize), (100, 30_000), (1000, 200_000)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let rate = run(
            SqliteStore::open(&dir.path().join("bench.db")).expect("sqlite"),
            batch,
            total,
        );
        println!(
            "| SQLite (WAL, synchronous=FULL) | {batch} | {total} | {rate:.0} | {:.2} |",
            rate / sha
        );
        let schema = format!("wq_bench_{}_{batch}", std::process::id());
        match PgStore::connect(&pg_url, &schema) {
            Ok(store) => {
                let rate = run(store, batch, total);
                println!(
                    "| PostgreSQL 15 (COPY, synchronous_commit=on) | {batch} | {total} | {rate:.0} | {:.2} |",
                    rate / sha
                );
            }
            Err(e) => println!("| PostgreSQL | {batch} | — | not measured: {e} | — |"),
        }
        if let Ok(mut c) = postgres::Client::connect(&pg_url, postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"));
        }
    }
    std::hint::black_box(sink);
}
