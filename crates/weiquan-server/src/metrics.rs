//! Prometheus metrics: events accepted/rejected/duplicate, findings by rule,
//! batch latency, ledger size.

use crate::core::ItemResult;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Label of an event outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    outcome: &'static str,
}

/// Label of a rule.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabel {
    rule: String,
}

/// All metrics of one server.
pub struct Metrics {
    registry: Registry,
    events: Family<OutcomeLabel, Counter>,
    findings: Family<RuleLabel, Counter>,
    batch_seconds: Histogram,
    /// Leaves in the ledger.
    pub ledger_size: Gauge,
    /// The ledger size of the newest snapshot written or restored (0: none).
    pub snapshot_leaves: Gauge,
    /// Leaves replayed by the last start or rebuild (after its snapshot, if any).
    pub replayed_leaves: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let events = Family::<OutcomeLabel, Counter>::default();
        let findings = Family::<RuleLabel, Counter>::default();
        let batch_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        let ledger_size = Gauge::default();
        registry.register("weiquan_events", "Submitted events by outcome", events.clone());
        registry.register("weiquan_findings", "Findings by rule", findings.clone());
        registry.register(
            "weiquan_batch_seconds",
            "Time to make one ingest batch durable",
            batch_seconds.clone(),
        );
        registry.register("weiquan_ledger_leaves", "Leaves in the ledger", ledger_size.clone());
        let (snapshot_leaves, replayed_leaves) = (Gauge::default(), Gauge::default());
        registry.register(
            "weiquan_snapshot_leaves",
            "Ledger size of the newest state snapshot written or restored",
            snapshot_leaves.clone(),
        );
        registry.register(
            "weiquan_replayed_leaves",
            "Leaves replayed by the last start or rebuild, after its snapshot",
            replayed_leaves.clone(),
        );
        Metrics {
            registry,
            events,
            findings,
            batch_seconds,
            ledger_size,
            snapshot_leaves,
            replayed_leaves,
        }
    }
}

impl Metrics {
    /// Counts a written batch.
    pub fn record_batch(&self, results: &[Vec<ItemResult>], seconds: f64) {
        self.batch_seconds.observe(seconds);
        for r in results.iter().flatten() {
            let outcome = match r {
                ItemResult::Accepted { .. } => "accepted",
                ItemResult::Duplicate => "duplicate",
                ItemResult::Rejected { .. } => "rejected",
            };
            self.events.get_or_create(&OutcomeLabel { outcome }).inc();
        }
    }

    /// Counts a finding.
    pub fn finding(&self, rule: &str) {
        self.findings.get_or_create(&RuleLabel { rule: rule.to_owned() }).inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
