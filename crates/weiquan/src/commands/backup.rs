//! `weiquan backup` and `weiquan restore`: a consistent copy of a server's
//! data folder (SQLite online backup, so the server may keep running), and
//! putting one back where a server will open it, verified.

use crate::cli::{BackupArgs, RestoreArgs};
use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;
use weiquan_store::SqliteStore;

/// The files a backup holds beside the database.
const KEY_FILES: [&str; 2] = ["ledger.key", "ledger.key.pub"];

/// Copies `from` to `to` readable by its owner only (a signing key, a database).
fn copy_private(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to).with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot restrict {}", to.display()))?;
    }
    Ok(())
}

/// The verifier of `public`, refused when `key` is not its private half: a
/// server started from such a pair signs checkpoints no one can verify.
fn check_pair(key: &Path, public: &Path) -> Result<signed_note::StandardVerifier> {
    let read = |p: &Path| std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()));
    let signer = weiquan_ledger::load_signer(&read(key)?).with_context(|| key.display().to_string())?;
    let verifier = weiquan_ledger::load_verifier(&read(public)?).with_context(|| public.display().to_string())?;
    if !weiquan_ledger::pair_matches(&signer, &verifier) {
        return Err(super::UsageError(format!(
            "{} is not the private key of {}: the pair does not match; give the key the ledger was signed with",
            key.display(),
            public.display()
        ))
        .into());
    }
    Ok(verifier)
}

/// Runs `weiquan backup`.
pub fn backup(args: &BackupArgs, out: &mut dyn Write) -> Result<()> {
    if let Some(url) = &args.db {
        return Err(super::UsageError(format!(
            "a PostgreSQL system of record is backed up with PostgreSQL's tools: \
             pg_dump --format=custom --schema={} '{url}' > weiquan.dump (restore with pg_restore), \
             and keep a copy of the signing key ({}/ledger.key) beside it",
            args.db_schema.as_deref().unwrap_or("weiquan"),
            args.data.display()
        ))
        .into());
    }
    let db = args.data.join("weiquan.db");
    if !db.is_file() {
        return Err(super::UsageError(format!(
            "no weiquan database in {}; pass the server's --data",
            args.data.display()
        ))
        .into());
    }
    if args.out.exists() {
        return Err(super::UsageError(format!("{} exists; back up to a new folder", args.out.display())).into());
    }
    let key = args.key.clone().unwrap_or_else(|| args.data.join("ledger.key"));
    check_pair(&key, &weiquan_store::keyfile::pub_path(&key))?;
    weiquan_store::create_data_dir(&args.out)?;
    let mut store = SqliteStore::open(&db)?;
    let size = weiquan_ledger::LogStore::size(&mut store)?;
    store.backup_to(&args.out.join("weiquan.db"))?;
    copy_private(&key, &args.out.join(KEY_FILES[0]))?;
    copy_private(&weiquan_store::keyfile::pub_path(&key), &args.out.join(KEY_FILES[1]))?;
    writeln!(
        out,
        "backed up {} (at least {size} leaves) and its signing key to {}; restore with: weiquan restore {} --data NEW_DIR",
        db.display(),
        args.out.display(),
        args.out.display()
    )?;
    Ok(())
}

/// Runs `weiquan restore`: copies a backup into a data folder that has no
/// database yet, then verifies the whole log with the backup's public key.
pub fn restore(args: &RestoreArgs, out: &mut dyn Write) -> Result<()> {
    let from_db = args.backup.join("weiquan.db");
    if !from_db.is_file() {
        return Err(super::UsageError(format!(
            "{} is not a weiquan backup (no weiquan.db)",
            args.backup.display()
        ))
        .into());
    }
    let to_db = args.data.join("weiquan.db");
    // A folder with a database or a signing key is someone's: nothing in it is overwritten.
    if let Some(taken) = ["weiquan.db", KEY_FILES[0], KEY_FILES[1]]
        .into_iter()
        .map(|f| args.data.join(f))
        .find(|p| p.exists())
    {
        return Err(super::UsageError(format!(
            "{} exists; restore into a new folder (nothing was overwritten)",
            taken.display()
        ))
        .into());
    }
    let verifier = check_pair(&args.backup.join(KEY_FILES[0]), &args.backup.join(KEY_FILES[1]))?;
    // The backup is verified where it is, before anything is copied: a damaged
    // one leaves no half-restored folder to be cleared before a retry.
    let report = weiquan_ledger::verify_log(&mut SqliteStore::open_read_only(&from_db)?, &verifier)
        .map_err(|e| super::verify::Invalid(format!("the backup's ledger does not verify: {e}")))?;
    weiquan_store::create_data_dir(&args.data)?;
    for f in KEY_FILES {
        copy_private(&args.backup.join(f), &args.data.join(f))?;
    }
    copy_private(&from_db, &to_db)?;
    writeln!(
        out,
        "restored into {}: {} leaves rehashed, {} checkpoints verified; start it with: weiquan serve --data {}",
        args.data.display(),
        report.leaves,
        report.checkpoints,
        args.data.display()
    )?;
    Ok(())
}
