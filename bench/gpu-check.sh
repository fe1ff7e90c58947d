#!/usr/bin/env bash
# The prepared GPU check (docs/gpu.md): one script for a lent H100/H200, sized to finish in
# under 8 minutes, every part under its own timeout, a failed part reported and skipped.
#
#   bench/gpu-check.sh [--dry-run] [--bin PATH] [--python PY] [--out FILE]
#
# --bin: the CUDA binary (default target-cuda/clusterlab-cuda, else clusterlab-cuda.xz unpacked
# next to it); --python: a Python with torch + torchvision (default python3; the twin parts are
# skipped without torch); --out: the Markdown table (default $OUT/gpu-check.md when $OUT is set,
# else gpu-check.md). --dry-run prints every command it would run and exits.
#
# Every part has its own timeout, and the parts together stop at GPU_CHECK_BUDGET seconds
# (default 450). Parts: (0) `bench kernels`: our CUDA kernels against our CPU kernels, op by op;
# (1) clusterlab vs the PyTorch twin, f32 and bf16, CC ResNet-18 CIFAR stem 32 px batch
# 256 and ResNet-34 ImageNet stem 224 px batch 128 (images/s and ratios), and our CUDA kernels
# against candle's ops (CLUSTERLAB_KERNELS=portable) on the ResNet-18 step; (2) two epochs of the
# smoke grid on cuda and on the CPU, loss curves compared; (3) one ImageNet-stem training step
# at 224 px; (4) `bench augment` at 224 px on this machine's cores against the step's images/s;
# (5) the top kernels by time from nsys, if nsys is installed.
set -uo pipefail

DRY=0; BIN=""; PY=python3; OUTFILE="${OUT:+$OUT/gpu-check.md}"; OUTFILE="${OUTFILE:-gpu-check.md}"
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --bin) BIN=$2; shift ;;
    --python) PY=$2; shift ;;
    --out) OUTFILE=$2; shift ;;
    -h|--help) sed -n 2,18p "$0"; exit 0 ;;
    *) echo "gpu-check: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$BIN" ]; then
  BIN=target-cuda/clusterlab-cuda
  [ -x "$BIN" ] || { [ -f "$BIN.xz" ] && [ "$DRY" = 0 ] && xz -dk "$BIN.xz" && chmod +x "$BIN"; }
fi
WORK=$(mktemp -d)
ROWS=()

# The whole check stays under BUDGET seconds: a part gets at most what is left of it.
BUDGET=${GPU_CHECK_BUDGET:-450}

# run SECONDS NAME CMD...: runs CMD under a timeout, its stdout to $WORK/NAME.out.
run() {
  local secs=$1 name=$2; shift 2
  local left=$((BUDGET - SECONDS))
  if [ "$DRY" = 0 ] && [ "$left" -lt 10 ]; then
    echo "   $name: skipped, the ${BUDGET}s budget is spent" >&2
    ROWS+=("| $name | skipped (time budget) | |"); return 1
  fi
  [ "$DRY" = 0 ] && [ "$secs" -gt "$left" ] && secs=$left
  if [ "$DRY" = 1 ]; then
    printf 'timeout %ss %s > %s\n' "$secs" "$*" "\$WORK/$name.out"
    return 0
  fi
  echo "== $name (at most ${secs}s)" >&2
  timeout "$secs" "$@" > "$WORK/$name.out" 2> "$WORK/$name.err"
  local rc=$?
  [ $rc = 0 ] || { echo "   $name: exit $rc; $(tail -2 "$WORK/$name.err")" >&2; ROWS+=("| $name | failed (exit $rc) | |"); }
  return $rc
}

# field FILE KEY: a number from the last JSON line of FILE.
field() { "$PY" -c 'import json,sys; print(round(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])[sys.argv[2]], 1))' "$1" "$2" 2>/dev/null || echo "?"; }
HAVE_TORCH=0
"$PY" -c 'import torch, torchvision; assert torch.cuda.is_available()' 2>/dev/null && HAVE_TORCH=1
[ "$DRY" = 1 ] && HAVE_TORCH=1

# (0) our CUDA kernels against our CPU kernels, op by op (forward and every gradient): a wrong
# kernel shows here by name before any figure below is read.
run 60 kernels "$BIN" bench kernels --device cuda
if [ "$DRY" = 0 ]; then
  verdict=$("$PY" - "$WORK/kernels.out" <<'PY' 2>/dev/null || echo "?"
import json, sys
d = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
bad = [c["op"] for c in d["checks"] if not c["ok"]]
w = max(d["checks"], key=lambda c: c["worst"] / c["tol"])
head = "all ops pass" if d["ok"] else "FAILING: " + ", ".join(bad)
print(f"{head}; closest to its tolerance: {w['op']} {w['worst']:.1e} (tol {w['tol']:.0e})")
PY
)
  ROWS+=("| bench kernels: our CUDA kernels vs our CPU kernels (10 ops, forward and gradients) | $verdict | |")
fi

# (1) clusterlab vs PyTorch, f32 and bf16, both models.
for model in "resnet18 cifar 32 256" "resnet34 imagenet 224 128"; do
  set -- $model; bb=$1 stem=$2 size=$3 batch=$4
  for prec in f32 bf16; do
    tag="$bb-$stem-$size-b$batch-$prec"
    run 90 "ours-$tag" "$BIN" bench train --device cuda --steps 20 --warmup 5 --method cc \
      --backbone "$bb" --stem "$stem" --batch "$batch" --image-size "$size" --set "train.precision=$prec"
    ours=$(field "$WORK/ours-$tag.out" images_per_s)
    theirs="(no torch)"
    if [ "$HAVE_TORCH" = 1 ]; then
      run 90 "torch-$tag" "$PY" bench/torch_twin.py --device cuda --dtype "$prec" --steps 20 --warmup 5 \
        --backbone "$bb" --stem "$stem" --batch "$batch" --image-size "$size"
      theirs=$(field "$WORK/torch-$tag.out" images_per_s)
    fi
    ratio=$("$PY" -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}')" "$ours" "$theirs" 2>/dev/null || echo "?")
    ROWS+=("| CC $bb $stem ${size} px batch $batch, $prec: images/s clusterlab / PyTorch | $ours / $theirs | ratio $ratio (goal ≥ $([ $prec = f32 ] && echo 1.0 || echo 0.8)) |")
  done
done

# (1b) our CUDA kernels (nn::device, the default on cuda) against candle's own ops
# (CLUSTERLAB_KERNELS=portable) on the same ResNet-18 step: what the kernels buy, and a
# fallback that still trains if ours fail.
run 90 "portable-resnet18-cifar-32-b256-f32" env CLUSTERLAB_KERNELS=portable "$BIN" bench train \
  --device cuda --steps 20 --warmup 5 --method cc --backbone resnet18 --stem cifar --batch 256 --image-size 32
if [ "$DRY" = 0 ]; then
  ROWS+=("| CC resnet18 cifar 32 px batch 256, f32: images/s our kernels / candle's ops (portable) | $(field "$WORK/ours-resnet18-cifar-32-b256-f32.out" images_per_s) / $(field "$WORK/portable-resnet18-cifar-32-b256-f32.out" images_per_s) | |")
fi

# (2) two epochs of the smoke grid on cuda and on the CPU: the loss curves.
for dev in cuda cpu; do
  run 150 "smoke-$dev" "$BIN" --device "$dev" --runs-dir "$WORK/runs-$dev" --reports-dir "$WORK/rep-$dev" \
    sweep experiments/smoke.yaml --set method.name=cc --set seed=0 --set train.epochs=2
done
if [ "$DRY" = 0 ]; then
  curve() { "$PY" - "$WORK/runs-$1" <<'PY'
import glob, sys
import pyarrow.parquet as pq
t = pq.read_table(glob.glob(sys.argv[1] + "/smoke/*/epochs.parquet")[0]).to_pydict()
print(" ".join(f"{x:.5f}" for x in t["loss_total"]))
PY
  }
  gpu=$(curve cuda 2>/dev/null || echo "?"); cpu=$(curve cpu 2>/dev/null || echo "?")
  diff=$("$PY" -c "import sys; a=[float(x) for x in sys.argv[1].split()]; b=[float(x) for x in sys.argv[2].split()]; print(f'{max(abs(x-y)/abs(y) for x,y in zip(a,b)):.1e}')" "$gpu" "$cpu" 2>/dev/null || echo "?")
  ROWS+=("| smoke CC 2 epochs, loss per epoch cuda / cpu | $gpu / $cpu | largest relative difference $diff (tolerance 5e-3, the portable path's ResNet figure) |")
fi

# (3) one ImageNet-stem training step at 224 px.
run 90 step224 "$BIN" bench train --device cuda --steps 1 --warmup 1 --method cc --backbone resnet18 \
  --stem imagenet --batch 64 --image-size 224
[ "$DRY" = 0 ] && ROWS+=("| one ResNet-18 ImageNet-stem step, 224 px batch 64 | $(field "$WORK/step224.out" step_ms) ms | |")

# (4) augmentation at 224 px on this machine's cores, against the step.
run 120 augment224 "$BIN" bench augment --set dataset.image_size=224 --set train.batch_size=128 --batches 20
if [ "$DRY" = 0 ]; then
  aug=$(field "$WORK/augment224.out" images_per_s)
  step=$(field "$WORK/ours-resnet34-imagenet-224-b128-f32.out" images_per_s)
  ROWS+=("| bench augment 224 px ($(nproc) cores) vs ResNet-34 step, images/s | $aug vs $step | augmentation feeds the step: $("$PY" -c "import sys; print('yes' if float(sys.argv[1]) >= 2 * float(sys.argv[2]) else 'no (two views per image)')" "$aug" "$step" 2>/dev/null || echo "?") |")
fi

# (5) the top kernels from nsys, if it is there.
if command -v nsys >/dev/null || [ "$DRY" = 1 ]; then
  run 150 nsys nsys profile -o "$WORK/prof" --force-overwrite true "$BIN" bench train --device cuda \
    --steps 5 --warmup 2 --method cc --backbone resnet18 --stem cifar --batch 256 --image-size 32
  run 60 nsys-stats nsys stats --report cuda_gpu_kern_sum --format csv "$WORK/prof.nsys-rep"
  [ "$DRY" = 0 ] && ROWS+=("| top kernels (nsys, ResNet-18 32 px) | see \`$OUTFILE\` below the table | |")
fi

[ "$DRY" = 1 ] && exit 0
{
  echo "### GPU check ($(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1), $(date -u +%F))"
  echo
  echo "| check | figure | verdict |"
  echo "|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
  if [ -s "$WORK/nsys-stats.out" ]; then
    echo; echo "Top kernels by GPU time:"; echo; echo '```'; head -12 "$WORK/nsys-stats.out"; echo '```'
  fi
} | tee "$OUTFILE"
