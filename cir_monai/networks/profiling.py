# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Count parameters and multiply-accumulates (MACs) of a forward pass."""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count

__all__ = ["count_parameters", "count_macs"]


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def count_macs(module: nn.Module, *args, **kwargs) -> int:
    """Multiply-accumulates of one forward call: convolutions (also functional ones), matrix products.

    Counted by PyTorch's ``FlopCounterMode`` at the operator level (MACs = FLOPs / 2). Element-wise work
    (norms, activations, warping) is not counted: it is memory-bound, not MAC-bound.
    """
    # the counter knows aten.convolution, not the direct oneDNN calls of cir_monai's conv3d (small inputs)
    mapping = {torch.ops.aten.mkldnn_convolution: _mkldnn_conv_flops}
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        module(*args, **kwargs)
    return counter.get_total_flops() // 2


def _mkldnn_conv_flops(x_shape, w_shape, _bias, _padding, _stride, _dilation, _groups, out_shape=None) -> int:
    """FLOPs of ``aten.mkldnn_convolution`` (called with shapes by ``FlopCounterMode``)."""
    return conv_flop_count(list(x_shape), list(w_shape), list(out_shape), transposed=False)
