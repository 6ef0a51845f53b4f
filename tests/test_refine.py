"""Per-pair refinement (cir_monai.refine) on a deformed phantom pair, from an untrained network's field."""

from __future__ import annotations

import pytest
import torch

from cir_monai.data import make_pair, phantom
from cir_monai.losses import CLapIRNLoss
from cir_monai.networks import CLapIRN, Warp
from cir_monai.refine import refine_ddf

SHAPE = (32, 40, 32)


@pytest.fixture(scope="module")
def start():
    """A deformed pair and a small untrained network's field for it (the starting point refinement improves)."""
    pair = make_pair(*phantom(SHAPE, seed=0), seed=3)
    moving, fixed = pair["moving"], pair["fixed"]
    torch.manual_seed(0)
    net = CLapIRN(3, start_channels=2).eval()
    with torch.no_grad():
        ddf = net(moving, fixed, 1.0)
    return moving, fixed, ddf


def objective(moving, fixed, ddf, lam):
    """The network's training objective at its finest level, as CLapIRNLoss computes it."""
    loss = CLapIRNLoss(3, 3)
    return float(loss.similarity[2](Warp()(moving, ddf), fixed) + lam * loss.smoothness(ddf))


def test_refinement_lowers_the_objective_it_minimises(start):
    moving, fixed, ddf = start
    refined, losses = refine_ddf(moving, fixed, ddf, 1.0, iterations=30, return_losses=True)
    assert losses[0] == pytest.approx(objective(moving, fixed, ddf, 1.0), abs=1e-5)
    assert losses[-1] == pytest.approx(objective(moving, fixed, refined, 1.0), abs=1e-5)
    # regression value: 30 steps at lr 0.1 lower it by ~0.1 on this pair (measured 0.12); half of that must hold
    assert losses[-1] < losses[0] - 0.05, losses[::10]
    assert refined.shape == ddf.shape and not torch.equal(refined, ddf)


def test_lambda_keeps_its_meaning(start):
    """At λ = 10 the objective's smoothness term holds the field back: it moves less than at λ = 0.1."""
    moving, fixed, ddf = start
    change = {lam: (refine_ddf(moving, fixed, ddf, lam, iterations=30) - ddf).abs().mean() for lam in (0.1, 10.0)}
    assert change[10.0] < 0.8 * change[0.1], change


def test_fast_paths_refine_as_the_reference_does_in_the_frame(start):
    """The default pipeline's frame settings (the update on the 2× grid at REFINE_LR): the fast objective (box sums,
    the smoothness's written-out gradient; the CPU default) and the reference (MONAI's NCC, autograd) take the same
    steps, to float rounding carried by Adam."""
    from cir_monai.refine import REFINE_GRID_FACTOR, REFINE_LR

    moving, fixed, ddf = start
    runs = {fast: refine_ddf(moving, fixed, ddf, 1.0, 10, lr=REFINE_LR, grid_factor=REFINE_GRID_FACTOR, fast=fast)
            for fast in (True, False)}
    assert torch.equal(runs[True], refine_ddf(moving, fixed, ddf, 1.0, 10, lr=REFINE_LR,
                                              grid_factor=REFINE_GRID_FACTOR))  # fast is the CPU's default
    moved = (runs[False] - ddf).abs().max()
    assert moved > 0.1 and (runs[True] - runs[False]).abs().max() < 1e-3 * moved


def test_deterministic_and_zero_steps_is_the_network(start):
    moving, fixed, ddf = start
    first = refine_ddf(moving, fixed, ddf, 1.0, iterations=5)
    assert torch.equal(first, refine_ddf(moving, fixed, ddf, 1.0, iterations=5))
    assert refine_ddf(moving, fixed, ddf, 1.0, iterations=0) is ddf
    with pytest.raises(ValueError, match="refine must be a whole number of steps >= 0, got -1"):
        refine_ddf(moving, fixed, ddf, 1.0, iterations=-1)


def test_coarse_update_grid(start):
    """grid_factor 2 optimises the update on a half-resolution grid; the objective still falls."""
    moving, fixed, ddf = start
    _, losses = refine_ddf(moving, fixed, ddf, 1.0, iterations=20, grid_factor=2, return_losses=True)
    assert losses[-1] < losses[0] - 0.02


def test_refine_on_grid_is_refine_ddf_on_the_brain_box_with_its_update_continued(start):
    """The last stage (register --fine-steps): refine_ddf at FINE_LR / FINE_GRID_FACTOR on the foreground box plus
    FINE_MARGIN; outside the box the update goes on as at the box's border (no seam); 0 steps is the identity."""
    from cir_monai.frame import FrameResampler
    from cir_monai.refine import FINE_GRID_FACTOR, FINE_LR, FINE_MARGIN, refine_on_grid

    moving, fixed, ddf = start
    pad = (12, 12, 12, 12, 12, 12)  # the phantom inside a wide empty border: the box is the phantom's
    moving, fixed = torch.nn.functional.pad(moving, pad), torch.nn.functional.pad(fixed, pad)
    ddf = torch.nn.functional.pad(ddf, pad, mode="replicate")
    assert refine_on_grid(moving, fixed, ddf, 1.0, 0) is ddf
    got = refine_on_grid(moving, fixed, ddf, 1.0, 4)
    box = FrameResampler(None, margin=FINE_MARGIN).foreground_box(fixed[0], moving[0])
    assert all(s.start > 0 and s.stop < n for s, n in zip(box, fixed.shape[2:]))  # a real crop
    crop = (slice(None), slice(None), *box)
    want = refine_ddf(moving[crop], fixed[crop], ddf[crop], 1.0, 4, lr=FINE_LR, grid_factor=FINE_GRID_FACTOR)
    assert torch.allclose(got[crop], want, atol=1e-6)
    # the box window sums (the fast path) against MONAI's convolution (the reference): the same refinement
    plain = refine_ddf(moving[crop], fixed[crop], ddf[crop], 1.0, 4, lr=FINE_LR, grid_factor=FINE_GRID_FACTOR,
                       fast=False)
    assert (want - plain).abs().max() < 1e-3 * (want - ddf[crop]).abs().max()
    update = got - ddf
    assert update[crop].abs().max() > 1e-3
    first = box[0].start
    assert torch.allclose(update[:, :, :first], update[:, :, first:first + 1].expand_as(update[:, :, :first]))
    with pytest.raises(ValueError, match="fine_steps must be a whole number"):
        refine_on_grid(moving, fixed, ddf, 1.0, -1)
