# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Model files: the one place that reads a network from a file, for every kind of model file.

Three kinds of file hold a :class:`~cir_monai.networks.CLapIRN`, and :func:`read_model_file` tells them apart:

* this project's checkpoint or ``model.pt`` written by the trainer or ``cir-monai convert``:
  ``{"model": state dict, "network": constructor arguments[, "frame"]}``;
* a plain state dict in this package's key layout, as the model zoo ships ``models/model.pt`` (the
  architecture is read off the tensor shapes, :func:`infer_config`);
* one of the authors' ``.pth`` files (:mod:`cir_monai.io.official` renames their keys).

Every file is read weights-only (:func:`cir_monai.io.checkpoint.load_checkpoint`): nothing in it runs.
:func:`load_network` builds the network the file describes; :func:`load_bundle_network` builds the bundle's
``network_def`` and loads the file's weights into it (the TorchScript export and the zoo's checks).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from cir_monai.defaults import default_model
from cir_monai.frame import EMBEDDED_FRAME, OFFICIAL_FRAME, model_frame
from cir_monai.io.checkpoint import load_checkpoint
from cir_monai.io.official import load_official_checkpoint
from cir_monai.networks import CLapIRN

__all__ = ["read_model_file", "load_network", "load_bundle_network", "infer_config"]

logger = logging.getLogger("cir_monai.inference")


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
    (a plain state dict), :data:`~cir_monai.frame.OFFICIAL_FRAME` for the authors' files.

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
        return state, infer_config(state), None
    net = load_official_checkpoint(path)
    return net.state_dict(), net.config, OFFICIAL_FRAME


def load_network(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> CLapIRN:
    """A ready :class:`CLapIRN` (evaluation mode) from any kind of model file (:func:`read_model_file`;
    ``None``: the bundle's shipped model, :func:`~cir_monai.defaults.default_model`).

    The returned network carries ``net.frame``, the frame it was trained in (:mod:`cir_monai.frame`):
    the file's ``"frame"``; :data:`~cir_monai.frame.EMBEDDED_FRAME` (2 mm) for a file without one (the
    shipped plain state dict: its frame is also stated in the bundle's configs);
    :data:`~cir_monai.frame.OFFICIAL_FRAME` (1 mm OASIS) for the authors' files.

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
    if frame is None:
        log = logger.debug if shipped else logger.info  # the shipped model's frame is stated in the bundle's configs
        log("%s records no frame: assuming the embedded 2 mm frame", path)
        frame = EMBEDDED_FRAME
    net.frame = model_frame(frame, net)
    return net.to(device).eval()


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
