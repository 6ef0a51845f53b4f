# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""The one switch for the networks' fast paths; the plain path is the definition.

Each network module's plain path is the readable reference (what ``docs/method.md`` describes);
the fast paths are tested equivalents of it (``tests/networks/test_fast.py``: same outputs and
gradients up to float rounding), used when enabled (the default):

* 3D convolutions that always reach oneDNN on CPU (:func:`~cir_monai.networks.convolution.conv3d`);
* instance-norm moments from one matrix product with a one-pass backward
  (:func:`~cir_monai.networks.conditioning.instance_moments`), and an in-place conditional
  instance norm at inference;
* the head's transposed and first 3×3 convolutions composed into one
  (:meth:`~cir_monai.networks.clapirn.RegistrationLevel.up_conv_weight`).

A trace for TorchScript (:mod:`cir_monai.io.export`) always records the plain path.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["set_fast_paths", "fast_paths", "fast_paths_enabled"]

_enabled = True


def set_fast_paths(enabled: bool) -> None:
    """Use the fast paths (``True``, the default) or only the plain reference path (``False``)."""
    global _enabled
    _enabled = bool(enabled)


@contextlib.contextmanager
def fast_paths(enabled: bool) -> Iterator[None]:
    """``with fast_paths(False): ...`` runs the block on the plain path, then restores the setting."""
    previous = _enabled
    set_fast_paths(enabled)
    try:
        yield
    finally:
        set_fast_paths(previous)


def fast_paths_enabled() -> bool:
    """Whether a fast path may run now: enabled, and not inside a trace."""
    return _enabled and not torch.jit.is_tracing()
