"""Re-evaluate a base model and its fine-tuned checkpoints and write the paper's Table 3.

    python -m uc_align.evaluate CKPT [CKPT ...] --out DIR [--base MODEL] [--judge gpt-4o --judge_base_url URL]

Each model (the base as ``original`` unless ``--original false``, then every checkpoint, named by the ``command`` of
its ``uc_align.json``: sft, dpo, ppo, grpo, rloo, ...) is run through the real ``lmms-eval`` CLI, one process per
model, on the safety tasks (``unsafeconcepts_finetune_test``, ``unsafeconcepts_smid``, ``unsafeconcepts_nsfw``) and
the general ones (lmms-eval's ``mme`` and ``llava_in_the_wild``, optionally ``pope``; offline, our generated stand-in
``uc_general_yesno``), with ``--log_samples``, into ``DIR/<name>/lmms/`` (its console output in
``DIR/<name>/lmms_eval.log``). ``DIR/<name>/evaluation.json`` records what was evaluated and how; a model whose
record is finished with the same settings and the same adapter bytes is not run again, so a stopped evaluation
resumes where it stopped. Then ``DIR/table3.md``, ``table3.json`` and ``table3_tradeoff.png``
(``uc_tasks.report.table3``), the paper's published rows beside ours, marked as reported. ``--config file.yaml``
takes any of the flags.

A checkpoint is a finished training ``--out`` folder: the LoRA adapter at its root (``adapter_config.json``,
``adapter_model.safetensors``) and ``uc_align.json`` with status ``finished``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from uc_tasks.config import help_field, parse_config
from uc_tasks.errors import one_line
from uc_tasks.runs import RunError

RUN_FILE = "uc_align.json"
EVALUATION_FILE = "evaluation.json"  # = uc_tasks.runs.EVALUATION_FILE (uc_tasks reads what this writes)
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
SAFETY_TASKS = ["unsafeconcepts_finetune_test", "unsafeconcepts_smid", "unsafeconcepts_nsfw"]
GENERAL_TASKS = ("mme", "llava_in_the_wild", "pope", "uc_general_yesno")
JUDGED = ("llava_in_the_wild",)


class EvaluateError(RuntimeError):
    """The evaluation cannot go on; the message says what to do."""


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


@dataclass
class EvaluateConfig:
    """Settings of ``python -m uc_align.evaluate``."""

    checkpoints: list[str] = help_field([], "finished checkpoint folders (a training command's --out: adapter at the "
                                        "root + uc_align.json); none: the base model alone")
    out: str = help_field("", "folder to write: <name>/ per model (lmms-eval output, evaluation.json) and table3.*")
    base: str = help_field("", "base model (local folder or cached hub id); default: the base_model every "
                           "checkpoint's uc_align.json names")
    original: bool = help_field(True, "also evaluate the base model without an adapter, as 'original'")
    names: list[str] = help_field([], "a name per checkpoint, in order (default: its uc_align.json command, numbered "
                                  "when repeated: sft, sft-2)")
    tasks: list[str] = help_field(list(SAFETY_TASKS), "safety tasks (the fine-tuning test and the out-of-domain sets)")
    general: list[str] = help_field(["mme", "llava_in_the_wild"], "general-ability tasks: mme, llava_in_the_wild, "
                                    "pope (lmms-eval's own) or uc_general_yesno (our generated offline stand-in, "
                                    "not MME); 'none' for no general task")
    judge: str = help_field("", "judge of llava_in_the_wild: an OpenAI-compatible model other than the one tested "
                            "(the paper: gpt-4o)")
    judge_base_url: str = help_field("", "the judge's endpoint, e.g. https://api.openai.com/v1 (default: "
                                     "lmms-eval's, OPENAI_API_URL or api.openai.com)")
    judge_api_key_env: str = help_field("OPENAI_API_KEY", "name of the variable holding the judge's key")
    model: str = help_field("uc_hf_vlm", "lmms-eval model backend")
    model_args: str = help_field("", "more --model_args for the backend, e.g. device=cuda,dtype=bfloat16 "
                                 "(pretrained and adapter are set per model)")
    batch_size: int = help_field(1, "lmms-eval --batch_size")
    limit: int = help_field(0, "lmms-eval --limit per task (a smoke test; 0: every document, as Table 3 needs)")
    dpi: int = help_field(100, "resolution of the trade-off plot")
    timeout: int = help_field(0, "seconds one model's lmms-eval run may take (0: no limit)")

    def __post_init__(self) -> None:
        _check(bool(self.out), "out is required: pass --out DIR, the folder to write the evaluation to")
        if self.general in (["none"], ["None"]):
            self.general = []
        unknown = [t for t in self.general if t not in GENERAL_TASKS]
        _check(not unknown, f"--general {' '.join(unknown)}: not a general-ability task of Table 3; choose from "
               f"{', '.join(GENERAL_TASKS)} (or 'none')")
        bad = [t for t in self.tasks if not t.startswith("unsafeconcepts_")]
        _check(not bad, f"--tasks {' '.join(bad)}: safety tasks are unsafeconcepts_* tasks, e.g. "
               f"{' '.join(SAFETY_TASKS)}; general ones go to --general")
        _check(bool(self.tasks or self.general), "nothing to run: --tasks and --general are both empty")
        _check(bool(self.checkpoints) or self.original, "nothing to evaluate: no checkpoint and --original false")
        _check(not self.names or len(self.names) == len(self.checkpoints),
               f"--names has {len(self.names)} name(s) for {len(self.checkpoints)} checkpoint(s); give one each")
        _check(self.batch_size >= 1, f"--batch_size {self.batch_size}: must be at least 1")
        _check(self.limit >= 0, f"--limit {self.limit}: must be 0 (every document) or more")
        _check(self.timeout >= 0, f"--timeout {self.timeout}: must be 0 (no limit) or more seconds")
        if any(t in JUDGED for t in self.general):
            _check(bool(self.judge), "llava_in_the_wild needs a judge: pass --judge MODEL (an OpenAI-compatible model "
                   "other than the one tested, e.g. gpt-4o) and --judge_base_url URL, or drop it from --general")


@dataclass
class Model:
    """One model to evaluate: a name, its method (Table 3's row), the base and the adapter (None: the base)."""

    name: str
    method: str
    base: str
    adapter: str | None


def read_checkpoint(path: str) -> dict[str, Any]:
    """The ``uc_align.json`` of a finished checkpoint folder; anything else raises EvaluateError with the fix."""
    folder = Path(path)
    if not folder.is_dir():
        raise EvaluateError(f"checkpoint {path}: no such folder; pass a training command's --out folder")
    missing = [f for f in (*ADAPTER_FILES, RUN_FILE) if not (folder / f).is_file()]
    if missing:
        raise EvaluateError(f"checkpoint {path}: no {', '.join(missing)} at its root; pass the --out folder of a "
                            "finished uc_align training command (the adapter is written there when training ends)")
    try:
        record = json.loads((folder / RUN_FILE).read_text())
    except json.JSONDecodeError as e:
        raise EvaluateError(f"checkpoint {path}: {RUN_FILE} is not valid JSON ({e.msg})") from None
    if record.get("status") != "finished":
        raise EvaluateError(f"checkpoint {path}: training status is {record.get('status')!r}, not 'finished'; "
                            "let it finish (or resume it with --resume) first")
    if not record.get("command"):
        raise EvaluateError(f"checkpoint {path}: {RUN_FILE} names no 'command' (the method); was it written by a "
                            "uc_align training command?")
    return record


def plan(cfg: EvaluateConfig) -> list[Model]:
    """The models to evaluate, in order: the base (``original``), then each checkpoint."""
    records = [read_checkpoint(c) for c in cfg.checkpoints]
    bases = sorted({str(r.get("base_model") or "") for r in records})
    base = cfg.base
    if not base:
        if len(bases) != 1 or not bases[0]:
            raise EvaluateError(f"the checkpoints name {len(bases)} different base models ({', '.join(bases)}); "
                                "pass --base MODEL" if bases else "no checkpoint names its base model: pass --base")
        base = bases[0]
    if Path(base).exists():  # a local folder: absolute, as lmms-eval runs in the model's output folder
        base = str(Path(base).resolve())
    models = [Model("original", "original", base, None)] if cfg.original else []
    seen: dict[str, int] = {"original": 1} if cfg.original else {}
    for i, (path, rec) in enumerate(zip(cfg.checkpoints, records, strict=True)):
        method = str(rec["command"]).lower()
        name = cfg.names[i] if cfg.names else method
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            if cfg.names:
                raise EvaluateError(f"--names: {name!r} is given twice; give each checkpoint its own name")
            name = f"{name}-{seen[name]}"
        models.append(Model(name, method, base, str(Path(path).resolve())))
    _check_judge(cfg, models)
    return models


def _check_judge(cfg: EvaluateConfig, models: list[Model]) -> None:
    if not cfg.judge:
        return
    judge = cfg.judge.strip().rstrip("/")
    named = [v.split("=", 1)[1] for v in cfg.model_args.split(",") if v.split("=", 1)[0].strip() in ("model",
                                                                                                    "pretrained")]
    for m in models:
        for tested in filter(None, (m.base, m.adapter, *named)):
            if judge in (tested.rstrip("/"), Path(tested).name):
                raise ValueError(f"--judge {cfg.judge}: the judge is the model tested ({tested}); name a judge apart "
                                 "from it (the paper: gpt-4o)")


def adapter_digest(adapter: str | None) -> str | None:
    """sha256 of the adapter's weights and config (a retrained checkpoint in the same folder is evaluated again)."""
    if adapter is None:
        return None
    h = hashlib.sha256()
    for name in ADAPTER_FILES:
        h.update((Path(adapter) / name).read_bytes())
    return h.hexdigest()[:16]


def settings_of(cfg: EvaluateConfig, m: Model) -> dict[str, Any]:
    """What makes two evaluations of a model the same (the resumability key)."""
    return {"base": m.base, "adapter": m.adapter, "adapter_sha256": adapter_digest(m.adapter),
            "tasks": list(cfg.tasks), "general": list(cfg.general), "model": cfg.model, "model_args": cfg.model_args,
            "limit": cfg.limit, "judge": cfg.judge or None,
            "env": {k: v for k, v in sorted(os.environ.items()) if k.startswith("UNSAFECONCEPTS_")}}


def lmms_command(cfg: EvaluateConfig, m: Model, out: Path) -> list[str]:
    """The ``lmms-eval`` command line of model ``m``."""
    exe = Path(sys.executable).parent / "lmms-eval"
    head = [str(exe)] if exe.is_file() else [sys.executable, "-m", "lmms_eval"]
    args = [f"pretrained={m.base}", *([f"adapter={m.adapter}"] if m.adapter else []),
            *([cfg.model_args] if cfg.model_args else [])]
    cmd = [*head, "--model", cfg.model, "--model_args", ",".join(args), "--tasks", ",".join([*cfg.tasks, *cfg.general]),
           "--batch_size", str(cfg.batch_size), "--output_path", str(out), "--log_samples"]
    return cmd + (["--limit", str(cfg.limit)] if cfg.limit else [])


def _env(cfg: EvaluateConfig) -> dict[str, str]:
    env = dict(os.environ)
    if cfg.judge:  # lmms-eval's judge reads these (lmms_eval.llm_judge: MODEL_VERSION, OPENAI_API_URL, OPENAI_API_KEY)
        env["MODEL_VERSION"] = cfg.judge
        if cfg.judge_base_url:
            env["OPENAI_API_URL"] = cfg.judge_base_url
        if cfg.judge_api_key_env != "OPENAI_API_KEY" and cfg.judge_api_key_env in env:
            env["OPENAI_API_KEY"] = env[cfg.judge_api_key_env]
    return env


def _why_failed(log: Path, rc: int) -> str:
    """The line of the log that says why (our tasks stop with 'unsafeconcepts: ...'), or its last line."""
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    ours = [ln for ln in lines if "unsafeconcepts:" in ln]
    errors = [ln for ln in lines if "Error" in ln or "error" in ln]
    return one_line((ours or errors or lines or [f"exit status {rc}"])[-1])


def evaluate_one(cfg: EvaluateConfig, m: Model, order: int) -> str:
    """Run lmms-eval on model ``m`` unless its finished record has the same settings; returns what was done."""
    folder = Path(cfg.out).resolve() / m.name
    record_path = folder / EVALUATION_FILE
    key = settings_of(cfg, m)
    if record_path.is_file():
        old = json.loads(record_path.read_text())
        if old.get("status") == "finished" and old.get("settings") == key:
            return "already evaluated"
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / "lmms").exists():
        shutil.rmtree(folder / "lmms")  # a stopped or outdated run: start that model afresh
    record = {"name": m.name, "method": m.method, "checkpoint": m.adapter, "base": m.base, "order": order,
              "output": "lmms", "settings": key, "status": "running", "started": time.time()}
    record_path.write_text(json.dumps(record, indent=1))
    cmd = lmms_command(cfg, m, folder / "lmms")
    log = folder / "lmms_eval.log"
    with open(log, "w") as f:
        f.write(" ".join(cmd) + "\n")
        f.flush()
        try:
            proc = subprocess.run(cmd, env=_env(cfg), stdout=f, stderr=subprocess.STDOUT,
                                  timeout=cfg.timeout or None, cwd=folder)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            rc = -1
    wanted = [*cfg.tasks, *cfg.general]
    found = sorted((folder / "lmms").rglob("*_results.json"))
    done = json.loads(found[-1].read_text()).get("results", {}) if found else {}
    missing = [t for t in wanted if t not in done]
    if rc != 0 or missing:  # lmms-eval may exit 0 after a task failed: the results decide
        record.update(status="failed", rc=rc, missing=missing)
        record_path.write_text(json.dumps(record, indent=1))
        why = "timed out" if rc == -1 else _why_failed(log, rc)
        raise EvaluateError(f"{m.name}: lmms-eval did not finish {', '.join(missing) or 'cleanly'} ({why}); see {log}")
    record.update(status="finished", rc=rc, wall_s=round(time.time() - record["started"], 1),
                  results=str(found[-1].relative_to(folder)))
    record_path.write_text(json.dumps(record, indent=1))
    return f"evaluated in {record['wall_s']:.0f} s"


def evaluate(cfg: EvaluateConfig) -> list[Path]:
    """Evaluate every planned model (resumably), then write Table 3; returns the files written."""
    from uc_tasks.report.table3 import build_table, rows_of_evaluation, write_table
    from uc_tasks.runs import load_evaluated

    models = plan(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "evaluate_config.json").write_text(json.dumps(asdict(cfg), indent=1))
    for i, m in enumerate(models):
        what = evaluate_one(cfg, m, i)
        print(f"uc_align.evaluate: {m.name} ({m.adapter or m.base}): {what}", flush=True)
    entries = [load_evaluated(out / m.name) for m in models]
    return write_table(build_table(rows_of_evaluation(entries)), out, cfg.dpi)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        cfg = parse_config(EvaluateConfig, argv, __doc__.split("\n\n")[0], positional="checkpoints")
        written = evaluate(cfg)
    except (EvaluateError, RunError, ValueError, OSError) as e:
        print(f"uc_align.evaluate: {one_line(e) if isinstance(e, OSError) else e}", file=sys.stderr)
        return 2
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
