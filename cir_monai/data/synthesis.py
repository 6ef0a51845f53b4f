# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Random deformations and intensity changes: the one home of the synthetic data's randomness.

The generator (:mod:`cir_monai.data.generative`), the embedded and phantom pairs
(:mod:`cir_monai.data.pairs`) and the held-out set (:mod:`cir_monai.data.heldout`) all build their
subjects from these pieces:

* **smooth random fields**: :func:`smooth_noise` (white noise under a Gaussian filter) and
  :func:`coarse_noise` (white noise on a coarser grid, upsampled: cheaper for long scales);
* **diffeomorphisms**: a stationary velocity field (:func:`multiscale_svf`, or one smoothed
  noise field in :func:`random_diffeomorphic_ddf`) integrated by scaling and squaring
  (:func:`integrate_svf`, MONAI's :class:`~monai.networks.blocks.DVF2DDF`), optionally on a coarser
  grid (:func:`smooth_random_ddf`), and a small random affine (:func:`random_affine_ddf`);
* **intensity changes of a real image**: gamma, a smooth multiplicative bias field and noise with
  the background kept exactly 0 (:func:`degrade`);
* **images of label maps**: random contrast per label with blur, bias, noise and gamma
  (:func:`synthesize_image`).

Everything draws from an explicit :class:`torch.Generator`, so each data set is a pure function of
its seeds. MONAI's random intensity transforms (``RandBiasField``, ``RandAdjustContrast``,
``RandGaussianNoise``, ``RandGaussianSmooth``) are not used here: they draw from a NumPy
``RandomState`` per transform instance, not from one generator passed along, and the bias field here is
a smooth noise field rather than ``RandBiasField``'s low-order polynomial. Adopting them would
change every generated and held-out data set (and every number measured on them) for no gain in
realism, so the hand-written versions stay, each a few lines.

Shapes: fields ``(1, n, *S)`` in voxels (MONAI's DDF convention, ``warped(x) = image(x + ddf(x))``),
images ``(1, 1, *S)`` float32.
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
from monai.networks.layers.convutils import gaussian_1d

__all__ = [
    "PairConfig",
    "SynthConfig",
    "smooth_noise",
    "gaussian_smooth",
    "coarse_noise",
    "multiscale_svf",
    "integrate_svf",
    "smooth_random_ddf",
    "random_diffeomorphic_ddf",
    "random_velocity",
    "affine_ddf",
    "uniform",
    "rotation_matrix",
    "random_affine",
    "random_affine_ddf",
    "degrade",
    "synthesize_image",
]


@dataclass(frozen=True)
class PairConfig:
    """How different two subjects are.

    Attributes:
        max_displacement: largest velocity component of the deformation, in voxels.
        smoothness: Gaussian sigma of the velocity field, as a fraction of the largest image side.
        rotation_deg: largest rotation about each axis, degrees.
        scale: largest relative scaling per axis.
        translation: largest translation per axis, voxels.
        bias: strength of the multiplicative bias field (its log amplitude).
        gamma: spread of the gamma exponent (its log is uniform in ±gamma).
        noise: standard deviation of the Gaussian noise inside the brain.
    """

    max_displacement: float = 3.0
    smoothness: float = 0.1
    rotation_deg: float = 4.0
    scale: float = 0.04
    translation: float = 2.0
    bias: float = 0.15
    gamma: float = 0.15
    noise: float = 0.01


@dataclass(frozen=True)
class SynthConfig:
    """How pairs are generated (units: voxels of the working grid unless stated).

    Attributes:
        source_weights: probability of each of the generator's sources
            (:data:`cir_monai.data.generative.SOURCES`: template, template_synth, random; normalised).
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
            subject by :func:`cir_monai.data.generative.perturb_labels` (argmax of the smoothed one-hot map plus
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


def gaussian_smooth(x: torch.Tensor, sigma: float, truncated: float = 4.0) -> torch.Tensor:
    """MONAI's ``GaussianFilter(spatial_dims, sigma)`` (its ``gaussian_1d`` kernel, erf, truncated at 4 σ, zeros
    outside), applied as one banded-matrix product per spatial axis of ``x`` ``(B, C, *S)``.

    The same sums in another order (≤ 1e-6 of the range apart), without MONAI's working memory: its separable
    convolution pads every axis first and, on one CPU thread, PyTorch's 3D convolution unfolds the padded volume,
    5 GB for the bias field of an 80×96×80 subject (σ = 24 voxels), which killed a one-thread training run.
    """
    out = x
    kernel = gaussian_1d(torch.tensor(float(sigma)), truncated=truncated, approx="erf").to(x.dtype)
    radius = (kernel.numel() - 1) // 2
    for axis, length in enumerate(x.shape[2:]):
        index = torch.arange(length)
        offset = index[None, :] - index[:, None] + radius  # matrix[i, j] = kernel[j − i + r], 0 beyond the kernel
        inside = (offset >= 0) & (offset <= 2 * radius)
        matrix = torch.where(inside, kernel[offset.clamp(0, 2 * radius)], torch.zeros((), dtype=x.dtype))
        out = torch.movedim(torch.movedim(out, 2 + axis, -1) @ matrix.T.to(x.device), -1, 2 + axis)
    return out


def smooth_noise(
    shape: Sequence[int], channels: int, sigma: float, generator: torch.Generator, dtype=torch.float32
) -> torch.Tensor:
    """Gaussian-smoothed white noise, each channel scaled to max |value| = 1. Shape ``(1, channels, *shape)``."""
    noise = torch.randn((1, channels, *shape), generator=generator, dtype=dtype)
    smooth = gaussian_smooth(noise, sigma)
    return smooth / smooth.flatten(2).abs().amax(-1).clamp_min(1e-8).reshape(1, channels, *([1] * len(shape)))


def coarse_noise(shape: Sequence[int], channels: int, spacing: float, gen: torch.Generator) -> torch.Tensor:
    """White noise on a grid ``spacing`` times coarser, upsampled (trilinear, or bilinear in 2D) to ``shape``:
    ``(1, channels, *shape)``, values of order 1 (not rescaled)."""
    coarse = [max(2, int(math.ceil(s / spacing)) + 1) for s in shape]
    noise = torch.randn((1, channels, *coarse), generator=gen)
    mode = "trilinear" if len(shape) == 3 else "bilinear"
    return F.interpolate(noise, size=tuple(shape), mode=mode, align_corners=True)


def multiscale_svf(
    shape: Sequence[int], scales: Sequence[float], amplitudes: Sequence[float], gen: torch.Generator
) -> torch.Tensor:
    """A random stationary velocity field, the sum of smooth components at several scales.

    Component ``i`` is :func:`coarse_noise` over ``scales[i]`` voxels, scaled so its largest value is a random
    fraction (uniform in [0, 1)) of ``amplitudes[i]`` voxels. Returns ``(1, n, *shape)``.

    Raises:
        ValueError: ``scales`` and ``amplitudes`` differ in length.
    """
    if len(scales) != len(amplitudes):
        raise ValueError(f"svf_scales and svf_amplitudes differ in length: {len(scales)} vs {len(amplitudes)}")
    n = len(shape)
    velocity = torch.zeros((1, n, *shape))
    for spacing, amplitude in zip(scales, amplitudes):
        component = coarse_noise(shape, n, spacing, gen)
        component = component / component.abs().amax().clamp_min(1e-6)
        velocity += component * float(torch.rand((), generator=gen)) * amplitude
    return velocity


def integrate_svf(velocity: torch.Tensor, num_steps: int = 7) -> torch.Tensor:
    """Scaling and squaring of a velocity field ``(1, n, *S)`` in voxels (MONAI's ``DVF2DDF``): a diffeomorphic
    DDF ``(1, n, *S)`` in voxels.

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
    ``1 / factor`` resolution and upsampling the displacement (trilinear, values × ``factor``) changes
    little and costs ~``factor**n`` times less. The upsampled grid maps coarse voxel ``j`` to fine voxel
    ``j·(s−1)/(c−1)``, within ~1–2 % of ``factor``: the amplitude is random anyway, so training data keep
    the simple factor (the held-out set, whose fields are the truth, scales each axis exactly).
    """
    coarse = [max(2, int(math.ceil(s / factor))) for s in shape]
    velocity = multiscale_svf(coarse, [s / factor for s in scales], [a / factor for a in amplitudes], gen)
    ddf = integrate_svf(velocity)
    mode = "trilinear" if len(shape) == 3 else "bilinear"
    return F.interpolate(ddf, size=tuple(shape), mode=mode, align_corners=True) * factor


def random_diffeomorphic_ddf(
    shape: Sequence[int], max_displacement: float = 4.0, sigma: float = 8.0, seed: int = 0, num_steps: int = 7
) -> torch.Tensor:
    """A smooth, invertible random deformation (scaling and squaring of one smoothed velocity field).

    Args:
        shape: spatial size ``(D, H, W)`` or ``(H, W)``.
        max_displacement: largest velocity component in voxels (the displacement is of that order).
        sigma: Gaussian smoothing of the velocity field in voxels (larger = smoother).
        seed: random seed.
        num_steps: squaring steps of :func:`integrate_svf`.

    Returns:
        ``(1, n, *shape)`` DDF in voxels (MONAI convention) whose Jacobian determinant is positive.
    """
    return integrate_svf(random_velocity(shape, max_displacement, sigma, seed), num_steps)


def random_velocity(
    shape: Sequence[int], max_displacement: float = 4.0, sigma: float = 8.0, seed: int = 0
) -> torch.Tensor:
    """The stationary velocity field of :func:`random_diffeomorphic_ddf` (same arguments), ``(1, n, *shape)``
    voxels: ``integrate_svf(v)`` is that deformation and ``integrate_svf(-v)`` its inverse."""
    gen = torch.Generator().manual_seed(seed)
    return smooth_noise(shape, len(shape), sigma, gen) * max_displacement


def uniform(gen: torch.Generator, n: int, bound: float) -> torch.Tensor:
    """``n`` values uniform in ``[-bound, bound)``, float64."""
    return (torch.rand(n, generator=gen, dtype=torch.float64) * 2 - 1) * bound


def rotation_matrix(angles: torch.Tensor) -> torch.Tensor:
    """The rotation by ``angles`` (radians): one angle in 2D, three (about axes 0, 1, 2, applied in that order)
    in 3D. ``(n, n)`` float64."""
    if angles.numel() == 1:  # 2D
        c, s = math.cos(angles[0]), math.sin(angles[0])
        return torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    rot = torch.eye(3, dtype=torch.float64)
    for axis, angle in enumerate(angles.tolist()):
        i, j = [a for a in range(3) if a != axis]
        r = torch.eye(3, dtype=torch.float64)
        r[i, i], r[i, j], r[j, i], r[j, j] = math.cos(angle), -math.sin(angle), math.sin(angle), math.cos(angle)
        rot = r @ rot
    return rot


def random_affine(config: PairConfig, gen: torch.Generator, spatial_dims: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """A small random affine: rotation up to ``config.rotation_deg`` about each axis, scaling up to ``config.scale``
    per axis, translation up to ``config.translation`` voxels per axis.

    Returns:
        ``A`` ``(n, n)`` and ``t`` ``(n,)``, float64, of ``x ↦ A (x − c) + c + t`` about the grid centre ``c``
        (:func:`affine_ddf` turns them into a field).
    """
    n = int(spatial_dims)
    angles = uniform(gen, 1 if n == 2 else 3, math.radians(config.rotation_deg))
    matrix = rotation_matrix(angles) @ torch.diag(1.0 + uniform(gen, n, config.scale))
    return matrix, uniform(gen, n, config.translation)


def random_affine_ddf(
    shape: Sequence[int], config: PairConfig, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`random_affine` as a matrix and a voxel DDF.

    Returns:
        ``A`` ``(n, n)`` float64 and the DDF ``(1, n, *shape)`` float32 of ``x ↦ A (x − c) + c + t``
        (:func:`affine_ddf`).
    """
    matrix, shift = random_affine(config, gen, len(shape))
    return matrix, affine_ddf(shape, matrix, shift)


def affine_ddf(shape: Sequence[int], matrix: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """The voxel DDF ``(1, n, *shape)`` float32 of ``x ↦ A (x − c) + c + t`` about the grid centre ``c``
    (``matrix`` ``A`` ``(n, n)``, ``shift`` ``t`` ``(n,)``; float64 arithmetic)."""
    n = len(shape)
    matrix, shift = torch.as_tensor(matrix, dtype=torch.float64), torch.as_tensor(shift, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(*[torch.arange(s, dtype=torch.float64) for s in shape], indexing="ij"))
    centre = torch.tensor([(s - 1) / 2 for s in shape], dtype=torch.float64).view(n, *([1] * n))
    moved = torch.einsum("ij,j...->i...", matrix, grid - centre) + centre + shift.view(n, *([1] * n))
    return (moved - grid)[None].float()


def degrade(
    image: torch.Tensor, gamma: float, log_bias: torch.Tensor, noise: float, gen: torch.Generator
) -> torch.Tensor:
    """A real image's intensity changes: ``clamp(image, 0, 1)**gamma · exp(log_bias) + noise · N(0, 1)``.

    The background (``image ≤ 1e-3``) is set to exactly 0 and negative values to 0 (docs/method.md §4); the
    result is divided by its maximum.

    Args:
        image: ``(1, 1, *S)`` in [0, 1].
        gamma: the exponent.
        log_bias: a smooth field broadcastable to ``image`` (the log of the multiplicative bias).
        noise: standard deviation of the additive Gaussian noise.
        gen: draws the noise.

    Returns:
        ``(1, 1, *S)`` in [0, 1].
    """
    noisy = image.clamp(0, 1).pow(gamma) * torch.exp(log_bias) + noise * torch.randn(image.shape, generator=gen)
    noisy = torch.where(image > 1e-3, noisy.clamp_min(0), torch.zeros_like(noisy))
    return noisy / noisy.max().clamp_min(1e-6)


def synthesize_image(
    label: torch.Tensor, gen: torch.Generator, config: SynthConfig, means: torch.Tensor | None = None,
    base: torch.Tensor | None = None,
) -> torch.Tensor:
    """An image of a label map with random contrast and artefacts; background exactly 0.

    Per-label intensity and noise, a Gaussian blur of random sigma up to ``config.blur``, a smooth
    multiplicative bias field up to ``config.bias`` (log-amplitude), noise up to ``config.noise``, division by
    the maximum, and a gamma with ``log γ`` uniform in ``±config.gamma``.

    Args:
        label: ``(1, 1, *S)`` int64.
        gen: random generator.
        config: intensity settings (a :class:`SynthConfig`).
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
    bias = coarse_noise(shape, 1, max(shape) / 3, gen)
    image = image.clamp_min(0) * torch.exp(config.bias * float(torch.rand((), generator=gen)) * bias)
    image = image + config.noise * float(torch.rand((), generator=gen)) * torch.randn(label.shape, generator=gen)
    image = torch.where(foreground, image.clamp_min(0), torch.zeros_like(image))
    image = image / image.amax().clamp_min(1e-6)
    gamma = math.exp(config.gamma * (2 * float(torch.rand((), generator=gen)) - 1))
    return image.pow(gamma).float()
