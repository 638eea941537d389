//! weiquan event format v1: typed events, NDJSON framing, validation and dedupe.
//!
//! This crate turns bytes into [`Event`]s or [`Reject`]s. It does no IO of its
//! own beyond reading a caller's `BufRead`, keeps no clock, and knows nothing of
//! rules, storage or the network.

mod model;
mod parse;
mod reader;
mod split;
mod time;

pub use model::*;
pub use parse::{
    check_id, is_personal_field, is_private_member, parse_event, parse_event_with_extras, visible, ParseError, MAX_FEN,
    MAX_ID_CHARS,
};
pub use reader::{
    body_lines, body_lines_str, checked_body_lines, id_digest, parse_line, Dedupe, Line, LineReader, Parsed, Reject,
    MAX_LINE_BYTES,
};
pub use time::{Time, DAY_MS, HOUR_MS};
