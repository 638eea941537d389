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
//! name. The newest [`KEEP`] are kept. Each is sealed with an HMAC under a
//! secret derived from the ledger's signing key: a state the server loads
//! was written by a holder of that key, not by whoever can write to the folder.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Snapshot files kept: the newest, and one before it should the newest be
/// unusable.
pub const KEEP: usize = 2;

/// The first bytes of a sequencer snapshot file. They name the layout of the
/// file and of what it holds besides the engine (`core::Replayed`): a test in
/// `core.rs` fails when that encoding changes, and the number here must then
/// change too, so that a build never misreads another's file. (The engine's
/// part carries its own fingerprint.)
const MAGIC: &[u8; 8] = b"WQCORE05";

/// Where and how often the sequencer snapshots its state.
#[derive(Clone, Debug)]
pub struct Snapshots {
    /// The folder of snapshot files (created when missing).
    pub dir: PathBuf,
    /// Ledger leaves between two snapshots (at least 1; the CLI's `0` means no snapshots at all).
    pub every: u64,
}

/// Why a snapshot file was not used (the caller replays instead).
#[derive(Debug, thiserror::Error)]
pub enum SnapshotFileError {
    /// It could not be read.
    #[error("cannot read {path}: {source} (check the folder's permissions; the ledger is replayed instead)")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Its contents are not a usable snapshot (or its seal is not this key's).
    #[error("{path}: {why}")]
    Unusable {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
}

impl Snapshots {
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
}

/// Snapshot files with the secret that seals them.
#[derive(Clone)]
pub struct Store {
    /// Where and how often.
    pub snapshots: Snapshots,
    key: [u8; 32],
}

impl Store {
    /// Snapshots sealed under a secret derived from `key_material` (the
    /// ledger's signing key file).
    pub fn new(snapshots: Snapshots, key_material: &[u8]) -> Store {
        Store {
            snapshots,
            key: crate::derived_secret("weiquan snapshots v1", key_material),
        }
    }

    /// The seal of a snapshot's two parts (their lengths included, so bytes cannot move between them).
    fn seal(&self, engine: &[u8], rest: &[u8]) -> Hmac<Sha256> {
        // HMAC takes a key of any length: this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!());
        mac.update(MAGIC);
        mac.update(&(engine.len() as u64).to_le_bytes());
        mac.update(engine);
        mac.update(rest);
        mac
    }

    /// Writes the snapshot of a ledger of `size` leaves: the engine's own
    /// snapshot (which checks itself) and the rest of the state, `rest`,
    /// sealed. Older files beyond [`KEEP`] are removed.
    pub fn write(&self, size: u64, engine: &[u8], rest: &[u8]) -> std::io::Result<PathBuf> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let dir = &self.snapshots.dir;
        // The state holds personal data: the folder is the owner's alone, as the data folder is.
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        // Half-written files of a process that died while writing.
        for stale in std::fs::read_dir(dir)?.filter_map(Result::ok) {
            if stale.file_name().to_str().is_some_and(|n| n.ends_with(".wqsnap.tmp")) {
                let _ = std::fs::remove_file(stale.path());
            }
        }
        let path = dir.join(format!("core-{size:020}.wqsnap"));
        let tmp = path.with_extension("wqsnap.tmp");
        {
            // A new file only (never through a link planted under its name), readable by the owner alone.
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            let mut f = std::io::BufWriter::new(file);
            f.write_all(MAGIC)?;
            f.write_all(&(engine.len() as u64).to_le_bytes())?;
            f.write_all(engine)?;
            f.write_all(&self.seal(engine, rest).finalize().into_bytes())?;
            f.write_all(rest)?;
            f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        // The rename is durable once the folder is synced.
        std::fs::File::open(dir)?.sync_all()?;
        for (_, old) in self.snapshots.newest_first().into_iter().skip(KEEP) {
            if let Err(e) = std::fs::remove_file(&old) {
                tracing::warn!(path = %old.display(), error = %e, "cannot remove an old snapshot");
            }
        }
        Ok(path)
    }

    /// Reads a snapshot file: the engine's part and the rest, once its seal is checked.
    pub fn read(&self, path: &Path) -> Result<Opened, SnapshotFileError> {
        let bytes = std::fs::read(path).map_err(|source| SnapshotFileError::Read {
            path: path.to_owned(),
            source,
        })?;
        let unusable = |why: &str| SnapshotFileError::Unusable {
            path: path.to_owned(),
            why: why.to_owned(),
        };
        let rest = bytes.strip_prefix(MAGIC.as_slice()).ok_or_else(|| {
            let magic = String::from_utf8_lossy(&MAGIC[..]);
            match bytes.get(..MAGIC.len()) {
                // Another build's format (the magic names it): the ledger is replayed instead.
                Some(other) if other.starts_with(b"WQCORE") => unusable(&format!(
                    "a snapshot of another format ({}); this build reads {magic}",
                    String::from_utf8_lossy(other)
                )),
                _ => unusable(&format!("not a weiquan sequencer snapshot (no {magic} header)")),
            }
        })?;
        let (len, rest) = rest.split_at_checked(8).ok_or_else(|| unusable("cut short"))?;
        let len = u64::from_le_bytes(len.try_into().map_err(|_| unusable("cut short"))?);
        let len = usize::try_from(len).map_err(|_| unusable("engine part too large"))?;
        let (engine, rest) = rest.split_at_checked(len).ok_or_else(|| unusable("cut short"))?;
        let (tag, rest) = rest.split_at_checked(32).ok_or_else(|| unusable("cut short"))?;
        self.seal(engine, rest)
            .verify_slice(tag)
            .map_err(|_| unusable("its seal does not match: damaged, or written under another signing key"))?;
        let engine_at = MAGIC.len() + 8;
        Ok(Opened {
            engine: engine_at..engine_at + engine.len(),
            rest: bytes.len() - rest.len()..bytes.len(),
            bytes,
        })
    }
}

/// A snapshot file read and its seal checked: its two parts, in the file's
/// own buffer (a copy of each would double the memory a restart needs).
pub struct Opened {
    bytes: Vec<u8>,
    engine: std::ops::Range<usize>,
    rest: std::ops::Range<usize>,
}

impl Opened {
    /// The engine's snapshot.
    pub fn engine(&self) -> &[u8] {
        &self.bytes[self.engine.clone()]
    }

    /// The rest of the state.
    pub fn rest(&self) -> &[u8] {
        &self.bytes[self.rest.clone()]
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
    /// The ledger size of the newest file written (0: none yet).
    written: std::sync::Arc<std::sync::atomic::AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    /// Starts the thread that writes into `store`.
    pub fn start(store: Store) -> std::io::Result<Writer> {
        use std::sync::atomic::Ordering;
        let (tx, rx) = std::sync::mpsc::sync_channel::<Encoded>(1);
        let busy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let written = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (done, newest) = (busy.clone(), written.clone());
        let thread = std::thread::Builder::new()
            .name("weiquan-snapshots".into())
            .spawn(move || {
                for job in rx {
                    let started = std::time::Instant::now();
                    match store.write(job.size, &job.engine, &job.rest) {
                        Ok(path) => {
                            newest.store(job.size, Ordering::SeqCst);
                            tracing::info!(
                            path = %path.display(),
                            size = job.size,
                            bytes = job.engine.len() + job.rest.len(),
                            encode_ms = job.encode_ms,
                            write_ms = started.elapsed().as_millis() as u64,
                            "snapshot written"
                            )
                        }
                        Err(e) => tracing::error!(
                            dir = %store.snapshots.dir.display(),
                            error = %e,
                            "no snapshot written (nothing is lost: the next start replays further); check the folder's space and permissions; the next is taken one interval later"
                        ),
                    }
                    done.store(false, Ordering::SeqCst);
                }
            })?;
        Ok(Writer {
            tx: Some(tx),
            busy,
            written,
            thread: Some(thread),
        })
    }

    /// Whether a file is still being written (the next snapshot waits: one
    /// at a time). A thread that is gone writes nothing: the next submit
    /// finds it so, and a new writer is started.
    pub fn busy(&self) -> bool {
        let gone = self.thread.as_ref().is_none_or(std::thread::JoinHandle::is_finished);
        self.busy.load(std::sync::atomic::Ordering::SeqCst) && !gone
    }

    /// The ledger size of the newest file this writer wrote (0: none yet).
    pub fn written(&self) -> u64 {
        self.written.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Returns once no file is being written.
    pub fn wait_idle(&self) {
        while self.busy() {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path, key: &[u8]) -> Store {
        Store::new(
            Snapshots {
                dir: dir.to_owned(),
                every: 10,
            },
            key,
        )
    }

    #[test]
    fn files_round_trip_and_only_the_newest_are_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let s = store(&dir.path().join("snaps"), b"key");
        assert!(s.snapshots.newest_first().is_empty(), "a missing folder has none");
        for size in [10u64, 30, 20] {
            s.write(size, format!("engine {size}").as_bytes(), b"rest")
                .expect("written");
        }
        let files = s.snapshots.newest_first();
        let sizes: Vec<u64> = files.iter().map(|(n, _)| *n).collect();
        assert_eq!(sizes, [30, 20], "the oldest is removed");
        let opened = s.read(&files[0].1).expect("reads");
        assert_eq!(
            (opened.engine(), opened.rest()),
            (b"engine 30".as_slice(), b"rest".as_slice())
        );
    }

    #[test]
    fn a_damaged_cut_or_foreign_file_is_unusable() {
        let dir = tempfile::tempdir().expect("temp dir");
        let s = store(dir.path(), b"key");
        let path = s.write(5, b"engine", b"the rest of the state").expect("written");
        let good = std::fs::read(&path).expect("readable");
        assert!(
            matches!(
                store(dir.path(), b"another key").read(&path),
                Err(SnapshotFileError::Unusable { .. })
            ),
            "sealed under another key"
        );
        let mut damaged = good.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        // Bytes moved from the engine's part to the rest: the same bytes, another split.
        let mut moved = good.clone();
        moved[MAGIC.len()..MAGIC.len() + 8].copy_from_slice(&5u64.to_le_bytes());
        for bad in [
            damaged,
            moved,
            good[..good.len() / 2].to_vec(),
            MAGIC.to_vec(),
            b"junk".to_vec(),
        ] {
            std::fs::write(&path, &bad).expect("writable");
            assert!(matches!(s.read(&path), Err(SnapshotFileError::Unusable { .. })));
        }
        assert!(matches!(
            s.read(&dir.path().join("none")),
            Err(SnapshotFileError::Read { .. })
        ));
    }

    #[test]
    fn a_half_written_file_is_removed_by_the_next_write() {
        let dir = tempfile::tempdir().expect("temp dir");
        let s = store(dir.path(), b"key");
        let stale = dir.path().join("core-00000000000000000007.wqsnap.tmp");
        std::fs::write(&stale, b"half").expect("writable");
        assert!(s.snapshots.newest_first().is_empty(), "a temporary file is no snapshot");
        s.write(9, b"e", b"r").expect("written");
        assert!(!stale.exists());
    }

    #[test]
    fn the_writer_stores_in_the_background_and_finishes_before_it_is_dropped() {
        let dir = tempfile::tempdir().expect("temp dir");
        let s = store(dir.path(), b"key");
        let writer = Writer::start(s.clone()).expect("thread");
        let job = Encoded {
            size: 3,
            engine: vec![1; 1 << 20],
            rest: vec![2; 1 << 20],
            encode_ms: 0,
        };
        assert!(writer.submit(job));
        drop(writer);
        let files = s.snapshots.newest_first();
        assert_eq!(files.len(), 1);
        let opened = s.read(&files[0].1).expect("complete once the writer is dropped");
        assert_eq!((opened.engine(), opened.rest()), (&[1; 1 << 20][..], &[2; 1 << 20][..]));
    }
}
