//! The datasets this build knows: where their files are looked for, where they are downloaded
//! from and their published checksums (MD5 as listed on the official pages and in torchvision).

use std::path::{Path, PathBuf};

use super::source::{data_root, Source};
use crate::config::run::DatasetConfig;

/// One downloadable file: its path under the data root, its URL and its published MD5.
#[derive(Debug, Clone, Copy)]
pub struct Download {
    pub path: &'static str,
    pub url: &'static str,
    pub md5: &'static str,
}

/// A known dataset.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub name: &'static str,
    /// Folder under the data root that holds the extracted files (empty: `dataset.path` only).
    pub folder: &'static str,
    /// Official downloads (empty where the data cannot be fetched, e.g. ILSVRC2012).
    pub downloads: &'static [Download],
    /// How to obtain the data, for messages.
    pub how: &'static str,
}

const CIFAR10_TGZ: Download = Download {
    path: "cifar-10-binary.tar.gz",
    url: "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
    md5: "c32a1d4ab5d03f1284b67883e8d87530",
};
const CIFAR100_TGZ: Download = Download {
    path: "cifar-100-binary.tar.gz",
    url: "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
    md5: "03b5dce01913d631647c71ecec9e9cb8",
};
const STL10_TGZ: Download = Download {
    path: "stl10_binary.tar.gz",
    url: "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz",
    md5: "91f7769df0f17e558f3565bffb0c7dfb",
};
const TINY_ZIP: Download = Download {
    path: "tiny-imagenet-200.zip",
    url: "http://cs231n.stanford.edu/tiny-imagenet-200.zip",
    md5: "90528d7ca1a48142e341f4ef8d21d0de",
};
const MNIST: [Download; 4] = [
    Download {
        path: "mnist/train-images-idx3-ubyte.gz",
        url: "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz",
        md5: "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    },
    Download {
        path: "mnist/train-labels-idx1-ubyte.gz",
        url: "https://ossci-datasets.s3.amazonaws.com/mnist/train-labels-idx1-ubyte.gz",
        md5: "d53e105ee54ea40749a09fcbcd1e9432",
    },
    Download {
        path: "mnist/t10k-images-idx3-ubyte.gz",
        url: "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-images-idx3-ubyte.gz",
        md5: "9fb629c4189551a2d022fa330f9573f3",
    },
    Download {
        path: "mnist/t10k-labels-idx1-ubyte.gz",
        url: "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz",
        md5: "ec29112dd5afa0611ce80d1b7f02629c",
    },
];
const FASHION: [Download; 4] = [
    Download {
        path: "fashion-mnist/train-images-idx3-ubyte.gz",
        url:
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/train-images-idx3-ubyte.gz",
        md5: "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    },
    Download {
        path: "fashion-mnist/train-labels-idx1-ubyte.gz",
        url:
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/train-labels-idx1-ubyte.gz",
        md5: "25c81989df183df01b3e8a0aad5dffbe",
    },
    Download {
        path: "fashion-mnist/t10k-images-idx3-ubyte.gz",
        url: "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/t10k-images-idx3-ubyte.gz",
        md5: "bef4ecab320f06d8554ea6380940ec79",
    },
    Download {
        path: "fashion-mnist/t10k-labels-idx1-ubyte.gz",
        url: "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/t10k-labels-idx1-ubyte.gz",
        md5: "bb300cfdad3c16e7a12a480ee83cd310",
    },
];

const IMAGENET_HOW: &str = "ILSVRC2012 cannot be downloaded automatically (registration at \
    image-net.org); put the train folder (one sub-folder per wnid) at <data root>/imagenet/train \
    or point dataset.path at it";

/// Every dataset that reads files (the synthetic one is generated).
pub const SPECS: &[Spec] = &[
    Spec {
        name: "cifar10",
        folder: "cifar-10-batches-bin",
        downloads: &[CIFAR10_TGZ],
        how: "`clusterlab data fetch cifar10`, or download the archive and extract it",
    },
    Spec {
        name: "cifar100-20",
        folder: "cifar-100-binary",
        downloads: &[CIFAR100_TGZ],
        how: "`clusterlab data fetch cifar100-20`, or download the archive and extract it",
    },
    Spec {
        name: "cifar100",
        folder: "cifar-100-binary",
        downloads: &[CIFAR100_TGZ],
        how: "`clusterlab data fetch cifar100`, or download the archive and extract it",
    },
    Spec {
        name: "stl10",
        folder: "stl10_binary",
        downloads: &[STL10_TGZ],
        how: "`clusterlab data fetch stl10`, or download the archive and extract it",
    },
    Spec {
        name: "imagenet10",
        folder: "imagenet/train",
        downloads: &[],
        how: IMAGENET_HOW,
    },
    Spec {
        name: "imagenet-dogs",
        folder: "imagenet/train",
        downloads: &[],
        how: IMAGENET_HOW,
    },
    Spec {
        name: "tiny-imagenet",
        folder: "tiny-imagenet-200",
        downloads: &[TINY_ZIP],
        how: "`clusterlab data fetch tiny-imagenet` (reads the .zip directly), or extract it",
    },
    Spec {
        name: "mnist",
        folder: "mnist",
        downloads: &MNIST,
        how: "`clusterlab data fetch mnist` (the four IDX files, gzipped or not)",
    },
    Spec {
        name: "fashion-mnist",
        folder: "fashion-mnist",
        downloads: &FASHION,
        how: "`clusterlab data fetch fashion-mnist` (the four IDX files, gzipped or not)",
    },
    Spec {
        name: "folder",
        folder: "",
        downloads: &[],
        how: "set dataset.path to a folder with one sub-folder of PNG/JPEG images per class",
    },
    Spec {
        name: "arrays",
        folder: "",
        downloads: &[],
        how: "set dataset.path to a folder with images.npy + labels.npy, or to an .npz file",
    },
    Spec {
        name: "embeddings",
        folder: "",
        downloads: &[],
        how: "set dataset.path to an N×D .npy, .npz or .parquet file of precomputed embeddings",
    },
];

/// The spec of a dataset name.
pub fn spec(name: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.name == name)
}

impl Spec {
    /// Candidate locations, in the order they are tried: `dataset.path`, else the extracted
    /// folder under the data root, then the downloaded archive(s).
    pub fn candidates(&self, cfg: &DatasetConfig) -> Vec<PathBuf> {
        if let Some(p) = &cfg.path {
            return vec![PathBuf::from(p)];
        }
        let root = data_root();
        let mut v = Vec::new();
        if !self.folder.is_empty() {
            v.push(root.join(self.folder));
        }
        for d in self.downloads {
            if !d.path.contains('/') {
                v.push(root.join(d.path));
            }
        }
        v
    }

    /// The first candidate that exists.
    pub fn locate(&self, cfg: &DatasetConfig) -> Option<PathBuf> {
        self.candidates(cfg).into_iter().find(|p| p.exists())
    }

    /// The official download whose file is `path` (to verify an archive being read).
    pub fn download_for(&self, path: &Path) -> Option<&'static Download> {
        let name = path.file_name()?.to_string_lossy().into_owned();
        self.downloads
            .iter()
            .find(|d| Path::new(d.path).file_name().is_some_and(|n| *n == *name))
    }

    /// The message for a dataset that is not where it is looked for.
    pub fn missing(&self, cfg: &DatasetConfig) -> String {
        let looked: Vec<String> = self
            .candidates(cfg)
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let urls: Vec<&str> = self.downloads.iter().map(|d| d.url).collect();
        format!(
            "dataset {}: not found (looked for {}). {}{}; or set dataset.path, or {} to another \
             data root",
            self.name,
            if looked.is_empty() {
                "dataset.path, which is not set".to_string()
            } else {
                looked.join(", ")
            },
            self.how,
            if urls.is_empty() {
                String::new()
            } else {
                format!(" (official: {})", urls.join(" "))
            },
            super::source::DATA_ENV
        )
    }
}

/// The source of a folder-or-archive dataset, or the not-found message.
pub fn source(spec: &Spec, cfg: &DatasetConfig) -> crate::Result<Source> {
    let found = spec.locate(cfg);
    match found.as_deref().and_then(Source::at) {
        Some(s) => {
            // An official archive is checked against its published MD5 (a subset built for a
            // test or a smaller experiment, `dataset.allow_partial`, cannot match it).
            if let (Source::TarGz(p), false) = (&s, cfg.allow_partial) {
                if let Some(d) = spec.download_for(p) {
                    super::source::verify_md5(p, d.md5)?;
                }
            }
            Ok(s)
        }
        None => Err(crate::Error::BadInput(match found {
            Some(p) => format!(
                "dataset {}: {} is neither a folder nor a .tar.gz archive",
                spec.name,
                p.display()
            ),
            None => spec.missing(cfg),
        })),
    }
}
