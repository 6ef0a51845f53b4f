"""Scores of a network on tensor pairs (cir_monai.engines.validation): rows per pair and λ with the objective."""

from __future__ import annotations

import pytest
import torch

from cir_monai.data import make_pair, phantom
from cir_monai.data.slices import slice_pairs
from cir_monai.engines.validation import score_pairs, validate
from cir_monai.losses import CLapIRNLoss
from cir_monai.networks import CLapIRN


@pytest.fixture(scope="module")
def slices():
    pair = make_pair(*phantom((24, 28, 20), seed=0), seed=1)
    return slice_pairs([pair], per_pair=2)


def test_score_pairs_rows_and_objective(slices):
    torch.manual_seed(0)
    net = CLapIRN(2, start_channels=2).train()
    rows = score_pairs(net, slices, [0.5, 4.0], "cpu")
    assert net.training  # restored
    assert [(r["pair"], r["lam"]) for r in rows] == [(0, ""), (0, 0.5), (0, 4.0)] * 2
    assert [r["slice"] for r in rows] == [slices[0]["slice"]] * 3 + [slices[1]["slice"]] * 3
    assert rows[0]["method"] == "identity" and rows[0]["jac_std"] == 0.0
    first = slices[0]
    with torch.no_grad():
        ddf = net.eval()(first["moving"], first["fixed"], 4.0)
        expected = CLapIRNLoss(2, 3).field_objective(first["moving"], first["fixed"], ddf, 4.0)
    assert rows[2]["objective"] == pytest.approx(float(expected[0]), rel=1e-5)
    means = validate(net, slices, [0.5], "cpu", before=False)
    assert means["dice@0.5"] == pytest.approx((rows[1]["dice_mean"] + rows[4]["dice_mean"]) / 2, rel=1e-6)


def test_the_level_validator_predicts_through_its_inferer(slices):
    """train#inferer is what validation uses: the validator's scores through a ConditionalInferer of the plain network
    equal predict_field's, at every level count, and an inferer's λ check applies (a λ above the range is refused)."""
    from cir_monai.engines.validation import LevelValidator
    from cir_monai.inferers import ConditionalInferer, InvalidRequestError

    torch.manual_seed(0)
    net = CLapIRN(2, start_channels=2, lam_max=10.0).eval()
    calls = []

    class Counting(ConditionalInferer):
        def __call__(self, inputs, network, *args, **kwargs):
            calls.append(kwargs["active_levels"])
            return super().__call__(inputs, network, *args, **kwargs)

    for levels in (1, 3):
        plain = LevelValidator(net, slices, [0.5, 4.0], "cpu").run(active_levels=levels)
        through = LevelValidator(net, slices, [0.5, 4.0], "cpu", inferer=Counting(stacked=False)).run(levels)
        assert through == pytest.approx(plain, rel=1e-6, abs=1e-9)
    assert calls == [1] * 4 + [3] * 4  # 2 slices × 2 λ per run
    with pytest.raises(InvalidRequestError, match="lam"):
        LevelValidator(net, slices, [11.0], "cpu", inferer=ConditionalInferer(stacked=False)).run()
    with pytest.raises(TypeError, match="active_levels"):
        ConditionalInferer()(torch.cat([slices[0]["moving"], slices[0]["fixed"]], 1), net, active_levels=1)
