"""The package stands on its own: its wheel, installed as a user installs it, registers a pair from another folder.

The venv starts with only pip and torch (the CPU build on this machine's disk, as requirements.txt pins it); pip
then installs the wheel and resolves every dependency ``pyproject.toml`` declares from the package registry, as a
user's ``pip install cir_monai-*.whl`` does. A dependency missing from ``pyproject.toml`` fails here
(``ModuleNotFoundError``), and ``pip check`` must find nothing broken. The checkout is not on the path: the shipped
model, the bundle configs and the overlays must come from the wheel.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _pip(python: Path, *args: str) -> None:
    proc = subprocess.run([str(python), "-m", "pip", *args], capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, (" ".join(args), proc.stdout[-2000:] + proc.stderr[-3000:])


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    work = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(work / "dist"), str(ROOT)], check=True, capture_output=True, cwd=work, timeout=600)
    wheel = next((work / "dist").glob("cir_monai-*.whl"))
    subprocess.run([sys.executable, "-m", "venv", str(work / "venv")], check=True, timeout=300)
    python = work / "venv" / "bin" / "python"
    # torch first, the build this environment runs (pip's configured find-links hold it on disk), so resolving the
    # wheel's own dependencies does not pull a multi-GB CUDA build; then the wheel, dependencies resolved by pip
    _pip(python, "install", "-q", f"torch=={torch.__version__.split('+')[0]}")
    _pip(python, "install", "-q", str(wheel))
    _pip(python, "check")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIR_MONAI") and k != "PYTHONPATH"}
    env["CIR_MONAI_CACHE"] = str(work / "cache")  # the user cache: where the embedded data build
    return work, work / "venv" / "bin", env


def test_only_declared_dependencies_are_installed(installed):
    """The environment holds what pip resolved from the wheel's metadata, nothing from the development set."""
    work, bin_dir, env = installed
    listed = subprocess.run([str(bin_dir / "python"), "-m", "pip", "list", "--format=freeze"], check=True,
                            capture_output=True, text=True).stdout.lower()
    assert "pytorch-ignite==" in listed and "cir-monai==" in listed
    assert "pytest==" not in listed and "parameterized==" not in listed  # development-only packages stay out


def test_installed_package_comes_from_the_wheel_with_its_bundle(installed):
    work, bin_dir, env = installed
    out = subprocess.run([str(bin_dir / "python"), "-c",
                          "import cir_monai, cir_monai.defaults as d; print(cir_monai.__file__); "
                          "print(d.bundle_root());"
                          "print(d.default_model().is_file(), d.installed('configs').is_dir(), "
                          "d.installed('docs').is_dir())"],
                         check=True, capture_output=True, text=True, cwd=work, env=env).stdout.split("\n")
    assert out[0].startswith(str(work / "venv")) and out[1].startswith(str(work / "venv")), out
    assert out[2] == "True True True"


def test_register_from_another_folder_with_the_defaults(installed, tmp_path):
    """`cir-monai register` with the shipped model on an embedded pair built into the user cache."""
    work, bin_dir, env = installed
    build = subprocess.run([str(bin_dir / "python"), "-m", "cir_monai.data", "prepare"], capture_output=True,
                           text=True, cwd=tmp_path, env=env, timeout=900)
    assert build.returncode == 0, build.stderr[-2000:]
    pair = work / "cache" / "embedded" / "test" / "pair_000"
    proc = subprocess.run([str(bin_dir / "cir-monai"), "register", str(pair / "fixed.nii.gz"),
                           str(pair / "moving.nii.gz"),
                           "--moving-label", str(pair / "moving_label.nii.gz"), "--out", "out"],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    warped = nib.load(str(next((tmp_path / "out").rglob("warped_label.nii.gz"))))
    assert warped.shape == nib.load(str(pair / "fixed.nii.gz")).shape


def test_sweep_evaluate_and_train_from_another_folder(installed, tmp_path):
    """The other commands with the installed configs and model (small settings: 2 λ, a 3-iteration run with an
    overlay named as in configs/, so the overlays must be installed too)."""
    work, bin_dir, env = installed
    cli = str(bin_dir / "cir-monai")
    commands = [
        [cli, "sweep", "--lams", "1,4", "--out", "sweep"],
        [cli, "evaluate", "--lams", "1", "--out", "evaluate"],
        [cli, "train", "--config", "variants/cir_cm", "--out", "train", "--spacing", "8.0",
         "--spatial_size", "[24,24,24]", "--network_def#start_channels", "2", "--train#trainer#iterations", "[1,1,1]",
         "--train#trainer#freeze_steps", "0", "--num_validation", "1", "--num_test", "1", "--val_interval", "3",
         "--dataset_dir", str(tmp_path / "tiny")],
    ]
    for command in commands:
        proc = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900)
        assert proc.returncode == 0, (" ".join(command[1:2]), (proc.stdout + proc.stderr)[-3000:])
    assert (tmp_path / "sweep" / "lam_star.json").is_file() and (tmp_path / "evaluate" / "summary.md").is_file()
    assert (tmp_path / "train" / "model.pt").is_file()
