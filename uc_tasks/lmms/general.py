"""``uc_general_yesno``: a small generated yes/no task of ours, the offline stand-in of the general-ability
benchmarks (MME, LLaVA-Bench) whose data cannot be downloaded here. It is NOT MME: Table 3 labels it a stand-in.

Each of ``N_IMAGES`` generated images shows one shape (triangle, circle or square) on a light background; it is
asked twice, MME-style, about the shape it shows (truth "Yes") and about another one (truth "No")
(``prompts/general/yesno.jinja``, versioned apart). Answers are read by ``uc_tasks.scoring.rules.yesno`` (whole
words: "Not sure" is not "No"); accuracy counts an unread answer wrong, as the paper's MME accuracy does.
"""

from __future__ import annotations

import random
from functools import lru_cache
from typing import Any

from PIL import Image, ImageDraw

from uc_tasks import metrics
from uc_tasks.prompts import render, template_version
from uc_tasks.scoring.rules.yesno import read_yes_no

TASK = "uc_general_yesno"
N_IMAGES = 16
SIZE = 56
SHAPES = ("triangle", "circle", "square")


@lru_cache(maxsize=N_IMAGES)
def draw(k: int) -> Image.Image:
    """Image ``k``: its shape ``SHAPES[k % 3]``, placed and coloured from a seed of its own."""
    rng = random.Random(1000 + k)
    img = Image.new("RGB", (SIZE, SIZE), tuple(rng.randrange(225, 256) for _ in range(3)))
    d = ImageDraw.Draw(img)
    r = rng.randrange(SIZE // 5, SIZE // 3)
    x, y = rng.randrange(r, SIZE - r), rng.randrange(r, SIZE - r)
    fill = tuple(rng.randrange(20, 160) for _ in range(3))
    shape = SHAPES[k % len(SHAPES)]
    if shape == "triangle":
        d.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=fill)
    elif shape == "circle":
        d.ellipse([x - r, y - r, x + r, y + r], fill=fill)
    else:
        d.rectangle([x - r, y - r, x + r, y + r], fill=fill)
    return img


def docs(_placeholder: Any = None) -> Any:
    """Two questions per image: the shape it shows (``Yes``), then another one (``No``)."""
    import datasets

    rows: dict[str, list[Any]] = {"question_id": [], "image_id": [], "shape": [], "answer": []}
    for k in range(N_IMAGES):
        shown, other = SHAPES[k % len(SHAPES)], SHAPES[(k + 1 + k // len(SHAPES)) % len(SHAPES)]
        if other == shown:
            other = SHAPES[(k + 1) % len(SHAPES)]
        for shape, truth in ((shown, "Yes"), (other, "No")):
            rows["question_id"].append(f"yesno/{k}.png")  # as MME: the image's name, shared by its two questions
            rows["image_id"].append(k)
            rows["shape"].append(shape)
            rows["answer"].append(truth)
    return datasets.Dataset.from_dict(rows)


def doc_to_visual(doc: dict[str, Any]) -> list[Image.Image]:
    return [draw(int(doc["image_id"])).copy()]


def doc_to_text(doc: dict[str, Any], lmms_eval_specific_kwargs: dict | None = None) -> str:
    return render("general/yesno", shape=doc["shape"])


def doc_to_target(doc: dict[str, Any]) -> str:
    return str(doc["answer"])


def process_results(doc: dict[str, Any], results: list[Any]) -> dict[str, Any]:
    """The outcome of the answer's yes/no reading for both metrics."""
    answer = results[0] if results and isinstance(results[0], str) else ""
    code = metrics.yes_no_outcome(read_yes_no(answer), str(doc["answer"]))
    return {"accuracy": code, "na_rate": code}


def agg_accuracy(outcomes: list[str]) -> float | None:
    """Right readings / all answers (unread counted wrong)."""
    return metrics.summarize(outcomes)["accuracy_strict"]


def agg_na_rate(outcomes: list[str]) -> float | None:
    return metrics.summarize(outcomes)["na_rate"]


def prompt_record() -> dict[str, str]:
    """The version of the stand-in's prompt (``prompts/general``)."""
    return template_version("general")
