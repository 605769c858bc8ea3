"""Example images for the report: images of the concepts judged unsafe as text but safe as an image
(largest gap first), each the image of that concept most often judged safe.

They come from the data source the run recorded (read by ``uc_tasks.data.sources``) and are blurred
by default: the page then holds only the blurred pixels. ``unblur`` keeps them sharp (the page puts
them behind a closed, labelled disclosure).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

THUMB = 220


def pick(summary: Mapping[str, Any], n: int) -> list[dict[str, Any]]:
    """Up to ``n`` images, one per concept: concepts unsafe as text / safe as image first, then by gap."""
    image = summary["tasks"].get("image") or {}
    per_image = image.get("per_image") or {}
    group = summary.get("group") or {}
    test = group.get("modality_gap_test") or {}
    ranking = test.get("ranking") or []
    flagged = list(test.get("unsafe_text_safe_image") or [])
    order = flagged + [r["concept"] for r in ranking if r["concept"] not in flagged]
    scores = {r["concept"]: r for r in ranking}
    out = []
    for concept in order:
        rows = [(codes.count("m"), -int(rid), rid, codes) for rid, (c, codes) in per_image.items() if c == concept]
        if not rows:
            continue
        _, _, rid, codes = max(rows)
        out.append({"row_id": int(rid), "concept": concept, "codes": codes, **{k: scores[concept].get(k)
                    for k in ("image", "text", "gap")}})
        if len(out) >= n:
            break
    return out


def load(source: Mapping[str, Any] | None, picks: Sequence[dict[str, Any]],
         unblur: bool) -> tuple[list[tuple[dict[str, Any], bytes]], str]:
    """(pick, JPEG thumbnail) of each of ``picks`` found in the recorded ``source``, and a note (why
    there are none, when none)."""
    if not picks:
        return [], "no image of this run has a paired text score to choose examples by"
    if not source:
        return [], "the run records no data source (a rescored file): build the report from the lmms-eval run"
    from PIL import Image, ImageFilter, ImageOps

    from uc_tasks.data.sources import DataError, DataSource, load_rows

    try:
        ds, _ = load_rows(DataSource(**source))
    except (DataError, OSError, TypeError, ValueError) as e:
        return [], f"example images not shown: the recorded data source cannot be read here ({str(e)[:200]})"
    position = {row_id: i for i, row_id in enumerate(ds["row_id"])}
    out = []
    for p in picks:
        if p["row_id"] not in position:
            continue
        im = ImageOps.contain(ds[position[p["row_id"]]]["image"].convert("RGB"), (THUMB, THUMB))
        if not unblur:  # pixelate to about 9 blocks across, then smooth the blocks away
            w, h = im.size
            im = im.resize((max(1, w // 24), max(1, h // 24)), Image.BILINEAR).resize((w, h), Image.BICUBIC)
            im = im.filter(ImageFilter.GaussianBlur(radius=THUMB / 24))
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=80)
        out.append((p, buf.getvalue()))
    return out, "" if out else "the recorded data source has none of the chosen images"
