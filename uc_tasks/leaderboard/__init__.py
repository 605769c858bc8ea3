"""The leaderboard: submissions checked by recomputing them from their answers, and the pages that rank them.

    python -m uc_tasks.leaderboard validate SUBMISSION [--accept NAME]
    python -m uc_tasks.leaderboard build [--results-dir results]

A submission is an lmms-eval run of the ``unsafeconcepts`` group with ``--log_samples``: its
``*_results.json`` and the ``*_samples_unsafeconcepts_*.jsonl`` beside it (a folder, or the results
file). ``validate`` re-reads every answer with the scorer the run recorded (``uc_tasks.runs``,
``uc_tasks.scoring.samples.score_samples``), recomputes every summary (``uc_tasks.summary``) and
rejects, with one line and exit 1, a submission whose files are malformed, whose prompt version or
dataset source and revision differ from the current ones, whose samples are short of the recorded
data source (every image once for perception, five prompts per image and per concept), whose answers
include a failure marker counted as an answer, or whose numbers differ from the recomputed ones.
``--accept NAME`` then copies it to ``results/submissions/NAME/`` with the validation record.
``build`` renders ``results/leaderboard.md`` and ``results/leaderboard.html`` from the accepted
submissions (re-validated first) and the paper's published numbers, marked as reported, not re-run.
"""


from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from uc_tasks.config import help_field, parse_config
from uc_tasks.leaderboard.build import build
from uc_tasks.leaderboard.validate import REASONS, Rejected, accept, validate
from uc_tasks.report.page import with_ci
from uc_tasks.runs import RunError

__all__ = ["REASONS", "BuildConfig", "Rejected", "ValidateConfig", "accept", "build", "main", "validate"]


@dataclass
class ValidateConfig:
    """Settings of ``python -m uc_tasks.leaderboard validate``."""

    submission: list[str] = help_field([], "the submission: an lmms-eval --output_path folder of an unsafeconcepts "
                                       "run with --log_samples, or its *_results.json (samples beside it)")
    accept: str | None = help_field(None, "when valid, copy it to RESULTS_DIR/submissions/NAME/ under this name")
    model: str | None = help_field(None, "with --accept: the model's name on the leaderboard (default: the model "
                                   "and model_args the run recorded)")
    results_dir: str = help_field("results", "the leaderboard's folder (submissions/ and the rendered pages)")
    tolerance: float = help_field(1e-9, "largest difference allowed between a recorded and a recomputed number")


@dataclass
class BuildConfig:
    """Settings of ``python -m uc_tasks.leaderboard build``."""

    results_dir: str = help_field("results", "the leaderboard's folder: reads submissions/*/, writes "
                                  "leaderboard.md and leaderboard.html")
    verify: bool = help_field(True, "validate every accepted submission again before ranking it")
    dpi: int = help_field(100, "resolution of the modality-gap chart")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("validate", "build"):
        print("usage: python -m uc_tasks.leaderboard {validate SUBMISSION [--accept NAME] | build} [--help]",
              file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    try:
        if command == "build":
            bcfg = parse_config(BuildConfig, rest, "Render the leaderboard from the accepted submissions")
            md, page = build(Path(bcfg.results_dir), bcfg.verify, bcfg.dpi)
            print(f"wrote {md} and {page}")
            return 0
        cfg = parse_config(ValidateConfig, rest, "Validate a submission by recomputing it", positional="submission")
        if len(cfg.submission) != 1:
            raise ValueError(f"validate takes one submission, got {len(cfg.submission)}")
        entry = validate(cfg.submission[0], cfg.tolerance)
    except Rejected as e:
        print(f"unsafeconcepts leaderboard: rejected ({e.reason}: {REASONS[e.reason]}): {e}", file=sys.stderr)
        return 1
    except (RunError, RuntimeError, ValueError, OSError) as e:
        print(f"unsafeconcepts leaderboard: {e}", file=sys.stderr)
        return 2
    scores = entry["scores"]
    print(f"valid: image {with_ci(scores['image'])}, text {with_ci(scores['text'])}, gap "
          f"{with_ci(entry['modality_gap'], signed=True)}, perception {with_ci(scores['perception'])}")
    if cfg.accept:
        try:
            folder = accept(cfg.submission[0], entry, cfg.accept, cfg.model, Path(cfg.results_dir))
        except (ValueError, OSError) as e:
            print(f"unsafeconcepts leaderboard: {e}", file=sys.stderr)
            return 2
        print(f"accepted as {folder}; now run: python -m uc_tasks.leaderboard build")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
