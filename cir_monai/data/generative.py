# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Generative training pairs with anatomical variability, in the spirit of SynthMorph.

Hoffmann et al., "SynthMorph: learning contrast-invariant registration without acquired
images", IEEE TMI 2022: train on pairs synthesised from label maps, with random
intensities per label, blur, bias field, gamma and noise, under independent random
deformations, so that the network must match shapes it has never seen instead of one
template under smooth warps. This module writes that idea for cir-monai (our own code):

* **label maps** from three sources (:data:`SOURCES`):

  - ``"template"``: the embedded MNI152 2009a template with its real T1 intensities (the
    earlier template pairs, kept as one source among several);
  - ``"template_synth"``: the template's tissue labels, each tissue split into random
    sub-regions by smoothed noise, turned into a new random-contrast image;
  - ``"random"``: a label map made from smoothed noise (argmax of ``num_labels`` noise
    channels, themselves warped), inside a random head-shaped mask.

* **deformations**: the subject recipe's (:func:`~cir_monai.data.synthesis.random_deformation` with
  :meth:`SynthConfig.subject`): a stationary velocity field summed over several scales, integrated by
  scaling and squaring and composed with a small random affine. Fixed and moving each get their own, so the
  pair differs by the composition of two.

* **images**: :func:`~cir_monai.data.synthesis.synthesize_image`: per-label intensities (shared by
  fixed and moving unless ``same_contrast`` is off), per-label noise, Gaussian blur, smooth
  multiplicative bias field, gamma, min-max normalisation; the background (label 0) is exactly 0
  (docs/method.md §4).

The random fields and intensity changes live in :mod:`cir_monai.data.synthesis`; this module
makes the label maps and assembles the pairs.

Everything is a pure function of a seed: :class:`SyntheticPairDataset` item ``k`` uses seed
``seed + k``, so training resumes exactly.

Shapes: label maps ``(1, 1, *S)`` int64, images ``(1, 1, *S)`` float32 in [0, 1], fields
``(1, n, *S)`` in voxels (MONAI convention).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from cir_monai.data.synthesis import (
    SynthConfig,
    coarse_noise,
    random_deformation,
    smooth_random_ddf,
    synthesize_image,
)
from cir_monai.networks.warp import Warp

__all__ = [
    "SOURCES",
    "SynthConfig",
    "random_label_map",
    "subdivide_labels",
    "perturb_labels",
    "synth_pair",
]

SOURCES = ("template", "template_synth", "random")


def random_label_map(shape: Sequence[int], config: SynthConfig, gen: torch.Generator) -> torch.Tensor:
    """A random label map: argmax of warped smooth noise channels, inside a random head-shaped mask.

    Returns ``(1, 1, *shape)`` int64 with 0 outside the mask and labels ``1..num_labels`` inside.
    """
    n = len(shape)
    scale = config.label_scale * (0.6 + 0.8 * float(torch.rand((), generator=gen)))
    channels = coarse_noise(shape, config.num_labels, scale, gen)
    warp = smooth_random_ddf(shape, (2 * scale,), (scale,), gen)
    channels = Warp("bilinear", "border")(channels, warp)
    labels = channels.argmax(1, keepdim=True) + 1
    axes = [torch.linspace(-1, 1, s) for s in shape]
    coords = torch.stack(torch.meshgrid(*axes, indexing="ij"))
    radii = (0.7 + 0.2 * torch.rand(n, generator=gen)).view(n, *([1] * n))
    radius = (coords / radii).pow(2).sum(0).sqrt()
    wobble = coarse_noise(shape, 1, max(shape) / 4, gen)[0, 0]
    mask = radius < 1.0 + 0.1 * wobble / wobble.abs().amax().clamp_min(1e-6)
    return torch.where(mask[None, None], labels, torch.zeros_like(labels))


def subdivide_labels(label: torch.Tensor, config: SynthConfig, gen: torch.Generator) -> torch.Tensor:
    """Split each foreground label into 1..``subdivide`` random sub-regions (argmax of smooth noise).

    Sub-labels are numbered consecutively from 1; background stays 0. ``(1, 1, *S)`` int64.
    """
    shape = label.shape[2:]
    out = torch.zeros_like(label, dtype=torch.int64)
    next_label = 1
    for value in torch.unique(label).tolist():
        if value == 0:
            continue
        parts = int(torch.randint(1, config.subdivide + 1, (), generator=gen))
        inside = label == value
        if parts == 1:
            part = torch.zeros_like(out)
        else:
            part = coarse_noise(shape, parts, config.label_scale, gen).argmax(1, keepdim=True)
        out = torch.where(inside, next_label + part, out)
        next_label += parts
    return out


def perturb_labels(label: torch.Tensor, config: SynthConfig, gen: torch.Generator) -> torch.Tensor:
    """One subject's own version of a label map: its boundaries moved irregularly (see ``SynthConfig.variability``).

    ``argmax(smooth(one_hot(label)) + variability · noise)``, the smoothing by 2-voxel block means
    upsampled back (about a 1-voxel Gaussian, at a fraction of its cost): near a boundary, where the smoothed
    one-hot values of two labels are close, the noise decides, so boundaries shift by a few
    voxels in a pattern that differs between subjects. ``(1, 1, *S)`` int64, same label values.
    """
    if config.variability <= 0:
        return label
    from monai.networks import one_hot

    classes = int(label.max()) + 1
    soft = one_hot(label, classes, dim=1).float()
    n = label.ndim - 2
    pool = F.avg_pool3d if n == 3 else F.avg_pool2d
    mode = "trilinear" if n == 3 else "bilinear"
    # smoothing as 2×2×2 block means upsampled back (about a Gaussian of σ 1 voxel; 10× cheaper than a filter)
    soft = F.interpolate(pool(soft, kernel_size=2, stride=2, ceil_mode=True), size=tuple(label.shape[2:]), mode=mode,
                         align_corners=False)
    noise = coarse_noise(label.shape[2:], classes, config.variability_scale, gen)
    return (soft + config.variability * noise / noise.abs().amax().clamp_min(1e-6)).argmax(1, keepdim=True)


def synth_pair(
    seed: int,
    config: SynthConfig = SynthConfig(),
    template_image: torch.Tensor | None = None,
    template_label: torch.Tensor | None = None,
    shape: Sequence[int] | None = None,
    source: str | None = None,
) -> dict[str, torch.Tensor | str]:
    """One generated pair, a pure function of ``seed``.

    Args:
        seed: random seed.
        config: generation settings.
        template_image, template_label: the labelled template ``(1, 1, *S)`` (needed by the
            template sources).
        shape: grid of random label maps when there is no template.
        source: one of :data:`SOURCES`; drawn with ``config.source_weights`` when ``None``.

    Returns:
        ``fixed``, ``moving`` ``(1, 1, *S)`` float32; ``fixed_label``, ``moving_label`` ``(1, 1, *S)``
        int64 (the labels the images were made from, warped by nearest neighbour; for the
        ``"template"`` source, the tissue labels); ``source``.
    """
    gen = torch.Generator().manual_seed(int(seed))
    if source is None:
        weights = torch.tensor(config.source_weights, dtype=torch.float64)
        if template_label is None:
            weights[:2] = 0
        source = SOURCES[int(torch.multinomial(weights / weights.sum(), 1, generator=gen))]
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    if source != "random" and (template_image is None or template_label is None):
        raise ValueError(f"source {source!r} needs template_image and template_label")
    if source == "random":
        if shape is None:
            shape = template_label.shape[2:] if template_label is not None else None
        if shape is None:
            raise ValueError("random label maps need a shape (or a template to take it from)")
        label = random_label_map(tuple(shape), config, gen)
    elif source == "template_synth":
        label = subdivide_labels(template_label.long(), config, gen)
    else:
        label = template_label.long()
    shape = tuple(label.shape[2:])
    means = torch.rand(int(label.max()) + 1, generator=gen) * 0.9 + 0.1 if config.same_contrast else None
    out: dict[str, torch.Tensor | str] = {"source": source}
    subject = config.subject()
    for role in ("fixed", "moving"):
        ddf, _ = random_deformation(shape, subject, gen)
        own = label if source == "template" else perturb_labels(label, config, gen)
        warped_label = Warp("nearest", "zeros")(own.float(), ddf).round().long()
        base = Warp("bilinear", "zeros")(template_image.float(), ddf) if source == "template" else None
        out[role] = synthesize_image(warped_label, gen, config, means=means, base=base)
        out[f"{role}_label"] = warped_label
    return out
