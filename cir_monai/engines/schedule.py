# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Progressive training schedule and λ sampling (docs/method.md §4)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = ["LevelSchedule", "sample_lambda"]


@dataclass(frozen=True)
class LevelSchedule:
    """Which pyramid levels train at a given iteration.

    Level 1 alone for ``iterations[0]`` steps, then level 2 for ``iterations[1]`` steps with the
    lower levels frozen for the first ``freeze_steps`` of them, then level 3 likewise
    (the paper: 30k / 30k / 60k iterations, 3,000 frozen steps).

    Args:
        iterations: steps per level, coarse to fine.
        freeze_steps: steps at the start of each level > 1 during which the lower levels are frozen.
    """

    iterations: Sequence[int] = (30000, 30000, 60000)
    freeze_steps: int = 3000

    def __post_init__(self) -> None:
        if not self.iterations or any(int(n) < 1 for n in self.iterations):
            raise ValueError(f"iterations per level must be positive integers, got {list(self.iterations)}")
        if self.freeze_steps < 0:
            raise ValueError(f"freeze_steps must be >= 0, got {self.freeze_steps}")

    @property
    def total(self) -> int:
        return int(sum(self.iterations))

    def scaled_to(self, total: int) -> "LevelSchedule":
        """The same proportions over ``total`` iterations (each level at least 1; ``freeze_steps`` scaled too).

        How ``max_epochs`` of a bundle (MONAI Label's ``train#trainer#max_epochs``) becomes a schedule.
        """
        total = max(int(total), len(self.iterations))
        weights = [n / self.total for n in self.iterations]
        counts = [max(1, int(w * total)) for w in weights]
        counts[-1] = max(1, total - sum(counts[:-1]))
        freeze = min(self.freeze_steps, int(self.freeze_steps * total / self.total))
        return LevelSchedule(tuple(counts), freeze)

    def starts_level(self, iteration: int) -> bool:
        """Whether the 1-based ``iteration`` is the first of a level > 1 (where the authors start a fresh Adam)."""
        starts = [sum(self.iterations[:i]) + 1 for i in range(1, len(self.iterations))]
        return int(iteration) in starts

    def lr_factor(self, iteration: int, final: float = 1.0) -> float:
        """The learning rate's factor at the 1-based ``iteration``: 1 until the last level, then a cosine from 1 down
        to ``final`` over the last level's steps (``final`` = 1: constant, the paper's). A pure function of the step,
        so a resumed run continues on the same curve."""
        if final == 1.0:
            return 1.0
        start = self.total - int(self.iterations[-1])
        progress = min(max((int(iteration) - start) / max(1, int(self.iterations[-1])), 0.0), 1.0)
        return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def at(self, iteration: int) -> tuple[int, bool]:
        """``(active_levels, lower_levels_frozen)`` for the 1-based ``iteration``."""
        start = 0
        for level, count in enumerate(self.iterations, start=1):
            if iteration <= start + count:
                return level, level > 1 and iteration - start <= self.freeze_steps
            start += count
        return len(self.iterations), False


def sample_lambda(
    iteration: int, batch: int, lam_max: float = 10.0, mode: str = "uniform", seed: int = 0, lam_min: float = 0.01
) -> torch.Tensor:
    """λ for every sample of one iteration, a pure function of ``(seed, iteration)`` (exact resume).

    Args:
        mode: ``"uniform"`` on [0, lam_max] (the paper) or ``"loguniform"`` on [lam_min, lam_max].

    Returns:
        ``(batch,)`` float32.
    """
    gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(iteration))
    u = torch.rand(batch, generator=gen)
    if mode == "uniform":
        return u * lam_max
    if mode == "loguniform":
        return torch.exp(math.log(lam_min) + u * (math.log(lam_max) - math.log(lam_min)))
    raise ValueError(f"lam sampling must be 'uniform' or 'loguniform', got {mode!r}")
