//! Reviews (one per user per product, kept in the seller's rating) and favourites.

use serde::Serialize;
use sqlx::{FromRow, MySqlPool};

use super::Timed;
use super::catalogue::Card;
use super::{Error, conflict_on};

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct Review {
    pub rating: u8,
    pub body: String,
    pub author: String,
    pub created_at: String,
}

/// Add a review and fold it into the seller's rating, in one transaction.
pub async fn add(
    db: &MySqlPool,
    product_id: u64,
    user_id: u64,
    rating: u8,
    body: &str,
) -> Result<(), Error> {
    let mut tx = db.begin().timed().await?;
    sqlx::query("INSERT INTO reviews (product_id, user_id, rating, body) VALUES (?, ?, ?, ?)")
        .bind(product_id)
        .bind(user_id)
        .bind(rating)
        .bind(body)
        .execute(&mut *tx)
        .timed()
        .await
        .map_err(|e| conflict_on(e, &[("reviews_one_per_user", "review")]))?;
    sqlx::query(
        "UPDATE sellers s JOIN products p ON p.seller_id = s.id \
         SET s.rating_sum = s.rating_sum + ?, s.rating_count = s.rating_count + 1 WHERE p.id = ?",
    )
    .bind(rating)
    .bind(product_id)
    .execute(&mut *tx)
    .timed()
    .await?;
    tx.commit().timed().await?;
    super::generation::bump(db);
    Ok(())
}

pub async fn for_product(
    db: &MySqlPool,
    product_id: u64,
    limit: u32,
) -> Result<Vec<Review>, Error> {
    Ok(sqlx::query_as(
        "SELECT r.rating, r.body, u.name AS author, DATE_FORMAT(r.created_at, '%Y-%m-%d') AS created_at \
         FROM reviews r JOIN users u ON u.id = r.user_id WHERE r.product_id = ? \
         ORDER BY r.id DESC LIMIT ?",
    )
    .bind(product_id)
    .bind(limit)
    .fetch_all(db).timed()
    .await?)
}

/// Add or remove; true when it is now a favourite.
pub async fn toggle_favourite(
    db: &MySqlPool,
    user_id: u64,
    product_id: u64,
) -> Result<bool, Error> {
    // Two taps racing (a double tap, two tabs) can deadlock in InnoDB: the DELETE's gap lock
    // against the other's INSERT. The server then rolls one back and says to run it again,
    // which is what this does (the toggle is one transaction, so a retry is whole).
    let mut attempt = 0;
    loop {
        match toggle_once(db, user_id, product_id).await {
            Err(e) if attempt < 3 && super::is_deadlock(&e) => attempt += 1,
            other => return other,
        }
    }
}

async fn toggle_once(db: &MySqlPool, user_id: u64, product_id: u64) -> Result<bool, Error> {
    let mut tx = db.begin().timed().await?;
    let removed = sqlx::query("DELETE FROM favourites WHERE user_id = ? AND product_id = ?")
        .bind(user_id)
        .bind(product_id)
        .execute(&mut *tx)
        .timed()
        .await?
        .rows_affected();
    if removed == 0 {
        sqlx::query("INSERT IGNORE INTO favourites (user_id, product_id) VALUES (?, ?)")
            .bind(user_id)
            .bind(product_id)
            .execute(&mut *tx)
            .timed()
            .await?;
    }
    tx.commit().timed().await?;
    Ok(removed == 0)
}

pub async fn is_favourite(db: &MySqlPool, user_id: u64, product_id: u64) -> Result<bool, Error> {
    Ok(sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM favourites WHERE user_id = ? AND product_id = ?",
    )
    .bind(user_id)
    .bind(product_id)
    .fetch_one(db)
    .timed()
    .await?
        > 0)
}

/// The watchlist: public products only, most recently saved first.
pub async fn favourites(db: &MySqlPool, user_id: u64) -> Result<Vec<Card>, Error> {
    Ok(sqlx::query_as(
        "SELECT p.id, p.name, p.price_minor, p.currency, s.store_name AS seller_name, \
         s.slug AS seller_slug, s.city, \
         (SELECT i.sha256 FROM product_images i WHERE i.product_id = p.id ORDER BY i.position LIMIT 1) AS image \
         FROM favourites f JOIN products p ON p.id = f.product_id JOIN sellers s ON s.id = p.seller_id \
         WHERE f.user_id = ? AND p.status = 'active' AND p.moderation = 'approved' \
         AND p.deleted_at IS NULL AND s.status = 'approved' ORDER BY f.created_at DESC LIMIT 200",
    )
    .bind(user_id)
    .fetch_all(db).timed()
    .await?)
}
