# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Checkpoints: written atomically, read safely.

Writing: a temporary file in the same folder, then renamed over the old one (:func:`save_checkpoint`).

Reading (:func:`load_checkpoint`): always ``torch.load(..., weights_only=True)``. Model files travel between users
(downloads, MONAI Label servers, Deploy packages), and a full pickle can run any code when it is loaded. The
weights-only unpickler builds only tensors, numbers, strings, lists, tuples and dicts, which is all this
project's files hold: state dicts, the network's config, the frame, the optimizer's state, RNG state tensors.
A file that needs anything else is refused before any of it runs.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import torch

from cir_monai.atomic import atomic_path

__all__ = ["save_checkpoint", "load_checkpoint", "check_model_file", "first_line"]


def first_line(err: BaseException) -> str:
    """The first line of ``err``'s message (torch's load errors run to many lines), or its type's name."""
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__


def _weights_error(err: BaseException) -> str:
    """The weights-only unpickler's own reason (its message opens with several lines of advice)."""
    found = re.search(r"WeightsUnpickler error:\s*(.+)", str(err))
    return found.group(1).strip() if found else first_line(err)


def save_checkpoint(state: dict, path: str | os.PathLike) -> Path:
    """Save ``state`` with ``torch.save`` so that ``path`` is always either the old or the new complete file.

    An interruption (kill, power loss after fsync) never leaves a truncated checkpoint behind. ``state`` should
    hold only what :func:`load_checkpoint` reads back: tensors, numbers, strings, lists, tuples and dicts.
    """
    path = Path(path)
    with atomic_path(path, fsync=True) as staged, open(staged, "wb") as f:
        torch.save(state, f)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu"):
    """Load a checkpoint written by :func:`save_checkpoint`, a plain state dict or the authors' ``.pth``, safely
    (``weights_only=True``: nothing in the file runs).

    Raises:
        FileNotFoundError: with the path, when it does not exist.
        ValueError: the file is not a readable checkpoint, or it holds objects other than tensors and plain
            Python values (a pickle that would run code is refused here, before any of it runs); the message
            names the file and says why.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        if found is None:  # not a pickle at all, or a damaged one
            raise ValueError(f"{path} is not a readable checkpoint (UnpicklingError: {_weights_error(err)})") from err
        raise ValueError(
            f"{path} was refused: it holds Python objects other than tensors and plain values ({found.group(1)}), "
            "which could run code when loaded; nothing in it was run. Load only model files you trust; to re-save a "
            "model file of an older cir-monai that you trust with its weights only, load it with torch.load and "
            "weights_only=False on a machine where that is safe and torch.save its 'model' entry") from err
    except Exception as err:  # not a torch file, truncated, wrong format
        raise ValueError(f"{path} is not a readable checkpoint ({first_line(err)})") from err


def check_model_file(path: str | os.PathLike) -> bool:
    """Read ``path`` as :func:`load_checkpoint` does and return True; the bundle's ``initialize`` step in front of
    MONAI's ``CheckpointLoader``, which also loads weights-only but whose refusal does not name the file.

    Raises:
        FileNotFoundError, ValueError: as :func:`load_checkpoint`.
    """
    load_checkpoint(path)
    return True
