# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Pre-activation residual blocks of the registration pyramid (method.md §2)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.layers import Conv

from cir_monai.networks.conditioning import ConditionalInstanceNorm, MappingNetwork

__all__ = ["conv3", "OneDNNConv3d", "ConditionalResBlock", "PlainResBlock"]


def conv3(spatial_dims: int, in_channels: int, out_channels: int, stride: int = 1) -> nn.Module:
    """3×3(×3) convolution, padding 1, no bias (all convolutions of cLapIRN)."""
    if spatial_dims == 3:
        return OneDNNConv3d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
    return Conv[Conv.CONV, spatial_dims](in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


class OneDNNConv3d(nn.Conv3d):
    """``nn.Conv3d`` that sends every float32 channels-last CPU input to oneDNN.

    PyTorch picks its slow reference kernel whenever ``B·C·D·H < 20480``, i.e. for the coarse
    pyramid levels (28 channels at 16×20×16 is 4× slower there than in oneDNN; forward only,
    the backward passes cost the same). Everything else (CUDA, other dtypes, autocast,
    contiguous layout, tracing for TorchScript export) takes ``nn.Conv3d``'s path unchanged;
    the weights and their state-dict keys are ``nn.Conv3d``'s.
    """

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if (
            input.device.type == "cpu"
            and input.dtype == torch.float32
            and weight.dtype == torch.float32
            and self.padding_mode == "zeros"
            and torch.backends.mkldnn.is_available()
            and torch.backends.mkldnn.enabled
            and input.is_contiguous(memory_format=torch.channels_last_3d)
            and not torch.is_autocast_enabled("cpu")
            and not torch.jit.is_tracing()
            and not torch.jit.is_scripting()
        ):
            return torch.ops.aten.mkldnn_convolution(input, weight, bias, self.padding, self.stride, self.dilation, self.groups)
        return super()._conv_forward(input, weight, bias)


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
