"""MONAI's bundle checks on the bundle: metadata schema, network input/output, TorchScript export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from monai.bundle import ckpt_export, verify_metadata, verify_net_in_out

from cir_monai.engines import save_checkpoint
from cir_monai.networks import CLapIRN, StackedCLapIRN

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "bundle" / "configs"
SCHEMA = CONFIGS / "meta_schema.json"


def test_verify_metadata_offline(tmp_path):
    verify_metadata(meta_file=str(CONFIGS / "metadata.json"), filepath=str(SCHEMA))
    broken = json.loads((CONFIGS / "metadata.json").read_text())
    del broken["version"]
    (tmp_path / "bad.json").write_text(json.dumps(broken))
    with pytest.raises(Exception, match="version"):
        verify_metadata(meta_file=str(tmp_path / "bad.json"), filepath=str(SCHEMA))


def test_verify_net_in_out():
    verify_net_in_out(net_id="network_io_def", meta_file=str(CONFIGS / "metadata.json"),
                      config_file=str(CONFIGS / "train.yaml"), device="cpu", n=2, p=3,
                      **{"network_def#start_channels": 2})


def test_ckpt_export_traced_equals_eager(tmp_path):
    torch.manual_seed(0)
    net = CLapIRN(3, start_channels=2)
    save_checkpoint({"model": net.state_dict(), "network": net.config}, tmp_path / "model.pt")
    ckpt_export(net_id="network_io_def", filepath=str(tmp_path / "model.ts"), ckpt_file=str(tmp_path / "model.pt"),
                key_in_ckpt="model", meta_file=str(CONFIGS / "metadata.json"), config_file=str(CONFIGS / "train.yaml"),
                use_trace=True, input_shape=[1, 2, 32, 40, 32], **{"network_def#start_channels": 2})
    traced = torch.jit.load(str(tmp_path / "model.ts"))
    eager = StackedCLapIRN(3, start_channels=2, lam=1.0).eval()
    eager.load_state_dict(net.state_dict())
    image = torch.rand(1, 2, 32, 40, 32)
    with torch.no_grad():
        assert torch.allclose(traced(image), eager(image), atol=1e-5)
    with pytest.raises(ValueError, match=r"\(B, 2, \*spatial\)"):
        eager(torch.rand(1, 1, 8, 8, 8))
