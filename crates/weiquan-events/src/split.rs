//! A fast path that splits one JSON object into `(key, raw value)` pairs.
//!
//! serde_json reads each line twice over: once to find where every value ends
//! (validating it), once more as the typed field. For the plain lines producers
//! write — no escape in any string — this splitter does the first pass in one
//! tight scan. It validates the JSON grammar fully, and answers `None` whenever
//! it is not sure (an escape, a control character, deep nesting, any syntax
//! error): the caller then asks serde_json, whose answer and error message
//! stand. A property test checks that whenever this answers, serde_json
//! answers the same.

use crate::parse::RawObject;
use std::borrow::Cow;

/// Nesting depth beyond which the splitter leaves the line to serde_json.
const MAX_DEPTH: usize = 64;

/// Splits `text`, which must be exactly one JSON object (whitespace around it
/// allowed), or `None` when serde_json must decide.
pub(crate) fn split(text: &str) -> Option<RawObject<'_>> {
    let mut c = Cursor {
        b: text.as_bytes(),
        i: 0,
    };
    c.ws();
    c.eat(b'{')?;
    let mut obj = RawObject::new(true);
    c.ws();
    if !c.eat_if(b'}') {
        loop {
            c.ws();
            let key = c.string()?;
            let key = text.get(key.0 + 1..key.1 - 1)?;
            c.ws();
            c.eat(b':')?;
            c.ws();
            let start = c.i;
            c.value(0)?;
            let value = text.get(start..c.i)?;
            obj.push(Cow::Borrowed(key), value);
            c.ws();
            match c.next()? {
                b',' => continue,
                b'}' => break,
                _ => return None,
            }
        }
    }
    c.ws();
    (c.i == c.b.len()).then_some(obj)
}

/// Bytes that end a plain string's scan (`"`, `\\` and control characters),
/// flagged by the high bit of their byte in the result: zero when `word`
/// (little-endian) has none. The classic has-zero-byte and has-less-than
/// tests; a flag above the lowest may be false, the lowest is always right.
fn special_bytes(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_in = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    zero_in(word ^ (ONES * u64::from(b'"')))
        | zero_in(word ^ (ONES * u64::from(b'\\')))
        | (word.wrapping_sub(ONES * 0x20) & !word & HIGH)
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    fn eat_if(&mut self, c: u8) -> bool {
        let hit = self.peek() == Some(c);
        self.i += usize::from(hit);
        hit
    }

    /// JSON whitespace: space, tab, line feed, carriage return.
    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    /// A string without escapes or control characters; its span, quotes included.
    /// Eight bytes at a time in a machine word (no SIMD set-up, which costs more
    /// than it saves on strings this short: memchr was 14% of parsing), then
    /// byte by byte for the tail.
    fn string(&mut self) -> Option<(usize, usize)> {
        let start = self.i;
        self.eat(b'"')?;
        while let Some(word) = self.b.get(self.i..self.i + 8) {
            let word = u64::from_le_bytes(word.try_into().ok()?);
            match special_bytes(word) {
                0 => self.i += 8,
                // The lowest flag is exact (only bytes above a flagged one can be
                // flagged falsely): skip to the first special byte.
                m => {
                    self.i += (m.trailing_zeros() / 8) as usize;
                    break;
                }
            }
        }
        loop {
            match self.next()? {
                b'"' => return Some((start, self.i)),
                b'\\' | 0..=0x1f => return None,
                _ => {}
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        self.i - start
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn number(&mut self) -> Option<()> {
        self.eat_if(b'-');
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.eat_if(b'.') && self.digits() == 0 {
            return None;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(())
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.i + word.len();
        (self.b.get(self.i..end)? == word).then(|| self.i = end)
    }

    // Inlined, so that the scalars that are nearly every value cost no call.
    #[inline]
    fn value(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'-' | b'0'..=b'9' => self.number(),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'[' => self.container(b']', depth, false),
            b'{' => self.container(b'}', depth, true),
            _ => None,
        }
    }

    /// An array or (with `keyed`) an object, from its opening bracket.
    #[inline(never)]
    fn container(&mut self, close: u8, depth: usize, keyed: bool) -> Option<()> {
        self.i += 1;
        self.ws();
        if self.eat_if(close) {
            return Some(());
        }
        loop {
            self.ws();
            if keyed {
                self.string()?;
                self.ws();
                self.eat(b':')?;
                self.ws();
            }
            self.value(depth + 1)?;
            self.ws();
            match self.next()? {
                b',' => continue,
                c if c == close => return Some(()),
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// serde_json's reading of `text`, the reference.
    fn reference(text: &str) -> Option<RawObject<'_>> {
        serde_json::from_str(text).ok()
    }

    /// Whenever the splitter answers, serde_json must give the same pairs.
    fn agrees(text: &str) -> Result<(), TestCaseError> {
        if let Some(fast) = split(text) {
            let slow = reference(text);
            prop_assert!(slow.is_some(), "split accepted what serde_json rejects: {text:?}");
            let slow = slow.unwrap_or_else(|| unreachable!());
            prop_assert_eq!(&fast.pairs, &slow.pairs, "{:?}", text);
            prop_assert_eq!(&fast.duplicate, &slow.duplicate, "{:?}", text);
        }
        Ok(())
    }

    fn case_lines() -> Vec<String> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/cases");
        let mut lines = Vec::new();
        for entry in std::fs::read_dir(root).expect("tests/cases") {
            let file = entry.expect("case dir").path().join("events.ndjson");
            if let Ok(text) = std::fs::read_to_string(file) {
                lines.extend(text.lines().map(str::to_owned));
            }
        }
        lines
    }

    #[test]
    fn plain_lines_take_the_fast_path_and_match_serde_json() {
        let lines = case_lines();
        let mut answered = 0;
        for line in &lines {
            let Some(slow) = reference(line) else { continue };
            if line.contains('\\') {
                continue;
            }
            let fast = split(line).unwrap_or_else(|| panic!("no answer for a plain object: {line}"));
            assert_eq!(fast.pairs, slow.pairs, "{line}");
            assert_eq!(fast.duplicate, slow.duplicate, "{line}");
            answered += 1;
        }
        assert!(answered > 50, "only {answered} case lines answered");
    }

    #[test]
    fn word_scan_finds_the_first_special_byte_exactly() {
        for b in 0..=255u8 {
            let special = b == b'"' || b == b'\\' || b < 0x20;
            for at in 0..8 {
                let mut word = [b'a'; 8];
                word[at] = b;
                let m = special_bytes(u64::from_le_bytes(word));
                assert_eq!(m != 0, special, "byte {b:#x} at {at}");
                if special {
                    assert_eq!(m.trailing_zeros() / 8, at as u32, "byte {b:#x} at {at}");
                    // A special byte after it never hides the first one.
                    for later in at + 1..8 {
                        let mut two = word;
                        two[later] = 0;
                        let m = special_bytes(u64::from_le_bytes(two));
                        assert_eq!(m.trailing_zeros() / 8, at as u32, "{b:#x} at {at}, 0 at {later}");
                    }
                }
            }
        }
    }

    #[test]
    fn anything_unusual_is_left_to_serde_json() {
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(100), "]".repeat(100));
        for text in [
            r#"{"a":"\n"}"#,
            r#"{"a\"b":1}"#,
            "{\"a\":\"\u{1}\"}",
            r#"{"a":1} x"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":-}"#,
            r#"{"a":1e}"#,
            r#"{"a":tru}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":{"b"}}"#,
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            r#"{"a":1"#,
            r#"[{"a":1}]"#,
            deep.as_str(),
        ] {
            assert!(split(text).is_none(), "answered for {text}");
        }
        assert_eq!(split(" {} ").map(|o| o.pairs.len()), Some(0));
        let dup = split(r#"{"a":1,"b":[{"a":2}],"a":3}"#).expect("plain");
        assert_eq!(dup.duplicate.as_deref(), Some("a"));
    }

    /// A line with a few characters changed, inserted or removed, from an
    /// alphabet of JSON's own bytes (and some that must not appear raw).
    fn mutated() -> impl Strategy<Value = String> {
        let lines = case_lines();
        let n = lines.len();
        let alphabet: Vec<char> = "{}[]\":,\\ \t\n0123456789-+.eEtrufalsn\u{1}é中".chars().collect();
        let m = alphabet.len();
        (
            0..n,
            proptest::collection::vec((any::<prop::sample::Index>(), 0..3u8, 0..m), 1..4),
        )
            .prop_map(move |(i, edits)| {
                let mut chars: Vec<char> = lines[i].chars().collect();
                for (at, op, c) in edits {
                    let at = at.index(chars.len() + 1);
                    match op {
                        0 if at < chars.len() => chars[at] = alphabet[c],
                        1 if at < chars.len() => {
                            chars.remove(at);
                        }
                        _ => chars.insert(at, alphabet[c]),
                    }
                }
                chars.into_iter().collect()
            })
    }

    /// Arbitrary JSON documents, compact or pretty.
    fn documents() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(serde_json::Value::from),
            "[a-z中 é]{0,6}".prop_map(serde_json::Value::from),
            Just(serde_json::Value::Null),
        ];
        let value = leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                proptest::collection::btree_map("[a-c]{1,2}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        });
        (
            proptest::collection::btree_map("[a-e]{1,3}", value, 0..6),
            any::<bool>(),
        )
            .prop_map(|(m, pretty)| {
                let v = serde_json::Value::Object(m.into_iter().collect());
                if pretty {
                    serde_json::to_string_pretty(&v).unwrap_or_default()
                } else {
                    v.to_string()
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn mutated_lines_split_as_serde_json_reads_them(text in mutated()) {
            agrees(&text)?;
        }

        #[test]
        fn documents_split_as_serde_json_reads_them(text in documents()) {
            prop_assert!(split(&text).is_some(), "no answer for {:?}", text);
            agrees(&text)?;
        }
    }
}
