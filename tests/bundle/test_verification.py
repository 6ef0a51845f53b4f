"""The model zoo's own checks on the bundle, with their default ids, run from a folder outside the repository."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import cir_monai
from cir_monai.io.export import load_bundle_network

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "bundle"
CONFIGS = BUNDLE / "configs"
META = CONFIGS / "metadata.json"


def _bundle_command(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "monai.bundle", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return proc


@pytest.fixture(scope="module")
def zoo_copy(tmp_path_factory):
    """A copy of bundle/ in a folder outside the repository, as the model zoo's CI checks it out."""
    import shutil

    root = tmp_path_factory.mktemp("zoo") / "cir_monai_atlas"
    shutil.copytree(BUNDLE, root)
    return root


def test_verify_metadata_as_the_zoo_calls_it(zoo_copy):
    _bundle_command("verify_metadata", "--meta_file", "configs/metadata.json", "--filepath", "configs/meta_schema.json",
                    cwd=zoo_copy)
    broken = json.loads(META.read_text())
    broken["network_data_format"]["inputs"]["image"]["spatial_shape"] = ["8*m", 8, 8]  # not a size expression
    (zoo_copy / "bad.json").write_text(json.dumps(broken))
    proc = subprocess.run([sys.executable, "-m", "monai.bundle", "verify_metadata", "--meta_file", "bad.json",
                           "--filepath", "configs/meta_schema.json"],
                          capture_output=True, text=True, cwd=zoo_copy, timeout=300)
    assert proc.returncode != 0 and "8*m" in proc.stdout + proc.stderr


def test_metadata_names_the_real_package_and_the_network_io():
    meta = json.loads(META.read_text())
    assert meta["required_packages_version"]["cir-monai"] == cir_monai.__version__
    io = meta["network_data_format"]
    assert io["outputs"]["pred"]["type"] != "image"  # a DDF: Deploy squeezes and casts "image" outputs to uint8
    # the zoo's size pattern: its default dummy input is 32³ (n = 1), which the 3-level network takes (the network
    # itself takes any size; "*" made a 1×1×1 dummy input, too small for instance norm at the coarsest level)
    assert io["inputs"]["image"]["num_channels"] == 2 and io["inputs"]["image"]["spatial_shape"] == ["32*n"] * 3
    assert io["inputs"]["lam"]["value_range"] == [0, 10]
    assert set(meta["supported_apps"]) == {"monai-label", "monai-deploy-app-sdk"}


def test_verify_net_in_out_as_the_zoo_calls_it(zoo_copy):
    """`verify_net_in_out network_def` with no extra arguments: the default dummy input (32³ from "32*n")."""
    _bundle_command("verify_net_in_out", "network_def", "--meta_file", "configs/metadata.json", "--config_file",
                    "configs/inference.yaml", "--bundle_root", ".", cwd=zoo_copy)


@pytest.mark.parametrize("trace", [False, True])
def test_ckpt_export_as_the_zoo_calls_it(zoo_copy, trace):
    """`ckpt_export network_def` with no extra arguments (MONAI scripts the network: StackedCLapIRN hands it the
    checked trace) and with `--use_trace True` (MONAI traces at the metadata's 32³); the result serves other sizes,
    with the default λ (network_def#lam) and, scripted, with λ as an input."""
    out = zoo_copy / f"exported_{trace}.ts"
    _bundle_command("ckpt_export", "network_def", "--filepath", out.name, "--ckpt_file", "models/model.pt",
                    "--meta_file", "configs/metadata.json", "--config_file", "configs/inference.yaml", "--bundle_root",
                    ".", *(["--use_trace", "True"] if trace else []), cwd=zoo_copy)
    exported = torch.jit.load(str(out))
    eager = load_bundle_network(BUNDLE)
    image = torch.rand(1, 2, 40, 48, 44, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (exported(image) - eager(image)).abs().max() < 1e-4
        if not trace:
            assert (exported(image, torch.tensor([4.0])) - eager(image, 4.0)).abs().max() < 1e-4


def test_stacked_network_names_a_wrong_input():
    eager = load_bundle_network(BUNDLE)
    with pytest.raises(ValueError, match=r"\(B, 2, \*spatial\)"):
        eager(torch.rand(1, 1, 8, 8, 8))
