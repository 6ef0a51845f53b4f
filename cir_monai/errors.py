# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""One-line errors for users: the innermost problem, not the engine's traceback.

Every entry point of this project (``cir-monai`` and ``python -m monai.bundle run``
with the bundle's configs) reports bad input the same way::

    error: model file not found: bundle/models/modle.pt

MONAI's config machinery wraps whatever went wrong in ``RuntimeError("Failed to
instantiate ...")`` several times over; :func:`user_message` walks that chain down to
the exception this project raised (a ``ValueError``, ``KeyError`` or ``OSError``
whose message names the file, shape or value) and returns its message.
Anything else is a bug and keeps its full traceback. ``CIR_MONAI_TRACEBACK=1``
shows the full traceback for every error.

:func:`install_bundle_error_hook` is the first ``initialize`` step of the
bundle's configs. Under ``python -m monai.bundle`` it also checks the command
line's overrides against the config files, so a typo (``--lmas``) is an error
with a suggestion instead of a silently added, unused key.
"""

from __future__ import annotations

import ast
import difflib
import inspect
import os
import sys
from pathlib import Path
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["USER_ERRORS", "user_message", "install_bundle_error_hook", "check_bundle_overrides", "check_override_keys"]

#: exception types whose message is meant for the user (this project raises these for bad input)
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, KeyError, OSError)


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from, outermost first."""
    out: list[BaseException] = []
    while exc is not None and exc not in out:
        out.append(exc)
        exc = exc.__cause__ if exc.__cause__ is not None else (None if exc.__suppress_context__ else exc.__context__)
    return out


def user_message(exc: BaseException) -> str | None:
    """The message of the outermost user-facing error in ``exc``'s chain, or None when there is none.

    Wrappers that are not user errors (MONAI's ``RuntimeError("Failed to instantiate ...")``)
    are skipped; a user error raised ``from`` a lower-level one (``OSError("cannot write to
    output folder ...") from FileExistsError``) wins over it. A ``KeyError``'s message is shown
    without the quotes ``str(KeyError)`` adds.
    """
    for inner in _chain(exc):
        if isinstance(inner, USER_ERRORS):
            if isinstance(inner, KeyError) and len(inner.args) == 1:
                return str(inner.args[0])
            if isinstance(inner, OSError) and inner.filename and str(inner.filename) not in str(inner):
                return f"{inner}: {inner.filename}"
            return str(inner) or type(inner).__name__
    return None


def _excepthook(exc_type, exc, tb, _default=sys.excepthook) -> None:
    message = None if os.environ.get("CIR_MONAI_TRACEBACK") else user_message(exc)
    if message is None:
        _default(exc_type, exc, tb)
        return
    print(f"error: {message}", file=sys.stderr)
    print("(set CIR_MONAI_TRACEBACK=1 for the full traceback)", file=sys.stderr)


def _bundle_command_line() -> list[str] | None:
    """The arguments after ``python -m monai.bundle`` when this process is that command, else None."""
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if argv0 is None or argv0.name != "__main__.py" or argv0.parent.name != "bundle" or argv0.parent.parent.name != "monai":
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


def install_bundle_error_hook() -> bool:
    """Make uncaught user errors print one line; under ``python -m monai.bundle`` also check the overrides.

    Called as the first ``initialize`` step of the bundle's configs. Returns True.
    """
    if sys.excepthook is not _excepthook:
        sys.excepthook = _excepthook
    args = _bundle_command_line()
    if args is not None:
        check_bundle_overrides(args)
    return True
