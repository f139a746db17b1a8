#!/usr/bin/env bash
# The prepared GPU check (issue 29; see bench/gpu_check.py for what it measures).
#
#   bench/gpu_check.sh             on the lent GPU machine: its own python3 (torch, transformers, peft, accelerate
#                                  are in its image), the wheels `bench/gpu_wheels.sh` put in .gpu-wheels/ installed
#                                  with --target (carry .gpu-wheels), the project's src/ on PYTHONPATH, no venv
#   bench/gpu_check.sh --dry-run   the same script here, on the CPU, with the tiny shapes (make test runs it)
#
# Results: $OUT/gpu_check.json and $OUT/gpu_check.log ($OUT is the device tool's output folder; here a temporary
# one unless set). GPU_CHECK_TIMEOUT (default 540 s) stops it; the script itself starts nothing new after
# --budget-s (450 s), so the JSON is written first.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false HF_DATASETS_DISABLE_PROGRESS_BARS=1
OUT="${OUT:-$(mktemp -d -t gpu-check-out.XXXXXX)}"
if [[ "${1:-}" == "--dry-run" ]]; then
    PY=.venv/bin/python
else
    PY=python3
    if [[ -d .gpu-wheels ]]; then
        target="${TMPDIR:-/tmp}/gpu-wheels"
        "$PY" -m pip install --quiet --no-index --no-deps --target "$target" .gpu-wheels/*.whl
        export PYTHONPATH="$target${PYTHONPATH:+:$PYTHONPATH}"
    fi
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
exec timeout "${GPU_CHECK_TIMEOUT:-540}" "$PY" bench/gpu_check.py --out "$OUT" "$@"
