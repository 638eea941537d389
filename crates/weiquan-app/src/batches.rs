//! Lines in batches: framed from a reader into text a batch owns, parsed
//! into events that borrow it, and handed between threads. The audit
//! pipeline ([`crate::Auditor`]) and a cluster's front door
//! ([`ParsedInputs`]) both read their input this way.

use std::io::{self, Read};
use std::ops::{ControlFlow, Range};
use std::sync::mpsc;
use weiquan_events::{checked_body_lines, parse_line, Line, LineReader, Parsed, Reject};

/// Text per batch, so that a batch of long lines stays small.
const BATCH_BYTES: usize = 4 << 20;
/// Lines per batch (the audit's default; a door's too).
pub(crate) const BATCH_LINES: usize = 4096;

/// Framed lines copied out of the reader's buffer, so that a batch owns its text
/// while the reader moves on.
pub(crate) struct Lines {
    text: String,
    spans: Vec<Span>,
    /// Messages (see [`Messages`]): from which span on, each message's
    /// lines are, with its number; empty for a reader's lines.
    units: Vec<(usize, u64)>,
}

/// One framed line of a batch.
pub(crate) enum Span {
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
    pub(crate) fn fill<R: Read>(&mut self, reader: &mut LineReader<R>, max_lines: usize) -> io::Result<bool> {
        self.clear();
        // The first line may wait for input; the others only take what is buffered.
        let mut may_read = true;
        while !self.full(max_lines) {
            let line = if may_read {
                reader.next_line()?
            } else {
                reader.next_buffered_line()?
            };
            may_read = false;
            match line {
                // Nothing at all from a read that may wait is the end of input.
                None => return Ok(!self.spans.is_empty()),
                Some(line) => self.push(line),
            }
        }
        Ok(true)
    }

    fn clear(&mut self) {
        self.text.clear();
        self.spans.clear();
        self.units.clear();
    }

    /// Frames every line of message `unit`, `payload`, after those there.
    fn push_message(&mut self, unit: u64, payload: &[u8]) {
        self.units.push((self.spans.len(), unit));
        for line in checked_body_lines(payload) {
            self.push(line);
        }
    }

    fn push(&mut self, line: Line<'_>) {
        match line {
            Line::Text(n, s) => {
                let start = self.text.len();
                self.text.push_str(s);
                self.spans.push(Span::Text(n, start..self.text.len()));
            }
            Line::Bad(r) => self.spans.push(Span::Bad(Box::new(r))),
        }
    }

    /// Whether the batch is full.
    fn full(&self, max_lines: usize) -> bool {
        self.spans.len() >= max_lines || self.text.len() >= BATCH_BYTES
    }

    /// Parses every line, in order, into `out` (empty; passed in to reuse its memory).
    pub(crate) fn parse<'a>(&'a self, mut out: ParsedLines<'a>) -> ParsedLines<'a> {
        out.extend(self.spans.iter().map(|span| match span {
            Span::Text(n, range) => parse_line(Line::Text(*n, &self.text[range.clone()])),
            // Framing rejects are rare; copying one keeps the batch's text shared.
            Span::Bad(r) => Err(Reject::clone(r)),
        }));
        out
    }
}

pub(crate) type ParsedLines<'a> = Vec<Result<Parsed<'a>, Reject>>;

/// A batch's buffers with no parsed lines in them: a delivered batch's,
/// emptied for the next batch, or a batch framed and not yet parsed.
///
/// Reusing them matters: a batch's parsed lines take about a megabyte, freshly
/// allocated on one thread and freed on the other, and fresh memory costs a page
/// fault and zeroing per page (perf showed 14% of the parsing thread in `clear_page`).
pub(crate) struct Spent {
    pub(crate) lines: Lines,
    pub(crate) parsed: ParsedLines<'static>,
}

impl Spent {
    /// Buffers sized for a full batch of typical lines up front (no regrowing).
    fn new(batch_lines: usize) -> Spent {
        Spent {
            lines: Lines {
                text: String::with_capacity((batch_lines * 256).min(BATCH_BYTES)),
                spans: Vec::with_capacity(batch_lines.min(BATCH_LINES)),
                units: Vec::new(),
            },
            parsed: Vec::with_capacity(batch_lines.min(BATCH_LINES)),
        }
    }
}

impl From<Work> for Spent {
    fn from(work: Work) -> Spent {
        let mut batch = match work {
            Work::Parsed(batch) => batch,
            Work::Framed(spent) => return spent,
        };
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
    pub(crate) struct Batch {
        owner: Lines,
        #[covariant]
        dependent: ParsedLines,
    }
);

/// A batch on its way to the engine: parsed, or framed only.
pub(crate) enum Work {
    Parsed(Batch),
    Framed(Spent),
}

impl Work {
    /// How many lines the batch holds.
    fn lines(&self) -> usize {
        match self {
            Work::Parsed(batch) => batch.borrow_owner().spans.len(),
            Work::Framed(spent) => spent.lines.spans.len(),
        }
    }

    /// The batch, parsed.
    pub(crate) fn parsed(self) -> Batch {
        match self {
            Work::Parsed(batch) => batch,
            Work::Framed(Spent { lines, parsed }) => Batch::new(lines, move |lines| lines.parse(parsed)),
        }
    }
}

/// Frames `input` batch by batch, each of at most `batch_lines()` lines, and
/// parses each batch when `parse_here()` says so, handing each to `emit`
/// with the bytes read so far; `emit` may give back a delivered batch to
/// reuse, or stop the reading. An IO error is emitted after the lines
/// before it.
pub(crate) fn parse_batches(
    input: impl Read,
    mut batch_lines: impl FnMut() -> usize,
    parse_here: impl Fn() -> bool,
    mut emit: impl FnMut(io::Result<(Work, u64)>) -> ControlFlow<(), Option<Work>>,
) {
    let mut reader = LineReader::new(input);
    let mut spare: Option<Spent> = None;
    loop {
        let max_lines = batch_lines();
        let Spent { mut lines, parsed } = spare.take().unwrap_or_else(|| Spent::new(max_lines));
        let filled = lines.fill(&mut reader, max_lines);
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

/// Batches on their way on each parsing thread: two in its queue, one in
/// its hands and two parsed, waiting for the reader. Enough to ride out a
/// slow batch; a batch is a few MiB at most (4,096 lines or 4 MiB of text,
/// or one larger message), so memory stays a few batches a thread.
const AHEAD_PER_THREAD: usize = 2;

/// A batch of one input's lines, handed back by [`ParsedInputs`] in order.
pub struct Handed {
    input: usize,
    work: Work,
}

/// One line of a [`Handed`] batch.
pub enum HandedLine<'a> {
    /// Parsed: the event, or why the line is rejected.
    Parsed(&'a Result<Parsed<'a>, Reject>),
    /// Framed and not parsed (the lines up to [`ParsedInputs::new`]'s
    /// `parse_after`, and every line when no thread parses): the line's
    /// number in its input and its text, or why framing rejected it.
    Framed(u64, Result<&'a str, &'a Reject>),
}

impl Handed {
    /// Which of the inputs (their index) the lines are from: a batch never
    /// holds two inputs' lines.
    pub fn input(&self) -> usize {
        self.input
    }

    /// The messages of a batch of [`ParsedInputs::messages`], in order:
    /// each one's number and how many of [`Handed::lines`] it holds (blank
    /// lines are not lines). A message is never split between batches.
    pub fn messages(&self) -> impl Iterator<Item = (u64, usize)> + '_ {
        let lines = match &self.work {
            Work::Parsed(batch) => batch.borrow_owner(),
            Work::Framed(spent) => &spent.lines,
        };
        let ends = lines.units.iter().skip(1).map(|u| u.0).chain([lines.spans.len()]);
        lines
            .units
            .iter()
            .zip(ends)
            .map(|(&(start, unit), end)| (unit, end - start))
    }

    /// The batch's lines, in order (blank lines are not lines).
    pub fn lines(&self) -> impl Iterator<Item = HandedLine<'_>> {
        let (parsed, framed) = match &self.work {
            Work::Parsed(batch) => (Some(batch.borrow_dependent()), None),
            Work::Framed(spent) => (None, Some(&spent.lines)),
        };
        let parsed = parsed.into_iter().flatten().map(HandedLine::Parsed);
        let framed = framed.into_iter().flat_map(|lines| {
            lines.spans.iter().map(|span| match span {
                Span::Text(n, range) => HandedLine::Framed(*n, Ok(&lines.text[range.clone()])),
                Span::Bad(r) => HandedLine::Framed(r.line, Err(&**r)),
            })
        });
        parsed.chain(framed)
    }
}

/// Inputs read one after another, their lines framed on one thread and
/// parsed on it or on several others, handed back batch by batch in input
/// order (an iterator). For a reader whose own work per event is small beside
/// the parse (a cluster's front door routes an event in about 65 ns and
/// parses it in about 700): its thread then only takes parsed batches.
///
/// Batches go to the parsing threads in turn and are taken back in the same
/// turn, so the order needs no sorting. The end of the input is said, not
/// inferred: a thread that stopped before it (a panic) is an error, not an
/// end. Dropping it stops the threads at their next batch.
pub struct ParsedInputs {
    parsed: Vec<mpsc::Receiver<Option<Outcome>>>,
    /// The parsing thread the next batch comes from.
    next: usize,
    /// The input has ended, or failed: nothing more comes.
    done: bool,
    /// Delivered batches, back to the framing thread to reuse their memory.
    spent: mpsc::Sender<Work>,
}

/// A batch, or why the input could not be read to its end.
pub type Outcome = Result<Handed, ReadError>;

/// An input that could not be read to its end.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct ReadError {
    /// Which of [`ParsedInputs::new`]'s inputs (`None`: messages, or a
    /// thread that stopped).
    pub input: Option<usize>,
    /// What went wrong.
    pub error: io::Error,
}

impl ParsedInputs {
    /// Starts reading `inputs` in order on `threads` threads: with one, it
    /// frames and parses; with more, one frames and `threads` parse; with 0,
    /// one frames and every line comes framed only (the reader parses).
    /// The first `parse_after` lines of all inputs together come in batches
    /// of their own, framed and not parsed: a reader resuming after them
    /// passes over them without paying for their parse.
    pub fn new<R: Read + Send + 'static>(inputs: Vec<R>, threads: usize, parse_after: u64) -> ParsedInputs {
        ParsedInputs::in_batches_of(inputs, threads, parse_after, BATCH_LINES)
    }

    fn in_batches_of<R: Read + Send + 'static>(
        inputs: Vec<R>,
        threads: usize,
        parse_after: u64,
        batch_lines: usize,
    ) -> ParsedInputs {
        ParsedInputs::start(threads, move |send, reuse| {
            let lines = std::cell::Cell::new(0u64);
            // A batch ends at line `parse_after`: those before it are framed only.
            let batch_lines = || match parse_after.saturating_sub(lines.get()) {
                0 => batch_lines,
                left => batch_lines.min(usize::try_from(left).unwrap_or(usize::MAX)),
            };
            for (input, reader) in inputs.into_iter().enumerate() {
                let mut stopped = false;
                parse_batches(
                    reader,
                    batch_lines,
                    || false,
                    |message| {
                        let work = message.map(|(work, _)| {
                            lines.set(lines.get() + work.lines() as u64);
                            work
                        });
                        stopped = work.is_err(); // nothing is read after an error
                        let job = Job {
                            input: Some(input),
                            work: Some(work),
                            parse: threads > 0 && lines.get() > parse_after,
                        };
                        if !send(job) {
                            stopped = true; // the reader is gone
                            return ControlFlow::Break(());
                        }
                        ControlFlow::Continue(reuse())
                    },
                );
                if stopped {
                    return;
                }
            }
        })
    }

    /// Starts reading `source`'s messages on `threads` threads, as
    /// [`ParsedInputs::new`] reads inputs. Messages that have arrived
    /// together go in one batch (a platform's stream often holds one event
    /// a message), and a batch waits for no more than what has arrived:
    /// a live stream's events are not held back for a full batch. A message
    /// is never split between batches.
    pub fn messages<M: Messages>(mut source: M, threads: usize) -> ParsedInputs {
        ParsedInputs::start(threads, move |send, reuse| loop {
            let job = |work| Job {
                input: None,
                work: Some(work),
                parse: threads > 0,
            };
            let mut next = match source.next_message(true) {
                Ok(Some(message)) => Some(message),
                Ok(None) => return,
                Err(e) => {
                    send(job(Err(e)));
                    return;
                }
            };
            let mut spent = reuse().map_or_else(|| Spent::new(BATCH_LINES), Spent::from);
            spent.lines.clear();
            let mut failed = None;
            while let Some((unit, payload)) = next.take() {
                spent.lines.push_message(unit, payload.as_ref());
                // Then only what has arrived, up to a full batch.
                if !spent.lines.full(BATCH_LINES) {
                    match source.next_message(false) {
                        Ok(more) => next = more,
                        Err(e) => failed = Some(e),
                    }
                }
            }
            if !send(job(Ok(Work::Framed(spent)))) {
                return; // the reader is gone
            }
            if let Some(e) = failed {
                send(job(Err(e)));
                return;
            }
        })
    }

    /// Starts the parsing threads, and `frame` on a thread of its own with
    /// a way to send each framed batch (false: the reader is gone) and one
    /// to take back a delivered batch to reuse. When `frame` returns, the
    /// end is sent after its batches.
    fn start(
        threads: usize,
        frame: impl FnOnce(&mut dyn FnMut(Job) -> bool, &dyn Fn() -> Option<Work>) + Send + 'static,
    ) -> ParsedInputs {
        let (spent, reuse) = mpsc::channel::<Work>();
        let mut parsed = Vec::new();
        // One thread: the framing thread parses each batch itself. More:
        // it hands them to the parsing threads in turn.
        let next: Vec<Next> = match threads {
            // With 0, nothing is parsed here: the framing thread hands on.
            0 | 1 => {
                let (done, handed) = mpsc::sync_channel(AHEAD_PER_THREAD * 2);
                parsed.push(handed);
                vec![Next::Reader(done)]
            }
            _ => (0..threads)
                .map(|k| {
                    let (to, from) = mpsc::sync_channel::<Job>(AHEAD_PER_THREAD);
                    let (done, handed) = mpsc::sync_channel(AHEAD_PER_THREAD);
                    parsed.push(handed);
                    spawn(format!("weiquan-parse-{k}"), move || {
                        for job in from {
                            let out = job.handed();
                            let end = out.is_none();
                            if done.send(out).is_err() || end {
                                return; // the reader is gone, or the input ended
                            }
                        }
                    });
                    Next::Parse(to)
                })
                .collect(),
        };
        spawn("weiquan-frame".into(), move || {
            let mut turn = 0;
            let mut send = |job: Job| {
                let sent = match &next[turn % next.len()] {
                    Next::Parse(to) => to.send(job).is_ok(),
                    Next::Reader(done) => done.send(job.handed()).is_ok(),
                };
                turn += 1;
                sent
            };
            frame(&mut send, &|| reuse.try_recv().ok());
            send(Job {
                input: None,
                work: None,
                parse: false,
            });
        });
        ParsedInputs {
            parsed,
            next: 0,
            done: false,
            spent,
        }
    }

    /// The next batch, waiting for it `wait` at most: [`Waited::Idle`] if
    /// none came by then. For a live input, whose reader does something
    /// else when it is quiet.
    pub fn next_within(&mut self, wait: std::time::Duration) -> Waited {
        self.take(Some(wait))
    }

    fn take(&mut self, wait: Option<std::time::Duration>) -> Waited {
        if self.done {
            return Waited::Ended;
        }
        let from = &self.parsed[self.next % self.parsed.len()];
        let handed = match wait {
            None => from.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
            Some(wait) => from.recv_timeout(wait),
        };
        let handed = match handed {
            Ok(Some(handed)) => handed,
            Ok(None) => {
                self.done = true;
                return Waited::Ended;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => return Waited::Idle,
            // Closed before the end was said: a thread stopped (a panic).
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(ReadError {
                input: None,
                error: io::Error::other("a thread reading the input stopped before its end (see its panic above)"),
            }),
        };
        self.next += 1;
        self.done = handed.is_err();
        Waited::Batch(handed)
    }

    /// Gives a delivered batch back, so that its memory is reused (optional).
    pub fn give_back(&self, batch: Handed) {
        // The framing thread may have finished: then the batch is dropped.
        let _ = self.spent.send(batch.work);
    }
}

/// Starts a named thread (named: a panic says which).
fn spawn(name: String, run: impl FnOnce() + Send + 'static) {
    // Failing to start a thread is the system out of resources, as for
    // `std::thread::spawn`, which panics then too.
    #[allow(clippy::expect_used)]
    std::thread::Builder::new()
        .name(name)
        .spawn(run)
        .expect("the system could not start a thread");
}

/// A framed batch (or the error that ended its input; `None`: the end of
/// every input) on its way to be parsed.
struct Job {
    input: Option<usize>,
    work: Option<io::Result<Work>>,
    /// Whether it is to be parsed (else it is handed back framed only).
    parse: bool,
}

impl Job {
    /// The batch as the reader takes it: parsed if it is to be (`None`: the end).
    fn handed(self) -> Option<Outcome> {
        let Job { input, work, parse } = self;
        Some(
            work?
                .map(|work| Handed {
                    input: input.unwrap_or(0),
                    work: if parse { Work::Parsed(work.parsed()) } else { work },
                })
                .map_err(|error| ReadError { input, error }),
        )
    }
}

/// Where the framing thread sends a batch.
enum Next {
    /// A parsing thread.
    Parse(mpsc::SyncSender<Job>),
    /// The reader, parsed on the framing thread (one thread in all).
    Reader(mpsc::SyncSender<Option<Outcome>>),
}

impl Iterator for ParsedInputs {
    type Item = Outcome;

    /// The next batch, waiting for it; `None` after the last input's last
    /// batch, or after an error reading an input (handed back first).
    fn next(&mut self) -> Option<Outcome> {
        match self.take(None) {
            Waited::Batch(handed) => Some(handed),
            Waited::Idle | Waited::Ended => None,
        }
    }
}

/// What [`ParsedInputs::next_within`] found.
pub enum Waited {
    /// The next batch, or the error that ended the input.
    Batch(Outcome),
    /// No batch came in the time given.
    Idle,
    /// The input has ended: every batch was handed back.
    Ended,
}

/// Numbered messages that [`ParsedInputs::messages`] reads (a stream's):
/// each one event or NDJSON.
pub trait Messages: Send + 'static {
    /// A message's bytes.
    type Payload: AsRef<[u8]>;

    /// The next message and its number. When `wait`, it waits for one
    /// (`None`: there will be no more); else it gives only one that has
    /// arrived (`None`: none yet). An error ends the input.
    fn next_message(&mut self, wait: bool) -> io::Result<Option<(u64, Self::Payload)>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each batch's lines as `(line, id or reject)`, with `parse_here` deciding
    /// where each batch is parsed.
    fn batches(text: &str, parse_here: impl Fn() -> bool) -> Vec<Vec<(u64, String)>> {
        let mut out = Vec::new();
        parse_batches(
            text.as_bytes(),
            || 3,
            parse_here,
            |message| {
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
                ControlFlow::Continue(Some(Work::Parsed(batch)))
            },
        );
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

    /// Each line of `handed` as `(input, line, id, reject or text)`.
    fn seen(handed: impl Iterator<Item = Outcome>) -> (Vec<(usize, u64, String)>, Option<String>) {
        let mut lines = Vec::new();
        for batch in handed {
            let batch = match batch {
                Ok(batch) => batch,
                Err(e) => return (lines, Some(e.to_string())),
            };
            for line in batch.lines() {
                lines.push(match line {
                    HandedLine::Parsed(Ok(p)) => (batch.input(), p.line, format!("event {}", p.event.id)),
                    HandedLine::Parsed(Err(r)) => (batch.input(), r.line, format!("reject {}", r.error)),
                    HandedLine::Framed(n, Ok(text)) => (batch.input(), n, format!("framed {text}")),
                    HandedLine::Framed(_, Err(r)) => (batch.input(), r.line, format!("framed reject {}", r.error)),
                });
            }
        }
        (lines, None)
    }

    fn case(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/../../tests/cases/{name}/events.ndjson",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("case file")
    }

    fn readers(texts: &[String]) -> Vec<io::Cursor<String>> {
        texts.iter().cloned().map(io::Cursor::new).collect()
    }

    /// What one thread reading the inputs line by line finds: the first
    /// `framed` lines framed only.
    fn expected(inputs: &[String], framed: usize) -> Vec<(usize, u64, String)> {
        let mut out = Vec::new();
        for (i, text) in inputs.iter().enumerate() {
            let mut reader = LineReader::new(text.as_bytes());
            while let Some(line) = reader.next_line().expect("in memory") {
                let skip = out.len() < framed;
                out.push(match (line, skip) {
                    (Line::Text(n, text), true) => (i, n, format!("framed {text}")),
                    (Line::Bad(r), true) => (i, r.line, format!("framed reject {}", r.error)),
                    (line, false) => match parse_line(line) {
                        Ok(p) => (i, p.line, format!("event {}", p.event.id)),
                        Err(r) => (i, r.line, format!("reject {}", r.error)),
                    },
                });
            }
        }
        out
    }

    #[test]
    fn inputs_parsed_on_threads_come_back_in_order() {
        let inputs = vec![case("bad-input"), case("presale"), case("bad-input")];
        let all = expected(&inputs, 0);
        assert!(all.iter().any(|l| l.2.starts_with("reject")), "some rejects");
        assert!(all.iter().any(|l| l.0 == 2), "the third input's lines");
        for threads in [1, 2, 3] {
            let handed = ParsedInputs::in_batches_of(readers(&inputs), threads, 0, 3);
            assert_eq!(seen(handed), (all.clone(), None), "{threads} threads");
            // The first lines are framed only, in batches of their own: the
            // third batch of 3 ends at line 7.
            let handed = ParsedInputs::in_batches_of(readers(&inputs), threads, 7, 3);
            assert_eq!(seen(handed), (expected(&inputs, 7), None), "{threads} threads, after 7");
        }
        let handed = ParsedInputs::in_batches_of(readers(&inputs), 2, 6, 3);
        assert_eq!(seen(handed).0, expected(&inputs, 6));
        // No parsing thread: every line comes framed only.
        let handed = ParsedInputs::in_batches_of(readers(&inputs), 0, 0, 3);
        assert_eq!(seen(handed), (expected(&inputs, usize::MAX), None));
        let handed = ParsedInputs::in_batches_of(readers(&inputs), 2, u64::MAX, 3);
        assert_eq!(seen(handed).0, expected(&inputs, usize::MAX));
    }

    /// Gives `good` and then fails.
    struct Failing(io::Cursor<String>);

    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.0.read(buf)? {
                0 => Err(io::Error::other("the disk went away")),
                n => Ok(n),
            }
        }
    }

    #[test]
    fn an_input_that_fails_is_handed_back_up_to_its_error_and_nothing_after() {
        let text = case("bad-input");
        let inputs = vec![
            Failing(io::Cursor::new(text.clone())),
            Failing(io::Cursor::new(text.clone())),
        ];
        let (lines, error) = seen(ParsedInputs::in_batches_of(inputs, 2, 0, 3));
        assert_eq!(error.as_deref(), Some("the disk went away"));
        assert_eq!(
            lines,
            expected(&[text], 0),
            "every line of the first input, none of the second"
        );
        // Given back batches are reused, and what comes back is the same.
        let mut handed = ParsedInputs::in_batches_of(readers(&[case("bad-input")]), 2, 0, 3);
        let mut ids = Vec::new();
        while let Some(batch) = handed.next() {
            let batch = batch.expect("in memory");
            ids.extend(batch.lines().map(|l| match l {
                HandedLine::Parsed(Ok(p)) => p.line,
                HandedLine::Parsed(Err(r)) => r.line,
                HandedLine::Framed(n, _) => n,
            }));
            handed.give_back(batch);
        }
        let all: Vec<u64> = expected(&[case("bad-input")], 0).into_iter().map(|l| l.1).collect();
        assert_eq!(ids, all);
    }

    /// Panics when read.
    struct Panicking;

    impl Read for Panicking {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            panic!("a reader that breaks (this panic is the test's)")
        }
    }

    #[test]
    fn a_reading_thread_that_panics_is_an_error_not_an_end() {
        let text = case("bad-input");
        for threads in [1, 2] {
            let inputs: Vec<Box<dyn Read + Send>> = vec![Box::new(io::Cursor::new(text.clone())), Box::new(Panicking)];
            let (lines, error) = seen(ParsedInputs::in_batches_of(inputs, threads, 0, 3));
            assert_eq!(
                lines,
                expected(std::slice::from_ref(&text), 0),
                "the first input's lines"
            );
            let error = error.expect("an error, not an end");
            assert!(error.contains("stopped before its end"), "{error}");
        }
    }

    /// Messages from a channel: those sent before it is read have arrived.
    struct Channel(mpsc::Receiver<io::Result<(u64, String)>>);

    impl Messages for Channel {
        type Payload = String;

        fn next_message(&mut self, wait: bool) -> io::Result<Option<(u64, String)>> {
            match wait {
                true => self.0.recv().ok().transpose(),
                false => self.0.try_recv().ok().transpose(),
            }
        }
    }

    type MessageLines = Vec<(u64, Vec<(u64, String)>)>;

    /// Each message of `batch` as `(message, its lines)`, a line as `(its
    /// number, event or reject)`.
    fn message_lines(batch: &Handed) -> MessageLines {
        let mut lines = batch.lines();
        let out = (batch.messages())
            .map(|(unit, count)| {
                let these = lines.by_ref().take(count).map(|line| match line {
                    HandedLine::Parsed(Ok(p)) => (p.line, format!("event {}", p.event.id)),
                    HandedLine::Parsed(Err(r)) => (r.line, format!("reject {}", r.error)),
                    HandedLine::Framed(n, _) => (n, "framed".into()),
                });
                (unit, these.collect())
            })
            .collect();
        assert!(lines.next().is_none(), "every line is in a message");
        out
    }

    /// Every batch's messages (see [`message_lines`]), how many messages
    /// each batch held, and the error that ended them.
    fn messages_seen(handed: &mut ParsedInputs) -> (MessageLines, Vec<usize>, Option<String>) {
        let (mut out, mut per_batch) = (Vec::new(), Vec::new());
        while let Some(batch) = handed.next() {
            let batch = match batch {
                Ok(batch) => batch,
                Err(e) => return (out, per_batch, Some(e.to_string())),
            };
            per_batch.push(batch.messages().count());
            out.extend(message_lines(&batch));
            handed.give_back(batch);
        }
        (out, per_batch, None)
    }

    #[test]
    fn messages_that_arrived_together_are_parsed_in_one_batch_each_kept_whole() {
        // Messages of one event, of several, of none (blank), and of a line
        // that is no event: numbered 5, 6, 7, ...
        let text = case("bad-input");
        let lines: Vec<&str> = text.lines().collect();
        let mut bodies: Vec<String> = lines.chunks(3).map(|c| c.join("\n")).collect();
        bodies.insert(2, "\n\n".into());
        bodies.extend(lines.iter().take(5).map(|l| l.to_string()));
        let expected: MessageLines = (bodies.iter().zip(5..))
            .map(|(body, unit)| {
                (
                    unit,
                    expected(std::slice::from_ref(body), 0)
                        .into_iter()
                        .map(|l| (l.1, l.2))
                        .collect(),
                )
            })
            .collect();
        assert!(expected.iter().any(|m| m.1.is_empty()) && expected.iter().any(|m| m.1.len() == 3));
        for threads in [1, 3] {
            let (to, from) = mpsc::channel();
            for (body, unit) in bodies.iter().zip(5..) {
                to.send(Ok((unit, body.clone()))).expect("sent");
            }
            // More arrive later, while the reader waits: in batches of their own.
            let late = bodies.len() as u64 + 5;
            let mut handed = ParsedInputs::messages(Channel(from), threads);
            let first = handed.next_within(std::time::Duration::from_secs(10));
            let Waited::Batch(Ok(first)) = first else {
                panic!("a batch");
            };
            assert_eq!(
                first.messages().count(),
                bodies.len(),
                "every message that had arrived, in one batch"
            );
            assert!(matches!(
                handed.next_within(std::time::Duration::from_millis(50)),
                Waited::Idle
            ));
            to.send(Ok((late, lines[0].to_string()))).expect("sent");
            to.send(Err(io::Error::other("the stream went away"))).expect("sent");
            let (rest, per_batch, error) = messages_seen(&mut handed);
            assert_eq!(error.as_deref(), Some("the stream went away"), "{threads} threads");
            assert_eq!(per_batch, [1], "the late message alone");
            assert_eq!(rest, [(late, expected[0].1[..1].to_vec())]);
            assert!(handed.next().is_none(), "nothing after the error");
            assert_eq!(message_lines(&first), expected, "{threads} threads");
        }
        // Many messages: batches of whole messages, none split, all in order.
        let (to, from) = mpsc::channel();
        let big: Vec<String> = (0..5000).map(|i| lines[i % 3].to_string()).collect();
        for (unit, body) in big.iter().enumerate() {
            to.send(Ok((unit as u64, body.clone()))).expect("sent");
        }
        drop(to);
        let (seen, per_batch, error) = messages_seen(&mut ParsedInputs::messages(Channel(from), 2));
        assert_eq!(error, None);
        assert!(per_batch.len() >= 2, "a full batch is handed on: {per_batch:?}");
        assert_eq!(
            seen.iter().map(|m| m.0).collect::<Vec<_>>(),
            (0..5000).collect::<Vec<u64>>()
        );
        assert!(seen.iter().all(|m| m.1.len() == 1));
    }
}
