//! `weiquan verify draw`: a lottery's draw recomputed from the ledger alone.

use std::collections::HashMap;
use weiquan_engine::draw;
use weiquan_events::{parse_event, Body};
use weiquan_ledger::LogStore;

/// The draw as logged: its leaf, the winners (participant, prize) and the revealed seed.
struct Drawn {
    leaf: u64,
    winners: Vec<(String, String)>,
    seed: Option<String>,
    beacon_signature: Option<String>,
}

/// What the ledger says about one lottery.
#[derive(Default)]
struct Lottery {
    announced: Option<u64>,
    commitment: Option<String>,
    beacon_round: Option<u64>,
    prizes: Vec<(String, u32)>,
    /// Participant, leaf index of first entry, before the close.
    entries: Vec<(String, u64, bool)>,
    closed: Option<u64>,
    recorded_root: Option<String>,
    drawn: Option<Drawn>,
}

/// Returns a sentence saying the draw is fair, or an error sentence naming what is wrong;
/// an error (not a verdict) when the ledger holds no such lottery or no draw of it.
pub fn check<S: LogStore + weiquan_store::PrivateData>(
    store: &mut S,
    lottery: &str,
) -> anyhow::Result<Result<String, String>> {
    let mut l = Lottery::default();
    let mut first_entry: HashMap<String, usize> = HashMap::new();
    // An event logged by its hash only could be any of the lottery's events.
    let mut hashed: Option<(u64, String)> = None;
    weiquan_store::walk_leaves(store, 0, |index, text, row| -> anyhow::Result<()> {
        if hashed.is_none() {
            if let Some(weiquan_ledger::StandIn { id, line: None }) = weiquan_ledger::stand_in(text) {
                hashed = Some((index, id));
            }
        }
        if !text.contains(lottery) {
            return Ok(());
        }
        // Events only (participants restored from the private side, where they are
        // salted in the public leaves); findings and anything else are skipped.
        let weiquan_app::Recorded::Event { text: event, .. } = weiquan_app::recorded(text, row) else {
            return Ok(());
        };
        let Ok(ev) = parse_event(&event) else { return Ok(()) };
        let set_terms = |l: &mut Lottery, terms: &weiquan_events::LotteryTerms| {
            if let Some(c) = &terms.commitment {
                l.commitment = Some(c.to_string());
            }
            if terms.beacon_round.is_some() {
                l.beacon_round = terms.beacon_round;
            }
            if let Some(p) = &terms.prizes {
                l.prizes = p
                    .iter()
                    .map(|p| (p.name.as_deref().unwrap_or("").to_owned(), p.count.unwrap_or(0)))
                    .collect();
            }
        };
        match &ev.body {
            Body::LotteryAnnounced { lottery: id, terms } if id == lottery && l.announced.is_none() => {
                l.announced = Some(index);
                set_terms(&mut l, terms);
            }
            Body::LotteryChanged { lottery: id, changes } if id == lottery && l.drawn.is_none() => {
                set_terms(&mut l, changes)
            }
            Body::LotteryEntered {
                lottery: id,
                participant,
            } if id == lottery && l.drawn.is_none() && !first_entry.contains_key(&**participant) => {
                first_entry.insert(participant.to_string(), l.entries.len());
                l.entries.push((participant.to_string(), index, l.closed.is_none()));
            }
            Body::LotteryClosed { lottery: id } if id == lottery && l.closed.is_none() => {
                l.closed = Some(index);
                let v: serde_json::Value = serde_json::from_str(&event).unwrap_or_default();
                l.recorded_root = v.get("entrants_root").and_then(|r| r.as_str()).map(str::to_owned);
            }
            Body::LotteryDrawn {
                lottery: id,
                winners,
                seed,
                beacon_signature,
                ..
            } if id == lottery && l.drawn.is_none() => {
                let ws = winners
                    .iter()
                    .map(|w| (w.participant.to_string(), w.prize.to_string()))
                    .collect();
                l.drawn = Some(Drawn {
                    leaf: index,
                    winners: ws,
                    seed: seed.as_ref().map(|s| s.to_string()),
                    beacon_signature: beacon_signature.as_ref().map(|s| s.to_string()),
                });
            }
            _ => {}
        }
        Ok(())
    })?;
    if let Some((index, id)) = hashed {
        return Ok(Err(format!(
            "leaf {index} holds event {id} by its hash only (its line has no canonical JSON form and is too long to carry): the draw cannot be checked from this ledger alone"
        )));
    }
    // Nothing to judge is not an unfair draw (exit 3): a mistyped id is the caller's
    // (exit 2), a draw still to come an error (exit 1), so a script can tell them apart.
    let Some(announced) = l.announced else {
        return Err(super::UsageError(format!(
            "lottery {lottery} is not announced in this ledger: check the id (the `lottery` of its lottery.announced) and the ledger"
        ))
        .into());
    };
    let Some(drawn) = &l.drawn else {
        anyhow::bail!("lottery {lottery} (announced at leaf {announced}) has not been drawn in this ledger: nothing to verify yet");
    };
    Ok(judge(lottery, announced, drawn, &l, &first_entry))
}

/// The verdict on draw `drawn` of lottery `id`, announced at leaf `announced`.
fn judge(
    id: &str,
    announced: u64,
    drawn: &Drawn,
    l: &Lottery,
    first_entry: &HashMap<String, usize>,
) -> Result<String, String> {
    let commitment = l.commitment.as_deref().ok_or_else(|| {
        format!("lottery {id} was announced (leaf {announced}) without a commitment: its draw cannot be verified")
    })?;
    let Drawn {
        leaf: drawn_at,
        winners,
        seed,
        beacon_signature,
    } = drawn;
    let seed = seed
        .as_deref()
        .ok_or_else(|| format!("the draw (leaf {drawn_at}) reveals no seed"))?;
    if draw::commitment(seed) != commitment {
        return Err(format!(
            "the seed revealed at the draw (leaf {drawn_at}) does not hash to the commitment published at announcement (leaf {announced}): the seed was changed"
        ));
    }
    let eligible: Vec<&str> = l.entries.iter().filter(|e| e.2).map(|e| e.0.as_str()).collect();
    let root = hex::encode(draw::entrants_root(&eligible));
    if let (Some(recorded), Some(closed)) = (&l.recorded_root, l.closed) {
        if *recorded != root {
            return Err(format!(
                "the entrants root recorded at the close (leaf {closed}) does not match the {} entries before it in the ledger: an entrant was added or dropped",
                eligible.len()
            ));
        }
    }
    for (p, _) in winners {
        match first_entry.get(p).map(|&i| &l.entries[i]) {
            None => return Err(format!("winner {p} never entered")),
            Some((_, leaf, false)) => return Err(format!("winner {p} entered after the close (leaf {leaf})")),
            Some(_) => {}
        }
    }
    let prizes: Vec<(&str, u32)> = l.prizes.iter().map(|(name, count)| (name.as_str(), *count)).collect();
    let expected: Vec<(String, String)> =
        draw::winners(seed, l.beacon_round, beacon_signature.as_deref(), &eligible, &prizes)?
            .into_iter()
            .map(|(p, prize)| (p.to_owned(), prize.to_owned()))
            .collect();
    if expected != *winners {
        let show = |w: &[(String, String)]| {
            w.iter()
                .map(|(p, prize)| format!("{p}→{prize}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(format!(
            "the winners drawn (leaf {drawn_at}: {}) differ from what {} gives for the seed and the {} entrants ({})",
            show(winners),
            draw::ALGORITHM,
            eligible.len(),
            show(&expected)
        ));
    }
    Ok(format!(
        "fair: the seed matches the commitment (leaf {announced}), {} entrants before the close (root {root}), and the {} winners follow from them by {}",
        eligible.len(),
        winners.len(),
        draw::ALGORITHM
    ))
}
