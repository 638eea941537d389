//! What the engine reports.

use crate::rulebook::{Lang, RuleId, Rulebook};
use serde::Serialize;
use weiquan_events::Time;

/// One finding: a rule that fired on a subject, with its evidence.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct Finding {
    /// The rule.
    pub rule: RuleId,
    /// What it is about, `kind:id` (e.g. `order:o1`, `sku:m1/s1`).
    pub subject: String,
    /// The merchant the subject belongs to, when it belongs to one.
    pub merchant: Option<String>,
    /// Business time at which it fired.
    pub at: Time,
    /// Ids of the events that evidence it, triggering event last.
    pub events: Vec<String>,
    /// Values the message refers to, by placeholder name.
    #[serde(deserialize_with = "crate::snapshot::fact_names")]
    pub facts: Vec<(crate::snapshot::Spelling, String)>,
}

/// A finding as printed and stored: severity, citation and message filled in
/// from the rulebook. Field order is the output order.
#[derive(Clone, Debug, Serialize)]
pub struct FindingRecord<'a> {
    /// Rule id.
    pub rule: RuleId,
    /// `kind:id`.
    pub subject: &'a str,
    /// `high`, `medium` or `low`.
    pub severity: &'static str,
    /// When it fired.
    pub at: Time,
    /// Evidence event ids.
    pub events: &'a [String],
    /// The regulation or policy it rests on.
    pub citation: &'a str,
    /// One sentence for a consumer or an inspector.
    pub message: String,
    /// Owning merchant, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merchant: Option<&'a str>,
}

impl Finding {
    /// Fills in severity, citation and message from `rules`.
    pub fn record<'a>(&'a self, rules: &'a Rulebook, lang: Lang) -> FindingRecord<'a> {
        let text = rules.text(self.rule);
        FindingRecord {
            rule: self.rule,
            subject: &self.subject,
            severity: text.severity.as_str(),
            at: self.at,
            events: &self.events,
            citation: &text.citation,
            message: rules.message(self.rule, lang, &self.subject, &self.facts),
            merchant: self.merchant.as_deref(),
        }
    }
}

/// Formats fen as yuan, e.g. 32000 → `¥320.00`.
pub fn yuan(fen: u64) -> String {
    format!("¥{}.{:02}", fen / 100, fen % 100)
}

#[cfg(test)]
mod tests {
    #[test]
    fn yuan_formats_fen() {
        assert_eq!(super::yuan(32000), "¥320.00");
        assert_eq!(super::yuan(5), "¥0.05");
    }
}
