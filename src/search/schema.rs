//! The index's fields and analyzers, and a product as an index document.

use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STRING, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer,
    TextAnalyzer, TokenStream,
};
use tantivy::{Index, TantivyDocument};

use crate::store::search::Doc;

/// Bumped whenever the fields or analyzers change: an index of another version is rebuilt.
pub const VERSION: u32 = 1;

/// Lowercase and ASCII folding, no stemming: exact words in every language. Swahili has no
/// stemmer (neither tantivy's nor Snowball's), so Swahili words only ever match this way (and
/// by typo tolerance).
pub const PLAIN: &str = "soko_plain";
/// [`PLAIN`] plus the English (Porter 2) stemmer: "baskets" finds "basket".
pub const ENGLISH: &str = "soko_en";

#[derive(Clone, Copy)]
pub struct Fields {
    pub id: Field,
    pub name: Field,
    pub name_en: Field,
    pub body: Field,
    pub body_en: Field,
    pub cat: Field,
    pub cat_en: Field,
    pub seller: Field,
    pub category: Field,
    pub price: Field,
    pub city_key: Field,
    pub city: Field,
}

pub fn schema() -> (Schema, Fields) {
    let text = |analyzer: &str| {
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(analyzer)
                // BM25 needs frequencies; no phrase queries, so no positions (a smaller index).
                .set_index_option(IndexRecordOption::WithFreqs),
        )
    };
    let mut b = Schema::builder();
    let fields = Fields {
        id: b.add_u64_field("id", INDEXED | FAST),
        name: b.add_text_field("name", text(PLAIN)),
        name_en: b.add_text_field("name_en", text(ENGLISH)),
        body: b.add_text_field("body", text(PLAIN)),
        body_en: b.add_text_field("body_en", text(ENGLISH)),
        cat: b.add_text_field("cat", text(PLAIN)),
        cat_en: b.add_text_field("cat_en", text(ENGLISH)),
        seller: b.add_text_field("seller", text(PLAIN)),
        category: b.add_u64_field("category", INDEXED | FAST),
        price: b.add_i64_field("price", INDEXED | FAST),
        city_key: b.add_text_field("city_key", STRING),
        city: b.add_text_field("city", TextOptions::default().set_fast("raw")),
    };
    (b.build(), fields)
}

fn analyzer(stem: bool) -> TextAnalyzer {
    let b = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter);
    if stem {
        b.filter(Stemmer::new(Language::English)).build()
    } else {
        b.build()
    }
}

/// The analyzers are not stored in the index: register them on every open.
pub fn register(index: &Index) {
    index.tokenizers().register(PLAIN, analyzer(false));
    index.tokenizers().register(ENGLISH, analyzer(true));
}

/// The words of `text` as [`PLAIN`] and [`ENGLISH`] index them, pairwise (the stemmer keeps
/// one token per word).
pub fn words(text: &str) -> Vec<(String, String)> {
    let mut plain = analyzer(false);
    let mut out = Vec::new();
    let mut stream = plain.token_stream(text);
    while let Some(t) = stream.next() {
        out.push(t.text.clone());
    }
    let mut en = analyzer(true);
    out.into_iter()
        .map(|w| {
            let stem = {
                let mut s = en.token_stream(&w);
                s.next().map(|t| t.text.clone())
            };
            let stem = stem.unwrap_or_else(|| w.clone());
            (w, stem)
        })
        .collect()
}

/// The city as filters compare it (MySQL's collation ignores case).
pub fn city_key(city: &str) -> String {
    city.trim().to_lowercase()
}

pub fn document(f: &Fields, d: &Doc) -> TantivyDocument {
    let mut doc = TantivyDocument::default();
    doc.add_u64(f.id, d.id);
    doc.add_text(f.name, &d.name);
    doc.add_text(f.name_en, &d.name);
    doc.add_text(f.body, &d.description);
    doc.add_text(f.body_en, &d.description);
    for c in [&d.category_name, &d.category_name_sw]
        .into_iter()
        .flatten()
    {
        doc.add_text(f.cat, c);
        doc.add_text(f.cat_en, c);
    }
    doc.add_text(f.seller, &d.store_name);
    doc.add_text(f.seller, &d.city);
    if let Some(c) = d.category_id {
        doc.add_u64(f.category, c);
    }
    if let Some(p) = d.price_minor {
        doc.add_i64(f.price, p);
    }
    doc.add_text(f.city_key, city_key(&d.city));
    doc.add_text(f.city, &d.city);
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_folded_and_paired_with_their_english_stems() {
        assert_eq!(
            words("Baskets, CAFÉ vikapu"),
            [
                ("baskets".to_owned(), "basket".to_owned()),
                ("cafe".to_owned(), "cafe".to_owned()),
                ("vikapu".to_owned(), "vikapu".to_owned()),
            ]
        );
        assert!(words(" ,. ").is_empty());
    }

    /// The index size of a catalogue shaped like `soko seed --demo --products 100000` (names
    /// and descriptions of its generator, six sellers, six categories), for the README. Not a
    /// benchmark: it times nothing. `cargo test --lib index_size -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn index_size_of_a_demo_shaped_catalogue() {
        let dir = std::env::temp_dir().join(format!("soko-index-size-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (schema, f) = schema();
        let index = Index::create_in_dir(&dir, schema).unwrap();
        register(&index);
        let mut w: tantivy::IndexWriter = index.writer_with_num_threads(1, 48 << 20).unwrap();
        let bases = [
            "Sisal kiondo basket",
            "Soapstone elephant carving",
            "Maasai beaded necklace",
            "Makonde wood bowl",
            "Ankara print maxi dress",
            "Kikoi beach wrap",
            "Leather sandals",
            "Kitenge shirt",
            "Clay cooking pot",
            "Enamel kettle",
            "Wooden spoon set",
            "Woven table mat",
        ];
        let adjectives = [
            "Handmade", "Classic", "Premium", "Everyday", "Festive", "Compact",
        ];
        let cities = ["Nairobi", "Mombasa", "Kisumu", "Nakuru", "Eldoret", "Thika"];
        for i in 0..100_000u64 {
            let base = bases[i as usize % bases.len()];
            let adjective = adjectives[(i as usize / bases.len()) % adjectives.len()];
            let d = Doc {
                id: i + 1,
                name: format!("{adjective} {} #{i}", base.to_lowercase()),
                description: format!("{adjective} {base}. Generated listing {i} for load tests."),
                category_id: Some(i % 6 + 1),
                category_name: Some("Crafts".into()),
                category_name_sw: Some("Kazi za mikono".into()),
                store_name: format!("Demo seller {}", i % 6),
                city: cities[i as usize % 6].into(),
                price_minor: Some(100_000 + (i as i64 % 97) * 1000),
                currency: "KES".into(),
            };
            w.add_document(document(&f, &d)).unwrap();
        }
        w.commit().unwrap();
        w.wait_merging_threads().unwrap();
        let bytes: u64 = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum();
        println!(
            "index of 100,000 demo-shaped products: {} KiB",
            bytes / 1024
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn typo_distance_grows_with_the_word() {
        use super::super::query::distance;
        assert_eq!(distance("cat"), 0);
        assert_eq!(distance("bsket"), 1);
        assert_eq!(distance("necklace"), 2);
    }
}
