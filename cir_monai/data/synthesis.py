# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Random deformations and intensity changes: the one home of the synthetic data's randomness.

**One subject recipe** (:func:`random_subject`, settings in :class:`SubjectConfig`): a template moved by a
random diffeomorphism composed with a small random affine (:func:`random_deformation`), with a bias field,
gamma and noise (:func:`random_intensity`). The embedded and phantom pairs (:mod:`cir_monai.data.pairs`), the
held-out groups (:mod:`cir_monai.data.heldout`) and the generator's deformations
(:mod:`cir_monai.data.generative`) are settings of it, not recipes of their own. The pieces:

* **smooth random fields**: :func:`smooth_noise` (white noise under a Gaussian filter) and
  :func:`coarse_noise` (white noise on a coarser grid, upsampled: cheaper for long scales);
* **diffeomorphisms**: a stationary velocity field (Gaussian-smoothed noise at one or several scales,
  :func:`random_deformation`; or coarse noise, :func:`multiscale_svf`, for the generator's label shapes)
  integrated by scaling and squaring (:func:`integrate_svf`, MONAI's :class:`~monai.networks.blocks.DVF2DDF`),
  optionally on a coarser grid, and a small random affine (:func:`random_affine`);
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

from cir_monai.networks.warp import Warp

__all__ = [
    "PairConfig",
    "SubjectConfig",
    "SynthConfig",
    "random_deformation",
    "random_intensity",
    "random_subject",
    "smooth_noise",
    "gaussian_smooth",
    "coarse_noise",
    "multiscale_svf",
    "integrate_svf",
    "smooth_random_ddf",
    "random_diffeomorphic_ddf",
    "affine_ddf",
    "uniform",
    "rotation_matrix",
    "random_affine",
    "random_affine_ddf",
    "degrade",
    "synthesize_image",
]


#: a velocity component said to vary over ``s`` voxels is Gaussian noise of sigma ``s / SCALE_PER_SIGMA``: as rough
#: as noise on knots ``s`` apart, linearly interpolated (:func:`coarse_noise`; the spread of the differences between
#: neighbours, relative to the field's, matched within 4 % at s = 8 and 16, measured)
SCALE_PER_SIGMA = 2.5


@dataclass(frozen=True)
class SubjectConfig:
    """How one subject is made from a template (:func:`random_subject`); plain numbers, voxels of the subject's grid.

    The deformation is ``φ(x) = A (x + u(x) − c) + c + t``: ``u`` the scaling and squaring of a stationary velocity
    field, the sum of Gaussian-smoothed noise components, and a random affine ``A``, ``t`` about the grid centre ``c``.

    Attributes:
        velocity_sigmas: Gaussian sigma of each velocity component, voxels (coarse to fine).
        velocity_amplitudes: largest value of each component, voxels (each channel scaled to it).
        random_amplitudes: scale each component by a uniform draw in [0, 1), so that a set holds nearly aligned
            and hard subjects; ``False``: every subject at the full amplitude.
        integration_factor: the velocity is drawn and integrated on a grid this many times coarser and the field
            upsampled, scaled exactly per axis (``(s − 1) / (c − 1)``); 1 = on the subject's grid. A component
            whose sigma is several coarse voxels loses nothing, at ``factor**n`` less cost.
        rotation_deg, scale, translation: the affine's largest rotation about each axis (degrees), relative
            scaling per axis and translation per axis (voxels); 0 = none.
        bias: log-amplitude of the multiplicative bias field (Gaussian-smoothed noise).
        bias_sigma: the bias field's sigma, as a fraction of the largest side.
        gamma: spread of the gamma exponent (``log γ`` uniform in ``±gamma``).
        noise: standard deviation of the Gaussian noise inside the brain (fraction of the range).
    """

    velocity_sigmas: tuple[float, ...] = (9.6,)
    velocity_amplitudes: tuple[float, ...] = (3.0,)
    random_amplitudes: bool = False
    integration_factor: int = 1
    rotation_deg: float = 4.0
    scale: float = 0.04
    translation: float = 2.0
    bias: float = 0.15
    bias_sigma: float = 0.25
    gamma: float = 0.15
    noise: float = 0.01


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

    def subject(self, shape: Sequence[int]) -> SubjectConfig:
        """These settings as the subject recipe's, on a grid of ``shape``: one velocity component of sigma
        ``smoothness × max(shape)`` at ``max_displacement``, integrated on the grid itself."""
        return SubjectConfig(
            velocity_sigmas=(self.smoothness * max(shape),), velocity_amplitudes=(self.max_displacement,),
            rotation_deg=self.rotation_deg, scale=self.scale, translation=self.translation, bias=self.bias,
            gamma=self.gamma, noise=self.noise,
        )


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

    def subject(self) -> SubjectConfig:
        """The deformation settings as the subject recipe's: a component over ``s`` voxels is Gaussian noise of
        sigma ``s / SCALE_PER_SIGMA``, each at a random fraction of its amplitude, integrated at half resolution,
        with ``affine``'s rotation, scaling and translation (the intensities are :func:`synthesize_image`'s)."""
        return SubjectConfig(
            velocity_sigmas=tuple(s / SCALE_PER_SIGMA for s in self.svf_scales),
            velocity_amplitudes=tuple(self.svf_amplitudes), random_amplitudes=True, integration_factor=2,
            rotation_deg=self.affine.rotation_deg, scale=self.affine.scale, translation=self.affine.translation,
        )


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
    ``j·(s−1)/(c−1)``, within ~1–2 % of ``factor``: the amplitude is random anyway, so the generator's label
    shapes (its one user) keep the simple factor (:func:`random_deformation`, whose fields can be the truth, scales
    each axis exactly).
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
    velocity = smooth_noise(shape, len(shape), sigma, torch.Generator().manual_seed(seed)) * max_displacement
    return integrate_svf(velocity, num_steps)


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


def random_deformation(
    shape: Sequence[int], config: SubjectConfig, gen: torch.Generator, velocity_gen: torch.Generator | None = None,
    inverse: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The subject recipe's deformation ``φ(x) = A (x + u(x) − c) + c + t`` (:class:`SubjectConfig`).

    Args:
        shape: the subject's grid ``(D, H, W)`` or ``(H, W)``.
        config: the settings.
        gen: draws the affine.
        velocity_gen: draws the velocity (default ``gen``); its own generator keeps a subject's diffeomorphism
            independent of the affine and intensity settings.
        inverse: also return the DDF of ``φ⁻¹`` (the diffeomorphism inverted by integrating the negated
            velocity, the affine exactly).

    Returns:
        the DDF ``(1, n, *shape)`` in voxels (``subject(x) = template(x + ddf(x))``) and the inverse's or ``None``.

    Raises:
        ValueError: ``velocity_sigmas`` and ``velocity_amplitudes`` differ in length.
    """
    if len(config.velocity_sigmas) != len(config.velocity_amplitudes):
        raise ValueError(f"velocity_sigmas and velocity_amplitudes differ in length: "
                         f"{len(config.velocity_sigmas)} vs {len(config.velocity_amplitudes)}")
    velocity_gen = gen if velocity_gen is None else velocity_gen
    shape, n, factor = tuple(int(s) for s in shape), len(shape), int(config.integration_factor)
    coarse = shape if factor == 1 else tuple(max(2, -(-s // factor)) for s in shape)
    velocity = None
    for sigma, amplitude in zip(config.velocity_sigmas, config.velocity_amplitudes):
        component = smooth_noise(coarse, n, sigma / factor, velocity_gen) * (amplitude / factor)
        if config.random_amplitudes:
            component = component * float(torch.rand((), generator=velocity_gen))
        velocity = component if velocity is None else velocity + component

    def integrate(v: torch.Tensor) -> torch.Tensor:
        ddf = integrate_svf(v)
        if factor == 1:
            return ddf
        # coarse voxel j sits at fine voxel j·(s−1)/(c−1) (align_corners): displacements scale by that, per axis
        scaling = torch.tensor([(s - 1) / (c - 1) for s, c in zip(shape, coarse)]).view(1, n, *([1] * n))
        mode = "trilinear" if n == 3 else "bilinear"
        return F.interpolate(ddf, size=shape, mode=mode, align_corners=True) * scaling

    deform = integrate(velocity)
    matrix, shift = random_affine(config, gen, n)
    # φ(x) = A (x + u(x) − c) + c + t  =>  ddf = affine_ddf + A u
    ddf = affine_ddf(shape, matrix, shift) + torch.einsum("ij,bj...->bi...", matrix.float(), deform)
    if not inverse:
        return ddf, None
    # φ⁻¹(y) = ψ⁻¹(z(y)) with z(y) = A⁻¹ (y − c − t) + c and ψ⁻¹(z) = z + v(z), v = exp(−velocity)
    a_inv = torch.linalg.inv(matrix)
    z = affine_ddf(shape, a_inv, -(a_inv @ shift))
    return ddf, z + Warp("bilinear", "border")(integrate(-velocity), z)


def random_intensity(image: torch.Tensor, config: SubjectConfig, gen: torch.Generator) -> torch.Tensor:
    """The subject recipe's intensity changes of a real image ``(1, 1, *S)`` in [0, 1]: a bias field of
    log-amplitude ``config.bias`` (Gaussian-smoothed noise, sigma ``bias_sigma × max(S)``), a gamma with
    ``log γ`` uniform in ``±config.gamma`` and noise ``config.noise`` (:func:`degrade`). ``(1, 1, *S)``."""
    shape = tuple(image.shape[2:])
    log_bias = config.bias * smooth_noise(shape, 1, sigma=max(shape) * config.bias_sigma, generator=gen)
    gamma = math.exp(float(uniform(gen, 1, config.gamma)))
    return degrade(image, gamma, log_bias, config.noise, gen)


def random_subject(
    image: torch.Tensor, label: torch.Tensor | None, seed: int, config: SubjectConfig = SubjectConfig(),
    inverse: bool = False,
) -> dict[str, torch.Tensor]:
    """One random subject of a template: the one recipe of the embedded, phantom and held-out pairs.

    The template moved by :func:`random_deformation`, with :func:`random_intensity`'s changes; the label map
    warped by nearest neighbour. A pure function of ``(image, label, seed, config)``: the velocity draws from a
    generator seeded ``seed · 7919 + 1``, the affine and the intensities from one seeded ``seed``.

    Args:
        image: ``(1, 1, *S)`` in [0, 1], background 0.
        label: ``(1, 1, *S)`` integer label map, or ``None``.
        seed: random seed.
        config: deformation and intensity settings.
        inverse: also return the inverse field (the subject's values do not depend on it).

    Returns:
        ``image``, ``label`` (if given, its dtype kept) and the ``ddf`` ``(1, n, *S)`` that made them
        (``subject(x) = template(x + ddf(x))``); with ``inverse``, ``inverse`` ``(1, n, *S)``, the DDF of ``φ⁻¹``
        (``template(y) ≈ subject(y + inverse(y))``).
    """
    gen = torch.Generator().manual_seed(int(seed))
    velocity_gen = torch.Generator().manual_seed(int(seed) * 7919 + 1)
    ddf, inv = random_deformation(tuple(image.shape[2:]), config, gen, velocity_gen, inverse=inverse)
    moved = Warp("bilinear", "zeros")(image.float(), ddf)
    out = {"image": random_intensity(moved, config, gen), "ddf": ddf}
    if label is not None:
        out["label"] = Warp("nearest", "zeros")(label.float(), ddf).round().to(label.dtype)
    if inverse:
        out["inverse"] = inv
    return out


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
