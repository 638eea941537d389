//! `weiquan ledger`: read checkpoints, receipts and proofs out of a ledger file.

use crate::cli::{LedgerArgs, LedgerCommand};
use anyhow::Result;
use std::io::Write;
use weiquan_ledger::{ConsistencyProof, LogStore};

/// Runs `weiquan ledger`.
pub fn run(args: &LedgerArgs, out: &mut dyn Write) -> Result<()> {
    match &args.what {
        LedgerCommand::Checkpoint { path, size } => {
            let mut store = super::verify::open_ledger_file(path)?;
            let note = match size {
                None => store.latest_checkpoint()?,
                Some(s) => store.checkpoints()?.into_iter().find(|(c, _)| c == s).map(|(_, n)| n),
            };
            let note = note.ok_or_else(|| {
                anyhow::anyhow!(
                    "{} has no checkpoint{}",
                    path.display(),
                    size.map(|s| format!(" for size {s}")).unwrap_or_default()
                )
            })?;
            out.write_all(&note)?;
        }
        LedgerCommand::Receipt { path, index } => {
            let mut ledger = reader(path)?;
            let receipt = ledger.receipt(*index)?;
            serde_json::to_writer_pretty(&mut *out, &receipt)?;
            writeln!(out)?;
        }
        LedgerCommand::Proof { path, old, new } => {
            let mut ledger = reader(path)?;
            let new = new.unwrap_or(ledger.size());
            let proof = ledger.consistency_proof(*old, new)?;
            serde_json::to_writer_pretty(&mut *out, &ConsistencyProof::new(*old, new, &proof))?;
            writeln!(out)?;
        }
    }
    Ok(())
}

/// A ledger opened for reading only: proofs and receipts need no key.
fn reader(path: &std::path::Path) -> Result<weiquan_ledger::LedgerReader<weiquan_store::SqliteStore>> {
    Ok(weiquan_ledger::LedgerReader::open(super::verify::open_ledger_file(
        path,
    )?)?)
}
