//! A fast path for RFC 8785 (JCS) canonical JSON of event lines.
//!
//! `serde_json_canonicalizer` goes through a `serde_json::Value` with ordered
//! maps and a generic formatter; in the server it was 40% of the sequencer's
//! time. Event lines are simple: objects with ASCII keys, strings, integers,
//! booleans, arrays. This module canonicalises exactly that shape from one
//! borrowed parse and returns `None` for anything else (a fraction, an
//! exponent, an integer beyond 2^53, a non-ASCII or repeated key), which the
//! caller then hands to the crate. A property test checks that whenever the
//! fast path answers, its bytes are the crate's.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// Largest integer that JCS (IEEE 754 doubles) prints exactly as itself.
const MAX_SAFE: u64 = (1 << 53) - 1;

/// A JSON value as read, borrowing unescaped strings from the line.
enum Json<'a> {
    Null,
    Bool(bool),
    /// Sign and magnitude (≤ 2^53 − 1).
    Int(bool, u64),
    Str(Cow<'a, str>),
    Arr(Vec<Json<'a>>),
    Obj(Vec<(Cow<'a, str>, Json<'a>)>),
    /// Something the fast path leaves to the full implementation.
    Other,
}

impl Json<'_> {
    fn is_simple(&self) -> bool {
        match self {
            Json::Other => false,
            Json::Arr(items) => items.iter().all(Json::is_simple),
            Json::Obj(members) => members.iter().all(|(k, v)| k.is_ascii() && v.is_simple()),
            _ => true,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Json<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Json<'de>, E> {
        Ok(if v <= MAX_SAFE {
            Json::Int(false, v)
        } else {
            Json::Other
        })
    }
    fn visit_i64<E>(self, v: i64) -> Result<Json<'de>, E> {
        Ok(if v.unsigned_abs() <= MAX_SAFE {
            Json::Int(v < 0, v.unsigned_abs())
        } else {
            Json::Other
        })
    }
    fn visit_f64<E>(self, _: f64) -> Result<Json<'de>, E> {
        Ok(Json::Other)
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element()? {
            items.push(v);
        }
        Ok(Json::Arr(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut members = Vec::new();
        while let Some(k) = map.next_key::<Key<'de>>()? {
            members.push((k.0, map.next_value()?));
        }
        Ok(Json::Obj(members))
    }
}

/// An object key, borrowed when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// The canonical form of `line`, or `None` when it is not of the simple shape
/// (or not JSON at all: the full implementation then reports the error).
pub(crate) fn canonical(line: &str) -> Option<Vec<u8>> {
    let value: Json = serde_json::from_str(line).ok()?;
    if !value.is_simple() {
        return None;
    }
    let mut out = Vec::with_capacity(line.len());
    write(&value, &mut out)?;
    Some(out)
}

/// An object in canonical JSON with where each member sits in it: what a
/// leaf needs to replace some members' values by commitments.
pub(crate) struct Members {
    /// The whole object, canonical.
    pub(crate) bytes: Vec<u8>,
    /// Each member in canonical order: the byte ranges, in `bytes`, of its
    /// key as written (a JSON string) and of its canonical value (ranges, not
    /// copies: this runs once per ingested event).
    pub(crate) members: Vec<(std::ops::Range<usize>, std::ops::Range<usize>)>,
    /// The members (indexes into `members`) whose value has no canonical
    /// form — a number beyond a double, a lone surrogate escape, nesting
    /// deeper than the parser follows — and stands in `bytes` as a string of
    /// its text as received.
    pub(crate) raw: Vec<usize>,
}

impl Members {
    /// The canonical value of member `i`.
    pub(crate) fn value(&self, i: usize) -> &[u8] {
        &self.bytes[self.members[i].1.clone()]
    }

    /// The key of member `i`, unescaped.
    pub(crate) fn key(&self, i: usize) -> Cow<'_, str> {
        let quoted = &self.bytes[self.members[i].0.clone()];
        let inner = &quoted[1..quoted.len() - 1];
        match std::str::from_utf8(inner) {
            Ok(key) if !inner.contains(&b'\\') => Cow::Borrowed(key),
            _ => Cow::Owned(serde_json::from_slice::<String>(quoted).unwrap_or_default()),
        }
    }
}

/// The members of the object `line`, canonical: the fast path when the line
/// is of the simple shape, the full implementation otherwise (a JSON error if
/// it is not an object). A member whose value RFC 8785 cannot write is
/// written as a string of its text ([`Members::raw`]): the event format
/// accepts any extra field, so its leaf must take any too.
pub(crate) fn canonical_members(line: &str) -> Result<Members, serde_json::Error> {
    let fast = serde_json::from_str::<Json>(line).ok().and_then(|value| match value {
        Json::Obj(members) if members.iter().all(|(k, v)| k.is_ascii() && v.is_simple()) => {
            let mut sorted: Vec<(Cow<str>, Json)> = members;
            sorted.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            if sorted.windows(2).any(|w| w[0].0 == w[1].0) {
                return None;
            }
            let mut out = Members {
                bytes: Vec::with_capacity(line.len()),
                members: Vec::with_capacity(sorted.len()),
                raw: Vec::new(),
            };
            for (k, v) in &sorted {
                let (key, start) = out.member(k);
                write(v, &mut out.bytes)?;
                out.members.push((key, start..out.bytes.len()));
            }
            out.close();
            Some(out)
        }
        _ => None,
    });
    if let Some(members) = fast {
        return Ok(members);
    }
    // Each member's value as received: one without a canonical form does not
    // make the others unwritable.
    let RawMembers(mut sorted) = serde_json::from_str(line)?;
    // A repeated key keeps its last value, as a JSON object read into a map does.
    sorted.reverse();
    // JCS orders keys by their UTF-16 code units (a stable sort: the last of a key comes first).
    sorted.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
    sorted.dedup_by(|later, first| later.0 == first.0);
    let mut out = Members {
        bytes: Vec::with_capacity(line.len()),
        members: Vec::with_capacity(sorted.len()),
        raw: Vec::new(),
    };
    for (k, v) in &sorted {
        let (key, start) = out.member(k);
        match canonical_value(v.get()) {
            Some(value) => out.bytes.extend_from_slice(&value),
            None => {
                out.raw.push(out.members.len());
                write_str(v.get(), &mut out.bytes);
            }
        }
        out.members.push((key, start..out.bytes.len()));
    }
    out.close();
    Ok(out)
}

/// The canonical form of one JSON value's text, if RFC 8785 can write it.
fn canonical_value(text: &str) -> Option<Vec<u8>> {
    if let Some(fast) = canonical(text) {
        return Some(fast);
    }
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    serde_json_canonicalizer::to_vec(&value).ok()
}

/// A JSON object's members in the order received, each value as its text.
struct RawMembers<'a>(Vec<(Cow<'a, str>, &'a serde_json::value::RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for RawMembers<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawMembers<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawMembers<'de>, A::Error> {
                let mut members = Vec::new();
                while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
                    members.push((k, map.next_value()?));
                }
                Ok(RawMembers(members))
            }
        }
        d.deserialize_map(V)
    }
}

impl Members {
    /// Writes the separator and `"key":` of the next member; where its key
    /// was written and where its value starts.
    fn member(&mut self, key: &str) -> (std::ops::Range<usize>, usize) {
        self.bytes.push(if self.members.is_empty() { b'{' } else { b',' });
        let from = self.bytes.len();
        write_str(key, &mut self.bytes);
        let written = from..self.bytes.len();
        self.bytes.push(b':');
        (written, self.bytes.len())
    }

    fn close(&mut self) {
        if self.members.is_empty() {
            self.bytes.push(b'{');
        }
        self.bytes.push(b'}');
    }
}

fn write(v: &Json, out: &mut Vec<u8>) -> Option<()> {
    match v {
        Json::Null => out.extend_from_slice(b"null"),
        Json::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Json::Int(negative, n) => {
            // JCS prints −0 as 0.
            if *negative && *n != 0 {
                out.push(b'-');
            }
            out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes());
        }
        Json::Str(s) => write_str(s, out),
        Json::Arr(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out)?;
            }
            out.push(b']');
        }
        Json::Obj(members) => {
            // ASCII keys: UTF-16 code-unit order (what JCS sorts by) is byte order.
            let mut sorted: Vec<&(Cow<str>, Json)> = members.iter().collect();
            sorted.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            if sorted.windows(2).any(|w| w[0].0 == w[1].0) {
                return None; // a repeated key: left to the full implementation
            }
            out.push(b'{');
            for (i, (k, v)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(k, out);
                out.push(b':');
                write(v, out)?;
            }
            out.push(b'}');
        }
        Json::Other => return None,
    }
    Some(())
}

/// A string as ECMAScript's `JSON.stringify` writes it (RFC 8785 §3.2.2.2).
fn write_str(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\x08' => b"\\b",
            b'\x0c' => b"\\f",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 15)],
                ]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn full(line: &str) -> Option<Vec<u8>> {
        serde_json_canonicalizer::pipe(line).ok().map(String::into_bytes)
    }

    /// Strings with the characters that need care: quotes, backslashes, every
    /// control character, non-ASCII, and characters JSON may escape needlessly.
    fn text() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just('"'),
                Just('\\'),
                Just('/'),
                (0u8..0x20).prop_map(char::from),
                Just('\u{7f}'),
                Just('\u{2028}'),
                Just('é'),
                Just('元'),
                Just('😀'),
                proptest::char::range('a', 'z'),
            ],
            0..8,
        )
        .prop_map(|c| c.into_iter().collect())
    }

    fn json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            (-(1i64 << 53)..(1i64 << 53)).prop_map(serde_json::Value::from),
            (-1e6f64..1e6).prop_map(serde_json::Value::from),
            text().prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::Array),
                proptest::collection::vec((prop_oneof![text(), "[a-z_]{1,6}"], inner), 0..6)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// Whenever the fast path answers, it answers exactly what the full
        /// implementation does, whatever the spacing, escaping and key order of the input.
        #[test]
        fn fast_path_equals_the_full_implementation(v in json(), pretty in any::<bool>(), ascii in any::<bool>()) {
            let mut line = if pretty {
                serde_json::to_string_pretty(&v).expect("serialise")
            } else {
                serde_json::to_string(&v).expect("serialise")
            };
            if ascii {
                // Needless \u escapes of non-ASCII characters, as some producers write.
                line = line.chars().map(|c| if c.is_ascii() { c.to_string() } else {
                    c.encode_utf16(&mut [0; 2]).iter().map(|u| format!("\\u{u:04x}")).collect()
                }).collect();
            }
            if let Some(fast) = canonical(&line) {
                prop_assert_eq!(Some(fast), full(&line), "line {}", line);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// An object's members, by either path, make up exactly the full
        /// implementation's canonical object, and each range holds its member's value.
        #[test]
        fn members_make_up_the_canonical_object(v in json(), ascii in any::<bool>()) {
            let mut object = serde_json::Map::new();
            object.insert("k".into(), v.clone());
            if let serde_json::Value::Object(m) = &v {
                object.extend(m.clone());
            }
            let mut line = serde_json::to_string(&object).expect("serialise");
            if ascii {
                line = line.chars().map(|c| if c.is_ascii() { c.to_string() } else {
                    c.encode_utf16(&mut [0; 2]).iter().map(|u| format!("\\u{u:04x}")).collect()
                }).collect();
            }
            let members = canonical_members(&line).expect("an object");
            prop_assert_eq!(Some(members.bytes.clone()), full(&line), "line {}", line);
            for i in 0..members.members.len() {
                let key = members.key(i);
                let want = serde_json_canonicalizer::to_vec(&object[&*key]).expect("canonical");
                prop_assert_eq!(members.value(i), &want[..], "member {}", key);
            }
            prop_assert_eq!(members.members.len(), object.len());
        }
    }

    #[test]
    fn event_lines_take_the_fast_path_and_odd_ones_do_not() {
        let line = r#"{"v":1,"id":"e1","type":"order.placed","at":"2026-11-01T00:00:00+08:00","order":"o1","qty":2,"amount_fen":9900,"note":"tab\tquote\"元"}"#;
        assert_eq!(canonical(line), full(line));
        for odd in [
            r#"{"x":1.5}"#,
            r#"{"x":1e3}"#,
            r#"{"x":9007199254740993}"#,
            r#"{"é":1}"#,
            r#"{"a":1,"a":2}"#,
            "not json",
        ] {
            assert_eq!(canonical(odd), None, "{odd}");
        }
    }
}
