from __future__ import annotations

import pytest
import torch

from cir_monai.engines import LevelSchedule, sample_lambda


def test_level_schedule_boundaries():
    s = LevelSchedule((3, 4, 5), freeze_steps=2)
    assert s.total == 12
    assert [s.at(k) for k in (1, 3)] == [(1, False), (1, False)]
    assert [s.at(k) for k in (4, 5, 6, 7)] == [(2, True), (2, True), (2, False), (2, False)]
    assert [s.at(k) for k in (8, 9, 10, 12)] == [(3, True), (3, True), (3, False), (3, False)]
    with pytest.raises(ValueError, match="iterations per level"):
        LevelSchedule((3, 0))


@pytest.mark.parametrize("mode,low", [("uniform", 0.0), ("loguniform", 0.01)])
def test_lambda_sampling_is_a_function_of_the_iteration(mode, low):
    draws = torch.cat([sample_lambda(k, 4, 10.0, mode, seed=1) for k in range(200)])
    assert draws.min() >= low and draws.max() <= 10.0 and draws.std() > 1.0
    assert torch.equal(sample_lambda(17, 4, 10.0, mode, seed=1), sample_lambda(17, 4, 10.0, mode, seed=1))
    assert not torch.equal(sample_lambda(17, 4, 10.0, mode, seed=1), sample_lambda(18, 4, 10.0, mode, seed=1))
    with pytest.raises(ValueError, match="lam sampling"):
        sample_lambda(0, 1, mode="normal")


def test_schedule_scaled_to_a_number_of_steps():
    """max_epochs → steps: the levels keep their proportions, each gets at least one, the total is exact."""
    schedule = LevelSchedule((300, 200, 40), 20)
    scaled = schedule.scaled_to(54)
    assert scaled.total == 54 and scaled.iterations == (30, 20, 4) and scaled.freeze_steps == 2
    assert schedule.scaled_to(2).iterations == (1, 1, 1)


def test_starts_level_marks_the_first_step_of_each_later_level():
    schedule = LevelSchedule((4, 3, 3), 1)
    assert [k for k in range(1, 11) if schedule.starts_level(k)] == [5, 8]
    assert not LevelSchedule((5,), 0).starts_level(1)


def test_the_last_levels_learning_rate_decay():
    """1 through the lower levels, then a cosine over the last level from 1 to ``final`` (half-way at its middle);
    constant with final = 1 (the paper's)."""
    schedule = LevelSchedule((4, 4, 20), 2)
    factors = [schedule.lr_factor(k, 0.1) for k in range(1, 29)]
    assert factors[:8] == [1.0] * 8
    assert factors[8] < 1.0 and factors[-1] == pytest.approx(0.1)
    assert schedule.lr_factor(18, 0.1) == pytest.approx(0.55)
    assert all(a >= b for a, b in zip(factors, factors[1:]))
    assert {schedule.lr_factor(k) for k in range(1, 29)} == {1.0}
