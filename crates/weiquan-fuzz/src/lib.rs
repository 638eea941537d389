//! The fuzz targets, as functions of the input bytes. Each must return for
//! every input — a panic is a finding — and checks what must hold on the way
//! (a leaf's commitments open to the line it came from, a tile path reads back
//! as itself). `fuzz/` runs them under libFuzzer (`cargo fuzz run NAME`);
//! `tests/corpora.rs` replays every committed corpus and regression input on
//! each run of the suite.

use weiquan_ledger::{Actor, Receipt};

/// A fuzz target: it must return for every input.
pub type Target = fn(&[u8]);

/// Every target, by name (the folder names under `fuzz/corpus/`).
pub const TARGETS: &[(&str, Target)] = &[
    ("event", event),
    ("ndjson", ndjson),
    ("checkpoint", checkpoint),
    ("tile_path", tile_path),
    ("receipt", receipt),
    ("ingest", ingest),
];

/// Event parsing, then the leaf it would make: salting its personal members
/// and restoring them gives the event back exactly.
pub fn event(data: &[u8]) {
    let Ok(line) = std::str::from_utf8(data) else { return };
    let Ok((event, extras)) = weiquan_events::parse_event_with_extras(line) else {
        return;
    };
    let actor = Actor {
        role: "platform".into(),
        key: None,
        on_behalf: None,
    };
    let Ok(actor) = actor.canonical() else { return };
    let private = |k: &str| weiquan_events::is_private_member(&event.body, &extras, false, k);
    let Ok(salted) = weiquan_ledger::salted_event_leaf(line, &actor, private, &[9; 32]) else {
        return; // too large for a leaf: refused with an error, not a panic
    };
    let leaf = std::str::from_utf8(&salted.leaf).expect("a leaf is UTF-8");
    let read = weiquan_ledger::leaf_event(leaf).expect("an event leaf reads back");
    let values: Option<serde_json::Map<String, serde_json::Value>> = salted
        .values
        .as_deref()
        .map(|v| serde_json::from_slice(v).expect("values are a JSON object"));
    let restored =
        weiquan_ledger::restore_event(&read.event, &read.salted, &read.raw, values.as_ref()).expect("restorable");
    // Salting the restored event again gives the same leaf, members without a
    // canonical form (written as their text) included.
    let again = weiquan_ledger::salted_event_leaf(&restored, &actor, private, &[9; 32]).expect("salts again");
    assert_eq!(again.leaf, salted.leaf, "salting then restoring changes the event");
    if read.raw.is_empty() {
        let canonical = |s: &str| weiquan_ledger::event_leaf(s).expect("canonical");
        assert_eq!(
            canonical(&restored),
            canonical(line),
            "salting then restoring changes the event"
        );
    }
    if let Some(values) = &values {
        let event: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&read.event).expect("object");
        weiquan_ledger::open_values(&event, &read.salted, &hex(&[9; 32]), values).expect("the values open the leaf");
    }
    // A leaf computed under one salt is recognised in the leaf stored under
    // another (a partition log's writers each draw their own), and in one
    // whose salt was erased; a leaf of another event is not.
    let other = weiquan_ledger::salted_event_leaf(line, &actor, private, &[7; 32]).expect("salts under another");
    let ours = weiquan_ledger::Salted {
        leaf: &salted.leaf,
        values: salted.values.as_deref(),
        salt: &[9; 32],
    };
    assert!(ours.is(&other.leaf, Some(&[7; 32])), "the same leaf under another salt");
    assert!(ours.is(&other.leaf, None), "the same leaf, its salt erased");
    if salted.values.is_some() {
        assert!(
            !ours.is(&other.leaf, Some(&[8; 32])),
            "a leaf under another salt than its own"
        );
    }
    let mut changed = other.leaf.clone();
    if let Some(b) = changed.iter_mut().rev().find(|b| b.is_ascii_digit()) {
        *b = if *b == b'0' { b'1' } else { b'0' };
        assert!(!ours.is(&changed, Some(&[7; 32])), "a changed leaf");
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// NDJSON framing and parsing of a whole file: BOM, CRLF, blank lines, bad UTF-8, NULs.
pub fn ndjson(data: &[u8]) {
    let mut reader = weiquan_events::LineReader::new(data);
    let mut dedupe = weiquan_events::Dedupe::new();
    let mut last = 0;
    while let Ok(Some(line)) = reader.next_line() {
        let parsed = weiquan_events::parse_line(line);
        let n = match &parsed {
            Ok(p) => {
                dedupe.first_time(p.digest);
                p.line
            }
            Err(r) => r.line,
        };
        assert!(n > last, "line numbers increase: {n} after {last}");
        last = n;
    }
}

/// A checkpoint as a signed note, against the published test key.
pub fn checkpoint(data: &[u8]) {
    let verifier = weiquan_ledger::load_verifier(VECTOR_KEY).expect("the vector key");
    if let Ok(cp) = weiquan_ledger::open_checkpoint(data, &verifier, "fuzzed") {
        // What verified is what the signed text says.
        let text = String::from_utf8_lossy(data);
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(cp.origin.as_str()));
        assert_eq!(lines.next(), Some(cp.size.to_string().as_str()));
    }
}

/// The public key of `docs/vectors/ledger` (a published test key).
const VECTOR_KEY: &str = "weiquan.example/vector+ed916bee+AWbe7Qm4U0gkam9fih+5HOREsR7+89y58hIf+l1OPGp0";
/// Its checkpoint for size 3.
const VECTOR_CHECKPOINT: &[u8] = include_bytes!("../../../docs/vectors/ledger/checkpoint");

/// A tile path: what parses is canonical, so that one tile has one path.
pub fn tile_path(data: &[u8]) {
    let Ok(path) = std::str::from_utf8(data) else { return };
    if let Some(req) = weiquan_ledger::parse_tile_path(path) {
        let back = weiquan_ledger::tile_path(req.level, req.index, req.width);
        assert_eq!(
            back,
            path.strip_prefix('/').unwrap_or(path),
            "a second path for one tile"
        );
    }
}

/// A receipt or consistency proof as a user uploads it, against the test key.
pub fn receipt(data: &[u8]) {
    let verifier = weiquan_ledger::load_verifier(VECTOR_KEY).expect("the vector key");
    if let Ok(r) = serde_json::from_slice::<Receipt>(data) {
        let _ = weiquan_ledger::verify_receipt(&r, &verifier);
        if let Some(revealed) = &r.private {
            let _ = weiquan_ledger::open_leaf(&r.leaf, revealed);
        }
    }
    if let Ok(p) = serde_json::from_slice::<weiquan_ledger::ConsistencyProof>(data) {
        let _ = weiquan_ledger::verify_consistency(VECTOR_CHECKPOINT, VECTOR_CHECKPOINT, &p, &verifier);
    }
}

/// The HTTP ingest path: framing, parsing, role checks, salting, engine, append.
pub fn ingest(data: &[u8]) {
    weiquan_server::fuzzing::ingest(data);
}
