//! The default embedding profile with its real weights (installed by scripts/setup) on real
//! photographs (scikit-image's samples). A missing model directory fails these tests: CI
//! always has the models, so a skip would hide a broken set-up.

use std::path::PathBuf;
use std::sync::OnceLock;

use soko::embed::mobilenet::MobileNetV2;
use soko::embed::{self, Embedder};

pub fn model_dir() -> PathBuf {
    std::env::var_os("SOKO_TEST_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/opt/soko/models".into())
}

pub fn photo(name: &str) -> image::RgbImage {
    let path = model_dir().join(embed::SAMPLE_PHOTOS_DIR).join(name);
    image::open(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/setup)", path.display()))
        .to_rgb8()
}

fn embedder() -> &'static Embedder {
    static E: OnceLock<Embedder> = OnceLock::new();
    E.get_or_init(|| {
        Embedder::load_default(&model_dir(), 2)
            .unwrap_or_else(|e| panic!("loading the default embedding models: {e}"))
    })
}

fn mobilenet() -> &'static MobileNetV2 {
    static M: OnceLock<MobileNetV2> = OnceLock::new();
    M.get_or_init(|| {
        MobileNetV2::load(&model_dir().join(embed::MOBILENET_FILE), 2)
            .unwrap_or_else(|e| panic!("{e}"))
    })
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn top5(img: &image::RgbImage) -> Vec<usize> {
    let net = mobilenet();
    let input = MobileNetV2::preprocess(img).unwrap();
    let logits = net.classify(&net.features(&input));
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    idx.sort_by(|a, b| logits[*b].total_cmp(&logits[*a]));
    idx.truncate(5);
    idx
}

#[test]
fn mobilenet_classifies_imagenet_photos_sensibly() {
    // ImageNet class indices: 281-285 domestic cats; 967 espresso, 968 cup, 504 coffee mug;
    // 670 motor scooter, 665 moped; 812 space shuttle, 657 missile, 744 projectile.
    let cat = top5(&photo("chelsea.png"));
    assert!(
        (281..=285).contains(&cat[0]),
        "chelsea.png top-5 {cat:?}: a cat class should lead"
    );
    let coffee = top5(&photo("coffee.png"));
    assert!(
        [967, 968, 504].contains(&coffee[0]),
        "coffee.png top-5 {coffee:?}: espresso/cup/coffee mug should lead"
    );
    let moto = top5(&photo("motorcycle_left.png"));
    assert!(
        moto.iter().any(|c| [670, 665].contains(c)),
        "motorcycle_left.png top-5 {moto:?}: motor scooter or moped expected"
    );
}

#[test]
fn motorcycle_photos_are_nearest_each_other() {
    let e = embedder();
    let q = e.query_image(&photo("motorcycle_left.png")).unwrap();
    assert_eq!(q.len(), 1664);
    let score = |name: &str| dot(&q, &e.query_image(&photo(name)).unwrap());
    let (moto, cat, coffee, astronaut) = (
        score("motorcycle_right.png"),
        score("chelsea.png"),
        score("coffee.png"),
        score("astronaut.png"),
    );
    assert!(
        moto > cat && moto > coffee && moto > astronaut,
        "motorcycle {moto} should beat cat {cat}, coffee {coffee}, astronaut {astronaut}"
    );
}

#[test]
fn text_query_finds_the_matching_title() {
    let e = embedder();
    let q = e.query_text("red motorcycle").unwrap();
    let bike = e
        .query_text("Honda 125cc motorbike, red, low mileage")
        .unwrap();
    let beans = e
        .query_text("fresh coffee beans from Kiambu, 1 kg")
        .unwrap();
    assert!(
        dot(&q, &bike) > dot(&q, &beans) + 0.1,
        "motorbike {} vs coffee {}",
        dot(&q, &bike),
        dot(&q, &beans)
    );
}

#[test]
fn product_vectors_follow_the_hybrid_weights_and_are_deterministic() {
    let e = embedder();
    let bike = photo("motorcycle_right.png");
    let a = e.product(Some(&bike), "Red motorcycle for sale").unwrap();
    let b = e.product(Some(&bike), "Red motorcycle for sale").unwrap();
    assert_eq!(a, b, "same input, same vector (bit for bit)");
    assert_eq!(a.len(), e.profile().dim());
    assert!((dot(&a, &a) - 1.0).abs() < 1e-4);
    // A photo query scores √0.6·cos(image): the product's own photo gives √0.6.
    let q = e.query_image(&bike).unwrap();
    assert!((dot(&q, &a) - embed::IMAGE_WEIGHT.sqrt()).abs() < 1e-4);
    // A text query scores √0.4·cos(text).
    let t = e.query_text("Red motorcycle for sale").unwrap();
    assert!((dot(&t, &a) - embed::TEXT_WEIGHT.sqrt()).abs() < 1e-4);
    // Without a photo the image part is zeros.
    let no_photo = e.product(None, "Red motorcycle for sale").unwrap();
    assert!(no_photo[..1280].iter().all(|x| *x == 0.0));
    assert!((dot(&no_photo, &a) - embed::TEXT_WEIGHT).abs() < 1e-4);
}

#[test]
fn missing_model_dir_names_the_file_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let err = Embedder::load_default(dir.path(), 1)
        .err()
        .expect("must fail");
    let msg = err.to_string();
    assert!(msg.contains("mobilenet_v2.safetensors"), "{msg}");
    assert!(msg.contains("scripts/setup"), "{msg}");
}

#[test]
fn tiny_and_odd_photos() {
    let e = embedder();
    let err = e.query_image(&image::RgbImage::new(4, 4)).unwrap_err();
    assert!(err.to_string().contains("too small"), "{err}");
    // A long thin photo still embeds (centre crop of the shorter side).
    let wide = image::RgbImage::from_pixel(900, 60, image::Rgb([200, 30, 30]));
    assert_eq!(e.query_image(&wide).unwrap().len(), 1664);
}
