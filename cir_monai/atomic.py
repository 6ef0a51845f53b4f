# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Atomic file writing, in one place: a path holds either its old complete file or the new one, never half.

Every file this package writes (checkpoints, NIfTI, TorchScript, transforms, pictures, reports,
datalists) goes through :func:`atomic_path`: the writer writes a file of the *same name* in a fresh
hidden folder beside the target (writers that look at the suffix, nibabel, ITK, matplotlib, and
``torch.jit.save``, which names the archive after the file, see the real name), and on success it is
renamed over the target (``os.replace``, atomic within one file system); on failure it is removed.
A whole output folder (a command's results) is written the same way through :func:`staged_folder`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "write_text", "write_json", "staged_folder"]


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


@contextlib.contextmanager
def staged_folder(out: str | os.PathLike, fresh: bool = False) -> Iterator[Path]:
    """A hidden folder beside ``out`` to write into; its files move into ``out`` only when the block succeeds.

    Files are merged one by one: an existing ``out`` keeps its other files and folders (so
    registering at λ = 1 and then at λ = 4 into one folder keeps both), files of the same
    name are replaced. With ``fresh=True`` (a report folder: sweep, evaluate) an ``out`` that
    holds an earlier result of this tool (``summary.json``) is replaced as a whole, so no stale
    per-pair tables are left beside the new ones. On an exception the staging folder and the parent
    folders this call created are removed, and ``out`` is untouched.

    Raises:
        OSError: ``out`` (or its parent) cannot be created or written (the folder in the message).
    """
    out = Path(out).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"output folder {out} exists and is not a folder")
    blocker = next((p for p in out.parents if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise NotADirectoryError(f"cannot write to output folder {out}: {blocker} is a file, not a folder")
    made = [p for p in out.parents if not p.exists()]  # parents this call creates, deepest first
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    except OSError as err:
        raise OSError(f"cannot write to output folder {out}: {err.strerror or err}") from err

    def undo() -> None:  # a failed command leaves nothing behind, not even the folders it made
        shutil.rmtree(staging, ignore_errors=True)
        for folder in made:
            with contextlib.suppress(OSError):
                folder.rmdir()

    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)  # mkdtemp makes it private; results should be readable like any folder
    if out.exists() and not os.access(out, os.W_OK):
        undo()
        raise PermissionError(f"cannot write to output folder {out}: permission denied")
    try:
        yield staging
    except BaseException:
        undo()
        raise
    if out.exists() and fresh and (out / "summary.json").is_file():
        shutil.rmtree(out)
    if not out.exists():
        os.replace(staging, out)
        return
    for item in sorted(staging.rglob("*")):
        if item.is_dir():
            continue
        target = out / item.relative_to(staging)
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(item, target)
    shutil.rmtree(staging, ignore_errors=True)
