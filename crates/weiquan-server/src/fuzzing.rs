//! The ingest path without a socket, for the fuzz targets (`fuzz/`) and the
//! test that replays their corpora: a body is framed as `POST /v1/events`
//! frames it and ingested by a platform into a ledger in memory, through the
//! same checks, salting, engine and append as a request.

use crate::acts::{Party, Submitter};
use crate::auth::Role;
use crate::core::{Batch, Core};
use std::cell::RefCell;
use std::sync::Arc;

/// Inputs one in-memory ledger takes before a fresh one replaces it (its
/// memory grows with every accepted event).
const INPUTS_PER_LEDGER: u32 = 2_000;

thread_local! {
    static CORE: RefCell<Option<(Core, u32)>> = const { RefCell::new(None) };
}

fn fresh_core() -> Core {
    let (secret, _) = match weiquan_ledger::generate_key("weiquan.fuzz/ingest") {
        Ok(pair) => pair,
        Err(e) => panic!("a key for the fuzz ledger: {e}"),
    };
    let signer = weiquan_ledger::load_signer(&secret).unwrap_or_else(|e| panic!("the fuzz key loads: {e}"));
    let store = weiquan_store::SqliteStore::in_memory().unwrap_or_else(|e| panic!("an in-memory store: {e}"));
    let rules = Arc::new(weiquan_engine::Rulebook::builtin());
    Core::open(Box::new(store), signer, "weiquan.fuzz/ingest", rules, None)
        .unwrap_or_else(|e| panic!("the fuzz core: {e}"))
}

/// Frames `body` like `POST /v1/events` and ingests its items as the
/// platform; every item must come back accepted, duplicate or rejected, and
/// nothing may panic. Panics (for the fuzzer to catch) if the ledger append fails.
pub fn ingest(body: &[u8]) {
    let Ok(items) = crate::api::split_items(body) else {
        return;
    };
    if items.len() > crate::MAX_BATCH_ITEMS {
        return;
    }
    // A line the route rejects itself (not UTF-8, too long) never reaches the core.
    let items: Vec<String> = items.into_iter().filter_map(Result::ok).collect();
    let n = items.len();
    CORE.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(_, used)| *used >= INPUTS_PER_LEDGER) {
            *slot = Some((fresh_core(), 0));
        }
        let Some((core, used)) = slot.as_mut() else { return };
        *used += 1;
        let party = Submitter::Party(Party {
            role: Role::Platform,
            key: Some("00112233aabbccdd".into()),
        });
        let batch = Batch::prepared(party, items);
        let now = weiquan_events::Time::from_unix_ms(1_798_761_600_000, 8 * 3600);
        match core.ingest(vec![batch], now) {
            Ok(results) => assert_eq!(results.first().map(Vec::len), Some(n), "one result per item"),
            Err(e) => panic!("the in-memory ledger refused an append: {e}"),
        }
    });
}
