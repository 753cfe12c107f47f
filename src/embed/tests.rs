use super::*;

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn cos(a: &[f32], b: &[f32]) -> f32 {
    dot(a, b) / (dot(a, a).sqrt() * dot(b, b).sqrt())
}

#[test]
fn hybrid_inner_product_is_weighted_cosines() {
    let (ia, ta) = (vec![3.0, -1.0, 2.0, 0.5], vec![1.0, 2.0, -0.5]);
    let (ib, tb) = (vec![-1.0, 4.0, 0.0, 2.0], vec![0.3, 1.0, 2.0]);
    let a = hybrid(Some(&ia), &ta, 4);
    let b = hybrid(Some(&ib), &tb, 4);
    assert_eq!(a.len(), 7);
    let want = 0.6 * cos(&ia, &ib) + 0.4 * cos(&ta, &tb);
    assert!(
        (dot(&a, &b) - want).abs() < 1e-6,
        "{} vs {want}",
        dot(&a, &b)
    );
    assert!(
        (dot(&a, &a) - 1.0).abs() < 1e-6,
        "a product with a photo is a unit vector"
    );
    // Identical products score exactly 1.
    assert!((dot(&a, &hybrid(Some(&ia), &ta, 4)) - 1.0).abs() < 1e-6);
}

#[test]
fn hybrid_without_photo_has_zero_image_part() {
    let t = vec![1.0, 1.0];
    let v = hybrid(None, &t, 3);
    assert_eq!(&v[..3], &[0.0, 0.0, 0.0]);
    let want = (0.4f32).sqrt() / 2f32.sqrt();
    assert!((v[3] - want).abs() < 1e-7 && (v[4] - want).abs() < 1e-7);
    // Against a product with a photo only the text term remains.
    let other = hybrid(Some(&[1.0, 0.0, 0.0]), &[1.0, 0.0], 3);
    assert!((dot(&v, &other) - 0.4 * cos(&t, &[1.0, 0.0])).abs() < 1e-6);
}

#[test]
fn zero_vectors_stay_zero() {
    let v = hybrid(Some(&[0.0, 0.0]), &[0.0], 2);
    assert_eq!(v, vec![0.0, 0.0, 0.0]);
}

#[test]
fn profile_dimensions() {
    assert_eq!(MOBILENET_MINILM.dim(), 1664);
    assert_eq!(SIGLIP_BASE.dim(), 1536);
    assert_eq!(ProfileName::MobilenetMinilm.profile(), MOBILENET_MINILM);
}
