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

use std::io::{self, BufRead, Read};
use std::ops::ControlFlow;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use weiquan_engine::{Engine, Finding, Rulebook};
use weiquan_events::{parse_line, Dedupe, Event, Line, LineReader, Parsed, Reject, Time};

/// Lines per batch handed from the parsing thread to the engine's.
const BATCH_LINES: usize = 4096;
/// Text per batch, so that a batch of long lines stays small.
const BATCH_BYTES: usize = 4 << 20;
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
            parse_batches(input, batch_lines, parse_here, |message| match apply.batch(message) {
                Ok(delivered) => ControlFlow::Continue(Some(delivered)),
                Err(e) => {
                    result = Err(e);
                    ControlFlow::Break(())
                }
            });
            return result;
        }
        let (batches, parsed) = mpsc::sync_channel::<io::Result<(Work, u64)>>(BATCHES_AHEAD);
        // Delivered batches go back to the parsing thread, which drops their events
        // (off the engine's thread) and reuses their buffers for its next batch.
        let (spent, reuse) = mpsc::channel::<Batch>();
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
                parse_batches(input, batch_lines, parse_here, |message| {
                    waiting.fetch_add(1, Ordering::Relaxed);
                    match batches.send(message) {
                        Ok(()) => ControlFlow::Continue(reuse.try_recv().ok()),
                        // The engine's side stopped (its sink failed).
                        Err(_) => ControlFlow::Break(()),
                    }
                })
            });
            // Ends when the parsing thread is done and drops its sender. Returning
            // early drops the receiver, which ends the parsing thread at its next send.
            for message in parsed {
                waiting.fetch_sub(1, Ordering::Relaxed);
                // The parsing thread may have finished; then the buffers are simply dropped.
                let _ = spent.send(apply.batch(message)?);
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

/// Framed lines copied out of the reader's buffer, so that a batch owns its text
/// while the reader moves on.
struct Lines {
    text: String,
    spans: Vec<Span>,
}

/// One framed line of a batch.
enum Span {
    /// Line number and where its text is in [`Lines::text`].
    Text(u64, Range<usize>),
    /// A line rejected by framing (boxed: rare, and a `Reject` would make
    /// every span four times the size).
    Bad(Box<Reject>),
}

impl Lines {
    /// Frames lines from `reader` until the batch is full or the lines that have
    /// arrived run out (a live stream's findings are not held back for a full
    /// batch); false at end of input.
    fn fill<R: Read>(&mut self, reader: &mut LineReader<R>, max_lines: usize) -> io::Result<bool> {
        self.text.clear();
        self.spans.clear();
        // The first line may wait for input; the others only take what is buffered.
        let mut may_read = true;
        while self.spans.len() < max_lines && self.text.len() < BATCH_BYTES {
            let line = if may_read {
                reader.next_line()?
            } else {
                reader.next_buffered_line()?
            };
            may_read = false;
            match line {
                // Nothing at all from a read that may wait is the end of input.
                None => return Ok(!self.spans.is_empty()),
                Some(Line::Text(n, s)) => {
                    let start = self.text.len();
                    self.text.push_str(s);
                    self.spans.push(Span::Text(n, start..self.text.len()));
                }
                Some(Line::Bad(r)) => self.spans.push(Span::Bad(Box::new(r))),
            }
        }
        Ok(true)
    }

    /// Parses every line, in order, into `out` (empty; passed in to reuse its memory).
    fn parse<'a>(&'a self, mut out: ParsedLines<'a>) -> ParsedLines<'a> {
        out.extend(self.spans.iter().map(|span| match span {
            Span::Text(n, range) => parse_line(Line::Text(*n, &self.text[range.clone()])),
            // Framing rejects are rare; copying one keeps the batch's text shared.
            Span::Bad(r) => Err(Reject::clone(r)),
        }));
        out
    }
}

type ParsedLines<'a> = Vec<Result<Parsed<'a>, Reject>>;

/// A batch's buffers with no parsed lines in them: a delivered batch's,
/// emptied for the next batch, or a batch framed and not yet parsed.
///
/// Reusing them matters: a batch's parsed lines take about a megabyte, freshly
/// allocated on one thread and freed on the other, and fresh memory costs a page
/// fault and zeroing per page (perf showed 14% of the parsing thread in `clear_page`).
struct Spent {
    lines: Lines,
    parsed: ParsedLines<'static>,
}

impl From<Batch> for Spent {
    fn from(mut batch: Batch) -> Spent {
        let parsed = batch.with_dependent_mut(|_, parsed| {
            parsed.clear();
            recycle(std::mem::take(parsed))
        });
        Spent {
            lines: batch.into_owner(),
            parsed,
        }
    }
}

/// An emptied vector of parsed lines as one that borrows nothing, keeping its
/// memory: collecting a `vec::IntoIter` into a vector of a type of the same
/// size reuses the allocation (the standard library's in-place collect).
#[allow(
    clippy::unnecessary_filter_map,
    reason = "the element type changes (its lifetime); `filter` cannot"
)]
fn recycle(parsed: ParsedLines<'_>) -> ParsedLines<'static> {
    debug_assert!(parsed.is_empty());
    parsed.into_iter().filter_map(|_| None).collect()
}

self_cell::self_cell!(
    /// A batch of lines, each parsed or rejected: events borrow the batch's text.
    struct Batch {
        owner: Lines,
        #[covariant]
        dependent: ParsedLines,
    }
);

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

/// A batch on its way to the engine: parsed, or framed only.
enum Work {
    Parsed(Batch),
    Framed(Spent),
}

impl Work {
    /// The batch, parsed.
    fn parsed(self) -> Batch {
        match self {
            Work::Parsed(batch) => batch,
            Work::Framed(Spent { lines, parsed }) => Batch::new(lines, move |lines| lines.parse(parsed)),
        }
    }
}

/// Frames `input` batch by batch and parses each batch when `parse_here()`
/// says so, handing each to `emit` with the bytes read so far; `emit` may give
/// back a delivered batch to reuse, or stop the reading. An IO error is
/// emitted after the lines before it.
fn parse_batches(
    input: impl Read,
    batch_lines: usize,
    parse_here: impl Fn() -> bool,
    mut emit: impl FnMut(io::Result<(Work, u64)>) -> ControlFlow<(), Option<Batch>>,
) {
    let mut reader = LineReader::new(input);
    let mut spare: Option<Spent> = None;
    loop {
        let Spent { mut lines, parsed } = spare.take().unwrap_or_else(|| Spent {
            // Sized for a full batch of typical lines up front (no regrowing).
            lines: Lines {
                text: String::with_capacity((batch_lines * 256).min(BATCH_BYTES)),
                spans: Vec::with_capacity(batch_lines.min(BATCH_LINES)),
            },
            parsed: Vec::with_capacity(batch_lines.min(BATCH_LINES)),
        });
        let filled = lines.fill(&mut reader, batch_lines);
        let framed = Work::Framed(Spent { lines, parsed });
        let work = if parse_here() {
            Work::Parsed(framed.parsed())
        } else {
            framed
        };
        match emit(Ok((work, reader.bytes_read()))) {
            ControlFlow::Continue(delivered) => spare = delivered.map(Spent::from),
            ControlFlow::Break(()) => return,
        }
        match filled {
            Ok(true) => continue,
            Ok(false) => return,
            Err(e) => {
                let _ = emit(Err(e));
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each batch's lines as `(line, id or reject)`, with `parse_here` deciding
    /// where each batch is parsed.
    fn batches(text: &str, parse_here: impl Fn() -> bool) -> Vec<Vec<(u64, String)>> {
        let mut out = Vec::new();
        parse_batches(text.as_bytes(), 3, parse_here, |message| {
            let Ok((work, _)) = message else {
                return ControlFlow::Break(());
            };
            let batch = work.parsed();
            out.push(
                batch
                    .borrow_dependent()
                    .iter()
                    .map(|p| match p {
                        Ok(p) => (p.line, p.event.id.to_string()),
                        Err(r) => (r.line, r.error.clone()),
                    })
                    .collect(),
            );
            ControlFlow::Continue(Some(batch))
        });
        out
    }

    #[test]
    fn batches_handed_over_framed_parse_as_those_parsed_first() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/cases/bad-input/events.ndjson"
        ))
        .expect("case file");
        let parsed_first = batches(&text, || true);
        assert!(parsed_first.len() > 2, "several batches");
        assert!(
            parsed_first.iter().flatten().any(|(_, e)| e.contains(' ')),
            "some rejects"
        );
        let flip = std::cell::Cell::new(false);
        let alternating = batches(&text, || {
            flip.set(!flip.get());
            flip.get()
        });
        assert_eq!(alternating, parsed_first);
        assert_eq!(batches(&text, || false), parsed_first);
    }

    #[test]
    fn recycled_parsed_lines_keep_their_memory() {
        let parsed: ParsedLines<'_> = Vec::with_capacity(1000);
        let (at, capacity) = (parsed.as_ptr() as usize, parsed.capacity());
        let recycled = recycle(parsed);
        assert_eq!(recycled.as_ptr() as usize, at, "reallocated");
        assert_eq!(recycled.capacity(), capacity);
    }
}
