# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Realistic inter-subject pairs with known truth, made from one labelled volume.

A *subject* (:func:`~cir_monai.data.synthesis.random_subject`, the recipe every synthetic set
shares) is the volume moved by its own random transformation
``φ(x) = A (x + u(x) − c) + c + t`` (a smooth diffeomorphism ``u`` from scaling
and squaring of a smoothed random velocity field, then a small random affine
about the centre ``c``), with intensity changes (smooth multiplicative bias
field, gamma, Gaussian noise; background stays exactly 0) and its label map
warped by nearest neighbour. A *pair* is two independent subjects, so the
registration between them is a composition of two random deformations, as
between two real brains that were affinely pre-aligned to a template.

Everything is seeded: ``make_pair(volume, label, seed)`` gives the same pair
on every machine.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from cir_monai.data.synthesis import PairConfig, SubjectConfig, random_subject
from cir_monai.data.synthetic import phantom
from cir_monai.networks.warp import Warp

__all__ = ["PairConfig", "make_subject", "pair_truth", "make_pair", "synthetic_pair"]


def make_subject(
    image: torch.Tensor, label: torch.Tensor | None, seed: int, config: PairConfig | SubjectConfig = PairConfig(),
    inverse: bool = False,
) -> dict[str, torch.Tensor]:
    """One random subject from a template: :func:`~cir_monai.data.synthesis.random_subject` (arguments and returns
    as there) with ``config``'s settings on the image's grid (:meth:`PairConfig.subject`), or with a
    :class:`~cir_monai.data.synthesis.SubjectConfig` as it is (several velocity scales, voxels of the image's grid)."""
    settings = config if isinstance(config, SubjectConfig) else config.subject(image.shape[2:])
    return random_subject(image, label, seed, settings, inverse=inverse)


def pair_truth(fixed_ddf: torch.Tensor, moving_inverse: torch.Tensor) -> torch.Tensor:
    """The true field of a pair of subjects of one template, ``(B, n, *S)`` voxels.

    With ``fixed(x) = T(x + d_f(x))`` and ``moving(y) = T(y + d_m(y))``, the field ``u`` with
    ``moving(x + u(x)) = fixed(x)`` is ``u(x) = d_f(x) + d_m⁻¹(x + d_f(x))``.

    Args:
        fixed_ddf: ``d_f``, the fixed subject's ``ddf`` (:func:`make_subject`).
        moving_inverse: ``d_m⁻¹``, the moving subject's ``inverse``.
    """
    return fixed_ddf + Warp("bilinear", "border")(moving_inverse, fixed_ddf)


def make_pair(
    image: torch.Tensor, label: torch.Tensor | None, seed: int, config: PairConfig = PairConfig()
) -> dict[str, torch.Tensor]:
    """Two independent subjects: ``fixed``, ``moving`` and, with a label map, ``fixed_label``, ``moving_label``."""
    out = {}
    for offset, role in ((0, "fixed"), (1, "moving")):
        subject = make_subject(image, label, seed=2 * int(seed) + offset, config=config)
        out[role] = subject["image"]
        if label is not None:
            out[f"{role}_label"] = subject["label"]
    return out


def synthetic_pair(
    shape: Sequence[int] = (96, 112, 96), seed: int = 0, max_displacement: float = 4.0
) -> dict[str, torch.Tensor]:
    """A phantom pair: :func:`~cir_monai.data.synthetic.phantom` under two independent smooth deformations.

    :func:`make_pair` with deformation only (no affine, no intensity change), velocity smoothing
    of 1/8 of the largest side. Needs no files: the demo and the tests use it.

    Returns:
        ``fixed``, ``moving`` ``(1, 1, *shape)`` images and ``fixed_label``, ``moving_label`` label maps.
    """
    image, label = phantom(shape, seed)
    config = PairConfig(max_displacement=max_displacement, smoothness=1 / 8, rotation_deg=0.0, scale=0.0,
                        translation=0.0, bias=0.0, gamma=0.0, noise=0.0)
    return make_pair(image, label, seed, config)
