//! `weiquan`: parses arguments, runs one subcommand, maps errors to exit codes.

use clap::Parser;
use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;
use weiquan::cli::{Cli, Command};
use weiquan::commands::{self, audit::Terminal, UsageError};

/// jemalloc, built to back its memory with transparent huge pages (`thp:always`
/// in `.cargo/config.toml`). An audit probes its duplicate-id set and subject
/// tables at random across ~100 MB: with 4 KiB pages most probes also missed
/// the TLB, and every fresh page was a fault (26,000 of them in an audit of a
/// million events, about 3,000 with huge pages; see BENCHMARKS.md).
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout = io::stdout();
    let stderr = io::stderr();
    let color = stdout.is_terminal();
    let progress = stderr.is_terminal();
    let mut out = io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut err = io::BufWriter::new(stderr);
    let result = match &cli.command {
        Command::Audit(args) => commands::audit::run(
            args,
            &mut Terminal {
                out: &mut out,
                err: &mut err,
                color,
                progress,
            },
        )
        .map(|()| ExitCode::SUCCESS),
        Command::Check(args) => commands::check::run(args, &mut err).map(|c| {
            if c.rejected == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(3)
            }
        }),
        Command::Simulate(args) => commands::simulate::run(args, &mut err).map(|()| ExitCode::SUCCESS),
        Command::Serve(args) => commands::serve::run(args, &mut err).map(|()| ExitCode::SUCCESS),
        Command::Keys(args) => commands::serve::keys(args, &mut out, &mut err).map(|()| ExitCode::SUCCESS),
        Command::Erase(args) => commands::serve::erase(args, &mut out).map(|()| ExitCode::SUCCESS),
        Command::Backup(args) => commands::backup::backup(args, &mut out).map(|()| ExitCode::SUCCESS),
        Command::Restore(args) => commands::backup::restore(args, &mut out).map(|()| ExitCode::SUCCESS),
        Command::Demo(args) => commands::demo::run(args, &mut err).map(|()| ExitCode::SUCCESS),
        Command::Keygen(args) => commands::keygen::run(args, &mut err).map(|()| ExitCode::SUCCESS),
        Command::Verify(args) => commands::verify::run(args, &mut out).map(|()| ExitCode::SUCCESS),
        Command::Ledger(args) => commands::ledger::run(args, &mut out).map(|()| ExitCode::SUCCESS),
        Command::Backtest(args) => commands::backtest::run(args, &mut out),
        Command::Cluster(args) => commands::cluster::run(args, &mut out, &mut err).map(|()| ExitCode::SUCCESS),
        Command::Rules(args) => commands::rules::run(args, &mut out).map(|()| ExitCode::SUCCESS),
    };
    let code = match result {
        Ok(code) => code,
        // A closed pipe (`weiquan audit … | head`) is the reader's choice, not a failure.
        Err(e)
            if e.downcast_ref::<io::Error>()
                .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = err.flush();
            let _ = writeln!(err, "weiquan: error: {}", commands::describe(&e));
            if e.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else if e.downcast_ref::<commands::verify::Invalid>().is_some() {
                ExitCode::from(3)
            } else {
                ExitCode::from(1)
            }
        }
    };
    // What is still buffered is written now: a failure here (a full disk, /dev/full)
    // is the output lost, and is said, not only an exit code.
    let _ = err.flush();
    match out.flush() {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            let _ = writeln!(
                io::stderr(),
                "weiquan: error: writing the output: {e}; nothing after it was written"
            );
            ExitCode::from(1)
        }
        _ => code,
    }
}
