//! The typed events of format v1 (`spec/events.md`).
//!
//! Field names follow the spec exactly. Optional fields are `Option`; `null` in
//! the input is the same as absent. Extra fields the producer sent are not kept
//! here: the caller keeps the raw line, which is what the ledger stores.

use crate::time::Time;
use std::borrow::Cow;

/// Text borrowed from the input line where it can be (no escapes), owned otherwise.
pub type Str<'a> = Cow<'a, str>;

/// One accepted event: envelope plus typed payload.
#[derive(Clone, Debug, PartialEq)]
pub struct Event<'a> {
    /// Producer's unique id (duplicates are dropped before the engine).
    pub id: Str<'a>,
    /// Business time.
    pub at: Time,
    /// The payload, by type.
    pub body: Body<'a>,
}

/// A closed set of keyword values, parsed from a JSON string.
pub trait Keyword: Sized + Copy + 'static {
    /// Every accepted spelling with its value, in the order error messages list them.
    const ALL: &'static [(&'static str, Self)];

    /// Looks a spelling up.
    fn from_keyword(s: &str) -> Option<Self> {
        Self::ALL.iter().find(|(k, _)| *k == s).map(|(_, v)| *v)
    }
}

macro_rules! keyword_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name { $($(#[$vdoc])* $variant),+ }
        impl Keyword for $name {
            const ALL: &'static [(&'static str, Self)] = &[$(($text, $name::$variant)),+];
        }
        impl $name {
            /// The keyword as the event format writes it.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }
    };
}

keyword_enum!(
    /// A sales channel a merchant uses.
    Channel { /// An ordinary shop.
        Store = "store", /// A mini-program (小程序) shop.
        MiniProgram = "mini_program", /// Live-stream selling.
        Live = "live" }
);
keyword_enum!(
    /// How the platform verified a merchant.
    VerifyMethod { /// Business licence checked.
        LicenceCheck = "licence_check", /// Digital identity.
        DigitalId = "digital_id", /// Manual review.
        Manual = "manual" }
);
keyword_enum!(
    /// How an order is paid.
    Payment { /// Paid now.
        Standard = "standard", /// Buy now, pay later (先用后付).
        Bnpl = "bnpl" }
);
keyword_enum!(
    /// How the platform verified a live-stream host (主播).
    HostVerifyMethod { /// Identity document checked.
        IdCheck = "id_check", /// Digital identity.
        DigitalId = "digital_id", /// Manual review.
        Manual = "manual" }
);
keyword_enum!(
    /// Who lifted a blacklist.
    Authority { /// A market regulator (市场监管).
        Regulator = "regulator", /// The platform.
        Platform = "platform" }
);
keyword_enum!(
    /// Who cancelled an order.
    Canceller { /// The consumer.
        Consumer = "consumer", /// The merchant.
        Merchant = "merchant", /// The platform.
        Platform = "platform" }
);
keyword_enum!(
    /// Who wrote a customer-service message.
    Sender { /// The consumer.
        Consumer = "consumer", /// A human at the merchant.
        Merchant = "merchant", /// An automatic reply.
        Bot = "bot" }
);
keyword_enum!(
    /// What a complaint is about.
    ComplaintCategory { /// Product quality.
        Quality = "quality", /// False advertising.
        FalseAdvertising = "false_advertising", /// Privacy.
        Privacy = "privacy", /// After-sales service.
        AfterSales = "after_sales", /// A pre-sale.
        Presale = "presale", /// A lottery.
        Lottery = "lottery", /// Pay-later.
        Bnpl = "bnpl", /// Anything else.
        Other = "other" }
);
keyword_enum!(
    /// Who answered a complaint.
    Responder { /// The merchant.
        Merchant = "merchant", /// The platform.
        Platform = "platform" }
);
keyword_enum!(
    /// How a complaint ended.
    Outcome { /// Money back.
        Refund = "refund", /// Goods replaced.
        Replacement = "replacement", /// Compensation paid.
        Compensation = "compensation", /// Complaint rejected.
        Rejected = "rejected", /// Withdrawn by the consumer.
        Withdrawn = "withdrawn" }
);
keyword_enum!(
    /// Where a complaint was escalated to.
    EscalatedTo { /// The platform.
        Platform = "platform", /// A regulator.
        Regulator = "regulator" }
);
keyword_enum!(
    /// How a consumer's pay-later consent was obtained.
    Consent { /// The consumer chose it.
        Explicit = "explicit", /// Pre-ticked.
        Preselected = "preselected", /// Bundled with something else.
        Bundled = "bundled" }
);

/// A lottery prize as announced; any part may be missing (a disclosure gap, LT-01).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Prize<'a> {
    /// Prize name.
    pub name: Option<Str<'a>>,
    /// Announced value in fen.
    pub value_fen: Option<u64>,
    /// How many of it.
    pub count: Option<u32>,
}

/// One winner of a draw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Winner<'a> {
    /// Pseudonymous participant id.
    pub participant: Str<'a>,
    /// The announced prize name won.
    pub prize: Str<'a>,
}

/// A piece of complaint evidence stored by hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evidence<'a> {
    /// Hex SHA-256 of the evidence file.
    pub sha256: Str<'a>,
    /// What it is (photo, chat log, …).
    pub kind: Str<'a>,
}

/// Pre-sale terms; in `presale.published` the required ones are all present.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PresaleTerms<'a> {
    /// Merchant running it.
    pub merchant: Option<Str<'a>>,
    /// The sku sold.
    pub sku: Option<Str<'a>>,
    /// Deposit (定金) in fen.
    pub deposit_fen: Option<u64>,
    /// Total promised price (deposit + final payment) in fen.
    pub price_fen: Option<u64>,
    /// Deposit window opens.
    pub deposit_start: Option<Time>,
    /// Deposit window closes.
    pub deposit_end: Option<Time>,
    /// Final payment window opens.
    pub final_start: Option<Time>,
    /// Final payment window closes.
    pub final_end: Option<Time>,
    /// Promised days from final payment to shipping.
    pub ship_within_days: Option<u32>,
    /// Promised gifts.
    pub gifts: Option<Vec<Str<'a>>>,
    /// Whether a consumer who does not pay the balance gets the deposit back.
    pub deposit_refundable: Option<bool>,
    /// Refund terms text.
    pub terms: Option<Str<'a>>,
}

/// Lottery terms; in `lottery.announced` `merchant`, `host`, `stream` and `prizes` are present.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LotteryTerms<'a> {
    /// Merchant running it.
    pub merchant: Option<Str<'a>>,
    /// Live-stream host.
    pub host: Option<Str<'a>>,
    /// Stream id.
    pub stream: Option<Str<'a>>,
    /// Prizes in announced order.
    pub prizes: Option<Vec<Prize<'a>>>,
    /// What a viewer must do to enter.
    pub conditions: Option<Vec<Str<'a>>>,
    /// When the draw takes place.
    pub draw_at: Option<Time>,
    /// Days from the draw within which prizes are sent.
    pub deliver_within_days: Option<u32>,
    /// Who organises it.
    pub organizer: Option<Str<'a>>,
    /// How to reach the organiser.
    pub contact: Option<Str<'a>>,
    /// Stated odds, as raw JSON text (the spec leaves its form open).
    pub odds: Option<Str<'a>>,
    /// Hex SHA-256 of the secret draw seed.
    pub commitment: Option<Str<'a>>,
    /// A drand quicknet round fixed at announcement, whose randomness is mixed into the seed.
    pub beacon_round: Option<u64>,
}

/// The payload of an event, one variant per `type`.
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)] // variant fields are the spec's fields, documented there
pub enum Body<'a> {
    /// `clock.tick`
    ClockTick,
    /// `merchant.registered`
    MerchantRegistered {
        merchant: Str<'a>,
        name: Str<'a>,
        uscc: Str<'a>,
        channels: Vec<Channel>,
        licence_sha256: Option<Str<'a>>,
    },
    /// `merchant.verified`
    MerchantVerified {
        merchant: Str<'a>,
        method: VerifyMethod,
        by: Str<'a>,
    },
    /// `merchant.closed`
    MerchantClosed { merchant: Str<'a>, reason: Option<Str<'a>> },
    /// `merchant.reopened`
    MerchantReopened { merchant: Str<'a> },
    /// `merchant.blacklist_lifted` (weiquan's own type: a recorded regulator or platform action)
    MerchantBlacklistLifted {
        merchant: Str<'a>,
        by: Authority,
        reason: Str<'a>,
    },
    /// `host.registered`
    HostRegistered {
        host: Str<'a>,
        name: Str<'a>,
        merchant: Option<Str<'a>>,
    },
    /// `host.verified`
    HostVerified {
        host: Str<'a>,
        method: HostVerifyMethod,
        by: Str<'a>,
    },
    /// `host.suspended`
    HostSuspended { host: Str<'a>, reason: Option<Str<'a>> },
    /// `host.reinstated`
    HostReinstated { host: Str<'a> },
    /// `listing.published`
    ListingPublished {
        merchant: Str<'a>,
        sku: Str<'a>,
        title: Str<'a>,
        text: Option<Str<'a>>,
        price_fen: u64,
        reference_price_fen: Option<u64>,
        channel: Option<Channel>,
    },
    /// `listing.updated`
    ListingUpdated {
        merchant: Str<'a>,
        sku: Str<'a>,
        title: Option<Str<'a>>,
        text: Option<Str<'a>>,
        price_fen: Option<u64>,
        reference_price_fen: Option<u64>,
    },
    /// `price.changed`
    PriceChanged {
        merchant: Str<'a>,
        sku: Str<'a>,
        price_fen: u64,
    },
    /// `listing.removed`
    ListingRemoved { merchant: Str<'a>, sku: Str<'a> },
    /// `price.quoted`
    PriceQuoted {
        merchant: Str<'a>,
        sku: Str<'a>,
        consumer: Str<'a>,
        price_fen: u64,
        segment: Option<Str<'a>>,
    },
    /// `order.placed`
    OrderPlaced {
        order: Str<'a>,
        merchant: Str<'a>,
        consumer: Str<'a>,
        sku: Str<'a>,
        qty: u32,
        amount_fen: u64,
        payment: Payment,
        confirmed: Option<bool>,
        identity_verified: Option<bool>,
        campaign: Option<Str<'a>>,
    },
    /// `order.shipped`
    OrderShipped { order: Str<'a> },
    /// `order.delivered`
    OrderDelivered { order: Str<'a> },
    /// `order.cancelled`
    OrderCancelled { order: Str<'a>, by: Canceller },
    /// `refund.requested`
    RefundRequested {
        order: Str<'a>,
        amount_fen: u64,
        no_reason: bool,
        reason: Option<Str<'a>>,
    },
    /// `refund.completed`
    RefundCompleted { order: Str<'a>, amount_fen: u64 },
    /// `refund.rejected`
    RefundRejected { order: Str<'a>, reason: Str<'a> },
    /// `presale.published` (all required terms present)
    PresalePublished {
        campaign: Str<'a>,
        terms: Box<PresaleTerms<'a>>,
    },
    /// `presale.changed` (only the changed terms present)
    PresaleChanged {
        campaign: Str<'a>,
        changes: Box<PresaleTerms<'a>>,
    },
    /// `presale.deposit_paid`
    PresaleDepositPaid {
        campaign: Str<'a>,
        order: Str<'a>,
        consumer: Str<'a>,
        deposit_fen: u64,
    },
    /// `presale.final_paid`
    PresaleFinalPaid {
        campaign: Str<'a>,
        order: Str<'a>,
        final_fen: u64,
        gifts: Option<Vec<Str<'a>>>,
    },
    /// `presale.gift_withdrawn`
    PresaleGiftWithdrawn {
        campaign: Str<'a>,
        order: Option<Str<'a>>,
        gift: Str<'a>,
        reason: Option<Str<'a>>,
    },
    /// `presale.deposit_refund_requested`
    PresaleDepositRefundRequested { campaign: Str<'a>, order: Str<'a> },
    /// `presale.deposit_refunded`
    PresaleDepositRefunded {
        campaign: Str<'a>,
        order: Str<'a>,
        amount_fen: u64,
    },
    /// `lottery.announced` (merchant, host, stream, prizes present)
    LotteryAnnounced {
        lottery: Str<'a>,
        terms: Box<LotteryTerms<'a>>,
    },
    /// `lottery.changed` (only the changed terms present)
    LotteryChanged {
        lottery: Str<'a>,
        changes: Box<LotteryTerms<'a>>,
    },
    /// `lottery.entered`
    LotteryEntered { lottery: Str<'a>, participant: Str<'a> },
    /// `lottery.closed`
    LotteryClosed { lottery: Str<'a> },
    /// `lottery.drawn`; `proof` is kept as raw JSON text
    LotteryDrawn {
        lottery: Str<'a>,
        winners: Vec<Winner<'a>>,
        seed: Option<Str<'a>>,
        proof: Option<Str<'a>>,
        beacon_signature: Option<Str<'a>>,
    },
    /// `lottery.prize_shipped`
    LotteryPrizeShipped {
        lottery: Str<'a>,
        participant: Str<'a>,
        prize: Str<'a>,
        value_fen: u64,
    },
    /// `lottery.prize_delivered`
    LotteryPrizeDelivered { lottery: Str<'a>, participant: Str<'a> },
    /// `lottery.cancelled`
    LotteryCancelled { lottery: Str<'a>, reason: Option<Str<'a>> },
    /// `service.message`
    ServiceMessage {
        merchant: Str<'a>,
        conversation: Str<'a>,
        consumer: Str<'a>,
        from: Sender,
    },
    /// `complaint.filed`
    ComplaintFiled {
        complaint: Str<'a>,
        consumer: Str<'a>,
        merchant: Str<'a>,
        order: Option<Str<'a>>,
        category: ComplaintCategory,
        text: Option<Str<'a>>,
        evidence: Option<Vec<Evidence<'a>>>,
    },
    /// `complaint.responded`
    ComplaintResponded { complaint: Str<'a>, by: Responder },
    /// `complaint.resolved`
    ComplaintResolved { complaint: Str<'a>, outcome: Outcome },
    /// `complaint.escalated`
    ComplaintEscalated { complaint: Str<'a>, to: EscalatedTo },
    /// `bnpl.offered`
    BnplOffered {
        consumer: Str<'a>,
        session: Str<'a>,
        preselected: bool,
        terms_shown: bool,
    },
    /// `bnpl.enabled`
    BnplEnabled {
        consumer: Str<'a>,
        provider: Str<'a>,
        consent: Consent,
        identity_verified: bool,
    },
    /// `bnpl.disabled`
    BnplDisabled {
        consumer: Str<'a>,
        provider: Str<'a>,
        steps: u32,
    },
    /// `bnpl.cancel_failed`
    BnplCancelFailed {
        consumer: Str<'a>,
        provider: Str<'a>,
        reason: Option<Str<'a>>,
    },
}

/// Every event type of format v1 (spec 1.1), in spec order.
pub const EVENT_TYPES: &[&str] = &[
    "clock.tick",
    "merchant.registered",
    "merchant.verified",
    "merchant.closed",
    "merchant.reopened",
    "merchant.blacklist_lifted",
    "host.registered",
    "host.verified",
    "host.suspended",
    "host.reinstated",
    "listing.published",
    "listing.updated",
    "price.changed",
    "listing.removed",
    "price.quoted",
    "order.placed",
    "order.shipped",
    "order.delivered",
    "order.cancelled",
    "refund.requested",
    "refund.completed",
    "refund.rejected",
    "presale.published",
    "presale.changed",
    "presale.deposit_paid",
    "presale.final_paid",
    "presale.gift_withdrawn",
    "presale.deposit_refund_requested",
    "presale.deposit_refunded",
    "lottery.announced",
    "lottery.changed",
    "lottery.entered",
    "lottery.closed",
    "lottery.drawn",
    "lottery.prize_shipped",
    "lottery.prize_delivered",
    "lottery.cancelled",
    "service.message",
    "complaint.filed",
    "complaint.responded",
    "complaint.resolved",
    "complaint.escalated",
    "bnpl.offered",
    "bnpl.enabled",
    "bnpl.disabled",
    "bnpl.cancel_failed",
];

fn owned(s: &Str<'_>) -> Str<'static> {
    Cow::Owned(s.to_string())
}

impl Prize<'_> {
    /// A copy that owns its text.
    pub fn to_static(&self) -> Prize<'static> {
        Prize {
            name: self.name.as_ref().map(owned),
            value_fen: self.value_fen,
            count: self.count,
        }
    }
}

impl LotteryTerms<'_> {
    /// A copy that owns its text, for state kept beyond the input line.
    pub fn to_static(&self) -> LotteryTerms<'static> {
        LotteryTerms {
            merchant: self.merchant.as_ref().map(owned),
            host: self.host.as_ref().map(owned),
            stream: self.stream.as_ref().map(owned),
            prizes: self.prizes.as_ref().map(|p| p.iter().map(Prize::to_static).collect()),
            conditions: self.conditions.as_ref().map(|c| c.iter().map(owned).collect()),
            draw_at: self.draw_at,
            deliver_within_days: self.deliver_within_days,
            organizer: self.organizer.as_ref().map(owned),
            contact: self.contact.as_ref().map(owned),
            odds: self.odds.as_ref().map(owned),
            commitment: self.commitment.as_ref().map(owned),
            beacon_round: self.beacon_round,
        }
    }
}

/// The `consumer` field of the event types that define one, by reference
/// or mutable reference as `$body` is.
macro_rules! consumer_field {
    ($body:expr) => {
        match $body {
            Body::PriceQuoted { consumer, .. }
            | Body::OrderPlaced { consumer, .. }
            | Body::PresaleDepositPaid { consumer, .. }
            | Body::ServiceMessage { consumer, .. }
            | Body::ComplaintFiled { consumer, .. }
            | Body::BnplOffered { consumer, .. }
            | Body::BnplEnabled { consumer, .. }
            | Body::BnplDisabled { consumer, .. }
            | Body::BnplCancelFailed { consumer, .. } => Some(consumer),
            _ => None,
        }
    };
}

impl<'a> Body<'a> {
    /// The consumer an event names, to be replaced by a pseudonym: the server's
    /// engine sees consumers only by a stable pseudonym, so that findings stay
    /// the same after the consumer's id is erased.
    pub fn consumer_mut(&mut self) -> Option<&mut Str<'a>> {
        consumer_field!(self)
    }

    /// The consumer an event names in its `consumer` field, if its type has one.
    pub fn consumer(&self) -> Option<&str> {
        consumer_field!(self).map(|c: &Str<'a>| c.as_ref())
    }
}
