"""Draw the labelled sample of real answers (issue: the reader on real answers).

All answers that do not open with yes/no, plus 400 that do, spread evenly over the 18 files of the
authors' `outputs/` folder (TrustAIRLab/SaferVLM, MIT), seeded. Writes one JSON line per answer:
{"id": "<file>:<idx>", "file", "idx", "prompt", "output"}.

    python scripts/sample_real_answers.py ../shared/reference/safervlm/answers OUT.jsonl
"""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

OPENS_YES_NO = re.compile(r"\s*(yes|no)\b", re.IGNORECASE)
N_OPENING_YES_NO = 400
SEED = 2026


def main(folder: str, out: str) -> None:
    files = sorted(Path(folder).glob("*.json"))
    rng = random.Random(SEED)
    hard, easy_by_file = [], []
    for path in files:
        rows = [
            {"id": f"{path.stem}:{r['idx']}", "file": path.stem, "idx": str(r["idx"]), "prompt": r["prompt"],
             "output": r["output"]}
            for r in json.loads(path.read_text())
        ]
        hard += [r for r in rows if not OPENS_YES_NO.match(r["output"])]
        easy_by_file.append([r for r in rows if OPENS_YES_NO.match(r["output"])])
    easy: list[dict] = []
    quota = [N_OPENING_YES_NO // len(files) + (i < N_OPENING_YES_NO % len(files)) for i in range(len(files))]
    for rows, k in zip(easy_by_file, quota, strict=True):
        easy += rng.sample(rows, k)
    sample = hard + easy
    rng.shuffle(sample)
    assert len({r["id"] for r in sample}) == len(sample), "ids must be unique"
    Path(out).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in sample))
    print(f"{len(sample)} answers ({len(hard)} not opening with yes/no, {len(easy)} opening with it) -> {out}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
