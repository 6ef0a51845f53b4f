"""ANTs (antspyx 0.6.3 from PyPI, requirements-bench.txt) through cir_monai.baselines: the real tool's registration,
its composed field converted to a voxel DDF and scored as the networks are.

Run by `make integration` in its own venv (antspyx pins numpy < 2.4 and scipy < 1.16).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "2")


@pytest.fixture(scope="module")
def scored():
    from cir_monai.baselines import ants_rows
    from cir_monai.workflows import data_pairs

    pair = {**data_pairs("embedded", "test")[0], "id": "embedded_test_0"}  # 2 mm, 80×96×80, 3 tissue labels
    rows, checks = ants_rows([pair], "SyN")
    return pair, rows[0], checks[0]


def test_the_converted_field_reproduces_ants(scored):
    """MONAI's warp with the converted DDF gives ANTs' own warped image, and its 4th-order det J ANTs' Jacobian image.
    Measured 5.9e-6 (of the image's range) and 6.2e-7 on this pair; 1e-4 leaves room for ITK versions, and a wrong
    axis order or LPS sign gives errors of order 1."""
    _, _, check = scored
    assert check["inside_fraction"] > 0.9
    assert check["warp_maxabs_inside"] < 1e-4
    assert check["jac_maxabs_vs_ants"] < 1e-4


def test_ants_is_scored_as_the_networks_are(scored):
    """The row holds every score of cir_monai.engines.evaluation.score_field; SyN registers the pair (Dice 0.743 here
    against 0.51 unregistered; > 0.65 fails a broken conversion), and Dice through the DDF by nearest neighbour is
    within 0.05 of ANTs' own genericLabel warp (0.759)."""
    import nibabel as nib
    import numpy as np
    import torch

    from cir_monai.engines.evaluation import score_field
    from cir_monai.metrics import present_labels

    pair, row, _ = scored
    assert {"dice_mean", "hd95_mean", "epe_mm", "jac_std", "folding_pct", "sdlogj", "seconds"} <= set(row)
    assert row["method"] == "ANTs SyN" and row["seconds"] > 0
    assert row["dice_mean"] > 0.65 and abs(row["dice_mean"] - row["dice_mean_genericlabel"]) < 0.05
    assert row["folding_pct"] < 0.5
    labels = [torch.from_numpy(np.rint(np.asarray(nib.load(pair[k]).dataobj)).astype(np.int64))[None, None]
              for k in ("moving_label", "fixed_label")]
    before, _ = score_field(torch.zeros(1, 3, *labels[0].shape[2:]), *labels, present_labels(*labels))
    assert row["dice_mean"] > before["dice_mean"] + 0.1


@pytest.mark.parametrize("peer", ["convexadam", "elastix", "fireants"])
def test_each_peer_registers_and_is_scored_as_the_networks_are(peer):
    """ConvexAdam and elastix (their package defaults) and FireANTs (its brain settings, full iterations: about half
    a minute on one thread) on the same embedded pair: each field, converted to a voxel DDF, registers it (Dice well
    above the unregistered 0.51) without folding much. Measured on this pair: see the printed line; the floor fails
    an axis order or sign error in the conversion (Dice then falls below identity)."""
    from cir_monai.baselines import peer_rows
    from cir_monai.workflows import data_pairs

    pair = {**data_pairs("embedded", "test")[0], "id": "embedded_test_0"}
    row = peer_rows([pair], peer)[0]
    print(peer, {k: round(row[k], 4) for k in ("dice_mean", "jac_std", "folding_pct", "seconds")})
    assert row["dice_mean"] > 0.62 and row["folding_pct"] < 1.0 and row["seconds"] > 0
    assert not Path("deformationField.nii").exists()  # transformix writes into a temporary folder, not the cwd


@pytest.fixture(scope="module")
def fireants_result():
    from cir_monai.baselines import fireants_register
    from cir_monai.workflows import data_pairs

    pair = data_pairs("embedded", "test")[0]
    return fireants_register(pair["fixed"], pair["moving"])


def test_the_converted_field_reproduces_fireants(fireants_result):
    """MONAI's bilinear warp with the converted DDF gives FireANTs' own warped image (``evaluate``) on the whole grid:
    both sample with zeros outside the moving image, so no border is excluded. Measured 1.2e-5 of the image's range
    (max |Δ|; mean 6e-8) on this pair, float32 rounding of the normalised grid times (S - 1) / 2 ≈ 48 voxels; 1e-4
    leaves room for torch versions, while a DDF with its channels in grid_sample's (x, y, z) order instead of the
    array's gives 0.88 and a zero DDF 0.88, so the check fails any axis order, sign or scale error."""
    import numpy as np
    import torch

    from cir_monai.networks import Warp

    result = fireants_result
    ddf, moving, warped = result["ddf"], result["moving"], result["warped"]
    assert ddf.shape == (1, 3, *moving.shape) and ddf.dtype == torch.float32 and result["seconds"] > 0
    assert ddf.abs().amax() > 2.0  # a real deformation (≈ 5 voxels here), not a near-identity that hides errors
    scale = float(moving.max() - moving.min())
    warp = Warp("bilinear", "zeros")
    ours = warp(torch.from_numpy(moving)[None, None], ddf)[0, 0].numpy()
    assert np.abs(ours - warped).max() / scale < 1e-4
    flipped = warp(torch.from_numpy(moving)[None, None], ddf.flip(1))[0, 0].numpy()
    assert np.abs(flipped - warped).max() / scale > 0.1
