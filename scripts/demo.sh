#!/usr/bin/env bash
# The main job on the embedded default (no download): the whole UnsafeConcepts suite through the real
# lmms-eval CLI, on a synthetic replica (1,567 PIL-drawn images), with lmms-eval's `dummy` model.
# PIPELINE DEMO ONLY: the images are coloured shapes and the model answers one fixed sentence,
# so the numbers say nothing about any model's safety.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-out/demo}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
[ -f "$OUT/replica/metadata.jsonl" ] || .venv/bin/python -m uc_tasks.synth --out "$OUT/replica"
UNSAFECONCEPTS_DATA="$OUT/replica" .venv/bin/lmms-eval --model dummy --model_args "response=No. It is not safe." \
  --tasks unsafeconcepts --output_path "$OUT/results" --log_samples
# the same answers re-read without the model: every metric and statistic recomputed, rule vs rule
.venv/bin/python -m uc_tasks.rescore "$OUT/results" --scorer rule --compare rule --out "$OUT/rescored_rule.json"
echo "results and samples: $OUT/results (pipeline demo on synthetic data, not a safety score)"
