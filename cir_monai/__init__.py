# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""cir-monai: conditional deformable image registration (cLapIRN, Mok & Chung, MICCAI 2021) on MONAI."""

__version__ = "0.8.0"

__all__ = ["__version__", "apply_transform"]


def __getattr__(name: str):
    """``cir_monai.apply_transform`` (:func:`cir_monai.apply.apply_transform`), imported on first use: it loads torch
    and MONAI, which ``import cir_monai`` (the command line's start) does not."""
    if name == "apply_transform":
        from cir_monai.apply import apply_transform

        return apply_transform
    raise AttributeError(f"module 'cir_monai' has no attribute {name!r}")
