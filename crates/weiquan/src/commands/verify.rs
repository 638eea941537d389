//! `weiquan verify`: offline checks of a ledger, a receipt, a consistency proof.

use crate::cli::{VerifyArgs, VerifyCommand};
use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;
use weiquan_ledger::{load_verifier, verify_consistency, verify_log, verify_receipt, ConsistencyProof, Receipt};
use weiquan_store::SqliteStore;

/// Verification ran and found the object invalid (exit status 3).
#[derive(Debug, thiserror::Error)]
#[error("NOT VALID: {0}")]
pub struct Invalid(pub String);

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// A signed note (a checkpoint) from a file: its text with one newline after the last
/// signature line, however many the file ends with. `jq -r .checkpoint` adds one to a
/// note that already ends in one, and an editor may add more; they are not the note's,
/// and the signature does not cover them.
fn read_note(path: &Path) -> Result<String> {
    let text = read(path)?;
    Ok(format!("{}\n", text.trim_end_matches(['\n', '\r', ' ', '\t'])))
}

/// The top log checkpoint given with `--since`, checked before any log is
/// read: one that is not a signed note, or not signed with `--pub`'s key,
/// is the caller's to fix (exit 2), and says nothing about the logs.
fn since_checkpoint(path: &Path, v: &signed_note::StandardVerifier) -> Result<String> {
    let note = read_note(path)?;
    weiquan_ledger::open_checkpoint(note.as_bytes(), v, "given with --since").map_err(|e| {
        super::UsageError(format!(
            "{}: {e}; give a top log checkpoint signed with the key given with --pub (as in a cluster receipt's `top.checkpoint`)",
            path.display()
        ))
    })?;
    Ok(note)
}

fn verifier(path: &Path) -> Result<signed_note::StandardVerifier> {
    load_verifier(&read(path)?).map_err(|e| super::UsageError(format!("{}: {e}", path.display())).into())
}

/// Opens an existing ledger file (never creates one).
pub fn open_ledger_file(path: &Path) -> Result<SqliteStore> {
    if path.is_dir() {
        anyhow::bail!(
            "cannot read ledger {}: it is a folder; give the ledger's .db file",
            path.display()
        );
    }
    if !path.is_file() {
        anyhow::bail!("cannot read ledger {}: no such file", path.display());
    }
    Ok(SqliteStore::open_read_only(path)?)
}

/// Runs `weiquan verify`; prints what was checked when valid.
pub fn run(args: &VerifyArgs, out: &mut dyn Write) -> Result<()> {
    match &args.what {
        VerifyCommand::Log { path, public } => {
            let v = verifier(public)?;
            // A ledger too damaged to open is not valid, as one whose hashes differ is not.
            let mut store =
                open_ledger_file(path).map_err(|e| match e.downcast_ref::<weiquan_ledger::StoreError>() {
                    Some(s) if s.kind == weiquan_ledger::StoreErrorKind::Corrupt => {
                        Invalid(format!("{}: the file is damaged ({s})", path.display())).into()
                    }
                    _ => e,
                })?;
            let report = verify_log(&mut store, &v).map_err(|e| Invalid(format!("{}: {e}", path.display())))?;
            let findings = report.leaves
                - report.events_with_actor
                - report.events_without_actor
                - report.rulebooks
                - report.events_stand_in;
            writeln!(
                out,
                "valid: {} leaves rehashed ({} events naming who submitted them, {} of them with personal data salted, {} events of format 1 without, {findings} findings, {} rulebook records), {} checkpoints verified",
                report.leaves,
                report.events_with_actor,
                report.events_salted,
                report.events_without_actor,
                report.rulebooks,
                report.checkpoints
            )?;
            if report.events_stand_in > 0 {
                writeln!(
                    out,
                    "valid: {} more events are logged as stand-ins (their lines have no canonical JSON form): each carries its line as received, or its SHA-256 when too long",
                    report.events_stand_in
                )?;
            }
        }
        VerifyCommand::Receipt { file, public } => {
            let v = verifier(public)?;
            let receipt: Receipt = serde_json::from_str(&read(file)?)
                .map_err(|e| Invalid(format!("{} is not a weiquan receipt: {e}", file.display())))?;
            let cp = verify_receipt(&receipt, &v).map_err(|e| Invalid(format!("{}: {e}", file.display())))?;
            writeln!(
                out,
                "valid: leaf {} ({}) is in {}'s tree of {} leaves",
                receipt.index,
                weiquan_ledger::leaf_kind(&receipt.leaf),
                cp.origin,
                cp.size
            )?;
            opened(out, receipt.private.as_ref())?;
        }
        VerifyCommand::Cluster {
            logs,
            cluster,
            public,
            since,
        } => {
            let v = verifier(public)?;
            let since = since.as_deref().map(|p| since_checkpoint(p, &v)).transpose()?;
            let logs = weiquan_cluster::logs::Logs::at(logs, cluster).map_err(|e| super::UsageError(e.to_string()))?;
            let report = logs.verify(&v, since.as_deref().map(str::as_bytes)).map_err(|e| {
                // Tampered or inconsistent logs are not valid (exit 3); a log that cannot be read is an error (1).
                match e.is_invalid() {
                    true => anyhow::Error::from(Invalid(e.to_string())),
                    false => anyhow::Error::from(e),
                }
            })?;
            writeln!(
                out,
                "valid: the top log ({} entries, {} checkpoints verified) commits to {} partition logs",
                report.entries,
                report.top.checkpoints,
                report.partitions.len()
            )?;
            for (p, part) in report.partitions.iter().enumerate() {
                let stand_ins = match part.log.events_stand_in {
                    0 => String::new(),
                    n => format!(" ({n} of them events' stand-ins)"),
                };
                writeln!(
                    out,
                    "valid: partition {p}: {} leaves rehashed{stand_ins}, {} checkpoints verified, {} leaves committed by the top log",
                    part.log.leaves, part.log.checkpoints, part.committed
                )?;
            }
        }
        VerifyCommand::ClusterReceipt { file, public } => {
            let v = verifier(public)?;
            let receipt: weiquan_cluster::logs::ClusterReceipt = serde_json::from_str(&read(file)?)
                .map_err(|e| Invalid(format!("{} is not a weiquan cluster receipt: {e}", file.display())))?;
            let cp = weiquan_cluster::logs::verify_cluster_receipt(&receipt, &v)
                .map_err(|e| Invalid(format!("{}: {e}", file.display())))?;
            writeln!(
                out,
                "valid: leaf {} of partition {} ({}) is in its tree of {} leaves, which {}'s tree of {} leaves records",
                receipt.index,
                receipt.partition,
                weiquan_ledger::leaf_kind(&receipt.leaf),
                receipt.size,
                cp.origin,
                cp.size
            )?;
            opened(out, receipt.private.as_ref())?;
        }
        VerifyCommand::ClusterTiles { url, public, since } => {
            let v = verifier(public)?;
            let since = since.as_deref().map(|p| since_checkpoint(p, &v)).transpose()?;
            let mut fetch = Http::new(url)?;
            let report = weiquan_cluster::monitor::verify_served(&mut fetch, &v, since.as_deref().map(str::as_bytes))
                .map_err(|e| match e {
                weiquan_cluster::monitor::MonitorError::Invalid(why) => anyhow::Error::from(Invalid(why)),
                fetch => anyhow::Error::from(fetch),
            })?;
            writeln!(
                out,
                "valid: the top log of cluster {} ({} entries) commits to {} partition logs, every leaf served hashed again",
                report.cluster,
                report.entries,
                report.partitions.len()
            )?;
            for (p, part) in report.partitions.iter().enumerate() {
                let unsalted = match part.unsalted {
                    0 => String::new(),
                    n => format!("; {n} events logged as received (personal data in the clear)"),
                };
                writeln!(
                    out,
                    "valid: partition {p}: {} leaves, {} committed by the top log{unsalted}",
                    part.leaves, part.committed
                )?;
            }
        }
        VerifyCommand::Draw {
            ledger,
            lottery,
            public,
        } => {
            let v = verifier(public)?;
            let mut store = open_ledger_file(ledger)?;
            verify_log(&mut store, &v).map_err(|e| Invalid(format!("{}: {e}", ledger.display())))?;
            match super::draw_check::check(&mut store, lottery)? {
                Ok(fair) => writeln!(out, "{fair}")?,
                Err(why) => return Err(Invalid(format!("lottery {lottery}: {why}")).into()),
            }
        }
        VerifyCommand::Consistency {
            old,
            new,
            proof,
            public,
        } => {
            let v = verifier(public)?;
            let p: ConsistencyProof = serde_json::from_str(&read(proof)?)
                .map_err(|e| Invalid(format!("{} is not a consistency proof: {e}", proof.display())))?;
            verify_consistency(read_note(old)?.as_bytes(), read_note(new)?.as_bytes(), &p, &v)
                .map_err(|e| Invalid(e.to_string()))?;
            writeln!(
                out,
                "valid: the tree of {} leaves is a prefix of the tree of {} leaves",
                p.old_size, p.new_size
            )?;
        }
    }
    Ok(())
}

/// Fetches what a log server serves, one request at a time.
struct Http {
    base: String,
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl Http {
    fn new(url: &str) -> Result<Http> {
        let base = url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(super::UsageError(format!("{url} is not an http:// or https:// URL")).into());
        }
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .context("an HTTP client")?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        Ok(Http { base, client, runtime })
    }
}

impl weiquan_cluster::monitor::Fetch for Http {
    fn get(&mut self, path: &str) -> Result<Option<Vec<u8>>, String> {
        let url = format!("{}/{path}", self.base);
        self.runtime.block_on(async {
            let resp = self
                .client
                .get(&url)
                .send()
                .await
                .map_err(|e| format!("GET {url}: {e}"))?;
            match resp.status().as_u16() {
                200 => Ok(Some(
                    resp.bytes().await.map_err(|e| format!("GET {url}: {e}"))?.to_vec(),
                )),
                404 => Ok(None),
                status => {
                    let body = resp.text().await.unwrap_or_default();
                    Err(format!(
                        "GET {url}: status {status}: {}",
                        body.chars().take(300).collect::<String>()
                    ))
                }
            }
        })
    }
}

/// Says which salted members a receipt's private part opened, if it has one.
fn opened(out: &mut dyn Write, private: Option<&weiquan_ledger::Revealed>) -> Result<()> {
    if let Some(revealed) = private {
        let keys: Vec<&str> = revealed.values.keys().map(String::as_str).collect();
        writeln!(
            out,
            "valid: its salted {} opened with the receipt's salt",
            keys.join(", ")
        )?;
    }
    Ok(())
}
