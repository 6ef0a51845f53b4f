# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Conditioning on the smoothness weight: mapping networks and conditional instance norm.

Mok & Chung, "Conditional Deformable Image Registration with Convolutional
Neural Network", MICCAI 2021, §2.2 (see ``docs/method.md`` §2).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from cir_monai.networks.fast import fast_paths_enabled

__all__ = ["MappingNetwork", "ConditionalInstanceNorm", "instance_moments"]


def instance_moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample, per-channel biased variance and mean over the spatial axes, in float32.

    Plain path: ``torch.var_mean`` over the spatial axes. Fast path (:mod:`cir_monai.networks.fast`):
    one matrix product over a copy-free ``(B, N, C)`` or ``(B, C, N)`` view of ``x``
    (whichever its memory layout allows) gives the sums of ``x²``: faster on CPU
    than ``torch.var_mean`` over the spatial axes (docs/benchmarks.md), with float32 rounding. The backward pass
    is one fused pass over ``x`` (:class:`_SpatialSums`).

    Args:
        x: ``(B, C, *spatial)``.

    Returns:
        ``(var, mean)``, each ``(B, C, 1, ..., 1)``.
    """
    if not fast_paths_enabled():  # the plain path (also what a trace records: it averages over each input's size)
        with torch.autocast(device_type=x.device.type, enabled=False):
            var, mean = torch.var_mean(x.float(), dim=tuple(range(2, x.ndim)), unbiased=False, keepdim=True)
        return var, mean
    b, c = x.shape[:2]
    n = x[0, 0].numel()
    with torch.autocast(device_type=x.device.type, enabled=False):
        if x.requires_grad and torch.is_grad_enabled():
            sums, squares = _SpatialSums.apply(x)
        else:
            sums, squares = _spatial_sums(x)
        mean = sums / n
        var = (squares / n - mean * mean).clamp_min(0.0)
    shape = (b, c) + (1,) * (x.ndim - 2)
    return var.reshape(shape), mean.reshape(shape)


def _spatial_sums(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Σ x, Σ x²)`` over the spatial axes per sample and channel, float32 ``(B, C)`` each."""
    b, c = x.shape[:2]
    n = x[0, 0].numel()
    if x.ndim == 5 and x.is_contiguous(memory_format=torch.channels_last_3d) and c > 1:
        rows = x.permute(0, *range(2, x.ndim), 1).reshape(b, n, c).float()  # (B, N, C) view
        sums = rows.sum(1)  # torch's cascaded sum: a GEMV with ones loses precision over ~1e6 voxels
        squares = torch.bmm(rows.transpose(1, 2), rows).diagonal(dim1=1, dim2=2)
    else:
        rows = x.reshape(b, c, n).float()  # (B, C, N)
        sums = rows.sum(2)
        squares = torch.bmm(rows, rows.transpose(1, 2)).diagonal(dim1=1, dim2=2)
    return sums, squares


class _SpatialSums(torch.autograd.Function):
    """:func:`_spatial_sums` with a one-pass backward: ``∂/∂x = g_Σx + 2·x·g_Σx²``.

    Autograd's own backward of the matrix product costs two matrix products, a sum's expansion
    and an addition over ``x`` (CIN forward + backward at 32×40×32×28: 11.0 → 7.2 ms).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ctx.save_for_backward(x)
        sums, squares = _spatial_sums(x)
        return sums, squares.contiguous()

    @staticmethod
    def backward(ctx, grad_sums: torch.Tensor, grad_squares: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors  # autograd passes zeros, not None, for an unused output
        shape = x.shape[:2] + (1,) * (x.ndim - 2)
        # in float32 also for half-precision x: the two terms cancel where |mean| >> std
        grad = torch.addcmul(grad_sums.reshape(shape).float(), x.float(), (2.0 * grad_squares).reshape(shape).float())
        return grad.to(x.dtype)


class MappingNetwork(nn.Sequential):
    """MLP mapping the normalised code ``c = λ / λ_max`` to a latent ``z``.

    ``num_layers`` × (Linear, LeakyReLU(0.2)); the first layer takes ``in_features``
    inputs, the last gives ``latent_dim`` outputs, the others are ``width`` wide.
    CIR-DM uses one per conditional block (4 layers, 64 wide); CIR-CM one for the
    whole model (8 layers, 256 wide). Layer ``k``'s Linear is child ``2k``, the
    authors' key layout (``mapping.{0,2,4,6}``).

    Args:
        in_features: size of the condition (1 for the scalar code).
        width: hidden width.
        latent_dim: output size.
        num_layers: number of Linear layers (>= 1).

    Shapes:
        ``(B, in_features)`` -> ``(B, latent_dim)``.
    """

    def __init__(self, in_features: int = 1, width: int = 64, latent_dim: int = 64, num_layers: int = 4) -> None:
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}.")
        layers: list[nn.Module] = []
        for k in range(num_layers):
            fan_in = in_features if k == 0 else width
            fan_out = latent_dim if k == num_layers - 1 else width
            layers += [nn.Linear(fan_in, fan_out), nn.LeakyReLU(0.2)]
        super().__init__(*layers)


class ConditionalInstanceNorm(nn.Module):
    """Conditional instance normalisation.

    ``h'_i = (1 + γ_i(z)) · (h_i − μ(h_i)) / σ(h_i) + β_i(z)`` with
    ``(γ, β) = Linear(latent_dim → 2C)(z)`` (first ``C`` outputs are γ, bias
    initialised to 0) and an instance norm without affine parameters or running
    statistics (eps 1e-5). The ``1 +`` makes a zero style the identity scaling.

    Args:
        channels: number of feature channels ``C``.
        latent_dim: size of ``z``.
        eps: instance-norm epsilon.

    Shapes:
        ``x``: ``(B, C, *spatial)``; ``z``: ``(B, latent_dim)`` -> ``(B, C, *spatial)``.
    """

    def __init__(self, channels: int, latent_dim: int = 64, eps: float = 1e-5) -> None:
        super().__init__()
        self.channels = channels
        self.eps = eps
        self.style = nn.Linear(latent_dim, 2 * channels)
        nn.init.zeros_(self.style.bias)

    def forward(self, x: torch.Tensor, z: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        """
        Args:
            x: ``(B, C, *spatial)``.
            z: ``(B, latent_dim)``.
            inplace: overwrite ``x`` when no gradient is recorded (saves a large allocation at inference).
        """
        style = self.style(z).reshape(z.shape[0], 2 * self.channels, *([1] * (x.ndim - 2)))
        gamma, beta = style.chunk(2, dim=1)
        if not fast_paths_enabled():  # the plain path: the definition above, statistics in float32
            return (1.0 + gamma) * F.instance_norm(x.float(), eps=self.eps).to(x.dtype) + beta
        # fast path: instance norm and the affine style folded into one scale and shift, one pass over x
        var, mean = instance_moments(x)
        scale = (1.0 + gamma) * torch.rsqrt(var + self.eps)
        shift = beta - mean * scale
        if inplace and not (torch.is_grad_enabled() and (x.requires_grad or scale.requires_grad)):
            return torch.addcmul(shift.to(x.dtype), x, scale.to(x.dtype), out=x)  # one pass, no allocation
        return torch.addcmul(shift, x, scale)
