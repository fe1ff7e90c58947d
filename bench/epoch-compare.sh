#!/usr/bin/env bash
# Smoke-grid epoch time of two clusterlab binaries, side by side (docs/benchmarks.md, "Data
# path"): each binary trains CC seed 0 for 6 epochs in a temporary store, three times,
# alternating; prints every epoch's seconds and the mean of epochs 2-5 (epoch 1 warms up,
# epoch 6 evaluates). The second binary also runs with train.prefetch 0 and 2.
# Usage: bench/epoch-compare.sh OLD_BINARY NEW_BINARY   (needs python3 with pyarrow)
set -euo pipefail
OLD=$1 NEW=$2
for rep in 1 2 3; do
  for cfg in "OLD -" "NEW 0" "NEW 2"; do
    set -- $cfg; bin=${!1}; pf=$2
    d=$(mktemp -d)
    extra=(); [ "$pf" != - ] && extra=(--set "train.prefetch=$pf")
    RAYON_NUM_THREADS=2 "$bin" --runs-dir "$d/runs" --reports-dir "$d/rep" sweep experiments/smoke.yaml \
      --set method.name=cc --set seed=0 --set train.epochs=6 --set train.eval_every=100 "${extra[@]}" >/dev/null 2>&1
    s=$(python3 - "$d" <<'PY'
import glob, sys
import pyarrow.parquet as pq
sec = pq.read_table(glob.glob(sys.argv[1] + "/runs/smoke/*/epochs.parquet")[0]).to_pydict()["seconds"]
e = [b - a for a, b in zip([0] + sec[:-1], sec)]
print(" ".join(f"{x:.2f}" for x in e), "| mean epochs 2-5:", f"{sum(e[1:5]) / 4:.3f}")
PY
)
    echo "$1 prefetch=$pf run $rep: $s"
    rm -rf "$d"
  done
done
