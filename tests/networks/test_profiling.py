"""Parameter and multiply-accumulate counts, checked against the counts worked out by hand."""

from __future__ import annotations

import torch
import torch.nn as nn

from cir_monai.networks.convolution import OneDNNConv3d
from cir_monai.networks.profiling import count_macs, count_parameters

CL = torch.channels_last_3d


def test_parameters_of_a_convolution_and_frozen_ones_left_out():
    conv = nn.Conv3d(4, 8, 3)
    assert count_parameters(conv) == 8 * 4 * 27 + 8
    conv.bias.requires_grad_(False)
    assert count_parameters(conv) == 8 * 4 * 27


def test_macs_of_convolutions_and_matrix_products():
    conv = nn.Conv3d(4, 8, 3, padding=1)
    assert count_macs(conv, torch.randn(1, 4, 6, 5, 4)) == 8 * 4 * 27 * 6 * 5 * 4
    assert count_macs(nn.Linear(16, 32), torch.randn(3, 16)) == 3 * 16 * 32
    assert count_macs(nn.LeakyReLU(), torch.randn(1, 4, 6)) == 0  # element-wise work is not counted


def test_count_macs_sees_the_small_convolutions():
    module = OneDNNConv3d(28, 28).to(memory_format=CL)
    x = torch.randn(1, 28, 16, 20, 16).contiguous(memory_format=CL)  # oneDNN called directly here
    assert count_macs(module, x) == 28 * 28 * 27 * 16 * 20 * 16
