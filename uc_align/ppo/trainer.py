"""The PPO loop. One step, top to bottom (``PPOTrainer.ppo_step``):

1. **Rollout**: sample one answer per item with the policy adapter (``rollout.sample``, or a vLLM server with
   the adapter loaded: ``vllm_engine``).
2. **Reward**: the benchmark's reader scores each answer (``reward.VerdictReward``), then the paper's
   shaping: -8 added without EOS, + length bonus (``reward.shape``).
3. **Reference**: log pi_ref of every answer token, adapters disabled (``model.policy_forward``).
4. **Old log-probs and values**: policy adapter, value adapter + head. With the paper's single update per
   rollout (one epoch, one minibatch) these come from the same forwards the loss backpropagates through
   (nothing has changed yet, so the ratio is exactly 1); otherwise from extra no-grad forwards.
5. **Advantages**: per-token KL penalty and score on the last real token, x10 (``losses.token_rewards``),
   GAE with gamma = lambda = 1, returns before whitening, whitened advantages (``losses.gae``, ``whiten``).
6. **Update**: clipped policy loss - 0.02 x entropy, backpropagated; then 0.1 x the clipped value loss,
   backpropagated separately; gradient clip 1.0; one AdamW step over both adapters and the head.

Differences from the authors' code, on purpose (PROTOCOL.md): every term masks padding, the sequence
reward sits on the last real token (not in slot 511), an answer is cut at its first EOS (not at the
first "?" token, which also counted as no EOS), and dropout is off in the loop (see ``model``).
"""

from __future__ import annotations

import random
import resource
import time
from pathlib import Path
from typing import Any

import torch
from transformers import get_cosine_schedule_with_warmup

from uc_align.data import read_manifest
from uc_align.distributed import Group
from uc_align.ppo import checkpoint, losses
from uc_align.ppo import model as ppo_model
from uc_align.ppo.config import PPOConfig
from uc_align.ppo.items import load_items
from uc_align.ppo.log import StepLog
from uc_align.ppo.reward import VerdictReward, shape, verdict_metrics
from uc_align.ppo.rollout import EngineError, Item, Rollout, sample
from uc_tasks.scoring import get_scorer


def load_processor(name: str) -> Any:
    """The model's processor; one whose video processor needs torchvision is built without it."""
    from transformers import AutoConfig

    from uc_tasks.models.hf_load import load_processor as load

    return load(name, AutoConfig.from_pretrained(name), False)


def peak_memory_mb() -> float:
    """Peak memory so far: CUDA's allocated peak on a GPU, else the process's peak resident set."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def engine_logprob_gap(rollout: Rollout, old_logprobs: torch.Tensor, config: PPOConfig) -> float | None:
    """The largest |engine log-prob - trainer log-prob| over the answer tokens, where the two are the same
    quantity (an engine that reports them; temperature 1, no top-p / top-k); else None."""
    if rollout.sampler_logprobs is None or config.temperature != 1.0 or config.top_p != 1.0 or config.top_k:
        return None
    diff = (rollout.sampler_logprobs - old_logprobs.detach()).abs() * rollout.mask
    return float(diff.max()) if diff.numel() else 0.0


class PPOTrainer:
    """Self-rewarded PPO of a VLM on ``train_items`` (or ``config.train_file``)."""

    def __init__(self, config: PPOConfig, train_items: list[Item] | None = None,
                 eval_items: list[Item] | None = None, reward: VerdictReward | None = None) -> None:
        self.config = c = config
        self.output_dir = Path(c.out)
        self.group = Group()
        random.seed(c.seed)
        torch.manual_seed(c.seed)
        self.train_items = train_items if train_items is not None else load_items(c.train_file, c.seed)
        self.eval_items = eval_items if eval_items is not None else (
            load_items(c.eval_file, c.seed) if c.eval_file else [])
        if c.rollout_batch_size % (self.group.world * c.num_minibatches):
            raise ValueError(f"rollout_batch_size={c.rollout_batch_size} does not split into {self.group.world} "
                             f"process(es) x num_minibatches={c.num_minibatches}; pass a multiple of "
                             f"{self.group.world * c.num_minibatches}")
        if len(self.train_items) < c.rollout_batch_size:
            raise ValueError(f"{len(self.train_items)} training items, fewer than rollout_batch_size="
                             f"{c.rollout_batch_size}; lower rollout_batch_size or give more items")
        resume_from = checkpoint.newest(self.output_dir) if c.resume else None
        if c.resume and resume_from is None:
            raise ValueError(f"--resume: no checkpoint in {self.output_dir}; run without --resume first")
        if resume_from is not None:
            checkpoint.check_same_config(resume_from, c)
        self.manifest = read_manifest(c.data) if c.data else None  # the data folder's, checked
        self.reward = reward if reward is not None else VerdictReward(c.reward, c.na_reward)
        self.eval_reader = get_scorer("rule")
        self.processor = load_processor(c.model)
        self.models = ppo_model.build(c, resume_from)
        if self.group.rank:  # the same fresh adapters everywhere, then each process samples with its own noise
            torch.manual_seed(c.seed + self.group.rank)
        self.optimizer = torch.optim.AdamW(self.models.trainable, lr=c.learning_rate, weight_decay=c.weight_decay)
        self.total_steps = c.max_steps or c.epochs * len(self.train_items) // c.rollout_batch_size
        self.scheduler = get_cosine_schedule_with_warmup(self.optimizer, c.warmup_steps, self.total_steps)
        self.step = 0
        if resume_from is not None:
            state = checkpoint.load_state(resume_from)
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.step = state["step"]
            checkpoint.set_rng_state(state["rng_ranks"][self.group.rank] if self.group.parallel else state["rng"])
        self.log = StepLog(self.output_dir, c.tensorboard, self.step if resume_from is not None else None) \
            if self.group.main else None
        self.engine = self.start_engine() if c.rollout_engine == "vllm" else None

    def start_engine(self) -> Any:
        """The vLLM rollout engine (``uc_align.ppo.vllm_engine``), serving the base model with runtime LoRA."""
        from uc_align.ppo.vllm_engine import VLLMEngine
        from uc_tasks.models.special_tokens import eos_token_ids, image_token_ids, suppressed_ids
        from uc_tasks.serve import vllm_python

        c, model = self.config, self.models.peft
        if self.group.parallel:
            raise ValueError("rollout_engine=vllm runs in one trainer process (one server); drop accelerate "
                             "launch, or use --rollout_engine hf for data parallel")
        vllm_python(c.vllm_python, flag="--vllm_python")  # missing: one line before anything starts
        dtype = str(ppo_model.torch_dtype(c.dtype)).removeprefix("torch.")  # the trainer's: "auto" resolved
        return VLLMEngine(c.model, self.output_dir / "vllm", self.processor, eos=eos_token_ids(model, self.processor),
                          suppressed=suppressed_ids(model, self.processor),
                          image_ids=image_token_ids(model, self.processor), lora_rank=c.lora_r, dtype=dtype,
                          python=c.vllm_python, port=c.vllm_port, wait_s=c.vllm_wait_s, extra=c.vllm_args)

    def close(self) -> None:
        """Stop the rollout engine's server, if any."""
        if self.engine is not None:
            self.engine.close()
            self.engine = None

    # --- data order: the epochs' seeded permutations, one after the other ------------------------------

    def batch(self, step: int) -> list[Item]:
        n, size = len(self.train_items), self.config.rollout_batch_size
        out = []
        for i in range(step * size, (step + 1) * size):
            order = list(range(n))
            random.Random(self.config.seed + i // n).shuffle(order)
            out.append(self.train_items[order[i % n]])
        return out

    # --- the loop --------------------------------------------------------------------------------------

    def train(self) -> dict[str, Any]:
        """Run to ``total_steps``; returns the last step's metrics (with the final held-out evaluation). The
        rollout engine's server stops at the end, or when the run fails."""
        try:
            return self._train()
        finally:
            self.close()

    def _train(self) -> dict[str, Any]:
        from tqdm.auto import tqdm

        c = self.config
        bar = tqdm(total=self.total_steps, initial=self.step, disable=not c.progress or not self.group.main, desc="ppo")
        metrics: dict[str, Any] = {}
        resumed_from = self.step or None
        started = time.time()
        self.write_run_file("running", resumed_from=resumed_from)
        while self.step < self.total_steps:
            metrics = self.ppo_step(self.batch(self.step))
            self.step += 1
            metrics = {"step": self.step, "rollouts": self.step * c.rollout_batch_size, **metrics}
            last = self.step == self.total_steps
            evaluate = self.eval_items and (last or (c.eval_steps and self.step % c.eval_steps == 0))
            if evaluate and self.group.main:
                metrics.update(self.evaluate(self.eval_items))
                if c.eval_sampled:
                    metrics.update(self.evaluate(self.eval_items, greedy=False, prefix="eval_sampled/"))
            if self.log is not None:
                self.log.write(metrics)
            if last or (c.save_steps and self.step % c.save_steps == 0):
                saved = self.save()
                if last and saved is not None:
                    checkpoint.export(self.output_dir, saved)
            bar.update(1)
            bar.set_postfix(reward=f"{metrics['reward']:.2f}", acc=f"{metrics['accuracy']:.2f}",
                            len=f"{metrics['answer_length']:.0f}")
        bar.close()
        if self.log is not None:
            self.log.close()
        self.group.barrier()
        final = {k: v for k, v in metrics.items() if k != "examples"}
        self.write_run_file("finished", resumed_from=resumed_from,
                            train={"global_step": self.step, "wall_s": round(time.time() - started, 2),
                                   "peak_memory_mb": peak_memory_mb(), "final": final})
        return metrics

    def write_run_file(self, status: str, **extra: Any) -> None:
        """``uc_align.json`` in the output folder, as every uc_align command writes it (the main process)."""
        from uc_align.train import write_run_file

        if not self.group.main:
            return
        extra["processes"] = self.group.world
        self.output_dir.mkdir(parents=True, exist_ok=True)
        write_run_file(self.output_dir, "ppo", self.config, self.manifest, status=status, **extra)

    def ppo_step(self, batch: list[Item]) -> dict[str, Any]:
        """One PPO step on ``batch`` (this process takes its share of it); returns the batch's metrics."""
        c, models, group = self.config, self.models, self.group
        items = group.shard(batch)
        start = time.perf_counter()
        # 1. rollout
        with models.generation_mode():
            rollout = self.sample(items, greedy=False)
        generated = time.perf_counter()
        mask = rollout.mask
        # 2. reward: the reader's score, then the paper's shaping
        scored = self.reward.score(rollout.answers, [it.target for it in items], [it.meta for it in items])
        shaped = torch.tensor([shape(s, bool(e), n, c.no_eos_penalty, c.length_bonus, c.length_norm)
                               for s, e, n in zip(scored.scores, rollout.has_eos.tolist(), rollout.lengths,
                                                  strict=True)], device=mask.device)
        # 3. reference log-probs: the base model, adapters disabled
        with torch.no_grad():
            ref_logprobs = ppo_model.policy_forward(models, rollout, reference=True,
                                                    temperature=c.temperature).logprobs
        # 4. old log-probs and values
        single = c.ppo_epochs == 1 and c.num_minibatches == 1
        if single:
            policy_out = ppo_model.policy_forward(models, rollout, with_entropy=True, temperature=c.temperature)
            values_out = ppo_model.value_forward(models, rollout)
            old_logprobs, old_values = policy_out.logprobs.detach(), values_out.detach()
        else:
            with torch.no_grad():
                old_logprobs = ppo_model.policy_forward(models, rollout, temperature=c.temperature).logprobs
                old_values = ppo_model.value_forward(models, rollout)
        gap = engine_logprob_gap(rollout, old_logprobs, c)
        if gap is not None and c.engine_max_logprob_gap and gap > c.engine_max_logprob_gap:
            raise EngineError(f"step {self.step + 1}: the rollout engine's log-probs differ from the trainer's by "
                               f"{gap:.3g} nats (engine_max_logprob_gap={c.engine_max_logprob_gap:g}): it samples "
                               "from another policy (an adapter layer it does not apply, other weights); check "
                               "the engine's log, or raise engine_max_logprob_gap for bf16 kernels")
        # 5. per-token rewards, GAE, returns, whitened advantages
        penalty = losses.kl_penalty(old_logprobs, ref_logprobs, c.kl_coef)
        rewards = losses.token_rewards(shaped, penalty, mask, c.reward_scale)
        advantages, returns = losses.gae(rewards, old_values, mask, c.gamma, c.lam)
        if c.whiten_advantages:
            advantages = losses.whiten(advantages, mask, total=group.total)
        # 6. updates
        stats: dict[str, list[float]] = {k: [] for k in ("policy_loss", "value_loss", "entropy", "clip_frac",
                                                          "value_clip_frac", "grad_norm")}
        lr = self.scheduler.get_last_lr()[0]
        size = len(items) // c.num_minibatches
        for _ in range(c.ppo_epochs):
            order = torch.arange(len(items)) if single else torch.randperm(len(items))
            for rows in order.to(mask.device).split(size):
                m = mask[rows]
                if not single:
                    policy_out = ppo_model.policy_forward(models, rollout, rows, with_entropy=True,
                                                          temperature=c.temperature)
                entropy = policy_out.entropy
                assert entropy is not None
                pg_loss, clip_frac = losses.policy_loss(policy_out.logprobs, old_logprobs[rows], advantages[rows],
                                                        m, c.cliprange)
                mean_entropy = losses.masked_mean(entropy, m)
                (pg_loss - c.entropy_coef * mean_entropy).backward()
                values = values_out if single else ppo_model.value_forward(models, rollout, rows)
                v_loss, v_clip = losses.value_loss(values, old_values[rows], returns[rows], m, c.cliprange_value)
                (c.vf_coef * v_loss).backward()
                group.average_gradients(models.trainable)
                grad_norm = torch.nn.utils.clip_grad_norm_(models.trainable, c.max_grad_norm)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                for key, value in (("policy_loss", pg_loss), ("value_loss", v_loss), ("entropy", mean_entropy),
                                   ("clip_frac", clip_frac), ("value_clip_frac", v_clip), ("grad_norm", grad_norm)):
                    stats[key].append(float(value.detach()))
        self.scheduler.step()
        k1 = ((old_logprobs - ref_logprobs) * mask).sum(dim=1)
        # the metrics of the whole batch: every process's answers (one process: its own)
        per_answer = group.gather([{"score": sc, "shaped": float(sh), "sample": sm, "length": float(n),
                                    "eos": bool(e), "kl": float(k), "kl_penalty": float(kp)}
                                   for sc, sh, sm, n, e, k, kp in zip(
                                       scored.scores, shaped.tolist(), scored.samples, rollout.lengths,
                                       rollout.has_eos.tolist(), k1.tolist(), (penalty * mask).sum(dim=1).tolist(),
                                       strict=True)])
        means = group.gather([{k: _mean(v) for k, v in stats.items()}])
        ev = group.gather([losses.explained_variance(old_values, returns, mask)])
        return {
            "reward": _mean([a["score"] for a in per_answer]),
            "reward_shaped": _mean([a["shaped"] for a in per_answer]),
            **verdict_metrics([a["sample"] for a in per_answer]),
            "answer_length": _mean([a["length"] for a in per_answer]),
            "no_eos_rate": 1.0 - _mean([float(a["eos"]) for a in per_answer]),
            "kl": _mean([a["kl"] for a in per_answer]),
            "kl_penalty": _mean([a["kl_penalty"] for a in per_answer]),
            **{k: _mean([m[k] for m in means]) for k in stats},
            "explained_variance": _mean(ev),
            "value_mean": float(losses.masked_mean(old_values, mask)),
            "lr": lr,
            "rollout_s": generated - start,
            **({"engine_logprob_gap": gap} if gap is not None else {}),
            "step_s": time.perf_counter() - start,
            "peak_memory_mb": peak_memory_mb(),
            "examples": [{"target": it.target, "answer": a, "label": sm.get("label")}
                         for it, a, sm in zip(items[:2], rollout.answers, scored.samples, strict=False)],
        }

    # --- answers, evaluation, checkpoints --------------------------------------------------------------

    def sample(self, items: list[Item], greedy: bool) -> Rollout:
        c = self.config
        if self.engine is not None:  # vLLM, with the policy adapter as it is now
            self.engine.sync(self.models.peft, self.step)
            return self.engine.sample(items, max_new_tokens=c.max_new_tokens, temperature=c.temperature,
                                      top_p=c.top_p, top_k=c.top_k, max_prompt_tokens=c.max_prompt_tokens,
                                      greedy=greedy, device=next(self.models.peft.parameters()).device)
        return sample(self.models.peft, self.processor, items, max_new_tokens=c.max_new_tokens,
                      temperature=c.temperature, top_p=c.top_p, top_k=c.top_k, max_prompt_tokens=c.max_prompt_tokens,
                      greedy=greedy, cache=c.rollout_cache)

    def answers(self, items: list[Item], greedy: bool = True) -> list[str]:
        """The policy's answers to ``items``, in batches of rollout_batch_size."""
        out: list[str] = []
        with self.models.generation_mode():
            for i in range(0, len(items), self.config.rollout_batch_size):
                out += self.sample(items[i:i + self.config.rollout_batch_size], greedy).answers
        return out

    def evaluate(self, items: list[Item], greedy: bool = True, prefix: str = "eval/") -> dict[str, Any]:
        """Held-out accuracy (N/A counted wrong), on safe / unsafe items, N/A rate and answer length, read by
        the benchmark's rule reader. Sampled evaluation (``greedy=False``) draws from a forked RNG, so it does
        not change the training run."""
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.config.seed + 1)
            answers = self.answers(items, greedy)
        reader = VerdictReward("rule", scorer=self.eval_reader)
        scored = reader.score(answers, [it.target for it in items], [it.meta for it in items])
        words = [len(a.split()) for a in answers]
        return {f"{prefix}{k}": v for k, v in {**verdict_metrics(scored.samples),
                                               "answer_words": _mean([float(w) for w in words])}.items()}

    def save(self) -> Path | None:
        """A checkpoint (written by the main process, with every process's RNG state); None elsewhere."""
        rng = self.group.gather([checkpoint.rng_state()])
        saved = None
        if self.group.main:
            state = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}
            if self.group.parallel:
                state["rng_ranks"] = rng
            saved = checkpoint.save(self.output_dir, self.step, self.models, self.processor, self.config, state)
        self.group.barrier()
        return saved
