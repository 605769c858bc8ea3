"""``validate``: a submission's every number recomputed from its answers, and the checks that reject it.

Expected samples come from the data source the run recorded, which must be the current one (the
validator's ``UNSAFECONCEPTS_DATA`` / ``UNSAFECONCEPTS_REVISION``; by default the hub dataset, whose
1,567 rows the taxonomy records): perception one question per row, image alignment five per row,
text alignment five per concept (75), every one exactly once, on split ``all`` with no skipped row.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import shutil
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from uc_tasks.data.sources import HF_DATASET, DataError, resolve_source
from uc_tasks.data.tasks import KINDS
from uc_tasks.data.taxonomy import load_taxonomy
from uc_tasks.failures import parse_failure
from uc_tasks.lmms.docs import doc_to_text
from uc_tasks.prompts import prompt_version
from uc_tasks.report import numbers
from uc_tasks.runs import RunError, load_recorded_samples, load_samples_file, load_summaries, results_file, samples_of
from uc_tasks.scoring import get_scorer
from uc_tasks.scoring.rules.perception import parse_options
from uc_tasks.scoring.samples import score_samples
from uc_tasks.summary import group_summary, task_summary

REQUIRED = ("perception", "image", "text")
REASONS = {
    "malformed": "the files cannot be read as a submission",
    "prompt_version": "asked with other prompts than the current templates",
    "dataset": "run on another data source or revision than the current one, or not on all of it",
    "scorer": "read by another scorer version than the current one",
    "short": "fewer samples than the recorded data source holds",
    "failure_marker": "a request without an answer counted as an answer",
    "numbers": "a number differs from the one recomputed from the answers",
}
class Rejected(Exception):
    """A submission that fails a check; ``reason`` is a key of REASONS."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _difference(recorded: Any, recomputed: Any, path: str, tol: float) -> str | None:
    """Where ``recorded`` departs from ``recomputed`` (every key of ``recomputed``), or None."""
    if isinstance(recomputed, Mapping):
        if not isinstance(recorded, Mapping):
            return f"{path} is {recorded!r}, not a record"
        for k, v in recomputed.items():
            if k not in recorded:
                return f"{path}.{k} is missing"
            found = _difference(recorded[k], v, f"{path}.{k}", tol)
            if found:
                return found
        return None
    if isinstance(recomputed, list | tuple):
        if not isinstance(recorded, list | tuple) or len(recorded) != len(recomputed):
            return f"{path} has {len(recorded) if isinstance(recorded, list) else recorded!r} items, recomputed " \
                   f"{len(recomputed)}"
        return next((d for i, (a, b) in enumerate(zip(recorded, recomputed, strict=True))
                     if (d := _difference(a, b, f"{path}[{i}]", tol))), None)
    number = (int, float)
    if isinstance(recomputed, number) and isinstance(recorded, number) and not isinstance(recorded, bool):
        if abs(float(recorded) - float(recomputed)) <= tol:
            return None
    elif recorded == recomputed:
        return None
    return f"{path} is {recorded!r} in the submission but {recomputed!r} recomputed from the answers"


def _samples(results: Path) -> dict[str, list[tuple[dict[str, Any], dict[str, Any]]]]:
    """Per task kind, (record to score, sample as recorded) for every sample line of the run."""
    files = samples_of(results)
    out: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for f in files:
        for record, recorded in zip(load_samples_file(f), load_recorded_samples(f), strict=True):
            out.setdefault(record["task"], []).append((record, recorded))
    missing = [k for k in REQUIRED if k not in out]
    if missing:
        raise Rejected("malformed", f"{results}: no samples of {', '.join('unsafeconcepts_' + k for k in missing)} "
                                    "beside it; submit the *_samples_*.jsonl lmms-eval wrote with --log_samples")
    return out


def source_text(src: Mapping[str, Any]) -> str:
    return f"{src.get('kind')}:{src.get('location')}@{src.get('revision') or 'default revision'}"


def _check_provenance(summary: Mapping[str, Any]) -> int:
    """Prompts, data source and split of every required task; returns the data's row count."""
    current_prompts = prompt_version()
    try:
        current = dataclasses.asdict(resolve_source())
    except DataError as e:
        raise RuntimeError(f"the current data source cannot be resolved: {e}") from None
    rows = set()
    for kind in REQUIRED:
        b = summary["tasks"][kind]
        recorded = (b.get("provenance") or {}).get("prompts")
        if recorded != current_prompts:
            raise Rejected("prompt_version", f"unsafeconcepts_{kind} was asked with prompt version {recorded}; the "
                           f"current templates are {current_prompts}: run the benchmark again with this version")
        data, split = b.get("data") or {}, b.get("split") or {}
        src = data.get("source") or {}
        if src != current:
            raise Rejected("dataset", f"unsafeconcepts_{kind} ran on {source_text(src)}; the current data source is "
                           f"{source_text(current)} (UNSAFECONCEPTS_DATA / UNSAFECONCEPTS_REVISION)")
        if split.get("name") != "all" or data.get("n_skipped"):
            raise Rejected("dataset", f"unsafeconcepts_{kind} ran on split {split.get('name')!r} with "
                           f"{data.get('n_skipped')} skipped rows; the leaderboard needs every row (split 'all')")
        rows.add(data.get("n_rows"))
    if len(rows) != 1 or not isinstance(next(iter(rows)), int):
        raise Rejected("malformed", f"the tasks record different data row counts: {sorted(map(str, rows))}")
    n_rows = next(iter(rows))
    if current["location"] == HF_DATASET and n_rows != load_taxonomy().n_images:
        raise Rejected("short", f"the run read {n_rows} rows of {HF_DATASET}, which has {load_taxonomy().n_images}")
    return n_rows


def _key(kind: str, record: Mapping[str, Any]) -> tuple[Any, ...]:
    unit = record.get("concept") if KINDS[kind].unit == "concept" else record.get("row_id")
    return (unit, record.get("prompt_id")) if len(KINDS[kind].prompts) > 1 else (unit,)


def _check_samples(kind: str, pairs: Sequence[tuple[dict[str, Any], dict[str, Any]]], n_rows: int) -> None:
    """Every expected question once (from the data source), asked with the current prompt."""
    k = KINDS[kind]
    units: list[Any] = list(load_taxonomy().concepts) if k.unit == "concept" else list(range(n_rows))
    expected = {(u, p) for u in units for p in range(1, len(k.prompts) + 1)} if len(k.prompts) > 1 else \
        {(u,) for u in units}
    keys = Counter(_key(kind, r) for r, _ in pairs)
    twice = [key for key, n in keys.items() if n > 1]
    if twice:
        raise Rejected("malformed", f"unsafeconcepts_{kind}: {len(twice)} question(s) answered more than once, "
                                    f"e.g. {twice[0]}")
    missing = sorted(expected - set(keys), key=str)
    if missing:
        raise Rejected("short", f"unsafeconcepts_{kind}: {len(set(keys) & expected)} of {len(expected)} samples "
                       f"(the recorded data source has {n_rows} rows); missing e.g. {missing[0]}")
    unknown = sorted(set(keys) - expected, key=str)
    if unknown:
        raise Rejected("malformed", f"unsafeconcepts_{kind}: samples for questions the data has not, e.g. {unknown[0]}")
    for record, recorded in pairs:
        doc = {"task": kind, "unsafe_concept": record.get("concept"), **record}
        try:
            asked = doc_to_text(doc)
            if kind == "perception" and parse_options(record["option_str"]).get(record["target"]) != record["concept"]:
                raise ValueError("its target is not the option of its concept")
        except (KeyError, ValueError, TypeError) as e:
            raise Rejected("malformed", f"unsafeconcepts_{kind} sample {_key(kind, record)}: {e}") from None
        if recorded["prompt"] != asked:
            raise Rejected("prompt_version", f"unsafeconcepts_{kind} sample {_key(kind, record)} was asked "
                           f"{recorded['prompt'][:80]!r}, the current prompt is {asked[:80]!r}")


def _check_readings(kind: str, pairs: Sequence[tuple[dict[str, Any], dict[str, Any]]],
                    scored: Sequence[dict[str, Any]]) -> None:
    for (record, recorded), now in zip(pairs, scored, strict=True):
        where = f"unsafeconcepts_{kind} sample {_key(kind, record)}"
        if now.get("failed") and not recorded.get("failed"):
            kind_of = getattr(parse_failure(now["answer"]), "kind", "?")
            raise Rejected("failure_marker", f"{where}: the answer is a failure marker ({kind_of}: no answer) but "
                           f"the submission reads it as {recorded.get('label')!r}")
        if recorded.get("failed") != now.get("failed") or recorded.get("label") != now.get("label"):
            raise Rejected("numbers", f"{where}: recorded reading {recorded.get('label') or recorded.get('failed')!r}, "
                           f"the recorded scorer reads {now.get('label') or now.get('failed')!r}")


def validate(spec: str, tol: float = 1e-9) -> dict[str, Any]:
    """Check a submission; returns its leaderboard entry, or raises Rejected (or RuntimeError when this
    environment cannot check it: the recorded scorer or the current data source is unavailable)."""
    try:
        results = results_file(spec)
        summary = load_summaries(results)
    except RunError as e:
        raise Rejected("malformed", str(e)) from None
    if summary["format"] != "lmms-eval":
        raise Rejected("malformed", f"{results}: a submission is an lmms-eval results file with its samples, not a "
                                    "rescored file")
    missing = [k for k in REQUIRED if k not in summary["tasks"]] + ([] if summary["group"] else ["the group"])
    if missing:
        raise Rejected("malformed", f"{results}: no results of {', '.join(missing)}; run --tasks unsafeconcepts")
    try:
        pairs = _samples(results)
    except RunError as e:
        raise Rejected("malformed", str(e)) from None
    n_rows = _check_provenance(summary)
    recorded_scorer = summary["scorer"] or {}
    try:
        scorer = get_scorer(str(recorded_scorer.get("name")))
    except (ValueError, RuntimeError) as e:
        raise RuntimeError(f"cannot run the recorded scorer here: {e}") from None
    if str(scorer.settings().get("version")) != str(recorded_scorer.get("version")):
        raise Rejected("scorer", f"read by {recorded_scorer}; the current scorer is {scorer.settings()}: rescore "
                                 "the answers with python -m uc_tasks.rescore, or run again")
    seed, n_resamples = numbers.bootstrap_of(summary["tasks"]["image"])
    recomputed = {}
    for kind in REQUIRED:
        _check_samples(kind, pairs[kind], n_rows)
        scored = score_samples(scorer, [r for r, _ in pairs[kind]])
        _check_readings(kind, pairs[kind], scored)
        recomputed[kind] = task_summary(scored, seed=seed, n_resamples=n_resamples)
        for where, recorded, now in ((f"unsafeconcepts_{kind} breakdown", summary["tasks"][kind], recomputed[kind]),
                                     (f"unsafeconcepts_{kind}", summary["metrics"][kind],
                                      {m: recomputed[kind]["overall"][m] for m in summary["metrics"][kind]})):
            found = _difference(recorded, now, where, tol)
            if found:
                raise Rejected("numbers", found)
    group = group_summary(recomputed, seed=seed)
    for found in (_difference(summary["group"], group, "unsafeconcepts breakdown", tol),
                  _difference(summary["modality_gap"], group["modality_gap"]["overall"], "unsafeconcepts modality_gap",
                              tol)):
        if found:
            raise Rejected("numbers", found)
    return _entry(summary, recomputed, group, n_rows)


def _entry(summary: Mapping[str, Any], tasks: Mapping[str, Any], group: Mapping[str, Any], n_rows: int) -> dict:
    image = summary["tasks"]["image"]
    return {
        "model": summary.get("model"), "date": summary.get("date"), "n_rows": n_rows,
        "validated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "scores": {k: tasks[k]["ci"]["accuracy"] for k in REQUIRED},
        "modality_gap": group["modality_gap"]["ci"],
        "na_rate": {k: tasks[k]["overall"]["na_rate"] for k in REQUIRED},
        "n_failed": {k: tasks[k]["overall"]["n_failed"] for k in REQUIRED},
        "scorer": summary.get("scorer"), "prompts": (summary.get("provenance") or {}).get("prompts"),
        "data": image.get("data", {}).get("source"), "git": (summary.get("provenance") or {}).get("git"),
        "results_file": Path(summary["path"]).name,
    }


def accept(spec: str, entry: dict[str, Any], name: str, model: str | None, results_dir: Path) -> Path:
    """Copy a validated submission's files to ``results_dir/submissions/name`` with its entry."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"--accept {name!r}: a submission name is one folder name (letters, digits, - and _)")
    folder = results_dir / "submissions" / name
    if folder.exists():
        raise ValueError(f"{folder} exists already; choose another name or remove it first")
    results = results_file(spec)
    folder.mkdir(parents=True)
    for f in (results, *samples_of(results)):
        if f.name.endswith(".json") or any(f.name.endswith(f"_samples_unsafeconcepts_{k}.jsonl") for k in REQUIRED):
            shutil.copy2(f, folder / f.name)
    record = {"name": name, "model": model or entry.get("model"), **{k: v for k, v in entry.items() if k != "model"}}
    (folder / "submission.json").write_text(json.dumps(record, indent=1) + "\n")
    return folder


