//! Reading a ledger back: what each leaf records, as every reader of a whole
//! ledger sees it (the server's replay, `weiquan backtest`, `verify draw`).
//! Leaves come from [`weiquan_store::walk_leaves`] with their private rows;
//! [`recorded`] says what one of them is, with personal data restored.

use weiquan_ledger::{leaf_event, own_leaf, stand_in, unsalted_event, OwnLeaf, PrivateRow, StandIn};
use weiquan_store::{LogStore, PrivateData, StoreError};

/// What one ledger leaf records.
#[derive(Clone, Debug, PartialEq)]
pub enum Recorded {
    /// An accepted event, as it was submitted (personal data restored from
    /// its private row).
    Event {
        /// The event's JSON text.
        text: String,
        /// The leaf format (1, 2 or 3); before 3, consumers were named in
        /// the clear and have no private row.
        format: u8,
    },
    /// An event leaf that cannot be read back: its private row was erased
    /// or is missing. Why, in words.
    Unreadable(String),
    /// weiquan's own leaf: a finding, or the rulebook in effect from here on.
    /// A finding's salted subject (a consumer) is opened from the private
    /// row: the id, or once erased the pseudonym the engine used; without a
    /// row it stays the commitment.
    Own(OwnLeaf),
    /// None of these (not weiquan's, or of a kind this reader does not know).
    Other,
}

/// What the leaf `text`, with its private row `row`, records.
pub fn recorded(text: &str, row: Option<&PrivateRow>) -> Recorded {
    if let Some(leaf) = leaf_event(text) {
        return match unsalted_event(&leaf, row) {
            Ok(event) => Recorded::Event {
                text: event.into_owned(),
                format: leaf.format,
            },
            Err(why) => Recorded::Unreadable(why),
        };
    }
    match own_leaf(text) {
        Some(OwnLeaf::Finding {
            rule,
            subject,
            at,
            salted,
        }) => {
            let opened = row.filter(|_| salted).and_then(opened_subject);
            Recorded::Own(OwnLeaf::Finding {
                rule,
                subject: opened.unwrap_or(subject),
                at,
                salted,
            })
        }
        Some(own) => Recorded::Own(own),
        None => match stand_in(text) {
            // The line itself, which parses though it has no canonical form.
            Some(StandIn { line: Some(text), .. }) => Recorded::Event { text, format: 1 },
            Some(StandIn { id, line: None }) => Recorded::Unreadable(format!(
                "event {id} is logged by its hash only (its line has no canonical JSON form and is too long to carry)"
            )),
            None => Recorded::Other,
        },
    }
}

/// A salted finding subject from its private row: the original, or once
/// erased the consumer's pseudonym.
fn opened_subject(row: &PrivateRow) -> Option<String> {
    let values = (row.values.as_deref()).and_then(|v| serde_json::from_slice::<serde_json::Value>(v).ok());
    values
        .and_then(|v| v["subject"].as_str().map(str::to_owned))
        .or_else(|| row.consumer.as_ref().map(|p| format!("consumer:{p}")))
}

/// The id of the event an event leaf records, from its envelope (never
/// salted): there whether or not the rest can be read back (an erased
/// consumer's events keep their ids). A stand-in's too.
pub fn leaf_event_id(text: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Envelope<'a> {
        #[serde(borrow)]
        id: std::borrow::Cow<'a, str>,
    }
    let Some(leaf) = leaf_event(text) else {
        return stand_in(text).map(|s| s.id);
    };
    let envelope: Envelope = serde_json::from_str(&leaf.event).ok()?;
    Some(envelope.id.into_owned())
}

/// Calls `each` with every leaf of the ledger in `store` from index `from`
/// on, in order: its index and what it records.
pub fn walk_recorded<S, E>(
    store: &mut S,
    from: u64,
    mut each: impl FnMut(u64, Recorded) -> Result<(), E>,
) -> Result<(), E>
where
    S: LogStore + PrivateData + ?Sized,
    E: From<StoreError>,
{
    weiquan_store::walk_leaves(store, from, |index, text, row| each(index, recorded(text, row)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use weiquan_ledger::{finding_leaf, rulebook_leaf, salted_event_leaf, Actor};

    const LINE: &str =
        r#"{"v":1,"id":"e1","type":"bnpl.enabled","at":"2026-01-01T00:00:00Z","consumer":"u1","provider":"p"}"#;

    fn row(leaf: u64, consumer: Option<&str>, salt: Option<[u8; 32]>, values: Option<Vec<u8>>) -> PrivateRow {
        PrivateRow {
            leaf,
            consumer: consumer.map(str::to_owned),
            salt,
            values,
        }
    }

    fn text(leaf: &[u8]) -> &str {
        std::str::from_utf8(leaf).expect("leaves are UTF-8")
    }

    #[test]
    fn a_salted_event_is_restored_from_its_row_and_unreadable_without_one() {
        let actor = Actor {
            role: "platform".into(),
            key: None,
            on_behalf: None,
        };
        let salt = [7u8; 32];
        let leaf =
            salted_event_leaf(LINE, &actor.canonical().expect("actor"), |k| k == "consumer", &salt).expect("leaf");
        assert!(!text(&leaf.leaf).contains("u1"), "the public leaf names no consumer");
        let kept = row(0, Some("ps:x"), Some(salt), leaf.values.clone());
        match recorded(text(&leaf.leaf), Some(&kept)) {
            Recorded::Event { text, format } => {
                assert_eq!(format, 3);
                let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
                assert_eq!(
                    v["consumer"], "ps:x",
                    "the engine's name for the consumer comes from the row"
                );
                assert_eq!(v["provider"], "p");
            }
            other => panic!("expected an event, got {other:?}"),
        }
        // Erased: the pseudonym stays, so an event whose only personal member
        // is the consumer still replays, under the name the engine used.
        let erased = row(0, Some("ps:x"), None, None);
        assert!(
            matches!(recorded(text(&leaf.leaf), Some(&erased)), Recorded::Event { text, .. } if text.contains(r#""consumer":"ps:x""#))
        );
        assert!(matches!(recorded(text(&leaf.leaf), None), Recorded::Unreadable(why) if why.contains("missing")));
    }

    #[test]
    fn findings_open_their_subject_and_rulebooks_give_their_fingerprint() {
        let salt = [9u8; 32];
        let f = finding_leaf(
            "BN-01",
            "consumer:u1",
            "high",
            "2026-01-01T00:00:00Z",
            &[],
            &[],
            "c",
            Some(&salt),
        )
        .expect("leaf");
        let opened = row(5, Some("ps:y"), Some(salt), f.values.clone());
        assert_eq!(
            recorded(text(&f.leaf), Some(&opened)),
            Recorded::Own(OwnLeaf::Finding {
                rule: "BN-01".into(),
                subject: "consumer:u1".into(),
                at: "2026-01-01T00:00:00Z".into(),
                salted: true
            })
        );
        let erased = row(5, Some("ps:y"), None, None);
        assert!(matches!(
            recorded(text(&f.leaf), Some(&erased)),
            Recorded::Own(OwnLeaf::Finding { subject, .. }) if subject == "consumer:ps:y"
        ));
        let plain = finding_leaf(
            "PS-01",
            "campaign:c",
            "high",
            "2026-01-01T00:00:00Z",
            &[],
            &[],
            "c",
            None,
        )
        .expect("leaf");
        assert!(matches!(
            recorded(text(&plain.leaf), None),
            Recorded::Own(OwnLeaf::Finding { subject, salted: false, .. }) if subject == "campaign:c"
        ));
        let (rules, sha) = rulebook_leaf(&serde_json::json!({"x": 1})).expect("rulebook");
        assert_eq!(
            recorded(text(&rules), None),
            Recorded::Own(OwnLeaf::Rulebook { sha256: sha })
        );
        assert_eq!(recorded("not a leaf", None), Recorded::Other);
    }
}
