//! What the cluster benches share: the simulated platform they route.

use std::path::Path;

/// Writes the simulated platform the cluster benches route (`merchants`
/// merchants, 30 days, about 1,130 events a merchant) to `dir/events.ndjson`:
/// its path and its number of events.
pub fn platform(dir: &Path, merchants: u32) -> (String, usize) {
    let sim = weiquan_sim::simulate(&weiquan_sim::Config {
        merchants,
        consumers: merchants * 40,
        days: 30,
        seed: 7,
        violation_rate: 0.1,
        profile: weiquan_sim::Profile::Normal,
        orders_per_day: 4.0,
    });
    let file = dir.join("events.ndjson");
    std::fs::write(&file, sim.lines.join("\n") + "\n").expect("events written");
    (file.to_str().expect("UTF-8 path").to_owned(), sim.lines.len())
}
