from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cir_monai.networks.convolution import OneDNNConv3d, conv3d

CL = torch.channels_last_3d


def _close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-5) -> None:
    """Equal up to float32 rounding of sums over thousands of terms (relative to the largest value)."""
    assert a.shape == b.shape
    assert (a - b).abs().max() <= tol * b.abs().max(), float((a - b).abs().max() / b.abs().max())


def _inputs(shape, channels=6, layout=CL, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, channels, *shape, generator=g).contiguous(memory_format=layout)
    w = torch.randn(5, channels, 3, 3, 3, generator=g).contiguous(memory_format=layout)
    return x.requires_grad_(), w.requires_grad_()


@pytest.mark.parametrize("shape", [(16, 20, 16), (8, 10, 8), (9, 10, 8), (7, 9, 6), (2, 5, 4), (1, 4, 4), (40, 40, 40)])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("layout", [CL, torch.contiguous_format])
def test_conv3d_equals_torch_values_and_gradients(shape, stride, layout):
    x, w = _inputs(shape, layout=layout)
    ours = conv3d(x, w, stride=stride, padding=1)
    ref = F.conv3d(x, w, stride=stride, padding=1)
    _close(ours, ref)
    grad = torch.randn_like(ref)
    for a, b in zip(torch.autograd.grad(ours, (x, w), grad), torch.autograd.grad(ref, (x, w), grad)):
        _close(a, b)
    with torch.no_grad():
        _close(conv3d(x, w, stride=stride, padding=1), ref)


def test_small_training_input_runs_as_two_depth_slabs():
    x, w = _inputs((16, 20, 16))  # 6·16·20 ≤ 20480: PyTorch would pick its reference kernel
    assert conv3d(x, w, padding=1).grad_fn.name() == "CatBackward0"
    odd, wo = _inputs((9, 10, 8))  # odd output depth: one zero row added, then dropped
    assert conv3d(odd, wo, padding=1).grad_fn.name() == "SliceBackward0"
    assert conv3d(x.detach(), w.detach(), padding=1).grad_fn is None
    big, wb = _inputs((40, 40, 40), channels=28)  # above the limit: F.conv3d itself
    assert conv3d(big, wb, padding=1).grad_fn.name() == "ConvolutionBackward0"


def test_module_keeps_conv3d_weights_and_traces_to_plain_convolution():
    torch.manual_seed(0)
    module = OneDNNConv3d(4, 3, 3, stride=1, padding=1, bias=False).to(memory_format=CL)
    plain = torch.nn.Conv3d(4, 3, 3, padding=1, bias=False)
    plain.load_state_dict(module.state_dict())
    x = torch.randn(1, 4, 8, 10, 8).contiguous(memory_format=CL)
    _close(module(x), plain(x))
    traced = torch.jit.trace(module, x)
    assert "mkldnn" not in str(traced.graph)  # exported models must also run on CUDA
    _close(traced(x), plain(x))


def test_conv3d_takes_ints_like_f_conv3d():
    x, w = _inputs((8, 10, 8))
    _close(conv3d(x, w), F.conv3d(x, w))  # padding 0 by default, as F.conv3d
    _close(conv3d(x, w, stride=2, padding=1), F.conv3d(x, w, stride=2, padding=1))

