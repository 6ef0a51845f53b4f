# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Atomic file writing, in one place: a path holds either its old complete file or the new one, never half.

Every file this package writes (checkpoints, NIfTI, TorchScript, transforms, pictures, reports,
datalists) goes through :func:`atomic_path`: the writer writes a file of the *same name* in a fresh
hidden folder beside the target (writers that look at the suffix, nibabel, ITK, matplotlib, and
``torch.jit.save``, which names the archive after the file, see the real name), and on success it is
renamed over the target (``os.replace``, atomic within one file system); on failure it is removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "write_text", "write_json"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, fsync: bool = False) -> Iterator[Path]:
    """Yield a staging path for ``path``; move it into place when the block ends without an error.

    Args:
        path: the file to write (its folder is created).
        fsync: flush the staged file to disk before the rename (checkpoints: survive a power loss).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as folder:
        staged = Path(folder) / path.name
        yield staged
        if fsync:
            with open(staged, "rb") as f:
                os.fsync(f.fileno())
        os.replace(staged, path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as staged:
        staged.write_text(text)
    return Path(path)


def write_json(path: str | os.PathLike, data, indent: int = 1) -> Path:
    """Write ``data`` as JSON (a trailing newline) to ``path`` atomically; returns ``path``."""
    return write_text(path, json.dumps(data, indent=indent) + "\n")
