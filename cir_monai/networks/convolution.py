# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""The 3×3(×3) convolutions of cLapIRN, and a 3D convolution that always reaches oneDNN on CPU."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.layers import Conv
from torch.nn.modules.utils import _triple

from cir_monai.networks.fast import fast_paths_enabled

__all__ = ["conv3", "conv3d", "OneDNNConv3d"]


def conv3(spatial_dims: int, in_channels: int, out_channels: int, stride: int = 1) -> nn.Module:
    """3×3(×3) convolution, padding 1, no bias (all convolutions of cLapIRN)."""
    if spatial_dims == 3:
        return OneDNNConv3d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
    return Conv[Conv.CONV, spatial_dims](in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


#: PyTorch's CPU heuristic runs a float32 3D convolution of a single sample in its slow reference
#: kernel when ``C·D·H`` is at most this (``ConvParams::use_mkldnn``, aten/src/ATen/native/Convolution.cpp)
_NATIVE_CONV_LIMIT = 20480


def conv3d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
) -> torch.Tensor:
    """``F.conv3d`` (numeric zero padding, no dilation, one group) that sends float32 channels-last CPU input to oneDNN.

    For one sample with ``C·D·H ≤ 20480`` (the coarse pyramid levels: 28 channels at 16×20×16)
    PyTorch picks its slow reference kernel, forward and backward. Without gradients this calls
    oneDNN directly; with gradients the volume is cut along depth into two slabs (each with the
    rows its kernel reads; an odd output depth gets one extra zero row, dropped afterwards) run
    as a batch of two, which PyTorch sends to oneDNN both ways, and the two output slabs are
    joined again: the same sums, faster forward + backward (measured: docs/benchmarks.md).
    Everything else (CUDA, other dtypes, autocast, contiguous layout, larger inputs, the fast paths
    switched off or a trace for TorchScript: :mod:`cir_monai.networks.fast`) is ``F.conv3d`` unchanged.

    Shapes:
        ``input`` ``(B, C_in, D, H, W)``, ``weight`` ``(C_out, C_in, k, k, k)`` -> ``(B, C_out, D', H', W')``.
    """
    stride, padding = _triple(stride), _triple(padding)
    small = input.shape[0] == 1 and input.shape[1] * input.shape[2] * input.shape[3] <= _NATIVE_CONV_LIMIT
    if not (small and _onednn_applies(input, weight)):
        return F.conv3d(input, weight, bias, stride, padding)
    if not (torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (input, weight, bias))):
        return torch.ops.aten.mkldnn_convolution(input, weight, bias, padding, stride, (1, 1, 1), 1)
    kernel, step = weight.shape[2], stride[0]
    depth = (input.shape[2] + 2 * padding[0] - kernel) // step + 1  # output rows
    if depth < 2:
        return F.conv3d(input, weight, bias, stride, padding)
    rows = (depth + 1) // 2  # output rows per slab
    span = (rows - 1) * step + kernel  # input rows read by ``rows`` output rows
    extra = max(0, rows * step + span - (input.shape[2] + 2 * padding[0]))  # zero rows an odd depth needs
    padded = F.pad(input, (0, 0, 0, 0, padding[0], padding[0] + extra))
    slabs = torch.cat([padded[:, :, :span], padded[:, :, rows * step : rows * step + span]])
    out = F.conv3d(slabs, weight, bias, stride, (0,) + padding[1:])
    out = torch.cat([out[:1], out[1:]], dim=2)
    return out if out.shape[2] == depth else out[:, :, :depth]


def _onednn_applies(input: torch.Tensor, weight: torch.Tensor) -> bool:
    return (
        input.device.type == "cpu"
        and input.dtype == torch.float32
        and weight.dtype == torch.float32
        and torch.backends.mkldnn.is_available()
        and torch.backends.mkldnn.enabled
        and input.is_contiguous(memory_format=torch.channels_last_3d)
        and not torch.is_autocast_enabled("cpu")
        and fast_paths_enabled()
    )


class OneDNNConv3d(nn.Conv3d):
    """``nn.Conv3d`` whose forward is :func:`conv3d`; same weights and keys.

    String padding, other padding modes, dilation or groups take ``nn.Conv3d``'s own path.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, padding: int = 1,
                 bias: bool = False):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias)

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if (isinstance(self.padding, str) or self.padding_mode != "zeros" or self.dilation != (1, 1, 1)
                or self.groups != 1):
            return super()._conv_forward(input, weight, bias)
        return conv3d(input, weight, bias, self.stride, self.padding)
