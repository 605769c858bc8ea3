"""The wheel carries every template, task file and data file a non-editable install needs."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import REPO


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
    assert "uc_tasks/taxonomy.json" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "uc_tasks.lmms.register:register" in zipfile.ZipFile(wheel).read(entry_points).decode()
