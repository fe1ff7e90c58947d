//! Summary statistics of clusterlab's training views of a real `arrays` dataset, one line per
//! image (`mean std fraction>0.5`), for `bench/quality/views.py`, which compares their
//! quantiles with torchvision's views of the same images (issue 19: the augmentation stage,
//! on real data rather than the fixture's one image).
//!
//!   cargo run --release --example quality_views -- data/quality/mnist 16 > ours.txt
//!
//! Augmentation: the defaults with crop scale 0.2–1 and no flips (the quality grids').

use clusterlab::config::RunConfig;
use clusterlab::data::augment::{Augmenter, Scratch};
use clusterlab::rng::stream_at;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(size)) = (args.next(), args.next()) else {
        eprintln!("usage: quality_views ARRAYS_FOLDER IMAGE_SIZE");
        std::process::exit(2);
    };
    let size: usize = size.parse().expect("IMAGE_SIZE: a number of pixels");
    let mut cfg = RunConfig::default();
    cfg.dataset.name = "arrays".into();
    cfg.dataset.path = Some(path);
    cfg.dataset.image_size = size;
    cfg.augment.crop_scale = [0.2, 1.0];
    cfg.augment.flip_p = 0.0;
    let ds = clusterlab::data::load(&cfg.dataset).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    let aug = Augmenter::new(cfg.augment.clone(), size);
    let mut out = vec![0f32; 3 * size * size];
    let mut scratch = Scratch::default();
    for i in 0..ds.len() {
        let idx = (i * 7919) % ds.len();
        let mut rng = stream_at(5, "augment", &[0, i as u64, 0]);
        aug.train_view(ds.view(idx), &mut rng, &mut scratch, &mut out);
        let n = out.len() as f32;
        let m = out.iter().sum::<f32>() / n;
        let sd = (out.iter().map(|x| (x - m) * (x - m)).sum::<f32>() / n).sqrt();
        let hi = out.iter().filter(|&&x| x > 0.5).count() as f32 / n;
        println!("{m} {sd} {hi}");
    }
}
