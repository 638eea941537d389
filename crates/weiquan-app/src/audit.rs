//! The audit pipeline shared by every input path: frame → parse → dedupe → engine.
//!
//! Lines go through in batches. On one thread each batch is framed, parsed,
//! deduped and applied in turn. With two, batches are framed and parsed on a
//! second thread, and the caller's thread dedupes and applies each one while
//! the next is parsed: the engine must see events one at a time, in order, and
//! the duplicate check (a cache miss a line) sits on its side so that the two
//! halves cost about the same (measured with perf: with it on the parsing side,
//! that side did two thirds of the work). When the engine's side has nothing
//! waiting, the next batch goes to it framed only and it parses that one
//! itself, so neither thread idles while the other is behind. Findings,
//! rejects and counts are the same either way, byte for byte.

use crate::batches::{parse_batches, Batch, Work, BATCH_LINES};
use std::io::{self, BufRead};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use weiquan_engine::{Engine, Finding, Rulebook};
use weiquan_events::{Dedupe, Event, Parsed, Reject, Time};

/// Events warmed together (their state looked up) before they are applied:
/// enough for many misses to overlap, few enough that what they bring into
/// cache is still there when the events are applied (16 to 256 measured; 64
/// was best, about 5% less CPU than no warming on one thread).
const WARM_AHEAD: usize = 64;
/// Batches parsed ahead of the engine: enough to ride out a slow batch, few
/// enough that memory does not grow when the engine is the slower stage.
const BATCHES_AHEAD: usize = 4;

/// Counts of what happened to the input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Lines accepted and applied.
    pub accepted: u64,
    /// Lines whose id was seen before (ignored).
    pub duplicates: u64,
    /// Lines rejected.
    pub rejected: u64,
}

/// Receives what the pipeline produces, in order.
pub trait Sink {
    /// A finding fired.
    fn finding(&mut self, finding: Finding) -> std::io::Result<()>;
    /// A line was rejected.
    fn reject(&mut self, reject: Reject) -> std::io::Result<()>;
    /// An event was accepted (before its findings are reported); `raw` is the line as received.
    fn accepted(&mut self, _event: &Event, _raw: &str) -> std::io::Result<()> {
        Ok(())
    }
    /// Every line read so far has been delivered: a sink writing to a stream
    /// flushes here, so that a live input's findings are not held back.
    fn caught_up(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Dedupe plus engine: everything an audit keeps between lines.
pub struct Auditor {
    engine: Engine,
    dedupe: Dedupe,
    threads: usize,
    batch_lines: usize,
    /// What happened so far.
    pub counts: Counts,
}

impl Auditor {
    /// A fresh auditor using `rules`, on one thread.
    pub fn new(rules: Arc<Rulebook>) -> Auditor {
        Auditor::with_capacity(rules, 0)
    }

    /// A fresh auditor expecting about `events` events (sizes the duplicate-id set once).
    pub fn with_capacity(rules: Arc<Rulebook>, events: usize) -> Auditor {
        Auditor {
            engine: Engine::new(rules),
            dedupe: Dedupe::with_capacity(events),
            threads: 1,
            batch_lines: BATCH_LINES,
            counts: Counts::default(),
        }
    }

    /// Uses `threads` threads: 1 runs every stage on the caller's thread; 2 or
    /// more frames and parses on a second one (more would not help: the engine
    /// is sequential and parsing is about half the work).
    pub fn with_threads(mut self, threads: usize) -> Auditor {
        self.threads = threads.max(1);
        self
    }

    /// Lines per batch between the threads (default 4096). Small batches only
    /// help tests reach batch boundaries with small inputs.
    pub fn with_batch_lines(mut self, lines: usize) -> Auditor {
        self.batch_lines = lines.max(1);
        self
    }

    /// The engine (for grades and blacklist after the run).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Reads every line of `input`; `file` names it in rejects. `progress` is
    /// called with the bytes read so far after every batch of lines. An IO error
    /// ends the read after every line before it has been delivered.
    pub fn read(
        &mut self,
        input: impl BufRead + Send,
        file: Option<&str>,
        sink: &mut dyn Sink,
        progress: &mut dyn FnMut(u64),
    ) -> io::Result<()> {
        let Auditor {
            engine,
            dedupe,
            counts,
            batch_lines,
            threads,
        } = self;
        let batch_lines = *batch_lines;
        let mut apply = Apply {
            engine,
            dedupe,
            counts,
            first: Vec::new(),
            file,
            sink,
            progress,
        };
        if *threads <= 1 {
            let mut result = Ok(());
            let parse_here = || true;
            parse_batches(
                input,
                || batch_lines,
                parse_here,
                |message| match apply.batch(message) {
                    Ok(delivered) => ControlFlow::Continue(Some(Work::Parsed(delivered))),
                    Err(e) => {
                        result = Err(e);
                        ControlFlow::Break(())
                    }
                },
            );
            return result;
        }
        let (batches, parsed) = mpsc::sync_channel::<io::Result<(Work, u64)>>(BATCHES_AHEAD);
        // Delivered batches go back to the parsing thread, which drops their events
        // (off the engine's thread) and reuses their buffers for its next batch.
        let (spent, reuse) = mpsc::channel::<Work>();
        // Batches sent and not yet taken by the engine's side. None waiting means
        // the engine's thread is (or soon will be) idle: the next batch goes to
        // it framed but not parsed, and it parses that one itself. Which side
        // is slower changes along a stream (parsing early, the rules later as
        // their tables grow: perf), so the work follows whichever is free.
        let waiting = AtomicUsize::new(0);
        let waiting = &waiting;
        std::thread::scope(|s| {
            s.spawn(move || {
                let parse_here = || waiting.load(Ordering::Relaxed) > 0;
                parse_batches(
                    input,
                    || batch_lines,
                    parse_here,
                    |message| {
                        waiting.fetch_add(1, Ordering::Relaxed);
                        match batches.send(message) {
                            Ok(()) => ControlFlow::Continue(reuse.try_recv().ok()),
                            // The engine's side stopped (its sink failed).
                            Err(_) => ControlFlow::Break(()),
                        }
                    },
                )
            });
            // Ends when the parsing thread is done and drops its sender. Returning
            // early drops the receiver, which ends the parsing thread at its next send.
            for message in parsed {
                waiting.fetch_sub(1, Ordering::Relaxed);
                // The parsing thread may have finished; then the buffers are simply dropped.
                let _ = spent.send(Work::Parsed(apply.batch(message)?));
            }
            Ok(())
        })
    }

    /// Moves the clock to `as_of` at the end of the input.
    pub fn finish(&mut self, as_of: Option<Time>, sink: &mut dyn Sink) -> std::io::Result<()> {
        if let Some(t) = as_of {
            for f in self.engine.advance(t) {
                sink.finding(f)?;
            }
        }
        Ok(())
    }
}

/// Hands one parsed line to the engine and the sink, and counts it; `first`
/// says whether its id is new. By reference: an event is a few hundred bytes,
/// and moving each one through an outcome showed up as `memmove` in profiles.
fn deliver(
    engine: &mut Engine,
    counts: &mut Counts,
    parsed: &Result<Parsed<'_>, Reject>,
    first: bool,
    file: Option<&str>,
    sink: &mut dyn Sink,
) -> io::Result<()> {
    match parsed {
        Ok(p) if first => {
            counts.accepted += 1;
            sink.accepted(&p.event, p.raw)?;
            for f in engine.apply(&p.event) {
                sink.finding(f)?;
            }
        }
        Ok(_) => counts.duplicates += 1,
        Err(r) => {
            counts.rejected += 1;
            sink.reject(Reject {
                file: file.map(str::to_owned),
                ..r.clone()
            })?;
        }
    }
    Ok(())
}

/// The engine's side of the pipeline: dedupes and applies batches in order.
struct Apply<'r, 'f> {
    engine: &'r mut Engine,
    dedupe: &'r mut Dedupe,
    counts: &'r mut Counts,
    /// Per line of the current batch: is its id new? (kept to reuse its memory)
    first: Vec<bool>,
    file: Option<&'f str>,
    sink: &'r mut dyn Sink,
    progress: &'r mut dyn FnMut(u64),
}

impl Apply<'_, '_> {
    /// Delivers one batch (or the IO error that ended the input), parsing it
    /// first if it came framed only; returns it, delivered.
    fn batch(&mut self, message: io::Result<(Work, u64)>) -> io::Result<Batch> {
        let (work, read) = message?;
        let mut batch = work.parsed();
        let Apply {
            engine,
            dedupe,
            counts,
            first,
            file,
            sink,
            ..
        } = self;
        batch.with_dependent_mut(|_, parsed| {
            // The whole batch's duplicate checks first, in a loop of their own:
            // each is a likely cache miss, and with nothing between them the
            // processor overlaps several instead of waiting out each one
            // (−20% CPU time for the whole audit, measured).
            first.clear();
            first.extend(parsed.iter().map(|p| match p {
                Ok(p) => dedupe.first_time(p.digest),
                Err(_) => false,
            }));
            // Then a few events at a time: look up what each will touch
            // (again overlapping the misses), then apply them while their
            // state is still in cache.
            parsed
                .chunks(WARM_AHEAD)
                .zip(first.chunks(WARM_AHEAD))
                .try_for_each(|(parsed, first)| {
                    for (p, &first) in parsed.iter().zip(first) {
                        if let (Ok(p), true) = (p, first) {
                            engine.warm(&p.event);
                        }
                    }
                    parsed
                        .iter()
                        .zip(first)
                        .try_for_each(|(p, &first)| deliver(engine, counts, p, first, *file, &mut **sink))
                })
        })?;
        self.sink.caught_up()?;
        (self.progress)(read);
        Ok(batch)
    }
}
