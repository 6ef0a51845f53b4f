# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Model files: the one place that reads a network from a file, for every kind of model file.

Three kinds of file hold a :class:`~cir_monai.networks.CLapIRN`, and :func:`read_model_file` tells them apart:

* this project's checkpoint or ``model.pt`` written by the trainer or ``cir-monai convert``:
  ``{"model": state dict, "network": constructor arguments[, "frame"]}``;
* a plain state dict in this package's key layout, as the model zoo ships ``models/model.pt`` (the
  architecture is read off the tensor shapes, :func:`infer_config`; the frame is the ``"frame"`` entry of the
  bundle's ``configs/metadata.json`` when the file lies in a bundle's ``models/`` folder, :func:`bundle_frame`);
* one of the authors' ``.pth`` files (:mod:`cir_monai.io.official` renames their keys).

Files are written by one writer, :func:`save_model_file` (the trainer's ``model.pt`` and bundle model, the
training checkpoints' model part through :func:`model_file_state`, and ``cir-monai convert``).

Every file is read weights-only (:func:`cir_monai.io.checkpoint.load_checkpoint`): nothing in it runs.
:func:`load_network` builds the network the file describes; :func:`load_bundle_network` builds the bundle's
``network_def`` and loads the file's weights into it (the TorchScript export and the zoo's checks).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace

import torch

from cir_monai.atomic import write_json
from cir_monai.defaults import default_model
from cir_monai.frame import EMBEDDED_FRAME, OFFICIAL_FRAME, model_frame
from cir_monai.io.checkpoint import load_checkpoint, save_checkpoint
from cir_monai.io.official import load_official_checkpoint
from cir_monai.networks import CLapIRN, unwrap

__all__ = ["read_model_file", "load_network", "load_bundle_network", "infer_config", "bundle_frame",
           "record_bundle_frame", "model_file_frame", "model_file_state", "save_model_file", "convert_checkpoint",
           "BUNDLE_METADATA"]

logger = logging.getLogger("cir_monai.inference")

#: where a bundle records the frame of its plain-state-dict ``models/model.pt``, relative to the bundle folder
BUNDLE_METADATA = Path("configs") / "metadata.json"


def _bundle_metadata(model_file: str | os.PathLike) -> Path | None:
    """``<bundle>/configs/metadata.json`` for a model file at ``<bundle>/models/<file>``; ``None`` when the file is not
    in a bundle's ``models/`` folder or the bundle has no metadata file."""
    folder = Path(model_file).expanduser().resolve().parent
    meta = folder.parent / BUNDLE_METADATA
    return meta if folder.name == "models" and meta.is_file() else None


def bundle_frame(model_file: str | os.PathLike) -> dict | None:
    """The frame a MONAI bundle records for the plain state dict ``<bundle>/models/<file>``: the ``"frame"`` entry
    of ``<bundle>/configs/metadata.json`` (a plain state dict cannot carry it: the model zoo loads it with
    ``load_state_dict``). ``None`` when the file is not in a bundle or the bundle records no frame.

    Raises:
        ValueError: the metadata file is not valid JSON, or its frame is not a frame (the file in the message).
    """
    meta = _bundle_metadata(model_file)
    if meta is None:
        return None
    try:
        frame = json.loads(meta.read_text()).get("frame")
    except ValueError as err:
        raise ValueError(f"{meta}: not valid JSON ({err})") from err
    if frame is None:
        return None
    try:
        return model_frame(frame)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{meta}: its \"frame\" entry is not a frame ({err})") from err


def record_bundle_frame(model_file: str | os.PathLike, frame: dict) -> bool:
    """Write ``frame`` as the ``"frame"`` of the bundle that ``<bundle>/models/<file>`` lies in (atomically), so
    that the plain state dict written there is read in the frame it was trained in. Nothing happens when the file is
    not in a bundle with a ``configs/metadata.json`` or the bundle already records that frame. Returns whether the
    metadata was written."""
    meta = _bundle_metadata(model_file)
    if meta is None:
        return False
    data = json.loads(meta.read_text())
    if data.get("frame") is not None and model_frame(data["frame"]) == model_frame(frame):
        return False
    data["frame"] = dict(frame)
    write_json(meta, data, indent=4)
    logger.info("frame %s recorded in %s", frame, meta)
    return True


def infer_config(state: Mapping[str, torch.Tensor]) -> dict:
    """Read the :class:`CLapIRN` arguments off a state dict in THIS package's key layout.

    The model zoo ships weights as a plain state dict (``models/model.pt``); this rebuilds the
    architecture from it: levels, blocks, widths, conditioning variant and CIN latent size.
    ``integration_steps`` has no parameters and cannot be read (0 is returned: the paper's network).

    Raises:
        ValueError: the state dict is not a :class:`CLapIRN`'s.
    """
    if "levels.0.down.weight" not in state or "levels.0.encoder.0.weight" not in state:
        raise ValueError("no levels.0.down.weight / levels.0.encoder.0.weight: not a cir-monai CLapIRN state dict")
    levels = {int(m.group(1)) for k in state if (m := re.match(r"^levels\.(\d+)\.", k))}
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"^levels\.0\.blocks\.(\d+)\.", k))}
    down = state["levels.0.down.weight"]  # (4sc, enc, 3, 3[, 3])
    feature, encoder = int(down.shape[0]), int(down.shape[1])
    if "mapping.0.weight" in state:
        conditioning, latent = "centralized", 64  # CIR-CM sizes its latent itself (256)
    elif "levels.0.blocks.0.mapping.0.weight" in state:
        conditioning, latent = "distributed", int(state["levels.0.blocks.0.ai1.style.weight"].shape[1])
    else:
        inputs = int(state["levels.0.encoder.0.weight"].shape[1])
        conditioning, latent = ("concat" if inputs == 3 else "none"), 64
    return dict(spatial_dims=down.ndim - 2, start_channels=feature // 4, conditioning=conditioning,
                num_levels=len(levels), num_blocks=len(blocks), lite=encoder != feature, latent_dim=latent)


def read_model_file(path: str | os.PathLike) -> tuple[dict, dict, dict | None]:
    """The weights (this package's key layout), the :class:`CLapIRN` arguments and the recorded frame of any
    kind of model file (see the module's docstring); the frame is ``None`` for a file that records none
    (a plain state dict outside a bundle that records one), :data:`~cir_monai.frame.OFFICIAL_FRAME` for the
    authors' files.

    Raises:
        FileNotFoundError: no such file (its path in the message).
        ValueError: the file is none of the three kinds, or holds objects other than tensors and plain values.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    state = load_checkpoint(path, map_location="cpu")
    if isinstance(state, dict) and "model" in state and "network" in state:
        return state["model"], dict(state["network"]), state.get("frame")
    if isinstance(state, dict) and "levels.0.down.weight" in state:
        return state, infer_config(state), bundle_frame(path)
    net = load_official_checkpoint(path)
    return net.state_dict(), net.config, OFFICIAL_FRAME


def load_network(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> CLapIRN:
    """A ready :class:`CLapIRN` (evaluation mode) from any kind of model file (:func:`read_model_file`;
    ``None``: the bundle's shipped model, :func:`~cir_monai.defaults.default_model`).

    The returned network carries ``net.frame``, the frame it was trained in (:mod:`cir_monai.frame`):
    the file's ``"frame"``, or its bundle's (the shipped plain state dict: :func:`bundle_frame`);
    :data:`~cir_monai.frame.OFFICIAL_FRAME` (1 mm OASIS) for the authors' files; for a file that records none,
    :data:`~cir_monai.frame.EMBEDDED_FRAME` (2 mm), with a warning.

    Raises:
        FileNotFoundError: the file does not exist (its path in the message).
        ValueError: the file is none of these kinds of model file.
    """
    shipped = path is None
    path = default_model() if shipped else Path(path).expanduser()
    if shipped and not path.is_file():
        raise FileNotFoundError(f"no shipped model at {path}: reinstall cir-monai or pass a model file")
    state, config, frame = read_model_file(path)
    net = CLapIRN(**config)
    net.load_state_dict(state)
    net.frame = model_frame(_or_embedded(frame, path), net)
    return net.to(device).eval()


def _or_embedded(frame: dict | None, path: Path) -> dict:
    """``frame``, or :data:`~cir_monai.frame.EMBEDDED_FRAME` with a warning for a file that records none."""
    if frame is None:
        logger.warning("%s records no frame (a plain state dict outside a bundle that records one): assuming the "
                       "embedded 2 mm frame", path)
        return EMBEDDED_FRAME
    return frame


def model_file_frame(path: str | os.PathLike, missing: dict | None = None) -> dict:
    """The complete frame of any kind of model file (:func:`read_model_file`; :data:`EMBEDDED_FRAME` with a
    warning for a file that records none): what the bundle's ``inference.yaml`` resamples its inputs to.

    Args:
        path: the model file.
        missing: the frame to use when ``path`` does not exist (a MONAI Deploy package that carries only
            ``models/model.ts``, whose network is the shipped one); ``None``: a missing file is an error.

    Raises:
        FileNotFoundError, ValueError: as :func:`read_model_file`.
    """
    path = Path(path).expanduser()
    if missing is not None and not path.exists():
        return model_frame(missing)
    state, config, frame = read_model_file(path)
    dims = SimpleNamespace(spatial_dims=int(config.get("spatial_dims", 3)), lam_max=float(config.get("lam_max", 10.0)))
    return model_frame(_or_embedded(frame, path), dims)  # the network's λ range and dimensions, without building it


def load_bundle_network(bundle_root: str | os.PathLike, config_file: str = "configs/inference.yaml",
                        ckpt_file: str | os.PathLike | None = None, net_id: str = "network_def") -> torch.nn.Module:
    """The bundle's ``net_id`` with the weights of ``ckpt_file`` (any kind of model file, default
    ``models/model.pt``), evaluation mode.

    Raises:
        FileNotFoundError: the config or the weights are missing (path in the message).
    """
    from monai.bundle import ConfigParser

    root = Path(bundle_root)
    config = root / config_file
    if not config.is_file():
        raise FileNotFoundError(f"bundle file not found: {config}")
    parser = ConfigParser()
    parser.read_config(str(config))
    parser["bundle_root"] = str(root)
    net = parser.get_parsed_content(net_id, instantiate=True)
    state, _, _ = read_model_file(Path(ckpt_file) if ckpt_file is not None else root / "models" / "model.pt")
    net.load_state_dict(state)
    return net.eval()


def model_file_state(network: torch.nn.Module, frame: Mapping | None = None, **extra) -> dict:
    """What this project's model file holds: ``{"model": state dict, "network": constructor arguments, "frame":
    the checked frame (:func:`~cir_monai.frame.model_frame`), **extra}`` (``DistributedDataParallel`` is looked
    through). The training checkpoint is this plus the optimizer, iteration and RNG state."""
    net = unwrap(network)
    return {"model": net.state_dict(), "network": net.config, "frame": model_frame(frame, net), **extra}


def save_model_file(network: torch.nn.Module, path: str | os.PathLike, frame: Mapping | None = None,
                    plain: bool = False, **extra) -> Path:
    """Write ``network`` as a model file at ``path``, atomically; :func:`read_model_file` reads it back.

    Args:
        frame: the frame it was trained in (``None``: any grid).
        plain: write the plain state dict the model zoo ships as ``models/model.pt`` (``load_state_dict``), and
            record ``frame`` in the bundle's ``configs/metadata.json`` when ``path`` lies in a bundle's
            ``models/`` folder (:func:`record_bundle_frame`); else :func:`model_file_state`.
        extra: more entries of a full model file (e.g. ``source``).

    Raises:
        IsADirectoryError: ``path`` is a folder.
        OSError: ``path`` cannot be written (its path in the message).
    """
    target = Path(path).expanduser()
    if target.is_dir():
        raise IsADirectoryError(f"{target} is a folder; give a model file name such as model.pt")
    state = model_file_state(network, frame, **extra)
    try:
        save_checkpoint(state["model"] if plain else state, target)
    except OSError as err:
        raise OSError(f"cannot write {target}: {err.strerror or err}") from err
    if plain:
        record_bundle_frame(target, state["frame"])  # a plain state dict's frame lives in its bundle
    return target


def convert_checkpoint(checkpoint: str | os.PathLike, out: str | os.PathLike = "model.pt") -> CLapIRN:
    """Write one of the authors' ``.pth`` files as this project's model file ``out`` (atomically), which loads
    with :func:`~cir_monai.io.load_network` and the bundle's ``ckpt_path``, with the frame the authors
    trained in (:data:`~cir_monai.frame.OFFICIAL_FRAME`, 1 mm OASIS), as the ``.pth`` itself. Returns the network.

    Raises:
        IsADirectoryError: ``out`` is a folder.
        OSError: ``out`` cannot be written (its path in the message).
    """
    net = load_official_checkpoint(Path(checkpoint).expanduser())
    save_model_file(net, out, OFFICIAL_FRAME, source=str(checkpoint))  # the authors' 1 mm OASIS frame
    return net
