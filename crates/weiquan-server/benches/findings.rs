//! What a platform with many violations costs a real `weiquan serve`
//! (SQLite): its memory as findings pile up, its ingest rate, and how fast
//! the findings are read back (issue 19: findings on disk). Run with
//! `scripts/bench-findings`; prints Markdown. `WEIQUAN_BIN` runs another
//! build (an A/B in the same run is the script's).
//!
//! The stream: `WEIQUAN_BENCH_FINDINGS_ORDERS` orders (default 2,000,000)
//! over 400 days, of 50 registered and verified merchants, none shipped:
//! each order becomes a late-shipment finding (MC-06) two days on, and
//! orders leave the engine's memory 180 days after their last event
//! (retention), so what stays is the findings.

use std::time::{Duration, Instant};

mod support;
use support::{key, post, rss_mib, start};

const DAYS: i64 = 400;
const MERCHANTS: usize = 50;
/// Events per request while filling.
const BATCH: usize = 2000;

/// The business time `ms` after 2026-01-01T00:00:00+08:00, as events write it.
fn at(ms: i64) -> String {
    let start = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00+08:00").expect("time");
    (start + chrono::Duration::milliseconds(ms)).to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
}

/// The stream: merchants registered and verified, then `orders` orders spread evenly over [`DAYS`].
fn stream(orders: usize) -> Vec<String> {
    let mut lines = Vec::with_capacity(orders + 2 * MERCHANTS);
    for m in 0..MERCHANTS {
        lines.push(format!(
            r#"{{"v":1,"id":"r{m}","type":"merchant.registered","at":"{}","merchant":"m{m}","name":"shop {m}","uscc":"91350100M000100Y43","channels":["store"],"licence_sha256":"{:064x}"}}"#,
            at(0),
            m + 1
        ));
        lines.push(format!(
            r#"{{"v":1,"id":"v{m}","type":"merchant.verified","at":"{}","merchant":"m{m}","method":"licence_check","by":"platform"}}"#,
            at(1)
        ));
    }
    let step = DAYS * 86_400_000 / orders as i64;
    for i in 0..orders {
        lines.push(format!(
            r#"{{"v":1,"id":"o{i}","type":"order.placed","at":"{}","order":"o{i}","merchant":"m{}","consumer":"c{}","sku":"s{}","qty":1,"amount_fen":1990,"payment":"standard","confirmed":true}}"#,
            at(1000 + i as i64 * step),
            i % MERCHANTS,
            i % 10_000,
            i % 100
        ));
    }
    lines
}

/// The median of `n` timed calls of `path` (with `key`), in ms, and the last answer's size in findings.
async fn read_time(client: &reqwest::Client, base: &str, key: &str, path: &str, n: usize) -> (f64, usize) {
    let mut times = Vec::with_capacity(n);
    let mut size = 0;
    for _ in 0..n {
        let t = Instant::now();
        let r = (client.get(format!("{base}{path}")).bearer_auth(key).send().await).expect("get");
        assert!(r.status().is_success(), "{path}: {}", r.status());
        let v: serde_json::Value = r.json().await.expect("json");
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        size = (v["findings"].as_array()).map_or(0, Vec::len);
    }
    times.sort_by(f64::total_cmp);
    (times[n / 2], size)
}

fn main() {
    let orders: usize = weiquan_testkit::setting("WEIQUAN_BENCH_FINDINGS_ORDERS", 2_000_000);
    let lines = stream(orders);
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().join("data").to_str().expect("utf-8").to_owned();
    let args = ["--data", &d, "--snapshot-every", "0", "--max-future-hours", "0"];
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let server = start(&args);
        let api = key(&["--data", &d]);
        let client = reqwest::Client::new();
        println!("| events in the ledger | server RSS |");
        println!("|---:|---:|");
        let t = Instant::now();
        let mut busy = Duration::ZERO;
        for (i, chunk) in lines.chunks(BATCH).enumerate() {
            busy += post(&client, &server.1, &api, chunk.join("\n")).await;
            let sent = (i + 1) * BATCH;
            if sent % 500_000 == 0 {
                println!("| {sent} | {:.0} MiB |", rss_mib(&server));
            }
        }
        let secs = t.elapsed().as_secs_f64();
        println!("| {} (all) | {:.0} MiB |", lines.len(), rss_mib(&server));
        println!();
        println!(
            "filled {} events in {secs:.1} s ({:.0} events/s; {:.1} s in requests)",
            lines.len(),
            lines.len() as f64 / secs,
            busy.as_secs_f64()
        );
        let (status, metrics) = {
            let r = client
                .get(format!("{}/metrics", server.1))
                .send()
                .await
                .expect("metrics");
            (r.status(), r.text().await.unwrap_or_default())
        };
        assert!(status.is_success());
        let findings: u64 = (metrics.lines())
            .filter(|l| l.starts_with("weiquan_findings_total"))
            .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
            .map(|v| v as u64)
            .sum();
        println!("findings: {findings}");
        println!();
        println!("| read | findings in the answer | median of 20 |");
        println!("|---|---:|---:|");
        let middle = (lines.len() / 2) as u64;
        let when = |day: i64| at(day * 86_400_000).replace('+', "%2B");
        for (what, path) in [
            ("first page (100)", "/v1/findings".to_owned()),
            (
                "a page from the middle (1000)",
                format!("/v1/findings?limit=1000&cursor={middle}"),
            ),
            ("one merchant's first page", "/v1/findings?merchant=m7".to_owned()),
            ("one subject", format!("/v1/findings?subject=order:o{}", orders / 2)),
            (
                "a rule, from the middle",
                format!("/v1/findings?rule=MC-06&cursor={middle}"),
            ),
            (
                "a severity (several rules), from the middle",
                format!("/v1/findings?severity=medium&cursor={middle}"),
            ),
            ("the last ten days", format!("/v1/findings?since={}", when(390))),
            ("from the tenth day on", format!("/v1/findings?since={}", when(10))),
        ] {
            let (ms, n) = read_time(&client, &server.1, &api, &path, 20).await;
            println!("| {what} | {n} | {ms:.1} ms |");
        }
        drop(server);
    });
}
