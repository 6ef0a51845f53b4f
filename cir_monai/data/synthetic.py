# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""A seeded, labelled brain-like phantom (its random fields come from :mod:`cir_monai.data.synthesis`).

The phantom is not anatomy: it is a head-shaped ellipsoid with a white-matter
core, a grey-matter ribbon, a CSF rim and two ventricles, with boundaries made
irregular by smooth noise, T1-like intensities in [0, 1] and background exactly
0. It gives the library a labelled volume with known truth that needs no files
(:func:`cir_monai.data.pairs.synthetic_pair` makes pairs of it).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from cir_monai.data.synthesis import smooth_noise

__all__ = ["phantom"]

#: phantom labels -> T1-like intensity
PHANTOM_TISSUES = {0: 0.0, 1: 0.25, 2: 0.6, 3: 0.9}  # background, CSF, grey matter, white matter


def phantom(shape: Sequence[int] = (96, 112, 96), seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A labelled brain-like phantom.

    Args:
        shape: spatial size (3D or 2D).
        seed: varies the irregular tissue boundaries.

    Returns:
        image ``(1, 1, *shape)`` float32 in [0, 1] (background 0) and label map
        ``(1, 1, *shape)`` with 0 background, 1 CSF, 2 grey matter, 3 white matter.
    """
    n = len(shape)
    gen = torch.Generator().manual_seed(seed)
    axes = [torch.linspace(-1, 1, s) for s in shape]
    coords = torch.stack(torch.meshgrid(*axes, indexing="ij"))  # (n, *shape)
    radii = torch.tensor([0.82, 0.9, 0.78][:n]).view(n, *([1] * n))
    r = (coords / radii).pow(2).sum(0).sqrt()
    wobble = smooth_noise(shape, 2, sigma=max(shape) / 10, generator=gen)[0]
    label = torch.zeros(shape, dtype=torch.int64)
    label[r < 0.95 + 0.03 * wobble[0]] = 1
    label[r < 0.85 + 0.04 * wobble[0]] = 2
    label[r < 0.6 + 0.1 * wobble[1]] = 3
    for side in (-1.0, 1.0):  # ventricles
        centre = torch.tensor([0.0, side * 0.12, 0.05][:n]).view(n, *([1] * n))
        size = torch.tensor([0.28, 0.07, 0.2][:n]).view(n, *([1] * n))
        label[((coords - centre) / size).pow(2).sum(0) < 1.0] = 1
    image = torch.zeros(shape)
    for value, intensity in PHANTOM_TISSUES.items():
        image[label == value] = intensity
    texture = smooth_noise(shape, 1, sigma=2.0, generator=gen)[0, 0]
    image = torch.where(label > 0, (image + 0.04 * texture).clamp(0.05, 1.0), torch.zeros_like(image))
    return image[None, None], label[None, None]
