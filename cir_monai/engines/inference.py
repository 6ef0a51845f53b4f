# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Register pairs of image files and write the results as NIfTI in the fixed image's space.

For every pair and every λ: ``warped.nii.gz`` (the moving image, original intensities, warped
onto the fixed image), ``ddf.nii.gz`` and, when a moving label is given, ``warped_label.nii.gz``
(nearest neighbour). All carry the fixed image's affine and grid as read from its file.

The DDF's shape and units (``ddf_units``: ``"voxel"``, ``"itk"`` or ``"mm"``) and the folder layout are
:mod:`cir_monai.engines.writing`'s; the network runs through :mod:`cir_monai.engines.prediction` and the outputs
are made by :mod:`cir_monai.engines.sampling`. This module runs the three for each pair and λ.

How: the pair is preprocessed without cropping (:func:`~cir_monai.transforms.registration_preprocessing`,
the network pads internally): reoriented, the moving image resampled onto the fixed grid. Both
are resampled into the model's frame (:class:`~cir_monai.frame.FrameResampler`; e.g. 2 mm for the
shipped model), the field predicted there is brought back to the reoriented fixed grid in its
voxels, the moving image and label are sampled through it once, from their own grid at full
resolution (:func:`~cir_monai.networks.warp_from_grid`), and every output is brought back to the
fixed file's grid with MONAI's ``Invertd`` (nearest for labels; the DDF as world vectors, then in
the file grid's voxels or mm). With ``affine=True`` the moving scan is first moved in world space by
ITK's affine (:class:`~cir_monai.transforms.MoveInWorldd`: its header, no resampling), so a scan
outside the fixed field of view is brought back, and the written DDF is the total field.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from cir_monai.atomic import staged_folder, write_json
from cir_monai.defaults import default_device
from cir_monai.engines.prediction import check_options, checked_lams, predict_in_frame, resolve_frame
from cir_monai.engines.sampling import FileGridInverter, field_in_world, sample_moving
from cir_monai.engines.writing import (
    PAIR_RECORD,
    check_pair_folder,
    ddf_array,
    image_array,
    lam_tag,
    pair_record,
    write_outputs,
)
from cir_monai.frame import FrameResampler
from cir_monai.io.models import load_network
from cir_monai.networks import CLapIRN, Warp, composition_residual, invert_ddf
from cir_monai.transforms import CheckOverlapd, registration_preprocessing

__all__ = ["RegistrationRunner", "register_files"]


class RegistrationRunner:
    """Register each pair at each λ and write NIfTI outputs in the fixed image's space.

    The network runs in the model's frame: both images are reoriented, the moving
    one is resampled onto the fixed grid, both are resampled to the frame's spacing
    (:class:`~cir_monai.frame.FrameResampler`), the field predicted there is brought back to
    the fixed image's grid and units, and the moving image and labels are sampled through it once,
    from their own grid at their full resolution (zero outside the moving scan).
    ``frame="input"`` predicts on the fixed image's own grid instead.

    Args:
        network: a :class:`CLapIRN` (see :func:`~cir_monai.io.load_network`).
        pairs: dicts of file paths ``{"fixed", "moving"[, "moving_label", "fixed_label"]}``
            (e.g. from :func:`cir_monai.data.load_pairs`), optionally with an ``"id"``.
        lams: λ values in ``[0, network.lam_max]``.
        output_dir: outputs go to ``output_dir/<id>/lam_<λ>/``.
        frame: ``"model"`` (default), ``"input"`` or a frame dict (:func:`resolve_frame`).
        pixdim: working spacing in mm, overriding the frame's.
        orientation, percentiles: preprocessing (see :func:`registration_preprocessing`); default:
            the frame's.
        ddf_units: ``"voxel"``, ``"itk"`` or ``"mm"`` (see the module docstring).
        device: ``"cuda"`` when available else ``"cpu"`` by default.
        progress: progress bar over pairs.
        figures: also write ``overlay.png`` per λ (fixed over moving, before and after, on the
            fixed grid; see :func:`cir_monai.visualize.plot_overlay`).
        affine: align the moving image affinely first (:func:`cir_monai.affine.affine_register`, ITK,
            mutual information); ``ddf.nii.gz`` is then the total field (affine then deformable) and
            ``affine.tfm`` the affine (ITK, LPS, fixed → moving) in the pair's folder.
        inverse: also write ``ddf_inverse.nii.gz`` (same units and grid as ``ddf.nii.gz``): the
            fixed-point inverse of the field (:func:`~cir_monai.networks.invert_ddf`), which warps the
            fixed image onto the moving one; its composition residual (voxels, mean and max over
            the fixed brain) goes into the returned record.
        refine: refine each pair's field by this many steps of the network's own objective at the same λ, in the
            model's frame (:func:`cir_monai.refine.refine_ddf`; 0: the network's field as it is). The refined field
            is what every output is made from (warped images, ``ddf.nii.gz``, the inverse, the affine's total field).
    """

    def __init__(
        self,
        network: CLapIRN,
        pairs: Sequence[dict],
        lams: Sequence[float] = (1.0,),
        output_dir: str | os.PathLike = "outputs",
        frame: str | dict = "model",
        pixdim: float | Sequence[float] | None = None,
        orientation: str | None = None,
        percentiles: tuple[float, float] | None = None,
        ddf_units: str = "voxel",
        device: str | torch.device | None = None,
        progress: bool = True,
        figures: bool = False,
        inverse: bool = False,
        affine: bool = False,
        refine: int = 0,
    ) -> None:
        check_options(ddf_units, frame, refine)
        self.device = default_device(device)
        self.network = network.to(self.device).eval()
        self.lams = checked_lams(lams, network)
        self.inverse = bool(inverse)
        self.affine = bool(affine)
        self.refine = int(refine)
        self.pairs = list(pairs)
        self.output_dir = Path(output_dir)
        self.ddf_units = ddf_units
        self.progress = progress
        self.figures = figures
        self.frame = resolve_frame(network, frame, pixdim)
        self.resampler = FrameResampler(self.frame["spacing"])
        self.preprocessing = registration_preprocessing(
            spatial_size=None, pixdim=None, orientation=orientation or self.frame["orientation"],
            percentiles=tuple(percentiles or self.frame["percentiles"]), keep_moving_grid=True,
            overlap_advice=("even after the affine alignment: do the scans show the same anatomy?" if self.affine
                            else CheckOverlapd.ADVICE),
        )
        self.to_file_grid = FileGridInverter(self.preprocessing)

    @staticmethod
    def pair_id(index: int, pair: dict) -> str:
        """The output folder name of pair ``index``: its ``"id"``, else ``pair_<index>_<moving file stem>``."""
        if pair.get("id"):
            return str(pair["id"])
        name = Path(pair["moving"]).name.split(".")[0]
        return f"pair_{index:03d}_{name}"

    @torch.no_grad()
    def register(self, pair: dict, pair_id: str) -> dict[float, dict[str, str]]:
        check_pair_folder(self.output_dir / pair_id, pair)
        write_json(self.output_dir / pair_id / PAIR_RECORD, pair_record(pair))  # which files these results are of
        moving_world = None
        if self.affine:  # aligned in world space, so the scan is sampled once, already aligned (MoveInWorldd)
            from cir_monai.affine import affine_matrix_ras, affine_register, write_transform

            transform = affine_register(pair["fixed"], pair["moving"])
            write_transform(transform, self.output_dir / pair_id / "affine.tfm")
            moving_world = affine_matrix_ras(transform)
        data = self.preprocessing(dict(pair, moving_world=moving_world))
        fixed, moving = data["fixed"], data["moving"]
        fixed_w, moving_w = self.resampler.to_frame(fixed), self.resampler.to_frame(moving)
        own_grid = {key: (data[key].as_tensor()[None].to(self.device).float(), data[key].affine)  # the moving grid
                    for key in ("moving_raw", "moving_label") if key in data}
        file_affine = np.asarray(fixed.meta.get("original_affine", fixed.affine), dtype=np.float64)
        written: dict[float, dict[str, str]] = {}
        for lam in self.lams:
            start = time.perf_counter()
            deformable = predict_in_frame(self.network, self.resampler, moving_w, fixed_w, lam, grid=fixed,
                                          device=self.device, refine=self.refine)
            ddf = deformable
            if moving_world is not None:  # the written field: the total one, from the moving scan's own position
                from cir_monai.affine import affine_then

                ddf = affine_then(deformable, moving_world, np.asarray(fixed.affine))
            seconds = time.perf_counter() - start
            folder = self.output_dir / pair_id / lam_tag(lam)
            # sampled once from the moving grid (world-moved by the affine step) through the field
            outputs = sample_moving(own_grid, deformable, fixed.affine)
            outputs["ddf"] = field_in_world(ddf, fixed.affine)
            residual = None
            if self.inverse:
                inverse = invert_ddf(ddf)
                outputs["ddf_inverse"] = field_in_world(inverse, fixed.affine)
                residual = composition_residual(ddf, inverse)[0][fixed.as_tensor()[0].to(ddf.device) > 0]
            arrays = {}
            for key, value in outputs.items():
                array = self.to_file_grid("ddf" if key == "ddf_inverse" else key, value.cpu(), fixed)
                arrays[key] = (ddf_array(array, self.ddf_units, file_affine) if key.startswith("ddf")
                               else image_array(array, label=key == "warped_label"))
            paths = write_outputs(folder, arrays, file_affine)
            del arrays
            if self.figures:
                from cir_monai.visualize import plot_overlay

                before = data["moving"].as_tensor()[None].to(self.device).float()  # after the affine step, if any
                after = Warp("bilinear")(before, deformable)[0, 0]
                paths["overlay"] = str(plot_overlay(fixed.as_tensor()[0], before[0, 0], after, folder / "overlay.png",
                                                    title=f"{pair_id}, λ = {lam:g}"))
            paths["seconds"] = seconds
            if residual is not None:
                paths["inverse_residual_mean"] = float(residual.mean())
                paths["inverse_residual_max"] = float(residual.max())
            written[lam] = paths
        return written

    def run(self) -> dict[str, dict]:
        """Register every pair; returns ``{pair_id: {λ: {output: path}}}``."""
        results = {}
        for index, pair in enumerate(tqdm(self.pairs, desc="registering", unit="pair", disable=not self.progress)):
            pair_id = self.pair_id(index, pair)
            results[pair_id] = self.register(pair, pair_id)
        return results


def register_files(fixed: str, moving: str, lams: Sequence[float] = (1.0,), out: str | os.PathLike = "runs/register",
                   moving_label: str | None = None, fixed_label: str | None = None, model: str | None = None,
                   device: str | torch.device | None = None, **options) -> dict[float, dict]:
    """Register the file ``moving`` onto ``fixed`` at each λ into ``out/<pair>/lam_<λ>/`` (``cir-monai register``).

    The pair is checked first (:func:`~cir_monai.data.check_pairs`), the model loaded
    (:func:`~cir_monai.io.load_network`; ``None``: the shipped one), and the outputs are written into a staging folder
    that becomes ``out`` only on success (:func:`~cir_monai.atomic.staged_folder`). ``options`` are
    :class:`RegistrationRunner`'s (``ddf_units``, ``frame``, ``figures``, ``inverse``, ``affine``, ...).

    Returns:
        ``{λ: record}`` as :meth:`RegistrationRunner.register` gives, with paths under ``out``.
    """
    from cir_monai.data.datalist import check_pairs

    check_options(options.get("ddf_units", "voxel"), options.get("frame", "model"), options.get("refine", 0))
    pair = {"fixed": fixed, "moving": moving, "moving_label": moving_label, "fixed_label": fixed_label}
    pairs = check_pairs([{k: v for k, v in pair.items() if v}], "the FIXED/MOVING pair")
    final = Path(out).expanduser()
    check_pair_folder(final / RegistrationRunner.pair_id(0, pairs[0]), pairs[0])  # the runner sees only the staging
    device = default_device(device)
    network = load_network(model, device)
    with staged_folder(out) as staging:
        results = RegistrationRunner(network, pairs, lams=lams, output_dir=staging, device=device, progress=False,
                                     **options).run()
    ((pair_id, per_lam),) = results.items()

    def in_out(value):  # a path into the staging folder → the same path in ``out``
        inside = isinstance(value, str) and Path(value).is_relative_to(staging)
        return str(final / Path(value).relative_to(staging)) if inside else value

    return {lam: {k: in_out(v) for k, v in record.items()} | {"folder": str(final / pair_id / lam_tag(lam))}
            for lam, record in per_lam.items()}
