# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""MONAI's :class:`~monai.networks.blocks.Warp`, with its grid built from the input at call time; warping an image
from another grid in one interpolation; DDF inversion."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from monai.networks.blocks import Warp as _MonaiWarp

__all__ = ["Warp", "sample_at", "warp_from_grid", "INVERSION_METHODS", "invert_ddf", "composition_residual",
           "fold_mask"]


class Warp(_MonaiWarp):
    """Warp an image with a voxel DDF (MONAI convention), always in float32.

    :class:`monai.networks.blocks.Warp`'s sampling (``grid_sample`` with ``align_corners=True``, its cached
    reference grid), with the grid brought to ``grid_sample``'s [−1, 1] by one multiplication (:func:`sample_at`)
    instead of MONAI's in-place assignment per axis, whose backward pass copies the whole grid per axis: a warp,
    forward and backward, takes ~0.6× MONAI's time on a 1 mm brain box (2 CPU threads). Equal to MONAI's within float
    rounding of the sampling positions (tests/networks/test_warp.py). And three guarantees the registration pyramid
    needs:

    * the cached reference grid is rebuilt whenever the DDF's shape, device or
      dtype differs from the cached one, so one module serves any input size on
      CPU and CUDA;
    * sampling runs in float32 outside autocast: a bfloat16 sampling grid cannot
      address voxels beyond index ~256 exactly (8-bit mantissa);
    * under ``torch.jit.trace`` the same sampling is written on the DDF's sizes
      (:meth:`_traceable_forward`), because MONAI's grid and normalisation use Python
      numbers that a trace would freeze at the traced size.

    Args:
        mode: ``"bilinear"`` for images (trilinear in 3D) or ``"nearest"`` for labels.
        padding_mode: ``"border"`` (the reference), ``"zeros"`` or ``"reflection"``.
    """

    def __init__(self, mode: str = "bilinear", padding_mode: str = "border") -> None:
        with warnings.catch_warnings():  # MONAI warns that it uses torch's grid_sample: that is intended here
            warnings.simplefilter("ignore")
            super().__init__(mode=mode, padding_mode=padding_mode)

    #: reference grids kept per (batch, shape, device, dtype): a pyramid warps at several sizes per call
    max_cached_grids = 4

    def get_reference_grid(self, ddf: torch.Tensor, jitter: bool = False, seed: int = 0) -> torch.Tensor:
        key = (ddf.shape[0], tuple(ddf.shape[2:]), ddf.device, ddf.dtype, jitter)
        cache = self.__dict__.setdefault("_grids", {})
        if key not in cache:
            self.ref_grid = None
            cache[key] = super().get_reference_grid(ddf, jitter=jitter, seed=seed)
            while len(cache) > self.max_cached_grids:
                cache.pop(next(iter(cache)))
        return cache[key]

    def forward(self, image: torch.Tensor, ddf: torch.Tensor) -> torch.Tensor:
        """
        Args:
            image: ``(B, C, *spatial)``.
            ddf: ``(B, n, *spatial)`` displacement in voxels, channel ``i`` along spatial axis ``i``.

        Returns:
            ``(B, C, *spatial)`` float32 image sampled at ``x + ddf(x)``.
        """
        with torch.autocast(device_type=image.device.type, enabled=False):
            image, ddf = image.float(), ddf.float()
            if torch.jit.is_tracing():
                return self._traceable_forward(image, ddf)
            n = image.ndim - 2
            if n not in (2, 3) or ddf.shape != (image.shape[0], n, *image.shape[2:]):
                raise ValueError(f"Warp: the image must be (B, C, *S) with 2 or 3 spatial dims and the DDF (B, n, *S) "
                                 f"on the same grid, got {tuple(image.shape)} and {tuple(ddf.shape)}")
            positions = self.get_reference_grid(ddf, jitter=self.jitter) + ddf
            return sample_at(image, positions, self._interp_mode_native, self._padding_mode_native)

    def _traceable_forward(self, image: torch.Tensor, ddf: torch.Tensor) -> torch.Tensor:
        """MONAI ``Warp.forward`` (native ``grid_sample``, ``align_corners=True``) with every size a traced value.

        Voxel ``p`` of an axis of size ``s`` maps to ``2 p / max(s − 1, 1) − 1``, as in MONAI;
        tested equal to :meth:`forward` (tests/networks/test_warp.py).
        """
        grid = _index_grid(ddf) + ddf  # (B, n, *S) voxel positions
        return sample_at(image, grid, self._interp_mode_native, self._padding_mode_native)


def _index_grid(ddf: torch.Tensor) -> torch.Tensor:
    """The voxel indices of ``ddf``'s grid, ``(1, n, *S)`` (sizes as traced values)."""
    axes = [torch.arange(s, device=ddf.device, dtype=ddf.dtype) for s in ddf.shape[2:]]
    return torch.stack(torch.meshgrid(*axes, indexing="ij")).unsqueeze(0)


def sample_at(image: torch.Tensor, positions: torch.Tensor, mode: str = "bilinear",
              padding_mode: str = "zeros") -> torch.Tensor:
    """``image`` ``(B, C, *S_in)`` sampled at voxel positions ``(B, n, *S_out)`` of its own grid → ``(B, C, *S_out)``.

    ``grid_sample`` with ``align_corners=True`` as MONAI's ``Warp``: voxel ``p`` of an axis of size ``s``
    maps to ``2 p / max(s − 1, 1) − 1``; every size is a traced value.
    """
    n = positions.shape[1]
    extent = torch.stack([torch.as_tensor(s) for s in image.shape[2:]]).to(positions) - 1
    grid = positions * (2.0 / extent.clamp_min(1.0)).view(1, n, *([1] * n)) - 1.0
    grid = grid.flip(1).permute(0, *range(2, n + 2), 1)  # (B, *S, n), x first as grid_sample reads it
    return torch.nn.functional.grid_sample(image, grid, mode=mode, padding_mode=padding_mode, align_corners=True)


def warp_from_grid(image: torch.Tensor, image_affine, ddf: torch.Tensor, grid_affine, mode: str = "bilinear",
                   padding_mode: str = "border") -> torch.Tensor:
    """Warp an image that lives on another grid, in one interpolation.

    Output voxel ``x`` of the DDF's grid (voxel→world ``grid_affine``) samples ``image`` (voxel→world
    ``image_affine``) at the world point ``G (x + u(x))``. With equal affines and
    sizes this is :class:`Warp` (tested); otherwise it replaces "resample onto the grid, then warp",
    which interpolates twice, and it reaches parts of ``image`` outside the grid's field of view.
    MONAI's ``Warp`` needs the image on the field's grid, hence this function.

    Args:
        image: ``(B, C, *S_in)``.
        image_affine, grid_affine: homogeneous ``(n + 1) × (n + 1)`` voxel→world matrices (RAS mm).
        ddf: ``(B, n, *S)`` voxels of the grid.
        mode: ``"bilinear"`` or ``"nearest"`` (labels).
        padding_mode: outside ``image``: ``"border"`` (MONAI ``Warp``'s default) or ``"zeros"`` (no data there:
            what registration outputs use).

    Returns:
        ``(B, C, *S)`` float32.
    """
    n = ddf.shape[1]
    to_image = np.linalg.inv(np.asarray(image_affine, dtype=np.float64)) @ np.asarray(grid_affine, dtype=np.float64)
    matrix = torch.as_tensor(to_image, dtype=torch.float32, device=ddf.device)  # float32: 1e-5 voxel at 256 voxels
    with torch.autocast(device_type=ddf.device.type, enabled=False):
        ddf = ddf.float()
        positions = torch.einsum("ij,bj...->bi...", matrix[:n, :n], _index_grid(ddf) + ddf)
        positions += matrix[:n, n].view(1, n, *([1] * n))
        return sample_at(image.to(ddf.device).float(), positions, mode, padding_mode)


#: the methods of :func:`invert_ddf`: ``"newton"`` (the default) and ``"fixed_point"`` (the reference)
INVERSION_METHODS = ("newton", "fixed_point")


@torch.no_grad()
def invert_ddf(ddf: torch.Tensor, iterations: int = 30, method: str = "newton", tolerance: float = 1e-4
               ) -> torch.Tensor:
    """The inverse of a voxel DDF: ``v`` with ``v(y) = −u(y + v(y))`` at every voxel ``y``.

    If ``φ(x) = x + u(x)`` then ``φ⁻¹(y) = y + v(y)``, and ``F(y) = v(y) + u(y + v(y))`` is zero at the solution
    (``F`` is :func:`composition_residual` ``(v, u)``, the residual of ``φ ∘ φ⁻¹ = id``). Each voxel's equation is
    its own (``u`` is sampled bilinearly, border padding, as :class:`Warp`), so each voxel is solved alone. MONAI
    has no DDF inversion; both methods are written here on :func:`sample_at`.

    * ``"fixed_point"`` (the reference): ``v ← −u(y + v)`` on the whole grid, ``iterations`` times. Each step
      multiplies the error by about ``−∇u``: it converges where ``|∇u| < 1``, slowly where the field
      compresses strongly (``det J`` near 0) and not at all where it stretches by more than 2 (an eigenvalue
      of ``∇u`` above 1), even where ``φ`` is invertible there.
    * ``"newton"``: fixed-point steps on the whole grid while more than 5% of the voxels have ``|F| > tolerance``
      (at most 10: they solve most voxels cheaply), then Newton's method on the voxels left only,
      ``v ← v − J⁻¹ F`` with ``J = I + ∇u`` at ``y + v`` (central differences of the sampled ``u``, one voxel
      apart); where ``det J ≤ 0.001`` (near a fold) it takes the fixed-point step instead, and no step moves
      more than 2 voxels. A voxel stops once ``|F| ≤ tolerance``; each voxel keeps its iterate of smallest
      ``|F|``, so where ``φ`` folds it returns the best point found rather than the last. Where the fixed
      point converges both agree to ``~tolerance`` (tested); Newton also solves where ``φ`` stretches or
      compresses strongly, and finds a preimage where it folds (tested on fields with a known inverse); on the
      held-out 1 mm brains it takes about a third of the fixed point's time (bench/bench_inverse.py).

    Either way ``φ⁻¹ ∘ φ`` (:func:`composition_residual` ``(u, v)``) is not exact: ``v`` is interpolated between
    its voxels, which costs most where ``φ`` compresses strongly (``v`` stretches there), and where ``φ`` folds
    (``det J ≤ 0``, :func:`fold_mask`) no inverse exists.

    Args:
        ddf: ``(B, n, *spatial)`` in voxels (MONAI convention), n = 2 or 3.
        iterations: ``"fixed_point"``: steps (30: the residual stops falling after ~20 on registration fields);
            ``"newton"``: the most steps of any voxel.
        method: one of :data:`INVERSION_METHODS`.
        tolerance: ``"newton"``: a voxel is solved once ``|F| ≤ tolerance`` (voxels; 1e-4 is ~5× the float32
            rounding of a position at index 200).

    Returns:
        ``(B, n, *spatial)`` float32, the inverse DDF in voxels of the same grid.

    Raises:
        ValueError: an unknown ``method``.
    """
    if method not in INVERSION_METHODS:
        raise ValueError(f"method must be one of {', '.join(INVERSION_METHODS)}, got {method!r}")
    ddf = ddf.float()
    if method == "newton":
        return torch.stack([_invert_newton(sample[None], int(iterations), float(tolerance)) for sample in ddf])
    warp = Warp("bilinear", "border")
    inverse = -ddf
    for _ in range(int(iterations)):
        inverse = -warp(ddf, inverse)
    return inverse


#: ``"newton"`` inversion: fixed-point steps on every voxel while more than this fraction of them is unsolved, at
#: most this many (each costs one sampling of the whole field, so they solve most voxels cheaply) ...
_SWITCH_FRACTION, _MAX_FIXED_POINT_STEPS = 0.05, 10
#: ... then Newton steps on the voxels left: the least ``det J`` for a Newton step (else a fixed-point step), the
#: longest step (voxels) and the central-difference spacing of the Jacobian (voxels)
_MIN_DET, _MAX_STEP, _SPACING = 1e-3, 2.0, 1.0


def _invert_newton(ddf: torch.Tensor, iterations: int, tolerance: float) -> torch.Tensor:
    """:func:`invert_ddf`'s ``"newton"`` method for one field ``(1, n, *S)`` → ``(n, *S)``."""
    n, shape = ddf.shape[1], ddf.shape[2:]
    points = _index_grid(ddf).reshape(n, -1)  # (n, N) voxel y
    inverse = -ddf.reshape(n, -1)  # (n, N) v(y), a new tensor
    best, best_norm = inverse.clone(), torch.full_like(inverse[0], float("inf"))
    offsets = _SPACING * torch.eye(n, device=ddf.device, dtype=ddf.dtype)[..., None]  # (n, n, 1): row j along axis j
    active = slice(None)  # the voxels still unsolved: every one during the fixed-point steps, then their indices
    for step in range(iterations + 1):
        positions = points[:, active] + inverse[:, active]
        residual = inverse[:, active] + _sample_points(ddf, positions)  # F = φ(y + v) − y, (n, M)
        norm = residual.square().sum(0).sqrt()  # |F| (``norm(dim=0)`` is ~10× slower on the CPU)
        better = norm < best_norm[active]
        best[:, active] = torch.where(better, inverse[:, active], best[:, active])
        best_norm[active] = torch.where(better, norm, best_norm[active])
        left = norm > tolerance
        if step == iterations or not bool(left.any()):
            break
        everywhere = isinstance(active, slice)
        if everywhere and step < _MAX_FIXED_POINT_STEPS and float(left.float().mean()) > _SWITCH_FRACTION:
            inverse = inverse - residual  # the fixed-point step on every voxel: v ← −u(y + v) = v − F
            continue
        active = left.nonzero()[:, 0] if everywhere else active[left]
        residual, positions = residual[:, left], positions[:, left]
        # Newton: J = I + ∇u at y + v, J[i, j] = ∂φ_i / ∂x_j by central differences of the sampled field
        around = torch.cat([positions[:, None] + offsets, positions[:, None] - offsets], 1)  # (n, 2n, M)
        values = _sample_points(ddf, around.reshape(n, -1)).reshape(n, 2, n, -1)  # (i, ±, j, M)
        jacobian = (values[:, 0] - values[:, 1]) / (2 * _SPACING) + torch.eye(n, device=ddf.device)[..., None]
        newton, det = _solve(jacobian, residual)
        update = torch.where(det > _MIN_DET, newton, residual)  # at a fold: the fixed-point step
        inverse[:, active] -= update * (_MAX_STEP / update.square().sum(0).sqrt().clamp_min(_MAX_STEP))
    return best.reshape(n, *shape)


def _sample_points(ddf: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """``ddf`` ``(1, n, *S)`` sampled bilinearly (border) at voxel positions ``(n, M)`` → ``(n, M)``."""
    n = ddf.shape[1]
    return sample_at(ddf, positions.reshape(1, n, -1, *([1] * (n - 1))), "bilinear", "border").reshape(n, -1)


def _solve(matrix: torch.Tensor, vector: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``matrix⁻¹ vector`` and ``det matrix`` for ``M`` small systems: ``(n, n, M)``, ``(n, M)`` → ``(n, M)``, ``(M,)``.

    Cramer's rule (the adjugate), n = 2 or 3: elementwise, far quicker than batched ``torch.linalg`` on millions
    of 3×3 systems. Where ``det`` is 0 the solution is not finite (the caller uses another step there).
    """
    a = matrix
    if a.shape[0] == 2:
        det = a[0, 0] * a[1, 1] - a[0, 1] * a[1, 0]
        adjugate = torch.stack([torch.stack([a[1, 1], -a[0, 1]]), torch.stack([-a[1, 0], a[0, 0]])])
    else:
        def cofactor(i: int, j: int) -> torch.Tensor:  # signed minor of entry (i, j)
            r, c = [k for k in range(3) if k != i], [k for k in range(3) if k != j]
            return (-1) ** (i + j) * (a[r[0], c[0]] * a[r[1], c[1]] - a[r[0], c[1]] * a[r[1], c[0]])

        adjugate = torch.stack([torch.stack([cofactor(j, i) for j in range(3)]) for i in range(3)])
        det = (a[0] * adjugate[:, 0]).sum(0)
    solution = (adjugate * vector[None]).sum(1) / torch.where(det == 0, torch.ones_like(det), det)
    return solution, det


@torch.no_grad()
def composition_residual(ddf: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
    """``|u(x) + v(x + u(x))|`` per voxel, voxels: zero when ``φ⁻¹ ∘ φ = id`` (``v`` inverts ``u``). ``(B, *spatial)``.

    :func:`invert_ddf` solves the other composition, ``φ ∘ φ⁻¹ = id`` (``composition_residual(v, u)``) at every
    voxel, so this one is the independent check of its result. It is not zero for the exact inverse either:
    ``v(x + u(x))`` is interpolated between ``v``'s voxels: ~0.01 voxel typically (0.16 at most on a smooth
    field), up to ~1 voxel where ``φ`` compresses strongly (``det J`` near 0: ``v`` stretches there); where ``φ`` folds
    (:func:`fold_mask`) it is as large as the fold, whatever the inverse.

    Args:
        ddf: ``u``, ``(B, n, *spatial)`` in voxels.
        inverse: ``v``, the same shape.
    """
    return (ddf.float() + Warp("bilinear", "border")(inverse, ddf)).norm(dim=1)


@torch.no_grad()
def fold_mask(ddf: torch.Tensor, margin: int = 1) -> torch.Tensor:
    """The voxels where ``φ(x) = x + u(x)`` has no inverse, or within ``margin`` voxels of one. ``(B, *spatial)`` bool.

    A voxel is marked when a grid cell it is a corner of has ``det J ≤ 0`` (forward differences over the cell,
    :func:`~cir_monai.metrics.jacobian_determinant`, whose fraction is the reported "% det J ≤ 0"), or when such a
    voxel lies within ``margin`` voxels (a cube). ``φ`` folds there, so no inverse can compose with it to the
    identity (:func:`composition_residual` measures how far ``φ⁻¹ ∘ φ`` is from it); the rest is where the
    inverse is defined.

    Args:
        ddf: ``(B, n, *spatial)`` in voxels, n = 2 or 3.
        margin: voxels added around the cells' corners (0: the corners only).
    """
    from cir_monai.metrics import jacobian_determinant  # not at import: cir_monai.metrics is a heavier module

    n = ddf.shape[1]
    pool = torch.nn.functional.max_pool3d if n == 3 else torch.nn.functional.max_pool2d
    folded = (jacobian_determinant(ddf.float(), "forward") <= 0).float()[:, None]  # (B, 1, *(S − 1)) per cell
    corners = pool(torch.nn.functional.pad(folded, (1, 1) * n), 2, 1)  # (B, 1, *S): any cell the voxel is a corner of
    if margin > 0:
        corners = pool(corners, 2 * int(margin) + 1, 1, int(margin))
    return corners[:, 0] > 0
