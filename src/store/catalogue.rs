//! Categories and products. Every product write also records a `vector_outbox` row and a
//! `search_changes` row in the same transaction, so the vector store and the text-search index
//! catch up even after a crash; a new or changed listing also queues its quality check
//! (`store::quality::enqueue`).

use serde::Serialize;
use sqlx::mysql::MySqlRow;
use sqlx::{FromRow, MySqlPool, Row};

use super::Timed;
use super::{Error, conflict_on};
use crate::market::money::{Currency, Money};
use crate::market::quota::{OverQuota, Quotas};
use crate::market::states::{Moderation, OutboxOp, ProductStatus, SellerStatus};

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct Category {
    pub id: u64,
    pub slug: String,
    pub name: String,
    pub name_sw: String,
}

pub async fn categories(db: &MySqlPool) -> Result<Vec<Category>, Error> {
    Ok(
        sqlx::query_as("SELECT id, slug, name, name_sw FROM categories ORDER BY sort_order, name")
            .fetch_all(db)
            .timed()
            .await?,
    )
}

pub async fn create_category(
    db: &MySqlPool,
    slug: &str,
    name: &str,
    name_sw: &str,
) -> Result<u64, Error> {
    Ok(
        sqlx::query("INSERT INTO categories (slug, name, name_sw) VALUES (?, ?, ?)")
            .bind(slug)
            .bind(name)
            .bind(name_sw)
            .execute(db)
            .timed()
            .await
            .map_err(|e| conflict_on(e, &[("categories_slug", "slug")]))
            .inspect(|_| super::generation::bump(db))?
            .last_insert_id(),
    )
}

pub async fn category_by_slug(db: &MySqlPool, slug: &str) -> Result<Option<Category>, Error> {
    Ok(
        sqlx::query_as("SELECT id, slug, name, name_sw FROM categories WHERE slug = ?")
            .bind(slug)
            .fetch_optional(db)
            .timed()
            .await?,
    )
}

/// A product as shown in grids: enough for a card, nothing more.
#[derive(Debug, Clone, Serialize)]
pub struct Card {
    pub id: u64,
    pub name: String,
    /// `None`: "contact for price".
    pub price: Option<Money>,
    pub seller_name: String,
    pub seller_slug: String,
    pub city: String,
    pub image: Option<String>,
}

impl<'r> FromRow<'r, MySqlRow> for Card {
    fn from_row(row: &'r MySqlRow) -> Result<Self, sqlx::Error> {
        Ok(Card {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            price: money_of(row, "price_minor", "currency")?,
            seller_name: row.try_get("seller_name")?,
            seller_slug: row.try_get("seller_slug")?,
            city: row.try_get("city")?,
            image: row.try_get("image")?,
        })
    }
}

/// An amount's two columns (minor units, currency code) as one `Money`; `None` where the
/// amount is NULL. Every write checks the currency (`market::money::Currency::parse`); a row
/// that somehow holds no valid code reads as KES, as the pages always showed it.
pub(crate) fn money_of(
    row: &MySqlRow,
    minor: &str,
    currency: &str,
) -> Result<Option<Money>, sqlx::Error> {
    let minor: Option<i64> = row.try_get(minor)?;
    let code: String = row.try_get(currency)?;
    let currency = Currency::parse(&code).unwrap_or(Currency::KES);
    Ok(minor.map(|m| Money::new(m, currency)))
}

/// Public: active, approved, not deleted, from an approved seller.
pub(crate) const PUBLIC: &str = "p.status = 'active' AND p.moderation = 'approved' \
     AND p.deleted_at IS NULL AND s.status = 'approved'";

pub(crate) const CARD: &str = "SELECT p.id, p.name, p.price_minor, p.currency, s.store_name AS seller_name, \
     s.slug AS seller_slug, s.city, \
     (SELECT i.sha256 FROM product_images i WHERE i.product_id = p.id ORDER BY i.position LIMIT 1) AS image \
     FROM products p JOIN sellers s ON s.id = p.seller_id";

/// Newest first, `limit` after the cursor (the last id of the previous page).
pub async fn feed(
    db: &MySqlPool,
    before: Option<u64>,
    category: Option<u64>,
    seller: Option<u64>,
    limit: u32,
) -> Result<Vec<Card>, Error> {
    // A condition only where it is given (never `? IS NULL OR …`): the category and seller
    // feeds then walk their own index (`products_category`, `products_seller`: key, id)
    // backwards instead of the whole catalogue. Three fixed texts, each prepared once per
    // connection (the pool's statement cache).
    //
    // The index is named: MariaDB 10.11 otherwise reads it by its leading equality parts alone
    // (`ref`) and skips every entry above the cursor one by one, ~50,000 for a cursor halfway
    // down 100,000 products (1.6 s under load in `scripts/bench-web`'s `feed_deep`); named, it
    // is a `range` scan that starts at the cursor (EXPLAIN: key_len 10 instead of 2).
    let (index, by) = match (category, seller) {
        (Some(_), Some(_)) => (
            "products_seller",
            " AND p.category_id = ? AND p.seller_id = ?",
        ),
        (Some(_), None) => ("products_category", " AND p.category_id = ?"),
        (None, Some(_)) => ("products_seller", " AND p.seller_id = ?"),
        (None, None) => ("products_feed", ""),
    };
    let card = CARD.replacen(
        "FROM products p ",
        &format!("FROM products p FORCE INDEX ({index}) "),
        1,
    );
    debug_assert!(card.contains("FORCE INDEX"), "{card}");
    let sql = format!("{card} WHERE {PUBLIC} AND p.id < ?{by} ORDER BY p.id DESC LIMIT ?");
    let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(before.unwrap_or(u64::MAX));
    if let Some(c) = category {
        q = q.bind(c);
    }
    if let Some(s) = seller {
        q = q.bind(s);
    }
    Ok(q.bind(limit).fetch_all(db).timed().await?)
}

#[derive(Debug, Clone, Default)]
pub struct SearchFilter {
    pub category: Option<u64>,
    pub min_minor: Option<i64>,
    pub max_minor: Option<i64>,
    pub city: Option<String>,
}

/// Full-text relevance over name and description, plus products in a category whose English or
/// Swahili name matches, and products of sellers whose name or city matches; filters on category, price range and city. Two index-driven branches, each bounded,
/// (three) merged by score: an `OR` across them would scan every product. `q` is bound, never spliced.
pub async fn search(
    db: &MySqlPool,
    q: &str,
    f: &SearchFilter,
    limit: u32,
) -> Result<Vec<Card>, Error> {
    let like = format!("%{}%", q.replace(['%', '_', '\\'], ""));
    const FILTERS: &str = "AND (? IS NULL OR p.category_id = ?) \
         AND (? IS NULL OR p.price_minor >= ?) AND (? IS NULL OR p.price_minor <= ?) \
         AND (? IS NULL OR s.city = ?)";
    let sql = format!(
        "SELECT r.id, r.name, r.price_minor, r.currency, r.seller_name, r.seller_slug, r.city, \
                (SELECT i.sha256 FROM product_images i WHERE i.product_id = r.id ORDER BY i.position LIMIT 1) AS image \
         FROM ( \
           (SELECT p.id, p.name, p.price_minor, p.currency, s.store_name AS seller_name, s.slug AS seller_slug, \
                   s.city, MATCH (p.name, p.description) AGAINST (? IN NATURAL LANGUAGE MODE) AS score \
            FROM products p JOIN sellers s ON s.id = p.seller_id \
            WHERE {PUBLIC} AND MATCH (p.name, p.description) AGAINST (? IN NATURAL LANGUAGE MODE) {FILTERS} \
            ORDER BY score DESC LIMIT ?) \
           UNION ALL \
           (SELECT p.id, p.name, p.price_minor, p.currency, s.store_name, s.slug, s.city, 0.002 \
            FROM categories c JOIN products p ON p.category_id = c.id JOIN sellers s ON s.id = p.seller_id \
            WHERE {PUBLIC} AND (c.name LIKE ? OR c.name_sw LIKE ?) {FILTERS} \
            ORDER BY p.id DESC LIMIT ?) \
           UNION ALL \
           (SELECT p.id, p.name, p.price_minor, p.currency, s.store_name, s.slug, s.city, 0.001 \
            FROM sellers s JOIN products p ON p.seller_id = s.id \
            WHERE {PUBLIC} AND (s.store_name LIKE ? OR s.city LIKE ?) {FILTERS} \
            ORDER BY p.id DESC LIMIT ?) \
         ) r GROUP BY r.id, r.name, r.price_minor, r.currency, r.seller_name, r.seller_slug, r.city \
         ORDER BY MAX(r.score) DESC, r.id DESC LIMIT ?"
    );
    let query = sqlx::query_as::<_, Card>(sqlx::AssertSqlSafe(sql))
        .bind(q)
        .bind(q);
    let query = bind_filters(query, f)
        .bind(limit)
        .bind(like.clone())
        .bind(like.clone());
    let query = bind_filters(query, f)
        .bind(limit)
        .bind(like.clone())
        .bind(like);
    let query = bind_filters(query, f).bind(limit).bind(limit);
    Ok(query.fetch_all(db).timed().await?)
}

type CardQuery<'q> = sqlx::query::QueryAs<'q, sqlx::MySql, Card, sqlx::mysql::MySqlArguments>;

fn bind_filters<'q>(q: CardQuery<'q>, f: &SearchFilter) -> CardQuery<'q> {
    q.bind(f.category)
        .bind(f.category)
        .bind(f.min_minor)
        .bind(f.min_minor)
        .bind(f.max_minor)
        .bind(f.max_minor)
        .bind(f.city.clone())
        .bind(f.city.clone())
}

#[derive(Debug, Clone, Serialize)]
pub struct Product {
    pub id: u64,
    pub seller_id: u64,
    pub category_id: Option<u64>,
    pub name: String,
    pub description: String,
    /// `None`: "contact for price".
    pub price: Option<Money>,
    pub stock: u32,
    pub status: ProductStatus,
    pub moderation: Moderation,
    pub moderation_reason: String,
}

impl<'r> FromRow<'r, MySqlRow> for Product {
    fn from_row(row: &'r MySqlRow) -> Result<Self, sqlx::Error> {
        Ok(Product {
            id: row.try_get("id")?,
            seller_id: row.try_get("seller_id")?,
            category_id: row.try_get("category_id")?,
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            price: money_of(row, "price_minor", "currency")?,
            stock: row.try_get("stock")?,
            status: row.try_get("status")?,
            moderation: row.try_get("moderation")?,
            moderation_reason: row.try_get("moderation_reason")?,
        })
    }
}

/// The columns `Product::from_row` reads, of `products p` (a macro, so that `concat!` can
/// build the statements that start with them).
macro_rules! product_columns {
    () => {
        "p.id, p.seller_id, p.category_id, p.name, p.description, p.price_minor, p.currency, \
         p.stock, p.status, p.moderation, p.moderation_reason"
    };
}

const PRODUCT: &str = concat!(
    "SELECT ",
    product_columns!(),
    " FROM products p JOIN sellers s ON s.id = p.seller_id"
);

/// A product anyone may see.
pub async fn public_product(db: &MySqlPool, id: u64) -> Result<Option<Product>, Error> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{PRODUCT} WHERE {PUBLIC} AND p.id = ?"
    )))
    .bind(id)
    .fetch_optional(db)
    .timed()
    .await?)
}

/// What the product page shows of a public product besides its reviews and strips: the
/// product, its seller's name, link, city and rating, and its first photo.
pub struct PublicPage {
    pub product: Product,
    pub store_name: String,
    pub slug: String,
    pub city: String,
    pub rating_sum: u32,
    pub rating_count: u32,
    pub image: Option<String>,
}

impl PublicPage {
    /// The seller's average rating with one decimal, if anyone rated (as `Seller::rating`).
    pub fn seller_rating(&self) -> Option<f32> {
        super::sellers::average_rating(self.rating_sum, self.rating_count)
    }
}

/// [`public_product`], the seller's card and the first photo in one statement (a product page
/// not in the page cache read them with three, each on its own pool connection).
pub async fn public_page(db: &MySqlPool, id: u64) -> Result<Option<PublicPage>, Error> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {}, s.store_name, s.slug, s.city, s.rating_sum, s.rating_count, \
         (SELECT i.sha256 FROM product_images i WHERE i.product_id = p.id \
          ORDER BY i.position LIMIT 1) AS image \
         FROM products p JOIN sellers s ON s.id = p.seller_id WHERE {PUBLIC} AND p.id = ?",
        product_columns!()
    )))
    .bind(id)
    .fetch_optional(db)
    .timed()
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    use sqlx::Row;
    Ok(Some(PublicPage {
        product: Product::from_row(&row)?,
        store_name: row.try_get("store_name")?,
        slug: row.try_get("slug")?,
        city: row.try_get("city")?,
        rating_sum: row.try_get("rating_sum")?,
        rating_count: row.try_get("rating_count")?,
        image: row.try_get("image")?,
    }))
}

pub async fn first_image(db: &MySqlPool, product_id: u64) -> Result<Option<String>, Error> {
    Ok(sqlx::query_scalar(
        "SELECT sha256 FROM product_images WHERE product_id = ? ORDER BY position LIMIT 1",
    )
    .bind(product_id)
    .fetch_optional(db)
    .timed()
    .await?)
}

/// A product as its seller sees it (hidden and rejected ones too).
pub async fn own_product(
    db: &MySqlPool,
    seller_id: u64,
    id: u64,
) -> Result<Option<Product>, Error> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{PRODUCT} WHERE p.id = ? AND p.seller_id = ? AND p.deleted_at IS NULL"
    )))
    .bind(id)
    .bind(seller_id)
    .fetch_optional(db)
    .timed()
    .await?)
}

pub async fn seller_products(db: &MySqlPool, seller_id: u64) -> Result<Vec<Product>, Error> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{PRODUCT} WHERE p.seller_id = ? AND p.deleted_at IS NULL ORDER BY p.id DESC"
    )))
    .bind(seller_id)
    .fetch_all(db)
    .timed()
    .await?)
}

pub struct NewProduct<'a> {
    pub seller_id: u64,
    pub category_id: Option<u64>,
    pub name: &'a str,
    pub description: &'a str,
    pub price_minor: Option<i64>,
    pub currency: &'a str,
    pub stock: u32,
}

/// Insert the product and its vector-sync job in one transaction (no quota: seeding and
/// operators; sellers go through [`create_product_within`]).
pub async fn create_product(db: &MySqlPool, p: &NewProduct<'_>) -> Result<u64, Error> {
    let mut tx = db.begin().timed().await?;
    let id = insert_product(&mut tx, p).await?;
    tx.commit().timed().await?;
    super::generation::bump(db);
    Ok(id)
}

/// [`create_product`] within the seller's product quota for their status: the seller row is
/// locked while the products are counted, so parallel requests cannot overshoot it.
pub async fn create_product_within(
    db: &MySqlPool,
    p: &NewProduct<'_>,
    quotas: &Quotas,
) -> Result<Result<u64, OverQuota>, Error> {
    let mut tx = db.begin().timed().await?;
    let status = lock_seller(&mut tx, p.seller_id).await?;
    let have: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM products WHERE seller_id = ? AND deleted_at IS NULL",
    )
    .bind(p.seller_id)
    .fetch_one(&mut *tx)
    .timed()
    .await?;
    if let Err(over) = quotas.check_products(status, have.max(0) as u64) {
        return Ok(Err(over));
    }
    let id = insert_product(&mut tx, p).await?;
    tx.commit().timed().await?;
    super::generation::bump(db);
    Ok(Ok(id))
}

/// Lock a seller's row for the rest of `tx` (serialising their quota checks); their status.
pub(crate) async fn lock_seller(
    tx: &mut sqlx::Transaction<'_, sqlx::MySql>,
    seller_id: u64,
) -> Result<SellerStatus, Error> {
    sqlx::query_scalar("SELECT status FROM sellers WHERE id = ? FOR UPDATE")
        .bind(seller_id)
        .fetch_optional(&mut **tx)
        .timed()
        .await?
        .ok_or(Error::NotFound)
}

pub(crate) async fn insert_product(
    tx: &mut sqlx::Transaction<'_, sqlx::MySql>,
    p: &NewProduct<'_>,
) -> Result<u64, Error> {
    let id = sqlx::query(
        "INSERT INTO products (seller_id, category_id, name, description, price_minor, currency, stock) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(p.seller_id)
    .bind(p.category_id)
    .bind(p.name)
    .bind(p.description)
    .bind(p.price_minor)
    .bind(p.currency)
    .bind(p.stock)
    .execute(&mut **tx).timed()
    .await?
    .last_insert_id();
    enqueue_vector(tx, id, OutboxOp::Upsert).await?;
    super::quality::enqueue(tx, id).await?;
    Ok(id)
}

pub(crate) async fn enqueue_vector(
    tx: &mut sqlx::Transaction<'_, sqlx::MySql>,
    product_id: u64,
    op: OutboxOp,
) -> Result<(), Error> {
    sqlx::query("INSERT INTO vector_outbox (product_id, op) VALUES (?, ?)")
        .bind(product_id)
        .bind(op)
        .execute(&mut **tx)
        .timed()
        .await?;
    // Every write that re-syncs a vector can change what text search finds too.
    super::search::record(tx, super::search::Scope::Product, product_id).await
}

/// (`p`, product id) and (`s`, seller slug) of everything public, for the sitemap.
pub async fn sitemap_entries(
    db: &MySqlPool,
    limit: u32,
) -> Result<Vec<(&'static str, String)>, Error> {
    let sellers: Vec<String> = sqlx::query_scalar(
        "SELECT slug FROM sellers WHERE status = 'approved' ORDER BY id LIMIT ?",
    )
    .bind(limit)
    .fetch_all(db)
    .timed()
    .await?;
    let products: Vec<u64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT p.id FROM products p JOIN sellers s ON s.id = p.seller_id WHERE {PUBLIC} ORDER BY p.id DESC LIMIT ?"
    )))
    .bind(limit)
    .fetch_all(db).timed()
    .await?;
    Ok(sellers
        .into_iter()
        .map(|s| ("s", s))
        .chain(products.into_iter().map(|id| ("p", id.to_string())))
        .take(limit as usize)
        .collect())
}

/// An admin's decision on a product, with its vector re-sync and audit entry, in one transaction.
pub async fn moderate(
    db: &MySqlPool,
    id: u64,
    moderation: Moderation,
    reason: &str,
    audit: &super::audit::Entry<'_>,
) -> Result<(), Error> {
    let mut tx = db.begin().timed().await?;
    let found: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM products WHERE id = ? AND deleted_at IS NULL")
            .bind(id)
            .fetch_one(&mut *tx)
            .timed()
            .await?;
    if found == 0 {
        return Err(Error::NotFound);
    }
    sqlx::query("UPDATE products SET moderation = ?, moderation_reason = ? WHERE id = ?")
        .bind(moderation)
        .bind(reason)
        .bind(id)
        .execute(&mut *tx)
        .timed()
        .await?;
    enqueue_vector(&mut tx, id, OutboxOp::Upsert).await?;
    super::quality::record_review(&mut tx, id, moderation, audit.actor_user_id).await?;
    super::audit::append(&mut *tx, audit).await?;
    tx.commit().timed().await?;
    super::generation::bump(db);
    Ok(())
}

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct ModerationRow {
    pub id: u64,
    pub name: String,
    pub seller_name: String,
    pub status: ProductStatus,
    pub moderation: Moderation,
    pub moderation_reason: String,
}

/// Latest products for the moderation queue, flagged ones first.
pub async fn moderation_queue(db: &MySqlPool, limit: u32) -> Result<Vec<ModerationRow>, Error> {
    Ok(sqlx::query_as(
        "SELECT p.id, p.name, s.store_name AS seller_name, p.status, p.moderation, p.moderation_reason \
         FROM products p JOIN sellers s ON s.id = p.seller_id WHERE p.deleted_at IS NULL \
         ORDER BY p.moderation = 'flagged' DESC, p.id DESC LIMIT ?",
    )
    .bind(limit)
    .fetch_all(db).timed()
    .await?)
}

#[derive(Debug, Clone, Default, FromRow, Serialize)]
pub struct PlatformStats {
    pub users: i64,
    pub sellers_approved: i64,
    pub sellers_pending: i64,
    pub products_public: i64,
    pub leads_7d: i64,
    pub views_7d: i64,
}

pub async fn platform_stats(db: &MySqlPool) -> Result<PlatformStats, Error> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT (SELECT COUNT(*) FROM users) AS users, \
         (SELECT COUNT(*) FROM sellers WHERE status = 'approved') AS sellers_approved, \
         (SELECT COUNT(*) FROM sellers WHERE status = 'pending') AS sellers_pending, \
         (SELECT COUNT(*) FROM products p JOIN sellers s ON s.id = p.seller_id WHERE {PUBLIC}) AS products_public, \
         (SELECT COUNT(*) FROM events WHERE kind = 'whatsapp_start' AND created_at > UTC_TIMESTAMP(3) - INTERVAL 7 DAY) AS leads_7d, \
         (SELECT COUNT(*) FROM events WHERE kind = 'view' AND created_at > UTC_TIMESTAMP(3) - INTERVAL 7 DAY) AS views_7d"
    )))
    .fetch_one(db).timed()
    .await?)
}

/// A seller's edit of a product: `None` leaves that column as it is.
#[derive(Debug, Default)]
pub struct ProductChanges<'a> {
    /// `Some(None)` clears the category.
    pub category_id: Option<Option<u64>>,
    pub name: Option<&'a str>,
    pub description: Option<&'a str>,
    /// `Some(None)` is "contact for price".
    pub price_minor: Option<Option<i64>>,
    pub currency: Option<&'a str>,
    pub stock: Option<u32>,
}

/// Lock a seller's own, not deleted product for the rest of the transaction; `NotFound` when
/// it is someone else's, so nobody learns which ids exist.
async fn lock_own(
    tx: &mut sqlx::Transaction<'_, sqlx::MySql>,
    seller_id: u64,
    id: u64,
) -> Result<(), Error> {
    let found: Option<u64> = sqlx::query_scalar(
        "SELECT id FROM products WHERE id = ? AND seller_id = ? AND deleted_at IS NULL FOR UPDATE",
    )
    .bind(id)
    .bind(seller_id)
    .fetch_optional(&mut **tx)
    .timed()
    .await?;
    found.map(|_| ()).ok_or(Error::NotFound)
}

/// Edit a seller's own product and queue its vector re-sync, in one transaction.
pub async fn update_product(
    db: &MySqlPool,
    seller_id: u64,
    id: u64,
    c: &ProductChanges<'_>,
) -> Result<(), Error> {
    let mut tx = db.begin().timed().await?;
    lock_own(&mut tx, seller_id, id).await?;
    sqlx::query(
        "UPDATE products SET category_id = IF(?, ?, category_id), name = COALESCE(?, name), \
         description = COALESCE(?, description), price_minor = IF(?, ?, price_minor), \
         currency = COALESCE(?, currency), stock = COALESCE(?, stock) WHERE id = ?",
    )
    .bind(c.category_id.is_some())
    .bind(c.category_id.flatten())
    .bind(c.name)
    .bind(c.description)
    .bind(c.price_minor.is_some())
    .bind(c.price_minor.flatten())
    .bind(c.currency)
    .bind(c.stock)
    .bind(id)
    .execute(&mut *tx)
    .timed()
    .await?;
    enqueue_vector(&mut tx, id, OutboxOp::Upsert).await?;
    // A changed listing is checked again (`store::quality`).
    super::quality::enqueue(&mut tx, id).await?;
    tx.commit().timed().await?;
    super::generation::bump(db);
    Ok(())
}

/// The seller's switch: `active` (shown) or `hidden` (kept, not shown), with the vector re-sync.
pub async fn set_product_status(
    db: &MySqlPool,
    seller_id: u64,
    id: u64,
    status: ProductStatus,
) -> Result<(), Error> {
    let mut tx = db.begin().timed().await?;
    lock_own(&mut tx, seller_id, id).await?;
    sqlx::query("UPDATE products SET status = ? WHERE id = ?")
        .bind(status)
        .bind(id)
        .execute(&mut *tx)
        .timed()
        .await?;
    enqueue_vector(&mut tx, id, OutboxOp::Upsert).await?;
    tx.commit().timed().await?;
    super::generation::bump(db);
    Ok(())
}

/// Soft-delete a seller's own product (the row stays for leads and orders) and queue the
/// removal of its vector, in one transaction.
pub async fn delete_product(db: &MySqlPool, seller_id: u64, id: u64) -> Result<(), Error> {
    let mut tx = db.begin().timed().await?;
    lock_own(&mut tx, seller_id, id).await?;
    sqlx::query("UPDATE products SET deleted_at = UTC_TIMESTAMP(3) WHERE id = ?")
        .bind(id)
        .execute(&mut *tx)
        .timed()
        .await?;
    enqueue_vector(&mut tx, id, OutboxOp::Delete).await?;
    tx.commit().timed().await?;
    super::generation::bump(db);
    Ok(())
}
