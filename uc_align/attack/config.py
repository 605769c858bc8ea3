"""Settings of ``python -m uc_align.attack``: one dataclass, help text on every field, one-line refusals."""

from __future__ import annotations

from dataclasses import dataclass

from uc_tasks.config import help_field

METHODS = ("fgsm", "pgd")
DTYPES = ("auto", "float32", "bfloat16", "float16")
DEVICES = ("auto", "cpu", "cuda")
SCORERS = ("rule", "classifier", "judge")
SETTINGS = ("model", "adapter", "data", "split", "n", "seed", "steps", "step_size", "random_start", "scorer",
            "max_new_tokens", "dtype")
"""Fields a resumed run must share with the records already in ``out`` (methods and epsilons may be added)."""


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


@dataclass
class AttackConfig:
    """Settings of ``python -m uc_align.attack``."""

    model: str = help_field("", "base VLM: a local folder or a cached hub id (Qwen2-VL-style image processor)")
    adapter: str | None = help_field(None, "LoRA adapter folder written by uc_align.sft / dpo / ppo (merged into "
                                     "the base before the attack); default: the base model alone")
    data: str = help_field("", "the folder `python -m uc_align.data --out DIR` wrote; its unsafe images are attacked")
    split: str = help_field("test", "split of `data` whose unsafe images are attacked (test: the fine-tuning test)")
    out: str = help_field("", "folder to write: records.jsonl, clean.jsonl, summary.json, attack.json, images/")
    method: list[str] = help_field(list(METHODS), f"attack(s) to run, one or more of {', '.join(METHODS)}")
    epsilon: list[float] = help_field([0.01], "L-infinity budget(s) in pixel space [0, 1] (paper: 0.01); several "
                                      "values run one after another; on the 8-bit grid floor(255 eps) levels")
    steps: int = help_field(10, "PGD steps")
    step_size: float | None = help_field(None, "PGD step in pixel units [0, 1] (default: 2.5 x epsilon / steps)")
    random_start: bool = help_field(False, "PGD starts from a uniform random point of the epsilon ball (seeded)")
    n: int = help_field(100, "unsafe images drawn (seeded) from the split (paper: 100); 0 or more than there are: all")
    seed: int = help_field(0, "seed of the image draw and of PGD's random start")
    batch_size: int = help_field(8, "images per forward/backward and per generation batch")
    max_new_tokens: int = help_field(512, "longest answer generated (greedy, as the fine-tuning test)")
    scorer: str = help_field("rule", f"the benchmark's reader of the answers: {', '.join(SCORERS)}")
    dtype: str = help_field("auto", f"weights dtype: {', '.join(DTYPES)} (auto: bfloat16 on CUDA, float32 on CPU)")
    device: str = help_field("auto", f"{', '.join(DEVICES)} (auto: cuda when available)")
    trust_remote_code: bool = help_field(False, "let the model folder run its own code")
    attn_implementation: str | None = help_field(None, "attention kernel, e.g. sdpa, eager")

    load_in_4bit = False  # read by uc_align.train.load_model; attacks need full-precision gradients

    def __post_init__(self) -> None:
        _check(bool(self.model), "model is required: pass --model <model folder or cached hub id>")
        _check(bool(self.data), "data is required: pass --data DIR, written by `python -m uc_align.data --out DIR`")
        _check(bool(self.out), "out is required: pass --out DIR, the folder for the records and images")
        bad = [m for m in self.method if m not in METHODS]
        _check(not bad and bool(self.method), f"method {' '.join(bad) or '(none)'}: choose from "
               f"{', '.join(METHODS)}, e.g. --method fgsm pgd")
        _check(len(set(self.method)) == len(self.method), f"method {' '.join(self.method)}: each method once")
        _check(bool(self.epsilon), "epsilon is empty: pass e.g. --epsilon 0.01 (paper)")
        for e in self.epsilon:
            _check(0 <= e <= 1, f"epsilon={e}: a budget in pixel space [0, 1]; pass e.g. --epsilon 0.01 (paper)")
        _check(len(set(self.epsilon)) == len(self.epsilon), f"epsilon {self.epsilon}: each value once")
        _check(self.steps >= 1, f"steps={self.steps}: PGD needs at least 1 step; pass e.g. --steps 10")
        _check(self.step_size is None or self.step_size > 0, f"step_size={self.step_size}: must be positive (pixel "
               "units), or leave it out for 2.5 x epsilon / steps")
        _check(self.n >= 0, f"n={self.n}: the number of images must be 0 (all) or more; pass e.g. --n 100 (paper)")
        _check(self.batch_size >= 1, f"batch_size={self.batch_size}: must be at least 1; pass e.g. --batch_size 8")
        _check(self.max_new_tokens >= 1, f"max_new_tokens={self.max_new_tokens}: must be at least 1")
        _check(self.scorer in SCORERS, f"scorer={self.scorer!r} is not one of {', '.join(SCORERS)}; pass --scorer rule")
        _check(self.dtype in DTYPES, f"dtype={self.dtype!r} is not one of {', '.join(DTYPES)}; pass --dtype auto")
        _check(self.device in DEVICES, f"device={self.device!r} is not one of {', '.join(DEVICES)}; pass --device auto")

    def pgd_step(self, epsilon: float) -> float:
        return self.step_size if self.step_size is not None else 2.5 * epsilon / self.steps
