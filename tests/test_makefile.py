"""The Makefile's documented commands leave every shipped (tracked) file as it is."""

from __future__ import annotations

import csv
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
    lines = [line for line in printed.replace("\\\n", " ").splitlines() if marker in line]  # continued lines joined
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


def test_the_demo_registration_does_not_fold(tmp_path):
    """`make demo`'s own sweep and register lines (from `make -n demo`), the sweep on one embedded validation pair:
    register follows the sweep's λ* and refinement, and the field it writes folds under the README's 0.5 %.

    The demo used to score the network alone, pick λ* = 0, and register at λ = 0 with 50 refinement steps: 8 % of
    the voxels folded.
    """
    import json

    import nibabel as nib
    import numpy as np
    import torch

    from cir_monai.defaults import MAX_FOLDING_PCT, embedded_dir
    from cir_monai.metrics import jacobian_statistics
    from cir_monai.workflows import data_pairs

    validation = data_pairs("embedded", "validation")[:1]  # builds the embedded data set in data/ when missing
    (tmp_path / "data").symlink_to(embedded_dir().parent, target_is_directory=True)  # the lines' data/embedded/...
    datalist = tmp_path / "one_pair.json"
    datalist.write_text(json.dumps({"validation": validation}))
    env = {**os.environ, "CIR_MONAI_DATA": str(embedded_dir().parent)}
    sweep = _make_line("demo", "cir_monai sweep")
    register = _make_line("demo", "cir_monai register")
    for command, extra in ((sweep, ["--data", str(datalist)]), (register, [])):
        done = subprocess.run([sys.executable, *command[1:], *extra], cwd=tmp_path, capture_output=True, text=True,
                              env=env, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
    star = json.loads((tmp_path / "runs" / "sweep" / "lam_star.json").read_text())
    assert star["refine"] > 0  # the sweep scored the refined pipeline
    assert "--refine" not in register  # so register follows the sweep's refinement
    (written,) = (tmp_path / "runs" / "register").glob(f"*/lam_{star['lam_star']:g}/ddf.nii.gz")
    ddf = np.asarray(nib.load(str(written)).dataobj, dtype=np.float32)[..., 0, :]  # (X, Y, Z, 3) in voxels
    folding = float(jacobian_statistics(torch.from_numpy(ddf).permute(3, 0, 1, 2)[None])["folding_pct"][0])
    assert folding < MAX_FOLDING_PCT, (star, folding)
    # one pipeline: register's field of the sweep's own pair folds exactly as the sweep scored it
    from cir_monai.engines.inference import RegistrationRunner
    from cir_monai.io import load_network

    (scored,) = (tmp_path / "runs" / "sweep").glob("*.csv")
    rows = {row["lam"]: row for row in csv.DictReader(scored.open())}
    record = RegistrationRunner(load_network(None), validation, lams=[star["lam_star"]], output_dir=tmp_path / "again",
                                refine=star["refine"], progress=False).run()
    (again,) = [per_lam[star["lam_star"]]["folding_pct"] for per_lam in record.values()]
    assert again == pytest.approx(float(rows[f"{star['lam_star']:g}"]["folding_pct"]), abs=1e-4)
