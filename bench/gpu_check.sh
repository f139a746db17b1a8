#!/usr/bin/env bash
# One prepared GPU check: every training method through the pipeline on the device, peak memory against the
# pre-flight estimate, in under 5 minutes on one H200 (the limit below stops it otherwise). See bench/gpu_check.py.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
exec timeout "${GPU_CHECK_TIMEOUT:-300}" .venv/bin/python bench/gpu_check.py "$@"
