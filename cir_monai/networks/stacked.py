# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""cLapIRN with the pair stacked as one 2-channel input, for MONAI bundle tools and TorchScript."""

from __future__ import annotations

import torch

from cir_monai.networks.clapirn import CLapIRN
from cir_monai.networks.scripting import checked_trace

__all__ = ["StackedCLapIRN"]


class StackedCLapIRN(CLapIRN):
    """:class:`CLapIRN` whose input is ``cat(moving, fixed)`` along channels, ``(B, 2, *spatial)``.

    The bundle's ``network_data_format`` describes this form (channel 0 moving, channel 1
    fixed; output the DDF in voxels), which is what ``verify_net_in_out``, ``ckpt_export`` and
    MONAI Deploy call with one tensor. Same parameters (and state-dict keys) as :class:`CLapIRN`.

    Args:
        lam: λ used when ``forward`` gets none (a traced TorchScript module has it built in).
        *args, **kwargs: as :class:`CLapIRN`.
    """

    def __init__(self, *args, lam: float = 1.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.default_lam = float(lam)

    def forward(self, image: torch.Tensor, lam: float | torch.Tensor | None = None, active_levels: int | None = None):
        if not isinstance(image, torch.Tensor) or image.ndim != self.spatial_dims + 2 or image.shape[1] != 2:
            shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
            raise ValueError(f"image must be (B, 2, *spatial) with channels (moving, fixed), got {shape}.")
        return super().forward(image[:, :1], image[:, 1:], self.default_lam if lam is None else lam, active_levels)

    def __prepare_scriptable__(self):
        """What ``torch.jit.script(net)`` compiles (MONAI's ``ckpt_export`` without ``--use_trace``): the network is
        Python control flow that TorchScript cannot script, so it is traced once and put behind the scripted input
        checks (:func:`cir_monai.networks.scripting.checked_trace`), the same module as ``models/model.ts``."""
        return checked_trace(self)
