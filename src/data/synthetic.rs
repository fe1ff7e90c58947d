//! The built-in synthetic benchmark: classes are pattern geometries, everything else is nuisance.
//!
//! Each image is an oriented grating: class `c` fixes its orientation and spatial frequency
//! (`K/2` orientations × 2 frequencies for even `K`, `K` orientations otherwise). Per image, the
//! foreground and background colours, the phase (position), a small rotation and scale jitter,
//! clutter blobs and pixel noise are random. Raw-pixel k-means therefore sees mostly colour and
//! phase (NMI near chance), while a network trained for colour/crop invariance can recover the
//! geometry. The calibration that led here is in `docs/benchmarks.md`.
//!
//! Note: a horizontal flip maps orientation θ to 180° − θ and merges classes, so presets on this
//! data set `augment.flip_p: 0`.

use crate::config::run::DatasetConfig;
use crate::rng::{normal, stream_at, uniform, Rng};

use super::Dataset;

/// Orientation and frequency (cycles per image side) of class `c` out of `k`.
pub fn class_geometry(c: usize, k: usize) -> (f64, f64) {
    let (n_orient, n_freq) = if k.is_multiple_of(2) && k >= 4 {
        (k / 2, 2)
    } else {
        (k, 1)
    };
    let o = c % n_orient;
    let f = c / n_orient;
    let theta = std::f64::consts::PI * o as f64 / n_orient as f64;
    let freq = if n_freq == 1 { 3.0 } else { [2.0, 5.0][f] };
    (theta, freq)
}

fn random_colour(rng: &mut Rng) -> [f64; 3] {
    [
        uniform(rng, 0.0, 1.0),
        uniform(rng, 0.0, 1.0),
        uniform(rng, 0.0, 1.0),
    ]
}

/// Generates the dataset; the same config gives the same bytes.
pub fn generate(cfg: &DatasetConfig) -> Dataset {
    generate_range(cfg, 0..cfg.size)
}

/// Images `range` of the generator (image `i` depends on `dataset.seed` and `i` only, so
/// `size..size + m` are `m` further images, none of them among the first `size`).
pub fn generate_range(cfg: &DatasetConfig, range: std::ops::Range<usize>) -> Dataset {
    let s = cfg.image_size;
    let k = cfg.num_classes;
    let count = range.len();
    let mut images = vec![0u8; count * s * s * 3];
    let mut labels = Vec::with_capacity(count);
    let mut pixel = vec![[0f64; 3]; s * s];
    for i in range.clone() {
        let mut rng = stream_at(cfg.seed, "synthetic", &[i as u64]);
        let c = i % k; // balanced classes, interleaved
        labels.push(c as i64);
        let (theta, freq) = class_geometry(c, k);
        let theta = theta + uniform(&mut rng, -0.05, 0.05);
        let freq = freq * uniform(&mut rng, 0.9, 1.1);
        let phase = uniform(&mut rng, 0.0, 2.0 * std::f64::consts::PI);
        let bg = random_colour(&mut rng);
        let mut fg = random_colour(&mut rng);
        // Keep some luminance contrast between the two colours.
        let lum = |c: &[f64; 3]| 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];
        if (lum(&fg) - lum(&bg)).abs() < 0.25 {
            let shift = if lum(&bg) > 0.5 { -0.35 } else { 0.35 };
            for ch in &mut fg {
                *ch = (*ch + shift).clamp(0.0, 1.0);
            }
        }
        let (ct, st) = (theta.cos(), theta.sin());
        for y in 0..s {
            for x in 0..s {
                let u = (x as f64 + 0.5) / s as f64;
                let v = (y as f64 + 0.5) / s as f64;
                let t = 2.0 * std::f64::consts::PI * freq * (u * ct + v * st) + phase;
                let a = (0.5 + 0.5 * t.sin()).clamp(0.0, 1.0);
                for ch in 0..3 {
                    pixel[y * s + x][ch] = bg[ch] + (fg[ch] - bg[ch]) * a;
                }
            }
        }
        for _ in 0..cfg.clutter {
            let colour = random_colour(&mut rng);
            let cx = uniform(&mut rng, 0.0, s as f64);
            let cy = uniform(&mut rng, 0.0, s as f64);
            let r = uniform(&mut rng, 0.05, 0.15) * s as f64;
            for y in 0..s {
                for x in 0..s {
                    let d2 = (x as f64 + 0.5 - cx).powi(2) + (y as f64 + 0.5 - cy).powi(2);
                    if d2 <= r * r {
                        pixel[y * s + x] = colour;
                    }
                }
            }
        }
        let o = i - range.start;
        let out = &mut images[o * s * s * 3..(o + 1) * s * s * 3];
        for (p, px) in pixel.iter().enumerate() {
            for ch in 0..3 {
                let val = px[ch] + cfg.noise * normal(&mut rng);
                out[p * 3 + ch] = (val.clamp(0.0, 1.0) * 255.0).round() as u8;
            }
        }
    }
    Dataset {
        name: "synthetic".into(),
        images,
        labels,
        height: s,
        width: s,
        channels: 3,
        num_classes: k,
        features: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_balanced() {
        let cfg = DatasetConfig {
            size: 40,
            ..Default::default()
        };
        let a = generate(&cfg);
        let b = generate(&cfg);
        assert_eq!(a.images, b.images);
        assert_eq!(a.images.len(), 40 * 32 * 32 * 3);
        for c in 0..10 {
            assert_eq!(a.labels.iter().filter(|&&l| l == c).count(), 4);
        }
        let other = generate(&DatasetConfig {
            seed: 1,
            ..cfg.clone()
        });
        assert_ne!(a.images, other.images);
        // A range continues the same sequence of images: 30..50 overlaps 0..40 in 30..40.
        let r = generate_range(&cfg, 30..50);
        let n = 32 * 32 * 3;
        assert_eq!(r.images[..10 * n], a.images[30 * n..]);
        assert_eq!(r.labels[..10], a.labels[30..]);
    }

    #[test]
    fn classes_have_distinct_geometry() {
        let mut g: Vec<(i64, i64)> = (0..10)
            .map(|c| {
                let (t, f) = class_geometry(c, 10);
                ((t * 1000.0) as i64, (f * 10.0) as i64)
            })
            .collect();
        g.sort();
        g.dedup();
        assert_eq!(g.len(), 10);
    }
}
