"""The λ* rule and the sweep's hand-off file."""

from __future__ import annotations

import json

import pytest

from cir_monai.sweep import read_lam_star, read_sweep, select_lambda


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


def test_read_sweep_gives_the_refinement_lam_star_was_chosen_for(tmp_path):
    (tmp_path / "lam_star.json").write_text(json.dumps({"lam_star": 1, "refine": 20, "fine_steps": 5,
                                                        "rule": "max_dice"}))
    assert read_sweep(tmp_path) == {"lam_star": 1.0, "refine": 20, "fine_steps": 5, "rule": "max_dice"}
    (tmp_path / "lam_star.json").write_text(json.dumps({"lam_star": 2.0}))  # before the refinement was recorded
    assert read_sweep(tmp_path)["refine"] == 0 and read_sweep(tmp_path)["fine_steps"] == 0


def test_the_default_rule_keeps_folding_under_half_a_percent():
    """The README's rule: the best Dice among the λ whose fields fold under 0.5 % of the voxels."""
    table = {"0": {"dice_mean": 0.90, "folding_pct": 8.2}, "0.1": {"dice_mean": 0.89, "folding_pct": 0.6},
             "0.5": {"dice_mean": 0.88, "folding_pct": 0.3}, "1": {"dice_mean": 0.87, "folding_pct": 0.01}}
    assert select_lambda(table) == 0.5
