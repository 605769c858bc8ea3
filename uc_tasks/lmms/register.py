"""Make the UnsafeConcepts tasks visible to lmms-eval right after ``pip install``.

lmms-eval 0.7.3 has no entry-point group for tasks; its only group, ``lmms_eval.models``, is loaded
when ``lmms_eval.models`` is imported, before any task index is built. Our entry point there adds
this package's task folder to every TaskManager's search path (as ``--include_path`` would) and
registers our model backends (``--model uc_hf_vlm``, ``--model uc_openai``).
"""

from __future__ import annotations

from pathlib import Path

TASKS_DIR = str(Path(__file__).resolve().parent / "tasks")


def tasks_dir() -> str:
    """The folder to pass to ``--include_path`` (also printed by ``python -m uc_tasks.lmms.register``)."""
    return TASKS_DIR


def _add_tasks_dir() -> None:
    from lmms_eval.tasks import TaskManager

    original = TaskManager.initialize_tasks
    if getattr(original, "_unsafeconcepts", False):
        return

    def initialize_tasks(self, include_path=None, include_defaults=True):
        paths = [include_path] if isinstance(include_path, str) else list(include_path or [])
        if TASKS_DIR not in paths:
            paths.append(TASKS_DIR)
        return original(self, include_path=paths, include_defaults=include_defaults)

    initialize_tasks._unsafeconcepts = True  # type: ignore[attr-defined]
    TaskManager.initialize_tasks = initialize_tasks


def _add_standard_errors() -> None:
    """lmms-eval's Stderr column: for our aggregations, the clustered bootstrap's standard error
    (``uc_tasks.lmms.results.standard_error``) instead of N/A."""
    import sys

    from lmms_eval.api import metrics as api_metrics

    original = api_metrics.stderr_for_metric
    if getattr(original, "_unsafeconcepts", False):
        return

    def stderr_for_metric(metric, bootstrap_iters: int):
        module = getattr(metric, "__module__", "")
        if module in ("uc_tasks.lmms.results", "uc_tasks.lmms.finetune") and bootstrap_iters > 0:
            from uc_tasks.lmms import finetune, results

            ours = results if module == "uc_tasks.lmms.results" else finetune
            if metric in ours.STDERR_OF:
                return ours.standard_error(ours.STDERR_OF[metric])
        return original(metric, bootstrap_iters)

    stderr_for_metric._unsafeconcepts = True  # type: ignore[attr-defined]
    api_metrics.stderr_for_metric = stderr_for_metric
    if "lmms_eval.evaluator_utils" in sys.modules:
        sys.modules["lmms_eval.evaluator_utils"].stderr_for_metric = stderr_for_metric


MODELS = {
    "uc_hf_vlm": "uc_tasks.models.hf_vlm.HFVLM",
    "uc_openai": "uc_tasks.models.api.OpenAIVLM",
}
"""Our lmms-eval model names and the classes that implement them."""


def register() -> list:
    """Entry point of group ``lmms_eval.models``: adds our tasks; returns our model manifests."""
    import sys

    from lmms_eval.models.registry_v2 import ModelManifest

    _add_tasks_dir()
    _add_standard_errors()
    listed = getattr(sys.modules.get("lmms_eval.models"), "AVAILABLE_SIMPLE_MODELS", None)
    if isinstance(listed, dict):  # what `lmms-eval models` lists (the registry itself takes the manifests)
        listed.update(MODELS)
    return [ModelManifest(model_id=name, simple_class_path=path) for name, path in MODELS.items()]


def main(argv: list[str] | None = None) -> None:
    import argparse

    argparse.ArgumentParser(
        description="Print the folder of the UnsafeConcepts task YAMLs, for lmms-eval's --include_path "
        "(`lmms-eval tasks list --include-path \"$(python -m uc_tasks.lmms.register)\"`). After `pip install` "
        "`lmms-eval --tasks unsafeconcepts ...` finds the tasks without it.").parse_args(argv)
    print(TASKS_DIR)


if __name__ == "__main__":
    main()
