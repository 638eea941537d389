//! The deadline queue: what must have happened by when, fired in order of
//! `(due, seq)` — the same order as one binary heap, at a fraction of its cost.
//!
//! Most deadlines are "event time + a fixed period" (reply within 24 h, ship
//! within 48 h), and events arrive in nearly increasing time, so each kind's
//! deadlines are mostly set in increasing order of `due`. Each kind therefore
//! has a FIFO lane that takes every deadline not earlier than its last one; the
//! rest (out-of-order events, periods that vary per campaign) go to a heap.
//! Popping compares the lanes' fronts and the heap's top: a few reads of
//! sequential memory instead of a sift through a large heap.

use crate::table::{ComplaintIx, ConversationIx, Ix, LotteryIx, OrderIx};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use weiquan_events::Time;

/// Something that must have happened by a time; checked when the clock passes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub(crate) struct Deadline {
    pub due: Time,
    /// Order of setting, so that ties fire in the order they were set.
    pub seq: u64,
    pub kind: DeadlineKind,
    /// The subject it watches, as a raw index (kinds watch different tables:
    /// [`Deadline::target`] gives it back typed).
    target: u32,
    /// Which occurrence it watches (a new request or a moved draw time supersedes older ones).
    pub generation: u32,
}

impl Deadline {
    /// The subject it watches, as the index of its kind's table.
    pub fn target<I: Ix>(&self) -> I {
        I::from_raw(self.target)
    }
}

/// Declares the deadline kinds once, each with the engine's check that runs
/// when one falls due: the enum, the list of all of them, their number (the
/// queue has a lane per kind) and the dispatch follow from one list, so a kind
/// cannot be added to one and missed in another.
macro_rules! deadline_kinds {
    ($($kind:ident($ix:ty) => $check:ident),* $(,)?) => {
        /// What a deadline checks.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        pub(crate) enum DeadlineKind {
            $($kind),*
        }

        impl DeadlineKind {
            /// Every kind, in declaration order (the order of their lanes).
            #[cfg(test)]
            pub(crate) const ALL: [DeadlineKind; KINDS] = [$(DeadlineKind::$kind),*];
        }

        /// Number of deadline kinds.
        const KINDS: usize = [$(stringify!($kind)),*].len();

        /// Each deadline kind typed by the table it watches: setting one with
        /// another table's index does not compile.
        pub(crate) struct Due;

        #[allow(non_upper_case_globals)]
        impl Due {
            $(pub(crate) const $kind: Kind<$ix> = Kind(DeadlineKind::$kind, std::marker::PhantomData);)*
        }

        impl crate::Engine {
            /// Runs the check of `d`'s kind: the expected event is still missing.
            pub(crate) fn fire(&mut self, d: Deadline) {
                match d.kind {
                    $(DeadlineKind::$kind => self.$check(d)),*
                }
            }
        }
    };
}

deadline_kinds! {
    Ps04Ship(OrderIx) => ps04_due,
    Ps07DepositRefund(OrderIx) => ps07_due,
    Lt05Draw(LotteryIx) => lt05_due,
    Lt06Prizes(LotteryIx) => lt06_due,
    Mc06Ship(OrderIx) => mc06_due,
    Mc07Reply(ConversationIx) => mc07_due,
    Mc08Refund(OrderIx) => mc08_due,
    Mc10Response(ComplaintIx) => mc10_due,
}

/// A deadline kind with the index type of the subject it watches.
#[derive(Clone, Copy)]
pub(crate) struct Kind<I>(DeadlineKind, std::marker::PhantomData<I>);

/// Pending deadlines, popped in `(due, seq)` order.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Deadlines {
    /// Per kind, deadlines in increasing `(due, seq)`.
    lanes: [VecDeque<Deadline>; KINDS],
    /// Deadlines that arrived out of their lane's order.
    spill: BinaryHeap<Reverse<Deadline>>,
    seq: u64,
    /// No pending deadline is due before this (None: none pending). The clock is
    /// checked twice an event, and this answers "nothing due" without a scan.
    not_before: Option<Time>,
}

impl Deadlines {
    /// Adds a deadline; ties on `due` fire in the order they were set.
    pub fn set<I: Ix>(&mut self, due: Time, Kind(kind, _): Kind<I>, target: I, generation: u32) {
        self.push(due, kind, target.raw(), generation);
    }

    fn push(&mut self, due: Time, kind: DeadlineKind, target: u32, generation: u32) {
        self.seq += 1;
        let d = Deadline {
            due,
            seq: self.seq,
            kind,
            target,
            generation,
        };
        self.not_before = Some(self.not_before.map_or(due, |t| t.min(due)));
        let lane = &mut self.lanes[kind as usize];
        // `seq` only grows, so a lane stays sorted by (due, seq) as long as `due` does not fall.
        if lane.back().is_none_or(|last| last.due <= due) {
            lane.push_back(d);
        } else {
            self.spill.push(Reverse(d));
        }
    }

    /// Removes and returns the earliest deadline if it is due strictly before `clock`.
    pub fn pop_before(&mut self, clock: Time) -> Option<Deadline> {
        if self.not_before.is_none_or(|t| t >= clock) {
            return None;
        }
        let mut best = self.spill.peek().map(|r| r.0);
        let mut from = None;
        for (k, lane) in self.lanes.iter().enumerate() {
            if let Some(&front) = lane.front() {
                if best.is_none_or(|b| front < b) {
                    best = Some(front);
                    from = Some(k);
                }
            }
        }
        // The earliest pending deadline bounds all others, whether it fires now or not.
        self.not_before = best.map(|d| d.due);
        let d = best.filter(|d| d.due < clock)?;
        match from {
            Some(k) => self.lanes[k].pop_front(),
            None => self.spill.pop().map(|r| r.0),
        };
        Some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn time(ms: i64) -> Time {
        Time::from_unix_ms(ms, 0)
    }

    proptest! {
        /// Any interleaving of sets and clock moves pops exactly what one binary
        /// heap of (due, seq) pops, in the same order.
        #[test]
        fn same_order_as_a_heap(ops in proptest::collection::vec((0usize..KINDS, 0i64..200, any::<bool>()), 0..400)) {
            let mut q = Deadlines::default();
            let mut heap = BinaryHeap::new();
            let mut seq = 0u64;
            let mut clock = 0i64;
            for (k, delta, advance) in ops {
                if advance {
                    clock += delta / 4;
                    loop {
                        let want = heap.peek().copied().filter(|Reverse(d): &Reverse<Deadline>| d.due < time(clock));
                        if want.is_some() {
                            heap.pop();
                        }
                        let got = q.pop_before(time(clock));
                        prop_assert_eq!(got, want.map(|r| r.0));
                        if got.is_none() {
                            break;
                        }
                    }
                } else {
                    // Mostly increasing per kind, sometimes earlier: both lanes and spill get used.
                    let due = clock + delta - 20;
                    seq += 1;
                    q.push(time(due), DeadlineKind::ALL[k], seq as u32, 0);
                    heap.push(Reverse(Deadline { due: time(due), seq, kind: DeadlineKind::ALL[k], target: seq as u32, generation: 0 }));
                }
            }
        }
    }
}
