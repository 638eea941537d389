//! The parse floor of a JSON-in engine, with SIMD parsers beside serde_json:
//! every line of an NDJSON file parsed into one typed struct (the fields the
//! rules read, strings borrowed where they have no escapes) by serde_json,
//! sonic-rs and simd-json, and by weiquan's own parser (`parse_event`: typed,
//! validated, every field checked). One thread; the file is read into memory
//! first; best and median of interleaved passes. Prints Markdown.
//!
//! `cargo bench -p weiquan-events --bench parse_floor -- FILE [PASSES]`
//! (`scripts/bench-parse` runs it as the audit is built, then with
//! `-C target-cpu=native`). Exits 1 if a parser refuses a line.

use serde::Deserialize;
use std::borrow::Cow;
use std::hint::black_box;
use std::time::Instant;

/// What the rules read from an event, as a user of each parser would declare it.
#[derive(Deserialize)]
#[allow(dead_code)] // read only through black_box: the parse is what is measured
struct Envelope<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    at: Cow<'a, str>,
    #[serde(borrow, default)]
    order: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    merchant: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    consumer: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    sku: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    campaign: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    lottery: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    participant: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    segment: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    payment: Option<Cow<'a, str>>,
    #[serde(default)]
    confirmed: Option<bool>,
    #[serde(default)]
    price_fen: Option<u64>,
    #[serde(default)]
    reference_price_fen: Option<u64>,
    #[serde(default)]
    deposit_fen: Option<u64>,
    #[serde(default)]
    final_fen: Option<u64>,
    #[serde(default)]
    amount_fen: Option<u64>,
    #[serde(default)]
    ship_within_days: Option<u32>,
    #[serde(borrow, default)]
    winners: Option<Vec<Winner<'a>>>,
    #[serde(borrow, default)]
    prizes: Option<Vec<Prize<'a>>>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Winner<'a> {
    #[serde(borrow)]
    participant: Cow<'a, str>,
    #[serde(borrow)]
    prize: Cow<'a, str>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Prize<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(default)]
    value_fen: Option<u64>,
    #[serde(default)]
    count: Option<u32>,
}

/// Parses every line with `f`; the number that parsed, and the seconds taken.
fn pass(lines: &[&str], mut f: impl FnMut(&str) -> bool) -> (usize, f64) {
    let t = Instant::now();
    let ok = lines.iter().filter(|l| f(l)).count();
    (ok, t.elapsed().as_secs_f64())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let Some(path) = args.first() else {
        eprintln!("usage: parse_floor FILE [PASSES]");
        std::process::exit(2);
    };
    let passes: usize = args.get(1).and_then(|p| p.parse().ok()).unwrap_or(7);
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        eprintln!("cannot read {path}: {e}");
        std::process::exit(2);
    });
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut scratch: Vec<u8> = Vec::with_capacity(4096);
    type Parser<'s> = (&'static str, Box<dyn FnMut(&str) -> bool + 's>);
    let mut parsers: Vec<Parser<'_>> = vec![
        (
            "serde_json → typed struct",
            Box::new(|l: &str| black_box(serde_json::from_str::<Envelope>(l)).is_ok()),
        ),
        (
            "sonic-rs → typed struct",
            Box::new(|l: &str| black_box(sonic_rs::from_str::<Envelope>(l)).is_ok()),
        ),
        (
            "simd-json → typed struct (line copied: it parses in place)",
            Box::new(move |l: &str| {
                scratch.clear();
                scratch.extend_from_slice(l.as_bytes());
                black_box(simd_json::serde::from_slice::<Envelope>(&mut scratch)).is_ok()
            }),
        ),
        (
            "weiquan `parse_event` → Event (typed and validated)",
            Box::new(|l: &str| black_box(weiquan_events::parse_event(l)).is_ok()),
        ),
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); parsers.len()];
    let mut parsed = vec![0; parsers.len()];
    for _ in 0..passes {
        for (i, (_, f)) in parsers.iter_mut().enumerate() {
            let (ok, secs) = pass(&lines, f);
            parsed[i] = ok;
            times[i].push(secs);
        }
    }
    // A parser that refused lines would look faster: every one must parse every line.
    for (i, (name, _)) in parsers.iter().enumerate() {
        if parsed[i] != lines.len() {
            eprintln!(
                "{name} parsed {} of {} lines: not a floor of this file",
                parsed[i],
                lines.len()
            );
            std::process::exit(1);
        }
    }
    println!(
        "lines: {}; bytes: {}; passes: {passes}, interleaved",
        lines.len(),
        text.len()
    );
    println!();
    println!("| parser | parsed | best | median | ns/line (best) | MB/s (best) |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (i, (name, _)) in parsers.iter().enumerate() {
        let mut t = times[i].clone();
        t.sort_by(f64::total_cmp);
        let (best, median) = (t[0], t[t.len() / 2]);
        println!(
            "| {name} | {} | {best:.3} s | {median:.3} s | {:.0} | {:.0} |",
            parsed[i],
            best * 1e9 / lines.len() as f64,
            text.len() as f64 / best / 1e6
        );
    }
}
