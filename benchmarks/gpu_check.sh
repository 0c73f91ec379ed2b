#!/usr/bin/env bash
# The device check as one command (issue 16): run on the lent GPU machine from the repo root,
#   device.run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=540)
# It installs the carried wheels (pydantic, pydantic-core, annotated-types, typing-inspection,
# mlxtend: `make gpu-wheels` here) into /tmp/site, then runs the grid on CUDA against the CPU
# reference committed in benchmarks/results/gpu_check_cpu.json, writing JSON to $OUT.
set -uo pipefail
export PYTHONUNBUFFERED=1 OUT="${OUT:-/tmp/gpu_check_out}"
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 4
export PYTHONPATH="/tmp/site:$PWD"
nvidia-smi > "$OUT/nvidia_smi.txt" 2>&1
timeout 480 python3 -m benchmarks.gpu_check --device cuda \
  --reference benchmarks/results/gpu_check_cpu.json --out "$OUT" --budget-s 360 \
  2>&1 | tee "$OUT/gpu_check.log"
