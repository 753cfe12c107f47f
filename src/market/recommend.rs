//! Recommendation maths, pure: event weights, item-to-item similarity from co-engagement, the
//! 0.6 collaborative / 0.4 visual blend, "recommended for you", and time-decayed trending.
//!
//! The visitor x item matrix holds, per (actor, item), the sum of the actor's event weights on
//! the item (view 1, click 2, wishlist 2.5, whatsapp_start 3, as the original Soko specified),
//! capped at [`Params::cell_cap`] so one visitor reloading a page forty times is not forty
//! visitors. An actor is an account, or an anonymous visitor cookie.

use std::collections::HashMap;

/// What a buyer did with a product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    View,
    Click,
    Wishlist,
    WhatsappStart,
}

impl EventKind {
    pub fn weight(self) -> f64 {
        match self {
            EventKind::View => 1.0,
            EventKind::Click => 2.0,
            EventKind::Wishlist => 2.5,
            EventKind::WhatsappStart => 3.0,
        }
    }

    /// The `events.kind` column's spelling.
    pub fn parse(s: &str) -> Option<EventKind> {
        Some(match s {
            "view" => EventKind::View,
            "click" => EventKind::Click,
            "wishlist" => EventKind::Wishlist,
            "whatsapp_start" => EventKind::WhatsappStart,
            _ => return None,
        })
    }
}

/// The knobs of the maths; the defaults are the documented behaviour.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// Two items are neighbours only when at least this many actors engaged with both.
    pub min_support: u32,
    /// Shrinkage λ: a similarity is multiplied by `n / (n + λ)` where `n` is the number of
    /// common actors, so a pair seen together by few people ranks below a well-supported one.
    pub shrinkage: f64,
    /// Largest matrix cell.
    pub cell_cap: f64,
    /// Neighbours kept per item.
    pub neighbours: usize,
    pub collab_weight: f64,
    pub visual_weight: f64,
    /// Half-life of trending engagement, in seconds.
    pub trending_half_life_secs: f64,
    /// Half-life of a visitor's own history in "recommended for you", in seconds.
    pub history_half_life_secs: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            min_support: 2,
            shrinkage: 2.0,
            cell_cap: 10.0,
            neighbours: 20,
            collab_weight: 0.6,
            visual_weight: 0.4,
            trending_half_life_secs: 48.0 * 3600.0,
            history_half_life_secs: 7.0 * 24.0 * 3600.0,
        }
    }
}

impl Params {
    pub fn cell(&self, raw_weight: f64) -> f64 {
        raw_weight.clamp(0.0, self.cell_cap)
    }
}

/// `0.5^(age / half_life)`; the future counts as now.
pub fn decay(age_secs: f64, half_life_secs: f64) -> f64 {
    if half_life_secs <= 0.0 {
        return if age_secs <= 0.0 { 1.0 } else { 0.0 };
    }
    0.5f64.powf(age_secs.max(0.0) / half_life_secs)
}

/// A sparse visitor x item matrix of raw (uncapped) weight sums. Actors are small integers
/// (the caller interns its account / cookie keys).
#[derive(Debug, Default, Clone)]
pub struct Matrix {
    rows: HashMap<u32, HashMap<u64, f64>>,
    cols: HashMap<u64, HashMap<u32, f64>>,
}

impl Matrix {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add `weight` to the cell (actor, item).
    pub fn add(&mut self, actor: u32, item: u64, weight: f64) {
        *self.rows.entry(actor).or_default().entry(item).or_default() += weight;
        *self.cols.entry(item).or_default().entry(actor).or_default() += weight;
    }

    /// Σ over actors of the capped cell squared: the item's squared norm, as far as this
    /// matrix knows it (the worker keeps the exact value per item in the database).
    pub fn norm_sq(&self, item: u64, p: &Params) -> f64 {
        self.cols
            .get(&item)
            .map_or(0.0, |c| c.values().map(|w| p.cell(*w).powi(2)).sum())
    }

    pub fn items(&self) -> impl Iterator<Item = u64> + '_ {
        self.cols.keys().copied()
    }

    /// Item-to-item similarity of `item` with every co-engaged item: shrunk cosine,
    /// `cos(i, j) · n / (n + λ)`, kept when `n >= min_support`; best first, at most
    /// `p.neighbours`. `norm_sq` gives each item's squared norm over the whole matrix (pass
    /// `|j| self.norm_sq(j, p)` when this matrix is the whole matrix). Actors with more than
    /// `max_row` items (crawlers that escaped the bot filter) are ignored.
    pub fn neighbours(
        &self,
        item: u64,
        norm_sq: impl Fn(u64) -> f64,
        max_row: usize,
        p: &Params,
    ) -> Vec<(u64, f64)> {
        let Some(col) = self.cols.get(&item) else {
            return Vec::new();
        };
        let mut acc: HashMap<u64, (f64, u32)> = HashMap::new();
        for (actor, w_i) in col {
            let Some(row) = self.rows.get(actor) else {
                continue;
            };
            if row.len() > max_row {
                continue;
            }
            let w_i = p.cell(*w_i);
            for (other, w_j) in row {
                if *other != item {
                    let e = acc.entry(*other).or_default();
                    e.0 += w_i * p.cell(*w_j);
                    e.1 += 1;
                }
            }
        }
        let n_i = norm_sq(item);
        let mut out: Vec<(u64, f64)> = acc
            .into_iter()
            .filter(|(_, (_, n))| *n >= p.min_support.max(1))
            .filter_map(|(j, (dot, n))| {
                let denom = (n_i * norm_sq(j)).sqrt();
                (denom > 0.0 && dot > 0.0).then(|| {
                    let support = f64::from(n);
                    (j, dot / denom * support / (support + p.shrinkage))
                })
            })
            .collect();
        rank(&mut out);
        out.truncate(p.neighbours);
        out
    }
}

/// Best first; ties by smaller id, so results are deterministic.
pub fn rank(v: &mut [(u64, f64)]) {
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
}

/// Where a recommended item came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Both co-engagement and visual similarity.
    Blend,
    Collab,
    Visual,
    /// Cold start: popular in the item's category, or trending.
    Popular,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Blend => "blend",
            Source::Collab => "collab",
            Source::Visual => "visual",
            Source::Popular => "popular",
        }
    }

    pub fn parse(s: &str) -> Option<Source> {
        Some(match s {
            "blend" => Source::Blend,
            "collab" => Source::Collab,
            "visual" => Source::Visual,
            "popular" => Source::Popular,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub id: u64,
    pub score: f64,
    pub source: Source,
}

/// Scale a source's scores by its best one, so each lies in [0, 1] (negatives count as 0).
pub fn normalise(v: &[(u64, f64)]) -> HashMap<u64, f64> {
    let max = v.iter().map(|x| x.1).fold(0.0f64, f64::max);
    v.iter()
        .map(|(id, s)| (*id, if max > 0.0 { s.max(0.0) / max } else { 0.0 }))
        .collect()
}

/// Blend collaborative and visual neighbours: each source normalised by its best score, then
/// `0.6 · collab + 0.4 · visual`. A source with no candidates at all (no co-engagement yet, or
/// no embeddings) drops out and the other one counts alone: an item never loses its neighbours
/// because one signal is missing.
pub fn blend(collab: &[(u64, f64)], visual: &[(u64, f64)], p: &Params) -> Vec<Scored> {
    let c = normalise(collab);
    let v = normalise(visual);
    let (wc, wv) = match (c.is_empty(), v.is_empty()) {
        (false, false) => (p.collab_weight, p.visual_weight),
        (false, true) => (1.0, 0.0),
        (true, false) => (0.0, 1.0),
        (true, true) => return Vec::new(),
    };
    let mut ids: Vec<u64> = c.keys().chain(v.keys()).copied().collect();
    ids.sort_unstable();
    ids.dedup();
    let mut out: Vec<Scored> = ids
        .into_iter()
        .map(|id| {
            let (sc, sv) = (
                c.get(&id).copied().unwrap_or(0.0),
                v.get(&id).copied().unwrap_or(0.0),
            );
            let source = match (sc > 0.0, sv > 0.0) {
                (true, true) => Source::Blend,
                (true, false) => Source::Collab,
                _ => Source::Visual,
            };
            Scored {
                id,
                score: wc * sc + wv * sv,
                source,
            }
        })
        .filter(|s| s.score > 0.0)
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
    out.truncate(p.neighbours);
    out
}

/// Cosine similarity of two vectors (0 when either is zero or their lengths differ).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() {
        return 0.0;
    }
    let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}

/// Brute-force visual neighbours of `target` among `candidates` (id, vector): positive
/// cosines, best first, at most `k`. The lead can swap this for Milvus's ANN search.
pub fn visual_neighbours(
    target: &[f32],
    candidates: &[(u64, &[f32])],
    k: usize,
) -> Vec<(u64, f64)> {
    let mut out: Vec<(u64, f64)> = candidates
        .iter()
        .map(|(id, v)| (*id, cosine(target, v)))
        .filter(|(_, s)| *s > 0.0)
        .collect();
    rank(&mut out);
    out.truncate(k);
    out
}

/// One item of a visitor's history.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub item: u64,
    /// Raw sum of the visitor's event weights on the item.
    pub weight: f64,
    /// Seconds since the visitor last engaged with it.
    pub age_secs: f64,
    /// The visitor already tapped "Chat on WhatsApp" for it.
    pub contacted: bool,
}

/// "Recommended for you": every history item votes for its neighbours with
/// `cell(weight) · decay(age, history half-life) · neighbour score`; items the visitor already
/// contacted the seller about are left out. Best first, at most `k`.
pub fn for_you(
    history: &[Seen],
    neighbours: &HashMap<u64, Vec<(u64, f64)>>,
    k: usize,
    p: &Params,
) -> Vec<(u64, f64)> {
    let mut acc: HashMap<u64, f64> = HashMap::new();
    for h in history {
        let vote = p.cell(h.weight) * decay(h.age_secs, p.history_half_life_secs);
        for (n, s) in neighbours.get(&h.item).map(Vec::as_slice).unwrap_or(&[]) {
            *acc.entry(*n).or_default() += vote * s;
        }
    }
    for h in history.iter().filter(|h| h.contacted) {
        acc.remove(&h.item);
    }
    let mut out: Vec<(u64, f64)> = acc.into_iter().filter(|(_, s)| *s > 0.0).collect();
    rank(&mut out);
    out.truncate(k);
    out
}

/// Trending: `Σ weight · 0.5^(age / half-life)` over an item's events, each given as
/// (kind, age in seconds).
pub fn trending_score(events: &[(EventKind, f64)], half_life_secs: f64) -> f64 {
    events
        .iter()
        .map(|(k, age)| k.weight() * decay(*age, half_life_secs))
        .sum()
}

/// `primary`, then `fallback` items not already in it and not excluded, up to `k`.
pub fn fill(primary: Vec<Scored>, fallback: &[u64], exclude: &[u64], k: usize) -> Vec<Scored> {
    let mut out: Vec<Scored> = primary
        .into_iter()
        .filter(|s| !exclude.contains(&s.id))
        .take(k)
        .collect();
    for id in fallback {
        if out.len() >= k {
            break;
        }
        if !exclude.contains(id) && !out.iter().any(|s| s.id == *id) {
            out.push(Scored {
                id: *id,
                score: 0.0,
                source: Source::Popular,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests;
