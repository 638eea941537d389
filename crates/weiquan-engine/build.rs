//! Fingerprints the engine's state layout for its snapshots.
//!
//! A snapshot is postcard: it does not describe itself, so state written by
//! an engine whose types differ would decode into garbage, not an error. The
//! fingerprint hashes every source file that defines the engine's state (this
//! crate's, and the event types it keeps), and a snapshot is restored only by
//! an engine with the same fingerprint. Any edit to those files makes older
//! snapshots unusable, and the server replays instead: wasteful at worst,
//! never wrong.

use std::hash::{Hash, Hasher};
use std::path::Path;

fn main() {
    let mut files: Vec<std::path::PathBuf> = Vec::new();
    let mut dirs = vec![Path::new("src").to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)
            .expect("the engine's src folder is readable")
            .flatten()
        {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.push("../weiquan-events/src/model.rs".into());
    files.push("../weiquan-events/src/time.rs".into());
    files.sort();
    // SipHash with fixed keys: the same sources give the same fingerprint.
    let mut h = std::hash::DefaultHasher::new();
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        f.hash(&mut h);
        std::fs::read(f).expect("a source file is readable").hash(&mut h);
    }
    println!("cargo:rustc-env=WEIQUAN_STATE_LAYOUT={:016x}", h.finish());
}
