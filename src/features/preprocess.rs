//! The reference preprocessing of the foundation backbones, as their Hugging Face image
//! processors run it (`CLIPImageProcessor`, and `BitImageProcessor` for DINOv2, PIL backend):
//! grayscale to RGB (channel copied, PIL's `convert("RGB")`), resize so the shorter side is
//! `resize_short` (the longer `int(resize_short · long / short)`) with PIL's bicubic filter,
//! centre crop `crop × crop` (top/left `(size − crop) // 2`), `/255`, `(x − mean) / std`.
//!
//! The resize is PIL's `Image.resize(…, BICUBIC)` on 8-bit images, reproduced bit for bit: a
//! separable filter (Keys' cubic with a = −0.5, support 2 stretched by the scale when
//! shrinking, so shrinking is antialiased), weights normalised per output pixel and rounded to
//! 22-bit fixed point, the horizontal pass first, each pass rounded and clamped to 0..=255.
//! Checked against transformers' processors in `tests/foundation.rs`.

/// Fixed-point bits of PIL's 8-bit resampling (`32 − 8 − 2`).
const PRECISION_BITS: u32 = 22;

/// One backbone's preprocessing.
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocess {
    /// Length of the shorter side after the resize.
    pub resize_short: usize,
    /// Side of the centre crop (the model's input size).
    pub crop: usize,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

/// ImageNet's mean and std (DINOv2).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
/// OpenAI CLIP's mean and std (the published digits, kept as written).
#[allow(clippy::excessive_precision)]
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
#[allow(clippy::excessive_precision)]
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];

impl Preprocess {
    /// A text naming every setting (part of the feature cache key).
    pub fn describe(&self) -> String {
        format!(
            "pil_bicubic_short{}_crop{}_mean{:?}_std{:?}",
            self.resize_short, self.crop, self.mean, self.std
        )
    }

    /// The model input (3 × crop × crop, channels first) of one `h × w × channels` u8 image
    /// (channels 1 or 3, channels last).
    pub fn apply(&self, img: &[u8], h: usize, w: usize, channels: usize) -> Vec<f32> {
        let rgb: Vec<u8> = match channels {
            3 => img.to_vec(),
            _ => img.iter().flat_map(|&v| [v, v, v]).collect(),
        };
        let (nh, nw) = self.resized_size(h, w);
        let resized = resize_bicubic(&rgb, h, w, nh, nw);
        let (top, left) = ((nh - self.crop) / 2, (nw - self.crop) / 2);
        let s = self.crop;
        let mut out = vec![0f32; 3 * s * s];
        for c in 0..3 {
            for y in 0..s {
                for x in 0..s {
                    let v = resized[((top + y) * nw + left + x) * 3 + c] as f64 / 255.0;
                    out[(c * s + y) * s + x] = (v as f32 - self.mean[c]) / self.std[c];
                }
            }
        }
        out
    }

    /// (height, width) after the resize: transformers' `get_resize_output_image_size` with
    /// `default_to_square=False`, never smaller than the crop.
    fn resized_size(&self, h: usize, w: usize) -> (usize, usize) {
        let (short, long) = if w <= h { (w, h) } else { (h, w) };
        let size = self.resize_short;
        let new_long = if short == size {
            long
        } else {
            (size as f64 * long as f64 / short as f64) as usize
        };
        let (nh, nw) = if w <= h {
            (new_long, size)
        } else {
            (size, new_long)
        };
        (nh.max(self.crop), nw.max(self.crop))
    }
}

/// PIL's bicubic kernel (a = −0.5).
fn bicubic(x: f64) -> f64 {
    let a = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * a
    } else {
        0.0
    }
}

/// Per output pixel: the first input pixel and the fixed-point weights (PIL's
/// `precompute_coeffs` + `normalize_coeffs_8bpc`).
fn coefficients(in_size: usize, out_size: usize) -> Vec<(usize, Vec<i64>)> {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = 2.0 * filterscale;
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            let ss = 1.0 / filterscale;
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let w: Vec<f64> = (xmin..xmax)
                .map(|x| bicubic((x as f64 - center + 0.5) * ss))
                .collect();
            let total: f64 = w.iter().sum();
            let fixed = w
                .iter()
                .map(|&k| {
                    let k = if total != 0.0 { k / total } else { k };
                    let f = k * (1u64 << PRECISION_BITS) as f64;
                    (if k < 0.0 { f - 0.5 } else { f + 0.5 }) as i64
                })
                .collect();
            (xmin, fixed)
        })
        .collect()
}

fn clip8(acc: i64) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// PIL's `resize((nw, nh), BICUBIC)` of an `h × w` RGB u8 image (channels last).
pub fn resize_bicubic(img: &[u8], h: usize, w: usize, nh: usize, nw: usize) -> Vec<u8> {
    let half = 1i64 << (PRECISION_BITS - 1);
    // Horizontal pass (skipped when the width stays, as PIL does).
    let horiz = if nw != w {
        let cx = coefficients(w, nw);
        let mut t = vec![0u8; h * nw * 3];
        for y in 0..h {
            for (x, (x0, k)) in cx.iter().enumerate() {
                for c in 0..3 {
                    let mut acc = half;
                    for (i, &kv) in k.iter().enumerate() {
                        acc += img[(y * w + x0 + i) * 3 + c] as i64 * kv;
                    }
                    t[(y * nw + x) * 3 + c] = clip8(acc);
                }
            }
        }
        t
    } else {
        img.to_vec()
    };
    if nh == h {
        return horiz;
    }
    let cy = coefficients(h, nh);
    let mut out = vec![0u8; nh * nw * 3];
    for (y, (y0, k)) in cy.iter().enumerate() {
        for x in 0..nw {
            for c in 0..3 {
                let mut acc = half;
                for (i, &kv) in k.iter().enumerate() {
                    acc += horiz[((y0 + i) * nw + x) * 3 + c] as i64 * kv;
                }
                out[(y * nw + x) * 3 + c] = clip8(acc);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_size_is_identity_and_constant_stays_constant() {
        let img: Vec<u8> = (0..5 * 4 * 3).map(|i| (i * 7 % 256) as u8).collect();
        assert_eq!(resize_bicubic(&img, 5, 4, 5, 4), img);
        let flat = vec![200u8; 9 * 7 * 3];
        assert!(resize_bicubic(&flat, 9, 7, 20, 13)
            .iter()
            .all(|&v| v == 200));
        assert!(resize_bicubic(&flat, 9, 7, 3, 2).iter().all(|&v| v == 200));
    }

    #[test]
    fn output_size_follows_the_shorter_side() {
        let p = Preprocess {
            resize_short: 256,
            crop: 224,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        };
        assert_eq!(p.resized_size(32, 32), (256, 256));
        // int(256 * 500 / 375) = 341
        assert_eq!(p.resized_size(375, 500), (256, 341));
        assert_eq!(p.resized_size(500, 375), (341, 256));
    }
}
