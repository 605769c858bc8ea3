#!/usr/bin/env bash
# One command to run the whole test suite (what .ci/run calls).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# one torch thread per process: two workers on two cores, and tiny models run faster single-threaded
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
.venv/bin/ruff check uc_tasks uc_align tests bench
# Two workers (pytest-xdist), a test file each at a time: the tests are single-threaded (OMP_NUM_THREADS=1 in
# their subprocesses), so on 2 cores the suite takes about half the time. UC_TEST_WORKERS=0: one process.
exec .venv/bin/python -m pytest -q -n "${UC_TEST_WORKERS:-2}" --dist loadfile "$@"
