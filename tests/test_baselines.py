"""Scoring a peer's field (cir_monai.baselines.score_peer) the way every network is scored; the peers themselves run
against the real packages in `make integration` (integration/test_ants.py)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch

from cir_monai.baselines import peer_rows, score_peer
from cir_monai.io.results import ddf_from_array


def test_the_true_field_scores_no_end_point_error_and_beats_no_registration(heldout_pairs):
    pair = heldout_pairs[0]
    fixed = nib.load(pair["fixed"])
    truth = ddf_from_array(np.asarray(nib.load(pair["ddf_truth"]).dataobj), "voxel", fixed.affine)
    perfect = score_peer(pair, truth, 2.5, "truth", hd95=False)
    still = score_peer(pair, torch.zeros_like(truth), 0.0, "identity", hd95=False)
    assert perfect["method"] == "truth" and perfect["lam"] == "" and perfect["seconds"] == 2.5
    assert perfect["epe_mm"] < 1e-4 and still["epe_mm"] > 1.0  # the held-out pairs move by mm
    assert perfect["dice_mean"] > still["dice_mean"] + 0.2
    assert any(k.startswith("dice_") and k[5:].isdigit() for k in perfect)  # Dice per CerebrA label
    labels = np.asarray(nib.load(pair["moving_label"]).dataobj)
    assert score_peer(pair, truth, 1.0, "t", hd95=False, warped_label=labels)["dice_mean_genericlabel"] == \
        pytest.approx(still["dice_mean"], abs=1e-6)  # the moving labels unwarped score as no registration


def test_an_unknown_peer_is_named():
    names = r"\['ants', 'convexadam', 'elastix', 'fireants'\]"
    with pytest.raises(ValueError, match=rf"peer must be one of {names}, got 'syn'"):
        peer_rows([], "syn")
