//! `weiquan simulate`: a synthetic platform with ground truth.

use crate::cli::{ProfileArg, SimulateArgs};
use anyhow::{Context, Result};
use std::io::{BufWriter, Write};
use weiquan_sim::{simulate, Config, Profile};

/// The simulation configuration the arguments describe.
pub fn config(args: &SimulateArgs) -> Config {
    Config {
        merchants: args.merchants,
        consumers: args.consumers,
        days: args.days,
        seed: args.seed,
        violation_rate: args.violation_rate,
        profile: match args.profile {
            ProfileArg::Normal => Profile::Normal,
            ProfileArg::Double11 => Profile::Double11,
        },
        orders_per_day: args.orders_per_day,
    }
}

/// Writes `events.ndjson` and `labels.json` (the format of `tests/cases/*/expected.json`) into `--out`.
pub fn run(args: &SimulateArgs, err: &mut dyn Write) -> Result<()> {
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let sim = simulate(&config(args));
    let events_path = args.out.join("events.ndjson");
    let file =
        std::fs::File::create(&events_path).with_context(|| format!("cannot write {}", events_path.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    for line in &sim.lines {
        w.write_all(line.as_bytes())?;
        w.write_all(b"\n")?;
    }
    w.flush()
        .with_context(|| format!("cannot write {}", events_path.display()))?;
    let labels = serde_json::json!({
        "findings": sim.labels.iter().map(|(r, s)| [r, s]).collect::<Vec<_>>(),
        "rejected_lines": [],
    });
    let labels_path = args.out.join("labels.json");
    std::fs::write(&labels_path, serde_json::to_string_pretty(&labels)?)
        .with_context(|| format!("cannot write {}", labels_path.display()))?;
    writeln!(
        err,
        "wrote {} events and {} planted violations to {}",
        sim.lines.len(),
        sim.labels.len(),
        args.out.display()
    )?;
    Ok(())
}
