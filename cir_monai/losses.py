# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Training objective of cLapIRN (docs/method.md §4).

For pyramid level ``l`` (1-based) with per-sample weight λ:
``L_l = Σ_{i=1..l} −(1 / 2^(i−1)) · NCC_{w_i}(pool^(i−1)(F_l), pool^(i−1)(M_l ∘ φ))
+ λ · smooth(φ) [+ w_fold · mean(ReLU(−det J))]`` with windows
``w_i = 2l + 3 − 2i`` (level 3: 7, 5, 3). Local NCC is MONAI's
:class:`~monai.losses.LocalNormalizedCrossCorrelationLoss` (rectangular kernel,
squared NCC). The smoothness term uses the authors' scaling: the field in voxels
×2 (normalised units × (size − 1)), the mean over axes of the mean squared
forward difference, so that λ means what it means in the paper and in the
released weights.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.losses import DiceLoss, LocalNormalizedCrossCorrelationLoss
from monai.networks import one_hot
from monai.networks.layers import Pool

from cir_monai.metrics import jacobian_determinant
from cir_monai.networks.clapirn import PyramidOutput
from cir_monai.networks.warp import Warp

__all__ = ["box_sum", "BoxLNCC", "MultiResolutionNCC", "SmoothnessLoss", "FoldingLoss", "LabelDiceLoss",
           "FieldErrorLoss", "CLapIRNLoss"]


def box_sum(x: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """``x`` ``(B, C, *S)`` summed over the cube (square) of side ``kernel_size`` centred at each voxel, zeros
    outside the image: MONAI's rectangular local-NCC window sum, one axis at a time.

    Each axis adds ``kernel_size − 1`` shifted copies into a copy of ``x``: the same terms as a convolution with a
    box kernel, so no running-sum cancellation (see :class:`BoxLNCC`), and faster on the CPU than both the
    convolution and ``avg_pool3d``. The sum with zero padding is its own adjoint, so the backward pass is the
    same sum of the incoming gradient (:class:`_BoxSum`); the autograd graph holds no copies.
    """
    return _BoxSum.apply(x, int(kernel_size))


def _shifted_sum(x: torch.Tensor, kernel_size: int) -> torch.Tensor:
    radius = kernel_size // 2
    for axis in range(2, x.ndim):
        n = x.shape[axis]
        out = x.clone()
        for shift in range(1, min(radius, n - 1) + 1):
            out.narrow(axis, shift, n - shift).add_(x.narrow(axis, 0, n - shift))
            out.narrow(axis, 0, n - shift).add_(x.narrow(axis, shift, n - shift))
        x = out
    return x


class _BoxSum(torch.autograd.Function):
    """:func:`box_sum` with its adjoint (itself) as the backward pass."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, kernel_size: int) -> torch.Tensor:
        ctx.kernel_size = kernel_size
        return _shifted_sum(x, kernel_size)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return _shifted_sum(grad.contiguous(), ctx.kernel_size), None


class BoxLNCC(LocalNormalizedCrossCorrelationLoss):
    """MONAI's local NCC (rectangular window, squared NCC, its ``smooth_nr`` / ``smooth_dr`` and reductions), with
    the window sums taken by shifted additions (:func:`box_sum`) instead of MONAI's separable convolution.

    The same sums (zero padding, one axis at a time) in another order: within 1e-6 of MONAI's value and gradient
    (``tests/test_losses.py``). Why not MONAI's: on the CPU, PyTorch's 3D convolution with a ``(k, 1, 1)`` kernel
    is slow on a 1 mm brain box (the similarity pyramid on a 163×201×170 box, forward and backward, 2 threads:
    6.3–6.9 s; by ``avg_pool3d``, this class's first form, 2.0–2.5 s; 2026-12-07); shifted additions are faster
    still (``bench/bench_lncc.py``). Running (cumulative) sums were tried too and lost the variances' precision
    where the brain meets the background: on a 1 mm brain box the mean NCC came out −0.320 against MONAI's −0.224.

    Args:
        spatial_dims: 2 or 3.
        kernel_size: the window's side (odd).
        reduction: ``"none"``, ``"mean"`` or ``"sum"`` (MONAI's).
    """

    def __init__(self, spatial_dims: int = 3, kernel_size: int = 3, reduction: str = "mean") -> None:
        if spatial_dims not in (2, 3):
            raise ValueError(f"BoxLNCC: spatial_dims must be 2 or 3, got {spatial_dims}")
        super().__init__(spatial_dims, kernel_size=kernel_size, kernel_type="rectangular", reduction=reduction)
        self.kernel_size = int(kernel_size)

    def window_sum(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, C, *S)`` summed over the window centred at each voxel, zeros outside (MONAI's padding)."""
        return box_sum(x, self.kernel_size)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.ndim - 2 != self.ndim or target.shape != pred.shape:
            raise ValueError(f"pred and target must be (B, C, *S) with {self.ndim} spatial dims and equal shapes, "
                             f"got {tuple(pred.shape)} and {tuple(target.shape)}")
        volume = float(self.kernel_size**self.ndim)
        t_sum, p_sum = self.window_sum(target), self.window_sum(pred)
        t2_sum, p2_sum = self.window_sum(target * target), self.window_sum(pred * pred)
        tp_sum = self.window_sum(target * pred)
        t_avg, p_avg = t_sum / volume, p_sum / volume
        floor = torch.as_tensor(self.smooth_dr, dtype=t_sum.dtype, device=t_sum.device)
        cross = tp_sum - p_avg * t_sum
        t_var = torch.max(t2_sum - t_avg * t_sum, floor)
        p_var = torch.max(p2_sum - p_avg * p_sum, floor)
        ncc = -(cross * cross + self.smooth_nr) / (t_var * p_var)
        if self.reduction == "none":
            return ncc
        return ncc.sum() if self.reduction == "sum" else ncc.mean()


class MultiResolutionNCC(nn.Module):
    """Similarity pyramid: ``Σ_i −NCC_{k − 2i}(pool^i(pred), pool^i(target)) / 2^i``, i = 0..num_scales−1.

    Between scales both images are average-pooled (kernel 3, stride 2, padding 1,
    padding excluded), as in the network.

    Args:
        spatial_dims: 2 or 3.
        kernel_size: window at the finest scale (odd; 7 at pyramid level 3).
        num_scales: number of scales (the level's index).
        box_sums: take the windows' sums by shifted additions (:class:`BoxLNCC`, faster on the CPU, the
            refinement's) instead of MONAI's separable convolution (the reference, training's); the same value
            within 1e-6.

    Shapes:
        ``pred``, ``target``: ``(B, 1, *spatial)`` -> ``(B,)`` per-sample loss (negative).
    """

    def __init__(self, spatial_dims: int = 3, kernel_size: int = 7, num_scales: int = 3,
                 box_sums: bool = False) -> None:
        super().__init__()
        if kernel_size % 2 == 0 or kernel_size - 2 * (num_scales - 1) < 1:
            raise ValueError(
                f"kernel_size must be odd and leave a window >= 1 at every scale, "
                f"got {kernel_size} for {num_scales} scales."
            )
        self.ncc = nn.ModuleList(
            BoxLNCC(spatial_dims, kernel_size - 2 * i, reduction="none") if box_sums else
            LocalNormalizedCrossCorrelationLoss(
                spatial_dims, kernel_size=kernel_size - 2 * i, kernel_type="rectangular", reduction="none"
            )
            for i in range(num_scales)
        )
        self.pool = Pool[Pool.AVG, spatial_dims](kernel_size=3, stride=2, padding=1, count_include_pad=False)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = pred.new_zeros(pred.shape[0], dtype=torch.float32)
        for i, ncc in enumerate(self.ncc):
            if i:
                pred, target = self.pool(pred), self.pool(target)
            total = total + ncc(pred.float(), target.float()).flatten(1).mean(1) / 2**i
        return total


class SmoothnessLoss(nn.Module):
    """Diffusion regulariser ``mean_axes mean(|∂_j (s·u)|²)`` with forward differences.

    Args:
        reference_scaling: multiply the voxel DDF by ``s = 2`` first, the authors'
            scaling (normalised units × (size − 1)); ``False`` uses voxels as they are.
        closed_form_grad: the same value, with its gradient written out (:class:`_DiffusionEnergy`) instead of
            autograd's through ``torch.diff`` (which allocates and copies a zero-padded gradient per axis): forward
            and backward 0.78 → 0.32 s for a field on a 163×201×170 brain box (2 CPU threads, 2026-12-08); the
            refinement's. No double backward.

    Shapes:
        ``ddf``: ``(B, n, *spatial)`` in voxels -> ``(B,)``.
    """

    def __init__(self, reference_scaling: bool = True, closed_form_grad: bool = False) -> None:
        super().__init__()
        self.scale = 2.0 if reference_scaling else 1.0
        self.closed_form_grad = bool(closed_form_grad)

    def forward(self, ddf: torch.Tensor) -> torch.Tensor:
        n = ddf.ndim - 2
        if self.closed_form_grad:
            return _DiffusionEnergy.apply(ddf.float(), self.scale)
        u = ddf.float() * self.scale
        return sum(torch.diff(u, dim=2 + j).pow(2).flatten(1).mean(1) for j in range(n)) / n


class _DiffusionEnergy(torch.autograd.Function):
    """:class:`SmoothnessLoss`'s value ``E(u) = (s² / n) Σ_j mean(d_j²)``, ``d_j = diff(u, axis j)``, per sample, and
    its gradient ``(2 s² / (n·|d_j|)) Σ_j (d_j shifted one voxel up − d_j)``, i.e. ``−2 s² / (n·|d_j|)`` times the
    divergence of the differences (zero flux at the borders)."""

    @staticmethod
    def forward(ctx, u: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(u)
        ctx.scale = scale
        n = u.ndim - 2
        return sum(torch.diff(u, dim=2 + j).pow(2).flatten(1).mean(1) for j in range(n)) * (scale * scale / n)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (u,) = ctx.saved_tensors
        n = u.ndim - 2
        out = torch.zeros_like(u)
        for axis in range(2, u.ndim):
            size = u.shape[axis]
            if size < 2:
                continue
            d = torch.diff(u, dim=axis)
            d *= 2 * ctx.scale * ctx.scale / (n * d[0].numel())
            out.narrow(axis, 1, size - 1).add_(d)
            out.narrow(axis, 0, size - 1).sub_(d)
        return out * grad.view(-1, *([1] * (u.ndim - 1))), None


class FoldingLoss(nn.Module):
    """Anti-folding penalty ``mean(ReLU(−det J))`` (forward differences).

    Shapes:
        ``ddf``: ``(B, n, *spatial)`` in voxels -> ``(B,)``.
    """

    def forward(self, ddf: torch.Tensor) -> torch.Tensor:
        return F.relu(-jacobian_determinant(ddf.float(), "forward")).flatten(1).mean(1)


def pool_to_grid(tensor: torch.Tensor, shape: tuple[int, ...], pool: nn.Module, what: str) -> tuple[torch.Tensor, int]:
    """Average-pool ``tensor`` ``(B, C, *S)`` as the network pools its images until its grid is ``shape``.

    Returns:
        the pooled tensor and the pooling factor ``2^j`` (1 when ``S`` is already ``shape``).

    Raises:
        ValueError: ``S`` does not halve to ``shape`` (``what`` names the tensor in the message).
    """
    factor = 1
    while tuple(tensor.shape[2:]) != shape:
        if any(s < t for s, t in zip(tensor.shape[2:], shape)):
            raise ValueError(f"{what} grid {tuple(tensor.shape[2:])} does not pool to the field's grid {shape}: "
                             "training images must be a multiple of 2**num_levels in size")
        tensor, factor = pool(tensor), factor * 2
    return tensor, factor


class LabelDiceLoss(nn.Module):
    """``1 − Dice`` of the moving labels warped by a field against the fixed labels (soft, per sample).

    The optional label term that the authors added for Learn2Reg 2021: both label maps are
    one-hot encoded (classes ``0..num_classes−1``), average-pooled as the network pools its
    images until they reach the field's grid (so it also serves the coarse pyramid levels),
    the moving one is warped bilinearly (zeros outside) and MONAI's
    :class:`~monai.losses.DiceLoss` compares them, averaged over the foreground classes present
    in the sample (so a batch mixing label sets does not dilute a sample's term).

    Shapes:
        ``ddf`` ``(B, n, *S_l)`` voxels of the level grid; labels ``(B, 1, *S)`` integers with
        ``S = S_l · 2^j`` -> ``(B,)``.
    """

    def __init__(self, spatial_dims: int = 3) -> None:
        super().__init__()
        self.pool = Pool[Pool.AVG, spatial_dims](kernel_size=3, stride=2, padding=1, count_include_pad=False)
        self.warp = Warp("bilinear", "zeros")
        self.dice = DiceLoss(include_background=False, reduction="none")

    def forward(self, ddf: torch.Tensor, moving_label: torch.Tensor, fixed_label: torch.Tensor) -> torch.Tensor:
        num_classes = int(max(moving_label.max(), fixed_label.max())) + 1
        shape = tuple(ddf.shape[2:])
        moving, _ = pool_to_grid(one_hot(moving_label.long(), num_classes, dim=1), shape, self.pool, "label")
        fixed, _ = pool_to_grid(one_hot(fixed_label.long(), num_classes, dim=1), shape, self.pool, "label")
        warped = self.warp(moving, ddf.float())
        per_class = self.dice(warped, fixed).flatten(1)  # (B, num_classes - 1), foreground classes
        present = (fixed[:, 1:] + moving[:, 1:]).flatten(2).sum(-1) > 0  # absent classes would count as perfect
        return (per_class * present).sum(1) / present.sum(1).clamp_min(1)


class FieldErrorLoss(nn.Module):
    """Mean end-point error of a field against the pair's true field, inside the fixed image (per sample).

    A supervised term beside the paper's objective (``configs/scale/cpu_lite_supervised.yaml``): generated pairs
    (:class:`~cir_monai.data.training.RandomPairDataset` with ``with_truth``) know their true field, so the
    network can be told the answer as well as how well the images match. The error is averaged over the
    level's fixed-image foreground (``fixed > 0``: the images are skull-stripped, background exactly 0). The
    true field is average-pooled as the network pools its images until it reaches the level's grid and
    divided by the pooling factor (voxels of that grid). MONAI has no end-point-error loss (its losses
    compare images or label maps, not vector fields), hence this class.

    Shapes:
        ``ddf`` ``(B, n, *S_l)`` voxels of the level grid; ``truth`` ``(B, n, *S)`` voxels of the full grid;
        ``fixed`` ``(B, 1, *S_l)`` the level's fixed image; ``S = S_l · 2^j`` -> ``(B,)`` in voxels of the
        level grid.
    """

    def __init__(self, spatial_dims: int = 3, eps: float = 1e-6) -> None:
        super().__init__()
        self.pool = Pool[Pool.AVG, spatial_dims](kernel_size=3, stride=2, padding=1, count_include_pad=False)
        self.eps = float(eps)

    def forward(self, ddf: torch.Tensor, truth: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        truth, factor = pool_to_grid(truth.float(), tuple(ddf.shape[2:]), self.pool, "true field")
        error = ((ddf.float() - truth / factor).pow(2).sum(1, keepdim=True) + self.eps).sqrt()
        mask = (fixed > 0).float()
        return (error * mask).flatten(1).sum(1) / mask.flatten(1).sum(1).clamp_min(1)


class CLapIRNLoss(nn.Module):
    """The loss of the deepest active pyramid level: similarity pyramid + λ · smoothness (+ folding).

    Args:
        spatial_dims: 2 or 3.
        num_levels: levels of the network (one similarity pyramid per level).
        folding_weight: weight of :class:`FoldingLoss` (0 = off, the paper).
        reference_scaling: see :class:`SmoothnessLoss`.
        label_weight: weight of :class:`LabelDiceLoss` on the level's field (0 = off, the
            paper; the shipped model's recipe uses it beside NCC, see configs/data/synth.yaml).
        field_weight: weight of :class:`FieldErrorLoss`, the end-point error against the true field of
            generated pairs (0 = off, the paper; see configs/scale/cpu_lite_supervised.yaml). For a warm-up,
            train with it and then resume with 0.
        fast: the refinement's CPU fast paths, the same objective within float rounding: the local NCC's window sums
            by shifted additions (:class:`BoxLNCC`) and the smoothness's gradient written out
            (``SmoothnessLoss(closed_form_grad=True)``); ``False`` (training): MONAI's local NCC and autograd.

    Forward:
        ``out``: the network's training-mode :class:`PyramidOutput`;
        ``lam``: λ in user units, a number or ``(B,)`` tensor (the same λ fed to the network);
        ``moving_label``, ``fixed_label``: ``(B, 1, *S)`` label maps (needed when ``label_weight > 0``);
        ``ddf_truth``: ``(B, n, *S)`` true field in voxels (needed when ``field_weight > 0``).

    Returns:
        dict with the scalar ``loss`` (batch mean) and the ``(B,)`` terms ``similarity``,
        ``smoothness``, ``folding``, ``label``, ``field`` (voxels of the level grid).
    """

    def __init__(
        self, spatial_dims: int = 3, num_levels: int = 3, folding_weight: float = 0.0, reference_scaling: bool = True,
        label_weight: float = 0.0, field_weight: float = 0.0, fast: bool = False,
    ) -> None:
        super().__init__()
        self.similarity = nn.ModuleList(
            MultiResolutionNCC(spatial_dims, kernel_size=2 * level + 1, num_scales=level, box_sums=fast)
            for level in range(1, num_levels + 1)
        )
        self.smoothness = SmoothnessLoss(reference_scaling, closed_form_grad=fast)
        self.folding = FoldingLoss()
        self.folding_weight = float(folding_weight)
        self.label_weight = float(label_weight)
        self.label = LabelDiceLoss(spatial_dims)
        self.field_weight = float(field_weight)
        self.field = FieldErrorLoss(spatial_dims)
        self.field_warp = Warp("bilinear", "border")  # field_objective's; one module, so its grid is cached

    def field_objective(self, moving: torch.Tensor, fixed: torch.Tensor, ddf: torch.Tensor,
                        lam: float | torch.Tensor) -> torch.Tensor:
        """The finest level's objective of a field ``ddf`` ``(B, n, *S)`` (voxels) on full-resolution images
        ``(B, 1, *S)``: the similarity pyramid of ``moving`` warped by it (bilinear, border) against ``fixed``, plus
        λ · smoothness; ``(B,)``. What refinement lowers (:func:`cir_monai.refine.refine_ddf`) and what the 2D
        paper reproduction compares across models at each λ (a label-free check of the conditioning)."""
        warped = self.field_warp(moving.float(), ddf)
        lam_t = torch.as_tensor(lam, dtype=torch.float32, device=ddf.device).reshape(-1)
        return self.similarity[-1](warped, fixed.float()) + lam_t * self.smoothness(ddf)

    def forward(
        self, out: PyramidOutput, lam: float | torch.Tensor, moving_label: torch.Tensor | None = None,
        fixed_label: torch.Tensor | None = None, ddf_truth: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        level = len(out.levels)
        if not 1 <= level <= len(self.similarity):
            raise ValueError(f"the output has {level} levels, this loss handles 1..{len(self.similarity)}.")
        last = out.levels[-1]
        lam_t = torch.as_tensor(lam, dtype=torch.float32, device=last.ddf.device).reshape(-1)
        similarity = self.similarity[level - 1](last.warped, last.fixed)
        smoothness = self.smoothness(last.ddf)
        total = similarity + lam_t * smoothness
        folding = torch.zeros_like(smoothness)
        if self.folding_weight > 0:
            folding = self.folding(last.ddf)
            total = total + self.folding_weight * folding
        label = torch.zeros_like(smoothness)
        if self.label_weight > 0:
            if moving_label is None or fixed_label is None:
                raise ValueError("label_weight > 0 needs moving_label and fixed_label in every training pair")
            label = self.label(last.ddf, moving_label, fixed_label)
            total = total + self.label_weight * label
        field = torch.zeros_like(smoothness)
        if self.field_weight > 0:
            if ddf_truth is None:
                raise ValueError("field_weight > 0 needs ddf_truth (the true field) in every training pair")
            field = self.field(last.ddf, ddf_truth, last.fixed)
            total = total + self.field_weight * field
        return {
            "loss": total.mean(), "similarity": similarity, "smoothness": smoothness, "folding": folding,
            "label": label, "field": field,
        }
