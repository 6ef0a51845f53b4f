from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cir_monai.networks import ConditionalInstanceNorm, MappingNetwork


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
