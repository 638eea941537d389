//! A cluster's logs checked from outside, as a monitor reads them: only
//! what `weiquan cluster serve-logs` serves (each log's signed checkpoint
//! and its entry bundles) and the cluster's public key, no database
//! (`weiquan verify cluster-tiles`, `docs/scale.md`, "Serving the logs").
//!
//! Every leaf served is hashed again: each log's tree must have its signed
//! checkpoint's root, every partition root the top log records must be that
//! partition tree's at the size recorded (one root per size), and with a
//! top checkpoint kept from earlier the top log must extend it.

use crate::logs::{cluster_of_top, unsalted_event, TopEntry, Which};
use std::collections::BTreeMap;
use weiquan_ledger::{bundle_entries, open_checkpoint, parse_hash_text, tile_path, Frontier, Hash, StandardVerifier};

/// Reads what a log server serves.
pub trait Fetch {
    /// The body served at `path` (relative to the server's base, e.g.
    /// `p0/checkpoint`); `Ok(None)` when it is not found.
    fn get(&mut self, path: &str) -> Result<Option<Vec<u8>>, String>;
}

/// Why the served logs were not checked, or not found valid.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// Something could not be fetched (the server is down, or refused).
    #[error("{0}")]
    Fetch(String),
    /// What was served is not valid: a signature, a hash or a record differs.
    #[error("{0}")]
    Invalid(String),
}

/// What [`verify_served`] checked.
#[derive(Debug)]
pub struct ServedReport {
    /// The cluster, from the top log's origin.
    pub cluster: String,
    /// Entries of the top log (its signed size).
    pub entries: u64,
    /// Each partition log, in order.
    pub partitions: Vec<ServedPartition>,
}

/// What was checked of one partition log.
#[derive(Debug)]
pub struct ServedPartition {
    /// Its leaves, as its signed checkpoint says, each hashed again.
    pub leaves: u64,
    /// The size the top log's newest entry records: what it commits to.
    pub committed: u64,
    /// Events served as received, personal data included (format 1, or a
    /// stand-in carrying its line).
    pub unsalted: u64,
}

fn invalid(why: impl Into<String>) -> MonitorError {
    MonitorError::Invalid(why.into())
}

/// The checked checkpoint of `log` and its leaves, each hashed onto a tree
/// whose root is recorded at each of `sizes` (and at the checkpoint's).
struct Served {
    size: u64,
    leaves: Vec<Vec<u8>>,
    roots: BTreeMap<u64, Hash>,
}

fn fetch_log(
    fetch: &mut dyn Fetch,
    verifier: &StandardVerifier,
    log: &str,
    origin: impl Fn(&str) -> bool,
    sizes: &[u64],
) -> Result<(String, Served), MonitorError> {
    let path = format!("{log}/checkpoint");
    let note = fetch.get(&path).map_err(MonitorError::Fetch)?;
    let note =
        note.ok_or_else(|| MonitorError::Fetch(format!("{path}: not served (is this a weiquan log server?)")))?;
    let cp = open_checkpoint(&note, verifier, &format!("served at {path}")).map_err(|e| invalid(e.to_string()))?;
    if !origin(&cp.origin) {
        return Err(invalid(format!(
            "{path} is signed for `{}`, not for log `{log}`",
            cp.origin
        )));
    }
    if let Some(beyond) = sizes.iter().find(|&&s| s > cp.size) {
        return Err(invalid(format!(
            "the top log records log `{log}` at {beyond} leaves, but its signed checkpoint has {}",
            cp.size
        )));
    }
    let mut leaves = Vec::with_capacity(cp.size.min(1 << 20) as usize);
    for n in 0..cp.size.div_ceil(256) {
        let width = (cp.size - n * 256).min(256) as u32;
        let path = format!("{log}/{}", tile_path(None, n, width));
        let bundle = fetch.get(&path).map_err(MonitorError::Fetch)?;
        let bundle = bundle.ok_or_else(|| {
            invalid(format!(
                "{path} is not served, though the log's checkpoint has {} leaves",
                cp.size
            ))
        })?;
        let entries = bundle_entries(&bundle).ok_or_else(|| {
            invalid(format!(
                "{path}: an entry runs past the bundle's end, or its length does"
            ))
        })?;
        if entries.len() != width as usize {
            return Err(invalid(format!("{path} holds {} entries, not {width}", entries.len())));
        }
        leaves.extend(entries.into_iter().map(<[u8]>::to_vec));
    }
    let mut wanted: Vec<u64> = sizes.to_vec();
    wanted.sort_unstable();
    let mut wanted = wanted.into_iter().peekable();
    let mut tree = Frontier::new();
    let mut roots = BTreeMap::new();
    for leaf in &leaves {
        tree.append(leaf);
        while wanted.next_if(|&s| s < tree.size()).is_some() {}
        if wanted.next_if_eq(&tree.size()).is_some() {
            roots.insert(tree.size(), tree.root());
        }
    }
    roots.insert(0, Frontier::new().root());
    if tree.root() != cp.root {
        return Err(invalid(format!(
            "the leaves served for log `{log}` do not hash to its signed checkpoint's root (size {})",
            cp.size
        )));
    }
    roots.insert(cp.size, cp.root);
    Ok((
        cp.origin,
        Served {
            size: cp.size,
            leaves,
            roots,
        },
    ))
}

/// Checks every log a log server serves, with the cluster's key: see the
/// module's documentation. `since`, a top log checkpoint kept from earlier,
/// must be one the top log extends.
pub fn verify_served(
    fetch: &mut dyn Fetch,
    verifier: &StandardVerifier,
    since: Option<&[u8]>,
) -> Result<ServedReport, MonitorError> {
    let kept = since
        .map(|note| open_checkpoint(note, verifier, "given with --since"))
        .transpose()
        .map_err(|e| invalid(e.to_string()))?;
    let sizes: Vec<u64> = kept.iter().map(|k| k.size).collect();
    let (origin, top) = fetch_log(fetch, verifier, "top", |o| cluster_of_top(o).is_some(), &sizes)?;
    let cluster = (cluster_of_top(&origin).map(str::to_owned))
        .ok_or_else(|| invalid(format!("`{origin}` is not a cluster's top log")))?;
    if let Some(kept) = &kept {
        if kept.origin != origin {
            return Err(invalid(format!(
                "the checkpoint given with --since is of `{}`, not `{origin}`",
                kept.origin
            )));
        }
        if top.roots.get(&kept.size) != Some(&kept.root) {
            return Err(invalid(format!(
                "the top log does not extend the checkpoint given with --since (size {}): it was rewritten",
                kept.size
            )));
        }
    }
    // Every size each partition was recorded at, with its root (one root per size).
    let mut recorded: Vec<BTreeMap<u64, String>> = Vec::new();
    for (k, leaf) in top.leaves.iter().enumerate() {
        let entry = TopEntry::parse(leaf).map_err(|b| invalid(format!("the top log's entry {k} {}", b.0)))?;
        recorded.resize(recorded.len().max(entry.partitions.len()), BTreeMap::new());
        for p in 0..entry.partitions.len() as u32 {
            let head = entry
                .head(p)
                .map_err(|b| invalid(format!("the top log's entry {k} {}", b.0)))?;
            let root = recorded[p as usize]
                .entry(head.size)
                .or_insert_with(|| head.root.clone());
            if *root != head.root {
                return Err(invalid(format!(
                    "the top log records partition {p} at {} leaves with two roots (entry {k})",
                    head.size
                )));
            }
        }
    }
    let newest = match top.leaves.last() {
        Some(leaf) => TopEntry::parse(leaf).map_err(|b| invalid(b.0))?,
        None => {
            return Err(invalid(
                "the top log records no partition yet: check again after its first entry",
            ))
        }
    };
    let mut partitions = Vec::new();
    for (p, sizes) in recorded.iter().enumerate().take(newest.partitions.len()) {
        let which = Which::Partition(p as u32);
        let (log, want) = (which.short(), crate::logs::origin(&cluster, which));
        let at: Vec<u64> = sizes.keys().copied().collect();
        let (_, part) = fetch_log(fetch, verifier, &log, |o| o == want, &at)?;
        for (size, root) in sizes {
            let root = parse_hash_text(root, "a recorded root").map_err(|e| invalid(e.to_string()))?;
            if part.roots.get(size) != Some(&root) {
                return Err(invalid(format!(
                    "partition {p}'s log served is not the one the top log recorded: its root at {size} leaves differs"
                )));
            }
        }
        let unsalted = part.leaves.iter().filter(|l| unsalted_event(l)).count() as u64;
        partitions.push(ServedPartition {
            leaves: part.size,
            committed: newest.partitions[p].size,
            unsalted,
        });
    }
    Ok(ServedReport {
        cluster,
        entries: top.size,
        partitions,
    })
}
