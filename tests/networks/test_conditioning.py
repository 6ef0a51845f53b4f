from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cir_monai.networks import ConditionalInstanceNorm, MappingNetwork
from cir_monai.networks.conditioning import instance_moments


def test_mapping_network_shapes_and_layout():
    net = MappingNetwork(1, 64, 64, num_layers=4)
    assert net(torch.rand(3, 1)).shape == (3, 64)
    assert [k for k in net.state_dict() if k.endswith("weight")] == [f"{i}.weight" for i in (0, 2, 4, 6)]
    central = MappingNetwork(1, 256, 256, num_layers=8)
    assert sum(isinstance(m, torch.nn.Linear) for m in central) == 8
    with pytest.raises(ValueError, match="num_layers"):
        MappingNetwork(num_layers=0)


def test_cin_zero_style_is_plain_instance_norm():
    cin = ConditionalInstanceNorm(4, latent_dim=8)
    torch.nn.init.zeros_(cin.style.weight)
    x = torch.randn(2, 4, 5, 6, 7) * 3 + 1
    assert torch.allclose(cin(x, torch.randn(2, 8)), F.instance_norm(x, eps=1e-5), atol=1e-6)


def test_cin_applies_one_plus_gamma_and_beta():
    cin = ConditionalInstanceNorm(2, latent_dim=1)
    with torch.no_grad():
        cin.style.weight.copy_(torch.tensor([[1.0], [2.0], [3.0], [4.0]]))
        cin.style.bias.zero_()
    x = torch.randn(1, 2, 6, 6)
    z = torch.tensor([[0.5]])  # gamma = (0.5, 1.0), beta = (1.5, 2.0)
    normed = F.instance_norm(x, eps=1e-5)
    expected = torch.stack([1.5 * normed[0, 0] + 1.5, 2.0 * normed[0, 1] + 2.0])[None]
    assert torch.allclose(cin(x, z), expected, atol=1e-6)


@pytest.mark.parametrize("layout", [torch.channels_last_3d, torch.contiguous_format])
def test_instance_moments_and_their_gradient_match_var_mean(layout):
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(2, 5, 6, 7, 8, generator=g, dtype=torch.float64) * 2 + 1).contiguous(memory_format=layout)
    x.requires_grad_()
    var, mean = instance_moments(x)
    ref_var, ref_mean = torch.var_mean(x, dim=(2, 3, 4), keepdim=True, unbiased=False)
    torch.testing.assert_close(var, ref_var, rtol=1e-5, atol=1e-6, check_dtype=False)
    torch.testing.assert_close(mean, ref_mean, rtol=1e-5, atol=1e-6, check_dtype=False)
    gv, gm = (torch.randn(var.shape, generator=g, dtype=torch.float64),
              torch.randn(mean.shape, generator=g, dtype=torch.float64))
    (ours,) = torch.autograd.grad((var * gv).sum() + (mean * gm).sum(), x)
    (ref,) = torch.autograd.grad((ref_var * gv).sum() + (ref_mean * gm).sum(), x)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-6)
    assert ours.is_contiguous(memory_format=layout)
    with torch.no_grad():
        torch.testing.assert_close(instance_moments(x)[0], var.detach())
