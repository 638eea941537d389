//! The run-away watch list against the simulator's planted run-aways (MC-04
//! labels), on several seeds and both profiles: how early before its
//! `merchant.closed` each one reaches the top 10% of merchants (and stays),
//! and how precise the list is then. The figures are printed (`cargo test -p
//! weiquan-sim --test watchlist -- --nocapture`) and recorded in
//! BENCHMARKS.md. Held: each at least 2 days before its close; 2 days before,
//! R-precision at least 0.5 and every run-away within the 10% cut.

use std::collections::BTreeMap;
use std::sync::Arc;
use weiquan_engine::{Engine, Rulebook};
use weiquan_events::{parse_event, Body, HOUR_MS};
use weiquan_sim::{simulate, Config, Profile};

const MERCHANTS: u32 = 200;

/// Per planted run-away, its lead in hours (if found before its close); and
/// per close, the R-precision and the recall at the 10% cut 2 days before.
type Measured = (Vec<(String, Option<i64>)>, Vec<(f64, f64)>);

/// For one simulated platform: per planted run-away, the hours before its
/// close at which it was first in the top 10% (and stayed until the close),
/// and, 2 days before each close, the list's R-precision (of its first as
/// many merchants as were planted, the share that were) and its recall at
/// the 10% cut.
fn measure(seed: u64, profile: Profile) -> Measured {
    let sim = simulate(&Config {
        merchants: MERCHANTS,
        consumers: 6_000,
        days: 20,
        seed,
        violation_rate: 0.3,
        profile,
        orders_per_day: 6.0,
    });
    let runaways: Vec<String> = (sim.labels.iter())
        .filter(|(r, _)| r == "MC-04")
        .filter_map(|(_, s)| s.strip_prefix("merchant:").map(str::to_owned))
        .collect();
    let mut closes: BTreeMap<String, i64> = BTreeMap::new();
    for line in &sim.lines {
        if let Ok(ev) = parse_event(line) {
            if let Body::MerchantClosed { merchant, .. } = &ev.body {
                closes.entry(merchant.to_string()).or_insert(ev.at.unix_ms());
            }
        }
    }
    let mut engine = Engine::new(Arc::new(Rulebook::builtin()));
    // Per run-away: since when it has been in the top 10% without a break.
    let mut since: BTreeMap<String, Option<i64>> = runaways.iter().map(|r| (r.clone(), None)).collect();
    let mut lead: BTreeMap<String, Option<i64>> = BTreeMap::new();
    let mut precision = Vec::new();
    let mut checked_two_days: BTreeMap<String, bool> = BTreeMap::new();
    let mut next_look = i64::MIN;
    for line in &sim.lines {
        let Ok(ev) = parse_event(line) else { continue };
        let at = ev.at.unix_ms();
        // Looked at hourly (business time), and just before each close.
        let closing = matches!(&ev.body, Body::MerchantClosed { merchant, .. } if since.contains_key(&**merchant));
        if at >= next_look || closing {
            next_look = at + HOUR_MS;
            let list = engine.watchlist();
            let cut = (MERCHANTS as usize / 10).max(1);
            let top: Vec<&str> = list.iter().take(cut).map(|e| e.merchant.as_str()).collect();
            for (r, s) in since.iter_mut() {
                if lead.contains_key(r) {
                    continue;
                }
                let inside = top.contains(&r.as_str());
                match (inside, *s) {
                    (true, None) => *s = Some(at),
                    (false, Some(_)) => *s = None,
                    _ => {}
                }
                if let Some(&close) = closes.get(r) {
                    if at >= close - 2 * 24 * HOUR_MS && !checked_two_days.get(r).copied().unwrap_or(false) {
                        checked_two_days.insert(r.clone(), true);
                        // R-precision: of the first as many as were planted, how many were
                        // (precision and recall at that k); and recall at the 10% cut.
                        let k = runaways.len();
                        let planted = (list.iter().take(k)).filter(|e| runaways.contains(&e.merchant)).count();
                        let in_cut = top.iter().filter(|m| runaways.iter().any(|r| r == *m)).count();
                        precision.push((planted as f64 / k as f64, in_cut as f64 / k as f64));
                    }
                }
            }
        }
        if let Body::MerchantClosed { merchant, .. } = &ev.body {
            if let Some(s) = since.get(&**merchant) {
                lead.insert(merchant.to_string(), s.map(|t| (at - t) / HOUR_MS));
            }
        }
        engine.apply(&ev);
    }
    (
        runaways
            .iter()
            .map(|r| (r.clone(), lead.get(r).copied().flatten()))
            .collect(),
        precision,
    )
}

#[test]
fn the_watch_list_finds_planted_run_aways_two_days_before_they_close() {
    let mut leads = Vec::new();
    let mut at_two_days = Vec::new();
    for (seed, profile) in [
        (1, Profile::Normal),
        (2, Profile::Normal),
        (3, Profile::Double11),
        (4, Profile::Double11),
    ] {
        let (lead, precision) = measure(seed, profile);
        println!("seed {seed} {profile:?}: lead hours {lead:?}; 2 days before each close, (R-precision, recall at 10%) {precision:?}");
        assert!(!lead.is_empty(), "the simulator planted run-aways");
        leads.extend(lead.into_iter().map(|l| l.1));
        at_two_days.extend(precision);
    }
    let mut hours: Vec<i64> = leads.iter().flatten().copied().collect();
    hours.sort_unstable();
    println!(
        "found {} of {} before they closed; lead hours sorted {hours:?}",
        hours.len(),
        leads.len()
    );
    println!("2 days before each close, (R-precision, recall at 10%): {at_two_days:?}");
    assert_eq!(
        hours.len(),
        leads.len(),
        "every planted run-away is in the top 10% before it closes"
    );
    assert!(hours.iter().all(|&h| h >= 48), "each at least 2 days before: {hours:?}");
    assert!(
        at_two_days.iter().all(|&(p, r)| p >= 0.5 && r == 1.0),
        "{at_two_days:?}"
    );
}
