# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""cLapIRN: the conditional Laplacian-pyramid registration network.

Mok & Chung, "Conditional Deformable Image Registration with Convolutional
Neural Network", MICCAI 2021, built on LapIRN (Mok & Chung, MICCAI 2020).
``docs/method.md`` §2 states the architecture this module reproduces; the authors'
released weights load into it unchanged through :mod:`cir_monai.io.official`.

Contract: ``ddf = net(moving, fixed, lam)`` returns a dense displacement field
``u`` in **voxels**, MONAI convention (channel ``i`` along spatial axis ``i``),
such that the registered image is ``moving(x + u(x))``, i.e.
``monai.networks.blocks.Warp()(moving, ddf)``. Shape ``(B, spatial_dims, *spatial)``,
the input's spatial size.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.layers import Conv, Pool

from cir_monai.conventions import normalized_to_voxel_ddf
from cir_monai.networks.blocks import ConditionalResBlock, PlainResBlock
from cir_monai.networks.conditioning import MappingNetwork
from cir_monai.networks.convolution import conv3, conv3d
from cir_monai.networks.fast import fast_paths_enabled
from cir_monai.networks.warp import Warp

__all__ = ["CONDITIONING", "check_lams", "CLapIRN", "RegistrationLevel", "LevelOutput", "PyramidOutput", "unwrap"]

#: conditioning variants: CIR-DM (paper), CIR-CM (ablation), λ as input channel (ablation), LapIRN baseline
CONDITIONING = ("distributed", "centralized", "concat", "none")


@dataclass
class LevelOutput:
    """What the trainer needs from one pyramid level (training mode only).

    Attributes:
        ddf: ``(B, n, *S_l)`` the level's TOTAL field in voxels of the level's grid (MONAI convention).
        warped: ``(B, 1, *S_l)`` the level's moving image warped by ``ddf``.
        fixed: ``(B, 1, *S_l)`` the level's fixed image.
    """

    ddf: torch.Tensor
    warped: torch.Tensor
    fixed: torch.Tensor


@dataclass
class PyramidOutput:
    """Training-mode output of :class:`CLapIRN`.

    Attributes:
        ddf: ``(B, n, *spatial)`` final DDF at the input's size, as in evaluation mode.
        levels: one :class:`LevelOutput` per active level, coarse to fine. Level
            grids are those of the internally padded input (identical to the input's
            when every size is a multiple of ``2 ** num_levels``).
        code: ``(B, 1)`` the normalised code ``λ / λ_max`` used (``None`` for the baseline).
    """

    ddf: torch.Tensor
    levels: list[LevelOutput]
    code: torch.Tensor | None



def unwrap(network: torch.nn.Module) -> torch.nn.Module:
    """The model inside a ``DistributedDataParallel`` (or ``DataParallel``) wrapper; any other module as it is."""
    return network.module if isinstance(network, (torch.nn.parallel.DistributedDataParallel,
                                                  torch.nn.DataParallel)) else network

def check_lams(values, lam_max: float) -> list[float]:
    """The one λ range check: ``values`` (a number or a list) as floats, each finite and in ``[0, lam_max]``.

    Used by :meth:`CLapIRN.lam_to_code` and by the engines before any work
    (:func:`cir_monai.engines.prediction.checked_lams`), so every entry point says the same thing.

    Raises:
        ValueError: no value, or a value outside the range (all of them in the message).
    """
    values = [float(v) for v in ([values] if isinstance(values, numbers.Real) else values)]
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"lam values must be finite numbers in [0, {lam_max:g}], got {values}")
    if not values or not all(0.0 <= v <= lam_max for v in values):
        raise ValueError(f"lam values must lie in [0, {lam_max:g}] (the model's range), got {values}")
    return values


#: ``[q, k, j] = 1`` where transposed-convolution tap ``q`` then convolution tap ``k`` is tap ``j = q − k + 2``
#: of the composed stride-2 transposed convolution (:meth:`RegistrationLevel.up_conv_weight`)
_UP_CONV_TAPS = torch.zeros(2, 3, 4)
for _q in range(2):
    for _k in range(3):
        _UP_CONV_TAPS[_q, _k, _q - _k + 2] = 1.0


class RegistrationLevel(nn.Module):
    """One CNN registration network (CRN) of the pyramid (docs/method.md §2, steps 2–7).

    ``skip = encoder(x)``; ``h = down(skip) [+ features of the coarser level]``;
    ``h = LReLU(block_j(h, cond))`` for each block; ``up = up(h)``;
    ``residual = Softsign(head(cat(up, skip))) · range_flow``.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels (2 at the coarsest level, ``2 + spatial_dims`` above; +1 for ``concat``).
        encoder_channels: encoder width (4·sc full, 2·sc lite).
        feature_channels: width of the residual blocks (4·sc).
        up_channels: output width of the transposed convolution (4·sc; 2·sc at the finest lite level).
        blocks: the residual blocks, each called as ``block(h, cond)``.
        range_flow: bound of the residual field in normalised units.

    Shapes:
        ``x``: ``(B, in_channels, *S)`` with every size even -> residual ``(B, n, *S)`` in the
        reference convention (normalised units, reversed channels) and features ``(B, up_channels, *S)``.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        encoder_channels: int,
        feature_channels: int,
        up_channels: int,
        blocks: list[nn.Module],
        range_flow: float = 0.4,
    ) -> None:
        super().__init__()
        self.range_flow = range_flow
        self.channels_last = spatial_dims == 3
        self.encoder = nn.Sequential(
            conv3(spatial_dims, in_channels, encoder_channels),
            nn.LeakyReLU(0.2, inplace=True),
            conv3(spatial_dims, encoder_channels, encoder_channels),
        )
        self.down = conv3(spatial_dims, encoder_channels, feature_channels, stride=2)
        self.blocks = nn.ModuleList(blocks)
        self.up = Conv[Conv.CONVTRANS, spatial_dims](feature_channels, up_channels, 2, stride=2, bias=False)
        head_in = up_channels + encoder_channels
        self.head = nn.Sequential(
            conv3(spatial_dims, head_in, head_in // 2),
            nn.LeakyReLU(0.2, inplace=True),
            conv3(spatial_dims, head_in // 2, spatial_dims),
            nn.Softsign(),
        )

    def forward(
        self,
        x: torch.Tensor,
        cond: torch.Tensor | None,
        coarse_features: torch.Tensor | None = None,
        return_features: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """
        Args:
            x: ``(B, in_channels, *S)``.
            cond: the code ``(B, 1)`` (distributed), the shared latent (centralized) or ``None``.
            coarse_features: the coarser level's up-sampled features ``(B, feature_channels, *S/2)``.
            return_features: also return ``up(h)``, the features for the next level (not needed at the finest level).

        Returns:
            the residual field (reference convention) and the features (or ``None``).
        """
        if self.channels_last:  # match the channels-last weights (CLapIRN.set_channels_last): no conversions inside
            x = x.contiguous(memory_format=torch.channels_last_3d)
        skip = self.encoder(x)
        h = self.down(skip)
        if coarse_features is not None:
            h = h.add_(coarse_features)  # in place on a fresh tensor: no extra allocation
        for block in self.blocks:
            h = F.leaky_relu(block(h, cond), 0.2, inplace=True)
        if not fast_paths_enabled():  # the plain path: up-sample, concatenate with the skip features, head
            up = self.up(h)
            return self.head(torch.cat([up, skip], dim=1)) * self.range_flow, up
        hidden = self._head_conv(h, skip)  # fast path: the same maths without building up(h) and the concatenation
        residual = self.head[1:](hidden) * self.range_flow
        return residual, (self.up(h) if return_features else None)

    def _head_conv(self, h: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """``head[0](cat(up(h), skip))`` without building ``up(h)`` or the concatenation: the same maths.

        ``head[0]`` splits into its part on ``up(h)`` and its part on ``skip``. A 3×3 convolution
        (padding 1) of a stride-2, kernel-2 transposed convolution is one stride-2 transposed
        convolution with a kernel-4 weight, padding 1 (:meth:`up_conv_weight`). Per output voxel
        that is ``8·C·O`` instead of ``C·C_up + 27·C_up·O`` MACs (``C`` = ``h``'s channels,
        ``O`` = ``head[0]``'s outputs), and its backward pass is one convolution instead of a
        full-resolution concatenation and a 27-tap convolution over it (level-3 training step at
        64×80×64: docs/benchmarks.md). ``head[0]`` is used through its weight, so hooks
        registered on that module do not fire.
        """
        conv = self.head[0]
        up_channels = self.up.weight.shape[1]
        n = h.ndim - 2
        conv_fn, deconv_fn = (conv3d, F.conv_transpose3d) if n == 3 else (F.conv2d, F.conv_transpose2d)
        out = deconv_fn(h, self.up_conv_weight(), stride=2, padding=1)
        return out.add_(conv_fn(skip, conv.weight[:, up_channels:], padding=(1,) * n))

    def up_conv_weight(self) -> torch.Tensor:
        """Weight ``(C, O, 4, …)`` of the transposed convolution (stride 2, padding 1) equal to ``up`` then
        ``head[0]``'s up part.

        The transposed convolution writes ``h[m]·U[q]`` to ``up[2m + q]``; the 3×3 convolution reads
        ``up[t + k − 1]`` with tap ``k``. So ``h[m]`` reaches ``out[t]`` where ``2m + q = t + k − 1``,
        i.e. through tap ``j = q − k + 2`` of a stride-2 transposed convolution with padding 1
        (``out[2m − 1 + j] += h[m]·K[j]``): ``K[j] = Σ_{q − k + 2 = j} U[q] W[k]`` per axis.
        """
        up_weight = self.up.weight  # (C, C_up, 2, ...)
        conv_weight = self.head[0].weight[:, : up_weight.shape[1]]  # (O, C_up, 3, ...)
        n = up_weight.ndim - 2
        select = _UP_CONV_TAPS.to(dtype=up_weight.dtype, device=up_weight.device)
        taps_q, taps_k, taps_j = "abc"[:n], "def"[:n], "xyz"[:n]
        equation = (
            f"iu{taps_q},ou{taps_k}," + ",".join(f"{taps_q[d]}{taps_k[d]}{taps_j[d]}" for d in range(n))
            + f"->io{taps_j}"
        )
        weight = torch.einsum(equation, up_weight, conv_weight, *([select] * n))
        return weight.contiguous(memory_format=torch.channels_last_3d) if self.channels_last else weight.contiguous()


class CLapIRN(nn.Module):
    """Conditional Laplacian-pyramid image registration network (cLapIRN).

    ``num_levels`` :class:`RegistrationLevel` s, coarse to fine, at resolution
    ``1 / 2**(num_levels - 1 - k)`` for level ``k``. Level 0 sees the average-pooled
    pair; level ``k > 0`` sees its moving image warped by the upsampled total
    field of level ``k − 1``, its fixed image and that field, and adds its residual
    to it (added, not composed). λ enters as the code ``c = λ / λ_max``:

    * ``"distributed"`` (CIR-DM, the paper): one 4-layer mapping network ``c → z`` per block;
    * ``"centralized"`` (CIR-CM): one 8-layer, 256-wide mapping network for all blocks;
    * ``"concat"``: ``c`` as an extra constant input channel, plain blocks;
    * ``"none"`` (LapIRN baseline): unconditional, λ fixed at training time (``lam`` is ignored).

    Inputs of any size are padded with zeros (the background) to a multiple of
    ``2 ** num_levels`` and the field is cropped back. Grids are built at call
    time on the input's device and dtype. Evaluation mode computes only the final
    field; training mode also returns what the losses need per level.

    Args:
        spatial_dims: 2 or 3.
        start_channels: ``sc``; feature width 4·sc (7 in the paper).
        conditioning: one of :data:`CONDITIONING`.
        num_levels: pyramid levels (3).
        num_blocks: residual blocks per level (5).
        range_flow: bound of each level's residual, normalised units (0.4).
        lam_max: λ of code 1 (10): ``lam`` must lie in ``[0, lam_max]``.
        lite: the authors' "lite" widths (encoder 2·sc, narrower head; released OASIS model: sc=4).
        latent_dim: CIN latent size for ``"distributed"`` (64); ``"centralized"`` uses 256.
        integration_steps: 0 (the paper): the output is a displacement field. ``n > 0``: the
            diffeomorphic variant: each level's total field is a stationary velocity field,
            integrated by scaling and squaring in ``n`` steps (as MONAI's ``DVF2DDF``) before it
            warps or is returned, so the DDF is invertible (``configs/variants/diffeomorphic.yaml``).

    Example::

        net = CLapIRN(spatial_dims=3, start_channels=7).eval()
        with torch.no_grad():
            ddf = net(moving, fixed, lam=1.0)       # (1, 3, D, H, W), voxels
        warped = Warp()(moving, ddf)

    .. warning:: the network expects affinely pre-aligned images with
        intensities in [0, 1] and background exactly 0 (docs/method.md §4).
    """

    def __init__(
        self,
        spatial_dims: int = 3,
        start_channels: int = 7,
        conditioning: str = "distributed",
        num_levels: int = 3,
        num_blocks: int = 5,
        range_flow: float = 0.4,
        lam_max: float = 10.0,
        lite: bool = False,
        latent_dim: int = 64,
        integration_steps: int = 0,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        if conditioning not in CONDITIONING:
            raise ValueError(f"conditioning must be one of {CONDITIONING}, got {conditioning!r}.")
        for name, value in (("start_channels", start_channels), ("num_levels", num_levels), ("num_blocks", num_blocks)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        if not (lam_max > 0 and math.isfinite(lam_max)):
            raise ValueError(f"lam_max must be a positive finite number, got {lam_max!r}.")
        #: the constructor arguments: ``CLapIRN(**net.config)`` rebuilds the architecture (saved in checkpoints)
        self.config = dict(
            spatial_dims=spatial_dims, start_channels=start_channels, conditioning=conditioning, num_levels=num_levels,
            num_blocks=num_blocks, range_flow=range_flow, lam_max=float(lam_max), lite=bool(lite),
            latent_dim=latent_dim,
        )
        if not isinstance(integration_steps, int) or integration_steps < 0:
            raise ValueError(f"integration_steps must be an integer >= 0, got {integration_steps!r}.")
        if integration_steps:  # recorded only when used: checkpoints of the paper's network keep their config
            self.config["integration_steps"] = integration_steps
        self.integration_steps = integration_steps
        self.spatial_dims = spatial_dims
        self.start_channels = start_channels
        self.conditioning = conditioning
        self.num_levels = num_levels
        self.num_blocks = num_blocks
        self.lam_max = float(lam_max)
        self.lite = lite

        sc = start_channels
        feature = 4 * sc
        encoder = 2 * sc if lite else 4 * sc
        extra = 1 if conditioning == "concat" else 0
        self.mapping = MappingNetwork(1, 256, 256, num_layers=8) if conditioning == "centralized" else None

        def make_block() -> nn.Module:
            if conditioning == "distributed":
                return ConditionalResBlock.distributed(spatial_dims, feature, latent_dim)
            if conditioning == "centralized":
                return ConditionalResBlock(spatial_dims, feature, latent_dim=256)
            return PlainResBlock(spatial_dims, feature)

        levels = []
        for k in range(num_levels):
            in_channels = (2 if k == 0 else 2 + spatial_dims) + extra
            up = 2 * sc if (lite and k == num_levels - 1) else feature
            blocks = [make_block() for _ in range(num_blocks)]
            levels.append(RegistrationLevel(spatial_dims, in_channels, encoder, feature, up, blocks, range_flow))
        self.levels = nn.ModuleList(levels)
        self.pool = Pool[Pool.AVG, spatial_dims](kernel_size=3, stride=2, padding=1, count_include_pad=False)
        self.warp = Warp(mode="bilinear", padding_mode="border")
        self._interp = "trilinear" if spatial_dims == 3 else "bilinear"
        self.set_channels_last(spatial_dims == 3)

    def set_channels_last(self, enabled: bool = True) -> CLapIRN:
        """Run 3D convolutions in the channels-last layout (default for 3D) or the contiguous one.

        Channels-last 3D convolutions are faster with oneDNN on CPU (measured: docs/benchmarks.md)
        and are supported by cuDNN. The layout survives ``.to(device)`` and ``load_state_dict``
        (values are copied, not layouts); results are the same up to float rounding.
        """
        enabled = bool(enabled) and self.spatial_dims == 3
        fmt = torch.channels_last_3d if enabled else torch.contiguous_format
        for level in self.levels:
            level.channels_last = enabled
        with torch.no_grad():
            for p in self.parameters():
                if p.ndim == 5:
                    p.data = p.data.contiguous(memory_format=fmt)
        return self

    # ------------------------------------------------------------------ checks
    @property
    def size_multiple(self) -> int:
        """Every spatial size is padded internally to a multiple of this (``2 ** num_levels``)."""
        return 2**self.num_levels

    def _check_images(self, moving: torch.Tensor, fixed: torch.Tensor) -> None:
        n = self.spatial_dims
        for name, img in (("moving", moving), ("fixed", fixed)):
            if not isinstance(img, torch.Tensor):
                raise ValueError(f"{name} must be a torch.Tensor, got {type(img).__name__}.")
            if img.ndim != n + 2:
                raise ValueError(
                    f"{name} must have shape (B, 1, {'D, H, W' if n == 3 else 'H, W'}) for spatial_dims={n}, "
                    f"got {img.ndim}-d tensor of shape {tuple(img.shape)}."
                )
            if img.shape[1] != 1:
                raise ValueError(f"{name} must have 1 channel, got {img.shape[1]} (shape {tuple(img.shape)}).")
            if not img.is_floating_point():
                raise ValueError(f"{name} must be a floating-point tensor, got {img.dtype}.")
            if not bool(torch.isfinite(img).all()):
                raise ValueError(f"{name} contains NaN or Inf values.")
        if moving.shape != fixed.shape:
            raise ValueError(
                f"moving and fixed must have the same shape, got {tuple(moving.shape)} and {tuple(fixed.shape)}."
            )

    def lam_to_code(self, lam: float | torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor | None:
        """Check ``lam`` (user units) and return the code ``c = lam / lam_max`` of shape ``(B, 1)``.

        Args:
            lam: a number, a 0-d tensor, or a ``(B,)`` tensor (one λ per sample), in ``[0, lam_max]``.
            batch: the batch size ``B``.
            device: where the code goes.

        Raises:
            ValueError: ``lam`` missing for a conditional model, of the wrong length, NaN, or out of range.
        """
        if self.conditioning == "none":
            return None
        if lam is None:
            raise ValueError(f"lam is required for conditioning={self.conditioning!r}: "
                             f"give λ in [0, {self.lam_max:g}].")
        lam_t = torch.as_tensor(lam, dtype=torch.float32).to(device=device, dtype=torch.float32).reshape(-1)
        if lam_t.numel() == 1:
            lam_t = lam_t.expand(batch)
        if lam_t.numel() != batch:
            raise ValueError(f"lam must be a number or have one value per sample (B={batch}), "
                             f"got {lam_t.numel()} values.")
        check_lams(lam_t.detach().cpu().tolist(), self.lam_max)
        return (lam_t / self.lam_max).reshape(batch, 1)

    # ----------------------------------------------------------------- forward
    def _pad(self, x: torch.Tensor) -> tuple[torch.Tensor, list]:
        """Zero-pad every spatial size to a multiple of :attr:`size_multiple`, centred; returns the offsets.

        Written on the sizes themselves (``F.pad`` and ``narrow`` in :meth:`_crop`, no Python slices), so
        a traced TorchScript pads each input by its own sizes.
        """
        m = self.size_multiple
        pads: list = []
        for s in reversed(x.shape[2:]):  # F.pad takes the last axis first
            total = (-s) % m
            pads += [total // 2, total - total // 2]
        offsets = pads[::2][::-1]  # the leading pad of each axis, first axis first
        if torch.jit.is_tracing() or any(int(p) for p in pads):
            x = F.pad(x, pads)
        return x, offsets

    @staticmethod
    def _crop(x: torch.Tensor, offsets: list, sizes) -> torch.Tensor:
        """Undo :meth:`_pad`: the window of ``sizes`` starting at ``offsets`` along each spatial axis."""
        for axis, (start, size) in enumerate(zip(offsets, sizes)):
            x = x.narrow(axis + 2, start, size)
        return x

    def _to_ddf(self, field: torch.Tensor) -> torch.Tensor:
        """A level's total field (normalised units) as a voxel DDF; integrated for the diffeomorphic variant.

        Scaling and squaring: ``u ← v / 2ⁿ``, then ``n`` times ``u ← u + u(x + u)`` (the loop of
        MONAI's ``DVF2DDF``, written on this package's :class:`Warp` so it samples in float32).
        """
        ddf = normalized_to_voxel_ddf(field)
        if not self.integration_steps:
            return ddf
        ddf = ddf / 2**self.integration_steps
        for _ in range(self.integration_steps):
            ddf = ddf + self.warp(ddf, ddf)
        return ddf

    def forward(
        self,
        moving: torch.Tensor,
        fixed: torch.Tensor,
        lam: float | torch.Tensor | None = None,
        active_levels: int | None = None,
    ) -> torch.Tensor | PyramidOutput:
        """Register ``moving`` to ``fixed`` at smoothness ``lam``.

        Args:
            moving: ``(B, 1, *spatial)`` in [0, 1].
            fixed: ``(B, 1, *spatial)`` in [0, 1], same shape.
            lam: λ in ``[0, lam_max]``, a number or one per sample ``(B,)``; ignored by the baseline.
            active_levels: run only the ``active_levels`` coarsest levels (progressive
                training); the field is upsampled to the input's size. Default: all.

        Returns:
            evaluation mode: the DDF ``(B, spatial_dims, *spatial)`` in voxels (MONAI convention).
            training mode: a :class:`PyramidOutput` (final DDF plus per-level outputs).

        Raises:
            ValueError: bad shapes, NaN input, missing or out-of-range ``lam``, bad ``active_levels``.
        """
        self._check_images(moving, fixed)
        n_active = self.num_levels if active_levels is None else active_levels
        if not isinstance(n_active, int) or not 1 <= n_active <= self.num_levels:
            raise ValueError(f"active_levels must be an integer in [1, {self.num_levels}], got {active_levels!r}.")
        batch = moving.shape[0]
        code = self.lam_to_code(lam, batch, moving.device)

        moving_p, offsets = self._pad(moving)
        fixed_p, _ = self._pad(fixed)
        movings, fixeds = [moving_p], [fixed_p]
        for _ in range(self.num_levels - 1):  # finest first
            movings.append(self.pool(movings[-1]))
            fixeds.append(self.pool(fixeds[-1]))
        movings.reverse()
        fixeds.reverse()

        cond = None if code is None else (self.mapping(code) if self.mapping is not None else code)
        outputs: list[LevelOutput] = []
        field = features = None
        for k in range(n_active):
            mov_k, fix_k = movings[k], fixeds[k]
            if field is None:
                inputs = [mov_k, fix_k]
            else:
                field = F.interpolate(field, size=fix_k.shape[2:], mode=self._interp, align_corners=False)
                warped = self.warp(mov_k, self._to_ddf(field))
                inputs = [warped.to(fix_k.dtype), fix_k, field.to(fix_k.dtype)]
            if self.conditioning == "concat":
                inputs.append(code.to(fix_k.dtype).reshape(batch, 1, *([1] * self.spatial_dims)).expand_as(fix_k))
            finest = k == self.num_levels - 1  # nothing consumes the finest level's features
            residual, features = self.levels[k](torch.cat(inputs, dim=1), cond, features, return_features=not finest)
            residual = residual.float()  # fields are accumulated in float32, also under autocast
            field = residual if field is None else field + residual
            if self.training:
                level_ddf = self._to_ddf(field)
                outputs.append(LevelOutput(level_ddf, self.warp(mov_k, level_ddf), fix_k))

        if field.shape[2:] != moving_p.shape[2:]:
            field = F.interpolate(field, size=moving_p.shape[2:], mode=self._interp, align_corners=False)
        ddf = self._crop(self._to_ddf(field), offsets, moving.shape[2:])
        if self.training:
            return PyramidOutput(ddf=ddf, levels=outputs, code=code)
        return ddf
