# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Model files in and out: checkpoints (written atomically, read weights-only), the one :func:`load_network` for
every kind of model file, the authors' ``.pth`` layout (:mod:`cir_monai.io.official`) and the TorchScript export
(:mod:`cir_monai.io.export`, imported on its own: it needs the bundle machinery)."""

from cir_monai.io.checkpoint import check_model_file, load_checkpoint, save_checkpoint
from cir_monai.io.models import (
    bundle_frame,
    convert_checkpoint,
    infer_config,
    load_bundle_network,
    load_network,
    model_file_frame,
    model_file_state,
    read_model_file,
    record_bundle_frame,
    save_model_file,
)
from cir_monai.io.official import load_official_checkpoint

__all__ = ["bundle_frame", "model_file_frame", "record_bundle_frame",
           "check_model_file", "convert_checkpoint", "infer_config", "load_bundle_network", "load_checkpoint",
           "load_network", "load_official_checkpoint", "read_model_file", "save_checkpoint",
           "model_file_state", "save_model_file"]
