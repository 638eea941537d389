"""The eight rules of scripts/peer/rules.sql in Polars, as a Polars user would
write them: only the needed columns read, with declared types; the row index
as the processing order; joins, as-of joins and window expressions, lazily,
with one collect for all eight rules. Prints JSON: load and rules seconds, pairs.

Usage: python3 rules_polars.py EVENTS.ndjson THREADS   (threads fixed before Polars loads)
"""
import json, os, sys, time

os.environ["POLARS_MAX_THREADS"] = sys.argv[2]
import polars as pl  # noqa: E402  (the thread count must be set first)

D = pl.Datetime("us", "UTC")
SCHEMA = {
    "id": pl.String, "type": pl.String, "at": pl.String, "order": pl.String, "campaign": pl.String,
    "merchant": pl.String, "sku": pl.String, "consumer": pl.String, "segment": pl.String,
    "payment": pl.String, "confirmed": pl.Boolean, "price_fen": pl.Int64, "reference_price_fen": pl.Int64,
    "deposit_fen": pl.Int64, "final_fen": pl.Int64, "ship_within_days": pl.Int64, "lottery": pl.String,
    "participant": pl.String,
    "winners": pl.List(pl.Struct({"participant": pl.String, "prize": pl.String})),
    "prizes": pl.List(pl.Struct({"name": pl.String})),
}


def load(path):
    df = pl.read_ndjson(path, schema=SCHEMA, ignore_errors=False)
    # The times carry their offsets: parsed to UTC instants.
    return df.with_columns(pl.col("at").str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z", time_unit="us").dt.convert_time_zone("UTC")).with_row_index("seq")


def rules(df):
    # Deduplicated once (a repeated id keeps its first line), then shared by
    # every rule; the frames are sorted by `seq`, which the as-of joins need
    # (so their check of it, which cannot be done per `by` group, is skipped).
    ev = df.filter(pl.col("id").is_first_distinct()).lazy()
    now = df["at"].max()
    t = pl.col("type")
    deposits = (
        ev.filter(t == "presale.deposit_paid").select("order", "campaign", "deposit_fen", "seq")
        .unique(subset=["order"], keep="first", maintain_order=True).sort("seq")
    )
    terms = ev.filter(t.is_in(["presale.published", "presale.changed"]))
    price_terms = terms.filter(pl.col("price_fen").is_not_null()).select("campaign", "seq", promised="price_fen").sort("seq")
    ship_terms = terms.filter(pl.col("ship_within_days").is_not_null()).select("campaign", "seq", ship_days="ship_within_days").sort("seq")
    deposits = (
        deposits.join_asof(price_terms, on="seq", by="campaign", strategy="backward", allow_exact_matches=False,
                           check_sortedness=False)
        .join_asof(ship_terms, on="seq", by="campaign", strategy="backward", allow_exact_matches=False,
                   check_sortedness=False)
    )
    settled = (
        ev.filter(t.is_in(["order.shipped", "order.cancelled", "refund.completed", "presale.deposit_refunded"]))
        .group_by("order")
        .agg(ordinary=pl.col("at").filter(t != "presale.deposit_refunded").min(), presale=pl.col("at").min())
    )
    prices = ev.filter(t.is_in(["listing.published", "listing.updated", "price.changed"]) & pl.col("price_fen").is_not_null()) \
        .select("merchant", "sku", p_seq="seq", p_at="at", p_price="price_fen")
    finals = ev.filter(t == "presale.final_paid").select("order", "campaign", "at", "final_fen").join(
        deposits.select("order", "deposit_fen", "promised", "ship_days"), on="order")
    ps01 = finals.filter(pl.col("deposit_fen") + pl.col("final_fen") > pl.col("promised")) \
        .select(rule=pl.lit("PS-01"), subject="campaign:" + pl.col("campaign"))
    due = pl.col("at") + pl.duration(days=pl.col("ship_days"))
    ps04 = finals.join(settled, on="order", how="left") \
        .filter((due < now) & (pl.col("presale").is_null() | (pl.col("presale") > due))) \
        .select(rule=pl.lit("PS-04"), subject="order:" + pl.col("order"))

    winners = ev.filter(t == "lottery.drawn").select("lottery", "seq", "winners").explode("winners") \
        .select("lottery", "seq", pl.col("winners").struct.field("participant"), pl.col("winners").struct.field("prize"))
    entered = ev.filter(t == "lottery.entered").group_by("lottery", "participant").agg(first=pl.col("seq").min())
    closed = ev.filter(t == "lottery.closed").group_by("lottery").agg(closed=pl.col("seq").min())
    named = ev.filter(t.is_in(["lottery.announced", "lottery.changed"]) & pl.col("prizes").is_not_null()) \
        .select("lottery", "seq", "prizes").explode("prizes") \
        .select("lottery", "seq", prize=pl.col("prizes").struct.field("name")) \
        .group_by("lottery", "prize").agg(named=pl.col("seq").min())
    lt04 = winners.join(entered, on=["lottery", "participant"], how="left").join(closed, on="lottery", how="left") \
        .join(named, on=["lottery", "prize"], how="left") \
        .filter(pl.col("first").is_null()
                | (pl.col("first") >= pl.min_horizontal("seq", pl.col("closed").fill_null(pl.col("seq"))))
                | pl.col("named").is_null() | (pl.col("named") >= pl.col("seq"))) \
        .select(rule=pl.lit("LT-04"), subject="lottery:" + pl.col("lottery"))

    two_days = pl.col("at") + pl.duration(days=2)
    mc06 = ev.filter((t == "order.placed") & pl.col("campaign").is_null()).select("order", "at") \
        .join(settled, on="order", how="left") \
        .filter((two_days < now) & (pl.col("ordinary").is_null() | (pl.col("ordinary") > two_days))) \
        .select(rule=pl.lit("MC-06"), subject="order:" + pl.col("order"))
    week = pl.col("at") + pl.duration(days=7)
    mc08 = ev.filter(t.is_in(["refund.requested", "refund.completed", "refund.rejected"])).select("order", "type", "at", "seq") \
        .sort("seq") \
        .with_columns(next_at=pl.col("at").shift(-1).reverse().cum_min().reverse().over("order")) \
        .filter((t == "refund.requested") & (week < now) & (pl.col("next_at").is_null() | (pl.col("next_at") > week))) \
        .select(rule=pl.lit("MC-08"), subject="order:" + pl.col("order"))

    refs = ev.filter(t.is_in(["listing.published", "listing.updated"]) & pl.col("reference_price_fen").is_not_null()) \
        .select("merchant", "sku", "seq", "at", "reference_price_fen")
    before = refs.join(prices, on=["merchant", "sku"]).filter((pl.col("p_seq") < pl.col("seq")) & (pl.col("p_at") <= pl.col("at")))
    since = before.group_by("seq").agg(since=pl.col("p_at").filter(pl.col("p_at") <= pl.col("at") - pl.duration(days=7)).max())
    lowest = before.join(since, on="seq").with_columns(since=pl.col("since").fill_null(pl.col("at") - pl.duration(days=7))) \
        .filter(pl.col("p_at") >= pl.col("since")).group_by("seq").agg(lowest=pl.col("p_price").min())
    pr01 = refs.join(lowest, on="seq", how="left") \
        .filter(pl.col("reference_price_fen") > pl.col("lowest").fill_null(-1)) \
        .select(rule=pl.lit("PR-01"), subject="sku:" + pl.col("merchant") + "/" + pl.col("sku"))

    quotes = ev.filter(t == "price.quoted").select("seq", "merchant", "sku", "consumer", "segment", "at", "price_fen").sort("seq") \
        .join_asof(prices.select("merchant", "sku", change_seq="p_seq").sort("change_seq"), left_on="seq", right_on="change_seq",
                   by=["merchant", "sku"], strategy="backward", allow_exact_matches=False, check_sortedness=False)
    listed = quotes.join(prices, on=["merchant", "sku"]).filter((pl.col("p_seq") < pl.col("seq")) & (pl.col("p_at") <= pl.col("at"))) \
        .group_by("seq").agg(listed=pl.col("p_price").sort_by("p_at", "p_seq").last())
    over_list = quotes.join(listed, on="seq").filter(pl.col("price_fen") * 10000 > 10100 * pl.col("listed"))
    others = quotes.select("merchant", "sku", "segment", "change_seq", o_seq="seq", o_consumer="consumer", o_at="at", o_price="price_fen")
    over_others = quotes.join(others, on=["merchant", "sku", "segment", "change_seq"], nulls_equal=True) \
        .filter((pl.col("o_seq") < pl.col("seq")) & (pl.col("o_consumer") != pl.col("consumer"))
                & (pl.col("o_at") >= pl.col("at") - pl.duration(hours=1)) & (pl.col("o_at") <= pl.col("at"))
                & (pl.col("price_fen") * 10000 > 10100 * pl.col("o_price")))
    pr02 = pl.concat([over_list.select("merchant", "sku"), over_others.select("merchant", "sku")]) \
        .select(rule=pl.lit("PR-02"), subject="sku:" + pl.col("merchant") + "/" + pl.col("sku"))

    bn03 = ev.filter((t == "order.placed") & (pl.col("payment") == "bnpl") & ~pl.col("confirmed").fill_null(False)) \
        .select(rule=pl.lit("BN-03"), subject="order:" + pl.col("order"))
    found = pl.concat([ps01, ps04, lt04, mc06, mc08, pr01, pr02, bn03]).unique()
    return {tuple(r) for r in found.collect().iter_rows()}


if __name__ == "__main__":
    t0 = time.perf_counter()
    df = load(sys.argv[1])
    t1 = time.perf_counter()
    pairs = rules(df)
    t2 = time.perf_counter()
    print(json.dumps({"load": t1 - t0, "rules": t2 - t1, "pairs": sorted(pairs)}))
