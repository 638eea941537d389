//! Events/s of partitioned processing with 1, 2 and 3 partition threads,
//! against one engine on one thread, in the same run, over one simulated
//! platform (parsed once, before any timing). The router runs on the calling
//! thread and hands each partition its events with the watermark over a
//! bounded channel, as a front door would hand them to workers. Run with
//! `scripts/bench-partitions`; prints Markdown.
//!
//! Only the engines' work and the routing are timed: no ledger, no NATS. It
//! measures how far routing by merchant spreads the rule engine's work. Each
//! partition gets its own events only (with their watermark); its deadlines
//! fire at its next event, where `Partitioned` moves idle partitions' clocks
//! at every event. The findings are the same, and the count is checked.

use std::sync::mpsc::sync_channel;
use std::sync::Arc;
use std::time::Instant;
use weiquan_engine::{Engine, Finding, Rulebook};
use weiquan_events::{parse_event, Event, Time};
use weiquan_partition::{Route, Router};

/// Events handed to a partition thread at a time.
const BATCH: usize = 1024;

/// One engine over every event: the single-node peer. Returns findings.
fn one_engine(events: &[Event], rules: &Arc<Rulebook>) -> usize {
    let mut engine = Engine::new(rules.clone());
    events.iter().map(|ev| engine.apply(ev).len()).sum()
}

/// Partition threads fed by the router on this thread. Returns findings
/// reported (each partition's, kept by [`Router::keeps`] once all are in:
/// where a subject lives never changes once routed).
fn partitioned(events: &[Event], rules: &Arc<Rulebook>, partitions: u32) -> usize {
    let mut router = Router::new(partitions);
    std::thread::scope(|s| {
        let mut senders = Vec::new();
        let mut workers = Vec::new();
        for _ in 0..partitions {
            let (tx, rx) = sync_channel::<Vec<(Option<Time>, usize, Route)>>(8);
            senders.push((tx, Vec::with_capacity(BATCH)));
            let rules = rules.clone();
            workers.push(s.spawn(move || {
                let mut engine = Engine::new(rules);
                let mut found: Vec<(Finding, usize, Route)> = Vec::new();
                for batch in rx {
                    for (stamp, i, route) in batch {
                        let ev = &events[i];
                        let advanced = stamp.map(|t| engine.advance(t)).unwrap_or_default();
                        found.extend(advanced.into_iter().chain(engine.apply(ev)).map(|f| (f, i, route)));
                    }
                }
                found
            }));
        }
        for (i, ev) in events.iter().enumerate() {
            let stamp = router.clock();
            let route = router.route(ev);
            for (p, (tx, batch)) in senders.iter_mut().enumerate() {
                if route == Route::All || route == Route::One(p as u32) {
                    batch.push((stamp, i, route));
                    if batch.len() == BATCH {
                        let full = std::mem::replace(batch, Vec::with_capacity(BATCH));
                        tx.send(full).expect("the partition thread runs");
                    }
                }
            }
        }
        for (tx, batch) in senders {
            if !batch.is_empty() {
                tx.send(batch).expect("the partition thread runs");
            }
        }
        let found: Vec<Vec<(Finding, usize, Route)>> = workers
            .into_iter()
            .map(|w| w.join().expect("partition thread"))
            .collect();
        (found.iter().enumerate())
            .map(|(p, f)| {
                f.iter()
                    .filter(|(f, i, route)| router.keeps(f, p as u32, Some((*route, &events[*i].id))))
                    .count()
            })
            .sum()
    })
}

fn main() {
    let merchants: u32 = weiquan_testkit::setting("WEIQUAN_BENCH_MERCHANTS", 800);
    let rounds: usize = weiquan_testkit::setting("WEIQUAN_BENCH_ROUNDS", 5);
    let lines = weiquan_sim::simulate(&weiquan_sim::Config {
        merchants,
        consumers: merchants * 100,
        days: 30,
        seed: 11,
        ..Default::default()
    })
    .lines;
    let events: Vec<Event> = lines.iter().filter_map(|l| parse_event(l).ok()).collect();
    let rules = Arc::new(Rulebook::builtin());
    println!(
        "{} events ({merchants} merchants, 30 days), parsed before timing; best and median of {rounds} rounds, contenders alternating",
        events.len()
    );
    println!();
    let contenders: Vec<(String, Option<u32>)> = std::iter::once(("one engine, one thread".to_owned(), None))
        .chain((1..=3).map(|n| (format!("{n} partition thread(s) + router"), Some(n))))
        .collect();
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); contenders.len()];
    let mut found = vec![0usize; contenders.len()];
    for _ in 0..rounds {
        for (k, (_, n)) in contenders.iter().enumerate() {
            let t = Instant::now();
            found[k] = match n {
                None => one_engine(&events, &rules),
                Some(n) => partitioned(&events, &rules, *n),
            };
            times[k].push(t.elapsed().as_secs_f64());
        }
    }
    assert!(
        found.iter().all(|&f| f == found[0]),
        "every contender reports the same number of findings: {found:?}"
    );
    let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let median = |v: &[f64]| {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        s[s.len() / 2]
    };
    let base = median(&times[0]);
    println!("| contender | best | median | events/s (median) | ÷ one engine (median) |");
    println!("|---|---:|---:|---:|---:|");
    for (k, (name, _)) in contenders.iter().enumerate() {
        println!(
            "| {name} | {:.3} s | {:.3} s | {:.0} | {:.2}× |",
            best(&times[k]),
            median(&times[k]),
            events.len() as f64 / median(&times[k]),
            base / median(&times[k])
        );
    }
    println!();
    println!("findings: {} by every contender", found[0]);
}
