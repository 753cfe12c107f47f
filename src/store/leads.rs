//! Interaction events and leads. A WhatsApp tap is both: a `whatsapp_start` event for the
//! analytics and a lead in the seller's inbox, written together.
//!
//! Views and taps from the storefront and the API go through [`record_once`] and
//! [`start_whatsapp_once`]: one per visitor, product and UTC day, and at most
//! `per_address` distinct visitors per client address, product and day (`event_marks`), so
//! repeated clicks and cookie-less floods add nothing after the first.

use serde::Serialize;
use sqlx::{FromRow, MySqlPool};

use super::Error;
use super::Timed;
use crate::market::orders::LeadStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    View,
    Click,
    Wishlist,
    WhatsappStart,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::View => "view",
            Kind::Click => "click",
            Kind::Wishlist => "wishlist",
            Kind::WhatsappStart => "whatsapp_start",
        }
    }
}

pub struct Event<'a> {
    pub kind: Kind,
    pub product_id: u64,
    pub seller_id: u64,
    pub user_id: Option<u64>,
    pub visitor: &'a str,
    pub referrer: &'a str,
    pub device: &'a str,
}

async fn insert_event<'e>(db: impl sqlx::MySqlExecutor<'e>, e: &Event<'_>) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO events (kind, product_id, seller_id, user_id, visitor, referrer, device) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(e.kind.as_str())
    .bind(e.product_id)
    .bind(e.seller_id)
    .bind(e.user_id)
    .bind(e.visitor)
    .bind(e.referrer.chars().take(255).collect::<String>())
    .bind(e.device)
    .execute(db)
    .timed()
    .await?;
    Ok(())
}

pub async fn record(db: &MySqlPool, e: &Event<'_>) -> Result<(), Error> {
    insert_event(db, e).await
}

/// The WhatsApp tap: event and lead in one transaction. Returns the lead id.
pub async fn start_whatsapp(db: &MySqlPool, e: &Event<'_>) -> Result<u64, Error> {
    let mut tx = db.begin().timed().await?;
    let id = insert_lead(&mut tx, e).await?;
    tx.commit().timed().await?;
    Ok(id)
}

/// The `whatsapp_start` event and the lead, inside `tx`; the lead id.
async fn insert_lead(
    tx: &mut sqlx::Transaction<'_, sqlx::MySql>,
    e: &Event<'_>,
) -> Result<u64, Error> {
    insert_event(&mut **tx, e).await?;
    let id = sqlx::query(
        "INSERT INTO leads (product_id, seller_id, user_id, visitor) VALUES (?, ?, ?, ?)",
    )
    .bind(e.product_id)
    .bind(e.seller_id)
    .bind(e.user_id)
    .bind(e.visitor)
    .execute(&mut **tx)
    .timed()
    .await?
    .last_insert_id();
    Ok(id)
}

/// Who is recording, for the dedupe: the client's address key (see `web::api::limit`) and
/// how many distinct visitors one address may record per product and day.
pub struct Once<'a> {
    pub address: &'a str,
    pub per_address: u32,
}

/// The visitor key of the mark: the visitor id, or the address when there is none.
fn mark_visitor<'a>(e: &'a Event<'_>, once: &'a Once<'_>) -> String {
    if e.visitor.is_empty() {
        format!("@{}", once.address)
    } else {
        e.visitor.to_owned()
    }
}

/// What taking a mark found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// The mark is this event's: write it.
    Taken,
    /// The visitor has today's mark for the product already.
    Repeat,
    /// The address has used up its visitors for the product today.
    Capped,
}

/// Take today's mark for this visitor and product, inside `tx`: `false` when the visitor
/// has one already or the address has used up its visitors (then nothing is to be written).
async fn take_mark(
    tx: &mut sqlx::Transaction<'_, sqlx::MySql>,
    e: &Event<'_>,
    once: &Once<'_>,
) -> Result<bool, Error> {
    Ok(take_mark_why(tx, e, once).await? == Mark::Taken)
}

async fn take_mark_why(
    tx: &mut sqlx::Transaction<'_, sqlx::MySql>,
    e: &Event<'_>,
    once: &Once<'_>,
) -> Result<Mark, Error> {
    let visitor = mark_visitor(e, once);
    let address: String = once.address.chars().take(64).collect();
    let taken: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM event_marks WHERE day = UTC_DATE() AND kind = ? AND product_id = ? \
         AND visitor = ?",
    )
    .bind(e.kind.as_str())
    .bind(e.product_id)
    .bind(&visitor)
    .fetch_optional(&mut **tx)
    .timed()
    .await?;
    if taken.is_some() {
        return Ok(Mark::Repeat);
    }
    let used: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM event_marks WHERE day = UTC_DATE() AND kind = ? AND product_id = ? \
         AND address = ?",
    )
    .bind(e.kind.as_str())
    .bind(e.product_id)
    .bind(&address)
    .fetch_one(&mut **tx)
    .timed()
    .await?;
    if used >= i64::from(once.per_address) {
        return Ok(Mark::Capped);
    }
    // A concurrent twin of this request may have taken the mark meanwhile: IGNORE, and the
    // row count says which of the two records.
    let inserted = sqlx::query(
        "INSERT IGNORE INTO event_marks (day, kind, product_id, visitor, address) \
         VALUES (UTC_DATE(), ?, ?, ?, ?)",
    )
    .bind(e.kind.as_str())
    .bind(e.product_id)
    .bind(&visitor)
    .bind(&address)
    .execute(&mut **tx)
    .timed()
    .await?
    .rows_affected();
    Ok(if inserted == 1 {
        Mark::Taken
    } else {
        Mark::Repeat
    })
}

/// Two requests racing for the same mark can deadlock in InnoDB; the other one records.
fn lost_race(e: &Error) -> bool {
    super::is_deadlock(e)
}

/// Record a view (or click, wishlist) once per visitor, product and day: `true` when it was
/// written, `false` when it was a repeat (or over the address's cap).
pub async fn record_once(db: &MySqlPool, e: &Event<'_>, once: &Once<'_>) -> Result<bool, Error> {
    let attempt = async {
        let mut tx = db.begin().timed().await?;
        if !take_mark(&mut tx, e, once).await? {
            return Ok(false);
        }
        insert_event(&mut *tx, e).await?;
        tx.commit().timed().await?;
        Ok(true)
    };
    match attempt.await {
        Err(err) if lost_race(&err) => Ok(false),
        other => other,
    }
}

/// One view (or other non-critical event) waiting in the view writer, owned.
#[derive(Debug, Clone)]
pub struct Buffered {
    pub kind: Kind,
    pub product_id: u64,
    pub seller_id: u64,
    pub user_id: Option<u64>,
    pub visitor: String,
    pub referrer: String,
    pub device: &'static str,
    /// The client's address key (see `Once`).
    pub address: String,
}

impl Buffered {
    /// Who the once-a-day mark is for: the visitor, or the address without one.
    pub fn mark_visitor(&self) -> String {
        mark_visitor(
            &self.event(),
            &Once {
                address: &self.address,
                per_address: 0,
            },
        )
    }

    fn event(&self) -> Event<'_> {
        Event {
            kind: self.kind,
            product_id: self.product_id,
            seller_id: self.seller_id,
            user_id: self.user_id,
            visitor: &self.visitor,
            referrer: &self.referrer,
            device: self.device,
        }
    }
}

/// What a group write did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Group {
    /// Rows written to `events`.
    pub written: u64,
    /// Left out by the once-per-visitor/product/day rule or the per-address cap.
    pub repeats: u64,
    /// Per view of the group, in order: what its mark was.
    pub marks: Vec<Mark>,
}

/// Rows per multi-row INSERT (well under MariaDB's 65,535 placeholders: 7 per row).
const ROWS_PER_INSERT: usize = 1000;

/// Record a group of views in one transaction with the rules of [`record_once`] (once per
/// visitor, product and day; at most `per_address` visitors per address, product and day):
/// each takes its mark, and the ones that got one are written with multi-row INSERTs. Two
/// views of the same visitor and product in the group are one. A deadlock with a concurrent
/// tap (InnoDB) is retried once with the whole group.
pub async fn record_group(
    db: &MySqlPool,
    views: &[Buffered],
    per_address: u32,
) -> Result<Group, Error> {
    let mut seen = std::collections::HashSet::new();
    // The first view of each visitor and product in the group; the others are repeats.
    let first: Vec<bool> = views
        .iter()
        .map(|v| seen.insert((v.kind.as_str(), v.product_id, v.mark_visitor())))
        .collect();
    let unique: Vec<&Buffered> = views
        .iter()
        .zip(&first)
        .filter_map(|(v, f)| f.then_some(v))
        .collect();
    let attempt = || async {
        let mut tx = db.begin().timed().await?;
        let marks = match take_marks_together(&mut tx, &unique, per_address).await? {
            Some(marks) => marks,
            None => {
                // A concurrent writer (a tap, another node) took one of these marks between
                // the read and the insert: start again and take them one by one.
                tx.rollback().timed().await?;
                tx = db.begin().timed().await?;
                let mut marks = Vec::with_capacity(unique.len());
                for v in &unique {
                    let once = Once {
                        address: &v.address,
                        per_address,
                    };
                    marks.push(take_mark_why(&mut tx, &v.event(), &once).await?);
                }
                marks
            }
        };
        let taken: Vec<&Buffered> = unique
            .iter()
            .zip(&marks)
            .filter_map(|(v, m)| (*m == Mark::Taken).then_some(*v))
            .collect();
        for chunk in taken.chunks(ROWS_PER_INSERT) {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO events (kind, product_id, seller_id, user_id, visitor, referrer, \
                 device) ",
            );
            q.push_values(chunk, |mut row, v| {
                row.push_bind(v.kind.as_str())
                    .push_bind(v.product_id)
                    .push_bind(v.seller_id)
                    .push_bind(v.user_id)
                    .push_bind(v.visitor.as_str())
                    .push_bind(v.referrer.chars().take(255).collect::<String>())
                    .push_bind(v.device);
            });
            q.build().execute(&mut *tx).timed().await?;
        }
        tx.commit().timed().await?;
        Ok::<_, Error>((taken.len() as u64, marks))
    };
    let (written, unique_marks) = match attempt().await {
        Err(err) if lost_race(&err) => attempt().await?,
        other => other?,
    };
    let mut unique_marks = unique_marks.into_iter();
    let marks = first
        .iter()
        .map(|&f| {
            if f {
                unique_marks.next().unwrap_or(Mark::Repeat)
            } else {
                Mark::Repeat
            }
        })
        .collect();
    Ok(Group {
        written,
        repeats: views.len() as u64 - written,
        marks,
    })
}

/// Views per statement when a group's marks are read and taken together (5 placeholders each).
const MARKS_PER_STATEMENT: usize = 500;

/// Take the marks of a group's views (each a distinct visitor and product) inside `tx`, with
/// one read and one insert per [`MARKS_PER_STATEMENT`] views instead of three statements per
/// view: the read finds which visitors have today's mark and how many visitors each address
/// has used per product, the caps are applied in order here, and the new marks are inserted
/// together. `None` when the insert finds that a concurrent writer took one of them meanwhile
/// (its rows count short): the caller rolls back and takes them one by one.
async fn take_marks_together(
    tx: &mut sqlx::Transaction<'_, sqlx::MySql>,
    views: &[&Buffered],
    per_address: u32,
) -> Result<Option<Vec<Mark>>, Error> {
    use std::collections::HashMap;
    let visitors: Vec<String> = views.iter().map(|v| v.mark_visitor()).collect();
    let addresses: Vec<String> = views
        .iter()
        .map(|v| v.address.chars().take(64).collect())
        .collect();
    // Per view: whether its visitor has today's mark, and the address's visitors so far.
    let mut found = vec![(false, 0i64); views.len()];
    for (start, chunk) in (0..views.len())
        .step_by(MARKS_PER_STATEMENT)
        .map(|s| (s, &views[s..views.len().min(s + MARKS_PER_STATEMENT)]))
    {
        // A derived table of the views joined on the keys: point lookups on the primary key
        // and the address index (MariaDB 10.11 reads a row-constructor IN as a range over the
        // whole day).
        let mut q = sqlx::QueryBuilder::new(
            "SELECT w.i, EXISTS(SELECT 1 FROM event_marks m WHERE m.day = UTC_DATE() \
             AND m.kind = w.kind AND m.product_id = w.product_id AND m.visitor = w.visitor), \
             (SELECT COUNT(*) FROM event_marks m FORCE INDEX (event_marks_address) \
             WHERE m.day = UTC_DATE() AND m.kind = w.kind AND m.product_id = w.product_id \
             AND m.address = w.address) FROM (",
        );
        for (n, v) in chunk.iter().enumerate() {
            let i = start + n;
            if n > 0 {
                q.push(" UNION ALL ");
            }
            q.push("SELECT ")
                .push_bind(i as u64)
                .push(" AS i, ")
                .push_bind(v.kind.as_str())
                .push(" AS kind, ")
                .push_bind(v.product_id)
                .push(" AS product_id, ")
                .push_bind(visitors[i].as_str())
                .push(" AS visitor, ")
                .push_bind(addresses[i].as_str())
                .push(" AS address");
        }
        q.push(") AS w");
        let rows: Vec<(u64, bool, i64)> = q.build_query_as().fetch_all(&mut **tx).timed().await?;
        for (i, marked, used) in rows {
            if let Some(f) = found.get_mut(i as usize) {
                *f = (marked, used);
            }
        }
    }
    // The caps in order: a group's earlier new visitors of an address count against it.
    let mut used: HashMap<(&str, u64, &str), i64> = HashMap::new();
    let mut marks = Vec::with_capacity(views.len());
    for (i, v) in views.iter().enumerate() {
        let (marked, before) = found[i];
        let n = used
            .entry((v.kind.as_str(), v.product_id, addresses[i].as_str()))
            .or_insert(before);
        marks.push(if marked {
            Mark::Repeat
        } else if *n >= i64::from(per_address) {
            Mark::Capped
        } else {
            *n += 1;
            Mark::Taken
        });
    }
    let taken: Vec<usize> = (0..views.len())
        .filter(|&i| marks[i] == Mark::Taken)
        .collect();
    for chunk in taken.chunks(MARKS_PER_STATEMENT) {
        let mut q = sqlx::QueryBuilder::new(
            "INSERT IGNORE INTO event_marks (day, kind, product_id, visitor, address) ",
        );
        q.push_values(chunk, |mut row, &i| {
            row.push("UTC_DATE()")
                .push_bind(views[i].kind.as_str())
                .push_bind(views[i].product_id)
                .push_bind(visitors[i].as_str())
                .push_bind(addresses[i].as_str());
        });
        let inserted = q.build().execute(&mut **tx).timed().await?.rows_affected();
        if inserted != chunk.len() as u64 {
            return Ok(None);
        }
    }
    Ok(Some(marks))
}

/// What a tap recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tapped {
    /// The lead: new, or the one this visitor's earlier tap today made; `None` when the
    /// address has used up its visitors for this product today.
    pub lead_id: Option<u64>,
    /// A new lead was written.
    pub new: bool,
}

/// The WhatsApp tap, once per visitor, product and day: event and lead in one transaction.
pub async fn start_whatsapp_once(
    db: &MySqlPool,
    e: &Event<'_>,
    once: &Once<'_>,
) -> Result<Tapped, Error> {
    let earlier = async {
        Ok::<_, Error>(Tapped {
            lead_id: earlier_lead(db, e).await?,
            new: false,
        })
    };
    let attempt = async {
        let mut tx = db.begin().timed().await?;
        if take_mark(&mut tx, e, once).await? {
            let id = insert_lead(&mut tx, e).await?;
            tx.commit().timed().await?;
            return Ok(Some(id));
        }
        Ok(None)
    };
    match attempt.await {
        Ok(Some(id)) => Ok(Tapped {
            lead_id: Some(id),
            new: true,
        }),
        Ok(None) => earlier.await,
        Err(err) if lost_race(&err) => earlier.await,
        Err(err) => Err(err),
    }
}

/// This visitor's lead for the product today, if any.
async fn earlier_lead(db: &MySqlPool, e: &Event<'_>) -> Result<Option<u64>, Error> {
    if e.visitor.is_empty() {
        return Ok(None);
    }
    Ok(sqlx::query_scalar(
        "SELECT id FROM leads WHERE product_id = ? AND visitor = ? AND created_at >= UTC_DATE() \
         ORDER BY id DESC LIMIT 1",
    )
    .bind(e.product_id)
    .bind(e.visitor)
    .fetch_optional(db)
    .timed()
    .await?)
}

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct Lead {
    pub id: u64,
    pub product_id: u64,
    pub product_name: String,
    pub status: LeadStatus,
    pub created_at: String,
}

pub async fn inbox(db: &MySqlPool, seller_id: u64, limit: u32) -> Result<Vec<Lead>, Error> {
    Ok(sqlx::query_as(
        "SELECT l.id, l.product_id, p.name AS product_name, l.status, \
                DATE_FORMAT(l.created_at, '%Y-%m-%dT%H:%i:%sZ') AS created_at \
         FROM leads l JOIN products p ON p.id = l.product_id \
         WHERE l.seller_id = ? ORDER BY l.id DESC LIMIT ?",
    )
    .bind(seller_id)
    .bind(limit)
    .fetch_all(db)
    .timed()
    .await?)
}

#[derive(Debug, Clone, Default, FromRow, Serialize)]
pub struct Totals {
    pub views: i64,
    pub leads: i64,
}

/// Views and WhatsApp leads of a seller over a window of whole days (`analytics::Window`),
/// today included: the raw events and the rolled-up days together (see `analytics`), so a
/// roll-up changes nothing.
pub async fn totals(
    db: &MySqlPool,
    seller_id: u64,
    w: &super::analytics::Window,
) -> Result<Totals, Error> {
    Ok(sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(v), 0) AS SIGNED) AS views, \
                CAST(COALESCE(SUM(l), 0) AS SIGNED) AS leads FROM ( \
           SELECT SUM(kind = 'view') AS v, SUM(kind = 'whatsapp_start') AS l \
           FROM events WHERE seller_id = ? AND created_at >= ? \
           UNION ALL \
           SELECT SUM(IF(kind = 'view', n, 0)), SUM(IF(kind = 'whatsapp_start', n, 0)) \
           FROM event_days WHERE seller_id = ? AND day >= ?) t",
    )
    .bind(seller_id)
    .bind(&w.from_utc)
    .bind(seller_id)
    .bind(&w.first_day)
    .fetch_one(db)
    .timed()
    .await?)
}
