"""PyTorch twin of a clusterlab CC training run, for training-quality parity (issue 19).

  python bench/quality/twin.py CONFIG.yaml [--weight-init pytorch_default|kaiming_fan_out|config]

CONFIG.yaml is a run's resolved config (`runs/<grid>/<id>/config.yaml`); the twin trains the
same run as a PyTorch user would write it and prints one JSON line per epoch (`epoch`, `loss`,
and at evaluated epochs `nmi`, `acc`), then a final `{"done": ...}` line.

What is the same as clusterlab (each checked stage by stage, see tests/quality.rs):
  data      `arrays` folder (images.npy uint8 N×H×W[×C], labels.npy); grayscale converted to RGB
            as PIL's convert("RGB"); labels mapped to 0..K in sorted order.
  views     two augmented views per image, torchvision on PIL images: RandomResizedCrop(size,
            scale, ratio) (bilinear, antialiased when shrinking), RandomHorizontalFlip(flip_p),
            RandomApply([ColorJitter(b, c, s, h)], jitter_p), RandomGrayscale(grayscale_p),
            ToTensor(); no normalisation (as CC). Test view: Resize((size, size)), ToTensor().
  batches   a fresh permutation each epoch, the last incomplete batch dropped.
  model     the small CNN (conv3×3 no bias → BN → ReLU → max-pool 2 per width, global average
            pool), CC's instance and cluster heads (Linear-ReLU-Linear), as bench/torch_twin.py.
  init      `pytorch_default` (each layer's own reset_parameters: what a PyTorch user gets) or
            `kaiming_fan_out` (convs N(0, 2/fan_out), as torchvision's ResNet); `config` takes
            the config's model.weight_init. Default: pytorch_default (the issue's reference).
  loss      instance NT-Xent (τ_i) + cluster contrast (τ_c) + entropy, bench/torch_twin.py's
            cc_loss; Adam with the config's lr, betas, eps, weight decay.
  eval      every eval_every epochs and after the last: eval mode (BN running statistics),
            the whole dataset in eval_batch_size chunks, argmax of the cluster head; NMI
            (arithmetic mean normalisation, natural log) and Hungarian ACC.
Randomness comes from torch's and Python's generators seeded with the run seed: the twin and
clusterlab draw from the same distributions, not the same numbers.
"""

import argparse
import json
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision.transforms as T
import yaml
from PIL import Image
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import normalized_mutual_info_score

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from torch_twin import cc_loss, head, small_cnn  # noqa: E402


def load_arrays(path, num_classes, pixels="pil"):
    if path.endswith(".npz"):
        z = np.load(path)
        images, labels = z["images"], z["labels"]
    else:
        images, labels = np.load(os.path.join(path, "images.npy")), np.load(os.path.join(path, "labels.npy"))
    values = np.unique(labels)
    assert len(values) == num_classes, f"{len(values)} label values, dataset.num_classes = {num_classes}"
    labels = np.searchsorted(values, labels)
    if images.ndim == 4 and images.shape[3] == 1:
        images = images[..., 0]
    if pixels == "float":  # CHW float tensors in [0, 1], as clusterlab keeps its views
        rgb = images if images.ndim == 4 else np.repeat(images[..., None], 3, axis=3)
        return [torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1).float() / 255.0 for im in rgb], labels
    pil = [Image.fromarray(im).convert("RGB") for im in images]
    return pil, labels


def transforms(cfg, pixels="pil"):
    a, size = cfg["augment"], cfg["dataset"]["image_size"]
    last = [T.ToTensor()] if pixels == "pil" else []
    assert a["blur_p"] == 0.0, "the twin has no blur (CC uses it for the ImageNet subsets only)"
    train = T.Compose([
        T.RandomResizedCrop(size, scale=tuple(a["crop_scale"]), ratio=tuple(a["crop_ratio"])),
        T.RandomHorizontalFlip(a["flip_p"]),
        T.RandomApply([T.ColorJitter(a["brightness"], a["contrast"], a["saturation"], a["hue"])], p=a["jitter_p"]),
        T.RandomGrayscale(a["grayscale_p"]),
    ] + last)
    test = T.Compose([T.Resize((size, size), antialias=True)] + last)
    return train, test


def build(cfg, weight_init):
    m, mc = cfg["model"], cfg["method"]
    assert m["backbone"] == "cnn", "the quality twin covers the small CNN"
    backbone, dim = small_cnn(m["widths"])
    if weight_init == "kaiming_fan_out":
        for mod in backbone.modules():
            if isinstance(mod, nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")
    inst = head(dim, mc["head_hidden"], mc["feature_dim"])
    clus = head(dim, mc["head_hidden"], cfg["dataset"]["num_classes"])
    return backbone, inst, clus


def hungarian_acc(labels, pred, k):
    table = np.zeros((k, k), dtype=np.int64)
    np.add.at(table, (pred, labels), 1)
    r, c = linear_sum_assignment(-table)
    return table[r, c].sum() / len(labels)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("config", help="a run's resolved config.yaml")
    ap.add_argument("--weight-init", default="pytorch_default",
                    choices=["pytorch_default", "kaiming_fan_out", "config"])
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave)")
    ap.add_argument("--pixels", default="pil", choices=["pil", "float"],
                    help="pil: torchvision on PIL images, uint8 after every op (CC's pipeline, a PyTorch "
                         "user's); float: the same transforms on float tensors (what clusterlab computes)")
    a = ap.parse_args()
    cfg = yaml.safe_load(open(a.config))
    assert cfg["method"]["name"] == "cc", "the quality twin covers CC"
    assert not cfg["method"].get("weights"), "the twin uses CC's default term weights"
    if a.threads:
        torch.set_num_threads(a.threads)
    init = cfg["model"]["weight_init"] if a.weight_init == "config" else a.weight_init
    seed = cfg["seed"]
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    ds, tr = cfg["dataset"], cfg["train"]
    images, labels = load_arrays(ds["path"], ds["num_classes"], a.pixels)
    train_t, test_t = transforms(cfg, a.pixels)
    backbone, inst, clus = build(cfg, init)
    model = nn.ModuleList([backbone, inst, clus])
    o = cfg["optimizer"]
    opt = torch.optim.Adam(model.parameters(), lr=float(o["lr"]), betas=(float(o["beta1"]), float(o["beta2"])), eps=float(o["eps"]),
                           weight_decay=float(o["weight_decay"]))
    test_x = torch.stack([test_t(im) for im in images])
    n, b, k = len(images), tr["batch_size"], ds["num_classes"]
    t0 = time.perf_counter()
    for epoch in range(1, tr["epochs"] + 1):
        model.train()
        order = torch.randperm(n).tolist()
        total, steps = 0.0, n // b
        for s in range(steps):
            idx = order[s * b:(s + 1) * b]
            x_a = torch.stack([train_t(images[i]) for i in idx])
            x_b = torch.stack([train_t(images[i]) for i in idx])
            h_a, h_b = backbone(x_a), backbone(x_b)
            loss = cc_loss(inst(h_a), inst(h_b), F.softmax(clus(h_a), 1), F.softmax(clus(h_b), 1),
                           cfg["method"]["instance_temperature"], cfg["method"]["cluster_temperature"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item()
        row = {"epoch": epoch, "loss": total / max(steps, 1), "seconds": time.perf_counter() - t0}
        if epoch % tr["eval_every"] == 0 or epoch == tr["epochs"]:
            model.eval()
            with torch.no_grad():
                pred = torch.cat([clus(backbone(test_x[i:i + tr["eval_batch_size"]])).argmax(1)
                                  for i in range(0, n, tr["eval_batch_size"])]).numpy()
            row["nmi"] = float(normalized_mutual_info_score(labels, pred))
            row["acc"] = float(hungarian_acc(labels, pred, k))
        print(json.dumps(row), flush=True)
    print(json.dumps({"done": True, "impl": "pytorch", "torch": torch.__version__, "weight_init": init,
                      "pixels": a.pixels,
                      "seed": seed, "threads": torch.get_num_threads()}), flush=True)


if __name__ == "__main__":
    main()
