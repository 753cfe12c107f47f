//! What a seller should be told about their imported catalogue, as a row of their notifications
//! (`store::notifications`, shown on the dashboard in their language). The call sites are the
//! workers', after the durable state they describe is committed.

use sqlx::MySqlPool;

use crate::store::{self, imports, notifications, notifications::Kind};

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

/// Tell a seller. Never fails the work that caused it (a failure is logged).
pub async fn seller_notice(db: &MySqlPool, seller_id: u64, notice: Notice) {
    if let Err(e) = deliver(db, seller_id, &notice).await {
        tracing::warn!(
            seller_id,
            ?notice,
            "catalogue: the seller could not be told: {e}"
        );
    }
}

async fn deliver(db: &MySqlPool, seller_id: u64, notice: &Notice) -> Result<(), store::Error> {
    match notice {
        Notice::ImportFinished { import_id } => {
            let Some(p) = imports::progress(db, seller_id, *import_id).await? else {
                return Ok(());
            };
            let source = imports::first_url(db, *import_id)
                .await?
                .unwrap_or_else(|| format!("#{import_id}"));
            let kind = if p.created + p.updated + p.unchanged == 0 && p.failed + p.refused > 0 {
                Kind::SyncFailed {
                    source: &source,
                    error: "no product page could be read",
                }
            } else {
                Kind::SyncComplete {
                    source: &source,
                    added: p.created.max(0) as u64,
                    updated: p.updated.max(0) as u64,
                    removed: p.gone.max(0) as u64,
                }
            };
            notifications::push(db, seller_id, &kind).await?;
        }
        Notice::TakenDown { product_id, reason } => {
            let (_, source) = imports::notice_facts(db, *product_id)
                .await?
                .unwrap_or_default();
            tracing::info!(seller_id, product_id, %reason, "catalogue: product taken down");
            notifications::push(db, seller_id, &Kind::SourceGone { source: &source }).await?;
        }
        Notice::Restored { product_id } => {
            let (name, _) = imports::notice_facts(db, *product_id)
                .await?
                .unwrap_or_default();
            notifications::push(
                db,
                seller_id,
                &Kind::ProductApproved {
                    product_id: *product_id,
                    name: &name,
                },
            )
            .await?;
        }
    }
    Ok(())
}
