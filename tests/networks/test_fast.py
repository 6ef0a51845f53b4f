"""The fast paths are equivalents of the plain path: same fields and gradients, switched by one flag."""

from __future__ import annotations

import pytest
import torch

from cir_monai.networks import CLapIRN
from cir_monai.networks.fast import fast_paths, fast_paths_enabled, set_fast_paths


def _net(**kwargs) -> CLapIRN:
    torch.manual_seed(0)
    net = CLapIRN(3, start_channels=3, **kwargs)
    with torch.no_grad():  # non-trivial styles, so the conditional norms matter
        for name, p in net.named_parameters():
            if "style" in name:
                p.normal_(0, 0.3)
    return net


def test_the_switch_restores_its_setting():
    assert fast_paths_enabled()
    with fast_paths(False):
        assert not fast_paths_enabled()
    assert fast_paths_enabled()
    set_fast_paths(False)
    try:
        assert not fast_paths_enabled()
    finally:
        set_fast_paths(True)


@pytest.mark.parametrize("lite", [False, True])
def test_evaluation_fields_are_the_same(lite):
    net = _net(lite=lite).eval()
    gen = torch.Generator().manual_seed(1)
    moving, fixed = torch.rand(1, 1, 24, 32, 28, generator=gen), torch.rand(1, 1, 24, 32, 28, generator=gen)
    with torch.no_grad():
        fast = net(moving, fixed, 2.0)
        with fast_paths(False):
            plain = net(moving, fixed, 2.0)
    # float32 summation order differs (matrix-product moments, composed convolution): measured ≤ 2e-5 voxel
    assert (fast - plain).abs().max() < 1e-4


def test_training_losses_and_gradients_are_the_same():
    """One training step's per-level outputs and parameter gradients, fast vs plain (oneDNN slabs included)."""
    gen = torch.Generator().manual_seed(2)
    moving, fixed = torch.rand(1, 1, 32, 40, 32, generator=gen), torch.rand(1, 1, 32, 40, 32, generator=gen)
    grads, losses = [], []
    for enabled in (True, False):
        net = _net().train()
        with fast_paths(enabled):
            out = net(moving, fixed, torch.tensor([3.0]))
            loss = sum(((lvl.warped - lvl.fixed) ** 2).mean() + lvl.ddf.pow(2).mean() for lvl in out.levels)
            loss.backward()
        losses.append(loss.item())
        grads.append({n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None})
    assert abs(losses[0] - losses[1]) < 1e-5 * abs(losses[1])
    fast, plain = grads
    assert fast.keys() == plain.keys() and len(fast) > 50
    # relative difference of each gradient (L2): float32 rounding, amplified through three levels of bilinear
    # warping (whose gradient in the sampling position is piecewise): measured ≤ 4.1e-3, median 9e-4
    worst = max(((fast[n] - plain[n]).norm() / plain[n].norm().clamp_min(1e-12)).item() for n in fast)
    assert worst < 2e-2, worst
