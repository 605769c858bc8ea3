"""The learning testbed of the alignment methods (SFT, DPO here; PPO uses it too): a tiny VLM that answers in
the paper's format but at chance, and synthetic fine-tuning data it can learn from.

- data: a synthetic replica (``per_concept`` images of each of the 75 concepts, 56x56) with as many safe
  stand-ins (near-white, triangles; the unsafe ones are saturated with rectangles and ellipses), written by
  ``python -m uc_align.data`` into ``train`` (2 x 225 rows) and ``test`` (75 + 75, the fine-tuning test);
- ``base``: a tiny random Qwen2-VL (``tiny_qwen2vl``, about 120k parameters);
- ``warm``: ``base`` taught the answer format only: the SFT target sentences of the training prompts with
  labels drawn at random, independent of the image (language model and lm_head trained in full, vision
  tower and projector untouched). It answers in the paper's sentences with one verdict whatever the image:
  about 50% on the balanced fine-tuning test, greedy or sampled.

The warm start leaves the Yes and No rows of lm_head nearly equal (the labels were coin flips), so a LoRA on
the language model's linear layers alone can flip greedy answers but hardly move P(correct) (ENVIRONMENT.md):
the learning tests train ``lm_head`` too (``modules_to_save``). Prompts differ in length (5 prompts), so
batches are padded (left for generation, right for training).

What learns here (``tests/test_align_learning.py``): SFT, and DPO with an NLL term on the chosen answer; pure DPO
on the paper's pairs does not (the chosen and rejected answers name the same concept, and DPO widens its margins
on verdict-concept text associations, which need no image, until the answer format erodes).

Session fixtures (registered for every test module by ``conftest.py``): ``testbed`` (all of the above, built
once per session, about half a minute) and ``testbed_baseline`` (the warm model measured on the fine-tuning
test through the real CLI, greedy and sampled). Run torch with one thread (``OMP_NUM_THREADS=1``): on two
cores, the default threads make tiny models many times slower.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import BIN, REPO, Run, clean_env, run_tasks
from tiny_qwen2vl import LMMS_MODEL, build_tiny_qwen2vl, model_args

from uc_tasks.serve import free_port

TASK = "unsafeconcepts_finetune_test"
PER_CONCEPT = 4
IMAGE_SIZE = 56
WARM_STEPS = 240
WARM_LR = 6e-3
BATCH = 16
EVAL_BATCH = 64  # generation: fewer, larger batches are faster for a tiny model
GREEDY: list[str] = []  # the task's own settings: greedy, 512 new tokens
SAMPLED = ["--gen_kwargs", "do_sample=true,temperature=1.0,top_p=1.0"]

LEARNING = ["--lora_r", "16", "--lora_alpha", "32", "--lora_dropout", "0.0", "--modules_to_save", "lm_head",
            "--batch_size", str(BATCH), "--warmup_steps", "0", "--save_steps", "1000", "--report_to", "none",
            "--seed", "0"]
"""Settings of the tiny learning runs that both methods share (the paper's LoRA is r 128 on a 7B model)."""
SFT_FLAGS = [*LEARNING, "--learning_rate", "5e-3", "--epochs", "4", "--save_steps", "26"]
"""SFT on the testbed: 104 steps, from chance to about 99% greedy / 95% sampled (``test_align_learning``)."""


@dataclass
class Testbed:
    root: Path
    replica: Path
    data: Path
    base: Path
    warm: Path
    warm_log: list[dict[str, float]]

    @property
    def safe(self) -> Path:
        return self.replica / "imagenet_1k"

    def env(self, **extra: str) -> dict[str, str]:
        return clean_env(UNSAFECONCEPTS_DATA=str(self.replica), UNSAFECONCEPTS_SAFE_DATA=str(self.safe),
                         OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", **extra)

    def evaluate(self, out: Path, adapter: Path | None = None, sampled: bool = False, model: Path | None = None) -> Run:
        """The fine-tuning test through the real lmms-eval CLI on ``model`` (default ``warm``), with ``adapter``."""
        extra = {"adapter": str(adapter)} if adapter else {}
        return run_tasks(TASK, LMMS_MODEL, model_args(model or self.warm, **extra), out, self.env(),
                         extra=["--batch_size", str(EVAL_BATCH), *(SAMPLED if sampled else GREEDY)])

    def train(self, command: str, out: Path, *flags: str, timeout: int = 900, model: Path | None = None,
              processes: int = 1) -> subprocess.CompletedProcess:
        """``python -m uc_align.<command>`` on ``model`` (default ``warm``) and the testbed data, as a user runs it;
        with ``processes`` > 1 under ``accelerate launch`` on CPU (``--multi_gpu`` + ``ACCELERATE_USE_CPU=1``)."""
        launcher = [str(BIN / "python")]
        env = self.env()
        if processes > 1:
            port = free_port()
            launcher += ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
                         "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                         "--main_process_port", str(port)]
            env["ACCELERATE_USE_CPU"] = "1"
        args = [*launcher, "-m", f"uc_align.{command}", "--model", str(model or self.warm), "--data", str(self.data),
                "--out", str(out), *flags]
        return subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def accuracy(run: Run) -> dict[str, float]:
    """The headline metrics of a fine-tuning-test run."""
    return {m: run.metric(TASK, m) for m in ("accuracy", "accuracy_safe", "accuracy_unsafe", "na_rate")}


def warm_start(base: Path, data: Path, out: Path, steps: int = WARM_STEPS, lr: float = WARM_LR,
               seed: int = 0) -> list[dict[str, float]]:
    """Teach ``base`` the answer format with image-independent labels; save the model folder to ``out``."""
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    from uc_align.data import load_split, target_sentence
    from uc_tasks.models.hf_load import load_processor

    torch.manual_seed(seed)
    rng = random.Random(seed)
    processor = load_processor(str(base), AutoConfig.from_pretrained(base), False)
    model = AutoModelForImageTextToText.from_pretrained(base, dtype=torch.float32)
    train = load_split(data, "train")
    train = train.select_columns(["images", "prompt", "concept", "prompt_id"])
    rows = [train[i] for i in range(len(train))]  # images decoded once
    for name, p in model.named_parameters():
        p.requires_grad = not name.startswith("model.visual")  # the vision tower and projector stay as drawn
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    model.train()
    log = []
    for step in range(steps):
        batch = rng.sample(rows, BATCH)
        prompts, fulls, images = [], [], []
        for r in batch:
            label = rng.choice(["safe", "unsafe"])  # a coin flip: the verdict says nothing about the image
            question = r["prompt"][0]["content"]
            turn = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
            sentence = target_sentence(label, r["prompt_id"], r["concept"])
            answer = [{"role": "assistant", "content": [{"type": "text", "text": sentence}]}]
            prompts.append(processor.apply_chat_template(turn, tokenize=False, add_generation_prompt=True))
            fulls.append(processor.apply_chat_template(turn + answer, tokenize=False))
            images.append(r["images"][0].convert("RGB"))
        inputs = processor(text=fulls, images=images, padding=True, padding_side="right", return_tensors="pt")
        labels = inputs["input_ids"].clone()
        labels[inputs["attention_mask"] == 0] = -100
        for i, p in enumerate(prompts):  # the loss on the answer only
            labels[i, : len(processor(text=[p], images=[images[i]])["input_ids"][0])] = -100
        loss = model(**inputs, labels=labels).loss
        loss.backward()
        optim.step()
        optim.zero_grad()
        log.append({"step": step + 1, "loss": float(loss)})
    model.eval()
    model.save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json", "processor_config.json", "chat_template.jinja",
                 "generation_config.json"):
        if (base / name).is_file():
            (out / name).write_bytes((base / name).read_bytes())
    return log


def build_testbed(root: Path) -> Testbed:
    """Write the replica, the training data, the base model and the warm-started model under ``root``."""
    from uc_align.config import DataConfig
    from uc_align.data import build
    from uc_tasks.data.synth import write_replica

    replica, data = root / "replica", root / "data"
    write_replica(replica, per_concept=PER_CONCEPT, size=IMAGE_SIZE, safe=True)
    build(DataConfig(out=str(data), data=str(replica), safe_data=str(replica / "imagenet_1k")))
    base = build_tiny_qwen2vl(root / "base")
    warm = root / "warm"
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); from testbed import warm_start; from pathlib import "
            "Path; print(json.dumps(warm_start(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))))")
    proc = subprocess.run([sys.executable, "-c", code, str(REPO / "tests"), str(base), str(data), str(warm)],
                          env=clean_env(OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = json.loads(proc.stdout.strip().splitlines()[-1])
    return Testbed(root, replica, data, base, warm, log)


@pytest.fixture(scope="session")
def testbed(tmp_path_factory: pytest.TempPathFactory) -> Testbed:
    return build_testbed(tmp_path_factory.mktemp("testbed"))


@pytest.fixture(scope="session")
def testbed_baseline(testbed: Testbed) -> dict[str, Any]:
    """The warm model on the fine-tuning test through the CLI: greedy and sampled runs."""
    runs = {"greedy": testbed.evaluate(testbed.root / "eval_warm_greedy"),
            "sampled": testbed.evaluate(testbed.root / "eval_warm_sampled", sampled=True)}
    return {"runs": runs, **{k: accuracy(v) for k, v in runs.items()}}


@pytest.fixture(scope="session")
def sft_checkpoint(testbed: Testbed) -> Path:
    """``python -m uc_align.sft`` on the testbed with ``SFT_FLAGS``: a tiny model that judges the images (the
    SFT learning test checks it; the attack and evaluation tests start from it)."""
    out = testbed.root / "sft"
    proc = testbed.train("sft", out, *SFT_FLAGS)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out
