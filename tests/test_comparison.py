"""The paper's %DSC / %std|J| (Table 1) on hand-made numbers, worked out by hand below."""

import numpy as np
import pytest

from cir_monai.comparison import (
    bootstrap_interval,
    markdown_per_lambda,
    markdown_table1,
    mean_abs_error_vs_baseline,
    mean_difference_vs_baseline,
    mean_over_seeds,
    per_lambda,
    percent_vs_baseline,
    relative_difference,
    table1,
    verdict,
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
    # signed: +0.08 − 0.10 + 0 + 0.05
    assert mean_difference_vs_baseline(rows(), "cond", baseline, key="dice_mean") == pytest.approx(0.03 / 4)


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


def test_mean_over_seeds_averages_each_number_per_method_pair_and_lambda():
    seeded = [{"method": "m", "pair": "a", "lam": 1.0, "dice_mean": d, "seed": s, "slice": 7}
              for s, d in ((0, 0.6), (1, 0.8))] + [{"method": "b", "pair": "a", "lam": 1.0, "dice_mean": 0.5}]
    merged = mean_over_seeds(seeded)
    assert merged == [{"method": "m", "pair": "a", "lam": 1.0, "dice_mean": pytest.approx(0.7), "slice": 7.0},
                      {"method": "b", "pair": "a", "lam": 1.0, "dice_mean": 0.5}]


def test_bootstrap_resamples_whole_clusters():
    """Two clusters of values 0 and 10 (three rows each): the mean's replicates are 0, 5 or 10 with probabilities
    1/4, 1/2, 1/4, so the 95 % interval is [0, 10]; one cluster has no spread at all."""
    rows = [{"method": "m", "pair": p, "v": v} for p, v in (("a", 0.0), ("b", 10.0)) for _ in range(3)]
    mean = lambda sample: float(np.mean([r["v"] for r in sample]))  # noqa: E731
    assert bootstrap_interval(rows, mean, n=400) == (5.0, 0.0, 10.0)
    assert bootstrap_interval(rows[:3], mean, n=50) == (0.0, 0.0, 0.0)


def test_bootstrap_keeps_a_method_paired_with_its_baseline_and_resamples_seeds():
    """%DSC of a method against its baseline is the same in every replicate when every pair gives +10 %, however the
    pairs are drawn; with two seeds of +0 % and +20 % (mean +10 %) the seed draws spread it over [0, 20]."""
    base = [{"method": baseline(1.0), "pair": p, "lam": 1.0, "dice_mean": 0.5} for p in "abcd"]
    cond = [{"method": "cond", "pair": p, "lam": 1.0, "dice_mean": 0.55} for p in "abcd"]

    def pct(sample):
        return percent_vs_baseline(mean_over_seeds(sample), "cond", baseline)

    estimate, low, high = bootstrap_interval(base + cond, pct, n=200)
    assert estimate == pytest.approx(10.0) and low == pytest.approx(10.0) and high == pytest.approx(10.0)
    seeded = base + [{**r, "dice_mean": d, "seed": s} for r in cond for s, d in ((0, 0.5), (1, 0.6))]
    estimate, low, high = bootstrap_interval(seeded, pct, seed_key="seed", n=400)
    assert estimate == pytest.approx(10.0) and low == pytest.approx(0.0) and high == pytest.approx(20.0)


@pytest.mark.parametrize("low, high, expect, margin, answer", [
    (0.5, 2.0, "above", 0.0, "agrees"), (-2.0, -0.5, "above", 0.0, "disagrees"), (-0.5, 2.0, "above", 0.0,
                                                                                   "cannot tell"),
    (-2.0, -0.5, "below", 0.0, "agrees"), (0.5, 2.0, "below", 0.0, "disagrees"),
    (-0.8, 0.9, "within", 1.0, "agrees"), (1.2, 3.0, "within", 1.0, "disagrees"), (0.5, 1.5, "within", 1.0,
                                                                                   "cannot tell"),
])
def test_verdict_reads_the_interval(low, high, expect, margin, answer):
    assert verdict(low, high, expect, margin) == answer


def test_bootstrap_relabels_the_matching_key_of_a_cluster_drawn_twice():
    """Slices (pair "a/0", "a/1") of one 3D pair (cluster "A"): a statistic that matches rows by ``pair`` sees both
    copies of a cluster drawn twice, so the mean of a constant difference stays that constant in every replicate."""
    cases = [("A", "a/0"), ("A", "a/1"), ("B", "b/0")]
    base = [{"method": baseline(1.0), "cluster": c, "pair": p, "lam": 1.0, "objective": 0.0} for c, p in cases]
    cond = [{"method": "cond", "cluster": c, "pair": p, "lam": 1.0, "objective": -0.2} for c, p in cases]

    def count(sample):
        return float(sum(1 for r in sample if r["method"] == "cond"))

    estimate, low, high = bootstrap_interval(base + cond, count, cluster_key="cluster", n=200)
    assert (estimate, low, high) == (3.0, 2.0, 4.0)  # clusters of sizes 2 and 1 drawn twice: 2..4 cases
    diff = bootstrap_interval(base + cond, lambda r: mean_difference_vs_baseline(r, "cond", baseline),
                              cluster_key="cluster", n=100)
    assert diff == pytest.approx((-0.2, -0.2, -0.2))


def test_paired_bootstrap_equals_the_reference_bootstrap():
    """The vectorised bootstrap draws the same replicates as :func:`bootstrap_interval` over rows: every statistic's
    replicates agree to rounding, with clusters of several cases, seeds resampled per method, and a λ subset."""
    from cir_monai.comparison import PairedBootstrap, mean_abs_error_vs_baseline

    rng = np.random.default_rng(3)
    cases = [(c, f"{c}/{k}") for c in "ABCD" for k in range(2)]
    lams = (0.1, 1.0)
    rows = [{"method": "identity", "cluster": c, "pair": p, "lam": "", "dice_mean": 0.4} for c, p in cases]
    models = (("cond", (0, 1, 2), lams), (baseline(0.1), (0, 1), (0.1,)), (baseline(1.0), (0,), (1.0,)))
    for method, seeds, at in models:
        rows += [{"method": method, "cluster": c, "pair": p, "lam": lam, "seed": s,
                  "dice_mean": float(rng.uniform(0.5, 0.9)), "jac_std": float(rng.uniform(0.05, 0.3))}
                 for c, p in cases for lam in at for s in seeds]
    fast = PairedBootstrap(rows, cluster_key="cluster", seed_key="seed", n=60, seed=5)
    for statistic, difference, key, subset in (
            (percent_vs_baseline, "percent", "dice_mean", None),
            (mean_abs_error_vs_baseline, "absolute", "jac_std", None),
            (mean_difference_vs_baseline, "signed", "dice_mean", None),
            (percent_vs_baseline, "percent", "jac_std", [0.1])):
        kwargs = {"key": key} | ({"lams": subset} if subset else {})
        collected = []

        def stat(sample, statistic=statistic, kwargs=kwargs):
            collected.append(statistic(mean_over_seeds(sample), "cond", baseline, **kwargs))
            return collected[-1]

        reference = bootstrap_interval(rows, stat, cluster_key="cluster", seed_key="seed", n=60, seed=5)
        replicates = fast.against_baseline("cond", baseline, key, difference, subset)
        np.testing.assert_allclose(replicates[1:], collected[:-1], rtol=1e-12, atol=1e-12)
        assert PairedBootstrap.interval(replicates) == pytest.approx(reference, rel=1e-12, abs=1e-12)


def test_paper_analysis_judges_each_claim_from_its_interval():
    """Made-up models whose answers are known: CIR-DM equals the baselines (claim 1 and the central check agree),
    CIR-CM is 5 % off in Dice but 30 % smoother at λ = 0.1 (claim 2 agrees, claim 4 cannot hold: its Dice is not
    comparable), concat has +2 % Dice and +10 % std|J| at λ ≥ 4 (claim 3 agrees twice)."""
    from cir_monai.comparison import markdown_analysis, paper_analysis

    rng = np.random.default_rng(0)
    lams = (0.1, 1.0, 4.0)
    cases = [(f"P{c}", f"P{c}/{k}") for c in range(6) for k in range(2)]
    truth = {(p, lam): (float(rng.uniform(0.6, 0.9)), float(rng.uniform(0.05, 0.3)), float(rng.uniform(-1, -0.5)))
             for _, p in cases for lam in lams}
    rows = [{"method": "identity", "cluster": c, "pair": p, "lam": "", "dice_mean": 0.5} for c, p in cases]

    def add(method, seed, lam, dice=1.0, jac=1.0, objective=0.0):
        for c, p in cases:
            d, j, o = truth[(p, lam)]
            rows.append({"method": method, "cluster": c, "pair": p, "lam": lam, "seed": seed, "dice_mean": d * dice,
                         "jac_std": j * jac, "objective": o + objective})

    for lam in lams:
        for seed in (0, 1):
            add(baseline(lam), seed, lam, dice=1.0 + 0.001 * seed)
        add("CIR-DM", 0, lam)
        add("CIR-CM", 0, lam, dice=0.95, jac=0.7 if lam == 0.1 else 1.0, objective=0.05)
        add("concat", 0, lam, dice=1.02 if lam >= 4 else 1.0, jac=1.1 if lam >= 4 else 1.0)
    result = paper_analysis(rows, lams, baseline, boot=200)
    verdicts = {c["claim"]: c["verdict"] for c in result["claims"]}
    assert result["noise_floor"]["pct_dsc"] == pytest.approx(0.1)
    assert verdicts["1. CIR-DM's Dice is comparable to the baselines' (paper: −0.19 %DSC)"] == "agrees"
    assert verdicts["2. CIR-DM tracks the baselines more closely than CIR-CM (MAE of Dice)"] == "agrees"
    assert verdicts["3. concat has higher DSC than the baselines at λ ≥ 4"] == "agrees"
    assert verdicts["3. concat has higher std|J| than the baselines at λ ≥ 4"] == "agrees"
    assert verdicts["4. CIR-CM at λ = 0.1: lower std|J| with comparable Dice"] == "disagrees"
    central = "Central (label-free): {} reaches the objective of the baseline trained at each λ"
    assert verdicts[central.format("CIR-DM")] == "agrees" and verdicts[central.format("CIR-CM")] == "disagrees"
    # the baselines seeds are x1 and x1.001: CIR-CM is -5.05 % on average, -5.00 to -5.10 % as seeds are drawn
    assert result["intervals"]["CIR-CM"]["pct_dsc"] == pytest.approx((-5.05, -5.05, -5.05), abs=0.05)
    assert "**agrees**" in markdown_analysis(result)
