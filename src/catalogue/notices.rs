//! What a seller should be told about their imported catalogue. Part B of issue 15 (seller
//! notifications) owns the delivery: until it is merged these are logged, and the lead wires
//! each one to the notification outbox there. The call sites are the workers', after the
//! durable state they describe is committed.

use sqlx::MySqlPool;

/// Something a seller should hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// An import finished (its counts are in `store::imports::progress`).
    ImportFinished { import_id: u64 },
    /// A product was taken down because its page answered 404/410 ("source gone") or could
    /// not be reached for too many rounds.
    TakenDown { product_id: u64, reason: String },
    /// A product taken down came back with its page.
    Restored { product_id: u64 },
}

/// Tell a seller. Never fails the work that caused it.
pub async fn seller_notice(_db: &MySqlPool, seller_id: u64, notice: Notice) {
    // Wired at merge to part B's seller notifications (an outbox row in MySQL).
    tracing::info!(seller_id, ?notice, "catalogue: seller notice");
}
