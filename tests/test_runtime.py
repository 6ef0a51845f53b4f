"""Process settings of the entry points (cir_monai.runtime): the CPU allocator (observable through mallinfo2) and the
CPU threads (usable cores from affinity and cgroup quota, less the busy ones; an explicit choice wins)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux-only")
def test_freed_memory_stays_in_the_heap_after_tuning():
    """In a fresh process: a freed 64 MB block goes back to the OS before, stays in the heap after."""
    code = """
import ctypes, ctypes.util, sys
from cir_monai.runtime import tune_cpu_allocator
libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
if not hasattr(libc, "mallinfo2"):
    print("no-mallinfo2"); sys.exit(0)
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = Info
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def kept_after_free():
    block = libc.malloc(64 << 20)
    libc.free(block)
    return libc.mallinfo2().fordblks >= 64 << 20
before = kept_after_free()
applied = tune_cpu_allocator()
print(before, applied, kept_after_free(), tune_cpu_allocator())
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    if proc.stdout.strip() == "no-mallinfo2":
        pytest.skip("glibc < 2.33 (no mallinfo2) or not glibc: the effect cannot be observed here")
    assert proc.stdout.split() == ["False", "True", "True", "True"]  # mmap'd and returned, then kept; idempotent

from cir_monai import runtime  # noqa: E402


def test_usable_cpus_reads_the_affinity_and_a_cgroup_quota(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert runtime.usable_cpus(tmp_path) == 4  # no cgroup files: the affinity
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # v2: 1.5 CPUs → 2
    assert runtime.usable_cpus(tmp_path) == 2
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert runtime.usable_cpus(tmp_path) == 4
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("50000")  # v1: half a CPU → 1
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert runtime.usable_cpus(tmp_path) == 1


def test_idle_cpus_leave_the_busy_cores_alone():
    assert runtime.idle_cpus(usable=2, load=0.1) == 2
    assert runtime.idle_cpus(usable=2, load=1.2) == 1
    assert runtime.idle_cpus(usable=2, load=7.0) == 1  # never fewer than one
    assert runtime.idle_cpus(usable=8, load=2.6) == 5


def test_an_explicit_choice_wins_and_bad_values_are_named(monkeypatch):
    monkeypatch.setenv(runtime.THREADS_ENV, "3")
    assert runtime.choose_threads() == 3
    assert runtime.choose_threads(1) == 1
    monkeypatch.setenv(runtime.THREADS_ENV, "many")
    with pytest.raises(ValueError, match=r"\$CIR_MONAI_THREADS must be a positive whole number .* got 'many'"):
        runtime.choose_threads()
    with pytest.raises(ValueError, match="--threads must be a positive whole number"):
        runtime.choose_threads(0)
    monkeypatch.delenv(runtime.THREADS_ENV)
    monkeypatch.setattr(runtime, "idle_cpus", lambda: 1)
    assert runtime.choose_threads() == 1


def test_cpu_threads_restores_the_previous_number(monkeypatch):
    import torch

    before = torch.get_num_threads()
    with runtime.cpu_threads(1) as threads:
        assert threads == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
