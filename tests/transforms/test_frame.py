"""ToFramed: the bundle's frame step is the file runner's, forward and inverse."""

from __future__ import annotations

import numpy as np
import torch
from monai.data import MetaTensor

from cir_monai.conventions import voxel_to_world
from cir_monai.frame import FrameResampler
from cir_monai.transforms import DDFToWorldd, ToFramed


def _image(shape=(30, 34, 28), spacing=1.0):
    """A bright box inside an empty 1 mm volume with an off-origin, oblique-free affine."""
    values = torch.zeros(1, *shape)
    values[:, 7:22, 9:25, 6:20] = torch.rand(1, 15, 16, 14, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.5
    affine = torch.diag(torch.tensor([spacing, spacing, spacing, 1.0], dtype=torch.float64))
    affine[:3, 3] = torch.tensor([-14.0, -20.0, 3.0], dtype=torch.float64)
    return MetaTensor(values, affine=affine)


def test_crops_the_resampled_foreground_with_the_margin_and_a_shifted_affine():
    image = _image()
    framed = ToFramed("image", spacing=2.0)({"image": image})["image"]
    # MONAI's Spacing records its resampling as SpatialResample
    assert [op["class"] for op in framed.applied_operations] == ["SpatialResample", "ToFramed"]
    work = FrameResampler(2.0).to_frame(image)
    start = framed.applied_operations[-1]["extra_info"]["start"]
    box = FrameResampler(2.0).foreground_box(work)
    assert start == [sl.start for sl in box] and framed.shape[1:] == tuple(sl.stop - sl.start for sl in box)
    # the box 7:22 (1 mm) is about 3.5:11 at 2 mm: 4 voxels of margin reach the volume's edge in x
    assert start[0] == 0 and framed.shape[1] < work.shape[1]
    expected = np.asarray(work.affine).copy()
    expected[:3, 3] += 2.0 * np.asarray(start)
    assert np.allclose(np.asarray(framed.affine), expected)
    assert torch.equal(framed.as_tensor(), work.as_tensor()[(slice(None), *box)])


def test_the_inverse_of_a_field_is_the_runners():
    """A random field on the framed grid, brought back by Invertd's path (DDFToWorldd, ToFramed.inverse), equals the
    runner's (FrameResampler.uncrop, FrameResampler.field_to_grid) in world mm on the input's grid."""
    image = _image()
    to_frame = ToFramed("image", spacing=2.0)
    framed = to_frame({"image": image})["image"]
    field = torch.randn(3, *framed.shape[1:], generator=torch.Generator().manual_seed(1))
    world = DDFToWorldd("pred", "image")({"image": framed, "pred": field})["pred"]  # with the image's history
    back = to_frame.inverse({"image": world})["image"]
    # the runner: the same resampler's frame grid and box, the field padded by its border and resampled back
    work = to_frame.resampler.to_frame(image)
    box = to_frame.resampler.foreground_box(work)
    whole = to_frame.resampler.uncrop(field[None], box, work.shape[1:])
    runner = voxel_to_world(to_frame.resampler.field_to_grid(whole, work, image), image.affine)[0]
    assert back.shape == (3, *image.shape[1:])
    assert torch.allclose(back.as_tensor(), runner.float(), atol=1e-5)
    assert np.allclose(np.asarray(back.affine), np.asarray(image.affine))


def test_on_the_frame_grid_it_only_crops_and_the_inverse_continues_the_border():
    image = _image(spacing=2.0)
    to_frame = ToFramed("image", spacing=2.0)
    framed = to_frame({"image": image})["image"]
    assert [op["class"] for op in framed.applied_operations] == ["ToFramed"]
    assert framed.shape[1:] == (23, 24, 22)  # the box (15, 16, 14) plus 4 voxels each side
    field = MetaTensor(torch.ones(3, *framed.shape[1:]), meta=dict(framed.meta),
                       applied_operations=list(framed.applied_operations))
    field[:, 0] = 5.0  # the lowest x-plane of the box: continued to the volume's lower x edge
    back = to_frame.inverse({"image": field})["image"]
    assert back.shape[1:] == image.shape[1:] and torch.all(back[:, :4] == 5.0) and torch.all(back[:, -1] == 1.0)


def test_an_empty_image_keeps_the_whole_frame_grid():
    """No voxel above the threshold: the whole grid is the box (FrameResampler.foreground_box), and back."""
    image = _image(spacing=2.0)
    image.zero_()
    to_frame = ToFramed("image", spacing=2.0)
    framed = to_frame({"image": image})["image"]
    assert framed.shape == image.shape and np.allclose(np.asarray(framed.affine), np.asarray(image.affine))
    back = to_frame.inverse({"image": framed})["image"]
    assert back.shape == image.shape and not back.applied_operations
