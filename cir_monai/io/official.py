# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""The authors' cLapIRN checkpoints (``.pth``) as :class:`~cir_monai.networks.CLapIRN`; read through
:func:`cir_monai.io.load_network` like every other model file.

The authors' code nests one module per level: the finest level's parameters at
the top (``input_encoder_lvl1``, ``down_conv``, ``resblock_group_lvl1.{0,2,..}``,
``up``, ``output_lvl1``), the middle level under ``model_lvl2.`` and the
coarsest under ``model_lvl2.model_lvl1.``; odd indices of
``resblock_group_lvl1`` are parameter-free LeakyReLUs. This module renames
those keys to ours (``levels.{k}.{encoder,down,blocks.{j},up,head}``) and reads
the architecture (2D/3D, ``start_channels``, lite/full, conditioning) off the
tensor shapes. :func:`cir_monai.io.models.convert_checkpoint` (``cir-monai convert``) writes the result as this
project's model file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

import torch

from cir_monai.io.checkpoint import load_checkpoint
from cir_monai.networks.clapirn import CLapIRN

__all__ = ["official_to_cir_state_dict", "infer_official_config", "load_official_checkpoint"]

_PREFIXES = ("model_lvl2.model_lvl1.", "model_lvl2.", "")  # coarse -> fine
_RENAMES = (
    (r"^input_encoder_lvl1\.", "encoder."),
    (r"^down_conv\.", "down."),
    (r"^up\.", "up."),
    (r"^output_lvl1\.", "head."),
)


def _level_of(key: str) -> tuple[int, str]:
    for level, prefix in enumerate(_PREFIXES):
        rest = key[len(prefix) :]
        if key.startswith(prefix) and not rest.startswith("model_lvl"):
            return level, rest
    raise KeyError(key)


def official_to_cir_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an official 3-level state dict to this package's key layout.

    Args:
        state: the authors' ``state_dict``.

    Returns:
        a state dict for :class:`CLapIRN` with ``num_levels=3``.

    Raises:
        ValueError: a key that belongs to no known part of the authors' layout.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        level, rest = _level_of(key)
        match = re.match(r"^resblock_group_lvl1\.(\d+)\.(.*)$", rest)
        if match:
            index = int(match.group(1))
            if index % 2:
                raise ValueError(f"unexpected parameter {key!r}: odd resblock indices are activations.")
            new = f"blocks.{index // 2}.{match.group(2)}"
        else:
            for pattern, repl in _RENAMES:
                if re.match(pattern, rest):
                    new = re.sub(pattern, repl, rest)
                    break
            else:
                raise ValueError(f"unexpected parameter {key!r} in an official cLapIRN checkpoint.")
        out[f"levels.{level}.{new}"] = value
    return out


def infer_official_config(state: Mapping[str, torch.Tensor]) -> dict:
    """Read the :class:`CLapIRN` arguments off an official state dict's tensor shapes.

    Returns:
        ``dict(spatial_dims, start_channels, lite, num_blocks, conditioning)``.

    Raises:
        ValueError: required tensors are missing or their shapes are inconsistent.
    """
    required = ("input_encoder_lvl1.0.weight", "down_conv.weight", "up.weight", "output_lvl1.2.weight")
    missing = [k for k in required if k not in state]
    if missing:
        raise ValueError(f"missing tensors {missing}")
    down = state["down_conv.weight"]  # (4sc, enc, k, k[, k])
    feature, encoder = int(down.shape[0]), int(down.shape[1])
    if feature % 4:
        raise ValueError(f"down_conv has {feature} output channels, not a multiple of 4 (= 4·start_channels)")
    spatial_dims = down.ndim - 2
    start_channels = feature // 4
    if encoder == feature:
        lite = False
    elif encoder * 2 == feature:
        lite = True
    else:
        raise ValueError(f"encoder width {encoder} is neither 4·sc nor 2·sc for feature width {feature}")
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"^resblock_group_lvl1\.(\d+)\.", k))}
    if any("mapping." in k for k in state):
        conditioning = "distributed"
    elif any(".ai1." in k for k in state):
        raise ValueError("conditional norms without per-block mapping networks: unknown variant")
    else:
        conditioning = "none"
    return dict(
        spatial_dims=spatial_dims,
        start_channels=start_channels,
        lite=lite,
        num_blocks=len(blocks),
        conditioning=conditioning,
    )


def load_official_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> CLapIRN:
    """Build a :class:`CLapIRN` from one of the authors' ``.pth`` files.

    Detects 2D/3D, ``start_channels`` and the lite/full layout from tensor shapes.
    Also accepts the state dict wrapped as ``{"state_dict": ...}`` or ``{"model": ...}``.

    Args:
        path: the checkpoint file.
        map_location: where the weights are loaded (CPU by default, so CUDA-saved files load anywhere).

    Returns:
        the network in evaluation mode with the weights loaded.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not an official cLapIRN checkpoint (names the file and the reason).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    state = load_checkpoint(path, map_location=map_location)  # weights only: nothing in the file runs
    if isinstance(state, Mapping):
        for wrapper in ("state_dict", "model"):
            if wrapper in state and isinstance(state[wrapper], Mapping):
                state = state[wrapper]
                break
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} does not hold a state dict of tensors (got {type(state).__name__}).")
    try:
        config = infer_official_config(state)
        net = CLapIRN(**config)
        converted = official_to_cir_state_dict(state)
    except (ValueError, KeyError) as err:
        raise ValueError(f"{path} is not an official cLapIRN checkpoint: {err}") from err
    expected = net.state_dict()
    missing = sorted(set(expected) - set(converted))
    unexpected = sorted(set(converted) - set(expected))
    wrong = [k for k in expected if k in converted and converted[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        raise ValueError(
            f"{path} is not an official cLapIRN checkpoint of the detected layout {config}: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}, wrong shapes {wrong[:5]}."
        )
    net.load_state_dict(converted)
    return net.eval()
