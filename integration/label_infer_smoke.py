"""Run MONAI Label 0.8.5's BundleInferTask on a bundle folder, as the monaibundle app/server would.

    /work/integ-venvs/label/bin/python integration/label_infer_smoke.py BUNDLE IMAGE.nii.gz
        [--lam 2.0] [--config inference.yaml]

Checks what MONAI Label needs: the task is valid, the request's λ reaches the inferer (displayable_configs),
and the written label map lies on the input's grid (same shape and affine).
"""

import argparse
import logging
import time

import nibabel as nib
import numpy as np
from monailabel.tasks.infer.bundle import BundleConstants, BundleInferTask


class Const(BundleConstants):
    """BundleInferTask has no config-file argument: pick the file through BundleConstants.configs()."""

    def __init__(self, name):
        self.name = name

    def configs(self):
        return [self.name]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("bundle")
    p.add_argument("image")
    p.add_argument("--lam", type=float, default=None)
    p.add_argument("--config", default=None, help="config file name under configs/ (default: inference.json|yaml)")
    a = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    task = BundleInferTask(a.bundle, {"preload": "false"}, const=Const(a.config) if a.config else None)
    assert task.is_valid(), "BundleInferTask rejected the bundle (see the log: configs/, models/model.pt|model.ts)"
    print("type", task.type, "| labels", len(task.labels or {}), "| options", task.config())
    req = {"image": a.image, "device": "cpu"}
    if a.lam is not None:
        req["lam"] = a.lam
    t0 = time.time()
    out, res = task(req)
    o, i = nib.load(out), nib.load(a.image)
    same = o.shape[:3] == i.shape[:3] and np.allclose(o.affine, i.affine, atol=1e-4)
    print(f"output {out} {o.shape} {o.get_data_dtype()} | on input grid: {same} | "
          f"{len(np.unique(np.asarray(o.dataobj)))} values | {time.time() - t0:.1f} s | result keys {sorted(res)}")
    if not same:
        raise SystemExit("output is not on the input's grid")


if __name__ == "__main__":
    main()
