"""PPO's learning testbed: a tiny VLM that answers yes/no at chance, and images where safe vs unsafe shows.

- ``draw``: 56 x 56 images, safe = a green field, unsafe = a red one, each with a random shape of a random
  colour and pixel noise on top (the label is in the colour of the field, nowhere else).
- ``make_items``: balanced safe / unsafe items, each asked one of the paper's 5 image prompts at random,
  so that prompt lengths vary and left padding is exercised.
- ``warm_start``: the tiny Qwen2-VL of ``tiny_qwen2vl``, its language model and lm_head fine-tuned (the vision
  tower stays as drawn) on the answer format with image-independent random targets (``YES`` / ``NO``): it
  then answers in the format, with a verdict at chance (about 50% right, greedy and sampled).

The PPO learning test (``test_ppo_learning``) runs on the shared testbed's data (``tests/testbed.py``) and uses
only ``warm_start`` from here, with ``pool=`` the testbed's training images; the drawn items serve the PPO unit
and command tests (small, fast, no data folder).
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # uc_align is not yet in pyproject's package list (an editable install misses it)
    sys.path.insert(0, str(REPO))

from PIL import Image, ImageDraw  # noqa: E402

YES = "Yes, it is safe."
NO = "No, it is not safe."
SIZE = 56


def draw(target: str, rng: random.Random, size: int = SIZE) -> Image.Image:
    """A green (safe) or red (unsafe) field with a random shape and noise."""
    g = rng.randint(140, 230)
    field = (rng.randint(0, 60), g, rng.randint(0, 60)) if target == "safe" else (g, rng.randint(0, 60),
                                                                                 rng.randint(0, 60))
    image = Image.new("RGB", (size, size), field)
    pen = ImageDraw.Draw(image)
    x0, y0 = rng.randint(0, size // 2), rng.randint(0, size // 2)
    box = (x0, y0, x0 + rng.randint(8, size // 2), y0 + rng.randint(8, size // 2))
    colour = (rng.randint(0, 255), rng.randint(0, 255), rng.randint(200, 255))
    (pen.ellipse if rng.random() < 0.5 else pen.rectangle)(box, fill=colour)
    pixels = image.load()
    for _ in range(size * size // 8):
        x, y = rng.randrange(size), rng.randrange(size)
        r, gg, b = pixels[x, y]
        d = rng.randint(-40, 40)
        pixels[x, y] = (max(0, min(255, r + d)), max(0, min(255, gg + d)), max(0, min(255, b + d)))
    return image


def make_items(n: int, seed: int) -> list[Any]:
    """``n`` items, half safe and half unsafe (alternating), each with a random prompt 1-5."""
    from uc_align.ppo.rollout import Item

    rng = random.Random(seed)
    items = []
    for i in range(n):
        target = "safe" if i % 2 == 0 else "unsafe"
        items.append(Item(draw(target, rng), target, rng.randint(1, 5), concept="green field" if target == "safe"
                          else "red field", category="testbed"))
    return items


def warm_start(model_dir: Path, out_dir: Path, steps: int = 300, batch: int = 16, lr: float = 3e-3,
               seed: int = 0, pool: list[Any] | None = None) -> Path:
    """Fine-tune the language model of the model at ``model_dir`` on ``YES``/``NO`` drawn at random (image-independent),
    and save it with its processor to ``out_dir``. The answer format is learnt; the verdict is at chance. The
    questions are asked of ``make_items`` images, or of items drawn from ``pool``."""
    import torch
    from transformers import AutoModelForImageTextToText

    from uc_align.demo import answer_step
    from uc_align.ppo.rollout import image_token_ids
    from uc_align.ppo.trainer import load_processor

    torch.manual_seed(seed)
    rng = random.Random(seed)
    processor = load_processor(str(model_dir))
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32)
    tok = processor.tokenizer
    eos = tok.eos_token_id
    answers = {a: tok(a, add_special_tokens=False)["input_ids"] + [eos] for a in (YES, NO)}
    width = max(len(v) for v in answers.values())
    language = [p for n, p in model.named_parameters() if "visual" not in n and "vision" not in n]
    optimizer = torch.optim.AdamW(language, lr=lr, weight_decay=0.0)  # the vision tower stays as drawn
    image_ids = image_token_ids(model, processor)
    model.train()
    for _ in range(steps):
        items = rng.sample(pool, batch) if pool else make_items(batch, rng.randrange(1 << 30))
        chosen = [answers[YES if rng.random() < 0.5 else NO] for _ in items]
        answer_step(model, processor, optimizer, items, chosen, image_ids, width)
    model.eval()
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return Path(out_dir)


def warm_start_in_process(model_dir: Path, out_dir: Path, train_file: Path, threads: int = 1,
                          build_llava: bool = False) -> Path:
    """``warm_start`` on the items of ``train_file``, run in a fresh Python with ``threads`` torch threads: the
    warm model then does not depend on the caller's thread count (float sums differ with it, and a warm model
    that differs by rounding starts another RL trajectory; measured: GRPO at seed 0 reached 96% greedy on a warm
    model built with two threads, 84.7% on one built with one). With ``build_llava`` the tiny LLaVA of
    ``tiny_vlm`` is first built into ``model_dir`` in the same process."""
    import subprocess

    from conftest import clean_env

    code = ("import sys; sys.path[:0] = sys.argv[1:3]; from pathlib import Path; import ppo_testbed; "
            "from uc_align.ppo.items import load_items; model = Path(sys.argv[3]); "
            + ("from tiny_vlm import build_tiny_vlm; model = build_tiny_vlm(model, text_hidden=64, suppress=False); "
               if build_llava else "")
            + "ppo_testbed.warm_start(model, Path(sys.argv[4]), pool=load_items(Path(sys.argv[5]), seed=0))")
    proc = subprocess.run([sys.executable, "-c", code, str(REPO / "tests"), str(REPO), str(model_dir), str(out_dir),
                           str(train_file)], env=clean_env(OMP_NUM_THREADS=str(threads)), capture_output=True,
                          text=True, timeout=900)
    if proc.returncode:
        raise RuntimeError(f"warm start failed: {proc.stderr[-3000:]}")
    return Path(out_dir)
