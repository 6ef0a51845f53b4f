# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""The training data sets, in one module: item ``k`` is a fixed function of ``k`` (exact resume, any worker count).

* :class:`RandomPairDataset`: pairs of random subjects of the embedded template (:mod:`cir_monai.data.pairs`);
* :class:`SyntheticPairDataset`: generated pairs of template and random label maps (:mod:`cir_monai.data.generative`);
* :class:`FilePairDataset`: users' file pairs, preprocessed;
* :class:`SlicePairDataset`: axial slices of any of them, for 2D models (:mod:`cir_monai.data.slices`);

and :class:`StepSampler`, the sampler that reads item ``k`` at step ``k``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import Dataset, Sampler

from cir_monai.data.generative import synth_pair
from cir_monai.data.pairs import PairConfig, make_subject, pair_truth
from cir_monai.data.seeds import NOMINAL_LENGTH, TRAIN_SEED
from cir_monai.data.slices import axial_slice
from cir_monai.data.synthesis import SubjectConfig, SynthConfig

__all__ = ["RandomPairDataset", "SyntheticPairDataset", "FilePairDataset", "SlicePairDataset", "StepSampler"]


class RandomPairDataset(Dataset):
    """Pairs of random subjects of a labelled template, for training.

    A pool of ``pool_size`` subjects (:func:`~cir_monai.data.pairs.make_subject` with seeds
    ``seed + i``) is generated lazily and kept in memory; item ``k`` pairs two distinct pool
    subjects chosen by a generator seeded with ``seed + k``. So the pair seen at iteration ``k``
    is the same after a resume, on any machine, with any number of workers.

    Args:
        image: template ``(1, 1, *S)`` in [0, 1].
        label: template labels ``(1, 1, *S)`` or ``None``.
        pool_size: number of distinct subjects (``pool_size·(pool_size−1)`` ordered pairs).
        config: deformation and intensity settings: a :class:`~cir_monai.data.pairs.PairConfig` (one smooth
            velocity scale, the shipped model's training) or a :class:`~cir_monai.data.synthesis.SubjectConfig`
            (several scales, voxels of the template's grid; :func:`cir_monai.workflows.embedded_training_dataset`'s
            ``subject``).
        seed: first seed (disjoint from the validation and test seeds).
        length: nominal length (items are generated on demand).
        with_truth: also give each pair's true field (:func:`~cir_monai.data.pairs.pair_truth`), for the
            supervised term of :class:`~cir_monai.losses.CLapIRNLoss` (``field_weight``).

    Items: ``{"fixed", "moving"[, "fixed_label", "moving_label"]}``, each ``(1, *S)``; with ``with_truth``, also
    ``"ddf_truth"`` ``(n, *S)`` voxels (``moving(x + ddf_truth(x)) ≈ fixed(x)``).
    """

    #: items are made on demand, there is no epoch (the trainer trains for ``iterations`` whatever ``max_epochs``)
    generated = True

    def __init__(
        self,
        image: torch.Tensor,
        label: torch.Tensor | None = None,
        pool_size: int = 16,
        config: PairConfig | SubjectConfig = PairConfig(),
        seed: int = TRAIN_SEED,
        length: int = NOMINAL_LENGTH,
        with_truth: bool = False,
    ) -> None:
        if pool_size < 2:
            raise ValueError(f"pool_size must be >= 2, got {pool_size}")
        self.image, self.label = image, label
        self.pool_size, self.config, self.seed, self.length = pool_size, config, int(seed), int(length)
        self.with_truth = bool(with_truth)
        self._pool: dict[int, dict] = {}

    def __len__(self) -> int:
        return self.length

    def subject(self, i: int) -> dict:
        if i not in self._pool:
            self._pool[i] = make_subject(self.image, self.label, self.seed + i, self.config, inverse=self.with_truth)
        return self._pool[i]

    def __getitem__(self, k: int) -> dict:
        gen = torch.Generator().manual_seed(self.seed + 7 * int(k) + 3)
        i, j = torch.randperm(self.pool_size, generator=gen)[:2].tolist()
        fixed, moving = self.subject(i), self.subject(j)
        item = {"fixed": fixed["image"][0], "moving": moving["image"][0]}
        if self.label is not None:
            item["fixed_label"], item["moving_label"] = fixed["label"][0], moving["label"][0]
        if self.with_truth:
            item["ddf_truth"] = pair_truth(fixed["ddf"], moving["inverse"])[0]
        return item


class FilePairDataset(Dataset):
    """Training pairs from files (users' data): item ``k`` is pair ``π(k)`` of a seeded shuffle, preprocessed.

    Args:
        pairs: file pairs (e.g. :func:`cir_monai.data.load_pairs`).
        preprocessing: a transform of a pair dict (e.g. :func:`cir_monai.transforms.registration_preprocessing`
            with a fixed ``spatial_size`` so that pairs batch).
        seed: shuffling seed; the order depends only on ``k`` and the seed.
        cache: keep preprocessed pairs in memory (small data sets).
    """

    def __init__(self, pairs, preprocessing, seed: int = TRAIN_SEED, cache: bool = True) -> None:
        if not pairs:
            raise ValueError("FilePairDataset needs at least one pair")
        self.pairs, self.preprocessing, self.seed, self.cache = list(pairs), preprocessing, int(seed), cache
        self._cached: dict[int, dict] = {}

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, k: int) -> dict:
        n = len(self.pairs)
        epoch, offset = divmod(int(k), n)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed + epoch)).tolist()
        index = order[offset]
        if index not in self._cached:
            data = self.preprocessing(dict(self.pairs[index]))
            item = {key: torch.as_tensor(v).float() for key, v in data.items()
                    if key in ("fixed", "moving", "fixed_label", "moving_label")}
            if not self.cache:
                return item
            self._cached[index] = item
        return self._cached[index]


class SyntheticPairDataset(Dataset):
    """Generated training pairs: item ``k`` is :func:`synth_pair` with seed ``seed + k``.

    Items: ``{"fixed", "moving", "fixed_label", "moving_label"}``, each ``(1, *S)`` (labels int64),
    so a resumed run, on any machine and with any number of workers, sees the same pairs.

    Args:
        template_image, template_label: the labelled template ``(1, 1, *S)``.
        config: generation settings.
        seed: first seed (training seeds; validation and test sets use disjoint ones).
        length: nominal length (items are generated on demand).
    """

    #: items are made on demand, there is no epoch (the trainer trains for ``iterations`` whatever ``max_epochs``)
    generated = True

    def __init__(
        self,
        template_image: torch.Tensor,
        template_label: torch.Tensor,
        config: SynthConfig = SynthConfig(),
        seed: int = 0,
        length: int = NOMINAL_LENGTH,
    ) -> None:
        self.image, self.label = template_image.float(), template_label.long()
        self.config, self.seed, self.length = config, int(seed), int(length)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        pair = synth_pair(self.seed + int(k), self.config, self.image, self.label)
        return {key: pair[key][0] for key in ("fixed", "moving", "fixed_label", "moving_label")}


class SlicePairDataset(Dataset):
    """Item ``k``: an axial slice of item ``k`` of a 3D pair data set, the index drawn from ``band`` by ``seed + k``.

    Item ``k`` is a fixed function of ``k`` when the 3D data set's is (exact resume, any worker count).

    Args:
        pairs: a 3D pair data set whose items are ``(1, X, Y, Z)`` tensors (``fixed``, ``moving``[, labels]).
        band: the axial indices to draw from (:func:`axial_band` of the template's labels).
        seed: seeds the draw of the index.
    """

    def __init__(self, pairs: Dataset, band: Sequence[int], seed: int = 0) -> None:
        if len(band) == 0:
            raise ValueError("SlicePairDataset needs at least one axial index in band")
        self.pairs, self.band, self.seed = pairs, [int(i) for i in band], int(seed)
        #: items are made on demand (no epoch) when the 3D data set's are
        self.generated = bool(getattr(pairs, "generated", False))

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, k: int) -> dict:
        gen = torch.Generator().manual_seed(self.seed + 11 * int(k) + 5)
        index = self.band[int(torch.randint(len(self.band), (1,), generator=gen))]
        return axial_slice(self.pairs[k], index)


class StepSampler(Sampler[int]):
    """The item indices of training steps ``start + 1, start + 2, …`` for this process, without end.

    Step ``k`` of process ``rank`` (of ``world``) reads items ``((k − 1)·world + rank)·batch_size + j``,
    ``j < batch_size``: every process its own items, and the items of a step depend only on ``k``, so a run resumed
    at step ``start`` (the trainer sets ``start`` from its checkpoint) reads what an uninterrupted run would. The
    process group is read when iteration starts (``torch.distributed``, initialised by then under ``torchrun``).

    Args:
        batch_size: the ``DataLoader``'s batch size (the indices of one step are consecutive).
        start: the last step already trained.
    """

    def __init__(self, batch_size: int = 1, start: int = 0) -> None:
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size, self.start = int(batch_size), int(start)

    def __iter__(self):
        from cir_monai.runtime import rank_and_world

        rank, world = rank_and_world()
        k = self.start + 1
        while True:
            first = ((k - 1) * world + rank) * self.batch_size
            yield from range(first, first + self.batch_size)
            k += 1
