# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Peers scored exactly as the networks are: ANTs, ConvexAdam, elastix and FireANTs, each from PyPI
(``requirements-bench.txt``).

:func:`ants_rows` registers each file pair with ``ants.registration`` on the files' own grid, composes the forward
transform (affine + SyN) into one displacement field on the fixed grid, converts it to a voxel DDF in MONAI's
convention (:func:`cir_monai.conventions.itk_field_to_voxel_ddf`) and scores that DDF with
:func:`cir_monai.engines.evaluation.score_field`, the function that scores every network: the moving label
warped by nearest neighbour through the DDF, Dice per label, HD95, std|J|, % det J ≤ 0, SDlogJ and, for known-truth
pairs, the end-point error. Every pair also checks the conversion (:func:`ants_conversion_check`): MONAI's warp
with the converted DDF reproduces ANTs' own warped image, and its 4th-order det J ANTs' Jacobian image.

:func:`peer_rows` does the same for every peer in :data:`PEERS`, each run with its package's defaults for
inter-subject brain MRI on the files' own grid (both images of a pair on one grid, as the held-out pairs are):

* ``"ants"``: ``ants.registration(type_of_transform="SyN")`` (affine + SyN, ANTs' recommended default);
* ``"convexadam"``: ``convexAdam.convex_adam_MIND.convex_adam_pt`` with its package defaults (MIND-SSC features,
  grid 6, displacement half-width 4, inverse-consistent coupled convex optimisation, then 80 Adam steps at
  λ 1.25); its field is in voxels of the array, component *i* along axis *i*: MONAI's DDF as it is;
* ``"elastix"``: ``itk.elastix_registration_method`` with elastix's default affine and B-spline parameter maps
  (``itk.ParameterObject.GetDefaultParameterMap``), its transform turned into a displacement field on the fixed
  grid by ``itk.transformix_deformation_field`` (LPS mm, converted like ANTs');
* ``"fireants"``: FireANTs' ``AffineRegistration`` then ``GreedyRegistration`` with the settings of its own
  inter-subject brain script (:data:`FIREANTS_AFFINE`, :data:`FIREANTS_GREEDY`), on CPU; its sampling grid
  (normalised ``align_corners=True`` coordinates of the moving image) turned into a voxel DDF
  (:func:`fireants_register`).
"""

from __future__ import annotations

import contextlib
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
from cir_monai.io.results import ddf_from_array
from cir_monai.metrics import dice_per_label, jacobian_determinant, present_labels
from cir_monai.networks import Warp

__all__ = ["PEERS", "ants_register", "ants_conversion_check", "ants_rows", "convexadam_register", "elastix_register",
           "fireants_register", "FIREANTS_AFFINE", "FIREANTS_GREEDY", "score_peer", "peer_rows"]


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


def convexadam_register(fixed: str | os.PathLike, moving: str | os.PathLike, **settings) -> dict:
    """ConvexAdam (``convexAdam.convex_adam_MIND.convex_adam_pt``, its defaults unless ``settings``) of two files on
    one grid; ``ddf`` ``(1, 3, *S)`` voxels (MONAI's convention) and ``seconds``."""
    from convexAdam.convex_adam_MIND import convex_adam_pt

    arrays = [torch.from_numpy(np.asarray(nib.load(str(f)).dataobj, dtype=np.float32)) for f in (fixed, moving)]
    start = time.perf_counter()
    disp = convex_adam_pt(arrays[0], arrays[1], device=torch.device("cpu"), **settings)
    seconds = time.perf_counter() - start
    return {"ddf": torch.from_numpy(np.ascontiguousarray(np.moveaxis(disp, -1, 0), dtype=np.float32))[None],
            "seconds": seconds}


def elastix_register(fixed: str | os.PathLike, moving: str | os.PathLike,
                     maps: Sequence[str] = ("affine", "bspline")) -> dict:
    """elastix (``itk.elastix_registration_method``, elastix's default parameter maps ``maps``) of two files; its
    transform as a displacement field on the fixed grid (``itk.transformix_deformation_field``), ``ddf``
    ``(1, 3, *S)`` voxels of that grid, and ``seconds``."""
    import itk

    fixed_img = itk.imread(str(fixed), itk.F)
    moving_img = itk.imread(str(moving), itk.F)
    parameters = itk.ParameterObject.New()
    for name in maps:
        parameters.AddParameterMap(parameters.GetDefaultParameterMap(name))
    start = time.perf_counter()
    _, transform = itk.elastix_registration_method(fixed_img, moving_img, parameter_object=parameters,
                                                   log_to_console=False)
    seconds = time.perf_counter() - start
    with tempfile.TemporaryDirectory(prefix="transformix_") as tmp:  # transformix writes deformationField.nii there
        field = itk.transformix_deformation_field(moving_img, transform, output_directory=tmp)
    array = np.transpose(itk.array_from_image(field), (2, 1, 0, 3))  # ITK's arrays are (z, y, x, 3)
    direction = np.asarray(fixed_img.GetDirection(), dtype=np.float64).reshape(3, 3)
    return {"ddf": itk_field_to_voxel_ddf(array, direction, np.asarray(fixed_img.GetSpacing(), dtype=np.float64)),
            "seconds": seconds}


#: FireANTs' affine stage for inter-subject brain MRI: ``AffineRegistration`` as its LPBA40 script
#: (``fireants/scripts/pairwise/test_lpba40.py`` of fireants 1.5.0, the paper's evaluation on skull-stripped T1
#: brains) runs it before greedy; that script's ``loss_type`` is ``"fusedcc"`` on CUDA, ``"cc"`` on CPU (the same
#: local NCC; the fused kernels are not in the PyPI wheel)
FIREANTS_AFFINE = {"scales": [8, 4, 2, 1], "iterations": [100, 50, 25, 20], "loss_type": "cc", "optimizer": "Adam",
                   "optimizer_lr": 3e-4, "optimizer_params": {}, "cc_kernel_size": 5}
#: FireANTs' greedy stage, the same script's ``GreedyRegistration`` (``--algo greedy``); from the class defaults it
#: differs only in ``smooth_grad_sigma`` (2, default 1) and the iterations
FIREANTS_GREEDY = {"scales": [4, 2, 1], "iterations": [200, 100, 50], "loss_type": "cc", "cc_kernel_size": 7,
                   "deformation_type": "compositive", "smooth_grad_sigma": 2, "smooth_warp_sigma": 0.5,
                   "optimizer": "adam", "optimizer_lr": 0.5}


def fireants_register(fixed: str | os.PathLike, moving: str | os.PathLike, *, affine: dict | None = None,
                      greedy: dict | None = None) -> dict:
    """FireANTs (``fireants.registration``) of two files on one grid, on CPU: ``AffineRegistration`` with
    :data:`FIREANTS_AFFINE`, then ``GreedyRegistration`` with :data:`FIREANTS_GREEDY` initialised by its matrix
    (``init_affine``), each updated by ``affine`` / ``greedy`` when given.

    The settings are those of FireANTs' own inter-subject brain script, ``fireants/scripts/pairwise/test_lpba40.py``
    (LPBA40, skull-stripped T1; its siblings for IBSR18, CUMC12 and MGH10 differ in kernel size, gradient smoothing
    and the last scale's iterations). On CPU that script skips the affine stage, only to time the deformable one
    without evaluating; here it runs, as the script's evaluated (CUDA) path does.

    Conversion: ``get_warped_coordinates(fixed, moving)`` is FireANTs' sampling grid, ``(1, K, J, I, 3)`` over
    SimpleITK's array (axes reversed from nibabel's), component ``c`` the normalised ``align_corners=True``
    coordinate along ITK index axis ``c`` of the moving image (nibabel's array axis ``c``): the affine and the warp
    already composed, physical space handled through the images' ``torch2phy`` / ``phy2torch``. The moving voxel is
    ``(g_c + 1)(S_c - 1) / 2``, so ``ddf_c = (g_c + 1)(S_c - 1) / 2 - x_c`` on the array transposed to (i, j, k):
    MONAI's DDF, in voxels of the fixed grid where both images share it.

    Returns:
        ``ddf`` ``(1, 3, *S)`` float32 voxels (MONAI's convention), ``seconds`` (the wall time of the two
        registrations, not the loading), ``warped`` (FireANTs' own warp of the moving image, ``evaluate``: bilinear,
        zeros outside, nibabel's axes) and ``moving`` (the moving image's array).

    Raises:
        ValueError: the two images are not on one grid (shape and voxel-to-world matrix).
    """
    with contextlib.redirect_stdout(sys.stderr):  # fireants prints its fused-ops status on import
        from fireants.io.image import BatchedImages, Image
        from fireants.registration.affine import AffineRegistration
        from fireants.registration.greedy import GreedyRegistration

    grids = [nib.load(str(f)) for f in (fixed, moving)]
    if grids[0].shape != grids[1].shape or not np.allclose(grids[0].affine, grids[1].affine, atol=1e-4):
        raise ValueError(f"fireants_register needs both images on one grid, got {grids[0].shape} and "
                         f"{grids[1].shape} with affines\n{grids[0].affine}\n{grids[1].affine}")
    fixed_b, moving_b = (BatchedImages(Image.load_file(str(f), device="cpu")) for f in (fixed, moving))
    start = time.perf_counter()
    linear = AffineRegistration(fixed_images=fixed_b, moving_images=moving_b, progress_bar=False,
                                **{**FIREANTS_AFFINE, **(affine or {})})
    linear.optimize()
    deformable = GreedyRegistration(fixed_images=fixed_b, moving_images=moving_b, progress_bar=False,
                                    init_affine=linear.get_affine_matrix().detach(),
                                    **{**FIREANTS_GREEDY, **(greedy or {})})
    deformable.optimize()
    seconds = time.perf_counter() - start
    with torch.no_grad():
        grid = deformable.get_warped_coordinates(fixed_b, moving_b)[0].permute(3, 2, 1, 0).double()  # (3, I, J, K)
        warped = deformable.evaluate(fixed_b, moving_b)[0, 0].permute(2, 1, 0)
    shape = grid.shape[1:]
    size = torch.tensor(shape, dtype=torch.float64).view(3, 1, 1, 1)
    index = torch.stack(torch.meshgrid(*[torch.arange(s, dtype=torch.float64) for s in shape], indexing="ij"))
    return {"ddf": ((grid + 1) * (size - 1) / 2 - index)[None].float().contiguous(), "seconds": seconds,
            "warped": warped.float().numpy(), "moving": moving_b()[0, 0].permute(2, 1, 0).float().numpy()}


def score_peer(pair: dict, ddf: torch.Tensor, seconds: float, method: str, hd95: bool = True,
               warped_label: np.ndarray | None = None) -> dict:
    """One row (:mod:`cir_monai.benchmarking`'s layout, λ ``""``) for a peer's voxel DDF of a file pair, scored by
    :func:`~cir_monai.engines.evaluation.score_field` on the fixed file's grid; with ``warped_label`` (the peer's own
    warp of the moving labels) also its Dice, ``dice_mean_genericlabel``."""
    fixed = nib.load(str(pair["fixed"]))
    f_lab, m_lab = _labels(pair["fixed_label"]), _labels(pair["moving_label"])
    labels = present_labels(f_lab, m_lab)
    truth = None
    if pair.get("ddf_truth"):  # known-truth pairs (cir_monai.data.heldout): end-point error over the brain
        truth = ddf_from_array(np.asarray(nib.load(str(pair["ddf_truth"])).dataobj), "voxel", fixed.affine)
    brain = torch.from_numpy(np.asarray(fixed.dataobj) > 0)
    scores, dice = score_field(ddf, m_lab, f_lab, labels,
                               spacing=[float(s) for s in fixed.header.get_zooms()[:3]] if hd95 else None,
                               truth=truth, brain=brain, affine=fixed.affine)
    row = {"method": method, "pair": pair["id"], "lam": "", **scores, "seconds": float(seconds),
           **{f"dice_{v}": float(d) for v, d in zip(labels, dice)}}
    if warped_label is not None:
        own, _ = dice_per_label(torch.from_numpy(np.rint(warped_label).astype(np.int64))[None, None], f_lab, labels)
        row["dice_mean_genericlabel"] = float(torch.nanmean(own[0]))
    return row


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
        row = score_peer(pair, result["ddf"], result["seconds"], f"ANTs {transform}", hd95, result["warped_label"])
        rows.append(row)
        c = checks[-1]
        print(f"  ANTs {pair['id']}: {result['seconds']:.1f} s, Dice {row['dice_mean']:.3f}; DDF check: warp "
              f"max|Δ| {c['warp_maxabs_inside']:.2e}, det J max|Δ| {c['jac_maxabs_vs_ants']:.2e}",
              file=sys.stderr, flush=True)
    return rows, checks


#: the peers :func:`peer_rows` runs: name → (method name in the rows, register function of two files)
PEERS = {
    "convexadam": ("ConvexAdam (MIND, defaults)", convexadam_register),
    "elastix": ("elastix affine + B-spline (defaults)", elastix_register),
    "fireants": ("FireANTs affine + greedy (its brain settings)", fireants_register),
}


def peer_rows(pairs: Sequence[dict], peer: str, hd95: bool = False) -> list[dict]:
    """Register each file pair with ``peer`` (:data:`PEERS`, or ``"ants"``: :func:`ants_rows`) and score it.

    Raises:
        ValueError: an unknown peer (the known ones named).
    """
    if peer == "ants":
        return ants_rows(pairs, "SyN", hd95)[0]
    if peer not in PEERS:
        raise ValueError(f"peer must be one of {['ants', *PEERS]}, got {peer!r}")
    method, register = PEERS[peer]
    rows = []
    for pair in pairs:
        result = register(pair["fixed"], pair["moving"])
        rows.append(score_peer(pair, result["ddf"], result["seconds"], method, hd95))
        print(f"  {method} {pair['id']}: {result['seconds']:.1f} s, Dice {rows[-1]['dice_mean']:.3f}",
              file=sys.stderr, flush=True)
    return rows
