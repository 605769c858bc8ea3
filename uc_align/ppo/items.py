"""Training and held-out items from a JSON-lines file: ``{image, target, concept, category, prompt_id}``.

``image`` is a path relative to the file; ``target`` is ``safe`` or ``unsafe``; ``prompt_id`` (1-5) says
which of the paper's image prompts asks it. Items without a ``prompt_id`` get the authors' draw
(``uc_tasks.data.splits.training_prompt_ids``: one ``random.sample`` per item from one seeded stream).
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from uc_align.ppo.rollout import Item
from uc_tasks.data.splits import training_prompt_ids
from uc_tasks.jsonl import json_lines
from uc_tasks.scoring import SAFE, UNSAFE


def load_items(path: str | Path, seed: int) -> list[Item]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"items file {path}: no such file")
    rows = [json.loads(line) for line in json_lines(path.read_text(encoding="utf-8")) if line.strip()]
    if not rows:
        raise ValueError(f"items file {path} holds no items")
    drawn = training_prompt_ids(len(rows), seed)
    items = []
    for i, row in enumerate(rows, 1):
        missing = {"image", "target"} - set(row)
        if missing:
            raise ValueError(f"{path} line {i}: no {', '.join(sorted(missing))} field")
        if row["target"] not in (SAFE, UNSAFE):
            raise ValueError(f"{path} line {i}: target {row['target']!r} is not {SAFE!r} or {UNSAFE!r}")
        prompt_id = int(row.get("prompt_id") or drawn[i - 1])
        if not 1 <= prompt_id <= 5:
            raise ValueError(f"{path} line {i}: prompt_id {prompt_id} is not 1-5")
        with Image.open(path.parent / row["image"]) as image:
            items.append(Item(image.convert("RGB"), row["target"], prompt_id, row.get("concept", ""),
                              row.get("category", "")))
    return items


def write_items(path: str | Path, items: list[Item], image_dir: str = "images") -> Path:
    """Write ``items`` (images as PNG under ``image_dir`` beside the file) in the format ``load_items`` reads."""
    path = Path(path)
    (path.parent / image_dir).mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for i, it in enumerate(items):
            name = f"{image_dir}/{path.stem}_{i:05d}.png"
            it.image.save(path.parent / name)
            f.write(json.dumps({"image": name, "target": it.target, "prompt_id": it.prompt_id,
                                "concept": it.concept, "category": it.category}) + "\n")
    return path
