//! Image-folder datasets: ImageNet-10 and ImageNet-Dogs built from an ILSVRC2012 train folder
//! with the exact wnid lists of CC (label = index in the list), Tiny-ImageNet
//! (`tiny-imagenet-200/train`, from the folder or straight from the official `.zip`), and the
//! generic `folder` dataset (one sub-folder per class, classes in sorted name order, as
//! torchvision's `ImageFolder`; or, with the images directly in the folder and no sub-folder,
//! unlabelled data: labels −1, clustered into `dataset.num_classes` clusters, never scored
//! against labels; a folder holding both images and sub-folders is an error naming it).
//!
//! File order is deterministic: classes in label order, files sorted by their path within the
//! class folder (walked recursively). PNG and JPEG are decoded with the `image` crate, converted
//! to RGB and resized to `dataset.image_size` square (antialiased bilinear, like `Resize((s, s))`).
//! A file in another image format, an undecodable file, a missing or empty class folder is an
//! error naming it.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::super::catalog;
use super::super::Dataset;
use crate::config::run::DatasetConfig;
use crate::error::{Error, Result};

/// ImageNet-10 (CC `datasets/ImageNet-10.txt`).
pub const IMAGENET10: [&str; 10] = [
    "n02056570",
    "n02085936",
    "n02128757",
    "n02690373",
    "n02692877",
    "n03095699",
    "n04254680",
    "n04285008",
    "n04467665",
    "n07747607",
];

/// ImageNet-Dogs (CC `datasets/ImageNet-dogs.txt`).
pub const IMAGENET_DOGS: [&str; 15] = [
    "n02085936",
    "n02086646",
    "n02088238",
    "n02091467",
    "n02097130",
    "n02099601",
    "n02101388",
    "n02101556",
    "n02102177",
    "n02105056",
    "n02105412",
    "n02105855",
    "n02107142",
    "n02110958",
    "n02112137",
];

const UNSUPPORTED: &[&str] = &["bmp", "gif", "ppm", "pgm", "tif", "tiff", "webp"];

/// Class names and the labelled images of a dataset, in label order.
type Listing = (Vec<String>, Vec<(i64, Item)>);

/// Where an image's bytes are.
enum Item {
    File(PathBuf),
    Bytes(String, Vec<u8>),
}

impl Item {
    fn name(&self) -> String {
        match self {
            Item::File(p) => p.display().to_string(),
            Item::Bytes(n, _) => n.clone(),
        }
    }
}

fn is_image(name: &str) -> Result<bool> {
    let ext = name.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    if UNSUPPORTED.contains(&ext.as_str()) {
        return Err(Error::BadInput(format!(
            "{name}: .{ext} images are not supported (PNG and JPEG are); convert it or remove it"
        )));
    }
    Ok(name.contains('.') && matches!(ext.as_str(), "png" | "jpg" | "jpeg"))
}

/// Image files under `dir`, recursively, sorted by path.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let rd = std::fs::read_dir(dir)
        .map_err(|e| Error::BadInput(format!("cannot read folder {}: {e}", dir.display())))?;
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out)?;
        } else if is_image(&p.to_string_lossy())? {
            out.push(p);
        }
    }
    Ok(())
}

/// Class folders `root/<class>`; each must exist and hold at least one image.
fn from_folders(root: &Path, classes: &[String]) -> Result<Vec<(i64, Item)>> {
    let mut items = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let dir = root.join(class);
        if !dir.is_dir() {
            return Err(Error::BadInput(format!(
                "{}: class folder missing (expected one folder per class: {})",
                dir.display(),
                classes.join(", ")
            )));
        }
        let mut files = Vec::new();
        walk(&dir, &mut files)?;
        if files.is_empty() {
            return Err(Error::BadInput(format!(
                "{}: no PNG/JPEG images in this class folder",
                dir.display()
            )));
        }
        items.extend(files.into_iter().map(|f| (label as i64, Item::File(f))));
    }
    Ok(items)
}

/// Sorted sub-folder names of `root`.
fn subfolders(root: &Path) -> Result<Vec<String>> {
    let rd = std::fs::read_dir(root)
        .map_err(|e| Error::BadInput(format!("cannot read folder {}: {e}", root.display())))?;
    let mut v: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    Ok(v)
}

/// Tiny-ImageNet's train images straight from `tiny-imagenet-200.zip`.
fn from_tiny_zip(zip_path: &Path) -> Result<Listing> {
    let bad = |e: &dyn std::fmt::Display| {
        Error::BadInput(format!(
            "{}: not a readable zip archive ({e}); re-download it",
            zip_path.display()
        ))
    };
    let f = std::fs::File::open(zip_path).map_err(|e| bad(&e))?;
    let mut zip = zip::ZipArchive::new(f).map_err(|e| bad(&e))?;
    let mut found: Vec<(String, String, Vec<u8>)> = Vec::new();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| bad(&e))?;
        let name = entry.name().map_err(|e| bad(&e))?.to_string();
        let parts: Vec<&str> = name.split('/').collect();
        // tiny-imagenet-200/train/<wnid>/images/<file>
        let Some(t) = parts.iter().position(|p| *p == "train") else {
            continue;
        };
        if parts.len() < t + 3 || entry.is_dir() || !is_image(&name)? {
            continue;
        }
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        std::io::Read::read_to_end(&mut entry, &mut bytes).map_err(|e| bad(&e))?;
        found.push((parts[t + 1].to_string(), name, bytes));
    }
    found.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    let mut classes: Vec<String> = found.iter().map(|f| f.0.clone()).collect();
    classes.dedup();
    let items = found
        .into_iter()
        .map(|(c, n, b)| {
            let label = classes.binary_search(&c).expect("class listed") as i64;
            (label, Item::Bytes(format!("{}:{n}", zip_path.display()), b))
        })
        .collect();
    Ok((classes, items))
}

fn decode(item: &Item, size: usize) -> Result<Vec<u8>> {
    let bytes = match item {
        Item::File(p) => std::fs::read(p)
            .map_err(|e| Error::BadInput(format!("cannot read {}: {e}", p.display())))?,
        Item::Bytes(_, b) => b.clone(),
    };
    let img = image::load_from_memory(&bytes).map_err(|e| {
        Error::BadInput(format!(
            "{}: not a decodable PNG/JPEG image ({e}); replace or remove it",
            item.name()
        ))
    })?;
    let mut rgb = img.to_rgb8();
    if rgb.width() as usize != size || rgb.height() as usize != size {
        rgb = image::imageops::resize(
            &rgb,
            size as u32,
            size as u32,
            image::imageops::FilterType::Triangle,
        );
    }
    Ok(rgb.into_raw())
}

/// The image files named by `args` (files, or folders read recursively, in path order), for
/// `clusterlab predict`: a file that is not a PNG/JPEG, a missing path or no image at all is
/// an error naming it.
pub fn list_images(args: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for a in args {
        if a.is_dir() {
            let before = out.len();
            walk(a, &mut out)?;
            if out.len() == before {
                return Err(Error::BadInput(format!(
                    "{}: no PNG or JPEG image in this folder",
                    a.display()
                )));
            }
        } else if a.is_file() {
            if !is_image(&a.to_string_lossy())? {
                return Err(Error::BadInput(format!(
                    "{}: not a PNG or JPEG file (by its extension)",
                    a.display()
                )));
            }
            out.push(a.clone());
        } else {
            return Err(Error::BadInput(format!(
                "{}: no such file or folder",
                a.display()
            )));
        }
    }
    Ok(out)
}

/// `paths` decoded as an unlabelled dataset (labels −1) of RGB images resized to `size`
/// square exactly as the image-folder datasets are, decoded in parallel.
pub fn load_unlabelled(paths: &[PathBuf], size: usize) -> Result<Dataset> {
    use rayon::prelude::*;
    let images = paths
        .par_iter()
        .map(|p| decode(&Item::File(p.clone()), size))
        .collect::<Vec<Result<Vec<u8>>>>()
        // The first bad image in path order, whichever thread met it first.
        .into_iter()
        .collect::<Result<Vec<Vec<u8>>>>()?;
    Ok(Dataset {
        name: "images".into(),
        images: images.concat(),
        labels: vec![-1; paths.len()],
        height: size,
        width: size,
        channels: 3,
        num_classes: 0,
        features: None,
    })
}

/// The PNG/JPEG files directly in `root` (not in its sub-folders), sorted by path.
fn top_level_images(root: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(root)
        .map_err(|e| Error::BadInput(format!("cannot read folder {}: {e}", root.display())))?;
    let mut out = Vec::new();
    for p in rd.filter_map(|e| e.ok().map(|e| e.path())) {
        if p.is_file() && is_image(&p.to_string_lossy())? {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// A `folder` dataset without class folders: its images (sorted by path) as unlabelled data
/// (labels −1) to cluster into `dataset.num_classes` clusters.
fn load_unlabelled_folder(cfg: &DatasetConfig, files: &[PathBuf]) -> Result<Dataset> {
    let mut ds = load_unlabelled(files, cfg.image_size)?;
    ds.name = cfg.name.clone();
    ds.num_classes = cfg.num_classes;
    Ok(ds)
}

/// Loads an image-folder dataset (`imagenet10`, `imagenet-dogs`, `tiny-imagenet`, `folder`).
pub fn load(cfg: &DatasetConfig) -> Result<Dataset> {
    let spec = catalog::spec(&cfg.name).expect("an image-folder name");
    let Some(root) = spec.locate(cfg) else {
        return Err(Error::BadInput(spec.missing(cfg)));
    };
    let (classes, items, expected): (Vec<String>, Vec<(i64, Item)>, Option<usize>) =
        match cfg.name.as_str() {
            "imagenet10" | "imagenet-dogs" => {
                let list: &[&str] = if cfg.name == "imagenet10" {
                    &IMAGENET10
                } else {
                    &IMAGENET_DOGS
                };
                let classes: Vec<String> = list.iter().map(|s| s.to_string()).collect();
                let items = from_folders(&root, &classes)?;
                (classes, items, Some(1300 * list.len()))
            }
            "tiny-imagenet" => {
                let (classes, items) = if root.is_file() {
                    from_tiny_zip(&root)?
                } else {
                    let train = if root.join("train").is_dir() {
                        root.join("train")
                    } else {
                        root.clone()
                    };
                    let classes = subfolders(&train)?;
                    let items = from_folders(&train, &classes)?;
                    (classes, items)
                };
                if classes.len() != 200 && !cfg.allow_partial {
                    return Err(Error::BadInput(format!(
                        "{}: expected 200 class folders (wnids) under train/, found {}; \
                         re-download (or set dataset.allow_partial: true for a subset)",
                        root.display(),
                        classes.len()
                    )));
                }
                (classes, items, Some(100_000))
            }
            _ => {
                if !root.is_dir() {
                    return Err(Error::BadInput(format!(
                        "dataset folder: {} is not a folder (expected one sub-folder per class, \
                         or the images directly in it for unlabelled data)",
                        root.display()
                    )));
                }
                let classes = subfolders(&root)?;
                let loose = top_level_images(&root)?;
                if !loose.is_empty() {
                    if !classes.is_empty() {
                        return Err(Error::BadInput(format!(
                            "dataset folder: {} holds both images ({}, …) and sub-folders ({}); \
                             put every image in a class folder (labelled data) or none in a \
                             sub-folder (unlabelled data)",
                            root.display(),
                            loose[0].display(),
                            classes.join(", ")
                        )));
                    }
                    return load_unlabelled_folder(cfg, &loose);
                }
                let items = from_folders(&root, &classes)?;
                (classes, items, None)
            }
        };
    if let Some(n) = expected {
        if items.len() != n && !cfg.allow_partial {
            return Err(Error::BadInput(format!(
                "{}: expected {n} images for {}, found {}; check the folder (or set \
                 dataset.allow_partial: true for a subset)",
                root.display(),
                cfg.name,
                items.len()
            )));
        }
    }
    if classes.len() != cfg.num_classes {
        return Err(Error::BadInput(format!(
            "dataset {}: {} has {} classes but dataset.num_classes is {}; set \
             dataset.num_classes: {}",
            cfg.name,
            root.display(),
            classes.len(),
            cfg.num_classes,
            classes.len()
        )));
    }
    let size = cfg.image_size;
    let decoded: Vec<Vec<u8>> = items
        .par_iter()
        .map(|(_, item)| decode(item, size))
        .collect::<Vec<Result<Vec<u8>>>>()
        // The first bad image in path order, whichever thread met it first.
        .into_iter()
        .collect::<Result<_>>()?;
    Ok(Dataset {
        name: cfg.name.clone(),
        images: decoded.concat(),
        labels: items.iter().map(|(l, _)| *l).collect(),
        height: size,
        width: size,
        channels: 3,
        num_classes: classes.len(),
        features: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(path: &Path, w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        image::RgbImage::from_fn(w, h, |x, y| image::Rgb(f(x, y)))
            .save(path)
            .unwrap();
    }

    fn cfg(name: &str, path: &Path, k: usize, size: usize) -> DatasetConfig {
        DatasetConfig {
            name: name.into(),
            path: Some(path.to_string_lossy().into_owned()),
            num_classes: k,
            image_size: size,
            allow_partial: true,
            ..Default::default()
        }
    }

    #[test]
    fn resize_matches_pil_bilinear() {
        // b = (np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3) * 2)
        // np.asarray(Image.fromarray(b).resize((3, 3), Image.BILINEAR)).reshape(-1)
        let pil = [
            23, 25, 27, 36, 38, 40, 49, 51, 53, 89, 91, 93, 102, 104, 106, 115, 117, 119, 155, 157,
            159, 168, 170, 172, 181, 183, 185,
        ];
        let dir = tempfile::tempdir().unwrap();
        png(&dir.path().join("a/x.png"), 7, 5, |x, y| {
            let i = ((y * 7 + x) * 3) as u8;
            [i * 2, (i + 1) * 2, (i + 2) * 2]
        });
        png(&dir.path().join("b/x.png"), 3, 3, |_, _| [0, 0, 0]);
        let ds = load(&cfg("folder", dir.path(), 2, 3)).unwrap();
        for (got, want) in ds.image(0).iter().zip(pil) {
            assert!(
                (*got as i32 - want).abs() <= 1,
                "{:?} vs {pil:?}",
                ds.image(0)
            );
        }
    }

    #[test]
    fn imagenet10_uses_the_wnid_list_order_and_ignores_other_classes() {
        let dir = tempfile::tempdir().unwrap();
        for (i, w) in IMAGENET10.iter().enumerate() {
            for j in 0..2u8 {
                png(
                    &dir.path().join(w).join(format!("{w}_{j}.png")),
                    8,
                    8,
                    |_, _| [i as u8, j, 7],
                );
            }
        }
        // A wnid not in the list is not read.
        png(&dir.path().join("n99999999/x.png"), 8, 8, |_, _| [0, 0, 0]);
        let ds = load(&cfg("imagenet10", dir.path(), 10, 8)).unwrap();
        assert_eq!(ds.len(), 20);
        assert_eq!(ds.labels[..4], [0, 0, 1, 1]);
        assert_eq!(ds.image(3)[..3], [1, 1, 7]);
        let strict = DatasetConfig {
            allow_partial: false,
            ..cfg("imagenet10", dir.path(), 10, 8)
        };
        let e = load(&strict).unwrap_err().to_string();
        assert!(e.contains("expected 13000 images"), "{e}");
        std::fs::remove_dir_all(dir.path().join(IMAGENET10[4])).unwrap();
        let e = load(&cfg("imagenet10", dir.path(), 10, 8))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("n02692877") && e.contains("class folder missing"),
            "{e}"
        );
    }

    #[test]
    fn folder_resizes_and_reads_jpeg() {
        let dir = tempfile::tempdir().unwrap();
        // 4×4 two-colour PNG halves, downsized to 2×2: each output pixel averages one colour.
        png(&dir.path().join("a/1.png"), 4, 4, |x, _| {
            if x < 2 {
                [200, 0, 0]
            } else {
                [0, 0, 100]
            }
        });
        let jpg = dir.path().join("b/sub/2.jpg");
        std::fs::create_dir_all(jpg.parent().unwrap()).unwrap();
        image::RgbImage::from_pixel(2, 2, image::Rgb([128, 128, 128]))
            .save(&jpg)
            .unwrap();
        std::fs::write(dir.path().join("b/notes.txt"), "ignored").unwrap();
        let ds = load(&cfg("folder", dir.path(), 2, 2)).unwrap();
        assert_eq!(ds.labels, [0, 1]);
        // PIL, as torchvision's Resize((2, 2)) calls it:
        //   a = np.zeros((4, 4, 3), np.uint8); a[:, :2, 0] = 200; a[:, 2:, 2] = 100
        //   np.asarray(Image.fromarray(a).resize((2, 2), Image.BILINEAR)).reshape(-1)
        assert_eq!(ds.image(0), [171, 0, 14, 29, 0, 86, 171, 0, 14, 29, 0, 86]);
        // JPEG of a flat grey round-trips within JPEG error.
        assert!(
            ds.image(1).iter().all(|&v| (126..=130).contains(&v)),
            "{:?}",
            ds.image(1)
        );
        std::fs::write(dir.path().join("b/3.png"), b"not a png").unwrap();
        let e = load(&cfg("folder", dir.path(), 2, 2))
            .unwrap_err()
            .to_string();
        assert!(e.contains("3.png") && e.contains("not a decodable"), "{e}");
    }

    #[test]
    fn folder_without_class_folders_is_unlabelled_and_a_mix_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        png(&dir.path().join("b.png"), 4, 4, |_, _| [10, 20, 30]);
        png(&dir.path().join("a.png"), 4, 4, |_, _| [200, 0, 0]);
        let ds = load(&cfg("folder", dir.path(), 5, 2)).unwrap();
        assert_eq!(ds.labels, [-1, -1]);
        assert!(!ds.is_labelled());
        assert_eq!(ds.num_classes, 5);
        // Sorted by path: a.png first.
        assert_eq!(ds.image(0)[..3], [200, 0, 0]);
        png(&dir.path().join("cats/c.png"), 4, 4, |_, _| [0, 0, 0]);
        let e = load(&cfg("folder", dir.path(), 5, 2))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("holds both images") && e.contains("a.png") && e.contains("cats"),
            "{e}"
        );
    }
}
