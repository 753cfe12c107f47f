//! The SigLIP profile's loader with a generated tiny checkpoint in the Hugging Face layout
//! (no package ships SigLIP weights): names, shapes, determinism, preprocessing, tokens.

use std::collections::HashMap;

use candle_core::Device;
use soko::embed::generated;
use soko::embed::siglip::Siglip;
use soko::embed::{self, Embedder, Error, Profile, preprocess};

const HIDDEN: usize = 32;

fn tiny() -> (tempfile::TempDir, Siglip) {
    let dir = tempfile::tempdir().unwrap();
    generated::write_checkpoint(dir.path(), HIDDEN, 2, 4, 64).unwrap();
    let model = Siglip::load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    (dir, model)
}

#[test]
fn generated_checkpoint_has_the_hugging_face_names_and_shapes() {
    let (dir, _) = tiny();
    let tensors: HashMap<String, candle_core::Tensor> =
        candle_core::safetensors::load(dir.path().join("model.safetensors"), &Device::Cpu).unwrap();
    let expect: [(&str, &[usize]); 12] = [
        ("logit_scale", &[1]),
        ("logit_bias", &[1]),
        (
            "vision_model.embeddings.patch_embedding.weight",
            &[HIDDEN, 3, 16, 16],
        ),
        (
            "vision_model.embeddings.position_embedding.weight",
            &[196, HIDDEN],
        ),
        (
            "vision_model.encoder.layers.1.self_attn.q_proj.weight",
            &[HIDDEN, HIDDEN],
        ),
        (
            "vision_model.encoder.layers.0.mlp.fc1.weight",
            &[64, HIDDEN],
        ),
        ("vision_model.post_layernorm.weight", &[HIDDEN]),
        ("vision_model.head.probe", &[1, 1, HIDDEN]),
        (
            "vision_model.head.attention.in_proj_weight",
            &[3 * HIDDEN, HIDDEN],
        ),
        (
            "text_model.embeddings.token_embedding.weight",
            &[15, HIDDEN],
        ),
        (
            "text_model.embeddings.position_embedding.weight",
            &[64, HIDDEN],
        ),
        ("text_model.head.weight", &[HIDDEN, HIDDEN]),
    ];
    for (name, shape) in expect {
        let t = tensors
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(t.dims(), shape, "{name}");
    }
}

#[test]
fn tiny_siglip_embeds_deterministically_in_one_space() {
    let (_dir, model) = tiny();
    assert_eq!(model.dim(), HIDDEN);
    let photo = image::RgbImage::from_fn(320, 200, |x, y| image::Rgb([x as u8, y as u8, 90]));
    let a = model.embed_image(&photo).unwrap();
    assert_eq!(a.len(), HIDDEN);
    assert!(a.iter().all(|v| v.is_finite()));
    assert_eq!(
        a,
        model.embed_image(&photo).unwrap(),
        "bit-for-bit repeatable"
    );
    let t = model.embed_text("Red motorcycle for sale").unwrap();
    assert_eq!(t.len(), HIDDEN);
    assert_eq!(t, model.embed_text("Red motorcycle for sale").unwrap());
    assert_ne!(t, model.embed_text("fresh coffee beans").unwrap());

    // Through the embedder: concatenated hybrid, 2 × hidden.
    let (image, text) = model.split();
    let profile = Profile {
        name: "siglip-tiny",
        image_dim: HIDDEN,
        text_dim: HIDDEN,
    };
    let e = Embedder::from_parts(profile, Box::new(image), Box::new(text), 2).unwrap();
    let v = e.product(Some(&photo), "red motorcycle").unwrap();
    assert_eq!(v.len(), 2 * HIDDEN);
    let norm: f32 = v.iter().map(|x| x * x).sum();
    assert!((norm - 1.0).abs() < 1e-4);
}

#[test]
fn siglip_text_is_padded_to_the_full_length_with_eos() {
    let (_dir, model) = tiny();
    let ids = model.tokenize("Red MOTORCYCLE zebra").unwrap();
    assert_eq!(ids.len(), 64);
    // red = 3, motorcycle = 5, zebra unknown = 2, then </s> = 1 and pad = 1.
    assert_eq!(&ids[..5], &[3, 5, 2, 1, 1]);
    assert!(ids[3..].iter().all(|id| *id == 1));
    let long = "red ".repeat(200);
    assert_eq!(model.tokenize(&long).unwrap().len(), 64);
}

#[test]
fn siglip_preprocessing_squashes_to_224_with_half_mean_std() {
    let (_dir, model) = tiny();
    // Left half black, right half white, 400×100: squashed (not cropped), so both edges stay.
    let img = image::RgbImage::from_fn(400, 100, |x, _| {
        if x < 200 {
            image::Rgb([0, 0, 0])
        } else {
            image::Rgb([255, 255, 255])
        }
    });
    let px = model.preprocess(&img).unwrap();
    assert_eq!(px.len(), 3 * 224 * 224);
    let plane = 224 * 224;
    for c in 0..3 {
        let row = &px[c * plane + 100 * 224..c * plane + 101 * 224];
        assert!((row[0] + 1.0).abs() < 1e-6, "black is -1, got {}", row[0]);
        assert!(
            (row[223] - 1.0).abs() < 1e-6,
            "white is 1, got {}",
            row[223]
        );
    }
    let grey = image::RgbImage::from_pixel(50, 50, image::Rgb([255, 0, 128]));
    let px = model.preprocess(&grey).unwrap();
    assert!((px[0] - 1.0).abs() < 1e-6);
    assert!((px[plane] + 1.0).abs() < 1e-6);
    assert!((px[2 * plane] - (128.0 / 255.0 - 0.5) / 0.5).abs() < 1e-6);
}

#[test]
fn imagenet_preprocessing_center_crops() {
    // 256×512 portrait: the centre 224×224 of the shorter side, resized to 224.
    let img = image::RgbImage::from_fn(256, 512, |_, y| {
        if y < 100 {
            image::Rgb([255, 0, 0])
        } else {
            image::Rgb([0, 0, 255])
        }
    });
    let crop = preprocess::center_crop(&img, 224, 224.0 / 256.0).unwrap();
    assert_eq!(crop.dimensions(), (224, 224));
    assert!(
        crop.pixels().all(|p| p.0 == [0, 0, 255]),
        "red top band cropped away"
    );
    let hwc = preprocess::to_hwc(&crop, preprocess::IMAGENET_MEAN, preprocess::IMAGENET_STD);
    assert_eq!(hwc.len(), 224 * 224 * 3);
    assert!((hwc[0] - (0.0 - 0.485) / 0.229).abs() < 1e-5);
    assert!((hwc[2] - (1.0 - 0.406) / 0.225).abs() < 1e-5);
}

#[test]
fn missing_siglip_files_say_how_to_get_them() {
    let dir = tempfile::tempdir().unwrap();
    let err = Siglip::load(dir.path()).err().expect("must fail");
    assert!(matches!(err, Error::SiglipMissing { .. }));
    assert!(
        err.to_string().contains("huggingface-cli download"),
        "{err}"
    );
    // A checkpoint with a tensor missing names the file.
    generated::write_checkpoint(dir.path(), HIDDEN, 1, 4, 64).unwrap();
    let text = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
    let deeper = text.replace("\"num_hidden_layers\":1", "\"num_hidden_layers\":2");
    std::fs::write(dir.path().join("config.json"), deeper).unwrap();
    let err = Siglip::load(dir.path()).err().expect("must fail");
    assert!(err.to_string().contains("model.safetensors"), "{err}");
    let cfg = soko::config::embed::Embed {
        profile: soko::config::embed::ProfileName::SiglipBase,
        siglip_dir: dir.path().join("nowhere"),
        ..Default::default()
    };
    assert!(Embedder::load(&cfg).is_err());
    assert_eq!(embed::SIGLIP_BASE.dim(), 1536);
}
