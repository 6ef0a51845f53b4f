"""A model file whose pickle would run code is refused, with one line naming it, on every path that reads one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cir_monai.data import RandomPairDataset, phantom
from cir_monai.engines import CLapIRNTrainer
from cir_monai.io import load_network
from cir_monai.io.models import convert_checkpoint
from cir_monai.networks import CLapIRN

ROOT = Path(__file__).resolve().parents[1]


def test_cli_register_refuses_it(unsafe_model, tmp_path):
    path, marker = unsafe_model
    image = str(ROOT / "bundle" / "atlas" / "atlas_image.nii.gz")
    proc = subprocess.run([sys.executable, "-m", "cir_monai", "register", image, image, "--model", str(path),
                           "--out", str(tmp_path / "o")], capture_output=True, text=True, cwd=ROOT, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("cir-monai: error:") and "downloaded.pt was refused" in lines[0]
    assert not marker.exists() and not (tmp_path / "o").exists()


def test_python_api_and_convert_refuse_it(unsafe_model, tmp_path):
    path, marker = unsafe_model
    with pytest.raises(ValueError, match="downloaded.pt was refused"):
        load_network(path)
    with pytest.raises(ValueError, match="downloaded.pt was refused"):
        convert_checkpoint(path, tmp_path / "converted.pt")
    assert not marker.exists() and not (tmp_path / "converted.pt").exists()


@pytest.mark.parametrize("how", ["resume", "init_from"])
def test_training_refuses_it(unsafe_model, tmp_path, how):
    path, marker = unsafe_model
    out = tmp_path / "run"
    out.mkdir()
    if how == "resume":  # a checkpoint.pt planted in the output folder
        (out / "checkpoint.pt").write_bytes(path.read_bytes())
    data = RandomPairDataset(*phantom((16, 16, 16), seed=0), pool_size=2)
    trainer = CLapIRNTrainer(CLapIRN(3, start_channels=2, num_levels=1), data, out, iterations=(1,), freeze_steps=0,
                             init_from=path if how == "init_from" else None)
    with pytest.raises(ValueError, match="was refused: it holds Python objects"):
        trainer.run()
    assert not marker.exists()


def test_bundle_inference_refuses_it(unsafe_model, tmp_path):
    """The bundle's atlas workflow (its frame is read weights-only from ckpt_path before MONAI's CheckpointLoader runs)
    refuses the file and names it, and nothing in the file runs."""
    path, marker = unsafe_model
    image = ROOT / "bundle" / "atlas" / "atlas_image.nii.gz"
    proc = subprocess.run([sys.executable, "-m", "monai.bundle", "run",
                           "--config_file", "bundle/configs/inference.yaml", "--bundle_root", "bundle",
                           "--ckpt_path", str(path), "--datalist", f"['{image}']",
                           "--output_dir", str(tmp_path / "seg")],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode != 0
    assert "downloaded.pt was refused" in proc.stderr, proc.stderr[-2000:]  # the message, in MONAI's traceback
    assert not marker.exists()
