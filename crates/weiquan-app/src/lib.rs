//! weiquan's application core, shared by the command line and the server:
//! the audit pipeline (frame → parse → dedupe → engine) and what becomes of
//! an event or a finding in the ledger, and what a ledger's leaves record
//! when it is read back. The binary and `weiquan-server` both
//! depend on it; it depends on neither.

mod audit;
mod batches;
mod leaf_index;
mod record;
mod replay;

pub use audit::{Auditor, Counts, Sink};
pub use batches::{Handed, HandedLine, Messages, Outcome, ParsedInputs, ReadError, Waited};
pub use leaf_index::{finding_leaf_with, LeafIndex};
pub use record::{consumer_named, rulebook_record, LedgerWriter, ParsedEvent, RecordError, Salting, CONSUMER_SUBJECT};
pub use replay::{leaf_event_id, recorded, walk_recorded, Recorded};
