from __future__ import annotations

import math

import pytest
import torch

from cir_monai.networks import CONDITIONING, CLapIRN, PyramidOutput

SIZES = {2: (37, 45), 3: (37, 45, 29)}


def small(spatial_dims: int, conditioning: str = "distributed", **kw) -> CLapIRN:
    torch.manual_seed(0)
    return CLapIRN(spatial_dims=spatial_dims, start_channels=2, conditioning=conditioning, **kw)


def pair(spatial_dims: int, batch: int = 1, size=None):
    g = torch.Generator().manual_seed(0)
    size = size or SIZES[spatial_dims]
    return torch.rand(batch, 1, *size, generator=g), torch.rand(batch, 1, *size, generator=g)


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("conditioning", CONDITIONING)
def test_variants_run_on_odd_sizes(spatial_dims, conditioning):
    net = small(spatial_dims, conditioning).eval()
    moving, fixed = pair(spatial_dims)
    with torch.no_grad():
        ddf = net(moving, fixed, lam=1.0)
    assert ddf.shape == (1, spatial_dims, *SIZES[spatial_dims])
    assert torch.isfinite(ddf).all() and ddf.abs().max() > 0


def test_full_model_parameter_count():
    assert sum(p.numel() for p in CLapIRN(3, 7).parameters()) == 1_222_068  # method.md §2
    assert sum(p.numel() for p in CLapIRN(3, 4, lite=True).parameters()) == 503_744  # released lite model


def test_per_sample_lambda_equals_one_by_one():
    net = small(3).eval()
    moving, fixed = pair(3, batch=3, size=(16, 24, 16))
    lams = torch.tensor([0.0, 2.5, 10.0])
    with torch.no_grad():
        batched = net(moving, fixed, lams)
        single = torch.cat([net(moving[i : i + 1], fixed[i : i + 1], float(lams[i])) for i in range(3)])
    assert torch.allclose(batched, single, atol=1e-5)
    assert not torch.allclose(batched[0], batched[2], atol=1e-4)  # λ changes the field


@pytest.mark.parametrize("conditioning", ["distributed", "centralized", "concat"])
def test_gradients_reach_the_condition(conditioning):
    net = small(3, conditioning).train()
    moving, fixed = pair(3, size=(16, 16, 16))
    out = net(moving, fixed, lam=torch.tensor([3.0]))
    out.ddf.pow(2).mean().backward()
    if conditioning == "concat":
        assert net.levels[0].encoder[0].weight.grad[:, 2].abs().sum() > 0  # the λ channel
        return
    mappings = [b.mapping for lvl in net.levels for b in lvl.blocks] if conditioning == "distributed" else [net.mapping]
    assert len(mappings) == (15 if conditioning == "distributed" else 1)
    for mapping in mappings:
        assert mapping[0].weight.grad is not None and mapping[0].weight.grad.abs().sum() > 0


def test_training_mode_outputs_per_level():
    net = small(3).train()
    moving, fixed = pair(3, size=(16, 24, 32))
    out = net(moving, fixed, lam=1.0)
    assert isinstance(out, PyramidOutput)
    assert [tuple(lv.ddf.shape[2:]) for lv in out.levels] == [(4, 6, 8), (8, 12, 16), (16, 24, 32)]
    for lv in out.levels:
        assert lv.warped.shape == lv.fixed.shape == (1, 1, *lv.ddf.shape[2:])
    assert torch.equal(out.levels[-1].fixed, fixed)
    assert torch.allclose(out.levels[-1].ddf, out.ddf)
    assert torch.allclose(out.code, torch.tensor([[0.1]]))


def test_evaluation_mode_skips_training_outputs(monkeypatch):
    net = small(3).eval()
    calls = []
    original = net.warp.forward
    monkeypatch.setattr(net.warp, "forward", lambda *a: calls.append(1) or original(*a))
    with torch.no_grad():
        net(*pair(3, size=(16, 16, 16)), lam=1.0)
    assert len(calls) == net.num_levels - 1  # only the warps that feed the next level


def test_active_levels_gives_full_size_field():
    net = small(3).eval()
    with torch.no_grad():
        ddf = net(*pair(3, size=(20, 16, 12)), lam=1.0, active_levels=1)
    assert ddf.shape == (1, 3, 20, 16, 12)
    net.train()
    out = net(*pair(3, size=(16, 16, 16)), lam=1.0, active_levels=2)
    assert len(out.levels) == 2


def test_bfloat16_autocast():
    net = small(3).eval()
    moving, fixed = pair(3, size=(16, 16, 24))
    with torch.no_grad():
        ref = net(moving, fixed, 1.0)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = net(moving, fixed, 1.0)
    assert low.dtype == torch.float32 and low.shape == ref.shape
    # bfloat16 keeps ~3 significant digits: the field agrees to a few % of its range
    assert (low - ref).abs().max() < 0.1 * ref.abs().max()
    assert torch.corrcoef(torch.stack([low.flatten(), ref.flatten()]))[0, 1] > 0.99


def test_baseline_ignores_lambda():
    net = small(2, "none").eval()
    moving, fixed = pair(2)
    with torch.no_grad():
        assert torch.equal(net(moving, fixed), net(moving, fixed, 7.0))


ILL_CASES = [
    # (description, kwargs to forward, message fragment)
    ("wrong ndim", dict(moving=torch.rand(1, 1, 16, 16), fixed=torch.rand(1, 1, 16, 16)), "4-d tensor"),
    ("mismatched shapes", dict(moving=torch.rand(1, 1, 16, 16, 16), fixed=torch.rand(1, 1, 16, 16, 8)), "same shape"),
    ("two channels", dict(moving=torch.rand(1, 2, 16, 16, 16), fixed=torch.rand(1, 2, 16, 16, 16)), "1 channel"),
    ("nan input", dict(moving=torch.full((1, 1, 8, 8, 8), math.nan), fixed=torch.rand(1, 1, 8, 8, 8)), "NaN"),
    ("integer input", dict(moving=torch.ones(1, 1, 8, 8, 8, dtype=torch.int64), fixed=torch.rand(1, 1, 8, 8, 8)),
     "floating"),
    ("lam above range", dict(lam=10.5), r"\[0, 10\]"),
    ("negative lam", dict(lam=-0.1), r"\[0, 10\]"),
    ("nan lam", dict(lam=math.nan), "finite"),
    ("missing lam", dict(lam=None), "lam is required"),
    ("lam per sample of wrong length", dict(lam=torch.tensor([1.0, 2.0])), "one value per sample"),
    ("bad active_levels", dict(active_levels=4), "active_levels"),
]


@pytest.mark.parametrize("name,kwargs,message", ILL_CASES, ids=[c[0] for c in ILL_CASES])
def test_bad_inputs_raise_value_error(name, kwargs, message):
    net = small(3).eval()
    args = dict(moving=torch.rand(1, 1, 8, 8, 8), fixed=torch.rand(1, 1, 8, 8, 8), lam=1.0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        net(**args)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(spatial_dims=4), "spatial_dims"),
        (dict(conditioning="film"), "conditioning"),
        (dict(start_channels=0), "start_channels"),
        (dict(lam_max=0), "lam_max"),
    ],
)
def test_bad_constructor_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CLapIRN(**kwargs)


def test_channels_last_and_contiguous_layouts_agree():
    net = small(3).eval()
    assert net.levels[0].blocks[0].conv1.weight.is_contiguous(memory_format=torch.channels_last_3d)
    moving, fixed = pair(3, size=(64, 64, 72))  # large enough for oneDNN's channels-last kernels
    with torch.no_grad():
        fast = net(moving, fixed, 2.0)
        net.set_channels_last(False)
        plain = net(moving, fixed, 2.0)
    assert net.levels[0].blocks[0].conv1.weight.is_contiguous()
    assert (fast - plain).abs().max() < 1e-4


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("lite", [False, True])
def test_head_equals_up_concatenate_conv(spatial_dims, lite):
    """The head's composed transposed convolution is head[0](cat(up(h), skip)), values and gradients."""
    net = small(spatial_dims, lite=lite)
    level = net.levels[-1]  # the lite layout's finest level has a narrower ``up``
    g = torch.Generator().manual_seed(1)
    size = (6, 8, 4)[:spatial_dims]
    h = torch.randn(2, level.up.in_channels, *size, generator=g, requires_grad=True)
    skip = torch.randn(2, level.head[0].in_channels - level.up.out_channels, *(2 * s for s in size), generator=g,
                       requires_grad=True)
    params = [h, skip, level.up.weight, level.head[0].weight]
    ours = level._head_conv(h, skip)
    ref = level.head[0](torch.cat([level.up(h), skip], dim=1))
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    grad = torch.randn(ref.shape, generator=g)
    for a, b in zip(torch.autograd.grad(ours, params, grad), torch.autograd.grad(ref, params, grad)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_diffeomorphic_variant_integrates_the_velocity():
    import warnings

    from monai.networks.blocks import DVF2DDF

    from cir_monai.metrics import jacobian_statistics

    torch.manual_seed(0)
    plain = CLapIRN(3, start_channels=2, num_levels=1).eval()
    diffeo = CLapIRN(3, start_channels=2, num_levels=1, integration_steps=7).eval()
    diffeo.load_state_dict(plain.state_dict())
    assert diffeo.config["integration_steps"] == 7 and "integration_steps" not in plain.config
    moving, fixed = torch.rand(1, 1, 16, 20, 16), torch.rand(1, 1, 16, 20, 16)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        velocity = plain(moving, fixed, 1.0) * 8  # a large, rough field: folds as a displacement
        expected = DVF2DDF(num_steps=7, mode="bilinear", padding_mode="border")(velocity / 8)
        got = diffeo(moving, fixed, 1.0)
    assert torch.allclose(got, expected, atol=1e-4), (got - expected).abs().max()
    assert jacobian_statistics(velocity)["folding_pct"].item() > jacobian_statistics(
        DVF2DDF(num_steps=7, mode="bilinear", padding_mode="border")(velocity))["folding_pct"].item()
    with pytest.raises(ValueError, match="integration_steps"):
        CLapIRN(3, start_channels=2, integration_steps=-1)
    diffeo.train()
    out = diffeo(moving, fixed, 1.0)  # training mode: the level's DDF is the integrated one too
    assert torch.allclose(out.levels[0].ddf, got, atol=1e-4)
