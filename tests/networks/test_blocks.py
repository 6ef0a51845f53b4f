"""Residual blocks: the conditional block's style changes its output, the plain block ignores the code."""

from __future__ import annotations

import torch

from cir_monai.networks import ConditionalResBlock, PlainResBlock


def test_distributed_block_maps_the_code_and_changes_with_it():
    torch.manual_seed(0)
    block = ConditionalResBlock.distributed(3, channels=4, latent_dim=8)
    x = torch.rand(2, 4, 6, 6, 6)
    out0, out1 = block(x, torch.zeros(2, 1)), block(x, torch.ones(2, 1))
    assert out0.shape == x.shape and not torch.allclose(out0, out1)
    assert block.mapping is not None and block.mapping[-2].out_features == 8


def test_centralized_block_takes_the_latent_and_2d_works():
    torch.manual_seed(0)
    block = ConditionalResBlock(2, channels=3, latent_dim=16)
    with torch.no_grad():
        block.ai1.style.weight.normal_()  # a style that depends on the latent
    x = torch.rand(1, 3, 8, 8)
    out0, out1 = block(x, torch.zeros(1, 16)), block(x, torch.ones(1, 16))
    assert out0.shape == x.shape and not torch.allclose(out0, out1)


def test_plain_block_is_a_residual_that_ignores_the_code():
    torch.manual_seed(0)
    block = PlainResBlock(3, channels=4)
    x = torch.rand(1, 4, 6, 6, 6)
    assert torch.equal(block(x, torch.zeros(1, 1)), block(x, None))
    with torch.no_grad():
        block.conv2.weight.zero_()
    assert torch.equal(block(x), x)  # zero last convolution: the identity
