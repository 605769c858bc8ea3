#!/usr/bin/env bash
# The paper in miniature on the embedded default (no download, CPU, a few minutes):
#   1. a synthetic replica (4 PIL-drawn images per concept, safe stand-ins, SMID / NSFW stand-ins) and the
#      paper's fine-tuning data built from it (python -m uc_tasks.synth, python -m uc_align.data);
#   2. a tiny Qwen2-VL built from a config (about 120k parameters) and warm-started with coin-flip verdicts on
#      two answer formats, the authors' sentences and the short "Yes, it is safe." / "No, it is not safe."
#      (python -m uc_align.demo): it answers at chance, the one base of every method;
#   3. the benchmark (unsafeconcepts: perception, image and text alignment) through the real lmms-eval CLI
#      (--model uc_hf_vlm, --limit per task), re-read by python -m uc_tasks.rescore;
#   4. alignment: SFT, DPO (with an NLL term on the chosen answer, --sft_weight 1), PPO (python -m uc_align.*);
#      SFT and DPO learn the authors' sentences; PPO (answers capped at 32 tokens) takes the short format, on
#      which the tiny model learns the verdict within a demo's budget (see uc_align/demo.py);
#   5. every checkpoint and the base re-evaluated into Table 3 (python -m uc_align.evaluate, offline general
#      stand-in), then the HTML report (python -m uc_tasks.report).
# PIPELINE DEMO ONLY: the images are coloured shapes and the model is tiny, so the numbers say nothing about
# any model's safety. A rerun skips what is finished (evaluate re-runs nothing it has).
#   bash scripts/demo.sh [OUT]        # default OUT: out/demo
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-out/demo}
PY=.venv/bin/python
BANNER="PIPELINE DEMO on synthetic data, not a safety score"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # tiny models on a few cores: more threads are slower
R=$OUT/replica
export UNSAFECONCEPTS_DATA=$R UNSAFECONCEPTS_SAFE_DATA=$R/imagenet_1k UNSAFECONCEPTS_SMID_DATA=$R/smid \
  UNSAFECONCEPTS_NSFW_DATA=$R/nsfw
step() { echo "== demo [$(date +%H:%M:%S)] $*"; }
echo "== $BANNER"

step "1/6 synthetic replica and fine-tuning data"
[ -f "$R/metadata.jsonl" ] || $PY -m uc_tasks.synth --out "$R" --per-concept 4 --size 56 --safe --ood 24
[ -f "$OUT/data/manifest.json" ] || $PY -m uc_align.data --out "$OUT/data" --data "$R" --safe_data "$R/imagenet_1k"

step "2/6 tiny Qwen2-VL from a config, warm-started on the answer format (verdicts at chance)"
$PY -m uc_align.demo --out "$OUT/model" --data "$OUT/data"
WARM=$OUT/model/warm
MODEL_ARGS=device=cpu,dtype=float32

step "3/6 benchmark: unsafeconcepts through lmms-eval (uc_hf_vlm, 40 documents per task), then rescore"
if ! ls "$OUT"/benchmark/*/*_results.json >/dev/null 2>&1; then
  .venv/bin/lmms-eval --model uc_hf_vlm --model_args "pretrained=$WARM,$MODEL_ARGS" --tasks unsafeconcepts \
    --limit 40 --batch_size 64 --output_path "$OUT/benchmark" --log_samples
fi
# the same answers re-read without the model: every metric and statistic recomputed, rule vs rule
$PY -m uc_tasks.rescore "$OUT/benchmark" --scorer rule --compare rule --out "$OUT/rescored_rule.json"

step "4/6 alignment: SFT, DPO (+NLL), PPO on the fine-tuning data"
LORA=(--lora_r 16 --lora_alpha 32 --modules_to_save lm_head --seed 0)
TRL=("${LORA[@]}" --lora_dropout 0.0 --batch_size 16 --warmup_steps 0 --save_steps 1000 --report_to none
     --learning_rate 5e-3)
train() {  # METHOD FLAGS...: skipped when its finished adapter is there
  local method=$1; shift
  if [ -f "$OUT/$method/adapter_model.safetensors" ] && grep -q '"finished"' "$OUT/$method/uc_align.json"; then
    echo "$method: finished earlier ($OUT/$method)"
  else
    $PY -m "uc_align.$method" --model "$WARM" --data "$OUT/data" --out "$OUT/$method" "$@" > "$OUT/$method.log" 2>&1 \
      || { tail -20 "$OUT/$method.log"; exit 1; }
    echo "$method: trained ($OUT/$method, log $OUT/$method.log)"
  fi
}
train sft "${TRL[@]}" --epochs 4
train dpo "${TRL[@]}" --epochs 2 --sft_weight 1.0  # DPO + NLL (RPO): pure DPO does not learn here
train ppo "${LORA[@]}" --rollout_batch_size 32 --max_steps 32 --max_new_tokens 32 --learning_rate 2e-3 \
  --ppo_epochs 4 --num_minibatches 2 --entropy_coef 0 --eval_steps 8 --eval_sampled false --save_steps 0 \
  --progress false

step "5/6 Table 3: the base and every checkpoint re-evaluated (python -m uc_align.evaluate)"
$PY -m uc_align.evaluate "$OUT/sft" "$OUT/dpo" "$OUT/ppo" --out "$OUT/eval" --general uc_general_yesno \
  --model_args "$MODEL_ARGS" --batch_size 64

step "6/6 the report"
$PY -m uc_tasks.report "$OUT/benchmark" "$OUT/eval" --out "$OUT/report" \
  --title "UnsafeConcepts in miniature: $BANNER"

cat "$OUT/eval/table3.md"
echo
echo "tiny Qwen2-VL, 4 synthetic images per concept; SFT / DPO answer in the authors' sentences, PPO in the short format"
echo "== $BANNER"
echo "report:  $OUT/report/report.html"
echo "Table 3: $OUT/eval/table3.md (json: $OUT/eval/table3.json, plot: $OUT/eval/table3_tradeoff.png)"
echo "benchmark run: $OUT/benchmark (rescored: $OUT/rescored_rule.json)"
