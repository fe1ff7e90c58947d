//! Gaussian blur with torchvision's semantics (`transforms.functional.gaussian_blur`): a
//! normalised kernel sampled at integer offsets, exp(−x² / 2σ²) for x in −(k−1)/2..=(k−1)/2,
//! applied to each channel with reflect padding (the edge pixel is not repeated, as torch's
//! `reflect` and OpenCV's default `BORDER_REFLECT_101`).
//!
//! torchvision convolves with the outer product of the 1-D kernel; we apply the 1-D kernel
//! along rows, then columns, which is the same sum in a different order (differences at
//! float rounding). CC's own `GaussianBlur` calls OpenCV on the uint8 image with the same
//! kernel and border, then rounds to uint8; we keep f32.

/// The normalised 1-D Gaussian kernel of odd size `k` and standard deviation `sigma`.
pub fn kernel1d(k: usize, sigma: f64) -> Vec<f32> {
    let half = (k as f64 - 1.0) / 2.0;
    let pdf: Vec<f64> = (0..k)
        .map(|i| {
            let x = i as f64 - half;
            (-0.5 * (x / sigma).powi(2)).exp()
        })
        .collect();
    let sum: f64 = pdf.iter().sum();
    pdf.into_iter().map(|v| (v / sum) as f32).collect()
}

/// Index `i` (possibly outside 0..n) reflected into 0..n without repeating the edge.
fn reflect(mut i: isize, n: usize) -> usize {
    let n = n as isize;
    if n == 1 {
        return 0;
    }
    loop {
        if i < 0 {
            i = -i;
        } else if i >= n {
            i = 2 * (n - 1) - i;
        } else {
            return i as usize;
        }
    }
}

/// Blurs an HWC f32 image in place with a `k`×`k` Gaussian of standard deviation `sigma`.
pub fn gaussian_blur(img: &mut [f32], h: usize, w: usize, c: usize, k: usize, sigma: f64) {
    let kern = kernel1d(k, sigma);
    let half = (k / 2) as isize;
    let mut tmp = vec![0f32; img.len()];
    // Along rows (x).
    for y in 0..h {
        for x in 0..w {
            for ch in 0..c {
                let mut acc = 0f32;
                for (j, &kv) in kern.iter().enumerate() {
                    let xx = reflect(x as isize + j as isize - half, w);
                    acc += kv * img[(y * w + xx) * c + ch];
                }
                tmp[(y * w + x) * c + ch] = acc;
            }
        }
    }
    // Along columns (y).
    for y in 0..h {
        for x in 0..w {
            for ch in 0..c {
                let mut acc = 0f32;
                for (j, &kv) in kern.iter().enumerate() {
                    let yy = reflect(y as isize + j as isize - half, h);
                    acc += kv * tmp[(yy * w + x) * c + ch];
                }
                img[(y * w + x) * c + ch] = acc;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_is_normalised_and_symmetric() {
        let k = kernel1d(23, 2.0);
        assert!((k.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        for i in 0..11 {
            assert_eq!(k[i], k[22 - i]);
        }
        assert!(k[11] > k[10]);
    }

    #[test]
    fn reflect_does_not_repeat_the_edge() {
        assert_eq!(reflect(-1, 5), 1);
        assert_eq!(reflect(-2, 5), 2);
        assert_eq!(reflect(5, 5), 3);
        assert_eq!(reflect(6, 5), 2);
        assert_eq!(reflect(-7, 3), 1);
    }
}
