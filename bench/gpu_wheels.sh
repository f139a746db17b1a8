#!/usr/bin/env bash
# The wheels the lent GPU machine lacks (its image has torch, transformers, peft, accelerate, pandas, pyarrow, ...;
# not TRL, datasets, pydantic, jsonschema, Liger or bitsandbytes), for its Python 3.12 on x86-64 Linux, at the
# versions constraints.txt pins, downloaded into .gpu-wheels/ (git-ignored; name it in the device tool's `carry`).
# About 47 MB, 43 of them bitsandbytes: leave it out with NO_BNB=1 when the working tree must stay smaller.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .gpu-wheels && mkdir -p .gpu-wheels
pin() { grep -i "^$1==" constraints.txt | head -1; }
wanted=("$(pin trl)" "$(pin datasets)" "$(pin pydantic)" "$(pin pydantic_core)" "$(pin annotated-types)"
        "typing-inspection==0.4.5" "$(pin jsonschema)" "$(pin jsonschema-specifications)" "$(pin referencing)"
        "$(pin rpds-py)" "$(pin dill)" "$(pin multiprocess)" "liger-kernel==0.8.5")
[[ "${NO_BNB:-}" == 1 ]] || wanted+=("$(pin bitsandbytes)")
platforms=()
for p in manylinux2014_x86_64 manylinux_2_17_x86_64 manylinux_2_24_x86_64 manylinux_2_28_x86_64 any; do
    platforms+=(--platform "$p")
done
.venv/bin/python -m pip download --quiet --only-binary=:all: --no-deps --python-version 3.12 --implementation cp \
    --abi cp312 --abi abi3 --abi none "${platforms[@]}" -d .gpu-wheels "${wanted[@]}"
du -sh .gpu-wheels
