# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Compare a conditional model with fixed-λ baselines the way the paper's Table 1 does.

Mok & Chung (MICCAI 2021), Sec. 3 and Table 1: for each test case and each λ, a method's Dice and
std|J| are compared with those of the baseline (LapIRN) trained at that λ, as a relative difference
in percent; %DSC and %std|J| are the means of those differences over every case and λ. So
%DSC is not the difference of the mean Dice values: a case that both register badly weighs as much
as one they both register well.

Rows are plain dicts with at least ``method``, ``pair``, ``lam`` and the metric columns (Dice
``dice_mean`` and ``jac_std`` by default), one per (method, test case, λ); baselines are the rows of
one method name per λ (``baseline_method(λ)``). Rows without a λ (``""``: the identity, "before") are ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence

import numpy as np

__all__ = ["relative_difference", "percent_vs_baseline", "mean_abs_error_vs_baseline", "table1", "per_lambda",
           "markdown_table1", "markdown_per_lambda", "mean_over_seeds", "bootstrap_interval", "PairedBootstrap",
           "verdict", "mean_difference_vs_baseline", "paper_analysis", "markdown_analysis"]


def relative_difference(value: float, baseline: float) -> float:
    """``100 · (value − baseline) / baseline``: the paper's per-case relative difference, in percent."""
    if baseline == 0:
        raise ValueError("the baseline's value is 0: a relative difference is undefined")
    return 100.0 * (float(value) - float(baseline)) / float(baseline)


def _index(rows: Iterable[dict], key: str) -> dict[tuple, float]:
    return {(r["method"], r["pair"], float(r["lam"])): float(r[key]) for r in rows if r["lam"] not in ("", None)}


def _pairs_with_baseline(rows: Sequence[dict], method: str, baseline_method: Callable[[float], str], key: str):
    values = _index(rows, key)
    for (name, pair, lam), value in values.items():
        if name != method:
            continue
        base = values.get((baseline_method(lam), pair, lam))
        if base is None:
            raise KeyError(f"no baseline row for {method!r} at pair {pair!r}, λ {lam:g}: "
                           f"expected method {baseline_method(lam)!r}")
        yield lam, value, base


def _mean_against_baseline(rows: Sequence[dict], method: str, baseline_method: Callable[[float], str], key: str,
                           difference: Callable[[float, float], float], lams: Sequence[float] | None = None) -> float:
    """The mean over (test case, λ) of ``difference(method's value, the baseline's at that λ)``."""
    diffs = [difference(v, b) for lam, v, b in _pairs_with_baseline(rows, method, baseline_method, key)
             if lams is None or any(np.isclose(lam, x) for x in lams)]
    if not diffs:
        raise ValueError(f"no rows of method {method!r}" + (f" at λ {list(lams)}" if lams is not None else ""))
    return float(np.mean(diffs))


def percent_vs_baseline(rows: Sequence[dict], method: str, baseline_method: Callable[[float], str],
                        key: str = "dice_mean", lams: Sequence[float] | None = None) -> float:
    """The paper's %DSC (``key="dice_mean"``) or %std|J| (``key="jac_std"``) of ``method``.

    The mean over every (test case, λ) of :func:`relative_difference` of ``method``'s value against
    the value of the baseline trained at that λ on the same case; ``lams`` restricts the λ values.
    """
    return _mean_against_baseline(rows, method, baseline_method, key, relative_difference, lams)


def mean_abs_error_vs_baseline(rows: Sequence[dict], method: str, baseline_method: Callable[[float], str],
                               key: str = "dice_mean") -> float:
    """Mean over (test case, λ) of ``|method − baseline at that λ|`` in the metric's own units (Fig. 3's MAE)."""
    return _mean_against_baseline(rows, method, baseline_method, key, lambda v, b: abs(v - b))


def mean_difference_vs_baseline(rows: Sequence[dict], method: str, baseline_method: Callable[[float], str],
                                key: str = "objective") -> float:
    """Mean over (test case, λ) of ``method − baseline at that λ`` in the metric's own units, signed (e.g. the
    objective a conditional model reaches against the one the baseline trained at that λ reaches: < 0 is better)."""
    return _mean_against_baseline(rows, method, baseline_method, key, lambda v, b: v - b)


def _mean(rows: Sequence[dict], methods: set[str], key: str) -> float:
    """The mean of ``key`` over the rows of ``methods`` that have it (NaN when none has: e.g. no timings)."""
    values = [r[key] for r in rows if r["method"] in methods and key in r]
    return float(np.mean(values)) if values else float("nan")


def table1(rows: Sequence[dict], conditional: Sequence[str], baseline_method: Callable[[float], str],
           lams: Sequence[float], seconds: dict[str, float] | None = None) -> list[dict]:
    """The rows of the paper's Table 1: ``Initial`` (the ``identity`` rows' Dice), ``Baseline`` (every fixed-λ
    model at its own λ) and each ``conditional`` method: mean DSC and std|J| over every case and λ, %DSC and
    %std|J| (:func:`percent_vs_baseline`), the MAE of Dice and of std|J| (:func:`mean_abs_error_vs_baseline`,
    Fig. 3), and, from ``seconds`` (method → training seconds), the training hours and test seconds."""
    seconds = seconds or {}
    baselines = {baseline_method(lam) for lam in lams}
    table = [{"method": "Initial", "dsc": _mean(rows, {"identity"}, "dice_mean")},
             {"method": "Baseline", "dsc": _mean(rows, baselines, "dice_mean"),
              "jac_std": _mean(rows, baselines, "jac_std"),
              "train_h": sum(seconds.get(n, float("nan")) for n in baselines) / 3600,
              "test_s": _mean(rows, baselines, "seconds")}]
    for name in conditional:
        table.append({
            "method": name, "dsc": _mean(rows, {name}, "dice_mean"), "jac_std": _mean(rows, {name}, "jac_std"),
            "pct_dsc": percent_vs_baseline(rows, name, baseline_method),
            "pct_jac": percent_vs_baseline(rows, name, baseline_method, key="jac_std"),
            "mae_dsc": mean_abs_error_vs_baseline(rows, name, baseline_method),
            "mae_jac": mean_abs_error_vs_baseline(rows, name, baseline_method, key="jac_std"),
            "train_h": seconds.get(name, float("nan")) / 3600, "test_s": _mean(rows, {name}, "seconds")})
    return table


def per_lambda(rows: Sequence[dict], conditional: Sequence[str], baseline_method: Callable[[float], str],
               lams: Sequence[float]) -> dict[str, dict[float, dict]]:
    """Mean DSC and std|J| per method and λ (the baselines as one method, ``"Baseline"``), with %DSC and %std|J|
    at that λ for the ``conditional`` methods."""
    out: dict[str, dict[float, dict]] = {}
    for lam in lams:
        at = [r for r in rows if r["lam"] not in ("", None) and np.isclose(float(r["lam"]), lam)]
        out.setdefault("Baseline", {})[lam] = {"dsc": _mean(at, {baseline_method(lam)}, "dice_mean"),
                                                "jac_std": _mean(at, {baseline_method(lam)}, "jac_std")}
        for name in conditional:
            out.setdefault(name, {})[lam] = {
                "dsc": _mean(at, {name}, "dice_mean"), "jac_std": _mean(at, {name}, "jac_std"),
                "pct_dsc": percent_vs_baseline(rows, name, baseline_method, lams=[lam]),
                "pct_jac": percent_vs_baseline(rows, name, baseline_method, key="jac_std", lams=[lam])}
    return out


def _fmt(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


def markdown_table1(table: Sequence[dict], paper: dict | None = None) -> str:
    """:func:`table1` as markdown, beside the paper's values (``paper``: method → (DSC, %DSC, std|J|, %std|J|,
    training h, test s))."""
    paper = paper or {}
    lines = ["| method | DSC | %DSC | std\\|J\\| | %std\\|J\\| | MAE DSC | MAE std\\|J\\| | Ttrain h | Ttest s | "
             "paper: DSC | %DSC | std\\|J\\| | %std\\|J\\| | Ttrain h | Ttest s |", "|---" * 15 + "|"]
    for row in table:
        ours = [f"{row['dsc']:.3f}", _fmt(row.get("pct_dsc"), "+.2f"), _fmt(row.get("jac_std"), ".3f"),
                _fmt(row.get("pct_jac"), "+.2f"), _fmt(row.get("mae_dsc"), ".4f"), _fmt(row.get("mae_jac"), ".4f"),
                _fmt(row.get("train_h"), ".2f"), _fmt(row.get("test_s"), ".2f")]
        theirs = [_fmt(v, spec) for v, spec in zip(paper.get(row["method"], (None,) * 6),
                                                   (".3f", "+.2f", ".3f", "+.2f", ".1f", ".3f"))]
        lines.append(f"| {row['method']} | " + " | ".join(ours + theirs) + " |")
    return "\n".join(lines)


def markdown_per_lambda(lam_table: dict[str, dict[float, dict]]) -> str:
    """:func:`per_lambda` as markdown: DSC then std|J| per method, the conditional ones with their % at that λ."""
    methods = list(lam_table)
    lams = list(next(iter(lam_table.values())))
    lines = ["| λ | " + " | ".join(f"{m} DSC" for m in methods) + " | "
             + " | ".join(f"{m} std\\|J\\|" for m in methods) + " |", "|---" * (1 + 2 * len(methods)) + "|"]
    for lam in lams:
        cells = [f"{lam_table[m][lam]['dsc']:.3f}" + (f" ({lam_table[m][lam]['pct_dsc']:+.1f} %)"
                                                      if "pct_dsc" in lam_table[m][lam] else "") for m in methods]
        cells += [f"{lam_table[m][lam]['jac_std']:.3f}" + (f" ({lam_table[m][lam]['pct_jac']:+.0f} %)"
                                                           if "pct_jac" in lam_table[m][lam] else "") for m in methods]
        lines.append(f"| {lam:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def mean_over_seeds(rows: Sequence[dict], seed_key: str = "seed") -> list[dict]:
    """Rows of several training seeds of a method made one row per (method, pair, λ): the mean of each number over
    the seeds (the first row's other entries kept, ``seed_key`` dropped). Rows without ``seed_key`` pass through."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["method"], row["pair"], row["lam"]), []).append(row)
    out = []
    for group in groups.values():
        merged = {k: v for k, v in group[0].items() if k != seed_key}
        for key, value in group[0].items():
            if key != seed_key and isinstance(value, (int, float)) and not isinstance(value, bool) and key != "lam":
                merged[key] = float(np.mean([r[key] for r in group]))
        out.append(merged)
    return out


def bootstrap_interval(rows: Sequence[dict], statistic: Callable[[list[dict]], float], cluster_key: str = "pair",
                       seed_key: str | None = None, n: int = 2000, level: float = 0.95, seed: int = 0,
                       relabel: Sequence[str] = ("pair",)) -> tuple[float, float, float]:
    """``statistic(rows)`` and its percentile bootstrap interval, resampling whole clusters of rows (the test pairs:
    the slices of one 3D pair are one cluster) and, with ``seed_key``, each method's training seeds.

    Each replicate draws the clusters with replacement (a cluster drawn twice appears twice, relabelled so its rows
    stay apart and a method's row keeps meeting its baseline's row of the same draw) and, with ``seed_key``, for
    each method as many of its seeds as it has, with replacement (the statistic averages over seeds, e.g. through
    :func:`mean_over_seeds`). ``relabel``: the keys (besides ``cluster_key``) that a cluster drawn twice gets
    relabelled in, so that the statistic's matching of rows (by ``pair``) keeps the copies apart.

    Returns:
        ``(estimate, low, high)``: the statistic on ``rows`` and the ``level`` interval of ``n`` replicates.
    """
    rng = np.random.default_rng(seed)
    clusters: list[Hashable] = list(dict.fromkeys(r[cluster_key] for r in rows))
    by_cluster = {c: [r for r in rows if r[cluster_key] == c] for c in clusters}
    seeds: dict[str, list] = {}
    if seed_key is not None:
        for row in rows:
            if seed_key in row:
                seeds.setdefault(row["method"], [])
                if row[seed_key] not in seeds[row["method"]]:
                    seeds[row["method"]].append(row[seed_key])
    keys = dict.fromkeys((cluster_key, *relabel))

    def tag(row: dict, j: int) -> dict:
        return {k: (row[k], j) for k in keys if k in row}

    replicates = []
    for _ in range(int(n)):
        draw = {m: rng.choice(len(s), size=len(s)) for m, s in seeds.items()}
        sample = []
        for j, i in enumerate(rng.integers(len(clusters), size=len(clusters))):
            for row in by_cluster[clusters[int(i)]]:
                if seed_key is not None and row["method"] in draw:
                    copies = [k for k, d in enumerate(draw[row["method"]])
                              if seeds[row["method"]][d] == row[seed_key]]
                    sample += [{**row, **tag(row, j), seed_key: (row[seed_key], k)} for k in copies]
                else:
                    sample.append({**row, **tag(row, j)})
        replicates.append(statistic(sample))
    low, high = np.quantile(replicates, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(statistic(list(rows))), float(low), float(high)


#: :class:`PairedBootstrap`'s differences of a method's value ``v`` against its baseline's ``b``, per (case, λ)
DIFFERENCES: dict[str, Callable] = {
    "percent": lambda v, b: 100.0 * (v - b) / b,  # percent_vs_baseline
    "absolute": lambda v, b: np.abs(v - b),  # mean_abs_error_vs_baseline
    "signed": lambda v, b: v - b,  # mean_difference_vs_baseline
}


class PairedBootstrap:
    """:func:`bootstrap_interval` of the statistics against baselines, vectorised: the same replicates (the same
    random draws, in the same order) as ``bootstrap_interval(rows, lambda s: statistic(mean_over_seeds(s)),
    cluster_key, seed_key, n, seed=seed)`` for the statistics :func:`percent_vs_baseline`,
    :func:`mean_abs_error_vs_baseline` and :func:`mean_difference_vs_baseline`, in seconds instead of minutes.

    Why a second path: the reference rebuilds every replicate as rows and matches them in Python (18 minutes for
    the 2D reproduction's 9 models, 2,000 replicates); here a replicate is a weight per test case (how many times
    its cluster was drawn) and per training seed (how many times that seed was drawn), and every statistic is a
    weighted mean over an array ``(seeds, cases, λ)`` per method. Tested equal to the reference.

    Args:
        rows: as for :func:`bootstrap_interval`: one per (method, case ``pair``, λ, seed), with ``cluster_key``; the
            rows without a λ (the identity) are ignored. Every method must have a row for every case at its λs.
        keys: the metric columns to hold.
        cluster_key, seed_key, n, seed: as for :func:`bootstrap_interval`.
    """

    def __init__(self, rows: Sequence[dict], keys: Sequence[str] = ("dice_mean", "jac_std"),
                 cluster_key: str = "pair", seed_key: str | None = "seed", n: int = 2000, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        clusters = list(dict.fromkeys(r[cluster_key] for r in rows))  # as bootstrap_interval orders them
        seeds: dict[str, list] = {}
        if seed_key is not None:
            for row in rows:
                if seed_key in row and row[seed_key] not in seeds.setdefault(row["method"], []):
                    seeds[row["method"]].append(row[seed_key])
        rows = [r for r in rows if r["lam"] not in ("", None)]
        self.cases = list(dict.fromkeys(r["pair"] for r in rows))
        self.lams = sorted({float(r["lam"]) for r in rows})
        case_index = {c: i for i, c in enumerate(self.cases)}
        cluster_of_case = {r["pair"]: r[cluster_key] for r in rows}
        cluster_of = np.array([clusters.index(cluster_of_case[c]) for c in self.cases])
        self.values: dict[str, dict[str, np.ndarray]] = {}
        for r in rows:  # one array (seeds, cases, λ) per method and key; NaN where a method has no row
            own = seeds.get(r["method"], [None])
            arrays = self.values.setdefault(r["method"], {k: np.full((len(own), len(self.cases), len(self.lams)),
                                                                     np.nan) for k in keys})
            at = (own.index(r[seed_key]) if seed_key in r else 0, case_index[r["pair"]],
                  self.lams.index(float(r["lam"])))
            for k in keys:
                arrays[k][at] = float(r[k])
        # the weights of replicate 0 (the rows as they are) and of the n replicates, drawn as bootstrap_interval does
        # (a method without seeds has the one weight 1 in every replicate: _averaged)
        seed_weights = {m: [np.ones(len(own))] for m, own in seeds.items()}
        case_weights = [np.ones(len(self.cases))]
        for _ in range(int(n)):
            for m, own in seeds.items():
                seed_weights[m].append(np.bincount(rng.choice(len(own), size=len(own)), minlength=len(own)))
            counts = np.bincount(rng.integers(len(clusters), size=len(clusters)), minlength=len(clusters))
            case_weights.append(counts[cluster_of].astype(float))
        self.case_weights = np.stack(case_weights)  # (1 + n, cases)
        self.seed_weights = {m: np.stack(w).astype(float) for m, w in seed_weights.items()}  # (1 + n, seeds)

    def _averaged(self, method: str, key: str) -> np.ndarray:
        """``(1 + n, cases, λ)``: the method's value, its seeds averaged with each replicate's seed weights."""
        if method not in self.values:
            raise KeyError(f"no rows of method {method!r}")
        weights = self.seed_weights.get(method, np.ones((len(self.case_weights), 1)))
        return np.einsum("rs,scl->rcl", weights, self.values[method][key]) / weights.shape[1]

    def against_baseline(self, method: str, baseline_method: Callable[[float], str], key: str = "dice_mean",
                         difference: str = "percent", lams: Sequence[float] | None = None) -> np.ndarray:
        """The statistic on the rows (item 0) and on each replicate (items 1..n): the mean over (case, λ) of
        :data:`DIFFERENCES` ``[difference]`` of ``method``'s value against the baseline's at that λ."""
        chosen = [j for j, lam in enumerate(self.lams) if lams is None or any(np.isclose(lam, x) for x in lams)]
        value = self._averaged(method, key)
        base = np.stack([self._averaged(baseline_method(self.lams[j]), key)[:, :, j] for j in chosen], axis=-1)
        diff = DIFFERENCES[difference](value[:, :, chosen], base)  # (1 + n, cases, chosen λ)
        if np.isnan(diff).any():
            raise ValueError(f"{method!r} or its baselines lack rows for some case at λ "
                             f"{[self.lams[j] for j in chosen]}")
        weights = self.case_weights
        return (weights[:, :, None] * diff).sum(axis=(1, 2)) / (weights.sum(axis=1) * len(chosen))

    @staticmethod
    def interval(replicates: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
        """``(estimate, low, high)`` from :meth:`against_baseline`'s array (or a difference of two of them)."""
        low, high = np.quantile(replicates[1:], [(1 - level) / 2, 1 - (1 - level) / 2])
        return float(replicates[0]), float(low), float(high)


def verdict(low: float, high: float, expect: str, margin: float = 0.0) -> str:
    """A claim judged by a confidence interval ``[low, high]`` of its statistic: ``"agrees"``, ``"disagrees"`` or
    ``"cannot tell"`` (the interval straddles the boundary).

    Args:
        expect: ``"above"`` (the claim: the statistic exceeds ``margin``), ``"below"`` (it is under ``-margin``) or
            ``"within"`` (it lies in ``[-margin, margin]``: an equivalence claim, e.g. "comparable Dice").
        margin: the boundary, in the statistic's units (``>= 0``).
    """
    if expect == "above":
        return "agrees" if low > margin else "disagrees" if high < margin else "cannot tell"
    if expect == "below":
        return "agrees" if high < -margin else "disagrees" if low > -margin else "cannot tell"
    if expect == "within":
        if -margin <= low and high <= margin:
            return "agrees"
        return "disagrees" if high < -margin or low > margin else "cannot tell"
    raise ValueError(f"expect must be 'above', 'below' or 'within', got {expect!r}")


def paper_analysis(rows: list[dict], lams: Sequence[float], baseline_method: Callable[[float], str],
                   conditional: Sequence[str] = ("concat", "CIR-CM", "CIR-DM"), boot: int = 2000) -> dict:
    """The 2D reproduction's analysis of the paper's claims (``bench/paper_2d.py analyse``, issue 31).

    Table 1 (:func:`table1`) and the per-λ table of the models' seed means; for each conditional model the 95 %
    bootstrap intervals (:class:`PairedBootstrap`: over test pairs, ``cluster``, and each model's seeds) of %DSC,
    %std|J|, the MAE of Dice and of std|J| (Fig. 3) and of the label-free objective's excess over the baseline trained
    at each λ (``objective``: similarity + λ · smoothness, lower is better); the noise floor (a baseline's seed 1
    against its seed 0); and each claim judged by :func:`verdict` from its interval:

    1. CIR-DM's Dice is comparable: %DSC within ± max(1 %, the noise floor);
    2. CIR-DM tracks the baselines more closely than CIR-CM: CIR-CM's MAE − CIR-DM's > 0 (Dice and std|J|);
    3. concat has higher Dice and std|J| than the baselines at λ ≥ 4;
    4. at λ = 0.1 a conditional model has lower std|J| with comparable Dice;
    central: each conditional model reaches the baselines' own objective (its excess ≤ 0.01, or below 0).

    Args:
        rows: one per (method, test case ``pair``, λ, ``seed``) with ``cluster``, ``dice_mean``, ``jac_std`` and
            ``objective``; the baselines named ``baseline_method(λ)``, the unregistered rows ``method="identity"``
            with ``lam=""``.
        lams: the λ values analysed (those with a baseline).
        conditional: the conditional models' names, those present are analysed.
        boot: bootstrap replicates.
    """
    baseline_name = baseline_method
    lams = [lam for lam in lams if any(r["method"] == baseline_name(lam) for r in rows)]
    conditional = [m for m in conditional if any(r["method"] == m for r in rows)]
    rows = [r for r in rows if r["lam"] == "" or any(np.isclose(r["lam"], lam) for lam in lams)]
    merged = mean_over_seeds(rows)

    # the replicates of every statistic against the baselines (comparison.PairedBootstrap: bootstrap_interval's
    # draws, vectorised): over the test pairs (a pair's slices together) and each model's seeds
    boot_table = PairedBootstrap(rows, ("dice_mean", "jac_std", "objective"), cluster_key="cluster",
                                 seed_key="seed", n=boot)

    def reps(method, key="dice_mean", difference="percent", at=None):
        return boot_table.against_baseline(method, baseline_name, key, difference, at)

    ci = PairedBootstrap.interval

    result = {"lams": lams, "table1": table1(merged, conditional, baseline_name, lams),
              "per_lambda": {m: {f"{k:g}": v for k, v in d.items()}
                             for m, d in per_lambda(merged, conditional, baseline_name, lams).items()},
              "intervals": {}}
    for m in conditional:
        result["intervals"][m] = {
            "pct_dsc": ci(reps(m)),
            "pct_jac": ci(reps(m, "jac_std")),
            "mae_dsc": ci(reps(m, "dice_mean", "absolute")),
            "mae_jac": ci(reps(m, "jac_std", "absolute")),
            "objective_minus_baseline": ci(reps(m, "objective", "signed")),
        }
    # the noise floor: a baseline's second seed against its first, as %DSC and MAE (what "no difference" looks like)
    baselines = {baseline_name(lam) for lam in lams}
    seeds = [{**r, "method": "seed 1" if r["seed"] == 1 else baseline_name(r["lam"])} for r in rows
             if r["method"] in baselines and r.get("seed") in (0, 1)]
    if any(r["method"] == "seed 1" for r in seeds):
        result["noise_floor"] = {"pct_dsc": abs(percent_vs_baseline(seeds, "seed 1", baseline_name)),
                                 "mae_dsc": mean_abs_error_vs_baseline(seeds, "seed 1", baseline_name),
                                 "mae_jac": mean_abs_error_vs_baseline(seeds, "seed 1", baseline_name, key="jac_std")}
    margin = max(1.0, result.get("noise_floor", {}).get("pct_dsc", 0.0))
    claims = []
    if "CIR-DM" in conditional:
        low, high = result["intervals"]["CIR-DM"]["pct_dsc"][1:]
        claims.append(("1. CIR-DM's Dice is comparable to the baselines' (paper: −0.19 %DSC)", "%DSC", low, high,
                       verdict(low, high, "within", margin), f"within ±{margin:.2f} %"))
    if {"CIR-DM", "CIR-CM"} <= set(conditional):
        for key, what in (("dice_mean", "MAE of Dice"), ("jac_std", "MAE of std|J|")):
            diff = ci(reps("CIR-CM", key, "absolute") - reps("CIR-DM", key, "absolute"))
            claims.append((f"2. CIR-DM tracks the baselines more closely than CIR-CM ({what})",
                           f"CIR-CM − CIR-DM {what}", diff[1], diff[2], verdict(diff[1], diff[2], "above"), "> 0"))
    large = [lam for lam in lams if lam >= 4]
    if "concat" in conditional and large:
        for key, what in (("dice_mean", "%DSC"), ("jac_std", "%std|J|")):
            est = ci(reps("concat", key, "percent", large))
            claims.append((f"3. concat has higher {what[1:]} than the baselines at λ ≥ 4", f"{what} at λ ≥ 4",
                           est[1], est[2], verdict(est[1], est[2], "above"), "> 0"))
    for m in [c for c in ("CIR-DM", "CIR-CM") if c in conditional and 0.1 in lams]:
        jac = ci(reps(m, "jac_std", "percent", [0.1]))
        dsc = ci(reps(m, "dice_mean", "percent", [0.1]))
        both = verdict(jac[1], jac[2], "below") if verdict(dsc[1], dsc[2], "within", margin) == "agrees" else (
            "disagrees" if verdict(dsc[1], dsc[2], "within", margin) == "disagrees" else "cannot tell")
        claims.append((f"4. {m} at λ = 0.1: lower std|J| with comparable Dice", "%std|J| (%DSC)", jac[1], jac[2],
                       both, f"%std|J| < 0 and %DSC in {dsc[1]:+.2f}..{dsc[2]:+.2f} within ±{margin:.2f}"))
    for m in conditional:
        low, high = result["intervals"][m]["objective_minus_baseline"][1:]
        claims.append((f"Central (label-free): {m} reaches the objective of the baseline trained at each λ",
                       "objective − baseline's", low, high, verdict(low, high, "below", 0.0)
                       if high < 0 else verdict(low, high, "within", 0.01), "≤ 0.01 (or below 0)"))
    result["claims"] = [dict(zip(("claim", "statistic", "low", "high", "verdict", "rule"), c)) for c in claims]
    return result


def markdown_analysis(result: dict) -> str:
    """:func:`paper_analysis` as markdown: Table 1, the per-λ table, the intervals, the noise floor, the claims."""
    lines = [markdown_table1(result["table1"]), "",
             markdown_per_lambda({m: {float(k): v for k, v in d.items()} for m, d in result["per_lambda"].items()}),
             "", "| method | %DSC (95 % CI) | %std\\|J\\| | MAE DSC | MAE std\\|J\\| | objective − baseline's |",
             "|---|---|---|---|---|---|"]
    for m, iv in result["intervals"].items():
        lines.append(f"| {m} | " + " | ".join(f"{e:+.3f} [{lo:+.3f}, {hi:+.3f}]" for e, lo, hi in iv.values()) + " |")
    if "noise_floor" in result:
        lines += ["", "Noise floor (a baseline's second seed against its first): " + ", ".join(
            f"{k} {v:.4f}" for k, v in result["noise_floor"].items())]
    lines += ["", "| claim | statistic | 95 % CI | rule | verdict |", "|---|---|---|---|---|"]
    lines += [f"| {c['claim']} | {c['statistic']} | [{c['low']:+.4f}, {c['high']:+.4f}] | {c['rule']} | "
              f"**{c['verdict']}** |".replace("|J|", "\\|J\\|") for c in result["claims"]]
    return "\n".join(lines)
