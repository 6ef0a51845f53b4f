# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Classical baselines scored exactly as the networks are: ANTs (antspyx, ``requirements-bench.txt``).

:func:`ants_rows` registers each file pair with ``ants.registration`` on the files' own grid, composes the forward
transform (affine + SyN) into one displacement field on the fixed grid, converts it to a voxel DDF in MONAI's
convention (:func:`cir_monai.conventions.itk_field_to_voxel_ddf`) and scores that DDF with
:func:`cir_monai.engines.evaluation.score_field`, the function that scores every network: the moving label
warped by nearest neighbour through the DDF, Dice per label, HD95, std|J|, % det J ≤ 0, SDlogJ and, for known-truth
pairs, the end-point error. Every pair also checks the conversion (:func:`ants_conversion_check`): MONAI's warp
with the converted DDF reproduces ANTs' own warped image, and its 4th-order det J ANTs' Jacobian image.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Sequence

import nibabel as nib
import numpy as np
import torch

from cir_monai.conventions import itk_field_to_voxel_ddf
from cir_monai.engines.evaluation import score_field
from cir_monai.metrics import dice_per_label, jacobian_determinant, present_labels
from cir_monai.networks import Warp

__all__ = ["ants_register", "ants_conversion_check", "ants_rows"]


def ants_register(fixed: str | os.PathLike, moving: str | os.PathLike, transform: str = "SyN",
                  moving_label: str | os.PathLike | None = None) -> dict:
    """``ants.registration(fixed, moving, type_of_transform=transform)`` of two files.

    Returns:
        ``ddf`` ``(1, 3, *S)`` voxels of the fixed grid (MONAI's convention), ``seconds`` (the registration's wall
        time), ``warped`` (ANTs' own warped moving image, array), ``det`` (ANTs' Jacobian determinant image of the
        composed field, array), ``moving`` (the moving image's array) and, with ``moving_label``, ``warped_label``
        (warped by ANTs' ``genericLabel`` interpolator).
    """
    import ants

    fixed_img, moving_img = ants.image_read(str(fixed)), ants.image_read(str(moving))
    with tempfile.TemporaryDirectory(prefix="ants_") as tmp:
        start = time.perf_counter()
        reg = ants.registration(fixed_img, moving_img, type_of_transform=transform, outprefix=os.path.join(tmp, "r_"))
        seconds = time.perf_counter() - start
        composed = ants.apply_transforms(fixed_img, moving_img, reg["fwdtransforms"], compose=os.path.join(tmp, "c_"))
        out = {
            "ddf": itk_field_to_voxel_ddf(ants.image_read(composed).numpy(), fixed_img.direction, fixed_img.spacing),
            "seconds": seconds, "warped": reg["warpedmovout"].numpy(), "moving": moving_img.numpy(),
            "det": ants.create_jacobian_determinant_image(fixed_img, composed).numpy(),
        }
        if moving_label is not None:
            out["warped_label"] = ants.apply_transforms(fixed_img, ants.image_read(str(moving_label)),
                                                        reg["fwdtransforms"], interpolator="genericLabel").numpy()
    return out


def ants_conversion_check(result: dict) -> dict[str, float]:
    """How well the converted DDF of :func:`ants_register` reproduces ANTs: max / mean |Δ| between MONAI's bilinear
    warp with it and ANTs' warped image where the sample point lies inside the moving image (ITK gives 0 outside,
    MONAI's ``border`` the edge value), as a fraction of the image's range, and max / mean |Δ| of the 4th-order det J
    against ANTs' Jacobian image (2 voxels in from the border)."""
    ddf, moving = result["ddf"], result["moving"]
    ours = Warp("bilinear", "border")(torch.from_numpy(moving)[None, None].float(), ddf)[0, 0].numpy()
    diff = np.abs(ours - result["warped"])
    index = np.stack(np.meshgrid(*[np.arange(s) for s in moving.shape], indexing="ij"))
    point = index + ddf[0].numpy()
    size = np.asarray(moving.shape).reshape(3, 1, 1, 1) - 1
    inner = diff[((point >= 0) & (point <= size)).all(0)]
    det_diff = np.abs(jacobian_determinant(ddf.double(), "central4")[0].numpy() - result["det"][2:-2, 2:-2, 2:-2])
    scale = float(np.abs(moving).max()) or 1.0
    return {"warp_maxabs_inside": float(inner.max()) / scale, "warp_meanabs_inside": float(inner.mean()) / scale,
            "inside_fraction": inner.size / diff.size, "jac_maxabs_vs_ants": float(det_diff.max()),
            "jac_meanabs_vs_ants": float(det_diff.mean()), "ddf_maxabs_vox": float(ddf.abs().max())}


def _labels(path: str | os.PathLike) -> torch.Tensor:
    return torch.from_numpy(np.rint(np.asarray(nib.load(str(path)).dataobj)).astype(np.int64))[None, None]


def ants_rows(pairs: Sequence[dict], transform: str = "SyN", hd95: bool = True) -> tuple[list[dict], list[dict]]:
    """Register each file pair with ANTs; its rows (:mod:`cir_monai.benchmarking`'s layout, method
    ``"ANTs <transform>"``, λ ``""``) and the conversion checks (one per pair, :func:`ants_conversion_check`).

    Scored by :func:`~cir_monai.engines.evaluation.score_field` (labels by nearest neighbour through the DDF, as
    every network); ``dice_mean_genericlabel`` is the Dice of ANTs' own ``genericLabel`` warp, for reference.
    """
    rows, checks = [], []
    for pair in pairs:
        result = ants_register(pair["fixed"], pair["moving"], transform, pair["moving_label"])
        checks.append({"pair": pair["id"], **ants_conversion_check(result)})
        fixed = nib.load(str(pair["fixed"]))
        f_lab, m_lab = _labels(pair["fixed_label"]), _labels(pair["moving_label"])
        labels = present_labels(f_lab, m_lab)
        truth = None
        if pair.get("ddf_truth"):  # known-truth pairs (cir_monai.data.heldout): end-point error over the brain
            truth = torch.from_numpy(np.moveaxis(np.asarray(nib.load(pair["ddf_truth"]).dataobj)[:, :, :, 0, :],
                                                 -1, 0).astype(np.float32).copy())[None]
        brain = torch.from_numpy(np.asarray(fixed.dataobj) > 0)
        scores, dice = score_field(result["ddf"], m_lab, f_lab, labels,
                                   spacing=[float(s) for s in fixed.header.get_zooms()[:3]] if hd95 else None,
                                   truth=truth, brain=brain, affine=fixed.affine)
        generic, _ = dice_per_label(torch.from_numpy(np.rint(result["warped_label"]).astype(np.int64))[None, None],
                                    f_lab, labels)
        rows.append({"method": f"ANTs {transform}", "pair": pair["id"], "lam": "", **scores,
                     "seconds": result["seconds"], "dice_mean_genericlabel": float(torch.nanmean(generic[0])),
                     **{f"dice_{v}": float(d) for v, d in zip(labels, dice)}})
        c = checks[-1]
        print(f"  ANTs {pair['id']}: {result['seconds']:.1f} s, Dice {scores['dice_mean']:.3f}; DDF check: warp "
              f"max|Δ| {c['warp_maxabs_inside']:.2e}, det J max|Δ| {c['jac_maxabs_vs_ants']:.2e}",
              file=sys.stderr, flush=True)
    return rows, checks
