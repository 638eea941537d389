//! `weiquan keygen`: an Ed25519 signing key for a ledger.

use crate::cli::KeygenArgs;
use anyhow::{Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// `PATH.pub` beside `PATH`.
pub fn pub_path(key: &Path) -> PathBuf {
    let mut p = key.as_os_str().to_owned();
    p.push(".pub");
    PathBuf::from(p)
}

/// Writes a new key pair: `path` (mode 0600, never overwritten) and `path.pub`.
pub fn write_key_pair(path: &Path, name: &str) -> Result<()> {
    let (skey, vkey) = weiquan_ledger::generate_key(name).map_err(|e| super::UsageError(e.to_string()))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(path).with_context(|| {
        format!(
            "cannot create {} (it must not exist yet; keys are never overwritten)",
            path.display()
        )
    })?;
    writeln!(f, "{skey}").with_context(|| format!("cannot write {}", path.display()))?;
    let public = pub_path(path);
    std::fs::write(&public, format!("{vkey}\n")).with_context(|| format!("cannot write {}", public.display()))?;
    Ok(())
}

/// Runs `weiquan keygen`.
pub fn run(args: &KeygenArgs, err: &mut dyn Write) -> Result<()> {
    write_key_pair(&args.out, &args.name)?;
    writeln!(
        err,
        "wrote private key {} (keep it secret) and public key {}",
        args.out.display(),
        pub_path(&args.out).display()
    )?;
    Ok(())
}
