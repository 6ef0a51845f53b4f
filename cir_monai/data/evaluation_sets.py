# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""The held-out evaluation groups by name: one entry point above both kinds of held-out pairs.

* ``"standard"`` and ``"hard"``: the 2009c template against itself under known random deformations, with true
  fields (:mod:`cir_monai.data.heldout`, :data:`~cir_monai.data.heldout.HELDOUT_GROUPS`);
* ``"cross"``: real pairs of different templates, no true field (:mod:`cir_monai.data.cross_template`).

Benchmarks and the evaluation take a group's name and get its ``datalist.json`` from :func:`prepare_group`.
"""

from __future__ import annotations

import os
from pathlib import Path

from cir_monai.data.cross_template import prepare_cross_template
from cir_monai.data.heldout import HELDOUT_GROUPS, prepare_heldout

__all__ = ["CROSS_GROUP", "GROUPS", "prepare_group"]

#: the held-out group of real pairs of different templates (:mod:`cir_monai.data.cross_template`): no true field
CROSS_GROUP = "cross"
#: every held-out group's name
GROUPS = (*HELDOUT_GROUPS, CROSS_GROUP)


def prepare_group(out: str | os.PathLike, group: str = "standard", num_pairs: int = 4, progress: bool = True) -> Path:
    """Write the pairs of held-out ``group`` under ``out`` (once) and return their ``datalist.json`` (split
    ``"test"``); ``num_pairs`` does not apply to the cross group (its 6 pairs).

    Raises:
        ValueError: an unknown group (the known ones named).
    """
    if group == CROSS_GROUP:
        return prepare_cross_template(out, progress)
    if group not in HELDOUT_GROUPS:
        raise ValueError(f"held-out group must be one of {list(GROUPS)}, got {group!r}")
    return prepare_heldout(out, num_pairs, progress, group)
