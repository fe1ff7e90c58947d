//! CIFAR-10 and CIFAR-100 in their official binary formats, from the extracted folders
//! (`cifar-10-batches-bin/`, `cifar-100-binary/`) or straight from the official `.tar.gz`.
//!
//! Records: CIFAR-10 is 1 label byte + 3072 pixel bytes; CIFAR-100 is coarse byte, fine byte,
//! 3072 pixel bytes. Pixels are three 32×32 planes (R, G, B), row-major. `cifar100-20`
//! evaluates on the coarse byte (CC's super-class table equals it, see the test below),
//! `cifar100` on the fine one. The protocol's splits (`train`, `test`) are concatenated in
//! the order `dataset.splits` names them (CC: train then test, 60 000 images).
//!
//! Every file is checked: size a multiple of the record size, official record counts (unless
//! `dataset.allow_partial`), both label bytes in range. A problem names the file, what was
//! expected and what was found.

use super::super::catalog;
use super::super::Dataset;
use crate::config::run::DatasetConfig;
use crate::error::{Error, Result};

const PIXELS: usize = 32 * 32 * 3;

struct Layout {
    train: &'static [(&'static str, usize)],
    test: &'static [(&'static str, usize)],
    /// Upper bounds of the label bytes before the pixels.
    label_limits: &'static [usize],
    /// Which label byte is evaluated.
    label_index: usize,
}

const CIFAR10: Layout = Layout {
    train: &[
        ("data_batch_1.bin", 10_000),
        ("data_batch_2.bin", 10_000),
        ("data_batch_3.bin", 10_000),
        ("data_batch_4.bin", 10_000),
        ("data_batch_5.bin", 10_000),
    ],
    test: &[("test_batch.bin", 10_000)],
    label_limits: &[10],
    label_index: 0,
};

const CIFAR100_TRAIN: &[(&str, usize)] = &[("train.bin", 50_000)];
const CIFAR100_TEST: &[(&str, usize)] = &[("test.bin", 10_000)];

fn layout(name: &str) -> Layout {
    match name {
        "cifar10" => CIFAR10,
        "cifar100-20" => Layout {
            train: CIFAR100_TRAIN,
            test: CIFAR100_TEST,
            label_limits: &[20, 100],
            label_index: 0,
        },
        _ => Layout {
            train: CIFAR100_TRAIN,
            test: CIFAR100_TEST,
            label_limits: &[20, 100],
            label_index: 1,
        },
    }
}

/// Loads a CIFAR variant (`cifar10`, `cifar100-20`, `cifar100`) with the splits of the config.
pub fn load(cfg: &DatasetConfig) -> Result<Dataset> {
    let spec = catalog::spec(&cfg.name).expect("a CIFAR name");
    let src = catalog::source(spec, cfg)?;
    let lay = layout(&cfg.name);
    let files: Vec<(&str, usize)> = cfg
        .splits
        .iter()
        .flat_map(|s| match s.as_str() {
            "train" => lay.train.iter().copied(),
            _ => lay.test.iter().copied(),
        })
        .collect();
    let names: Vec<&str> = files.iter().map(|(f, _)| *f).collect();
    let data = src.read(&names)?;
    let record = lay.label_limits.len() + PIXELS;
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for (file, official) in files {
        let bytes = &data[file];
        let at = src.path().join(file);
        if bytes.is_empty() || !bytes.len().is_multiple_of(record) {
            return Err(Error::BadInput(format!(
                "{}: {} bytes is not a whole number of {record}-byte records (truncated, or not \
                 a {} file); re-download it",
                at.display(),
                bytes.len(),
                cfg.name
            )));
        }
        let n = bytes.len() / record;
        if n != official && !cfg.allow_partial {
            return Err(Error::BadInput(format!(
                "{}: expected {official} records, found {n}; re-download it (or set \
                 dataset.allow_partial: true for a subset)",
                at.display()
            )));
        }
        images.reserve(n * PIXELS);
        for (i, rec) in bytes.chunks_exact(record).enumerate() {
            for (b, lim) in rec.iter().zip(lay.label_limits) {
                if *b as usize >= *lim {
                    return Err(Error::BadInput(format!(
                        "{}: record {i} has label {b}, expected 0..{lim}: corrupt file",
                        at.display()
                    )));
                }
            }
            labels.push(rec[lay.label_index] as i64);
            let px = &rec[lay.label_limits.len()..];
            // CHW planes → HWC.
            for p in 0..32 * 32 {
                images.extend_from_slice(&[px[p], px[1024 + p], px[2048 + p]]);
            }
        }
    }
    Ok(Dataset {
        name: cfg.name.clone(),
        images,
        labels,
        height: 32,
        width: 32,
        channels: 3,
        num_classes: lay.label_limits[lay.label_index],
        features: None,
    })
}

/// Encodes records in the CIFAR binary format: label bytes, then the HWC 32×32×3 image as
/// CHW planes. Used by tests to build small files in the real format.
pub fn encode_records(records: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (label_bytes, hwc) in records {
        out.extend_from_slice(label_bytes);
        for ch in 0..3 {
            for p in 0..32 * 32 {
                out.push(hwc[p * 3 + ch]);
            }
        }
    }
    out
}

/// Writes [`encode_records`] to a file.
pub fn write_records(
    path: &std::path::Path,
    records: &[(Vec<u8>, Vec<u8>)],
) -> std::io::Result<()> {
    std::fs::write(path, encode_records(records))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn cfg(dir: &Path, name: &str, k: usize) -> DatasetConfig {
        DatasetConfig {
            name: name.into(),
            num_classes: k,
            path: Some(dir.to_string_lossy().into_owned()),
            allow_partial: true,
            splits: vec!["train".into(), "test".into()],
            ..Default::default()
        }
    }

    fn img(seed: u8) -> Vec<u8> {
        (0..PIXELS)
            .map(|i| (i as u8).wrapping_mul(seed).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn reads_cifar100_coarse_and_fine_labels_and_pixels() {
        let dir = tempfile::tempdir().unwrap();
        write_records(
            &dir.path().join("train.bin"),
            &[(vec![3, 77], img(1)), (vec![19, 5], img(3))],
        )
        .unwrap();
        write_records(&dir.path().join("test.bin"), &[(vec![0, 99], img(7))]).unwrap();
        let ds = load(&cfg(dir.path(), "cifar100-20", 20)).unwrap();
        assert_eq!(ds.labels, [3, 19, 0]);
        assert_eq!(ds.image(1), img(3).as_slice());
        assert_eq!(ds.image(2), img(7).as_slice());
        let fine = load(&cfg(dir.path(), "cifar100", 100)).unwrap();
        assert_eq!(fine.labels, [77, 5, 99]);
        assert_eq!(fine.images, ds.images);
        // Test split only.
        let test_only = DatasetConfig {
            splits: vec!["test".into()],
            ..cfg(dir.path(), "cifar100", 100)
        };
        assert_eq!(load(&test_only).unwrap().labels, [99]);
    }

    /// methods.md §1.5 gives CC's super-class table as a fine→coarse vector. The CIFAR-100
    /// page documents the coarse classes by name (superclass → its five classes) and the binary
    /// stores labels as indices into the alphabetical `fine_label_names` /
    /// `coarse_label_names`; rebuilding the vector from those names must give CC's table.
    #[test]
    fn cc_superclass_table_equals_the_documented_coarse_labels() {
        let fine = "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy \
            bridge bus butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud \
            cockroach couch crab crocodile cup dinosaur dolphin elephant flatfish forest fox girl \
            hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster man \
            maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree \
            pear pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road \
            rocket rose sea seal shark shrew skunk skyscraper snail snake spider squirrel \
            streetcar sunflower sweet_pepper table tank telephone television tiger tractor train \
            trout tulip turtle wardrobe whale willow_tree wolf woman worm";
        let fine: Vec<&str> = fine.split_whitespace().collect();
        assert_eq!(fine.len(), 100);
        // Coarse classes in the alphabetical order of coarse_label_names.
        let members = [
            "beaver dolphin otter seal whale",            // aquatic_mammals
            "aquarium_fish flatfish ray shark trout",     // fish
            "orchid poppy rose sunflower tulip",          // flowers
            "bottle bowl can cup plate",                  // food_containers
            "apple mushroom orange pear sweet_pepper",    // fruit_and_vegetables
            "clock keyboard lamp telephone television",   // household_electrical_devices
            "bed chair couch table wardrobe",             // household_furniture
            "bee beetle butterfly caterpillar cockroach", // insects
            "bear leopard lion tiger wolf",               // large_carnivores
            "bridge castle house road skyscraper",        // large_man-made_outdoor_things
            "cloud forest mountain plain sea",            // large_natural_outdoor_scenes
            "camel cattle chimpanzee elephant kangaroo",  // large_omnivores_and_herbivores
            "fox porcupine possum raccoon skunk",         // medium_mammals
            "crab lobster snail spider worm",             // non-insect_invertebrates
            "baby boy girl man woman",                    // people
            "crocodile dinosaur lizard snake turtle",     // reptiles
            "hamster mouse rabbit shrew squirrel",        // small_mammals
            "maple_tree oak_tree palm_tree pine_tree willow_tree", // trees
            "bicycle bus motorcycle pickup_truck train",  // vehicles_1
            "lawn_mower rocket streetcar tank tractor",   // vehicles_2
        ];
        let mut documented = [usize::MAX; 100];
        for (c, names) in members.iter().enumerate() {
            for n in names.split_whitespace() {
                documented[fine.iter().position(|f| *f == n).unwrap()] = c;
            }
        }
        // methods.md §1.5, "Equivalent fine→coarse vector".
        let cc = [
            4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11, 6, 11, 5, 10, 7, 6,
            13, 15, 3, 15, 0, 11, 1, 10, 12, 14, 16, 9, 11, 5, 5, 19, 8, 8, 15, 13, 14, 17, 18, 10,
            16, 4, 17, 4, 2, 0, 17, 4, 18, 17, 10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16,
            12, 9, 13, 15, 13, 16, 19, 2, 4, 6, 19, 5, 5, 8, 19, 18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
        ];
        assert_eq!(documented, cc);
    }

    #[test]
    fn refuses_truncated_and_corrupt_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("train.bin"), vec![0u8; 3074 * 2 - 5]).unwrap();
        std::fs::write(dir.path().join("test.bin"), vec![0u8; 3074]).unwrap();
        let e = load(&cfg(dir.path(), "cifar100-20", 20))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("train.bin") && e.contains("not a whole number"),
            "{e}"
        );
        let mut bad = vec![0u8; 3074];
        bad[1] = 100; // fine label out of range is caught even when evaluating coarse labels
        std::fs::write(dir.path().join("train.bin"), bad).unwrap();
        let e = load(&cfg(dir.path(), "cifar100-20", 20))
            .unwrap_err()
            .to_string();
        assert!(e.contains("label 100, expected 0..100"), "{e}");
        let strict = DatasetConfig {
            allow_partial: false,
            ..cfg(dir.path(), "cifar100-20", 20)
        };
        std::fs::write(dir.path().join("train.bin"), vec![0u8; 3074]).unwrap();
        let e = load(&strict).unwrap_err().to_string();
        assert!(e.contains("expected 50000 records, found 1"), "{e}");
    }

    #[test]
    fn missing_folder_says_where_to_get_it() {
        let e = load(&DatasetConfig {
            name: "cifar10".into(),
            path: Some("/nonexistent/x".into()),
            splits: vec!["train".into()],
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("data fetch cifar10") && e.contains("dataset.path"),
            "{e}"
        );
    }
}
