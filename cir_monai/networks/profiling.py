# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Count parameters and multiply-accumulates (MACs) of a forward pass with module hooks."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

__all__ = ["count_parameters", "count_macs"]


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def count_macs(module: nn.Module, *args, **kwargs) -> int:
    """Multiply-accumulates of convolutions, transposed convolutions and linear layers in one forward call.

    Element-wise work (norms, activations, warping) is not counted: it is memory-bound, not MAC-bound.
    ``args``/``kwargs`` are passed to ``module``; it runs under ``torch.no_grad``.
    """
    total = 0

    def hook(mod: nn.Module, inputs, output) -> None:
        nonlocal total
        if isinstance(mod, nn.modules.conv._ConvNd):
            kernel = math.prod(mod.kernel_size) * (mod.in_channels // mod.groups)
            if mod.transposed:  # every input value scatters a kernel to each output channel of its group
                total += inputs[0].numel() * math.prod(mod.kernel_size) * (mod.out_channels // mod.groups)
            else:
                total += output.numel() * kernel
        elif isinstance(mod, nn.Linear):
            total += output.numel() * mod.in_features

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear))]
    try:
        with torch.no_grad():
            module(*args, **kwargs)
    finally:
        for h in handles:
            h.remove()
    return total
