# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Process-level settings for fast CPU inference, applied by this project's entry points.

**Threads** (:func:`choose_threads`, :func:`cpu_threads`). PyTorch starts one OpenMP thread per core it sees
and its threads wait for each other at every operation; on a machine whose cores are busy with other work they lose
their time slices and wait for the slowest (issue 32: with two busy processes on 2 cores a 1 mm ``register`` took
3.3× its idle time with 2 threads, 1.8× with 1). So the command-line tools use as many threads as there are usable
cores (the process's affinity, capped by a cgroup CPU quota, which ``os.cpu_count`` ignores) that are not already
busy (the 1-minute load average), or what ``--threads`` / ``$CIR_MONAI_THREADS`` say.

3D registration allocates tensors of hundreds of MB. glibc serves each with a
fresh ``mmap`` and returns it on free, so every forward pass pays the page
faults again: on the 2-core development machines that was 25–30 % of the
lite model's inference time (docs/benchmarks.md). :func:`tune_cpu_allocator`
makes glibc keep freed memory for reuse instead. It changes the whole
process, so the library never calls it on import; the command-line tools
and the benchmarks do.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import math
import os
import sys
from pathlib import Path

__all__ = ["tune_cpu_allocator", "usable_cpus", "idle_cpus", "choose_threads", "cpu_threads", "rank_and_world"]

#: the environment variable that sets the command-line tools' CPU threads
THREADS_ENV = "CIR_MONAI_THREADS"

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


def _cgroup_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The cgroup CPU quota in CPUs (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``), or ``None``."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 or period <= 0 else quota / period
    except (OSError, ValueError):
        return None


def usable_cpus(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """The CPUs this process may use: its affinity mask, capped by a cgroup CPU quota (rounded up), at least 1."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    quota = _cgroup_quota(cgroup_root)
    if quota is not None:
        count = min(count, max(1, math.ceil(quota)))
    return max(1, count)


def idle_cpus(usable: int | None = None, load: float | None = None) -> int:
    """The usable CPUs not busy with other work: ``usable`` less the 1-minute load average (rounded), at least 1.

    Args:
        usable: default :func:`usable_cpus`.
        load: default ``os.getloadavg()[0]`` (0 where there is none).
    """
    usable = usable_cpus() if usable is None else int(usable)
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):
            load = 0.0
    return max(1, min(usable, usable - int(round(float(load)))))


def choose_threads(requested: int | str | None = None) -> int:
    """The CPU threads to run on: ``requested`` when given (a positive number), else ``$CIR_MONAI_THREADS``, else
    :func:`idle_cpus`.

    Raises:
        ValueError: a requested or environment value that is not a positive whole number (the value named).
    """
    source = "--threads"
    if requested in (None, ""):
        requested, source = os.environ.get(THREADS_ENV) or None, f"${THREADS_ENV}"
    if requested is None:
        return idle_cpus()
    try:
        value = int(str(requested))
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{source} must be a positive whole number of CPU threads, got {requested!r}")
    return value


@contextlib.contextmanager
def cpu_threads(requested: int | str | None = None):
    """Run the block with ``torch.set_num_threads(choose_threads(requested))`` (intra-op threads: what one
    registration's convolutions and warps use), and restore the previous number after it (the command-line tools
    run in-process too, e.g. under pytest). Yields the number."""
    import torch

    previous = torch.get_num_threads()
    threads = choose_threads(requested)
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(previous)


def rank_and_world() -> tuple[int, int]:
    """``(rank, world size)`` of the ``torch.distributed`` process group this process is in, else ``(0, 1)``."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1
