# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Network components of cLapIRN (2D and 3D through ``spatial_dims``)."""

from cir_monai.networks.blocks import ConditionalResBlock, PlainResBlock
from cir_monai.networks.clapirn import CONDITIONING, CLapIRN, LevelOutput, PyramidOutput, RegistrationLevel, unwrap
from cir_monai.networks.conditioning import ConditionalInstanceNorm, MappingNetwork
from cir_monai.networks.convolution import OneDNNConv3d, conv3d
from cir_monai.networks.stacked import StackedCLapIRN
from cir_monai.networks.warp import Warp, composition_residual, invert_ddf, sample_at, warp_from_grid

__all__ = [
    "CONDITIONING",
    "CLapIRN",
    "ConditionalInstanceNorm",
    "ConditionalResBlock",
    "LevelOutput",
    "MappingNetwork",
    "OneDNNConv3d",
    "PlainResBlock",
    "PyramidOutput",
    "RegistrationLevel",
    "StackedCLapIRN",
    "Warp",
    "composition_residual",
    "conv3d",
    "invert_ddf",
    "sample_at",
    "unwrap",
    "warp_from_grid",
]
