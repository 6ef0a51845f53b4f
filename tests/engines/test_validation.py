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
