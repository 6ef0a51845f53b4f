# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Count parameters and multiply-accumulates (MACs) of a forward pass."""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_parameters", "count_macs"]


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def count_macs(module: nn.Module, *args, **kwargs) -> int:
    """Multiply-accumulates of one forward call: convolutions (also functional ones), matrix products.

    Counted by PyTorch's ``FlopCounterMode`` at the operator level (MACs = FLOPs / 2). Element-wise work
    (norms, activations, warping) is not counted: it is memory-bound, not MAC-bound.
    """
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(*args, **kwargs)
    return counter.get_total_flops() // 2
