#!/usr/bin/env bash
# The proof run: a blurring-diffusion model trained on real CIFAR-10 for a fixed wall-clock budget
# on one GPU, then SAMPLES images from its EMA network, written for FID on any machine.
#
#   bash benchmarks/gpu_proof.sh DATA [MINUTES]       # from the repository root
#
# DATA is the training images: a .zip or folder of them (e.g. the CIFAR-10 JPEG copy's train.zip,
# read as CIFAR-10) or the official CIFAR-10 tarball's folder. MINUTES (default 6) is the training
# budget (trainer.max_time); the run checkpoints the step it stops at. Outputs go to $OUT (default
# proof/): for each run RUN (blur20, and blur0 with SECOND=1), RUN/run/ (the run directory: config,
# checkpoint, logs, grids), RUN/samples_0.npz and RUN/samples_1.npz (uint8 [N, 32, 32, 3], key
# "samples", compressed, half of the images each), RUN/grid.png (the first 64 samples) and
# RUN/metrics.csv; the log of the whole script in proof.log.
#
# Then, on any machine, FID and KID against reference statistics of the same images
# (docs/proof.md): nidiff fid-ref --dataset folder --path DATA --with-features --out ref.npz;
# nidiff eval --samples RUN/samples_0.npz ... (one file at a time, or joined).
#
# What the GPU machine needs: python3 with torch (CUDA), lightning, tensorboard, matplotlib, tqdm,
# pillow, PyYAML, numpy (an image with PyTorch and Lightning has them). What it may lack is carried
# as wheels in .whl/ (git-ignored; never commit wheels) and installed into /tmp/site: hydra-core
# 1.3, omegaconf 2.3, antlr4-python3-runtime 4.9.3 (PyPI has only its source: build its wheel with
# `pip wheel --no-deps antlr4-python3-runtime==4.9.3 -w .whl`). nidiff runs from the checkout.
#
# Knobs (environment): NET (cifar10_small: see nets/cifar10_small.yaml), BATCH (128, section 6),
# LR (2e-4, table 5), EMA (0.999: a run of minutes is tens of thousands of steps, and the paper's
# 0.9999 would average over ten thousand of them), SAMPLES (10000), SAMPLER and STEPS and OPTIONS
# (the sampling plan: ancestral 1000 steps by default, the paper's), SAMPLE_BATCH (2000),
# PRECISION (bf16-mixed), COMPILE (default; "null" for none), DEVICE (cuda; DEVICE=cpu with NET=tiny
# and a MINUTES of 0.2 rehearses the whole script on a CPU), SECOND=1 (also sigma_B,max = 0 with the
# same budget), EXTRA (more nidiff train overrides), PYTHON (python3), OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:?usage: bash benchmarks/gpu_proof.sh DATA [MINUTES]}
MINUTES=${2:-6}
PYTHON=${PYTHON:-python3}
OUT=${OUT:-proof}
NET=${NET:-cifar10_small}
BATCH=${BATCH:-128}
LR=${LR:-2e-4}
EMA=${EMA:-0.999}
SAMPLES=${SAMPLES:-10000}
SAMPLER=${SAMPLER:-ancestral}
STEPS=${STEPS:-1000}
OPTIONS=${OPTIONS:-}
SAMPLE_BATCH=${SAMPLE_BATCH:-2000}
PRECISION=${PRECISION:-bf16-mixed}
COMPILE=${COMPILE:-default}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"
exec > >(tee "$OUT/proof.log") 2>&1

if compgen -G ".whl/*.whl" > /dev/null; then
    echo "== installing the carried wheels into /tmp/site"
    "$PYTHON" -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')"

SECONDS_BUDGET=$("$PYTHON" -c "print(max(1, round(float('$MINUTES') * 60)))")
MAX_TIME=$(printf "00:%02d:%02d:%02d" $((SECONDS_BUDGET / 3600)) $((SECONDS_BUDGET % 3600 / 60)) $((SECONDS_BUDGET % 60)))
ACCELERATOR=gpu
[ "$DEVICE" = cpu ] && ACCELERATOR=cpu
SAMPLE_ARGS=(--sampler "$SAMPLER" --steps "$STEPS")
for option in $OPTIONS; do SAMPLE_ARGS+=(--option "$option"); done
BF16=()
[[ "$PRECISION" == bf16* ]] && BF16=(--bf16)

one_run() {  # NAME SIGMA: train, sample, pack
    local name=$1 sigma=$2 dir="$OUT/$1"
    echo "== $name: blurring_cifar10 with sigma_B,max=$sigma, net=$NET, batch $BATCH, $MINUTES min on $DEVICE"
    "$PYTHON" -m nidiff train recipe=blurring_cifar10 net="$NET" schedule.sigma_blur_max="$sigma" \
        data.dataset=folder data.path="$DATA" data.on_gpu=true data.num_workers=8 data.batch_size="$BATCH" \
        optim.lr="$LR" ema.decay="$EMA" trainer.accelerator="$ACCELERATOR" trainer.precision="$PRECISION" \
        speed.compile="$COMPILE" matmul_precision=high trainer.max_steps=100000000 trainer.max_time="$MAX_TIME" \
        trainer.log_every_n_steps=50 checkpoint.every_n_steps=100000000 sample.every_n_steps=100000000 \
        sample.n=64 sample.sampler="$SAMPLER" sample.steps="$STEPS" hydra.run.dir="$dir/run" ${EXTRA:-}
    echo "== $name: $SAMPLES samples, ${SAMPLE_ARGS[*]}"
    "$PYTHON" -m nidiff sample --run "$dir/run" --out "$dir/png" -n "$SAMPLES" "${SAMPLE_ARGS[@]}" \
        --batch-size "$SAMPLE_BATCH" --device "$DEVICE" "${BF16[@]}"
    "$PYTHON" - "$dir" "$SAMPLES" <<'EOF'
import shutil, sys
from pathlib import Path

import numpy as np
from PIL import Image

from nidiff.images import make_grid
import torch

folder, n = Path(sys.argv[1]), int(sys.argv[2])
images = np.stack([np.asarray(Image.open(folder / "png" / f"{i:06d}.png").convert("RGB")) for i in range(n)])
half = (n + 1) // 2
for k, part in enumerate((images[:half], images[half:])):
    np.savez_compressed(folder / f"samples_{k}.npz", samples=part)
grid = make_grid(torch.from_numpy(images[:64]).permute(0, 3, 1, 2), scale=0)
Image.fromarray(grid.permute(1, 2, 0).numpy()).save(folder / "grid.png")
shutil.copy(folder / "run" / "logs" / "metrics.csv", folder / "metrics.csv")
sizes = {p.name: p.stat().st_size for p in sorted(folder.glob("samples_*.npz"))}
print(f"packed {n} samples: {sizes}; grid {folder / 'grid.png'}")
EOF
    rm -rf "$dir/png"
    local ckpt="$dir/run/checkpoints/last.ckpt"
    if [ "$(stat -c %s "$ckpt")" -gt $((16 * 1024 * 1024)) ]; then
        mv "$ckpt" "$dir/last.ckpt.keep"  # kept on this machine, too large to bring back
        rm -f "$dir"/run/checkpoints/step_*.ckpt
    fi
}

one_run blur20 20
if [ "${SECOND:-0}" = 1 ]; then
    one_run blur0 0
fi
echo "== done: $OUT"
