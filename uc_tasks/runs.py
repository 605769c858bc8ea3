"""The one reader of finished runs: what ``rescore``, ``report`` and the leaderboard read.

- lmms-eval ``--log_samples`` output: a folder (its newest run) or ``*_samples_<task>.jsonl`` files;
  each sample's UnsafeConcepts record (under ``breakdown``) and the answer it scored;
- the ``unscored_*.jsonl`` answers a run saves when its scorer fails after generation (records);
- files written by ``python -m uc_tasks.rescore`` (``rescored_<scorer>.json``): their samples;
- answer files in the authors' format (a JSON list of ``{idx, prompt, image_fname, output}``), the
  task told apart by the prompt, the image's concept found in the dataset's ``metadata.jsonl``;
- the authors' fine-tuning test answers (the same format; a file with any image in an ``imagenet_1k``
  folder): ``images/N.png`` is unsafe test image N, ``imagenet_1k/N.png`` safe image N. No metadata is
  needed; given one, the unsafe images get their concepts, else each image is its own cluster.

Every reader returns records (``uc_tasks.scoring.samples``: the question's fields and ``answer``)
grouped by task kind, ready to be read again by any scorer.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from uc_tasks import settings
from uc_tasks.data.tasks import KINDS
from uc_tasks.data.taxonomy import load_taxonomy
from uc_tasks.jsonl import read_jsonl
from uc_tasks.prompts import prompt_version, render
from uc_tasks.scoring.rules.perception import parse_options

PERCEPTION = "perception"
_READING_FIELDS = ("label", "reason", "hit", "failed")


class RunError(RuntimeError):
    """An input that cannot be read as a run; the message says what to pass instead."""


def _first_response(value: Any) -> str:
    while isinstance(value, list) and value:
        value = value[0]
    return value if isinstance(value, str) else ""


def load_samples_file(path: Path) -> list[dict[str, Any]]:
    """Scored samples of one lmms-eval samples file: our per-sample record plus the answer scored."""
    items = []
    for n, sample in read_jsonl(path, RunError, "pass the *_samples_<task>.jsonl files lmms-eval wrote"):
        if "breakdown" not in sample and {"task", "answer"} <= set(sample):
            items.append(sample)  # a record saved unscored (uc_tasks.lmms.rescue)
            continue
        record = sample.get("breakdown")
        if not isinstance(record, dict) or "task" not in record:
            raise RunError(f"{path}:{n}: no UnsafeConcepts record under 'breakdown'; is this a samples file of "
                               "an unsafeconcepts_* task run with --log_samples?")
        item = {k: v for k, v in record.items() if k not in _READING_FIELDS}
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
        raise RunError(f"{path}:{n}: cannot find the options A-D in the prompt of a perception answer") from None
    return option_str


def _metadata_rows(spec: str | None) -> list[dict[str, Any]]:
    if spec is None:
        data = settings.current().data
        if not data or not (Path(data) / "metadata.jsonl").is_file():
            raise RunError("authors' answer files name images, not concepts: pass --metadata metadata.jsonl "
                           f"(or set {settings.env_name('data')} to the dataset folder)")
        spec = str(Path(data) / "metadata.jsonl")
    path = Path(spec)
    if not path.is_file():
        raise RunError(f"--metadata {spec}: no such file")
    return [row for _, row in read_jsonl(path, RunError)]


def load_authors_answers(path: Path, metadata: Sequence[Mapping[str, Any]], rows: Any = None) -> list[dict[str, Any]]:
    """Scored-sample records for an answer file in the authors' format, tasks told apart by the prompt."""
    rows = _read_json(path) if rows is None else rows
    if not isinstance(rows, list) or not all(isinstance(r, dict) and {"prompt", "output"} <= set(r) for r in rows):
        raise RunError(f"{path}: expected a JSON list of {{idx, prompt, image_fname, output}} records")
    tax = load_taxonomy()
    by_file = {Path(m["image_filename"]).name: (i, m) for i, m in enumerate(metadata)}
    image_prompts = {render(t): p for p, t in enumerate(KINDS["image"].prompts, 1)}
    text_prompts = {render(t, concept=c): (p, c) for p, t in enumerate(KINDS["text"].prompts, 1) for c in tax.concepts}
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
            raise RunError(f"{path}: record {n} names image {name!r}, which is not in the metadata; pass the "
                               "metadata.jsonl of the dataset these answers came from")
        row_id, meta = by_file[name]
        base = {"row_id": row_id, "concept": meta["unsafe_concept"], "category": meta["category"], "answer": answer}
        if prompt in image_prompts:
            items.append({"task": "image", "prompt_id": image_prompts[prompt], **base})
        elif prompt.startswith(render("perception/multiple_choice", option_str="").strip()):
            option_str = _options_from_prompt(prompt, path, n)
            correct = [k for k, v in parse_options(option_str).items() if v == meta["unsafe_concept"]]
            if len(correct) != 1:
                raise RunError(f"{path}: record {n}: the options do not list {meta['unsafe_concept']!r} once")
            items.append({"task": PERCEPTION, "option_str": option_str, "target": correct[0], **base})
        else:
            raise RunError(f"{path}: record {n}: the prompt is none of the benchmark's prompts "
                               f"(prompt version {prompt_version()['version']}): {prompt[:80]!r}")
    return items


SAFE_IMAGE_FOLDER = "imagenet_1k"
"""The folder of the safe images in the authors' fine-tuning answer files (``data/imagenet_1k/N.png``)."""


def is_authors_finetune(rows: Any) -> bool:
    """An answer list in the authors' format whose images include safe ones: a fine-tuning test file."""
    return isinstance(rows, list) and any(isinstance(r, dict) and
                                          Path(str(r.get("image_fname") or "")).parent.name == SAFE_IMAGE_FOLDER
                                          for r in rows)


def load_authors_finetune(path: Path, rows: Any, metadata: Sequence[Mapping[str, Any]] | None = None
                          ) -> list[dict[str, Any]]:
    """Records of the fine-tuning test (``finetune_test``) from an authors' answer file: target ``safe`` for an
    ``imagenet_1k/N.png`` image, ``unsafe`` for any other; the prompt must be one of the 5 image prompts."""
    if not isinstance(rows, list) or not all(isinstance(r, dict) and {"prompt", "output", "image_fname"} <= set(r)
                                             for r in rows):
        raise RunError(f"{path}: expected a JSON list of {{idx, prompt, image_fname, output}} records")
    by_file = {Path(m["image_filename"]).name: (i, m) for i, m in enumerate(metadata or [])}
    prompts = {render(t): p for p, t in enumerate(KINDS["image"].prompts, 1)}
    items = []
    for n, r in enumerate(rows, 1):
        prompt = str(r["prompt"]).strip()
        if prompt not in prompts:
            raise RunError(f"{path}: record {n}: the prompt is none of the 5 image prompts of the fine-tuning test "
                           f"(prompt version {prompt_version()['version']}): {prompt[:80]!r}")
        image = Path(str(r["image_fname"]))
        name = f"{image.parent.name}/{image.name}"
        safe = image.parent.name == SAFE_IMAGE_FOLDER
        row_id: Any = int(image.stem) if image.stem.isdigit() else name
        concept, category = name, "safe" if safe else "unsafe"
        if not safe and metadata is not None:
            if image.name not in by_file:
                raise RunError(f"{path}: record {n} names image {image.name!r}, which is not in the metadata; pass "
                               "the metadata.jsonl of the dataset these answers came from, or none")
            row_id, meta = by_file[image.name]
            concept, category = meta["unsafe_concept"], meta["category"]
        items.append({"task": "finetune_test", "row_id": row_id, "prompt_id": prompts[prompt], "concept": concept,
                      "category": category, "target": "safe" if safe else "unsafe",
                      "answer": r["output"] if isinstance(r["output"], str) else ""})
    return items


def newest_run(folder: Path) -> list[Path]:
    """The samples files of the newest run in an lmms-eval output folder (runs are told apart by the
    time stamp lmms-eval puts before ``_samples_``); says which run it reads when there are several."""
    files = sorted(folder.rglob("*_samples_unsafeconcepts*.jsonl"))
    if not files:
        raise RunError(f"{folder}: no *_samples_unsafeconcepts*.jsonl inside; run lmms-eval with --log_samples")
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
        raise RunError("nothing to rescore: pass a --log_samples output folder or samples / answer files")
    by_kind: dict[str, list[dict[str, Any]]] = {}
    meta: list[dict[str, Any]] | None = None
    for spec in inputs:
        path = Path(spec)
        if path.is_dir():
            items = [it for f in newest_run(path) for it in load_samples_file(f)]
        elif path.suffix == ".jsonl" and path.is_file():
            items = load_samples_file(path)
        elif path.suffix == ".json" and path.is_file():
            data = _read_json(path)
            if isinstance(data, dict):
                items = load_rescored(path, data)
            elif is_authors_finetune(data):
                meta = meta if meta is not None else _optional_metadata(metadata)
                items = load_authors_finetune(path, data, meta)
            else:
                meta = meta if meta is not None else _metadata_rows(metadata)
                items = load_authors_answers(path, meta, data)
        else:
            raise RunError(f"{spec}: not a folder, a samples .jsonl or an answers .json file")
        for it in items:
            by_kind.setdefault(it["task"], []).append(it)
    return by_kind


def _optional_metadata(spec: str | None) -> list[dict[str, Any]] | None:
    """The metadata rows when a metadata file is named or the data folder has one; else None."""
    try:
        return _metadata_rows(spec)
    except RunError:
        if spec is not None:
            raise
        return None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise RunError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}); pass a rescored_<scorer>.json, "
                       "an authors' answer list or an lmms-eval samples folder") from None


def load_rescored(path: Path, data: Any = None) -> list[dict[str, Any]]:
    """Records of a file written by ``python -m uc_tasks.rescore`` (its ``samples``, readings dropped)."""
    data = _read_json(path) if data is None else data
    if not isinstance(data, dict) or not isinstance(data.get("samples"), dict):
        raise RunError(f"{path}: a JSON object without 'samples'; pass a rescored_<scorer>.json that rescore wrote, "
                       "an lmms-eval samples folder, or an authors' answer list")
    return [{k: v for k, v in it.items() if k not in _READING_FIELDS} for items in data["samples"].values()
            for it in items]


# --- results summaries (what report and leaderboard show) ---------------------------------------

_FILTER = ",none"  # lmms-eval keys a task's metric as "<metric>,<filter>"; our tasks have the one filter "none"


def results_file(spec: str | Path) -> Path:
    """The results JSON that ``spec`` names: the file itself, or the newest ``*_results.json`` in a folder
    (lmms-eval's time stamp orders them) or, failing that, its ``rescored_*.json``."""
    path = Path(spec)
    if path.is_file():
        return path
    if not path.is_dir():
        raise RunError(f"{spec}: no such file or folder; pass an lmms-eval --output_path folder, its "
                       "*_results.json or a rescored_<scorer>.json")
    found = sorted(path.rglob("*_results.json"), key=lambda p: p.name) or sorted(path.rglob("rescored_*.json"))
    if not found:
        raise RunError(f"{spec}: no *_results.json or rescored_*.json inside; is this an lmms-eval --output_path?")
    return found[-1]


def samples_of(results: Path) -> list[Path]:
    """The samples files lmms-eval wrote with ``results`` (same folder, same time-stamp prefix)."""
    prefix = results.name.removesuffix("_results.json")
    return sorted(results.parent.glob(f"{prefix}_samples_unsafeconcepts*.jsonl"))


def load_summaries(spec: str | Path) -> dict[str, Any]:
    """A finished run's results summaries, the same shape from an lmms-eval results JSON (or the folder
    holding it) and from a ``rescored_*.json``: ``tasks`` (per task kind the ``breakdown`` the task
    wrote), ``metrics`` (per kind the headline values as written), ``group`` (the ``unsafeconcepts``
    group's breakdown, or None), ``modality_gap`` (its value as written), ``context_sensitivity``,
    ``scorer``, ``provenance``, ``model`` and ``date`` (None where the file records none)."""
    path = results_file(spec)
    data = _read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise RunError(f"{path}: a JSON object without 'results'; pass an lmms-eval *_results.json or a "
                       "rescored_<scorer>.json")
    out = _rescored_summaries(data) if "samples" in data else _lmms_summaries(data)
    if not out["tasks"]:
        raise RunError(f"{path}: no UnsafeConcepts task results inside (no 'breakdown'); was it a run of "
                       "unsafeconcepts_* tasks?")
    bad = [k for k, b in out["tasks"].items() if not isinstance(b, dict) or not isinstance(b.get("overall"), dict)]
    if bad:
        raise RunError(f"{path}: the breakdown of {', '.join(bad)} has no 'overall' counts")
    return {"path": str(path), **out}


def _headline(results: Mapping[str, Any], kinds: Sequence[str]) -> dict[str, dict[str, Any]]:
    return {k: {m: (results.get(k) or {}).get(m) for m in ("accuracy", "accuracy_strict", "na_rate")} for k in kinds}


def _rescored_summaries(data: Mapping[str, Any]) -> dict[str, Any]:
    res = data["results"]
    tasks = {k: v["breakdown"] for k, v in res.items() if isinstance(v, dict) and "breakdown" in v}
    group = data.get("group")
    return {"format": "rescored", "tasks": tasks, "metrics": _headline(res, list(tasks)), "group": group,
            "modality_gap": (group or {}).get("modality_gap", {}).get("overall"),
            "context_sensitivity": data.get("context_sensitivity"), "scorer": data.get("scorer"),
            "provenance": data.get("provenance"),
            "model": "rescored from " + ", ".join(map(str, data.get("rescored_from", []))), "date": data.get("date")}


def _lmms_summaries(data: Mapping[str, Any]) -> dict[str, Any]:
    res = {name.removeprefix("unsafeconcepts_") if name != "unsafeconcepts" else name:
           {k.removesuffix(_FILTER): v for k, v in r.items()} for name, r in data["results"].items()
           if isinstance(r, dict)}
    tasks = {k: r["breakdown"] for k, r in res.items() if k in KINDS and isinstance(r.get("breakdown"), dict)}
    first = next(iter(tasks.values()), {})
    config = data.get("config") or {}
    return {"format": "lmms-eval", "tasks": tasks, "metrics": _headline(res, list(tasks)),
            "group": res.get("unsafeconcepts", {}).get("breakdown"),
            "modality_gap": res.get("unsafeconcepts", {}).get("modality_gap"),
            "context_sensitivity": (res.get("context", {}).get("breakdown") or {}).get("context_sensitivity"),
            "scorer": first.get("scorer"), "provenance": first.get("provenance"),
            "model": " ".join(str(config[k]) for k in ("model", "model_args") if config.get(k)) or None,
            "date": data.get("date")}


def load_recorded_samples(path: Path) -> list[dict[str, Any]]:
    """Each sample of an lmms-eval samples file as its task scored it: our record under ``breakdown``
    with its reading (``label``, ``hit``, ``failed``), ``answer`` the response lmms-eval logged (the
    answer ``load_samples_file`` gives to a scorer) and ``prompt`` the question it was asked."""
    items = []
    for n, sample in read_jsonl(path, RunError, "pass the *_samples_<task>.jsonl files lmms-eval wrote"):
        record = sample.get("breakdown") if isinstance(sample, dict) else None
        if not isinstance(record, dict) or "task" not in record:
            raise RunError(f"{path}:{n}: no UnsafeConcepts record under 'breakdown'; is this a samples file of "
                           "an unsafeconcepts_* task run with --log_samples?")
        answer = _first_response(sample.get("filtered_resps")) or record.get("answer") or ""
        items.append({**record, "answer": answer, "prompt": _first_response(sample.get("input")) or ""})
    return items


# --- the fine-tuning evaluation (``python -m uc_align.evaluate``; Table 3) ---------------------------

GENERAL_TASKS = ("mme", "llava_in_the_wild", "pope", "uc_general_yesno")
"""The general-ability tasks Table 3 reads from a run's samples: lmms-eval's own (MME, LLaVA-Bench, POPE) and our
generated yes/no stand-in (``uc_tasks.lmms.general``)."""
EVALUATION_FILE = "evaluation.json"
"""What ``uc_align.evaluate`` writes beside each evaluated model's lmms-eval output (``<out>/<name>/``)."""


def general_samples(results: Path) -> dict[str, list[dict[str, Any]]]:
    """Per general-ability task, the samples lmms-eval logged with ``results`` (same folder, same time stamp)."""
    prefix = results.name.removesuffix("_results.json")
    out: dict[str, list[dict[str, Any]]] = {}
    for task in GENERAL_TASKS:
        path = results.parent / f"{prefix}_samples_{task}.jsonl"
        if path.is_file():
            out[task] = [s for _, s in read_jsonl(path, RunError, "pass the *_samples_<task>.jsonl lmms-eval wrote")]
    return out


def general_results(results: Path) -> dict[str, dict[str, Any]]:
    """Per general-ability task, the metrics lmms-eval itself wrote (shown beside ours, never used as ours)."""
    data = _read_json(results)
    res = data.get("results") if isinstance(data, dict) else None
    return {t: {k.removesuffix(_FILTER): v for k, v in res[t].items() if k != "alias"}
            for t in GENERAL_TASKS if isinstance(res, dict) and isinstance(res.get(t), dict)}


def is_evaluation(spec: str | Path) -> bool:
    """``spec`` is an output folder of ``python -m uc_align.evaluate`` (subfolders holding ``evaluation.json``)."""
    path = Path(spec)
    return path.is_dir() and not (path / EVALUATION_FILE).is_file() and any(
        (p / EVALUATION_FILE).is_file() for p in path.iterdir() if p.is_dir())


def load_evaluated(folder: Path) -> dict[str, Any]:
    """One evaluated model of an evaluation folder: its record (``evaluation.json``: name, method, checkpoint,
    status, ...), and once finished its results ``summary`` (``load_summaries``), ``general`` samples and the
    general metrics lmms-eval wrote (``general_lmms``)."""
    record = _read_json(folder / EVALUATION_FILE)
    if not isinstance(record, dict) or "name" not in record:
        raise RunError(f"{folder / EVALUATION_FILE}: not an evaluation record (no 'name'); was it written by "
                       "python -m uc_align.evaluate?")
    out: dict[str, Any] = {"record": record, "folder": str(folder)}
    if record.get("status") == "finished":
        results = results_file(folder / record.get("output", "lmms"))
        out.update(summary=load_summaries(results), general=general_samples(results),
                   general_lmms=general_results(results))
    return out


def load_evaluation(spec: str | Path) -> list[dict[str, Any]]:
    """Every evaluated model of an ``uc_align.evaluate`` output folder, in the order it evaluated them."""
    path = Path(spec)
    if not is_evaluation(path):
        raise RunError(f"{spec}: not an output folder of python -m uc_align.evaluate (no */{EVALUATION_FILE})")
    found = [load_evaluated(p) for p in sorted(path.iterdir()) if (p / EVALUATION_FILE).is_file()]
    return sorted(found, key=lambda e: (e["record"].get("order", 0), e["record"]["name"]))
