# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Data: the embedded MNI152 data set, seeded pairs with known truth, users' datalists and preprocessing."""

from cir_monai.data.datalist import DatalistError, check_pairs, load_pairs, pairs_from_images
from cir_monai.data.embedded import (
    DEFAULT_SHAPE,
    DEFAULT_SPACING,
    TISSUE_LABELS,
    build_embedded_template,
    default_cache_dir,
    load_template,
)
from cir_monai.data.pairs import PairConfig, make_pair, make_subject, synthetic_pair
from cir_monai.data.prepare import load_template_tensors, prepare_embedded
from cir_monai.data.seeds import TEST_SEED, TRAIN_SEED, VALIDATION_SEED
from cir_monai.data.synthesis import random_affine_ddf, random_diffeomorphic_ddf
from cir_monai.data.synthetic import phantom
from cir_monai.data.training import FilePairDataset, RandomPairDataset

__all__ = [
    "DEFAULT_SHAPE",
    "DEFAULT_SPACING",
    "TEST_SEED",
    "TISSUE_LABELS",
    "TRAIN_SEED",
    "VALIDATION_SEED",
    "DatalistError",
    "FilePairDataset",
    "PairConfig",
    "build_embedded_template",
    "check_pairs",
    "default_cache_dir",
    "load_pairs",
    "load_template",
    "load_template_tensors",
    "make_pair",
    "make_subject",
    "pairs_from_images",
    "phantom",
    "prepare_embedded",
    "RandomPairDataset",
    "random_affine_ddf",
    "random_diffeomorphic_ddf",
    "synthetic_pair",
]
