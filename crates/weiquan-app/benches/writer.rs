//! What keeping personal data off a log's leaves costs its writer: a
//! `LedgerWriter` logging every event of a simulated platform into a fresh
//! SQLite log, with salting (a cluster's partition logs) and without (`weiquan
//! audit --ledger`), alternating in one run; and the leaves alone, without a
//! store. Run with `scripts/bench-writer`; prints Markdown.

use std::time::{Duration, Instant};
use weiquan_app::{LedgerWriter, Salting};
use weiquan_ledger::{generate_key, load_signer, Actor, Ledger};
use weiquan_store::SqliteStore;

/// Leaves per write, as a partition's log writes them at most.
const BATCH: usize = 8192;

/// One writer over every line: the seconds it took, start to durable end.
fn write(lines: &[(String, String)], salted: bool, key: &str, dir: &std::path::Path, round: usize) -> Duration {
    let path = dir.join(format!("log-{round}-{salted}.db"));
    let store = SqliteStore::open(&path).expect("a SQLite log");
    let ledger = Ledger::open(store, load_signer(key).expect("a key"), "bench.example/log").expect("opens");
    let mut writer = LedgerWriter::new(ledger, BATCH);
    if salted {
        let actor = Actor {
            role: "platform".into(),
            key: None,
            on_behalf: None,
        };
        writer = writer.salting(Salting::new(actor.canonical().expect("an actor"), &[5; 32]));
    }
    let started = Instant::now();
    for (id, line) in lines {
        writer.event(id, line).expect("logged");
    }
    writer.flush().expect("written");
    let took = started.elapsed();
    drop(writer);
    let _ = std::fs::remove_file(&path);
    took
}

fn main() {
    let merchants = weiquan_testkit::setting("WEIQUAN_BENCH_WRITER_MERCHANTS", 200);
    let rounds: usize = weiquan_testkit::setting("WEIQUAN_BENCH_WRITER_ROUNDS", 5);
    let sim = weiquan_sim::simulate(&weiquan_sim::Config {
        merchants,
        consumers: merchants * 60,
        days: 20,
        seed: 42,
        violation_rate: 0.2,
        profile: weiquan_sim::Profile::Double11,
        orders_per_day: 10.0,
    });
    let lines: Vec<(String, String)> = (sim.lines.iter())
        .filter_map(|l| Some((weiquan_events::parse_event(l).ok()?.id.into_owned(), l.clone())))
        .collect();
    let (key, _) = generate_key("bench.example/log").expect("a key");
    let dir = tempfile::tempdir().expect("a folder");
    let mut times: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    for round in 0..rounds {
        // Alternating which goes first, against the host's drift.
        let order = if round % 2 == 0 { [false, true] } else { [true, false] };
        for salted in order {
            times[usize::from(salted)].push(write(&lines, salted, &key, dir.path(), round));
        }
    }
    let n = lines.len() as f64;
    println!(
        "{} events, {rounds} rounds each, alternating; a fresh SQLite log each, {BATCH} leaves a write\n",
        lines.len()
    );
    println!("| writer | best | median | µs an event (best) | ÷ unsalted (best, median) |");
    println!("|---|---:|---:|---:|---:|");
    let stats = |t: &mut Vec<Duration>| {
        t.sort();
        (t[0].as_secs_f64(), t[t.len() / 2].as_secs_f64())
    };
    let plain = stats(&mut times[0]);
    let salted = stats(&mut times[1]);
    for (what, (best, median)) in [
        ("unsalted (`audit --ledger`'s leaves)", plain),
        ("salted (a partition log's leaves)", salted),
    ] {
        println!(
            "| {what} | {best:.3} s | {median:.3} s | {:.2} | {:.2}, {:.2} |",
            best / n * 1e6,
            best / plain.0,
            median / plain.1
        );
    }
}
