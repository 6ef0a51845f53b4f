# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Running the network on a pair: the one place every entry point predicts a field.

:func:`predict_field` is the network's DDF for a pair at λ, refined for the pair when asked
(:func:`cir_monai.refine.refine_ddf`). Every caller goes through it:

* :func:`predict_in_frame`: the file runner (:class:`~cir_monai.engines.RegistrationRunner`), the evaluator and the
  λ sweep, on the foreground box of the model's frame grid;
* the trainer's validation (:func:`cir_monai.engines.trainer.validate`), on the training grid, at the levels
  trained so far;
* the atlas workflow's inferer (:class:`cir_monai.inferers.ConditionalInferer`), on the stacked ``(atlas, image)``
  input the exported TorchScript model takes.

The option checks and the frame a run predicts in (:func:`check_options`, :func:`checked_lams`,
:func:`resolve_frame`) are here too, so a run refuses bad options before it loads anything.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from cir_monai.frame import FrameResampler, model_frame
from cir_monai.io.results import DDF_UNITS
from cir_monai.networks.clapirn import check_lams
from cir_monai.refine import refine_on_grid, refine_steps

__all__ = ["check_options", "checked_lams", "resolve_frame", "predict_field", "predict_in_frame"]

def check_options(ddf_units: str = "voxel", frame: str | dict = "model", refine: int = 0) -> None:
    """The runner's output units, frame and refinement steps, checked before any work (model loading included).

    Raises:
        ValueError: ``ddf_units`` not one of :data:`DDF_UNITS`, ``frame`` neither ``"model"``, ``"input"``
            nor a frame dict, or ``refine`` not a whole number >= 0.
    """
    if isinstance(refine, str):
        raise ValueError(f"refine must be a whole number of steps >= 0, got {refine!r}")
    refine_steps(refine)
    if ddf_units not in DDF_UNITS:
        raise ValueError(f"ddf_units must be one of {', '.join(DDF_UNITS)}, got {ddf_units!r}")
    if not isinstance(frame, dict) and frame not in ("model", "input"):
        raise ValueError(f"frame must be model or input (or a frame dict), got {frame!r}")


def checked_lams(lams: Sequence[float], network: torch.nn.Module) -> list[float]:
    """``lams`` as floats, checked against the network's range ``[0, network.lam_max]``
    (:func:`~cir_monai.networks.clapirn.check_lams`, the one λ check).

    Raises:
        ValueError: empty, or a value outside the range (all of them in the message).
    """
    return check_lams(lams, float(getattr(network, "lam_max", 10.0)))


def resolve_frame(network: torch.nn.Module, frame: str | dict = "model", pixdim=None) -> dict:
    """The frame inference runs in: ``"model"`` (the network's ``frame``, see :func:`~cir_monai.io.load_network`),
    ``"input"`` (the fixed image's own grid) or an explicit frame dict; ``pixdim`` overrides its spacing.

    Raises:
        ValueError: an unknown ``frame`` name.
    """
    check_options(frame=frame)
    if isinstance(frame, str):
        base = dict(getattr(network, "frame", None) or {}) if frame == "model" else {}
        base.pop("lam_range", None)
        if frame == "input":
            base["spacing"] = None
    else:
        base = {k: v for k, v in dict(frame).items() if k != "lam_range"}
    if pixdim is not None:
        base["spacing"] = pixdim
    return model_frame(base, network)


def predict_field(network, moving: torch.Tensor, fixed: torch.Tensor, lam, refine: int = 0,
                  active_levels: int | None = None, stacked: bool = False, num_levels: int | None = None,
                  progress: str | None = None) -> torch.Tensor:
    """The network's DDF for each pair of the batch at λ, refined for the pair by ``refine`` steps.

    Args:
        network: a :class:`~cir_monai.networks.CLapIRN` (``network(moving, fixed, lam)``) or, with ``stacked``,
            a network of the stacked input (``network(cat([moving, fixed], 1), lam)``: :class:`StackedCLapIRN`,
            the exported TorchScript model).
        moving, fixed: ``(B, 1, *S)`` images in [0, 1] on one grid.
        lam: λ, a number or one value per sample (``(B,)``).
        refine: per-pair refinement steps of the network's own objective at the same λ
            (:func:`cir_monai.refine.refine_ddf` at :data:`~cir_monai.refine.REFINE_LR` with the update on a grid
            :data:`~cir_monai.refine.REFINE_GRID_FACTOR` times coarser; 0: the network's field as it is).
        active_levels: predict with the coarsest ``active_levels`` pyramid levels only (the trainer's validation
            during progressive training); ``None``: all.
        stacked: call the network on the stacked input (see ``network``).
        num_levels: the network's pyramid levels for the refinement's similarity pyramid; default: the network's
            ``num_levels`` (3 where it does not say, e.g. TorchScript).
        progress: a description for the refinement's progress bar (``None``: none).

    Returns:
        ``(B, n, *S)`` displacement in voxels of the images' grid (MONAI convention).
    """
    if stacked:
        ddf = network(torch.cat([moving, fixed], dim=1), lam)
    elif active_levels is not None:
        ddf = network(moving, fixed, lam, active_levels=active_levels)
    else:
        ddf = network(moving, fixed, lam)
    if not refine:
        return ddf
    from cir_monai.refine import REFINE_GRID_FACTOR, REFINE_LR, refine_ddf

    levels = int(num_levels or getattr(network, "num_levels", 3))
    lams = torch.as_tensor(lam, dtype=torch.float32).reshape(-1).expand(ddf.shape[0]).tolist()
    return torch.cat([refine_ddf(moving[i:i + 1], fixed[i:i + 1], ddf[i:i + 1], lams[i], int(refine), lr=REFINE_LR,
                                 num_levels=levels, grid_factor=REFINE_GRID_FACTOR, progress=progress)
                      for i in range(ddf.shape[0])])


def predict_in_frame(network, resampler: FrameResampler, moving_w, fixed_w, lam: float, grid=None, device=None,
                     refine: int = 0, progress: str | None = None, inferer=None, fine_steps: int = 0,
                     moving_on_grid=None) -> torch.Tensor:
    """:func:`predict_field` on the two images' foreground box of the frame grid, the field continued outside the
    box by replicating its border, and brought back to ``grid`` (:meth:`FrameResampler.field_to_grid`).

    The network sees the field of view it was trained on, the brain's box plus the resampler's margin:
    instance normalisation computes its statistics over the whole input, so a scan with wide empty margins
    would otherwise shift every feature (:class:`~cir_monai.frame.FrameResampler`).

    Args:
        network: the registration network (evaluation mode).
        resampler: the frame's resampler (its margin and its inverse resampling).
        moving_w, fixed_w: ``(1, *S_w)`` images on the frame grid (from :meth:`FrameResampler.to_frame`).
        lam: λ.
        grid: the image ``fixed_w`` was made from: the field is returned on its grid, in its voxels;
            ``None`` keeps the frame grid.
        device: where to run (default: the images').
        refine: per-pair refinement steps (0: the network's field as it is).
        progress: a description for the refinement's progress bar (``None``: none).
        inferer: what predicts the field from the cropped pair, called as ``inferer(cat([moving, fixed], 1), network,
            lam=lam, progress=progress)``: a :class:`~cir_monai.inferers.ConditionalInferer` with ``stacked=False``,
            which holds its own refinement steps (``register.yaml``'s ``inferer``); ``None``: :func:`predict_field`
            with ``refine`` steps.
        fine_steps: then this many more steps on ``grid`` (the fixed image's own resolution), cropped to the brain
            (:func:`cir_monai.refine.refine_on_grid`, ``register --fine-steps``; 0: none).
        moving_on_grid: with ``fine_steps``, the moving image ``(1, *S)`` on ``grid`` in [0, 1].

    Returns:
        ``(1, n, *S)`` displacement in voxels of ``grid`` (``*S_w`` of the frame grid when ``grid`` is ``None``).

    Raises:
        ValueError: both ``inferer`` and ``refine`` are given (the refinement is the inferer's); ``fine_steps``
            without ``grid`` and ``moving_on_grid``.
    """
    if inferer is not None and refine:
        raise ValueError(f"refine={refine} is given beside an inferer: set the refinement steps on the inferer")
    if fine_steps and (grid is None or moving_on_grid is None):
        raise ValueError("fine_steps needs grid (the fixed image) and moving_on_grid (the moving image on its grid)")
    box = resampler.foreground_box(fixed_w, moving_w)
    crop = (slice(None), slice(None), *box)
    moving = torch.as_tensor(moving_w)[None][crop]
    fixed = torch.as_tensor(fixed_w)[None][crop]
    if device is not None:
        moving, fixed = moving.to(device), fixed.to(device)
    if inferer is None:
        ddf = predict_field(network, moving, fixed, lam, refine=refine, progress=progress)
    else:
        ddf = inferer(torch.cat([moving, fixed], dim=1), network, lam=lam, progress=progress)
    ddf = resampler.uncrop(ddf, box, fixed_w.shape[1:])
    if grid is None:
        return ddf
    ddf = resampler.field_to_grid(ddf, fixed_w, grid)
    if not fine_steps:
        return ddf
    on_grid = [torch.as_tensor(image).as_subclass(torch.Tensor)[None].to(ddf.device).float()
               for image in (moving_on_grid, grid)]
    return refine_on_grid(*on_grid, ddf, lam, fine_steps, num_levels=int(getattr(network, "num_levels", 3)),
                          progress=None if progress is None else f"{progress} (fixed grid)")
