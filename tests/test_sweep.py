"""The λ* rule and the sweep's hand-off file."""

from __future__ import annotations

import json

import pytest

from cir_monai.sweep import read_lam_star, select_lambda


def test_select_lambda_rules():
    table = {"before": {"dice_mean": 0.4, "folding_pct": 0.0},
             "0": {"dice_mean": 0.70, "folding_pct": 0.5},   # best Dice but folds too much
             "1": {"dice_mean": 0.68, "folding_pct": 0.05},
             "4": {"dice_mean": 0.675, "folding_pct": 0.0},
             "8": {"dice_mean": 0.60, "folding_pct": 0.0}}
    assert select_lambda(table, max_folding=0.1) == 1.0
    assert select_lambda(table, max_folding=1.0) == 0.0
    assert select_lambda(table, max_folding=0.1, rule="smoothest", tolerance=0.01) == 4.0
    assert select_lambda(table, max_folding=0.1, rule="smoothest", tolerance=0.1) == 8.0
    with pytest.raises(ValueError, match=r"no λ keeps folding at or under 0.01 % .*lowest: 0.020 % at λ = 4"):
        select_lambda({k: dict(v, folding_pct=v["folding_pct"] + 0.02) for k, v in table.items()}, max_folding=0.01)
    with pytest.raises(ValueError, match="rule must be one of"):
        select_lambda(table, rule="best")


def test_read_lam_star(tmp_path):
    (tmp_path / "lam_star.json").write_text(json.dumps({"lam_star": 2.0}))
    assert read_lam_star(tmp_path) == 2.0 and read_lam_star(tmp_path / "lam_star.json") == 2.0
    with pytest.raises(FileNotFoundError, match="no λ sweep result at .*run `cir-monai sweep` first"):
        read_lam_star(tmp_path / "elsewhere")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="does not hold a λ"):
        read_lam_star(tmp_path / "bad.json")
