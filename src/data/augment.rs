//! SimCLR/CC-style augmentation with torchvision semantics, in Rust.
//!
//! Train view, in CC's order: RandomResizedCrop(size, scale, ratio) → RandomHorizontalFlip(p) →
//! RandomApply(ColorJitter(b, c, s, h), p) with the four jitters in random order → RandomGrayscale(p)
//! → GaussianBlur(kernel, σ ~ U(σ_lo, σ_hi)) with probability `blur_p` (CC: ImageNet subsets only).
//! Test view: Resize(size). Output is f32 CHW in [0, 1], no mean/std normalisation (as CC).
//! Resizing is bilinear with half-pixel centres (align_corners = false); shrinking (a crop or
//! image larger than the output) is antialiased as PIL and torchvision's `antialias=True` do.
//! Every op is checked against torchvision's functional ops on fixed parameters
//! (`tests/fixtures/augment/`, test in `data::torchvision_check`). Grayscale uses PIL's
//! weights (0.299, 0.587, 0.114), which CC's PIL pipeline ran; torchvision's tensor ops use
//! 0.2989 for red, a difference below 1e-4 of the intensity range.

use super::blur::gaussian_blur;
use crate::config::run::AugmentConfig;
use crate::rng::{below, permutation, uniform, Rng};

/// The augmentation pipeline of one run.
#[derive(Debug, Clone)]
pub struct Augmenter {
    pub cfg: AugmentConfig,
    /// Side of the square output.
    pub size: usize,
}

/// A borrowed u8 image, channels last.
#[derive(Debug, Clone, Copy)]
pub struct Image<'a> {
    pub data: &'a [u8],
    pub h: usize,
    pub w: usize,
    pub c: usize,
}

/// Scratch buffer reused across images (HWC f32).
#[derive(Default)]
pub struct Scratch {
    hwc: Vec<f32>,
}

/// torchvision's RandomResizedCrop.get_params: (top, left, height, width) of the crop.
pub fn crop_params(
    rng: &mut Rng,
    h: usize,
    w: usize,
    scale: [f64; 2],
    ratio: [f64; 2],
) -> (usize, usize, usize, usize) {
    let area = (h * w) as f64;
    let (lr0, lr1) = (ratio[0].ln(), ratio[1].ln());
    for _ in 0..10 {
        let target = area * uniform(rng, scale[0], scale[1]);
        let aspect = uniform(rng, lr0, lr1).exp();
        let cw = (target * aspect).sqrt().round() as usize;
        let ch = (target / aspect).sqrt().round() as usize;
        if cw > 0 && cw <= w && ch > 0 && ch <= h {
            let top = below(rng, h - ch + 1);
            let left = below(rng, w - cw + 1);
            return (top, left, ch, cw);
        }
    }
    // Fallback: central crop with the ratio clamped into range.
    let in_ratio = w as f64 / h as f64;
    let (cw, ch) = if in_ratio < ratio[0] {
        (w, (w as f64 / ratio[0]).round() as usize)
    } else if in_ratio > ratio[1] {
        ((h as f64 * ratio[1]).round() as usize, h)
    } else {
        (w, h)
    };
    ((h - ch) / 2, (w - cw) / 2, ch, cw)
}

/// Bilinear resize of the crop `(top, left, ch, cw)` of a u8 HWC image into `out` (size × size × c, f32 in [0,1]).
pub fn resize_crop(
    src: &[u8],
    h: usize,
    w: usize,
    c: usize,
    crop: (usize, usize, usize, usize),
    size: usize,
    out: &mut Vec<f32>,
) {
    let _ = h;
    let (top, left, ch, cw) = crop;
    if ch > size || cw > size {
        return resize_crop_antialias(src, w, c, crop, size, out);
    }
    out.clear();
    out.resize(size * size * c, 0.0);
    let sy = ch as f32 / size as f32;
    let sx = cw as f32 / size as f32;
    for oy in 0..size {
        let fy = ((oy as f32 + 0.5) * sy - 0.5).max(0.0);
        let y0 = (fy.floor() as usize).min(ch - 1);
        let y1 = (y0 + 1).min(ch - 1);
        let wy = fy - y0 as f32;
        for ox in 0..size {
            let fx = ((ox as f32 + 0.5) * sx - 0.5).max(0.0);
            let x0 = (fx.floor() as usize).min(cw - 1);
            let x1 = (x0 + 1).min(cw - 1);
            let wx = fx - x0 as f32;
            let at = |y: usize, x: usize, k: usize| src[((top + y) * w + left + x) * c + k] as f32;
            for k in 0..c {
                let v = (1.0 - wy) * ((1.0 - wx) * at(y0, x0, k) + wx * at(y0, x1, k))
                    + wy * ((1.0 - wx) * at(y1, x0, k) + wx * at(y1, x1, k));
                out[(oy * size + ox) * c + k] = v / 255.0;
            }
        }
    }
}

/// Mirrors an HWC image left-right (torchvision hflip).
pub fn hflip(img: &mut [f32], h: usize, w: usize, c: usize) {
    for y in 0..h {
        for x in 0..w / 2 {
            for k in 0..c {
                img.swap((y * w + x) * c + k, (y * w + w - 1 - x) * c + k);
            }
        }
    }
}

/// Per output index: the first input index and the normalised weights of PIL's / torchvision's
/// antialiased bilinear filter (a triangle stretched by the scale when shrinking).
fn antialias_weights(in_len: usize, out_len: usize) -> Vec<(usize, Vec<f32>)> {
    let scale = in_len as f64 / out_len as f64;
    let (support, inv) = if scale >= 1.0 {
        (scale, 1.0 / scale)
    } else {
        (1.0, 1.0)
    };
    (0..out_len)
        .map(|i| {
            let center = scale * (i as f64 + 0.5);
            let lo = (center - support + 0.5).max(0.0) as usize;
            let hi = ((center + support + 0.5) as usize).min(in_len);
            let w: Vec<f64> = (lo..hi)
                .map(|j| (1.0 - ((j as f64 - center + 0.5) * inv).abs()).max(0.0))
                .collect();
            let total: f64 = w.iter().sum();
            (lo, w.into_iter().map(|v| (v / total) as f32).collect())
        })
        .collect()
}

/// [`resize_crop`] when the crop is larger than the output in some direction: bilinear with
/// antialiasing, as PIL (which CC's pipeline used) and torchvision (`antialias=True`) shrink.
fn resize_crop_antialias(
    src: &[u8],
    w: usize,
    c: usize,
    crop: (usize, usize, usize, usize),
    size: usize,
    out: &mut Vec<f32>,
) {
    let (top, left, ch, cw) = crop;
    let (wx, wy) = (antialias_weights(cw, size), antialias_weights(ch, size));
    // Rows first (ch × size), then columns (size × size).
    let mut tmp = vec![0f32; ch * size * c];
    for y in 0..ch {
        for (ox, (lo, ws)) in wx.iter().enumerate() {
            for k in 0..c {
                let mut acc = 0f32;
                for (j, &wt) in ws.iter().enumerate() {
                    acc += wt * src[((top + y) * w + left + lo + j) * c + k] as f32;
                }
                tmp[(y * size + ox) * c + k] = acc;
            }
        }
    }
    out.clear();
    out.resize(size * size * c, 0.0);
    for (oy, (lo, ws)) in wy.iter().enumerate() {
        for ox in 0..size {
            for k in 0..c {
                let mut acc = 0f32;
                for (j, &wt) in ws.iter().enumerate() {
                    acc += wt * tmp[((lo + j) * size + ox) * c + k];
                }
                out[(oy * size + ox) * c + k] = acc / 255.0;
            }
        }
    }
}

fn gray(p: &[f32]) -> f32 {
    0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]
}

/// Multiplies by `f` and clamps (torchvision adjust_brightness).
pub fn adjust_brightness(img: &mut [f32], f: f32) {
    for v in img.iter_mut() {
        *v = (*v * f).clamp(0.0, 1.0);
    }
}

/// Blends with the mean grayscale level (torchvision adjust_contrast).
pub fn adjust_contrast(img: &mut [f32], f: f32) {
    let n = img.len() / 3;
    let mean = img.chunks_exact(3).map(gray).sum::<f32>() / n as f32;
    for v in img.iter_mut() {
        *v = (f * *v + (1.0 - f) * mean).clamp(0.0, 1.0);
    }
}

/// Blends each pixel with its grayscale value (torchvision adjust_saturation).
pub fn adjust_saturation(img: &mut [f32], f: f32) {
    for p in img.chunks_exact_mut(3) {
        let g = gray(p);
        for v in p.iter_mut() {
            *v = (f * *v + (1.0 - f) * g).clamp(0.0, 1.0);
        }
    }
}

/// Rotates the hue by `shift` turns (torchvision adjust_hue, shift in [-0.5, 0.5]).
pub fn adjust_hue(img: &mut [f32], shift: f32) {
    for p in img.chunks_exact_mut(3) {
        let (r, g, b) = (p[0], p[1], p[2]);
        let max = r.max(g).max(b);
        let min = r.min(g).min(b);
        let delta = max - min;
        let v = max;
        let s = if max > 0.0 { delta / max } else { 0.0 };
        let mut h = if delta == 0.0 {
            0.0
        } else if max == r {
            ((g - b) / delta).rem_euclid(6.0) / 6.0
        } else if max == g {
            ((b - r) / delta + 2.0) / 6.0
        } else {
            ((r - g) / delta + 4.0) / 6.0
        };
        h = (h + shift).rem_euclid(1.0);
        let i = (h * 6.0).floor();
        let f = h * 6.0 - i;
        let pp = v * (1.0 - s);
        let q = v * (1.0 - s * f);
        let t = v * (1.0 - s * (1.0 - f));
        let (nr, ng, nb) = match (i as i32).rem_euclid(6) {
            0 => (v, t, pp),
            1 => (q, v, pp),
            2 => (pp, v, t),
            3 => (pp, q, v),
            4 => (t, pp, v),
            _ => (v, pp, q),
        };
        p[0] = nr;
        p[1] = ng;
        p[2] = nb;
    }
}

/// Replaces each pixel by its grayscale value in all three channels.
pub fn to_grayscale(img: &mut [f32]) {
    for p in img.chunks_exact_mut(3) {
        let g = gray(p);
        p.fill(g);
    }
}

fn factor(rng: &mut Rng, strength: f64) -> Option<f32> {
    (strength > 0.0).then(|| uniform(rng, (1.0 - strength).max(0.0), 1.0 + strength) as f32)
}

/// One ColorJitter draw: the order of the four ops (0 brightness, 1 contrast, 2 saturation,
/// 3 hue) and each op's factor (`None` when its strength is 0).
#[derive(Debug, Clone)]
pub struct Jitter {
    pub order: Vec<usize>,
    pub brightness: Option<f32>,
    pub contrast: Option<f32>,
    pub saturation: Option<f32>,
    pub hue: Option<f32>,
}

/// torchvision's `ColorJitter.get_params`: the order first, then the four factors (brightness,
/// contrast, saturation in [max(0, 1 − s), 1 + s], hue in [−h, h]).
pub fn jitter_params(rng: &mut Rng, a: &AugmentConfig) -> Jitter {
    let order = permutation(rng, 4);
    let brightness = factor(rng, a.brightness);
    let contrast = factor(rng, a.contrast);
    let saturation = factor(rng, a.saturation);
    let hue = (a.hue > 0.0).then(|| uniform(rng, -a.hue, a.hue) as f32);
    Jitter {
        order,
        brightness,
        contrast,
        saturation,
        hue,
    }
}

impl Augmenter {
    pub fn new(cfg: AugmentConfig, size: usize) -> Self {
        Self { cfg, size }
    }

    /// One random training view of a u8 HWC image, written as CHW into `out`.
    pub fn train_view(&self, img: Image, rng: &mut Rng, scratch: &mut Scratch, out: &mut [f32]) {
        let Image { data: src, h, w, c } = img;
        let a = &self.cfg;
        let crop = crop_params(rng, h, w, a.crop_scale, a.crop_ratio);
        resize_crop(src, h, w, c, crop, self.size, &mut scratch.hwc);
        let img = &mut scratch.hwc;
        if uniform(rng, 0.0, 1.0) < a.flip_p {
            hflip(img, self.size, self.size, c);
        }
        if c == 3 && uniform(rng, 0.0, 1.0) < a.jitter_p {
            let Jitter {
                order,
                brightness: b,
                contrast: ct,
                saturation: s,
                hue: hu,
            } = jitter_params(rng, a);
            for op in order {
                match op {
                    0 => b.into_iter().for_each(|f| adjust_brightness(img, f)),
                    1 => ct.into_iter().for_each(|f| adjust_contrast(img, f)),
                    2 => s.into_iter().for_each(|f| adjust_saturation(img, f)),
                    _ => hu.into_iter().for_each(|f| adjust_hue(img, f)),
                }
            }
        }
        if c == 3 && uniform(rng, 0.0, 1.0) < a.grayscale_p {
            to_grayscale(img);
        }
        // Drawn only when enabled, so configs without blur keep their random streams.
        if a.blur_p > 0.0 && uniform(rng, 0.0, 1.0) < a.blur_p {
            let sigma = uniform(rng, a.blur_sigma[0], a.blur_sigma[1]);
            gaussian_blur(img, self.size, self.size, c, a.blur_kernel, sigma);
        }
        hwc_to_chw(img, self.size, c, out);
    }

    /// The test view: the whole image resized to the output size, CHW.
    pub fn test_view(&self, img: Image, scratch: &mut Scratch, out: &mut [f32]) {
        let Image { data: src, h, w, c } = img;
        resize_crop(src, h, w, c, (0, 0, h, w), self.size, &mut scratch.hwc);
        hwc_to_chw(&scratch.hwc, self.size, c, out);
    }
}

fn hwc_to_chw(src: &[f32], size: usize, c: usize, out: &mut [f32]) {
    let plane = size * size;
    for p in 0..plane {
        for k in 0..c {
            out[k * plane + p] = src[p * c + k];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::stream;

    #[test]
    fn identity_crop_is_exact() {
        let src: Vec<u8> = (0..4 * 4 * 3).map(|i| (i * 5) as u8).collect();
        let mut out = Vec::new();
        resize_crop(&src, 4, 4, 3, (0, 0, 4, 4), 4, &mut out);
        for (a, b) in src.iter().zip(&out) {
            assert!((*a as f32 / 255.0 - b).abs() < 1e-6);
        }
    }

    #[test]
    fn crop_params_stay_inside() {
        let mut rng = stream(3, "t");
        for _ in 0..1000 {
            let (t, l, h, w) = crop_params(&mut rng, 32, 24, [0.08, 1.0], [0.75, 4.0 / 3.0]);
            assert!(h > 0 && w > 0 && t + h <= 32 && l + w <= 24);
        }
    }

    #[test]
    fn hue_full_turn_is_identity_and_half_turn_is_not() {
        let orig = vec![0.9, 0.2, 0.4, 0.1, 0.5, 0.3];
        let mut img = orig.clone();
        adjust_hue(&mut img, 0.5);
        assert!((img[0] - orig[0]).abs() > 0.1);
        adjust_hue(&mut img, 0.5);
        for (a, b) in img.iter().zip(&orig) {
            assert!((a - b).abs() < 1e-5);
        }
    }

    #[test]
    fn zero_saturation_is_gray() {
        let mut img = vec![0.9, 0.2, 0.4];
        adjust_saturation(&mut img, 0.0);
        let g = 0.299 * 0.9 + 0.587 * 0.2 + 0.114 * 0.4;
        assert!(img.iter().all(|v| (v - g).abs() < 1e-6));
    }
}
