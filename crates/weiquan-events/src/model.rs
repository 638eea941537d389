//! The typed events of format v1 (`spec/events.md`).
//!
//! Field names follow the spec exactly. Optional fields are `Option`; `null` in
//! the input is the same as absent. Extra fields the producer sent are not kept
//! here: the caller keeps the raw line, which is what the ledger stores.

use crate::time::Time;

/// One accepted event: envelope plus typed payload.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Producer's unique id (duplicates are dropped before the engine).
    pub id: String,
    /// Business time.
    pub at: Time,
    /// The payload, by type.
    pub body: Body,
}

/// A closed set of keyword values, parsed from a JSON string.
pub trait Keyword: Sized + Copy + 'static {
    /// Every accepted spelling with its value, in the order error messages list them.
    const ALL: &'static [(&'static str, Self)];

    /// Looks a spelling up.
    fn from_keyword(s: &str) -> Option<Self> {
        Self::ALL.iter().find(|(k, _)| *k == s).map(|(_, v)| *v)
    }

    /// The canonical spelling.
    fn keyword(self) -> &'static str
    where
        Self: PartialEq,
    {
        Self::ALL
            .iter()
            .find(|(_, v)| *v == self)
            .map(|(k, _)| *k)
            .unwrap_or("?")
    }
}

macro_rules! keyword_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vdoc])* $variant),+ }
        impl Keyword for $name {
            const ALL: &'static [(&'static str, Self)] = &[$(($text, $name::$variant)),+];
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prize {
    /// Prize name.
    pub name: Option<String>,
    /// Announced value in fen.
    pub value_fen: Option<u64>,
    /// How many of it.
    pub count: Option<u32>,
}

/// One winner of a draw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Winner {
    /// Pseudonymous participant id.
    pub participant: String,
    /// The announced prize name won.
    pub prize: String,
}

/// A piece of complaint evidence stored by hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evidence {
    /// Hex SHA-256 of the evidence file.
    pub sha256: String,
    /// What it is (photo, chat log, …).
    pub kind: String,
}

/// Pre-sale terms; in `presale.published` the required ones are all present.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PresaleTerms {
    /// Merchant running it.
    pub merchant: Option<String>,
    /// The sku sold.
    pub sku: Option<String>,
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
    pub gifts: Option<Vec<String>>,
    /// Whether a consumer who does not pay the balance gets the deposit back.
    pub deposit_refundable: Option<bool>,
    /// Refund terms text.
    pub terms: Option<String>,
}

/// Lottery terms; in `lottery.announced` `merchant`, `host`, `stream` and `prizes` are present.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LotteryTerms {
    /// Merchant running it.
    pub merchant: Option<String>,
    /// Live-stream host.
    pub host: Option<String>,
    /// Stream id.
    pub stream: Option<String>,
    /// Prizes in announced order.
    pub prizes: Option<Vec<Prize>>,
    /// What a viewer must do to enter.
    pub conditions: Option<Vec<String>>,
    /// When the draw takes place.
    pub draw_at: Option<Time>,
    /// Days from the draw within which prizes are sent.
    pub deliver_within_days: Option<u32>,
    /// Who organises it.
    pub organizer: Option<String>,
    /// How to reach the organiser.
    pub contact: Option<String>,
    /// Stated odds, as raw JSON text (the spec leaves its form open).
    pub odds: Option<String>,
    /// Hex SHA-256 of the secret draw seed.
    pub commitment: Option<String>,
}

/// The payload of an event, one variant per `type`.
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)] // variant fields are the spec's fields, documented there
pub enum Body {
    /// `clock.tick`
    ClockTick,
    /// `merchant.registered`
    MerchantRegistered {
        merchant: String,
        name: String,
        uscc: String,
        channels: Vec<Channel>,
        licence_sha256: Option<String>,
    },
    /// `merchant.verified`
    MerchantVerified {
        merchant: String,
        method: VerifyMethod,
        by: String,
    },
    /// `merchant.closed`
    MerchantClosed { merchant: String, reason: Option<String> },
    /// `merchant.reopened`
    MerchantReopened { merchant: String },
    /// `listing.published`
    ListingPublished {
        merchant: String,
        sku: String,
        title: String,
        text: Option<String>,
        price_fen: u64,
        reference_price_fen: Option<u64>,
        channel: Option<Channel>,
    },
    /// `listing.updated`
    ListingUpdated {
        merchant: String,
        sku: String,
        title: Option<String>,
        text: Option<String>,
        price_fen: Option<u64>,
        reference_price_fen: Option<u64>,
    },
    /// `price.changed`
    PriceChanged {
        merchant: String,
        sku: String,
        price_fen: u64,
    },
    /// `listing.removed`
    ListingRemoved { merchant: String, sku: String },
    /// `price.quoted`
    PriceQuoted {
        merchant: String,
        sku: String,
        consumer: String,
        price_fen: u64,
        segment: Option<String>,
    },
    /// `order.placed`
    OrderPlaced {
        order: String,
        merchant: String,
        consumer: String,
        sku: String,
        qty: u32,
        amount_fen: u64,
        payment: Payment,
        confirmed: Option<bool>,
        identity_verified: Option<bool>,
        campaign: Option<String>,
    },
    /// `order.shipped`
    OrderShipped { order: String },
    /// `order.delivered`
    OrderDelivered { order: String },
    /// `order.cancelled`
    OrderCancelled { order: String, by: Canceller },
    /// `refund.requested`
    RefundRequested {
        order: String,
        amount_fen: u64,
        no_reason: bool,
        reason: Option<String>,
    },
    /// `refund.completed`
    RefundCompleted { order: String, amount_fen: u64 },
    /// `refund.rejected`
    RefundRejected { order: String, reason: String },
    /// `presale.published` (all required terms present)
    PresalePublished { campaign: String, terms: PresaleTerms },
    /// `presale.changed` (only the changed terms present)
    PresaleChanged { campaign: String, changes: PresaleTerms },
    /// `presale.deposit_paid`
    PresaleDepositPaid {
        campaign: String,
        order: String,
        consumer: String,
        deposit_fen: u64,
    },
    /// `presale.final_paid`
    PresaleFinalPaid {
        campaign: String,
        order: String,
        final_fen: u64,
        gifts: Option<Vec<String>>,
    },
    /// `presale.gift_withdrawn`
    PresaleGiftWithdrawn {
        campaign: String,
        order: Option<String>,
        gift: String,
        reason: Option<String>,
    },
    /// `presale.deposit_refund_requested`
    PresaleDepositRefundRequested { campaign: String, order: String },
    /// `presale.deposit_refunded`
    PresaleDepositRefunded {
        campaign: String,
        order: String,
        amount_fen: u64,
    },
    /// `lottery.announced` (merchant, host, stream, prizes present)
    LotteryAnnounced { lottery: String, terms: LotteryTerms },
    /// `lottery.changed` (only the changed terms present)
    LotteryChanged { lottery: String, changes: LotteryTerms },
    /// `lottery.entered`
    LotteryEntered { lottery: String, participant: String },
    /// `lottery.closed`
    LotteryClosed { lottery: String },
    /// `lottery.drawn`; `proof` is kept as raw JSON text
    LotteryDrawn {
        lottery: String,
        winners: Vec<Winner>,
        seed: Option<String>,
        proof: Option<String>,
    },
    /// `lottery.prize_shipped`
    LotteryPrizeShipped {
        lottery: String,
        participant: String,
        prize: String,
        value_fen: u64,
    },
    /// `lottery.prize_delivered`
    LotteryPrizeDelivered { lottery: String, participant: String },
    /// `lottery.cancelled`
    LotteryCancelled { lottery: String, reason: Option<String> },
    /// `service.message`
    ServiceMessage {
        merchant: String,
        conversation: String,
        consumer: String,
        from: Sender,
    },
    /// `complaint.filed`
    ComplaintFiled {
        complaint: String,
        consumer: String,
        merchant: String,
        order: Option<String>,
        category: ComplaintCategory,
        text: Option<String>,
        evidence: Option<Vec<Evidence>>,
    },
    /// `complaint.responded`
    ComplaintResponded { complaint: String, by: Responder },
    /// `complaint.resolved`
    ComplaintResolved { complaint: String, outcome: Outcome },
    /// `complaint.escalated`
    ComplaintEscalated { complaint: String, to: EscalatedTo },
    /// `bnpl.offered`
    BnplOffered {
        consumer: String,
        session: String,
        preselected: bool,
        terms_shown: bool,
    },
    /// `bnpl.enabled`
    BnplEnabled {
        consumer: String,
        provider: String,
        consent: Consent,
        identity_verified: bool,
    },
    /// `bnpl.disabled`
    BnplDisabled {
        consumer: String,
        provider: String,
        steps: u32,
    },
    /// `bnpl.cancel_failed`
    BnplCancelFailed {
        consumer: String,
        provider: String,
        reason: Option<String>,
    },
}

/// Every event type of format v1, in spec order.
pub const EVENT_TYPES: &[&str] = &[
    "clock.tick",
    "merchant.registered",
    "merchant.verified",
    "merchant.closed",
    "merchant.reopened",
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
