"""The package stands on its own: its wheel, installed in a fresh venv, registers a pair from another folder.

The venv gets cir-monai from the wheel only (``--no-deps``); its dependencies come from this test's own
environment through a ``.pth`` file, so nothing is downloaded. The checkout is not on the path: the
shipped model, the bundle configs and the overlays must come from the wheel.
"""

from __future__ import annotations

import os
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import nibabel as nib
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    work = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(work / "dist"), str(ROOT)], check=True, capture_output=True, cwd=work, timeout=600)
    wheel = next((work / "dist").glob("cir_monai-*.whl"))
    subprocess.run([sys.executable, "-m", "venv", str(work / "venv")], check=True, timeout=300)
    python = work / "venv" / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True,
                   capture_output=True, timeout=600)
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    deps = [p for p in site.getsitepackages() + [sysconfig.get_paths()["purelib"]] if Path(p).is_dir()]
    (Path(purelib) / "cir_monai_test_deps.pth").write_text("\n".join(dict.fromkeys(deps)) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIR_MONAI") and k != "PYTHONPATH"}
    env["CIR_MONAI_CACHE"] = str(work / "cache")  # the user cache: where the embedded data build
    return work, work / "venv" / "bin", env


def test_installed_package_comes_from_the_wheel_with_its_bundle(installed):
    work, bin_dir, env = installed
    out = subprocess.run([str(bin_dir / "python"), "-c",
                          "import cir_monai, cir_monai.defaults as d; print(cir_monai.__file__); print(d.bundle_root());"
                          "print(d.default_model().is_file(), d.installed('configs').is_dir(), d.installed('docs').is_dir())"],
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
    proc = subprocess.run([str(bin_dir / "cir-monai"), "register", str(pair / "fixed.nii.gz"), str(pair / "moving.nii.gz"),
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
