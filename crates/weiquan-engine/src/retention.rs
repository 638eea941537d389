//! Retention: subjects the rules are done with leave memory.
//!
//! An order, complaint, conversation, pre-sale campaign or lottery is
//! forgotten once the clock is past the rulebook's `retention_days` after the
//! later of its last event's `at` and its last deadline. Every window a rule
//! looks back over is shorter than the horizon (the rulebook refuses one that
//! is not), so a stream whose events come no later than that gives the same
//! findings with retention as without; what an event about a forgotten subject
//! does is written in `docs/messy-streams.md`, "Retention".
//!
//! Merchants, hosts, skus, identities and pay-later registries are kept: they
//! carry standing (credit, blacklist, MC-03, LT-11) that has no end, and their
//! number follows the platform's size, not its age.
//!
//! Each tracked subject has one entry in a queue ordered by the time it may be
//! forgotten. Events and deadlines only move a subject's own `until`; when its
//! entry comes up, a subject whose `until` moved goes back in the queue at its
//! new time, so an event costs no queue operation.

use crate::table::{CampaignIx, ComplaintIx, ConversationIx, Ix, LotteryIx, OrderIx};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use weiquan_events::Body;

/// The kinds of subject that are forgotten after the horizon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kept {
    Order,
    Complaint,
    Conversation,
    Campaign,
    Lottery,
}

/// Number of [`Kept`] kinds.
const KINDS: usize = 5;

impl Kept {
    const ALL: [Kept; KINDS] = [
        Kept::Order,
        Kept::Complaint,
        Kept::Conversation,
        Kept::Campaign,
        Kept::Lottery,
    ];

    /// How findings name subjects of this kind (`order:…`).
    fn prefix(self) -> &'static str {
        match self {
            Kept::Order => "order",
            Kept::Complaint => "complaint",
            Kept::Conversation => "conversation",
            Kept::Campaign => "campaign",
            Kept::Lottery => "lottery",
        }
    }
}

/// The orders, complaints, conversations, pre-sales and lotteries an event
/// names (at most two: an order and its campaign), each as its kind's
/// prefix in findings (`order`) and its id. What retention keeps an event's
/// subjects by, and what the partitions route by.
pub fn subjects_named<'a>(body: &'a Body<'_>) -> [Option<(&'static str, &'a str)>; 2] {
    named(body).map(|s| s.map(|(kind, id)| (kind.prefix(), id)))
}

/// An index type whose subjects are forgotten after the horizon.
pub(crate) trait Retained: Ix {
    /// Its kind.
    const KEPT: Kept;
}

impl Retained for OrderIx {
    const KEPT: Kept = Kept::Order;
}
impl Retained for ComplaintIx {
    const KEPT: Kept = Kept::Complaint;
}
impl Retained for ConversationIx {
    const KEPT: Kept = Kept::Conversation;
}
impl Retained for CampaignIx {
    const KEPT: Kept = Kept::Campaign;
}
impl Retained for LotteryIx {
    const KEPT: Kept = Kept::Lottery;
}

/// A slot that holds no tracked subject.
const UNTRACKED: i64 = i64::MIN;

/// When each tracked subject may be forgotten.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Retention {
    /// Per kind and slot: the latest `at` of the subject's events and due time
    /// of its deadlines, in ms ([`UNTRACKED`]: no subject there yet).
    until: [Vec<i64>; KINDS],
    /// One entry per tracked subject: the earliest time (ms) it may be
    /// forgotten, its kind and slot; earliest first, ties by kind and slot.
    queue: BinaryHeap<Reverse<(i64, u8, u32)>>,
}

impl Retention {
    /// Records that the subject at `i` is needed until at least `t_ms`;
    /// returns the time it is now needed until.
    pub fn touch<I: Retained>(&mut self, i: I, t_ms: i64, horizon_ms: i64) -> i64 {
        let kind = I::KEPT as usize;
        let slot = i.raw();
        let until = &mut self.until[kind];
        if until.len() <= slot as usize {
            until.resize(slot as usize + 1, UNTRACKED);
        }
        let u = &mut until[slot as usize];
        if *u == UNTRACKED {
            self.queue
                .push(Reverse((t_ms.saturating_add(horizon_ms), kind as u8, slot)));
            *u = t_ms;
        } else {
            *u = (*u).max(t_ms);
        }
        *u
    }

    /// The next subject that is forgotten at `clock_ms` (its time is strictly
    /// before the clock, as with deadlines), no longer tracked once returned.
    /// `needed` gives a time a subject's own state still needs it until
    /// beyond its events and deadlines (a pre-sale's promised ship date); it
    /// is asked afresh each time, so a change to that state counts as it stands.
    pub fn next_forgotten(
        &mut self,
        clock_ms: i64,
        horizon_ms: i64,
        needed: impl Fn(Kept, u32) -> Option<i64>,
    ) -> Option<(Kept, u32)> {
        while let Some(&Reverse((due, kind, slot))) = self.queue.peek() {
            if due >= clock_ms {
                return None;
            }
            self.queue.pop();
            let u = &mut self.until[kind as usize][slot as usize];
            let kept = Kept::ALL[kind as usize];
            let real = (*u)
                .max(needed(kept, slot).unwrap_or(i64::MIN))
                .saturating_add(horizon_ms);
            if real >= clock_ms {
                // Touched since it was queued, or still needed: it waits for its new time.
                self.queue.push(Reverse((real, kind, slot)));
                continue;
            }
            *u = UNTRACKED;
            return Some((kept, slot));
        }
        None
    }

    /// Number of subjects tracked now.
    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.queue.len()
    }
}

/// The tracked subjects an event names, by kind and id (at most two: an
/// order and its campaign).
pub(crate) fn named<'a>(body: &'a Body<'_>) -> [Option<(Kept, &'a str)>; 2] {
    use Kept::*;
    match body {
        Body::OrderPlaced { order, campaign, .. } => [Some((Order, order)), campaign.as_deref().map(|c| (Campaign, c))],
        Body::OrderShipped { order }
        | Body::OrderDelivered { order }
        | Body::OrderCancelled { order, .. }
        | Body::RefundRequested { order, .. }
        | Body::RefundCompleted { order, .. }
        | Body::RefundRejected { order, .. } => [Some((Order, order)), None],
        Body::PresaleDepositPaid { campaign, order, .. }
        | Body::PresaleFinalPaid { campaign, order, .. }
        | Body::PresaleDepositRefundRequested { campaign, order }
        | Body::PresaleDepositRefunded { campaign, order, .. } => [Some((Campaign, campaign)), Some((Order, order))],
        Body::PresaleGiftWithdrawn { campaign, order, .. } => {
            [Some((Campaign, campaign)), order.as_deref().map(|o| (Order, o))]
        }
        Body::PresalePublished { campaign, .. } | Body::PresaleChanged { campaign, .. } => {
            [Some((Campaign, campaign)), None]
        }
        Body::LotteryAnnounced { lottery, .. }
        | Body::LotteryChanged { lottery, .. }
        | Body::LotteryEntered { lottery, .. }
        | Body::LotteryClosed { lottery }
        | Body::LotteryDrawn { lottery, .. }
        | Body::LotteryPrizeShipped { lottery, .. }
        | Body::LotteryPrizeDelivered { lottery, .. }
        | Body::LotteryCancelled { lottery, .. } => [Some((Lottery, lottery)), None],
        Body::ServiceMessage { conversation, .. } => [Some((Conversation, conversation)), None],
        Body::ComplaintFiled { complaint, .. }
        | Body::ComplaintResponded { complaint, .. }
        | Body::ComplaintResolved { complaint, .. }
        | Body::ComplaintEscalated { complaint, .. } => [Some((Complaint, complaint)), None],
        _ => [None, None],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 100;

    /// A subject is forgotten only once the clock is strictly past its last
    /// touch plus the horizon, however often and in whatever order it was touched.
    #[test]
    fn forgotten_strictly_after_the_last_touch_plus_the_horizon() {
        let mut r = Retention::default();
        r.touch(OrderIx::from_raw(3), 10, H);
        r.touch(OrderIx::from_raw(3), 50, H);
        r.touch(OrderIx::from_raw(3), 20, H);
        r.touch(LotteryIx::from_raw(3), 10, H);
        let none = |_, _| None;
        assert_eq!(r.next_forgotten(111, H, none), Some((Kept::Lottery, 3)));
        assert_eq!(
            r.next_forgotten(150, H, none),
            None,
            "the order was touched at 50: kept until 150"
        );
        assert_eq!(r.tracked(), 1);
        assert_eq!(r.next_forgotten(151, H, none), Some((Kept::Order, 3)));
        assert_eq!(r.next_forgotten(10_000, H, none), None);
        // The slot is untracked again: a new subject there starts afresh.
        r.touch(OrderIx::from_raw(3), 9_000, H);
        assert_eq!(r.next_forgotten(9_100, H, none), None);
        // Its state needs it until 9_500, then no longer: asked each time.
        assert_eq!(r.next_forgotten(9_101, H, |_, _| Some(9_500)), None);
        assert_eq!(r.next_forgotten(9_601, H, |_, _| Some(9_500)), Some((Kept::Order, 3)));
    }
}
