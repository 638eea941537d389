//! `weiquan audit`: findings for event files.

use crate::cli::{AuditArgs, Format};
use anstyle::{AnsiColor, Style};
use anyhow::Result;
use std::collections::BTreeMap;
use std::io::{self, Write};
use unicode_width::UnicodeWidthStr;
use weiquan_app::{Auditor, LedgerWriter, Sink};
use weiquan_engine::{Finding, Lang, RuleId, Rulebook, Severity};
use weiquan_events::{Event, Reject};
use weiquan_ledger::LogStore;
use weiquan_store::SqliteStore;

/// Leaves per ledger transaction (and per signed checkpoint).
const LEDGER_BATCH: usize = 4096;

/// Where output goes and what the terminal can do.
pub struct Terminal<'a> {
    /// Findings.
    pub out: &'a mut dyn Write,
    /// Rejects, summary, progress.
    pub err: &'a mut dyn Write,
    /// Colour the table (stdout is a terminal).
    pub color: bool,
    /// Show a progress bar (stderr is a terminal).
    pub progress: bool,
}

struct Output<'a, 'w> {
    term: &'w mut Terminal<'a>,
    rules: &'w Rulebook,
    lang: Lang,
    format: Format,
    table: Vec<Finding>,
    per_rule: BTreeMap<RuleId, u64>,
    ledger: Option<LedgerWriter<SqliteStore>>,
}

impl Sink for Output<'_, '_> {
    fn accepted(&mut self, event: &Event, raw: &str) -> io::Result<()> {
        if let Some(l) = &mut self.ledger {
            l.event(&event.id, raw).map_err(io::Error::other)?;
        }
        Ok(())
    }

    fn finding(&mut self, f: Finding) -> io::Result<()> {
        *self.per_rule.entry(f.rule).or_default() += 1;
        if let Some(l) = &mut self.ledger {
            l.finding(&f, self.rules).map_err(io::Error::other)?;
        }
        match self.format {
            Format::Ndjson => {
                serde_json::to_writer(&mut *self.term.out, &f.record(self.rules, self.lang))?;
                self.term.out.write_all(b"\n")
            }
            Format::Table => {
                self.table.push(f);
                Ok(())
            }
        }
    }

    fn reject(&mut self, r: Reject) -> io::Result<()> {
        serde_json::to_writer(&mut *self.term.err, &r)?;
        self.term.err.write_all(b"\n")
    }

    fn caught_up(&mut self) -> io::Result<()> {
        self.term.out.flush()?;
        self.term.err.flush()
    }
}

/// Runs an audit. Returns normally whenever the input could be read.
pub fn run(args: &AuditArgs, term: &mut Terminal<'_>) -> Result<()> {
    let rules = super::load_rules(args.rules.as_deref())?;
    let inputs = super::open_inputs(&args.files)?;
    let lang = Lang::from(args.lang);
    let total: Option<u64> = inputs.iter().map(|i| i.size).sum();
    let bar = match total {
        // Small files finish before a bar is worth drawing.
        Some(total) if term.progress && total > 16 << 20 => Some(
            indicatif::ProgressBar::new(total).with_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            ),
        ),
        _ => None,
    };
    // Events average well over 100 bytes; sizing the id set once saves rehashing it as it grows.
    let expected = total.map_or(0, |bytes| (bytes / 128) as usize);
    let threads = args.threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        usize::from,
    );
    let mut auditor = Auditor::with_capacity(rules.clone(), expected).with_threads(threads);
    let (ledger, public_key) = match &args.ledger {
        Some(path) => {
            let (writer, public) = open_ledger(path, args.key.as_deref(), args.origin.as_deref(), &rules, term.err)?;
            (Some(writer), Some(public))
        }
        None => (None, None),
    };
    let color = term.color;
    let mut out = Output {
        term,
        rules: &rules,
        lang,
        format: args.format,
        table: Vec::new(),
        per_rule: BTreeMap::new(),
        ledger,
    };
    let mut done_before = 0;
    for input in inputs {
        let size = input.size.unwrap_or(0);
        let mut progress = |bytes: u64| {
            if let Some(b) = &bar {
                b.set_position(done_before + bytes);
            }
        };
        auditor.read(input.reader, input.name.as_deref(), &mut out, &mut progress)?;
        done_before += size;
    }
    auditor.finish(args.as_of, &mut out)?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if args.format == Format::Table {
        write_table(out.term.out, &out.table, &rules, lang, color)?;
    }
    out.term.out.flush()?;
    if let Some(l) = &mut out.ledger {
        l.flush()?;
        let ledger = l.ledger();
        writeln!(
            out.term.err,
            "ledger: {} leaves, checkpoint signed as {}; check it with: weiquan verify log {} --pub {}",
            ledger.size(),
            ledger.origin(),
            args.ledger
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            public_key
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        )?;
    }
    if args.summary {
        write_summary(out.term.err, &auditor, &out.per_rule, &rules)?;
    }
    Ok(())
}

/// Opens a new, empty ledger at `path`, signing with `key` (or `path.key`, created if missing).
/// Returns the writer and the public key's path.
fn open_ledger(
    path: &std::path::Path,
    key: Option<&std::path::Path>,
    origin: Option<&str>,
    rules: &weiquan_engine::Rulebook,
    err: &mut dyn Write,
) -> Result<(LedgerWriter<SqliteStore>, std::path::PathBuf)> {
    // Checked before any file is made: a checkpoint's first line is its origin.
    if let Some(o) = origin.filter(|o| !signed_note::is_key_name_valid(o)) {
        return Err(super::UsageError(format!(
            "--origin `{}` cannot start a checkpoint: use a non-empty name without spaces, line breaks or `+`, \
             like weiquan.example/log",
            o.escape_debug()
        ))
        .into());
    }
    let (key_path, signer) = match key {
        Some(k) => {
            let text =
                std::fs::read_to_string(k).map_err(|e| anyhow::anyhow!("cannot read key {}: {e}", k.display()))?;
            let signer =
                weiquan_ledger::load_signer(&text).map_err(|e| super::UsageError(format!("{}: {e}", k.display())))?;
            (k.to_path_buf(), signer)
        }
        None => {
            let mut k = path.as_os_str().to_owned();
            k.push(".key");
            let k = std::path::PathBuf::from(k);
            let (signer, created) =
                weiquan_store::keyfile::load_or_create(&k, "weiquan.local/ledger").map_err(|e| match e {
                    // A file that is there but is not a key is the user's to fix, as with --key.
                    weiquan_store::keyfile::KeyFileError::Key(e) => {
                        anyhow::Error::from(super::UsageError(format!("{}: {e}", k.display())))
                    }
                    io => io.into(),
                })?;
            if created {
                writeln!(
                    err,
                    "created signing key {} and {}",
                    k.display(),
                    super::keygen::pub_path(&k).display()
                )?;
            }
            (k, signer)
        }
    };
    let origin = origin.map_or_else(|| signed_note::Signer::name(&signer).to_owned(), str::to_owned);
    let mut store = SqliteStore::open(path)?;
    let size = store.size()?;
    if size > 0 {
        return Err(super::UsageError(format!(
            "ledger {} already holds {size} leaves; an audit writes a new ledger, so give a new path",
            path.display()
        ))
        .into());
    }
    let mut ledger = weiquan_ledger::Ledger::open(store, signer, &origin)?;
    // Rules other than the built-in ones are recorded first, as a server records
    // its rulebook: a backtest of this ledger then says what it ran under.
    if let Some((leaf, _)) = weiquan_app::rulebook_record(rules, None)? {
        ledger.append(vec![leaf])?;
    }
    Ok((
        LedgerWriter::new(ledger, LEDGER_BATCH),
        super::keygen::pub_path(&key_path),
    ))
}

fn severity_style(s: Severity) -> Style {
    match s {
        Severity::High => AnsiColor::Red.on_default().bold(),
        Severity::Medium => AnsiColor::Yellow.on_default(),
        Severity::Low => AnsiColor::Cyan.on_default(),
    }
}

/// Writes `cells` padded to `widths` (display width, so CJK text aligns).
fn write_row(out: &mut dyn Write, cells: &[(&str, Option<Style>)], widths: &[usize]) -> io::Result<()> {
    for (i, (text, style)) in cells.iter().enumerate() {
        let pad = widths.get(i).map_or(0, |w| w.saturating_sub(text.width()));
        match style {
            Some(s) => write!(out, "{s}{text}{s:#}")?,
            None => out.write_all(text.as_bytes())?,
        }
        if i + 1 < cells.len() {
            write!(out, "{:pad$}  ", "")?;
        }
    }
    out.write_all(b"\n")
}

fn write_table(out: &mut dyn Write, findings: &[Finding], rules: &Rulebook, lang: Lang, color: bool) -> io::Result<()> {
    let header = ["RULE", "SEVERITY", "AT", "SUBJECT", "MESSAGE"];
    let rows: Vec<[String; 5]> = findings
        .iter()
        .map(|f| {
            let r = f.record(rules, lang);
            [
                f.rule.to_string(),
                r.severity.to_owned(),
                f.at.to_string(),
                f.subject.clone(),
                r.message,
            ]
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.width()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row.iter()) {
            *w = (*w).max(cell.width());
        }
    }
    let bold = color.then(|| Style::new().bold());
    write_row(out, &header.map(|h| (h, bold)), &widths)?;
    for (row, f) in rows.iter().zip(findings) {
        let sev = color.then(|| severity_style(rules.severity(f.rule)));
        let cells = [
            (row[0].as_str(), None),
            (row[1].as_str(), sev),
            (row[2].as_str(), None),
            (row[3].as_str(), None),
            (row[4].as_str(), None),
        ];
        write_row(out, &cells, &widths)?;
    }
    writeln!(out, "{} findings", findings.len())
}

fn write_summary(
    err: &mut dyn Write,
    auditor: &Auditor,
    per_rule: &BTreeMap<RuleId, u64>,
    rules: &Rulebook,
) -> io::Result<()> {
    let c = auditor.counts;
    writeln!(
        err,
        "events: {} accepted, {} duplicates ignored, {} rejected",
        c.accepted, c.duplicates, c.rejected
    )?;
    let mut per_sev: BTreeMap<Severity, u64> = BTreeMap::new();
    for (rule, n) in per_rule {
        *per_sev.entry(rules.severity(*rule)).or_default() += n;
    }
    let total: u64 = per_rule.values().sum();
    let sev: Vec<String> = per_sev.iter().map(|(s, n)| format!("{} {n}", s.as_str())).collect();
    writeln!(err, "findings: {total} ({})", sev.join(", "))?;
    for (rule, n) in per_rule {
        writeln!(err, "  {rule}  {:<6}  {n}", rules.severity(*rule).as_str())?;
    }
    let blacklisted: Vec<_> = auditor
        .engine()
        .standings()
        .into_iter()
        .filter(|s| s.blacklisted.is_some())
        .collect();
    if !blacklisted.is_empty() {
        writeln!(err, "blacklisted merchants: {}", blacklisted.len())?;
        for s in blacklisted {
            let why: Vec<String> = s
                .blacklisted
                .iter()
                .flat_map(|b| b.findings.iter().map(|(r, subj)| format!("{r} {subj}")))
                .collect();
            writeln!(err, "  {}  ({})", s.merchant, why.join("; "))?;
        }
    }
    Ok(())
}
