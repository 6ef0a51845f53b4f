# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Bundle glue: the factories the MONAI bundle configs instantiate by dotted path (``_target_``): data sets, pairs;
and the bundle workflows run from Python (:func:`run_bundle`, :func:`evaluate`, :func:`train`: ``cir-monai``)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import ignite.distributed as idist
import torch

from cir_monai.atomic import staged_folder
from cir_monai.data.datalist import check_pairs, load_pairs, pairs_from_images
from cir_monai.data.embedded import DEFAULT_SHAPE, DEFAULT_SPACING, build_embedded_template
from cir_monai.data.pairs import PairConfig
from cir_monai.data.prepare import TRAIN_SEED, load_template_tensors, prepare_embedded
from cir_monai.data.slices import axial_band, slice_pairs
from cir_monai.data.synthesis import SubjectConfig, SynthConfig
from cir_monai.data.training import RandomPairDataset, SlicePairDataset, SyntheticPairDataset
from cir_monai.defaults import DEFAULT_LAMS, bundle_configs, bundle_root, default_model, embedded_dir, overlay_files
from cir_monai.overrides import check_override_keys, check_reserved
from cir_monai.transforms import registration_preprocessing

__all__ = ["image_list_pairs", "data_pairs", "run_bundle", "evaluate", "train", "training_dataset",
           "validation_dataset", "embedded_training_dataset", "subject_config", "synthetic_training_dataset",
           "prepared_pairs", "validation_tensors", "pairs_or_single", "slice_training_dataset",
           "slice_validation_dataset", "heldout_slice_pairs"]


def image_list_pairs(data: Sequence, pairing: str = "atlas", atlas_dir: str | os.PathLike | None = None) -> list[dict]:
    """Registration pairs from a list of images, the form MONAI Label's ``BundleTrainTask`` gives.

    Args:
        data: ``[{"image": path[, "label": path]}, ...]`` (or plain paths).
        pairing: ``"atlas"``: each image is a fixed image with the atlas (``atlas_dir``) as the moving
            one (what the inference workflow does); ``"all"``: every ordered pair of two images
            (:func:`~cir_monai.data.pairs_from_images`).
        atlas_dir: folder with the atlas (:data:`cir_monai.transforms.ATLAS_FILES`), for ``"atlas"``.

    Returns:
        ``[{"fixed", "moving"[, "fixed_label", "moving_label"]}]``; labels only when both sides have one
        (items of one data set then batch alike).
    """
    from cir_monai.transforms import ATLAS_FILES

    pairing = "all" if pairing == "pairs" else pairing  # "pairs": an accepted synonym of "all"
    atlas = None
    if pairing == "atlas":
        if atlas_dir is None:
            raise ValueError("pairing='atlas' needs atlas_dir")
        atlas = {key: str(Path(atlas_dir) / ATLAS_FILES[key]) for key in ("image", "label")}
    pairs = pairs_from_images(data, pairing, atlas, atlas_moves=True)
    return [p if "fixed_label" in p and "moving_label" in p else {"fixed": p["fixed"], "moving": p["moving"]}
            for p in pairs]


def data_pairs(data: str | os.PathLike = "embedded", split: str = "test") -> list[dict]:
    """The pairs of ``split`` in ``data``: ``"embedded"`` (the built-in MNI152 pairs, written under
    :func:`~cir_monai.defaults.embedded_dir` if needed) or anything :func:`~cir_monai.data.load_pairs` reads."""
    if str(data) == "embedded":
        return prepared_pairs(embedded_dir(), split, DEFAULT_SPACING, DEFAULT_SHAPE)
    return load_pairs(Path(data).expanduser(), split=split)


def run_bundle(files: Sequence[str | os.PathLike], run_id: str, overrides: dict):
    """Run the bundle workflow ``run_id`` of the config ``files`` with ``overrides``, as
    ``python -m monai.bundle run`` does; unknown override ids are refused first
    (:func:`~cir_monai.overrides.check_override_keys`). ``bundle_root`` defaults to
    :func:`~cir_monai.defaults.bundle_root`. Returns the workflow's result."""
    from monai.bundle import ConfigWorkflow

    check_override_keys(files, list(overrides))
    overrides = dict(overrides, bundle_root=overrides.get("bundle_root", str(bundle_root())))
    files = [str(f) for f in files]
    workflow = ConfigWorkflow(files if len(files) > 1 else files[0], workflow_type="train", run_id=run_id,
                              meta_file=str(bundle_configs() / "metadata.json"),
                              logging_file=str(bundle_configs() / "logging.conf"), **overrides)
    workflow.initialize()
    result = workflow.run()
    workflow.finalize()
    return result


def evaluate(model: str | os.PathLike | None = None, lams: Sequence[float] = DEFAULT_LAMS,
             out: str | os.PathLike = "runs/evaluate", data: str = "embedded", split: str = "test", config=(),
             **overrides) -> Path:
    """The bundle's evaluate workflow (``train.yaml`` + ``evaluate.yaml`` + overlays, :func:`overlay_files`) for
    ``model`` (``None``: the shipped one) at ``lams``; the report is written into ``out`` atomically
    (replacing an earlier one). ``cir-monai evaluate``. Returns ``out/summary.md``."""
    from cir_monai.engines.prediction import checked_lams
    from cir_monai.io import load_network

    check_reserved(overrides, {"ckpt_path": "model", "eval_lams": "lams", "eval_dir": "out"})
    path = Path(model).expanduser() if model else default_model()
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    checked_lams(lams, load_network(path))  # before the bundle starts (and logs)
    files = [bundle_configs() / "train.yaml", bundle_configs() / "evaluate.yaml", *overlay_files(config)]
    overrides.setdefault("dataset_dir", str(embedded_dir()))
    if str(data) != "embedded":
        overrides["test_pairs"] = f"$cir_monai.data.load_pairs({str(Path(data).expanduser())!r}, split={split!r})"
    with staged_folder(out, fresh=True) as staging:
        run_bundle(files, "evaluate", dict(overrides, ckpt_path=str(path), eval_lams=list(lams), eval_dir=str(staging)))
    return Path(out).expanduser() / "summary.md"


def train(config=(), out: str | os.PathLike = "runs/train", init_from: str | os.PathLike | None = None,
          **overrides) -> Path:
    """The bundle's training workflow (``train.yaml`` + overlays) into the run folder ``out``, resuming from its
    ``checkpoint.pt``; ``init_from`` fine-tunes from a model file. The shipped ``models/model.pt`` is left alone
    unless ``train#trainer#bundle_model`` is given. ``cir-monai train``. Returns ``out/model.pt``."""
    check_reserved(overrides, {"output_dir": "out"})
    if init_from is not None:
        if not Path(init_from).expanduser().is_file():
            raise FileNotFoundError(f"init_from: model file not found: {init_from}")
        overrides["init_from"] = str(Path(init_from).expanduser())
    overrides.setdefault("dataset_dir", str(embedded_dir()))
    overrides.setdefault("train#trainer#bundle_model", None)
    run_bundle([bundle_configs() / "train.yaml", *overlay_files(config)], "training",
               dict(overrides, output_dir=str(Path(out).expanduser())))
    return Path(out).expanduser() / "model.pt"


def training_dataset(data: Sequence | None = None, pairing: str = "atlas", atlas_dir: str | os.PathLike | None = None,
                     dataset_dir: str | os.PathLike = "data/embedded", spacing: float = DEFAULT_SPACING,
                     spatial_size: Sequence[int] = DEFAULT_SHAPE, pool_size: int = 16, seed: int = TRAIN_SEED,
                     with_truth: bool = False, subject: dict | None = None):
    """The bundle's ``train#dataset``: the user's images when ``data`` is given, else generated embedded pairs.

    ``data`` is what MONAI Label overrides (``train#dataset#data``): a list of ``{"image", "label"}``,
    paired by :func:`image_list_pairs`, preprocessed to the working grid (``spacing`` mm, cropped or
    padded to ``spatial_size``) and cached (:class:`~cir_monai.data.training.FilePairDataset`).
    ``with_truth``: the embedded pairs also carry their true fields (``train.yaml`` sets it when
    ``loss#field_weight > 0``); users' files have none, so it is an error with ``data``. ``subject``: the embedded
    subjects' settings (:func:`embedded_training_dataset`).
    """
    if data and with_truth:
        raise ValueError("loss#field_weight > 0 needs the true field of every training pair: only the generated "
                         "embedded pairs have one, not train#dataset#data (set loss#field_weight to 0)")
    if data:
        from cir_monai.data.training import FilePairDataset

        pre = registration_preprocessing(spatial_size=spatial_size, pixdim=spacing)
        return FilePairDataset(image_list_pairs(data, pairing, atlas_dir), pre, seed=int(seed))
    return embedded_training_dataset(dataset_dir, spacing, spatial_size, pool_size, with_truth, subject)


def validation_dataset(data: Sequence | None = None, pairing: str = "atlas", atlas_dir: str | os.PathLike | None = None,
                       dataset_dir: str | os.PathLike = "data/embedded", spacing: float = DEFAULT_SPACING,
                       spatial_size: Sequence[int] | None = None, num_validation: int = 4,
                       num_test: int = 8) -> list[dict]:
    """The bundle's ``validate#dataset``: tensors of ``data`` (MONAI Label's ``validate#dataset#data``) when
    given (pairs without labels are skipped: validation reports Dice), else of the embedded validation
    pairs, which are then written under ``dataset_dir`` if needed (and only then)."""
    if data:
        labelled = [p for p in image_list_pairs(data, pairing, atlas_dir) if "fixed_label" in p]
        return validation_tensors(labelled, spatial_size, pixdim=spacing)
    pairs = prepared_pairs(dataset_dir, "validation", spacing, spatial_size, num_validation, num_test)
    return validation_tensors(pairs, spatial_size)


def embedded_training_dataset(
    dataset_dir: str | os.PathLike, spacing: float, spatial_size: Sequence[int], pool_size: int = 16,
    with_truth: bool = False, subject: dict | None = None,
) -> RandomPairDataset:
    """On-the-fly training pairs of the embedded MNI152 template at the working grid (with their true fields
    when ``with_truth``).

    ``subject``: each subject's settings, the fields of :class:`~cir_monai.data.synthesis.SubjectConfig` (voxels of
    the working grid; lists are taken as tuples), e.g. several velocity scales
    (``configs/scale/cpu_lite_multiscale.yaml``); ``None``: the shipped model's recipe, one smooth scale
    (:class:`~cir_monai.data.pairs.PairConfig`'s defaults).

    Raises:
        ValueError: ``subject`` names a field that :class:`SubjectConfig` does not have (here), or its scales and
            amplitudes differ in number (:func:`~cir_monai.data.synthesis.random_deformation`, at the first subject).
    """
    image, label = _template(dataset_dir, spacing, spatial_size)
    config = PairConfig() if subject is None else subject_config(subject)
    return RandomPairDataset(image, label, pool_size=int(pool_size), config=config, with_truth=bool(with_truth))


def subject_config(fields: dict) -> SubjectConfig:
    """A :class:`~cir_monai.data.synthesis.SubjectConfig` from ``train#dataset#subject`` (:func:`_config_fields`)."""
    return SubjectConfig(**_config_fields(SubjectConfig, fields, "train#dataset#subject"))


def _config_fields(cls, fields: dict, key: str) -> dict:
    """A config's mapping as keyword arguments of the dataclass ``cls``: lists become tuples (YAML has no tuples);
    a name ``cls`` does not have is a ValueError naming ``key``, the name and the ones it has."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"{key}: unknown field(s) {unknown}; {cls.__name__} has {sorted(known)}")
    return {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in dict(fields).items()}


def synthetic_training_dataset(
    dataset_dir: str | os.PathLike, spacing: float, spatial_size: Sequence[int], seed: int = TRAIN_SEED, **config
) -> SyntheticPairDataset:
    """Generated training pairs (:mod:`cir_monai.data.generative`) from the embedded template's labels and
    random label maps, at the working grid; ``config`` overrides :class:`SynthConfig` fields."""
    image, label = _template(dataset_dir, spacing, spatial_size)
    fields = _config_fields(SynthConfig, config, "train#dataset")
    if isinstance(fields.get("affine"), dict):
        fields["affine"] = PairConfig(**fields["affine"])
    return SyntheticPairDataset(image, label, SynthConfig(**fields), seed=int(seed))


def _template(dataset_dir: str | os.PathLike, spacing: float, spatial_size: Sequence[int]) -> tuple:
    """The embedded template's image and labels at the working grid (built under ``dataset_dir/.cache`` once)."""
    size = tuple(int(s) for s in spatial_size)
    with idist.one_rank_first():  # rank 0 builds the cache, the others then read it
        files = build_embedded_template(Path(dataset_dir) / ".cache", float(spacing), size)
    return load_template_tensors(files)[:2]


def prepared_pairs(
    dataset_dir: str | os.PathLike, split: str, spacing: float, spatial_size: Sequence[int], num_validation: int = 4,
    num_test: int = 8,
) -> list[dict]:
    """Write the embedded validation/test pairs if needed and return the file pairs of ``split``."""
    with idist.one_rank_first():  # rank 0 writes the pairs, the others then find them
        datalist = prepare_embedded(dataset_dir, num_validation, num_test, float(spacing),
                                    tuple(int(s) for s in spatial_size))
    return load_pairs(datalist, split=split)


def validation_tensors(pairs: Sequence[dict], spatial_size: Sequence[int] | None = None,
                       pixdim: float | None = None) -> list[dict]:
    """Preprocess file pairs into ``(1, 1, *S)`` tensors for the trainer's validation (resampled to ``pixdim`` mm
    when given)."""
    pre = registration_preprocessing(spatial_size=spatial_size, pixdim=pixdim)
    out = []
    for pair in pairs:
        data = pre(dict(pair))
        out.append({k: torch.as_tensor(v)[None] for k, v in data.items()
                    if k in ("fixed", "moving", "fixed_label", "moving_label")})
    return out


def pairs_or_single(
    source: str | os.PathLike | None = None,
    split: str = "test",
    fixed: str | None = None,
    moving: str | None = None,
    moving_label: str | None = None,
    fixed_label: str | None = None,
) -> list[dict]:
    """One pair from ``fixed``/``moving`` (overrides) or the pairs of a datalist or data folder."""
    if fixed or moving:
        if not (fixed and moving):
            raise ValueError("give both --fixed and --moving for a single pair")
        pair = {"fixed": fixed, "moving": moving, "moving_label": moving_label, "fixed_label": fixed_label}
        return check_pairs([{k: v for k, v in pair.items() if v}], "the --fixed/--moving pair")
    if source is None:
        raise ValueError("no data: set dataset_dir / datalist, or --fixed and --moving")
    return load_pairs(source, split=split)


def slice_training_dataset(dataset_dir: str | os.PathLike = "data/embedded", spacing: float = DEFAULT_SPACING,
                           volume_size: Sequence[int] = DEFAULT_SHAPE, pool_size: int = 16, seed: int = TRAIN_SEED,
                           min_fraction: float = 0.5) -> SlicePairDataset:
    """2D training pairs: axial slices (:mod:`cir_monai.data.slices`) of the generated embedded pairs on a 3D grid
    (``spacing`` mm, ``volume_size`` voxels; the embedded frame's 2 mm, 80×96×80 by default, so slices are
    80×96), drawn from the band of the template's labels."""
    pairs = embedded_training_dataset(dataset_dir, spacing, volume_size, pool_size)
    return SlicePairDataset(pairs, axial_band(pairs.label, min_fraction), seed=int(seed))


def slice_validation_dataset(dataset_dir: str | os.PathLike = "data/embedded", spacing: float = DEFAULT_SPACING,
                             volume_size: Sequence[int] = DEFAULT_SHAPE, per_pair: int = 4, num_validation: int = 4,
                             num_test: int = 8, min_fraction: float = 0.5) -> list[dict]:
    """2D validation pairs: ``per_pair`` axial slices of each embedded validation pair (in distribution)."""
    pairs = prepared_pairs(dataset_dir, "validation", spacing, volume_size, num_validation, num_test)
    return slice_pairs(validation_tensors(pairs, volume_size), per_pair, min_fraction)


def heldout_slice_pairs(out: str | os.PathLike, num_pairs: int = 10, per_pair: int = 5,
                        min_fraction: float = 0.5) -> list[dict]:
    """2D test pairs: ``per_pair`` axial slices of each of ``num_pairs`` held-out 2009c + CerebrA pairs
    (:mod:`cir_monai.data.heldout`, written under ``out`` once), resampled to the embedded frame's 2 mm grid."""
    from cir_monai.data.heldout import prepare_heldout

    pairs = load_pairs(prepare_heldout(out, num_pairs), split="test")
    return slice_pairs(validation_tensors(pairs, DEFAULT_SHAPE, pixdim=DEFAULT_SPACING), per_pair, min_fraction)
