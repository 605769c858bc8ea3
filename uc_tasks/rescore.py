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
import os
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from uc_tasks import metrics
from uc_tasks.answers import failure_fields
from uc_tasks.config import help_field, parse_config
from uc_tasks.prompts import prompt_version, render
from uc_tasks.provenance import provenance
from uc_tasks.scoring import Scorer, get_scorer
from uc_tasks.scoring.base import ALIGNMENT_LABELS, PERCEPTION_LABELS
from uc_tasks.scoring.parse_perception import parse_options
from uc_tasks.summary import context_summary, group_summary, task_summary
from uc_tasks.taxonomy import load_taxonomy

PERCEPTION = "perception"
ALIGNMENT_KINDS = ("image", "text", "text_only", "context_safe", "context_unsafe", "context_safe_text",
                   "context_unsafe_text")


class RescoreError(RuntimeError):
    """An input that cannot be rescored; the message says what to pass instead."""


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
    seed: int = help_field(2024, "seed of the bootstrap CIs and of the diversity sample")


# --- reading inputs ----------------------------------------------------------------------------


def _first_response(value: Any) -> str:
    while isinstance(value, list) and value:
        value = value[0]
    return value if isinstance(value, str) else ""


def load_samples_file(path: Path) -> list[dict[str, Any]]:
    """Scored samples of one lmms-eval samples file: our per-sample record plus the answer scored."""
    items = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            sample = json.loads(line)
        except json.JSONDecodeError as e:
            raise RescoreError(
                f"{path}:{n}: not JSON ({e.msg}); pass the *_samples_<task>.jsonl files lmms-eval wrote"
            ) from None
        record = sample.get("breakdown")
        if not isinstance(record, dict) or "task" not in record:
            raise RescoreError(f"{path}:{n}: no UnsafeConcepts record under 'breakdown'; is this a samples file of "
                               "an unsafeconcepts_* task run with --log_samples?")
        item = {k: v for k, v in record.items() if k not in ("label", "reason", "hit", "failed")}
        item["answer"] = _first_response(sample.get("filtered_resps")) or record.get("answer") or ""
        if record["task"] == PERCEPTION and "option_str" not in item:
            item["option_str"] = _options_from_prompt(_first_response(sample.get("input")) or "", path, n)
        items.append(item)
    return items


def _options_from_prompt(prompt: str, path: Path | str, n: int) -> str:
    option_str = prompt.split("\n", 1)[1] if "\n" in prompt else ""
    try:
        parse_options(option_str)
    except ValueError:
        raise RescoreError(f"{path}:{n}: cannot find the options A-D in the prompt of a perception answer") from None
    return option_str


def _metadata_rows(spec: str | None) -> list[dict[str, Any]]:
    if spec is None:
        data = os.environ.get("UNSAFECONCEPTS_DATA")
        if not data or not (Path(data) / "metadata.jsonl").is_file():
            raise RescoreError("authors' answer files name images, not concepts: pass --metadata metadata.jsonl "
                               "(or set UNSAFECONCEPTS_DATA to the dataset folder)")
        spec = str(Path(data) / "metadata.jsonl")
    path = Path(spec)
    if not path.is_file():
        raise RescoreError(f"--metadata {spec}: no such file")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_authors_answers(path: Path, metadata: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Scored-sample records for an answer file in the authors' format, tasks told apart by the prompt."""
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise RescoreError(f"{path}: not JSON ({e.msg})") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and {"prompt", "output"} <= set(r) for r in rows):
        raise RescoreError(f"{path}: expected a JSON list of {{idx, prompt, image_fname, output}} records")
    tax = load_taxonomy()
    by_file = {Path(m["image_filename"]).name: (i, m) for i, m in enumerate(metadata)}
    image_prompts = {render(f"alignment/image_p{p}"): p for p in range(1, 6)}
    text_prompts = {render(f"alignment/text_p{p}", concept=c): (p, c) for p in range(1, 6) for c in tax.concepts}
    items = []
    for n, r in enumerate(rows, 1):
        prompt, answer = str(r["prompt"]).strip(), r["output"] if isinstance(r["output"], str) else ""
        if prompt in text_prompts:
            p, concept = text_prompts[prompt]
            items.append({"task": "text", "prompt_id": p, "concept": concept,
                          "category": tax.concept_category[concept], "answer": answer})
            continue
        name = Path(str(r.get("image_fname") or "")).name
        if name not in by_file:
            raise RescoreError(f"{path}: record {n} names image {name!r}, which is not in the metadata; pass the "
                               "metadata.jsonl of the dataset these answers came from")
        row_id, meta = by_file[name]
        base = {"row_id": row_id, "concept": meta["unsafe_concept"], "category": meta["category"], "answer": answer}
        if prompt in image_prompts:
            items.append({"task": "image", "prompt_id": image_prompts[prompt], **base})
        elif prompt.startswith(render("perception/multiple_choice", option_str="").strip()):
            option_str = _options_from_prompt(prompt, path, n)
            correct = [k for k, v in parse_options(option_str).items() if v == meta["unsafe_concept"]]
            if len(correct) != 1:
                raise RescoreError(f"{path}: record {n}: the options do not list {meta['unsafe_concept']!r} once")
            items.append({"task": PERCEPTION, "option_str": option_str, "target": correct[0], **base})
        else:
            raise RescoreError(f"{path}: record {n}: the prompt is none of the benchmark's prompts "
                               f"(prompt version {prompt_version()['version']}): {prompt[:80]!r}")
    return items


def newest_run(folder: Path) -> list[Path]:
    """The samples files of the newest run in an lmms-eval output folder (runs are told apart by the
    time stamp lmms-eval puts before ``_samples_``); says which run it reads when there are several."""
    files = sorted(folder.rglob("*_samples_unsafeconcepts*.jsonl"))
    if not files:
        raise RescoreError(f"{folder}: no *_samples_unsafeconcepts*.jsonl inside; run lmms-eval with --log_samples")
    runs: dict[tuple[str, str], list[Path]] = {}
    for f in files:
        runs.setdefault((str(f.parent), f.name.split("_samples_", 1)[0]), []).append(f)
    newest = max(runs, key=lambda r: r[1])
    if len(runs) > 1:
        print(f"unsafeconcepts rescore: {folder} holds {len(runs)} runs; reading the newest, {newest[1]} "
              "(pass its samples files to choose another)", file=sys.stderr)
    return runs[newest]


def load_inputs(inputs: Sequence[str], metadata: str | None) -> dict[str, list[dict[str, Any]]]:
    """Records by task kind, from every input."""
    if not inputs:
        raise RescoreError("nothing to rescore: pass a --log_samples output folder or samples / answer files")
    by_kind: dict[str, list[dict[str, Any]]] = {}
    meta: list[dict[str, Any]] | None = None
    for spec in inputs:
        path = Path(spec)
        if path.is_dir():
            items = [it for f in newest_run(path) for it in load_samples_file(f)]
        elif path.suffix == ".jsonl" and path.is_file():
            items = load_samples_file(path)
        elif path.suffix == ".json" and path.is_file():
            meta = meta if meta is not None else _metadata_rows(metadata)
            items = load_authors_answers(path, meta)
        else:
            raise RescoreError(f"{spec}: not a folder, a samples .jsonl or an answers .json file")
        for it in items:
            by_kind.setdefault(it["task"], []).append(it)
    return by_kind


# --- reading answers ---------------------------------------------------------------------------


def read_all(scorer: Scorer, by_kind: Mapping[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """New scored records: every answer read with ``scorer`` in one batch per kind; failures stay failures."""
    out: dict[str, list[dict[str, Any]]] = {}
    for kind, items in by_kind.items():
        fresh = [dict(it) for it in items]
        pending = []
        for it in fresh:
            failed = failure_fields(it["answer"])
            if failed:
                it.update(failed)
            else:
                pending.append(it)
        answers = [it["answer"] for it in pending]
        if kind == PERCEPTION:
            readings = scorer.read_perception(answers, [parse_options(it["option_str"]) for it in pending])
        elif kind in ALIGNMENT_KINDS:
            readings = scorer.read_alignment(answers)
        else:
            raise RescoreError(f"unknown task kind {kind!r} in the samples")
        for it, reading in zip(pending, readings, strict=True):
            target = it["target"] if kind == PERCEPTION else "unsafe"
            it.update(label=reading.label, reason=reading.reason, hit=reading.label == target)
        out[kind] = fresh
    return out


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
        tasks[kind] = {name: summary["overall"][name] for name in metrics.METRICS} | {"breakdown": summary}
    out: dict[str, Any] = {"results": tasks}
    by_kind = {k: v["breakdown"] for k, v in tasks.items()}
    if "image" in by_kind and ("text" in by_kind or "text_only" in by_kind):
        out["group"] = group_summary(by_kind, seed=seed)
    contexts = context_summary(by_kind)
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
            for row, cols in c["matrix"].items():
                print(f"  {row:>7s} " + " ".join(f"{v:6d}" for v in cols.values()))
    print(f"wrote {path}")


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    positional = []
    while argv and not argv[0].startswith("-"):
        positional.append(argv.pop(0))
    cfg = parse_config(RescoreConfig, argv, __doc__.split("\n\n")[0])
    if positional:
        cfg.inputs = positional + list(cfg.inputs)
    try:
        path = rescore(cfg)
    except (RescoreError, ValueError, RuntimeError) as e:
        print(f"unsafeconcepts rescore: {e}", file=sys.stderr)
        return 2
    _print_summary(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
