#!/usr/bin/env bash
# Everything GPU-related in one pass of about four minutes (9.5 at most, every limit reached): the
# machine, torch's FP8 API and the backends rewardgym picks, the GPU tests (tests/test_gpu.py), the
# FP8/MoE tests, and the benchmark.
#
#   bash benchmarks/gpu/check.sh OUT_DIR      (from the repository root; the log lands in OUT_DIR/log.txt)
#
# A machine without network: wheels for packages it lacks may sit in .whl/ (see README.md); only
# those whose distribution is not installed already are installed (into /tmp/site), so none
# shadows the machine's own numpy, torch... Every section runs under a time limit and reports its
# own status; a failure never stops the later sections.

out=${1:?usage: bash benchmarks/gpu/check.sh OUT_DIR}
mkdir -p "$out"
exec > >(tee -a "$out/log.txt") 2>&1
cd "$(dirname "$0")/../.." || exit 1
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
declare -a summary

section() {  # section NAME SECONDS COMMAND...: run it under `timeout`, record its status and time
    local name=$1 limit=$2 started=$SECONDS status
    shift 2
    echo; echo "=== $name (limit ${limit}s) ==="
    timeout -k 10 "$limit" "$@"
    status=$?
    [ $status -eq 124 ] && echo "!!! $name: timed out after ${limit}s"
    summary+=("$name: exit $status, $((SECONDS - started))s")
    echo "=== $name: exit $status after $((SECONDS - started))s ==="
}

missing_wheels() {  # the wheels in .whl/ whose distribution is not installed
    python3 - <<'EOF'
import importlib.metadata as metadata
import pathlib
for wheel in sorted(pathlib.Path(".whl").glob("*.whl")):
    name = wheel.name.split("-")[0]
    try:
        print(f"present: {name} {metadata.version(name)} (kept; {wheel.name} not installed)", flush=True)
    except metadata.PackageNotFoundError:
        print(wheel)
EOF
}

install_wheels() {
    local wheels
    wheels=$(missing_wheels | tee /dev/stderr | grep -v '^present: ')
    [ -z "$wheels" ] && { echo "nothing to install"; return 0; }
    # shellcheck disable=SC2086  # one path per word
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $wheels
}
export -f missing_wheels install_wheels  # `timeout` runs them in a new bash

if [ -d .whl ]; then
    section "install wheels from .whl/" 60 bash -c install_wheels
    export PYTHONPATH=$PWD:/tmp/site
fi

section "machine" 15 bash -c 'nvidia-smi || echo "no nvidia-smi"; echo "CPUs: $(nproc)"; free -g | head -2'

section "torch and FP8 API" 60 python3 - <<'EOF'
import sys
import warnings

warnings.simplefilter("always")
import torch
import torch.nn.functional as F

print("python", sys.version.split()[0], "| torch", torch.__version__, "| CUDA", torch.version.cuda)
print("cuda available:", torch.cuda.is_available())
if torch.cuda.is_available():
    print("device:", torch.cuda.get_device_name(0), "capability", torch.cuda.get_device_capability(0))
print("F.scaled_mm:", hasattr(F, "scaled_mm"), "| torch._scaled_mm:", hasattr(torch, "_scaled_mm"))
for enum in ("ScalingType", "SwizzleType"):
    print(f"F.{enum}:", list(getattr(F, enum).__members__) if hasattr(F, enum) else "missing")
import rewardgym  # noqa: F401
import rewardgym.trainers.train  # noqa: F401
from rewardgym.trainers.device import resolve_device
from rewardgym.trainers.models.fp8 import backend_for

device = resolve_device("auto")
print("device=auto resolves to", device)
for dtype in (torch.float32, torch.bfloat16):
    for rows, kind in ((1, "1x128 x 1x128"), (128, "1x128 x 128x128")):
        print(f"FP8 backend for {kind}, {dtype}: {backend_for(device, dtype, rows)}", flush=True)
EOF

per_test=()  # a per-test limit where pytest-timeout is installed
python3 -c "import pytest_timeout" 2>/dev/null && per_test=(--timeout 150)
section "GPU tests (tests/test_gpu.py)" 240 python3 -m pytest -q -m gpu tests/test_gpu.py -p no:cacheprovider \
    "${per_test[@]}" -rfEs --durations=12
section "FP8 and MoE tests on this torch" 60 python3 -m pytest -q tests/test_fp8.py tests/test_moe.py \
    -p no:cacheprovider "${per_test[@]}" -rfE
if python3 -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    section "benchmark (benchmarks/gpu/bench.py)" 130 python3 benchmarks/gpu/bench.py --rounds 2 --warmup 2 \
        --iters 10 --train-iters 2
else
    section "benchmark smoke, no CUDA here (benchmarks/gpu/bench.py --smoke)" 120 python3 benchmarks/gpu/bench.py --smoke
fi

echo; echo "=== summary ==="
printf '%s\n' "${summary[@]}"
