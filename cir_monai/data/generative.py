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

* **deformations**: a stationary velocity field summed over several scales (coarse noise
  upsampled, random amplitude per scale), integrated by scaling and squaring (MONAI's
  :class:`~monai.networks.blocks.DVF2DDF`), composed with a small random affine. Fixed and
  moving each get their own, so the pair differs by the composition of two.
  :func:`multiscale_svf` exposes the velocity, whose negation integrates to the inverse.

* **images**: per-label intensities (shared by fixed and moving unless ``same_contrast`` is
  off), per-label noise, Gaussian blur, smooth multiplicative bias field, gamma, min-max
  normalisation; the background (label 0) is exactly 0 (docs/method.md §4).

Everything is a pure function of a seed: :class:`SyntheticPairDataset` item ``k`` uses seed
``seed + k``, so training resumes exactly.

Shapes: label maps ``(1, 1, *S)`` int64, images ``(1, 1, *S)`` float32 in [0, 1], fields
``(1, n, *S)`` in voxels (MONAI convention).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from monai.networks.blocks import DVF2DDF
from monai.networks.layers import GaussianFilter
from torch.utils.data import Dataset

from cir_monai.data.pairs import PairConfig, random_affine_ddf
from cir_monai.data.training import NOMINAL_LENGTH
from cir_monai.networks.warp import Warp

__all__ = [
    "SOURCES",
    "SynthConfig",
    "multiscale_svf",
    "integrate_svf",
    "smooth_random_ddf",
    "random_label_map",
    "subdivide_labels",
    "perturb_labels",
    "synthesize_image",
    "synth_pair",
    "SyntheticPairDataset",
]

SOURCES = ("template", "template_synth", "random")


@dataclass(frozen=True)
class SynthConfig:
    """How pairs are generated (units: voxels of the working grid unless stated).

    Attributes:
        source_weights: probability of each of :data:`SOURCES` (normalised).
        num_labels: classes of a random label map (background excluded).
        label_scale: spacing of the noise that shapes random labels (larger = bigger regions).
        subdivide: each template tissue is split into 1..``subdivide`` random sub-regions.
        svf_scales: control spacing of each velocity component, coarse to fine.
        svf_amplitudes: largest velocity coordinate (voxels; the vector norm can be up to √n times
            larger) of each component; the amplitude of each is
            drawn uniformly in ``[0, max]`` per subject, so some pairs are nearly aligned and
            others hard.
        affine: rotation / scale / translation of the random affine (a :class:`PairConfig`).
        same_contrast: fixed and moving share per-label intensities (needed for NCC); ``False``
            gives each its own contrast (for a label-driven loss).
        blur: largest Gaussian blur sigma.
        bias: largest log-amplitude of the bias field.
        gamma: spread of ``log γ``.
        noise: largest noise standard deviation (fraction of the intensity range).
        variability: each subject's own anatomy (0 = off): label boundaries moved irregularly per
            subject by :func:`perturb_labels` (argmax of the smoothed one-hot map plus
            ``variability`` × noise varying over ``variability_scale`` voxels), so no smooth field matches fixed
            and moving exactly and λ has a real trade-off
            to learn; not applied to the ``"template"`` source, whose image is the real T1.
    """

    source_weights: tuple[float, float, float] = (0.3, 0.35, 0.35)
    num_labels: int = 12
    label_scale: float = 10.0
    subdivide: int = 4
    svf_scales: tuple[float, ...] = (32.0, 16.0, 8.0)
    svf_amplitudes: tuple[float, ...] = (4.0, 3.0, 1.5)
    affine: PairConfig = field(default_factory=lambda: PairConfig(rotation_deg=5.0, scale=0.05, translation=3.0))
    same_contrast: bool = True
    blur: float = 1.0
    bias: float = 0.3
    gamma: float = 0.25
    noise: float = 0.05
    variability: float = 0.0
    variability_scale: float = 4.0


def _coarse_noise(shape: Sequence[int], channels: int, spacing: float, gen: torch.Generator) -> torch.Tensor:
    """White noise on a grid ``spacing`` times coarser, upsampled (trilinear) to ``shape``:
    ``(1, channels, *shape)``."""
    coarse = [max(2, int(math.ceil(s / spacing)) + 1) for s in shape]
    noise = torch.randn((1, channels, *coarse), generator=gen)
    mode = "trilinear" if len(shape) == 3 else "bilinear"
    return F.interpolate(noise, size=tuple(shape), mode=mode, align_corners=True)


def multiscale_svf(
    shape: Sequence[int], scales: Sequence[float], amplitudes: Sequence[float], gen: torch.Generator
) -> torch.Tensor:
    """A random stationary velocity field, the sum of smooth components at several scales.

    Component ``i`` is noise on a grid ``scales[i]`` times coarser, upsampled, scaled so its
    largest value is a random fraction of ``amplitudes[i]`` voxels. Returns ``(1, n, *shape)``.
    """
    if len(scales) != len(amplitudes):
        raise ValueError(f"svf_scales and svf_amplitudes differ in length: {len(scales)} vs {len(amplitudes)}")
    n = len(shape)
    velocity = torch.zeros((1, n, *shape))
    for spacing, amplitude in zip(scales, amplitudes):
        component = _coarse_noise(shape, n, spacing, gen)
        component = component / component.abs().amax().clamp_min(1e-6)
        velocity += component * float(torch.rand((), generator=gen)) * amplitude
    return velocity


def integrate_svf(velocity: torch.Tensor, num_steps: int = 7) -> torch.Tensor:
    """Scaling and squaring of a velocity field (MONAI's ``DVF2DDF``): a diffeomorphic DDF in voxels.

    ``integrate_svf(-v)`` is the inverse of ``integrate_svf(v)`` up to the integration error.
    """
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI notes that it uses torch's grid_sample
        return DVF2DDF(num_steps=num_steps, mode="bilinear", padding_mode="border")(velocity)


def smooth_random_ddf(
    shape: Sequence[int], scales: Sequence[float], amplitudes: Sequence[float], gen: torch.Generator, factor: int = 2
) -> torch.Tensor:
    """A random diffeomorphic DDF ``(1, n, *shape)`` in voxels, integrated on a grid ``factor`` times coarser.

    The velocity's finest component varies over ``min(scales)`` voxels, so integrating it at
    half resolution and upsampling the displacement (trilinear, values × ``factor``) changes
    little and costs ~``factor**n`` times less (the generator's main cost). The upsampled grid
    maps coarse voxel ``j`` to fine voxel ``j·(s−1)/(c−1)``, within ~1–2 % of ``factor``: the
    amplitude is random anyway, so training data keep the simple factor (the held-out set, whose
    fields are the truth, scales each axis exactly).
    """
    coarse = [max(2, int(math.ceil(s / factor))) for s in shape]
    velocity = multiscale_svf(coarse, [s / factor for s in scales], [a / factor for a in amplitudes], gen)
    ddf = integrate_svf(velocity)
    mode = "trilinear" if len(shape) == 3 else "bilinear"
    return F.interpolate(ddf, size=tuple(shape), mode=mode, align_corners=True) * factor


def random_label_map(shape: Sequence[int], config: SynthConfig, gen: torch.Generator) -> torch.Tensor:
    """A random label map: argmax of warped smooth noise channels, inside a random head-shaped mask.

    Returns ``(1, 1, *shape)`` int64 with 0 outside the mask and labels ``1..num_labels`` inside.
    """
    n = len(shape)
    scale = config.label_scale * (0.6 + 0.8 * float(torch.rand((), generator=gen)))
    channels = _coarse_noise(shape, config.num_labels, scale, gen)
    warp = smooth_random_ddf(shape, (2 * scale,), (scale,), gen)
    channels = Warp("bilinear", "border")(channels, warp)
    labels = channels.argmax(1, keepdim=True) + 1
    axes = [torch.linspace(-1, 1, s) for s in shape]
    coords = torch.stack(torch.meshgrid(*axes, indexing="ij"))
    radii = (0.7 + 0.2 * torch.rand(n, generator=gen)).view(n, *([1] * n))
    radius = (coords / radii).pow(2).sum(0).sqrt()
    wobble = _coarse_noise(shape, 1, max(shape) / 4, gen)[0, 0]
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
            part = _coarse_noise(shape, parts, config.label_scale, gen).argmax(1, keepdim=True)
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
    noise = _coarse_noise(label.shape[2:], classes, config.variability_scale, gen)
    return (soft + config.variability * noise / noise.abs().amax().clamp_min(1e-6)).argmax(1, keepdim=True)


def synthesize_image(
    label: torch.Tensor, gen: torch.Generator, config: SynthConfig, means: torch.Tensor | None = None,
    base: torch.Tensor | None = None,
) -> torch.Tensor:
    """An image of a label map with random contrast and artefacts; background exactly 0.

    Args:
        label: ``(1, 1, *S)`` int64.
        gen: random generator.
        config: intensity settings.
        means: per-label intensity (index = label); drawn when ``None``.
        base: a real image ``(1, 1, *S)`` to use instead of per-label intensities (the
            ``"template"`` source); artefacts are applied to it.

    Returns:
        ``(1, 1, *S)`` float32 in [0, 1].
    """
    shape = label.shape[2:]
    foreground = label > 0
    if base is None:
        if means is None:
            means = torch.rand(int(label.max()) + 1, generator=gen) * 0.9 + 0.1
        sigma = torch.rand(means.shape, generator=gen) * config.noise
        image = means[label] + sigma[label] * torch.randn(label.shape, generator=gen)
    else:
        image = base.clone()
    blur = float(torch.rand((), generator=gen)) * config.blur
    if blur > 0.1:
        image = GaussianFilter(len(shape), sigma=blur)(image)
    bias = _coarse_noise(shape, 1, max(shape) / 3, gen)
    image = image.clamp_min(0) * torch.exp(config.bias * float(torch.rand((), generator=gen)) * bias)
    image = image + config.noise * float(torch.rand((), generator=gen)) * torch.randn(label.shape, generator=gen)
    image = torch.where(foreground, image.clamp_min(0), torch.zeros_like(image))
    image = image / image.amax().clamp_min(1e-6)
    gamma = math.exp(config.gamma * (2 * float(torch.rand((), generator=gen)) - 1))
    return image.pow(gamma).float()


def _subject_ddf(shape: Sequence[int], config: SynthConfig, gen: torch.Generator) -> torch.Tensor:
    deform = smooth_random_ddf(shape, config.svf_scales, config.svf_amplitudes, gen)
    matrix, affine_ddf = random_affine_ddf(shape, config.affine, gen)
    return affine_ddf + torch.einsum("ij,bj...->bi...", matrix.float(), deform)


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
    for role in ("fixed", "moving"):
        ddf = _subject_ddf(shape, config, gen)
        own = label if source == "template" else perturb_labels(label, config, gen)
        warped_label = Warp("nearest", "zeros")(own.float(), ddf).round().long()
        base = Warp("bilinear", "zeros")(template_image.float(), ddf) if source == "template" else None
        out[role] = synthesize_image(warped_label, gen, config, means=means, base=base)
        out[f"{role}_label"] = warped_label
    return out


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
