# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""MONAI transforms of the package, one home: registration pairs' preprocessing (:mod:`.registration`), the atlas
segmentation's transforms (:mod:`.atlas`), a model's frame (:mod:`.frame`) and the one ``Spacingd`` workaround
(:mod:`.spacing`)."""

from cir_monai.transforms.atlas import (
    ATLAS_FILES,
    AtlasLabelsd,
    AtlasStackd,
    DDFToWorldd,
    atlas_label_names,
    missing_atlas_file,
)
from cir_monai.transforms.frame import ToFramed
from cir_monai.transforms.registration import (
    IMAGE_KEYS,
    LABEL_KEYS,
    CheckIntensityImaged,
    CheckOverlapd,
    CheckVolumed,
    MatchGridd,
    MoveInWorldd,
    PairPreprocessing,
    ReadableLoadImaged,
    intensity_image_problem,
    registration_preprocessing,
)
from cir_monai.transforms.spacing import KeywiseSpacingd

__all__ = [
    "ATLAS_FILES",
    "AtlasLabelsd",
    "AtlasStackd",
    "CheckIntensityImaged",
    "CheckOverlapd",
    "CheckVolumed",
    "DDFToWorldd",
    "IMAGE_KEYS",
    "KeywiseSpacingd",
    "LABEL_KEYS",
    "MatchGridd",
    "MoveInWorldd",
    "PairPreprocessing",
    "ReadableLoadImaged",
    "atlas_label_names",
    "intensity_image_problem",
    "missing_atlas_file",
    "registration_preprocessing",
    "ToFramed",
]
