#!/usr/bin/env bash
# The prepared GPU check (docs/gpu.md): one script for a lent H100/H200 that cannot be wasted
# on its setup. A preflight runs first and stops with one line naming what is missing; then
# the parts, in order of what matters, each under its own timeout and all within a budget.
#
#   bench/gpu-check.sh [--dry-run] [--bin PATH] [--python PY] [--out DIR]
#
# --bin: the CUDA binary, or its .xz (default target-cuda/clusterlab-cuda, else
# target-cuda/clusterlab-cuda.xz or ./clusterlab-cuda.xz); an .xz is unpacked next to itself
# with xz, or with Python's lzma where xz is absent; --python: the Python whose site-packages hold the CUDA libraries (nvidia/*/lib) and,
# for the PyTorch parts, torch + torchvision (default python3); --out: where everything is
# written (default $OUT when set, else ./gpu-check-out): gpu-check.md (the table), preflight.txt,
# and parts/<part>.{out,err,mem} (each part's stdout, stderr and sampled GPU memory).
# --dry-run prints the preflight and every part's command and exits.
#
# Preflight: nvidia-smi answers (GPU, driver); LD_LIBRARY_PATH gets every nvidia/*/lib folder of
# the given Python's site-packages (on the GPU machine libcublas.so.13, libcudart.so.13 and
# libcurand.so.10 live only there); `ldd` finds every library the binary needs.
#
# Parts (GPU_CHECK_BUDGET seconds in all, default 420; a part gets at most what is left):
# (0) kernels: `bench kernels`, our CUDA kernels against our CPU kernels, op by op;
# (1) paper-f32, paper-bf16: one CC training step at the papers' setting (ResNet-34, ImageNet
#     stem, 224 px, batch 256, two views) with its peak GPU memory (nvidia-smi, sampled);
# (2) speed against the PyTorch twin: CC ResNet-18 CIFAR stem 32 px batch 256 and ResNet-34
#     224 px batch 128, f32 and bf16; our kernels against candle's ops on the ResNet-18 step;
# (3) two smoke epochs on cuda and on the CPU, loss curves compared;
# (4) `bench augment` at 224 px on this machine's cores against the ResNet-34 step;
# (5) the top kernels from nsys, when nsys is installed.
set -uo pipefail

DRY=0; BIN=""; PY=python3; OUTDIR="${OUT:-gpu-check-out}"
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --bin) BIN=$2; shift ;;
    --python) PY=$2; shift ;;
    --out) OUTDIR=$2; shift ;;
    -h|--help) sed -n 2,29p "$0"; exit 0 ;;
    *) echo "gpu-check: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
PARTS="$OUTDIR/parts"
mkdir -p "$PARTS"
OUTFILE="$OUTDIR/gpu-check.md"
ROWS=()
BUDGET=${GPU_CHECK_BUDGET:-420}

# ---- preflight ------------------------------------------------------------------------------
# fail LINE: the one line that says what is missing, in preflight.txt and on stderr; stop.
fail() {
  echo "gpu-check preflight failed: $1" | tee -a "$OUTDIR/preflight.txt" >&2
  exit 3
}
: > "$OUTDIR/preflight.txt"
note() { echo "$1" | tee -a "$OUTDIR/preflight.txt" >&2; }

# unpack XZ DEST: xz when installed, else Python's lzma (the GPU machine may lack xz).
# GPU_CHECK_XZ names the xz to use (tests set it to a missing one to take the lzma path).
XZ=${GPU_CHECK_XZ-xz}
unpack() {
  if command -v "$XZ" >/dev/null 2>&1; then
    "$XZ" -dc "$1" > "$2.part"
  else
    "$PY" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2.part"
  fi && chmod +x "$2.part" && mv "$2.part" "$2"
}

# take_xz XZ: BIN becomes XZ without its suffix, unpacked there (only named in a dry run).
take_xz() {
  BIN=${1%.xz}
  if [ "$DRY" = 1 ]; then note "would unpack $1 to $BIN"; return; fi
  unpack "$1" "$BIN" || fail "could not unpack $1 (xz, then Python's lzma)"
  note "unpacked $1 to $BIN"
}
if [ -n "$BIN" ] && [ "${BIN%.xz}" != "$BIN" ]; then
  take_xz "$BIN"
elif [ -z "$BIN" ]; then
  BIN=target-cuda/clusterlab-cuda
  if [ ! -x "$BIN" ]; then
    for xzf in target-cuda/clusterlab-cuda.xz clusterlab-cuda.xz; do
      [ -f "$xzf" ] && { take_xz "$xzf"; break; }
    done
  fi
fi
[ "$DRY" = 1 ] || [ -x "$BIN" ] || fail "no binary at $BIN (carry target-cuda/clusterlab-cuda.xz, or give --bin)"

command -v "$PY" >/dev/null 2>&1 || fail "no Python at $PY (give --python)"
if [ "$DRY" = 0 ]; then
  command -v nvidia-smi >/dev/null 2>&1 || fail "nvidia-smi not found: no NVIDIA driver on this machine"
  GPU=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)
  [ -n "$GPU" ] && ! echo "$GPU" | grep -qiE 'fail|error|not found' || fail "nvidia-smi does not answer: $GPU"
  note "GPU: $GPU"
fi
# Every nvidia/*/lib (and nvidia/*/*/lib) folder of the Python's site-packages.
LIBS=$("$PY" - <<'PY' 2>/dev/null
import glob, os, site, sys
roots = list(site.getsitepackages()) + [site.getusersitepackages()]
seen = []
for r in roots:
    for d in sorted(glob.glob(os.path.join(r, "nvidia", "*", "lib")) + glob.glob(os.path.join(r, "nvidia", "*", "*", "lib"))):
        if os.path.isdir(d) and d not in seen:
            seen.append(d)
print(":".join(seen))
PY
)
if [ -n "$LIBS" ]; then
  export LD_LIBRARY_PATH="$LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  note "LD_LIBRARY_PATH += $(echo "$LIBS" | tr ':' '\n' | wc -l) nvidia lib folders of $PY"
else
  note "no nvidia/*/lib folders under $PY's site-packages; relying on the system's libraries"
fi
if [ "$DRY" = 0 ]; then
  missing=$(ldd "$BIN" 2>&1 | awk '/not found/ {print $1}' | paste -sd' ')
  [ -z "$missing" ] || fail "ldd: $BIN needs $missing, found nowhere (give --python the env whose nvidia/*/lib holds them)"
  note "ldd: every library of $BIN found"
fi
note "preflight passed"

# ---- parts ----------------------------------------------------------------------------------
# run SECONDS NAME CMD...: CMD under a timeout, its stdout, stderr and sampled GPU memory (MiB,
# every 0.2 s) in $PARTS/NAME.{out,err,mem}.
run() {
  local secs=$1 name=$2; shift 2
  local left=$((BUDGET - SECONDS))
  if [ "$DRY" = 1 ]; then
    printf 'timeout %ss %s > %s 2> %s\n' "$secs" "$*" "$PARTS/$name.out" "$PARTS/$name.err"
    return 0
  fi
  if [ "$left" -lt 10 ]; then
    echo "   $name: skipped, the ${BUDGET}s budget is spent" | tee "$PARTS/$name.err" >&2
    : > "$PARTS/$name.out"
    ROWS+=("| $name | skipped (time budget) | |"); return 1
  fi
  [ "$secs" -gt "$left" ] && secs=$left
  echo "== $name (at most ${secs}s)" >&2
  : > "$PARTS/$name.mem"
  ( while :; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2>/dev/null | head -1 >> "$PARTS/$name.mem"; sleep 0.2; done ) &
  local sampler=$!
  timeout "$secs" "$@" > "$PARTS/$name.out" 2> "$PARTS/$name.err"
  local rc=$?
  kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null
  [ $rc = 0 ] || { echo "   $name: exit $rc; $(tail -2 "$PARTS/$name.err")" >&2; ROWS+=("| $name | failed (exit $rc): $(tail -1 "$PARTS/$name.err" | tr '|' '/' | cut -c1-160) | |"); }
  return $rc
}

# field NAME KEY: a number from the last JSON line of part NAME's stdout.
field() { "$PY" -c 'import json,sys; print(round(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])[sys.argv[2]], 1))' "$PARTS/$1.out" "$2" 2>/dev/null || echo "?"; }
# peak NAME: the largest sampled GPU memory of part NAME, MiB.
peak() { sort -n "$PARTS/$1.mem" 2>/dev/null | tail -1 | grep -E '^[0-9]+$' || echo "?"; }

HAVE_TORCH=0
"$PY" -c 'import torch, torchvision; assert torch.cuda.is_available()' 2>/dev/null && HAVE_TORCH=1
[ "$DRY" = 1 ] && HAVE_TORCH=1

# (0) our CUDA kernels against our CPU kernels: a wrong kernel shows here by name.
run 60 kernels "$BIN" bench kernels --device cuda
if [ "$DRY" = 0 ]; then
  verdict=$("$PY" - "$PARTS/kernels.out" <<'PY' 2>/dev/null || echo "?"
import json, sys
d = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
bad = [c["op"] for c in d["checks"] if not c["ok"]]
w = max(d["checks"], key=lambda c: c["worst"] / c["tol"])
head = "all ops pass" if d["ok"] else "FAILING: " + ", ".join(bad)
print(f"{head}; closest to its tolerance: {w['op']} {w['worst']:.1e} (tol {w['tol']:.0e})")
PY
)
  ROWS+=("| bench kernels: our CUDA kernels vs our CPU kernels (forward and gradients) | $verdict | |")
fi

# (1) the papers' setting: does one step fit, and how much does it take?
for prec in f32 bf16; do
  run 120 "paper-$prec" "$BIN" bench train --device cuda --steps 2 --warmup 1 --method cc \
    --backbone resnet34 --stem imagenet --batch 256 --image-size 224 --set "train.precision=$prec"
  [ "$DRY" = 0 ] && ROWS+=("| CC ResNet-34 ImageNet stem 224 px batch 256 two views, $prec: step, peak GPU memory | $(field "paper-$prec" step_ms) ms, $(peak "paper-$prec") MiB | fits: $([ -s "$PARTS/paper-$prec.out" ] && echo yes || echo no) |")
done

# (2) clusterlab vs PyTorch, f32 and bf16, both models; our kernels vs candle's ops.
for model in "resnet18 cifar 32 256" "resnet34 imagenet 224 128"; do
  set -- $model; bb=$1 stem=$2 size=$3 batch=$4
  for prec in f32 bf16; do
    tag="$bb-$stem-$size-b$batch-$prec"
    run 90 "ours-$tag" "$BIN" bench train --device cuda --steps 20 --warmup 5 --method cc \
      --backbone "$bb" --stem "$stem" --batch "$batch" --image-size "$size" --set "train.precision=$prec"
    ours=$(field "ours-$tag" images_per_s)
    theirs="(no torch with CUDA)"
    if [ "$HAVE_TORCH" = 1 ]; then
      run 90 "torch-$tag" "$PY" bench/torch_twin.py --device cuda --dtype "$prec" --steps 20 --warmup 5 \
        --backbone "$bb" --stem "$stem" --batch "$batch" --image-size "$size"
      theirs=$(field "torch-$tag" images_per_s)
    fi
    ratio=$("$PY" -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}')" "$ours" "$theirs" 2>/dev/null || echo "?")
    [ "$DRY" = 0 ] && ROWS+=("| CC $bb $stem ${size} px batch $batch, $prec: images/s clusterlab / PyTorch, peak MiB | $ours / $theirs, $(peak "ours-$tag") | ratio $ratio (goal ≥ $([ $prec = f32 ] && echo 1.0 || echo 0.8)) |")
  done
done
run 90 "portable-resnet18-cifar-32-b256-f32" env CLUSTERLAB_KERNELS=portable "$BIN" bench train \
  --device cuda --steps 20 --warmup 5 --method cc --backbone resnet18 --stem cifar --batch 256 --image-size 32
[ "$DRY" = 0 ] && ROWS+=("| CC resnet18 cifar 32 px batch 256, f32: images/s our kernels / candle's ops (portable) | $(field "ours-resnet18-cifar-32-b256-f32" images_per_s) / $(field "portable-resnet18-cifar-32-b256-f32" images_per_s) | |")

# (3) two epochs of the smoke grid on cuda and on the CPU: the loss curves.
for dev in cuda cpu; do
  run 150 "smoke-$dev" "$BIN" --device "$dev" --runs-dir "$OUTDIR/runs-$dev" --reports-dir "$OUTDIR/rep-$dev" \
    sweep experiments/smoke.yaml --set method.name=cc --set seed=0 --set train.epochs=2
done
if [ "$DRY" = 0 ]; then
  curve() { "$PY" - "$OUTDIR/runs-$1" <<'PY'
import glob, sys
import pyarrow.parquet as pq
t = pq.read_table(glob.glob(sys.argv[1] + "/smoke/*/epochs.parquet")[0]).to_pydict()
print(" ".join(f"{x:.5f}" for x in t["loss_total"]))
PY
  }
  gpu=$(curve cuda 2>/dev/null || echo "?"); cpu=$(curve cpu 2>/dev/null || echo "?")
  diff=$("$PY" -c "import sys; a=[float(x) for x in sys.argv[1].split()]; b=[float(x) for x in sys.argv[2].split()]; print(f'{max(abs(x-y)/abs(y) for x,y in zip(a,b)):.1e}')" "$gpu" "$cpu" 2>/dev/null || echo "?")
  ROWS+=("| smoke CC 2 epochs, loss per epoch cuda / cpu | $gpu / $cpu | largest relative difference $diff (tolerance 5e-3) |")
fi

# (4) augmentation at 224 px on this machine's cores, against the ResNet-34 step.
run 120 augment224 "$BIN" bench augment --set dataset.image_size=224 --set train.batch_size=128 --batches 20
if [ "$DRY" = 0 ]; then
  aug=$(field augment224 images_per_s); step=$(field "ours-resnet34-imagenet-224-b128-f32" images_per_s)
  ROWS+=("| bench augment 224 px ($(nproc) cores) vs ResNet-34 step, images/s | $aug vs $step | augmentation feeds the step: $("$PY" -c "import sys; print('yes' if float(sys.argv[1]) >= 2 * float(sys.argv[2]) else 'no (two views per image)')" "$aug" "$step" 2>/dev/null || echo "?") |")
fi

# (5) the top kernels from nsys, if it is there.
if command -v nsys >/dev/null 2>&1 || [ "$DRY" = 1 ]; then
  PROF=$(mktemp -d)   # the report itself stays here: only its summary goes under $OUTDIR
  run 150 nsys nsys profile -o "$PROF/prof" --force-overwrite true "$BIN" bench train --device cuda \
    --steps 5 --warmup 2 --method cc --backbone resnet18 --stem cifar --batch 256 --image-size 32
  run 60 nsys-stats nsys stats --report cuda_gpu_kern_sum --format csv "$PROF/prof.nsys-rep"
  [ "$DRY" = 0 ] && ROWS+=("| top kernels (nsys, ResNet-18 32 px) | below the table | |")
fi

[ "$DRY" = 1 ] && exit 0
{
  echo "### GPU check (${GPU:-?}, $(date -u +%F))"
  echo
  echo "| check | figure | verdict |"
  echo "|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
  if [ -s "$PARTS/nsys-stats.out" ]; then
    echo; echo "Top kernels by GPU time:"; echo; echo '```'; head -12 "$PARTS/nsys-stats.out"; echo '```'
  fi
} > "$OUTFILE.part" && mv "$OUTFILE.part" "$OUTFILE"
cat "$OUTFILE"
