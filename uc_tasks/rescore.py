"""Re-read a finished run's answers with any scorer and recompute every metric, without the model.

    python -m uc_tasks.rescore RUN_DIR --scorer judge [--compare rule] [--out FILE]

Inputs: lmms-eval ``--log_samples`` output (a folder, or ``*_samples_<task>.jsonl`` files) or answer
files in the authors' format (a JSON list of ``{idx, prompt, image_fname, output}``; ``--metadata``
maps image files to concepts). The new results file (default: ``rescored_<scorer>.json`` beside the
first input) holds, per task, the same summary the tasks write (``uc_tasks.summary``), the group
statistics when image and text answers are both present, every new reading, and the scorer's
settings. ``--compare`` also reads every answer with a second scorer and reports the confusion
matrix between the two. Requests that got no answer stay failures; they are never read.
"""

from __future__ import annotations

import datetime
import json
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from uc_tasks.config import help_field, parse_config
from uc_tasks.data.options import DEFAULT_SEED
from uc_tasks.data.tasks import kind as kind_named
from uc_tasks.provenance import provenance
from uc_tasks.runs import PERCEPTION, RunError, load_inputs
from uc_tasks.scoring import Scorer, get_scorer
from uc_tasks.scoring.base import ALIGNMENT_LABELS, PERCEPTION_LABELS
from uc_tasks.scoring.samples import score_samples
from uc_tasks.summary import context_summary, group_summary, headline, task_summary


@dataclass
class RescoreConfig:
    """Settings of ``python -m uc_tasks.rescore``."""

    inputs: list[str] = help_field(
        [], "lmms-eval --log_samples output folders or *_samples_<task>.jsonl files, or authors' answer files "
        "(JSON list of {idx, prompt, image_fname, output})")
    scorer: str = help_field("rule", "scorer that reads the answers: rule, classifier or judge")
    compare: str | None = help_field(
        None, "a second scorer: also read every answer with it and report the confusion matrix between the two")
    metadata: str | None = help_field(
        None, "authors' answer files only: the metadata.jsonl (or perception_metadata.jsonl) that maps "
        "image_filename to its concept; default: metadata.jsonl in the folder UNSAFECONCEPTS_DATA names")
    out: str | None = help_field(None, "results file to write; default: rescored_<scorer>.json beside the first input")
    audit: int = help_field(0, "list the N least certain readings (certainty from the scorer) with their answers, "
                            "for a person to check; also written to the results file under 'audit'")
    seed: int = help_field(DEFAULT_SEED, "seed of the bootstrap CIs and of the diversity sample")


# --- reading answers ---------------------------------------------------------------------------


def read_all(scorer: Scorer, by_kind: Mapping[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """New scored records: every answer read with ``scorer`` in one batch per kind; failures stay failures."""
    out = {}
    for name, items in by_kind.items():
        try:
            kind_named(name)
        except ValueError as e:
            raise RunError(f"{e} in the samples") from None
        out[name] = score_samples(scorer, items)
    return out


def least_certain(scored: Mapping[str, list[dict[str, Any]]], n: int) -> dict[str, Any]:
    """The ``n`` readings the scorer was least sure of (lowest ``certainty``), ties by task and position."""
    rated = [(it["certainty"], kind, i, it) for kind, items in scored.items() for i, it in enumerate(items)
             if it.get("certainty") is not None]
    rated.sort(key=lambda r: (r[0], r[1], r[2]))
    n_unrated = sum(1 for items in scored.values() for it in items if not it.get("failed")) - len(rated)
    keep = ("task", "concept", "row_id", "prompt_id", "label", "certainty", "reason", "answer")
    return {"n": min(n, len(rated)), "n_without_certainty": n_unrated,
            "readings": [{k: it[k] for k in keep if k in it} for *_, it in rated[:n]]}


def confusion(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> dict[str, Any]:
    """Confusion matrix between two scorers' readings of the same answers, with agreement and Cohen's kappa."""
    pairs = [(x["label"], y["label"]) for x, y in zip(a, b, strict=True) if not x.get("failed")]
    counts = Counter(pairs)
    n = len(pairs)
    agree = sum(counts[(label, label)] for label in labels)
    pa = Counter(x for x, _ in pairs)
    pb = Counter(y for _, y in pairs)
    expected = sum(pa[label] * pb[label] for label in labels) / n**2 if n else None
    observed = agree / n if n else None
    kappa = None
    if observed is not None and expected is not None and expected < 1:
        kappa = (observed - expected) / (1 - expected)
    return {"labels": list(labels), "matrix": {x: {y: counts[(x, y)] for y in labels} for x in labels},
            "n": n, "agreement": observed, "cohen_kappa": kappa}


# --- the results file --------------------------------------------------------------------------


def summarize_run(scored: Mapping[str, list[dict[str, Any]]], seed: int) -> dict[str, Any]:
    """Per task the summary the tasks write; the group statistics when image and text are both present."""
    tasks = {}
    for kind, items in scored.items():
        summary = task_summary(items, seed=seed)
        tasks[kind] = headline(kind, summary) | {"breakdown": summary}
    out: dict[str, Any] = {"results": tasks}
    by_kind = {k: v["breakdown"] for k, v in tasks.items()}
    if "image" in by_kind and ("text" in by_kind or "text_only" in by_kind):
        out["group"] = group_summary(by_kind, seed=seed)
    contexts = context_summary(by_kind, seed=seed)
    if contexts:
        out["context_sensitivity"] = contexts
    return out


def rescore(cfg: RescoreConfig) -> Path:
    """Run the rescoring described by ``cfg``; returns the results file written."""
    scorer = get_scorer(cfg.scorer)  # a scorer that cannot run stops before any input is read
    other = get_scorer(cfg.compare) if cfg.compare else None
    by_kind = load_inputs(cfg.inputs, cfg.metadata)
    scored = read_all(scorer, by_kind)
    result: dict[str, Any] = {
        "rescored_from": [str(Path(p).resolve()) for p in cfg.inputs],
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "config": asdict(cfg),
        "scorer": scorer.settings(),
        **summarize_run(scored, cfg.seed),
    }
    if other is not None:
        again = read_all(other, by_kind)
        result["comparison"] = {
            "scorers": [scorer.settings(), other.settings()],
            "alignment": confusion(
                [it for k in scored if k != PERCEPTION for it in scored[k]],
                [it for k in again if k != PERCEPTION for it in again[k]], ALIGNMENT_LABELS),
        }
        if PERCEPTION in scored:
            result["comparison"][PERCEPTION] = confusion(scored[PERCEPTION], again[PERCEPTION], PERCEPTION_LABELS)
    if cfg.audit:
        result["audit"] = least_certain(scored, cfg.audit)
    result["samples"] = scored
    result["provenance"] = provenance()
    first = Path(cfg.inputs[0])
    out = Path(cfg.out) if cfg.out else (first if first.is_dir() else first.parent) / f"rescored_{cfg.scorer}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str))
    return out


def _print_summary(path: Path) -> None:
    result = json.loads(path.read_text())
    for kind, r in result["results"].items():
        o = r["breakdown"]["overall"]
        print(f"{kind:22s} n={o['n']:5d} accuracy={_fmt(r['accuracy'])} na_rate={_fmt(r['na_rate'])} "
              f"failed={o['n_failed']}")
    if "group" in result:
        print(f"{'modality_gap':22s} {_fmt(result['group']['modality_gap']['overall'])}")
    for kind, c in result.get("comparison", {}).items():
        if isinstance(c, dict) and "matrix" in c:
            first, second = (s["name"] for s in result["comparison"]["scorers"])
            print(f"{kind} agreement {_fmt(c['agreement'])} kappa {_fmt(c['cohen_kappa'])} "
                  f"(rows: {first}, columns: {second})")
            corner = f"{first} \\ {second}"
            print(f"  {corner:>14s} " + " ".join(f"{label:>7s}" for label in c["labels"]))
            for row, cols in c["matrix"].items():
                print(f"  {row:>14s} " + " ".join(f"{v:7d}" for v in cols.values()))
    audit = result.get("audit")
    if audit:
        print(f"least certain {audit['n']} readings (certainty, label, task, concept: answer):")
        for r in audit["readings"]:
            answer = " ".join(str(r.get("answer", "")).split())
            print(f"  {r['certainty']:.3f} {r['label']:>7s} {r['task']:>12s} {r.get('concept', '')}: "
                  f"{answer[:160]}{'...' if len(answer) > 160 else ''}")
        if audit["n_without_certainty"]:
            print(f"  ({audit['n_without_certainty']} readings carry no certainty: this scorer cannot rate itself)")
    print(f"wrote {path}")


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = parse_config(RescoreConfig, argv, __doc__.split("\n\n")[0], positional="inputs")
    try:
        path = rescore(cfg)
    except (RunError, ValueError, RuntimeError) as e:
        print(f"unsafeconcepts rescore: {e}", file=sys.stderr)
        return 2
    _print_summary(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
