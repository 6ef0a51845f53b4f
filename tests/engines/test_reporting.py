"""Reports: the per-pair CSV and the summary files, written from an evaluator's results."""

from __future__ import annotations

import csv
import json
import math

from cir_monai.engines.reporting import COLUMNS, write_pair_csv, write_report


def _row(lam, dice):
    return {"lam": lam, "dice_mean": dice, "hd95_mean": 2.0, "jac_std": 0.1, "folding_pct": 0.0, "sdlogj": 0.1,
            "epe_mm": math.nan, "seconds": 0.5}


def test_pair_csv_has_a_row_per_lambda_and_a_column_per_label(tmp_path):
    rows = [_row("before", 0.5), _row(1.0, 0.7)]
    path = write_pair_csv(tmp_path / "p.csv", rows, [1, 3], {"before": [0.4, 0.6], 1.0: [0.65, 0.75]})
    read = list(csv.DictReader(open(path)))
    assert list(read[0]) == [*COLUMNS, "dice_1", "dice_3"] and read[1]["dice_3"] == "0.75"


def test_report_marks_lambda_star_and_leaves_out_epe_without_truth(tmp_path):
    summary = {"pairs": 2, "per_lam": {"before": _row("before", 0.5), "1": _row(1.0, 0.7)},
               "per_label_dice": {"a": {"labels": [1], "before": [0.5], "1": [0.7]}}}
    md = write_report(tmp_path, summary, figures=False, lam_star=1.0, title="λ sweep", notes=["chosen by Dice"])
    text = md.read_text()
    assert "| 1 **(λ*)** | 0.700 |" in text and "EPE" not in text and "chosen by Dice" in text
    assert json.loads((tmp_path / "summary.json").read_text())["lam_star"] == 1.0
