# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""TorchScript export of the bundle's network, with λ as an input and right at every input size.

``export_torchscript`` writes what MONAI's ``ckpt_export`` writes (the traced network, the
bundle's metadata as ``extra/metadata.json`` and its inference config as
``extra/inference.json``, through MONAI's ``save_net_with_metadata``), with one difference:
the trace takes two inputs, ``image`` ``(B, 2, *S)`` (moving, fixed) and ``lam`` ``(B,)``, so λ
is an input of the exported module rather than a constant (``ckpt_export`` traces one input).

The scripted module (its input checks, λ as an input, every size served) is
:func:`cir_monai.networks.scripting.script_network`'s; ``tests/io/test_export.py`` checks the exported file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from monai.bundle import ConfigParser
from monai.data import save_net_with_metadata

from cir_monai.atomic import atomic_path
from cir_monai.io.models import load_bundle_network
from cir_monai.networks.scripting import script_network

__all__ = ["export_torchscript"]


def export_torchscript(bundle_root: str | os.PathLike, filepath: str | os.PathLike | None = None,
                       ckpt_file: str | os.PathLike | None = None, config_file: str = "configs/inference.yaml",
                       meta_file: str = "configs/metadata.json", trace_size: Sequence[int] = (48, 56, 48)) -> Path:
    """The bundle's ``network_def`` as TorchScript (:func:`script_network`), saved with the bundle's files inside.

    Args:
        bundle_root: the bundle folder.
        filepath: where to write (default ``bundle_root/models/model.ts``); written atomically.
        ckpt_file: the weights (default ``bundle_root/models/model.pt``).
        config_file, meta_file: relative to ``bundle_root``; stored as ``inference.json`` and ``metadata.json``.
        trace_size: the spatial size traced at (any: the module serves every size).

    Returns:
        the written path.
    """
    root = Path(bundle_root)
    out = Path(filepath) if filepath is not None else root / "models" / "model.ts"
    module = script_network(load_bundle_network(root, config_file, ckpt_file), trace_size)
    meta = json.loads((root / meta_file).read_text())
    name = Path(config_file).stem
    extra = {f"{name}.json": json.dumps(ConfigParser.load_config_file(str(root / config_file))).encode()}
    # staged under its final name: torch.jit.save names the archive's root folder after the file, and
    # MONAI Deploy looks for <stem>/extra/inference.json inside it
    with atomic_path(out) as staged:
        save_net_with_metadata(module, str(staged), meta_values=meta, more_extra_files=extra)
    return out


if __name__ == "__main__":  # python -m cir_monai.io.export [BUNDLE_ROOT]: re-export BUNDLE_ROOT/models/model.ts
    import argparse

    parser = argparse.ArgumentParser(prog="python -m cir_monai.io.export",
                                     description="Re-export BUNDLE_ROOT/models/model.ts from its model.pt, "
                                                 "configs/inference.yaml and configs/metadata.json.")
    parser.add_argument("bundle_root", nargs="?", default="bundle")
    print(export_torchscript(parser.parse_args().bundle_root))
