# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Override checking for bundle command lines: a misspelt ``--key`` is an error with a suggestion.

MONAI adds unknown override keys to a config silently, so ``python -m monai.bundle run register
... --lmas "[4]"`` would run with the default λ. :func:`check_command_line` (the
bundle configs' first ``initialize`` step) checks the overrides of this process's ``python -m monai.bundle``
command line;
:func:`check_override_keys` checks a list of ids and :func:`check_reserved` refuses the ids a command sets
itself (the ``cir-monai`` command, through :func:`cir_monai.workflows.run_bundle`).
"""

from __future__ import annotations

import ast
import difflib
import inspect
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["check_command_line", "check_bundle_overrides", "check_override_keys", "check_reserved"]


def check_command_line() -> None:
    """Check the overrides when this process is ``python -m monai.bundle``; otherwise do nothing."""
    args = _bundle_command_line()
    if args is not None:
        check_bundle_overrides(args)


def _bundle_command_line() -> list[str] | None:
    """The arguments after ``python -m monai.bundle`` when this process is that command, else None."""
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if (argv0 is None or argv0.name != "__main__.py" or argv0.parent.name != "bundle"
            or argv0.parent.parent.name != "monai"):
        return None
    return list(sys.argv[1:])


def _ids(config: Any, prefix: str = "") -> list[str]:
    """Every id in a config tree (``a``, ``a#b``, ``a#0`` ...)."""
    out = []
    items = config.items() if isinstance(config, dict) else enumerate(config) if isinstance(config, list) else []
    for key, value in items:
        full = f"{prefix}#{key}" if prefix else str(key)
        out.append(full)
        out.extend(_ids(value, full))
    return out


def check_bundle_overrides(args: list[str]) -> None:
    """Raise ``KeyError`` for an override on a ``monai.bundle`` command line that no config file defines.

    Args:
        args: the command line after ``python -m monai.bundle`` (``run``, the run id, ``--key value`` pairs).

    MONAI adds unknown override keys to the config silently, so ``--lmas "[4]"`` would
    run with the default λ. Ids starting with ``_meta_`` and runs that use an
    ``--args_file`` are not checked.
    """
    from monai.bundle.scripts import run

    options: dict[str, str] = {}
    i = 0
    while i < len(args):
        token = args[i]
        if token.startswith("--"):
            name, eq, value = token[2:].partition("=")
            if not eq and i + 1 < len(args) and not args[i + 1].startswith("--"):
                value, i = args[i + 1], i + 1
            options[name] = value
        i += 1
    if "args_file" in options or "config_file" not in options:
        return
    files = options["config_file"]
    files = ast.literal_eval(files) if files.strip().startswith("[") else files
    files = [files] if isinstance(files, str) else list(files)
    run_args = set(inspect.signature(run).parameters) | {"workflow_type", "workflow_name", "properties_path"}
    keys = [name for name in options if name.replace("-", "_") not in run_args]
    check_override_keys(files, keys)


def check_override_keys(files: Sequence[str | os.PathLike], keys: Iterable[str]) -> None:
    """Raise ``KeyError`` naming the first of ``keys`` (config ids, ``a#b``) that no file in ``files`` defines.

    The message suggests the closest id. Ids starting with ``_meta_`` are not checked.
    """
    from monai.bundle import ConfigParser

    known = set(_ids(ConfigParser.load_config_files([str(f) for f in files])))
    for key in keys:
        if key.replace("::", "#") in known or key.startswith("_meta_"):
            continue
        close = difflib.get_close_matches(key, sorted(known), n=1)
        hint = f"; did you mean --{close[0]}?" if close else ""
        names = ", ".join(map(str, files))
        raise KeyError(f"unknown option --{key}: no config file ({names}) defines '{key}'{hint}")


def check_reserved(overrides: Iterable[str], names: dict[str, str]) -> None:
    """Refuse overrides of the ids a command sets from its own options (they would be overwritten silently).

    Args:
        overrides: the override ids given.
        names: ``{id: option}``, e.g. ``{"ckpt_path": "model"}``.

    Raises:
        ValueError: naming the option to use instead.
    """
    for key in overrides:
        if key in names:
            raise ValueError(f"use --{names[key]} instead of --{key} (the command sets {key} from --{names[key]})")
