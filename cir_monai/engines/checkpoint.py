# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Atomic checkpoints: written to a temporary file in the same folder, then renamed over the old one."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from cir_monai.atomic import atomic_path

__all__ = ["save_checkpoint", "load_checkpoint"]


def save_checkpoint(state: dict, path: str | os.PathLike) -> Path:
    """Save ``state`` with ``torch.save`` so that ``path`` is always either the old or the new complete file.

    An interruption (kill, power loss after fsync) never leaves a truncated checkpoint behind.
    """
    path = Path(path)
    with atomic_path(path, fsync=True) as staged, open(staged, "wb") as f:
        torch.save(state, f)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` (or a plain state dict).

    Raises:
        FileNotFoundError: with the path, when it does not exist.
        ValueError: the file is not a readable checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""  # torch's message runs to many lines
        raise ValueError(f"{path} is not a readable checkpoint ({type(err).__name__}: {first})") from err
