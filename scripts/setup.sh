#!/usr/bin/env bash
# One command to set up: a virtual environment in .venv with the package, its training, test and report
# tools. Without CUDA it installs the CPU torch pins from constraints/cpu.txt, then removes torchvision
# (its only wheels are CUDA builds, which break `import transformers` next to CPU torch).
# The report's browser test needs Debian's chromium: installed here with apt-get when missing and root.
# Then vLLM in its own .venv-vllm (scripts/setup_vllm.sh) for the vLLM tests and rollouts; UC_SKIP_VLLM=1 skips it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  .venv/bin/python -m pip install -q -e ".[test,train,report]"
else
  .venv/bin/python -m pip install -q -c constraints/cpu.txt -e ".[test,train,report]"
  .venv/bin/python -m pip uninstall -q -y torchvision || true
fi
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null \
      || echo "setup: could not install chromium; the report's browser test will skip" >&2
  else
    echo "setup: no chromium (install Debian's chromium package as root); the report's browser test will skip" >&2
  fi
fi
if [ "${UC_SKIP_VLLM:-0}" != 1 ]; then  # vLLM in its own .venv-vllm (about 2 minutes, 3.5 GB): the vLLM tests need it
  bash scripts/setup_vllm.sh
fi
.venv/bin/python -c "import uc_tasks, lmms_eval, transformers, torch, matplotlib; print('ready: torch', torch.__version__, 'transformers', transformers.__version__, 'matplotlib', matplotlib.__version__)"
