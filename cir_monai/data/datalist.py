# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Registration pairs from users' data: JSON datalists and the common OASIS layouts.

Every loader returns a list of pairs ``{"fixed", "moving"[, "fixed_label",
"moving_label"]}`` with absolute paths, after checking that every file exists,
that images are 3D (a single-channel 4D file with one volume is accepted) and
that each label has its image's shape (headers only: nothing is loaded).

Supported sources (:func:`load_pairs` picks by what it finds):

* a JSON datalist with explicit pairs, MONAI style::

      {"test": [{"fixed": "a.nii.gz", "moving": "b.nii.gz",
                 "fixed_label": "a_seg.nii.gz", "moving_label": "b_seg.nii.gz"}]}

  (or a bare list of such dicts; paths relative to the JSON file);
* a JSON list of images with a pairing mode::

      {"images": [{"image": "s1.nii.gz", "label": "s1_seg.nii.gz"}, ...],
       "pairing": "all" | "atlas", "atlas": {"image": "atlas.nii.gz", "label": ...}}

  ``all``: every ordered pair of distinct images; ``atlas``: every image moved to the atlas
  (the atlas is fixed; without ``"atlas"`` the first image is the atlas);
* the Learn2Reg OASIS layout: ``imagesTr/``, ``labelsTr/``, ``OASIS_dataset.json`` (its
  ``registration_val`` pairs, or all pairs of its ``training`` images);
* the neurite-OASIS layout: ``OASIS_OAS1_*_MR1/aligned_norm.nii.gz`` and ``aligned_seg35.nii.gz``.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib

__all__ = ["DatalistError", "load_pairs", "pairs_from_images", "check_pairs"]

PAIR_KEYS = ("fixed", "moving", "fixed_label", "moving_label")


class DatalistError(ValueError):
    """A datalist or data folder that cannot be used; the message names the file and the problem."""


def _itk_shape(path: Path) -> tuple[int, ...] | None:
    """Array shape from the header of a file ITK reads (MetaImage, NRRD, ...), or None."""
    try:
        import itk

        io = itk.ImageIOFactory.CreateImageIO(str(path), itk.CommonEnums.IOFileMode_ReadMode)
        if io is None:
            return None
        io.SetFileName(str(path))
        io.ReadImageInformation()
        shape = tuple(int(io.GetDimensions(i)) for i in range(io.GetNumberOfDimensions()))
        return shape + ((int(io.GetNumberOfComponents()),) if io.GetNumberOfComponents() > 1 else ())
    except Exception:  # noqa: BLE001 - any failure means "not an image ITK reads"
        return None


def _shape(path: Path, role: str) -> tuple[int, ...]:
    """The array shape of an image file from its header (nibabel, else ITK); 4D with one volume counts as 3D."""
    try:
        shape = tuple(int(s) for s in nib.load(str(path)).header.get_data_shape())
    except Exception as err:  # nibabel raises many types for non-images
        shape = _itk_shape(path)
        if shape is None:
            raise DatalistError(f"{path}: cannot be read as an image ({role}): {err}") from err
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) == 4:
        raise DatalistError(f"{path}: {role} is a 4D series of {shape[3]} volumes (shape {shape}): give one 3D volume, "
                            "e.g. the first: nibabel.funcs.four_to_three or fslroi IN OUT 0 1")
    if len(shape) != 3:
        raise DatalistError(f"{path}: {role} must be a 3D volume, got shape {shape} ({len(shape)}D)")
    return shape


def check_pairs(pairs: Sequence[dict], source: str) -> list[dict]:
    """Check existence, dimensionality and label/image shapes; return the pairs with absolute paths.

    Raises:
        DatalistError: empty list, missing key or file, non-3D image, label shape differing from its image.
    """
    if not pairs:
        raise DatalistError(f"{source}: no registration pairs found (empty list)")
    checked = []
    for index, pair in enumerate(pairs):
        if not isinstance(pair, dict) or "fixed" not in pair or "moving" not in pair:
            raise DatalistError(f"{source}: pair {index} needs 'fixed' and 'moving' entries, got {pair!r}")
        out = {"id": str(pair["id"])} if pair.get("id") else {}
        for key in PAIR_KEYS + ("ddf_truth",):
            if pair.get(key) is None:
                continue
            path = Path(pair[key]).expanduser().resolve()
            if not path.is_file():
                raise DatalistError(f"{source}: pair {index} {key} file not found: {path}")
            out[key] = str(path)
        shapes = {key: _shape(Path(out[key]), key) for key in PAIR_KEYS if key in out}
        for role in ("fixed", "moving"):
            label = f"{role}_label"
            if label in shapes and shapes[label] != shapes[role]:
                raise DatalistError(
                    f"{out[label]}: label shape {shapes[label]} differs from its image {out[role]} shape {shapes[role]}"
                )
        checked.append(out)
    return checked


def pairs_from_images(images: Sequence[dict | str], pairing: str = "all", atlas: dict | None = None,
                      atlas_moves: bool = False) -> list[dict]:
    """Pairs from a list of ``{"image", "label"?}`` (or plain paths).

    Args:
        images: the images.
        pairing: ``"all"``: every ordered pair of two images; ``"atlas"``: every image with ``atlas``
            (default: the first image).
        atlas: ``{"image", "label"?}``, for ``"atlas"``.
        atlas_moves: the atlas is the moving image (atlas segmentation: the bundle) instead of the fixed one
            (a datalist's ``"pairing": "atlas"``: every image registered to the atlas).

    Raises:
        DatalistError: an entry without ``"image"``, fewer than 2 images for ``"all"``, an unknown pairing.
    """
    images = [{"image": str(x)} if isinstance(x, (str, os.PathLike)) else x for x in images]
    for index, item in enumerate(images):
        if not isinstance(item, dict) or "image" not in item:
            raise DatalistError(f"image entry {index} needs an 'image' path, got {item!r}")

    def as_pair(fixed: dict, moving: dict) -> dict:
        pair = {"fixed": fixed["image"], "moving": moving["image"]}
        pair.update({f"{role}_label": side["label"] for role, side in (("fixed", fixed), ("moving", moving))
                     if side.get("label") is not None})
        return pair

    if pairing == "all":
        if len(images) < 2:
            raise DatalistError(f"pairing 'all' needs at least 2 images, got {len(images)}")
        return [as_pair(f, m) for f, m in itertools.permutations(images, 2)]
    if pairing == "atlas":
        if atlas is None:
            if not images:
                return []
            atlas, images = images[0], images[1:]
        return [as_pair(image, atlas) if atlas_moves else as_pair(atlas, image) for image in images]
    raise DatalistError(f"pairing must be 'all' or 'atlas', got {pairing!r}")


def _resolve(entry: dict, base: Path) -> dict:
    files = PAIR_KEYS + ("ddf_truth",)
    return {k: (str(base / v) if k in files and isinstance(v, str) and not os.path.isabs(v) else v)
            for k, v in entry.items()}


def _from_json(path: Path, split: str) -> list[dict]:
    try:
        content = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DatalistError(f"{path}: not valid JSON ({err})") from err
    base = path.parent
    if isinstance(content, list):
        return [_resolve(p, base) for p in content]
    if not isinstance(content, dict):
        raise DatalistError(f"{path}: expected a JSON object or list, got {type(content).__name__}")
    if "images" in content:
        images = [_resolve(i, base) for i in content["images"]]
        atlas = _resolve(content["atlas"], base) if content.get("atlas") else None
        try:
            return pairs_from_images(images, content.get("pairing", "all"), atlas)
        except DatalistError as err:
            raise DatalistError(f"{path}: {err}") from None
    if split not in content:
        raise DatalistError(f"{path}: no {split!r} list (keys: {sorted(content)}); "
                            f"choose another list (--split, split=...) or add one")
    return [_resolve(p, base) for p in content[split]]


def _from_l2r_oasis(folder: Path, split: str) -> list[dict]:
    content = json.loads((folder / "OASIS_dataset.json").read_text())

    def label_of(image: str) -> str:
        return str(folder / "labelsTr" / Path(image).name)

    key = {"validation": "registration_val", "test": "registration_test"}.get(split, split)
    if key.startswith("registration") and key in content:
        pairs = []
        for p in content[key]:
            fixed, moving = str(folder / p["fixed"]), str(folder / p["moving"])
            pairs.append({"fixed": fixed, "moving": moving, "fixed_label": label_of(fixed),
                          "moving_label": label_of(moving)})
        return pairs
    images = [{"image": str(folder / e["image"]), "label": str(folder / e["label"])}
              for e in content.get("training", [])]
    return pairs_from_images(images, "all")


def _from_neurite_oasis(folder: Path, pairing: str) -> list[dict]:
    subjects = sorted(p for p in folder.glob("OASIS_OAS1_*_MR1") if p.is_dir())
    images = [{"image": str(s / "aligned_norm.nii.gz"), "label": str(s / "aligned_seg35.nii.gz")} for s in subjects]
    return pairs_from_images(images, pairing)


def load_pairs(source: str | os.PathLike, split: str = "test", pairing: str = "atlas") -> list[dict]:
    """Registration pairs from a datalist file or a data folder (see the module docstring).

    Args:
        source: a JSON datalist, or a folder in the Learn2Reg or neurite OASIS layout, or a folder
            holding ``datalist.json`` (e.g. the embedded set written by ``python -m cir_monai.data prepare``).
        split: which list of a datalist to use (``"validation"``, ``"test"``, ...).
        pairing: for the neurite layout, ``"atlas"`` (first subject is the atlas) or ``"all"``.

    Returns:
        checked pairs with absolute paths.

    Raises:
        DatalistError: with the file and the problem.
    """
    path = Path(source).expanduser()
    if not path.exists():
        raise DatalistError(f"data source not found: {path}")
    if path.is_file():
        pairs, name = _from_json(path, split), str(path)
    elif (path / "OASIS_dataset.json").is_file():
        pairs, name = _from_l2r_oasis(path, split), str(path / "OASIS_dataset.json")
    elif any(path.glob("OASIS_OAS1_*_MR1")):
        pairs, name = _from_neurite_oasis(path, pairing), str(path)
    elif (path / "datalist.json").is_file():
        pairs, name = _from_json(path / "datalist.json", split), str(path / "datalist.json")
    else:
        raise DatalistError(
            f"{path}: not a datalist and no known layout (datalist.json, OASIS_dataset.json + imagesTr/labelsTr, "
            "or OASIS_OAS1_*_MR1 folders)"
        )
    return check_pairs(pairs, name)
