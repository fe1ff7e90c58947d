"""PyTorch twin of `clusterlab bench train` for the CC method: the same model, batch, losses and
optimiser, timed the same way, printing the same JSON line. Run by `just bench-compare` (never
by the tests).

Model: backbone (the small CNN of clusterlab: conv3x3 -> BN -> ReLU -> max-pool 2 per width,
then global average pooling; or torchvision ResNet-18/34 with the CIFAR stem (3x3 conv, no
max-pool) or the ImageNet stem, without fc) + CC's instance projector (Linear-ReLU-Linear to
feature_dim, L2-normalised) and cluster projector (Linear-ReLU-Linear to K, softmax). Two views,
separate backbone passes. Loss = instance NT-Xent (tau 0.5) + cluster contrastive (tau 1.0) +
entropy term (log K + sum P log P, both views). Adam.
"""

import argparse
import json
import math
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def small_cnn(widths):
    layers, cin = [], 3
    for w in widths:
        layers += [nn.Conv2d(cin, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        cin = w
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), cin


def resnet(depth, stem):
    import torchvision

    net = {"resnet18": torchvision.models.resnet18, "resnet34": torchvision.models.resnet34}[depth]()
    if stem == "cifar":
        net.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        net.maxpool = nn.Identity()
    dim = net.fc.in_features
    net.fc = nn.Identity()
    return net, dim


def head(i, h, o):
    return nn.Sequential(nn.Linear(i, h), nn.ReLU(), nn.Linear(h, o))


def nt_xent(a, b, tau):
    """NT-Xent over 2N rows (SimCLR/CC): each row's positive is its partner in the other view."""
    n = a.shape[0]
    z = torch.cat([a, b], 0)
    sim = z @ z.t() / tau
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target, reduction="sum") / (2 * n)


def cc_loss(z_a, z_b, y_a, y_b, tau_i, tau_c):
    instance = nt_xent(F.normalize(z_a, dim=1), F.normalize(z_b, dim=1), tau_i)
    cluster = nt_xent(F.normalize(y_a.t(), dim=1), F.normalize(y_b.t(), dim=1), tau_c)
    k = y_a.shape[1]
    entropy = 0.0
    for y in (y_a, y_b):
        p = y.sum(0) / y.sum()
        entropy = entropy + math.log(k) + (p * torch.log(p)).sum()
    return instance + cluster + entropy


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backbone", default="cnn", choices=["cnn", "resnet18", "resnet34"])
    ap.add_argument("--stem", default="cifar", choices=["cifar", "imagenet"])
    ap.add_argument("--widths", default="32,64,128,256", help="CNN block widths")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--clusters", type=int, default=10)
    ap.add_argument("--feature-dim", type=int, default=128)
    ap.add_argument("--head-hidden", type=int, default=256)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="f32", choices=["f32", "bf16"], help="bf16: autocast on CUDA")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave)")
    ap.add_argument("--count-ops", action="store_true",
                    help="profile one more step (torch.profiler) and count its aten leaf events")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    if a.backbone == "cnn":
        backbone, dim = small_cnn([int(w) for w in a.widths.split(",")])
    else:
        backbone, dim = resnet(a.backbone, a.stem)
    inst = head(dim, a.head_hidden, a.feature_dim)
    clus = head(dim, a.head_hidden, a.clusters)
    model = nn.ModuleList([backbone, inst, clus]).to(dev).train()
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    views = [torch.rand(a.batch, 3, a.image_size, a.image_size, device=dev) for _ in range(2)]
    use_bf16 = a.dtype == "bf16" and dev.type == "cuda"
    if a.dtype == "f32" and dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False

    def step():
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=use_bf16):
            h_a, h_b = backbone(views[0]), backbone(views[1])
            loss = cc_loss(inst(h_a), inst(h_b), F.softmax(clus(h_a), 1), F.softmax(clus(h_b), 1), 0.5, 1.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    for _ in range(a.warmup):
        step().item()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
        loss.item()  # clusterlab reads every term's value each step too
    if dev.type == "cuda":
        torch.cuda.synchronize()
    secs = time.perf_counter() - t
    # Peak resident memory of the timed steps, before any profiling: getrusage's ru_maxrss
    # (KiB on Linux), what `/usr/bin/time -f %M` reports and `clusterlab bench train` prints.
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ops = {}
    if a.count_ops:
        from torch.profiler import ProfilerActivity, profile

        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
        with profile(activities=acts) as prof:
            step().item()
            if dev.type == "cuda":
                torch.cuda.synchronize()
        events = [e for e in prof.events() if e.name.startswith("aten::")]
        # Leaf events: aten ops that call no other aten op (views and allocations included:
        # aten::empty, aten::as_strided), one per kernel-like unit of work on the CPU.
        leaves = [e for e in events if not any(c.name.startswith("aten::") for c in e.cpu_children)]
        ops = {"ops_per_step": len(leaves), "aten_events": len(events),
               "ops_counted": "aten leaf events of one step (torch.profiler)"}
        if dev.type == "cuda":
            ops["cuda_kernels"] = sum(1 for e in prof.events() if e.device_type.name == "CUDA")
    print(json.dumps({**ops, "peak_rss_mb": peak_rss_mb,
        "bench": "train", "impl": "pytorch", "torch": torch.__version__,
        "images_per_s": a.steps * a.batch / secs, "step_ms": secs * 1e3 / a.steps,
        "device": a.device, "dtype": a.dtype, "threads": torch.get_num_threads(), "steps": a.steps,
        "config": {"method": "cc", "backbone": a.backbone, "stem": a.stem, "widths": a.widths,
                   "batch": a.batch, "image_size": a.image_size, "views": 2,
                   "params": sum(p.numel() for p in model.parameters())},
    }))


if __name__ == "__main__":
    main()
