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

from collections.abc import Callable, Iterable, Sequence

import numpy as np

__all__ = ["relative_difference", "percent_vs_baseline", "mean_abs_error_vs_baseline"]


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


def percent_vs_baseline(rows: Sequence[dict], method: str, baseline_method: Callable[[float], str],
                        key: str = "dice_mean", lams: Sequence[float] | None = None) -> float:
    """The paper's %DSC (``key="dice_mean"``) or %std|J| (``key="jac_std"``) of ``method``.

    The mean over every (test case, λ) of :func:`relative_difference` of ``method``'s value against
    the value of the baseline trained at that λ on the same case; ``lams`` restricts the λ values.
    """
    diffs = [relative_difference(v, b) for lam, v, b in _pairs_with_baseline(rows, method, baseline_method, key)
             if lams is None or any(np.isclose(lam, x) for x in lams)]
    if not diffs:
        raise ValueError(f"no rows of method {method!r}" + (f" at λ {list(lams)}" if lams is not None else ""))
    return float(np.mean(diffs))


def mean_abs_error_vs_baseline(rows: Sequence[dict], method: str, baseline_method: Callable[[float], str],
                               key: str = "dice_mean") -> float:
    """Mean over (test case, λ) of ``|method − baseline at that λ|`` in the metric's own units (Fig. 3's MAE)."""
    diffs = [abs(v - b) for _, v, b in _pairs_with_baseline(rows, method, baseline_method, key)]
    if not diffs:
        raise ValueError(f"no rows of method {method!r}")
    return float(np.mean(diffs))
