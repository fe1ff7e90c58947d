//! Our augmentation ops against torchvision's, on fixed parameters
//! (`tests/fixtures/augment/generate.py` → `torchvision.json`).
//!
//! Tolerances, on the [0, 1] intensity scale:
//! * against torchvision's float ops: 1e-5, float rounding, except where the grayscale weights
//!   enter (contrast, saturation, grayscale): 3e-4, since we use PIL's 0.299 for red where
//!   torchvision's tensor path uses 0.2989 (at most 1e-4 of the range, doubled by the blend
//!   factors used here);
//! * against the PIL ops CC ran (crop, resize, flip): one intensity level (1/255) after
//!   rounding ours to uint8, since PIL resamples in fixed point and rounds to uint8.
//!
//! Measured when written: float ops ≤ 9e-7 (grayscale-weighted ones ≤ 1e-4); PIL ≤ 1 level.

use serde_json::Value;

use super::augment::{
    adjust_brightness, adjust_contrast, adjust_hue, adjust_saturation, hflip, resize_crop,
    to_grayscale,
};
use super::blur::gaussian_blur;

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn ops_match_torchvision() {
    let path = format!(
        "{}/tests/fixtures/augment/torchvision.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let fx: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let images: Vec<(usize, usize, Vec<u8>)> = fx["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|im| {
            let data = im["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u8)
                .collect();
            (
                im["h"].as_u64().unwrap() as usize,
                im["w"].as_u64().unwrap() as usize,
                data,
            )
        })
        .collect();
    let mut checked = 0;
    for case in fx["cases"].as_array().unwrap() {
        let op = case["op"].as_str().unwrap();
        let p = &case["params"];
        let (h, w, src) = &images[case["image"].as_u64().unwrap() as usize];
        let (h, w) = (*h, *w);
        let u = |k: &str| p[k].as_u64().unwrap() as usize;
        let f = |k: &str| p[k].as_f64().unwrap();
        let as_float = |s: &[u8]| s.iter().map(|&v| v as f32 / 255.0).collect::<Vec<f32>>();
        let mut img = as_float(src);
        let mut tol = 1e-5;
        match op {
            "resized_crop" => resize_crop(
                src,
                h,
                w,
                3,
                (u("top"), u("left"), u("height"), u("width")),
                u("size"),
                &mut img,
            ),
            "resize" => resize_crop(src, h, w, 3, (0, 0, h, w), u("size"), &mut img),
            "hflip" => hflip(&mut img, h, w, 3),
            "brightness" => adjust_brightness(&mut img, f("factor") as f32),
            "contrast" => {
                adjust_contrast(&mut img, f("factor") as f32);
                tol = 3e-4;
            }
            "saturation" => {
                adjust_saturation(&mut img, f("factor") as f32);
                tol = 3e-4;
            }
            "hue" => adjust_hue(&mut img, f("factor") as f32),
            "grayscale" => {
                to_grayscale(&mut img);
                tol = 3e-4;
            }
            "gaussian_blur" => gaussian_blur(&mut img, h, w, 3, u("kernel"), f("sigma")),
            other => panic!("fixture op {other} has no counterpart"),
        }
        let d = max_diff(&img, &floats(&case["float"]));
        assert!(d <= tol, "{op} {p}: max difference {d} > {tol}");
        if !case["pil"].is_null() {
            let ours: Vec<f32> = img.iter().map(|v| (v * 255.0).round() / 255.0).collect();
            let d = max_diff(&ours, &floats(&case["pil"]));
            assert!(
                d <= 1.0 / 255.0 + 1e-6,
                "{op} {p} vs PIL: {} levels",
                d * 255.0
            );
        }
        checked += 1;
    }
    assert_eq!(checked, fx["cases"].as_array().unwrap().len());
    assert!(checked >= 20);
}
