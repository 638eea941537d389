//! Every input under `fuzz/corpus/TARGET/` and `fuzz/regressions/TARGET/`
//! (each a crash once found and fixed) goes through its target again on
//! every run of the suite.

use std::path::PathBuf;

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

#[test]
fn every_committed_fuzz_input_still_passes_its_target() {
    let mut total = 0;
    for (name, target) in weiquan_fuzz::TARGETS {
        let mut inputs = 0;
        for kind in ["corpus", "regressions"] {
            let dir = fuzz_dir().join(kind).join(name);
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries {
                let path = entry.expect("a directory entry").path();
                let data = std::fs::read(&path).expect("a corpus file");
                let run = std::panic::catch_unwind(|| target(&data));
                assert!(run.is_ok(), "{name}: {} fails its target", path.display());
                inputs += 1;
            }
        }
        assert!(inputs > 0, "{name}: no committed corpus under {}", fuzz_dir().display());
        total += inputs;
    }
    eprintln!("{total} fuzz inputs replayed");
}
