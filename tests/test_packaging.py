"""The wheel carries every template, task file and data file a non-editable install needs."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO


@pytest.mark.slow
def test_wheel_contains_prompts_and_task_files(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path), str(REPO)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("unsafeconcepts-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    prompts = {"uc_prompts/" + p.relative_to(REPO / "prompts").as_posix()
               for p in (REPO / "prompts").rglob("*") if p.is_file()}
    tasks_dir = REPO / "uc_tasks" / "lmms" / "tasks"
    tasks = {"uc_tasks/lmms/tasks/" + p.name for p in tasks_dir.iterdir() if p.is_file()}
    assert prompts and prompts <= names, sorted(prompts - names)
    assert tasks <= names, sorted(tasks - names)
    assert "uc_tasks/data/taxonomy.json" in names
    packages = {str(p.parent.relative_to(REPO)).replace("/", ".") for p in REPO.glob("uc_*/**/__init__.py")}
    assert {p for p in packages if f"{p.replace('.', '/')}/__init__.py" not in names} == set(), \
        "a package folder missing from [tool.setuptools] packages in pyproject.toml"
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "uc_tasks.lmms.register:register" in zipfile.ZipFile(wheel).read(entry_points).decode()
