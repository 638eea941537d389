-- Eight weiquan rules as DuckDB SQL, written the way a DuckDB user who knows
-- the engine would: only the needed columns, declared with their types; the
-- file loaded once into a table whose row order is the processing order
-- (`rowid`, no `row_number() OVER ()`); hash joins, window functions and
-- ASOF joins instead of correlated subqueries. Same findings as weiquan's.
SET TimeZone = 'UTC';

CREATE OR REPLACE TABLE raw AS
SELECT * FROM read_json(getvariable('events'), format = 'newline_delimited', columns = {
    id: 'VARCHAR', type: 'VARCHAR', "at": 'TIMESTAMPTZ', "order": 'VARCHAR', campaign: 'VARCHAR',
    merchant: 'VARCHAR', sku: 'VARCHAR', consumer: 'VARCHAR', segment: 'VARCHAR', payment: 'VARCHAR',
    confirmed: 'BOOLEAN', price_fen: 'BIGINT', reference_price_fen: 'BIGINT', deposit_fen: 'BIGINT',
    final_fen: 'BIGINT', ship_within_days: 'INTEGER', lottery: 'VARCHAR', participant: 'VARCHAR',
    winners: 'STRUCT(participant VARCHAR, prize VARCHAR)[]',
    prizes: 'STRUCT(name VARCHAR, value_fen BIGINT, count BIGINT)[]'});
-- The load is timed apart from the rules (the runner marks it).
-- @@rules

-- A repeated id keeps its first line (the row order is the processing
-- order): the later lines of repeated ids are few, so they are found with one
-- aggregate and left out by a view rather than copying the table.
CREATE OR REPLACE TEMP TABLE repeats AS
SELECT r.rowid AS seq FROM raw r
JOIN (SELECT id, min(rowid) AS first FROM raw GROUP BY id HAVING count(*) > 1) d ON d.id = r.id AND r.rowid > d.first;
CREATE OR REPLACE TEMP VIEW ev AS
SELECT r.rowid AS seq, r.* FROM raw r ANTI JOIN repeats d ON d.seq = r.rowid;

-- The business clock (the largest `at`), a constant for the rules below.
SET VARIABLE now = (SELECT max("at") FROM raw);

-- What each consumer was promised when paying the deposit: the last terms
-- before it that set a price (and, apart, a shipping time).
CREATE OR REPLACE TEMP TABLE deposits AS
WITH d AS (
    SELECT "order", campaign, deposit_fen, seq FROM ev WHERE type = 'presale.deposit_paid'
    QUALIFY row_number() OVER (PARTITION BY "order" ORDER BY seq) = 1),
price_terms AS (SELECT campaign, seq, price_fen FROM ev
    WHERE type IN ('presale.published', 'presale.changed') AND price_fen IS NOT NULL),
ship_terms AS (SELECT campaign, seq, ship_within_days FROM ev
    WHERE type IN ('presale.published', 'presale.changed') AND ship_within_days IS NOT NULL)
SELECT d.*, p.price_fen AS promised, s.ship_within_days AS ship_days
FROM d
ASOF LEFT JOIN price_terms p ON p.campaign = d.campaign AND d.seq > p.seq
ASOF LEFT JOIN ship_terms s ON s.campaign = d.campaign AND d.seq > s.seq;

CREATE OR REPLACE TEMP TABLE prices AS
SELECT merchant, sku, seq, "at", price_fen FROM ev
WHERE type IN ('listing.published', 'listing.updated', 'price.changed') AND price_fen IS NOT NULL;

-- Per order, the first time it was shipped, cancelled or refunded (and for a
-- pre-sale, its deposit refunded).
CREATE OR REPLACE TEMP TABLE settled AS
SELECT "order",
       min("at") FILTER (WHERE type IN ('order.shipped', 'order.cancelled', 'refund.completed')) AS ordinary,
       min("at") AS presale
FROM ev WHERE type IN ('order.shipped', 'order.cancelled', 'refund.completed', 'presale.deposit_refunded')
GROUP BY "order";

CREATE OR REPLACE TABLE peer_findings AS
-- PS-01: deposit + final payment above the price promised at deposit time.
SELECT DISTINCT 'PS-01' AS rule, 'campaign:' || f.campaign AS subject
FROM ev f JOIN deposits d ON d."order" = f."order"
WHERE f.type = 'presale.final_paid' AND d.deposit_fen + f.final_fen > d.promised
UNION
-- PS-04: not shipped within the promised days of the final payment.
SELECT DISTINCT 'PS-04', 'order:' || f."order"
FROM ev f JOIN deposits d ON d."order" = f."order" LEFT JOIN settled s ON s."order" = f."order"
WHERE f.type = 'presale.final_paid'
  AND f."at" + to_days(d.ship_days) < getvariable('now')
  AND (s.presale IS NULL OR s.presale > f."at" + to_days(d.ship_days))
UNION
-- LT-04: a winner who never entered before the close (or the draw), or won a prize never announced before it.
SELECT DISTINCT 'LT-04', 'lottery:' || w.lottery
FROM (SELECT lottery, seq, unnest(winners, recursive := true) FROM ev WHERE type = 'lottery.drawn') w
LEFT JOIN (SELECT lottery, participant, min(seq) AS first FROM ev WHERE type = 'lottery.entered' GROUP BY ALL) e
       ON e.lottery = w.lottery AND e.participant = w.participant
LEFT JOIN (SELECT lottery, min(seq) AS closed FROM ev WHERE type = 'lottery.closed' GROUP BY ALL) c
       ON c.lottery = w.lottery
LEFT JOIN (SELECT lottery, p.name AS prize, min(seq) AS first
           FROM (SELECT lottery, seq, unnest(prizes) AS p FROM ev
                 WHERE type IN ('lottery.announced', 'lottery.changed') AND prizes IS NOT NULL)
           GROUP BY ALL) n
       ON n.lottery = w.lottery AND n.prize = w.prize
WHERE e.first IS NULL OR e.first >= least(w.seq, coalesce(c.closed, w.seq))
   OR n.first IS NULL OR n.first >= w.seq
UNION
-- MC-06: an ordinary order not shipped, cancelled or refunded within 2 days.
SELECT DISTINCT 'MC-06', 'order:' || p."order"
FROM ev p LEFT JOIN settled s ON s."order" = p."order"
WHERE p.type = 'order.placed' AND p.campaign IS NULL
  AND p."at" + INTERVAL 2 DAY < getvariable('now')
  AND (s.ordinary IS NULL OR s.ordinary > p."at" + INTERVAL 2 DAY)
UNION
-- MC-08: a refund request neither completed nor rejected (nor asked again) within 7 days.
SELECT DISTINCT 'MC-08', 'order:' || r."order"
FROM (SELECT "order", type, "at",
             min("at") OVER (PARTITION BY "order" ORDER BY seq ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING) AS next_at
      FROM ev WHERE type IN ('refund.requested', 'refund.completed', 'refund.rejected')) r
WHERE r.type = 'refund.requested'
  AND r."at" + INTERVAL 7 DAY < getvariable('now')
  AND (r.next_at IS NULL OR r.next_at > r."at" + INTERVAL 7 DAY)
UNION
-- PR-01: a reference price above the lowest price of the 7 days before (counting the one in effect when they began).
(WITH r AS (
    SELECT merchant, sku, seq, "at", reference_price_fen FROM ev
    WHERE type IN ('listing.published', 'listing.updated') AND reference_price_fen IS NOT NULL),
w AS (
    SELECT r.seq, coalesce(max(p."at") FILTER (WHERE p."at" <= r."at" - INTERVAL 7 DAY), any_value(r."at") - INTERVAL 7 DAY) AS since
    FROM r LEFT JOIN prices p ON p.merchant = r.merchant AND p.sku = r.sku AND p.seq < r.seq AND p."at" <= r."at"
    GROUP BY r.seq)
SELECT DISTINCT 'PR-01', 'sku:' || any_value(r.merchant) || '/' || any_value(r.sku)
FROM r JOIN w ON w.seq = r.seq
LEFT JOIN prices p ON p.merchant = r.merchant AND p.sku = r.sku AND p.seq < r.seq AND p."at" <= r."at" AND p."at" >= w.since
GROUP BY r.seq
HAVING any_value(r.reference_price_fen) > coalesce(min(p.price_fen), -1))
UNION
-- PR-02: a quote more than 1% above the listed price, or above another
-- consumer's same-segment quote within the hour with no price change between.
(WITH q AS (
    SELECT q.seq, q.merchant, q.sku, q.consumer, q.segment, q."at", q.price_fen,
           -- the latest price change before the quote (by processing order) ...
           c.seq AS change_seq
    FROM (SELECT * FROM ev WHERE type = 'price.quoted') q
    ASOF LEFT JOIN prices c ON c.merchant = q.merchant AND c.sku = q.sku AND q.seq > c.seq),
listed AS (
    -- ... and the price in effect: the latest by business time, then order, before it.
    SELECT q.seq, arg_max(p.price_fen, (p."at", p.seq)) AS listed
    FROM q JOIN prices p ON p.merchant = q.merchant AND p.sku = q.sku AND p.seq < q.seq AND p."at" <= q."at"
    GROUP BY q.seq)
SELECT DISTINCT 'PR-02', 'sku:' || q.merchant || '/' || q.sku
FROM q JOIN listed l ON l.seq = q.seq
WHERE q.price_fen * 10000 > 10100 * l.listed
UNION
SELECT DISTINCT 'PR-02', 'sku:' || q.merchant || '/' || q.sku
FROM q JOIN q o ON o.merchant = q.merchant AND o.sku = q.sku AND o.segment IS NOT DISTINCT FROM q.segment
    AND o.change_seq IS NOT DISTINCT FROM q.change_seq
    AND o.seq < q.seq AND o.consumer <> q.consumer
    AND o."at" >= q."at" - INTERVAL 1 HOUR AND o."at" <= q."at"
WHERE q.price_fen * 10000 > 10100 * o.price_fen)
UNION
-- BN-03: a pay-later order without a second confirmation.
SELECT DISTINCT 'BN-03', 'order:' || "order" FROM ev
WHERE type = 'order.placed' AND payment = 'bnpl' AND confirmed IS DISTINCT FROM true;
