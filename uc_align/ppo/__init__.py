"""Self-rewarded PPO for VLMs (the paper's method): the benchmark's own reader scores the policy's answers.

Read in this order: ``trainer`` (the loop, one step top to bottom), ``rollout`` (sampling), ``reward``
(the reader's score and the paper's shaping), ``losses`` (every PPO term, plain tensor functions),
``model`` (one base, policy / value / reference roles), ``config`` (every setting), ``checkpoint``, ``log``;
``vllm_engine`` samples the rollouts on a vLLM server instead (``--rollout_engine vllm``).

    python -m uc_align.ppo --model BASE --train_file train.jsonl --eval_file test.jsonl --out out/

Differences from the authors' code (TrustAIRLab/SaferVLM), on purpose:
- every term (whitening, policy and value losses, entropy) is computed over real answer tokens only;
  theirs also averaged over padding;
- the sequence reward (score, no-EOS penalty, length bonus) sits on the last real token; theirs sat in
  the last padded slot (index 511);
- an answer ends at its first EOS; theirs was cut at the first "?" token, which then also counted as
  "no EOS" (-8);
- dropout is off inside the loop, so that the ratio is exactly 1 before an update;
- prompts use the model's own chat template, at training and evaluation alike (theirs trained with
  vicuna_v1 and evaluated with llava_v1).

The length bonus (4.0 x tokens / 512 by default, as in the paper) can dwarf the verdict (at most 1): a
policy can gain more by rambling than by judging. Watch ``answer_length`` and held-out accuracy beside the
reward in ``train_log.jsonl``, or set ``length_bonus 0``.
"""
