# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Data: synthetic deformations and a built-in phantom pair (the embedded MRI data set follows)."""

from cir_monai.data.synthetic import phantom, random_diffeomorphic_ddf, synthetic_pair

__all__ = ["phantom", "random_diffeomorphic_ddf", "synthetic_pair"]
