#!/usr/bin/env bash
# The one script to run on a GPU machine: correctness first, then training and sampling
# throughput of nidiff against the diffusers reference, side by side, in the anchor settings
# (fp32 eager, bf16 eager, bf16 + torch.compile), printing one final table. About 6-8 minutes on
# one H100 (most of it torch.compile); QUICK=1 halves the timed steps.
#
#   bash benchmarks/gpu_check.sh                     # from the repository root
#
# What the GPU machine needs: python3 with torch (CUDA), numpy, PyYAML. What it may lack is
# carried as wheels in .whl/ (git-ignored; never commit wheels), installed with --no-deps into
# /tmp/site and put on PYTHONPATH; nidiff itself runs from the checkout, not installed:
#   nidiff's config:  hydra-core==1.3.* omegaconf==2.3.* antlr4-python3-runtime==4.9.3
#   the reference:    diffusers (tested: 0.42.1) and the dependencies it imports that a plain
#                     torch machine lacks: huggingface-hub safetensors regex requests urllib3
#                     certifi charset-normalizer httpx2 httpcore2 h11 anyio truststore
#                     importlib-metadata zipp
#                     (and filelock fsspec packaging tqdm typing-extensions idna pillow if absent)
# Download them on a machine with internet access, for the GPU machine's Python version X.Y
# (several are compiled: regex, safetensors, charset-normalizer), e.g.:
#   pip download --no-deps --only-binary=:all: --python-version X.Y --platform manylinux2014_x86_64 \
#       -d .whl diffusers==0.42.1 huggingface-hub safetensors regex requests urllib3 certifi \
#       charset-normalizer httpx2 httpcore2 h11 anyio truststore importlib-metadata zipp \
#       hydra-core omegaconf antlr4-python3-runtime==4.9.3
# (about 10 MB). Without diffusers the script still runs and prints nidiff's rows only.
#
# Knobs (environment): PYTHON (python3), DEVICE (cuda) and SIZE (cifar10) (DEVICE=cpu SIZE=tiny
# QUICK=1 rehearses the whole script on a CPU in a few minutes), QUICK=1, TRAIN_BATCH (128), SAMPLE_BATCH (512),
# SAMPLE_STEPS (100: ms per step is the same at any step count on a uniform grid, and images/s is
# reported for a 1000-step sample; SAMPLE_STEPS=1000 runs the full loop), EXTRA=1 adds
# channels-last and max-autotune rows (several more minutes), ONLY=check,train,sample picks stages
# (e.g. ONLY=check,train then ONLY=sample where one command may run at most 10 minutes; then
# `python benchmarks/report.py` on the two rows.jsonl files concatenated). Output: the log and the
# JSON rows go to $OUT if set, else to a fresh temporary folder.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
RESULTS=${OUT:-$(mktemp -d)}
ROWS="$RESULTS/rows.jsonl"
LOG="$RESULTS/gpu_check.log"
: > "$ROWS"
exec > >(tee "$LOG") 2>&1

if compgen -G ".whl/*.whl" > /dev/null; then
    echo "== installing the carried wheels into /tmp/site"
    if ! "$PYTHON" -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl; then
        for w in .whl/*.whl; do  # one at a time, so that a wheel for another Python skips only itself
            "$PYTHON" -m pip install -q --no-index --no-deps --target /tmp/site "$w" || echo "skipped $w"
        done
    fi
    export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}

echo "== what this machine has"
DEVICE=${DEVICE:-cuda}
SIZE=${SIZE:-cifar10}
DEVICE=$DEVICE "$PYTHON" - <<'EOF' || exit 1
import importlib, os, sys
import torch
print(f"python {sys.version.split()[0]}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"device: {torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}")
missing = [m for m in ("numpy", "yaml", "omegaconf", "hydra", "antlr4") if importlib.util.find_spec(m) is None]
if missing or (os.environ["DEVICE"].startswith("cuda") and not torch.cuda.is_available()):
    sys.exit(f"cannot run: missing {missing or 'a CUDA device'}; carry the wheels named in the header in .whl/")
try:
    from diffusers import UNet2DModel  # noqa: F401
    import diffusers
    print(f"diffusers {diffusers.__version__}")
except Exception as err:
    print(f"diffusers does not import ({type(err).__name__}: {err}): its rows are skipped")
EOF

QUICK=${QUICK:-0}
STEPS=$([ "$QUICK" = 1 ] && echo 15 || echo 30)
TRAIN_BATCH=${TRAIN_BATCH:-128}
SAMPLE_BATCH=${SAMPLE_BATCH:-512}
SAMPLE_STEPS=${SAMPLE_STEPS:-100}
ONLY=${ONLY:-check,train,sample}
want() { [[ ",$ONLY," == *",$1,"* ]]; }
status=0
run() {  # run a stage with a time limit, remember a failure, go on
    echo; echo "== $*"
    timeout "${LIMIT:-300}" "$PYTHON" "$@" || { echo "!! failed or timed out (status $?): $*"; status=1; }
}

if want check; then
    LIMIT=120 run benchmarks/check_device.py --device "$DEVICE" --size "$SIZE"
    LIMIT=60 run benchmarks/flops.py --size "$SIZE"
fi

T=(benchmarks/train_throughput.py --device "$DEVICE" --size "$SIZE" --batch "$TRAIN_BATCH" --steps "$STEPS" --json "$ROWS")
if want train; then
    LIMIT=150 run "${T[@]}" --precision 32
    LIMIT=150 run "${T[@]}" --precision bf16
    LIMIT=420 run "${T[@]}" --precision bf16 --compile default --warmup 8
fi

S=(benchmarks/sample_throughput.py --device "$DEVICE" --size "$SIZE" --batch "$SAMPLE_BATCH" --steps "$SAMPLE_STEPS" --json "$ROWS")
if want sample; then
    LIMIT=240 run "${S[@]}" --precision 32
    LIMIT=150 run "${S[@]}" --precision bf16
    LIMIT=300 run "${S[@]}" --precision bf16 --compile default --bases dct
fi

if [ "${EXTRA:-0}" = 1 ] && want train; then
    LIMIT=420 run "${T[@]}" --precision bf16 --compile default --channels-last --warmup 8
    LIMIT=600 run "${T[@]}" --precision bf16 --compile max-autotune --warmup 8 --bases dct
fi

echo; echo "== final table"
[ -s "$ROWS" ] && { "$PYTHON" benchmarks/report.py "$ROWS" || status=1; }
echo "log and rows: $RESULTS"
exit $status
