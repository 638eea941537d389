//! One NDJSON line → one typed [`Event`], or a precise reason why not.
//!
//! The line is first split into `(key, raw value)` pairs without interpreting
//! the values (serde_json validates the JSON on the way). Each event type then
//! reads the fields it needs by name, so that every error can name its field and
//! say what was expected. Strings without escapes are sliced, not re-parsed.

use crate::model::*;
use crate::time::Time;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// Longest identifier accepted, in characters.
pub const MAX_ID_CHARS: usize = 128;
/// Largest money amount accepted, in fen: 2^53 − 1, the largest integer every
/// JSON implementation represents exactly.
pub const MAX_FEN: u64 = (1 << 53) - 1;

/// Why a line was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", field.as_deref().map(|f| format!("{f}: ")).unwrap_or_default())]
pub struct ParseError {
    /// The event's `id`, when it could be read.
    pub id: Option<String>,
    /// The offending field (dotted path for nested ones), when there is one.
    pub field: Option<String>,
    /// What was wrong and what to do about it.
    pub message: String,
}

/// A field-level failure before the event id is attached.
#[derive(Debug)]
struct FieldError {
    field: Option<String>,
    message: String,
}

impl FieldError {
    fn at(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: Some(field.into()),
            message: message.into(),
        }
    }
}

type R<T> = Result<T, FieldError>;

/// A JSON object kept as `(key, raw value)` pairs, in input order; a raw value
/// is its JSON text, a slice of the line.
#[derive(Debug, PartialEq)]
pub(crate) struct RawObject<'a> {
    pub(crate) pairs: Vec<(Cow<'a, str>, &'a str)>,
    pub(crate) duplicate: Option<String>,
    /// No string value anywhere in it has an escape (known from the fast splitter).
    pub(crate) plain: bool,
    /// One bit per (length, first byte) of the keys so far: a key whose bit is
    /// clear cannot repeat an earlier one, so most keys skip comparing with each.
    key_bits: u64,
}

impl<'a> RawObject<'a> {
    /// An empty object; `plain` as for the field.
    pub(crate) fn new(plain: bool) -> Self {
        RawObject {
            pairs: Vec::with_capacity(16),
            duplicate: None,
            plain,
            key_bits: 0,
        }
    }

    /// Appends a pair, noting the first key that repeats an earlier one.
    pub(crate) fn push(&mut self, key: Cow<'a, str>, value: &'a str) {
        let bit = 1u64 << ((key.len() * 31 + usize::from(key.bytes().next().unwrap_or(0))) % 64);
        if self.key_bits & bit != 0 && self.duplicate.is_none() && self.pairs.iter().any(|(k, _)| *k == key) {
            self.duplicate = Some(key.to_string());
        }
        self.key_bits |= bit;
        self.pairs.push((key, value));
    }
}

/// Splits one JSON object: the fast splitter when it is sure, else serde_json.
fn object(text: &str) -> Result<RawObject<'_>, serde_json::Error> {
    match crate::split::split(text) {
        Some(obj) => Ok(obj),
        None => serde_json::from_str(text),
    }
}

struct Key<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> de::Deserialize<'de> for RawObject<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawObject<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut obj = RawObject::new(false);
                while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
                    obj.push(k, map.next_value::<&'de RawValue>()?.get());
                }
                Ok(obj)
            }
        }
        d.deserialize_map(V)
    }
}

/// What kind of JSON value a raw text is, for error messages.
fn kind_of(raw: &str) -> &'static str {
    match raw.as_bytes().first() {
        // A string JSON can hold but Unicode cannot: a lone surrogate escape.
        Some(b'"') if serde_json::from_str::<String>(raw).is_err() => {
            "a string that is not valid Unicode (a lone surrogate escape, \\uD800 to \\uDFFF, without its pair)"
        }
        Some(b'"') => "a string",
        Some(b'{') => "an object",
        Some(b'[') => "a list",
        Some(b't') | Some(b'f') => "a boolean",
        Some(b'n') => "null",
        _ => {
            if raw.contains(['.', 'e', 'E']) {
                "a decimal number"
            } else {
                "a number"
            }
        }
    }
}

fn is_null(raw: &str) -> bool {
    raw == "null"
}

/// Reads a JSON string value, slicing when it has no escapes (`plain`: known
/// to have none).
fn raw_str(t: &str, plain: bool) -> Option<Cow<'_, str>> {
    if !t.starts_with('"') {
        return None;
    }
    let inner = &t[1..t.len() - 1];
    if plain || !inner.contains('\\') {
        return Some(Cow::Borrowed(inner));
    }
    serde_json::from_str::<String>(t).ok().map(Cow::Owned)
}

/// A non-negative JSON integer, or why not.
fn raw_uint(t: &str) -> Result<u64, &'static str> {
    let b = t.as_bytes();
    match b.first() {
        Some(b'-') => {
            if t.contains(['.', 'e', 'E']) {
                Err("a decimal number")
            } else {
                Err("a negative number")
            }
        }
        Some(c) if c.is_ascii_digit() => {
            if t.contains(['.', 'e', 'E']) {
                Err("a decimal number")
            } else {
                t.parse::<u64>().map_err(|_| "a number too large")
            }
        }
        _ => Err(kind_of(t)),
    }
}

/// `a == b`, byte by byte in line: keys are short, and most lookups compare
/// once, where a call to `memcmp` cost more than the comparison (profiled).
fn same_key(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y)
}

/// Field access on one JSON object, with a path prefix for nested objects.
struct Fields<'a> {
    obj: RawObject<'a>,
    prefix: String,
    /// Where the last lookup matched: producers send fields in a fixed order,
    /// so the next one asked for is usually just after it.
    cursor: std::cell::Cell<usize>,
    /// One bit per pair (the first 64) that a reader looked up: the rest are
    /// fields this format does not define (kept, and private in the ledger).
    read: std::cell::Cell<u64>,
    /// The same for pairs past the 64th (rare: no allocation otherwise).
    read_beyond: std::cell::RefCell<Vec<usize>>,
    /// The top-level keys whose nested objects hold keys no reader looked up,
    /// shared by an object and the objects nested in it (made on first use).
    nested_extras: std::cell::RefCell<Option<std::rc::Rc<std::cell::RefCell<Vec<String>>>>>,
}

impl Fields<'_> {
    /// Whether pair `i` was looked up.
    fn was_read(&self, i: usize) -> bool {
        if i < 64 {
            self.read.get() & (1 << i) != 0
        } else {
            self.read_beyond.borrow().contains(&i)
        }
    }
}

impl Drop for Fields<'_> {
    /// A nested object notes, when it is done with, whether it held keys its
    /// type does not define: its top-level field then holds extras too.
    fn drop(&mut self) {
        if self.prefix.is_empty() || (0..self.obj.pairs.len()).all(|i| self.was_read(i)) {
            return;
        }
        if let Some(list) = self.nested_extras.borrow().as_ref() {
            let top = self.prefix.split(['.', '[']).next().unwrap_or_default().to_owned();
            let mut list = list.borrow_mut();
            if !list.contains(&top) {
                list.push(top);
            }
        }
    }
}

impl<'a> Fields<'a> {
    fn path(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The value, or `None` when absent or `null`.
    fn get(&self, key: &str) -> Option<&'a str> {
        let pairs = &self.obj.pairs;
        let from = self.cursor.get().min(pairs.len());
        let (i, (_, v)) = pairs[from..]
            .iter()
            .enumerate()
            .map(|(i, p)| (i + from, p))
            .chain(pairs[..from].iter().enumerate())
            .find(|(_, (k, _))| same_key(k, key))?;
        self.cursor.set(i + 1);
        if i < 64 {
            self.read.set(self.read.get() | 1 << i);
        } else {
            self.read_beyond.borrow_mut().push(i);
        }
        Some(*v).filter(|v| !is_null(v))
    }

    fn missing(&self, key: &str) -> FieldError {
        FieldError::at(
            self.path(key),
            format!("required field `{}` is missing (or null); add it", self.path(key)),
        )
    }

    fn req<T>(&self, key: &str, f: impl FnOnce(&Self, &str, &'a str) -> R<T>) -> R<T> {
        match self.get(key) {
            Some(v) => f(self, key, v),
            None => Err(self.missing(key)),
        }
    }

    fn opt<T>(&self, key: &str, f: impl FnOnce(&Self, &str, &'a str) -> R<T>) -> R<Option<T>> {
        match self.get(key) {
            Some(v) => f(self, key, v).map(Some),
            None => Ok(None),
        }
    }

    fn wrong(&self, key: &str, expected: &str, got: &str) -> FieldError {
        FieldError::at(self.path(key), format!("expected {expected}, got {got}"))
    }

    fn text_at(&self, key: &str, v: &'a str) -> R<Str<'a>> {
        raw_str(v, self.obj.plain).ok_or_else(|| self.wrong(key, "a string", kind_of(v)))
    }

    fn id_at(&self, key: &str, v: &'a str) -> R<Str<'a>> {
        let s = self.text_at(key, v)?;
        check_id(&s).map_err(|m| FieldError::at(self.path(key), m))?;
        Ok(s)
    }

    fn fen_at(&self, key: &str, v: &'a str) -> R<u64> {
        match raw_uint(v) {
            Ok(n) if n <= MAX_FEN => Ok(n),
            Ok(_) | Err("a number too large") => Err(FieldError::at(
                self.path(key),
                format!("{v} is out of range: money must be at most {MAX_FEN} fen"),
            )),
            Err(got) => Err(FieldError::at(
                self.path(key),
                format!("money must be a whole, non-negative number of fen (分), got {got} `{v}`; e.g. write ¥99.50 as 9950"),
            )),
        }
    }

    fn count_at(&self, key: &str, v: &'a str, min: u32) -> R<u32> {
        let n = raw_uint(v).map_err(|got| self.wrong(key, "a whole non-negative number", got))?;
        match u32::try_from(n) {
            Ok(n) if n >= min => Ok(n),
            _ => Err(FieldError::at(
                self.path(key),
                format!(
                    "{n} is out of range: expected a whole number from {min} to {}",
                    u32::MAX
                ),
            )),
        }
    }

    fn bool_at(&self, key: &str, v: &'a str) -> R<bool> {
        match v {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(self.wrong(key, "true or false", kind_of(v))),
        }
    }

    fn time_at(&self, key: &str, v: &'a str) -> R<Time> {
        let s = raw_str(v, self.obj.plain).ok_or_else(|| self.wrong(key, "an RFC 3339 time string", kind_of(v)))?;
        Time::parse(&s).map_err(|m| FieldError::at(self.path(key), m))
    }

    fn sha256_at(&self, key: &str, v: &'a str) -> R<Str<'a>> {
        let s = self.text_at(key, v)?;
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(if s.bytes().any(|b| b.is_ascii_uppercase()) {
                Cow::Owned(s.to_ascii_lowercase())
            } else {
                s
            })
        } else {
            Err(FieldError::at(
                self.path(key),
                format!("`{s}` is not a hex SHA-256 (64 hex digits)"),
            ))
        }
    }

    fn keyword_at<K: Keyword>(&self, key: &str, v: &'a str) -> R<K> {
        let s = raw_str(v, self.obj.plain).ok_or_else(|| self.wrong(key, "a string", kind_of(v)))?;
        K::from_keyword(&s).ok_or_else(|| {
            let all: Vec<&str> = K::ALL.iter().map(|(k, _)| *k).collect();
            FieldError::at(
                self.path(key),
                format!("`{s}` is not allowed here; use one of: {}", all.join(", ")),
            )
        })
    }

    fn raw_json_at(&self, _key: &str, v: &'a str) -> R<Str<'a>> {
        Ok(Cow::Borrowed(v))
    }

    /// A list whose items are read by `item(fields_of_list, index_key, raw)`.
    fn list_at<T>(&self, key: &str, v: &'a str, item: impl Fn(&Self, &str, &'a str) -> R<T>) -> R<Vec<T>> {
        let items: Vec<&'a RawValue> = serde_json::from_str(v).map_err(|_| self.wrong(key, "a list", kind_of(v)))?;
        items
            .into_iter()
            .enumerate()
            .map(|(i, raw)| item(self, &format!("{key}[{i}]"), raw.get()))
            .collect()
    }

    /// A nested object, read with its own path prefix.
    fn object_at(&self, key: &str, v: &'a str) -> R<Fields<'a>> {
        let obj = object(v).map_err(|_| self.wrong(key, "an object", kind_of(v)))?;
        let shared = self
            .nested_extras
            .borrow_mut()
            .get_or_insert_with(Default::default)
            .clone();
        let fields = Fields {
            obj,
            prefix: format!("{}.", self.path(key)),
            cursor: std::cell::Cell::new(0),
            read: std::cell::Cell::new(0),
            read_beyond: Default::default(),
            nested_extras: std::cell::RefCell::new(Some(shared)),
        };
        fields.no_duplicate_keys()?;
        Ok(fields)
    }

    fn no_duplicate_keys(&self) -> R<()> {
        match &self.obj.duplicate {
            Some(k) => Err(FieldError::at(
                self.path(k),
                format!("key `{k}` appears twice in one object; send each field once"),
            )),
            None => Ok(()),
        }
    }

    // Short names for the common shapes, so the per-type readers stay one line a field.
    fn id(&self, k: &str) -> R<Str<'a>> {
        self.req(k, Self::id_at)
    }
    fn id_opt(&self, k: &str) -> R<Option<Str<'a>>> {
        self.opt(k, Self::id_at)
    }
    fn text(&self, k: &str) -> R<Str<'a>> {
        self.req(k, Self::text_at)
    }
    fn text_opt(&self, k: &str) -> R<Option<Str<'a>>> {
        self.opt(k, Self::text_at)
    }
    fn fen(&self, k: &str) -> R<u64> {
        self.req(k, Self::fen_at)
    }
    fn fen_opt(&self, k: &str) -> R<Option<u64>> {
        self.opt(k, Self::fen_at)
    }
    fn uint_opt(&self, k: &str) -> R<Option<u32>> {
        self.opt(k, |f, k, v| f.count_at(k, v, 0))
    }
    fn boolean(&self, k: &str) -> R<bool> {
        self.req(k, Self::bool_at)
    }
    fn boolean_opt(&self, k: &str) -> R<Option<bool>> {
        self.opt(k, Self::bool_at)
    }
    fn time_opt(&self, k: &str) -> R<Option<Time>> {
        self.opt(k, Self::time_at)
    }
    fn keyword<K: Keyword>(&self, k: &str) -> R<K> {
        self.req(k, Self::keyword_at::<K>)
    }
    fn texts_opt(&self, k: &str) -> R<Option<Vec<Str<'a>>>> {
        self.opt(k, |f, k, v| f.list_at(k, v, Self::text_at))
    }

    fn presale_terms(&self) -> R<PresaleTerms<'a>> {
        Ok(PresaleTerms {
            merchant: self.id_opt("merchant")?,
            sku: self.id_opt("sku")?,
            deposit_fen: self.fen_opt("deposit_fen")?,
            price_fen: self.fen_opt("price_fen")?,
            deposit_start: self.time_opt("deposit_start")?,
            deposit_end: self.time_opt("deposit_end")?,
            final_start: self.time_opt("final_start")?,
            final_end: self.time_opt("final_end")?,
            ship_within_days: self.uint_opt("ship_within_days")?,
            gifts: self.texts_opt("gifts")?,
            deposit_refundable: self.boolean_opt("deposit_refundable")?,
            terms: self.text_opt("terms")?,
        })
    }

    fn prize_at(&self, key: &str, v: &'a str) -> R<Prize<'a>> {
        let p = self.object_at(key, v)?;
        Ok(Prize {
            name: p.text_opt("name")?,
            value_fen: p.fen_opt("value_fen")?,
            count: p.uint_opt("count")?,
        })
    }

    /// A prize list; its names are distinct (Messy streams 8: a shipment or a
    /// winner names its prize, which must say which one).
    fn prizes_at(&self, key: &str, v: &'a str) -> R<Vec<Prize<'a>>> {
        let prizes = self.list_at(key, v, Self::prize_at)?;
        for (i, p) in prizes.iter().enumerate() {
            let Some(name) = &p.name else { continue };
            if let Some(j) = prizes[..i].iter().position(|q| q.name.as_ref() == Some(name)) {
                return Err(FieldError::at(
                    self.path(key),
                    format!("prizes[{j}] and prizes[{i}] are both named `{name}`; give each prize a distinct name"),
                ));
            }
        }
        Ok(prizes)
    }

    fn lottery_terms(&self) -> R<LotteryTerms<'a>> {
        Ok(LotteryTerms {
            merchant: self.id_opt("merchant")?,
            host: self.id_opt("host")?,
            stream: self.id_opt("stream")?,
            prizes: self.opt("prizes", Self::prizes_at)?,
            conditions: self.texts_opt("conditions")?,
            draw_at: self.time_opt("draw_at")?,
            deliver_within_days: self.uint_opt("deliver_within_days")?,
            organizer: self.text_opt("organizer")?,
            contact: self.text_opt("contact")?,
            odds: self.opt("odds", Self::raw_json_at)?,
            commitment: self.opt("commitment", Self::sha256_at)?,
            beacon_round: self.opt("beacon_round", |f, k, v| {
                // The ledger keeps events as canonical JSON, whose numbers are
                // IEEE doubles: a larger round would come back changed.
                match raw_uint(v) {
                    Ok(n) if n < 1 << 53 => Ok(n),
                    Ok(_) | Err("a number too large") => Err(FieldError::at(
                        f.path(k),
                        format!("{v} is out of range: a drand round number is below 2^53"),
                    )),
                    Err(got) => Err(f.wrong(k, "a drand round number", got)),
                }
            })?,
        })
    }
}

/// `s` with every character that does not show itself written as `\u{…}`:
/// controls, bidi controls (which reverse or reorder what follows), zero-width
/// characters and the byte-order mark. The spec allows them in ids; shown raw
/// in a page's title or heading, or in a terminal, they make one id look like
/// another.
pub fn visible(s: &str) -> Cow<'_, str> {
    let hidden = |c: char| {
        c.is_control()
            || matches!(c, '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
    };
    if !s.chars().any(hidden) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if hidden(c) {
            out.push_str(&format!("\\u{{{:04x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Checks the identifier rule: non-empty, at most [`MAX_ID_CHARS`] characters.
pub fn check_id(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("identifier is empty; ids must be 1 to 128 characters".into());
    }
    // PostgreSQL's text cannot hold U+0000, and a ledger on it would refuse
    // the whole batch that carried one; no platform's id needs it.
    if s.contains('\0') {
        return Err("identifier contains U+0000 (NUL), which ids may not; remove it".into());
    }
    // Byte length bounds char count from above, so only long strings need counting.
    if s.len() > MAX_ID_CHARS && s.chars().count() > MAX_ID_CHARS {
        return Err(format!(
            "identifier is {} characters long; ids must be at most {MAX_ID_CHARS}",
            s.chars().count()
        ));
    }
    Ok(())
}

/// Parses one line (without its newline) into an event.
pub fn parse_event(line: &str) -> Result<Event<'_>, ParseError> {
    parse_fields(line).map(|(event, _)| event)
}

/// Parses one line into an event, with the top-level keys that no field of
/// its type reads — the producer's own extra fields, in input order — and
/// then the defined fields whose nested objects hold keys of the producer's
/// own (an `evidence` item, a prize): those hold extras too.
pub fn parse_event_with_extras(line: &str) -> Result<(Event<'_>, Vec<Cow<'_, str>>), ParseError> {
    let (event, f) = parse_fields(line)?;
    let nested: Vec<String> = (f.nested_extras.borrow().as_ref())
        .map(|l| l.borrow().clone())
        .unwrap_or_default();
    let mut extras: Vec<Cow<'_, str>> = (f.obj.pairs.iter().enumerate())
        .filter(|(i, _)| !f.was_read(*i))
        .map(|(_, (k, _))| k.clone())
        .collect();
    extras.extend(nested.into_iter().map(Cow::Owned));
    Ok((event, extras))
}

fn parse_fields(line: &str) -> Result<(Event<'_>, Fields<'_>), ParseError> {
    let obj = object(line).map_err(|e| ParseError {
        id: None,
        field: None,
        // Only a file's first line may carry a byte-order mark (framing drops it there);
        // one further down is most often files joined with `cat`, and serde_json's
        // "expected value" would not say so.
        message: if line.trim_start_matches([' ', '\t']).starts_with('\u{feff}') {
            "the line starts with a byte-order mark (U+FEFF), which only the first line of a file may carry (files joined with `cat`?); remove it".into()
        } else if e.is_data() {
            "the line is valid JSON but not an object; each line must be one JSON object".into()
        } else {
            format!("not valid JSON ({e}); each line must be one JSON object")
        },
    })?;
    let f = Fields {
        obj,
        prefix: String::new(),
        cursor: std::cell::Cell::new(0),
        read: std::cell::Cell::new(0),
        read_beyond: Default::default(),
        nested_extras: Default::default(),
    };
    // The id is read first so that every later error can carry it.
    let id = f.id("id");
    // Copied only when an error needs it (a borrowed id clones without allocating).
    let known_id = id.as_ref().ok().cloned();
    let with_id = |e: FieldError| ParseError {
        id: known_id.as_deref().map(str::to_owned),
        field: e.field,
        message: e.message,
    };
    f.no_duplicate_keys().map_err(with_id)?;
    let v = f.req("v", |f, k, v| match raw_uint(v) {
        Ok(n) => Ok(n),
        Err(got) => Err(f.wrong(k, "the schema version 1", got)),
    });
    match v {
        Ok(1) => {}
        Ok(n) => {
            return Err(with_id(FieldError::at(
                "v",
                format!("schema version {n} is not supported; this weiquan reads version 1"),
            )))
        }
        Err(e) => return Err(with_id(e)),
    }
    let id = id.map_err(with_id)?;
    let ty = f.req("type", Fields::text_at).map_err(with_id)?;
    let at = f.req("at", Fields::time_at).map_err(with_id)?;
    let body = body(&f, &ty).map_err(with_id)?;
    Ok((Event { id, at, body }, f))
}

/// Whether a defined field of an event type holds personal data, which the
/// public ledger keeps only as a salted commitment: the consumer and
/// participant ids (and so a draw's `winners`), free text a person wrote or
/// is described by (`text`, `reason`), what the platform knows of a consumer
/// (`segment`), and a host's name (主播 are people; a merchant's `name` is a
/// business's). Extra fields are private too, but
/// that is known only from the line ([`parse_event_with_extras`]).
pub fn is_personal_field(body: &Body<'_>, key: &str) -> bool {
    matches!(
        key,
        "consumer" | "participant" | "winners" | "text" | "reason" | "segment"
    ) || (matches!(body, Body::HostRegistered { .. }) && key == "name")
}

/// Whether member `key` of an event enters a public leaf only as a salted
/// commitment: a personal field ([`is_personal_field`]), or a top-level field
/// the format does not define for the event's type (`extras`, from
/// [`parse_event_with_extras`]: the producer's own, and weiquan cannot know
/// what is in them) — but never the envelope (`v`, `id`, `type`, `at`),
/// which replay needs erased or not, and no extra field of weiquan's own
/// acts (`own_act`: `entrants_root`, `acted_at` hold nothing personal).
pub fn is_private_member(body: &Body<'_>, extras: &[Cow<'_, str>], own_act: bool, key: &str) -> bool {
    is_personal_field(body, key) || (!own_act && extras.iter().any(|e| e == key) && !is_envelope(key))
}

/// The envelope of an event: never salted, whatever else is.
fn is_envelope(key: &str) -> bool {
    matches!(key, "v" | "id" | "type" | "at")
}

fn body<'a>(f: &Fields<'a>, ty: &str) -> R<Body<'a>> {
    Ok(match ty {
        "clock.tick" => Body::ClockTick,
        "merchant.registered" => Body::MerchantRegistered {
            merchant: f.id("merchant")?,
            name: f.text("name")?,
            uscc: f.text("uscc")?,
            channels: f.req("channels", |f, k, v| f.list_at(k, v, Fields::keyword_at::<Channel>))?,
            licence_sha256: f.opt("licence_sha256", Fields::sha256_at)?,
        },
        "merchant.verified" => Body::MerchantVerified {
            merchant: f.id("merchant")?,
            method: f.keyword("method")?,
            by: f.text("by")?,
        },
        "merchant.closed" => Body::MerchantClosed {
            merchant: f.id("merchant")?,
            reason: f.text_opt("reason")?,
        },
        "merchant.reopened" => Body::MerchantReopened {
            merchant: f.id("merchant")?,
        },
        "merchant.blacklist_lifted" => {
            let merchant = f.id("merchant")?;
            let by = f.keyword("by")?;
            let reason = f.text("reason")?;
            if reason.trim().is_empty() {
                return Err(FieldError::at(
                    "reason",
                    "a blacklist is lifted only with a reason; say why",
                ));
            }
            Body::MerchantBlacklistLifted { merchant, by, reason }
        }
        "host.registered" => Body::HostRegistered {
            host: f.id("host")?,
            name: f.text("name")?,
            merchant: f.id_opt("merchant")?,
        },
        "host.verified" => Body::HostVerified {
            host: f.id("host")?,
            method: f.keyword("method")?,
            by: f.text("by")?,
        },
        "host.suspended" => Body::HostSuspended {
            host: f.id("host")?,
            reason: f.text_opt("reason")?,
        },
        "host.reinstated" => Body::HostReinstated { host: f.id("host")? },
        "listing.published" => Body::ListingPublished {
            merchant: f.id("merchant")?,
            sku: f.id("sku")?,
            title: f.text("title")?,
            text: f.text_opt("text")?,
            price_fen: f.fen("price_fen")?,
            reference_price_fen: f.fen_opt("reference_price_fen")?,
            channel: f.opt("channel", Fields::keyword_at::<Channel>)?,
        },
        "listing.updated" => Body::ListingUpdated {
            merchant: f.id("merchant")?,
            sku: f.id("sku")?,
            title: f.text_opt("title")?,
            text: f.text_opt("text")?,
            price_fen: f.fen_opt("price_fen")?,
            reference_price_fen: f.fen_opt("reference_price_fen")?,
        },
        "price.changed" => Body::PriceChanged {
            merchant: f.id("merchant")?,
            sku: f.id("sku")?,
            price_fen: f.fen("price_fen")?,
        },
        "listing.removed" => Body::ListingRemoved {
            merchant: f.id("merchant")?,
            sku: f.id("sku")?,
        },
        "price.quoted" => Body::PriceQuoted {
            merchant: f.id("merchant")?,
            sku: f.id("sku")?,
            consumer: f.id("consumer")?,
            price_fen: f.fen("price_fen")?,
            segment: f.text_opt("segment")?,
        },
        "order.placed" => Body::OrderPlaced {
            order: f.id("order")?,
            merchant: f.id("merchant")?,
            consumer: f.id("consumer")?,
            sku: f.id("sku")?,
            qty: f.req("qty", |f, k, v| f.count_at(k, v, 1))?,
            amount_fen: f.fen("amount_fen")?,
            payment: f.keyword("payment")?,
            confirmed: f.boolean_opt("confirmed")?,
            identity_verified: f.boolean_opt("identity_verified")?,
            campaign: f.id_opt("campaign")?,
        },
        "order.shipped" => Body::OrderShipped { order: f.id("order")? },
        "order.delivered" => Body::OrderDelivered { order: f.id("order")? },
        "order.cancelled" => Body::OrderCancelled {
            order: f.id("order")?,
            by: f.keyword("by")?,
        },
        "refund.requested" => Body::RefundRequested {
            order: f.id("order")?,
            amount_fen: f.fen("amount_fen")?,
            no_reason: f.boolean("no_reason")?,
            reason: f.text_opt("reason")?,
        },
        "refund.completed" => Body::RefundCompleted {
            order: f.id("order")?,
            amount_fen: f.fen("amount_fen")?,
        },
        "refund.rejected" => Body::RefundRejected {
            order: f.id("order")?,
            reason: f.text("reason")?,
        },
        "presale.published" => {
            let campaign = f.id("campaign")?;
            // Required terms are checked in spec order so the first missing one is named.
            f.id("merchant")?;
            f.id("sku")?;
            f.fen("deposit_fen")?;
            f.fen("price_fen")?;
            for k in ["deposit_start", "deposit_end", "final_start", "final_end"] {
                f.req(k, Fields::time_at)?;
            }
            f.req("ship_within_days", |f, k, v| f.count_at(k, v, 0))?;
            Body::PresalePublished {
                campaign,
                terms: Box::new(f.presale_terms()?),
            }
        }
        "presale.changed" => Body::PresaleChanged {
            campaign: f.id("campaign")?,
            changes: Box::new(f.presale_terms()?),
        },
        "presale.deposit_paid" => Body::PresaleDepositPaid {
            campaign: f.id("campaign")?,
            order: f.id("order")?,
            consumer: f.id("consumer")?,
            deposit_fen: f.fen("deposit_fen")?,
        },
        "presale.final_paid" => Body::PresaleFinalPaid {
            campaign: f.id("campaign")?,
            order: f.id("order")?,
            final_fen: f.fen("final_fen")?,
            gifts: f.texts_opt("gifts")?,
        },
        "presale.gift_withdrawn" => Body::PresaleGiftWithdrawn {
            campaign: f.id("campaign")?,
            order: f.id_opt("order")?,
            gift: f.text("gift")?,
            reason: f.text_opt("reason")?,
        },
        "presale.deposit_refund_requested" => Body::PresaleDepositRefundRequested {
            campaign: f.id("campaign")?,
            order: f.id("order")?,
        },
        "presale.deposit_refunded" => Body::PresaleDepositRefunded {
            campaign: f.id("campaign")?,
            order: f.id("order")?,
            amount_fen: f.fen("amount_fen")?,
        },
        "lottery.announced" => {
            let lottery = f.id("lottery")?;
            for k in ["merchant", "host", "stream"] {
                f.id(k)?;
            }
            if f.get("prizes").is_none() {
                return Err(f.missing("prizes"));
            }
            Body::LotteryAnnounced {
                lottery,
                terms: Box::new(f.lottery_terms()?),
            }
        }
        "lottery.changed" => Body::LotteryChanged {
            lottery: f.id("lottery")?,
            changes: Box::new(f.lottery_terms()?),
        },
        "lottery.entered" => Body::LotteryEntered {
            lottery: f.id("lottery")?,
            participant: f.id("participant")?,
        },
        "lottery.closed" => Body::LotteryClosed {
            lottery: f.id("lottery")?,
        },
        "lottery.drawn" => Body::LotteryDrawn {
            lottery: f.id("lottery")?,
            winners: f.req("winners", |f, k, v| {
                f.list_at(k, v, |f, k, v| {
                    let w = f.object_at(k, v)?;
                    Ok(Winner {
                        participant: w.id("participant")?,
                        prize: w.text("prize")?,
                    })
                })
            })?,
            seed: f.text_opt("seed")?,
            proof: f.opt("proof", Fields::raw_json_at)?,
            beacon_signature: f.opt("beacon_signature", |f, k, v| {
                let s = f.text_at(k, v)?;
                if s.len() == 96 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
                    Ok(s)
                } else {
                    Err(FieldError::at(
                        f.path(k),
                        "expected the drand round's BLS signature: 96 hex digits",
                    ))
                }
            })?,
        },
        "lottery.prize_shipped" => Body::LotteryPrizeShipped {
            lottery: f.id("lottery")?,
            participant: f.id("participant")?,
            prize: f.text("prize")?,
            value_fen: f.fen("value_fen")?,
        },
        "lottery.prize_delivered" => Body::LotteryPrizeDelivered {
            lottery: f.id("lottery")?,
            participant: f.id("participant")?,
        },
        "lottery.cancelled" => Body::LotteryCancelled {
            lottery: f.id("lottery")?,
            reason: f.text_opt("reason")?,
        },
        "service.message" => Body::ServiceMessage {
            merchant: f.id("merchant")?,
            conversation: f.id("conversation")?,
            consumer: f.id("consumer")?,
            from: f.keyword("from")?,
        },
        "complaint.filed" => Body::ComplaintFiled {
            complaint: f.id("complaint")?,
            consumer: f.id("consumer")?,
            merchant: f.id("merchant")?,
            order: f.id_opt("order")?,
            category: f.keyword("category")?,
            text: f.text_opt("text")?,
            evidence: f.opt("evidence", |f, k, v| {
                f.list_at(k, v, |f, k, v| {
                    let e = f.object_at(k, v)?;
                    Ok(Evidence {
                        sha256: e.req("sha256", Fields::sha256_at)?,
                        kind: e.text("kind")?,
                    })
                })
            })?,
        },
        "complaint.responded" => Body::ComplaintResponded {
            complaint: f.id("complaint")?,
            by: f.keyword("by")?,
        },
        "complaint.resolved" => Body::ComplaintResolved {
            complaint: f.id("complaint")?,
            outcome: f.keyword("outcome")?,
        },
        "complaint.escalated" => Body::ComplaintEscalated {
            complaint: f.id("complaint")?,
            to: f.keyword("to")?,
        },
        "bnpl.offered" => Body::BnplOffered {
            consumer: f.id("consumer")?,
            session: f.id("session")?,
            preselected: f.boolean("preselected")?,
            terms_shown: f.boolean("terms_shown")?,
        },
        "bnpl.enabled" => Body::BnplEnabled {
            consumer: f.id("consumer")?,
            provider: f.id("provider")?,
            consent: f.keyword("consent")?,
            identity_verified: f.boolean("identity_verified")?,
        },
        "bnpl.disabled" => Body::BnplDisabled {
            consumer: f.id("consumer")?,
            provider: f.id("provider")?,
            steps: f.req("steps", |f, k, v| f.count_at(k, v, 0))?,
        },
        "bnpl.cancel_failed" => Body::BnplCancelFailed {
            consumer: f.id("consumer")?,
            provider: f.id("provider")?,
            reason: f.text_opt("reason")?,
        },
        other => {
            return Err(FieldError::at(
                "type",
                format!("unknown event type `{other}`; the types of format v1 are those of the event spec (docs/spec/events.md in weiquan's repository)"),
            ))
        }
    })
}
