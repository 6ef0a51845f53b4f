"""The paper's %DSC / %std|J| (Table 1) on hand-made numbers, worked out by hand below."""

import pytest

from cir_monai.comparison import (
    markdown_per_lambda,
    markdown_table1,
    mean_abs_error_vs_baseline,
    per_lambda,
    percent_vs_baseline,
    relative_difference,
    table1,
)


def baseline(lam: float) -> str:
    return f"baseline λ={lam:g}"


def rows():
    # two cases, two λ; the baselines differ per λ, as the paper's seven fixed-λ models do
    table = [
        # method, pair, lam, dice, jac_std
        ("baseline λ=1", "a", 1.0, 0.80, 1.00),
        ("baseline λ=1", "b", 1.0, 0.40, 0.50),
        ("baseline λ=4", "a", 4.0, 0.50, 0.20),
        ("baseline λ=4", "b", 4.0, 0.50, 0.40),
        ("cond", "a", 1.0, 0.88, 0.90),  # +10 %, −10 %
        ("cond", "b", 1.0, 0.30, 0.50),  # −25 %, 0 %
        ("cond", "a", 4.0, 0.50, 0.30),  # 0 %, +50 %
        ("cond", "b", 4.0, 0.55, 0.40),  # +10 %, 0 %
    ]
    return [{"method": m, "pair": p, "lam": lam, "dice_mean": d, "jac_std": j} for m, p, lam, d, j in table]


def test_relative_difference_is_percent_of_the_baseline():
    assert relative_difference(0.88, 0.8) == pytest.approx(10.0)
    assert relative_difference(0.3, 0.4) == pytest.approx(-25.0)
    with pytest.raises(ValueError, match="baseline's value is 0"):
        relative_difference(1.0, 0.0)


def test_percent_dsc_is_the_mean_of_per_case_per_lambda_differences():
    # (10 − 25 + 0 + 10) / 4 = −1.25 %; the difference of the means would be
    # (0.5575 − 0.55) / 0.55 = +1.36 %, a different sign: the test tells the two apart
    assert percent_vs_baseline(rows(), "cond", baseline) == pytest.approx(-1.25)
    assert percent_vs_baseline(rows(), "cond", baseline, key="jac_std") == pytest.approx((-10 + 0 + 50 + 0) / 4)
    assert percent_vs_baseline(rows(), "cond", baseline, lams=[4.0]) == pytest.approx(5.0)


def test_mae_is_in_the_metrics_units():
    assert mean_abs_error_vs_baseline(rows(), "cond", baseline) == pytest.approx((0.08 + 0.10 + 0.0 + 0.05) / 4)


def test_a_missing_baseline_is_named():
    incomplete = [r for r in rows() if not (r["method"] == "baseline λ=4" and r["pair"] == "b")]
    with pytest.raises(KeyError, match="pair 'b', λ 4: expected method 'baseline λ=4'"):
        percent_vs_baseline(incomplete, "cond", baseline)


def timed_rows():
    identity = [{"method": "identity", "pair": p, "lam": "", "dice_mean": d, "jac_std": 0.0, "seconds": 0.0}
                for p, d in (("a", 0.3), ("b", 0.5))]
    return identity + [{**r, "seconds": 2.0 if r["method"] == "cond" else 1.0} for r in rows()]


def test_table1_rows_from_hand_made_numbers():
    table = table1(timed_rows(), ["cond"], baseline, [1.0, 4.0], seconds={"cond": 7200.0, "baseline λ=1": 3600.0,
                                                                        "baseline λ=4": 1800.0})
    initial, base, cond = table
    assert initial == {"method": "Initial", "dsc": pytest.approx(0.4)}
    assert base["dsc"] == pytest.approx(0.55) and base["jac_std"] == pytest.approx(0.525)
    assert base["train_h"] == pytest.approx(1.5) and base["test_s"] == pytest.approx(1.0)
    assert cond["dsc"] == pytest.approx(0.5575) and cond["pct_dsc"] == pytest.approx(-1.25)
    assert cond["pct_jac"] == pytest.approx(10.0)
    assert cond["mae_dsc"] == pytest.approx(0.0575) and cond["mae_jac"] == pytest.approx((0.1 + 0 + 0.1 + 0) / 4)
    assert cond["train_h"] == pytest.approx(2.0) and cond["test_s"] == pytest.approx(2.0)
    assert "| cond | 0.557 | -1.25 |" in markdown_table1(table).replace("+", "")


def test_per_lambda_compares_each_lambda_with_its_own_baseline():
    table = per_lambda(timed_rows(), ["cond"], baseline, [1.0, 4.0])
    assert table["Baseline"][1.0] == {"dsc": pytest.approx(0.6), "jac_std": pytest.approx(0.75)}
    assert table["cond"][4.0]["pct_dsc"] == pytest.approx(5.0) and table["cond"][4.0]["pct_jac"] == pytest.approx(25.0)
    assert table["cond"][1.0]["dsc"] == pytest.approx(0.59)
    lines = markdown_per_lambda(table).splitlines()
    assert lines[2].startswith("| 1 | 0.600 | 0.590 (-7.5 %) |")
