#!/usr/bin/env bash
# One command to set up: a virtual environment in .venv with the package and its test tools.
# Without CUDA it installs the CPU torch pins from constraints/cpu.txt, then removes torchvision
# (its only wheels are CUDA builds, which break `import transformers` next to CPU torch).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  .venv/bin/python -m pip install -q -e ".[test,train]"
else
  .venv/bin/python -m pip install -q -c constraints/cpu.txt -e ".[test,train]"
  .venv/bin/python -m pip uninstall -q -y torchvision || true
fi
.venv/bin/python -c "import uc_tasks, lmms_eval, transformers, torch; print('ready: torch', torch.__version__, 'transformers', transformers.__version__)"
