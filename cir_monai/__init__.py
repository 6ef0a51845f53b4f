# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""cir-monai: conditional deformable image registration (cLapIRN, Mok & Chung, MICCAI 2021) on MONAI."""

__version__ = "0.8.0"
