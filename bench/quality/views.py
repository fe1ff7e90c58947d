"""Quantiles of training-view statistics, clusterlab vs torchvision, on a real `arrays` dataset.

  cargo run --release --example quality_views -- data/quality/mnist 16 > ours.txt
  python bench/quality/views.py data/quality/mnist 16 ours.txt [--pixels float|pil]

Each side makes one view of every image (image i*7919 mod N, as the example) with the quality
grids' augmentation (defaults, crop scale 0.2–1, no flips) and records the view's mean, std and
fraction of pixels above 0.5; printed are the quantiles of each and two tail rates.
"""

import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from twin import load_arrays, transforms  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("path")
    ap.add_argument("size", type=int)
    ap.add_argument("ours")
    ap.add_argument("--pixels", default="float", choices=["float", "pil"])
    a = ap.parse_args()
    aug = {"crop_scale": [0.2, 1.0], "crop_ratio": [3 / 4, 4 / 3], "flip_p": 0.0, "jitter_p": 0.8, "brightness": 0.4,
           "contrast": 0.4, "saturation": 0.4, "hue": 0.1, "grayscale_p": 0.2, "blur_p": 0.0}
    cfg = {"augment": aug, "dataset": {"image_size": a.size}}
    ours = np.loadtxt(a.ours)
    labels = np.load(os.path.join(a.path, "labels.npy"))
    imgs, _ = load_arrays(a.path, len(np.unique(labels)), a.pixels)
    train, _ = transforms(cfg, a.pixels)
    torch.manual_seed(0)
    rows = []
    for i in range(len(imgs)):
        x = train(imgs[(i * 7919) % len(imgs)]).double()
        rows.append((x.mean().item(), x.std(unbiased=False).item(), (x > 0.5).double().mean().item()))
    tv = np.array(rows)
    q = [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99]
    print(f"{len(tv)} views each side; quantiles at {q}; torchvision path: {a.pixels}")
    for k, name in enumerate(["mean", "std", "frac>0.5"]):
        print(f"{name:9} torchvision {np.quantile(tv[:, k], q).round(4)}")
        print(f"{name:9} clusterlab  {np.quantile(ours[:, k], q).round(4)}")
    print(f"views with mean < 0.1: torchvision {(tv[:, 0] < 0.1).mean():.4f}, clusterlab {(ours[:, 0] < 0.1).mean():.4f}")


if __name__ == "__main__":
    main()
