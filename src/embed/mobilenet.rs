//! torchvision's MobileNetV2 (ImageNet) on the CPU: the 1280-d globally pooled feature after
//! the last convolution, and the ImageNet classifier on top (for tests that prove the weights).
//!
//! Plain Rust on height × width × channel buffers: BatchNorm is folded into the convolution
//! weights at load; 1×1 convolutions are matrix products (the `gemm` crate, as candle uses);
//! depthwise 3×3 convolutions are nine shifted multiply-adds over contiguous channels, which
//! the compiler vectorises (candle's grouped convolution is far slower on the CPU).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::{Error, ImageEmbedder, preprocess};

/// Input side: 224×224 pixels.
pub const INPUT: u32 = 224;
/// Length of the pooled feature.
pub const FEATURE_DIM: usize = 1280;
const BN_EPS: f32 = 1e-5;
/// (expansion, output channels, repeats, first stride) of the inverted residual stages.
const STAGES: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

/// An activation map: `h × w × c`, channels contiguous.
struct Map {
    h: usize,
    w: usize,
    c: usize,
    data: Vec<f32>,
}

/// A 1×1 convolution with BatchNorm folded in: weights `[cin][cout]`.
struct Pointwise {
    cin: usize,
    cout: usize,
    w: Vec<f32>,
    b: Vec<f32>,
    relu6: bool,
}

/// A depthwise 3×3 convolution (padding 1) with BatchNorm folded in: weights `[tap][c]`.
struct Depthwise {
    c: usize,
    stride: usize,
    w: Vec<f32>,
    b: Vec<f32>,
}

struct Block {
    expand: Option<Pointwise>,
    dw: Depthwise,
    project: Pointwise,
    residual: bool,
}

/// The whole network, ready to run.
pub struct MobileNetV2 {
    /// First layer: 3×3 stride-2 convolution 3→32, as an im2col matrix `[27][32]`.
    stem: Pointwise,
    blocks: Vec<Block>,
    head: Pointwise,
    classifier_w: Vec<f32>,
    classifier_b: Vec<f32>,
    threads: usize,
}

struct Weights<'a> {
    path: &'a Path,
    tensors: HashMap<String, Tensor>,
}

impl Weights<'_> {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, Error> {
        let invalid = |message: String| Error::ModelInvalid {
            path: self.path.to_owned(),
            message,
        };
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| invalid(format!("tensor {name} is missing")))?;
        if t.dims() != shape {
            return Err(invalid(format!(
                "tensor {name} has shape {:?}, expected {shape:?}",
                t.dims()
            )));
        }
        t.to_dtype(candle_core::DType::F32)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| invalid(format!("tensor {name}: {e}")))
    }

    /// BatchNorm `prefix` as (scale, shift): y = x·scale + shift.
    fn bn(&self, prefix: &str, c: usize) -> Result<(Vec<f32>, Vec<f32>), Error> {
        let gamma = self.get(&format!("{prefix}.weight"), &[c])?;
        let beta = self.get(&format!("{prefix}.bias"), &[c])?;
        let mean = self.get(&format!("{prefix}.running_mean"), &[c])?;
        let var = self.get(&format!("{prefix}.running_var"), &[c])?;
        let scale: Vec<f32> = (0..c)
            .map(|i| gamma[i] / (var[i] + BN_EPS).sqrt())
            .collect();
        let shift = (0..c).map(|i| beta[i] - mean[i] * scale[i]).collect();
        Ok((scale, shift))
    }

    fn pointwise(&self, conv: &str, bn: &str, cin: usize, cout: usize) -> Result<Pointwise, Error> {
        let w = self.get(&format!("{conv}.weight"), &[cout, cin, 1, 1])?;
        let (scale, shift) = self.bn(bn, cout)?;
        let mut folded = vec![0.0; cin * cout];
        for o in 0..cout {
            for i in 0..cin {
                folded[i * cout + o] = w[o * cin + i] * scale[o];
            }
        }
        Ok(Pointwise {
            cin,
            cout,
            w: folded,
            b: shift,
            relu6: true,
        })
    }

    fn depthwise(&self, conv: &str, bn: &str, c: usize, stride: usize) -> Result<Depthwise, Error> {
        let w = self.get(&format!("{conv}.weight"), &[c, 1, 3, 3])?;
        let (scale, shift) = self.bn(bn, c)?;
        let mut folded = vec![0.0; 9 * c];
        for ch in 0..c {
            for tap in 0..9 {
                folded[tap * c + ch] = w[ch * 9 + tap] * scale[ch];
            }
        }
        Ok(Depthwise {
            c,
            stride,
            w: folded,
            b: shift,
        })
    }
}

impl MobileNetV2 {
    /// Load torchvision's state dict converted to safetensors (scripts/setup does that).
    pub fn load(path: &Path, threads: usize) -> Result<MobileNetV2, Error> {
        if !path.is_file() {
            return Err(Error::ModelMissing {
                path: path.to_owned(),
                what: "MobileNetV2 ImageNet weights",
            });
        }
        let tensors = candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| {
            Error::ModelInvalid {
                path: path.to_owned(),
                message: e.to_string(),
            }
        })?;
        let wt = Weights { path, tensors };

        let w = wt.get("features.0.0.weight", &[32, 3, 3, 3])?;
        let (scale, stem_b) = wt.bn("features.0.1", 32)?;
        // im2col column order (ky, kx, channel), matching `stem` below.
        let mut stem_w = vec![0.0; 27 * 32];
        for o in 0..32 {
            for ci in 0..3 {
                for k in 0..9 {
                    stem_w[(k * 3 + ci) * 32 + o] = w[(o * 3 + ci) * 9 + k] * scale[o];
                }
            }
        }

        let mut blocks = Vec::new();
        let (mut cin, mut index) = (32, 1);
        for (t, cout, n, s) in STAGES {
            for r in 0..n {
                let stride = if r == 0 { s } else { 1 };
                let hidden = cin * t;
                let p = format!("features.{index}.conv");
                let block = if t == 1 {
                    Block {
                        expand: None,
                        dw: wt.depthwise(
                            &format!("{p}.0.0"),
                            &format!("{p}.0.1"),
                            hidden,
                            stride,
                        )?,
                        project: Pointwise {
                            relu6: false,
                            ..wt.pointwise(&format!("{p}.1"), &format!("{p}.2"), hidden, cout)?
                        },
                        residual: stride == 1 && cin == cout,
                    }
                } else {
                    Block {
                        expand: Some(wt.pointwise(
                            &format!("{p}.0.0"),
                            &format!("{p}.0.1"),
                            cin,
                            hidden,
                        )?),
                        dw: wt.depthwise(
                            &format!("{p}.1.0"),
                            &format!("{p}.1.1"),
                            hidden,
                            stride,
                        )?,
                        project: Pointwise {
                            relu6: false,
                            ..wt.pointwise(&format!("{p}.2"), &format!("{p}.3"), hidden, cout)?
                        },
                        residual: stride == 1 && cin == cout,
                    }
                };
                blocks.push(block);
                cin = cout;
                index += 1;
            }
        }
        let head = wt.pointwise("features.18.0", "features.18.1", 320, FEATURE_DIM)?;
        let classifier_w = wt.get("classifier.1.weight", &[1000, FEATURE_DIM])?;
        let classifier_b = wt.get("classifier.1.bias", &[1000])?;
        Ok(MobileNetV2 {
            stem: Pointwise {
                cin: 27,
                cout: 32,
                w: stem_w,
                b: stem_b,
                relu6: true,
            },
            blocks,
            head,
            classifier_w,
            classifier_b,
            threads: threads.max(1),
        })
    }

    /// The network input for a photo: centre crop (224/256 of the shorter side), 224×224,
    /// ImageNet mean/std, `h × w × c`.
    pub fn preprocess(img: &image::RgbImage) -> Result<Vec<f32>, Error> {
        let crop = preprocess::center_crop(img, INPUT, 224.0 / 256.0)?;
        Ok(preprocess::to_hwc(
            &crop,
            preprocess::IMAGENET_MEAN,
            preprocess::IMAGENET_STD,
        ))
    }

    /// The 1280-d pooled feature of a preprocessed 224×224 input.
    pub fn features(&self, input: &[f32]) -> Vec<f32> {
        let side = INPUT as usize;
        debug_assert_eq!(input.len(), side * side * 3);
        let mut x = self.stem(input, side);
        for block in &self.blocks {
            let before = block.residual.then(|| x.data.clone());
            if let Some(expand) = &block.expand {
                x = self.pointwise(expand, &x);
            }
            x = depthwise(&block.dw, &x);
            x = self.pointwise(&block.project, &x);
            if let Some(before) = before {
                x.data.iter_mut().zip(&before).for_each(|(a, b)| *a += b);
            }
        }
        let x = self.pointwise(&self.head, &x);
        // Global average pool.
        let mut pooled = vec![0.0f32; x.c];
        for px in x.data.chunks_exact(x.c) {
            pooled.iter_mut().zip(px).for_each(|(p, v)| *p += v);
        }
        let n = (x.h * x.w) as f32;
        pooled.iter_mut().for_each(|p| *p /= n);
        pooled
    }

    /// ImageNet logits (1000 classes) of a pooled feature.
    pub fn classify(&self, features: &[f32]) -> Vec<f32> {
        self.classifier_w
            .chunks_exact(FEATURE_DIM)
            .zip(&self.classifier_b)
            .map(|(row, b)| b + row.iter().zip(features).map(|(w, f)| w * f).sum::<f32>())
            .collect()
    }

    /// 3×3 stride-2 convolution 3→32 with padding 1, via im2col and one matrix product.
    fn stem(&self, input: &[f32], side: usize) -> Map {
        let out = (side - 1) / 2 + 1;
        let mut cols = vec![0.0f32; out * out * 27];
        cols.par_chunks_mut(out * 27)
            .enumerate()
            .for_each(|(oy, row)| {
                for ox in 0..out {
                    let cell = &mut row[ox * 27..ox * 27 + 27];
                    for ky in 0..3 {
                        let iy = (oy * 2 + ky) as isize - 1;
                        for kx in 0..3 {
                            let ix = (ox * 2 + kx) as isize - 1;
                            if iy < 0 || ix < 0 || iy >= side as isize || ix >= side as isize {
                                continue;
                            }
                            let src = (iy as usize * side + ix as usize) * 3;
                            let k = (ky * 3 + kx) * 3;
                            cell[k..k + 3].copy_from_slice(&input[src..src + 3]);
                        }
                    }
                }
            });
        let map = Map {
            h: out,
            w: out,
            c: 27,
            data: cols,
        };
        self.pointwise(&self.stem, &map)
    }

    /// `x · W + b` (then ReLU6): a 1×1 convolution as one matrix product.
    fn pointwise(&self, pw: &Pointwise, x: &Map) -> Map {
        debug_assert_eq!(x.c, pw.cin);
        let m = x.h * x.w;
        let mut out = Vec::with_capacity(m * pw.cout);
        for _ in 0..m {
            out.extend_from_slice(&pw.b);
        }
        let parallelism = if self.threads > 1 && m * pw.cin * pw.cout > 1 << 18 {
            gemm::Parallelism::Rayon(self.threads)
        } else {
            gemm::Parallelism::None
        };
        // SAFETY: the three buffers hold exactly m×cout, m×cin and cin×cout row-major f32s,
        // and the strides below describe that layout; `out` does not alias the inputs.
        unsafe {
            gemm::gemm(
                m,
                pw.cout,
                pw.cin,
                out.as_mut_ptr(),
                1,
                pw.cout as isize,
                true,
                x.data.as_ptr(),
                1,
                pw.cin as isize,
                pw.w.as_ptr(),
                1,
                pw.cout as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                parallelism,
            );
        }
        if pw.relu6 {
            out.iter_mut().for_each(|v| *v = v.clamp(0.0, 6.0));
        }
        Map {
            h: x.h,
            w: x.w,
            c: pw.cout,
            data: out,
        }
    }
}

/// Depthwise 3×3 convolution, padding 1, then ReLU6: per output pixel, nine multiply-adds of
/// a shifted input pixel's channels with that tap's weights. Rows run in parallel.
fn depthwise(dw: &Depthwise, x: &Map) -> Map {
    let c = dw.c;
    debug_assert_eq!(x.c, c);
    let (oh, ow) = ((x.h - 1) / dw.stride + 1, (x.w - 1) / dw.stride + 1);
    let mut out = vec![0.0f32; oh * ow * c];
    out.par_chunks_mut(ow * c)
        .enumerate()
        .for_each(|(oy, row)| {
            for ox in 0..ow {
                let acc = &mut row[ox * c..(ox + 1) * c];
                acc.copy_from_slice(&dw.b);
                for ky in 0..3 {
                    let iy = (oy * dw.stride + ky) as isize - 1;
                    if iy < 0 || iy >= x.h as isize {
                        continue;
                    }
                    for kx in 0..3 {
                        let ix = (ox * dw.stride + kx) as isize - 1;
                        if ix < 0 || ix >= x.w as isize {
                            continue;
                        }
                        let src = (iy as usize * x.w + ix as usize) * c;
                        let input = &x.data[src..src + c];
                        let w = &dw.w[(ky * 3 + kx) * c..(ky * 3 + kx + 1) * c];
                        for ((a, i), w) in acc.iter_mut().zip(input).zip(w) {
                            *a += i * w;
                        }
                    }
                }
                acc.iter_mut().for_each(|v| *v = v.clamp(0.0, 6.0));
            }
        });
    Map {
        h: oh,
        w: ow,
        c,
        data: out,
    }
}

impl ImageEmbedder for MobileNetV2 {
    fn dim(&self) -> usize {
        FEATURE_DIM
    }

    fn embed(&self, img: &image::RgbImage) -> Result<Vec<f32>, Error> {
        let input = Self::preprocess(img)?;
        Ok(self.features(&input))
    }
}
