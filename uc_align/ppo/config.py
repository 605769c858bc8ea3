"""Every setting of ``python -m uc_align.ppo``: one dataclass, help text on every field.

Defaults are the paper's (PROTOCOL.md, "Self-rewarded PPO") except where a field says otherwise.
Values come from the defaults, then ``--config file.yaml``, then flags (``uc_tasks.config.parse_config``);
``__post_init__`` rejects combinations that cannot work, naming the value, the rule and the fix.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from uc_tasks.config import help_field

REWARDS = ("rule", "classifier", "judge")
LM_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
DTYPES = ("auto", "float32", "bfloat16", "float16")
ENGINES = ("hf", "vllm")


@dataclass
class PPOConfig:
    # --- what to train, on what, where to write ------------------------------------------------------
    model: str = help_field("", "base VLM: a local folder or hub id loaded with AutoModelForImageTextToText")
    data: str = help_field("", "folder written by `python -m uc_align.data`: sets train_file to DATA/train.jsonl "
                               "and eval_file to DATA/test.jsonl (the fine-tuning test) unless they are given")
    train_file: str = help_field("", "training items, JSON lines {image, target: safe|unsafe, concept, category, "
                                     "prompt_id 1-5 (optional: drawn once per item, seeded)}; image paths are "
                                     "relative to the file")
    eval_file: str = help_field("", "held-out items in the same format, answered greedily every eval_steps and at "
                                    "the end, read by the rule reader (empty: no held-out evaluation)")
    out: str = help_field("ppo_out", "the run's folder: checkpoint-N/, train_log.jsonl, TensorBoard events and, at the "
                                     "end, the policy adapter and uc_align.json (as every uc_align command)")
    resume: bool = help_field(False, "continue from the newest checkpoint-* in out (same config)")
    seed: int = help_field(42, "seed of the data order, prompt draws, LoRA init and sampling (paper: 42)")

    # --- reward (uc_align.ppo.reward) -----------------------------------------------------------------
    reward: str = help_field("rule", "answer reader behind the reward: rule (+1 right verdict, -1 wrong, "
                                     "na_reward for N/A), classifier (paper: log p(true label) of the authors' "
                                     "RoBERTa, min-max normalised per rollout batch), judge (like rule, LLM judge)")
    na_reward: float = help_field(-1.0, "reward of an answer the reader cannot read (rule and judge only)")
    no_eos_penalty: float = help_field(-8.0, "ADDED to the reward of an answer that never ends (no EOS)")
    length_bonus: float = help_field(4.0, "+ length_bonus x answer tokens / length_norm. WARNING: at the paper's "
                                          "4.0 a 512-token answer earns 4, against at most 1 for the verdict: "
                                          "watch answer_length beside the accuracy, or set 0")
    length_norm: int = help_field(512, "divisor of the length bonus, in tokens (paper: 512)")
    kl_coef: float = help_field(0.1, "per-token penalty kl_coef x clamp(log pi - log pi_ref, min 0)")
    reward_scale: float = help_field(10.0, "the whole per-token reward (KL included) is multiplied by this")

    # --- PPO losses (uc_align.ppo.losses) -------------------------------------------------------------
    gamma: float = help_field(1.0, "GAE discount")
    lam: float = help_field(1.0, "GAE lambda")
    whiten_advantages: bool = help_field(True, "whiten advantages over the batch's real tokens")
    cliprange: float = help_field(0.2, "PPO ratio clip")
    cliprange_value: float = help_field(0.2, "value clip around the rollout's values")
    vf_coef: float = help_field(0.1, "weight of the value loss 0.5 x max(clipped, unclipped squared error)")
    entropy_coef: float = help_field(0.02, "policy loss minus entropy_coef x mean token entropy")
    ppo_epochs: int = help_field(1, "optimisation passes over each rollout batch (paper: 1)")
    num_minibatches: int = help_field(1, "minibatches per pass, one optimizer step each (paper: 1)")

    # --- optimisation ---------------------------------------------------------------------------------
    learning_rate: float = help_field(3e-5, "AdamW learning rate over policy LoRA, value LoRA and value head")
    weight_decay: float = help_field(0.0, "AdamW weight decay")
    warmup_steps: int = help_field(5, "linear warm-up steps before the cosine decay")
    max_grad_norm: float = help_field(1.0, "gradient clip (total norm over every trainable parameter)")
    epochs: int = help_field(4, "passes over the training items; steps = epochs x items // rollout_batch_size")
    max_steps: int = help_field(0, "stop after this many PPO steps (0: epochs decide)")
    rollout_batch_size: int = help_field(32, "answers sampled per PPO step, one per item")

    # --- sampling (uc_align.ppo.rollout) --------------------------------------------------------------
    temperature: float = help_field(1.0, "sampling temperature of the rollouts")
    top_p: float = help_field(1.0, "nucleus sampling of the rollouts (1: off)")
    top_k: int = help_field(0, "top-k sampling of the rollouts (0: off)")
    max_new_tokens: int = help_field(512, "answer length limit; an answer that reaches it has no EOS")
    max_prompt_tokens: int = help_field(128, "longest prompt allowed, text tokens (image tokens not counted); a "
                                             "longer one stops the run (prompts are never truncated)")

    # --- rollout engine (uc_align.ppo.vllm_engine) ----------------------------------------------------
    rollout_engine: str = help_field("hf", "what samples the rollouts: hf (transformers generate in the trainer) "
                                           "or vllm (a vLLM server in its own process, the policy adapter "
                                           "loaded into it after every update; log-probs are always the "
                                           "trainer's)")
    rollout_cache: str = help_field("dynamic", "rollout_engine hf: the KV cache of generate: dynamic, or static (a "
                                               "fixed-size cache, the same answers; on CUDA transformers then "
                                               "compiles the decoding step with torch.compile; on CPU it does not, "
                                               "and a tiny model gains nothing: measured)")
    vllm_python: str | None = help_field(None, "rollout_engine vllm: the Python that has vllm (default: "
                                               ".venv-vllm/bin/python, made by scripts/setup_vllm.sh)")
    vllm_port: int = help_field(0, "rollout_engine vllm: the server's port on 127.0.0.1 (0: a free one)")
    vllm_wait_s: float = help_field(600.0, "rollout_engine vllm: seconds to wait for the server to start")
    engine_max_logprob_gap: float = help_field(0.1, "stop the run when the engine's log-prob of a sampled token "
                                                    "differs from the trainer's by more than this (nats; the "
                                                    "rollouts would come from another policy). float32 on CPU: "
                                                    "a few 1e-6; bf16 kernels on GPUs differ more; 0: never stop")
    vllm_args: list[str] = help_field([], "rollout_engine vllm: more arguments for vLLM's server, e.g. "
                                          "--vllm_args=--gpu-memory-utilization=0.3 (the trainer shares the GPU)")

    # --- model ----------------------------------------------------------------------------------------
    lora_r: int = help_field(128, "LoRA rank of both adapters")
    lora_alpha: int = help_field(256, "LoRA alpha of both adapters")
    lora_dropout: float = help_field(0.05, "LoRA dropout written into the adapter configs; the PPO loop itself "
                                           "runs with every dropout off, so that the ratio is 1 before an update")
    lora_target_modules: list[str] = help_field(LM_LINEAR, "linear layers of the language model that get LoRA "
                                                           "(never the vision tower or projector)")
    modules_to_save: list[str] = help_field([], "modules the policy adapter trains in full (e.g. lm_head; paper: "
                                                "none)")
    dtype: str = help_field("auto", "auto (bfloat16 on CUDA, else float32), float32, bfloat16 or float16")
    load_in_4bit: bool = help_field(False, "4-bit NF4 base with double quantisation, bf16 compute (paper); "
                                           "needs CUDA and bitsandbytes")
    gradient_checkpointing: bool = help_field(False, "checkpoint activations in the loss forward (always off "
                                                     "while generating)")

    # --- logging and checkpoints ----------------------------------------------------------------------
    save_steps: int = help_field(50, "checkpoint every N steps, and at the end (0: only at the end)")
    eval_steps: int = help_field(0, "held-out evaluation every N steps (0: only at the end; needs eval_file)")
    eval_sampled: bool = help_field(False, "also answer the held-out items by sampling (the rollouts' settings, "
                                           "a forked RNG: the run is unchanged) and log eval_sampled/*")
    tensorboard: bool = help_field(False, "also write TensorBoard events (needs the tensorboard package)")
    progress: bool = help_field(True, "show a progress bar")

    def __post_init__(self) -> None:
        def bad(field: str, rule: str, fix: str) -> None:
            raise ValueError(f"{field}={getattr(self, field)!r}: {rule}; {fix}")

        if self.data:
            self.train_file = self.train_file or str(Path(self.data) / "train.jsonl")
            self.eval_file = self.eval_file or str(Path(self.data) / "test.jsonl")

        if self.reward not in REWARDS:
            bad("reward", f"must be one of {', '.join(REWARDS)}", "pick one of those")
        if self.dtype not in DTYPES:
            bad("dtype", f"must be one of {', '.join(DTYPES)}", "pick one of those")
        for name in ("rollout_batch_size", "ppo_epochs", "num_minibatches", "epochs", "max_new_tokens",
                     "max_prompt_tokens", "lora_r", "length_norm"):
            if getattr(self, name) < 1:
                bad(name, "must be at least 1", f"set --{name} 1 or more")
        for name in ("max_steps", "save_steps", "eval_steps", "warmup_steps", "top_k"):
            if getattr(self, name) < 0:
                bad(name, "must not be negative", f"set --{name} 0 or more")
        if self.rollout_batch_size % self.num_minibatches:
            bad("num_minibatches", f"must divide rollout_batch_size={self.rollout_batch_size}",
                "choose a divisor, or change rollout_batch_size")
        if self.temperature <= 0:
            bad("temperature", "must be above 0 (rollouts are sampled; the ratio needs a proper distribution)",
                "use 1.0 (paper)")
        if not 0 < self.top_p <= 1:
            bad("top_p", "must be in (0, 1]", "use 1.0 (paper)")
        for name in ("cliprange", "cliprange_value", "learning_rate", "max_grad_norm"):
            if getattr(self, name) <= 0:
                bad(name, "must be above 0", f"set a positive --{name}")
        for name in ("kl_coef", "vf_coef", "entropy_coef", "weight_decay", "reward_scale"):
            if getattr(self, name) < 0:
                bad(name, "must not be negative", f"set --{name} 0 or more")
        if not (0 <= self.gamma <= 1 and 0 <= self.lam <= 1):
            raise ValueError(f"gamma={self.gamma!r}, lam={self.lam!r}: both must be in [0, 1]; use 1 (paper)")
        if not 0 <= self.lora_dropout < 1:
            bad("lora_dropout", "must be in [0, 1)", "use 0.05 (paper)")
        if self.eval_steps and not self.eval_file:
            bad("eval_steps", "asks for held-out evaluation but eval_file is empty", "give --eval_file or set 0")
        if not self.lora_target_modules:
            bad("lora_target_modules", "is empty: the policy would have nothing to train", "name linear layers")
        if self.rollout_cache not in ("dynamic", "static"):
            bad("rollout_cache", "must be dynamic or static", "pick one of those")
        if self.rollout_engine not in ENGINES:
            bad("rollout_engine", f"must be one of {', '.join(ENGINES)}", "pick one of those")
        if self.rollout_engine == "vllm" and self.modules_to_save:
            bad("modules_to_save", "cannot be served by vLLM, whose runtime LoRA loading takes LoRA layers only "
                                   "(the rollouts would come from a different policy)",
                "leave modules_to_save empty with --rollout_engine vllm, or use --rollout_engine hf")
        dropped = [m for m in self.lora_target_modules if m in ("lm_head", "embed_tokens")]
        if self.rollout_engine == "vllm" and dropped:
            bad("lora_target_modules", f"has {', '.join(dropped)}, whose LoRA vLLM 0.32 does not apply (measured: "
                                       "its answers were the adapter's without it)",
                "target the language model's linear layers only with --rollout_engine vllm")
        if self.engine_max_logprob_gap < 0:
            bad("engine_max_logprob_gap", "must not be negative", "pass 0 (never stop) or a gap in nats")
        if not 0 <= self.vllm_port < 65536:
            bad("vllm_port", "must be 0 (a free port) or a port number", "pass 0")
        if self.reward == "classifier" and self.na_reward != -1.0:
            bad("na_reward", "is not used by reward=classifier (the classifier's NA probability counts as a "
                             "wrong label)", "leave it at -1 or use reward=rule")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
