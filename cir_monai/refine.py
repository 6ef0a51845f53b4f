# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Per-pair refinement of a predicted field (instance optimisation), in the model's frame.

The network's field is a good start, not the optimum of its own objective for the pair at hand. :func:`refine_ddf`
takes it as the starting point and minimises, with Adam, the very objective the network was trained with at its
finest level (docs/method.md §4; :class:`~cir_monai.losses.CLapIRNLoss`):

``L(u) = Σ_i −(1/2^i) · NCC_{w_i}(pool^i(F), pool^i(M ∘ u)) + λ · smooth(u)``

(windows 7, 5, 3 for a 3-level network; ``smooth`` is the mean squared forward difference of the field in voxels
×2, the authors' scaling), so λ keeps its meaning after refinement: the same λ that the network was conditioned
on weighs the smoothness term here. The warp is the network's (bilinear, border padding).

The field's update can be optimised on a coarser grid (``grid_factor`` 2: half the frame's resolution, upsampled
trilinearly for every evaluation of the objective at full resolution), which keeps the update smooth; the objective
is still evaluated on the full-resolution images. The default pipeline does so (:data:`REFINE_GRID_FACTOR`,
:data:`REFINE_LR`: Adam's rate 0.2, in voxels of the frame per step): on the held-out hard group 30 such steps
score 0.859 Dice against 0.851 for 50 steps on every voxel at 0.1, with a lower end-point error (1.08 against
1.21 mm) and less folding (docs/results.md, "A coarser update"). The per-voxel update sat in a local optimum near the
network's field; a smooth update moves whole regions per step. Deterministic for a fixed seed and device up to the
backend's own nondeterminism (none on the CPU).

:func:`refine_on_grid` is an optional last stage (``register --fine-steps N``): the same objective for a few more
steps on the fixed image's own grid (1 mm for the held-out pairs, twice the frame's resolution), cropped to the
brain's box, with the update on a grid twice as coarse (the frame's). Measured in docs/results.md ("A last stage at
the fixed image's resolution").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm import tqdm

from cir_monai.frame import FrameResampler
from cir_monai.losses import CLapIRNLoss

__all__ = ["refine_ddf", "refine_on_grid", "refine_steps", "REFINE_LR", "REFINE_GRID_FACTOR", "FINE_LR",
           "FINE_GRID_FACTOR", "FINE_MARGIN"]

#: the default pipeline's refinement (``register``, the sweep, the bundle's workflows): Adam's rate in voxels of the
#: frame per step and the update's grid (× the frame's voxel), measured in docs/results.md ("A coarser update")
REFINE_LR, REFINE_GRID_FACTOR = 0.2, 2

#: the last stage's Adam rate (voxels of the fixed grid per step), update grid (× the fixed grid's voxel) and margin
#: around the brain's box (voxels of the fixed grid): the settings measured in docs/results.md (10 steps at 0.25 gave
#: the Dice of 25 at 0.1 on the hard and cross-template groups, at 40 % of the cost)
FINE_LR, FINE_GRID_FACTOR, FINE_MARGIN = 0.25, 2, 8


def refine_steps(value, name: str = "refine") -> int:
    """A number of refinement steps, checked: a whole number >= 0, also as text (``"50"``, ``"50.0"``: a request's
    or a command line's value).

    Raises:
        ValueError: anything else (the value in the message).
    """
    try:
        steps = float(value) if isinstance(value, str) else value
        ok = not isinstance(steps, bool) and float(steps) >= 0 and float(steps) == int(steps)
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be a whole number of steps >= 0, got {value!r}")
    return int(steps)


def refine_ddf(moving: torch.Tensor, fixed: torch.Tensor, ddf: torch.Tensor, lam: float, iterations: int = 50,
               lr: float = 0.1, num_levels: int = 3, grid_factor: int = 1, return_losses: bool = False,
               progress: str | None = None, fast: bool | None = None):
    """Refine ``ddf`` for this pair by ``iterations`` Adam steps on the network's own objective at smoothness ``lam``.

    Args:
        moving, fixed: ``(1, 1, *S)`` images in [0, 1] on the grid the field is defined on (the model's frame).
        ddf: ``(1, n, *S)`` the network's field in voxels of that grid (MONAI convention).
        lam: the smoothness weight λ (the one the network was given).
        iterations: Adam steps (0 returns ``ddf`` unchanged).
        lr: Adam's learning rate, in voxels of the field's grid per step (whatever ``grid_factor``).
        num_levels: the network's pyramid levels: the similarity pyramid of its finest level (windows ``2L+1`` …).
        grid_factor: optimise the field's update on a grid ``grid_factor`` times coarser (1: every voxel).
        return_losses: also return the objective before each step and after the last.
        progress: a description for a progress bar over the steps (tqdm on stderr, with an ETA; removed when
            done); ``None``: no bar.
        fast: the objective's CPU fast paths (``CLapIRNLoss(fast=True)``: window sums by shifted additions, the
            smoothness's gradient written out): the same objective within float rounding, 7.9× faster per step on a
            1 mm brain box and 3.1× in the 2 mm frame on the CPU (``bench/bench_lncc.py``); ``False``: MONAI's local
            NCC and autograd (the reference); ``None`` (default): on the CPU only, where they were measured (a
            GPU runs MONAI's convolutions, whose kernels are fewer).

    Returns:
        the refined ``(1, n, *S)`` field (and the list of objective values when ``return_losses``).
    """
    iterations = refine_steps(iterations)
    if iterations == 0:
        return (ddf, []) if return_losses else ddf
    n = ddf.shape[1]
    fast = ddf.device.type == "cpu" if fast is None else bool(fast)
    objective = CLapIRNLoss(n, num_levels, fast=fast).to(ddf.device)
    moving, fixed, start = moving.float(), fixed.float(), ddf.detach().float()
    size = tuple(start.shape[2:])
    coarse = tuple(max(1, s // grid_factor) for s in size)
    # the update, in voxels of the full grid, parametrised on the (possibly coarser) grid
    update = torch.zeros(1, n, *coarse, device=ddf.device, requires_grad=True)
    optimizer = torch.optim.Adam([update], lr=lr)
    mode = "trilinear" if n == 3 else "bilinear"

    def field() -> torch.Tensor:
        up = update if coarse == size else F.interpolate(update, size=size, mode=mode, align_corners=True)
        return start + up

    def loss() -> torch.Tensor:
        return objective.field_objective(moving, fixed, field(), lam).sum()

    losses = []
    with torch.enable_grad():
        for _ in tqdm(range(iterations), desc=progress, unit="step", leave=False, disable=progress is None):
            optimizer.zero_grad(set_to_none=True)
            value = loss()
            value.backward()
            optimizer.step()
            losses.append(float(value.detach()))
        with torch.no_grad():
            result = field().detach().to(ddf.dtype)
            if return_losses:
                losses.append(float(loss()))
    return (result, losses) if return_losses else result


def refine_on_grid(moving: torch.Tensor, fixed: torch.Tensor, ddf: torch.Tensor, lam: float, steps: int,
                   num_levels: int = 3, progress: str | None = None) -> torch.Tensor:
    """The last stage: ``steps`` more steps of :func:`refine_ddf` on the fixed image's own grid, after the frame's.

    Only the two images' foreground box plus :data:`FINE_MARGIN` voxels is optimised (the background costs time and
    adds nothing to the similarity); the update found there is continued outside the box by replicating its border
    (:meth:`~cir_monai.frame.FrameResampler.uncrop`), so the field stays continuous. The update lives on a grid
    :data:`FINE_GRID_FACTOR` times coarser (the 2 mm frame's for a 1 mm image) and moves about :data:`FINE_LR`
    voxels of the fixed grid per step (Adam's rate); λ weighs the smoothness as in the frame, so it keeps its meaning.

    Args:
        moving, fixed: ``(1, 1, *S)`` images in [0, 1] on the fixed image's grid (the moving one resampled there).
        ddf: ``(1, n, *S)`` the field on that grid, in its voxels (the frame's, brought back).
        lam: λ, the one the field was predicted and refined at.
        steps: more steps (0 returns ``ddf``).
        num_levels: the network's pyramid levels (the similarity pyramid's windows).
        progress: a description for the progress bar (``None``: none).

    Returns:
        the ``(1, n, *S)`` field.

    Raises:
        ValueError: ``steps`` is not a whole number >= 0.
    """
    steps = refine_steps(steps, "fine_steps")
    if steps == 0:
        return ddf
    box = FrameResampler(None, margin=FINE_MARGIN).foreground_box(fixed[0], moving[0])
    crop = (slice(None), slice(None), *box)
    start = ddf[crop]
    refined = refine_ddf(moving[crop], fixed[crop], start, lam, steps, lr=FINE_LR, num_levels=num_levels,
                         grid_factor=FINE_GRID_FACTOR, progress=progress)
    return ddf + FrameResampler.uncrop(refined - start, box, ddf.shape[2:])
