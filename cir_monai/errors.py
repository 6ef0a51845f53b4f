# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""One-line errors for users: the innermost problem, not the engine's traceback.

The ``cir-monai`` command reports bad input as one line::

    cir-monai: error: model file not found: bundle/models/modle.pt

MONAI's config machinery wraps whatever went wrong in ``RuntimeError("Failed to
instantiate ...")`` several times over; :func:`user_message` walks that chain down to
the exception this project raised (a ``ValueError``, ``KeyError`` or ``OSError``
whose message names the file, shape or value) and returns its message.
Anything else is a bug and keeps its full traceback. ``CIR_MONAI_TRACEBACK=1``
shows the full traceback for every error.

The bundle's configs change nothing in the process that runs them (a MONAI Label server, a Deploy
application): they raise ordinary exceptions whose messages name the file, shape or value; the
one-line form is the command line's alone (:func:`cir_monai.cli.main`).
"""

from __future__ import annotations

__all__ = ["USER_ERRORS", "user_message"]

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
