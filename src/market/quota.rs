//! Per-seller quotas: how many products and how many bytes of stored photos a seller may have,
//! tight while the seller waits for approval (a fresh account costs an attacker nothing) and
//! roomy once approved. Pure: the store counts, this decides and words the refusal.

use super::states::SellerStatus;

const MB: u64 = 1024 * 1024;

/// One status's allowance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub products: u64,
    pub image_bytes: u64,
}

/// The allowances by seller status (`limits.pending_*`, `limits.approved_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    pub pending: Quota,
    pub approved: Quota,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            pending: Quota {
                products: 20,
                image_bytes: 50 * MB,
            },
            approved: Quota {
                products: 5_000,
                image_bytes: 5_120 * MB,
            },
        }
    }
}

/// What a seller is over, with the numbers, for the refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OverQuota {
    #[error(
        "this shop already has {have} products, the most a {status} seller may list \
         (quota `limits.{status}_products` = {limit}){hint}",
        status = status.as_str(),
        hint = hint(*status)
    )]
    Products {
        status: SellerStatus,
        have: u64,
        limit: u64,
    },
    #[error(
        "this photo would bring the shop's stored photos to {} MB, over the {} MB a {status} \
         seller may store (quota `limits.{status}_image_mb`; photos of deleted products count \
         while they are kept for past orders)",
        would.div_ceil(MB),
        limit / MB,
        status = status.as_str()
    )]
    ImageBytes {
        status: SellerStatus,
        would: u64,
        limit: u64,
    },
}

fn hint(status: SellerStatus) -> &'static str {
    if status == SellerStatus::Approved {
        "; delete products or photos you no longer need"
    } else {
        "; the allowance grows once an administrator approves the shop"
    }
}

impl Quotas {
    /// Approved sellers get the approved allowance; everyone else (pending, and the suspended
    /// or rejected, who may not write at all) the pending one.
    pub fn for_status(&self, status: SellerStatus) -> Quota {
        if status == SellerStatus::Approved {
            self.approved
        } else {
            self.pending
        }
    }

    /// May a seller with `have` products add one more?
    pub fn check_products(&self, status: SellerStatus, have: u64) -> Result<(), OverQuota> {
        let limit = self.for_status(status).products;
        if have >= limit {
            return Err(OverQuota::Products {
                status: quota_status(status),
                have,
                limit,
            });
        }
        Ok(())
    }

    /// May a seller storing `stored` bytes of photos add `adding` more?
    pub fn check_bytes(
        &self,
        status: SellerStatus,
        stored: u64,
        adding: u64,
    ) -> Result<(), OverQuota> {
        let limit = self.for_status(status).image_bytes;
        let would = stored.saturating_add(adding);
        if would > limit {
            return Err(OverQuota::ImageBytes {
                status: quota_status(status),
                would,
                limit,
            });
        }
        Ok(())
    }
}

/// The status whose keys apply (so the message names a key that exists).
fn quota_status(status: SellerStatus) -> SellerStatus {
    if status == SellerStatus::Approved {
        status
    } else {
        SellerStatus::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_is_tight_and_the_refusal_names_the_key() {
        let q = Quotas::default();
        assert!(q.check_products(SellerStatus::Pending, 19).is_ok());
        let e = q.check_products(SellerStatus::Pending, 20).unwrap_err();
        assert!(e.to_string().contains("limits.pending_products"), "{e}");
        assert!(q.check_products(SellerStatus::Approved, 20).is_ok());
        assert!(q.check_products(SellerStatus::Suspended, 20).is_err());
        assert!(q.check_bytes(SellerStatus::Pending, 49 * MB, MB).is_ok());
        let e = q
            .check_bytes(SellerStatus::Pending, 49 * MB, MB + 1)
            .unwrap_err();
        assert!(e.to_string().contains("limits.pending_image_mb"), "{e}");
        assert!(e.to_string().contains("51 MB"), "{e}");
        assert!(
            q.check_bytes(SellerStatus::Approved, 49 * MB, MB + 1)
                .is_ok()
        );
    }
}
