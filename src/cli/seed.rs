//! `soko seed --demo`: a small living catalogue (categories, approved sellers in Kenyan cities,
//! products with prices and generated photos, some views and leads) so a newcomer sees a
//! working store right after the quick start. Idempotent: what exists already (by slug / email) is left alone.

use crate::config::Config;
use std::process::ExitCode;

use super::migrate::{close_database, open_database};
use crate::accounts::{password, random_token};
use crate::config::secrets::Secrets;
use crate::market::phone::Phone;
use crate::market::states::{Role, SellerStatus};
use crate::market::text::slug;
use crate::store::{self, catalogue, leads, sellers, users};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Fill the demo catalogue (the only kind of seeding there is).
    #[arg(long, required = true)]
    demo: bool,
    /// Also add this many generated products across the demo sellers (for benchmarks).
    #[arg(long, default_value_t = 0)]
    products: u32,
}

const CATEGORIES: [(&str, &str, &str); 6] = [
    ("fashion", "Fashion", "Mitindo"),
    ("electronics", "Electronics", "Elektroniki"),
    ("home", "Home & Living", "Nyumbani"),
    ("beauty", "Beauty", "Urembo"),
    ("food", "Food & Drinks", "Chakula"),
    ("crafts", "Crafts", "Kazi za mikono"),
];

const SELLERS: [(&str, &str, &str, &str); 6] = [
    ("Kiondo Crafts", "Mombasa", "0712 000 001", "crafts"),
    ("Nairobi Threads", "Nairobi", "0712 000 002", "fashion"),
    ("Kisumu Tech Hub", "Kisumu", "0712 000 003", "electronics"),
    ("Mama Mboga Fresh", "Nakuru", "0712 000 004", "food"),
    ("Urembo Beauty", "Eldoret", "0712 000 005", "beauty"),
    ("Nyumba Decor", "Nairobi", "0712 000 006", "home"),
];

const PRODUCTS: [(&str, &str, i64); 24] = [
    ("crafts", "Sisal kiondo basket", 4_500),
    ("crafts", "Soapstone elephant carving", 2_800),
    ("crafts", "Maasai beaded necklace", 1_200),
    ("crafts", "Makonde wood bowl", 3_600),
    ("fashion", "Ankara print maxi dress", 3_200),
    ("fashion", "Kikoi beach wrap", 1_500),
    ("fashion", "Leather sandals, handmade", 2_400),
    ("fashion", "Kitenge shirt, slim fit", 2_900),
    ("electronics", "Solar lantern with phone charger", 2_650),
    ("electronics", "Bluetooth speaker, waterproof", 3_999),
    ("electronics", "Smartphone, 64 GB, dual SIM", 14_500),
    ("electronics", "Power bank 20000 mAh", 2_300),
    ("food", "Sukuma wiki, 1 kg bunch", 60),
    ("food", "Kenyan AA coffee beans, 500 g", 1_100),
    ("food", "Pure honey from Baringo, 1 kg", 900),
    ("food", "Mangoes from Makueni, dozen", 450),
    ("beauty", "Shea butter, raw, 250 g", 650),
    ("beauty", "Aloe vera gel, 200 ml", 480),
    ("beauty", "Braiding hair, 3 packs", 750),
    ("beauty", "Coconut oil, cold pressed", 520),
    ("home", "Maasai shuka throw blanket", 1_800),
    ("home", "Woven sisal rug, 120 cm", 5_200),
    ("home", "Clay cooking pot (nyungu)", 1_350),
    ("home", "Banana-fibre lamp shade", 2_100),
];

pub async fn run(cfg: Config, args: Args) -> anyhow::Result<ExitCode> {
    crate::telemetry::init_terminal("warn");
    Secrets::ensure(&cfg.secrets_path())?;
    let secrets = Secrets::load(&cfg.secrets_path())?;
    let (pool, temporary) = open_database(&cfg, &secrets).await?;
    let result = async {
        let files = crate::objects::images::ImageStore::from_config(&cfg, &secrets)?;
        let (new, events) = seed(&pool, &files).await?;
        let bulk = generate(&pool, args.products).await?;
        anyhow::Ok((new + bulk, events))
    }
    .await;
    close_database(pool, temporary).await;
    let (new_products, events) = result?;
    println!("demo catalogue ready: {new_products} new products, {events} demo events");
    Ok(ExitCode::SUCCESS)
}

async fn seed(
    db: &sqlx::MySqlPool,
    files: &crate::objects::images::ImageStore,
) -> anyhow::Result<(usize, usize)> {
    let progress = crate::telemetry::progress;
    progress("seed: migrations", 0, 0);
    store::migrate::run(db).await?;
    progress("seed: categories", 0, 0);
    for (s, name, sw) in CATEGORIES {
        match catalogue::create_category(db, s, name, sw).await {
            Ok(_) | Err(store::Error::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let categories = catalogue::categories(db).await?;
    let category = |s: &str| categories.iter().find(|c| c.slug == s).map(|c| c.id);
    // Demo sellers cannot log in: their password is random and never shown.
    let hash = password::hash(random_token())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (mut created, mut events) = (0, 0);
    for (i, (store_name, city, phone, main)) in SELLERS.into_iter().enumerate() {
        progress(
            &format!("seed: demo seller {store_name}"),
            i as u64,
            SELLERS.len() as u64,
        );
        let email = format!("{}@demo.soko.local", slug(store_name, 40));
        let user_id = match users::by_login(db, &email).await? {
            Some(u) => u.id,
            None => {
                users::create(
                    db,
                    &users::NewUser {
                        email: Some(&email),
                        phone: None,
                        name: store_name,
                        password_hash: &hash,
                        role: Role::User,
                    },
                )
                .await?
            }
        };
        if sellers::by_user(db, user_id).await?.is_some() {
            continue;
        }
        let phone = Phone::parse("whatsapp", phone)?;
        let seller_id = sellers::create(
            db,
            &sellers::NewSeller {
                user_id,
                store_name,
                slug: &slug(store_name, 60),
                description: &format!(
                    "{store_name}: quality goods from {city}, delivered across Kenya."
                ),
                whatsapp_phone: phone.as_str(),
                city,
                category_id: category(main),
                catalogue_url: None,
            },
        )
        .await?;
        sellers::set_status(
            db,
            seller_id,
            SellerStatus::Approved,
            "",
            &store::audit::Entry {
                actor_user_id: None,
                action: "seller.status",
                target: &format!("seller:{seller_id}"),
                detail: "approved (demo seed)",
                ip: "cli",
            },
        )
        .await?;
        for (j, (cat, name, shillings)) in PRODUCTS.iter().filter(|p| p.0 == main).enumerate() {
            let id = catalogue::create_product(
                db,
                &catalogue::NewProduct {
                    seller_id,
                    category_id: category(cat),
                    name,
                    description: &format!(
                        "{name}. Sold by {store_name} in {city}. Ask on WhatsApp about delivery."
                    ),
                    price_minor: Some(shillings * 100),
                    currency: "KES",
                    stock: (3 + (i + j) % 7) as u32,
                },
            )
            .await?;
            super::seed_photos::attach(db, files, id, cat).await?;
            created += 1;
            // A few views and one lead per product, so dashboards are not empty.
            for k in 0..(2 + (i + j) % 4) {
                let visitor = format!("{:032x}", (i * 100 + j * 10 + k) as u128);
                let e = leads::Event {
                    kind: leads::Kind::View,
                    product_id: id,
                    seller_id,
                    user_id: None,
                    visitor: &visitor,
                    referrer: "",
                    device: if k % 3 == 0 { "desktop" } else { "mobile" },
                };
                leads::record(db, &e).await?;
                events += 1;
                if k == 0 {
                    leads::start_whatsapp(
                        db,
                        &leads::Event {
                            kind: leads::Kind::WhatsappStart,
                            ..e
                        },
                    )
                    .await?;
                    events += 1;
                }
            }
        }
    }
    progress(
        "seed: demo sellers",
        SELLERS.len() as u64,
        SELLERS.len() as u64,
    );
    Ok((created, events))
}

/// `count` more products spread over the demo sellers, in batches of 2,000.
async fn generate(db: &sqlx::MySqlPool, count: u32) -> anyhow::Result<usize> {
    if count == 0 {
        return Ok(0);
    }
    let sellers: Vec<(u64, Option<u64>)> = sqlx::query_as(
        "SELECT id, category_id FROM sellers WHERE slug IN (?, ?, ?, ?, ?, ?) ORDER BY id",
    )
    .bind(slug(SELLERS[0].0, 60))
    .bind(slug(SELLERS[1].0, 60))
    .bind(slug(SELLERS[2].0, 60))
    .bind(slug(SELLERS[3].0, 60))
    .bind(slug(SELLERS[4].0, 60))
    .bind(slug(SELLERS[5].0, 60))
    .fetch_all(db)
    .await?;
    anyhow::ensure!(!sellers.is_empty(), "the demo sellers are missing");
    let adjectives = [
        "Handmade", "Classic", "Premium", "Everyday", "Festive", "Compact", "Large", "Organic",
    ];
    let mut done = 0usize;
    while done < count as usize {
        let batch: Vec<store::bulk::BulkProduct> = (done..(done + 2000).min(count as usize))
            .map(|i| {
                let (seller_id, category_id) = sellers[i % sellers.len()];
                let (_, base, shillings) = PRODUCTS[i % PRODUCTS.len()];
                let adjective = adjectives[(i / PRODUCTS.len()) % adjectives.len()];
                store::bulk::BulkProduct {
                    seller_id,
                    category_id,
                    name: format!("{adjective} {} #{i}", base.to_lowercase()),
                    description: format!(
                        "{adjective} {base}. Generated listing {i} for load tests."
                    ),
                    price_minor: (shillings + (i as i64 % 97) * 10) * 100,
                    stock: (i % 20) as u32,
                }
            })
            .collect();
        store::bulk::insert_products(db, &batch).await?;
        done += batch.len();
        crate::telemetry::progress("seed: generated products", done as u64, u64::from(count));
    }
    Ok(done)
}
