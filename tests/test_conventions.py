from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cir_monai.conventions import (
    itk_field_to_voxel_ddf,
    normalized_to_voxel_ddf,
    ras_to_lps_vectors,
    voxel_ddf_to_normalized,
    voxel_to_world,
)
from cir_monai.networks import Warp


@pytest.mark.parametrize("shape", [(2, 3, 5, 7, 9), (1, 2, 6, 11), (1, 3, 1, 4, 5)])
def test_round_trip(shape):
    torch.manual_seed(0)
    ddf = torch.randn(shape)
    if shape[2] == 1:
        ddf[:, 0] = 0.0  # no displacement is representable along a singleton axis
    assert torch.allclose(normalized_to_voxel_ddf(voxel_ddf_to_normalized(ddf)), ddf, atol=1e-6)
    field = torch.randn(shape)
    back = voxel_ddf_to_normalized(normalized_to_voxel_ddf(field))
    keep = [i for i in range(len(shape) - 2) if shape[2 + i] > 1]  # voxel channel i; normalised channel n-1-i
    n = len(shape) - 2
    for i in keep:
        assert torch.allclose(back[:, n - 1 - i], field[:, n - 1 - i], atol=1e-6)


def test_known_values_3d():
    field = torch.zeros(1, 3, 5, 9, 17)
    field[:, 0] = 1.0  # +1 along the LAST axis (W, 17 voxels) in normalised units = half the extent
    field[:, 2] = -0.5  # along the first axis (D, 5 voxels)
    ddf = normalized_to_voxel_ddf(field)
    assert torch.allclose(ddf[:, 2], torch.full_like(ddf[:, 2], 8.0))
    assert torch.allclose(ddf[:, 0], torch.full_like(ddf[:, 0], -1.0))
    assert torch.allclose(ddf[:, 1], torch.zeros_like(ddf[:, 1]))


@pytest.mark.parametrize("spatial", [(6, 7, 8), (9, 10)])
def test_monai_warp_equals_reference_grid_sample(spatial):
    """Warping with the converted DDF through MONAI's Warp equals the reference's grid_sample."""
    torch.manual_seed(1)
    n = len(spatial)
    image = torch.rand(2, 1, *spatial)
    field = 0.2 * torch.randn(2, n, *spatial)
    axes = [torch.linspace(-1, 1, s) for s in spatial]
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij")[::-1], dim=-1)  # (x, y, z) order
    reference = F.grid_sample(image, grid + field.movedim(1, -1), mode="bilinear", padding_mode="border",
                              align_corners=True)
    ours = Warp()(image, normalized_to_voxel_ddf(field))
    assert torch.allclose(ours, reference, atol=1e-5)


def test_bad_shape():
    with pytest.raises(ValueError, match="channels"):
        normalized_to_voxel_ddf(torch.zeros(1, 2, 4, 4, 4))


def test_ras_lps_vectors_round_trip():
    import numpy as np

    from cir_monai.conventions import ras_to_lps_vectors

    field = torch.randn(3, 4, 5, 6)
    lps = ras_to_lps_vectors(field, axis=0)
    assert torch.equal(lps[2], field[2]) and torch.equal(lps[:2], -field[:2])
    assert torch.equal(ras_to_lps_vectors(lps, axis=0), field)
    last = np.random.rand(4, 5, 6, 1, 3).astype(np.float32)
    assert np.array_equal(ras_to_lps_vectors(ras_to_lps_vectors(last, axis=-1), axis=-1), last)
    assert np.array_equal(ras_to_lps_vectors(last, axis=-1)[..., 0], -last[..., 0])


def test_voxel_world_round_trip_with_an_oblique_anisotropic_grid():
    """voxel → mm → voxel is the identity, batched or not; a pure x-voxel shift is that column of the affine."""
    import numpy as np

    from cir_monai.conventions import voxel_to_world, world_to_voxel

    affine = np.array([[0.0, -2.0, 0.3, 10.0], [1.5, 0.0, 0.0, -4.0], [0.0, 0.2, 1.0, 7.0], [0, 0, 0, 1]])
    ddf = torch.randn(2, 3, 4, 5, 6, dtype=torch.float64)
    assert torch.allclose(world_to_voxel(voxel_to_world(ddf, affine), affine), ddf, atol=1e-12)
    assert torch.allclose(voxel_to_world(ddf[0], affine), voxel_to_world(ddf, affine)[0])
    shift = torch.zeros(3, 2, 2, 2, dtype=torch.float64)
    shift[0] = 1.0
    assert torch.allclose(voxel_to_world(shift, affine)[:, 0, 0, 0], torch.tensor([0.0, 1.5, 0.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="n = 3 channels"):
        voxel_to_world(torch.zeros(2, 4, 4, 4), affine)


def test_itk_field_round_trips_with_a_nifti_grid():
    """An ITK field is LPS mm on ITK's index→point matrix D·diag(s), which for a NIfTI file is the RAS affine's linear
    part with x and y negated: converting a voxel DDF to RAS mm (voxel_to_world), then LPS, then back through
    itk_field_to_voxel_ddf gives the DDF again, on an oblique, anisotropic grid."""
    import numpy as np

    rotation = torch.linalg.matrix_exp(torch.tensor([[0.0, -0.3, 0.1], [0.3, 0.0, -0.2], [-0.1, 0.2, 0.0]]))
    spacing = np.array([1.5, 0.8, 2.0])
    affine = np.eye(4)
    affine[:3, :3] = rotation.double().numpy() @ np.diag(spacing)
    ddf = torch.randn(1, 3, 4, 5, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    lps_mm = ras_to_lps_vectors(voxel_to_world(ddf, affine), axis=1)
    field = np.moveaxis(lps_mm[0].numpy(), 0, -1)  # (X, Y, Z, 3), as ants.image_read(...).numpy() gives
    direction = np.diag([-1.0, -1.0, 1.0]) @ rotation.double().numpy()  # ITK's direction of that NIfTI file
    back = itk_field_to_voxel_ddf(field, direction, spacing)
    assert back.shape == (1, 3, 4, 5, 6) and back.dtype == torch.float32
    assert torch.allclose(back.double(), ddf, atol=1e-5)
