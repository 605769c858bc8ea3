"""The layers of the house: the core imports without the heavy stack, training never leaks into the
benchmark, statistics are leaves, and the package list holds every package folder."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

CORE = ("uc_tasks.data.sources", "uc_tasks.data.safe", "uc_tasks.data.tasks", "uc_tasks.data.splits",
        "uc_tasks.data.options", "uc_tasks.data.context", "uc_tasks.data.synth", "uc_tasks.prompts", "uc_tasks.scoring",
        "uc_tasks.scoring.samples", "uc_tasks.metrics", "uc_tasks.summary", "uc_tasks.stats.bootstrap",
        "uc_tasks.stats.paired", "uc_tasks.stats.diversity", "uc_tasks.stats.perception_alignment",
        "uc_tasks.stats.sensitivity", "uc_tasks.settings", "uc_tasks.runs", "uc_tasks.rescore")
HEAVY = ("torch", "transformers", "lmms_eval", "datasets", "scipy", "nltk", "peft", "trl")


def _imports(path: Path) -> set[str]:
    """Every module a file imports (absolute names; relative imports are not used here)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def test_core_imports_without_torch_lmms_eval_or_transformers() -> None:
    code = (f"import sys\nfor m in {CORE!r}: __import__(m)\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"the core pulled in {out.strip()}"


def test_uc_tasks_never_imports_uc_align() -> None:
    leaks = {str(p.relative_to(REPO)): sorted(m for m in _imports(p) if m.split(".")[0] == "uc_align")
             for p in (REPO / "uc_tasks").rglob("*.py")}
    assert {k: v for k, v in leaks.items() if v} == {}


@pytest.mark.parametrize("path", sorted((REPO / "uc_tasks" / "stats").glob("*.py")), ids=lambda p: p.name)
def test_statistics_are_leaves(path: Path) -> None:
    """A statistic takes what it computes as an argument: it never reaches up into the metrics, the
    summaries or the task glue."""
    ours = {m for m in _imports(path) if m.startswith("uc_tasks")}
    assert ours <= {"uc_tasks.outcomes", "uc_tasks.failures", "uc_tasks.scoring.base"}, ours


def test_metrics_do_not_import_statistics() -> None:
    assert not {m for m in _imports(REPO / "uc_tasks" / "metrics.py") if m.startswith("uc_tasks.stats")}


def _environ_reads(path: Path) -> list[str]:
    """``os.environ`` lookups of an ``UNSAFECONCEPTS_*`` literal or an ``ENV_*`` constant in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            target, arg = node.func.value, node.args[0]
        elif isinstance(node, ast.Subscript):
            target, arg = node.value, node.slice
        else:
            continue
        if not (isinstance(target, ast.Attribute) and target.attr == "environ"):
            continue
        name = arg.value if isinstance(arg, ast.Constant) else getattr(arg, "id", "")
        if str(name).startswith(("UNSAFECONCEPTS_", "ENV_")):
            found.append(f"{path.name}:{node.lineno}")
    return found


def test_environment_is_read_in_one_place() -> None:
    reads = [r for p in (REPO / "uc_tasks").rglob("*.py") if p.name != "settings.py" for r in _environ_reads(p)]
    assert reads == [], "read UNSAFECONCEPTS_* variables through uc_tasks.settings"
