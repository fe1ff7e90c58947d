#!/usr/bin/env bash
# Peak resident memory of evaluation against training (issue: evaluation must not keep the
# autograd graph). Three processes of one binary, each under `/usr/bin/time -f %M`:
#   train-b16   `bench train`: one CC step, ResNet-34, ImageNet stem, 224 px, batch 16;
#   sweep-e16   a sweep of 64 synthetic 224-px images, batch 16, 1 epoch, eval_batch_size 16;
#   sweep-e64   the same sweep with eval_batch_size 64 (one evaluation batch of every image).
# Prints each peak in MB and the sweeps' peaks over the training step's. Set
# CLUSTERLAB_KERNELS=emulated with a `--features cuda-emu` binary for the GPU's op graph.
# Usage: bench/eval-memory.sh [BINARY]   (default target/release/clusterlab)
set -euo pipefail
BIN=${1:-target/release/clusterlab}
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (Debian package time)" >&2; exit 2; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
peak() { # label, command...: peak RSS in MB
  local label=$1; shift
  /usr/bin/time -f %M -o "$tmp/$label.kb" "$@" >"$tmp/$label.log" 2>&1 \
    || { echo "$label failed:" >&2; tail -5 "$tmp/$label.log" >&2; exit 1; }
  echo $(( $(tail -1 "$tmp/$label.kb") / 1024 ))
}
sweep() { # eval batch size: the sweep's command line
  echo "$BIN" --runs-dir "$tmp/runs-$1" --reports-dir "$tmp/rep-$1" sweep experiments/smoke.yaml \
    --set method.name=cc --set seed=0 --set dataset.size=64 --set dataset.image_size=224 \
    --set model.backbone=resnet34 --set model.stem=imagenet --set model.widths=[64,128,256,512] \
    --set train.batch_size=16 --set train.eval_batch_size="$1" --set train.epochs=1
}
train=$(peak train-b16 "$BIN" bench train --backbone resnet34 --stem imagenet --image-size 224 \
  --batch 16 --steps 1 --warmup 1)
e16=$(peak sweep-e16 $(sweep 16))
e64=$(peak sweep-e64 $(sweep 64))
echo "kernels: ${CLUSTERLAB_KERNELS:-native}"
echo "| process | peak MB | / train-b16 |"
echo "|---|---:|---:|"
for row in "train-b16 $train" "sweep-e16 $e16" "sweep-e64 $e64"; do
  set -- $row
  echo "| $1 | $2 | $(python3 -c "print(f'{$2 / $train:.2f}')") |"
done
