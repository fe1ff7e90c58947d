"""clusterlab vs its PyTorch twin on a real dataset, over seeds: `just quality-compare GRID SEEDS`.

  python bench/quality/compare.py GRID SEEDS [--set KEY=VALUE]... [--twin-init INIT] [--json OUT]

For each seed: `clusterlab sweep GRID --set seed=S` in a scratch run store, then
bench/quality/twin.py on that run's resolved config.yaml (the same settings, read from the
file). Prints, per evaluated epoch, mean ± sample std over seeds of NMI and ACC for each, and
the ratio of the means (clusterlab / PyTorch). `--set` goes to clusterlab, hence to the
config the twin reads; `--twin-init` picks the twin's conv init (default pytorch_default,
a PyTorch user's small CNN; `config` follows model.weight_init). CLUSTERLAB (the binary) and
PYTHON (with torch, torchvision, scikit-learn, scipy, pyyaml, pyarrow) come from the
environment. Threads: --threads for clusterlab (default RAYON_NUM_THREADS or 2),
--twin-threads for PyTorch (default 1). Only quality is compared here, not speed.
"""

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile

import pyarrow.parquet as pq
import yaml


def mean_std(xs):
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def ours(binary, grid, seed, sets, threads, store):
    cmd = [binary, "--runs-dir", store, "--reports-dir", os.path.join(store, ".reports"), "sweep", grid, "--set", f"seed={seed}"]
    for s in sets:
        cmd += ["--set", s]
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, cwd=os.getcwd())
    for cfg_path in glob.glob(os.path.join(store, "*", "*", "config.yaml")):
        cfg = yaml.safe_load(open(cfg_path))
        if cfg["seed"] == seed:
            t = pq.read_table(os.path.join(os.path.dirname(cfg_path), "epochs.parquet")).to_pydict()
            rows = {}
            for i, e in enumerate(t["epoch"]):
                rows[e] = {"nmi": t["nmi"][i], "acc": t["acc"][i], "loss": t["loss_total"][i], "seconds": t["seconds"][i]}
            return cfg_path, cfg, rows
    sys.exit(f"no run with seed {seed} under {store}")


def twin(python, cfg_path, init, threads):
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    out = subprocess.run([python, os.path.join(here, "twin.py"), cfg_path, "--weight-init", init,
                          "--threads", str(threads)], check=True, env=env, capture_output=True, text=True).stdout
    rows = {}
    for line in out.splitlines():
        r = json.loads(line)
        if "epoch" in r:
            rows[r["epoch"]] = r
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("grid")
    ap.add_argument("seeds", help="comma-separated, e.g. 0,1,2")
    ap.add_argument("--set", action="append", default=[], dest="sets")
    ap.add_argument("--twin-init", default="pytorch_default", choices=["pytorch_default", "kaiming_fan_out", "config"])
    ap.add_argument("--threads", type=int, default=int(os.environ.get("RAYON_NUM_THREADS", "2")),
                    help="clusterlab's threads (RAYON_NUM_THREADS)")
    ap.add_argument("--twin-threads", type=int, default=1,
                    help="PyTorch's threads (1: OpenMP threads spin-wait when the cores are shared)")
    ap.add_argument("--json", help="also write every run's per-epoch rows here")
    ap.add_argument("--reuse-twin", metavar="JSON",
                    help="take the twin's rows for these seeds from an earlier --json output instead of "
                         "running it (valid when only keys the twin ignores differ, e.g. model.weight_init "
                         "with --twin-init pytorch_default)")
    a = ap.parse_args()
    binary = os.environ.get("CLUSTERLAB", "target/release/clusterlab")
    python = os.environ.get("PYTHON", sys.executable)
    grid = a.grid if os.path.exists(a.grid) else f"experiments/{a.grid}.yaml"
    seeds = [int(s) for s in a.seeds.split(",")]
    per = {"clusterlab": {}, "pytorch": {}}
    cfg = None
    reused = None
    if a.reuse_twin:
        earlier = json.load(open(a.reuse_twin))
        if earlier["twin_init"] != a.twin_init or a.twin_init == "config":
            sys.exit(f"{a.reuse_twin}: twin init {earlier['twin_init']}, this comparison asks {a.twin_init}")
        reused = {int(s): {int(e): r for e, r in rows.items()} for s, rows in earlier["runs"]["pytorch"].items()}
    with tempfile.TemporaryDirectory(prefix="quality-") as store:
        for seed in seeds:
            cfg_path, cfg, rows = ours(binary, grid, seed, a.sets, a.threads, store)
            per["clusterlab"][seed] = rows
            if reused is not None:
                if seed not in reused:
                    sys.exit(f"{a.reuse_twin} has no twin run of seed {seed}")
                per["pytorch"][seed] = reused[seed]
            else:
                per["pytorch"][seed] = twin(python, cfg_path, a.twin_init, a.twin_threads)
            last = max(rows)
            print(f"seed {seed}: clusterlab NMI {rows[last]['nmi']:.3f} ({rows[last]['seconds']:.0f} s), "
                  f"pytorch NMI {per['pytorch'][seed][last]['nmi']:.3f} ({per['pytorch'][seed][last]['seconds']:.0f} s)",
                  file=sys.stderr, flush=True)
    m = cfg["model"]
    print(f"## {os.path.basename(grid)}: {cfg['dataset']['path']} at {cfg['dataset']['image_size']} px, "
          f"{cfg['train']['epochs']} epochs, batch {cfg['train']['batch_size']}, seeds {a.seeds}; "
          f"clusterlab model.weight_init={m['weight_init']}, twin init {a.twin_init}"
          + (f" (twin rows from {os.path.basename(a.reuse_twin)})" if a.reuse_twin else "")
          + (f"; --set {' '.join(a.sets)}" if a.sets else ""))
    print()
    print("| epoch | clusterlab NMI | PyTorch NMI | NMI ratio | clusterlab ACC | PyTorch ACC |")
    print("|---:|---|---|---:|---|---|")
    epochs = sorted(e for e, r in per["clusterlab"][seeds[0]].items() if r["nmi"] is not None)
    for e in epochs:
        cn = mean_std([per["clusterlab"][s][e]["nmi"] for s in seeds])
        pn = mean_std([per["pytorch"][s][e]["nmi"] for s in seeds])
        ca = mean_std([per["clusterlab"][s][e]["acc"] for s in seeds])
        pa = mean_std([per["pytorch"][s][e]["acc"] for s in seeds])
        print(f"| {e} | {cn[0]:.3f} ± {cn[1]:.3f} | {pn[0]:.3f} ± {pn[1]:.3f} | {cn[0] / pn[0]:.2f} "
              f"| {ca[0]:.3f} ± {ca[1]:.3f} | {pa[0]:.3f} ± {pa[1]:.3f} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"grid": grid, "sets": a.sets, "twin_init": a.twin_init, "runs": per}, f)


if __name__ == "__main__":
    main()
