//! The ledger in PostgreSQL. Batches go in with binary `COPY`, in one
//! transaction that takes an exclusive lock on the leaf table, so that two
//! writers can never interleave.

use crate::{expect_rows, StoredKey};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;
use postgres::{Client, NoTls};
use weiquan_ledger::{FindingRow, LogStore, Private, PrivateRow, Row, StoreError, StoreErrorKind};

/// A ledger kept in a PostgreSQL schema.
pub struct PgStore {
    client: Client,
}

fn err(context: &str) -> impl FnOnce(postgres::Error) -> StoreError + '_ {
    move |e| StoreError::of_kind(kind_of(&e), context, e)
}

/// What kind of failure a PostgreSQL error is (by SQLSTATE class).
fn kind_of(e: &postgres::Error) -> StoreErrorKind {
    let Some(code) = e.code() else {
        // No SQLSTATE: the connection failed or closed (unavailable), or the
        // client could not read what came back (damage or a bug).
        let io = std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>());
        return if e.is_closed() || io || e.to_string().contains("connect") {
            StoreErrorKind::Unavailable
        } else {
            StoreErrorKind::Other
        };
    };
    let code = code.code();
    match &code[..2] {
        // Only a unique key taken is "already there"; other constraints failing are bugs.
        "23" if code == "23505" => StoreErrorKind::Conflict,
        // Connection, resources, operator intervention, serialization and deadlock.
        "08" | "53" | "57" | "40" => StoreErrorKind::Unavailable,
        // Data corrupted, index corrupted.
        "XX" if code != "XX000" => StoreErrorKind::Corrupt,
        _ => StoreErrorKind::Other,
    }
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

impl PgStore {
    /// Whether `schema` exists at `url` (without creating anything, unlike
    /// [`PgStore::connect`]): for readers that must not make an empty log.
    pub fn schema_exists(url: &str, schema: &str) -> Result<bool, StoreError> {
        let mut client = Client::connect(url, NoTls)
            .map_err(|e| StoreError::of_kind(kind_of(&e), format!("connecting to {}", crate::redacted(url)), e))?;
        client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM information_schema.schemata WHERE schema_name = $1)",
                &[&schema],
            )
            .map(|row| row.get(0))
            .map_err(err("looking for the schema"))
    }

    /// Connects to `url` and uses (creating if needed) the ledger tables in `schema`.
    pub fn connect(url: &str, schema: &str) -> Result<Self, StoreError> {
        let mut client = Client::connect(url, NoTls)
            .map_err(|e| StoreError::of_kind(kind_of(&e), format!("connecting to {}", crate::redacted(url)), e))?;
        let s = quote_ident(schema);
        // Concurrent CREATE … IF NOT EXISTS can still collide in PostgreSQL's
        // catalogs, so processes creating or upgrading the same schema take turns.
        let mut tx = client.transaction().map_err(err("starting the schema upgrade"))?;
        tx.batch_execute(&format!(
            "SELECT pg_advisory_xact_lock(776569717561);
             CREATE SCHEMA IF NOT EXISTS {s};
             SET LOCAL search_path TO {s};
             CREATE TABLE IF NOT EXISTS weiquan_schema (version INTEGER NOT NULL);"
        ))
        .map_err(err("creating the ledger schema"))?;
        let at: Option<i32> = tx
            .query_opt("SELECT version FROM weiquan_schema", &[])
            .map_err(err("reading the schema version"))?
            .map(|r| r.get(0));
        let at = u32::try_from(at.unwrap_or(0)).unwrap_or(0);
        crate::check_schema_version(at)?;
        let dialect = crate::Dialect {
            int: "BIGINT",
            blob: "BYTEA",
            if_not_exists: "IF NOT EXISTS ",
            without_rowid: "",
        };
        for (step, sql) in crate::migrations_after(at, &dialect) {
            tx.batch_execute(&sql)
                .map_err(|e| StoreError::of_kind(kind_of(&e), format!("upgrading the schema to version {step}"), e))?;
        }
        tx.batch_execute(&format!(
            "DELETE FROM weiquan_schema; INSERT INTO weiquan_schema (version) VALUES ({});",
            crate::SCHEMA_VERSION
        ))
        .map_err(err("recording the schema version"))?;
        tx.commit().map_err(err("committing the schema upgrade"))?;
        client
            .batch_execute(&format!("SET search_path TO {s};"))
            .map_err(err("using the ledger schema"))?;
        Ok(PgStore { client })
    }
}

fn count(client: &mut impl postgres::GenericClient) -> Result<u64, StoreError> {
    client
        .query_one("SELECT COALESCE(MAX(idx) + 1, 0) FROM ledger_leaves", &[])
        .map(|r| r.get::<_, i64>(0) as u64)
        .map_err(err("counting leaves"))
}

impl LogStore for PgStore {
    fn size(&mut self) -> Result<u64, StoreError> {
        count(&mut self.client)
    }

    fn append(
        &mut self,
        first: u64,
        leaves: &[Row],
        private: Private<'_>,
        checkpoint: &[u8],
    ) -> Result<(), StoreError> {
        let mut tx = self.client.transaction().map_err(err("starting an append"))?;
        tx.batch_execute("LOCK TABLE ledger_leaves IN EXCLUSIVE MODE")
            .map_err(err("locking the log"))?;
        let size = count(&mut tx)?;
        crate::expect_size(size, first)?;
        // Checked before the copy starts: a refusal then costs nothing to undo.
        let rows = crate::with_private(first, leaves, private.rows)?;
        let sink = tx
            .copy_in("COPY ledger_leaves (idx, data, hashes, consumer, salt, leaf_values) FROM STDIN (FORMAT binary)")
            .map_err(err("starting the copy"))?;
        let mut w = BinaryCopyInWriter::new(
            sink,
            &[
                Type::INT8,
                Type::BYTEA,
                Type::BYTEA,
                Type::TEXT,
                Type::BYTEA,
                Type::BYTEA,
            ],
        );
        for (idx, (data, hashes), (consumer, salt, values)) in rows {
            w.write(&[&(idx as i64), data, hashes, &consumer, &salt, &values])
                .map_err(err("appending a leaf"))?;
        }
        w.finish().map_err(err("finishing the copy"))?;
        if !private.consumers.is_empty() {
            let (pseudonyms, ids): (Vec<&str>, Vec<&str>) =
                private.consumers.iter().map(|(p, c)| (p.as_str(), c.as_str())).unzip();
            tx.execute(
                "INSERT INTO consumers (pseudonym, consumer) SELECT * FROM UNNEST($1::text[], $2::text[]) ON CONFLICT (pseudonym) DO NOTHING",
                &[&pseudonyms, &ids],
            )
            .map_err(err("keeping consumers' ids"))?;
        }
        crate::findings_in_append(first, leaves.len(), private.findings)?;
        insert_findings(&mut tx, "", private.findings)?;
        let new_size = (first + leaves.len() as u64) as i64;
        tx.execute(
            "INSERT INTO ledger_checkpoints (size, note) VALUES ($1, $2) ON CONFLICT (size) DO UPDATE SET note = EXCLUDED.note",
            &[&new_size, &checkpoint],
        )
        .map_err(err("storing the checkpoint"))?;
        tx.commit().map_err(err("committing the append"))
    }

    fn hashes_of(&mut self, leaves: &[u64]) -> Result<Vec<Vec<u8>>, StoreError> {
        let ids: Vec<i64> = leaves.iter().map(|&l| l as i64).collect();
        let rows = self
            .client
            .query("SELECT idx, hashes FROM ledger_leaves WHERE idx = ANY($1)", &[&ids])
            .map_err(err("reading hashes"))?;
        let found: std::collections::HashMap<i64, Vec<u8>> = rows.into_iter().map(|r| (r.get(0), r.get(1))).collect();
        ids.iter()
            .map(|i| {
                found
                    .get(i)
                    .cloned()
                    .ok_or_else(|| crate::missing_leaf("reading hashes", i))
            })
            .collect()
    }

    fn leaves(&mut self, from: u64, to: u64) -> Result<Vec<Row>, StoreError> {
        let rows = self
            .client
            .query(
                "SELECT idx, data, hashes FROM ledger_leaves WHERE idx >= $1 AND idx < $2 ORDER BY idx",
                &[&(from as i64), &(to as i64)],
            )
            .map_err(err("reading leaves"))?;
        let rows = rows
            .into_iter()
            .map(|r| (r.get::<_, i64>(0) as u64, (r.get(1), r.get(2))))
            .collect();
        expect_rows(rows, from, to)
    }

    fn checkpoints(&mut self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let rows = self
            .client
            .query("SELECT size, note FROM ledger_checkpoints ORDER BY size", &[])
            .map_err(err("reading checkpoints"))?;
        Ok(rows
            .into_iter()
            .map(|r| (r.get::<_, i64>(0) as u64, r.get(1)))
            .collect())
    }

    fn latest_checkpoint(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        let row = self
            .client
            .query_opt("SELECT note FROM ledger_checkpoints ORDER BY size DESC LIMIT 1", &[])
            .map_err(err("reading the latest checkpoint"))?;
        Ok(row.map(|r| r.get(0)))
    }
}

impl crate::ApiKeys for PgStore {
    fn add_key(&mut self, digest: &[u8; 32], role: &str, expires_at_ms: Option<i64>) -> Result<(), StoreError> {
        self.client
            .execute(
                "INSERT INTO api_keys (digest, role, expires_at) VALUES ($1, $2, $3)",
                &[&&digest[..], &role, &expires_at_ms],
            )
            .map(|_| ())
            .map_err(err("storing an API key"))
    }

    fn key_of(&mut self, digest: &[u8; 32]) -> Result<Option<StoredKey>, StoreError> {
        let row = self
            .client
            .query_opt(
                "SELECT role, expires_at FROM api_keys WHERE digest = $1",
                &[&&digest[..]],
            )
            .map_err(err("looking up an API key"))?;
        Ok(row.map(|r| StoredKey {
            digest: *digest,
            role: r.get(0),
            expires_at_ms: r.get(1),
        }))
    }

    fn keys(&mut self) -> Result<Vec<StoredKey>, StoreError> {
        let rows = self
            .client
            .query("SELECT digest, role, expires_at FROM api_keys ORDER BY digest", &[])
            .map_err(err("listing API keys"))?;
        Ok(rows
            .iter()
            .map(|r| StoredKey {
                digest: crate::digest_of(r.get::<_, &[u8]>(0)),
                role: r.get(1),
                expires_at_ms: r.get(2),
            })
            .collect())
    }

    fn remove_key(&mut self, digest: &[u8; 32]) -> Result<bool, StoreError> {
        self.client
            .execute("DELETE FROM api_keys WHERE digest = $1", &[&&digest[..]])
            .map(|n| n > 0)
            .map_err(err("revoking an API key"))
    }

    fn end_session(&mut self, sid: &str, expires_at_ms: i64, now_ms: i64) -> Result<(), StoreError> {
        self.client
            .execute("DELETE FROM console_signouts WHERE expires_at <= $1", &[&now_ms])
            .map_err(err("forgetting expired sign-outs"))?;
        self.client
            .execute(
                "INSERT INTO console_signouts (sid, expires_at) VALUES ($1, $2) ON CONFLICT (sid) DO NOTHING",
                &[&sid, &expires_at_ms],
            )
            .map(|_| ())
            .map_err(err("recording a sign-out"))
    }

    fn session_ended(&mut self, sid: &str) -> Result<bool, StoreError> {
        self.client
            .query_opt("SELECT 1 FROM console_signouts WHERE sid = $1", &[&sid])
            .map(|r| r.is_some())
            .map_err(err("looking up a sign-out"))
    }
}

impl crate::LotterySeeds for PgStore {
    fn put_seed(&mut self, lottery: &str, seed: &str) -> Result<(), StoreError> {
        self.client
            .execute(
                "INSERT INTO lottery_seeds (lottery, seed) VALUES ($1, $2)",
                &[&lottery, &seed],
            )
            .map(|_| ())
            .map_err(err("keeping a draw seed"))
    }

    fn seed_of(&mut self, lottery: &str) -> Result<Option<String>, StoreError> {
        let row = self
            .client
            .query_opt("SELECT seed FROM lottery_seeds WHERE lottery = $1", &[&lottery])
            .map_err(err("reading a draw seed"))?;
        Ok(row.map(|r| r.get(0)))
    }
}

/// Inserts finding rows in one statement (`tail`: what follows it, as
/// `ON CONFLICT DO NOTHING` to keep the rows stored already).
fn insert_findings(tx: &mut impl postgres::GenericClient, tail: &str, rows: &[FindingRow]) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let leaf: Vec<i64> = rows.iter().map(|f| f.leaf as i64).collect();
    let rule: Vec<&str> = rows.iter().map(|f| f.rule.as_str()).collect();
    let subject: Vec<&str> = rows.iter().map(|f| f.subject.as_str()).collect();
    let merchant: Vec<Option<&str>> = rows.iter().map(|f| f.merchant.as_deref()).collect();
    let at: Vec<i64> = rows.iter().map(|f| f.at_ms).collect();
    let body: Vec<&[u8]> = rows.iter().map(|f| f.body.as_slice()).collect();
    tx.execute(
        &format!(
            "INSERT INTO findings (leaf, rule, subject, merchant, at_ms, body) \
             SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::bytea[]){tail}"
        ),
        &[&leaf, &rule, &subject, &merchant, &at, &body],
    )
    .map_err(err("storing findings"))?;
    Ok(())
}

impl crate::Findings for PgStore {
    fn put_findings(&mut self, rows: &[FindingRow]) -> Result<(), StoreError> {
        insert_findings(&mut self.client, " ON CONFLICT (leaf) DO NOTHING", rows)
    }

    fn findings(&mut self, filter: &crate::FindingFilter) -> Result<Vec<FindingRow>, StoreError> {
        let Some((sql, params)) = crate::findings_sql(filter, |n| format!("${n}")) else {
            return Ok(Vec::new());
        };
        let params: Vec<&(dyn postgres::types::ToSql + Sync)> = (params.iter())
            .map(|p| match p {
                crate::SqlParam::Int(i) => i as &(dyn postgres::types::ToSql + Sync),
                crate::SqlParam::Text(t) => t as &(dyn postgres::types::ToSql + Sync),
            })
            .collect();
        let rows = self.client.query(&sql, &params).map_err(err("reading findings"))?;
        Ok(rows
            .iter()
            .map(|r| FindingRow {
                leaf: r.get::<_, i64>(0) as u64,
                rule: r.get(1),
                subject: r.get(2),
                merchant: r.get(3),
                at_ms: r.get(4),
                body: r.get(5),
            })
            .collect())
    }

    fn finding_counts(&mut self, since_ms: i64, offset_ms: i64) -> Result<Vec<crate::FindingCount>, StoreError> {
        let [totals, days] = crate::finding_counts_sql(|n| format!("${n}::int8"));
        // One snapshot for both statements: they see the same findings.
        let mut tx = (self.client.build_transaction())
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(err("starting to count findings"))?;
        let totals = (tx.query(totals.as_str(), &[]).map_err(err("counting findings"))?)
            .iter()
            .map(|r| (r.get(0), r.get::<_, i64>(1) as u64))
            .collect();
        let days = (tx
            .query(days.as_str(), &[&since_ms, &offset_ms])
            .map_err(err("counting findings"))?)
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get::<_, i64>(2) as u64))
        .collect();
        tx.commit().map_err(err("counting findings"))?;
        Ok(crate::counts_from(totals, days))
    }
}

impl crate::EventIds for PgStore {
    fn id_runs(&mut self) -> Result<Vec<(u64, u64)>, StoreError> {
        let rows = self
            .client
            .query("SELECT run, end_leaf FROM event_id_run_ends ORDER BY run", &[])
            .map_err(err("listing id runs"))?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<_, i64>(0) as u64, r.get::<_, i64>(1) as u64))
            .collect())
    }

    fn put_id_run(&mut self, run: u64, end_leaf: u64, buckets: &[(u32, Vec<u8>)]) -> Result<(), StoreError> {
        let (numbers, contents): (Vec<i64>, Vec<&[u8]>) = buckets.iter().map(|(b, p)| (*b as i64, &p[..])).unzip();
        let mut tx = self.client.transaction().map_err(err("starting to store an id run"))?;
        tx.execute(
            "INSERT INTO event_id_run_ends (run, end_leaf) VALUES ($1, $2)",
            &[&(run as i64), &(end_leaf as i64)],
        )
        .map_err(err("storing an id run"))?;
        tx.execute(
            "INSERT INTO event_id_runs (run, bucket, pairs) SELECT $1, * FROM UNNEST($2::int8[], $3::bytea[])",
            &[&(run as i64), &numbers, &contents],
        )
        .map_err(err("storing an id run"))?;
        tx.commit().map_err(err("committing an id run"))
    }

    fn id_run_buckets(&mut self, buckets: &[u32]) -> Result<Vec<(u32, Vec<u8>)>, StoreError> {
        let buckets: Vec<i64> = buckets.iter().map(|&b| b as i64).collect();
        let rows = self
            .client
            .query(
                "SELECT bucket, pairs FROM event_id_runs WHERE bucket = ANY($1)",
                &[&buckets],
            )
            .map_err(err("looking up event ids"))?;
        Ok(rows.iter().map(|r| (r.get::<_, i64>(0) as u32, r.get(1))).collect())
    }
}

impl crate::PrivateData for PgStore {
    fn private_rows(&mut self, from: u64, to: u64) -> Result<Vec<PrivateRow>, StoreError> {
        let rows = self
            .client
            .query(
                "SELECT idx, consumer, salt, leaf_values FROM ledger_leaves \
                 WHERE idx >= $1 AND idx < $2 AND (consumer IS NOT NULL OR salt IS NOT NULL) ORDER BY idx",
                &[&(from as i64), &(to as i64)],
            )
            .map_err(err("reading private parts"))?;
        Ok(rows
            .iter()
            .map(|r| PrivateRow {
                leaf: r.get::<_, i64>(0) as u64,
                consumer: r.get(1),
                salt: crate::bytes32(r.get(2)),
                values: r.get(3),
            })
            .collect())
    }

    fn erase_consumer(&mut self, pseudonym: &str) -> Result<u64, StoreError> {
        let mut tx = self.client.transaction().map_err(err("erasing a consumer's data"))?;
        tx.execute(
            "INSERT INTO consumers (pseudonym, consumer) VALUES ($1, NULL)
             ON CONFLICT (pseudonym) DO UPDATE SET consumer = NULL",
            &[&pseudonym],
        )
        .map_err(err("erasing a consumer's id"))?;
        // Undelivered switch-offs stay: the consumer's request is still carried out.
        tx.execute(
            "DELETE FROM outbox WHERE pseudonym = $1 AND delivered_ms IS NOT NULL",
            &[&pseudonym],
        )
        .map_err(err("erasing a consumer's instructions"))?;
        tx.execute("DELETE FROM evidence WHERE pseudonym = $1", &[&pseudonym])
            .map_err(err("erasing a consumer's evidence"))?;
        let n = tx
            .execute(
                "UPDATE ledger_leaves SET salt = NULL, leaf_values = NULL WHERE consumer = $1 AND salt IS NOT NULL",
                &[&pseudonym],
            )
            .map_err(err("erasing a consumer's data"))?;
        tx.execute("DELETE FROM secrets WHERE name = $1", &[&crate::ERASURE_MARK])
            .map_err(err("marking the erasure"))?;
        tx.commit().map_err(err("committing the erasure"))?;
        Ok(n)
    }

    fn consumer_id(&mut self, pseudonym: &str) -> Result<Option<Option<String>>, StoreError> {
        let row = self
            .client
            .query_opt("SELECT consumer FROM consumers WHERE pseudonym = $1", &[&pseudonym])
            .map_err(err("reading a consumer's id"))?;
        Ok(row.map(|r| r.get(0)))
    }

    fn secret(&mut self, name: &str) -> Result<[u8; 32], StoreError> {
        // ON CONFLICT DO NOTHING then read: two servers opening one new schema agree on one key.
        self.client
            .execute(
                "INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                &[&name, &&crate::new_secret()[..]],
            )
            .map_err(err("making a secret"))?;
        let row = self
            .client
            .query_one("SELECT value FROM secrets WHERE name = $1", &[&name])
            .map_err(err("reading a secret"))?;
        crate::bytes32(Some(row.get(0))).ok_or_else(|| {
            StoreError::of_kind(
                StoreErrorKind::Corrupt,
                "reading a secret",
                format!("`{name}` is not 32 bytes"),
            )
        })
    }
}

fn instruction_of(r: &postgres::Row) -> crate::Instruction {
    crate::Instruction {
        id: r.get(0),
        pseudonym: r.get(1),
        actor_key: r.get(2),
        body: r.get(3),
        created_ms: r.get(4),
        recorded: r.get::<_, i64>(5) != 0,
        attempts: u32::try_from(r.get::<_, i64>(6)).unwrap_or(u32::MAX),
        next_ms: r.get(7),
        first_attempt_ms: r.get(8),
        delivered_ms: r.get(9),
        status: r.get::<_, Option<i64>>(10).and_then(|s| u16::try_from(s).ok()),
        last_error: r.get(11),
        overdue: r.get::<_, i64>(12) != 0,
    }
}

impl crate::Outbox for PgStore {
    fn outbox_put(&mut self, i: &crate::Instruction) -> Result<(), StoreError> {
        self.client
            .execute(
                &format!(
                    "INSERT INTO outbox ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                    crate::OUTBOX_COLUMNS
                ),
                &[
                    &i.id,
                    &i.pseudonym,
                    &i.actor_key,
                    &i.body,
                    &i.created_ms,
                    &i64::from(i.recorded),
                    &i64::from(i.attempts),
                    &i.next_ms,
                    &i.first_attempt_ms,
                    &i.delivered_ms,
                    &i.status.map(i64::from),
                    &i.last_error,
                    &i64::from(i.overdue),
                ],
            )
            .map(|_| ())
            .map_err(err("keeping an instruction for the platform"))
    }

    fn outbox_update(&mut self, i: &crate::Instruction) -> Result<(), StoreError> {
        self.client
            .execute(
                &crate::outbox_update_sql('$'),
                &[
                    &i.id,
                    &i64::from(i.recorded),
                    &i64::from(i.attempts),
                    &i.next_ms,
                    &i.first_attempt_ms,
                    &i.delivered_ms,
                    &i.status.map(i64::from),
                    &i.last_error,
                    &i64::from(i.overdue),
                ],
            )
            .map(|_| ())
            .map_err(err("updating an instruction for the platform"))
    }

    fn outbox_remove(&mut self, id: &str) -> Result<(), StoreError> {
        self.client
            .execute("DELETE FROM outbox WHERE id = $1", &[&id])
            .map(|_| ())
            .map_err(err("removing an instruction for the platform"))
    }

    fn outbox_due(&mut self, now_ms: i64, limit: u32) -> Result<Vec<crate::Instruction>, StoreError> {
        let sql = format!(
            "SELECT {} FROM outbox WHERE delivered_ms IS NULL AND next_ms <= $1 ORDER BY next_ms, id LIMIT $2",
            crate::OUTBOX_COLUMNS
        );
        let rows = (self.client)
            .query(&sql, &[&now_ms, &i64::from(limit)])
            .map_err(err("reading the outbox"))?;
        Ok(rows.iter().map(instruction_of).collect())
    }

    fn outbox_of(&mut self, pseudonym: &str) -> Result<Vec<crate::Instruction>, StoreError> {
        let sql = format!(
            "SELECT {} FROM outbox WHERE pseudonym = $1 ORDER BY created_ms, id",
            crate::OUTBOX_COLUMNS
        );
        let rows = self
            .client
            .query(&sql, &[&pseudonym])
            .map_err(err("reading the outbox"))?;
        Ok(rows.iter().map(instruction_of).collect())
    }
}

impl crate::EvidenceFiles for PgStore {
    fn evidence_put(&mut self, f: &crate::EvidenceFile) -> Result<bool, StoreError> {
        let size = i64::try_from(f.size).unwrap_or(i64::MAX);
        self.client
            .execute(
                "INSERT INTO evidence (sha256, kind, size, pseudonym, sealed) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (pseudonym, sha256) DO NOTHING",
                &[&f.sha256, &f.kind, &size, &f.pseudonym, &f.sealed],
            )
            .map(|n| n == 1)
            .map_err(err("keeping an evidence file"))
    }

    fn evidence_get(&mut self, pseudonym: &str, sha256: &str) -> Result<Option<crate::EvidenceFile>, StoreError> {
        let row = self
            .client
            .query_opt(
                "SELECT sha256, kind, size, pseudonym, sealed FROM evidence WHERE pseudonym = $1 AND sha256 = $2",
                &[&pseudonym, &sha256],
            )
            .map_err(err("reading an evidence file"))?;
        Ok(row.map(|r| crate::EvidenceFile {
            sha256: r.get(0),
            kind: r.get(1),
            size: u64::try_from(r.get::<_, i64>(2)).unwrap_or(0),
            pseudonym: r.get(3),
            sealed: r.get(4),
        }))
    }

    fn evidence_remove(&mut self, pseudonym: &str, sha256: &str) -> Result<(), StoreError> {
        self.client
            .execute(
                "DELETE FROM evidence WHERE pseudonym = $1 AND sha256 = $2",
                &[&pseudonym, &sha256],
            )
            .map(|_| ())
            .map_err(err("removing an evidence file"))
    }
}
