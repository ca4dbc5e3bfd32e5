#!/usr/bin/env bash
# On a lent GPU: (1) GRPO, platform code path vs bare TRL, step time and peak memory; (2) DPO on a synthetic
# noisy-preference study (benchmarks/dpo_check.py): held-out preference accuracy base vs trained, steps/s, memory.
# Installs nothing from the network: torch/transformers/trl/peft/accelerate/datasets must be present, or carried
# as wheels in .whl/.
# Usage (repository root): bash benchmarks/gpu_check.sh
# Env: GPU_CHECK_STEPS (12), GPU_CHECK_VLLM (0|1), GPU_CHECK_TIMEOUT (540 s, GRPO), DPO_CHECK_STEPS (100),
#      DPO_CHECK_TIMEOUT (300 s), GPU_CHECK_ONLY (grpo|dpo: run one part)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] && PY=.venv/bin/python
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 PIP_NO_INDEX=1
missing=$("$PY" - <<'PY'
import importlib.util
need = ["torch", "transformers", "trl", "peft", "accelerate", "datasets", "safetensors", "tokenizers"]
print(" ".join(n for n in need if importlib.util.find_spec(n) is None))
PY
)
if [ -n "$missing" ]; then
  if [ -d .whl ]; then
    echo "installing from carried wheels: $missing"
    "$PY" -m pip install --no-index --find-links .whl/ $missing
  else
    echo "missing Python packages: $missing (carry wheels in .whl/)" >&2; exit 2
  fi
fi
cuda=$("$PY" -c "import torch; print(int(torch.cuda.is_available()))")
echo "cuda available: $cuda"
status=0
if [ "${GPU_CHECK_ONLY:-grpo}" != dpo ]; then
  echo "== GRPO: platform vs bare TRL"
  timeout "${GPU_CHECK_TIMEOUT:-540}" "$PY" benchmarks/gpu_grpo_check.py || status=$?
fi
if [ "${GPU_CHECK_ONLY:-dpo}" != grpo ]; then
  echo "== DPO: held-out preference accuracy and speed"
  if [ "$cuda" = 1 ]; then
    timeout "${DPO_CHECK_TIMEOUT:-300}" "$PY" benchmarks/dpo_check.py --gpu --steps "${DPO_CHECK_STEPS:-100}" || status=$?
  else
    timeout "${DPO_CHECK_TIMEOUT:-300}" "$PY" benchmarks/dpo_check.py --steps "${DPO_CHECK_STEPS:-20}" || status=$?
  fi
fi

# The learning check on the GPU (issue: "run the same check with a larger base model if one is available
# offline"): set GPU_CHECK_LEARNING_MODEL to a local instruct model directory (e.g. a Qwen2.5-0.5B/1.5B-Instruct
# carried beside the wheels; nothing is downloaded). Same demo tasks, decoding, seed and reward spec as the CPU
# run; more GRPO steps because a step costs seconds here. Skipped without CUDA or without such a model.
if [ -n "${GPU_CHECK_LEARNING_MODEL:-}" ]; then
  if "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    timeout "${GPU_CHECK_LEARNING_TIMEOUT:-1800}" "$PY" benchmarks/learning_check.py \
      --model "$GPU_CHECK_LEARNING_MODEL" --out "${GPU_CHECK_DIR:-var/gpu-check}/learning-check" \
      --warm-steps "${GPU_CHECK_WARM_STEPS:-40}" --grpo-steps "${GPU_CHECK_GRPO_STEPS:-40}" \
      --prompts-per-step 4 --max-completion-length 128 || status=$?
  else
    echo "learning check skipped: no CUDA"
  fi
else
  echo "learning check skipped: set GPU_CHECK_LEARNING_MODEL to a local model directory to run it"
fi
exit "$status"
