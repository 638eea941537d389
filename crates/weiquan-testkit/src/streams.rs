//! Streams the cluster's tests share (the crate's own, and the command line's).

/// A pre-sale handed across `partitions` partitions, at an awkward moment: merchant B
/// (its own partition) has two orders overdue once the clock passes their
/// deadlines on A's events, which B's partition has not seen, and a third
/// due later. Then a change hands A's pre-sale to B: B moves to A's
/// partition. B's partition must report the first two late shipments as it
/// moves B out (at the marker's clock); A's partition reports the third's,
/// citing an event that only B's old partition had logged. Merchant C
/// stays in B's old partition with an order due after the move: a marker
/// applied twice there (by a door that resumed) would report it twice. Ids
/// and subjects start with `h`, apart from the example cases'.
pub fn handed_over(partitions: u32) -> Vec<String> {
    let [a, b, c] = handed_over_merchants(partitions);
    let (a, b, c) = (&a, &b, &c);
    let line = |id: &str, ty: &str, at: &str, body: String| {
        format!(r#"{{"v":1,"id":"{id}","type":"{ty}","at":"2026-11-{at}:00:00+08:00",{body}}}"#)
    };
    let placed_by = |o: &str, m: &str| {
        format!(
            r#""order":"{o}","merchant":"{m}","consumer":"u1","sku":"s9","qty":1,"amount_fen":100,"payment":"standard""#
        )
    };
    let placed = |o: &str| placed_by(o, b);
    let deposit = |o: &str| format!(r#""campaign":"hc1","order":"{o}","consumer":"u2","deposit_fen":5000"#);
    vec![
        line("h1", "order.placed", "01T08", placed("ho1")),
        line(
            "h2",
            "presale.published",
            "01T10",
            format!(
                r#""campaign":"hc1","merchant":"{a}","sku":"s1","deposit_fen":5000,"price_fen":30000,"deposit_start":"2026-11-01T00:00:00+08:00","deposit_end":"2026-11-10T00:00:00+08:00","final_start":"2026-11-11T00:00:00+08:00","final_end":"2026-11-12T00:00:00+08:00","ship_within_days":10"#
            ),
        ),
        line("h3", "presale.deposit_paid", "02T10", deposit("ho2")),
        line("h4", "order.placed", "02T09", placed("ho5")),
        line("h5", "order.placed", "03T00", placed("ho6")),
        line("h10", "order.placed", "04T00", placed_by("hoc", c)),
        line("h6", "presale.deposit_paid", "04T10", deposit("ho3")),
        line(
            "h7",
            "presale.changed",
            "04T11",
            format!(r#""campaign":"hc1","merchant":"{b}""#),
        ),
        line(
            "h8",
            "presale.changed",
            "04T12",
            r#""campaign":"hc1","price_fen":31000"#.to_owned(),
        ),
        line("h9", "order.shipped", "20T10", r#""order":"ho1""#.to_owned()),
    ]
}

/// The merchants of [`handed_over`] for `partitions` partitions, and their
/// partitions: A (the pre-sale's first merchant), B (in another partition,
/// moved into A's) and C (in B's partition, staying).
pub fn handed_over_merchants(partitions: u32) -> [String; 3] {
    let ids: Vec<String> = (1..60).map(|n| format!("m{n}")).collect();
    let of = |m: &str| weiquan_partition::partition_of(m, partitions);
    let a = &ids[0];
    let b = (ids.iter())
        .find(|m| of(m) != of(a))
        .expect("two merchants in two partitions");
    let c = (ids.iter())
        .find(|m| *m != b && of(m) == of(b))
        .expect("two merchants in one partition");
    [a.clone(), b.clone(), c.clone()]
}

/// The partition of merchant `m` among `partitions`.
pub fn partition_of(m: &str, partitions: u32) -> u32 {
    weiquan_partition::partition_of(m, partitions)
}
