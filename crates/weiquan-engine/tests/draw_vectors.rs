//! The draw's published test vectors (docs/draw.md) and its fairness.

use weiquan_engine::draw;

fn vectors() -> Vec<serde_json::Value> {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/draw.md")).expect("docs/draw.md");
    let start = doc.find("<!-- vectors -->").expect("vector block");
    let end = doc.find("<!-- /vectors -->").expect("vector block end");
    doc[start..end]
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("vector is JSON"))
        .collect()
}

#[test]
fn published_vectors_are_reproduced() {
    let vs = vectors();
    assert!(vs.len() >= 4);
    for v in vs {
        let seed = v["seed"].as_str().expect("seed");
        let entrants: Vec<&str> = v["entrants"]
            .as_array()
            .expect("entrants")
            .iter()
            .map(|e| e.as_str().expect("id"))
            .collect();
        let counts: Vec<u32> = v["prize_counts"]
            .as_array()
            .expect("counts")
            .iter()
            .map(|c| c.as_u64().expect("n") as u32)
            .collect();
        assert_eq!(
            draw::commitment(seed),
            v["commitment"].as_str().expect("commitment"),
            "{seed}"
        );
        assert_eq!(
            hex::encode(draw::entrants_root(&entrants)),
            v["entrants_root"].as_str().expect("root"),
            "{seed}"
        );
        let got: Vec<(String, u64)> = draw::draw(seed, &entrants, &counts)
            .into_iter()
            .map(|(e, p)| (entrants[e].to_owned(), p as u64))
            .collect();
        let want: Vec<(String, u64)> = v["winners"]
            .as_array()
            .expect("winners")
            .iter()
            .map(|w| (w[0].as_str().expect("p").to_owned(), w[1].as_u64().expect("prize")))
            .collect();
        assert_eq!(got, want, "{seed}");
    }
}

/// Chi-square critical values at α = 0.001 by degrees of freedom.
fn critical(df: usize) -> f64 {
    match df {
        2 => 13.816,
        6 => 22.458,
        9 => 27.877,
        12 => 32.909,
        _ => panic!("no table entry for df {df}"),
    }
}

#[test]
fn every_entrant_is_equally_likely_to_win_any_slot() {
    const SEEDS: usize = 20_000;
    for n in [3usize, 7, 10, 13] {
        let names: Vec<String> = (0..n).map(|i| format!("entrant-{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        // Slot 0 (first prize) and slot 1 (second prize, drawn from the remaining pool).
        for slot in [0usize, 1] {
            let mut wins = vec![0u64; n];
            for s in 0..SEEDS {
                let w = draw::draw(&format!("fairness-{s}"), &refs, &[2]);
                wins[w[slot].0] += 1;
            }
            let expected = SEEDS as f64 / n as f64;
            let chi2: f64 = wins.iter().map(|&o| (o as f64 - expected).powi(2) / expected).sum();
            assert!(
                chi2 < critical(n - 1),
                "n={n} slot={slot}: χ²={chi2:.2} ≥ {} (wins {wins:?})",
                critical(n - 1)
            );
        }
    }
}

#[test]
fn rejection_removes_modulo_bias() {
    // With n just above 2^63, a plain `x mod n` would give the lower half of 0..n twice the
    // chance of the upper half (x in [n, 2^64) folds onto [0, 2^64 − n)). The draw must not.
    let n: u64 = (1u64 << 63) + 12345;
    let mut lower = 0u32;
    const SAMPLES: u32 = 4000;
    for s in 0..SAMPLES {
        let x = draw::uniform_below(&format!("bias-{s}"), &[0u8; 32], n);
        assert!(x < n);
        if x < n / 2 {
            lower += 1;
        }
    }
    let share = f64::from(lower) / f64::from(SAMPLES);
    assert!(
        (share - 0.5).abs() < 0.04,
        "share in the lower half {share:.3}; plain modulo would give about 0.667"
    );
}
