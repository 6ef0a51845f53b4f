# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Write the embedded validation and test pairs once, as NIfTI with a JSON datalist.

Layout under ``out``::

    template/mni152_t1.nii.gz, template/mni152_tissue_labels.nii.gz
    validation/pair_000/{fixed,moving,fixed_label,moving_label}.nii.gz   ...
    test/pair_000/...
    datalist.json   {"labels": {...}, "config": {...}, "validation": [pairs], "test": [pairs]}

Seeds: validation pair ``i`` is :func:`~cir_monai.data.pairs.make_pair` seed
``VALIDATION_SEED + i``, test pair ``i`` seed ``TEST_SEED + i``; on-the-fly
training pairs use seeds from ``TRAIN_SEED`` on, so the sets never overlap.
Every file is written to a temporary name and renamed, and the datalist last:
an interrupted run leaves no datalist that points at half-written files.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from tqdm import tqdm

from cir_monai.atomic import write_json
from cir_monai.data.embedded import DEFAULT_SHAPE, DEFAULT_SPACING, TISSUE_LABELS, build_embedded_template
from cir_monai.data.pairs import PairConfig, make_pair
from cir_monai.data.seeds import TEST_SEED, TRAIN_SEED, VALIDATION_SEED
from cir_monai.nifti import save_nifti

__all__ = ["TRAIN_SEED", "VALIDATION_SEED", "TEST_SEED", "prepare_embedded", "load_template_tensors"]



def load_template_tensors(paths: dict[str, Path]) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Template image ``(1, 1, *S)`` float32, label ``(1, 1, *S)`` int64 and the affine."""
    img = nib.load(str(paths["image"]))
    lab = nib.load(str(paths["label"]))
    image = torch.from_numpy(np.asarray(img.dataobj, dtype=np.float32))[None, None]
    label = torch.from_numpy(np.asarray(lab.dataobj).astype(np.int64))[None, None]
    return image, label, img.affine


def prepare_embedded(
    out: str | os.PathLike,
    num_validation: int = 4,
    num_test: int = 8,
    spacing: float = DEFAULT_SPACING,
    shape: Sequence[int] = DEFAULT_SHAPE,
    config: PairConfig = PairConfig(),
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> Path:
    """Build the embedded template (if needed) and write the validation/test pairs.

    Skips the work when ``out/datalist.json`` already records the same settings.

    Returns:
        the path of ``datalist.json``.
    """
    out = Path(out)
    datalist_path = out / "datalist.json"
    settings = dict(
        num_validation=num_validation, num_test=num_test, spacing=spacing, shape=list(shape),
        pairs=dataclasses.asdict(config)
    )
    if datalist_path.is_file():
        existing = json.loads(datalist_path.read_text())
        if existing.get("config") == settings:
            return datalist_path
    out.mkdir(parents=True, exist_ok=True)
    template_paths = build_embedded_template(cache_dir if cache_dir is not None else out / ".cache", spacing,
                                             tuple(shape))
    (out / "template").mkdir(exist_ok=True)
    for key, name in (("image", "mni152_t1.nii.gz"), ("label", "mni152_tissue_labels.nii.gz")):
        shutil.copyfile(template_paths[key], out / "template" / name)
    image, label, affine = load_template_tensors(template_paths)

    datalist: dict = {"labels": {str(k): v for k, v in TISSUE_LABELS.items() if k}, "config": settings}
    jobs = [("validation", VALIDATION_SEED + i, i) for i in range(num_validation)]
    jobs += [("test", TEST_SEED + i, i) for i in range(num_test)]
    for split in ("validation", "test"):
        datalist[split] = []
    for split, seed, index in tqdm(jobs, desc="writing pairs", unit="pair", disable=not progress):
        folder = out / split / f"pair_{index:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        pair = make_pair(image, label, seed, config)
        entry = {"seed": seed}
        for key in ("fixed", "moving", "fixed_label", "moving_label"):
            data = pair[key][0, 0].numpy()
            data = data.astype(np.int16) if key.endswith("label") else data.astype(np.float32)
            save_nifti(data, affine, folder / f"{key}.nii.gz")
            entry[key] = str((folder / f"{key}.nii.gz").relative_to(out))
        datalist[split].append(entry)
    write_json(datalist_path, datalist)
    return datalist_path
