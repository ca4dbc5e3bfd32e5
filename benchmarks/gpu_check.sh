#!/usr/bin/env bash
# GRPO on a lent GPU: platform code path vs bare TRL, step time and peak memory. Installs nothing from the
# network: torch/transformers/trl/peft/accelerate/datasets must be present, or carried as wheels in .whl/.
# Usage (repository root): bash benchmarks/gpu_check.sh     Env: GPU_CHECK_STEPS (12), GPU_CHECK_VLLM (0|1)
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
"$PY" -c "import torch; print('cuda available:', torch.cuda.is_available())"
timeout "${GPU_CHECK_TIMEOUT:-540}" "$PY" benchmarks/gpu_grpo_check.py
