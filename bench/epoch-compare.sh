#!/usr/bin/env bash
# Smoke-grid epoch time of two clusterlab binaries, side by side (docs/benchmarks.md, "Data
# path"): each binary trains CC seed 0 for 6 epochs in a temporary store, REPS times (default
# 3), alternating; prints each run's epochs 2-5 (epoch 1 warms up, epoch 6 evaluates), then the
# median and mean over every run's epochs 2-5 per configuration. The new binary runs with
# train.prefetch 0 and 2, and with candle's default spin of idle CPU workers
# (CANDLE_BARRIER_POOL_SPIN_LIMIT=25000, which the binary otherwise lowers to 1000).
# Usage: [REPS=6] bench/epoch-compare.sh OLD_BINARY NEW_BINARY   (needs python3 with pyarrow)
set -euo pipefail
OLD=$1 NEW=$2 REPS=${REPS:-3}
log=$(mktemp)
for rep in $(seq "$REPS"); do
  for cfg in "old OLD - -" "new,prefetch=0 NEW 0 -" "new,prefetch=2 NEW 2 -" \
             "new,prefetch=2,spin=25000 NEW 2 25000"; do
    set -- $cfg; label=$1 bin=${!2} pf=$3 spin=$4
    d=$(mktemp -d)
    extra=(); [ "$pf" != - ] && extra=(--set "train.prefetch=$pf")
    envs=(RAYON_NUM_THREADS=2); [ "$spin" != - ] && envs+=("CANDLE_BARRIER_POOL_SPIN_LIMIT=$spin")
    env "${envs[@]}" "$bin" --runs-dir "$d/runs" --reports-dir "$d/rep" sweep experiments/smoke.yaml \
      --set method.name=cc --set seed=0 --set train.epochs=6 --set train.eval_every=100 "${extra[@]}" >/dev/null 2>&1
    python3 - "$d" "$label" <<'PY' | tee -a "$log"
import glob, sys
import pyarrow.parquet as pq
sec = pq.read_table(glob.glob(sys.argv[1] + "/runs/smoke/*/epochs.parquet")[0]).to_pydict()["seconds"]
e = [b - a for a, b in zip([0] + sec[:-1], sec)]
print(sys.argv[2], " ".join(f"{x:.3f}" for x in e[1:5]))
PY
    rm -rf "$d"
  done
done
python3 - "$log" <<'PY'
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    label, *xs = line.split()
    runs[label] += [float(x) for x in xs]
print("| | epochs | median | mean | std |\n|---|---:|---:|---:|---:|")
for label, xs in runs.items():
    print(f"| {label} | {len(xs)} | {statistics.median(xs):.3f} s | {statistics.mean(xs):.3f} s "
          f"| {statistics.stdev(xs):.3f} s |")
PY
rm -f "$log"
