# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Register pairs of image files and write the results as NIfTI in the fixed image's space.

For every pair and every λ: ``warped.nii.gz`` (the moving image, original intensities, warped
onto the fixed image), ``ddf.nii.gz`` and, when a moving label is given, ``warped_label.nii.gz``
(nearest neighbour). All carry the fixed image's affine and grid as read from its file.

The DDF is written as a NIfTI vector field of shape ``(X, Y, Z, 1, 3)`` (intent "vector"):
``ddf_units="voxel"`` (default) gives displacements in voxels of the written grid, component
``i`` along array axis ``i`` (so ``monai.networks.blocks.Warp`` with the moving image resampled
onto the fixed grid reproduces ``warped``); ``ddf_units="mm"`` gives world displacements in mm
in the NIfTI (RAS+) frame.

How: the pair is preprocessed without cropping (:func:`~cir_monai.data.registration_preprocessing`,
the network pads internally), registered on the reoriented (and optionally resampled) fixed
grid, the voxel DDF is turned into world vectors with that grid's affine, and every output is
brought back to the fixed file's grid with MONAI's ``Invertd`` (nearest for labels).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Invertd
from tqdm import tqdm

from cir_monai.convert import load_official_checkpoint
from cir_monai.data.transforms import registration_preprocessing
from cir_monai.engines.checkpoint import load_checkpoint
from cir_monai.networks import CLapIRN, Warp

__all__ = ["load_network", "RegistrationRunner", "lam_tag", "checked_lams"]

logger = logging.getLogger("cir_monai.inference")


def checked_lams(lams: Sequence[float], network: torch.nn.Module) -> list[float]:
    """``lams`` as floats, checked against the network's range ``[0, network.lam_max]``.

    Raises:
        ValueError: empty, or a value outside the range (all of them in the message).
    """
    lam_max = float(getattr(network, "lam_max", 10.0))
    values = [float(v) for v in lams]
    if not values or any(not 0.0 <= v <= lam_max for v in values):
        raise ValueError(f"lam values must lie in [0, {lam_max:g}] (the model's range), got {values}")
    return values


def lam_tag(lam: float) -> str:
    """Folder name of a λ value: ``lam_1``, ``lam_0.1``."""
    return f"lam_{lam:g}"


def load_network(path: str | os.PathLike, device: str | torch.device = "cpu") -> CLapIRN:
    """A ready :class:`CLapIRN` (evaluation mode) from this project's ``model.pt`` / ``checkpoint.pt``
    (``{"model", "network"}``) or from one of the authors' ``.pth`` files.

    Raises:
        FileNotFoundError: the file does not exist (its path in the message).
        ValueError: the file is neither kind of checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    state = load_checkpoint(path, map_location="cpu")
    if isinstance(state, dict) and "model" in state and "network" in state:
        net = CLapIRN(**state["network"])
        net.load_state_dict(state["model"])
    else:
        net = load_official_checkpoint(path)
    return net.to(device).eval()


def _write(array: np.ndarray, affine: np.ndarray, path: Path, vector: bool = False) -> None:
    img = nib.Nifti1Image(array, affine)
    if vector:
        img.header.set_intent("vector")
    tmp = path.with_name("." + path.name + ".tmp.nii.gz")
    nib.save(img, str(tmp))
    os.replace(tmp, path)


class RegistrationRunner:
    """Register each pair at each λ and write NIfTI outputs in the fixed image's space.

    Args:
        network: a :class:`CLapIRN` (see :func:`load_network`).
        pairs: dicts of file paths ``{"fixed", "moving"[, "moving_label", "fixed_label"]}``
            (e.g. from :func:`cir_monai.data.load_pairs`), optionally with an ``"id"``.
        lams: λ values in ``[0, network.lam_max]``.
        output_dir: outputs go to ``output_dir/<id>/lam_<λ>/``.
        orientation, pixdim, percentiles: preprocessing (see :func:`registration_preprocessing`).
        ddf_units: ``"voxel"`` or ``"mm"`` (see the module docstring).
        device: ``"cuda"`` when available else ``"cpu"`` by default.
        progress: progress bar over pairs.
        figures: also write ``overlay.png`` per λ (fixed over moving, before and after, on the
            registration grid; see :func:`cir_monai.visualize.plot_overlay`).
    """

    def __init__(
        self,
        network: CLapIRN,
        pairs: Sequence[dict],
        lams: Sequence[float] = (1.0,),
        output_dir: str | os.PathLike = "outputs",
        orientation: str | None = "RAS",
        pixdim: float | Sequence[float] | None = None,
        percentiles: tuple[float, float] = (0.0, 100.0),
        ddf_units: str = "voxel",
        device: str | torch.device | None = None,
        progress: bool = True,
        figures: bool = False,
    ) -> None:
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.network = network.to(self.device).eval()
        self.lams = checked_lams(lams, network)
        if ddf_units not in ("voxel", "mm"):
            raise ValueError(f"ddf_units must be 'voxel' or 'mm', got {ddf_units!r}")
        self.pairs = list(pairs)
        self.output_dir = Path(output_dir)
        self.ddf_units = ddf_units
        self.progress = progress
        self.figures = figures
        self.preprocessing = registration_preprocessing(
            spatial_size=None, pixdim=pixdim, orientation=orientation, percentiles=percentiles, keep_raw=True
        )
        self.invert = {
            key: Invertd(key, transform=self.preprocessing, orig_keys="fixed", nearest_interp=key == "warped_label")
            for key in ("warped", "warped_label", "ddf")
        }

    def _pair_id(self, index: int, pair: dict) -> str:
        if pair.get("id"):
            return str(pair["id"])
        name = Path(pair["moving"]).name.split(".")[0]
        return f"pair_{index:03d}_{name}"

    def _back_to_file_grid(self, key: str, data: torch.Tensor, fixed: MetaTensor) -> np.ndarray:
        meta = MetaTensor(data, meta=dict(fixed.meta), applied_operations=list(fixed.applied_operations))
        out = self.invert[key]({key: meta, "fixed": fixed})[key]
        return np.asarray(out.detach().cpu())

    @torch.no_grad()
    def register(self, pair: dict, pair_id: str) -> dict[float, dict[str, str]]:
        data = self.preprocessing(dict(pair))
        fixed = data["fixed"]
        moving = data["moving"].as_tensor()[None].to(self.device)
        raw = data["moving_raw"].as_tensor()[None].to(self.device).float()
        label = data["moving_label"].as_tensor()[None].to(self.device).float() if "moving_label" in data else None
        work_affine = np.asarray(fixed.affine, dtype=np.float64)[:3, :3]
        file_affine = np.asarray(fixed.meta.get("original_affine", fixed.affine), dtype=np.float64)
        written: dict[float, dict[str, str]] = {}
        for lam in self.lams:
            start = time.perf_counter()
            ddf = self.network(moving, fixed.as_tensor()[None].to(self.device), lam)
            seconds = time.perf_counter() - start
            folder = self.output_dir / pair_id / lam_tag(lam)
            folder.mkdir(parents=True, exist_ok=True)
            outputs = {"warped": Warp("bilinear")(raw, ddf)[0]}
            if label is not None:
                outputs["warped_label"] = Warp("nearest", "zeros")(label, ddf)[0]
            world = torch.einsum("ij,bj...->bi...", torch.as_tensor(work_affine, dtype=ddf.dtype, device=ddf.device), ddf)
            outputs["ddf"] = world[0]
            paths = {}
            for key, value in outputs.items():
                array = self._back_to_file_grid(key, value.cpu(), fixed)
                if key == "ddf":
                    if self.ddf_units == "voxel":
                        array = np.einsum("ij,j...->i...", np.linalg.inv(file_affine[:3, :3]), array)
                    array = np.moveaxis(array, 0, -1)[..., None, :].astype(np.float32)  # (X, Y, Z, 1, 3)
                else:
                    array = array[0]
                    array = np.rint(array).astype(np.int16) if key == "warped_label" else array.astype(np.float32)
                _write(array, file_affine, folder / f"{key}.nii.gz", vector=key == "ddf")
                paths[key] = str(folder / f"{key}.nii.gz")
            if self.figures:
                from cir_monai.visualize import plot_overlay

                after = Warp("bilinear")(moving.float(), ddf)[0, 0]
                paths["overlay"] = str(plot_overlay(fixed.as_tensor()[0], moving[0, 0], after, folder / "overlay.png",
                                                    title=f"{pair_id}, λ = {lam:g}"))
            paths["seconds"] = seconds
            written[lam] = paths
        return written

    def run(self) -> dict[str, dict]:
        """Register every pair; returns ``{pair_id: {λ: {output: path}}}``."""
        results = {}
        for index, pair in enumerate(tqdm(self.pairs, desc="registering", unit="pair", disable=not self.progress)):
            pair_id = self._pair_id(index, pair)
            results[pair_id] = self.register(pair, pair_id)
        return results
