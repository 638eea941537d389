//! Test helper for the crash test: appends to a SQLite ledger forever, in
//! batches of varying size, printing `ack SIZE` after each durable commit.
//! Usage: ledger-crash-writer LEDGER.db SIGNER-KEY-FILE
//!
//! `ledger-crash-writer count LEDGER.db` prints the number of leaves another
//! process sees (what a test cannot ask of a connection in its own process).

use std::io::Write;
use weiquan_ledger::{event_leaf, load_signer, Ledger};
use weiquan_store::SqliteStore;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let (Some("count"), Some(db)) = (args.get(1).map(String::as_str), args.get(2)) {
        use weiquan_ledger::LogStore;
        println!("{}", SqliteStore::open(std::path::Path::new(db))?.size()?);
        return Ok(());
    }
    let (Some(db), Some(key)) = (args.get(1), args.get(2)) else {
        return Err("usage: ledger-crash-writer LEDGER.db SIGNER-KEY-FILE".into());
    };
    let signer = load_signer(&std::fs::read_to_string(key)?)?;
    let mut ledger = Ledger::open(
        SqliteStore::open(std::path::Path::new(db))?,
        signer,
        "weiquan.test/crash",
    )?;
    let mut out = std::io::stdout().lock();
    let mut x = u64::from(std::process::id()) | 1;
    loop {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let batch = 1 + (x >> 33) % 64;
        let first = ledger.size();
        let leaves = (first..first + batch)
            .map(|n| event_leaf(&format!(r#"{{"n":{n}}}"#)))
            .collect::<Result<Vec<_>, _>>()?;
        ledger.append(leaves)?;
        writeln!(out, "ack {}", ledger.size())?;
        out.flush()?;
    }
}
