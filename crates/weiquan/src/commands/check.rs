//! `weiquan check`: validate event files without running rules.
//!
//! This is also the parse-only floor the audit benchmark compares against:
//! framing and typed parsing, nothing else.

use crate::cli::CheckArgs;
use anyhow::Result;
use std::io::Write;
use weiquan_events::{parse_event, Line, LineReader, Reject};

/// Lines seen and rejected by a check.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CheckCounts {
    /// Non-blank lines read.
    pub lines: u64,
    /// Lines rejected.
    pub rejected: u64,
}

/// Validates every input; rejects go to `err` as NDJSON.
pub fn run(args: &CheckArgs, err: &mut dyn Write) -> Result<CheckCounts> {
    let mut counts = CheckCounts::default();
    for input in super::open_inputs(&args.files)? {
        let mut reader = LineReader::new(input.reader);
        while let Some(line) = reader.next_line()? {
            counts.lines += 1;
            let reject = match line {
                Line::Bad(r) => Some(r),
                Line::Text(n, text) => parse_event(text).err().map(|e| Reject::from_parse(n, e)),
            };
            if let Some(mut r) = reject {
                counts.rejected += 1;
                r.file = input.name.clone();
                serde_json::to_writer(&mut *err, &r)?;
                err.write_all(b"\n")?;
            }
        }
    }
    Ok(counts)
}
