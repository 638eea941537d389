//! Snapshot files of the sequencer's state, so that a start (or a rebuild
//! after a failed write) restores the newest one and replays only the ledger
//! leaves after it, instead of the whole ledger.
//!
//! A snapshot is a cache: the ledger stays the system of record. Each file
//! names the ledger size it covers and holds the tree hash at that size; one
//! whose hash is not the ledger's (another ledger, or leaves rewritten after a
//! failed write), that is damaged, or that another weiquan version or rulebook
//! wrote is skipped with a warning, and an older one or a full replay is used.
//!
//! Files are `core-<size>.wqsnap` in one folder, written to a temporary name,
//! synced and renamed, so a crash never leaves half a file under a final
//! name. The newest [`KEEP`] are kept.

use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Snapshot files kept: the newest, and one before it should the newest be
/// unusable.
pub const KEEP: usize = 2;

/// The first bytes of a sequencer snapshot file.
const MAGIC: &[u8; 8] = b"WQCORE01";

/// Where and how often the sequencer snapshots its state.
#[derive(Clone, Debug)]
pub struct Snapshots {
    /// The folder of snapshot files (created when missing).
    pub dir: PathBuf,
    /// Ledger leaves between two snapshots.
    pub every: u64,
}

/// Why a snapshot file was not used (the caller replays instead).
#[derive(Debug, thiserror::Error)]
pub enum SnapshotFileError {
    /// It could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Its contents are not a usable snapshot.
    #[error("{path}: {why}")]
    Unusable {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
}

impl Snapshots {
    fn path_for(&self, size: u64) -> PathBuf {
        self.dir.join(format!("core-{size:020}.wqsnap"))
    }

    /// The snapshot files present, newest (largest ledger size) first.
    pub fn newest_first(&self) -> Vec<(u64, PathBuf)> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut found: Vec<(u64, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name();
                let size = name
                    .to_str()?
                    .strip_prefix("core-")?
                    .strip_suffix(".wqsnap")?
                    .parse()
                    .ok()?;
                Some((size, e.path()))
            })
            .collect();
        found.sort_by_key(|f| std::cmp::Reverse(f.0));
        found
    }

    /// Writes the snapshot of a ledger of `size` leaves: the engine's own
    /// snapshot (which checks itself) and the rest of the state, `rest`,
    /// under a checksum. Older files beyond [`KEEP`] are removed.
    pub fn write(&self, size: u64, engine: &[u8], rest: &[u8]) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(&self.dir)?;
        // Half-written files of a process that died while writing.
        for stale in std::fs::read_dir(&self.dir)?.filter_map(Result::ok) {
            if stale.file_name().to_str().is_some_and(|n| n.ends_with(".wqsnap.tmp")) {
                let _ = std::fs::remove_file(stale.path());
            }
        }
        let path = self.path_for(size);
        let tmp = path.with_extension("wqsnap.tmp");
        {
            let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
            f.write_all(MAGIC)?;
            f.write_all(&(engine.len() as u64).to_le_bytes())?;
            f.write_all(engine)?;
            f.write_all(&Sha256::digest(rest))?;
            f.write_all(rest)?;
            f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        // The rename is durable once the folder is synced.
        std::fs::File::open(&self.dir)?.sync_all()?;
        for (_, old) in self.newest_first().into_iter().skip(KEEP) {
            if let Err(e) = std::fs::remove_file(&old) {
                tracing::warn!(path = %old.display(), error = %e, "cannot remove an old snapshot");
            }
        }
        Ok(path)
    }
}

/// A snapshot encoded by the sequencer, for the [`Writer`] to store.
pub struct Encoded {
    /// Ledger leaves it covers.
    pub size: u64,
    /// The engine's snapshot.
    pub engine: Vec<u8>,
    /// The rest of the state.
    pub rest: Vec<u8>,
    /// Milliseconds the sequencer spent encoding it (for the log line).
    pub encode_ms: u64,
}

/// Stores snapshots on a thread of its own: the sequencer stops only to
/// encode its state, not for the checksum, the write and the sync (at ten
/// million events, a 400 MB file). One file at a time; dropping the writer
/// waits for the file being written.
pub struct Writer {
    tx: Option<std::sync::mpsc::SyncSender<Encoded>>,
    busy: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    /// Starts the thread that writes into `snapshots`.
    pub fn start(snapshots: Snapshots) -> std::io::Result<Writer> {
        use std::sync::atomic::Ordering;
        let (tx, rx) = std::sync::mpsc::sync_channel::<Encoded>(1);
        let busy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let done = busy.clone();
        let thread = std::thread::Builder::new()
            .name("weiquan-snapshots".into())
            .spawn(move || {
                for job in rx {
                    let started = std::time::Instant::now();
                    match snapshots.write(job.size, &job.engine, &job.rest) {
                        Ok(path) => tracing::info!(
                            path = %path.display(),
                            size = job.size,
                            bytes = job.engine.len() + job.rest.len(),
                            encode_ms = job.encode_ms,
                            write_ms = started.elapsed().as_millis() as u64,
                            "snapshot written"
                        ),
                        Err(e) => tracing::error!(
                            dir = %snapshots.dir.display(),
                            error = %e,
                            "no snapshot written; the ledger is replayed further at the next start"
                        ),
                    }
                    done.store(false, Ordering::SeqCst);
                }
            })?;
        Ok(Writer {
            tx: Some(tx),
            busy,
            thread: Some(thread),
        })
    }

    /// Whether a file is still being written (the next snapshot waits: one at a time).
    pub fn busy(&self) -> bool {
        self.busy.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Hands a snapshot over; false if the thread is gone (nothing is written).
    pub fn submit(&self, job: Encoded) -> bool {
        self.busy.store(true, std::sync::atomic::Ordering::SeqCst);
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(job).is_ok());
        if !sent {
            self.busy.store(false, std::sync::atomic::Ordering::SeqCst);
        }
        sent
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads a snapshot file: the engine's part and the rest, whose checksum is checked.
pub fn read(path: &Path) -> Result<(Vec<u8>, Vec<u8>), SnapshotFileError> {
    let bytes = std::fs::read(path).map_err(|source| SnapshotFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    let unusable = |why: &str| SnapshotFileError::Unusable {
        path: path.to_owned(),
        why: why.to_owned(),
    };
    let rest = bytes
        .strip_prefix(MAGIC.as_slice())
        .ok_or_else(|| unusable("not a weiquan sequencer snapshot (no WQCORE01 header)"))?;
    let (len, rest) = rest.split_at_checked(8).ok_or_else(|| unusable("cut short"))?;
    let len = u64::from_le_bytes(len.try_into().map_err(|_| unusable("cut short"))?);
    let len = usize::try_from(len).map_err(|_| unusable("engine part too large"))?;
    let (engine, rest) = rest.split_at_checked(len).ok_or_else(|| unusable("cut short"))?;
    let (sum, rest) = rest.split_at_checked(32).ok_or_else(|| unusable("cut short"))?;
    if Sha256::digest(rest).as_slice() != sum {
        return Err(unusable("checksum does not match (damaged or partly written)"));
    }
    Ok((engine.to_vec(), rest.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_round_trip_and_only_the_newest_are_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let s = Snapshots {
            dir: dir.path().join("snaps"),
            every: 10,
        };
        assert!(s.newest_first().is_empty(), "a missing folder has none");
        for size in [10u64, 30, 20] {
            s.write(size, format!("engine {size}").as_bytes(), b"rest")
                .expect("written");
        }
        let sizes: Vec<u64> = s.newest_first().iter().map(|(n, _)| *n).collect();
        assert_eq!(sizes, [30, 20], "the oldest is removed");
        let (engine, rest) = read(&s.newest_first()[0].1).expect("reads");
        assert_eq!(
            (engine.as_slice(), rest.as_slice()),
            (b"engine 30".as_slice(), b"rest".as_slice())
        );
    }

    #[test]
    fn a_damaged_or_cut_file_is_unusable() {
        let dir = tempfile::tempdir().expect("temp dir");
        let s = Snapshots {
            dir: dir.path().to_owned(),
            every: 10,
        };
        let path = s.write(5, b"engine", b"the rest of the state").expect("written");
        let good = std::fs::read(&path).expect("readable");
        let mut damaged = good.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        for bad in [
            damaged,
            good[..good.len() / 2].to_vec(),
            b"WQCORE01".to_vec(),
            b"junk".to_vec(),
        ] {
            std::fs::write(&path, &bad).expect("writable");
            assert!(matches!(read(&path), Err(SnapshotFileError::Unusable { .. })));
        }
        assert!(matches!(
            read(&dir.path().join("none")),
            Err(SnapshotFileError::Read { .. })
        ));
    }
}
