//! The maths on a small known event matrix, with the expected numbers worked by hand.
//!
//! Actors a, b, c; items 1, 2, 3:
//!   a: view 1, click 2                 -> r(a,1) = 1,   r(a,2) = 2
//!   b: view 1, view 2, whatsapp 2      -> r(b,1) = 1,   r(b,2) = 1 + 3 = 4
//!   c: wishlist 1, view 3              -> r(c,1) = 2.5, r(c,3) = 1
//! Squared norms: |1|² = 1 + 1 + 6.25 = 8.25, |2|² = 4 + 16 = 20, |3|² = 1.
//! dot(1,2) = 1·2 + 1·4 = 6 over 2 common actors: cos = 6 / √165 = 0.467099366...
//!   shrunk with λ = 2: · 2/(2+2) = 0.233549683...
//! dot(1,3) = 2.5 over 1 common actor: cos = 2.5 / √8.25 = 0.870388279...
//!   below the default minimum support of 2; with support 1 allowed: · 1/3 = 0.290129426...

use super::*;

const A: u32 = 0;
const B: u32 = 1;
const C: u32 = 2;

fn matrix() -> Matrix {
    let mut m = Matrix::new();
    let mut ev = |actor, item, kind: EventKind| m.add(actor, item, kind.weight());
    ev(A, 1, EventKind::View);
    ev(A, 2, EventKind::Click);
    ev(B, 1, EventKind::View);
    ev(B, 2, EventKind::View);
    ev(B, 2, EventKind::WhatsappStart);
    ev(C, 1, EventKind::Wishlist);
    ev(C, 3, EventKind::View);
    m
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn weights_are_the_originals() {
    assert_eq!(EventKind::View.weight(), 1.0);
    assert_eq!(EventKind::Click.weight(), 2.0);
    assert_eq!(EventKind::Wishlist.weight(), 2.5);
    assert_eq!(EventKind::WhatsappStart.weight(), 3.0);
    assert_eq!(
        EventKind::parse("whatsapp_start"),
        Some(EventKind::WhatsappStart)
    );
    assert_eq!(EventKind::parse("purchase"), None);
}

#[test]
fn norms_of_the_known_matrix() {
    let (m, p) = (matrix(), Params::default());
    assert!(close(m.norm_sq(1, &p), 8.25));
    assert!(close(m.norm_sq(2, &p), 20.0));
    assert!(close(m.norm_sq(3, &p), 1.0));
    assert_eq!(m.norm_sq(99, &p), 0.0);
}

#[test]
fn shrunk_cosine_with_minimum_support() {
    let (m, p) = (matrix(), Params::default());
    let n = m.neighbours(1, |j| m.norm_sq(j, &p), 1000, &p);
    // Item 3 shares one actor with item 1: not a neighbour at the default support of 2.
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].0, 2);
    assert!(close(n[0].1, 6.0 / 165f64.sqrt() * 0.5), "{n:?}");
    assert!(close(n[0].1, 0.233_549_683_248_456_87));
    // Symmetric.
    let back = m.neighbours(2, |j| m.norm_sq(j, &p), 1000, &p);
    assert_eq!(back.len(), 1);
    assert!(close(back[0].1, n[0].1));
}

#[test]
fn support_of_one_lets_the_single_shared_actor_count_but_shrunk_harder() {
    let m = matrix();
    let p = Params {
        min_support: 1,
        ..Params::default()
    };
    let n = m.neighbours(1, |j| m.norm_sq(j, &p), 1000, &p);
    assert_eq!(n.iter().map(|x| x.0).collect::<Vec<_>>(), vec![3, 2]);
    assert!(close(n[0].1, 2.5 / 8.25f64.sqrt() / 3.0));
    assert!(close(n[0].1, 0.290_129_426_592_829_75));
    assert!(close(n[1].1, 0.233_549_683_248_456_87));
    // The neighbour list is cut at `neighbours`.
    let one = Params {
        neighbours: 1,
        ..p.clone()
    };
    assert_eq!(m.neighbours(1, |j| m.norm_sq(j, &one), 1000, &one).len(), 1);
    // A crawler row longer than max_row is ignored: a (2 items) and b (2 items) drop out.
    assert_eq!(m.neighbours(1, |j| m.norm_sq(j, &p), 1, &p), vec![]);
}

#[test]
fn a_reloading_visitor_is_capped() {
    let p = Params::default();
    let mut m = matrix();
    for _ in 0..50 {
        m.add(A, 1, EventKind::View.weight());
    }
    // r(a,1) = 51 capped at 10: |1|² = 100 + 1 + 6.25.
    assert!(close(m.norm_sq(1, &p), 107.25));
    // dot(1,2) = 10·2 + 1·4 = 24; cos = 24 / √(107.25·20); shrunk by 1/2.
    let n = m.neighbours(1, |j| m.norm_sq(j, &p), 1000, &p);
    assert!(close(n[0].1, 24.0 / (107.25f64 * 20.0).sqrt() * 0.5));
}

#[test]
fn blend_normalises_each_source_then_weighs_six_to_four() {
    let p = Params::default();
    let b = blend(&[(2, 0.4), (3, 0.2)], &[(3, 0.9), (4, 0.45)], &p);
    // collab normalised: 2 -> 1, 3 -> 0.5; visual: 3 -> 1, 4 -> 0.5.
    // 3: 0.6·0.5 + 0.4·1 = 0.7; 2: 0.6·1 = 0.6; 4: 0.4·0.5 = 0.2.
    let got: Vec<(u64, Source)> = b.iter().map(|s| (s.id, s.source)).collect();
    assert_eq!(
        got,
        vec![(3, Source::Blend), (2, Source::Collab), (4, Source::Visual)]
    );
    assert!(close(b[0].score, 0.7) && close(b[1].score, 0.6) && close(b[2].score, 0.2));
}

#[test]
fn blend_degrades_to_the_source_that_exists() {
    let p = Params::default();
    let c = blend(&[(2, 0.4), (3, 0.2)], &[], &p);
    assert_eq!(
        c.iter().map(|s| s.score).collect::<Vec<_>>(),
        vec![1.0, 0.5]
    );
    assert!(c.iter().all(|s| s.source == Source::Collab));
    // Cold start: no co-engagement, only visual neighbours.
    let v = blend(&[], &[(7, 0.8), (8, -0.3)], &p);
    assert_eq!(v.len(), 1);
    assert_eq!((v[0].id, v[0].source), (7, Source::Visual));
    assert!(blend(&[], &[], &p).is_empty());
}

#[test]
fn visual_neighbours_by_cosine() {
    let target = [1.0f32, 0.0];
    let near = [0.8f32, 0.6];
    let far = [0.0f32, 1.0];
    let opposite = [-1.0f32, 0.0];
    let n = visual_neighbours(
        &target,
        &[(5, &far[..]), (6, &near[..]), (7, &opposite[..])],
        10,
    );
    assert_eq!(
        n.len(),
        1,
        "orthogonal and opposite items are no neighbours"
    );
    assert_eq!(n[0].0, 6);
    assert!((n[0].1 - 0.8).abs() < 1e-6);
    assert_eq!(cosine(&target, &[1.0, 2.0, 3.0]), 0.0);
}

#[test]
fn for_you_votes_by_weight_and_recency_and_skips_contacted_items() {
    let p = Params::default();
    let week = 7.0 * 24.0 * 3600.0;
    let neighbours: HashMap<u64, Vec<(u64, f64)>> =
        [(1, vec![(2, 0.5), (3, 0.2)]), (2, vec![(3, 0.4), (1, 0.1)])].into();
    let history = vec![
        Seen {
            item: 1,
            weight: 3.0,
            age_secs: 0.0,
            contacted: false,
        },
        // Weight 20 capped at 10, one half-life (a week) old: votes with 5.
        Seen {
            item: 2,
            weight: 20.0,
            age_secs: week,
            contacted: true,
        },
    ];
    let r = for_you(&history, &neighbours, 10, &p);
    // 3: 3·0.2 + 5·0.4 = 2.6; 1: 5·0.1 = 0.5; 2 was contacted about: left out.
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].0, 3);
    assert!(close(r[0].1, 2.6));
    assert_eq!(r[1].0, 1);
    assert!(close(r[1].1, 0.5));
    assert!(for_you(&[], &neighbours, 10, &p).is_empty());
}

#[test]
fn trending_decays_by_half_life() {
    let hl = 48.0 * 3600.0;
    let s = trending_score(
        &[
            (EventKind::WhatsappStart, 0.0),
            (EventKind::Click, hl),
            (EventKind::View, 2.0 * hl),
        ],
        hl,
    );
    // 3 + 2·0.5 + 1·0.25
    assert!(close(s, 4.25));
    assert!(close(
        decay(24.0 * 3600.0, hl),
        std::f64::consts::FRAC_1_SQRT_2
    ));
    assert!(close(decay(-5.0, hl), 1.0));
}

#[test]
fn fill_tops_up_with_popular_items_without_repeats() {
    let primary = vec![Scored {
        id: 2,
        score: 1.0,
        source: Source::Collab,
    }];
    let out = fill(primary, &[1, 2, 9, 8, 7], &[1], 3);
    let got: Vec<(u64, Source)> = out.iter().map(|s| (s.id, s.source)).collect();
    assert_eq!(
        got,
        vec![
            (2, Source::Collab),
            (9, Source::Popular),
            (8, Source::Popular)
        ]
    );
}
