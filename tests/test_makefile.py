"""The Makefile's documented commands leave every shipped (tracked) file as it is."""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# the tiny run: 8 mm, 24³, one iteration per level, a 2-channel network (the recipe's shapes and switches unchanged)
TINY = ["--spacing", "8.0", "--spatial_size", "[24,24,24]", "--network_def#start_channels", "2",
        "--train#trainer#iterations", "[1,1,1]", "--num_validation", "1", "--num_test", "1", "--val_interval", "100"]


def _tracked_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True)
    return [name for name in listed.stdout.decode().split("\0") if name and (REPO / name).is_file()]


def _digests(root: Path, names: list[str]) -> dict[str, str]:
    return {name: hashlib.sha256((root / name).read_bytes()).hexdigest() for name in names}


def _make_line(target: str, marker: str) -> list[str]:
    """The command line of ``target`` that contains ``marker``, as ``make -n`` prints it (set-up not remade)."""
    printed = subprocess.run(["make", "-n", "-o", ".venv/.installed", target], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout
    lines = [line for line in printed.splitlines() if marker in line]
    assert len(lines) == 1, f"`make -n {target}` has {len(lines)} lines with {marker!r}:\n{printed}"
    return shlex.split(lines[0])


@pytest.mark.skipif(shutil.which("git") is None or shutil.which("make") is None, reason="needs git and make")
def test_demo_train_writes_no_tracked_file(tmp_path):
    """`make demo-train`'s own training line, run (tiny) in a copy of the repository, changes no tracked file.

    It used to pass `--train#trainer#bundle_model None`, which MONAI's `run` drops, so the trainer replaced the
    shipped bundle/models/model.pt with a toy model. The model must land in the line's output folder instead.
    """
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    names = _tracked_files()
    copy = tmp_path / "repo"
    for name in names:
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, copy / name)
    before = _digests(copy, names)

    command = _make_line("demo-train", "monai.bundle run training")
    assert command[0].endswith("python"), command  # $(PY) -m monai.bundle ...
    done = subprocess.run([sys.executable, *command[1:], *TINY], cwd=copy, capture_output=True, text=True,
                          env={**os.environ, "CIR_MONAI_DATA": str(copy / "data")}, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    changed = [name for name, digest in _digests(copy, names).items() if digest != before[name]]
    assert changed == [], f"the training line changed tracked files: {changed}"
    output = command[command.index("--output_dir") + 1]
    assert (copy / output / "model.pt").is_file()  # the model is where the line says it goes
