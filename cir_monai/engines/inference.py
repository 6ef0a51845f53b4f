# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Register pairs of image files and write the results as NIfTI in the fixed image's space.

For every pair and every λ: ``warped.nii.gz`` (the moving image, original intensities, warped
onto the fixed image), ``ddf.nii.gz`` and, when a moving label is given, ``warped_label.nii.gz``
(nearest neighbour). All carry the fixed image's affine and grid as read from its file.

The DDF's shape and units (``ddf_units``: ``"voxel"``, ``"itk"`` or ``"mm"``) and the folder layout are
:mod:`cir_monai.io.results`'s; the network runs through :mod:`cir_monai.engines.prediction` and the outputs
are made by :mod:`cir_monai.warping`. This module runs the three for each pair and λ.

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
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from cir_monai.atomic import staged_folder, write_json, write_text
from cir_monai.defaults import MAX_FOLDING_PCT, default_device
from cir_monai.engines.prediction import check_options, checked_lams, predict_in_frame, resolve_frame
from cir_monai.frame import FrameResampler
from cir_monai.io.models import load_network
from cir_monai.io.results import (
    PAIR_RECORD,
    TRANSFORM_RECORD,
    check_pair_folder,
    ddf_array,
    image_array,
    lam_tag,
    pair_record,
    transform_record,
    write_outputs,
)
from cir_monai.metrics import jacobian_statistics
from cir_monai.networks import CLapIRN, Warp, composition_residual, invert_ddf
from cir_monai.refine import refine_steps
from cir_monai.transforms import CheckOverlapd, registration_preprocessing
from cir_monai.warping import FileGridInverter, field_in_world, sample_moving

__all__ = ["RegistrationRunner", "register_files", "residual_statistics", "residual_text"]


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
        progress: show progress on stderr: a bar over pairs (several pairs), the affine step, a bar over each
            refinement's steps with an ETA, and one line per written λ with its time (:meth:`register`).
        figures: also write ``overlay.png`` per λ (fixed over moving, before and after, on the
            fixed grid; see :func:`cir_monai.visualize.plot_overlay`).
        affine: align the moving image affinely first (:func:`cir_monai.affine.affine_register`, ITK,
            mutual information); ``ddf.nii.gz`` is then the total field (affine then deformable) and
            ``affine.tfm`` the affine (ITK, LPS, fixed → moving) in the pair's folder.
        inverse: also write ``ddf_inverse.nii.gz`` (same units and grid as ``ddf.nii.gz``): the
            inverse of the field (:func:`~cir_monai.networks.invert_ddf`, Newton), which warps the
            fixed image onto the moving one; its composition residual (voxels of the fixed file's grid, over the
            fixed brain: mean, median, 99th percentile, max) goes into the returned record.
        refine: refine each pair's field by this many steps of the network's own objective at the same λ, in the
            model's frame (:func:`cir_monai.refine.refine_ddf`; 0: the network's field as it is). The refined field
            is what every output is made from (warped images, ``ddf.nii.gz``, the inverse, the affine's total field).
        inferer: what predicts the field in the frame (:func:`~cir_monai.engines.prediction.predict_in_frame`):
            ``register.yaml``'s ``inferer``, a :class:`~cir_monai.inferers.ConditionalInferer` with
            ``stacked=False`` that holds the refinement steps (its ``refine``; then ``refine`` here must be 0);
            ``None``: the network with ``refine`` steps.
        fine_steps: after that, this many more steps on the fixed image's own grid (e.g. 1 mm), cropped to the
            brain's box (:func:`cir_monai.refine.refine_on_grid`; 0: none, the default). Dice up on the harder
            held-out groups at several times the time (docs/results.md).
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
        inferer=None,
        fine_steps: int = 0,
    ) -> None:
        if inferer is not None and refine:
            raise ValueError(f"refine={refine} is given beside an inferer: set the refinement steps on the inferer "
                             f"(ConditionalInferer(refine=...), register.yaml's inferer#refine)")
        self.inferer = inferer
        refine = getattr(inferer, "refine", 0) if inferer is not None else refine
        check_options(ddf_units, frame, refine)
        self.device = default_device(device)
        self.network = network.to(self.device).eval()
        self.lams = checked_lams(lams, network)
        self.inverse = bool(inverse)
        self.affine = bool(affine)
        self.refine = int(refine)
        self.fine_steps = refine_steps(fine_steps, "fine_steps")
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
                            else CheckOverlapd.ADVICE), check_images=True,
        )
        self.to_file_grid = FileGridInverter(self.preprocessing)

    @staticmethod
    def pair_id(index: int, pair: dict) -> str:
        """The output folder name of pair ``index``: its ``"id"``, else ``pair_<index>_<moving file stem>``."""
        if pair.get("id"):
            return str(pair["id"])
        name = Path(pair["moving"]).name.split(".")[0]
        return f"pair_{index:03d}_{name}"

    def _say(self, text: str) -> None:
        """One progress line (stderr, between the bars), when ``progress`` is on."""
        if self.progress:
            tqdm.write(text, file=sys.stderr)

    def prepare(self, pair: dict, pair_id: str) -> dict:
        """Read and preprocess one pair (and align it affinely): all the work before the network.

        It writes nothing, so it may run in a data-loading worker while the previous pair is registered
        (:func:`cir_monai.engines.batch.register_many`); the affine transform comes back as the text of its ``.tfm``.

        Returns:
            ``{"pair", "id", "data"`` (the preprocessed dict), ``"fixed_w", "moving_w"`` (the images in the model's
            frame), ``"file_affine"`` (the fixed file's voxel-to-world matrix, which every output carries),
            ``"moving_world"`` (the affine step's RAS matrix or ``None``), ``"affine_tfm"`` (its ``.tfm`` text or
            ``None``), ``"setup_seconds"}``.
        """
        started = time.perf_counter()
        moving_world = tfm = None
        if self.affine:  # aligned in world space, so the scan is sampled once, already aligned (MoveInWorldd)
            from cir_monai.affine import affine_matrix_ras, affine_register, transform_text

            self._say(f"{pair_id}: affine alignment (ITK, mutual information, 3 levels) ...")
            transform = affine_register(pair["fixed"], pair["moving"])
            tfm, moving_world = transform_text(transform), affine_matrix_ras(transform)
        data = self.preprocessing(dict(pair, moving_world=moving_world))
        fixed = data["fixed"]
        fixed_w, moving_w = self.resampler.to_frame(fixed), self.resampler.to_frame(data["moving"])
        file_affine = np.asarray(fixed.meta.get("original_affine", fixed.affine), dtype=np.float64)
        setup = time.perf_counter() - started
        self._say(f"{pair_id}: read and preprocessed{' with the affine step' if self.affine else ''} in {setup:.1f} s"
                  f" ({tuple(fixed.shape[1:])} voxels; {len(self.lams)} λ, {self.refine} refinement steps "
                  + (f"and {self.fine_steps} at this grid " if self.fine_steps else "") + "each)")
        return {"pair": pair, "id": pair_id, "data": data, "fixed_w": fixed_w, "moving_w": moving_w,
                "file_affine": file_affine, "moving_world": moving_world, "affine_tfm": tfm, "setup_seconds": setup}

    @torch.no_grad()
    def compute(self, prepared: dict, lam: float) -> tuple[dict[str, np.ndarray], dict]:
        """The network (and the refinement) at ``lam`` for a pair from :meth:`prepare`, and every output on the
        fixed file's grid.

        Returns:
            ``(arrays, record)``: ``{name: array}`` as :func:`~cir_monai.io.results.write_outputs` writes them, and
            ``{"seconds", "setup_seconds", "folding_pct"[, the inverse residual's statistics][, "_overlay"]}``
            (``"_overlay"``: the fixed, moving and warped slices' volumes for the picture, with ``figures``).
        """
        start = time.perf_counter()
        data, pair_id = prepared["data"], prepared["id"]
        fixed, moving_world, file_affine = data["fixed"], prepared["moving_world"], prepared["file_affine"]
        own_grid = {key: (data[key].as_tensor()[None].to(self.device).float(), data[key].affine)  # the moving grid
                    for key in ("moving_raw", "moving_label") if key in data}
        deformable = predict_in_frame(self.network, self.resampler, prepared["moving_w"], prepared["fixed_w"], lam,
                                      grid=fixed, device=self.device, refine=0 if self.inferer else self.refine,
                                      progress=f"{pair_id} λ={lam:g} refining" if self.progress else None,
                                      inferer=self.inferer, fine_steps=self.fine_steps,
                                      moving_on_grid=data["moving"])
        ddf = deformable
        if moving_world is not None:  # the written field: the total one, from the moving scan's own position
            from cir_monai.affine import affine_then

            ddf = affine_then(deformable, moving_world, np.asarray(fixed.affine))
        record = {"folding_pct": float(jacobian_statistics(ddf.float())["folding_pct"][0]),  # % of fixed voxels
                  "setup_seconds": prepared["setup_seconds"]}
        # sampled once from the moving grid (world-moved by the affine step) through the field
        outputs = sample_moving(own_grid, deformable, fixed.affine)
        outputs["ddf"] = field_in_world(ddf, fixed.affine)
        if self.inverse:
            inverse = invert_ddf(ddf)
            outputs["ddf_inverse"] = field_in_world(inverse, fixed.affine)
            residual = composition_residual(ddf, inverse)[0][fixed.as_tensor()[0].to(ddf.device) > 0].float()
            record.update(residual_statistics(residual))
        arrays = {}
        for key, value in outputs.items():
            array = self.to_file_grid("ddf" if key == "ddf_inverse" else key, value.cpu(), fixed)
            arrays[key] = (ddf_array(array, self.ddf_units, file_affine) if key.startswith("ddf")
                           else image_array(array, label=key == "warped_label"))
        if self.figures:
            before = data["moving"].as_tensor()[None].to(self.device).float()  # after the affine step, if any
            after = Warp("bilinear")(before, deformable)[0, 0]
            record["_overlay"] = (fixed.as_tensor()[0].cpu(), before[0, 0].cpu(), after.cpu())
        record["seconds"] = time.perf_counter() - start
        return arrays, record

    def write(self, folder: str | os.PathLike, prepared: dict, lam: float, arrays: dict[str, np.ndarray],
              record: dict) -> dict:
        """Write one λ's outputs (:meth:`compute`) into ``folder/lam_<λ>/``, with ``transform.json`` (what
        ``cir-monai apply`` reads) and the picture; returns the record with the written files' paths, ``"seconds"``
        counting up to the written files."""
        start = time.perf_counter()
        record = dict(record)
        overlay = record.pop("_overlay", None)
        target = Path(folder) / lam_tag(lam)
        paths = write_outputs(target, arrays, prepared["file_affine"])
        paths["transform"] = str(write_json(target / TRANSFORM_RECORD, transform_record(
            prepared["pair"], lam, self.ddf_units, total=self.affine, inverse=self.inverse)))
        if overlay is not None:
            from cir_monai.visualize import plot_overlay

            paths["overlay"] = str(plot_overlay(*overlay, target / "overlay.png",
                                                title=f"{prepared['id']}, λ = {lam:g}"))
        record["seconds"] += time.perf_counter() - start
        return paths | record

    def start_pair(self, folder: str | os.PathLike, prepared: dict) -> None:
        """Write the pair's record (which files these results are of) and the affine step's ``affine.tfm``."""
        folder = Path(folder)
        write_json(folder / PAIR_RECORD, pair_record(prepared["pair"]))
        if prepared["affine_tfm"] is not None:
            write_text(folder / "affine.tfm", prepared["affine_tfm"])

    def lam_line(self, pair_id: str, lam: float, record: dict) -> str:
        """The progress line of one written λ: its time, its folding and the inverse's residual."""
        folding = record["folding_pct"]
        line = f"{pair_id} λ = {lam:g}: written in {record['seconds']:.1f} s; det J ≤ 0 in {folding:.3f} % of voxels"
        if folding > MAX_FOLDING_PCT:
            line += (f" (more than {MAX_FOLDING_PCT:g} %: the field folds; a larger λ, or --fine-steps 0 (the steps at "
                     "the fixed grid roughen it most) or --refine 0 --fine-steps 0 at this λ, gives a smoother one)")
        if "inverse_residual_median" in record:
            line += "; inverse residual (voxels, fixed brain) " + residual_text(record)
        return line

    def register(self, pair: dict, pair_id: str) -> dict[float, dict[str, str]]:
        """Register one pair at every λ into ``output_dir/pair_id/lam_<λ>/``, one λ written before the next.

        Returns:
            ``{λ: record}``: the written files' paths, ``"seconds"`` (that λ's work from the prediction to its
            written files and picture), ``"folding_pct"`` (% of the fixed grid's voxels where det J ≤ 0, forward
            differences, as the sweep scores it), ``"setup_seconds"`` (the pair's reading, preprocessing and affine
            step, shared by its λ) and, with ``inverse``, the residual's statistics.
        """
        folder = self.output_dir / pair_id
        check_pair_folder(folder, pair)
        prepared = self.prepare(pair, pair_id)
        self.start_pair(folder, prepared)  # which files these results are of, before any λ's files
        written: dict[float, dict[str, str]] = {}
        for lam in self.lams:
            written[lam] = self.write(folder, prepared, lam, *self.compute(prepared, lam))
            self._say(self.lam_line(pair_id, lam, written[lam]))
        return written

    def run(self) -> dict[str, dict]:
        """Register every pair; returns ``{pair_id: {λ: {output: path}}}``."""
        results = {}
        several = self.progress and len(self.pairs) > 1
        for index, pair in enumerate(tqdm(self.pairs, desc="registering", unit="pair", disable=not several)):
            pair_id = self.pair_id(index, pair)
            results[pair_id] = self.register(pair, pair_id)
        return results


def residual_statistics(residual: torch.Tensor) -> dict[str, float]:
    """Mean, median, 99th percentile and maximum of a composition residual's values (voxels), as record entries
    (NaN for an empty selection)."""
    values = residual.detach().reshape(-1).double().cpu().numpy()
    if values.size == 0:
        return {f"inverse_residual_{k}": float("nan") for k in ("mean", "median", "p99", "max")}
    median, p99 = np.quantile(values, [0.5, 0.99])
    return {"inverse_residual_mean": float(values.mean()), "inverse_residual_median": float(median),
            "inverse_residual_p99": float(p99), "inverse_residual_max": float(values.max())}


def residual_text(record: dict) -> str:
    """``median 0.012, 99th percentile 0.31, max 2.40`` from a record with :func:`residual_statistics`' entries."""
    return (f"median {record['inverse_residual_median']:.3f}, 99th percentile {record['inverse_residual_p99']:.2f}, "
            f"max {record['inverse_residual_max']:.2f}")


def register_files(fixed: str, moving: str, lams: Sequence[float] = (1.0,), out: str | os.PathLike = "runs/register",
                   moving_label: str | None = None, fixed_label: str | None = None, model: str | None = None,
                   device: str | torch.device | None = None, progress: bool = True, **options) -> dict[float, dict]:
    """Register the file ``moving`` onto ``fixed`` at each λ into ``out/<pair>/lam_<λ>/`` (``cir-monai register``).

    The pair is checked first (:func:`~cir_monai.data.check_pairs`), the model loaded
    (:func:`~cir_monai.io.load_network`; ``None``: the shipped one), and the outputs are written into a staging folder
    that becomes ``out`` only on success (:func:`~cir_monai.atomic.staged_folder`). ``options`` are
    :class:`RegistrationRunner`'s (``ddf_units``, ``frame``, ``figures``, ``inverse``, ``affine``, ...);
    ``progress`` shows the runner's progress on stderr.

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
        results = RegistrationRunner(network, pairs, lams=lams, output_dir=staging, device=device, progress=progress,
                                     **options).run()
    ((pair_id, per_lam),) = results.items()

    def in_out(value):  # a path into the staging folder → the same path in ``out``
        inside = isinstance(value, str) and Path(value).is_relative_to(staging)
        return str(final / Path(value).relative_to(staging)) if inside else value

    return {lam: {k: in_out(v) for k, v in record.items()} | {"folder": str(final / pair_id / lam_tag(lam))}
            for lam, record in per_lam.items()}
