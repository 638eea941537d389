//! A synthetic e-commerce platform: a realistic event stream in format v1 and,
//! beside it, the ground truth — every planted violation as `(rule, subject)`.
//!
//! Honest merchants are the majority and behave within every rule, with margin:
//! a finding on honest behaviour is a bug in the engine or here. Violating
//! merchants each commit one kind of violation (cycled in a fixed order so that
//! enough of them cover every rule), including the subtle ones: a repeat
//! winner, a raise-then-discount, a merchant drifting toward running away.
//! The same configuration and seed give the same bytes.

mod violations;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use violations::Violation;
use weiquan_events::{Time, DAY_MS, HOUR_MS};

const MINUTE_MS: i64 = 60_000;
/// The platform's offset (+08:00) in seconds.
const OFFSET_S: i32 = 8 * 3600;

/// Which kind of period to simulate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// Ordinary trading.
    Normal,
    /// Double Eleven: a pre-sale period, a midnight peak on 11-11, heavy live-stream lotteries.
    Double11,
}

/// What to simulate.
#[derive(Clone, Debug)]
pub struct Config {
    /// Number of merchants.
    pub merchants: u32,
    /// Number of consumers.
    pub consumers: u32,
    /// Days of trading, from 2026-11-01.
    pub days: u32,
    /// Random seed; the same seed gives the same stream.
    pub seed: u64,
    /// Share of merchants (and of pay-later consumers) that commit a violation.
    pub violation_rate: f64,
    /// Normal trading or Double Eleven.
    pub profile: Profile,
    /// Average orders per merchant per ordinary day (sets the stream's size).
    pub orders_per_day: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            merchants: 50,
            consumers: 5000,
            days: 30,
            seed: 1,
            violation_rate: 0.1,
            profile: Profile::Normal,
            orders_per_day: 10.0,
        }
    }
}

/// A simulated stream and its ground truth.
pub struct Simulation {
    /// NDJSON lines in processing order (by time).
    pub lines: Vec<String>,
    /// Every planted violation as `(rule, subject)`.
    pub labels: BTreeSet<(String, String)>,
}

struct Sku {
    id: String,
    price: u64,
    /// Time of the last price change (ms), for honest reference prices.
    since: i64,
    discounted: bool,
}

/// One merchant's plan for the run.
struct Merchant {
    id: String,
    live: bool,
    presale: bool,
    violation: Option<Violation>,
    skus: Vec<Sku>,
    orders: u32,
}

/// The generator: random source, output buffer, counters.
pub(crate) struct Sim {
    rng: ChaCha8Rng,
    cfg: Config,
    start: i64,
    events: Vec<(i64, u64, String)>,
    seq: u64,
    labels: BTreeSet<(String, String)>,
    ids: u64,
}

/// Simulates a platform.
pub fn simulate(cfg: &Config) -> Simulation {
    let start = Time::parse("2026-11-01T00:00:00+08:00").map_or(0, Time::unix_ms);
    let mut sim = Sim {
        rng: ChaCha8Rng::seed_from_u64(cfg.seed),
        cfg: cfg.clone(),
        start,
        events: Vec::new(),
        seq: 0,
        labels: BTreeSet::new(),
        ids: 0,
    };
    sim.run();
    let mut events = std::mem::take(&mut sim.events);
    events.sort_unstable_by_key(|(ms, seq, _)| (*ms, *seq));
    Simulation {
        lines: events.into_iter().map(|(_, _, l)| l).collect(),
        labels: sim.labels,
    }
}

/// A valid 统一社会信用代码 for `n` (GB 32100 check character computed).
pub fn uscc(n: u32) -> String {
    let prefix = format!("9131{:06}MA{:05}", n / 100_000 % 1_000_000, n % 100_000);
    check_chars(&prefix).0
}

/// `(valid, invalid)` codes for an 17-character prefix.
fn check_chars(prefix: &str) -> (String, String) {
    let all = "0123456789ABCDEFGHJKLMNPQRTUWXY";
    let mut valid = String::new();
    let mut invalid = String::new();
    for c in all.chars() {
        let code = format!("{prefix}{c}");
        if weiquan_engine::is_valid_uscc(&code) {
            valid = code;
        } else if invalid.is_empty() {
            invalid = code;
        }
    }
    (valid, invalid)
}

impl Sim {
    fn day_ms(&self, day: u32) -> i64 {
        self.start + i64::from(day) * DAY_MS
    }

    /// A random time on `day` between `from_h` and `to_h` hours.
    fn time_on(&mut self, day: u32, from_h: f64, to_h: f64) -> i64 {
        let h = self.rng.gen_range(from_h..to_h);
        self.day_ms(day) + (h * HOUR_MS as f64) as i64
    }

    fn after(&mut self, t: i64, min_ms: i64, max_ms: i64) -> i64 {
        t + self.rng.gen_range(min_ms..max_ms)
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.gen_bool(p.clamp(0.0, 1.0))
    }

    fn next_id(&mut self, prefix: &str) -> String {
        self.ids += 1;
        format!("{prefix}{}", self.ids)
    }

    fn consumer(&mut self) -> String {
        format!("u{}", self.rng.gen_range(0..self.cfg.consumers.max(1)))
    }

    /// Adds an event; returns its id.
    pub(crate) fn emit(&mut self, ms: i64, ty: &str, fields: Value) -> String {
        self.seq += 1;
        let id = format!("e{}", self.seq);
        let mut obj = json!({"v": 1, "id": id, "type": ty, "at": Time::from_unix_ms(ms, OFFSET_S).to_string()});
        if let (Some(o), Value::Object(f)) = (obj.as_object_mut(), fields) {
            o.extend(f);
        }
        self.events.push((ms, self.seq, obj.to_string()));
        id
    }

    pub(crate) fn label(&mut self, rule: &str, subject: String) {
        self.labels.insert((rule.to_owned(), subject));
    }

    fn run(&mut self) {
        let mut merchants = self.plan_merchants();
        for (i, m) in merchants.iter_mut().enumerate() {
            self.register(m, i as u32);
        }
        for day in 0..self.cfg.days {
            let t = self.day_ms(day);
            self.emit(t, "clock.tick", json!({}));
        }
        for m in &mut merchants {
            self.merchant_activity(m);
        }
        self.bnpl_consumers();
        // A final tick well after every follow-up decides all deadlines.
        let end = self.day_ms(self.cfg.days + 40);
        self.emit(end, "clock.tick", json!({}));
    }

    fn plan_merchants(&mut self) -> Vec<Merchant> {
        let double11 = self.cfg.profile == Profile::Double11;
        let mut violating = 0usize;
        (0..self.cfg.merchants)
            .map(|i| {
                let violation = if self.chance(self.cfg.violation_rate) {
                    violating += 1;
                    Some(Violation::ALL[(violating - 1) % Violation::ALL.len()])
                } else {
                    None
                };
                let live =
                    self.chance(if double11 { 0.5 } else { 0.3 }) || violation.is_some_and(Violation::needs_live);
                let presale =
                    self.chance(if double11 { 0.6 } else { 0.15 }) || violation.is_some_and(Violation::needs_presale);
                let n_skus = self.rng.gen_range(3..10);
                let skus = (0..n_skus)
                    .map(|s| Sku {
                        id: format!("s{s}"),
                        price: self.rng.gen_range(20..2000) * 100,
                        since: 0,
                        discounted: false,
                    })
                    .collect();
                Merchant {
                    id: format!("m{i}"),
                    live,
                    presale,
                    violation,
                    skus,
                    orders: 0,
                }
            })
            .collect()
    }

    fn register(&mut self, m: &mut Merchant, i: u32) {
        let t = self.start + i64::from(i) * 1000;
        let code = match m.violation {
            Some(Violation::BadUscc) => {
                self.label("MC-02", format!("merchant:{}", m.id));
                check_chars(&uscc(i)[..17]).1
            }
            Some(Violation::ReusedUscc) if i > 0 => {
                self.label("MC-03", format!("merchant:{}", m.id));
                uscc(0)
            }
            _ => uscc(i),
        };
        let channels: Vec<&str> = if m.live {
            vec!["store", "live"]
        } else {
            vec!["store", "mini_program"]
        };
        self.emit(
            t,
            "merchant.registered",
            json!({"merchant": m.id, "name": format!("店铺{}", m.id), "uscc": code, "channels": channels}),
        );
        if m.violation == Some(Violation::Unverified) {
            self.label("MC-01", format!("merchant:{}", m.id));
        } else {
            self.emit(
                t + 500,
                "merchant.verified",
                json!({"merchant": m.id, "method": "licence_check", "by": "platform"}),
            );
        }
        if m.live {
            // The platform's host registry (LT-11): each live merchant's own host,
            // verified unless the merchant streams with an unqualified one.
            let host = format!("h-{}", m.id);
            self.emit(
                t,
                "host.registered",
                json!({"host": host, "name": format!("主播{}", m.id), "merchant": m.id}),
            );
            if m.violation != Some(Violation::UnqualifiedHost) {
                self.emit(
                    t + 500,
                    "host.verified",
                    json!({"host": host, "method": "id_check", "by": "platform"}),
                );
            }
        }
        for s in &mut m.skus {
            s.since = t + HOUR_MS;
            self.emit(s.since, "listing.published", json!({"merchant": m.id, "sku": s.id, "title": format!("商品{}", s.id), "text": "正品保障，七天无理由退货", "price_fen": s.price}));
        }
    }

    fn orders_today(&mut self, day: u32) -> u32 {
        let mut mean = self.cfg.orders_per_day;
        if self.cfg.profile == Profile::Double11 && day == 10 {
            mean *= 5.0;
        }
        self.rng.gen_range(0.0..2.0 * mean).round() as u32
    }

    fn merchant_activity(&mut self, m: &mut Merchant) {
        let runaway_day = (m.violation == Some(Violation::Runaway)).then(|| self.cfg.days.saturating_sub(6).max(1));
        if m.presale {
            self.campaign(m);
        }
        for day in 0..self.cfg.days {
            if runaway_day == Some(day) {
                violations::run_away(self, m, day);
                return;
            }
            self.price_moves(m, day);
            let n = self.orders_today(day);
            for _ in 0..n {
                let hours = if self.cfg.profile == Profile::Double11 && day == 10 && self.chance(0.6) {
                    (0.0, 2.0)
                } else {
                    (1.0, 23.0)
                };
                let t = self.time_on(day, hours.0, hours.1);
                self.honest_order(m, t);
            }
            let quotes = (f64::from(n) * 1.5) as u32;
            for _ in 0..quotes {
                let t = self.time_on(day, 1.0, 23.9);
                self.quote(m, t);
            }
            for _ in 0..(n / 2).max(1) {
                let t = self.time_on(day, 8.0, 22.0);
                self.conversation(m, t);
            }
            let lottery_every = if self.cfg.profile == Profile::Double11 { 1 } else { 3 };
            if m.live && day % lottery_every == 0 {
                self.lottery(m, day, None);
            }
        }
        if let Some(v) = m.violation {
            violations::plant(self, m, v);
        }
    }

    /// Honest price changes at night, and now and then a lawful 原价 after 7+ stable days.
    fn price_moves(&mut self, m: &mut Merchant, day: u32) {
        if day == 0 {
            return; // listings go up during day 0
        }
        for i in 0..m.skus.len() {
            let t = self.time_on(day, 0.0, 0.9);
            if self.chance(0.03) {
                let factor = self.rng.gen_range(0.9..1.1);
                let s = &mut m.skus[i];
                s.price = ((s.price as f64 * factor) as u64 / 100).max(1) * 100;
                s.since = t;
                let (sku, price) = (s.id.clone(), s.price);
                self.emit(
                    t,
                    "price.changed",
                    json!({"merchant": m.id, "sku": sku, "price_fen": price}),
                );
            } else if !m.skus[i].discounted && t - m.skus[i].since > 8 * DAY_MS && self.chance(0.05) {
                let s = &mut m.skus[i];
                let reference = s.price;
                s.price = (s.price * 85 / 100).max(1);
                s.since = t;
                s.discounted = true;
                let (sku, price) = (s.id.clone(), s.price);
                self.emit(
                    t,
                    "listing.updated",
                    json!({"merchant": m.id, "sku": sku, "price_fen": price, "reference_price_fen": reference}),
                );
            }
        }
    }

    pub(crate) fn place_order(&mut self, m: &mut Merchant, t: i64, extra: Value) -> String {
        let order = self.next_id("o");
        let i = self.rng.gen_range(0..m.skus.len());
        let (sku, price) = (m.skus[i].id.clone(), m.skus[i].price);
        let qty = self.rng.gen_range(1..3u64);
        let bnpl = self.chance(0.1);
        let consumer = self.consumer();
        let mut fields = json!({"order": order, "merchant": m.id, "consumer": consumer, "sku": sku, "qty": qty,
            "amount_fen": price * qty, "payment": if bnpl { "bnpl" } else { "standard" }});
        if let (Some(o), Value::Object(x)) = (fields.as_object_mut(), extra) {
            o.extend(x);
        }
        if bnpl && fields.get("confirmed").is_none() {
            if let Some(o) = fields.as_object_mut() {
                o.insert("confirmed".into(), json!(true));
                o.insert("identity_verified".into(), json!(true));
            }
        }
        m.orders += 1;
        self.emit(t, "order.placed", fields);
        order
    }

    /// An order that goes right: shipped within 36 hours, refunds and complaints handled.
    fn honest_order(&mut self, m: &mut Merchant, t: i64) {
        let order = self.place_order(m, t, json!({}));
        if self.chance(0.02) {
            let c = self.after(t, 10 * MINUTE_MS, 5 * HOUR_MS);
            self.emit(c, "order.cancelled", json!({"order": order, "by": "consumer"}));
            return;
        }
        let shipped = self.after(t, HOUR_MS, 36 * HOUR_MS);
        self.emit(shipped, "order.shipped", json!({"order": order}));
        let delivered = self.after(shipped, 12 * HOUR_MS, 60 * HOUR_MS);
        self.emit(delivered, "order.delivered", json!({"order": order}));
        if self.chance(0.04) {
            let asked = self.after(delivered, HOUR_MS, 5 * DAY_MS);
            self.emit(
                asked,
                "refund.requested",
                json!({"order": order, "amount_fen": 100, "no_reason": true}),
            );
            let done = self.after(asked, HOUR_MS, 3 * DAY_MS);
            self.emit(done, "refund.completed", json!({"order": order, "amount_fen": 100}));
        }
        if self.chance(0.01) {
            let filed = self.after(delivered, HOUR_MS, 2 * DAY_MS);
            let complaint = self.next_id("p");
            let consumer = self.consumer();
            self.emit(filed, "complaint.filed", json!({"complaint": complaint, "consumer": consumer, "merchant": m.id, "order": order, "category": "quality"}));
            let resp = self.after(filed, HOUR_MS, 3 * DAY_MS);
            self.emit(
                resp,
                "complaint.responded",
                json!({"complaint": complaint, "by": "merchant"}),
            );
            let res = self.after(resp, HOUR_MS, 2 * DAY_MS);
            self.emit(
                res,
                "complaint.resolved",
                json!({"complaint": complaint, "outcome": "replacement"}),
            );
        }
    }

    /// A price shown to one consumer: the listed price, 5% less for new customers.
    fn quote(&mut self, m: &Merchant, t: i64) {
        let i = self.rng.gen_range(0..m.skus.len());
        let s = &m.skus[i];
        let segment = ["new", "returning", "member", ""][self.rng.gen_range(0..4)];
        let price = if segment == "new" { s.price * 95 / 100 } else { s.price };
        let consumer = self.consumer();
        let mut f = json!({"merchant": m.id, "sku": s.id, "consumer": consumer, "price_fen": price});
        if let (false, Some(o)) = (segment.is_empty(), f.as_object_mut()) {
            o.insert("segment".into(), json!(segment));
        }
        self.emit(t, "price.quoted", f);
    }

    /// A consumer asks; a person answers within six hours (sometimes after a bot).
    fn conversation(&mut self, m: &Merchant, t: i64) {
        let v = self.next_id("v");
        let consumer = self.consumer();
        let msg = |from: &str| json!({"merchant": m.id, "conversation": v, "consumer": consumer, "from": from});
        self.emit(t, "service.message", msg("consumer"));
        if self.chance(0.3) {
            self.emit(t + MINUTE_MS, "service.message", msg("bot"));
        }
        let reply = self.after(t, 5 * MINUTE_MS, 6 * HOUR_MS);
        self.emit(reply, "service.message", msg("merchant"));
    }

    /// A fully disclosed live-stream lottery, drawn fairly and delivered; `twist` plants a violation.
    pub(crate) fn lottery(&mut self, m: &Merchant, day: u32, twist: Option<Violation>) -> String {
        let l = self.next_id("l");
        let announced = self.time_on(day, 9.0, 11.0);
        let draw_at = announced + 8 * HOUR_MS;
        let count = match twist {
            Some(Violation::WithheldPrizes | Violation::FewerPrizes) => 3,
            Some(Violation::RepeatWinner) => 1,
            _ => self.rng.gen_range(1..4u64),
        };
        let value = self.rng.gen_range(10..500u64) * 100;
        let mut prizes = vec![json!({"name": "奖品A", "value_fen": value, "count": count})];
        if twist == Some(Violation::PrizeOverCap) {
            prizes.push(json!({"name": "汽车", "value_fen": 6_000_000, "count": 1}));
        }
        let mut terms = json!({"lottery": l, "merchant": m.id, "host": format!("h-{}", m.id), "stream": format!("st-{l}"),
            "prizes": prizes, "conditions": ["关注主播", "评论口令"], "draw_at": Time::from_unix_ms(draw_at, OFFSET_S).to_string(),
            "deliver_within_days": 7, "organizer": format!("店铺{}", m.id), "contact": "400-000-0000"});
        let seed = hex::encode(self.rng.gen::<[u8; 16]>());
        // Committed draws follow weiquan's algorithm, which other twists would break (LT-10 as well).
        let committed = match twist {
            None => self.chance(0.3),
            Some(t) => t == Violation::WrongSeed,
        };
        if let Some(o) = terms.as_object_mut() {
            if committed {
                o.insert("commitment".into(), json!(hex::encode(Sha256::digest(seed.as_bytes()))));
            }
            if twist == Some(Violation::HiddenContact) {
                o.remove("contact");
            }
        }
        let subject = format!("lottery:{l}");
        if m.violation == Some(Violation::UnqualifiedHost) {
            self.label("LT-11", subject.clone());
        }
        self.emit(announced, "lottery.announced", terms);
        let double11 = self.cfg.profile == Profile::Double11;
        let n = match twist {
            // Large draws keep the repeat winner's fair expectation tiny.
            Some(Violation::RepeatWinner) => self.rng.gen_range(200..400),
            _ => self.rng.gen_range(if double11 { 50..600 } else { 20..200 }),
        };
        let mut entrants: Vec<String> = (0..n).map(|_| self.consumer()).collect();
        entrants.sort();
        entrants.dedup();
        entrants.shuffle(&mut self.rng);
        if twist == Some(Violation::RepeatWinner) {
            entrants.insert(0, format!("shill-{}", m.id));
        }
        let close = draw_at - 30 * MINUTE_MS;
        let mut entries: Vec<(i64, String)> = entrants
            .iter()
            .map(|p| (self.rng.gen_range(announced + MINUTE_MS..close), p.clone()))
            .collect();
        // Emitted in time order, so entry order (what a committed draw runs over) is this order.
        entries.sort_by_key(|e| e.0);
        for (t, p) in &entries {
            self.emit(*t, "lottery.entered", json!({"lottery": l, "participant": p}));
        }
        if committed {
            entrants = entries.into_iter().map(|e| e.1).collect();
        }
        let mut announced_count = count + u64::from(twist == Some(Violation::PrizeOverCap));
        if twist == Some(Violation::FewerPrizes) && count > 1 {
            let t = self.rng.gen_range(announced + MINUTE_MS..close);
            self.emit(
                t,
                "lottery.changed",
                json!({"lottery": l, "prizes": [{"name": "奖品A", "value_fen": value, "count": count - 1}]}),
            );
            announced_count -= 1;
            self.label("LT-02", subject.clone());
        }
        self.emit(close, "lottery.closed", json!({"lottery": l}));
        if twist == Some(Violation::NeverDrawn) {
            self.label("LT-05", subject.clone());
            return l;
        }
        let mut winners: Vec<(String, &str)> = Vec::new();
        if committed {
            let refs: Vec<&str> = entrants.iter().map(String::as_str).collect();
            let counts = [u32::try_from(count).unwrap_or(u32::MAX)];
            for (e, _) in weiquan_engine::draw::draw(&seed, &refs, &counts) {
                winners.push((entrants[e].clone(), "奖品A"));
            }
        } else {
            let prize_names: Vec<&str> = (0..announced_count)
                .map(|i| if i < count { "奖品A" } else { "汽车" })
                .collect();
            for (p, prize) in entrants.iter().zip(&prize_names) {
                winners.push((p.clone(), prize));
            }
        }
        if twist == Some(Violation::LateWinner) {
            let late = format!("late-{l}");
            self.emit(
                close + MINUTE_MS,
                "lottery.entered",
                json!({"lottery": l, "participant": late}),
            );
            if let Some(w) = winners.first_mut() {
                w.0 = late;
            }
            self.label("LT-04", subject.clone());
        }
        if twist == Some(Violation::WithheldPrizes) {
            winners.truncate(1);
            self.label("LT-08", subject.clone());
        }
        let drawn_at = self.after(draw_at, 0, 30 * MINUTE_MS);
        let w: Vec<Value> = winners
            .iter()
            .map(|(p, prize)| json!({"participant": p, "prize": prize}))
            .collect();
        let mut drawn = json!({"lottery": l, "winners": w});
        if let (true, Some(o)) = (committed, drawn.as_object_mut()) {
            let revealed = if twist == Some(Violation::WrongSeed) {
                format!("{seed}-x")
            } else {
                seed.clone()
            };
            o.insert("seed".into(), json!(revealed));
        }
        if twist == Some(Violation::WrongSeed) {
            self.label("LT-10", subject.clone());
        }
        if twist == Some(Violation::PrizeOverCap) {
            self.label("LT-03", subject.clone());
        }
        if twist == Some(Violation::HiddenContact) {
            self.label("LT-01", subject.clone());
        }
        self.emit(drawn_at, "lottery.drawn", drawn);
        for (i, (p, prize)) in winners.iter().enumerate() {
            if i == 0 && twist == Some(Violation::UnsentPrize) {
                self.label("LT-06", subject.clone());
                continue;
            }
            let shipped = self.after(drawn_at, HOUR_MS, 3 * DAY_MS);
            let v = if *prize == "汽车" { 6_000_000 } else { value };
            let declared = if i == 0 && twist == Some(Violation::CheapPrize) {
                self.label("LT-07", subject.clone());
                v / 2
            } else {
                v
            };
            self.emit(
                shipped,
                "lottery.prize_shipped",
                json!({"lottery": l, "participant": p, "prize": prize, "value_fen": declared}),
            );
            let got = self.after(shipped, HOUR_MS, 3 * DAY_MS);
            self.emit(got, "lottery.prize_delivered", json!({"lottery": l, "participant": p}));
        }
        l
    }

    /// A pre-sale that keeps its promises; `twist` plants a violation.
    pub(crate) fn campaign(&mut self, m: &Merchant) {
        let twist = m.violation;
        let c = self.next_id("c");
        let subject = format!("campaign:{c}");
        let days = self.cfg.days.max(4);
        let dep_end_day = (days / 3).max(1);
        let t0 = self.day_ms(0) + 2 * HOUR_MS;
        let price = self.rng.gen_range(100..1000u64) * 100;
        let mut deposit = price / 10;
        let mut ship_days = self.rng.gen_range(3..10u32);
        if twist == Some(Violation::DepositOverCap) {
            deposit = price * 3 / 10;
            self.label("PS-06", subject.clone());
        }
        if twist == Some(Violation::OverLong) {
            ship_days = 70;
            self.label("PS-03", subject.clone());
        }
        let final_start = self.day_ms(dep_end_day);
        let final_end = final_start + DAY_MS;
        let ts = |ms: i64| Time::from_unix_ms(ms, OFFSET_S).to_string();
        let mut terms = json!({"campaign": c, "merchant": m.id, "sku": m.skus[0].id, "deposit_fen": deposit, "price_fen": price,
            "deposit_start": ts(t0), "deposit_end": ts(final_start - HOUR_MS), "final_start": ts(final_start), "final_end": ts(final_end),
            "ship_within_days": ship_days, "gifts": ["保温杯"], "deposit_refundable": true, "terms": "未付尾款可退定金"});
        if twist == Some(Violation::UndisclosedDeposit) {
            if let Some(o) = terms.as_object_mut() {
                o.remove("deposit_refundable");
                o.remove("terms");
            }
            self.label("PS-08", subject.clone());
        }
        self.emit(t0, "presale.published", terms);
        let buyers = self.rng.gen_range(5..40);
        if twist == Some(Violation::WorseTerms) {
            let t = final_start - 2 * HOUR_MS;
            self.emit(t, "presale.changed", json!({"campaign": c, "price_fen": price + 2000}));
            self.label("PS-02", subject.clone());
        }
        for b in 0..buyers {
            let order = self.next_id("o");
            let consumer = self.consumer();
            let paid = self.rng.gen_range(t0 + MINUTE_MS..final_start - 3 * HOUR_MS);
            self.emit(
                paid,
                "presale.deposit_paid",
                json!({"campaign": c, "order": order, "consumer": consumer, "deposit_fen": deposit}),
            );
            if b == 0 && twist == Some(Violation::DepositKept) {
                let asked = self.after(paid, HOUR_MS, 2 * HOUR_MS);
                self.emit(
                    asked,
                    "presale.deposit_refund_requested",
                    json!({"campaign": c, "order": order}),
                );
                self.label("PS-07", format!("order:{order}"));
                continue;
            }
            if b > 0 && self.chance(0.05) {
                let asked = self.after(paid, HOUR_MS, 2 * HOUR_MS);
                self.emit(
                    asked,
                    "presale.deposit_refund_requested",
                    json!({"campaign": c, "order": order}),
                );
                let back = self.after(asked, HOUR_MS, 2 * DAY_MS);
                self.emit(
                    back,
                    "presale.deposit_refunded",
                    json!({"campaign": c, "order": order, "amount_fen": deposit}),
                );
                continue;
            }
            let fin = self.rng.gen_range(final_start..final_end);
            let mut final_fen = price - deposit;
            if b == 0 && twist == Some(Violation::FinalRaised) {
                final_fen += 1500;
                self.label("PS-01", subject.clone());
            }
            let gifts: Vec<&str> = if b == 0 && twist == Some(Violation::GiftDropped) {
                self.label("PS-05", subject.clone());
                vec![]
            } else {
                vec!["保温杯"]
            };
            self.emit(
                fin,
                "presale.final_paid",
                json!({"campaign": c, "order": order, "final_fen": final_fen, "gifts": gifts}),
            );
            if b == 0 && twist == Some(Violation::PresaleUnshipped) {
                self.label("PS-04", format!("order:{order}"));
                continue;
            }
            let ship = self.after(fin, HOUR_MS, i64::from(ship_days.min(10)) * DAY_MS - HOUR_MS);
            self.emit(ship, "order.shipped", json!({"order": order}));
        }
    }

    /// Pay-later for a share of consumers: honest offers, and violating ones.
    fn bnpl_consumers(&mut self) {
        let n = (self.cfg.consumers / 20).max(1);
        let bad =
            ((f64::from(n) * self.cfg.violation_rate).ceil() as u32).max(u32::from(self.cfg.violation_rate > 0.0) * 5);
        for i in 0..n {
            let u = format!("bnpl-u{i}");
            let day = self.rng.gen_range(0..self.cfg.days.max(1));
            let t = self.time_on(day, 8.0, 22.0);
            let provider = "pv";
            let kind = (i < bad).then_some(i % 5);
            let subject = format!("consumer:{u}");
            let preselected = kind == Some(0);
            let terms_shown = kind != Some(1);
            self.emit(t, "bnpl.offered", json!({"consumer": u, "session": format!("s-{u}"), "preselected": preselected, "terms_shown": terms_shown}));
            let consent = if kind == Some(2) { "bundled" } else { "explicit" };
            let verified = kind != Some(3);
            self.emit(
                t + MINUTE_MS,
                "bnpl.enabled",
                json!({"consumer": u, "provider": provider, "consent": consent, "identity_verified": verified}),
            );
            match kind {
                Some(0) | Some(2) => self.label("BN-01", subject.clone()),
                Some(1) => self.label("BN-05", subject.clone()),
                Some(3) => self.label("BN-02", subject.clone()),
                Some(4) => {
                    self.label("BN-04", subject.clone());
                    self.emit(
                        t + DAY_MS,
                        "bnpl.disabled",
                        json!({"consumer": u, "provider": provider, "steps": 5}),
                    );
                }
                _ => {
                    if self.chance(0.3) {
                        let steps = self.rng.gen_range(1..3u32);
                        self.emit(
                            t + DAY_MS,
                            "bnpl.disabled",
                            json!({"consumer": u, "provider": provider, "steps": steps}),
                        );
                    }
                }
            }
        }
    }
}
