"""The model zoo's own checks on the bundle, with their default ids, run from a folder outside the repository."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import cir_monai
from cir_monai.export import load_bundle_network

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "bundle"
CONFIGS = BUNDLE / "configs"
META = CONFIGS / "metadata.json"


def _bundle_command(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "monai.bundle", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return proc


def test_verify_metadata_offline(tmp_path):
    _bundle_command("verify_metadata", "--meta_file", str(META), "--filepath", str(CONFIGS / "meta_schema.json"),
                    cwd=tmp_path)
    broken = json.loads(META.read_text())
    broken["network_data_format"]["inputs"]["image"]["spatial_shape"] = ["8*m", 8, 8]  # not a size expression
    (tmp_path / "bad.json").write_text(json.dumps(broken))
    proc = subprocess.run([sys.executable, "-m", "monai.bundle", "verify_metadata", "--meta_file",
                           str(tmp_path / "bad.json"), "--filepath", str(CONFIGS / "meta_schema.json")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode != 0 and "8*m" in proc.stdout + proc.stderr


def test_metadata_names_the_real_package_and_the_network_io():
    meta = json.loads(META.read_text())
    assert meta["required_packages_version"]["cir-monai"] == cir_monai.__version__
    io = meta["network_data_format"]
    assert io["outputs"]["pred"]["type"] != "image"  # a DDF: Deploy squeezes and casts "image" outputs to uint8
    assert io["inputs"]["image"]["num_channels"] == 2 and io["inputs"]["image"]["spatial_shape"] == ["*", "*", "*"]
    assert io["inputs"]["lam"]["value_range"] == [0, 10]
    assert set(meta["supported_apps"]) == {"monai-label", "monai-deploy-app-sdk"}


def test_verify_net_in_out_with_default_ids(tmp_path):
    """`verify_net_in_out network_def` on inference.yaml; "*" sizes are tried at --any (an odd size: any size works)."""
    _bundle_command("verify_net_in_out", "network_def", "--meta_file", str(META), "--config_file",
                    str(CONFIGS / "inference.yaml"), "--bundle_root", str(BUNDLE), "--device", "cpu", "--any", "27",
                    cwd=tmp_path)


def test_ckpt_export_with_default_ids(tmp_path):
    """`ckpt_export network_def` on the shipped plain state dict; the trace serves other sizes (λ = network_def#lam)."""
    out = tmp_path / "exported.ts"
    _bundle_command("ckpt_export", "network_def", "--filepath", str(out), "--ckpt_file",
                    str(BUNDLE / "models" / "model.pt"), "--meta_file", str(META), "--config_file",
                    str(CONFIGS / "inference.yaml"), "--bundle_root", str(BUNDLE), "--use_trace", "True",
                    "--input_shape", "[1,2,48,56,48]", cwd=tmp_path)
    traced = torch.jit.load(str(out))
    eager = load_bundle_network(BUNDLE)
    image = torch.rand(1, 2, 40, 48, 44, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (traced(image) - eager(image)).abs().max() < 1e-4


def test_stacked_network_names_a_wrong_input():
    eager = load_bundle_network(BUNDLE)
    with pytest.raises(ValueError, match=r"\(B, 2, \*spatial\)"):
        eager(torch.rand(1, 1, 8, 8, 8))
