"""Minimal MONAI Deploy (App SDK 4.0.0) application: NIfTI in -> bundle -> NIfTI out, no DICOM.

    HOLOSCAN_MODEL_PATH=/nonexistent python integration/deploy_app.py BUNDLE IN.nii.gz OUT_DIR [--lam 2.0]

BUNDLE is a bundle folder (configs/inference.*, configs/metadata.json, models/model.ts|model.pt) or a
TorchScript file with extra/inference.json + extra/metadata.json (then set HOLOSCAN_MODEL_PATH to that
same file).  For a folder, the app context's model path (HOLOSCAN_MODEL_PATH, -m, default ./models) must
NOT exist: any existing path becomes a generic Model without a predictor and the operator then fails with
"A predictor of the model is not set.".  Every key of metadata network_data_format.inputs is an operator
input port; a second input "lam" is sent as a torch tensor (floats and 0/1-d numpy arrays are rejected).

The input Image is made by nifti_image(), the function that bundle/docs/README.md ("Use it in MONAI Deploy") shows
verbatim (integration/test_deploy.py checks that they are the same text): the operator hands the Image's metadata
to MONAI's transforms as if LoadImage had read the file, so it must carry the affine (without it the image is
placed at the origin in 1 mm voxels, the atlas misses it and the label map is wrong, with no error) and
original_channel_dim (without it EnsureChannelFirstd fails).
"""

import argparse
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from monai.deploy.conditions import CountCondition
from monai.deploy.core import Application, Image, IOType, Operator, OperatorSpec
from monai.deploy.operators.monai_bundle_inference_operator import (
    BundleConfigNames,
    IOMapping,
    MonaiBundleInferenceOperator,
    get_bundle_config,
)


def nifti_image(path) -> Image:
    """A NIfTI file as the bundle's `image` input: the array in the file's voxel order, the metadata LoadImage gives."""
    nii = nib.load(str(path))
    affine = nii.affine.astype(np.float64)
    array = np.asarray(nii.dataobj, dtype=np.float32)
    metadata = {
        # required: voxel -> world (RAS, mm); without it the image lies at the origin in 1 mm voxels and the
        # atlas misses it (a wrong label map, no error)
        "affine": affine.copy(),
        # required: the array has no channel axis (EnsureChannelFirstd fails without it)
        "original_channel_dim": "no_channel",
        # with both of these the operator takes the metadata as it is (an Image with DICOM keys such as
        # row_pixel_spacing and without them is converted as a DICOM volume instead)
        "original_affine": affine.copy(),
        "spacing": np.asarray(nii.header.get_zooms()[:3], dtype=np.float64),
        "spatial_shape": np.asarray(array.shape),
        "space": "RAS",
        "filename_or_obj": str(path),
    }
    return Image(array, metadata=metadata)


class NiftiImageSource(Operator):
    """Emits a NIfTI file as an SDK Image (nifti_image) and, with lam, λ as a torch tensor."""

    def __init__(self, fragment, *args, path, lam=None, **kwargs):
        self.path, self.lam = Path(path), lam
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec):
        spec.output("image")
        if self.lam is not None:
            spec.output("lam")

    def compute(self, op_input, op_output, context):
        op_output.emit(nifti_image(self.path), "image")
        if self.lam is not None:
            op_output.emit(torch.tensor(float(self.lam), dtype=torch.float32), "lam")


class NiftiWriter(Operator):
    """Writes the bundle output with the INPUT file's affine (the operator attaches the preprocessed
    input's metadata to an Image output, and squeezes/transposes it to (D,H,W) uint8). An np.ndarray
    output is written in the dtype the operator gives (int16 labels for the inference config), not cast."""

    def __init__(self, fragment, *args, ref, out_dir, **kwargs):
        self.ref, self.out_dir = Path(ref), Path(out_dir)
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec):
        spec.input("pred")

    def compute(self, op_input, op_output, context):
        v = op_input.receive("pred")
        ref = nib.load(str(self.ref))
        if isinstance(v, Image):  # "image" type output: (D,H,W) uint8 -> back to (W,H,D)
            arr = np.swapaxes(v.asnumpy(), 0, 2)
        else:  # np.ndarray ("series"/other types): channel-first as post-processing left it
            arr = np.asarray(v)
            arr = arr[0] if arr.ndim == 4 and arr.shape[0] == 1 else np.moveaxis(arr, 0, -1) if arr.ndim == 4 else arr
        self.out_dir.mkdir(parents=True, exist_ok=True)
        out = self.out_dir / (self.ref.name.split(".")[0] + "_pred.nii.gz")
        nib.save(nib.Nifti1Image(arr, ref.affine), str(out))
        logging.info("wrote %s %s %s", out, arr.shape, arr.dtype)


class BundleApp(Application):
    def __init__(self, bundle, image, out_dir, lam=None, config="inference", *args, **kwargs):
        self.bundle, self.image, self.out_dir, self.lam, self.config = bundle, image, out_dir, lam, config
        super().__init__(*args, **kwargs)

    def compose(self):
        app_context = Application.init_app_context({})  # argv / HOLOSCAN_* env
        meta = get_bundle_config(str(self.bundle), [self.config])["_meta_"]["network_data_format"]
        inputs = [IOMapping("image", Image, IOType.IN_MEMORY)]
        if self.lam is not None:
            inputs.append(IOMapping("lam", torch.Tensor, IOType.IN_MEMORY))
        out_name = next(iter(meta["outputs"]))
        out_type = Image if meta["outputs"][out_name]["type"] == "image" else np.ndarray
        src = NiftiImageSource(self, CountCondition(self, 1), path=self.image, lam=self.lam, name="nifti_source")
        infer = MonaiBundleInferenceOperator(
            self,
            app_context=app_context,
            bundle_path=self.bundle,
            bundle_config_names=BundleConfigNames(config_names=[self.config]),
            input_mapping=inputs,
            output_mapping=[IOMapping(out_name, out_type, IOType.IN_MEMORY)],
            name="bundle_inference",
        )
        sink = NiftiWriter(self, ref=self.image, out_dir=self.out_dir, name="nifti_writer")
        self.add_flow(src, infer, {(m.label, m.label) for m in inputs})
        self.add_flow(infer, sink, {(out_name, "pred")})


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("bundle")
    p.add_argument("image")
    p.add_argument("out_dir")
    p.add_argument("--lam", type=float, default=None, help="send a second input 'lam' (bundle metadata must list it)")
    p.add_argument("--config", default="inference")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO)
    BundleApp(Path(a.bundle).resolve(), Path(a.image).resolve(), Path(a.out_dir), a.lam, a.config).run()
