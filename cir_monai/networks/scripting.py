# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""The network as TorchScript, with λ as an input, right at every input size and with its input checks.

The network is written so that a trace records no size: padding, instance-norm averages, the
normalised→voxel scale and the warp's grid are all computed from the input's sizes as traced
values (``torch.jit.is_tracing`` paths in :mod:`cir_monai.networks`), and every size is served
(the network pads to a multiple of 8 internally). ``tests/networks/test_scripting.py`` checks the scripted
module against the eager network at sizes other than the traced one (≤ 1e-4 voxel).
A trace cannot record the eager network's input checks (they are Python control flow), so the
traced network is wrapped in :class:`CheckedInputs`, compiled with ``torch.jit.script``: the
scripted module refuses a wrong shape, NaN/Inf values and a λ outside ``[0, lam_max]`` with a
message, as the eager network does, instead of computing a wrong field or failing deep inside.
The bundle's ``models/model.ts`` is this module with the bundle's metadata (:mod:`cir_monai.io.export`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Optional

import torch

__all__ = ["CheckedInputs", "checked_trace", "script_network"]


class CheckedInputs(torch.nn.Module):
    """The eager network's input checks in front of a traced network, for ``torch.jit.script``.

    Args:
        net: the traced network, ``(image, lam) → ddf``.
        lam_max: the largest λ the model was trained for.
        spatial_dims: 2 or 3.
        default_lam: λ when the caller passes the image alone (the bundle's ``network_def#lam``).
    """

    def __init__(self, net: torch.nn.Module, lam_max: float, spatial_dims: int, default_lam: float = 1.0) -> None:
        super().__init__()
        self.net, self.lam_max, self.spatial_dims = net, float(lam_max), int(spatial_dims)
        self.default_lam = float(default_lam)
        self.lam_range = f"[0, {float(lam_max):g}]"  # TorchScript's str(float) writes 10 as "10."

    def forward(self, image: torch.Tensor, lam: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``image`` ``(B, 2, *S)`` (moving, fixed), ``lam`` ``(B,)``, one value or ``None`` (the default λ) → the
        DDF ``(B, n, *S)`` in voxels.

        Raises:
            ValueError: a wrong shape, NaN/Inf values, or λ outside ``[0, lam_max]`` (the value in the message;
                a loaded TorchScript module raises it as ``torch.jit.Error`` whose last line is this message).
        """
        if image.dim() != self.spatial_dims + 2 or image.size(1) != 2:
            raise ValueError("image must be (B, 2, *spatial) with channels (moving, fixed), got shape "
                             + str(image.shape))
        if not bool(torch.isfinite(image).all()):
            raise ValueError("image contains NaN or Inf values")
        if lam is None:
            lam = torch.full([image.size(0)], self.default_lam, dtype=image.dtype, device=image.device)
        lam = lam.to(image.dtype).reshape(-1).expand(image.size(0))
        bad = lam[~(torch.isfinite(lam) & (lam >= 0) & (lam <= self.lam_max))]
        if bad.numel() > 0:
            raise ValueError("lam must lie in " + self.lam_range + " (the model's range), got " + str(float(bad[0])))
        return self.net(image, lam)


def checked_trace(net: torch.nn.Module, trace_size: Sequence[int] | None = None) -> CheckedInputs:
    """``net`` (a :class:`~cir_monai.networks.StackedCLapIRN`, evaluation mode) traced with ``(image, lam)`` inputs
    at ``trace_size`` (default 48×56×48; any size: the trace records none), behind :class:`CheckedInputs` (not yet
    scripted: ``torch.jit.script`` of ``net`` compiles it through ``StackedCLapIRN.__prepare_scriptable__``, so
    MONAI's ``ckpt_export`` without ``--use_trace`` writes the same module as :func:`script_network`)."""
    dims = int(net.spatial_dims)
    size = [int(s) for s in (trace_size or (48, 56, 48)[:dims])]
    image = torch.rand(1, 2, *size, generator=torch.Generator().manual_seed(0))
    default_lam = float(getattr(net, "default_lam", 1.0))
    param = next(net.parameters(), None)
    if param is not None:
        image = image.to(param.device)
    lam = torch.tensor([default_lam], device=image.device)
    with torch.no_grad(), warnings.catch_warnings():
        # the tracer warns about the input checks (finite values, λ in range, shapes), which it records as
        # constants: they hold for the example input and are not part of the exported computation
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(net.eval(), (image, lam), check_trace=False)
    return CheckedInputs(traced, float(getattr(net, "lam_max", 10.0)), dims, default_lam)


def script_network(net: torch.nn.Module, trace_size: Sequence[int] | None = None) -> torch.jit.ScriptModule:
    """``net`` as TorchScript: :func:`checked_trace`, scripted.

    Takes ``(image)`` (the default λ) or ``(image, lam)``."""
    return torch.jit.script(checked_trace(net, trace_size))
