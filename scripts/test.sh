#!/usr/bin/env bash
# One command to run the whole test suite (what .ci/run calls).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
.venv/bin/ruff check uc_tasks uc_align tests bench
exec .venv/bin/python -m pytest -q "$@"
