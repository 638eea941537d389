-- Eight weiquan rules as DuckDB SQL over the same NDJSON (the peer of scripts/bench-peer).
-- Input order is processing order: `seq` numbers the lines; a repeated id keeps its first line.
-- Deadlines fire when the clock (the largest `at`) passes them, as in spec/rulebook.md.

CREATE OR REPLACE TABLE ev AS
SELECT * FROM (
    SELECT *, row_number() OVER () AS seq
    FROM read_json(getvariable('events'), format = 'newline_delimited', sample_size = -1, union_by_name = true)
) QUALIFY row_number() OVER (PARTITION BY id ORDER BY seq) = 1;

CREATE OR REPLACE TABLE clk AS SELECT max("at") AS now FROM ev;

CREATE OR REPLACE TABLE presale_terms AS
SELECT campaign, seq, price_fen, ship_within_days FROM ev WHERE type IN ('presale.published', 'presale.changed');

-- What each consumer was promised when paying the deposit (the terms in effect then).
CREATE OR REPLACE TABLE deposits AS
SELECT d."order", d.campaign, d.deposit_fen, d.seq,
       (SELECT last(t.price_fen ORDER BY t.seq) FROM presale_terms t WHERE t.campaign = d.campaign AND t.seq < d.seq AND t.price_fen IS NOT NULL) AS promised,
       (SELECT last(t.ship_within_days ORDER BY t.seq) FROM presale_terms t WHERE t.campaign = d.campaign AND t.seq < d.seq AND t.ship_within_days IS NOT NULL) AS ship_days
FROM ev d WHERE d.type = 'presale.deposit_paid'
QUALIFY row_number() OVER (PARTITION BY d."order" ORDER BY d.seq) = 1;

CREATE OR REPLACE TABLE prices AS
SELECT merchant, sku, seq, "at", price_fen FROM ev
WHERE type IN ('listing.published', 'listing.updated', 'price.changed') AND price_fen IS NOT NULL;

CREATE OR REPLACE TABLE peer_findings AS
-- PS-01: deposit + final payment above the price promised at deposit time.
SELECT DISTINCT 'PS-01' AS rule, 'campaign:' || f.campaign AS subject
FROM ev f JOIN deposits d ON d."order" = f."order"
WHERE f.type = 'presale.final_paid' AND d.deposit_fen + f.final_fen > d.promised
UNION
-- PS-04: not shipped within the promised days of the final payment.
SELECT DISTINCT 'PS-04', 'order:' || f."order"
FROM ev f JOIN deposits d ON d."order" = f."order"
WHERE f.type = 'presale.final_paid'
  AND f."at" + to_days(CAST(d.ship_days AS INTEGER)) < (SELECT now FROM clk)
  AND NOT EXISTS (SELECT 1 FROM ev s WHERE s."order" = f."order"
                  AND s.type IN ('order.shipped', 'order.cancelled', 'refund.completed', 'presale.deposit_refunded')
                  AND s."at" <= f."at" + to_days(CAST(d.ship_days AS INTEGER)))
UNION
-- LT-04: a winner who never entered, entered after the close, or won an unannounced prize.
SELECT DISTINCT 'LT-04', 'lottery:' || w.lottery
FROM (SELECT lottery, seq, unnest(winners) AS w FROM ev WHERE type = 'lottery.drawn') AS w
WHERE NOT EXISTS (
        SELECT 1 FROM ev e WHERE e.type = 'lottery.entered' AND e.lottery = w.lottery AND e.participant = w.w.participant
          AND e.seq < w.seq
          AND e.seq < COALESCE((SELECT min(c.seq) FROM ev c WHERE c.type = 'lottery.closed' AND c.lottery = w.lottery), w.seq))
   OR NOT EXISTS (
        SELECT 1 FROM (SELECT a.seq, unnest(a.prizes) AS p FROM ev a WHERE a.type IN ('lottery.announced', 'lottery.changed') AND a.lottery = w.lottery AND a.prizes IS NOT NULL) n
        WHERE n.seq < w.seq AND n.p.name = w.w.prize)
UNION
-- MC-06: an ordinary order not shipped, cancelled or refunded within 2 days.
SELECT DISTINCT 'MC-06', 'order:' || p."order"
FROM ev p
WHERE p.type = 'order.placed' AND p.campaign IS NULL
  AND p."at" + INTERVAL 2 DAY < (SELECT now FROM clk)
  AND NOT EXISTS (SELECT 1 FROM ev s WHERE s."order" = p."order"
                  AND s.type IN ('order.shipped', 'order.cancelled', 'refund.completed')
                  AND s."at" <= p."at" + INTERVAL 2 DAY)
UNION
-- MC-08: a refund request neither completed nor rejected within 7 days.
SELECT DISTINCT 'MC-08', 'order:' || r."order"
FROM ev r
WHERE r.type = 'refund.requested'
  AND r."at" + INTERVAL 7 DAY < (SELECT now FROM clk)
  AND NOT EXISTS (SELECT 1 FROM ev s WHERE s."order" = r."order" AND s.seq > r.seq
                  AND s.type IN ('refund.completed', 'refund.rejected', 'refund.requested')
                  AND s."at" <= r."at" + INTERVAL 7 DAY)
UNION
-- PR-01: a reference price above the lowest price of the 7 days before (counting the one in effect when they began).
SELECT DISTINCT 'PR-01', 'sku:' || r.merchant || '/' || r.sku
FROM ev r
WHERE r.type IN ('listing.published', 'listing.updated') AND r.reference_price_fen IS NOT NULL
  AND r.reference_price_fen > COALESCE((
        SELECT min(p.price_fen) FROM prices p
        WHERE p.merchant = r.merchant AND p.sku = r.sku AND p.seq < r.seq AND p."at" <= r."at"
          AND p."at" >= COALESCE((SELECT max(q."at") FROM prices q
                                  WHERE q.merchant = r.merchant AND q.sku = r.sku AND q.seq < r.seq AND q."at" <= r."at" - INTERVAL 7 DAY),
                                 r."at" - INTERVAL 7 DAY)), -1)
UNION
-- PR-02: a quote more than 1% above the listed price, or above another consumer's same-segment quote within the hour.
SELECT DISTINCT 'PR-02', 'sku:' || q.merchant || '/' || q.sku
FROM ev q
WHERE q.type = 'price.quoted' AND (
      q.price_fen * 10000 > 10100 * (SELECT last(p.price_fen ORDER BY p."at", p.seq) FROM prices p
                                    WHERE p.merchant = q.merchant AND p.sku = q.sku AND p.seq < q.seq AND p."at" <= q."at")
   OR q.price_fen * 10000 > 10100 * (
        SELECT min(o.price_fen) FROM ev o
        WHERE o.type = 'price.quoted' AND o.merchant = q.merchant AND o.sku = q.sku AND o.seq < q.seq
          AND o.consumer <> q.consumer AND o.segment IS NOT DISTINCT FROM q.segment
          AND o."at" >= q."at" - INTERVAL 1 HOUR AND o."at" <= q."at"
          AND NOT EXISTS (SELECT 1 FROM prices c WHERE c.merchant = q.merchant AND c.sku = q.sku AND c.seq > o.seq AND c.seq < q.seq)))
UNION
-- BN-03: a pay-later order without a second confirmation.
SELECT DISTINCT 'BN-03', 'order:' || "order" FROM ev
WHERE type = 'order.placed' AND payment = 'bnpl' AND confirmed IS DISTINCT FROM true;
