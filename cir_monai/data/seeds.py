# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""The seeds that keep the embedded data's splits apart, and the nominal length of generated data sets.

Validation pair ``i`` has seed ``VALIDATION_SEED + i``, test pair ``i`` ``TEST_SEED + i``; on-the-fly training pairs
use seeds from ``TRAIN_SEED`` on, so the sets never overlap (the held-out groups have their own,
:data:`cir_monai.data.heldout.HELDOUT_GROUPS`). A leaf module: every data module may import it.
"""

from __future__ import annotations

__all__ = ["TRAIN_SEED", "VALIDATION_SEED", "TEST_SEED", "NOMINAL_LENGTH"]

TRAIN_SEED = 1_000_000
VALIDATION_SEED = 10_000
TEST_SEED = 20_000
#: the nominal length of a generated data set (a sampler needs one; no run reaches it)
NOMINAL_LENGTH = 10**9
