//! `weiquan backtest`: a ledger's events replayed under other rules, against
//! the findings the ledger recorded.

use crate::cli::{BacktestArgs, Format};
use anyhow::Result;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use weiquan_app::Recorded;
use weiquan_engine::{Engine, Lang};
use weiquan_ledger::OwnLeaf;

/// A finding by what the comparison keys on: rule, subject, business time.
type Key = (String, String, String);

/// One difference between the recorded run and the replay.
#[derive(Serialize)]
struct Change {
    /// `added` (the new rules find it, the recorded run did not) or `removed`.
    change: &'static str,
    rule: String,
    subject: String,
    at: String,
    /// The recorded finding's leaf index (removed findings).
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<u64>,
    /// The new finding's message (added findings).
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

/// Runs `weiquan backtest`: 0 when the new rules find exactly what was recorded, 3 otherwise.
pub fn run(args: &BacktestArgs, out: &mut dyn Write) -> Result<ExitCode> {
    let rules = super::load_rules(Some(&args.rules))?;
    let lang = Lang::from(args.lang);
    let mut store = super::verify::open_ledger_file(&args.ledger)?;
    let mut engine = Engine::new(rules.clone());
    // The replay's findings by key, each with its message in `lang`.
    let keep = |replayed: &mut BTreeMap<Key, Vec<String>>, found: Vec<weiquan_engine::Finding>| {
        for f in found {
            let message = f.record(&rules, lang).message;
            let key = (f.rule.as_str().to_owned(), f.subject.clone(), f.at.to_string());
            replayed.entry(key).or_default().push(message);
        }
    };
    // Recorded findings by key, with their leaf indices; the replay's, with messages.
    let mut recorded: BTreeMap<Key, Vec<u64>> = BTreeMap::new();
    let mut replayed: BTreeMap<Key, Vec<String>> = BTreeMap::new();
    let (mut events, mut unreadable) = (0u64, 0u64);
    // The rulebooks the ledger records (fingerprints, in order).
    let mut rulebooks: Vec<String> = Vec::new();
    weiquan_app::walk_recorded(&mut store, 0, |index, leaf| -> Result<()> {
        match leaf {
            Recorded::Own(OwnLeaf::Rulebook { sha256 }) => rulebooks.push(sha256),
            Recorded::Own(OwnLeaf::Finding { rule, subject, at, .. }) => {
                recorded.entry((rule, subject, at)).or_default().push(index)
            }
            Recorded::Event { text, .. } => match weiquan_events::parse_event(&text) {
                Ok(ev) => {
                    events += 1;
                    let found = engine.apply(&ev);
                    keep(&mut replayed, found);
                }
                Err(_) => unreadable += 1,
            },
            Recorded::Unreadable(_) => unreadable += 1,
            Recorded::Other => {}
        }
        Ok(())
    })?;
    if let Some(at) = args.as_of {
        let found = engine.advance(at);
        keep(&mut replayed, found);
    }
    let changes = diff(&recorded, &replayed);
    match args.format {
        Format::Ndjson => {
            for c in &changes {
                writeln!(out, "{}", serde_json::to_string(c)?)?;
            }
        }
        Format::Table => {
            let short = |sha: &str| sha.chars().take(12).collect::<String>();
            let recorded_under = match rulebooks.as_slice() {
                [] => "the built-in rulebook of the weiquan that wrote it".to_owned(),
                [one] => format!("rulebook {}", short(one)),
                [.., last] => format!("{} rulebooks, the last {}", rulebooks.len(), short(last)),
            };
            let new = weiquan_ledger::rulebook_fingerprint(&rules.effective())?;
            writeln!(
                out,
                "recorded under {recorded_under}; replayed under rulebook {}",
                short(&new)
            )?;
            table(out, &changes, events, &recorded, &replayed)?
        }
    }
    if unreadable > 0 {
        writeln!(
            out,
            "note: {unreadable} event leaves could not be read back (erased, logged by their hash only, or of another format) and were not replayed"
        )?;
    }
    Ok(if changes.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

/// What the replay adds and what it no longer finds, counting repeats (a
/// rule may report one subject twice, for two facts).
fn diff(recorded: &BTreeMap<Key, Vec<u64>>, replayed: &BTreeMap<Key, Vec<String>>) -> Vec<Change> {
    let mut changes = Vec::new();
    let change = |kind, (rule, subject, at): &Key| Change {
        change: kind,
        rule: rule.clone(),
        subject: subject.clone(),
        at: at.clone(),
        index: None,
        message: None,
    };
    for (key, indices) in recorded {
        let kept = replayed.get(key).map_or(0, Vec::len);
        for &index in indices.iter().skip(kept) {
            changes.push(Change {
                index: Some(index),
                ..change("removed", key)
            });
        }
    }
    for (key, messages) in replayed {
        let had = recorded.get(key).map_or(0, Vec::len);
        for message in messages.iter().skip(had) {
            changes.push(Change {
                message: Some(message.clone()),
                ..change("added", key)
            });
        }
    }
    changes.sort_by(|a, b| (&a.at, &a.rule, &a.subject, a.change).cmp(&(&b.at, &b.rule, &b.subject, b.change)));
    changes
}

fn table(
    out: &mut dyn Write,
    changes: &[Change],
    events: u64,
    recorded: &BTreeMap<Key, Vec<u64>>,
    replayed: &BTreeMap<Key, Vec<String>>,
) -> Result<()> {
    let was: usize = recorded.values().map(Vec::len).sum();
    let now: usize = replayed.values().map(Vec::len).sum();
    writeln!(
        out,
        "{events} events replayed: {was} findings recorded, {now} under the new rules"
    )?;
    if changes.is_empty() {
        writeln!(out, "no change")?;
        return Ok(());
    }
    let mut by_rule: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for c in changes {
        let e = by_rule.entry(&c.rule).or_default();
        if c.change == "added" {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
    }
    writeln!(out, "{:<8} {:>7} {:>8}", "rule", "added", "removed")?;
    for (rule, (added, removed)) in &by_rule {
        writeln!(out, "{rule:<8} {added:>7} {removed:>8}")?;
    }
    writeln!(out)?;
    for c in changes {
        let sign = if c.change == "added" { '+' } else { '-' };
        writeln!(
            out,
            "{sign} {:<6} {:<28} {}  {}",
            c.rule,
            c.subject,
            c.at,
            c.message.as_deref().unwrap_or("")
        )?;
    }
    Ok(())
}
