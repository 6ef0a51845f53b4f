from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest
import torch

from cir_monai.data import synthetic_pair
from cir_monai.engines import RegistrationEvaluator
from cir_monai.metrics import mean_dice
from cir_monai.networks import CLapIRN


def test_evaluation_tables(tmp_path):
    pairs = []
    for seed in (1, 2):
        pair = synthetic_pair((32, 40, 32), seed=seed)
        paths = {"id": f"case{seed}"}
        for key, value in pair.items():
            path = tmp_path / f"{key}_{seed}.nii.gz"
            data = value[0, 0].numpy().astype(np.int16 if "label" in key else np.float32)
            nib.save(nib.Nifti1Image(data, np.diag([2.0, 2.0, 2.0, 1.0])), str(path))
            paths[key] = str(path)
        pairs.append((paths, pair))
    torch.manual_seed(0)
    net = CLapIRN(3, start_channels=2).eval()
    summary = RegistrationEvaluator(net, [p for p, _ in pairs], lams=(0.5, 5.0), output_dir=tmp_path / "eval",
                                    progress=False).run()
    assert list(summary["per_lam"]) == ["before", "0.5", "5"]
    before = np.mean([mean_dice(pair["moving_label"], pair["fixed_label"]).item() for _, pair in pairs])
    assert summary["per_lam"]["before"]["dice_mean"] == pytest.approx(before, abs=1e-6)
    assert summary["per_lam"]["before"]["jac_std"] == 0.0 and summary["per_lam"]["5"]["jac_std"] > 0
    assert summary["per_lam"]["before"]["hd95_mean"] > 0
    with open(tmp_path / "eval" / "case1.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["lam"] for r in rows] == ["before", "0.5", "5"]
    assert {"dice_mean", "hd95_mean", "jac_std", "folding_pct", "sdlogj", "seconds", "dice_1", "dice_2",
            "dice_3"} <= set(rows[0])
    assert json.loads((tmp_path / "eval" / "summary.json").read_text())["pairs"] == 2
    assert "| before |" in (tmp_path / "eval" / "summary.md").read_text()


def test_needs_labels(tmp_path):
    with pytest.raises(ValueError, match="lack them"):
        RegistrationEvaluator(CLapIRN(3, 2), [{"fixed": "a", "moving": "b"}], lams=(1.0,))
