//! From the words a visitor typed to a tantivy query, and the facet counts of its matches.

use std::collections::HashMap;
use std::ops::Bound;

use tantivy::collector::{Collector, Count, SegmentCollector, TopDocs};
use tantivy::columnar::{Column, StrColumn};
use tantivy::query::{
    BooleanQuery, BoostQuery, ConstScoreQuery, FuzzyTermQuery, Occur, Query, RangeQuery, TermQuery,
};
use tantivy::schema::IndexRecordOption;
use tantivy::{DocId, Score, Searcher, SegmentOrdinal, SegmentReader, Term};

use super::schema::{Fields, city_key, words};
use crate::store::catalogue::SearchFilter;

/// At most this many words of a query count (the rest are ignored).
const MAX_WORDS: usize = 8;

/// Typo tolerance: none below 4 letters, one edit up to 7, two from 8.
pub fn distance(word: &str) -> u8 {
    match word.chars().count() {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    }
}

fn term(field: tantivy::schema::Field, text: &str) -> Term {
    Term::from_field_text(field, text)
}

fn boosted(q: impl Query, boost: f32) -> (Occur, Box<dyn Query>) {
    (Occur::Should, Box::new(BoostQuery::new(Box::new(q), boost)))
}

fn exact(field: tantivy::schema::Field, text: &str, boost: f32) -> (Occur, Box<dyn Query>) {
    boosted(
        TermQuery::new(term(field, text), IndexRecordOption::WithFreqs),
        boost,
    )
}

/// The word is in the index as typed (in a field searched as typed) or by its stem.
fn known(searcher: &Searcher, f: &Fields, plain: &str, stem: &str) -> bool {
    let has = |field, text: &str| searcher.doc_freq(&term(field, text)).is_ok_and(|n| n > 0);
    [f.name, f.cat, f.seller, f.body]
        .into_iter()
        .any(|field| has(field, plain))
        || [f.name_en, f.cat_en, f.body_en]
            .into_iter()
            .any(|field| has(field, stem))
}

/// One word's alternatives. Exact words score BM25 in both the plain and the stemmed field,
/// a word that only matches by its stem in the stemmed one, and a typo a small constant: so
/// exact > stemmed > fuzzy, and a name match > a category > a seller or city > the description.
///
/// Typo alternatives only for a word the index does not have (as typed or by its stem): a
/// fuzzy term walks the whole term dictionary of each field through a Levenshtein automaton and
/// unions the postings of every neighbour, most of a search's cost; a word that matches as
/// typed is what the visitor meant (measured: `basket` at 100,000 products, see the README).
fn word_query(
    searcher: &Searcher,
    f: &Fields,
    plain: &str,
    stem: &str,
    prefix: bool,
) -> Box<dyn Query> {
    let mut any = vec![
        exact(f.name, plain, 4.0),
        exact(f.name_en, stem, 2.0),
        exact(f.cat, plain, 2.0),
        exact(f.cat_en, stem, 1.0),
        exact(f.seller, plain, 1.5),
        exact(f.body, plain, 1.0),
        exact(f.body_en, stem, 0.5),
    ];
    let d = distance(plain);
    if d > 0 && !known(searcher, f, plain, stem) {
        for (field, boost) in [(f.name, 0.4), (f.cat, 0.3), (f.seller, 0.3), (f.body, 0.1)] {
            any.push(boosted(
                FuzzyTermQuery::new(term(field, plain), d, true),
                boost,
            ));
        }
    }
    // A one-letter prefix would union the postings of a good part of the dictionary.
    if prefix && plain.chars().count() >= 2 {
        for (field, boost) in [(f.name, 0.6), (f.cat, 0.3), (f.seller, 0.3)] {
            any.push(boosted(
                FuzzyTermQuery::new_prefix(term(field, plain), 0, true),
                boost,
            ));
        }
    }
    Box::new(BooleanQuery::new(any))
}

/// Every word must match (somewhere, somehow); `prefix`: the last word may be unfinished (the
/// search box's suggestions). `None` when the text has no words.
pub fn build(
    searcher: &Searcher,
    f: &Fields,
    text: &str,
    filter: &SearchFilter,
    prefix: bool,
) -> Option<Box<dyn Query>> {
    let ws: Vec<(String, String)> = words(text).into_iter().take(MAX_WORDS).collect();
    if ws.is_empty() {
        return None;
    }
    let last = ws.len() - 1;
    let mut all: Vec<(Occur, Box<dyn Query>)> = ws
        .iter()
        .enumerate()
        .map(|(i, (plain, stem))| {
            (
                Occur::Must,
                word_query(searcher, f, plain, stem, prefix && i == last),
            )
        })
        .collect();
    let mut filter_by = |q: Box<dyn Query>| {
        all.push((Occur::Must, Box::new(ConstScoreQuery::new(q, 0.0))));
    };
    if let Some(c) = filter.category {
        filter_by(Box::new(TermQuery::new(
            Term::from_field_u64(f.category, c),
            IndexRecordOption::Basic,
        )));
    }
    if filter.min_minor.is_some() || filter.max_minor.is_some() {
        let bound = |v: Option<i64>| match v {
            Some(v) => Bound::Included(Term::from_field_i64(f.price, v)),
            None => Bound::Unbounded,
        };
        filter_by(Box::new(RangeQuery::new(
            bound(filter.min_minor),
            bound(filter.max_minor),
        )));
    }
    if let Some(city) = &filter.city {
        filter_by(Box::new(TermQuery::new(
            Term::from_field_text(f.city_key, &city_key(city)),
            IndexRecordOption::Basic,
        )));
    }
    Some(Box::new(BooleanQuery::new(all)))
}

/// The search page's price bands, in minor units, both ends included (as the `min`/`max`
/// filters include them, so a band's count is what its link finds).
pub const PRICE_BANDS: [(i64, Option<i64>); 5] = [
    (0, Some(50_000)),
    (50_000, Some(200_000)),
    (200_000, Some(500_000)),
    (500_000, Some(2_000_000)),
    (2_000_000, None),
];

/// Matches per category id, per city and per price band, over every match (not just the page
/// shown).
#[derive(Debug, Clone, Default)]
pub struct Facets {
    pub categories: Vec<(u64, u64)>,
    pub cities: Vec<(String, u64)>,
    /// Matches per [`PRICE_BANDS`] entry.
    pub price_bands: [u64; PRICE_BANDS.len()],
}

type FacetFruit = (
    HashMap<u64, u64>,
    HashMap<String, u64>,
    [u64; PRICE_BANDS.len()],
);

pub struct FacetCollector;

pub struct FacetSegment {
    category: Option<Column<u64>>,
    city: Option<StrColumn>,
    price: Option<Column<i64>>,
    bands: [u64; PRICE_BANDS.len()],
    /// Counts by category id below [`DENSE_CATEGORIES`] (every id a shop has), above in a map;
    /// cities by the segment's term ordinal. Counted per match, so no hashing on the way: a
    /// search for a common word counts tens of thousands of matches.
    categories: Vec<u64>,
    sparse_categories: HashMap<u64, u64>,
    city_ords: Vec<u64>,
}

/// Category ids counted in a plain array.
const DENSE_CATEGORIES: u64 = 4096;

impl Collector for FacetCollector {
    type Fruit = Facets;
    type Child = FacetSegment;

    fn for_segment(
        &self,
        _: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> tantivy::Result<FacetSegment> {
        let city = segment.fast_fields().str("city")?;
        Ok(FacetSegment {
            category: segment.fast_fields().column_opt::<u64>("category")?,
            city_ords: vec![0; city.as_ref().map_or(0, |c| c.num_terms())],
            city,
            price: segment.fast_fields().column_opt::<i64>("price")?,
            bands: [0; PRICE_BANDS.len()],
            categories: Vec::new(),
            sparse_categories: HashMap::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, parts: Vec<FacetFruit>) -> tantivy::Result<Facets> {
        let mut categories: HashMap<u64, u64> = HashMap::new();
        let mut cities: HashMap<String, u64> = HashMap::new();
        let mut price_bands = [0; PRICE_BANDS.len()];
        for (c, t, b) in parts {
            for (sum, n) in price_bands.iter_mut().zip(b) {
                *sum += n;
            }
            for (k, n) in c {
                *categories.entry(k).or_default() += n;
            }
            for (k, n) in t {
                *cities.entry(k).or_default() += n;
            }
        }
        let mut categories: Vec<(u64, u64)> = categories.into_iter().collect();
        categories.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut cities: Vec<(String, u64)> = cities.into_iter().collect();
        cities.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(Facets {
            categories,
            cities,
            price_bands,
        })
    }
}

impl SegmentCollector for FacetSegment {
    type Fruit = FacetFruit;

    fn collect(&mut self, doc: DocId, _: Score) {
        if let Some(c) = self.category.as_ref().and_then(|col| col.first(doc)) {
            if c < DENSE_CATEGORIES {
                let i = c as usize;
                if i >= self.categories.len() {
                    self.categories.resize(i + 1, 0);
                }
                self.categories[i] += 1;
            } else {
                *self.sparse_categories.entry(c).or_default() += 1;
            }
        }
        if let Some(p) = self.price.as_ref().and_then(|col| col.first(doc)) {
            for (n, (lo, hi)) in self.bands.iter_mut().zip(PRICE_BANDS) {
                if p >= lo && hi.is_none_or(|hi| p <= hi) {
                    *n += 1;
                }
            }
        }
        if let Some(city) = &self.city {
            for ord in city.term_ords(doc) {
                if let Some(n) = self.city_ords.get_mut(ord as usize) {
                    *n += 1;
                }
            }
        }
    }

    fn harvest(self) -> Self::Fruit {
        let mut cities = HashMap::new();
        if let Some(col) = &self.city {
            for (ord, &n) in self.city_ords.iter().enumerate() {
                let mut s = String::new();
                if n > 0 && col.ord_to_str(ord as u64, &mut s).unwrap_or(false) {
                    *cities.entry(s).or_default() += n;
                }
            }
        }
        let mut categories = self.sparse_categories;
        for (id, &n) in self.categories.iter().enumerate() {
            if n > 0 {
                *categories.entry(id as u64).or_default() += n;
            }
        }
        (categories, cities, self.bands)
    }
}

/// One page of ranked product ids, the number of matches, and their facets.
pub struct Page {
    pub ids: Vec<u64>,
    pub total: usize,
    pub facets: Facets,
}

pub fn run(
    searcher: &Searcher,
    query: &dyn Query,
    offset: usize,
    limit: usize,
    facets: bool,
) -> tantivy::Result<Page> {
    let top = TopDocs::with_limit(limit.max(1))
        .and_offset(offset)
        .order_by_score();
    let (hits, total, facets) = if facets {
        let (h, t, f) = searcher.search(query, &(top, Count, FacetCollector))?;
        (h, t, f)
    } else {
        let (h, t) = searcher.search(query, &(top, Count))?;
        (h, t, Facets::default())
    };
    let mut ids = Vec::with_capacity(hits.len());
    for (_, addr) in hits {
        let reader = searcher.segment_reader(addr.segment_ord);
        if let Some(id) = reader.fast_fields().u64("id")?.first(addr.doc_id) {
            ids.push(id);
        }
    }
    Ok(Page { ids, total, facets })
}
