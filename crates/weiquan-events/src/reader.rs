//! Reading NDJSON input line by line: framing, rejects with line numbers, and
//! duplicate-id detection. Knows nothing of rules.

use crate::model::Event;
use crate::parse::{parse_event, ParseError};
use serde::Serialize;
use std::io::{self, BufRead};

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
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    line: u64,
    bytes: u64,
}

impl<R: BufRead> LineReader<R> {
    /// Wraps a buffered reader.
    pub fn new(inner: R) -> Self {
        LineReader {
            inner,
            buf: Vec::with_capacity(1024),
            line: 0,
            bytes: 0,
        }
    }

    /// Bytes consumed so far (for progress reporting).
    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }

    /// The next non-blank line, `None` at end of input; IO errors are returned as is.
    pub fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        let (start, end) = loop {
            self.buf.clear();
            let n = self.inner.read_until(b'\n', &mut self.buf)?;
            if n == 0 {
                return Ok(None);
            }
            self.bytes += n as u64;
            self.line += 1;
            let (mut start, mut end) = (0, self.buf.len());
            if self.buf[..end].ends_with(b"\n") {
                end -= 1;
            }
            if self.buf[..end].ends_with(b"\r") {
                end -= 1;
            }
            if self.line == 1 && self.buf[..end].starts_with(b"\xEF\xBB\xBF") {
                start = 3;
            }
            if !self.buf[start..end].iter().all(u8::is_ascii_whitespace) {
                break (start, end);
            }
        };
        let line = self.line;
        let b = &self.buf[start..end];
        if b.len() > MAX_LINE_BYTES {
            return Ok(Some(Line::Bad(bad(
                line,
                format!("line is {} bytes; at most {MAX_LINE_BYTES} are accepted", b.len()),
            ))));
        }
        Ok(Some(match std::str::from_utf8(b) {
            Ok(s) => Line::Text(line, s),
            Err(e) => Line::Bad(bad(
                line,
                format!(
                    "line is not valid UTF-8 (bad byte at column {}); re-encode the file as UTF-8",
                    e.valid_up_to() + 1
                ),
            )),
        }))
    }
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
/// Ids are kept as 128-bit XXH3 digests: 16 bytes an event instead of the id
/// itself, with a collision chance far below any hardware error rate.
#[derive(Default)]
pub struct Dedupe {
    seen: std::collections::HashSet<u128, foldhash::fast::FixedState>,
}

impl Dedupe {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty set with room for `n` ids before it grows.
    pub fn with_capacity(n: usize) -> Self {
        Dedupe {
            seen: std::collections::HashSet::with_capacity_and_hasher(n, Default::default()),
        }
    }

    /// True the first time an id is offered, false for every repeat.
    pub fn first_time(&mut self, id: &str) -> bool {
        self.seen.insert(id_digest(id))
    }

    /// How many distinct ids have been seen.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// True when no id has been seen.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

/// What became of one input line.
pub enum Outcome<'a> {
    /// Accepted: the typed event and the raw line as received.
    Accepted(Event<'a>, &'a str),
    /// A repeat of an id already accepted; ignored.
    Duplicate(u64, Event<'a>),
    /// Not accepted.
    Rejected(Reject),
}

/// Parses and dedupes one framed line.
pub fn classify<'a>(line: Line<'a>, dedupe: &mut Dedupe) -> Outcome<'a> {
    match line {
        Line::Bad(r) => Outcome::Rejected(r),
        Line::Text(n, text) => match parse_event(text) {
            Ok(ev) if dedupe.first_time(&ev.id) => Outcome::Accepted(ev, text),
            Ok(ev) => Outcome::Duplicate(n, ev),
            Err(e) => Outcome::Rejected(Reject::from_parse(n, e)),
        },
    }
}
