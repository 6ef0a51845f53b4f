# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Process-level settings for fast CPU inference, applied by this project's entry points.

3D registration allocates tensors of hundreds of MB. glibc serves each with a
fresh ``mmap`` and returns it on free, so every forward pass pays the page
faults again: on the 2-core development machines that was 25–30 % of the
lite model's inference time (docs/benchmarks.md). :func:`tune_cpu_allocator`
makes glibc keep freed memory for reuse instead. It changes the whole
process, so the library never calls it on import; the command-line tools
and the benchmarks do.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["tune_cpu_allocator"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_done = False


def tune_cpu_allocator(trim_threshold: int = 2**31) -> bool:
    """Keep freed memory in the heap for reuse (glibc ``mallopt``); a no-op elsewhere.

    Args:
        trim_threshold: free memory kept at the top of the heap before it is returned to the OS (bytes).

    Returns:
        whether the setting was applied (Linux with glibc only).
    """
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)) == 1
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    _done = ok
    return ok
