"""Run a ``CLapIRN`` the way the authors' implementation runs it, for side-by-side timings.

Used by ``bench_inference.py`` and ``bench_training.py`` so that "ours" and "the authors' way"
are measured on the same weights, in the same run, on the same machine. What changes (and
nothing else; the maths is the same):

* contiguous (NCDHW) layout instead of channels-last, so PyTorch's default convolution choice;
* conditional instance norm as ``instance_norm`` followed by the affine style, with autograd's
  own backward;
* out-of-place activations;
* every level builds ``up(h)``, concatenates it with the skip features and applies the head's
  first 3×3 convolution to the concatenation (ours: one stride-2 transposed convolution);
* the warped image computed at every level (training mode), as the reference does at inference.
"""

from __future__ import annotations

import types

import torch
import torch.nn as nn
import torch.nn.functional as F


def _level_forward(self, x, cond, coarse_features=None, return_features=True):
    skip = self.encoder(x)
    h = self.down(skip)
    if coarse_features is not None:
        h = h + coarse_features
    for block in self.blocks:
        h = F.leaky_relu(block(h, cond), 0.2)
    up = self.up(h)
    residual = self.head(torch.cat([up, skip], dim=1)) * self.range_flow
    return residual, up


def _cin_forward(self, x, z, inplace=False):
    style = self.style(z).reshape(z.shape[0], 2 * self.channels, *([1] * (x.ndim - 2)))
    gamma, beta = style.chunk(2, dim=1)
    return (1.0 + gamma) * F.instance_norm(x, eps=self.eps) + beta


def _block_forward(self, x, cond):
    z = self.mapping(cond) if self.mapping is not None else cond
    out = self.conv1(F.leaky_relu(self.ai1(x, z), 0.2))
    out = self.conv2(F.leaky_relu(self.ai2(out, z), 0.2))
    return out + x


def reference_style(net: nn.Module) -> nn.Module:
    """Patch ``net`` (a ``CLapIRN``) in place to run the authors' way; returns it in training mode."""
    from cir_monai.networks import ConditionalInstanceNorm, ConditionalResBlock, RegistrationLevel

    net.set_channels_last(False)
    for module in net.modules():
        if isinstance(module, ConditionalInstanceNorm):
            module.forward = types.MethodType(_cin_forward, module)
        if isinstance(module, ConditionalResBlock):
            module.forward = types.MethodType(_block_forward, module)
        if isinstance(module, nn.LeakyReLU):
            module.inplace = False
        if isinstance(module, RegistrationLevel):
            module.forward = types.MethodType(_level_forward, module)
    return net.train()  # training mode computes the per-level warped images
