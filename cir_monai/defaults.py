# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""The defaults, in one place: the paper's λ list, the device, and where the bundle and the data live.

The bundle (configs, shipped model, atlas) is package data of the wheel (``cir_monai/bundle``,
the repository's ``bundle/`` folder), so an installed cir-monai finds it from any folder;
``$CIR_MONAI_BUNDLE`` points to another copy. Generated data go to ``$CIR_MONAI_DATA`` (the
repository's ``make`` targets set it to ``data/``) or else the user cache
(``$CIR_MONAI_CACHE``, default ``~/.cache/cir_monai``). The working frame (2 mm, 80×96×80) is
:data:`cir_monai.frame.EMBEDDED_FRAME`.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

import torch

__all__ = ["DEFAULT_LAMS", "DEFAULT_REFINE", "DEFAULT_FINE_STEPS", "MAX_FOLDING_PCT", "default_device", "installed",
           "bundle_root", "bundle_configs", "default_model", "data_dir", "cache_dir", "embedded_dir", "overlay_files"]

#: the λ values of the paper's evaluation (docs/method.md §5): sweeps, evaluation and the bundle's evaluate workflow
DEFAULT_LAMS = (0.0, 0.1, 0.5, 1.0, 2.0, 4.0, 8.0, 10.0)
#: per-pair refinement steps of ``cir-monai register`` and the bundle's register/inference workflows, with the update
#: on a grid twice as coarse as the frame (cir_monai.refine.REFINE_GRID_FACTOR; measured on the held-out groups:
#: docs/results.md, "A coarser update"; 50 per-voxel steps before 0.9.0, then 30 until the 1 mm stage joined the
#: default)
DEFAULT_REFINE = 20
#: then more steps on the fixed image's own grid, cropped to the brain (cir_monai.refine.refine_on_grid), in
#: ``cir-monai register`` / ``batch`` and the bundle's register workflow: 20 + 5 scores what 30 + 5 does and +0.010 /
#: +0.013 / +0.016 Dice over 30 frame steps alone on the standard / hard / cross held-out groups, in about 0.3 of
#: ANTs SyN's time on a 1 mm pair (docs/results.md, "The 1 mm stage in the default")
DEFAULT_FINE_STEPS = 5
#: the λ* rule's folding bound (% of voxels with det J ≤ 0): ``cir-monai sweep`` picks the best Dice among the λ whose
#: fields (refined as ``register`` refines them) fold under it
MAX_FOLDING_PCT = 0.5


def default_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as a ``torch.device``; ``None``: CUDA when available, else the CPU.

    Raises:
        ValueError: not a device name, or CUDA asked for on a machine without it.
    """
    if device is None or device == "":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device must be cpu or cuda, got {device!r}") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device}: CUDA is not available on this machine (use cpu)")
    return device


def bundle_root() -> Path:
    """The MONAI bundle folder: ``$CIR_MONAI_BUNDLE``, else the one installed with the package.

    Raises:
        FileNotFoundError: the folder has no ``configs/`` (a broken install or a wrong ``$CIR_MONAI_BUNDLE``).
    """
    env = os.environ.get("CIR_MONAI_BUNDLE")
    root = Path(env) if env else installed("bundle")
    if not (root / "configs").is_dir():
        raise FileNotFoundError(f"bundle folder without configs/: {root}"
                                + (" ($CIR_MONAI_BUNDLE)" if env else " (reinstall cir-monai)"))
    return root


def installed(name: str) -> Path:
    """A folder installed with the package (``bundle``, ``configs``, ``docs``): ``cir_monai/<name>`` in a wheel,
    ``<checkout>/<name>`` when running from the source tree (an editable install may not map it)."""
    spec = importlib.util.find_spec(f"cir_monai.{name}")  # a data folder: a namespace package in the wheel
    if spec is not None and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return Path(__file__).resolve().parents[1] / name


def overlay_files(config: str | os.PathLike | Sequence | None) -> list[str]:
    """Config overlays as files: paths, or names under the installed ``configs/`` such as ``variants/cir_cm``.

    Raises:
        FileNotFoundError: neither a file nor a known name (the name in the message).
    """
    items = [] if not config else [config] if isinstance(config, (str, os.PathLike)) else list(config)
    files = []
    for item in items:
        path = Path(item).expanduser()
        if not path.is_file():
            path = installed("configs") / (item if str(item).endswith(".yaml") else f"{item}.yaml")
            if not path.is_file():
                raise FileNotFoundError(f"config overlay not found: {item} (a file, or a name such as variants/cir_cm)")
        files.append(str(path))
    return files


def bundle_configs() -> Path:
    """``bundle_root()/configs``."""
    return bundle_root() / "configs"


def default_model() -> Path:
    """The shipped weights, ``bundle_root()/models/model.pt``."""
    return bundle_root() / "models" / "model.pt"


def cache_dir() -> Path:
    """``$CIR_MONAI_CACHE`` or ``~/.cache/cir_monai``."""
    return Path(os.environ.get("CIR_MONAI_CACHE", Path.home() / ".cache" / "cir_monai"))


def data_dir() -> Path:
    """Where generated data sets go: ``$CIR_MONAI_DATA``, else :func:`cache_dir`."""
    env = os.environ.get("CIR_MONAI_DATA")
    return Path(env) if env else cache_dir()


def embedded_dir() -> Path:
    """The embedded data set's folder: ``data_dir()/embedded``."""
    return data_dir() / "embedded"
