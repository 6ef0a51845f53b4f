# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Pre-activation residual blocks of the registration pyramid (docs/method.md §2)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from cir_monai.networks.conditioning import ConditionalInstanceNorm, MappingNetwork
from cir_monai.networks.convolution import conv3

__all__ = ["ConditionalResBlock", "PlainResBlock"]


class ConditionalResBlock(nn.Module):
    """Conditional pre-activation residual block.

    ``x → CIN₁(x, z) → LReLU(0.2) → conv → CIN₂(·, z) → LReLU(0.2) → conv → + x``.
    Both CIN layers share ``z``. With ``mapping`` given (CIR-DM) the block owns its
    mapping network and ``cond`` is the code ``c`` of shape ``(B, 1)``; without
    (CIR-CM) ``cond`` is the shared latent ``z`` of shape ``(B, latent_dim)``.

    Args:
        spatial_dims: 2 or 3.
        channels: feature channels (in = out).
        latent_dim: size of ``z`` consumed by the CIN layers.
        mapping: the block's own mapping network, or ``None``.

    Shapes:
        ``x``: ``(B, C, *spatial)`` -> same.
    """

    def __init__(self, spatial_dims: int, channels: int, latent_dim: int = 64, mapping: nn.Module | None = None):
        super().__init__()
        self.ai1 = ConditionalInstanceNorm(channels, latent_dim)
        self.conv1 = conv3(spatial_dims, channels, channels)
        self.ai2 = ConditionalInstanceNorm(channels, latent_dim)
        self.conv2 = conv3(spatial_dims, channels, channels)
        self.mapping = mapping

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        z = self.mapping(cond) if self.mapping is not None else cond
        out = self.conv1(F.leaky_relu(self.ai1(x, z), 0.2, inplace=True))
        out = self.conv2(F.leaky_relu(self.ai2(out, z, inplace=True), 0.2, inplace=True))
        return out.add_(x)

    @classmethod
    def distributed(cls, spatial_dims: int, channels: int, latent_dim: int = 64, width: int = 64):
        """CIR-DM block: owns a 4-layer mapping network ``c → z``."""
        return cls(spatial_dims, channels, latent_dim, MappingNetwork(1, width, latent_dim, num_layers=4))


class PlainResBlock(nn.Module):
    """Unconditional pre-activation residual block (LapIRN baseline, concat variant).

    ``x → LReLU(0.2) → conv → LReLU(0.2) → conv → + x``; no normalisation. The
    ``cond`` argument is accepted and ignored so every block has one signature.
    """

    def __init__(self, spatial_dims: int, channels: int):
        super().__init__()
        self.conv1 = conv3(spatial_dims, channels, channels)
        self.conv2 = conv3(spatial_dims, channels, channels)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv1(F.leaky_relu(x, 0.2))
        out = self.conv2(F.leaky_relu(out, 0.2, inplace=True))
        return out.add_(x)
