//! Reading NDJSON input line by line: framing, rejects with line numbers, and
//! duplicate-id detection. Knows nothing of rules.

use crate::model::Event;
use crate::parse::{parse_event, ParseError};
use serde::Serialize;
use std::io::{self, Read};

/// Longest line accepted, in bytes: a ledger entry holds at most 64 KiB
/// (tlog-tiles entry bundles use 16-bit lengths). A longer line is rejected, not truncated.
pub const MAX_LINE_BYTES: usize = u16::MAX as usize;

/// A line that was not accepted, with where it was and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Reject {
    /// Input file, when there are several or it is named.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// 1-based line number (or request item index for batches).
    pub line: u64,
    /// The event's `id`, when it could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The offending field, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What was wrong and what to do.
    pub error: String,
}

impl Reject {
    /// Builds a reject for `line` from a parse error.
    pub fn from_parse(line: u64, e: ParseError) -> Reject {
        Reject {
            file: None,
            line,
            id: e.id,
            field: e.field,
            error: e.message,
        }
    }
}

/// One framed input line: its number and text (without the newline).
pub enum Line<'a> {
    /// A non-blank line to parse.
    Text(u64, &'a str),
    /// A line rejected before parsing (not UTF-8, too long).
    Bad(Reject),
}

/// Splits a byte stream into NDJSON lines: skips blank lines, strips `\r` and a
/// leading byte-order mark, and rejects lines that are not UTF-8 or too long.
///
/// Reads in 1 MiB chunks and hands out lines as slices of the chunk, so a line
/// is never copied on its way to the parser; only a line cut by a chunk's end
/// is moved to the front.
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    line: u64,
    bytes: u64,
}

const CHUNK: usize = 1 << 20;

/// Where the next line is, once found.
enum Found {
    Slice(usize, usize),
    TooLong(usize),
}

impl<R: Read> LineReader<R> {
    /// Wraps a reader (buffering is done here: a `BufReader` adds nothing).
    pub fn new(inner: R) -> Self {
        LineReader {
            inner,
            buf: vec![0; CHUNK],
            start: 0,
            end: 0,
            eof: false,
            line: 0,
            bytes: 0,
        }
    }

    /// Bytes consumed so far (for progress reporting).
    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }

    /// Reads more input after compacting; false at end of input.
    fn fill(&mut self) -> io::Result<bool> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            let grown = self.buf.len() * 2;
            self.buf.resize(grown, 0);
        }
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    self.bytes += n as u64;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The next raw line (without its newline), or one too long to keep; with
    /// `may_read` false, `None` also when finding it would need a read.
    fn next_raw(&mut self, may_read: bool) -> io::Result<Option<Found>> {
        let mut skipped = 0usize;
        loop {
            let window = &self.buf[self.start..self.end];
            if let Some(i) = memchr::memchr(b'\n', window) {
                let (s, e) = (self.start, self.start + i);
                self.start = e + 1;
                return Ok(Some(if skipped > 0 {
                    Found::TooLong(skipped + i)
                } else {
                    Found::Slice(s, e)
                }));
            }
            if self.eof {
                if self.start == self.end && skipped == 0 {
                    return Ok(None);
                }
                let (s, e) = (self.start, self.end);
                self.start = self.end;
                return Ok(Some(if skipped > 0 {
                    Found::TooLong(skipped + e - s)
                } else {
                    Found::Slice(s, e)
                }));
            }
            if !may_read {
                return Ok(None);
            }
            // A line longer than any acceptable one is counted and dropped as it streams by.
            if self.end - self.start > MAX_LINE_BYTES + 2 {
                skipped += self.end - self.start;
                self.start = self.end;
            }
            self.fill()?;
        }
    }

    /// The next non-blank line, `None` at end of input; IO errors are returned as is.
    pub fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        self.next(true)
    }

    /// The next non-blank line if it is already buffered (or the input has
    /// ended): `None` when it would take a read, which on a pipe might wait.
    /// Lets a caller batch lines without holding back those that have arrived.
    pub fn next_buffered_line(&mut self) -> io::Result<Option<Line<'_>>> {
        self.next(false)
    }

    fn next(&mut self, may_read: bool) -> io::Result<Option<Line<'_>>> {
        let (start, end) = loop {
            let Some(found) = self.next_raw(may_read)? else {
                return Ok(None);
            };
            self.line += 1;
            let (start, end) = match found {
                Found::Slice(s, e) => (s, e),
                Found::TooLong(len) => {
                    return Ok(Some(Line::Bad(bad(
                        self.line,
                        format!("line is {len} bytes; at most {MAX_LINE_BYTES} are accepted"),
                    ))))
                }
            };
            if let Some(range) = content(self.line, &self.buf[start..end]) {
                break (start + range.start, start + range.end);
            }
        };
        Ok(Some(checked(self.line, &self.buf[start..end])))
    }
}

/// Line number `line`, whose content is `b`, as a line to parse or a
/// reject: too long, or not UTF-8.
fn checked(line: u64, b: &[u8]) -> Line<'_> {
    if b.len() > MAX_LINE_BYTES {
        return Line::Bad(bad(
            line,
            format!("line is {} bytes; at most {MAX_LINE_BYTES} are accepted", b.len()),
        ));
    }
    // SIMD validation first (checking lines was 6% of parsing with the
    // standard library's); on failure, it finds where the bad byte is.
    if let Ok(s) = simdutf8::basic::from_utf8(b) {
        return Line::Text(line, s);
    }
    match std::str::from_utf8(b) {
        Ok(s) => Line::Text(line, s),
        Err(e) => Line::Bad(bad(
            line,
            format!(
                "line is not valid UTF-8 (bad byte at column {}); re-encode the input as UTF-8",
                e.valid_up_to() + 1
            ),
        )),
    }
}

/// The lines of a body held in memory (a NATS message), framed and checked
/// as [`LineReader`] frames and checks a file's, line numbers and rejects
/// included, without a reader's buffer (a megabyte, which a message of one
/// event would pay for).
pub fn checked_body_lines(body: &[u8]) -> impl Iterator<Item = Line<'_>> {
    body_lines(body).map(|(n, line)| checked(n, line))
}

/// Where the content of line number `line` (1-based; `raw` without its
/// newline) lies: without a trailing `\r`, or on the first line a byte-order
/// mark; `None` for a blank line. The one framing rule for files, HTTP bodies
/// and NATS messages.
fn content(line: u64, raw: &[u8]) -> Option<std::ops::Range<usize>> {
    let end = raw.len() - usize::from(raw.ends_with(b"\r"));
    let start = if line == 1 && raw[..end].starts_with(b"\xEF\xBB\xBF") {
        3
    } else {
        0
    };
    (!raw[start..end].iter().all(u8::is_ascii_whitespace)).then_some(start..end)
}

/// The non-blank lines of a body held in memory (an HTTP request, a NATS
/// message), framed as [`LineReader`] frames a file: each with its 1-based
/// line number, without `\r` or a leading byte-order mark. Lines are not
/// checked here (UTF-8, length): the caller decides what a bad one costs.
pub fn body_lines(body: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    (1u64..)
        .zip(body.split(|&b| b == b'\n'))
        .filter_map(|(n, raw)| content(n, raw).map(|range| (n, &raw[range])))
}

/// [`body_lines`] of a body already known to be UTF-8.
pub fn body_lines_str(body: &str) -> impl Iterator<Item = (u64, &str)> {
    // Lines end at `\n` and lose `\r` or a whole byte-order mark: every cut is
    // at a character boundary, and `get` cannot fail.
    (1u64..)
        .zip(body.split('\n'))
        .filter_map(|(n, raw)| content(n, raw.as_bytes()).and_then(|range| Some((n, raw.get(range)?))))
}

fn bad(line: u64, error: String) -> Reject {
    Reject {
        file: None,
        line,
        id: None,
        field: None,
        error,
    }
}

/// The 128-bit digest by which event ids are remembered (XXH3-128).
pub fn id_digest(id: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(id.as_bytes())
}

/// Remembers event ids seen so far, to drop repeats (idempotent ingest).
///
/// Each id is kept as 96 bits of its 128-bit XXH3 digest: 12 bytes an event
/// instead of the id itself. Two distinct ids are taken for one with chance
/// about n²/2⁹⁷ over n events (10⁻¹¹ for a billion), far below any hardware
/// error rate; the full 16 bytes cost a third more memory, which an audit of
/// a million events touches fresh (8 MB; see BENCHMARKS.md).
///
/// The digests live in 64-byte buckets of five, one cache line each, probed
/// linearly: a check reads one line (rarely the next, which the processor
/// fetches beside it), where a Swiss table reads its control bytes and then
/// its slot, two lines. At most 70% full, 18 bytes an id when full and twice
/// that just after growing; a Swiss table's power-of-two size gives 15 to 30
/// (27 MB against 19 for a million ids: BENCHMARKS.md, method notes).
#[derive(Default)]
pub struct Dedupe {
    buckets: Vec<Bucket>,
    len: usize,
}

/// Digests per [`Bucket`]: five of 12 bytes and a count fill 64.
const PER_BUCKET: usize = 5;

/// Five kept digests and how many of them are in use, on one cache line.
#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
struct Bucket {
    kept: [Kept; PER_BUCKET],
    len: u32,
}

/// The bits of a digest that [`Dedupe`] keeps, low 32 bits first.
type Kept = [u32; 3];

fn kept(d: u128) -> Kept {
    [d as u32, (d >> 32) as u32, (d >> 64) as u32]
}

/// Buckets for `n` ids at most 70% full.
fn buckets_for(n: usize) -> usize {
    (n.saturating_mul(10) / 7 / PER_BUCKET + 1).max(8)
}

impl Dedupe {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty set with room for `n` ids before it grows.
    pub fn with_capacity(n: usize) -> Self {
        Dedupe {
            buckets: vec![Bucket::default(); buckets_for(n)],
            len: 0,
        }
    }

    /// The first bucket a digest may be in: its low 64 bits (XXH3 output
    /// needs no second hash) scaled to the table, which keeps their order.
    fn home(&self, d: u128) -> usize {
        ((u128::from(d as u64) * self.buckets.len() as u128) >> 64) as usize
    }

    /// True the first time an id (given by its [`id_digest`]) is offered, false
    /// for every repeat.
    pub fn first_time(&mut self, d: u128) -> bool {
        if (self.len + 1) * 10 > self.buckets.len() * PER_BUCKET * 7 {
            self.grow();
        }
        let k = kept(d);
        let mut b = self.home(d);
        // Ends: the table is never full, and nothing is ever removed, so a
        // digest is in the run of full buckets from its home or nowhere.
        loop {
            let bucket = &mut self.buckets[b];
            let used = bucket.len as usize;
            if bucket.kept[..used].contains(&k) {
                return false;
            }
            if used < PER_BUCKET {
                bucket.kept[used] = k;
                bucket.len += 1;
                self.len += 1;
                return true;
            }
            b = if b + 1 == self.buckets.len() { 0 } else { b + 1 };
        }
    }

    /// Twice the buckets, every digest placed again.
    fn grow(&mut self) {
        let old = std::mem::replace(self, Dedupe::with_capacity((self.len + 1) * 2));
        for bucket in &old.buckets {
            for k in &bucket.kept[..bucket.len as usize] {
                let d = u128::from(k[0]) | u128::from(k[1]) << 32 | u128::from(k[2]) << 64;
                self.first_time(d);
            }
        }
    }

    /// How many distinct ids have been seen.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no id has been seen.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A line parsed into an event, not yet checked for a repeated id.
pub struct Parsed<'a> {
    /// 1-based line number.
    pub line: u64,
    /// The typed event.
    pub event: Event<'a>,
    /// The line as received.
    pub raw: &'a str,
    /// The event id's [`id_digest`], computed with the parse so that the
    /// duplicate check itself is one table probe (it may run on another thread).
    pub digest: u128,
}

/// Parses one framed line, or says why it is rejected.
pub fn parse_line(line: Line<'_>) -> Result<Parsed<'_>, Reject> {
    match line {
        Line::Bad(r) => Err(r),
        Line::Text(n, text) => match parse_event(text) {
            Ok(event) => Ok(Parsed {
                line: n,
                digest: id_digest(&event.id),
                event,
                raw: text,
            }),
            Err(e) => Err(Reject::from_parse(n, e)),
        },
    }
}
