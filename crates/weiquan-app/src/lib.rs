//! weiquan's application core, shared by the command line and the server:
//! the audit pipeline (frame → parse → dedupe → engine) and what becomes of
//! an event or a finding in the ledger. The binary and `weiquan-server` both
//! depend on it; it depends on neither.

mod audit;
mod leaf_index;
mod record;

pub use audit::{Auditor, Counts, Sink};
pub use leaf_index::LeafIndex;
pub use record::{finding_leaf_of, LedgerWriter, RecordError};
